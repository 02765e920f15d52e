"""The model graph: Keras layers (which own weights) and the calls of them (nodes).

A :class:`Layer` is what Keras calls a layer: a class name, a config and optionally
weights. A :class:`Node` is one call of a layer, one box on the canvas; two nodes
naming one layer are a shared layer. A layer whose ``submodel`` is set is a graph
used as a layer. Wires run from an output port of one node to an input port of
another and are kept in a networkx ``MultiDiGraph``.

The graph is changed only through the operations in :mod:`builder_app.core.ops`,
each of which returns its exact inverse. This module never imports Qt or Keras.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import networkx as nx

from builder_app.core.events import Change, ChangeKind, Emitter

if TYPE_CHECKING:
    import numpy as np

#: Class name of a layer that is itself a graph (a Keras functional sub-model).
SUBMODEL_CLASS = "Functional"
#: Class name of the graph's input nodes.
INPUT_CLASS = "InputLayer"

_MAX_NAME_LENGTH = 200

#: The most input or output ports a node may have (ports 0 to MAX_PORTS - 1). No Keras
#: layer takes or returns anywhere near this many tensors (a Concatenate of 1024
#: branches is already absurd), and a sub-model with more inputs or outputs gets as many
#: as it has (see :mod:`builder_app.core.ports`). The cap exists because a crafted port
#: index (10**9, 2**70) would otherwise size the list of a node's ports: a hang, then
#: MemoryError. The bound does not depend on the layer's class, so a wire an operation
#: made (a Dense wired on port 1 is a node error, not a refusal) always loads back.
MAX_PORTS = 1024


class GraphError(ValueError):
    """An operation was refused; the graph is unchanged. The message says why.

    Callers that react to the reason (the canvas colours a refused wire, the
    inspector marks a field) match on the subclass, never on the message.
    """


class NotFoundError(GraphError):
    """The edit names a node, layer or block the graph does not hold."""


class PortError(GraphError):
    """A wire's port does not exist, is taken, or is not a port number."""


class PositionError(GraphError):
    """A node position is not two finite numbers."""


class CycleError(GraphError):
    """A wire would make the graph feed itself."""


class LayerNameError(GraphError):
    """A layer name is not a valid Keras name or is taken."""


class ConfigError(GraphError):
    """A layer configuration (or one parameter of it) is not accepted."""


class SharingError(GraphError):
    """Sharing, unsharing or calling a layer again is not possible here."""


class GroupingError(GraphError):
    """A selection cannot be grouped into a sub-model, ungrouped or extracted."""


class PortRef(NamedTuple):
    """One tensor: output ``port`` of node ``node``."""

    node: str
    port: int


class Edge(NamedTuple):
    """A wire from an output port to an input port."""

    src: str
    src_port: int
    dst: str
    dst_port: int


@dataclass
class Layer:
    """A Keras layer: it owns the configuration and the weights.

    Attributes:
        name: The Keras layer name, unique within its graph.
        class_name: The Keras class, e.g. ``"Conv2D"``; ``"Functional"`` for a sub-model.
        config: The Keras config as ``get_config()`` returns it, without ``"name"``.
        submodel: The graph this layer runs, for a sub-model.
        weights: The layer's weights in Keras order, when the project holds them.
        assets: The files Keras's ``layer.save_assets(dir)`` writes (an adapted
            lookup's ``vocabulary.txt``), file name -> bytes; see
            :mod:`builder_app.core.assets`. ``None`` when the layer has none.
    """

    name: str
    class_name: str
    config: dict[str, Any] = field(default_factory=dict)
    submodel: ModelGraph | None = None
    weights: list[np.ndarray] | None = None
    assets: dict[str, bytes] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "class_name": self.class_name,
            "config": copy.deepcopy(self.config),
        }
        if self.submodel is not None:
            data["submodel"] = self.submodel.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        _expect(data, dict, "a layer")
        name, class_name = data.get("name"), data.get("class_name")
        _expect(name, str, "a layer's name")
        _expect(class_name, str, f"the class of layer '{name}'")
        config = data.get("config", {})
        _expect(config, dict, f"the config of layer '{name}'")
        submodel = data.get("submodel")
        return cls(
            name=name,
            class_name=class_name,
            config=copy.deepcopy(config),
            submodel=ModelGraph.from_dict(submodel) if submodel is not None else None,
        )

    def clone(self, name: str | None = None) -> Layer:
        """A deep copy (weights included), optionally under another name."""
        return Layer(
            name=self.name if name is None else name,
            class_name=self.class_name,
            config=copy.deepcopy(self.config),
            submodel=self.submodel.clone() if self.submodel is not None else None,
            weights=[w.copy() for w in self.weights] if self.weights is not None else None,
            assets=dict(self.assets) if self.assets is not None else None,
        )


@dataclass
class Node:
    """One call of a layer: a box on the canvas.

    Attributes:
        id: Unique within its graph, e.g. ``"n3"``.
        layer: The name of the layer this node calls.
        position: Canvas position (x, y).
        call: How input ports map onto the call's arguments, for calls Keras records
            with extra structure: ``{"args": [...], "kwargs": {...}}`` where
            ``{"port": i}`` stands for input port ``i`` and anything else is a
            constant argument. ``None`` means the layer's usual call.
    """

    id: str
    layer: str
    position: tuple[float, float] = (0.0, 0.0)
    call: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "layer": self.layer,
            "position": [float(self.position[0]), float(self.position[1])],
        }
        if self.call is not None:
            data["call"] = copy.deepcopy(self.call)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Node:
        _expect(data, dict, "a node")
        node_id, layer = data.get("id"), data.get("layer")
        _expect(node_id, str, "a node's id")
        _expect(layer, str, f"the layer of node '{node_id}'")
        position = data.get("position", [0.0, 0.0])
        if not isinstance(position, list):
            raise PositionError(f"node '{node_id}': position must be two numbers")
        checked = checked_position(position, f"node '{node_id}'")
        call = data.get("call")
        if call is not None:
            problem = call_problem(call, f"node '{node_id}'")
            if problem is not None:
                raise problem
        return cls(node_id, layer, checked, copy.deepcopy(call))


#: The directions a graph can be laid out in: inputs at the top, or on the left.
DIRECTIONS = ("TB", "LR")


@dataclass(frozen=True)
class CanvasBlock:
    """A display block: nodes drawn together, collapsed into one box when wanted.

    A display block changes nothing in the model, its shapes or its exports (turning
    one into a real sub-model is a separate edit).

    Attributes:
        name: What the block is called on the canvas (``conv2_block1``).
        nodes: Its node ids. Ids of nodes that no longer exist are kept (an undo may
            bring them back) but skipped by every reader and by :meth:`CanvasState.to_dict`.
        collapsed: Drawn as one box instead of its nodes.
    """

    name: str
    nodes: tuple[str, ...]
    collapsed: bool = False


@dataclass(frozen=True)
class CanvasState:
    """How a graph is drawn, not what it computes: layout direction and display blocks.

    Like node positions, it is part of the project and changed only through an
    operation (:class:`~builder_app.core.ops.SetCanvas`), so it is undoable.
    """

    direction: str = "TB"
    blocks: tuple[CanvasBlock, ...] = ()

    def block_of(self, node_id: str) -> CanvasBlock | None:
        for block in self.blocks:
            if node_id in block.nodes:
                return block
        return None

    def with_blocks(self, blocks: Iterable[CanvasBlock]) -> CanvasState:
        return CanvasState(self.direction, tuple(blocks))

    def with_collapsed(self, names: Iterable[str], collapsed: bool) -> CanvasState:
        """The same blocks, with those named ``names`` collapsed (or expanded)."""
        wanted = set(names)
        return self.with_blocks(
            CanvasBlock(b.name, b.nodes, collapsed if b.name in wanted else b.collapsed) for b in self.blocks
        )

    def to_dict(self, present: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON-able description naming only the nodes in ``present``."""
        blocks = []
        for block in self.blocks:
            nodes = [n for n in block.nodes if n in present]
            if nodes:
                blocks.append({"name": block.name, "nodes": nodes, "collapsed": block.collapsed})
        return {"direction": self.direction, "blocks": blocks}

    @classmethod
    def from_dict(cls, data: Any, present: Mapping[str, Any]) -> CanvasState:
        """Reads :meth:`to_dict` output; unknown node ids are dropped, a node stays in its first block.

        Raises:
            GraphError: The description is malformed; the message says where.
        """
        _expect(data, dict, "the canvas settings")
        direction = data.get("direction", "TB")
        if direction not in DIRECTIONS:
            raise GraphError(f"the canvas direction should be one of {', '.join(DIRECTIONS)}, not {_shown(direction)}")
        taken: set[str] = set()
        blocks = []
        for item in _list(data, "blocks"):
            _expect(item, dict, "a display block")
            name, nodes, collapsed = item.get("name"), item.get("nodes", []), item.get("collapsed", False)
            if not isinstance(name, str) or not name or len(name) > _MAX_NAME_LENGTH:
                raise GraphError(f"a display block's name should be a short string, not {_shown(name)}")
            if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
                raise GraphError(f"display block '{name[:40]}': its nodes should be a list of node ids")
            if not isinstance(collapsed, bool):
                raise GraphError(f"display block '{name[:40]}': 'collapsed' should be true or false")
            members = tuple(dict.fromkeys(n for n in nodes if n in present and n not in taken))
            taken.update(members)
            if members:
                blocks.append(CanvasBlock(name, members, collapsed))
        return cls(direction, tuple(blocks))


def checked_position(position: Any, what: str) -> tuple[float, float]:
    """``position`` as two floats.

    Raises:
        PositionError: It is not two finite numbers (Qt crashes painting NaN or
            infinite coordinates); the message starts with ``what``.
    """
    try:
        x, y = position
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (x, y)):
            raise TypeError
        checked = (float(x), float(y))
    except (TypeError, ValueError, OverflowError):
        raise PositionError(f"{what}: position must be two numbers, not {_shown(position)}") from None
    if not all(math.isfinite(v) for v in checked):
        raise PositionError(f"{what}: position must be two finite numbers, not {_shown(position)}")
    return checked


def port_problem(port: Any, what: str, limit: int = MAX_PORTS) -> PortError | None:
    """Why ``port`` is not a port number below ``limit`` (``what`` names it), or None."""
    if not isinstance(port, int) or isinstance(port, bool) or port < 0:
        return PortError(f"{what} {_shown(port)} is not a port number")
    if port >= limit:
        return PortError(f"{what} {_shown(port)} is beyond the {limit} ports a node may have")
    return None


def call_problem(call: Any, what: str) -> GraphError | None:
    """Why ``call`` is not a recorded call template (``what`` names the node), or None.

    A template is ``{"args": [...], "kwargs": {...}}`` (both optional) in which every
    ``{"port": i}`` is a port number below :data:`MAX_PORTS`.
    """
    if not isinstance(call, dict):
        return ConfigError(f"{what}: the call should be a dict, not {type(call).__name__}")
    for key, kind in (("args", list), ("kwargs", dict)):
        if key in call and not isinstance(call[key], kind):
            return ConfigError(f"{what}: the call's {key} should be a {kind.__name__}, not {type(call[key]).__name__}")
    stack = [call]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if set(value) == {"port"}:
                problem = port_problem(value["port"], f"{what}: the call's port")
                if problem is not None:
                    return problem
            else:
                stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _shown(value: Any) -> str:
    """A short one-line rendering of a value from a file, for messages."""
    try:
        text = json.dumps(value)
    except Exception:  # noqa: BLE001 - an odd value from a file or a call: say what it is
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def check_layer_name(name: object) -> str | None:
    """Why ``name`` is not a valid Keras layer name, or None if it is."""
    if not isinstance(name, str) or not name:
        return "a layer name must be a non-empty string"
    if "/" in name:
        return f"layer name '{name}' must not contain '/'"
    if name != name.strip():
        return f"layer name '{name}' must not start or end with spaces"
    if len(name) > _MAX_NAME_LENGTH:
        return f"layer name '{name[:20]}...' is longer than {_MAX_NAME_LENGTH} characters"
    if any(not ch.isprintable() for ch in name):
        return f"layer name {name!r} contains unprintable characters"
    return None


def plain_layers(graph: ModelGraph) -> Iterator[Layer]:
    """Every layer that is not a sub-model, sub-models' own layers included (no recursion)."""
    stack = [graph]
    while stack:
        current = stack.pop()
        for layer in current.layers.values():
            if layer.submodel is not None:
                stack.append(layer.submodel)
            else:
                yield layer


def snake_case(class_name: str) -> str:
    """Keras's default layer name for a class: ``Conv2DTranspose`` -> ``conv2d_transpose``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class ModelGraph:
    """A Keras functional model as a graph of layer calls.

    Read it through the accessors; change it only with :meth:`apply` and the
    operations of :mod:`builder_app.core.ops`. ``changed`` announces every change.
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.changed = Emitter()
        self._nodes: dict[str, Node] = {}
        self._layers: dict[str, Layer] = {}
        self._layer_nodes: dict[str, list[str]] = {}
        self._wires = nx.MultiDiGraph()
        # Input port -> source, per node: read on every shape update, so kept
        # beside networkx rather than rebuilt from its edge views.
        self._sources: dict[str, dict[int, PortRef]] = {}
        # Explicit model inputs (node ids) and outputs (tensors), in Keras order.
        self._inputs: list[str] = []
        self._outputs: list[PortRef] = []
        self._order_cache: tuple[list[str], dict[str, int]] | None = None
        self._canvas = CanvasState()
        # How the model's inputs and outputs are grouped (dict keys, a list, one
        # tensor), as builder_app.core.io_structure reads it; {}: the default.
        self._structure: dict[str, Any] = {}

    # ----------------------------------------------------------------- reading
    @property
    def canvas(self) -> CanvasState:
        """How the graph is drawn: layout direction and display blocks."""
        return self._canvas

    @property
    def nodes(self) -> Mapping[str, Node]:
        return self._nodes

    @property
    def layers(self) -> Mapping[str, Layer]:
        return self._layers

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise NotFoundError(f"there is no node '{node_id}'") from None

    def layer(self, name: str) -> Layer:
        try:
            return self._layers[name]
        except KeyError:
            raise NotFoundError(f"there is no layer '{name}'") from None

    def layer_of(self, node_id: str) -> Layer:
        return self._layers[self.node(node_id).layer]

    def nodes_of_layer(self, layer_name: str) -> list[str]:
        """The calls of one layer, in graph order."""
        return list(self._layer_nodes.get(layer_name, ()))

    def label(self, node_id: str) -> str:
        """How messages name a node: its layer, and which call when shared."""
        node = self._nodes.get(node_id)
        if node is None:
            return node_id
        calls = self._layer_nodes.get(node.layer, [])
        if len(calls) > 1:
            return f"{node.layer} (call {calls.index(node_id) + 1})"
        return node.layer

    def edges(self) -> list[Edge]:
        """Every wire, ordered by destination node then port."""
        index = {node_id: i for i, node_id in enumerate(self._nodes)}
        edges = [
            Edge(src, data["src_port"], dst, key)
            for src, dst, key, data in self._wires.edges(keys=True, data=True)
        ]
        return sorted(edges, key=lambda e: (index[e.dst], e.dst_port))

    def inputs_of(self, node_id: str) -> dict[int, PortRef]:
        """Input port -> the tensor wired into it."""
        return dict(self._sources[node_id])

    def consumers_of(self, node_id: str) -> list[Edge]:
        return [
            Edge(node_id, data["src_port"], dst, key)
            for _, dst, key, data in self._wires.out_edges(node_id, keys=True, data=True)
        ]

    def successors(self, node_id: str) -> Iterator[str]:
        """Nodes fed by this one (each once)."""
        return iter(self._wires.succ[node_id])  # adjacency view: its keys are the successors

    def descendants(self, node_ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for node_id in node_ids:
            if node_id not in found:
                found |= nx.descendants(self._wires, node_id)
        return found

    def topological_order(self) -> list[str]:
        """Nodes so that every node comes after its inputs; ties in graph order."""
        return list(self._topology()[0])

    def topological_index(self) -> Mapping[str, int]:
        """Node -> its position in :meth:`topological_order` (do not mutate)."""
        return self._topology()[1]

    def _topology(self) -> tuple[list[str], dict[str, int]]:
        if self._order_cache is None:
            index = {node_id: i for i, node_id in enumerate(self._nodes)}
            order = list(nx.lexicographical_topological_sort(self._wires, key=index.__getitem__))
            self._order_cache = (order, {node_id: i for i, node_id in enumerate(order)})
        return self._order_cache

    def is_input(self, node_id: str) -> bool:
        return self.layer_of(node_id).class_name == INPUT_CLASS

    def model_inputs(self) -> list[str]:
        """The model's input nodes, in Keras order: explicit ones first, then the rest."""
        rest = [n for n in self._nodes if n not in self._inputs and self.is_input(n)]
        return [*self._inputs, *rest]

    def explicit_outputs(self) -> list[PortRef]:
        return list(self._outputs)

    def explicit_inputs(self) -> list[str]:
        return list(self._inputs)

    def model_outputs(self, output_count: Mapping[str, int] | None = None) -> list[PortRef]:
        """The model's output tensors.

        Explicit outputs when some are set; otherwise every output of every node
        that feeds nothing (``output_count`` says how many outputs a node has).
        """
        if self._outputs:
            return list(self._outputs)
        counts = output_count or {}
        return [
            PortRef(node_id, port)
            for node_id in self.topological_order()
            if not self.is_input(node_id) and self._wires.out_degree(node_id) == 0
            for port in range(counts.get(node_id, 1))
        ]

    def new_node_id(self, taken: Iterable[str] = ()) -> str:
        used = {*self._nodes, *taken}
        highest = max(
            (int(n[1:]) for n in used if n.startswith("n") and n[1:].isdigit()), default=0
        )
        return f"n{highest + 1}"

    def unique_layer_name(self, base: str, taken: Iterable[str] = ()) -> str:
        """``base`` if free, else Keras style ``base_1``, ``base_2``..."""
        used = {*self._layers, *taken}
        if base not in used:
            return base
        i = 1
        while f"{base}_{i}" in used:
            i += 1
        return f"{base}_{i}"

    def path_between(self, src: str, dst: str, without: Edge | None = None) -> list[str] | None:
        """Nodes on a path of wires from src to dst (not using the wire ``without``), or None."""
        wires = self._wires
        if without is not None and wires.has_edge(without.src, without.dst, key=without.dst_port):
            wires = nx.restricted_view(wires, [], [(without.src, without.dst, without.dst_port)])
        try:
            return nx.shortest_path(wires, src, dst)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    # ------------------------------------------------------------ operations
    def apply(self, op: Any) -> Any:
        """Apply an operation; returns its inverse. Refusals raise GraphError."""
        return op.apply(self)

    # The primitives below are the only code that mutates a graph. They assume
    # the operation checked its preconditions and emit exactly one change each.
    def _emit(
        self,
        kind: ChangeKind,
        nodes: frozenset[str] = frozenset(),
        layers: frozenset[str] = frozenset(),
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.changed.emit(Change(kind, nodes, layers, detail or {}, graph=self))

    def _insert_node(self, node: Node, layer: Layer | None, index: int | None) -> None:
        if layer is not None:
            self._layers[layer.name] = layer
            self._layer_nodes[layer.name] = []
        if index is None or index >= len(self._nodes):
            self._nodes[node.id] = node
        else:
            items = list(self._nodes.items())
            items.insert(index, (node.id, node))
            self._nodes = dict(items)
        self._wires.add_node(node.id)
        self._sources[node.id] = {}
        if index is None or index >= len(self._nodes) - 1:
            self._layer_nodes[node.layer].append(node.id)  # appended: keeps graph order
        else:
            self._relink_layer(node.layer)
        self._order_cache = None
        self._emit(
            ChangeKind.ADD_NODE,
            frozenset({node.id}),
            frozenset({node.layer}) if layer else frozenset(),
            {"layer": node.layer},
        )

    def _delete_node(self, node_id: str) -> Layer | None:
        """Removes a node without wires; returns its layer if that went with it."""
        node = self._nodes.pop(node_id)
        self._wires.remove_node(node_id)
        del self._sources[node_id]
        self._layer_nodes[node.layer].remove(node_id)
        removed = None
        if not self._layer_nodes[node.layer]:
            del self._layer_nodes[node.layer]
            removed = self._layers.pop(node.layer)
        self._order_cache = None
        self._emit(
            ChangeKind.REMOVE_NODE,
            frozenset({node_id}),
            frozenset({node.layer}) if removed else frozenset(),
            {"layer": node.layer},
        )
        return removed

    def _relink_layer(self, layer_name: str) -> None:
        self._layer_nodes[layer_name] = [
            n for n, node in self._nodes.items() if node.layer == layer_name
        ]

    def _add_wire(self, edge: Edge) -> None:
        self._wires.add_edge(edge.src, edge.dst, key=edge.dst_port, src_port=edge.src_port)
        self._sources[edge.dst][edge.dst_port] = PortRef(edge.src, edge.src_port)
        self._order_cache = None
        self._emit(ChangeKind.CONNECT, frozenset({edge.dst}), detail={"edge": edge})

    def _remove_wire(self, dst: str, dst_port: int) -> Edge:
        (src, data) = next(
            (s, d) for s, _, k, d in self._wires.in_edges(dst, keys=True, data=True) if k == dst_port
        )
        edge = Edge(src, data["src_port"], dst, dst_port)
        self._wires.remove_edge(src, dst, key=dst_port)
        del self._sources[dst][dst_port]
        self._order_cache = None
        self._emit(ChangeKind.DISCONNECT, frozenset({dst}), detail={"edge": edge})
        return edge

    def _set_config(self, layer_name: str, key: str, value: Any) -> None:
        config = self._layers[layer_name].config
        if value is MISSING:
            config.pop(key, None)
        else:
            config[key] = value
        self._emit(
            ChangeKind.SET_PARAM,
            frozenset(self._layer_nodes[layer_name]),
            frozenset({layer_name}),
            {"key": key},
        )

    def _rename_layer(self, old: str, new: str) -> None:
        layer = self._layers.pop(old)
        layer.name = new
        self._layers = {**self._layers, new: layer}
        self._layer_nodes[new] = self._layer_nodes.pop(old)
        for node_id in self._layer_nodes[new]:
            self._nodes[node_id].layer = new
        self._emit(
            ChangeKind.RENAME,
            frozenset(self._layer_nodes[new]),
            frozenset({old, new}),
            {"old": old, "new": new},
        )

    def _set_node_layer(self, node_id: str, layer_name: str, layer: Layer | None) -> Layer | None:
        """Points a node at another layer (adding ``layer`` first if given)."""
        node = self._nodes[node_id]
        old = node.layer
        if layer is not None:
            self._layers[layer.name] = layer
            self._layer_nodes[layer.name] = []
        node.layer = layer_name
        self._relink_layer(layer_name)
        self._relink_layer(old)
        removed = None
        if not self._layer_nodes[old]:
            del self._layer_nodes[old]
            removed = self._layers.pop(old)
        self._emit(ChangeKind.SET_NODE_LAYER, frozenset({node_id}), frozenset({old, layer_name}))
        return removed

    def _move_node(self, node_id: str, position: tuple[float, float]) -> None:
        self._nodes[node_id].position = position
        self._emit(ChangeKind.MOVE, detail={"node": node_id})

    def _set_io(self, inputs: list[str], outputs: list[PortRef]) -> None:
        self._inputs = list(inputs)
        self._outputs = [PortRef(*ref) for ref in outputs]
        self._emit(ChangeKind.SET_IO)

    def _set_structure(self, structure: dict[str, Any]) -> None:
        self._structure = copy.deepcopy(structure)
        self._emit(ChangeKind.SET_IO)

    @property
    def structure(self) -> dict[str, Any]:
        """How the inputs and outputs are grouped; see :mod:`builder_app.core.io_structure`."""
        return copy.deepcopy(self._structure)

    def _set_canvas(self, state: CanvasState) -> None:
        self._canvas = state
        self._emit(ChangeKind.SET_CANVAS)

    def _set_call(self, node_id: str, call: dict[str, Any] | None) -> None:
        self._nodes[node_id].call = copy.deepcopy(call)
        self._emit(ChangeKind.SET_CALL, frozenset({node_id}))

    # ---------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; equal dicts mean equal graphs (weights aside)."""
        seen: dict[str, None] = {}
        for node in self._nodes.values():
            seen.setdefault(node.layer)
        data = {
            "name": self.name,
            "layers": [self._layers[name].to_dict() for name in seen],
            "nodes": [node.to_dict() for node in self._nodes.values()],
            "edges": [list(edge) for edge in self.edges()],
            "inputs": list(self._inputs),
            "outputs": [list(ref) for ref in self._outputs],
            "canvas": self._canvas.to_dict(self._nodes),
        }
        if self._structure:  # format 4: only when not the default
            data["structure"] = copy.deepcopy(self._structure)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelGraph:
        """Builds a graph from :meth:`to_dict` output, checking every invariant.

        Raises:
            GraphError: The description is malformed; the message says where.
        """
        _expect(data, dict, "a model graph")
        name = data.get("name", "model")
        _expect(name, str, "the model name")
        graph = cls(name)
        layers: dict[str, Layer] = {}
        for item in _list(data, "layers"):
            layer = Layer.from_dict(item)
            problem = check_layer_name(layer.name)
            if problem:
                raise GraphError(problem)
            if layer.name in layers:
                raise GraphError(f"two layers are named '{layer.name}'")
            layers[layer.name] = layer
        used: set[str] = set()
        for item in _list(data, "nodes"):
            node = Node.from_dict(item)
            if node.id in graph._nodes:
                raise GraphError(f"two nodes have the id '{node.id}'")
            if node.layer not in layers:
                raise GraphError(f"node '{node.id}' calls an unknown layer '{node.layer}'")
            graph._nodes[node.id] = node
            graph._wires.add_node(node.id)
            graph._sources[node.id] = {}
            used.add(node.layer)
        unused = [n for n in layers if n not in used]
        if unused:
            raise GraphError(f"layer '{unused[0]}' is never called")
        graph._layers = layers
        graph._layer_nodes = {name: [] for name in layers}
        for node_id, node in graph._nodes.items():  # one pass, in graph order
            graph._layer_nodes[node.layer].append(node_id)
        for item in _list(data, "edges"):
            if not (
                isinstance(item, list)
                and len(item) == 4
                and isinstance(item[0], str)
                and isinstance(item[2], str)
                and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in item[1::2])
            ):
                raise GraphError(f"malformed edge {json.dumps(item)[:80]}")
            edge = Edge(*item)
            for end in (edge.src, edge.dst):
                if end not in graph._nodes:
                    raise GraphError(f"an edge refers to an unknown node '{end}'")
            graph._check_ports(edge)
            if edge.dst_port in graph._sources[edge.dst]:
                raise GraphError(f"input {edge.dst_port} of node '{edge.dst}' is wired twice")
            graph._wires.add_edge(edge.src, edge.dst, key=edge.dst_port, src_port=edge.src_port)
            graph._sources[edge.dst][edge.dst_port] = PortRef(edge.src, edge.src_port)
        if not nx.is_directed_acyclic_graph(graph._wires):
            raise GraphError("the wires form a cycle")
        inputs = _list(data, "inputs")
        for node_id in inputs:
            if not isinstance(node_id, str) or node_id not in graph._nodes or not graph.is_input(node_id):
                raise GraphError(f"model input {json.dumps(node_id)[:40]} is not an Input node")
        if len(set(inputs)) != len(inputs):
            raise GraphError("a model input is listed twice")
        outputs = []
        for ref in _list(data, "outputs"):
            if not (
                isinstance(ref, list)
                and len(ref) == 2
                and isinstance(ref[0], str)
                and ref[0] in graph._nodes
                and isinstance(ref[1], int)
                and not isinstance(ref[1], bool)
                and ref[1] >= 0
            ):
                raise GraphError(f"malformed model output {json.dumps(ref)[:80]}")
            graph._check_output_port(ref[0], ref[1], "model output")
            outputs.append(PortRef(ref[0], ref[1]))
        graph._inputs = list(inputs)
        graph._outputs = outputs
        if "canvas" in data:
            graph._canvas = CanvasState.from_dict(data["canvas"], graph._nodes)
        if "structure" in data:
            from builder_app.core.io_structure import checked_structure

            graph._structure = checked_structure(data["structure"])
        return graph

    def _check_ports(self, edge: Edge) -> None:
        """Refuses a wire whose ports are beyond what its nodes may have (PortError)."""
        self._check_output_port(edge.src, edge.src_port, "output")
        if edge.dst_port >= MAX_PORTS:  # the usual case is answered without ports.py
            from builder_app.core.ports import max_input_port

            limit = max_input_port(self, edge.dst) + 1
            if edge.dst_port >= limit:
                raise PortError(
                    f"input {_shown(edge.dst_port)} of node '{edge.dst}' is beyond the {limit} ports it may have"
                )

    def _check_output_port(self, node_id: str, port: int, what: str) -> None:
        if port >= MAX_PORTS:
            from builder_app.core.ports import max_output_port

            limit = max_output_port(self, node_id) + 1
            if port >= limit:
                raise PortError(f"{what} {_shown(port)} of node '{node_id}' is beyond the {limit} ports it may have")

    def clone(self) -> ModelGraph:
        """A deep copy with no subscribers; weights are copied."""
        twin = ModelGraph.from_dict(self.to_dict())
        for name, layer in self._layers.items():
            twin._layers[name].weights = (
                [w.copy() for w in layer.weights] if layer.weights is not None else None
            )
            twin._layers[name].assets = dict(layer.assets) if layer.assets is not None else None
            if layer.submodel is not None:
                twin._layers[name].submodel = layer.submodel.clone()
        return twin


class _Missing:
    """Marks a config key that is absent (set_param to it deletes the key)."""

    _instance = None

    def __new__(cls):  # noqa: D102 - a singleton
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __deepcopy__(self, memo):
        return self


MISSING: Any = _Missing()


def _expect(value: object, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise GraphError(f"{what} should be a {kind.__name__}, not {type(value).__name__}")


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise GraphError(f"'{key}' should be a list")
    return value
