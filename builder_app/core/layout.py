"""Automatic layered (Sugiyama) layout of a model graph, top-to-bottom or left-to-right.

The Sugiyama steps, and who does each:

1. **Layers** (here): longest path from the sources, so every node sits one layer past
   its deepest input; a source that is not a model input (a layer nobody feeds yet)
   moves down to just above its first consumer.
2. **Dummy points and crossing minimisation**: python-igraph's ``layout_sugiyama`` (C
   code, barycentre sweeps). It splits every wire that spans several layers into a
   chain of dummy points, one a layer, and orders the nodes and dummies of each layer.
3. **Port-aware refinement** (here): igraph orders whole nodes and knows no ports, so it
   brings a residual block's skip wire down on the side opposite the Add port it
   enters: one crossing per block. Barycentre sweeps on port positions, each followed
   by neighbour swaps, fix that; an order is kept only if it crosses less.
4. **Coordinates across the layers** (here): igraph spaces all vertices one unit apart,
   but nodes have sizes and a passing wire needs only a corridor. Each layer is placed
   by weighted least squares under "keep the order, no overlap" constraints
   (pool-adjacent-violators: exact and linear), sweeping down and up and ending with a
   downward sweep, so a node is centred over its input ports (a chain is one straight
   line) and dummy chains, pulled harder, stay straight. A dummy keeps ``WIRE_GAP`` on
   either side: long wires pass layers through gaps, and :func:`layered_layout` gives
   their bend points to the canvas's wire router.
5. **Coordinates along the layers** (here): a layer starts after the previous layer's
   tallest (TB) or widest (LR) node plus a gap that leaves room for a shape label.

Weakly connected pieces are laid out apart and placed side by side in graph order.

Why igraph. Measured on the 2-core machine (shared, so times vary by 2x): layout time of
EfficientNetB7 (816 nodes, 918 wires), and crossings of straight wires between port
centres (:func:`crossings`) on EfficientNetB7 / ResNet50 / DenseNet121 / the U-Net example:

====================================================  ===========  =================
candidate                                             EffNetB7     crossings
====================================================  ===========  =================
old barycentre sweep (one row per chain, LR)          0.01 s       48 / 4 / 0 / 1
igraph ``layout_sugiyama``, its own coordinates       0.02 s       55 / 16 / 58 / 1
Graphviz ``dot -Tplain`` by subprocess                0.22 s       55 / 16 / 58 / 1
grandalf ``SugiyamaLayout`` (pure Python)             0.84 s       55 / 16 / 58 / 1
igraph order + steps 3-5 (this module)                0.15-0.3 s   0 / 0 / 0 / 0
====================================================  ===========  =================

The old sweep's low counts flatter it: it draws a chain on one row, where wires lie on
top of each other and of nodes (touching is not crossing); wires over a node they do
not connect: old 103 / 16 / 58 / 2, this module 0 (``python -m benchmarks layout``).
The three libraries order alike (none knows ports), so the choice is about the rest:
igraph ships wheels for every platform and is fast C code; ``dot`` needs a Graphviz
binary that users' machines usually lack (pygraphviz also needs its headers and a
compiler); grandalf alone takes longer than the whole 0.5 s target.

No Qt, no Keras: igraph and numpy are imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

from builder_app.core.graph import Edge, ModelGraph

Direction = Literal["TB", "LR"]

#: A node's (width, height) on the canvas when ``sizes`` does not say.
DEFAULT_SIZE: dict[str, tuple[float, float]] = {"TB": (184.0, 64.0), "LR": (184.0, 80.0)}

#: Gap between consecutive layers along the flow. TB: room for a shape label (about
#: 18 px high) on every wire; LR: room for the label's text, which runs along the wire.
LAYER_GAP: dict[str, float] = {"TB": 56.0, "LR": 146.0}

#: Distance between layers of default-sized nodes (LR columns, TB rows).
COLUMN_WIDTH = DEFAULT_SIZE["LR"][0] + LAYER_GAP["LR"]  # 330
ROW_HEIGHT = DEFAULT_SIZE["TB"][1] + LAYER_GAP["TB"]  # 120

#: Gap between two nodes side by side in one layer.
NODE_GAP = 40.0
#: Gap on either side of a wire passing a layer (between it and a node or another wire).
WIRE_GAP = 24.0
#: Gap between weakly connected pieces of the graph.
PIECE_GAP = 2 * NODE_GAP

#: Down-and-up sweeps of the coordinate step (a final downward sweep follows).
_SWEEPS = 4
#: How strongly a link pulls: wire to wire (a long wire stays straight), wire to node, node to node.
_PULL_WIRES, _PULL_WIRE_NODE, _PULL_NODES = 8.0, 2.0, 1.0
#: igraph's crossing-minimisation sweeps.
_MAXITER = 100
#: Port-aware barycentre sweeps (each up and down) after igraph's order.
_REFINE_SWEEPS = 4
#: At most this many passes of neighbour swaps after igraph's order.
_TRANSPOSE_PASSES = 8


class _Item:
    """A node or a dummy point of a long wire in one layer; ``size`` is across the layer."""

    __slots__ = ("node", "size", "pos", "idx", "up", "down")

    def __init__(self, node: str | None, size: float) -> None:
        self.node = node  # None for a dummy
        self.size = size
        self.pos = 0.0  # centre, across the layer
        self.idx = 0  # place in its layer's order
        # (neighbour, offset of this end from its centre, offset of the neighbour's end, pull)
        self.up: list[tuple[_Item, float, float, float]] = []
        self.down: list[tuple[_Item, float, float, float]] = []


def _port_offset(port: int, count: int, size: float) -> float:
    """Where port ``port`` of ``count`` sits along an edge of ``size``, from its centre."""
    return size * ((port + 1) / (count + 1) - 0.5)


def _port_counts(graph: ModelGraph, edges: list[Edge]) -> tuple[dict[str, int], dict[str, int]]:
    """Input and output ports per node, as far as its wires (``graph.edges()``) tell (at least one each)."""
    ins = {n: 1 for n in graph.nodes}
    outs = {n: 1 for n in graph.nodes}
    for edge in edges:
        ins[edge.dst] = max(ins[edge.dst], edge.dst_port + 1)
        outs[edge.src] = max(outs[edge.src], edge.src_port + 1)
    return ins, outs


def _layers(graph: ModelGraph, order: list[str]) -> dict[str, int]:
    """Longest-path layers; sources other than model inputs sit just above their first consumer."""
    layer: dict[str, int] = {}
    for node_id in order:
        layer[node_id] = 1 + max(
            (layer[ref.node] for ref in graph.inputs_of(node_id).values()), default=-1
        )
    for node_id in reversed(order):
        if graph.inputs_of(node_id) or graph.is_input(node_id):
            continue
        below = [layer[e.dst] for e in graph.consumers_of(node_id)]
        if below:
            layer[node_id] = min(below) - 1
    return layer


def _pieces(edges: list[Edge], order: list[str]) -> list[list[str]]:
    """Weakly connected pieces, each in topological order, ordered by their first node."""
    parent = {n: n for n in order}
    rank = {n: i for i, n in enumerate(order)}

    def root(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for edge in edges:
        a, b = root(edge.src), root(edge.dst)
        if a != b:
            parent[max(a, b, key=rank.__getitem__)] = min(a, b, key=rank.__getitem__)
    pieces: dict[str, list[str]] = {}
    for node_id in order:
        pieces.setdefault(root(node_id), []).append(node_id)
    return list(pieces.values())


def _isotonic(targets: list[float], weights: list[float], seps: list[float]) -> list[float]:
    """Minimises sum w (x - t)^2 subject to x[i+1] - x[i] >= seps[i] (pool adjacent violators)."""
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    # blocks of [weighted sum, weight, count]
    blocks: list[list[float]] = []
    for t, w, o in zip(targets, weights, offsets, strict=False):
        blocks.append([(t - o) * w, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, w2, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w2
            blocks[-1][2] += c
    result: list[float] = []
    for s, w, c in blocks:
        result.extend([s / w] * int(c))
    return [y + o for y, o in zip(result, offsets, strict=False)]


def _place(row: list[_Item], links: str) -> None:
    """Moves a layer's items towards their neighbours in ``links`` ("up", "down" or both)."""
    if len(row) == 1:  # most layers of a deep chain: nothing to keep apart
        (item,) = row
        total = pulled = 0.0
        for side in links:
            for other, mine, theirs, pull in item.up if side == "u" else item.down:
                total += pull * (other.pos + theirs - mine)
                pulled += pull
        if pulled:  # the same arithmetic as _isotonic's one block, so the same positions
            target = total / pulled
            item.pos = (target * pulled) / pulled + 0.0
        else:
            item.pos = (item.pos * 1e-3) / 1e-3 + 0.0
        return
    targets, weights = [], []
    for item in row:
        total = pulled = 0.0
        for side in links:
            for other, mine, theirs, pull in item.up if side == "u" else item.down:
                total += pull * (other.pos + theirs - mine)
                pulled += pull
        if pulled:
            targets.append(total / pulled)
            weights.append(pulled)
        else:  # nothing to follow: stay, but give way easily
            targets.append(item.pos)
            weights.append(1e-3)
    seps = [
        (a.size + b.size) / 2
        + (NODE_GAP if a.node is not None and b.node is not None else WIRE_GAP)
        for a, b in zip(row, row[1:], strict=False)
    ]
    for item, pos in zip(row, _isotonic(targets, weights, seps), strict=True):
        item.pos = pos


def _order_piece(
    edges: list[Edge], nodes: list[str], layer: Mapping[str, int]
) -> tuple[list[tuple[int, int]], list[float], list[list[tuple[int, float]]]]:
    """The order igraph's Sugiyama layout gives one piece.

    Returns the wired (source, destination) pairs as indices into ``nodes``, each node's
    x, and per pair its dummy points as (layer, x), from top to bottom.
    """
    import igraph

    index = {n: i for i, n in enumerate(nodes)}
    pairs = sorted({(index[e.src], index[e.dst]) for e in edges if e.src in index})
    top = min(layer[n] for n in nodes)
    g = igraph.Graph(n=len(nodes), edges=pairs, directed=True)
    result = g.layout_sugiyama(layers=[layer[n] - top for n in nodes], maxiter=_MAXITER)
    xs = [float(c[0]) for c in result.coords[: len(nodes)]]
    dummies = [
        [(top + round(float(p[1])), float(p[0])) for p in points] for points in result.edge_routing
    ]
    return pairs, xs, dummies


class Layout(NamedTuple):
    """A laid-out graph.

    Attributes:
        positions: Top-left corner of every node.
        bends: For every wire that spans several layers, the points its route passes,
            from source to destination: two per layer it passes (where it enters and
            leaves the layer's band), in a gap kept free of nodes.
    """

    positions: dict[str, tuple[float, float]]
    bends: dict[Edge, list[tuple[float, float]]]


def layered_positions(
    graph: ModelGraph,
    direction: Direction = "TB",
    sizes: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, tuple[float, float]]:
    """Top-left position of every node.

    TB: inputs at the top, each layer below its inputs, ports on the top (inputs) and
    bottom (outputs) edges of a node. LR: inputs on the left, ports on the left/right
    edges. ``sizes`` gives each node's (width, height) on the canvas; missing entries
    default to ``DEFAULT_SIZE[direction]``. Nodes never overlap, and gaps between
    layers leave room for a shape label (about 18 px) on every wire. The same graph
    always gives the same positions; the graph is only read.
    """
    return layered_layout(graph, direction, sizes).positions


def layered_layout(
    graph: ModelGraph,
    direction: Direction = "TB",
    sizes: Mapping[str, tuple[float, float]] | None = None,
) -> Layout:
    """:func:`layered_positions`, with the bend points of the long wires (for a wire router)."""
    if direction not in DEFAULT_SIZE:
        raise ValueError(f"layout direction {direction!r} is not 'TB' or 'LR'")
    order = graph.topological_order()
    if not order:
        return Layout({}, {})
    default = DEFAULT_SIZE[direction]
    given = sizes or {}
    size = {n: (float(given.get(n, default)[0]), float(given.get(n, default)[1])) for n in order}
    across = 0 if direction == "TB" else 1  # TB: x is across the layers; LR: y
    # One list of the wires for every step: graph.edges() builds and sorts it anew each call.
    edges = graph.edges()
    ins, outs = _port_counts(graph, edges)
    layer = _layers(graph, order)

    items: dict[str, _Item] = {n: _Item(n, size[n][across]) for n in order}
    chains: dict[tuple[str, str], list[tuple[int, _Item]]] = {}
    rows: dict[int, list[_Item]] = {}  # per layer, all pieces together (for the along-axis step)
    start = 0.0
    for piece in _pieces(edges, order):
        piece_rows = _piece_rows(edges, piece, layer, items, ins, outs, size, across, chains)
        _refine(piece_rows)
        for row in piece_rows.values():
            _place(row, "")  # packed, in order
        for _ in range(_SWEEPS):
            for d in sorted(piece_rows)[1:]:
                _place(piece_rows[d], "u")
            for d in sorted(piece_rows, reverse=True)[1:]:
                _place(piece_rows[d], "d")
        for d in sorted(piece_rows)[1:]:
            _place(piece_rows[d], "u")
        left = min(row[0].pos - row[0].size / 2 for row in piece_rows.values())
        right = max(row[-1].pos + row[-1].size / 2 for row in piece_rows.values())
        for d, row in piece_rows.items():
            for item in row:
                item.pos += start - left
            rows.setdefault(d, []).extend(row)
        start += right - left + PIECE_GAP

    along = 1 - across
    first: dict[int, float] = {}
    depth: dict[int, float] = {}
    cursor = 0.0
    for d in sorted(rows):
        first[d] = cursor
        depth[d] = max((size[i.node][along] for i in rows[d] if i.node is not None), default=0.0)
        cursor += depth[d] + LAYER_GAP[direction]

    def point(across_pos: float, along_pos: float) -> tuple[float, float]:
        return (across_pos, along_pos) if direction == "TB" else (along_pos, across_pos)

    positions = {
        n: point(round(items[n].pos - size[n][across] / 2, 2), first[layer[n]]) for n in order
    }
    bends: dict[Edge, list[tuple[float, float]]] = {}
    for edge in edges:
        chain = chains.get((edge.src, edge.dst), [])
        if chain:
            bends[edge] = [
                point(round(item.pos, 2), along_pos)
                for d, item in chain
                for along_pos in (first[d], first[d] + depth[d])
            ]
    return Layout(positions, bends)


def _piece_rows(
    edges: list[Edge],
    piece: list[str],
    layer: Mapping[str, int],
    items: dict[str, _Item],
    ins: Mapping[str, int],
    outs: Mapping[str, int],
    size: Mapping[str, tuple[float, float]],
    across: int,
    chains: dict[tuple[str, str], list[tuple[int, _Item]]],
) -> dict[int, list[_Item]]:
    """The layers of one piece: nodes and dummy points in igraph's order, linked to their neighbours.

    Adds the dummy points of the piece's long wires to ``chains`` ((source, destination) ->
    (layer, point) from top to bottom).
    """
    keyed: dict[int, list[tuple[float, int, _Item]]] = {}
    if len(piece) == 1:
        keyed[layer[piece[0]]] = [(0.0, 0, items[piece[0]])]
    else:
        pairs, xs, dummies = _order_piece(edges, piece, layer)
        for i, n in enumerate(piece):
            keyed.setdefault(layer[n], []).append((xs[i], i, items[n]))
        own: dict[tuple[str, str], list[tuple[int, _Item]]] = {}
        for k, (i, j) in enumerate(pairs):
            src, dst = piece[i], piece[j]
            chain = [(d, _Item(None, 0.0)) for d, _ in dummies[k]]
            for (d, x), (_, dummy) in zip(dummies[k], chain, strict=True):
                keyed.setdefault(d, []).append((x, len(piece) + k, dummy))
            own[(src, dst)] = chain
        for edge in edges:
            chain = own.get((edge.src, edge.dst))
            if chain is None:  # a wire of another piece
                continue
            a, b = items[edge.src], items[edge.dst]
            out_off = _port_offset(edge.src_port, outs[edge.src], size[edge.src][across])
            in_off = _port_offset(edge.dst_port, ins[edge.dst], size[edge.dst][across])
            points = [(a, out_off), *((c, 0.0) for _, c in chain), (b, in_off)]
            for (upper, up_off), (lower, low_off) in zip(points, points[1:], strict=False):
                dummies = (upper.node is None) + (lower.node is None)
                pull = (_PULL_NODES, _PULL_WIRE_NODE, _PULL_WIRES)[dummies]
                lower.up.append((upper, low_off, up_off, pull))
                upper.down.append((lower, up_off, low_off, pull))
        chains.update(own)
    rows = {
        d: [item for _, _, item in sorted(row, key=lambda r: (r[0], r[1]))]
        for d, row in keyed.items()
    }
    for row in rows.values():
        for i, item in enumerate(row):
            item.idx = i
    return rows


def _swap_gain(left: _Item, right: _Item) -> int:
    """Crossings saved by swapping two neighbours of a layer, ports taken into account."""
    keep = swap = 0
    for mine, theirs in ((left.up, right.up), (left.down, right.down)):
        for a, _, a_port, _ in mine:
            ka = (a.idx, a_port)
            for b, _, b_port, _ in theirs:
                kb = (b.idx, b_port)
                if ka > kb:
                    keep += 1
                elif ka < kb:
                    swap += 1
    return keep - swap


def _end_key(item: _Item, offset: float) -> float:
    """Where a wire ends in its layer's order: the item's place plus the port's place on it."""
    return item.idx + (offset / item.size + 0.5 if item.size else 0.5)


def _layer_crossings(row: list[_Item]) -> int:
    """Crossings of the wires between a layer and the next one, ports taken into account."""
    ends = sorted(
        ((item.idx, mine), (other.idx, theirs))
        for item in row
        for other, mine, theirs, _ in item.down
    )
    lower = [b for _, b in ends]
    tops = [a for a, _ in ends]
    count = 0
    for i in range(len(ends)):
        for j in range(i + 1, len(ends)):
            if tops[i] != tops[j] and lower[i] > lower[j]:
                count += 1
    return count


def _total_crossings(rows: Mapping[int, list[_Item]]) -> int:
    return sum(_layer_crossings(row) for row in rows.values())


def _sort_by_neighbours(row: list[_Item], side: str) -> None:
    """Reorders a layer by the mean place of its wires' other ends (a barycentre that sees ports)."""

    def barycentre(item: _Item) -> float:
        links = item.up if side == "u" else item.down
        if not links:
            return item.idx + 0.5
        return sum(_end_key(other, theirs) for other, _, theirs, _ in links) / len(links)

    row.sort(key=lambda item: (barycentre(item), item.idx))
    for i, item in enumerate(row):
        item.idx = i


def _refine(rows: dict[int, list[_Item]]) -> None:
    """Improves igraph's order where ports matter; keeps the order with the fewest crossings.

    igraph orders whole nodes: it cannot tell that a skip wire into the left port of an
    Add should come down on the left. Barycentre sweeps on port positions, each
    followed by neighbour swaps, fix that; an order is kept only if it crosses less.
    """
    layers = sorted(rows)
    best = _total_crossings(rows)
    kept = {d: list(row) for d, row in rows.items()}
    for _ in range(_REFINE_SWEEPS):
        if best == 0:
            break
        for d in reversed(layers[:-1]):
            _sort_by_neighbours(rows[d], "d")
        for d in layers[1:]:
            _sort_by_neighbours(rows[d], "u")
        _transpose(rows)
        count = _total_crossings(rows)
        if count < best:
            best, kept = count, {d: list(row) for d, row in rows.items()}
    for d, row in kept.items():
        rows[d] = row
        for i, item in enumerate(row):
            item.idx = i


def _transpose(rows: Mapping[int, list[_Item]]) -> None:
    """Swaps neighbours while that removes crossings igraph cannot see: it knows no ports."""
    for _ in range(_TRANSPOSE_PASSES):
        swapped = False
        for d in sorted(rows):
            row = rows[d]
            for i in range(len(row) - 1):
                if _swap_gain(row[i], row[i + 1]) > 0:
                    row[i], row[i + 1] = row[i + 1], row[i]
                    row[i].idx, row[i + 1].idx = i, i + 1
                    swapped = True
        if not swapped:
            break


def crossings(
    graph: ModelGraph,
    positions: Mapping[str, tuple[float, float]],
    direction: Direction = "TB",
    sizes: Mapping[str, tuple[float, float]] | None = None,
) -> int:
    """Number of pairwise crossings of straight wires between port centres.

    Ports are spread evenly along a node's edge: TB inputs on the top edge and outputs
    on the bottom one, LR inputs on the left and outputs on the right. Wires that only
    touch (at a shared port) do not count. For benchmarks and tests.
    """
    import numpy as np

    default = DEFAULT_SIZE[direction]
    given = sizes or {}
    edges = graph.edges()
    ins, outs = _port_counts(graph, edges)
    ends = []
    for edge in edges:
        (sx, sy), (sw, sh) = positions[edge.src], given.get(edge.src, default)
        (dx, dy), (dw, dh) = positions[edge.dst], given.get(edge.dst, default)
        if direction == "TB":
            p = (sx + sw / 2 + _port_offset(edge.src_port, outs[edge.src], sw), sy + sh)
            q = (dx + dw / 2 + _port_offset(edge.dst_port, ins[edge.dst], dw), dy)
        else:
            p = (sx + sw, sy + sh / 2 + _port_offset(edge.src_port, outs[edge.src], sh))
            q = (dx, dy + dh / 2 + _port_offset(edge.dst_port, ins[edge.dst], dh))
        ends.append((*p, *q))
    if len(ends) < 2:
        return 0
    seg = np.asarray(ends, dtype=float)
    a, b = seg[:, :2], seg[:, 2:]

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Sign of the turn p -> q -> r, for every p, q (rows) against every r (columns)."""
        cross = (q[:, None, 0] - p[:, None, 0]) * (r[None, :, 1] - p[:, None, 1]) - (
            q[:, None, 1] - p[:, None, 1]
        ) * (r[None, :, 0] - p[:, None, 0])
        return np.sign(np.where(np.abs(cross) < 1e-9, 0.0, cross))

    total = 0
    chunk = 512
    for lo in range(0, len(seg), chunk):
        pa, pb = a[lo : lo + chunk], b[lo : lo + chunk]
        straddle_q = orient(pa, pb, a) * orient(pa, pb, b) < 0  # q's ends on both sides of p
        straddle_p = (orient(a, b, pa) * orient(a, b, pb)).T < 0  # p's ends on both sides of q
        total += int(np.count_nonzero(straddle_q & straddle_p))
    return total // 2
