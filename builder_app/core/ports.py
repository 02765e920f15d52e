"""How many input ports a node has, and what they are called: answered once, here.

The canvas draws these ports, shape inference checks the wires against the same
:class:`~builder_app.core.catalog.PortsSpec`, and the code exporter writes the
call from it, so the three can never disagree. Keras-free until the catalog is
loaded (then the catalog's spec of the layer class is read).
"""

from __future__ import annotations

from builder_app.core.calls import template_ports
from builder_app.core.graph import MAX_PORTS, SUBMODEL_CLASS, ModelGraph


def layer_ports(class_name: str):
    """The catalog's :class:`PortsSpec` of a layer class; None when unknown or not loaded yet."""
    from builder_app.core import catalog

    if not catalog.is_loaded():
        return None
    try:
        return catalog.layer_spec(class_name).ports
    except KeyError:
        from builder_app.core import custom_code

        return custom_code.ports(class_name) if custom_code.layer_class_known(class_name) else None


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
    count = max(min(count, max_input_port(graph, node_id) + 1), highest)  # no free port past the cap
    return tuple(names[i] if i < len(names) else "" for i in range(count))


def max_input_port(graph: ModelGraph, node_id: str) -> int:
    """The highest input port a wire into this node may use; beyond it, a wire is refused.

    :data:`~builder_app.core.graph.MAX_PORTS` ports, or a sub-model's input count where
    that is more; a call template's ports are below the cap by construction. The bound
    is deliberately not the layer's own port count (a catalog ``PortsSpec.max_inputs``):
    a wire on a port the layer lacks is a node error that shape inference names (a
    Dense wired on port 1), a node can come to call another layer (sharing) or its
    sub-model lose an input under existing wires, and the catalog may or may not be
    loaded; a bound that moved with those would make undo or saving fail. What it must
    stop is a crafted index (10**9) sizing a node's list of ports. Keras-free.
    """
    return _limit(graph, node_id, lambda inner: len(inner.model_inputs())) - 1


def max_output_port(graph: ModelGraph, node_id: str) -> int:
    """The highest output port a wire or a model output may take from this node.

    :data:`~builder_app.core.graph.MAX_PORTS` outputs (no Keras layer returns more than
    a handful of tensors; an RNN with ``return_state`` a few), or a sub-model's output
    count where that is more. Keras-free.
    """
    return _limit(graph, node_id, lambda inner: len(inner.model_outputs())) - 1


def _limit(graph: ModelGraph, node_id: str, submodel_ports) -> int:
    """``MAX_PORTS``, or a sub-model's own port count where that is more."""
    if node_id in graph.nodes and graph.layer_of(node_id).class_name == SUBMODEL_CLASS:
        inner = graph.layer_of(node_id).submodel
        if inner is not None:
            return max(MAX_PORTS, submodel_ports(inner))
    return MAX_PORTS


def first_free_input(graph: ModelGraph, node_id: str) -> int | None:
    """The first input port of a node that no wire feeds, or None when all are taken."""
    taken = graph.inputs_of(node_id)
    for port in range(len(input_ports(graph, node_id))):
        if port not in taken:
            return port
    return None
