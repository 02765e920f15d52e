"""How a model groups its inputs and outputs: a dict (by key), a list, or one tensor.

``keras.Model({"target": a, "context": b}, ...)`` takes its inputs by name, and
Keras flattens a dict in sorted-key order: a model written with
``inputs=[target, context]`` instead would be fed in another order by a
positional call. The graph keeps the structure the model was made with
(:attr:`builder_app.core.graph.ModelGraph.structure`, format 4), and every export
writes it back: the Python code's ``keras.Model(inputs={...})``, the ``.keras``
file and the SavedModel (:func:`structured`).

The structure is ``{"inputs": S, "outputs": S}`` (each optional), ``S`` being
``{"kind": "single"}``, ``{"kind": "list"}`` or ``{"kind": "dict", "keys": [...]}``,
the keys in the order of the graph's explicit inputs (outputs). It holds while it
fits: a dict whose keys no longer match the explicit inputs in number, or a
single tensor where there are several, falls back to the default (one tensor
alone, else a list). No Keras, no Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from builder_app.core.graph import GraphError, ModelGraph
from builder_app.core.ops import Op

KINDS = ("single", "list", "dict")
_SIDES = ("inputs", "outputs")
#: Keys of one dict structure.
MAX_KEYS = 10_000


def checked_structure(value: Any) -> dict[str, Any]:
    """A graph's ``"structure"`` entry, checked (GraphError naming what is wrong)."""
    if not isinstance(value, dict) or set(value) - set(_SIDES):
        raise GraphError("the model's structure should be an object with 'inputs' and/or 'outputs'")
    for side, entry in value.items():
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
            raise GraphError(f"the structure of the model's {side} should have a kind: {', '.join(KINDS)}")
        if entry["kind"] == "dict":
            keys = entry.get("keys")
            if (
                set(entry) != {"kind", "keys"}
                or not isinstance(keys, list)
                or not all(isinstance(k, str) and k for k in keys)
                or len(set(keys)) != len(keys)
                or len(keys) > MAX_KEYS
            ):
                raise GraphError(f"the model's {side} as a dict need distinct, non-empty string keys")
        elif set(entry) != {"kind"}:
            raise GraphError(f"the structure of the model's {side} has unknown entries")
    return {side: dict(value[side]) for side in _SIDES if side in value}


def structure_from_config(value: Any) -> dict[str, Any] | None:
    """The structure of a Keras config's ``input_layers`` / ``output_layers`` (None: nested or unknown)."""
    if _is_triple(value):
        return {"kind": "single"}
    if isinstance(value, dict) and value and all(_is_triple(v) for v in value.values()):
        if all(isinstance(k, str) and k for k in value):
            return {"kind": "dict", "keys": list(value)}
        return None
    if isinstance(value, list) and all(_is_triple(v) for v in value):
        return {"kind": "list"}
    return None


def _is_triple(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:])
    )


def effective(graph: ModelGraph, side: str, count: int, explicit: int | None = None) -> dict[str, Any]:
    """The structure that holds for ``count`` tensors (``explicit`` of them the graph's explicit ones)."""
    stored = graph.structure.get(side)
    if stored is not None:
        kind = stored["kind"]
        if kind == "dict" and len(stored["keys"]) == count and (explicit is None or explicit == count):
            return stored
        if kind == "single" and count == 1:
            return stored
        if kind == "list":
            return stored
    return {"kind": "single"} if count == 1 else {"kind": "list"}


def structured(graph: ModelGraph, side: str, values: list[Any], explicit: int | None = None) -> Any:
    """``values`` (in the graph's order) grouped as the graph says: a dict, a list, or the one value."""
    shape = effective(graph, side, len(values), explicit)
    if shape["kind"] == "dict":
        return dict(zip(shape["keys"], values, strict=True))
    if shape["kind"] == "single":
        return values[0]
    return list(values)


def input_structure(graph: ModelGraph) -> dict[str, Any]:
    return effective(graph, "inputs", len(graph.model_inputs()), len(graph.explicit_inputs()))


@dataclass
class SetStructure(Op):
    """Sets how the model's inputs and outputs are grouped (see the module doc)."""

    structure: dict[str, Any] = field(default_factory=dict)

    def apply(self, graph: ModelGraph) -> Op:
        new = checked_structure(self.structure) if self.structure else {}
        old = graph.structure
        graph._set_structure(new)
        return SetStructure(old)


def positional(graph: ModelGraph) -> ModelGraph:
    """The graph with its inputs and outputs as lists (itself when they are already).

    For code that feeds arrays by position in the app's order (the training
    script's ``x0, x1, ...``): a dict model would take a list in sorted-key order.
    """
    if not graph.structure:
        return graph
    copy = graph.clone()
    copy.apply(SetStructure({}))
    return copy
