"""Automatic layered layout: inputs on the left, each node right of its inputs."""

from __future__ import annotations

from builder_app.core.graph import ModelGraph

#: Distance between columns and between rows, in canvas units.
COLUMN_WIDTH = 330.0
ROW_HEIGHT = 120.0


def layered_positions(graph: ModelGraph) -> dict[str, tuple[float, float]]:
    """Positions for every node: a column per depth, rows ordered to keep wires short.

    Depth is the longest path from a source; within a column, nodes are ordered by
    the mean row of their inputs (one barycentre sweep), which untangles chains and
    keeps branches apart.
    """
    order = graph.topological_order()
    depth: dict[str, int] = {}
    for node_id in order:
        sources = [ref.node for ref in graph.inputs_of(node_id).values()]
        depth[node_id] = 1 + max((depth[s] for s in sources), default=-1)
    columns: dict[int, list[str]] = {}
    for node_id in order:
        columns.setdefault(depth[node_id], []).append(node_id)
    row: dict[str, float] = {}
    for d in sorted(columns):
        nodes = columns[d]
        first = {node_id: float(i) for i, node_id in enumerate(nodes)}

        def barycentre(node_id: str, first=first) -> float:
            rows = [row[ref.node] for ref in graph.inputs_of(node_id).values() if ref.node in row]
            return sum(rows) / len(rows) if rows else first[node_id]

        nodes.sort(key=barycentre)
        offset = (len(nodes) - 1) / 2.0
        for i, node_id in enumerate(nodes):
            row[node_id] = i - offset
    return {n: (depth[n] * COLUMN_WIDTH, row[n] * ROW_HEIGHT) for n in order}
