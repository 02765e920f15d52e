"""How a node's input ports map onto the arguments of its Keras call.

A node either makes its layer's usual call (one tensor, a list of tensors, or
named positional tensors, as the catalog's ``PortsSpec`` says) or keeps the exact
call Keras recorded: ``{"args": [...], "kwargs": {...}}`` where ``{"port": i}``
stands for input port ``i``. Shape inference and model building both read calls
through :func:`call_arguments`, so they can never disagree.

Besides tensors, a recorded call may hold the few plain objects Keras writes for
arguments: slices, ``...``, tuples, and constant arrays (``__tensor__`` /
``__numpy__``, e.g. the channel means of ``preprocess_input``). A constant is read
as nested lists of numbers of a known dtype, bounded by
:data:`MAX_CONSTANT_ELEMENTS`; nothing in it is executed or unpickled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: The most numbers a constant array in a call may hold (a 1000 x 1000 matrix).
MAX_CONSTANT_ELEMENTS = 1_000_000
#: The most dimensions a constant array may have.
MAX_CONSTANT_RANK = 32
#: How Keras records a constant array argument: a backend tensor, a NumPy array.
CONSTANT_KINDS = ("__tensor__", "__numpy__")
#: The dtypes a constant array may have (Keras's numeric ones and bool).
CONSTANT_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64",
})  # fmt: skip

# Constants already made, by identity of their recorded dict: a node's template is
# replaced, never mutated (see keras_build), so shape passes convert each once.
_made: dict[int, tuple[Mapping[str, Any], Any]] = {}


# Keras's serialization markers, as a user would name what they stand for.
_MARKERS = {
    "__lambda__": "a Python lambda",
    "function": "a Python function",
    "__bytes__": "raw bytes",
    "__typespec__": "a TensorFlow type spec",
    "__keras_tensor__": "a model's tensor",
    "__tensor__": "a constant tensor",
    "__numpy__": "a NumPy array",
    "__slice__": "a slice",
    "__ellipsis__": "an ellipsis (...)",
    "__tuple__": "a tuple",
}


def marker_refusal(class_name: Any) -> str:
    """Why a serialized marker (``__lambda__``, ``__bytes__``, ...) is refused, in a sentence.

    The marker itself is named only in brackets: ``"holds a Python lambda, which is
    code and is never run from a file (Keras's __lambda__)"``.
    """
    name = str(class_name)[:40]
    words = _MARKERS.get(name)
    if name in ("__lambda__", "function"):
        return f"holds {words}, which is code and is never run from a file (Keras's {name})"
    if words is None:
        return f"holds an object of a kind this app does not read (Keras's {name})"
    return f"holds {words}, which this app does not read here (Keras's {name})"


class CallError(ValueError):
    """A recorded call holds something this app does not run."""


def call_arguments(
    call: Mapping[str, Any] | None, ports: Any, tensors: Mapping[int, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of a call.

    Args:
        call: The node's recorded call, or None for the layer's usual call.
        ports: The layer's ``PortsSpec`` (style, names...).
        tensors: Input port -> the tensor (symbolic or real) wired into it.
    """
    if call is not None:

        def fill(value: Any) -> Any:
            if isinstance(value, dict):
                if set(value) == {"port"}:
                    return tensors.get(value["port"])
                if "class_name" in value:
                    return constant(value)
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value

        return list(fill(call.get("args", []))), dict(fill(call.get("kwargs", {})))
    ordered = [tensors[p] for p in sorted(tensors)]
    if ports.style == "list":
        return [ordered], {}
    if ports.style == "positional":
        args = [tensors[i] for i in range(min(len(ports.names), 2)) if i in tensors]
        kwargs = {name: tensors[i] for i, name in enumerate(ports.names) if i >= 2 and i in tensors}
        return args, kwargs
    return ordered[:1], {}


def constant(value: Mapping[str, Any]) -> Any:
    """The few non-tensor objects Keras records in calls; nothing else is accepted.

    Raises:
        CallError: Another object, or a constant array that :func:`constant_problem` refuses.
    """
    kind, config = value.get("class_name"), value.get("config") or {}
    if kind == "__slice__":
        return slice(config.get("start"), config.get("stop"), config.get("step"))
    if kind == "__ellipsis__":
        return Ellipsis
    if kind == "__tuple__":
        return tuple(config.get("value", []))
    if kind in CONSTANT_KINDS:
        return _made_constant(value)
    raise CallError(f"the call {marker_refusal(kind)}")


def constant_problem(value: Any) -> str | None:
    """Why a recorded constant array is not plain numbers of a known dtype, or None.

    ``value`` is ``{"class_name": "__tensor__" | "__numpy__", "config": {"value":
    nested lists, "dtype": name}}``. The lists must be rectangular, of numbers (or
    booleans), at most :data:`MAX_CONSTANT_RANK` deep and
    :data:`MAX_CONSTANT_ELEMENTS` in all; the size is known from the first path
    down, so a huge or ragged constant is refused before all of it is walked.
    """
    config = value.get("config") if isinstance(value, Mapping) else None
    if not isinstance(config, Mapping) or "value" not in config:
        return "a constant array needs a 'config' with its 'value'"
    # Keras writes these fields only: a module or a registered name would name code.
    extra = sorted(
        str(k) for k in (set(value) - {"class_name", "config"}) | (set(config) - {"value", "dtype"})
    )
    if extra:
        return f"a constant array holds fields Keras never writes: {', '.join(extra)[:80]}"
    dtype = config.get("dtype")
    if not isinstance(dtype, str) or dtype not in CONSTANT_DTYPES:
        return f"a constant array's dtype must be one of {', '.join(sorted(CONSTANT_DTYPES))}, not {str(dtype)[:40]!r}"
    data = config["value"]
    shape: list[int] = []
    probe = data
    while isinstance(probe, list):
        if len(shape) == MAX_CONSTANT_RANK:
            return f"a constant array has more than {MAX_CONSTANT_RANK} dimensions"
        shape.append(len(probe))
        probe = probe[0] if probe else None
    if math.prod(shape) > MAX_CONSTANT_ELEMENTS:
        return (
            f"a constant array of shape {tuple(shape)} holds more than "
            f"{MAX_CONSTANT_ELEMENTS:,} numbers"
        )
    # Level by level (list.extend and map run in C: a million numbers take ~0.1 s).
    level = [data]
    for size in shape:
        inner: list[Any] = []
        for item in level:
            if not isinstance(item, list) or len(item) != size:
                return f"a constant array is not rectangular (its shape starts as {tuple(shape)})"
            inner.extend(item)
        level = inner
    kinds = set(map(type, level))
    if not kinds <= {int, float, bool}:
        odd = next(k for k in kinds if k not in (int, float, bool))
        return f"a constant array holds {odd.__name__} values, not numbers"
    return None


def _made_constant(value: Mapping[str, Any]) -> Any:
    """The array a recorded constant stands for: a read-only NumPy array of its dtype.

    NumPy for both kinds, never a backend tensor: Keras's operations take either, a
    model traced for SavedModel or ONNX then holds the values as a constant (an
    eager tensor would be captured as an extra graph input), and the model saves
    it as ``__numpy__``, which Keras loads in safe mode.
    """
    entry = _made.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    problem = constant_problem(value)
    if problem is not None:
        raise CallError(problem)
    import numpy as np

    from builder_app.core.keras_compat import import_keras

    import_keras()  # registers bfloat16 with NumPy (ml_dtypes)
    config = value["config"]
    try:
        made = np.array(config["value"], dtype=config["dtype"])
    except Exception as exc:  # noqa: BLE001 - out of range for the dtype, in NumPy's words
        problem = f"a constant array cannot be made as {config['dtype']}: {str(exc)[:120]}"
        raise CallError(problem) from None
    made.flags.writeable = False
    if len(_made) > 1000:
        _made.clear()
    _made[id(value)] = (value, made)
    return made


def template_ports(call: Any) -> set[int]:
    """The input ports a recorded call uses."""
    found: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if set(value) == {"port"}:
                found.add(value["port"])
            else:
                for v in value.values():
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(call)
    return found
