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

Keras is imported lazily (on the first :meth:`ShapeEngine.update`); this module
never imports Qt.
"""

from __future__ import annotations

import gc
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from builder_app.core import catalog, keras_compat
from builder_app.core.calls import call_arguments, template_ports
from builder_app.core.events import Change, ChangeKind
from builder_app.core.graph import INPUT_CLASS, ModelGraph, PortRef
from builder_app.core.text import format_shape

Shape = tuple[int | None, ...]

#: Layers that look up integer ids (a float input is cast, and worth a warning).
_INTEGER_INPUT_LAYERS = {"Embedding", "ReversibleEmbedding"}
#: Layers whose messages say "merge": their inputs must agree in shape.
_ELEMENTWISE_MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}


class TensorType(NamedTuple):
    """A symbolic tensor: its shape (batch dimension first) and dtype."""

    shape: Shape
    dtype: str


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


@dataclass
class _LayerState:
    """The Keras instance standing for one graph layer."""

    instance: Any = None
    error: str | None = None
    build_key: Any = None
    build_error: Exception | None = None
    build_outputs: list[TensorType] | None = None
    params: int | None = None
    trainable_params: int | None = None
    real: bool = False  # built with real variables
    rebuilds: int = 0
    pristine_input_spec: Any = None
    runs_here: bool | None = None  # None until asked (see _runs_here)


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
        self._states: dict[str, _LayerState] = {}
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
        _keras()
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
        # Walk in topological order; recomputing a node may dirty later nodes.
        for node_id in order:
            if node_id not in dirty:
                continue
            dirty.discard(node_id)
            old = self._results.get(node_id)
            new = self._compute(node_id, index)
            self._results[node_id] = new
            if old is None or old != new:
                changed.add(node_id)
                self._unreported.add(node_id)
                if old is None or old.outputs != new.outputs:
                    dirty.update(self.graph.successors(node_id))
        dirty.clear()
        self._check_model()
        return changed

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
            return _input_result(layer.name, layer.config)
        try:
            inputs = self._gather_inputs(node_id)
        except _Blocked as blocked:
            # Unknown inputs: nothing is known here (a count from an earlier
            # build could be stale), and the error belongs upstream.
            return NodeResult(blocked_by=blocked.nodes)
        except _NodeError as exc:
            return NodeResult(errors=[str(exc)])
        if layer.submodel is not None:
            return self._compute_submodel_call(node_id, inputs)
        if is_operation(layer.class_name):
            return self._compute_operation(node_id, inputs)
        state = self._state(layer.name)
        if state.error:
            return NodeResult(errors=[state.error])
        calls = graph._layer_nodes[layer.name]  # read-only; no copy on the hot path
        first = calls[0] if len(calls) == 1 else min(calls, key=index.__getitem__)
        result = NodeResult()
        try:
            ports = self._ports_of(layer.class_name)
            call = graph.node(node_id).call
            if call is None:
                _check_arity(graph, node_id, layer.class_name, ports, inputs)
            else:
                _check_template(graph, node_id, call, inputs)
            if first == node_id:
                key = (tuple(t for _, t in inputs.values()), _call_key(call))
                if state.build_key == key and state.build_error is None:
                    outputs = state.build_outputs
                elif self._defer_builds and state.build_key is not None and state.build_error is None:
                    # Built before for other inputs: shapes now, rebuild later.
                    self._pending_builds.add(layer.name)
                    outputs = _plain_outputs(state.instance, state.pristine_input_spec, call, ports, inputs)
                else:
                    if state.build_key != key:
                        state.build_key = key
                        self._build(state, call, ports, inputs)
                    if state.build_error is not None:
                        raise state.build_error
                    outputs = state.build_outputs
            else:
                if state.build_key is None or state.build_error is not None:
                    raise _NodeError(
                        f"'{graph.label(node_id)}' calls the shared layer '{layer.name}', "
                        f"which its first call '{graph.label(first)}' could not build"
                    )
                outputs = _plain_outputs(state.instance, state.instance.input_spec, call, ports, inputs)
            result.params, result.trainable_params = state.params, state.trainable_params
            result.outputs = outputs
            if layer.class_name in _INTEGER_INPUT_LAYERS:
                result.warnings = _warnings(graph, node_id, layer.class_name, inputs)
            if not _runs_here(state, layer.config):
                # The shapes are right and the model exports; only running it here fails.
                result.warnings.append(keras_compat.CHANNELS_FIRST_ON_CPU)
        except _NodeError as exc:
            result.errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - Keras raises many types; all are node errors
            result.errors.append(self._describe(node_id, layer.class_name, inputs, exc))
        return result

    def _ports_of(self, class_name: str):
        ports = self._ports.get(class_name)
        if ports is None:
            ports = self._ports[class_name] = catalog.layer_spec(class_name).ports
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
                raise _NodeError(
                    f"input {port} comes from output {ref.port} of "
                    f"'{self.graph.label(ref.node)}', which has only "
                    f"{len(source.outputs)} output(s)"
                )
            found[port] = (ref, source.outputs[ref.port])
        if blocked:
            raise _Blocked(list(dict.fromkeys(blocked)))
        return found

    def _state(self, layer_name: str) -> _LayerState:
        state = self._states.get(layer_name)
        if state is None:
            state = self._states[layer_name] = _instantiate(self.graph.layers[layer_name])
        return state

    def _build(self, state: _LayerState, call, ports, inputs) -> None:
        state.build_error = None
        try:
            args, kwargs = _call_arguments(call, ports, inputs)
            state.build_outputs = _build_layer(state, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to build is the node's error
            state.params = state.trainable_params = state.build_outputs = None
            state.build_error = exc

    def _describe(self, node_id: str, class_name: str, inputs, exc: Exception) -> str:
        graph = self.graph
        message = _clean_message(exc)
        sources = [(graph.label(ref.node), t.shape) for _, (ref, t) in sorted(inputs.items())]
        if class_name in _ELEMENTWISE_MERGES and len({s for _, s in sources}) > 1:
            listed = " vs ".join(f"{format_shape(s)} from '{name}'" for name, s in sources)
            return f"{class_name} needs inputs of one shape: {listed}"
        if class_name == "Concatenate" and sources:
            listed = ", ".join(f"{format_shape(s)} from '{name}'" for name, s in sources)
            return f"Concatenate needs inputs that match except on the concatenation axis: {listed}"
        if len(sources) == 1:
            name, shape = sources[0]
            return f"{message} (input {format_shape(shape)} from '{name}')"
        if sources:
            listed = ", ".join(f"{format_shape(s)} from '{name}'" for name, s in sources)
            return f"{message} (inputs {listed})"
        return message

    def _compute_operation(self, node_id: str, inputs) -> NodeResult:
        """A ``keras.ops`` call recorded in a functional model (e.g. ``x + 1``)."""
        layer = self.graph.layer_of(node_id)
        state = self._state(layer.name)
        if state.error:
            return NodeResult(errors=[state.error])
        node = self.graph.node(node_id)
        try:
            _check_template(self.graph, node_id, node.call or _SINGLE_CALL, inputs)
            ports = _Ports("single", ("x",), 1, None if node.call is not None else 1)
            args, kwargs = _call_arguments(node.call, ports, inputs)
            outputs = _outputs(state.instance, args, kwargs)
        except _NodeError as exc:
            return NodeResult(errors=[str(exc)])
        except Exception as exc:  # noqa: BLE001 - Keras's own refusal, on the node
            return NodeResult(errors=[self._describe(node_id, layer.class_name, inputs, exc)])
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
            if given == expected:
                result.outputs = [t for t in engine.output_types() if t is not None]
            else:
                result.outputs = engine.run(given)
        except Exception as exc:  # noqa: BLE001 - reported on the calling node
            result.errors.append(
                f"sub-model '{layer.name}' cannot take these inputs: {_clean_message(exc)}"
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
                    _Ports("single", ("x",), 1, None)
                    if is_operation(layer.class_name)
                    else self._ports_of(layer.class_name)
                )
                spec = _OPERATION if is_operation(layer.class_name) else state.instance.input_spec
                outputs = _plain_outputs(state.instance, spec, graph.node(node_id).call, ports, node_inputs)
            for port, tensor in enumerate(outputs):
                values[PortRef(node_id, port)] = tensor
        return [values[ref] for ref in self._model_output_refs()]


class _NodeError(Exception):
    """A problem already phrased for the user."""


# --------------------------------------------------------------------- Keras
def _keras():
    """Imports Keras once (with the weight recorder, see keras_compat)."""
    return keras_compat.import_keras()


def problems_message(graph: ModelGraph, problems: list[tuple[str | None, str]]) -> str:
    """One line for a model with errors: the first, where it is, and how many more."""
    node, message = problems[0]
    where = f"'{graph.label(node)}': " if node else ""
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"the model is not valid: {where}{message}{more}"


def is_operation(class_name: str) -> bool:
    """Whether a class name is a ``keras.ops`` operation (module-qualified)."""
    return keras_compat.operation_module(class_name) is not None


class _Ports(NamedTuple):
    style: str
    names: tuple[str, ...]
    min_inputs: int
    max_inputs: int | None


class LayerError(ValueError):
    """A graph layer cannot become a Keras object; the message says why."""


def make_keras_layer(layer):
    """The Keras object for a graph layer (not a sub-model), made safely.

    Only classes of the catalog (or keras.ops operations) are made, and only
    after every nested object in the config was checked against Keras's own
    classes: ``from_config`` would otherwise import whatever a file names.

    Raises:
        LayerError: Unknown class, unsafe or invalid config.
    """
    if is_operation(layer.class_name):
        try:
            cls = keras_compat.operation_class(layer.class_name)
        except KeyError:
            raise LayerError(_unknown_class_message(layer.class_name)) from None
        try:
            return cls(**{k: v for k, v in layer.config.items() if k != "name"}, name=layer.name)
        except Exception as exc:  # noqa: BLE001 - bad arguments, in Keras's words
            raise LayerError(
                f"{layer.class_name.rpartition('.')[2]} '{layer.name}': {_clean_message(exc)}"
            ) from None
    try:
        cls = catalog.keras_class(layer.class_name)
    except KeyError:
        raise LayerError(_unknown_class_message(layer.class_name)) from None
    problems = catalog.check_config(layer.class_name, layer.config)
    if problems:
        raise LayerError(f"{layer.class_name} '{layer.name}': {problems[0]}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.from_config({**layer.config, "name": layer.name})
    except Exception as exc:  # noqa: BLE001 - bad parameters, in Keras's words
        raise LayerError(f"{layer.class_name} '{layer.name}': {_clean_message(exc)}") from None


def _instantiate(layer) -> _LayerState:
    state = _LayerState()
    try:
        state.instance = make_keras_layer(layer)
    except LayerError as exc:
        state.error = str(exc)
        return state
    state.pristine_input_spec = getattr(state.instance, "input_spec", None)
    return state


def _runs_here(state: _LayerState, config: Mapping[str, Any]) -> bool:
    """Whether this machine can run the layer (channels_first convolutions may not)."""
    if state.runs_here is None:
        state.runs_here = not _mentions_channels_first(config) or keras_compat.runs_here(state.instance)
    return state.runs_here


def _mentions_channels_first(value: Any) -> bool:
    """Whether a config (nested layers included) may make a layer channels_first."""
    if isinstance(value, Mapping):
        if "data_format" in value and value["data_format"] in (None, "channels_first"):
            return True
        return any(isinstance(v, Mapping | list) and _mentions_channels_first(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_channels_first(v) for v in value)
    return False


def _unknown_class_message(class_name: str) -> str:
    reason = catalog.EXCLUDED.get(class_name)
    if reason:
        return f"{class_name} is shown but not run: {reason}"
    return f"unknown layer {class_name}"


def _build_layer(state: _LayerState, args, kwargs) -> list[TensorType]:
    """Builds the layer for these inputs, recording weight shapes, not creating them.

    Returns:
        The outputs of the call that built it.
    """
    instance = state.instance
    if instance.built:
        if state.real or state.rebuilds >= 20:
            # Rebuilding in place leaves stale sub-layers behind; start afresh.
            fresh = type(instance).from_config(instance.get_config())
            state.instance, state.real, state.rebuilds = fresh, False, 0
            instance = fresh
        else:
            keras_compat.unbuild(instance)
            instance.input_spec = state.pristine_input_spec
            state.rebuilds += 1
    call_spec = keras_compat.call_spec(instance, args, kwargs)
    keras_compat.assert_input_compatibility(instance.input_spec, call_spec.first_arg, instance.name)
    with keras_compat.recording_weights() as records:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                keras_compat.maybe_build(instance, call_spec)
            outputs = _outputs(instance, args, kwargs)
            recorded = True
        except Exception:  # noqa: BLE001 - retried below with real weights
            recorded = False
    if recorded:
        existing = instance.weights  # created outside build (in __init__), real
        state.params = sum(n for n, _ in records) + sum(math.prod(w.shape) for w in existing)
        state.trainable_params = sum(n for n, t in records if t) + sum(
            math.prod(w.shape) for w in instance.trainable_weights
        )
        return outputs
    # The layer needs real variables to build (or the inputs are wrong): build a
    # fresh instance for real, which also yields Keras's own error message.
    fresh = type(instance).from_config(instance.get_config())
    state.instance, state.real, state.rebuilds = fresh, True, 0
    state.pristine_input_spec = fresh.input_spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh(*args, **kwargs)
    state.params = fresh.count_params()
    state.trainable_params = sum(math.prod(w.shape) for w in fresh.trainable_weights)
    return _outputs(fresh, args, kwargs)


#: The usual call: one tensor, nothing else.
_SINGLE_CALL: dict[str, Any] = {"args": [{"port": 0}], "kwargs": {}}
#: Stands for the input spec of a keras.ops operation (they have none to check).
_OPERATION = object()


def _single_tensor_call(call, ports) -> bool:
    """Whether the call passes one tensor first and only constants besides.

    Keras then gives ``compute_output_shape`` that tensor's shape alone (constant
    arguments such as ``training=False`` or ``mask=None`` never reach it).
    """
    if call is None:
        return ports.style == "single"
    return _call_facts(call)[1]


# Facts about call templates, by identity: a node's template is replaced, never
# mutated, so the object itself is the key (and is kept alive by the entry).
_call_cache: dict[int, tuple[dict[str, Any], str, bool, frozenset[int]]] = {}


def _call_facts(call: dict[str, Any]) -> tuple[str, bool, frozenset[int]]:
    """(a key for the call, whether it passes one tensor first, its ports)."""
    entry = _call_cache.get(id(call))
    if entry is None or entry[0] is not call:
        args = call.get("args") or []
        ports = frozenset(template_ports(call))
        single = bool(args) and args[0] == {"port": 0} and ports == {0}
        if len(_call_cache) > 100_000:
            _call_cache.clear()
        entry = _call_cache[id(call)] = (call, json.dumps(call, sort_keys=True), single, ports)
    return entry[1], entry[2], entry[3]


def _call_key(call: dict[str, Any] | None) -> str | None:
    return None if call is None else _call_facts(call)[0]


class _Spec:
    """What ``assert_input_compatibility`` reads of a tensor, without a KerasTensor."""

    __slots__ = ("shape", "dtype")

    def __init__(self, tensor: TensorType):
        self.shape, self.dtype = tensor.shape, tensor.dtype


def _plain_outputs(instance, input_spec, call, ports, inputs) -> list[TensorType]:
    """Outputs of calling an already built layer, checked against ``input_spec``.

    The common case (one tensor in, ``compute_output_shape`` overridden) skips
    creating KerasTensors, which is most of the cost of a symbolic call.
    """
    if input_spec is _OPERATION:  # keras.ops operations check their own arguments
        args, kwargs = _call_arguments(call, ports, inputs)
        return _outputs(instance, args, kwargs)
    if len(inputs) == 1 and _single_tensor_call(call, ports) and _is_fast(type(instance)):
        ((_, tensor),) = inputs.values()
        keras_compat.assert_input_compatibility(input_spec, _Spec(tensor), instance.name)
        return _shape_outputs(instance, tensor.shape)
    if call is None and ports.style == "list" and _is_merge(type(instance)):
        tensors = [t for _, t in (inputs[p] for p in sorted(inputs))]
        keras_compat.assert_input_compatibility(input_spec, [_Spec(t) for t in tensors], instance.name)
        shape = instance.compute_output_shape([t.shape for t in tensors])
        return [TensorType(_shape(shape), instance.compute_dtype)]
    args, kwargs = _call_arguments(call, ports, inputs)
    keras_compat.assert_input_compatibility(input_spec, args[0] if args else None, instance.name)
    return _outputs(instance, args, kwargs)


_merge_classes: dict[type, bool] = {}


def _is_merge(cls: type) -> bool:
    """Whether the class computes its output spec exactly as Keras's Merge does.

    That is: ``compute_output_shape`` of the list of shapes, in the compute dtype.
    """
    merge = _merge_classes.get(cls)
    if merge is None:
        merge = _merge_classes[cls] = cls.compute_output_spec is keras_compat.merge_class().compute_output_spec
    return merge


# Layers for which Keras's compute_output_spec reduces to compute_output_shape
# with the single input's shape and the layer's compute dtype.
_fast_classes: dict[type, bool] = {}


def _is_fast(cls: type) -> bool:
    fast = _fast_classes.get(cls)
    if fast is None:
        Layer = _keras().layers.Layer  # noqa: N806 - the class

        fast = (
            cls.compute_output_spec is Layer.compute_output_spec
            and cls.compute_output_shape is not Layer.compute_output_shape
        )
        _fast_classes[cls] = fast
    return fast


def _outputs(instance, args, kwargs) -> list[TensorType]:
    keras = _keras()
    if not kwargs and len(args) == 1 and isinstance(args[0], keras.KerasTensor) and _is_fast(type(instance)):
        return _shape_outputs(instance, args[0].shape)
    spec = instance.compute_output_spec(*args, **kwargs)
    return [
        TensorType(_shape(t.shape), keras.backend.standardize_dtype(t.dtype))
        for t in keras.tree.flatten(spec)
        if t is not None
    ]


def _shape_outputs(instance, input_shape: Shape) -> list[TensorType]:
    """What Layer.compute_output_spec makes of compute_output_shape (see Keras)."""
    shape = instance.compute_output_shape(input_shape)
    if isinstance(shape, list) and shape and isinstance(shape[0], int | type(None)):
        shape = tuple(shape)
    dtype = instance.compute_dtype
    if isinstance(shape, tuple) and (not shape or isinstance(shape[0], int | type(None))):
        return [TensorType(_shape(shape), dtype)]
    return [TensorType(_shape(s), dtype) for s in _flatten_shapes(shape)]


def _flatten_shapes(structure) -> list[Shape]:
    if isinstance(structure, dict):
        return [s for v in structure.values() for s in _flatten_shapes(v)]
    if isinstance(structure, list | tuple) and (
        not structure or isinstance(structure[0], int | type(None))
    ):
        return [tuple(structure)]
    return [s for v in structure for s in _flatten_shapes(v)]


def _shape(shape) -> Shape:
    return tuple(None if d is None else int(d) for d in shape)


def _tensor(t: TensorType):
    # A name skips Keras's automatic naming, a regex per tensor.
    return _keras().KerasTensor(t.shape, dtype=t.dtype, name="input")


def _call_arguments(call, ports, inputs) -> tuple[list[Any], dict[str, Any]]:
    """The call's arguments, with KerasTensors standing for the inputs."""
    return call_arguments(call, ports, {port: _tensor(t) for port, (_, t) in inputs.items()})


def _check_template(graph: ModelGraph, node_id: str, call, inputs) -> None:
    """A recorded call needs exactly the ports its template names."""
    wanted = _call_facts(call)[2]
    missing = sorted(wanted - set(inputs))
    if missing:
        raise _NodeError(f"input {missing[0]} of '{graph.label(node_id)}' is not connected")
    extra = sorted(set(inputs) - wanted)
    if extra:
        source = graph.label(inputs[extra[0]][0].node)
        raise _NodeError(
            f"'{graph.label(node_id)}' takes {_count(len(wanted), 'input')}, "
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
            raise _NodeError(
                f"{class_name} '{label}' takes {_count(ports.max_inputs, 'input')}, "
                f"but input {extra[0]} is connected to '{source}'"
            )
    if n < ports.min_inputs:
        need = "needs" if ports.max_inputs == ports.min_inputs else "needs at least"
        have = "none is" if n == 0 else f"{n} {'is' if n == 1 else 'are'}"
        names = f" ({', '.join(ports.names[: ports.min_inputs])})" if ports.style == "positional" else ""
        raise _NodeError(
            f"{class_name} '{label}' {need} {_count(ports.min_inputs, 'input')}{names}; {have} connected"
        )
    gaps = [p for p in range(max(connected, default=-1)) if p not in inputs]
    if gaps and ports.style != "positional":
        raise _NodeError(f"input {gaps[0]} of '{label}' is not connected, but input {connected[-1]} is")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _warnings(graph: ModelGraph, node_id: str, class_name: str, inputs) -> list[str]:
    found = []
    if class_name in ("Embedding", "ReversibleEmbedding"):
        for _, (ref, tensor) in inputs.items():
            if not re.match(r"u?int", tensor.dtype):
                found.append(
                    f"Embedding expects integer token ids but gets {tensor.dtype} from "
                    f"'{graph.label(ref.node)}'; Keras casts it to int32 (set that Input's dtype to int32)"
                )
    return found


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
        dtype = _keras().backend.standardize_dtype(dtype)
    except Exception:  # noqa: BLE001
        return NodeResult(errors=[f"Input '{name}': unknown dtype {dtype!r}"])
    return NodeResult(outputs=[TensorType(_shape(shape), dtype)], params=0, trainable_params=0)


def _clean_message(exc: BaseException) -> str:
    """Keras's message on one line, without the boilerplate around it."""
    text = str(exc) or type(exc).__name__
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # terminal bold/reset codes
    text = re.split(r"\n\s*(?:Arguments received by|Received arguments|Call arguments received)", text)[0]
    text = re.sub(r"Exception encountered when calling [^\n]*\n", "", text)
    text = re.sub(r"^Error when deserializing class '\w+' using config=.*?Exception encountered: ", "", text, flags=re.S)
    text = re.sub(r"^Exception encountered: ", "", text)
    text = text.replace(" with name 'None'", "")
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > 400:
        text = text[:397] + "..."
    return text


def check_wire(graph: ModelGraph, engine: ShapeEngine, edge, detached=None) -> str | None:
    """What Keras would say about the node a proposed wire feeds, or None if it is fine.

    Only the receiving layer is computed, on a scratch graph of Inputs holding the
    shapes its inputs would have: cheap enough to ask while a wire is being dragged.
    ``detached`` is a wire being moved (it no longer counts). Returns None when a
    verdict needs more than is known (an input's shape is unknown,
    the layer still lacks inputs it requires, or it is a sub-model).
    """
    from builder_app.core.graph import Layer, Node, PortRef
    from builder_app.core.ops import AddNode, Connect

    dst = graph.node(edge.dst)
    layer = graph.layer(dst.layer)
    if layer.submodel is not None or layer.class_name == INPUT_CLASS:
        return None
    sources = dict(graph.inputs_of(edge.dst))
    if detached is not None and detached.dst == edge.dst:
        sources.pop(detached.dst_port, None)  # the wire being moved leaves its old port
    sources[edge.dst_port] = PortRef(edge.src, edge.src_port)
    if dst.call is None and not is_operation(layer.class_name):
        from builder_app.core import catalog

        try:
            ports = catalog.layer_spec(layer.class_name).ports
        except KeyError:
            return None
        if len(sources) < ports.min_inputs:
            return None
    scratch = ModelGraph("wire_check")
    taken: set[str] = {layer.name}
    for port in sorted(sources):
        ref = sources[port]
        result = engine.peek(ref.node)
        if result is None or not result.outputs or ref.port >= len(result.outputs):
            return None
        tensor = result.outputs[ref.port]
        name = scratch.unique_layer_name(graph.label(ref.node).split(" ")[0], taken)
        taken.add(name)
        config = {"batch_shape": list(tensor.shape), "dtype": tensor.dtype, "sparse": False, "ragged": False}
        node_id = f"i{port}"
        scratch.apply(AddNode(Node(node_id, name), Layer(name, INPUT_CLASS, config)))
    scratch.apply(AddNode(Node("target", layer.name, call=dst.call), Layer(layer.name, layer.class_name, dict(layer.config))))
    for port in sorted(sources):
        scratch.apply(Connect(f"i{port}", 0, "target", port))
    probe = ShapeEngine(scratch)
    try:
        errors = probe.result("target").errors
    finally:
        probe.close()
    return errors[0] if errors else None


def _holds(graph: ModelGraph, wanted: ModelGraph) -> bool:
    """Whether ``wanted`` is ``graph`` or a sub-model's graph nested in it."""
    if graph is wanted:
        return True
    return any(
        layer.submodel is not None and _holds(layer.submodel, wanted) for layer in graph.layers.values()
    )
