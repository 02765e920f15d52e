"""Shape inference exactly as Keras computes it, kept up to date incrementally.

Keras itself does the arithmetic: one Keras layer instance is kept per graph layer,
built once on the shapes of its first call, and every node's output is computed
with the layer's own ``compute_output_shape`` / ``compute_output_spec``, the same
methods ``Layer.__call__`` uses on symbolic tensors.

Creating weights is what makes building a Keras model slow (EfficientNetB7: 4 s),
so layers are built with ``add_weight`` recording the declared shapes instead of
creating variables: parameter counts come from those shapes. A layer whose build
needs real variables falls back to a real build. After an edit, only nodes whose
inputs or layer changed recompute, and propagation stops where outputs are
unchanged.

This module is the incremental engine: what to recompute, when, and what each
node's result is. Making and calling the Keras objects is
:mod:`builder_app.core.keras_build`; the sentences it puts on nodes are
:mod:`builder_app.core.messages`; the check of a wire being dragged is
:mod:`builder_app.core.wire_check`. Keras is imported lazily (on the first
:meth:`ShapeEngine.update`); this module never imports Qt.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from builder_app.core import catalog, keras_compat
from builder_app.core.events import Change, ChangeKind
from builder_app.core.graph import INPUT_CLASS, ModelGraph, PortRef
from builder_app.core.keras_build import (
    OPERATION,
    LayerState,
    Ports,
    Shape,
    TensorType,
    as_shape,
    build_layer,
    call_facts,
    call_key,
    call_outputs,
    check_output_sizes,
    check_submodel_inputs,
    import_keras,
    instantiate,
    is_operation,
    keras_call_arguments,
    plain_outputs,
    runs_here,
)
from builder_app.core.messages import (
    INTEGER_INPUT_LAYERS,
    NodeError,
    clean_message,
    count_of,
    describe_failure,
    node_warnings,
    shared_input_message,
)

#: The usual call: one tensor, nothing else.
_SINGLE_CALL: dict[str, Any] = {"args": [{"port": 0}], "kwargs": {}}


@dataclass
class NodeResult:
    """What shape inference says about one node.

    Attributes:
        outputs: One TensorType per output, or None while unknown (an error here
            or upstream).
        params: Parameters of the node's layer (shared by all its calls), or None.
        trainable_params: The trainable part of ``params``.
        errors: Sentences naming what is wrong and where; empty when fine.
        warnings: Things Keras accepts but the user should know.
        blocked_by: The upstream nodes whose errors keep this one unknown.
    """

    outputs: list[TensorType] | None = None
    params: int | None = None
    trainable_params: int | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)

    @property
    def output_shapes(self) -> list[Shape]:
        return [t.shape for t in self.outputs or []]


def _declared_outputs(config: Mapping[str, Any]) -> list[TensorType] | None:
    """The output shapes the user declared for an opaque node (None if none or malformed)."""
    from builder_app.core.custom_code import declared_shapes

    shapes = declared_shapes(config)
    return None if shapes is None else [TensorType(shape, "float32") for shape in shapes]


class _Blocked(Exception):
    """An input is unknown because of an error upstream."""

    def __init__(self, nodes: list[str]):
        super().__init__("blocked")
        self.nodes = nodes


class ShapeEngine:
    """Keeps the shapes, parameter counts and errors of every node of a graph.

    The engine subscribes to the graph's changes and recomputes lazily: call
    :meth:`update` (or read a result) after editing.

    Args:
        graph: The graph to follow.
    """

    def __init__(self, graph: ModelGraph):
        self.graph = graph
        self.version = 0
        self._results: dict[str, NodeResult] = {}
        self._states: dict[str, LayerState] = {}
        self._subengines: dict[str, tuple[ShapeEngine, int]] = {}
        self._dirty: set[str] = set(graph.nodes)
        self._stale_layers: set[str] = set(graph.layers)
        self._model_errors: list[str] = []
        self._pending_builds: set[str] = set()
        self._defer_builds = False
        self._ports: dict[str, Any] = {}
        # Nodes whose result changed since the owner last asked (take_changes):
        # whoever triggers an update, the views hear about every change once.
        self._unreported: set[str] = set()
        self._model_stale = False
        # Which call of each shared layer came first in the last walk's order (it
        # builds the layer), and the order it was read from.
        self._firsts: dict[str, str] = {}
        self._firsts_order: list[str] | None = None
        graph.changed.connect(self._on_change)

    def close(self) -> None:
        """Stops following the graph."""
        self.graph.changed.disconnect(self._on_change)
        for engine, _ in self._subengines.values():
            engine.close()

    def rebind(self, graph: ModelGraph) -> None:
        """Follows ``graph`` instead of the graph the results were computed on.

        ``graph`` must equal that one (``to_dict()``): then every result stays valid.
        This lets a big model's shapes be computed on a copy in another thread and
        handed to the editor's graph. Sub-models' engines are rebuilt on next use.
        """
        self.graph.changed.disconnect(self._on_change)
        self.graph = graph
        graph.changed.connect(self._on_change)
        for name, (engine, _) in list(self._subengines.items()):
            layer = graph.layers.get(name)
            if layer is not None and layer.submodel is not None:
                engine.rebind(layer.submodel)
                self._subengines[name] = (engine, engine.version)
            else:
                engine.close()
                del self._subengines[name]

    # ----------------------------------------------------------------- events
    def _on_change(self, change: Change) -> None:
        kind = change.kind
        if not kind.changes_shapes:
            return
        self.version += 1
        if kind is ChangeKind.SET_IO:
            # Which tensors are outputs changed: no node recomputes, but the
            # model's own errors ("no output"...) may differ.
            self._model_stale = True
            return
        for name in change.layers:
            self._stale_layers.add(name)
            self._dirty.update(self.graph.nodes_of_layer(name))
        layer = change.detail.get("layer")
        if layer is not None:
            # The other calls of a shared layer: their labels ("call 2") and
            # which of them builds the layer may have changed.
            self._dirty.update(self.graph.nodes_of_layer(layer))
        if kind in _RELABELS:
            # Which calls each layer has changed: read the first calls again.
            self._firsts_order = None
            # Labels changed (a rename, a call added or gone): the messages of the
            # calls' consumers name them too.
            relabeled = set(change.nodes) if kind is ChangeKind.RENAME else set()
            for name in (*change.layers, *([layer] if layer is not None else ())):
                relabeled.update(self.graph.nodes_of_layer(name))
            for node_id in relabeled:
                if node_id in self.graph.nodes:
                    self._dirty.update(self.graph.successors(node_id))
        for node_id in change.nodes:
            if node_id in self.graph.nodes:
                self._dirty.add(node_id)
                # Which call of a shared layer builds it may have changed.
                self._dirty.update(self.graph.nodes_of_layer(self.graph.node(node_id).layer))
            else:
                self._results.pop(node_id, None)
                self._dirty.discard(node_id)

    # ---------------------------------------------------------------- reading
    def result(self, node_id: str) -> NodeResult:
        self.update()
        return self._results[node_id]

    def results(self) -> dict[str, NodeResult]:
        self.update()
        return dict(self._results)

    def peek(self, node_id: str) -> NodeResult | None:
        """The last computed result of a node, without updating (None if never computed)."""
        return self._results.get(node_id)

    def take_changes(self) -> dict[ModelGraph, set[str]]:
        """The nodes whose result changed since the last call, by graph.

        Covers this engine's graph and its sub-models' graphs, whatever triggered
        the update (a read such as :meth:`total_params` updates too), so a view
        that refreshes these nodes never misses a change.
        """
        found: dict[ModelGraph, set[str]] = {}
        if self._unreported:
            found[self.graph] = self._unreported
            self._unreported = set()
        for engine, _ in self._subengines.values():
            for graph, nodes in engine.take_changes().items():
                found.setdefault(graph, set()).update(nodes)
        return found

    def engine_for(self, graph: ModelGraph) -> ShapeEngine | None:
        """The engine of ``graph``: this one, or the one it keeps for a (nested) sub-model.

        One engine owns the shapes of every sub-model the model holds; a sub-model's
        tab reads the same results the calling node was computed from.
        """
        if graph is self.graph:
            return self
        # A sub-model tab asks for every node it paints: the engines kept already
        # answer without walking the model's layers or updating anything.
        for name, (engine, _) in self._subengines.items():
            layer = self.graph.layers.get(name)
            if layer is not None and layer.submodel is engine.graph:
                found = engine.engine_for(graph) if _holds(engine.graph, graph) else None
                if found is not None:
                    return found
        for name, layer in self.graph.layers.items():
            if layer.submodel is not None and _holds(layer.submodel, graph):
                return self._subengine(name).engine_for(graph)
        return None

    def errors(self) -> list[tuple[str | None, str]]:
        """Every error as (node id or None for the model, message), in graph order."""
        self.update()
        found: list[tuple[str | None, str]] = [(None, m) for m in self._model_errors]
        for node_id in self.graph.topological_order():
            found.extend((node_id, m) for m in self._results[node_id].errors)
        return found

    def is_valid(self) -> bool:
        return not self.errors()

    def total_params(self) -> int:
        """Parameters of the model: each layer counted once, however often called."""
        return self._sum_params("params")

    def trainable_params(self) -> int:
        return self._sum_params("trainable_params")

    def _sum_params(self, attribute: str) -> int:
        self.update()
        total = 0
        for name in self.graph.layers:
            calls = self.graph.nodes_of_layer(name)
            value = getattr(self._results[calls[0]], attribute) if calls else None
            total += value or 0
        return total

    def output_types(self) -> list[TensorType | None]:
        """The model's output tensors (None where unknown)."""
        self.update()
        found = []
        for ref in self._model_output_refs():
            outputs = self._results[ref.node].outputs
            found.append(outputs[ref.port] if outputs and ref.port < len(outputs) else None)
        return found

    def input_types(self) -> list[TensorType | None]:
        self.update()
        found = []
        for node_id in self.graph.model_inputs():
            outputs = self._results[node_id].outputs
            found.append(outputs[0] if outputs else None)
        return found

    def input_names(self) -> list[str]:
        """The layer names of the model's Input nodes, in Keras order."""
        return [self.graph.node(n).layer for n in self.graph.model_inputs()]

    def _model_output_refs(self) -> list[PortRef]:
        counts = {n: len(r.outputs or [None]) for n, r in self._results.items()}
        return self.graph.model_outputs(counts)

    # ---------------------------------------------------------------- updating
    def update(self) -> set[str]:
        """Brings every result up to date: shapes, parameter counts and errors.

        Returns:
            The ids of nodes whose result changed.
        """
        changed = self.update_shapes()
        # Layers whose input shapes changed were not rebuilt by update_shapes:
        # rebuild them now (new parameter counts, build-time checks) and carry
        # any difference downstream.
        while self._pending_builds:
            for name in self._pending_builds:
                state = self._states.get(name)
                calls = self.graph.nodes_of_layer(name)
                if state is not None and calls:
                    state.build_key = None
                    self._dirty.update(calls)
            self._pending_builds.clear()
            changed |= self._propagate(defer_builds=False)
        return changed

    def update_shapes(self) -> set[str]:
        """Brings output shapes up to date as fast as possible.

        A layer already built for other input shapes computes its outputs with
        ``compute_output_shape`` right away and is rebuilt by the next
        :meth:`update`; until then its parameter count may be stale. The editor
        paints after this and calls :meth:`update` when idle.
        """
        for name, (engine, seen) in list(self._subengines.items()):
            if name not in self.graph.layers or self.graph.layers[name].submodel is not engine.graph:
                engine.close()
                del self._subengines[name]
            elif engine.version != seen:
                self._dirty.update(self.graph.nodes_of_layer(name))
        if not self._dirty and not self._stale_layers:
            if self._model_stale:
                self._check_model()
            return set()
        import_keras()
        for name in self._stale_layers:
            self._states.pop(name, None)
            self._pending_builds.discard(name)
        self._stale_layers.clear()
        return self._propagate(defer_builds=True)

    def _propagate(self, *, defer_builds: bool) -> set[str]:
        # The cycle collector, run mid-update, costs more than the update itself
        # (it walks every Keras object); let it run after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._walk(defer_builds=defer_builds)
        finally:
            if collecting:
                gc.enable()

    def _walk(self, *, defer_builds: bool) -> set[str]:
        order = self.graph._topology()[0]
        index = self.graph.topological_index()
        changed: set[str] = set()
        dirty = self._dirty
        self._defer_builds = defer_builds
        layer_nodes = self.graph._layer_nodes  # read-only
        if order is not self._firsts_order:
            self._check_firsts(layer_nodes, index)
            self._firsts_order = order
        firsts = self._firsts
        nodes = self.graph._nodes
        # Walk in topological order; recomputing a node may dirty later nodes.
        for node_id in order:
            if node_id not in dirty:
                continue
            dirty.discard(node_id)
            old = self._results.get(node_id)
            new = _sized(self.graph, node_id, self._compute(node_id, index))
            self._results[node_id] = new
            layer = nodes[node_id].layer
            if firsts.get(layer) == node_id:
                # The first call (re)built the shared layer: the other calls
                # read its build (parameters, input spec, build error).
                dirty.update(layer_nodes[layer])
            if old is None or old != new:
                changed.add(node_id)
                self._unreported.add(node_id)
                if old is None or old.outputs != new.outputs or old.blocked_by != new.blocked_by:
                    # Consumers read the outputs, or (when unknown) whose errors block them.
                    dirty.update(self.graph.successors(node_id))
        dirty.clear()
        self._check_model()
        return changed

    def _check_firsts(self, layer_nodes: Mapping[str, list[str]], index: Mapping[str, int]) -> None:
        """Dirties the calls of every shared layer whose first call in ``index`` changed."""
        firsts = {}
        for name, calls in layer_nodes.items():
            if len(calls) > 1:
                first = firsts[name] = min(calls, key=index.__getitem__)
                if self._firsts.get(name) != first:
                    self._dirty.update(calls)
        self._firsts = firsts

    def _check_model(self) -> None:
        self._model_stale = False
        errors = []
        graph = self.graph
        if not graph.model_inputs():
            errors.append("the model has no Input node")
        refs = self._model_output_refs()
        if not refs:
            errors.append("the model has no output: nothing leaves the graph")
        for ref in refs:
            outputs = self._results[ref.node].outputs
            if outputs is not None and ref.port >= len(outputs):
                errors.append(
                    f"model output {ref.port} of '{graph.label(ref.node)}' does not exist: "
                    f"it has {len(outputs)} output(s)"
                )
        self._model_errors = errors

    # ------------------------------------------------------------ one node
    def _compute(self, node_id: str, index: Mapping[str, int]) -> NodeResult:
        graph = self.graph
        layer = graph.layer_of(node_id)
        if layer.class_name == INPUT_CLASS:
            if len(graph._layer_nodes[layer.name]) > 1:
                # Keras makes one tensor of an InputLayer: a second node cannot be exported.
                return NodeResult(errors=[shared_input_message(graph, node_id)])
            return _input_result(layer.name, layer.config)
        try:
            inputs = self._gather_inputs(node_id)
        except _Blocked as blocked:
            # Unknown inputs: nothing is known here (a count from an earlier
            # build could be stale), and the error belongs upstream.
            self._unbuild(layer.name, node_id, index)
            return NodeResult(blocked_by=blocked.nodes)
        except NodeError as exc:
            self._unbuild(layer.name, node_id, index)
            return NodeResult(errors=[str(exc)])
        if layer.submodel is not None:
            return self._compute_submodel_call(node_id, inputs)
        if is_operation(layer.class_name):
            return self._compute_operation(node_id, inputs)
        state = self._state(layer.name)
        if state.error:
            # An opaque node (its code is missing) may have its outputs declared by the user.
            return NodeResult(errors=[state.error], outputs=_declared_outputs(layer.config))
        calls = graph._layer_nodes[layer.name]  # read-only; no copy on the hot path
        first = calls[0] if len(calls) == 1 else min(calls, key=index.__getitem__)
        result = NodeResult()
        try:
            ports = self._ports_of(layer.class_name)
            call = graph.node(node_id).call
            try:
                if call is None:
                    _check_arity(graph, node_id, layer.class_name, ports, inputs)
                else:
                    _check_template(graph, node_id, call, inputs)
            except NodeError:
                self._unbuild(layer.name, node_id, index)
                raise
            if first == node_id:
                key = (tuple(t for _, t in inputs.values()), call_key(call))
                if state.build_key == key and state.build_error is None:
                    outputs = state.build_outputs
                elif self._defer_builds and state.build_key is not None and state.build_error is None:
                    # Built before for other inputs: shapes now, rebuild later.
                    self._pending_builds.add(layer.name)
                    outputs = plain_outputs(state.instance, state.pristine_input_spec, call, ports, inputs)
                else:
                    if state.build_key != key:
                        state.build_key = key
                        self._build(state, call, ports, inputs)
                    if state.build_error is not None:
                        raise state.build_error
                    outputs = state.build_outputs
            else:
                if state.build_key is None or state.build_error is not None:
                    raise NodeError(
                        f"'{graph.label(node_id)}' calls the shared layer '{layer.name}', "
                        f"which its first call '{graph.label(first)}' could not build"
                    )
                outputs = plain_outputs(state.instance, state.instance.input_spec, call, ports, inputs)
            result.params, result.trainable_params = state.params, state.trainable_params
            result.outputs = outputs
            if layer.class_name in INTEGER_INPUT_LAYERS:
                result.warnings = node_warnings(graph, node_id, layer.class_name, inputs)
            if not runs_here(state, layer.config):
                # The shapes are right and the model exports; only running it here fails.
                result.warnings.append(keras_compat.CHANNELS_FIRST_ON_CPU)
        except NodeError as exc:
            result.errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - Keras raises many types; all are node errors
            result.errors.append(describe_failure(self.graph, node_id, layer.class_name, inputs, exc))
        return result

    def _unbuild(self, layer_name: str, node_id: str, index: Mapping[str, int]) -> None:
        """Forgets a shared layer's build when its first call stops before building.

        A cold pass never builds it then, and its other calls say so; an earlier
        build (on other inputs, by another first call) must not stand in.
        """
        state = self._states.get(layer_name)
        calls = self.graph._layer_nodes[layer_name]
        if state is None or state.build_key is None or len(calls) < 2:
            return
        if min(calls, key=index.__getitem__) == node_id:
            state.build_key = None
            state.build_error = None
            self._pending_builds.discard(layer_name)

    def _ports_of(self, class_name: str):
        ports = self._ports.get(class_name)
        if ports is None:
            try:
                ports = catalog.layer_spec(class_name).ports
            except KeyError:
                from builder_app.core import custom_code

                ports = custom_code.ports(class_name)
                if ports is None:
                    raise
            self._ports[class_name] = ports
        return ports

    def _gather_inputs(self, node_id: str) -> dict[int, tuple[PortRef, TensorType]]:
        found = {}
        blocked = []
        sources = self.graph._sources[node_id]  # read-only here; no copy on the hot path
        for port, ref in sorted(sources.items()) if len(sources) > 1 else sources.items():
            source = self._results.get(ref.node)
            if source is None or source.outputs is None:
                blocked.extend(source.blocked_by if source and source.blocked_by else [ref.node])
                continue
            if ref.port >= len(source.outputs):
                raise NodeError(
                    f"input {port} comes from output {ref.port} of "
                    f"'{self.graph.label(ref.node)}', which has only "
                    f"{len(source.outputs)} output(s)"
                )
            found[port] = (ref, source.outputs[ref.port])
        if blocked:
            raise _Blocked(list(dict.fromkeys(blocked)))
        return found

    def _state(self, layer_name: str) -> LayerState:
        state = self._states.get(layer_name)
        if state is None:
            state = self._states[layer_name] = instantiate(self.graph.layers[layer_name])
        return state

    def _build(self, state: LayerState, call, ports, inputs) -> None:
        state.build_error = None
        try:
            args, kwargs = keras_call_arguments(call, ports, inputs)
            state.build_outputs = build_layer(state, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to build is the node's error
            state.params = state.trainable_params = state.build_outputs = None
            state.build_error = exc

    def _compute_operation(self, node_id: str, inputs) -> NodeResult:
        """A ``keras.ops`` call recorded in a functional model (e.g. ``x + 1``)."""
        layer = self.graph.layer_of(node_id)
        state = self._state(layer.name)
        if state.error:
            return NodeResult(errors=[state.error])
        node = self.graph.node(node_id)
        try:
            _check_template(self.graph, node_id, node.call or _SINGLE_CALL, inputs)
            ports = Ports("single", ("x",), 1, None if node.call is not None else 1)
            args, kwargs = keras_call_arguments(node.call, ports, inputs)
            outputs = call_outputs(state.instance, args, kwargs)
        except NodeError as exc:
            return NodeResult(errors=[str(exc)])
        except Exception as exc:  # noqa: BLE001 - Keras's own refusal, on the node
            return NodeResult(errors=[describe_failure(self.graph, node_id, layer.class_name, inputs, exc)])
        return NodeResult(outputs=outputs, params=0, trainable_params=0)

    # ------------------------------------------------------------ sub-models
    def _subengine(self, layer_name: str) -> ShapeEngine:
        layer = self.graph.layers[layer_name]
        entry = self._subengines.get(layer_name)
        if entry is None or entry[0].graph is not layer.submodel:
            if entry is not None:
                entry[0].close()
            entry = (ShapeEngine(layer.submodel), -1)
        engine = entry[0]
        engine.update()
        self._subengines[layer_name] = (engine, engine.version)
        return engine

    def _compute_submodel_call(self, node_id: str, inputs) -> NodeResult:
        graph = self.graph
        layer = graph.layer_of(node_id)
        engine = self._subengine(layer.name)
        result = NodeResult(params=engine.total_params(), trainable_params=engine.trainable_params())
        if not layer.config.get("trainable", True):
            result.trainable_params = 0
        problems = engine.errors()
        if problems:
            where, message = problems[0]
            at = f" at '{engine.graph.label(where)}'" if where else ""
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            result.errors.append(f"sub-model '{layer.name}' is invalid{at}: {message}{more}")
            return result
        expected = engine.input_types()
        missing = [i for i in range(len(expected)) if i not in inputs]
        extra = [p for p in inputs if p >= len(expected)]
        if missing:
            result.errors.append(
                f"sub-model '{layer.name}' needs {len(expected)} input(s); "
                f"input {missing[0]} is not connected"
            )
            return result
        if extra:
            result.errors.append(
                f"sub-model '{layer.name}' takes {len(expected)} input(s), but input "
                f"{extra[0]} is connected to '{graph.label(inputs[extra[0]][0].node)}'"
            )
            return result
        given = [inputs[i][1] for i in range(len(expected))]
        try:
            if given != expected:
                # What calling a Keras functional model checks first: its Inputs' specs.
                check_submodel_inputs(layer.name, engine.input_names(), expected, given)
            if given == expected:
                result.outputs = [t for t in engine.output_types() if t is not None]
            else:
                result.outputs = engine.run(given)
        except Exception as exc:  # noqa: BLE001 - reported on the calling node
            result.errors.append(
                f"sub-model '{layer.name}' cannot take these inputs: {clean_message(exc)}"
            )
        return result

    def run(self, inputs: list[TensorType]) -> list[TensorType]:
        """Output types when the (already built) model is called on ``inputs``.

        This is what calling a Keras functional model on new tensors does: every
        layer keeps its weights, and each call checks its inputs and computes its
        outputs.
        """
        self.update()
        graph = self.graph
        values: dict[PortRef, TensorType] = {}
        for node_id, tensor in zip(graph.model_inputs(), inputs, strict=True):
            values[PortRef(node_id, 0)] = tensor
        for node_id in graph.topological_order():
            if graph.is_input(node_id):
                continue
            layer = graph.layer_of(node_id)
            node_inputs = {
                port: (ref, values[ref]) for port, ref in graph.inputs_of(node_id).items()
            }
            if layer.submodel is not None:
                outputs = self._subengine(layer.name).run(
                    [node_inputs[i][1] for i in range(len(node_inputs))]
                )
            else:
                state = self._state(layer.name)
                ports = (
                    Ports("single", ("x",), 1, None)
                    if is_operation(layer.class_name)
                    else self._ports_of(layer.class_name)
                )
                spec = OPERATION if is_operation(layer.class_name) else state.instance.input_spec
                outputs = plain_outputs(state.instance, spec, graph.node(node_id).call, ports, node_inputs)
            for port, tensor in enumerate(outputs):
                values[PortRef(node_id, port)] = tensor
        return [values[ref] for ref in self._model_output_refs()]


#: Changes after which some node's label ("dense (call 2)") may read differently.
_RELABELS = {ChangeKind.RENAME, ChangeKind.ADD_NODE, ChangeKind.REMOVE_NODE, ChangeKind.SET_NODE_LAYER}


def _input_result(name: str, config: Mapping[str, Any]) -> NodeResult:
    shape = config.get("batch_shape")
    if shape is None and config.get("batch_input_shape") is not None:
        shape = config["batch_input_shape"]
    if shape is None and config.get("shape") is not None:
        shape = [config.get("batch_size"), *config["shape"]]
    if not isinstance(shape, list | tuple) or not all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape
    ):
        return NodeResult(
            errors=[f"Input '{name}': shape {json.dumps(shape)} is not a list of sizes (or null)"]
        )
    if len(shape) == 0:
        return NodeResult(errors=[f"Input '{name}': the shape needs at least the batch dimension"])
    dtype = config.get("dtype") or "float32"
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name", "float32")
    try:
        dtype = import_keras().backend.standardize_dtype(dtype)
    except Exception:  # noqa: BLE001
        return NodeResult(errors=[f"Input '{name}': unknown dtype {dtype!r}"])
    return NodeResult(outputs=[TensorType(as_shape(shape), dtype)], params=0, trainable_params=0)


def _sized(graph: ModelGraph, node_id: str, result: NodeResult) -> NodeResult:
    """The result, or an error when an output is too big to ever be made (see MAX_ELEMENTS).

    Shapes are computed without tensors, so any size is inferred; exporting with
    ``--check``, training or running the model would allocate it.
    """
    if result.outputs:
        problem = check_output_sizes(result.outputs)
        if problem is not None:
            return NodeResult(
                params=result.params,
                trainable_params=result.trainable_params,
                errors=[f"'{graph.label(node_id)}': {problem}"],
            )
    return result


def _holds(graph: ModelGraph, wanted: ModelGraph) -> bool:
    """Whether ``wanted`` is ``graph`` or a sub-model's graph nested in it."""
    if graph is wanted:
        return True
    return any(
        layer.submodel is not None and _holds(layer.submodel, wanted) for layer in graph.layers.values()
    )


def _check_template(graph: ModelGraph, node_id: str, call, inputs) -> None:
    """A recorded call needs exactly the ports its template names."""
    wanted = call_facts(call)[2]
    missing = sorted(wanted - set(inputs))
    if missing:
        raise NodeError(f"input {missing[0]} of '{graph.label(node_id)}' is not connected")
    extra = sorted(set(inputs) - wanted)
    if extra:
        source = graph.label(inputs[extra[0]][0].node)
        raise NodeError(
            f"'{graph.label(node_id)}' takes {count_of(len(wanted), 'input')}, "
            f"but input {extra[0]} is connected to '{source}'"
        )


def _check_arity(graph: ModelGraph, node_id: str, class_name: str, ports, inputs) -> None:
    if len(inputs) == 1 and 0 in inputs and ports.min_inputs <= 1:
        return  # the common case: one tensor into port 0
    label = graph.label(node_id)
    connected = sorted(inputs)
    n = len(connected)
    if ports.max_inputs is not None:
        extra = [p for p in connected if p >= ports.max_inputs]
        if extra:
            source = graph.label(inputs[extra[0]][0].node)
            raise NodeError(
                f"{class_name} '{label}' takes {count_of(ports.max_inputs, 'input')}, "
                f"but input {extra[0]} is connected to '{source}'"
            )
    if n < ports.min_inputs:
        need = "needs" if ports.max_inputs == ports.min_inputs else "needs at least"
        have = "none is" if n == 0 else f"{n} {'is' if n == 1 else 'are'}"
        names = f" ({', '.join(ports.names[: ports.min_inputs])})" if ports.style == "positional" else ""
        raise NodeError(
            f"{class_name} '{label}' {need} {count_of(ports.min_inputs, 'input')}{names}; {have} connected"
        )
    gaps = [p for p in range(max(connected, default=-1)) if p not in inputs]
    if gaps and ports.style != "positional":
        raise NodeError(f"input {gaps[0]} of '{label}' is not connected, but input {connected[-1]} is")


__all__ = ["NodeResult", "ShapeEngine", "TensorType"]
