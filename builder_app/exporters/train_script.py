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
from builder_app.core.training_settings import resolve
from builder_app.exporters.python_code import python_source

_DOC = """Trains the Keras model {name} as its project's training settings say.

    python {{script}} [--data SPEC] [--epochs N] [--batch-size N]
        [--strategy {{default,mirrored,multiworker}}] [--save MODEL.keras]

SPEC is a built-in dataset ({builtin}) or an .npz file holding
the inputs as x (x0, x1, ... for several inputs) and the targets as y (y0, y1, ...
for several outputs). --strategy mirrored trains on all GPUs of this machine
(tf.distribute.MirroredStrategy); multiworker trains across machines
(tf.distribute.MultiWorkerMirroredStrategy, configured on each worker by the
TF_CONFIG environment variable); both need the TensorFlow backend. --batch-size
is the global batch, split across the replicas. Written by builder-app."""

_IMPORTS = ("import argparse", "import contextlib", "import sys", "", "import keras", "import numpy as np")

_RUNNER = '''
def load_data(spec: str, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Inputs and targets of a built-in dataset or an .npz file, as lists of arrays."""
    if spec in BUILTIN:
        x, y = BUILTIN[spec](seed)
        return [x], [y]
    with np.load(spec, allow_pickle=False) as data:
        return _arrays(data, "x", spec), _arrays(data, "y", spec)


def _arrays(data, key: str, spec: str) -> list[np.ndarray]:
    if key in data.files:
        return [data[key]]
    numbered = []
    while f"{key}{len(numbered)}" in data.files:
        numbered.append(data[f"{key}{len(numbered)}"])
    if not numbered:
        sys.exit(f"{spec}: no array named {key} (or {key}0, {key}1, ...)")
    return numbered


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
    parser.add_argument("--data", default=DATA, help="a built-in dataset or an .npz file")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default")
    parser.add_argument("--save", metavar="MODEL.keras", help="where to save the trained model")
    args = parser.parse_args(argv)
    # First: MultiWorkerMirroredStrategy must start before any other TensorFlow work.
    strategy = make_strategy(args.strategy)
    if args.data is None:
        parser.error(f"say which data to train on: --data {{{','.join(BUILTIN)}}} or --data FILE.npz")
    keras.utils.set_random_seed(SEED)
    xs, ys = load_data(args.data, SEED)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model()
        model.compile(optimizer=make_optimizer(), loss=LOSS, metrics=METRICS)
    if len(xs) != len(model.inputs) or len(ys) != len(model.outputs):
        sys.exit(
            f"the model takes {len(model.inputs)} input(s) and gives {len(model.outputs)} output(s); "
            f"the data holds {len(xs)} input array(s) and {len(ys)} target array(s)"
        )
    history = model.fit(
        xs[0] if len(xs) == 1 else xs,
        ys[0] if len(ys) == 1 else ys,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_split=VALIDATION_SPLIT,
        shuffle=SHUFFLE,
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
    data = settings["data"]
    data_spec = None if data is None else data["name"] if data["source"] == "builtin" else data["path"]
    single = len(settings["loss"]) == 1
    constants = "\n".join(
        [
            f"DATA = {_literal(data_spec)}",
            f"EPOCHS = {settings['epochs']}",
            f"BATCH_SIZE = {settings['batch_size']}",
            f"VALIDATION_SPLIT = {_literal(float(settings['validation_split']))}",
            f"SHUFFLE = {settings['shuffle']}",
            f"SEED = {settings['seed']}",
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
        after=[constants, _optimizer_function(settings["optimizer"]), *loaders, builtin, _RUNNER],
        main=_MAIN,
    )


def _optimizer_function(spec: dict[str, Any]) -> str:
    arguments = ", ".join(f"{key}={_literal(value)}" for key, value in spec["config"].items())
    return (
        "def make_optimizer() -> keras.optimizers.Optimizer:\n"
        f"    return keras.optimizers.{spec['class_name']}({arguments})"
    )


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
    raise TypeError(f"cannot write {type(value).__name__} values")
