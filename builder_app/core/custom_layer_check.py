"""Checking a custom layer the user writes in the app: the walk-through's three pitfalls, named.

Keras's guide to writing layers warns about three things: pass ``**kwargs`` (the
``name``) to the base class, implement ``get_config``, and load a saved model with
``custom_objects`` (or register the class). :func:`check_source` runs the code (it
is the user's own, typed in the app: running it is the point), instantiates each
layer class, calls it on a symbolic input, round-trips ``get_config`` /
``from_config``, and reports what fails, naming the pitfall behind it. No Qt here.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass
from typing import Any

from builder_app.core.custom_code import CodeFile, CustomCodeError, class_names

PITFALL_KWARGS = "pass **kwargs (the name) through: def __init__(self, ..., **kwargs): super().__init__(**kwargs)"
PITFALL_CONFIG = "implement get_config() returning every __init__ argument: {**super().get_config(), ...}"
PITFALL_CUSTOM_OBJECTS = (
    "a saved model loads only with custom_objects={...} unless the class is registered: "
    "decorate it with @keras.saving.register_keras_serializable()"
)

TEMPLATE = '''"""My custom layers."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="my_layers")
class Scale(keras.layers.Layer):
    """Multiplies its input by a learned factor per feature."""

    def __init__(self, initial=1.0, **kwargs):
        super().__init__(**kwargs)  # the name, dtype and trainable reach the base class
        self.initial = initial

    def build(self, input_shape):
        self.factor = self.add_weight(
            shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.initial), name="factor"
        )

    def call(self, inputs):
        return inputs * ops.cast(self.factor, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}
'''

GROUP_NORMALIZATION_EXAMPLE = '''"""GroupNormalization written as a custom layer, as Keras's walk-through does."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="examples")
class GroupNorm(keras.layers.Layer):
    """Normalizes each group of channels of a channels-last input."""

    def __init__(self, groups=4, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(f"{channels} channels do not split into {self.groups} groups")
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        grouped = ops.reshape(inputs, (*shape[:-1], self.groups, channels // self.groups))
        axes = tuple(range(1, len(inputs.shape) - 1)) + (len(inputs.shape),)
        mean = ops.mean(grouped, axis=axes, keepdims=True)
        variance = ops.var(grouped, axis=axes, keepdims=True)
        normalized = (grouped - mean) / ops.sqrt(variance + self.epsilon)
        return ops.reshape(normalized, shape) * self.gamma + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon}
'''


@dataclass(frozen=True)
class Finding:
    """One line of a check: ``ok`` lines say what worked, the others what did not and why."""

    class_name: str
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"{'ok' if self.ok else 'problem'}: {self.class_name}: {self.message}"


def check_source(file: CodeFile, input_shape: tuple[int | None, ...] = (None, 8, 8, 8)) -> list[Finding]:
    """Runs ``file`` and checks every layer class in it (see the module docstring).

    Args:
        file: The code, as the editor holds it.
        input_shape: The symbolic input each layer is called on (batch first).

    Raises:
        CustomCodeError: The code is not valid Python or raises when run (one line).
    """
    from builder_app.core import keras_compat
    from builder_app.core.custom_code import _code_line, _one_line

    keras = keras_compat.import_keras()
    class_names(file)
    module = types.ModuleType(f"_check_{file.module}")
    filename = f"<{file.name}>"
    try:
        exec(compile(file.text, filename, "exec"), module.__dict__)  # noqa: S102 - the user's own code
    except Exception as exc:  # noqa: BLE001 - anything the code raises, in one line
        raise CustomCodeError(f"{file.name}{_code_line(exc, filename)}: {_one_line(exc)}") from None
    classes = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer) and obj.__module__ == module.__name__
    ]
    if not classes:
        return [Finding("", False, "the file defines no keras.layers.Layer subclass")]
    findings: list[Finding] = []
    for cls in classes:
        findings += _check_class(keras, cls, input_shape)
    return findings


def _check_class(keras, cls: type, input_shape) -> list[Finding]:
    from builder_app.core.custom_code import _one_line

    name = cls.__name__
    found: list[Finding] = []
    signature = inspect.signature(cls.__init__)
    params = list(signature.parameters.values())[1:]
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    required = {p.name: 1 for p in params if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    try:
        layer = cls(**required, name="probe_layer")
    except TypeError as exc:
        why = PITFALL_KWARGS if not takes_kwargs or "name" in str(exc) else _one_line(exc)
        return [Finding(name, False, f"cannot be made with a name: {why}")]
    except Exception as exc:  # noqa: BLE001 - the user's __init__
        return [Finding(name, False, f"__init__ raised {_one_line(exc)}")]
    if layer.name != "probe_layer":
        found.append(Finding(name, False, f"the name given was lost: {PITFALL_KWARGS}"))
    else:
        found.append(Finding(name, True, "made with a name (**kwargs reach the base class)"))
    called = False
    try:
        output = layer(keras.Input(batch_shape=input_shape))
        shapes = [tuple(t.shape) for t in keras.tree.flatten(output)]
        found.append(Finding(name, True, f"called on {input_shape}: output {', '.join(map(str, shapes))}"))
        called = True
    except Exception as exc:  # noqa: BLE001 - the user's build/call
        found.append(Finding(name, False, f"calling it on {input_shape} raised {_one_line(exc)}"))
    if called:
        found.append(_reload_finding(keras, cls, required, input_shape))
    config: dict[str, Any] = {}
    try:
        config = layer.get_config()
        missing = [p for p in required if p not in config]
        if missing:
            raise TypeError(f"get_config() lacks {', '.join(missing)}")
        rebuilt = cls.from_config(config)
        again = rebuilt.get_config()
        if again != config:
            differ = sorted(k for k in set(config) | set(again) if config.get(k) != again.get(k))
            raise TypeError(f"from_config(get_config()) gives other values for {', '.join(differ)}")
        found.append(Finding(name, True, "get_config() / from_config() round-trip"))
    except Exception as exc:  # noqa: BLE001 - the user's get_config/from_config
        found.append(Finding(name, False, f"{_one_line(exc)}: {PITFALL_CONFIG}"))
    if keras.saving.get_registered_name(cls) == cls.__name__:
        found.append(Finding(name, False, f"not registered: {PITFALL_CUSTOM_OBJECTS}"))
    else:
        found.append(Finding(name, True, f"registered as {keras.saving.get_registered_name(cls)!r}"))
    return found


def _reload_finding(keras, cls: type, required: dict, input_shape) -> Finding:
    """Saves a one-layer model and loads it back (with ``custom_objects``): are its weights there?"""
    import tempfile
    import warnings
    from pathlib import Path

    import numpy as np

    from builder_app.core.custom_code import _one_line

    name = cls.__name__
    try:
        x = keras.Input(batch_shape=input_shape)
        model = keras.Model(x, cls(**required, name="probe_layer")(x))
        with tempfile.TemporaryDirectory(prefix="builder-app-layer-check-") as scratch:
            path = Path(scratch) / "probe.keras"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.save(path)
                loaded = keras.saving.load_model(path, custom_objects={name: cls}, compile=False)
        before, after = model.get_weights(), loaded.get_weights()
        if len(before) != len(after) or any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True)):
            raise ValueError("the reloaded model's weights differ")
    except Exception as exc:  # noqa: BLE001 - the user's layer, saved and loaded by Keras
        return Finding(name, False, f"a saved model does not reload it ({_one_line(exc)[:160]}): "
                       "create every weight in build(), building sublayers there too")
    return Finding(name, True, f"a saved model reloads it with its {len(after)} weight(s)")
