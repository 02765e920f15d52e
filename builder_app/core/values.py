"""Parameter values without Qt: typed text parsed, values compared, Keras objects serialized.

The inspector's editors (:mod:`builder_app.ui.editor.param_editors`) show and read
values; what text means, which values are equal and how a nested Keras object is
written live here, so they can be tested without a window. Nested Keras objects
(initializers, regularizers, constraints, dtype policies) are built by Keras and
serialized by Keras, so that a config holds exactly what the layer's ``get_config()``
would write and stays valid for shapes and exports. Keras is imported inside those
functions only (it is loaded by then: the catalog needed it to list the classes); this
module must never import Qt.
"""

from __future__ import annotations

import inspect
import json
import math
import struct
from typing import Any

from builder_app.core import catalog
from builder_app.core.graph import MISSING
from builder_app.core.text import json_plain

#: What an int editor accepts (a spin box holds a C int).
INT_RANGE = (-(2**31) + 1, 2**31 - 1)
#: The Keras module of each kind of nested object.
OBJECT_MODULES = {
    catalog.INITIALIZER: "initializers",
    catalog.REGULARIZER: "regularizers",
    catalog.CONSTRAINT: "constraints",
}


class InvalidValue(ValueError):
    """An editor's input is not a value of its parameter; the message says why.

    Attributes:
        keep: The input stays as typed (marked red) rather than being reverted:
            the user is still typing.
    """

    def __init__(self, message: str, keep: bool = False):
        super().__init__(message)
        self.keep = keep


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``1``, ``1.0`` and ``True`` differ; dict order does not matter."""
    if a is MISSING or b is MISSING:
        return a is b
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return a == b


def float32(value: float) -> float:
    """The float32 nearest to ``value``, as a Python float."""
    return struct.unpack("f", struct.pack("f", value))[0]


def format_float(value: Any) -> str:
    """A number as the user would type it (a float32-rounded value shows its short form)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if len(text) > 10 and math.isfinite(value) and float32(value) == value:
        for digits in range(1, 10):
            short = f"{value:.{digits}g}"
            if float32(float(short)) == value:
                return short
    return text


def parse_float(text: str, *, nullable: bool = False) -> float | None:
    """Typed text as a finite float; empty, ``None`` or ``null`` is None where allowed."""
    stripped = text.strip()
    if nullable and stripped.lower() in ("", "none", "null"):
        return None
    if not stripped:
        raise InvalidValue("enter a number")
    try:
        value = float(stripped)
    except ValueError:
        raise InvalidValue(f"{stripped!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidValue("the value must be a finite number")
    return value


def format_int_list(value: Any) -> str:
    """``[None, 28, 28, 1]`` -> ``"None, 28, 28, 1"``; an int or None as itself."""
    if isinstance(value, list):
        return ", ".join("None" if v is None else str(v) for v in value)
    return "" if value is None else str(value)


def parse_int_list(text: str, *, none_items: bool, nullable: bool, single_int: bool) -> Any:
    """``"None, 28, 28, 1"`` -> ``[None, 28, 28, 1]``; ``"-1"`` -> ``-1`` where an int fits."""
    stripped = text.strip()
    if stripped[:1] in "([" and stripped[-1:] in ")]":
        stripped = stripped[1:-1].strip()
    if not stripped:
        if nullable:
            return None
        raise InvalidValue("enter integers separated by commas")
    parts = [p.strip() for p in stripped.split(",")]
    if parts and not parts[-1]:  # "1, 2," while typing
        parts.pop()
    values: list[int | None] = []
    for part in parts:
        if part.lower() in ("none", "null") and none_items:
            values.append(None)
            continue
        try:
            values.append(int(part))
        except ValueError:
            allowed = "integers or None" if none_items else "integers"
            raise InvalidValue(f"{part!r} is not an integer; enter {allowed}") from None
    if single_int and len(values) == 1 and "," not in text and values[0] is not None:
        return values[0]
    return values


def int_leaves(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is a non-empty list of ints, or of lists of ints."""
    if not isinstance(value, list) or not value or depth > 1:
        return False
    return all(
        (isinstance(v, int) and not isinstance(v, bool)) or int_leaves(v, depth + 1) for v in value
    )


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def in_int_range(value: int) -> bool:
    """Whether an int editor (``INT_RANGE``) can hold ``value``."""
    return INT_RANGE[0] <= value <= INT_RANGE[1]


def parse_json(text: str) -> Any:
    """Typed text as any JSON value."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValue(f"not valid JSON: {exc}") from None


def object_class(kind: str, value: Any) -> Any:
    """The class name of a serialized initializer, regularizer or constraint of Keras's own.

    None where ``value`` is not such a config (a name string such as ``"l2"``, another
    module's or a registered custom class); the caller checks the name is one it lists.
    """
    if not isinstance(value, dict):
        return None
    module, name = value.get("module"), value.get("class_name")
    expected = f"keras.{OBJECT_MODULES[kind]}"
    if module not in (None, expected) or value.get("registered_name") not in (None, name):
        return None
    return name if isinstance(name, str) else None  # a crafted file may hold anything there


def keras_object(kind: str, class_name: str, kwargs: dict[str, Any]) -> dict:
    """An initializer, regularizer or constraint, serialized exactly as Keras does."""
    import keras  # Loaded already: the catalog needed it to list the classes.

    module = getattr(keras, OBJECT_MODULES[kind])
    # Only names the catalog listed reach here, looked up among Keras's own classes.
    classes = {c.__name__: c for c in vars(module).values() if inspect.isclass(c)}
    try:
        instance = classes[class_name](**kwargs)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; shown to the user
        raise InvalidValue(f"{class_name}: {exc}") from None
    return json_plain(keras.saving.serialize_keras_object(instance))


def dtype_policy(name: str) -> dict:
    """A layer's ``dtype`` entry as ``get_config()`` writes it."""
    import keras

    try:
        policy = keras.dtype_policies.DTypePolicy(name)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        raise InvalidValue(f"dtype {name}: {exc}") from None
    return json_plain(keras.saving.serialize_keras_object(policy))


def short_text(value: Any, limit: int = 60) -> str:
    """A value as at most ``limit`` characters of text (JSON unless a string)."""
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "INT_RANGE",
    "OBJECT_MODULES",
    "InvalidValue",
    "dtype_policy",
    "float32",
    "format_float",
    "format_int_list",
    "in_int_range",
    "int_leaves",
    "is_int",
    "keras_object",
    "object_class",
    "parse_float",
    "parse_int_list",
    "parse_json",
    "same",
    "short_text",
]
