"""What a node computes on a real sample: activations, statistics, training vs inference.

The Keras way to look inside a model (PyTorch's forward hooks): a second
``keras.Model(inputs, [intermediate tensors])`` over the built model, sharing its
layers and therefore its weights. :class:`ActivationProbe` builds the project's
model once (:func:`builder_app.core.keras_model.build_keras_model`), traces every
node's symbolic output over that model's own layers, and runs a sample up to the
chosen nodes with ``training=False`` or ``training=True``.

The sub-model is called eagerly, never through ``predict``: a compiled predict
step is traced once per set of nodes, which for a large model (EfficientNetB7)
takes longer than tens of eager calls, and every click in the window asks for a
new set. An eager call runs only the layers up to the deepest chosen node and
costs what Keras's own eager call of that part of the model costs
(``benchmarks/bench_inspect.py``).

Samples come from the project's training data by index (loaded as a training run
loads it, :mod:`builder_app.training.data`) or are a seeded random input of the
model's input shapes (:func:`random_inputs`).

Qt-free: the window (``ui/inspect``) and ``builder-app inspect`` only draw and print
what this module returns. Keras is imported when a probe is made, never at import.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from builder_app.core import catalog
from builder_app.core.calls import call_arguments
from builder_app.core.face_text import differs_in_training
from builder_app.core.graph import INPUT_CLASS, ModelGraph, PortRef
from builder_app.core.keras_build import is_operation

#: Length given to a dimension the model leaves open (a sequence's time axis) in a random input.
OPEN_LENGTH = 16
#: Largest number of values a random input may hold (a crafted shape must not fill memory).
MAX_RANDOM_VALUES = 64_000_000
#: Sub-models (one per set of outputs asked for together) a probe keeps for reuse.
MAX_SUBMODELS = 32

#: What names one output to inspect: a node id (its output 0), or a node id and an output index.
Target = str | PortRef | tuple[str, int]


class InspectError(ValueError):
    """A node, a sample or a model cannot be inspected; the one-line message says why."""


@dataclass(frozen=True)
class Statistics:
    """Summary of one array; mean, std, min and max over its finite values (None when it has none)."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    #: Fraction of the values exactly 0 (dead ReLUs).
    zero_fraction: float
    nan_count: int
    inf_count: int
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "zero_fraction": self.zero_fraction,
            "nan_count": self.nan_count,
            "inf_count": self.inf_count,
        }


def statistics(array: Any) -> Statistics:
    """The :class:`Statistics` of ``array`` (any shape, any numeric dtype)."""
    values = np.asarray(array)
    if values.dtype == bool:
        values = values.astype("float32")
    size = int(values.size)
    if size == 0:
        return Statistics(None, None, None, None, 0.0, 0, 0, 0)
    if np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.complexfloating):
        nan_count = int(np.count_nonzero(np.isnan(values)))
        inf_count = int(np.count_nonzero(np.isinf(values)))
    else:
        nan_count = inf_count = 0
    zero_fraction = float(np.count_nonzero(values == 0)) / size
    finite = values if nan_count + inf_count == 0 else values[np.isfinite(values)]
    if finite.size == 0:
        return Statistics(None, None, None, None, zero_fraction, nan_count, inf_count, size)
    wide = finite.astype(np.float64, copy=False)
    return Statistics(
        float(wide.mean()),
        float(wide.std()),
        float(wide.min()),
        float(wide.max()),
        zero_fraction,
        nan_count,
        inf_count,
        size,
    )


@dataclass
class NodeActivation:
    """One node's output for one sample."""

    node: str
    layer: str
    class_name: str
    #: The output, the batch dimension removed.
    array: np.ndarray
    stats: Statistics
    training: bool
    #: Which output of the node this is, and how many it has.
    port: int = 0
    outputs: int = 1
    #: How to draw it: "image", "feature_maps", "volume", "sequence", "vector" or "scalar".
    display: str = "vector"

    @property
    def output_shape(self) -> tuple[int | None, ...]:
        """The shape with the batch dimension, as Keras writes it (None for the batch)."""
        return (None, *self.array.shape)

    def to_dict(self) -> dict[str, Any]:
        """The ``inspect --json`` object of this node (the contract's keys first)."""
        return {
            "layer": self.layer,
            "output_shape": list(self.output_shape),
            **self.stats.to_dict(),
            "node": self.node,
            "class_name": self.class_name,
            "training": self.training,
            "differs_in_training": differs_in_training(self.class_name),
            "display": self.display,
            "port": self.port,
            "outputs": self.outputs,
        }


@dataclass
class Comparison:
    """One node's output with ``training=False`` and with ``training=True`` on one sample."""

    inference: NodeActivation
    training: NodeActivation
    #: Largest absolute difference between the two (None when either is not finite).
    max_difference: float | None
    #: Layers up to this node (itself included) that compute differently when training.
    differing_layers: list[str] = field(default_factory=list)

    @property
    def differs(self) -> bool:
        return self.max_difference is None or self.max_difference > 0


@dataclass
class BatchNormStatistics:
    """A BatchNormalization's moving statistics beside those of the batch it was given."""

    layer: str
    axis: int
    moving_mean: np.ndarray
    moving_variance: np.ndarray
    batch_mean: np.ndarray
    batch_variance: np.ndarray
    #: How many values each channel's batch statistics are taken over.
    count: int


@dataclass
class Sample:
    """Model inputs for one sample (a batch of one), and where they came from."""

    inputs: list[np.ndarray]
    description: str
    #: The targets of that sample, when it came from data.
    targets: list[np.ndarray] = field(default_factory=list)


def display_kind(node_class: str, shape: Sequence[int], *, channels_first: bool = False) -> str:
    """How an output of ``shape`` (without the batch) is best drawn."""
    rank = len(shape)
    if rank == 0 or (rank == 1 and shape[0] == 1):
        return "scalar"
    if rank == 1:
        return "vector"
    if rank == 2:
        return "sequence"
    channels = shape[0] if channels_first else shape[-1]
    if rank == 3:
        if node_class == INPUT_CLASS and channels in (1, 3, 4):
            return "image"
        return "feature_maps"
    if rank == 4:
        return "volume"
    return "vector"  # higher ranks: drawn flat


def channel_maps(activation: NodeActivation, *, channels_first: bool = False) -> np.ndarray:
    """The output as (channels, height, width): the middle depth slice of a 3-D output."""
    array = activation.array
    if activation.display == "volume":
        depth_axis = 1 if channels_first else 0
        array = np.take(array, array.shape[depth_axis] // 2, axis=depth_axis)
    if array.ndim != 3:
        raise InspectError(f"'{activation.layer}' gives {array.ndim}-D outputs, not feature maps")
    return array if channels_first else np.moveaxis(array, -1, 0)


def feature_grid(maps: np.ndarray, *, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Channel images (C, H, W) tiled into one 2-D array, NaN between the tiles.

    Args:
        maps: One image per channel.
        columns: Tiles per row; by default about square.
        gap: NaN pixels between tiles.
    """
    count, height, width = maps.shape
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan, dtype=np.float32)
    for i in range(count):
        r, c = divmod(i, columns)
        y, x = r * (height + gap), c * (width + gap)
        grid[y : y + height, x : x + width] = maps[i]
    return grid


def random_inputs(model, seed: int) -> Sample:
    """A seeded random batch of one for ``model``: normal floats, or small whole numbers for integer inputs.

    Raises:
        InspectError: An input would hold more than :data:`MAX_RANDOM_VALUES` values.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [1, *(OPEN_LENGTH if d is None else int(d) for d in tuple(tensor.shape)[1:])]
        if math.prod(shape) > MAX_RANDOM_VALUES:
            raise InspectError(f"input '{tensor.name}' of shape {tuple(shape[1:])} is too large for a random sample")
        dtype = str(tensor.dtype)
        if "int" in dtype:
            arrays.append(rng.integers(0, 10, size=shape).astype(dtype))
        elif "bool" in dtype:
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            arrays.append(rng.normal(size=shape).astype(dtype if "float" in dtype else "float32"))
    return Sample(arrays, f"random input (seed {seed})")


def load_project_data(project, model):
    """The project's training data, as a training run loads it (obvious reshapes applied).

    Raises:
        InspectError: The project names no data, or it cannot be read or does not fit.
    """
    from builder_app.core.training_settings import SettingsError, resolve
    from builder_app.training import data as data_module

    try:
        settings = resolve(project.training, project.graph)
    except SettingsError as exc:
        raise InspectError(f"the training settings: {exc}") from None
    if settings["data"] is None:
        raise InspectError("the project names no training data: use a random sample (--random SEED)")
    shapes = [tuple(t.shape) for t in model.inputs]
    try:
        loaded = data_module.load(settings["data"], seed=settings["seed"], input_shapes=shapes)
    except data_module.DataError as exc:
        raise InspectError(str(exc)) from None
    loaded, _ = data_module.apply_fixes(loaded, model, settings["loss"])
    if len(loaded.x) != len(model.inputs):
        raise InspectError(f"the model takes {len(model.inputs)} inputs; {loaded.name} gives {len(loaded.x)}")
    for tensor, array in zip(model.inputs, loaded.x, strict=True):
        expected = tuple(tensor.shape)[1:]
        got = tuple(array.shape[1:])
        if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got, strict=True)):
            raise InspectError(
                f"input '{tensor.name}' expects {(None, *expected)}; {loaded.name} gives {(None, *got)}"
            )
    return loaded


def data_sample(loaded, index: int) -> Sample:
    """Sample ``index`` of loaded data (:func:`load_project_data`).

    Raises:
        InspectError: There is no such sample.
    """
    count = len(loaded)
    if not 0 <= index < count:
        raise InspectError(f"{loaded.name} has samples 0 to {count - 1}; there is no sample {index}")
    return Sample(
        [np.asarray(a[index : index + 1]) for a in loaded.x],
        f"{loaded.name} sample {index}",
        [np.asarray(a[index : index + 1]) for a in loaded.y],
    )


class ActivationProbe:
    """The project's model, built once, and the output of each of its nodes on demand.

    Make it and call it from one thread at a time (the window's worker thread).
    """

    def __init__(self, graph: ModelGraph, model=None, *, seed: int = 0):
        """Builds the model (unless given one built from ``graph``) and traces every node's output.

        Args:
            graph: The project's graph (not changed).
            model: The Keras model :func:`build_keras_model` made of ``graph``.
            seed: Seeds the initializers of layers the project holds no weights for.

        Raises:
            InspectError: The graph cannot be built or run here; the message names the node.
        """
        import keras

        from builder_app.core.keras_model import (
            BuildError,
            build_keras_model,
            refuse_if_it_cannot_run_here,
        )

        self.graph = graph
        self.seed = seed
        try:
            if model is None:
                keras.utils.set_random_seed(seed)
                model = build_keras_model(graph)
            refuse_if_it_cannot_run_here(model)
        except BuildError as exc:
            raise InspectError(str(exc)) from None
        self.model = model
        self._tensors = _trace(graph, model)
        self._probes: dict[tuple[PortRef, ...], Any] = {}
        # The inference outputs last computed, and the sample they are of (held, so it is that very sample).
        self._memo: tuple[Sample | None, dict[PortRef, np.ndarray]] = (None, {})

    # ------------------------------------------------------------- naming
    def nodes(self) -> list[str]:
        """The nodes that can be inspected, in the order of the graph."""
        return [n for n in self.graph.topological_order() if PortRef(n, 0) in self._tensors]

    def node_for(self, name: str) -> str:
        """The node a ``--node`` argument names: a layer name (its first call) or a node id."""
        return find_node(self.graph, name)

    def target_for(self, text: str) -> PortRef:
        """The output a ``--node`` argument names: ``LAYER`` (its output 0) or ``LAYER:N`` (its output N).

        Raises:
            InspectError: No such layer, or the layer has no output N.
        """
        node_id, port = find_target(self.graph, text)
        return self._ref((node_id, port))

    def output_count(self, node_id: str) -> int:
        """How many outputs the node has in the built model (0 when it is not part of it)."""
        count = 0
        while PortRef(node_id, count) in self._tensors:
            count += 1
        return count

    # ------------------------------------------------------------ running
    def run(self, targets: Sequence[Target], sample: Sample, *, training: bool = False, also: Sequence[Target] = ()) -> list[NodeActivation]:
        """Each target's output for ``sample``: a node id (its output 0) or a (node id, output) pair.

        With ``training=True`` the layers compute as in training (Dropout drops,
        BatchNormalization uses the batch's statistics); the model's variables
        (BatchNormalization's moving statistics) are left as they were.

        Args:
            targets: The outputs to return, in this order.
            sample: The inputs (:func:`random_inputs`, :func:`data_sample`).
            training: Compute as in training.
            also: Outputs to compute in the same pass (in inference), kept for
                :meth:`batchnorms` of this very sample until the next run.
        """
        refs = [self._ref(t) for t in targets]
        if not training:
            self._memo = (None, {})  # each run computes afresh (the weights may have changed since)
        arrays = self._arrays(refs, sample, training, also=[self._ref(t) for t in also])
        return [self._activation(ref, array, training) for ref, array in zip(refs, arrays, strict=True)]

    def compare(self, targets: Sequence[Target], sample: Sample, *, also: Sequence[Target] = ()) -> list[Comparison]:
        """Each target's output with ``training=False`` and ``training=True``, side by side (``also``: :meth:`run`'s)."""
        inference = self.run(targets, sample, training=False, also=also)
        training = self.run(targets, sample, training=True)
        comparisons = []
        for a, b in zip(inference, training, strict=True):
            difference = None
            if a.array.shape == b.array.shape:
                delta = np.abs(a.array.astype(np.float64) - b.array.astype(np.float64))
                difference = float(delta.max()) if delta.size and np.isfinite(delta).all() else (0.0 if not delta.size else None)
            comparisons.append(Comparison(a, b, difference, self.differing_layers(a.node)))
        return comparisons

    def differing_layers(self, node_id: str) -> list[str]:
        """The layers up to ``node_id`` (itself included) that compute differently when training."""
        upstream = {node_id} | _ancestors(self.graph, node_id)
        names = []
        for n in self.graph.topological_order():
            if n in upstream:
                layer = self.graph.layer_of(n)
                if differs_in_training(layer.class_name) and layer.name not in names:
                    names.append(layer.name)
        return names

    def batchnorm_source(self, node_id: str) -> PortRef:
        """The output a BatchNormalization node normalises (its batch statistics are of that).

        Raises:
            InspectError: The node is not a BatchNormalization, or is not part of the model.
        """
        layer = self.graph.layer_of(node_id)
        if layer.class_name != "BatchNormalization":
            raise InspectError(f"'{layer.name}' is a {layer.class_name}, not a BatchNormalization")
        source = self.graph.inputs_of(node_id).get(0)
        if source is None or source not in self._tensors:
            raise InspectError(f"'{layer.name}' has no input to take batch statistics of")
        return source

    def batchnorms(self, node_ids: Sequence[str], sample: Sample) -> list[BatchNormStatistics]:
        """:meth:`batchnorm` of each node, their inputs computed in one pass."""
        sources = [self.batchnorm_source(n) for n in node_ids]
        arrays = self._arrays(sources, sample, False)
        return [self._batchnorm(n, given) for n, given in zip(node_ids, arrays, strict=True)]

    def batchnorm(self, node_id: str, sample: Sample) -> BatchNormStatistics:
        """A BatchNormalization node's moving mean and variance beside the batch's own.

        Raises:
            InspectError: The node is not a BatchNormalization.
        """
        return self.batchnorms([node_id], sample)[0]

    def _batchnorm(self, node_id: str, given: np.ndarray) -> BatchNormStatistics:
        layer = self.graph.layer_of(node_id)
        batch = given[None, ...].astype(np.float64)  # the batch axis back
        obj = self._object(layer.name)
        axis = int(obj.axis if not isinstance(obj.axis, (list, tuple)) else obj.axis[0])
        axis = axis % batch.ndim
        reduce = tuple(i for i in range(batch.ndim) if i != axis)
        moving_mean = np.asarray(obj.moving_mean).astype(np.float64)
        moving_variance = np.asarray(obj.moving_variance).astype(np.float64)
        return BatchNormStatistics(
            layer.name,
            axis,
            moving_mean,
            moving_variance,
            batch.mean(axis=reduce),
            batch.var(axis=reduce),
            int(math.prod(batch.shape[i] for i in reduce)),
        )

    # ----------------------------------------------------------- internals
    def _ref(self, target: Target) -> PortRef:
        node_id, port = (target, 0) if isinstance(target, str) else (str(target[0]), int(target[1]))
        if node_id not in self.graph.nodes:
            raise InspectError(f"the model has no node {node_id!r}")
        ref = PortRef(node_id, port)
        if ref not in self._tensors:
            count = self.output_count(node_id)
            if count == 0:
                raise InspectError(f"'{self.graph.label(node_id)}' is not part of the model (nothing leads to it from an input)")
            outputs = "output 0" if count == 1 else f"outputs 0 to {count - 1}"
            raise InspectError(f"'{self.graph.label(node_id)}' has {outputs}; there is no output {port}")
        return ref

    def _object(self, name: str):
        for operation in self.model.operations:
            if operation.name == name:
                return operation
        raise InspectError(f"the built model has no layer '{name}'")

    def _arrays(self, refs: Sequence[PortRef], sample: Sample, training: bool, also: Sequence[PortRef] = ()) -> list[np.ndarray]:
        """The outputs ``refs`` name; in inference, those already computed for this sample are reused."""
        if training:
            return self._call(tuple(dict.fromkeys(refs)), sample, True, refs)
        memo_sample, memo = self._memo
        if memo_sample is not sample:
            memo = {}
        missing = tuple(r for r in dict.fromkeys([*refs, *also]) if r not in memo)
        if missing:
            memo.update(zip(missing, self._call(missing, sample, False, missing), strict=True))
        self._memo = (sample, memo)
        return [memo[r] for r in refs]

    def _call(self, refs: tuple[PortRef, ...], sample: Sample, training: bool, wanted: Sequence[PortRef]) -> list[np.ndarray]:
        """One eager pass of the sub-model ending at ``refs``; the arrays of ``wanted`` (among them)."""
        import keras

        probe = self._probes.pop(refs, None)
        if probe is None:
            probe = keras.Model(self.model.inputs, [self._tensors[r] for r in refs])
            while len(self._probes) >= MAX_SUBMODELS:
                self._probes.pop(next(iter(self._probes)))
        self._probes[refs] = probe  # the most recently used last
        if len(sample.inputs) != len(self.model.inputs):
            raise InspectError(f"the model takes {len(self.model.inputs)} inputs; the sample has {len(sample.inputs)}")
        kept = None
        if training:
            # Training-mode calls update BatchNormalization's moving statistics: keep them as they were.
            kept = [(v, np.array(v)) for v in self.model.non_trainable_variables]
            keras.utils.set_random_seed(self.seed)
        try:
            # Eager, in both modes: no predict function is traced for this set of outputs (see the module's doc).
            outputs = probe(list(sample.inputs), training=training)
        finally:
            for variable, value in kept or ():
                variable.assign(value)
        arrays = dict(zip(refs, (np.asarray(keras.ops.convert_to_numpy(o))[0] for o in keras.tree.flatten(outputs)), strict=True))
        return [arrays[r] for r in wanted]

    def _activation(self, ref: PortRef, array: np.ndarray, training: bool) -> NodeActivation:
        layer = self.graph.layer_of(ref.node)
        channels_first = layer.config.get("data_format") == "channels_first"
        return NodeActivation(
            node=ref.node,
            layer=layer.name,
            class_name=layer.class_name,
            array=array,
            stats=statistics(array),
            training=training,
            port=ref.port,
            outputs=self.output_count(ref.node),
            display=display_kind(layer.class_name, array.shape, channels_first=channels_first),
        )


def find_target(graph: ModelGraph, text: str) -> tuple[str, int]:
    """The node and output ``text`` names: ``LAYER`` or a node id (output 0), or ``LAYER:N`` (output N).

    Whether the node has an output N is known once the model is built (:meth:`ActivationProbe.target_for`).

    Raises:
        InspectError: Nothing has that name, or N is not a whole number.
    """
    name, colon, port = text.rpartition(":")
    if not colon or text in graph.layers or text in graph.nodes:  # a name may itself hold a colon
        return find_node(graph, text), 0
    if not port.strip().isdigit():
        raise InspectError(f"'{text}': an output is named LAYER:N, N a whole number (0 is the first output)")
    return find_node(graph, name), int(port)


def find_node(graph: ModelGraph, name: str) -> str:
    """The node ``name`` names: a layer (its first call) or a node id.

    Raises:
        InspectError: Nothing has that name; the message suggests the closest one.
    """
    if name in graph.layers:
        nodes = [n for n in graph.topological_order() if graph.node(n).layer == name]
        if nodes:
            return nodes[0]
    if name in graph.nodes:
        return name
    close = difflib.get_close_matches(name, list(graph.layers), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise InspectError(f"the model has no layer '{name}'{hint}")


def _ancestors(graph: ModelGraph, node_id: str) -> set[str]:
    seen: set[str] = set()
    stack = [node_id]
    while stack:
        for ref in graph.inputs_of(stack.pop()).values():
            if ref.node not in seen:
                seen.add(ref.node)
                stack.append(ref.node)
    return seen


def _trace(graph: ModelGraph, model) -> dict[PortRef, Any]:
    """Every node's symbolic outputs, by calling the built model's own layers again on its inputs.

    The built model's layers hold the weights; calling them again on the model's
    input tensors gives a tensor for every call of every layer (a shared layer's
    second call included), which ``layer.output`` alone cannot.
    """
    import keras

    objects = {operation.name: operation for operation in model.operations}
    tensors: dict[PortRef, Any] = {}
    for node_id, tensor in zip(graph.model_inputs(), model.inputs, strict=False):
        tensors[PortRef(node_id, 0)] = tensor
    for node_id in graph.topological_order():
        layer = graph.layer_of(node_id)
        if layer.class_name == INPUT_CLASS:
            continue
        inputs = {port: tensors.get(ref) for port, ref in graph.inputs_of(node_id).items()}
        obj = objects.get(layer.name)
        if obj is None or not inputs or any(t is None for t in inputs.values()):
            continue  # not part of the built model (an unconnected branch)
        node = graph.node(node_id)
        if layer.submodel is not None:
            call = node.call or {
                "args": [{"port": next(iter(inputs))}] if len(inputs) == 1 else [[{"port": p} for p in sorted(inputs)]],
                "kwargs": {},
            }
            args, kwargs = call_arguments(call, None, inputs)
        else:
            ports = None if is_operation(layer.class_name) else catalog.layer_spec(layer.class_name).ports
            if ports is None and node.call is None:
                args, kwargs = [inputs[0]], {}
            else:
                args, kwargs = call_arguments(node.call, ports, inputs)
        for port, tensor in enumerate(keras.tree.flatten(obj(*args, **kwargs))):
            tensors[PortRef(node_id, port)] = tensor
    return tensors
