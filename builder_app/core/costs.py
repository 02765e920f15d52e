"""What a model costs to run, per node: multiply-accumulates and activation memory.

The convention, as Keras-flops, ptflops and MATLAB's ``analyzeNetwork`` use it:
**flops = multiply-accumulate operations (MACs) per sample**, the batch dimension
excluded (multiply by two for "floating-point operations"). A layer with weights
counts the multiply-accumulates of its weight products (a Dense of 784 -> 128 is
100,352; bias additions are not counted). Element-wise work counts one operation
per element: a normalization, an activation (standalone, or fused into a layer
with weights when not linear), each input of a merge after the first, each window
position of a pooling, the softmax of an attention. Data movement (Reshape,
Concatenate, padding, cropping, nearest upsampling, an Embedding lookup) and what
only acts in training (Dropout, GaussianNoise...) count 0. A class this module has
no rule for (a custom layer, a rarely used preprocessing layer) is ``None``,
never 0, and so is a node any of whose sizes beyond the batch is unknown.

Activation memory is the bytes of a node's output tensors per sample: the product
of their dimensions beyond the batch times the dtype's size (float32 4 bytes,
float16 and bfloat16 2, int8 1...). A sub-model's node counts what its inner
nodes do (its input layers excluded: those are the tensors the call is given).

Everything is read from the shape engine's last results (:meth:`ShapeEngine.peek`),
never recomputed: call :meth:`ShapeEngine.update` first. No Qt, no Keras import.

Measured (Keras applications at 224x224, ``weights=None``): ResNet50 3.89 G MACs,
3.86 G of them in its convolutions and its Dense (the usual "3.9 G MACs"; the
"4.1 GFLOPs" often quoted is torchvision's variant, with the stride in the 3x3
convolution), and 148 MB (141.6 MB in 1024s) of float32 activations per sample;
MobileNetV2 314 M (301 M in convolutions and Dense, the quoted "300 M"); VGG16
15.5 G. ResNet50's costs take about 10 ms to compute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from builder_app.core.calls import call_arguments
from builder_app.core.graph import INPUT_CLASS, ModelGraph
from builder_app.core.keras_build import TensorType, is_operation

#: Bytes of one element of each dtype Keras tensors take.
DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "int4": 1,
    "uint64": 8,
    "uint32": 4,
    "uint16": 2,
    "uint8": 1,
    "bool": 1,
    "complex64": 8,
    "complex128": 16,
}


@dataclass(frozen=True)
class NodeCost:
    """What one node costs per sample.

    Attributes:
        flops: Multiply-accumulate operations per sample (see the module's
            convention), or None where unknown.
        activation_bytes: Bytes of the node's output tensors per sample, or None
            where unknown (an unknown size or dtype, or no result yet).
    """

    flops: int | None
    activation_bytes: int | None


UNKNOWN = NodeCost(None, None)


# --------------------------------------------------------------------- sizes
def elements(tensor: TensorType | None) -> int | None:
    """Elements of one sample of a tensor (the first dimension is the batch); None if unknown."""
    if tensor is None:
        return None
    dims = tuple(tensor.shape)[1:]
    if any(d is None for d in dims):
        return None
    return math.prod(dims)


def tensor_bytes(tensor: TensorType | None) -> int | None:
    """Bytes of one sample of a tensor; None where a size or the dtype's width is unknown."""
    count = elements(tensor)
    width = DTYPE_BYTES.get(str(tensor.dtype)) if tensor is not None else None
    return None if count is None or width is None else count * width


def _outputs_bytes(outputs: Sequence[TensorType] | None) -> int | None:
    if outputs is None:
        return None
    sizes = [tensor_bytes(t) for t in outputs]
    return None if any(s is None for s in sizes) else sum(sizes)


# --------------------------------------------------------------------- nodes
def node_cost(graph: ModelGraph, engine: Any, node_id: str) -> NodeCost:
    """The cost of one node, from the engine's last results (no update).

    Args:
        graph: The graph the node is in.
        engine: The graph's :class:`~builder_app.core.shapes.ShapeEngine`.
        node_id: The node.

    Returns:
        Both fields None while the node's outputs are unknown; ``flops`` None for a
        class without a rule or an unknown size.
    """
    result = engine.peek(node_id)
    if result is None or result.outputs is None:
        return UNKNOWN
    layer = graph.layer_of(node_id)
    if layer.submodel is not None:
        return _submodel_cost(graph, engine, node_id)
    outputs = list(result.outputs)
    activation = _outputs_bytes(outputs)
    if layer.class_name == INPUT_CLASS:
        return NodeCost(0, activation)
    args, kwargs = _call_tensors(graph, engine, node_id)
    try:
        flops = layer_macs(layer.class_name, layer.config, args, kwargs, outputs)
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError):
        flops = None  # a config this module does not read (an imported oddity)
    return NodeCost(flops, activation)


def model_costs(graph: ModelGraph, engine: Any) -> dict[str, NodeCost]:
    """Every node's cost, in topological order (from the engine's last results)."""
    return {node_id: node_cost(graph, engine, node_id) for node_id in graph.topological_order()}


def total_cost(costs: Mapping[str, NodeCost]) -> NodeCost:
    """The sums over nodes; an unknown entry counts as 0.

    Each field is None only when every entry's is None (or there are none), so a
    total with unknown nodes is a lower bound: check the entries to tell.
    """
    return NodeCost(
        _sum_known(c.flops for c in costs.values()),
        _sum_known(c.activation_bytes for c in costs.values()),
    )


def _sum_known(values) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _submodel_cost(graph: ModelGraph, engine: Any, node_id: str) -> NodeCost:
    """A sub-model's call: what its inner nodes cost (None where any is unknown).

    The inner engine's results are for the sub-model's own inputs; a call on other
    sizes (``engine.run``) has no per-node results, so both fields are unknown.
    """
    inner = graph.layer_of(node_id).submodel
    inner_engine = engine.engine_for(inner) if hasattr(engine, "engine_for") else None
    if inner is None or inner_engine is None:
        return UNKNOWN
    given = [
        _source_type(graph, engine, ref.node, ref.port)
        for _, ref in sorted(graph.inputs_of(node_id).items())
    ]
    expected = [
        (inner_engine.peek(n).outputs or [None])[0] if inner_engine.peek(n) is not None else None
        for n in inner.model_inputs()
    ]
    same = len(given) == len(expected) and all(
        g is not None
        and e is not None
        and tuple(g.shape)[1:] == tuple(e.shape)[1:]
        and g.dtype == e.dtype
        for g, e in zip(given, expected, strict=True)
    )
    if not same:
        return UNKNOWN
    flops: int | None = 0
    activation: int | None = 0
    for inner_id in inner.topological_order():
        if inner.layer_of(inner_id).class_name == INPUT_CLASS:
            continue
        cost = node_cost(inner, inner_engine, inner_id)
        flops = None if flops is None or cost.flops is None else flops + cost.flops
        activation = (
            None
            if activation is None or cost.activation_bytes is None
            else activation + cost.activation_bytes
        )
    return NodeCost(flops, activation)


def _source_type(graph: ModelGraph, engine: Any, source: str, port: int) -> TensorType | None:
    result = engine.peek(source)
    if result is None or result.outputs is None or port >= len(result.outputs):
        return None
    return result.outputs[port]


def _call_tensors(graph: ModelGraph, engine: Any, node_id: str) -> tuple[list[Any], dict[str, Any]]:
    """The node's call arguments with each input's TensorType in place of its tensor."""
    tensors = {
        port: _source_type(graph, engine, ref.node, ref.port)
        for port, ref in graph.inputs_of(node_id).items()
    }
    from builder_app.core.ports import layer_ports

    ports = layer_ports(graph.layer_of(node_id).class_name)
    call = graph.node(node_id).call
    if call is None and ports is None:
        return [tensors[p] for p in sorted(tensors)], {}
    return call_arguments(call, ports, tensors)


# --------------------------------------------------------------------- rules
def layer_macs(
    class_name: str,
    config: Mapping[str, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    outputs: Sequence[TensorType],
) -> int | None:
    """Multiply-accumulates per sample of one call of a layer (None: no rule, or unknown sizes).

    Args:
        class_name: The Keras class (a ``keras.ops`` operation is module-qualified).
        config: The layer's config.
        args: The call's positional arguments, TensorTypes for tensors (a list of
            them for layers that take a list).
        kwargs: The call's keyword arguments, the same way.
        outputs: The call's output TensorTypes.
    """
    tensors = _flat_tensors([*args, *kwargs.values()])
    x = tensors[0] if tensors else None
    y = outputs[0] if outputs else None
    if is_operation(class_name):
        return _operation_macs(class_name.rpartition(".")[2], tensors, y)
    if class_name in _ZERO:
        return 0
    if class_name in _OUTPUT_ELEMENTS:
        return elements(y)
    rule = _RULES.get(class_name)
    if rule is None:
        return None
    macs = rule(config, tensors, args, kwargs, x, y)
    if macs is not None and class_name in _FUSED_ACTIVATION:
        extra = _fused_activation(config, y)
        macs = None if extra is None else macs + extra
    return macs


def _flat_tensors(values: Sequence[Any]) -> list[TensorType]:
    found: list[TensorType] = []
    for value in values:
        if isinstance(value, TensorType):
            found.append(value)
        elif isinstance(value, list | tuple):
            found.extend(_flat_tensors(value))
    return found


def _known(*values: int | None) -> bool:
    return all(v is not None for v in values)


def _product(value: Any, rank: int) -> int:
    if isinstance(value, int):
        return value**rank
    return math.prod(int(v) for v in value)


def _fused_activation(config: Mapping[str, Any], y: TensorType | None) -> int | None:
    activation = config.get("activation")
    if isinstance(activation, dict):  # a serialized activation function
        activation = activation.get("config")
    if activation in (None, "linear"):
        return 0
    return elements(y)


def _channels(config: Mapping[str, Any], tensor: TensorType) -> int | None:
    shape = tuple(tensor.shape)
    return shape[1] if config.get("data_format") == "channels_first" else shape[-1]


def _conv(rank: int) -> Callable[..., int | None]:
    def rule(config, tensors, args, kwargs, x, y):
        if x is None or y is None:
            return None
        cin, out = _channels(config, x), elements(y)
        if not _known(cin, out):
            return None
        groups = int(config.get("groups") or 1)
        return out * _product(config["kernel_size"], rank) * cin // groups

    return rule


def _conv_transpose(rank: int) -> Callable[..., int | None]:
    def rule(config, tensors, args, kwargs, x, y):
        count = elements(x)
        if count is None:
            return None
        # Every input position scatters kernel x filters multiply-accumulates.
        return count * _product(config["kernel_size"], rank) * int(config["filters"])

    return rule


def _depthwise(rank: int) -> Callable[..., int | None]:
    def rule(config, tensors, args, kwargs, x, y):
        out = elements(y)
        return None if out is None else out * _product(config["kernel_size"], rank)

    return rule


def _separable(rank: int) -> Callable[..., int | None]:
    def rule(config, tensors, args, kwargs, x, y):
        if x is None or y is None:
            return None
        cin, out = _channels(config, x), elements(y)
        if not _known(cin, out):
            return None
        filters = int(config["filters"])
        positions = out // filters
        middle = cin * int(config.get("depth_multiplier") or 1)
        return (
            positions * middle * _product(config["kernel_size"], rank)
            + positions * middle * filters
        )

    return rule


def _dense(config, tensors, args, kwargs, x, y):
    if x is None or y is None:
        return None
    out, width = elements(y), tuple(x.shape)[-1]
    return None if not _known(out, width) else out * width


def _einsum_dense(config, tensors, args, kwargs, x, y):
    """Every input element meets every size the kernel adds (the output's new letters)."""
    if x is None or y is None:
        return None
    inputs, output = str(config["equation"]).replace(" ", "").split("->")
    input_spec = inputs.split(",")[0]
    seen = set(input_spec.replace(".", ""))
    shape = tuple(y.shape)
    if "..." in output:
        left, right = output.split("...")
        sizes = dict(zip(left, shape[: len(left)], strict=False))
        sizes.update(zip(right, shape[len(shape) - len(right) :], strict=False))
    else:
        sizes = dict(zip(output, shape, strict=False))
    count = elements(x)
    added = [sizes[letter] for letter in sizes if letter not in seen]
    if count is None or any(a is None for a in added):
        return None
    return count * math.prod(added)


def _elements_of_input(config, tensors, args, kwargs, x, y):
    return elements(x)


def _pooling(rank: int) -> Callable[..., int | None]:
    def rule(config, tensors, args, kwargs, x, y):
        out = elements(y)
        return None if out is None else out * _product(config["pool_size"], rank)

    return rule


def _merge(config, tensors, args, kwargs, x, y):
    out = elements(y)
    return None if out is None else out * max(len(tensors) - 1, 0)


def _dot(config, tensors, args, kwargs, x, y):
    out = elements(y)
    if out is None or x is None:
        return None
    axes = config.get("axes", -1)
    axis = axes if isinstance(axes, int) else axes[0]
    shape = tuple(x.shape)
    size = shape[axis]
    return None if size is None else out * size


def _gates(class_name: str) -> int:
    return {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[class_name]


def _recurrent(class_name: str) -> Callable[..., int | None]:
    def rule(config, tensors, args, kwargs, x, y):
        return _rnn_macs(class_name, config, x)

    return rule


def _rnn_macs(class_name: str, config: Mapping[str, Any], x: TensorType | None) -> int | None:
    """Gates x units x (features + units) per timestep, times the timesteps."""
    if x is None or len(x.shape) < 3:
        return None
    steps, features = tuple(x.shape)[1], tuple(x.shape)[-1]
    if not _known(steps, features):
        return None
    units = int(config["units"])
    return steps * _gates(class_name) * units * (features + units)


def _conv_lstm(rank: int) -> Callable[..., int | None]:
    def rule(config, tensors, args, kwargs, x, y):
        """Four gates, each an input and a recurrent convolution, per output position and step."""
        if x is None or y is None:
            return None
        steps, cin, out = tuple(x.shape)[1], _channels(config, x), elements(y)
        if not _known(steps, cin, out):
            return None
        filters = int(config["filters"])
        positions = out // filters // (steps if config.get("return_sequences") else 1)
        kernel = _product(config["kernel_size"], rank)
        return steps * 4 * positions * filters * kernel * (cin + filters)

    return rule


def _bidirectional(config, tensors, args, kwargs, x, y):
    inner = config.get("layer") or {}
    if inner.get("class_name") not in ("LSTM", "GRU", "SimpleRNN"):
        return None
    one = _rnn_macs(inner["class_name"], inner.get("config") or {}, x)
    return None if one is None else 2 * one


def _time_distributed(config, tensors, args, kwargs, x, y):
    """The wrapped layer on one timestep, times the timesteps."""
    inner = config.get("layer") or {}
    if x is None or y is None or len(x.shape) < 3 or len(y.shape) < 2:
        return None
    steps = tuple(x.shape)[1]
    if steps is None:
        return None
    step_x = TensorType(tuple(x.shape)[:1] + tuple(x.shape)[2:], x.dtype)
    step_y = TensorType(tuple(y.shape)[:1] + tuple(y.shape)[2:], y.dtype)
    one = layer_macs(
        str(inner.get("class_name")), inner.get("config") or {}, [step_x], {}, [step_y]
    )
    return None if one is None else steps * one


def _attention_inputs(args, kwargs) -> tuple[Any, Any, Any]:
    if args and isinstance(args[0], list):  # Attention layers take [query, value, key]
        items = list(args[0]) + [None, None, None]
        query, value, key = items[:3]
    else:
        query = args[0] if len(args) > 0 else kwargs.get("query")
        value = args[1] if len(args) > 1 else kwargs.get("value")
        key = args[2] if len(args) > 2 else kwargs.get("key")
    return query, value, key if key is not None else value


def _positions(tensor: TensorType) -> int | None:
    dims = tuple(tensor.shape)[1:-1]
    return None if any(d is None for d in dims) else math.prod(dims)


def _multi_head_attention(config, tensors, args, kwargs, x, y):
    """Query, key and value projections, scores (QK^T), softmax, AV, the output projection."""
    query, value, key = _attention_inputs(args, kwargs)
    if query is None or value is None or y is None:
        return None
    tq, tv = _positions(query), _positions(value)
    dq, dk, dv, dout = (tuple(t.shape)[-1] for t in (query, key, value, y))
    if not _known(tq, tv, dq, dk, dv, dout):
        return None
    heads, key_dim = int(config["num_heads"]), int(config["key_dim"])
    value_dim = int(config.get("value_dim") or key_dim)
    projections = (
        tq * dq * heads * key_dim + tv * dk * heads * key_dim + tv * dv * heads * value_dim
    )
    scores = heads * tq * tv * key_dim
    softmax = heads * tq * tv
    mixed = heads * tq * tv * value_dim
    return projections + scores + softmax + mixed + tq * heads * value_dim * dout


def _dot_attention(config, tensors, args, kwargs, x, y):
    """Scores (QK^T), their softmax, and the weighted sum of the values."""
    query, value, key = _attention_inputs(args, kwargs)
    if query is None or value is None:
        return None
    tq, tv = _positions(query), _positions(value)
    dq, dv = tuple(query.shape)[-1], tuple(value.shape)[-1]
    if not _known(tq, tv, dq, dv):
        return None
    return tq * tv * dq + tq * tv + tq * tv * dv


def _upsampling(config, tensors, args, kwargs, x, y):
    if config.get("interpolation", "nearest") == "nearest":
        return 0
    return elements(y)


_ZERO = {
    # Data movement and lookups.
    "Reshape",
    "Flatten",
    "Permute",
    "RepeatVector",
    "Concatenate",
    "Identity",
    "Masking",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Embedding",
    "ReversibleEmbedding",
    "CenterCrop",
    "ActivityRegularization",
    # Identity at inference.
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomCrop",
    "RandomContrast",
    "RandomBrightness",
    "RandomHue",
    "RandomSaturation",
    "RandomSharpness",
    "RandomShear",
    "RandomGrayscale",
    "RandomInvert",
    "RandomPosterization",
    "RandomColorDegeneration",
    "RandomColorJitter",
    "RandomErasing",
    "RandomGaussianBlur",
    "RandomPerspective",
    "RandomElasticTransform",
    "AugMix",
    "CutMix",
    "MixUp",
    "RandAugment",
}

#: One operation per output element.
_OUTPUT_ELEMENTS = {
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "UnitNormalization",
    "RMSNormalization",
    "Normalization",
    "Rescaling",
    "Resizing",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
}

_RULES: dict[str, Callable[..., int | None]] = {
    "Dense": _dense,
    "EinsumDense": _einsum_dense,
    "Add": _merge,
    "Subtract": _merge,
    "Multiply": _merge,
    "Average": _merge,
    "Maximum": _merge,
    "Minimum": _merge,
    "Dot": _dot,
    "MultiHeadAttention": _multi_head_attention,
    "Attention": _dot_attention,
    "AdditiveAttention": _dot_attention,
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    "UpSampling1D": _upsampling,
    "UpSampling2D": _upsampling,
    "UpSampling3D": _upsampling,
}
for _rank_ in (1, 2, 3):
    _RULES[f"Conv{_rank_}D"] = _conv(_rank_)
    _RULES[f"Conv{_rank_}DTranspose"] = _conv_transpose(_rank_)
    _RULES[f"MaxPooling{_rank_}D"] = _pooling(_rank_)
    _RULES[f"AveragePooling{_rank_}D"] = _pooling(_rank_)
    _RULES[f"GlobalMaxPooling{_rank_}D"] = _elements_of_input
    _RULES[f"GlobalAveragePooling{_rank_}D"] = _elements_of_input
    _RULES[f"ConvLSTM{_rank_}D"] = _conv_lstm(_rank_)
for _rank_ in (1, 2):
    _RULES[f"DepthwiseConv{_rank_}D"] = _depthwise(_rank_)
    _RULES[f"SeparableConv{_rank_}D"] = _separable(_rank_)
for _name_ in ("LSTM", "GRU", "SimpleRNN"):
    _RULES[_name_] = _recurrent(_name_)

#: Layers whose ``activation`` runs on their output (counted when not linear).
_FUSED_ACTIVATION = {
    name
    for name in _RULES
    if name.startswith(("Conv", "Dense", "EinsumDense", "Depthwise", "Separable"))
    and not name.startswith("ConvLSTM")
}

#: ``keras.ops`` operations: element-wise, and data movement.
_OPERATION_ELEMENTS = {
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    "TrueDivide",
    "Power",
    "Maximum",
    "Minimum",
    "Negative",
    "Abs",
    "Absolute",
    "Sqrt",
    "Square",
    "Exp",
    "Log",
    "Tanh",
    "Sigmoid",
    "Relu",
    "Gelu",
    "Silu",
    "Softmax",
    "Clip",
    "Where",
    "Mean",
    "Sum",
    "Max",
    "Min",
    "Erf",
}
_OPERATION_ZERO = {
    "Reshape",
    "Transpose",
    "ExpandDims",
    "Squeeze",
    "Concatenate",
    "GetItem",
    "Slice",
    "Cast",
    "Stack",
    "Split",
    "Tile",
    "Repeat",
    "BroadcastTo",
    "Flip",
    "Roll",
    "Take",
    "Pad",
    "Identity",
}


def _operation_macs(name: str, tensors: Sequence[TensorType], y: TensorType | None) -> int | None:
    if name in _OPERATION_ZERO:
        return 0
    if name in _OPERATION_ELEMENTS:
        return elements(y)
    if name == "Matmul" and tensors and y is not None:
        out, inner = elements(y), tuple(tensors[0].shape)[-1]
        return None if not _known(out, inner) else out * inner
    return None


# --------------------------------------------------------------------- text
def format_count(n: int | None) -> str:
    """A count with one decimal and a K/M/G/T suffix: ``"3.9 G"``, ``"120.4 M"``, ``"448"``.

    ``"?"`` when unknown.
    """
    if n is None:
        return "?"
    for scale, suffix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {suffix}"
    return str(n)


def format_bytes(n: int | None) -> str:
    """Bytes as Keras's summary writes them (1024-based): ``"3.1 MB"``, ``"448 B"``.

    ``"?"`` when unknown.
    """
    if n is None:
        return "?"
    for scale, suffix in ((1024**4, "TB"), (1024**3, "GB"), (1024**2, "MB"), (1024, "KB")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n} B"
