"""The model rules behind the editor's gestures, as functions that build operations.

Each function reads a graph (and, where a gesture depends on shapes, a
:class:`~builder_app.core.shapes.ShapeEngine`) and returns the operation that
performs the gesture, or raises a typed :class:`~builder_app.core.graph.GraphError`
saying why it cannot be done. Nothing here applies anything: the editor's
controller pushes what these build onto the undo stack, and tests call them
without a window. No Qt here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    graph: ModelGraph, payload: str, position: tuple[float, float], source: str | None = None
) -> tuple[ops.Op, str, list[str]]:
    """The operation that inserts a palette entry, its undo text and the new node ids.

    ``payload`` is a class name (``"Conv2D"``, ``"InputLayer"``) or ``"block:NAME"``.
    With ``source`` the new layer's first input is wired to that node's first output.

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
        batch = block.build(graph, position, PortRef(source, 0) if source is not None else None)
        return batch, f"Add {block.name}", added_nodes(batch)
    if payload == INPUT_CLASS:
        config = {spec.name: spec.default for spec in catalog.input_spec().params}
        add = ops.add_layer(graph, INPUT_CLASS, config, position=position)
        return add, "Add Input", [add.node.id]
    try:
        spec = catalog.layer_spec(payload)
    except KeyError as exc:
        raise NotFoundError(str(exc).strip("\"'")) from None
    add = ops.add_layer(graph, spec.class_name, catalog.default_config(spec.class_name), position=position)
    steps: list[ops.Op] = [add]
    if source is not None:
        steps.append(ops.Connect(source, 0, add.node.id, 0))
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


def layout_ops(graph: ModelGraph, node_ids: Iterable[str] | None = None) -> ops.Batch | None:
    """Lays the graph out again (only ``node_ids`` move when given); None when nothing moves."""
    from builder_app.core.layout import layered_positions

    positions = layered_positions(graph)
    wanted = set(node_ids) if node_ids is not None else set(positions)
    batch = move_ops(graph, {n: p for n, p in positions.items() if n in wanted})
    return ops.Batch(batch.ops, "Layout") if batch is not None else None


def needs_layout(graph: ModelGraph) -> bool:
    """True when the nodes have no positions of their own (all stacked on one point)."""
    positions = {node.position for node in graph.nodes.values()}
    return len(graph.nodes) > 1 and len(positions) == 1


def place_if_unpositioned(graph: ModelGraph) -> bool:
    """Lays out a graph that has no positions (an imported config, an old file); True if it did.

    Applied directly, not as an edit: a file without positions is drawn laid out
    from the start, and its project is not marked changed by it.
    """
    if not needs_layout(graph):
        return False
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
