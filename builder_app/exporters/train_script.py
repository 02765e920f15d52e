"""Project -> a standalone training script: the model, its data, compile and fit.

The script is the exported model code (:mod:`builder_app.exporters.python_code`)
plus the project's training settings (:mod:`builder_app.core.training_settings`),
the built-in dataset loaders (their very source), and a ``--strategy`` switch
over ``tf.distribute``: MirroredStrategy for the GPUs of one machine,
MultiWorkerMirroredStrategy across machines through ``TF_CONFIG``. It imports
nothing from ``builder_app``. Every value written into it has been checked
against what Keras provides (:func:`builder_app.core.training_settings.resolve`), so
a project file cannot smuggle code into the script.
"""

from __future__ import annotations

import json
from typing import Any

from builder_app.core import datasets
from builder_app.core.project import Project
from builder_app.core.training_settings import CALLBACKS, resolve
from builder_app.exporters.python_code import python_source

_DOC = """Trains the Keras model {name} as its project's training settings say.

    python {{script}} [--data SPEC] [--epochs N] [--batch-size N]
        [--strategy {{default,mirrored,multiworker}}] [--save MODEL.keras]

SPEC is a built-in dataset ({builtin}), a Keras dataset (mnist,
fashion_mnist, cifar10), an .npz file holding the inputs as x (x0, x1, ... for
several inputs) and the targets as y (y0, y1, ...), X.npy,Y.npy, F.csv:TARGET or
an image folder (one sub-folder per class). Validation data is set aside as the
app does it: the last part after a seeded shuffle. --strategy mirrored trains on all GPUs of this machine
(tf.distribute.MirroredStrategy); multiworker trains across machines
(tf.distribute.MultiWorkerMirroredStrategy, configured on each worker by the
TF_CONFIG environment variable); both need the TensorFlow backend. --batch-size
is the global batch, split across the replicas. Written by builder-app."""

_IMPORTS = ("import argparse", "import contextlib", "import csv", "import sys", "", "import keras", "import numpy as np")

_RUNNER = '''
def parse_data(text: str) -> dict:
    """A --data argument as a data setting (as builder-app train reads it)."""
    if text in BUILTIN:
        return {"source": "builtin", "name": text}
    if text in ("mnist", "fashion_mnist", "cifar10"):
        return {"source": "keras", "name": text}
    if "," in text:
        x, y = text.split(",", 1)
        return {"source": "npy", "x": x, "y": y}
    if text.endswith(".npz"):
        return {"source": "npz", "path": text}
    path, _, target = text.rpartition(":")
    if path.endswith(".csv"):
        return {"source": "csv", "path": path, "target": target}
    return {"source": "images", "path": text}


def load_data(spec: dict, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Inputs and targets, one array per model input and output."""
    source = spec["source"]
    if source == "builtin":
        x, y = BUILTIN[spec["name"]](seed)
        return [x], [y]
    if source == "keras":
        (x, y), (x_test, y_test) = getattr(keras.datasets, spec["name"]).load_data()
        x = np.concatenate([x, x_test]).astype("float32") / 255.0
        return [x[..., None] if x.ndim == 3 else x], [np.concatenate([y, y_test]).reshape(-1)]
    if source == "npy":
        return [np.load(spec["x"], allow_pickle=False)], [np.load(spec["y"], allow_pickle=False)]
    if source == "npz":
        with np.load(spec["path"], allow_pickle=False) as data:
            return _arrays(data, "x", spec["path"]), _arrays(data, "y", spec["path"])
    if source == "csv":
        return _csv(spec["path"], spec["target"])
    return _images(spec["path"], spec.get("image_size"))


def _arrays(data, key: str, path: str) -> list[np.ndarray]:
    if key in data.files:
        return [data[key]]
    numbered = []
    while f"{key}{len(numbered)}" in data.files:
        numbered.append(data[f"{key}{len(numbered)}"])
    if not numbered:
        sys.exit(f"{path}: no array named {key} (or {key}0, {key}1, ...)")
    return numbered


def _csv(path: str, target: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Numeric feature columns; the target column as numbers or as class indices of its sorted labels."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header, *rows = [row for row in csv.reader(handle) if row]
    t = [name.strip() for name in header].index(target)
    x = np.asarray([[float(v) for i, v in enumerate(row) if i != t] for row in rows], dtype="float32")
    labels = [row[t].strip() for row in rows]
    try:
        y = np.asarray([float(v) for v in labels])
        y = y.astype("int64") if np.all(y == np.round(y)) else y.astype("float32")
    except ValueError:
        classes = sorted(set(labels))
        y = np.asarray([classes.index(v) for v in labels], dtype="int64")
    return [x], [y]


def _images(path: str, image_size) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One sub-folder per class, resized to the model's input, scaled to [0, 1]."""
    shape = build_model().inputs[0].shape
    size = image_size or (shape[1:3] if None not in shape[1:3] else (64, 64))
    color_mode = {1: "grayscale", 4: "rgba"}.get(shape[-1], "rgb")
    dataset = keras.utils.image_dataset_from_directory(
        path, image_size=tuple(size), color_mode=color_mode, shuffle=False, batch_size=None
    )
    images, labels = zip(*dataset.as_numpy_iterator())
    return [np.stack(images).astype("float32") / 255.0], [np.asarray(labels, dtype="int64")]


def split(xs: list, ys: list, fraction: float, shuffle: bool, seed: int):
    """(training, validation): the last fraction of the samples after a seeded shuffle, as the app splits."""
    n = len(xs[0])
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    if fraction <= 0:
        return ([a[order] for a in xs], [a[order] for a in ys]), None
    cut = n - max(1, round(n * fraction))
    train, held = order[:cut], order[cut:]
    return ([a[train] for a in xs], [a[train] for a in ys]), ([a[held] for a in xs], [a[held] for a in ys])


def make_strategy(name: str):
    """The tf.distribute strategy to train under, or None for Keras's default."""
    if name == "default":
        return None
    if keras.backend.backend() != "tensorflow":
        sys.exit(f"--strategy {name} needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process writes the trained model (one worker of a cluster does)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def main(argv: list[str] | None = None) -> keras.callbacks.History:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a built-in or Keras dataset, F.npz, X.npy,Y.npy, F.csv:TARGET or an image folder")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default")
    parser.add_argument("--save", metavar="MODEL.keras", help="where to save the trained model")
    args = parser.parse_args(argv)
    # First: MultiWorkerMirroredStrategy must start before any other TensorFlow work.
    strategy = make_strategy(args.strategy)
    data = parse_data(args.data) if args.data else DATA
    if data is None:
        parser.error(f"say which data to train on: --data {{{','.join(BUILTIN)}}} or --data FILE.npz")
    keras.utils.set_random_seed(SEED)
    if MIXED_PRECISION:
        keras.mixed_precision.set_global_policy("mixed_float16")
    xs, ys = load_data(data, SEED)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model()
        model.compile(optimizer=make_optimizer(), loss=LOSS, metrics=METRICS)
    if len(xs) != len(model.inputs) or len(ys) != len(model.outputs):
        sys.exit(
            f"the model takes {len(model.inputs)} input(s) and gives {len(model.outputs)} output(s); "
            f"the data holds {len(xs)} input array(s) and {len(ys)} target array(s)"
        )
    if VALIDATION is not None:
        order = np.random.default_rng(SEED).permutation(len(xs[0])) if SHUFFLE else np.arange(len(xs[0]))
        train, validation = ([a[order] for a in xs], [a[order] for a in ys]), load_data(VALIDATION, SEED)
    else:
        train, validation = split(xs, ys, VALIDATION_SPLIT, SHUFFLE, SEED)
    one = lambda arrays: arrays[0] if len(arrays) == 1 else arrays  # noqa: E731
    history = model.fit(
        one(train[0]),
        one(train[1]),
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(one(validation[0]), one(validation[1])) if validation else None,
        shuffle=SHUFFLE,
        callbacks=make_callbacks(),
    )
    if args.save and is_chief(strategy):
        model.save(args.save)
        print(f"saved {args.save}")
    return history
'''.strip()

_MAIN = 'if __name__ == "__main__":\n    main()'


def training_script(project: Project, *, reformat: bool = True) -> str:
    """The training script's source.

    Raises:
        CodegenError: The model cannot be written as code.
        SettingsError: The training settings are unusable (the message says which).
    """
    settings = resolve(project.training, project.graph)
    single = len(settings["loss"]) == 1
    constants = "\n".join(
        [
            f"DATA = {_literal(settings['data'])}",
            f"VALIDATION = {_literal(settings['validation'])}",
            f"EPOCHS = {settings['epochs']}",
            f"BATCH_SIZE = {settings['batch_size']}",
            f"VALIDATION_SPLIT = {_literal(float(settings['validation_split']))}",
            f"SHUFFLE = {settings['shuffle']}",
            f"SEED = {settings['seed']}",
            f"MIXED_PRECISION = {settings['mixed_precision']}",
            f"LOSS = {_literal(settings['loss'][0] if single else settings['loss'])}",
            f"METRICS = {_literal(settings['metrics'][0] if single else settings['metrics'])}",
        ]
    )
    loaders = [dataset.source().strip() for dataset in datasets.BUILTIN.values()]
    builtin = "BUILTIN = {\n" + "".join(
        f"    {json.dumps(name)}: {dataset.load.__name__},\n" for name, dataset in datasets.BUILTIN.items()
    ) + "}"
    doc = _DOC.format(name=json.dumps(project.graph.name), builtin=", ".join(datasets.BUILTIN))
    return python_source(
        project.graph,
        reformat=reformat,
        docstring=doc.replace("{script}", "train.py"),
        imports=_IMPORTS,
        after=[
            constants,
            _optimizer_function(settings["optimizer"], settings["learning_rate_schedule"]),
            _callbacks_function(settings["callbacks"]),
            *loaders,
            builtin,
            _RUNNER,
        ],
        main=_MAIN,
    )


def _optimizer_function(spec: dict[str, Any], schedule: dict[str, Any] | None) -> str:
    config = dict(spec["config"])
    arguments = [f"{key}={_literal(value)}" for key, value in config.items() if not (schedule and key == "learning_rate")]
    if schedule is not None:
        arguments.insert(0, f"learning_rate={_call('keras.optimizers.schedules', schedule)}")
    return (
        "def make_optimizer() -> keras.optimizers.Optimizer:\n"
        f"    return keras.optimizers.{spec['class_name']}({', '.join(arguments)})"
    )


def _callbacks_function(callbacks: dict[str, dict[str, Any]]) -> str:
    made = []
    for key, config in callbacks.items():
        if key == "backup_and_restore":
            config = {"double_checkpoint": True, **config}  # as the app runs it
        made.append(f"        {_call('keras.callbacks', {'class_name': CALLBACKS[key], 'config': config})},")
    body = "\n".join(made)
    return (
        "def make_callbacks() -> list[keras.callbacks.Callback]:\n"
        + (f"    return [\n{body}\n    ]" if made else "    return []")
    )


def _call(module: str, spec: dict[str, Any]) -> str:
    arguments = ", ".join(f"{key}={_literal(value)}" for key, value in spec["config"].items())
    return f"{module}.{spec['class_name']}({arguments})"


def _literal(value: Any) -> str:
    """A Python literal of checked JSON data (strings, numbers, booleans, None, lists)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} values")
