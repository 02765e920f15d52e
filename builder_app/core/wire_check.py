"""Keras's verdict on a wire before it is made: would the node it feeds accept it?

The canvas asks while a wire is being dragged; only the layer the wire would
feed is asked, on a scratch copy of its neighbourhood (a few milliseconds).
"""

from __future__ import annotations

from builder_app.core.graph import INPUT_CLASS, ModelGraph
from builder_app.core.keras_build import is_operation
from builder_app.core.shapes import ShapeEngine


def check_wire(graph: ModelGraph, engine: ShapeEngine, edge, detached=None) -> str | None:
    """What Keras would say about the node a proposed wire feeds, or None if it is fine.

    Only the receiving layer is computed, on a scratch graph of Inputs holding the
    shapes its inputs would have: cheap enough to ask while a wire is being dragged.
    ``detached`` is a wire being moved (it no longer counts). Returns None when a
    verdict needs more than is known (an input's shape is unknown,
    the layer still lacks inputs it requires, or it is a sub-model).
    """
    from builder_app.core.graph import Layer, Node, PortRef
    from builder_app.core.ops import AddNode, Connect

    dst = graph.node(edge.dst)
    layer = graph.layer(dst.layer)
    if layer.submodel is not None or layer.class_name == INPUT_CLASS:
        return None
    sources = dict(graph.inputs_of(edge.dst))
    if detached is not None and detached.dst == edge.dst:
        sources.pop(detached.dst_port, None)  # the wire being moved leaves its old port
    sources[edge.dst_port] = PortRef(edge.src, edge.src_port)
    if dst.call is None and not is_operation(layer.class_name):
        from builder_app.core import catalog

        try:
            ports = catalog.layer_spec(layer.class_name).ports
        except KeyError:
            return None
        if len(sources) < ports.min_inputs:
            return None
    scratch = ModelGraph("wire_check")
    taken: set[str] = {layer.name}
    for port in sorted(sources):
        ref = sources[port]
        result = engine.peek(ref.node)
        if result is None or not result.outputs or ref.port >= len(result.outputs):
            return None
        tensor = result.outputs[ref.port]
        name = scratch.unique_layer_name(graph.label(ref.node).split(" ")[0], taken)
        taken.add(name)
        config = {"batch_shape": list(tensor.shape), "dtype": tensor.dtype, "sparse": False, "ragged": False}
        node_id = f"i{port}"
        scratch.apply(AddNode(Node(node_id, name), Layer(name, INPUT_CLASS, config)))
    scratch.apply(AddNode(Node("target", layer.name, call=dst.call), Layer(layer.name, layer.class_name, dict(layer.config))))
    for port in sorted(sources):
        scratch.apply(Connect(f"i{port}", 0, "target", port))
    probe = ShapeEngine(scratch)
    try:
        errors = probe.result("target").errors
    finally:
        probe.close()
    return errors[0] if errors else None
