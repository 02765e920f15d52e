"""How a node's input ports map onto the arguments of its Keras call.

A node either makes its layer's usual call (one tensor, a list of tensors, or
named positional tensors, as the catalog's ``PortsSpec`` says) or keeps the exact
call Keras recorded: ``{"args": [...], "kwargs": {...}}`` where ``{"port": i}``
stands for input port ``i``. Shape inference and model building both read calls
through :func:`call_arguments`, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    """The few non-tensor objects Keras records in calls; nothing else is accepted."""
    kind, config = value.get("class_name"), value.get("config") or {}
    if kind == "__slice__":
        return slice(config.get("start"), config.get("stop"), config.get("step"))
    if kind == "__ellipsis__":
        return Ellipsis
    if kind == "__tuple__":
        return tuple(config.get("value", []))
    raise CallError(f"the call holds an object this app does not run: {str(kind)[:60]}")


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
