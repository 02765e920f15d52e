"""The config security check: a layer config from a file, validated before Keras sees it.

Configs come from user files, and Keras deserialization of an arbitrary
``{"module": ..., "class_name": ...}`` dict can import code. :func:`check_config`
validates a config against what the catalog knows (its layer classes, their
signatures, the identifiers Keras resolves) and never imports anything a config names.
A constant array (``__tensor__``, ``__numpy__``) is read as plain numbers, bounded by
:data:`builder_app.core.calls.MAX_CONSTANT_ELEMENTS`.
"""

from __future__ import annotations

import functools
import inspect
import re
import warnings
from typing import Any

from builder_app.core import custom_code
from builder_app.core.calls import CONSTANT_KINDS, constant_problem, marker_refusal
from builder_app.core.catalog import (
    ACTIVATION,
    ANY,
    BOOL,
    CHOICE,
    CONSTRAINT,
    DTYPE,
    EXCLUDED,
    INITIALIZER,
    LAYER,
    LIST,
    REGULARIZER,
    _accepted,
    _accepts_kwargs,
    _derive_default_config,
    _dtype_names,
    _dtype_policy_classes,
    _identifiers,
    _keras,
    _layer_classes,
    _nested_params,
    _quantizer_classes,
    _resolve,
    _signature_params,
    _specs,
    _starting_kwargs,
    input_spec,
)

_MAX_DEPTH = 32
# Serialized objects whose deserialization runs code or decodes arbitrary bytes.
_FORBIDDEN_CLASS_NAMES = {"__lambda__", "function", "__bytes__"}
# How Python and Keras's Layer reject a keyword argument.
_REJECTED_KWARG = re.compile(r"unexpected keyword|multiple values|Unrecognized keyword")
_QUANTIZED_DTYPE = re.compile(r"^(int8|float8|int4|gptq|awq)_from_[a-z0-9_]+$")


def _known(name: Any, names: frozenset[str]) -> bool:
    return isinstance(name, str) and name in names


def _is_keras_module(module: Any) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


@functools.cache
def _accepted_names(name: str) -> frozenset[str]:
    """Config keys the Keras class accepts, probed from the installed Keras.

    The catalog derives it once per Keras (it is cached with the catalog); the
    check reads that, through ``catalog._accepted``, without importing Keras.

    The layer's own signature, the keys its get_config() writes, names its
    ``__init__`` pops from ``**kwargs``, Layer's base arguments, and arguments of
    base classes that ``**kwargs`` reaches (probed by construction, since a
    subclass may pass some of them itself).
    """
    keras = _keras()
    cls = _layer_classes()[0][name]
    names = {p.name for p in _signature_params(cls)}
    names |= set(_derive_default_config(name) or ())
    if not _accepts_kwargs(cls):
        return frozenset(names)
    popped = re.compile(r"kwargs\.pop\(\s*[\"'](\w+)[\"']")
    parents = set()
    for base in cls.__mro__:
        if "__init__" in vars(base):
            try:
                names |= set(popped.findall(inspect.getsource(base.__init__)))
            except (OSError, TypeError):
                pass
            if base is not cls:
                parents |= {p.name for p in _signature_params(base)}
        if base is keras.layers.Layer:
            break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for candidate in sorted(parents - names):
            try:
                cls(**{**_starting_kwargs(name, cls), candidate: None})
            except Exception as exc:  # noqa: BLE001 - Keras raises many types
                if _REJECTED_KWARG.search(str(exc)):
                    continue
                # Otherwise the argument got through and only None was wrong.
            names.add(candidate)
    return frozenset(names)


class _Checker:
    """Collects problems while walking one config."""

    def __init__(self):
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    # -- layers ---------------------------------------------------------- #

    def layer_config(self, where: str, class_name: Any, config: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.add(where, "nested too deeply")
            return
        if not isinstance(class_name, str):
            self.add(where, f"layer class name must be a string, not {class_name!r}")
            return
        name = _resolve(class_name)
        if name not in _specs():  # the describable classes of keras.layers
            reason = EXCLUDED.get(name)
            self.add(where, f"{class_name} is not supported: {reason}" if reason
                     else f"unknown layer class {class_name!r}")
            return
        if not isinstance(config, dict):
            self.add(where, f"the config of {class_name} must be an object")
            return
        spec = input_spec() if name == "InputLayer" else _specs()[name]
        accepted = _accepted(name)
        kinds = {p.name: p for p in spec.params}
        for param in spec.params:
            if param.required and param.name not in config:
                self.add(where, f"{class_name} needs the parameter {param.name!r}")
        for key, value in config.items():
            at = f"{where}.{key}" if where else str(key)
            if key not in accepted:
                self.add(where, f"unknown parameter {key!r} for {class_name}")
                self.scan(at, value, depth + 1)
                continue
            param = kinds.get(key)
            self.value(at, param.kind if param else ANY, value, depth + 1, param)

    def nested_layer(self, where: str, value: Any, depth: int) -> None:
        if value is None:
            return
        if not isinstance(value, dict) or "class_name" not in value:
            self.add(where, "must be a serialized Keras layer")
            return
        fields = self.fields(where, value)
        if fields is None:
            return
        module = fields[0] or "keras.layers"  # legacy configs omit it
        if module != "keras.layers":
            self.add(where, f"layer module {module!r} is not keras.layers")
            return
        if not self.registered_name_ok(where, value):
            return
        self.layer_config(where, value["class_name"], value.get("config", {}), depth + 1)

    # -- values by kind -------------------------------------------------- #

    def value(self, where: str, kind: str, value: Any, depth: int, param=None) -> None:
        if kind == ACTIVATION:
            self.activation(where, value, depth)
        elif kind in (INITIALIZER, REGULARIZER, CONSTRAINT):
            self.keras_object(where, kind, value, depth)
        elif kind == DTYPE:
            self.dtype(where, value, depth)
        elif kind == LAYER:
            self.nested_layer(where, value, depth)
        elif where.rpartition(".")[2] == "cells" and isinstance(value, list):
            for i, item in enumerate(value):
                self.nested_layer(f"{where}[{i}]", item, depth)
        else:
            if kind == BOOL and not isinstance(value, bool) and not (
                value is None and param is not None and param.nullable
            ):
                self.add(where, f"must be true or false, not {value!r}")
            elif kind == CHOICE and param is not None and isinstance(value, str):
                allowed = [c for c in param.choices or () if isinstance(c, str)]
                if allowed and value.lower() not in allowed:
                    self.add(where, f"{value!r} is not one of {', '.join(allowed)}")
            elif kind == LIST and isinstance(value, str):
                # Keras reads a string vocabulary (idf_weights, ...) as a file
                # path (CVE-2025-12058): a config must never make us read a file.
                self.add(where, f"names a file ({value[:80]!r}); give the values as a list, files are not read")
                return
            self.scan(where, value, depth)

    def activation(self, where: str, value: Any, depth: int) -> None:
        if value is None:
            return

        def reject(shown: Any) -> None:
            # Reads as "activation 'os.system' is not a Keras activation".
            self.problems.append(f"{where or 'activation'} {shown!r} is not a Keras activation")

        if isinstance(value, str):
            if value not in _identifiers(ACTIVATION):
                reject(value)
            return
        if not isinstance(value, dict):
            reject(value)
            return
        if self.custom(where, ACTIVATION, value, depth):
            return
        fields = self.fields(where, value)
        if fields is None:
            return
        module, class_name = fields
        if module == "keras.layers":  # an activation layer, e.g. ReLU(max_value=6)
            self.nested_layer(where, value, depth)
        elif module == "keras.activations" and class_name == "function":
            # Keras's own form for a public function: looked up by name only.
            names = [value.get("config"), value.get("registered_name")]
            unknown = [n for n in names if n is not None and not _known(n, _identifiers(ACTIVATION))]
            if unknown or names == [None, None]:
                reject(unknown[0] if unknown else value)
        elif module == "keras.activations" and class_name in _identifiers(ACTIVATION):
            self.scan(where, value.get("config"), depth)
        else:
            reject(f"{module}.{class_name}" if module else class_name)

    def keras_object(self, where: str, kind: str, value: Any, depth: int) -> None:
        if value is None:
            return
        if isinstance(value, str):
            if not _known(value, _identifiers(kind)):
                self.add(where, f"unknown {kind} {value!r}")
            return
        if not isinstance(value, dict) or "class_name" not in value:
            self.add(where, f"{value!r} is not a Keras {kind}")
            return
        if self.custom(where, kind, value, depth):
            return
        fields = self.fields(where, value)
        if fields is None:
            return
        module, class_name = fields
        expected = f"keras.{kind}s"
        if module is not None and module != expected:
            self.add(where, f"{kind} module {module!r} is not {expected}")
            return
        if class_name not in _identifiers(kind):
            self.add(where, f"unknown {kind} class {class_name!r}")
            return
        if not self.registered_name_ok(where, value):
            return
        config = value.get("config")
        config = {} if config is None else config
        if not isinstance(config, dict):
            self.add(where, f"the config of {class_name} must be an object")
            return
        params = _nested_params(kind).get(class_name)
        if params is not None:
            allowed = {p.name for p in params}
            for key in config:
                if key not in allowed:
                    self.add(where, f"unknown argument {key!r} for {class_name}")
        self.scan(where, config, depth)

    def dtype(self, where: str, value: Any, depth: int) -> None:
        if value is None:
            return
        if isinstance(value, str):
            if not self.dtype_name_ok(value):
                self.add(where, f"dtype {value!r} is not a Keras dtype")
            return
        if not isinstance(value, dict):
            self.add(where, f"dtype {value!r} is not a Keras dtype")
            return
        fields = self.fields(where, value)
        if fields is None:
            return
        module, class_name = fields
        if module not in (None, "keras", "keras.dtype_policies"):
            self.add(where, f"dtype policy module {module!r} is not keras.dtype_policies")
            return
        if class_name not in _dtype_policy_classes():
            self.add(where, f"unknown dtype policy class {class_name!r}")
            return
        config = value.get("config")
        config = {} if config is None else config
        if not isinstance(config, dict):
            self.add(where, f"the config of {class_name} must be an object")
            return
        policy_name = config.get("name")
        if policy_name is not None and not self.dtype_name_ok(policy_name):
            self.add(where, f"dtype {policy_name!r} is not a Keras dtype")
        self.scan(where, config, depth)

    def fields(self, where: str, value: dict) -> tuple[str | None, str | None] | None:
        """``(module, class_name)`` of a serialized object, when both are strings."""
        module, class_name = value.get("module"), value.get("class_name")
        for key, field in (("module", module), ("class_name", class_name)):
            if field is not None and not isinstance(field, str):
                self.add(where, f"{key} must be a string, not {field!r}")
                return None
        return module, class_name

    @staticmethod
    def dtype_name_ok(name: Any) -> bool:
        return isinstance(name, str) and (
            name in _dtype_names() or name == "int" or bool(_QUANTIZED_DTYPE.match(name))
        )

    def registered_name_ok(self, where: str, value: dict) -> bool:
        # Keras's own objects carry registered_name null; anything else names a
        # custom object registered by code we do not run.
        registered = value.get("registered_name")
        if registered is not None and registered != value.get("class_name"):
            self.add(where, f"custom object {registered!r} is not supported")
            return False
        return True

    def custom(self, where: str, kind: str | None, value: dict, depth: int) -> bool:
        """Checks an object the project's own code defines; False when ``value`` is not one.

        Accepted only when that code was trusted and activated in this process (its class
        or function is registered there); nothing a config names is imported here.
        """
        name = custom_code.object_name(value)
        if name is None or (value.get("class_name") == "function" and _known(name, _identifiers(ACTIVATION))):
            return False
        found = custom_code.custom_object(value)
        if found is None:
            self.add(where, f"custom {kind or 'object'} {name!r} needs its code (--custom-layers F.py --trust)")
            return True
        if kind is not None and found[0] != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            self.add(where, f"{name!r} is a custom {found[0]}, not {article} {kind}")
            return True
        config = value.get("config")
        if isinstance(config, dict | list):
            self.scan(where, config, depth + 1)
        return True

    # -- any other value: look for serialized objects -------------------- #

    def scan(self, where: str, value: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.add(where, "nested too deeply")
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.scan(f"{where}[{i}]", item, depth + 1)
            return
        if not isinstance(value, dict):
            return
        if "class_name" in value or "module" in value:
            self.serialized_object(where, value, depth)
            return
        for key, item in value.items():
            self.scan(f"{where}.{key}", item, depth + 1)

    def serialized_object(self, where: str, value: dict, depth: int) -> None:
        fields = self.fields(where, value)
        if fields is None:
            return
        module, class_name = fields
        if custom_code.custom_object(value) is not None:  # of the project's trusted, active code
            self.custom(where, None, value, depth)
            return
        if class_name in CONSTANT_KINDS:
            # A constant array: plain numbers of a known dtype, bounded in size (see calls).
            problem = constant_problem(value)
            if problem is not None:
                self.add(where, problem)
            return
        if class_name in _FORBIDDEN_CLASS_NAMES or (
            class_name is not None and class_name.startswith("__") and class_name != "__tuple__"
        ):
            self.add(where, marker_refusal(class_name))
            return
        if class_name == "__tuple__":
            self.scan(where, value.get("config"), depth + 1)
            return
        if module is not None and not _is_keras_module(module):
            self.add(where, f"module {module!r} is outside Keras")
            return
        if not self.registered_name_ok(where, value):
            return
        if module in (None, "keras.layers"):
            self.nested_layer(where, value, depth)
        elif module == "keras.initializers":
            self.keras_object(where, INITIALIZER, value, depth)
        elif module == "keras.regularizers":
            self.keras_object(where, REGULARIZER, value, depth)
        elif module == "keras.constraints":
            self.keras_object(where, CONSTRAINT, value, depth)
        elif module == "keras.activations":
            self.activation(where, value, depth)
        elif module in ("keras", "keras.dtype_policies"):
            self.dtype(where, value, depth)
        elif module == "keras.quantizers" and class_name in _quantizer_classes():
            self.scan(where, value.get("config"), depth + 1)
        else:
            self.add(where, f"Keras object '{module}.{class_name}' is not supported here")


def check_config(class_name: str, config: dict) -> list[str]:
    """Checks a layer config from a file before Keras sees it.

    Nothing named in the config is imported: every class name is looked up in
    the catalog or in the public classes of Keras's own initializers,
    regularizers, constraints, activations, dtype policies and quantizers.

    Args:
        class_name: The layer class (canonical name or alias).
        config: The layer's config, with or without ``"name"``.

    Returns:
        One human-readable line per problem; empty when the config is safe and
        every parameter is one the class accepts.
    """
    checker = _Checker()
    checker.layer_config("", class_name, config, 0)
    return checker.problems
