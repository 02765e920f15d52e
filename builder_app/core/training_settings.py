"""A project's training settings: what they hold, their defaults, and their checks.

The settings live in the project file (``Project.training``) as plain JSON::

    {"data": {"source": "builtin", "name": "digits"}   # or {"source": "npz", "path": "train.npz"}
     "validation_split": 0.2, "shuffle": true, "batch_size": 32, "epochs": 10, "seed": 0,
     "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
     "loss": "sparse_categorical_crossentropy",        # or one per output: a list
     "metrics": ["accuracy"],                          # or one list per output
     "learning_rate_schedule": {"class_name": "CosineDecay",   # keras.optimizers.schedules
                                "config": {"initial_learning_rate": 0.001, "decay_steps": 1000}},
     "callbacks": {"early_stopping": {"monitor": "val_loss", "patience": 5},
                   "reduce_lr_on_plateau": {...}, "model_checkpoint": {"filepath": "best.keras"},
                   "terminate_on_nan": {}, "backup_and_restore": {"backup_dir": "backup"},
                   "csv_logger": {"filename": "log.csv"}, "tensorboard": {"log_dir": "logs"}},
     "validation": null,                               # or a data setting: a separate set
     "mixed_precision": false,
     "initial_weights": "continue"}                    # or "fresh": the layers' initializers

Every key is optional. A missing loss or metric list is chosen per output from
what the output layer computes (softmax: sparse categorical cross-entropy and
accuracy; a single sigmoid unit: binary cross-entropy and accuracy; anything
else: mean squared error and mean absolute error). Settings come from files, so
:func:`resolve` checks every name against what Keras itself provides: an
exported training script never contains anything else.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from typing import Any

from builder_app.core.datasets import BUILTIN
from builder_app.core.graph import ModelGraph
from builder_app.core.text import one_line

DEFAULTS: dict[str, Any] = {
    "data": None,
    "validation_split": 0.2,
    "shuffle": True,
    "batch_size": 32,
    "epochs": 10,
    "seed": 0,
    "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
    "loss": None,
    "metrics": None,
    "learning_rate_schedule": None,
    "callbacks": {"terminate_on_nan": {}},
    "validation": None,
    "mixed_precision": False,
    "initial_weights": "continue",
}

#: Where a run starts: from the weights the project holds, or from the layers' initializers.
INITIAL_WEIGHTS = ("continue", "fresh")

#: Callback settings -> the keras.callbacks class each configures.
CALLBACKS = {
    "early_stopping": "EarlyStopping",
    "reduce_lr_on_plateau": "ReduceLROnPlateau",
    "model_checkpoint": "ModelCheckpoint",
    "terminate_on_nan": "TerminateOnNaN",
    "backup_and_restore": "BackupAndRestore",
    "csv_logger": "CSVLogger",
    "tensorboard": "TensorBoard",
}


class SettingsError(ValueError):
    """The training settings are not usable; the message names the setting."""


def resolve(training: Mapping[str, Any], graph: ModelGraph) -> dict[str, Any]:
    """The complete, checked settings: the project's, with defaults for the rest.

    Raises:
        SettingsError: A setting is malformed or names something Keras lacks.
    """
    if not isinstance(training, Mapping):
        raise SettingsError("the training settings must be an object")
    unknown = sorted(set(training) - set(DEFAULTS))
    settings = {**copy.deepcopy(DEFAULTS), **copy.deepcopy(dict(training))}
    for key in unknown:
        settings.pop(key)  # settings of later versions: kept in the file, unused here
    settings["data"] = _data(settings["data"])
    for key, low in (("batch_size", 1), ("epochs", 1)):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise SettingsError(f"{key} must be a whole number of at least {low}, not {value!r}")
    for key in ("seed",):
        if not isinstance(settings[key], int) or isinstance(settings[key], bool):
            raise SettingsError(f"seed must be a whole number, not {settings[key]!r}")
    split = settings["validation_split"]
    if not isinstance(split, (int, float)) or isinstance(split, bool) or not 0 <= split < 1:
        raise SettingsError(f"validation_split must be a fraction in [0, 1), not {split!r}")
    if not isinstance(settings["shuffle"], bool):
        raise SettingsError("shuffle must be true or false")
    settings["optimizer"] = _optimizer(settings["optimizer"])
    settings["learning_rate_schedule"] = _schedule(settings["learning_rate_schedule"])
    settings["callbacks"] = _callbacks(settings["callbacks"])
    settings["validation"] = _data(settings["validation"])
    if not isinstance(settings["mixed_precision"], bool):
        raise SettingsError("mixed_precision must be true or false")
    if settings["initial_weights"] not in INITIAL_WEIGHTS:
        raise SettingsError(f"initial_weights must be \"continue\" or \"fresh\", not {settings['initial_weights']!r}")
    outputs = _output_kinds(graph)
    settings["loss"] = _per_output("loss", settings["loss"], outputs, _default_loss, _check_loss)
    settings["metrics"] = _per_output("metrics", settings["metrics"], outputs, _default_metrics, _check_metrics)
    return settings


def output_losses(training: Mapping[str, Any], graph: ModelGraph) -> list[Any] | None:
    """The loss of each model output as :func:`resolve` chooses it, without importing Keras.

    The names are not checked against Keras (the training child does that); None
    when the loss setting is malformed.
    """
    try:
        return _per_output("loss", training.get("loss"), _output_kinds(graph), _default_loss, lambda entry: None)
    except SettingsError:
        return None


#: Data sources: the keys each one needs (all text) and those it may have.
_SOURCES = {
    "builtin": (("name",), ()),
    "keras": (("name",), ()),
    "npz": (("path",), ()),
    "npy": (("x", "y"), ()),
    "csv": (("path", "target"), ()),
    "images": (("path",), ("image_size",)),
}
_KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")


def _data(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise SettingsError("data must be an object such as {\"source\": \"builtin\", \"name\": \"digits\"}")
    source = spec.get("source")
    if source not in _SOURCES:
        raise SettingsError(f"data: unknown source {source!r} (known: {', '.join(_SOURCES)})")
    needed, optional = _SOURCES[source]
    for key in needed:
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise SettingsError(f"data: a {source} source needs a '{key}'")
    unknown = sorted(set(spec) - {"source", *needed, *optional})
    if unknown:
        raise SettingsError(f"data: a {source} source takes no {unknown[0]!r}")
    if source == "builtin" and spec["name"] not in BUILTIN:
        raise SettingsError(f"data: unknown built-in dataset {spec['name']!r} (known: {', '.join(BUILTIN)})")
    if source == "keras" and spec["name"] not in _KERAS_DATASETS:
        raise SettingsError(f"data: unknown Keras dataset {spec['name']!r} (known: {', '.join(_KERAS_DATASETS)})")
    size = spec.get("image_size")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(isinstance(d, int) and d > 0 for d in size)
    ):
        raise SettingsError("data: image_size must be [height, width]")
    return dict(spec)


def _optimizer(spec: Any) -> dict[str, Any]:
    import keras

    checked = _keras_object(spec, keras.optimizers, keras.optimizers.Optimizer, "optimizer")
    # Not made here: an optimizer creates variables, which would start TensorFlow's
    # devices in the app's process. Every argument with a number as its default
    # takes a number (none of them takes anything else).
    _check_numbers(getattr(keras.optimizers, checked["class_name"]), checked["config"], "optimizer", set())
    return checked


#: Schedule arguments that take a number although they have no number as default.
_SCHEDULE_NUMBERS = {"initial_learning_rate", "decay_steps", "first_decay_steps", "decay_rate", "warmup_target"}


def _schedule(spec: Any) -> dict[str, Any] | None:
    import keras

    if spec is None:
        return None
    module = keras.optimizers.schedules
    checked = _keras_object(spec, module, module.LearningRateSchedule, "learning_rate_schedule")
    cls = getattr(module, checked["class_name"])
    _check_numbers(cls, checked["config"], "learning_rate_schedule", _SCHEDULE_NUMBERS)
    _construct(cls, checked["config"], "learning_rate_schedule")  # plain Python: Keras checks the rest
    return checked


def _callbacks(spec: Any) -> dict[str, dict[str, Any]]:
    import keras

    if not isinstance(spec, Mapping):
        raise SettingsError("callbacks must be an object such as {\"early_stopping\": {\"patience\": 5}}")
    checked = {}
    for key, config in spec.items():
        if key not in CALLBACKS:
            raise SettingsError(f"callbacks: unknown callback {key!r} (known: {', '.join(CALLBACKS)})")
        if config is None:
            continue  # switched off
        item = {"class_name": CALLBACKS[key], "config": config}
        checked[key] = _keras_object(item, keras.callbacks, keras.callbacks.Callback, f"callbacks.{key}")["config"]
        # Making a callback touches nothing yet (no files, no devices); Keras checks
        # its arguments, e.g. a checkpoint path must end in .keras or .weights.h5.
        _construct(getattr(keras.callbacks, CALLBACKS[key]), checked[key], f"callbacks.{key}")
    return checked


def arguments(cls: type) -> dict[str, inspect.Parameter]:
    """The arguments a settings entry may give ``cls`` (a Keras class), by name, in order.

    ``name`` is left out: the app names nothing it makes.
    """
    return {
        name: parameter
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "name")
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _check_numbers(cls: type, config: Mapping[str, Any], where: str, numbers: set[str]) -> None:
    for key, parameter in arguments(cls).items():
        if key not in config:
            continue
        value = config[key]
        default = parameter.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise SettingsError(f"{where}: {key} must be true or false, not {value!r}")
        elif (isinstance(default, (int, float)) or key in numbers) and not _is_number(value):
            if value is None and default is None:
                continue
            raise SettingsError(f"{where}: {key} must be a number, not {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _construct(cls: type, config: Mapping[str, Any], where: str) -> None:
    try:
        cls(**config)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{where}: {one_line(exc)}") from None


def _keras_object(spec: Any, module, base: type, where: str) -> dict[str, Any]:
    """``{"class_name", "config"}`` naming a public class of ``module`` with literal arguments."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("class_name"), str):
        raise SettingsError(f"{where} must be an object with a 'class_name'")
    name = spec["class_name"]
    cls = getattr(module, name, None)
    if name.startswith("_") or not (inspect.isclass(cls) and issubclass(cls, base)) or cls is base:
        raise SettingsError(f"{where}: {name!r} is not a {module.__name__} class")
    config = spec.get("config", {})
    if not isinstance(config, Mapping):
        raise SettingsError(f"{where}: 'config' must be an object")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs", "args"}
    for key, value in config.items():
        if key not in accepted:
            raise SettingsError(f"{where}: {name} takes no argument {key!r}")
        if not _is_literal(value):
            raise SettingsError(f"{where}: {key} must be a number, text, true/false or a list of them")
    for key, parameter in arguments(cls).items():
        if parameter.default is inspect.Parameter.empty and key not in config:
            raise SettingsError(f"{where}: {name} needs a value for {key!r}")
    return {"class_name": name, "config": dict(config)}


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_literal(v) for v in value)
    return False


def _output_kinds(graph: ModelGraph) -> list[tuple[str, str]]:
    """(output layer name, what it computes: "softmax", "sigmoid1" or "other") per model output."""
    kinds = []
    for ref in graph.model_outputs():
        layer = graph.layer_of(ref.node)
        activation = layer.config.get("activation")
        if layer.class_name == "Softmax" or activation == "softmax":
            kind = "softmax"
        elif activation == "sigmoid" and layer.config.get("units") == 1:
            kind = "sigmoid1"
        elif activation == "sigmoid":
            kind = "sigmoid"
        else:
            kind = "other"
        kinds.append((layer.name, kind))
    return kinds


def _default_loss(kind: str) -> str:
    return {
        "softmax": "sparse_categorical_crossentropy",
        "sigmoid1": "binary_crossentropy",
        "sigmoid": "binary_crossentropy",
    }.get(kind, "mean_squared_error")


def _default_metrics(kind: str) -> list[str]:
    return ["accuracy"] if kind in ("softmax", "sigmoid1") else ["mean_absolute_error"]


def _per_output(key, value, outputs, default, check) -> list[Any]:
    """One entry per model output."""
    if value is None:
        return [default(kind) for _, kind in outputs]
    if len(outputs) == 1 and (isinstance(value, str) or (key == "metrics" and _is_name_list(value))):
        value = [value]
    if isinstance(value, Mapping):
        missing = [name for name, _ in outputs if name not in value]
        if missing:
            raise SettingsError(f"{key}: no entry for the output '{missing[0]}'")
        value = [value[name] for name, _ in outputs]
    if not isinstance(value, list) or len(value) != len(outputs):
        raise SettingsError(f"{key}: give one entry per model output ({len(outputs)})")
    for entry in value:
        check(entry)
    return value


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_loss(name: Any) -> None:
    import keras

    if not isinstance(name, str) or not _is_keras_function(keras.losses, name):
        raise SettingsError(f"loss: {name!r} is not a Keras loss")


def _check_metrics(names: Any) -> None:
    import keras

    if not _is_name_list(names):
        raise SettingsError("metrics: each output takes a list of metric names")
    for name in names:
        if name not in ("accuracy", "acc", "crossentropy", "ce") and not _is_keras_function(keras.metrics, name):
            raise SettingsError(f"metrics: {name!r} is not a Keras metric")


def _is_keras_function(module, name: str) -> bool:
    """``name`` is a public function or class of ``module`` (looked up, never imported)."""
    return name.isidentifier() and not name.startswith("_") and callable(getattr(module, name, None))
