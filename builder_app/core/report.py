"""What validation says about a model, as data: the ``validate --json`` contract."""

from __future__ import annotations

from typing import Any

from builder_app.core.costs import node_cost, total_cost
from builder_app.core.graph import ModelGraph
from builder_app.core.shapes import ShapeEngine
from builder_app.core.text import format_shape


def validation_report(graph: ModelGraph, engine: ShapeEngine | None = None) -> dict[str, Any]:
    """The JSON object ``builder-app validate --json`` prints (see DESIGN.md).

    Nodes come in topological order. ``output_shapes`` has one entry per output
    tensor (empty while a node's inputs are unknown), ``null`` for unknown sizes.
    Beside DESIGN.md's fields each node carries ``flops`` (multiply-accumulate
    operations per sample) and ``activation_bytes`` (bytes of its outputs per
    sample), ``null`` where unknown (see :mod:`builder_app.core.costs`); the top
    level carries their sums ``total_flops`` and ``total_activation_bytes``, which
    count unknown nodes as 0.
    """
    engine = engine or ShapeEngine(graph)
    engine.update()
    nodes = []
    costs = {}
    for node_id in graph.topological_order():
        result = engine.result(node_id)
        layer = graph.layer_of(node_id)
        cost = costs[node_id] = node_cost(graph, engine, node_id)
        nodes.append(
            {
                "id": node_id,
                "layer": layer.name,
                "class_name": layer.class_name,
                "output_shapes": [list(shape) for shape in result.output_shapes],
                "params": result.params,
                "errors": list(result.errors),
                "flops": cost.flops,
                "activation_bytes": cost.activation_bytes,
            }
        )
    errors = [{"node": node, "message": message} for node, message in engine.errors()]
    total = total_cost(costs)
    return {
        "valid": not errors,
        "total_params": engine.total_params(),
        "total_flops": total.flops,
        "total_activation_bytes": total.activation_bytes,
        "nodes": nodes,
        "errors": errors,
    }


def format_summary(graph: ModelGraph, engine: ShapeEngine) -> str:
    """A table in the spirit of ``model.summary()``, with problems underneath."""
    rows = [("Layer (type)", "Output shape", "Param #")]
    seen: set[str] = set()
    for node_id in graph.topological_order():
        result = engine.result(node_id)
        layer = graph.layer_of(node_id)
        shapes = ", ".join(format_shape(s) for s in result.output_shapes) or "?"
        first = layer.name not in seen
        seen.add(layer.name)
        params = "" if result.params is None else f"{result.params:,}" if first else "(shared)"
        rows.append((f"{graph.label(node_id)} ({layer.class_name})", shapes, params))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    rule = "-" * (sum(widths) + 6)
    lines = [f'Model: "{graph.name}"', rule]
    for i, r in enumerate(rows):
        lines.append(f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:>{widths[2]}}")
        if i == 0:
            lines.append(rule)
    lines.append(rule)
    total, trainable = engine.total_params(), engine.trainable_params()
    lines += [
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
    ]
    problems = engine.errors()
    for node_id, message in problems:
        where = f"{node_id} '{graph.label(node_id)}'" if node_id else "model"
        lines.append(f"error: {where}: {message}")
    for node_id in graph.topological_order():
        for message in engine.result(node_id).warnings:
            lines.append(f"warning: {node_id} '{graph.label(node_id)}': {message}")
    return "\n".join(lines)

