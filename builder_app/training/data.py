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

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builder_app.core.datasets import BUILTIN
from builder_app.core.text import format_shape, one_line

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")


class DataError(ValueError):
    """The data cannot be loaded or does not fit the model; the message says what and where."""


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
    if text in BUILTIN:
        return {"source": "builtin", "name": text}
    if text in KERAS_DATASETS:
        return {"source": "keras", "name": text}
    if "," in text and all(part.endswith(".npy") for part in text.split(",")):
        x, y = text.split(",", 1)
        return {"source": "npy", "x": x, "y": y}
    if text.endswith(".npz"):
        return {"source": "npz", "path": text}
    path, _, target = text.rpartition(":")
    if path.endswith(".csv"):
        return {"source": "csv", "path": path, "target": target}
    if text.endswith(".csv"):
        raise DataError(f"{text}: say which column is the target: --data {text}:COLUMN")
    if os.path.isdir(text):
        return {"source": "images", "path": text}
    known = ", ".join([*BUILTIN, *KERAS_DATASETS])
    raise DataError(f"unknown data {text!r}: give one of {known}, an .npz/.npy/.csv file or an image folder")


def load(spec: dict[str, Any], *, seed: int = 0, input_shapes: Sequence[tuple] = ()) -> Arrays:
    """Loads the data a setting names.

    Args:
        spec: A data setting (see the module docstring).
        seed: Seed of the synthetic datasets.
        input_shapes: The model's input shapes (image folders are resized to the
            first one's height and width unless the setting says otherwise).

    Raises:
        DataError: The data cannot be read; the message names the file.
    """
    source = spec.get("source")
    try:
        if source == "builtin":
            x, y = BUILTIN[spec["name"]].load(seed)
            return Arrays([x], [y], spec["name"])
        if source == "keras":
            return _keras_dataset(spec["name"])
        if source == "npz":
            return _npz(Path(spec["path"]))
        if source == "npy":
            return Arrays([_npy(Path(spec["x"]))], [_npy(Path(spec["y"]))], Path(spec["x"]).name)
        if source == "csv":
            return _csv(Path(spec["path"]), spec.get("target"))
        if source == "images":
            return _images(Path(spec["path"]), spec.get("image_size"), input_shapes)
    except OSError as exc:
        raise DataError(f"cannot read {exc.filename or spec}: {exc.strerror or exc}") from None
    raise DataError(f"unknown data source {source!r}")


def _keras_dataset(name: str) -> Arrays:
    import keras

    module = getattr(keras.datasets, name)
    try:
        (x, y), (x_test, y_test) = module.load_data()
    except Exception as exc:  # noqa: BLE001 - no network, a broken cache: urllib, OSError, ...
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
        raise DataError(
            f"Keras's {name} is not in the Keras cache ({cache}) and cannot be downloaded "
            f"({one_line(exc, 120)}); use a built-in dataset ({', '.join(BUILTIN)}) or your own files"
        ) from None
    x = np.concatenate([x, x_test]).astype("float32") / 255.0
    if x.ndim == 3:
        x = x[..., None]
    y = np.concatenate([y, y_test]).reshape(-1).astype("int64")
    return Arrays([x], [y], name)


def _npz(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Arrays(_numbered(data, "x", path), _numbered(data, "y", path), path.name)
    except ValueError as exc:  # object arrays (pickles), damaged files
        raise DataError(f"{path.name}: {exc}") from None


def _numbered(data, key: str, path: Path) -> list[np.ndarray]:
    if key in data.files:
        return [data[key]]
    found = []
    while f"{key}{len(found)}" in data.files:
        found.append(data[f"{key}{len(found)}"])
    if not found:
        raise DataError(f"{path.name}: no array named {key} (or {key}0, {key}1, ...); it holds {', '.join(data.files)}")
    return found


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path.name}: {exc}") from None


def _csv(path: Path, target: str | None) -> Arrays:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise DataError(f"{path.name}: needs a header line and at least one row")
    header = [name.strip() for name in rows[0]]
    if not target or target not in header:
        raise DataError(f"{path.name}: no column {target!r}; the columns are {', '.join(header)}")
    t = header.index(target)
    features: list[list[float]] = []
    labels: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path.name} line {line}: {len(row)} values for {len(header)} columns")
        try:
            features.append([float(v) for i, v in enumerate(row) if i != t])
        except ValueError:
            bad = next(header[i] for i, v in enumerate(row) if i != t and not _is_number(v))
            raise DataError(f"{path.name} line {line}: column {bad!r} is not a number") from None
        labels.append(row[t].strip())
    x = np.asarray(features, dtype="float32")
    if all(_is_number(v) for v in labels):
        y = np.asarray([float(v) for v in labels])
        y = y.astype("int64") if np.all(y == np.round(y)) else y.astype("float32")
        return Arrays([x], [y], path.name)
    classes = sorted(set(labels))
    return Arrays([x], [np.asarray([classes.index(v) for v in labels], dtype="int64")], path.name, classes)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _images(path: Path, image_size: Sequence[int] | None, input_shapes: Sequence[tuple]) -> Arrays:
    import keras

    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    shape = input_shapes[0] if input_shapes else ()
    if image_size is None:
        image_size = [d for d in shape[1:3]] if len(shape) == 4 and None not in shape[1:3] else [64, 64]
    channels = shape[3] if len(shape) == 4 else 3
    color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels, "rgb")
    try:
        dataset = keras.utils.image_dataset_from_directory(
            path, image_size=tuple(image_size), color_mode=color_mode, shuffle=False, batch_size=None, verbose=False
        )
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise DataError(f"{path}: no images found (one sub-folder per class)")
    x = np.stack(images).astype("float32") / 255.0
    return Arrays([x], [np.asarray(labels, dtype="int64")], path.name, list(dataset.class_names))


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
    """(training, validation): the last ``fraction`` of the samples, after a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(len(data)) if shuffle else np.arange(len(data))
    if fraction <= 0:
        return data.take(order), None
    cut = len(data) - max(1, int(round(len(data) * fraction)))
    if cut < 1:
        raise DataError(f"{data.name} has {len(data)} samples: too few to set {fraction:.0%} aside for validation")
    return data.take(order[:cut]), data.take(order[cut:])


def _compatible(expected: tuple, got: tuple) -> bool:
    return len(expected) == len(got) and all(e is None or g is None or e == g for e, g in zip(expected, got, strict=True))


def _layer_of(tensor) -> str:
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else tensor.name
