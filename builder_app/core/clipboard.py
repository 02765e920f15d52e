"""Copy and paste of layers, within a project and across projects, as plain JSON.

A copied selection is its layers (configs, sub-models), its nodes and the wires
between them. Pasting gives every layer a fresh unique name and every node a fresh
id. Calls of one shared layer that are copied together stay shared in the copy;
weights are never carried (a pasted layer starts untrained, as a new one would).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from builder_app.core.graph import GraphError, Layer, ModelGraph, Node, _shown, port_problem
from builder_app.core.ops import AddNode, Batch, Connect

#: Marks the JSON as ours; anything else on the clipboard is not pasted.
CLIPBOARD_FORMAT = "builder-app-layers"
CLIPBOARD_VERSION = 1


def copy_nodes(graph: ModelGraph, node_ids: Iterable[str]) -> dict[str, Any]:
    """The selection as a JSON-able dict (nodes in graph order, internal wires only)."""
    chosen = [n for n in graph.nodes if n in set(node_ids)]
    layers: dict[str, dict[str, Any]] = {}
    nodes = []
    for node_id in chosen:
        node = graph.node(node_id)
        layers.setdefault(node.layer, graph.layer(node.layer).to_dict())
        nodes.append(node.to_dict())
    inside = set(chosen)
    edges = [list(e) for e in graph.edges() if e.src in inside and e.dst in inside]
    return {
        "format": CLIPBOARD_FORMAT,
        "version": CLIPBOARD_VERSION,
        "layers": list(layers.values()),
        "nodes": nodes,
        "edges": edges,
    }


def paste_ops(graph: ModelGraph, data: Any, offset: tuple[float, float] = (30.0, 30.0)) -> tuple[Batch, list[str]]:
    """The operation that pastes ``data`` (from :func:`copy_nodes`) into ``graph``, and the new node ids.

    Raises:
        GraphError: ``data`` is not a copied selection; the message says what is wrong.
    """
    if not isinstance(data, dict) or data.get("format") != CLIPBOARD_FORMAT:
        raise GraphError("the clipboard holds no layers")
    if data.get("version") != CLIPBOARD_VERSION:
        raise GraphError(f"the clipboard's layers come from another version (format {data.get('version')!r})")
    for key in ("layers", "nodes", "edges"):
        if not isinstance(data.get(key), list):
            raise GraphError(f"the clipboard's layers are malformed ('{key}' should be a list)")
    from builder_app.core import project, safe_io

    # Counted without recursion, before anything is read: pasted at the top of a
    # project, the layers sit one level deeper than here (project.json's "graph").
    limit = project.MAX_JSON_DEPTH - 1
    if safe_io.json_depth(data, limit) > limit:
        raise GraphError(
            f"the clipboard's layers nest too deeply for a project (at most {project.MAX_JSON_DEPTH} "
            "levels, sub-models included)"
        )
    problem = project.nodes_problem(data, "the clipboard")
    if problem is not None:
        raise GraphError(problem)
    try:
        layers = {entry["name"]: Layer.from_dict(entry) for entry in data["layers"]}
        nodes = [Node.from_dict(entry) for entry in data["nodes"]]
    except (KeyError, TypeError) as exc:
        raise GraphError(f"the clipboard's layers are malformed ({exc})") from None
    edges = []
    for edge in data["edges"]:
        # A wire is [source node, output port, target node, input port]; the ports'
        # bounds are checked here too, so a crafted index is refused before Connect.
        if not (isinstance(edge, list) and len(edge) == 4 and isinstance(edge[0], str) and isinstance(edge[2], str)):
            raise GraphError(f"the clipboard's wire {_shown(edge)} is not [node, port, node, port]")
        for port, what in ((edge[1], "output"), (edge[3], "input")):
            problem = port_problem(port, f"the clipboard's wire {_shown(edge)}: {what}")
            if problem is not None:
                raise problem
        edges.append(tuple(edge))
    from builder_app.core.catalog import check_config

    for layer in layers.values():
        if layer.submodel is None:
            problems = check_config(layer.class_name, layer.config)
            if problems:
                raise GraphError(f"layer '{layer.name}' cannot be pasted: {problems[0]}")
    names: dict[str, str] = {}
    ids: dict[str, str] = {}
    taken_names: set[str] = set()
    taken_ids: set[str] = set()
    steps: list[Any] = []
    dx, dy = offset
    for node in nodes:
        if node.layer not in layers:
            raise GraphError(f"the clipboard's node '{node.id}' calls a layer it does not hold")
        new_id = graph.new_node_id(taken_ids)
        taken_ids.add(new_id)
        ids[node.id] = new_id
        fresh = node.layer not in names
        if fresh:
            names[node.layer] = graph.unique_layer_name(node.layer, taken_names)
            taken_names.add(names[node.layer])
        layer = layers[node.layer].clone(names[node.layer]) if fresh else None
        position = (node.position[0] + dx, node.position[1] + dy)
        steps.append(AddNode(Node(new_id, names[node.layer], position, copy.deepcopy(node.call)), layer))
    for src, src_port, dst, dst_port in edges:
        if src not in ids or dst not in ids:
            raise GraphError("the clipboard's wires name nodes it does not hold")
        steps.append(Connect(ids[src], src_port, ids[dst], dst_port))
    return Batch(steps, "Paste"), [ids[node.id] for node in nodes]
