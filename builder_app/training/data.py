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
(reshape, one-hot) when there is one.
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
    "Arrays",
    "DataError",
    "Problem",
    "apply_fixes",
    "check_fit",
    "load",
    "parse_spec",
    "split",
]


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
def check_fit(data: Arrays, model, losses: Sequence[str]) -> list[Problem]:
    """Everything about ``data`` that does not fit ``model`` (empty when it fits).

    Args:
        data: The arrays.
        model: The Keras model (its ``inputs`` and ``outputs``).
        losses: The loss of each output (one-hot and sparse targets differ).
    """
    problems: list[Problem] = []
    if len(data.x) != len(model.inputs):
        problems.append(Problem(f"the model takes {len(model.inputs)} inputs; {data.name} gives {len(data.x)}"))
    if len(data.y) != len(model.outputs):
        problems.append(Problem(f"the model gives {len(model.outputs)} outputs; {data.name} has {len(data.y)} targets"))
    if problems:
        return problems
    counts = {len(a) for a in [*data.x, *data.y]}
    if len(counts) > 1:
        problems.append(Problem(f"{data.name}: the arrays hold different numbers of samples ({sorted(counts)})"))
    for tensor, array in zip(model.inputs, data.x, strict=True):
        name = tensor.name
        expected = tuple(tensor.shape)
        got = (None, *array.shape[1:])
        if not _compatible(expected, got):
            fix = None
            if None not in expected[1:] and np.prod(expected[1:]) == np.prod(array.shape[1:]):
                fix = f"reshape to {format_shape(expected)}"
            problems.append(
                Problem(f"input '{name}' expects {format_shape(expected)}; {data.name} gives {format_shape(got)}", fix)
            )
    for tensor, array, loss in zip(model.outputs, data.y, losses, strict=True):
        expected = tuple(tensor.shape)
        units = expected[-1]
        integer_labels = np.issubdtype(array.dtype, np.integer)
        if loss in ("categorical_crossentropy", "categorical_focal_crossentropy") and integer_labels and array.ndim == 1:
            problems.append(
                Problem(
                    f"output '{_layer_of(tensor)}' is trained with {loss}, which wants one-hot targets "
                    f"{format_shape(expected)}; {data.name} gives class numbers {format_shape((None,))}",
                    f"one-hot encode into {units} classes",
                )
            )
            continue
        if loss == "sparse_categorical_crossentropy":
            if integer_labels and array.size and units is not None and int(array.max()) >= units:
                problems.append(
                    Problem(
                        f"output '{_layer_of(tensor)}' has {units} classes; {data.name} has class "
                        f"numbers up to {int(array.max())}"
                    )
                )
            elif array.ndim == 2 and array.shape[1] == units and units > 1:
                problems.append(
                    Problem(
                        f"output '{_layer_of(tensor)}' is trained with sparse_categorical_crossentropy, which "
                        f"wants class numbers; {data.name} gives one-hot targets {format_shape((None, *array.shape[1:]))}",
                        "use categorical_crossentropy",
                    )
                )
            continue
        got = (None, *array.shape[1:])
        if not _compatible(expected, got) and not (array.ndim == 1 and expected[1:] == (1,)):
            problems.append(
                Problem(f"output '{_layer_of(tensor)}' gives {format_shape(expected)}; {data.name} has targets {format_shape(got)}")
            )
    return problems


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
