"""The operations that change a model graph, each returning its exact inverse.

Every edit goes through one of these: the editor's undo stack wraps them, tests
drive them without a window. ``op.apply(graph)`` either changes the graph and
returns the operation that undoes it, or raises :class:`GraphError` and leaves the
graph exactly as it was.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from builder_app.core.graph import (
    INPUT_CLASS,
    MAX_PORTS,
    MISSING,
    SUBMODEL_CLASS,
    CanvasState,
    ConfigError,
    CycleError,
    Edge,
    GraphError,
    GroupingError,
    Layer,
    LayerNameError,
    ModelGraph,
    Node,
    NotFoundError,
    PortError,
    PortRef,
    SharingError,
    call_problem,
    check_layer_name,
    checked_position,
)


class Op:
    """An edit of a graph."""

    def apply(self, graph: ModelGraph) -> Op:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Batch(Op):
    """Several operations as one: all apply, or none does.

    Any exception from a step (a refusal, or a bug) rolls back the steps before it.
    """

    ops: Sequence[Op]
    label: str = ""

    def apply(self, graph: ModelGraph) -> Op:
        inverses: list[Op] = []
        try:
            for op in self.ops:
                inverses.append(op.apply(graph))
        except BaseException:
            for inverse in reversed(inverses):
                inverse.apply(graph)
            raise
        return Batch(list(reversed(inverses)), self.label)


@dataclass
class AddNode(Op):
    """Adds a node.

    With ``layer`` the node calls that new layer; without, it calls the existing
    layer ``node.layer`` again (a shared layer).
    """

    node: Node
    layer: Layer | None = None
    index: int | None = None

    def apply(self, graph: ModelGraph) -> Op:
        if self.node.id in graph.nodes:
            raise GraphError(f"a node '{self.node.id}' already exists")
        if not isinstance(self.node.id, str) or not self.node.id:
            raise GraphError("a node needs an id")
        checked_position(self.node.position, f"node '{self.node.id}'")
        if self.node.call is not None:
            problem = call_problem(self.node.call, f"node '{self.node.id}'")
            if problem is not None:
                raise problem
        if self.layer is not None:
            if self.layer.name != self.node.layer:
                raise LayerNameError("the node and its new layer disagree on the layer name")
            problem = check_layer_name(self.layer.name)
            if problem:
                raise LayerNameError(problem)
            if self.layer.name in graph.layers:
                raise LayerNameError(f"a layer named '{self.layer.name}' already exists")
            _check_json(self.layer.config, f"the config of '{self.layer.name}'")
            if self.layer.submodel is not None and self.layer.submodel is graph:
                raise CycleError("a model cannot contain itself")
        elif self.node.layer not in graph.layers:
            raise NotFoundError(f"there is no layer '{self.node.layer}' to call")
        graph._insert_node(self.node, self.layer, self.index)
        return RemoveNode(self.node.id)


@dataclass
class RemoveNode(Op):
    """Removes a node with its wires; its layer goes too if this was its last call."""

    node_id: str

    def apply(self, graph: ModelGraph) -> Op:
        node = graph.node(self.node_id)
        index = list(graph.nodes).index(self.node_id)
        undo: list[Op] = []
        inputs, outputs = graph.explicit_inputs(), graph.explicit_outputs()
        if self.node_id in inputs or any(ref.node == self.node_id for ref in outputs):
            undo.append(
                SetModelIO(
                    [n for n in inputs if n != self.node_id],
                    [ref for ref in outputs if ref.node != self.node_id],
                ).apply(graph)
            )
        wires = [*graph.consumers_of(self.node_id), *_in_edges(graph, self.node_id)]
        for edge in wires:
            undo.append(Disconnect(edge.dst, edge.dst_port).apply(graph))
        removed_layer = graph._delete_node(self.node_id)
        undo.append(AddNode(node, removed_layer, index))
        return Batch(list(reversed(undo)))


@dataclass
class Connect(Op):
    """Wires output ``src_port`` of ``src`` into input ``dst_port`` of ``dst``."""

    src: str
    src_port: int
    dst: str
    dst_port: int

    def apply(self, graph: ModelGraph) -> Op:
        problem = can_connect(graph, self.src, self.src_port, self.dst, self.dst_port)
        if problem is not None:
            raise problem
        graph._add_wire(Edge(self.src, self.src_port, self.dst, self.dst_port))
        return Disconnect(self.dst, self.dst_port)


@dataclass
class Disconnect(Op):
    """Removes the wire into input ``dst_port`` of ``dst``."""

    dst: str
    dst_port: int

    def apply(self, graph: ModelGraph) -> Op:
        graph.node(self.dst)
        if self.dst_port not in graph.inputs_of(self.dst):
            raise PortError(f"input {self.dst_port} of '{graph.label(self.dst)}' is not connected")
        edge = graph._remove_wire(self.dst, self.dst_port)
        return Connect(*edge)


@dataclass
class SetParam(Op):
    """Sets one entry of a layer's config (``MISSING`` removes it).

    The new value is checked as a file's config is (:func:`param_problems`): a
    value that brings a problem the config did not have is refused, whoever
    pushes it. The inverse restores the old value unchecked (``checked=False``),
    so undo is never refused.
    """

    layer: str
    key: str
    value: Any
    checked: bool = True

    def apply(self, graph: ModelGraph) -> Op:
        layer = graph.layer(self.layer)
        if not isinstance(self.key, str) or not self.key:
            raise ConfigError("a parameter needs a name")
        if self.key == "name":
            raise ConfigError("rename a layer with Rename, not as a parameter")
        if self.value is not MISSING:
            _check_json(self.value, f"parameter '{self.key}' of '{self.layer}'")
            if self.checked:
                problems = param_problems(layer, self.key, self.value)
                if problems:
                    raise ConfigError(f"{self.key} of '{self.layer}': {'; '.join(problems)}")
        old = layer.config.get(self.key, MISSING)
        graph._set_config(self.layer, self.key, copy.deepcopy(self.value))
        return SetParam(self.layer, self.key, old, checked=False)


@dataclass
class RenameLayer(Op):
    """Renames a layer (all its calls follow)."""

    old: str
    new: str

    def apply(self, graph: ModelGraph) -> Op:
        graph.layer(self.old)
        problem = check_layer_name(self.new)
        if problem:
            raise LayerNameError(problem)
        if self.new != self.old and self.new in graph.layers:
            raise LayerNameError(f"a layer named '{self.new}' already exists")
        graph._rename_layer(self.old, self.new)
        return RenameLayer(self.new, self.old)


@dataclass
class SetNodeLayer(Op):
    """Makes a node call another layer.

    Either an existing one of the same class (share weights) or ``new_layer``
    (a copy: unshare).
    """

    node_id: str
    layer_name: str
    new_layer: Layer | None = None

    def apply(self, graph: ModelGraph) -> Op:
        node = graph.node(self.node_id)
        current = graph.layer(node.layer)
        if self.layer_name == node.layer:
            raise SharingError(f"'{graph.label(self.node_id)}' already calls '{node.layer}'")
        if self.new_layer is not None:
            if self.new_layer.name != self.layer_name:
                raise LayerNameError("the node and its new layer disagree on the layer name")
            problem = check_layer_name(self.layer_name)
            if problem:
                raise LayerNameError(problem)
            if self.layer_name in graph.layers:
                raise LayerNameError(f"a layer named '{self.layer_name}' already exists")
            target = self.new_layer
        else:
            target = graph.layer(self.layer_name)
        if target.class_name != current.class_name:
            raise SharingError(
                f"'{graph.label(self.node_id)}' is a {current.class_name}; "
                f"it cannot share '{target.name}', a {target.class_name}"
            )
        if (target.class_name == INPUT_CLASS) and self.new_layer is None:
            raise SharingError("Input layers cannot be shared")
        old_name = node.layer
        removed = graph._set_node_layer(self.node_id, self.layer_name, self.new_layer)
        return SetNodeLayer(self.node_id, old_name, removed)


@dataclass
class MoveNode(Op):
    node_id: str
    position: tuple[float, float]

    def apply(self, graph: ModelGraph) -> Op:
        old = graph.node(self.node_id).position
        position = checked_position(self.position, f"'{graph.label(self.node_id)}'")
        graph._move_node(self.node_id, position)
        return MoveNode(self.node_id, old)


@dataclass
class SetCanvas(Op):
    """Sets how the graph is drawn (layout direction, display blocks); nothing it computes."""

    state: CanvasState

    def apply(self, graph: ModelGraph) -> Op:
        # The file reader's checks: a direction it knows, no node in two blocks.
        checked = CanvasState.from_dict(self.state.to_dict(graph.nodes), graph.nodes)
        if checked.to_dict(graph.nodes) != self.state.to_dict(graph.nodes):
            raise GroupingError("a layer cannot be in two display blocks")
        old = graph.canvas
        graph._set_canvas(self.state)
        return SetCanvas(old)


@dataclass
class SetModelIO(Op):
    """Sets the model's explicit inputs (Input nodes, in order) and outputs."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[PortRef] = field(default_factory=list)

    def apply(self, graph: ModelGraph) -> Op:
        if len(set(self.inputs)) != len(self.inputs):
            raise PortError("a model input is listed twice")
        for node_id in self.inputs:
            graph.node(node_id)
            if not graph.is_input(node_id):
                raise PortError(f"'{graph.label(node_id)}' is not an Input node")
        outputs = [PortRef(*ref) for ref in self.outputs]
        for ref in outputs:
            graph.node(ref.node)
            if not isinstance(ref.port, int) or isinstance(ref.port, bool) or ref.port < 0:
                raise PortError(f"output port {ref.port!r} is not a port number")
            problem = _port_bound(graph, ref.node, ref.port, output=True)
            if problem is not None:
                raise problem
        old = (graph.explicit_inputs(), graph.explicit_outputs())
        graph._set_io(list(self.inputs), outputs)
        return SetModelIO(*old)


@dataclass
class SetCall(Op):
    """Sets how a node's input ports map onto its call's arguments."""

    node_id: str
    call: dict[str, Any] | None

    def apply(self, graph: ModelGraph) -> Op:
        old = graph.node(self.node_id).call
        if self.call is not None:
            problem = call_problem(self.call, f"'{graph.label(self.node_id)}'")
            if problem is not None:
                raise problem
            _check_json(self.call, f"the call of '{graph.label(self.node_id)}'")
        graph._set_call(self.node_id, self.call)
        return SetCall(self.node_id, old)


# ----------------------------------------------------------------- helpers
def can_connect(graph: ModelGraph, src: str, src_port: int, dst: str, dst_port: int) -> GraphError | None:
    """Why a wire from (src, src_port) to (dst, dst_port) would be refused, or None.

    The refusal is typed: :class:`NotFoundError`, :class:`PortError` or
    :class:`CycleError` (a wire from a node into itself is a cycle too).
    """
    for node_id in (src, dst):
        if node_id not in graph.nodes:
            return NotFoundError(f"there is no node '{node_id}'")
    for port in (src_port, dst_port):
        if not isinstance(port, int) or isinstance(port, bool) or port < 0:
            return PortError(f"port {port!r} is not a port number")
    bound = _port_bound(graph, src, src_port, output=True) or _port_bound(graph, dst, dst_port, output=False)
    if bound is not None:
        return bound
    if graph.is_input(dst):
        return PortError(f"'{graph.label(dst)}' is an Input: it takes no inputs")
    taken = graph.inputs_of(dst).get(dst_port)
    if taken is not None:
        return PortError(
            f"input {dst_port} of '{graph.label(dst)}' is already connected "
            f"to '{graph.label(taken.node)}'"
        )
    return _cycle(graph, src, dst)


def _port_bound(graph: ModelGraph, node_id: str, port: int, *, output: bool) -> PortError | None:
    """Why ``port`` (a port number) is beyond what the node may have, or None."""
    if port < MAX_PORTS:
        return None  # the usual case, answered without reading the node
    from builder_app.core.ports import max_input_port, max_output_port

    highest = (max_output_port if output else max_input_port)(graph, node_id)
    if port <= highest:
        return None
    text = str(port) if port < 10**30 else f"{str(port)[:12]}..."
    return PortError(
        f"{'output' if output else 'input'} {text} of '{graph.label(node_id)}' is beyond "
        f"the {highest + 1} {'outputs' if output else 'inputs'} a node may have"
    )


def _cycle(graph: ModelGraph, src: str, dst: str, without: Edge | None = None) -> CycleError | None:
    """The cycle a wire src -> dst would close (ignoring the wire ``without``), or None."""
    if src == dst:
        return CycleError(f"'{graph.label(src)}' cannot take its own output")
    path = graph.path_between(dst, src, without=without)
    if path is not None:
        loop = " -> ".join(f"'{graph.label(n)}'" for n in [*path, dst])
        return CycleError(f"that wire would make a cycle: {loop}")
    return None


def rewire_problem(graph: ModelGraph, edge: Edge, detached: Edge | None = None) -> GraphError | None:
    """Why dropping a wire would be refused, or None.

    Dropping ``edge`` on an input that is already connected replaces that input's
    wire; with ``detached`` (a wire picked up by its input end) that wire goes too.
    So the only refusals are a missing node, a bad port, an Input as target and
    a cycle in the graph as it would be after the drop.
    """
    if edge == detached:
        return None
    for node_id in (edge.src, edge.dst):
        if node_id not in graph.nodes:
            return NotFoundError(f"there is no node '{node_id}'")
    for port in (edge.src_port, edge.dst_port):
        if not isinstance(port, int) or isinstance(port, bool) or port < 0:
            return PortError(f"port {port!r} is not a port number")
    bound = _port_bound(graph, edge.src, edge.src_port, output=True) or _port_bound(
        graph, edge.dst, edge.dst_port, output=False
    )
    if bound is not None:
        return bound
    if graph.is_input(edge.dst):
        return PortError(f"'{graph.label(edge.dst)}' is an Input: it takes no inputs")
    # The picked-up wire is gone after the drop, so a path through it closes no
    # cycle. (The wire the drop replaces runs into edge.dst, which a path from
    # edge.dst never re-enters.)
    return _cycle(graph, edge.src, edge.dst, without=detached)


def rewire(graph: ModelGraph, edge: Edge | None, detached: Edge | None = None) -> Batch | None:
    """The steps that drop a wire: disconnect the picked-up one, replace what ``edge`` lands on.

    ``edge`` None with ``detached`` set removes that wire (dropped on empty canvas).
    Returns None when the drop changes nothing.

    Raises:
        GraphError: The drop is refused (see :func:`rewire_problem`).
    """
    if edge is not None:
        problem = rewire_problem(graph, edge, detached)
        if problem is not None:
            raise problem
    if edge is not None and edge == detached:
        return None
    steps: list[Op] = []
    if detached is not None:
        steps.append(Disconnect(detached.dst, detached.dst_port))
    if edge is not None:
        taken = graph.inputs_of(edge.dst).get(edge.dst_port)
        vacated = detached is not None and (edge.dst, edge.dst_port) == (detached.dst, detached.dst_port)
        if taken is not None and not vacated:
            steps.append(Disconnect(edge.dst, edge.dst_port))
        steps.append(Connect(*edge))
    if not steps:
        return None
    return Batch(steps, "Connect" if edge is not None else "Disconnect")


def _in_edges(graph: ModelGraph, node_id: str) -> list[Edge]:
    return [Edge(ref.node, ref.port, node_id, port) for port, ref in graph.inputs_of(node_id).items()]


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} is not plain data: {exc}") from None


def param_problems(layer: Layer, key: str, value: Any) -> list[str]:
    """Problems the config check finds with ``key=value`` that the layer's config did not have.

    Checked with the catalog's :func:`~builder_app.core.catalog.check_config` (the
    same check a file's config goes through) once the catalog is loaded; before,
    and for sub-models, nothing can be said and nothing is refused.
    """
    if layer.submodel is not None or layer.class_name == SUBMODEL_CLASS:
        return []
    from builder_app.core import catalog

    if not catalog.is_loaded():
        return []
    before = set(catalog.check_config(layer.class_name, layer.config))
    after = catalog.check_config(layer.class_name, {**layer.config, key: value})
    return [p for p in after if p not in before]


# ----------------------------------------------------- composite operations
def add_layer(
    graph: ModelGraph,
    class_name: str,
    config: dict[str, Any],
    *,
    name: str | None = None,
    position: tuple[float, float] = (0.0, 0.0),
    submodel: ModelGraph | None = None,
) -> AddNode:
    """An AddNode for a new layer with a fresh node id and a unique Keras name."""
    from builder_app.core.graph import snake_case

    base = name or ("input_layer" if class_name == INPUT_CLASS else snake_case(class_name))
    layer_name = name if name is not None else graph.unique_layer_name(base)
    node = Node(graph.new_node_id(), layer_name, position)
    return AddNode(node, Layer(layer_name, class_name, copy.deepcopy(config), submodel))


def call_again(graph: ModelGraph, node_id: str, position: tuple[float, float] | None = None) -> AddNode:
    """A second call of a node's layer: same weights, new node."""
    node = graph.node(node_id)
    if graph.is_input(node_id):
        raise SharingError("Input layers cannot be called again")
    x, y = node.position
    return AddNode(Node(graph.new_node_id(), node.layer, position or (x + 40.0, y + 40.0)))


def unshare(graph: ModelGraph, node_id: str) -> SetNodeLayer:
    """Gives a shared node its own copy of the layer (weights copied)."""
    node = graph.node(node_id)
    if len(graph.nodes_of_layer(node.layer)) < 2:
        raise SharingError(f"'{node.layer}' is not shared")
    name = graph.unique_layer_name(node.layer)
    return SetNodeLayer(node_id, name, graph.layer(node.layer).clone(name))


def group_as_submodel(
    graph: ModelGraph,
    node_ids: Sequence[str],
    input_types: dict[PortRef, tuple[list[int | None], str]],
    name: str | None = None,
) -> Batch:
    """Replaces the selected nodes by one call of a new sub-model holding them.

    Args:
        graph: The graph to edit.
        node_ids: The nodes to group; their layers must not be shared outside them.
        input_types: For every tensor flowing into the selection, its shape (with
            the batch dimension) and dtype, which the sub-model's Input nodes take.
        name: The sub-model's layer name (default: a fresh ``"functional"``).

    Raises:
        GraphError: The selection cannot be grouped; the message says why.
    """
    selected = list(dict.fromkeys(node_ids))
    if not selected:
        raise GroupingError("select the nodes to group first")
    chosen = set(selected)
    for node_id in selected:
        graph.node(node_id)
        if graph.is_input(node_id):
            raise GroupingError(
                f"'{graph.label(node_id)}' is an Input of the model; group the layers after it"
            )
    for layer_name in {graph.node(n).layer for n in selected}:
        outside = [n for n in graph.nodes_of_layer(layer_name) if n not in chosen]
        if outside:
            raise GroupingError(
                f"layer '{layer_name}' is also called outside the selection "
                f"('{graph.label(outside[0])}'); select all its calls"
            )
    # A node outside the selection that both depends on it and feeds it would
    # make the sub-model call depend on itself.
    for between in graph.descendants(chosen) - chosen:
        if graph.descendants([between]) & chosen:
            raise GroupingError(
                f"the selection is not contiguous: '{graph.label(between)}' lies between selected nodes"
            )
    order = [n for n in graph.topological_order() if n in chosen]
    inner = ModelGraph(name or graph.unique_layer_name("functional"))
    sub_name = inner.name
    if check_layer_name(sub_name) or (sub_name in graph.layers):
        raise LayerNameError(f"'{sub_name}' is not a free layer name")

    incoming: list[PortRef] = []
    outgoing: list[PortRef] = []
    for node_id in order:
        for ref in graph.inputs_of(node_id).values():
            if ref.node not in chosen and ref not in incoming:
                incoming.append(ref)
    outer_outputs = graph.explicit_outputs()
    for node_id in order:
        consumers = graph.consumers_of(node_id)
        refs = sorted(
            {PortRef(e.src, e.src_port) for e in consumers if e.dst not in chosen}
            | {ref for ref in outer_outputs if ref.node == node_id}
            # A node that feeds nothing is a model output when none are explicit.
            | ({PortRef(node_id, 0)} if not consumers and not outer_outputs else set())
        )
        outgoing.extend(refs)
    if not outgoing:
        outgoing = [PortRef(order[-1], 0)]

    # Build the inner graph directly: it is new, nobody observes it yet.
    input_nodes: dict[PortRef, str] = {}
    for i, ref in enumerate(incoming):
        if ref not in input_types:
            raise GroupingError(
                f"the shape of the tensor from '{graph.label(ref.node)}' is not known yet"
            )
        shape, dtype = input_types[ref]
        layer_name = inner.unique_layer_name(f"{graph.node(ref.node).layer}_in")
        inner_id = inner.new_node_id(taken=chosen)
        x, y = graph.node(order[0]).position
        AddNode(
            Node(inner_id, layer_name, (x - 200.0, y + 120.0 * i)),
            Layer(layer_name, INPUT_CLASS, {"batch_shape": list(shape), "dtype": dtype}),
        ).apply(inner)
        input_nodes[ref] = inner_id
    for node_id in order:
        node = graph.node(node_id)
        layer = graph.layer(node.layer)
        AddNode(
            Node(node.id, node.layer, node.position, copy.deepcopy(node.call)),
            layer.clone() if layer.name not in inner.layers else None,
        ).apply(inner)
    for node_id in order:
        for port, ref in graph.inputs_of(node_id).items():
            src = PortRef(input_nodes[ref], 0) if ref in input_nodes else ref
            Connect(src.node, src.port, node_id, port).apply(inner)
    SetModelIO([input_nodes[ref] for ref in incoming], outgoing).apply(inner)

    xs = [graph.node(n).position[0] for n in order]
    ys = [graph.node(n).position[1] for n in order]
    call_id = graph.new_node_id()
    ops: list[Op] = [
        AddNode(
            Node(call_id, sub_name, (sum(xs) / len(xs), sum(ys) / len(ys))),
            Layer(sub_name, SUBMODEL_CLASS, {"trainable": True}, inner),
        )
    ]
    rewired: list[Op] = []
    for node_id in order:
        for edge in graph.consumers_of(node_id):
            if edge.dst not in chosen:
                k = outgoing.index(PortRef(edge.src, edge.src_port))
                rewired.append(Connect(call_id, k, edge.dst, edge.dst_port))
    for k, ref in enumerate(incoming):
        rewired.append(Connect(ref.node, ref.port, call_id, k))
    new_outputs = [
        PortRef(call_id, outgoing.index(ref)) if ref.node in chosen else ref for ref in outer_outputs
    ]
    ops.extend(RemoveNode(n) for n in order)
    ops.extend(rewired)
    if new_outputs != outer_outputs:
        ops.append(SetModelIO(graph.explicit_inputs(), new_outputs))
    return Batch(ops, f"Group as sub-model '{sub_name}'")


def ungroup(graph: ModelGraph, node_id: str) -> Batch:
    """Replaces a call of a sub-model by the sub-model's layers."""
    node = graph.node(node_id)
    layer = graph.layer(node.layer)
    inner = layer.submodel
    if inner is None:
        raise GroupingError(f"'{graph.label(node_id)}' is not a sub-model")
    calls = graph.nodes_of_layer(layer.name)
    if len(calls) > 1:
        raise GroupingError(
            f"sub-model '{layer.name}' is called {len(calls)} times; ungrouping one call "
            "would split its weights"
        )
    inner_inputs = inner.model_inputs()
    feeding = graph.inputs_of(node_id)
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    taken_ids: list[str] = []
    taken_names: list[str] = []
    ops: list[Op] = []
    cx, cy = node.position
    order = [n for n in inner.topological_order() if n not in inner_inputs]
    xs = [inner.node(n).position[0] for n in order] or [0.0]
    ys = [inner.node(n).position[1] for n in order] or [0.0]
    ox, oy = sum(xs) / len(xs), sum(ys) / len(ys)
    for inner_id in order:
        inner_node = inner.node(inner_id)
        new_id = graph.new_node_id(taken=taken_ids)
        taken_ids.append(new_id)
        ids[inner_id] = new_id
        first_call = inner_node.layer not in names
        if first_call:
            names[inner_node.layer] = graph.unique_layer_name(
                inner_node.layer, taken=[*taken_names, *(n for n in graph.layers if n != layer.name)]
            )
            taken_names.append(names[inner_node.layer])
        px, py = inner_node.position
        ops.append(
            AddNode(
                Node(new_id, names[inner_node.layer], (cx + px - ox, cy + py - oy), copy.deepcopy(inner_node.call)),
                inner.layer(inner_node.layer).clone(names[inner_node.layer]) if first_call else None,
            )
        )

    def outer_ref(ref: PortRef) -> PortRef | None:
        if ref.node in inner_inputs:
            return feeding.get(inner_inputs.index(ref.node))
        return PortRef(ids[ref.node], ref.port)

    for inner_id in order:
        for port, ref in inner.inputs_of(inner_id).items():
            src = outer_ref(ref)
            if src is not None:
                ops.append(Connect(src.node, src.port, ids[inner_id], port))
    inner_outputs = inner.model_outputs()
    consumers = graph.consumers_of(node_id)
    outer_outputs = graph.explicit_outputs()
    ops.append(RemoveNode(node_id))
    for edge in consumers:
        if edge.src_port < len(inner_outputs):
            src = outer_ref(inner_outputs[edge.src_port])
            if src is not None:
                ops.append(Connect(src.node, src.port, edge.dst, edge.dst_port))
    if any(ref.node == node_id for ref in outer_outputs):
        mapped = []
        for ref in outer_outputs:
            if ref.node != node_id:
                mapped.append(ref)
            elif ref.port < len(inner_outputs):
                src = outer_ref(inner_outputs[ref.port])
                if src is not None:
                    mapped.append(src)
        ops.append(SetModelIO(graph.explicit_inputs(), mapped))
    return Batch(ops, f"Ungroup '{layer.name}'")
