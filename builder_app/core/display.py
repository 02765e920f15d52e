"""How a graph is drawn: layout in its direction, display blocks collapsed and expanded.

Display blocks (:class:`~builder_app.core.graph.CanvasBlock`) group nodes for the
eye only: the model, its shapes and its exports never see them. A collapsed block is
drawn as one box where its first node stands, so laying out a graph with collapsed
blocks lays out its *quotient*: every collapsed block becomes one node, wires inside
it vanish, wires across its edge end on it. Each function here returns one
operation (a :class:`~builder_app.core.ops.Batch`), so the editor makes each
gesture one undo step; nothing here imports Qt or Keras.

An imported model gets blocks proposed from its Keras layer names
(:func:`~builder_app.core.display_blocks.propose_blocks`); when it is too big to
read whole, they start collapsed and the overview is folded into columns, so that a
ResNet50 reads as a page of about twenty blocks instead of a line of 175 layers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from builder_app.core import ops
from builder_app.core.graph import (
    DIRECTIONS,
    CanvasBlock,
    CanvasState,
    GraphError,
    ModelGraph,
    PortRef,
)
from builder_app.core.layout import DEFAULT_SIZE, layered_positions

Size = tuple[float, float]

#: A collapsed block's box: wider than a node, it names its input and output shapes.
BLOCK_SIZE: dict[str, Size] = {"TB": (260.0, 64.0), "LR": (260.0, 82.0)}
#: More nodes than this on show, and an imported model starts with its blocks collapsed.
READABLE_NODES = 60
#: The shape a folded overview aims at (a window's canvas, wider than tall).
TARGET_ASPECT = 1.5
#: Space between the columns of a folded overview.
COLUMN_GAP = 140.0


def collapsed_of(graph: ModelGraph, state: CanvasState | None = None) -> dict[str, str]:
    """Node id -> the first node of the collapsed block that hides it (its stand-in).

    ``state``: read the blocks from it instead of the graph's canvas settings.
    """
    stand_in: dict[str, str] = {}
    for block in (state or graph.canvas).blocks:
        members = [n for n in block.nodes if n in graph.nodes]
        if block.collapsed and members:
            for node_id in members:
                stand_in[node_id] = members[0]
    return stand_in


def quotient(graph: ModelGraph, state: CanvasState | None = None) -> ModelGraph:
    """The graph as drawn: each collapsed block one node (named by its first node's id).

    Only for laying out: its layers are placeholders; node ids, Input nodes and the
    order of wires are the drawing's.
    """
    stand_in = collapsed_of(graph, state)
    nodes, layers = [], []
    for node_id in graph.topological_order():
        if stand_in.get(node_id, node_id) != node_id:
            continue
        class_name = "DisplayBlock" if node_id in stand_in else graph.layer_of(node_id).class_name
        layers.append({"name": node_id, "class_name": class_name, "config": {}})
        nodes.append({"id": node_id, "layer": node_id})
    in_ports: dict[tuple[str, PortRef], int] = {}
    out_ports: dict[tuple[str, PortRef], int] = {}
    taken: dict[str, int] = {}
    edges = []
    seen = set()
    for edge in graph.edges():
        src, dst = stand_in.get(edge.src, edge.src), stand_in.get(edge.dst, edge.dst)
        if src == dst:
            continue
        tensor = PortRef(edge.src, edge.src_port)
        src_port = edge.src_port
        if edge.src in stand_in:
            src_port = out_ports.setdefault((src, tensor), len([k for k in out_ports if k[0] == src]))
        dst_port = edge.dst_port
        if edge.dst in stand_in:
            if (dst, tensor) in in_ports:
                continue  # one tensor enters a block once
            dst_port = in_ports.setdefault((dst, tensor), taken.get(dst, 0))
            taken[dst] = dst_port + 1
        if (dst, dst_port) in seen:
            continue
        seen.add((dst, dst_port))
        edges.append([src, src_port, dst, dst_port])
    return ModelGraph.from_dict({"name": graph.name, "layers": layers, "nodes": nodes, "edges": edges,
                                 "inputs": [], "outputs": []})


def drawn_positions(
    graph: ModelGraph,
    sizes: Mapping[str, Size] | None = None,
    state: CanvasState | None = None,
    fold: bool | None = None,
) -> dict[str, tuple[float, float]]:
    """Positions for everything drawn (collapsed blocks by their first node).

    Args:
        graph: The graph (only read).
        sizes: The boxes as drawn, by node id (a block by its first node); missing
            ones are the layout's defaults (a block's: :data:`BLOCK_SIZE`).
        state: Lay out as if drawn this way (direction, collapsed blocks); the
            graph's own canvas settings when None.
        fold: Fold a long overview into columns; by default, when blocks are collapsed.
    """
    state = state or graph.canvas
    direction = state.direction
    stand_in = collapsed_of(graph, state)
    drawn = quotient(graph, state) if stand_in else graph
    given = dict(sizes or {})
    for anchor in set(stand_in.values()):
        given.setdefault(anchor, BLOCK_SIZE[direction])
    positions = layered_positions(drawn, direction, given)
    if fold if fold is not None else bool(stand_in):
        # An expanded block stays in one column: the fold never cuts through it.
        together = [
            [n for n in block.nodes if n in positions]
            for block in state.blocks
            if not block.collapsed
        ]
        positions = folded(positions, given, direction, together=[t for t in together if len(t) > 1])
    return positions


def folded(
    positions: Mapping[str, tuple[float, float]], sizes: Mapping[str, Size], direction: str,
    aspect: float = TARGET_ASPECT, together: Iterable[Iterable[str]] = (),
) -> dict[str, tuple[float, float]]:
    """A long drawing cut between its layers into side-by-side columns of about ``aspect``.

    Only whole layers move (a layer is the nodes that share a position along the
    flow), so every column reads like the drawing it came from; wires from one
    column to the next are routed back up by the canvas. No cut falls inside the
    span of a group in ``together`` (an expanded block reads as one piece).
    """
    if not positions:
        return dict(positions)
    along = 1 if direction == "TB" else 0
    default = DEFAULT_SIZE[direction]

    def extent(node_id: str) -> tuple[float, float, float, float]:  # across-lo, across-hi, along-lo, along-hi
        w, h = sizes.get(node_id, default)
        x, y = positions[node_id]
        if along:
            return x, x + w, y, y + h
        return y, y + h, x, x + w

    spans = {n: extent(n) for n in positions}
    lo = min(s[0] for s in spans.values())
    hi = max(s[1] for s in spans.values())
    start = min(s[2] for s in spans.values())
    end = max(s[3] for s in spans.values())
    width, length = hi - lo, end - start
    columns = 1
    # The number of columns whose drawing is nearest the aspect (width over height, TB).
    best = math.inf
    for k in range(1, 13):
        across_size = k * width + (k - 1) * COLUMN_GAP
        along_size = length / k
        ratio = across_size / along_size if along else along_size / across_size
        score = abs(math.log(max(ratio, 1e-9) / aspect))
        if score < best:
            best, columns = score, k
    if columns == 1:
        return dict(positions)
    layer_starts = sorted({s[2] for s in spans.values()})
    kept = [
        (min(spans[n][2] for n in group), max(spans[n][2] for n in group))
        for group in (list(g) for g in together)
        if group
    ]

    def can_cut(at: float) -> bool:
        return not any(lo < at <= hi for lo, hi in kept)

    per_column = length / columns
    column_of_layer: dict[float, int] = {}
    column, column_start = 0, start
    for layer_start in layer_starts:
        if (
            layer_start - column_start >= per_column * 0.98
            and column < columns - 1
            and layer_start > column_start
            and can_cut(layer_start)
        ):
            column, column_start = column + 1, layer_start
        column_of_layer[layer_start] = column
    starts: dict[int, float] = {}
    for layer_start, c in column_of_layer.items():
        starts.setdefault(c, layer_start)
    moved = {}
    for node_id, (x, y) in positions.items():
        c = column_of_layer[spans[node_id][2]]
        shift_across = c * (width + COLUMN_GAP)
        shift_along = starts[c] - start
        if along:
            moved[node_id] = (round(x + shift_across, 2), round(y - shift_along, 2))
        else:
            moved[node_id] = (round(x - shift_along, 2), round(y + shift_across, 2))
    return moved


def layout_ops(
    graph: ModelGraph,
    node_ids: Iterable[str] | None = None,
    sizes: Mapping[str, Size] | None = None,
    state: CanvasState | None = None,
) -> ops.Batch | None:
    """Lays the drawing out (only ``node_ids`` move when given); None when nothing moves.

    ``state`` lays out as if the graph were drawn that way (the batch then sets it
    first): a direction or collapse change and its new layout are one step.
    """
    steps: list[ops.Op] = []
    if state is not None and state != graph.canvas:
        steps.append(ops.SetCanvas(state))
    positions = drawn_positions(graph, sizes, state)
    wanted = set(node_ids) if node_ids is not None else set(positions)
    steps += [
        ops.MoveNode(n, p) for n, p in positions.items() if n in wanted and tuple(p) != graph.node(n).position
    ]
    return ops.Batch(steps, "Layout") if steps else None


def direction_ops(graph: ModelGraph, direction: str) -> ops.Batch | None:
    """Draws the graph in ``direction`` ("TB" or "LR"), laid out again."""
    if direction not in DIRECTIONS:
        raise GraphError(f"the layout direction should be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    return layout_ops(graph, state=CanvasState(direction, graph.canvas.blocks))


def collapse_ops(graph: ModelGraph, names: Iterable[str], collapsed: bool) -> ops.Batch | None:
    """Collapses (or expands) the named display blocks, laid out again."""
    names = list(names)
    known = {block.name for block in graph.canvas.blocks}
    missing = [n for n in names if n not in known]
    if missing:
        raise GraphError(f"there is no display block '{missing[0]}'")
    return layout_ops(graph, state=graph.canvas.with_collapsed(names, collapsed))


def blocks_ops(graph: ModelGraph, blocks: list[CanvasBlock]) -> ops.Batch | None:
    """Replaces the display blocks, laid out again."""
    return layout_ops(graph, state=graph.canvas.with_blocks(blocks))


def proposed_state(graph: ModelGraph, readable: int = READABLE_NODES) -> CanvasState:
    """Display blocks from the layer names, collapsed when the model is too big to read whole."""
    from builder_app.core.display_blocks import propose_blocks

    proposals = propose_blocks(graph)
    collapse = len(graph.nodes) > readable
    blocks = tuple(CanvasBlock(b.name, tuple(b.nodes), collapse) for b in proposals)
    return CanvasState(graph.canvas.direction, blocks)


def prepare_imported(graph: ModelGraph) -> None:
    """An imported model gets its display blocks and a layout, applied directly (not an edit)."""
    for layer in list(graph.layers.values()):
        if layer.submodel is not None:
            prepare_imported(layer.submodel)
    state = proposed_state(graph) if not graph.canvas.blocks else graph.canvas
    batch = layout_ops(graph, state=state)
    if batch is not None:
        graph.apply(batch)


def overlapping(graph: ModelGraph, sizes: Mapping[str, Size] | None = None) -> bool:
    """True when boxes drawn overlap (a file without positions, or with stacked ones)."""
    direction = graph.canvas.direction
    stand_in = collapsed_of(graph)
    boxes = []
    for node_id, node in graph.nodes.items():
        if stand_in.get(node_id, node_id) != node_id:
            continue
        default = BLOCK_SIZE[direction] if node_id in stand_in else DEFAULT_SIZE[direction]
        w, h = (sizes or {}).get(node_id, default)
        boxes.append((node.position[0], node.position[1], w, h))
    if len(boxes) < 2:
        return False
    boxes.sort()
    # Sweep along x: only boxes whose x-ranges meet can overlap.
    for i, (x, y, w, h) in enumerate(boxes):
        for x2, y2, _w2, h2 in boxes[i + 1 :]:
            if x2 >= x + w:
                break
            if x2 < x + w - 1 and y2 < y + h - 1 and y < y2 + h2 - 1:
                return True
    return False


__all__ = [
    "BLOCK_SIZE",
    "blocks_ops",
    "collapse_ops",
    "collapsed_of",
    "direction_ops",
    "drawn_positions",
    "folded",
    "layout_ops",
    "overlapping",
    "prepare_imported",
    "proposed_state",
    "quotient",
]
