"""How many input ports a node has, and what they are called: answered once, here.

The canvas draws these ports, shape inference checks the wires against the same
:class:`~builder_app.core.catalog.PortsSpec`, and the code exporter writes the
call from it, so the three can never disagree. Keras-free until the catalog is
loaded (then the catalog's spec of the layer class is read).
"""

from __future__ import annotations

from builder_app.core.calls import template_ports
from builder_app.core.graph import SUBMODEL_CLASS, ModelGraph


def layer_ports(class_name: str):
    """The catalog's :class:`PortsSpec` of a layer class; None when unknown or not loaded yet."""
    from builder_app.core import catalog

    if not catalog.is_loaded():
        return None
    try:
        return catalog.layer_spec(class_name).ports
    except KeyError:
        return None


def _is_operation(class_name: str) -> bool:
    from builder_app.core.keras_build import is_operation

    return is_operation(class_name)


def input_ports(graph: ModelGraph, node_id: str) -> tuple[str, ...]:
    """Names of a node's input ports, in order ("" where Keras names none).

    Every connected port is included; a layer that takes a growing list (Add,
    Concatenate...) shows one free port more, up to its maximum. A recorded call
    has the ports its template uses; a sub-model one per input of its graph.
    """
    if graph.is_input(node_id):
        return ()
    node = graph.node(node_id)
    class_name = graph.layer_of(node_id).class_name
    highest = max(graph.inputs_of(node_id), default=-1) + 1
    names: tuple[str, ...] = ()
    if node.call is not None:
        count = max(template_ports(node.call), default=-1) + 1
    elif class_name == SUBMODEL_CLASS:
        inner = graph.layer_of(node_id).submodel
        names = tuple(inner.layer_of(n).name for n in inner.model_inputs()) if inner else ()
        count = len(names)
    elif _is_operation(class_name):
        count = max(2, highest + 1) if highest > 0 else max(1, highest + 1)
    else:
        spec = layer_ports(class_name)
        if spec is None:
            count = max(1, highest + 1)
        elif spec.style == "none":
            count = 0
        elif spec.style == "single":
            count = 1
        elif spec.style == "positional":
            names = spec.names
            count = len(spec.names) if spec.max_inputs is None else spec.max_inputs
        else:  # a list: one free port to grow it
            count = max(spec.min_inputs, highest + 1)
            if spec.max_inputs is not None:
                count = min(count, spec.max_inputs)
    count = max(count, highest)
    return tuple(names[i] if i < len(names) else "" for i in range(count))


def first_free_input(graph: ModelGraph, node_id: str) -> int | None:
    """The first input port of a node that no wire feeds, or None when all are taken."""
    taken = graph.inputs_of(node_id)
    for port in range(len(input_ports(graph, node_id))):
        if port not in taken:
            return port
    return None
