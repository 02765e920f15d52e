"""The model rules behind the editor's gestures, as functions that build operations.

Each function reads a graph (and, where a gesture depends on shapes, a
:class:`~builder_app.core.shapes.ShapeEngine`) and returns the operation that
performs the gesture, or raises a typed :class:`~builder_app.core.graph.GraphError`
saying why it cannot be done. Nothing here applies anything: the editor's
controller pushes what these build onto the undo stack, and tests call them
without a window. No Qt here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from builder_app.core import ops
from builder_app.core.graph import (
    INPUT_CLASS,
    SUBMODEL_CLASS,
    Edge,
    GroupingError,
    ModelGraph,
    NotFoundError,
    PortRef,
)

if TYPE_CHECKING:
    from builder_app.core.shapes import ShapeEngine

#: What a group's Input nodes take, per tensor flowing into it: (batch shape, dtype).
InputTypes = dict[PortRef, tuple[list[int | None], str]]

BLOCK_PREFIX = "block:"


def palette_ops(
    graph: ModelGraph,
    payload: str,
    position: tuple[float, float],
    source: str | None = None,
    source_port: int = 0,
) -> tuple[ops.Op, str, list[str]]:
    """The operation that inserts a palette entry, its undo text and the new node ids.

    ``payload`` is a class name (``"Conv2D"``, ``"InputLayer"``) or ``"block:NAME"``.
    With ``source`` the new layer's first input is wired to output ``source_port``
    of that node. A block's ids come entry first, exit last.

    Raises:
        NotFoundError: The payload names nothing the catalog or the blocks offer.
    """
    from builder_app.core import catalog

    if source is not None and source not in graph.nodes:
        source = None
    if payload.startswith(BLOCK_PREFIX):
        from builder_app.core.blocks import BLOCKS, added_nodes

        block = BLOCKS.get(payload[len(BLOCK_PREFIX) :])
        if block is None:
            raise NotFoundError(f"there is no block '{payload[len(BLOCK_PREFIX):]}'")
        batch = block.build(graph, position, PortRef(source, source_port) if source is not None else None)
        return batch, f"Add {block.name}", added_nodes(batch)
    if payload == INPUT_CLASS:
        config = {spec.name: spec.default for spec in catalog.input_spec().params}
        add = ops.add_layer(graph, INPUT_CLASS, config, position=position)
        return add, "Add Input", [add.node.id]
    try:
        spec = catalog.layer_spec(payload)
        config = catalog.default_config(spec.class_name)
    except KeyError as exc:
        from builder_app.core import custom_code

        spec = custom_code.layer_spec(payload) if custom_code.layer_class_known(payload) else None
        if spec is None:
            raise NotFoundError(str(exc).strip("\"'")) from None
        config = custom_code.default_config(payload)
    add = ops.add_layer(graph, spec.class_name, config, position=position)
    steps: list[ops.Op] = [add]
    if source is not None:
        steps.append(ops.Connect(source, source_port, add.node.id, 0))
    return ops.Batch(steps, f"Add {spec.class_name}"), f"Add {spec.class_name}", [add.node.id]


def block_submodel_name(graph: ModelGraph, payload: str) -> str:
    """A free layer name for a block inserted as one sub-model ("Residual block" -> ``residual_block``)."""
    base = payload.partition(":")[2].lower().replace(" ", "_").replace("-", "_")
    return graph.unique_layer_name(base or "block")


def group_input_types(graph: ModelGraph, engine: ShapeEngine | None, node_ids: Iterable[str]) -> InputTypes:
    """The shape and dtype of every tensor flowing into a selection, which its sub-model's Inputs take.

    Raises:
        GroupingError: A tensor flowing in has no known shape yet (or shapes are not
            computed at all); the message names its node.
    """
    chosen = set(node_ids)
    types: InputTypes = {}
    for node_id in node_ids:
        for ref in graph.inputs_of(node_id).values():
            if ref.node in chosen:
                continue
            result = engine.peek(ref.node) if engine is not None else None
            if result is None or not result.outputs or ref.port >= len(result.outputs):
                raise GroupingError(f"the shape of '{graph.label(ref.node)}' is unknown; fix it before grouping")
            tensor = result.outputs[ref.port]
            types[PortRef(*ref)] = (list(tensor.shape), tensor.dtype)
    return types


def group_ops(
    graph: ModelGraph, engine: ShapeEngine | None, node_ids: Sequence[str], name: str | None = None
) -> ops.Batch:
    """Groups a selection into one call of a new sub-model (see :func:`ops.group_as_submodel`)."""
    if not node_ids:
        raise GroupingError("select the nodes to group first")
    return ops.group_as_submodel(graph, node_ids, group_input_types(graph, engine, node_ids), name=name)


def extracted_model(
    graph: ModelGraph, engine: ShapeEngine | None, node_ids: Sequence[str], name: str
) -> ModelGraph:
    """A selection as a model of its own: Inputs where tensors flowed in, outputs where they left.

    The graph itself is not changed (the selection is grouped on a copy).
    """
    types = group_input_types(graph, engine, node_ids)
    scratch = graph.clone()
    scratch.apply(ops.group_as_submodel(scratch, node_ids, types, name="extracted"))
    model = scratch.layer("extracted").submodel
    model.name = name
    return model


def delete_ops(graph: ModelGraph, node_ids: Iterable[str], edges: Iterable[Edge] = ()) -> ops.Batch | None:
    """Removes nodes (with their wires) and wires; None when there is nothing to remove."""
    nodes = set(node_ids)
    steps: list[ops.Op] = []
    for edge in edges:
        if edge.dst not in nodes and edge.src not in nodes:
            steps.append(ops.Disconnect(edge.dst, edge.dst_port))
    steps += [ops.RemoveNode(n) for n in graph.topological_order()[::-1] if n in nodes]
    if not steps:
        return None
    return ops.Batch(steps, "Delete" if len(steps) == 1 else f"Delete {len(steps)} items")


def move_ops(graph: ModelGraph, positions: Mapping[str, tuple[float, float]]) -> ops.Batch | None:
    """Moves nodes to new positions; None when none of them moves."""
    moves = [
        ops.MoveNode(n, (float(p[0]), float(p[1])))
        for n, p in positions.items()
        if n in graph.nodes and tuple(p) != graph.node(n).position
    ]
    if not moves:
        return None
    return ops.Batch(moves, "Move layer" if len(moves) == 1 else f"Move {len(moves)} layers")


def layout_ops(
    graph: ModelGraph,
    node_ids: Iterable[str] | None = None,
    sizes: Mapping[str, tuple[float, float]] | None = None,
) -> ops.Batch | None:
    """Lays the drawing out again (only ``node_ids`` move when given); None when nothing moves.

    ``sizes``: the boxes as drawn, by node id. Collapsed display blocks are laid out
    as one box each (see :mod:`builder_app.core.display`).
    """
    from builder_app.core import display

    return display.layout_ops(graph, node_ids, sizes)


def needs_layout(graph: ModelGraph) -> bool:
    """True when the nodes have no positions of their own, or boxes drawn overlap."""
    from builder_app.core import display

    positions = {node.position for node in graph.nodes.values()}
    if len(graph.nodes) > 1 and len(positions) == 1:
        return True
    return display.overlapping(graph)


def place_if_unpositioned(graph: ModelGraph) -> bool:
    """Lays out a graph, and each of its sub-models, whose nodes have no positions or overlap.

    Applied directly, not as an edit: a file without positions (an imported config,
    an old or hand-written file) is drawn laid out from the start, and its project is
    not marked changed by it. True if any graph was laid out.
    """
    placed = False
    for layer in list(graph.layers.values()):
        if layer.submodel is not None:
            placed = place_if_unpositioned(layer.submodel) or placed
    if not needs_layout(graph):
        return placed
    batch = layout_ops(graph)
    if batch is not None:
        graph.apply(batch)
    return True


def outputs_op(graph: ModelGraph, engine: ShapeEngine | None, node_ids: Iterable[str]) -> ops.SetModelIO:
    """Makes every output tensor of the selected nodes a model output, in graph order."""
    chosen = set(node_ids)
    outputs: list[PortRef] = []
    for node_id in graph.topological_order():
        if node_id in chosen and not graph.is_input(node_id):
            result = engine.peek(node_id) if engine is not None else None
            count = len(result.outputs) if result is not None and result.outputs else 1
            outputs += [PortRef(node_id, p) for p in range(count)]
    return ops.SetModelIO(graph.explicit_inputs(), outputs)


def is_submodel_call(graph: ModelGraph, node_id: str) -> bool:
    return graph.layer_of(node_id).class_name == SUBMODEL_CLASS


# ------------------------------------------------------------------ edits that follow the chain
#: Roughly how much room a node takes on the canvas (its box, its title above, a margin).
#: The canvas draws nodes 184 wide; core cannot ask it, and overlap needs no precision.
NODE_FOOTPRINT = (200.0, 100.0)


def _direction(graph: ModelGraph) -> str:
    """How the graph is laid out: ``"TB"`` (inputs at the top) or ``"LR"`` (inputs on the left)."""
    return graph.canvas.direction


def _step(graph: ModelGraph) -> tuple[float, float]:
    """From a node to the next one along a chain, in the graph's layout direction."""
    from builder_app.core.layout import COLUMN_WIDTH, ROW_HEIGHT

    return (COLUMN_WIDTH, 0.0) if _direction(graph) == "LR" else (0.0, ROW_HEIGHT)


def added_node_ids(op: ops.Op) -> list[str]:
    """The ids of the nodes an operation adds, in order (nested batches included)."""
    if isinstance(op, ops.AddNode):
        return [op.node.id]
    if isinstance(op, ops.Batch):
        return [node_id for step in op.ops for node_id in added_node_ids(step)]
    return []


def _added_positions(op: ops.Op) -> list[tuple[float, float]]:
    if isinstance(op, ops.AddNode):
        return [op.node.position]
    if isinstance(op, ops.Batch):
        return [p for step in op.ops for p in _added_positions(step)]
    return []


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) < NODE_FOOTPRINT[0] and abs(a[1] - b[1]) < NODE_FOOTPRINT[1]


def _make_room(graph: ModelGraph, new: Sequence[tuple[float, float]], downstream: Iterable[str]) -> list[ops.Op]:
    """Moves that push ``downstream`` nodes along the layout direction off the new nodes.

    Nothing moves unless a new node would overlap one of them; then all of them move
    by the same distance (their own layout is kept), just enough that the nearest
    overlapped node sits one step past the farthest new node.
    """
    wanted = set(downstream)
    chain = [n for n in graph.topological_order() if n in wanted]
    hit = [n for n in chain if any(_overlaps(graph.node(n).position, p) for p in new)]
    if not hit or not new:
        return []
    step = _step(graph)
    axis = 0 if step[0] else 1
    distance = max(p[axis] for p in new) + step[axis] - min(graph.node(n).position[axis] for n in hit)
    if distance <= 0:
        return []
    shift = (distance, 0.0) if axis == 0 else (0.0, distance)
    return [ops.MoveNode(n, (graph.node(n).position[0] + shift[0], graph.node(n).position[1] + shift[1])) for n in chain]


def _splice(
    graph: ModelGraph, payload: str, source: PortRef, consumers: Sequence[Edge], position: tuple[float, float]
) -> ops.Batch:
    """Inserts a palette entry fed by ``source`` that takes over the wires ``consumers``.

    The consumers keep their input ports; the new layer (a block's exit) feeds them
    from its first output. An Input cannot take a tensor: it is only added.
    """
    insert, text, added = palette_ops(graph, payload, position, source.node, source.port)
    if payload == INPUT_CLASS or not added:
        return ops.Batch([insert], text)
    exit_node = added[-1]
    steps: list[ops.Op] = [ops.Disconnect(edge.dst, edge.dst_port) for edge in consumers]
    steps.append(insert)
    steps += [ops.Connect(exit_node, 0, edge.dst, edge.dst_port) for edge in consumers]
    heads = {edge.dst for edge in consumers}
    steps += _make_room(graph, _added_positions(insert), heads | graph.descendants(heads))
    return ops.Batch(steps, text)


def splice_ops(graph: ModelGraph, payload: str, edge: Edge, position: tuple[float, float]) -> ops.Batch:
    """A palette entry dropped onto a wire: ``A -> B`` becomes ``A -> new -> B``, one undo step.

    The new layer sits at ``position`` (where it was dropped) or, where that would
    cover ``A``, one step past ``A`` along the layout direction; its first input takes
    the wire's tensor and it feeds the wire's input port of ``B``. ``B`` and the nodes
    downstream of it move along the layout direction only if the new node would overlap them.
    The splice is made even when the new layer cannot take the tensor: the user asked
    for it, and the shape engine's error then shows on the node like any other.

    Raises:
        NotFoundError: There is no such wire, or the payload names nothing the palette offers.
    """
    if edge.dst not in graph.nodes or graph.inputs_of(edge.dst).get(edge.dst_port) != (edge.src, edge.src_port):
        raise NotFoundError(f"there is no wire into input {edge.dst_port} of '{graph.label(edge.dst)}'")
    source = graph.node(edge.src).position
    if _overlaps(position, source):  # a short wire: dropped half onto A
        axis = 0 if _step(graph)[0] else 1
        along = source[axis] + _step(graph)[axis]
        position = (along, position[1]) if axis == 0 else (position[0], along)
    return _splice(graph, payload, PortRef(edge.src, edge.src_port), [edge], position)


def after_position(graph: ModelGraph, node_id: str) -> tuple[float, float]:
    """Where a layer inserted after a node goes: one step along the layout direction (below, or right)."""
    x, y = graph.node(node_id).position
    dx, dy = _step(graph)
    return (x + dx, y + dy)


def splice_after_ops(graph: ModelGraph, payload: str, node_id: str) -> ops.Batch:
    """A palette entry inserted after a node (quick add with one node selected), one undo step.

    The new layer takes the node's first output and takes over every wire that
    output fed, so a chain ``A -> B`` becomes ``A -> new -> B`` and a node feeding
    several consumers (a residual's trunk and skip) feeds them all through the new
    layer: inserting "after A" means after A for everyone, and no branch is left
    dangling as an extra model output. Consumers of A's other outputs keep them.
    A leaf simply gets the new layer appended. The new layer sits beside the node
    (:func:`after_position`); downstream nodes move along only if it would overlap them.

    Raises:
        NotFoundError: There is no such node, or the payload names nothing the palette offers.
    """
    graph.node(node_id)
    consumers = [edge for edge in graph.consumers_of(node_id) if edge.src_port == 0]
    return _splice(graph, payload, PortRef(node_id, 0), consumers, after_position(graph, node_id))


def _tensor(engine: ShapeEngine | None, ref: PortRef):
    result = engine.peek(ref.node) if engine is not None else None
    if result is None or not result.outputs or ref.port >= len(result.outputs):
        return None
    return result.outputs[ref.port]


def delete_reconnect_ops(graph: ModelGraph, engine: ShapeEngine | None, node_id: str) -> tuple[ops.Batch, str | None]:
    """Deletes one node; a middle node's source is wired on to its consumers where they accept it.

    A middle node has exactly one input wire and feeds something (``A -> B -> C``
    becomes ``A -> C``). A consumer is reconnected when Keras accepts the tensor the
    source gives (:func:`~builder_app.core.wire_check.check_wire`; a tensor of the
    very shape the deleted node gave is accepted without asking). The others are left
    unconnected, and the reason names each of them: what it needs, what it would get.
    An Input, a node with several or no input wires, or a leaf is deleted as before,
    with no reason. One batch either way: one undo step.

    Returns:
        The batch, and why some consumers were left unconnected (None when none was).

    Raises:
        NotFoundError: There is no such node.
    """
    from builder_app.core.text import format_shape
    from builder_app.core.wire_check import check_wire

    graph.node(node_id)
    remove = ops.RemoveNode(node_id)
    sources = list(graph.inputs_of(node_id).values())
    consumers = graph.consumers_of(node_id)
    if graph.is_input(node_id) or len(sources) != 1 or not consumers:
        return ops.Batch([remove], "Delete"), None
    source = PortRef(*sources[0])
    gives, needs = _tensor(engine, source), _tensor(engine, PortRef(node_id, 0))
    wires: list[ops.Op] = []
    left: list[str] = []
    for edge in sorted(consumers, key=lambda e: (graph.topological_index()[e.dst], e.dst_port)):
        consumer = graph.label(edge.dst)
        if edge.src_port != 0:
            left.append(f"'{consumer}' left unconnected: it took output {edge.src_port} of '{graph.label(node_id)}'")
            continue
        if gives is None:
            left.append(f"'{consumer}' left unconnected: the shape of '{graph.label(source.node)}' is unknown")
            continue
        same = needs is not None and tuple(needs.shape) == tuple(gives.shape) and needs.dtype == gives.dtype
        problem = None if same else check_wire(graph, engine, Edge(source.node, source.port, edge.dst, edge.dst_port))
        if problem is None:
            wires.append(ops.Connect(source.node, source.port, edge.dst, edge.dst_port))
        elif needs is not None:
            left.append(
                f"'{consumer}' left unconnected: it needs {format_shape(needs.shape)}, "
                f"'{graph.label(source.node)}' gives {format_shape(gives.shape)}"
            )
        else:
            left.append(f"'{consumer}' left unconnected: {problem}")
    label = "Delete and reconnect" if wires else "Delete"
    return ops.Batch([remove, *wires], label), "; ".join(left) or None


def implicit_outputs(graph: ModelGraph) -> frozenset[str]:
    """The nodes that are model outputs only because they feed nothing (none once outputs are explicit).

    The rule the canvas marks outputs by (``node_face``'s ``is_output``), less the
    layers nothing feeds yet: a fresh, unwired layer is no output anyone means.
    """
    if graph.explicit_outputs():
        return frozenset()
    return frozenset(
        n
        for n in graph.nodes
        if not graph.is_input(n) and next(graph.successors(n), None) is None and graph.inputs_of(n)
    )


def new_outputs(before: Collection[str], graph: ModelGraph) -> list[str]:
    """The nodes an edit made model outputs by accident, in graph order.

    ``before`` is :func:`implicit_outputs` taken before the edit. A node counts when
    it is an implicit output now, was not before, and an output from before is still
    one: the edit grew the outputs instead of moving the end of the model (appending
    after the last layer, or deleting it, moves the end and is not flagged).
    """
    after = implicit_outputs(graph)
    if not after & set(before):
        return []
    return [n for n in graph.topological_order() if n in after and n not in before]
