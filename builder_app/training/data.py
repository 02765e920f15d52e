"""Training data: load what the settings name, check it against the model, split it.

Sources (``settings["data"]``, see :mod:`builder_app.core.training_settings`):

* ``{"source": "builtin", "name": "digits"}``: the offline datasets of
  :mod:`builder_app.core.datasets`;
* ``{"source": "keras", "name": "mnist" | "fashion_mnist" | "cifar10"}``: Keras's
  datasets, from the Keras cache or downloaded; a clear error when neither works;
* ``{"source": "npz", "path": ...}``: arrays ``x``/``y`` (or ``x0``, ``x1``, ... and
  ``y0``, ...), read with ``allow_pickle=False``;
* ``{"source": "npy", "x": ..., "y": ...}``: one array file each;
* ``{"source": "csv", "path": ..., "target": "column"}``: numeric columns, one target;
* ``{"source": "images", "path": ..., "image_size": [h, w]}``: one sub-folder per
  class, through ``keras.utils.image_dataset_from_directory``.

:func:`check_fit` compares the arrays with the model's inputs and outputs before
training starts and says exactly what does not fit, with the obvious fix
(reshape, one-hot) when there is one. It reads only shapes, dtypes and the largest
class number (:class:`DataFacts`) and the model's input and output shapes
(:class:`ModelSignature`, from a Keras model or from the shapes the editor
computes), so the training window checks the data before any child starts;
:func:`facts` reads them without Keras for every source but Keras's datasets and
image folders (:data:`READ_WITHOUT_KERAS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from builder_app.core import portable_data as portable
from builder_app.core.datasets import BUILTIN
from builder_app.core.portable_data import KERAS_DATASETS, DataError
from builder_app.core.text import format_shape

__all__ = [
    "KERAS_DATASETS",
    "READ_WITHOUT_KERAS",
    "ArrayFacts",
    "Arrays",
    "DataError",
    "DataFacts",
    "ModelSignature",
    "Problem",
    "apply_fixes",
    "check_fit",
    "facts",
    "load",
    "parse_spec",
    "problems_line",
    "split",
]

#: Data sources read with numpy (and scikit-learn for the built-ins) alone.
READ_WITHOUT_KERAS = ("builtin", "npz", "npy", "csv")


@dataclass
class Arrays:
    """Inputs and targets, one array per model input and output."""

    x: list[np.ndarray]
    y: list[np.ndarray]
    #: Where they came from, for messages ("digits", "train.csv").
    name: str = "the data"
    #: Class names, when the source has them (image folders).
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.x[0])

    def take(self, index: np.ndarray) -> Arrays:
        return Arrays([a[index] for a in self.x], [a[index] for a in self.y], self.name, self.classes)


@dataclass(frozen=True)
class ArrayFacts:
    """What :func:`check_fit` needs of one array: its shape, and its classes when integer."""

    shape: tuple[int, ...]
    integer: bool
    #: The largest value of an integer array (None when not integer, or empty).
    max: int | None = None

    @classmethod
    def of(cls, array: np.ndarray) -> ArrayFacts:
        integer = bool(np.issubdtype(array.dtype, np.integer))
        return cls(tuple(array.shape), integer, int(array.max()) if integer and array.size else None)

    @property
    def ndim(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class DataFacts:
    """The shapes and classes of a dataset's arrays, without the arrays (small, cheap to keep)."""

    x: list[ArrayFacts]
    y: list[ArrayFacts]
    name: str = "the data"

    @classmethod
    def of(cls, data: Arrays) -> DataFacts:
        return cls([ArrayFacts.of(a) for a in data.x], [ArrayFacts.of(a) for a in data.y], data.name)


@dataclass(frozen=True)
class ModelSignature:
    """A model's inputs and outputs as :func:`check_fit` reads them: (name, shape) each.

    Input names are the Input layers' names, output names the layers giving the
    outputs; shapes include the batch dimension (None), None where unknown.
    """

    inputs: list[tuple[str, tuple | None]]
    outputs: list[tuple[str, tuple | None]]

    @classmethod
    def of_model(cls, model) -> ModelSignature:
        """The signature of a Keras model."""
        return cls(
            [(t.name, tuple(t.shape)) for t in model.inputs],
            [(_layer_of(t), tuple(t.shape)) for t in model.outputs],
        )


def facts(spec: dict[str, Any], *, seed: int = 0) -> DataFacts | None:
    """The facts of the data a setting names, read without Keras; None for the sources that need it.

    Raises:
        DataError: The data cannot be read; the message names the file.
    """
    if spec.get("source") not in READ_WITHOUT_KERAS:
        return None
    return DataFacts.of(load(spec, seed=seed))


@dataclass
class Problem:
    """One way the data does not fit the model; ``fix`` names the obvious repair, if any."""

    message: str
    fix: str | None = None


def parse_spec(text: str) -> dict[str, Any]:
    """A ``--data`` argument as a data setting.

    ``digits`` (a built-in), ``mnist`` (Keras), ``train.npz``, ``x.npy,y.npy``,
    ``table.csv:target_column``, ``photos/`` (an image folder).
    """
    return portable.parse_spec(text, BUILTIN)


def load(spec: dict[str, Any], *, seed: int = 0, input_shapes: Sequence[tuple] = ()) -> Arrays:
    """Loads the data a setting names (as an exported training script does: :mod:`builder_app.core.portable_data`).

    Args:
        spec: A data setting (see the module docstring).
        seed: Seed of the synthetic datasets.
        input_shapes: The model's input shapes (image folders are resized to the
            first one's height and width unless the setting says otherwise).

    Raises:
        DataError: The data cannot be read; the message names the file.
    """
    loaders = {name: dataset.load for name, dataset in BUILTIN.items()}
    x, y, name, classes = portable.load_arrays(spec, seed, list(input_shapes), loaders)
    return Arrays(x, y, name, classes)


# --------------------------------------------------------------------- checks
def check_fit(data: Arrays | DataFacts, model, losses: Sequence[str | None]) -> list[Problem]:
    """Everything about ``data`` that does not fit ``model`` (empty when it fits).

    Args:
        data: The arrays, or their :class:`DataFacts`.
        model: The Keras model (its ``inputs`` and ``outputs``), or its :class:`ModelSignature`.
        losses: The loss of each output (one-hot and sparse targets differ).
    """
    if isinstance(data, Arrays):
        data = DataFacts.of(data)
    signature = model if isinstance(model, ModelSignature) else ModelSignature.of_model(model)
    problems: list[Problem] = []
    if len(data.x) != len(signature.inputs):
        problems.append(Problem(f"the model takes {len(signature.inputs)} inputs; {data.name} gives {len(data.x)}"))
    if len(data.y) != len(signature.outputs):
        problems.append(Problem(f"the model gives {len(signature.outputs)} outputs; {data.name} has {len(data.y)} targets"))
    if problems:
        return problems
    counts = {a.shape[0] if a.shape else 1 for a in [*data.x, *data.y]}
    if len(counts) > 1:
        problems.append(Problem(f"{data.name}: the arrays hold different numbers of samples ({sorted(counts)})"))
    for (name, expected), array in zip(signature.inputs, data.x, strict=True):
        if expected is None:
            continue  # unknown (an error in the model): the model's own check says so
        got = (None, *array.shape[1:])
        if not _compatible(expected, got):
            fix = None
            if None not in expected[1:] and np.prod(expected[1:]) == np.prod(array.shape[1:]):
                fix = f"reshape to {format_shape(expected)}"
            problems.append(
                Problem(f"input '{name}' expects {format_shape(expected)}; {data.name} gives {format_shape(got)}", fix)
            )
    for (name, expected), array, loss in zip(signature.outputs, data.y, losses, strict=True):
        if expected is None or not expected:
            continue
        units = expected[-1]
        integer_labels = array.integer
        if loss in ("categorical_crossentropy", "categorical_focal_crossentropy") and integer_labels and array.ndim == 1:
            problems.append(
                Problem(
                    f"output '{name}' is trained with {loss}, which wants one-hot targets "
                    f"{format_shape(expected)}; {data.name} gives class numbers {format_shape((None,))}",
                    f"one-hot encode into {units} classes",
                )
            )
            continue
        if loss == "sparse_categorical_crossentropy":
            if integer_labels and array.max is not None and units is not None and array.max >= units:
                problems.append(
                    Problem(f"output '{name}' has {units} classes; {data.name} has class numbers up to {array.max}")
                )
            elif array.ndim == 2 and array.shape[1] == units and units > 1:
                problems.append(
                    Problem(
                        f"output '{name}' is trained with sparse_categorical_crossentropy, which "
                        f"wants class numbers; {data.name} gives one-hot targets {format_shape((None, *array.shape[1:]))}",
                        "use categorical_crossentropy",
                    )
                )
            continue
        got = (None, *array.shape[1:])
        if not _compatible(expected, got) and not (array.ndim == 1 and expected[1:] == (1,)):
            problems.append(
                Problem(f"output '{name}' gives {format_shape(expected)}; {data.name} has targets {format_shape(got)}")
            )
    return problems


def problems_line(problems: Sequence[Problem]) -> tuple[str, str]:
    """(message, hint) of :func:`check_fit`'s problems: one line each, as the window and the child say them."""
    fixes = [p.fix for p in problems if p.fix]
    return "; ".join(p.message for p in problems), (f"fix: {'; '.join(fixes)}" if fixes else "")


def apply_fixes(data: Arrays, model, losses: Sequence[str]) -> tuple[Arrays, list[str]]:
    """``data`` with every obvious fix of :func:`check_fit` applied; the fixes, described."""
    done = []
    x = list(data.x)
    y = list(data.y)
    for i, (tensor, array) in enumerate(zip(model.inputs, x, strict=False)):
        expected = tuple(tensor.shape)
        if not _compatible(expected, (None, *array.shape[1:])) and None not in expected[1:]:
            if np.prod(expected[1:]) == np.prod(array.shape[1:]):
                x[i] = array.reshape((len(array), *expected[1:]))
                done.append(f"reshaped input '{tensor.name}' to {format_shape(expected)}")
    for i, (tensor, array, loss) in enumerate(zip(model.outputs, y, losses, strict=False)):
        units = tuple(tensor.shape)[-1]
        if loss in ("categorical_crossentropy", "categorical_focal_crossentropy") and array.ndim == 1:
            if np.issubdtype(array.dtype, np.integer) and units is not None and int(array.max()) < units:
                y[i] = np.eye(units, dtype="float32")[array]
                done.append(f"one-hot encoded the targets of '{_layer_of(tensor)}' into {units} classes")
    return Arrays(x, y, data.name, data.classes), done


def split(data: Arrays, fraction: float, *, shuffle: bool, seed: int) -> tuple[Arrays, Arrays | None]:
    """(training, validation): the last ``fraction`` of the samples, after a seeded shuffle.

    The indices come from :func:`builder_app.core.portable_data.split_indices`, which exported training
    scripts carry too: both set the same samples aside.
    """
    train, held = portable.split_indices(len(data), fraction, shuffle, seed, data.name)
    return data.take(train), None if held is None else data.take(held)


def _compatible(expected: tuple, got: tuple) -> bool:
    return len(expected) == len(got) and all(e is None or g is None or e == g for e, g in zip(expected, got, strict=True))


def _layer_of(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else tensor.name
