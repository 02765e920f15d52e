"""Project -> a standalone training script: the model, its data, compile and fit.

The script is the exported model code (:mod:`builder_app.exporters.python_code`)
plus the project's training settings (:mod:`builder_app.core.training_settings`),
the built-in dataset loaders (their very source), the app's own data loading and
splitting (:mod:`builder_app.core.portable_data`, copied with ``inspect.getsource``:
the script sets the same validation samples aside as ``builder-app train``), and a
``--strategy`` switch over ``tf.distribute``: MirroredStrategy for the GPUs of one
machine, MultiWorkerMirroredStrategy across machines through ``TF_CONFIG``, and on
JAX Keras's own ``keras.distribution.DataParallel`` over the local devices. It
imports nothing from ``builder_app``. Every value written into it has been checked
against what Keras provides (:func:`builder_app.core.training_settings.resolve`), so
a project file cannot smuggle code into the script.

Everything is laid out by :mod:`builder_app.exporters.code_printer`: the script
passes ``ruff format --check`` and ``ruff check`` (this project's rules and ruff's
defaults) as written.
"""

from __future__ import annotations

import inspect
from typing import Any

from builder_app.core import datasets
from builder_app.core import portable_data as portable
from builder_app.core.project import Project
from builder_app.core.training_settings import CALLBACKS, resolve
from builder_app.exporters import code_printer
from builder_app.exporters.code_printer import Call, Kw, Pair, Seq, literal
from builder_app.exporters.python_code import python_source

_DOC = """Trains the Keras model {name}as its project's training settings say.

    python {script} [--data SPEC] [--epochs N] [--batch-size N]
        [--strategy {{default,mirrored,multiworker,jax-data-parallel}}]
        [--save MODEL.keras]

SPEC is a built-in dataset ({builtin}), a Keras dataset (mnist,
fashion_mnist, cifar10), an .npz file holding the inputs as x (x0, x1, ... for
several inputs) and the targets as y (y0, y1, ...), X.npy,Y.npy, F.csv:TARGET or
an image folder (one sub-folder per class). Validation data is set aside as the
app does it: the last part after a seeded shuffle. --strategy mirrored trains on
all GPUs of this machine (tf.distribute.MirroredStrategy); multiworker trains
across machines (tf.distribute.MultiWorkerMirroredStrategy, configured on each
worker by the TF_CONFIG environment variable); both need the TensorFlow backend.
--strategy jax-data-parallel (KERAS_BACKEND=jax) splits each batch across the
local devices (keras.distribution.DataParallel; on a CPU, XLA_FLAGS=
--xla_force_host_platform_device_count=N makes N devices). --batch-size is the
global batch, split across the replicas. Written by builder-app.
"""

_IMPORTS = ("import argparse", "import contextlib", "import sys", *portable.SCRIPT_IMPORTS)

_RUNNER = '''
def make_strategy(name: str):
    """The tf.distribute strategy to train under, or None for Keras's default."""
    if name == "default":
        return None
    if name == "jax-data-parallel":
        if keras.backend.backend() != "jax":
            sys.exit(f"--strategy {name} needs the JAX backend (KERAS_BACKEND=jax)")
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        print(f"data-parallel over {len(devices)} devices: {', '.join(devices)}")
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
    if resolver is None or not resolver.task_type or resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def evenly(arrays: list, parts: int) -> list:
    """The arrays without their last samples, so that every batch splits evenly across the devices."""
    return [a[: len(a) - len(a) % parts] for a in arrays]


def one(arrays: list):
    """One array as itself, several as a list (what model.fit takes)."""
    return arrays[0] if len(arrays) == 1 else arrays


def main(argv: list[str] | None = None) -> keras.callbacks.History:
    """Trains the model as the arguments and the project's settings say."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        help="a built-in or Keras dataset, F.npz, X.npy,Y.npy, F.csv:TARGET or an image folder",
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multiworker", "jax-data-parallel"),
        default="default",
    )
    parser.add_argument("--save", metavar="MODEL.keras", help="where to save the trained model")
    args = parser.parse_args(argv)
    # First: MultiWorkerMirroredStrategy must start before any other TensorFlow work.
    strategy = make_strategy(args.strategy)
    # DataParallel shards every batch: each holds a whole number of samples per device.
    parts = len(keras.distribution.list_devices()) if args.strategy == "jax-data-parallel" else 1
    if args.batch_size % parts:
        parser.error(f"--batch-size {args.batch_size} must be a multiple of the {parts} devices")
    try:
        data = parse_spec(args.data, BUILTIN) if args.data else DATA
    except DataError as exc:
        parser.error(str(exc))
    if data is None:
        parser.error(
            f"say which data to train on: --data {{{','.join(BUILTIN)}}} or --data FILE.npz"
        )
    keras.utils.set_random_seed(SEED)
    if MIXED_PRECISION:
        keras.mixed_precision.set_global_policy("mixed_float16")
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model()
        model.compile(optimizer=make_optimizer(), loss=LOSS, metrics=METRICS)
    shapes = [tuple(tensor.shape) for tensor in model.inputs]
    try:
        xs, ys, _, _ = load_arrays(data, SEED, shapes, BUILTIN)
        if VALIDATION is not None:
            train, held = shuffled_order(len(xs[0]), SHUFFLE, SEED), None
            validation = load_arrays(VALIDATION, SEED, shapes, BUILTIN)[:2]
        else:
            train, held = split_indices(len(xs[0]), VALIDATION_SPLIT, SHUFFLE, SEED)
            validation = None
    except DataError as exc:
        sys.exit(str(exc))
    if len(xs) != len(model.inputs) or len(ys) != len(model.outputs):
        sys.exit(
            f"the model takes {len(model.inputs)} input(s) and gives {len(model.outputs)} "
            f"output(s); the data holds {len(xs)} input array(s) and {len(ys)} target array(s)"
        )
    if held is not None:
        validation = ([a[held] for a in xs], [a[held] for a in ys])
    if validation:
        validation = (evenly(validation[0], parts), evenly(validation[1], parts))
    history = model.fit(
        one(evenly([a[train] for a in xs], parts)),
        one(evenly([a[train] for a in ys], parts)),
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


def training_script(project: Project) -> str:
    """The training script's source.

    Raises:
        CodegenError: The model cannot be written as code.
        SettingsError: The training settings are unusable (the message says which).
    """
    settings = resolve(project.training, project.graph)
    single = len(settings["loss"]) == 1
    constants = [
        ("DATA", settings["data"]),
        ("VALIDATION", settings["validation"]),
        ("EPOCHS", settings["epochs"]),
        ("BATCH_SIZE", settings["batch_size"]),
        ("VALIDATION_SPLIT", float(settings["validation_split"])),
        ("SHUFFLE", settings["shuffle"]),
        ("SEED", settings["seed"]),
        ("MIXED_PRECISION", settings["mixed_precision"]),
        ("LOSS", settings["loss"][0] if single else settings["loss"]),
        ("METRICS", settings["metrics"][0] if single else settings["metrics"]),
        ("KERAS_DATASETS", portable.KERAS_DATASETS),
    ]
    constant_lines = [
        line for name, value in constants for line in _statement(name, literal(value))
    ]
    loaders = [dataset.source().strip() for dataset in datasets.BUILTIN.values()]
    builtin = Seq(
        "{",
        [Pair(code_printer.string(name), d.load.__name__) for name, d in datasets.BUILTIN.items()],
        "}",
    )
    name = project.graph.name
    doc = _DOC.format(
        name=f'"{name}" ' if _plain(name) else "",
        script="train.py",
        builtin=", ".join(datasets.BUILTIN),
    )
    from builder_app.core.io_structure import positional

    return python_source(
        positional(project.graph),  # the script feeds x0, x1, ... and y0, y1, ... in the app's order
        docstring=doc,
        imports=_IMPORTS,
        after=[
            "\n".join(constant_lines),
            _optimizer_function(settings["optimizer"], settings["learning_rate_schedule"]),
            _callbacks_function(settings["callbacks"]),
            *loaders,
            "\n".join(_statement("BUILTIN", builtin)),
            *(inspect.getsource(part).strip() for part in portable.SCRIPT_PARTS),
            _RUNNER,
        ],
        main=_MAIN,
    )


def _statement(target: str, expr: Any, depth: int = 0) -> list[str]:
    return code_printer.statement(target, expr, depth)


def _plain(text: str) -> bool:
    return text.isprintable() and not any(c in text for c in '"\\')


def _optimizer_function(spec: dict[str, Any], schedule: dict[str, Any] | None) -> str:
    config = dict(spec["config"])
    arguments: list[Any] = [
        Kw(key, literal(value))
        for key, value in config.items()
        if not (schedule and key == "learning_rate")
    ]
    if schedule is not None:
        arguments.insert(0, Kw("learning_rate", _call("keras.optimizers.schedules", schedule)))
    body = _statement("return", Call(f"keras.optimizers.{spec['class_name']}", arguments), 1)
    return "\n".join(
        [
            "def make_optimizer() -> keras.optimizers.Optimizer:",
            '    """The optimizer of the project\'s training settings."""',
            *body,
        ]
    )


def _callbacks_function(callbacks: dict[str, dict[str, Any]]) -> str:
    made = []
    for key, config in callbacks.items():
        if key == "backup_and_restore":
            config = {"double_checkpoint": True, **config}  # as the app runs it
        made.append(_call("keras.callbacks", {"class_name": CALLBACKS[key], "config": config}))
    return "\n".join(
        [
            "def make_callbacks() -> list[keras.callbacks.Callback]:",
            '    """The callbacks of the project\'s training settings."""',
            *_statement("return", Seq("[", made, "]"), 1),
        ]
    )


def _call(module: str, spec: dict[str, Any]) -> Call:
    return Call(
        f"{module}.{spec['class_name']}", [Kw(k, literal(v)) for k, v in spec["config"].items()]
    )
