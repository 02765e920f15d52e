"""One-click fixes for a node's shape error, each checked by the shape engine before it is offered.

A node the engine reports an error on gets candidate fixes built from the shapes
around it: a Flatten or GlobalAveragePooling before a Dense fed an image, a
Cropping / ZeroPadding / UpSampling making a merge's spatial sizes agree, a 1x1
convolution making its channels agree, ``padding="same"`` on a convolution or
pooling whose output came out too small, a Reshape keeping the element count. A
candidate is offered only if the engine, run on it, agrees: the node's error is
gone and no node that was fine before has an error now.

The check runs on a scratch graph holding only the nodes the fix can affect: the
nodes it touches, the erring node, and, growing outwards, the consumers of every
node whose output changed; tensors flowing in from the rest of the model become
Input nodes of their known shape. So the cost follows the size of the fix, not
of the model. Nodes that were blocked by the error (downstream of it) are not
judged: an error they show once unblocked was hidden, not made, by the fix.

Each fix is one :class:`~builder_app.core.ops.Batch`, one undo step. Nothing here
applies anything to the graph it is asked about. No Qt here.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from builder_app.core import catalog, ops
from builder_app.core.graph import INPUT_CLASS, GraphError, Layer, ModelGraph, Node, PortRef
from builder_app.core.keras_build import TensorType
from builder_app.core.messages import ELEMENTWISE_MERGES
from builder_app.core.shapes import NodeResult, ShapeEngine
from builder_app.core.text import format_shape

#: Merges whose inputs must agree in their spatial sizes.
MERGES = ELEMENTWISE_MERGES | {"Concatenate"}
#: Layers a Dense's vector passes through unchanged in rank, when looking upstream for it.
_PASS_THROUGH = {
    "Activation", "Dropout", "BatchNormalization", "LayerNormalization", "ReLU", "LeakyReLU",
    "PReLU", "ELU", "Softmax", "GaussianNoise", "GaussianDropout", "AlphaDropout", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D",
}  # fmt: skip
#: How far upstream (in single-input nodes) a Dense or a shrinking convolution is looked for.
_UPSTREAM_STEPS = 6
#: A fix whose check would take more nodes than this is not offered (it is not verified).
MAX_CHECKED_NODES = 200
_NDIM = re.compile(r"expected (min_|max_)?ndim=(\d+)")


@dataclass(frozen=True)
class QuickFix:
    """One fix of a node's shape error.

    Attributes:
        title: What it does, for a button: ``"Insert Flatten before 'dense_1'"``.
        op: The operation that applies it (a Batch: one undo step).
    """

    title: str
    op: ops.Op


@dataclass
class _Candidate:
    title: str
    op: ops.Batch
    #: Existing nodes whose inputs or layer the fix changes.
    touched: set[str] = field(default_factory=set)
    #: Existing nodes the fix wires from.
    sources: set[str] = field(default_factory=set)
    #: Nodes the fix adds.
    added: set[str] = field(default_factory=set)


def quick_fixes(graph: ModelGraph, engine: ShapeEngine, node_id: str) -> list[QuickFix]:
    """Fixes for the node's errors, each verified by the shape engine; empty when there are none.

    Reads the engine's last results (:meth:`ShapeEngine.peek`) without updating it:
    call it once the engine is up to date. A fix is offered when, applied to a
    scratch copy of the affected part of the graph with a fresh engine, the node
    has no error and no node that was fine before has one.
    """
    result = engine.peek(node_id)
    if node_id not in graph.nodes or result is None or not result.errors:
        return []
    found: list[QuickFix] = []
    titles: set[str] = set()
    for candidate in _candidates(graph, engine, node_id, result):
        if candidate.title in titles:
            continue
        if _verified(graph, engine, node_id, candidate):
            titles.add(candidate.title)
            found.append(QuickFix(candidate.title, candidate.op))
    return found


# ---------------------------------------------------------------- candidates
def _candidates(
    graph: ModelGraph, engine: ShapeEngine, node_id: str, result: NodeResult
) -> list[_Candidate]:
    inputs = _input_types(graph, engine, node_id)
    if inputs is None:
        return []
    class_name = graph.layer_of(node_id).class_name
    found: list[_Candidate] = []
    if class_name in MERGES and len(inputs) > 1:
        found += _spatial_fixes(graph, node_id, class_name, inputs)
        if class_name != "Concatenate":
            found += _channel_fixes(graph, node_id, class_name, inputs)
    found += _vector_fixes(graph, engine, node_id, class_name, inputs, result.errors)
    found += _reshape_fixes(graph, node_id, inputs, result.errors)
    found += _padding_fixes(graph, engine, node_id, class_name, inputs)
    return found


def _input_types(
    graph: ModelGraph, engine: ShapeEngine, node_id: str
) -> dict[int, tuple[PortRef, TensorType]] | None:
    """The known tensor on each input port of a node; None when one is unknown."""
    found = {}
    for port, ref in sorted(graph.inputs_of(node_id).items()):
        source = engine.peek(ref.node)
        if source is None or not source.outputs or ref.port >= len(source.outputs):
            return None
        found[port] = (ref, source.outputs[ref.port])
    return found


def _known(shape: Sequence[int | None]) -> bool:
    return all(isinstance(d, int) for d in shape[1:])


def _spatial_fixes(graph, node_id, class_name, inputs) -> list[_Candidate]:
    """Cropping, ZeroPadding and UpSampling on a merge's inputs whose spatial sizes disagree."""
    shapes = {port: tensor.shape for port, (_, tensor) in inputs.items()}
    ranks = {len(s) for s in shapes.values()}
    if (
        len(ranks) != 1
        or not 3 <= next(iter(ranks)) <= 5
        or not all(_known(s) for s in shapes.values())
    ):
        return []
    rank = next(iter(ranks))
    k = rank - 2
    axes = list(range(1, rank - 1))
    if class_name == "Concatenate":
        axis = graph.layer_of(node_id).config.get("axis", -1)
        if isinstance(axis, int) and axis % rank in axes:
            axes.remove(axis % rank)  # sizes on the concatenation axis may differ
    spatial = {port: [s[a] for a in axes] for port, s in shapes.items()}
    if len({tuple(v) for v in spatial.values()}) < 2:
        return []
    smallest = [min(v[i] for v in spatial.values()) for i in range(len(axes))]
    largest = [max(v[i] for v in spatial.values()) for i in range(len(axes))]
    found = []

    def amounts(port: int, target: list[int], sign: int) -> list[list[int]]:
        full = [[0, 0] for _ in range(k)]
        for i, axis in enumerate(axes):
            diff = sign * (spatial[port][i] - target[i])
            full[axis - 1] = [diff // 2, diff - diff // 2]
        return full

    def size_text(target: list[int]) -> str:
        return "×".join(str(d) for d in target)

    # Crop the larger inputs down to the smallest sizes.
    crops = [p for p in spatial if spatial[p] != smallest]
    found.append(
        _insert_on_inputs(
            graph, node_id, inputs,
            {p: (f"Cropping{k}D", {"cropping": _per_rank(amounts(p, smallest, 1), k)}) for p in crops},
            f"Crop {_names(graph, inputs, crops)} to {size_text(smallest)} (Cropping{k}D) before '{graph.label(node_id)}'",
        )
    )  # fmt: skip
    pads = [p for p in spatial if spatial[p] != largest]
    found.append(
        _insert_on_inputs(
            graph, node_id, inputs,
            {p: (f"ZeroPadding{k}D", {"padding": _per_rank(amounts(p, largest, -1), k)}) for p in pads},
            f"Pad {_names(graph, inputs, pads)} to {size_text(largest)} (ZeroPadding{k}D) before '{graph.label(node_id)}'",
        )
    )  # fmt: skip
    factors = {}
    for port in pads:
        sizes = spatial[port]
        if all(s > 0 and t % s == 0 for s, t in zip(sizes, largest, strict=True)):
            factor = [1] * k
            for i, axis in enumerate(axes):
                factor[axis - 1] = largest[i] // sizes[i]
            factors[port] = factor
    if len(factors) == len(pads):
        steps = {
            p: (f"UpSampling{k}D", {"size": f[0] if k == 1 else f}) for p, f in factors.items()
        }
        scale = {tuple(f) for f in factors.values()}
        by = "×".join(map(str, next(iter(scale)))) if len(scale) == 1 else "up"
        found.append(
            _insert_on_inputs(
                graph, node_id, inputs, steps,
                f"Upsample {_names(graph, inputs, pads)} by {by} (UpSampling{k}D) before '{graph.label(node_id)}'",
            )
        )  # fmt: skip
    return [c for c in found if c is not None]


def _per_rank(amounts: list[list[int]], k: int):
    """Cropping1D / ZeroPadding1D take one pair; the 2-D and 3-D ones a pair per axis."""
    return amounts[0] if k == 1 else amounts


def _channel_fixes(graph, node_id, class_name, inputs) -> list[_Candidate]:
    """A 1x1 convolution (a Dense for vectors) bringing a merge's inputs to one channel count."""
    shapes = {port: tensor.shape for port, (_, tensor) in inputs.items()}
    ranks = {len(s) for s in shapes.values()}
    if len(ranks) != 1 or not 2 <= next(iter(ranks)) <= 5:
        return []
    rank = next(iter(ranks))
    if len({tuple(s[:-1]) for s in shapes.values()}) != 1:
        return []
    channels = [s[-1] for s in shapes.values()]
    if any(not isinstance(c, int) for c in channels) or len(set(channels)) < 2:
        return []
    found = []
    for target in dict.fromkeys(channels):
        ports = [p for p, s in shapes.items() if s[-1] != target]
        if rank == 2:
            steps = {p: ("Dense", {"units": target}) for p in ports}
            what = f"a Dense ({target} units)"
        else:
            k = rank - 2
            one = [1] * k
            steps = {
                p: (
                    f"Conv{k}D",
                    {"filters": target, "kernel_size": one, "strides": one, "padding": "valid"},
                )
                for p in ports
            }
            what = f"a {'×'.join('1' * k)} Conv{k}D ({target} filters)"
        candidate = _insert_on_inputs(
            graph, node_id, inputs, steps,
            f"Project {_names(graph, inputs, ports)} to {target} channels with {what} before '{graph.label(node_id)}'",
        )  # fmt: skip
        if candidate is not None:
            found.append(candidate)
    return found


def _expected_ndims(errors: Iterable[str]) -> list[int]:
    """The ranks Keras's input checks asked for, read from the node's error messages."""
    return [int(m.group(2)) for text in errors for m in _NDIM.finditer(text)]


def _vector_fixes(graph, engine, node_id, class_name, inputs, errors) -> list[_Candidate]:
    """Flatten or GlobalAveragePooling where an image reaches what wanted a vector.

    Before the Dense upstream that was fed the image (a Dense applies to the last
    axis, so the rank stays and the error shows up later), else before the node.
    """
    wants_vector = 2 in _expected_ndims(errors)
    ranks = {len(t.shape) for _, t in inputs.values()}
    merge_of_vectors = class_name in MERGES and 2 in ranks
    if not (wants_vector or merge_of_vectors):
        return []
    found = []
    for port, (ref, tensor) in inputs.items():
        if len(tensor.shape) <= 2:
            continue
        where, shape = node_id, tensor.shape
        dense = _upstream(graph, ref.node, lambda n: graph.layer_of(n).class_name == "Dense")
        if dense is not None and 0 in graph.inputs_of(dense):
            fed = _output_shape(engine, graph.inputs_of(dense)[0])
            if fed is not None and len(fed) > 2:
                where, shape = dense, fed
        if shape is None or len(shape) <= 2:
            continue
        choices = [("Flatten", {})]
        if 3 <= len(shape) <= 5:
            choices.append((f"GlobalAveragePooling{len(shape) - 2}D", {}))
        for cls, config in choices:
            port_at = 0 if where != node_id else port
            candidate = _insert_before(
                graph, where, port_at, cls, config, f"Insert {cls} before '{graph.label(where)}'"
            )
            if candidate is not None:
                found.append(candidate)
    return found


def _reshape_fixes(graph, node_id, inputs, errors) -> list[_Candidate]:
    """A Reshape keeping the element count, to the rank the node's input check asked for."""
    found = []
    for rank in dict.fromkeys(_expected_ndims(errors)):
        if rank < 3:
            continue  # a vector: Flatten says it better
        for port, (_, tensor) in inputs.items():
            shape = tensor.shape
            if len(shape) == rank or not _known(shape):
                continue
            target = _reshaped(list(shape[1:]), rank - 1)
            if target is None:
                continue
            title = (
                f"Insert Reshape to {format_shape(tuple(target))} before '{graph.label(node_id)}'"
            )
            candidate = _insert_before(
                graph, node_id, port, "Reshape", {"target_shape": target}, title
            )
            if candidate is not None:
                found.append(candidate)
    return found


def _reshaped(sizes: list[int], rank: int) -> list[int] | None:
    """``sizes`` as ``rank`` sizes of the same product.

    Fewer by merging the leading ones; more by a square (cube) image of one
    channel when there is one size, else by trailing 1s.
    """
    if rank < 1 or not sizes:
        return None
    if len(sizes) > rank:
        return [math.prod(sizes[: len(sizes) - rank + 1]), *sizes[len(sizes) - rank + 1 :]]
    if len(sizes) == 1 and rank >= 3:
        spatial = rank - 1
        side = round(sizes[0] ** (1 / spatial))
        for s in (side - 1, side, side + 1):
            if s > 1 and s**spatial == sizes[0]:
                return [s] * spatial + [1]
    return sizes + [1] * (rank - len(sizes))


def _padding_fixes(graph, engine, node_id, class_name, inputs) -> list[_Candidate]:
    """``padding="same"`` on the node, or on a convolution or pooling upstream of a merge."""
    places = [node_id]
    if class_name in MERGES:
        for ref, _ in inputs.values():
            place = _upstream(graph, ref.node, lambda n: _pads_valid(graph, n), stop_at_match=False)
            places += place if isinstance(place, list) else []
    found = []
    for place in dict.fromkeys(places):
        if not _pads_valid(graph, place):
            continue
        layer = graph.layer_of(place)
        batch = ops.Batch([ops.SetParam(layer.name, "padding", "same")], "padding same")
        title = f"Set padding=\"same\" on '{layer.name}'"
        found.append(_Candidate(title, batch, touched=set(graph.nodes_of_layer(layer.name))))
    return found


def _pads_valid(graph: ModelGraph, node_id: str) -> bool:
    layer = graph.layer_of(node_id)
    if layer.config.get("padding", None) != "valid":
        return False
    try:
        spec = catalog.layer_spec(layer.class_name)
    except KeyError:
        return False
    return any(p.name == "padding" and "same" in (p.choices or ()) for p in spec.params)


def _upstream(graph: ModelGraph, start: str, match, *, stop_at_match: bool = True):
    """Walks up from ``start`` through single-input nodes.

    With ``stop_at_match`` the first node matching (through pass-through layers
    only), else every matching node on the chain.
    """
    node, seen, found = start, 0, []
    while seen < _UPSTREAM_STEPS and node is not None:
        if match(node):
            if stop_at_match:
                return node
            found.append(node)
        sources = graph.inputs_of(node)
        if len(sources) != 1 or graph.is_input(node):
            break
        if stop_at_match and graph.layer_of(node).class_name not in _PASS_THROUGH:
            break
        node = next(iter(sources.values())).node
        seen += 1
    return None if stop_at_match else found


def _output_shape(engine: ShapeEngine, ref: PortRef):
    result = engine.peek(ref.node)
    if result is None or not result.outputs or ref.port >= len(result.outputs):
        return None
    return result.outputs[ref.port].shape


def _names(graph: ModelGraph, inputs, ports: Iterable[int]) -> str:
    return " and ".join(f"'{graph.label(inputs[p][0].node)}'" for p in ports)


# ------------------------------------------------------------ building the ops
def _insert_on_inputs(
    graph, node_id, inputs, steps: dict[int, tuple[str, dict]], title: str
) -> _Candidate | None:
    """One layer inserted on each of several input wires of a node, as one batch."""
    if not steps:
        return None
    batch: list[ops.Op] = []
    candidate = _Candidate(title, ops.Batch(batch, title), touched={node_id})
    taken_ids: list[str] = []
    taken_names: list[str] = []
    for port, (class_name, config) in steps.items():
        part = _insert_steps(graph, node_id, port, class_name, config, taken_ids, taken_names)
        if part is None:
            return None
        steps_, source = part
        batch.extend(steps_)
        candidate.sources.add(source)
    candidate.added = set(taken_ids)
    return candidate


def _insert_before(
    graph, node_id: str, port: int, class_name: str, config: dict, title: str
) -> _Candidate | None:
    """One layer inserted on input ``port`` of a node."""
    sources = {p: (ref, None) for p, ref in graph.inputs_of(node_id).items()}
    return _insert_on_inputs(graph, node_id, sources, {port: (class_name, config)}, title)


def _insert_steps(graph, node_id, port, class_name, config, taken_ids, taken_names):
    """Add a layer between input ``port`` of ``node_id`` and what feeds it: the operations."""
    ref = graph.inputs_of(node_id).get(port)
    if ref is None:
        return None
    try:
        full = {**catalog.default_config(class_name), **config}
    except KeyError:
        return None
    from builder_app.core.graph import snake_case

    name = graph.unique_layer_name(snake_case(class_name), taken_names)
    new_id = graph.new_node_id(taken_ids)
    taken_names.append(name)
    taken_ids.append(new_id)
    (x0, y0), (x1, y1) = graph.node(ref.node).position, graph.node(node_id).position
    node = Node(new_id, name, ((x0 + x1) / 2, (y0 + y1) / 2))
    steps = [
        ops.AddNode(node, Layer(name, class_name, full)),
        ops.Disconnect(node_id, port),
        ops.Connect(ref.node, ref.port, new_id, 0),
        ops.Connect(new_id, 0, node_id, port),
    ]
    return steps, ref.node


# ---------------------------------------------------------------- verifying
def _verified(graph: ModelGraph, engine: ShapeEngine, node_id: str, candidate: _Candidate) -> bool:
    """Whether the fix, applied to a scratch copy of what it affects, clears the error and makes none."""
    scratch = _Scratch(graph, engine)
    index = graph.topological_index()
    try:
        for node in sorted(
            {node_id, *candidate.touched, *candidate.sources}, key=index.__getitem__
        ):
            scratch.add(node)
        # A copy: the operation's nodes and layers go into the model later, not shared with this.
        scratch.graph.apply(copy.deepcopy(candidate.op))
        # Outwards to a fixed point: the consumers of every node whose output changed,
        # while they were fine before. (A node fed by two changed branches may read a
        # stale Input until the second branch arrives, so nothing is judged before.)
        grew = True
        while grew:
            grew = False
            for changed in [n for n in scratch.real if _changed(engine, scratch.engine, n)]:
                for successor in graph.successors(changed):
                    if successor in scratch.real or not _was_fine(engine, successor):
                        continue
                    if len(scratch.graph.nodes) >= MAX_CHECKED_NODES:
                        return False
                    scratch.add(successor)
                    grew = True
        fixed = scratch.engine.result(node_id)
        if fixed.errors or fixed.outputs is None:
            return False
        judged = [n for n in scratch.real if n != node_id and _was_fine(engine, n)]
        for node in [*judged, *sorted(candidate.added)]:
            result = scratch.engine.result(node)
            if result.errors or result.outputs is None:
                return False
        return True
    except GraphError:  # a shape upstream unknown, or the fix refused: not verified
        return False
    finally:
        scratch.close()


def _was_fine(engine: ShapeEngine, node_id: str) -> bool:
    result = engine.peek(node_id)
    return result is not None and not result.errors and result.outputs is not None


def _changed(before: ShapeEngine, after: ShapeEngine, node_id: str) -> bool:
    """Whether a node's output differs from the model's (a node that now fails changed nothing yet)."""
    old, new = before.peek(node_id), after.result(node_id)
    return new.outputs is not None and (old is None or old.outputs != new.outputs)


class _Scratch:
    """A graph holding copies of some nodes of a model; what flows in from the rest is an Input.

    Node ids and layer names are the model's, so an operation built for the
    model applies here unchanged.
    """

    def __init__(self, model: ModelGraph, engine: ShapeEngine):
        self.model = model
        self.model_engine = engine
        self.graph = ModelGraph(name="quick_fix_check")
        self.engine = ShapeEngine(self.graph)
        self.real: list[str] = []
        #: A tensor of the model standing in as an Input here -> that Input's node id.
        self._boundary: dict[PortRef, str] = {}
        self._count = 0

    def close(self) -> None:
        self.engine.close()

    def add(self, node_id: str) -> None:
        """Copies a node of the model (its layer too, the first time) and wires it."""
        if node_id in self.graph.nodes:
            return
        model, graph = self.model, self.graph
        node = model.node(node_id)
        layer = model.layer(node.layer)
        new_layer = None
        if layer.name not in graph.layers:
            submodel = layer.submodel.clone() if layer.submodel is not None else None
            new_layer = Layer(layer.name, layer.class_name, dict(layer.config), submodel)
        graph.apply(ops.AddNode(Node(node.id, node.layer, node.position, node.call), new_layer))
        self.real.append(node_id)
        for port, ref in sorted(model.inputs_of(node_id).items()):
            source = (
                ref.node
                if ref.node in graph.nodes and ref.node in self.real
                else self._input_for(ref)
            )
            graph.apply(ops.Connect(source, ref.port if source == ref.node else 0, node_id, port))
        # Whoever took this node's outputs as an Input takes them from it now.
        for ref, stand_in in list(self._boundary.items()):
            if ref.node != node_id:
                continue
            for edge in graph.consumers_of(stand_in):
                graph.apply(ops.Disconnect(edge.dst, edge.dst_port))
                graph.apply(ops.Connect(node_id, ref.port, edge.dst, edge.dst_port))
            graph.apply(ops.RemoveNode(stand_in))
            del self._boundary[ref]

    def _input_for(self, ref: PortRef) -> str:
        stand_in = self._boundary.get(ref)
        if stand_in is not None:
            return stand_in
        result = self.model_engine.peek(ref.node)
        if result is None or not result.outputs or ref.port >= len(result.outputs):
            raise GraphError(f"the shape of '{self.model.label(ref.node)}' is unknown")
        tensor = result.outputs[ref.port]
        self._count += 1
        taken = [*self.model.nodes, *self.graph.nodes]
        node_id = f"qf{self._count}"
        while node_id in taken:
            self._count += 1
            node_id = f"qf{self._count}"
        name = self.model.unique_layer_name(f"quick_fix_input_{self._count}", self.graph.layers)
        config = {"batch_shape": list(tensor.shape), "dtype": tensor.dtype}
        self.graph.apply(ops.AddNode(Node(node_id, name), Layer(name, INPUT_CLASS, config)))
        self._boundary[ref] = node_id
        return node_id


__all__ = ["MAX_CHECKED_NODES", "QuickFix", "quick_fixes"]
