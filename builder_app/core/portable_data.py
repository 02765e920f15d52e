"""Training data as the app and its exported training scripts both read and split it.

One implementation, two users: :mod:`builder_app.training.data` (the app's training
child) calls these functions, and :mod:`builder_app.exporters.train_script` copies
their very source into the script it writes (``inspect.getsource``), so a script
loads the same files and sets the same validation samples aside as the app.

That is why everything here is self-contained: the functions of :data:`SCRIPT_PARTS`
use only the standard library modules and numpy imported in :data:`SCRIPT_IMPORTS`
(Keras inside the functions that need it), names from this list, builtin types in
their annotations, and nothing from ``builder_app``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

#: Keras's downloadable datasets that ``--data`` names.
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")


class DataError(ValueError):
    """The data cannot be loaded or does not fit the model; the message says what and where."""


def parse_spec(text: str, builtin: dict) -> dict:
    """A ``--data`` argument as a data setting.

    ``digits`` (a built-in, one of ``builtin``), ``mnist`` (Keras), ``train.npz``,
    ``x.npy,y.npy``, ``table.csv:target_column``, ``photos/`` (an image folder).
    """
    if text in builtin:
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
    known = ", ".join([*builtin, *KERAS_DATASETS])
    raise DataError(
        f"unknown data {text!r}: give one of {known}, an .npz/.npy/.csv file or an image folder"
    )


def load_arrays(spec: dict, seed: int, input_shapes: list, builtin: dict) -> tuple:
    """``(inputs, targets, name, class_names)`` of a data setting: one array per model input and output.

    ``builtin`` maps the built-in datasets' names to their loaders (functions of a
    seed); image folders are resized to the first input's height and width.
    """
    source = spec.get("source")
    try:
        if source == "builtin":
            x, y = builtin[spec["name"]](seed)
            return [x], [y], spec["name"], []
        if source == "keras":
            return read_keras_dataset(spec["name"], builtin)
        if source == "npz":
            return read_npz(Path(spec["path"]))
        if source == "npy":
            x_path, y_path = Path(spec["x"]), Path(spec["y"])
            return [read_npy(x_path)], [read_npy(y_path)], x_path.name, []
        if source == "csv":
            return read_csv(Path(spec["path"]), spec.get("target"))
        if source == "images":
            return read_images(Path(spec["path"]), spec.get("image_size"), input_shapes)
    except OSError as exc:
        raise DataError(f"cannot read {exc.filename or spec}: {exc.strerror or exc}") from None
    raise DataError(f"unknown data source {source!r}")


def read_keras_dataset(name: str, builtin: dict) -> tuple:
    """One of Keras's datasets, training and test parts together, scaled to [0, 1]."""
    import keras

    module = getattr(keras.datasets, name)
    try:
        (x, y), (x_test, y_test) = module.load_data()
    except Exception as exc:  # noqa: BLE001 - no network, a broken cache: urllib, OSError, ...
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
        raise DataError(
            f"Keras's {name} is not in the Keras cache ({cache}) and cannot be downloaded "
            f"({first_line(exc)}); use a built-in dataset ({', '.join(builtin)}) or your own files"
        ) from None
    x = np.concatenate([x, x_test]).astype("float32") / 255.0
    if x.ndim == 3:
        x = x[..., None]
    y = np.concatenate([y, y_test]).reshape(-1).astype("int64")
    return [x], [y], name, []


def first_line(exc: BaseException, limit: int = 120) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_npz(path: Path) -> tuple:
    """Arrays ``x``/``y`` (or ``x0``, ``x1``, ... and ``y0``, ...), never unpickling.

    A damaged file (truncated, not an archive, a bad member) is one line naming it.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return numbered(data, "x", path), numbered(data, "y", path), path.name, []
    except (DataError, OSError):
        raise
    except Exception:  # noqa: BLE001 - BadZipFile, EOFError, ValueError...: a damaged file
        raise DataError(
            f"{path.name}: not a readable .npz file (damaged, truncated or not written by "
            "numpy.savez)"
        ) from None


def numbered(data, key: str, path: Path) -> list:
    """``data[key]``, or ``data[key0]``, ``data[key1]``, ... as a list."""
    if key in data.files:
        return [npz_array(data, key, path)]
    found = []
    while f"{key}{len(found)}" in data.files:
        found.append(npz_array(data, f"{key}{len(found)}", path))
    if not found:
        raise DataError(
            f"{path.name}: no array named {key} (or {key}0, {key}1, ...); "
            f"it holds {', '.join(data.files)}"
        )
    return found


def npz_array(data, key: str, path: Path) -> np.ndarray:
    """One array of an ``.npz`` file, read now: numbers, or one line naming the file and array."""
    try:
        array = data[key]
    except ValueError as exc:
        if "Object arrays" not in str(exc):
            raise DataError(f"{path.name}: array {key!r} is damaged and cannot be read") from None
        raise DataError(
            f"{path.name}: array {key!r} holds Python objects, which are never unpickled"
        ) from None
    except Exception:  # noqa: BLE001 - a damaged member: a bad CRC, truncated, EOFError...
        raise DataError(f"{path.name}: array {key!r} is damaged and cannot be read") from None
    return numeric(array, f"array {key!r}", path)


def numeric(array, what: str, path: Path) -> np.ndarray:
    """``array`` if it holds numbers (or booleans); else one line saying what it holds."""
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path.name}: {what} is not an array")
    if array.dtype.kind not in "biuf":
        kinds = {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers"}
        held = kinds.get(array.dtype.kind, "values that are not numbers")
        raise DataError(f"{path.name}: {what} holds {held} ({array.dtype}), not numbers")
    return array


def read_npy(path: Path) -> np.ndarray:
    """One ``.npy`` array, never unpickling."""
    try:
        array = np.load(path, allow_pickle=False)
    except OSError:
        raise
    except ValueError as exc:
        if "Object arrays" not in str(exc):
            raise DataError(
                f"{path.name}: not a readable .npy file (damaged, truncated or not written by "
                "numpy.save)"
            ) from None
        raise DataError(f"{path.name}: holds Python objects, which are never unpickled") from None
    except Exception:  # noqa: BLE001 - EOFError, an archive...: a damaged file
        raise DataError(
            f"{path.name}: not a readable .npy file (damaged, truncated or not written by "
            "numpy.save)"
        ) from None
    if not isinstance(array, np.ndarray):  # an .npz archive under an .npy name
        array.close()
        raise DataError(f"{path.name}: an .npz archive, not an .npy array")
    return numeric(array, "the array", path)


def read_csv(path: Path, target: str | None) -> tuple:
    """Numeric feature columns; the target as numbers, or as class indices of its sorted labels."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise DataError(f"{path.name}: needs a header line and at least one row")
    header = [name.strip() for name in rows[0]]
    if not target or target not in header:
        raise DataError(f"{path.name}: no column {target!r}; the columns are {', '.join(header)}")
    t = header.index(target)
    features = []
    labels = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path.name} line {line}: {len(row)} values for {len(header)} columns")
        try:
            features.append([float(v) for i, v in enumerate(row) if i != t])
        except ValueError:
            bad = next(header[i] for i, v in enumerate(row) if i != t and not is_number(v))
            raise DataError(f"{path.name} line {line}: column {bad!r} is not a number") from None
        labels.append(row[t].strip())
    x = np.asarray(features, dtype="float32")
    if all(is_number(v) for v in labels):
        y = np.asarray([float(v) for v in labels])
        y = y.astype("int64") if np.all(y == np.round(y)) else y.astype("float32")
        return [x], [y], path.name, []
    classes = sorted(set(labels))
    y = np.asarray([classes.index(v) for v in labels], dtype="int64")
    return [x], [y], path.name, classes


def is_number(text: str) -> bool:
    """Whether ``float(text)`` reads it."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_images(path: Path, image_size: list | None, input_shapes: list) -> tuple:
    """One sub-folder per class, resized to the model's first input, scaled to [0, 1]."""
    import keras

    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    shape = tuple(input_shapes[0]) if input_shapes else ()
    if image_size is None:
        known = len(shape) == 4 and None not in shape[1:3]
        image_size = list(shape[1:3]) if known else [64, 64]
    channels = shape[3] if len(shape) == 4 else 3
    color_mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels, "rgb")
    try:
        dataset = keras.utils.image_dataset_from_directory(
            path,
            image_size=tuple(image_size),
            color_mode=color_mode,
            shuffle=False,
            batch_size=None,
            verbose=False,
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
    return [x], [np.asarray(labels, dtype="int64")], path.name, list(dataset.class_names)


def shuffled_order(n: int, shuffle: bool, seed: int) -> np.ndarray:
    """The order the samples are used in: a seeded permutation, or as they come."""
    return np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)


def split_indices(
    n: int, fraction: float, shuffle: bool, seed: int, name: str = "the data"
) -> tuple:
    """``(training, validation)`` sample indices: the last ``fraction`` after a seeded shuffle.

    ``validation`` is None when ``fraction`` is 0; at least one sample is set aside otherwise.
    """
    order = shuffled_order(n, shuffle, seed)
    if fraction <= 0:
        return order, None
    cut = n - max(1, round(n * fraction))
    if cut < 1:
        raise DataError(
            f"{name} has {n} samples: too few to set {fraction:.0%} aside for validation"
        )
    return order[:cut], order[cut:]


#: What an exported training script copies from this module, in order.
SCRIPT_PARTS = (
    DataError,
    parse_spec,
    load_arrays,
    read_keras_dataset,
    first_line,
    read_npz,
    numbered,
    npz_array,
    numeric,
    read_npy,
    read_csv,
    is_number,
    read_images,
    shuffled_order,
    split_indices,
)
#: The imports :data:`SCRIPT_PARTS` need (those of this module).
SCRIPT_IMPORTS = ("import csv", "import os", "from pathlib import Path", "import numpy as np")
