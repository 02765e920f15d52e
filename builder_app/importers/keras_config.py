"""Keras model configs (``model.get_config()``, ``config.json`` of a ``.keras``) -> graph.

The config is read as plain data and mapped onto graph operations: nothing in it is
deserialized by Keras, so nothing it names is imported or run. A layer class the
catalog does not know stays in the graph as a node that shape inference reports
("unknown layer ...") instead of failing the whole import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from builder_app.core import keras_compat
from builder_app.core.calls import CONSTANT_KINDS, constant_problem
from builder_app.core.graph import INPUT_CLASS, GraphError, Layer, ModelGraph, Node, PortRef
from builder_app.core.ops import AddNode, Connect, SetModelIO

#: Classes whose config is itself a model.
MODEL_CLASSES = {"Functional", "Model", "Sequential"}


class ConfigError(ValueError):
    """The config is not a Keras model config; the message says where."""


def graph_from_model_config(data: Mapping[str, Any], renamed: dict[str, str] | None = None) -> ModelGraph:
    """Builds a graph from a serialized Keras model.

    Args:
        data: Either ``{"class_name": "Functional" | "Sequential", "config": {...}}``
            (what ``config.json`` and ``model.to_json()`` hold) or the inner
            ``model.get_config()`` dict of a functional model.
        renamed: Filled with the layers renamed on the way: Keras 2 allowed "/" in
            layer names, Keras 3 does not, so "conv1/conv" becomes "conv1_conv".
            Keys are the old names (a sub-model's layers as "sub-model/layer").

    Raises:
        ConfigError: The data is not a functional or sequential model config.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("a model config must be a JSON object")
    try:
        # Plain JSON types only (a live get_config() holds tuples).
        data = json.loads(json.dumps(data))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the model config is not plain JSON: {exc}") from None
    _rename_slashes(data.get("config") if "class_name" in data else data, "", {} if renamed is None else renamed)
    if "class_name" in data and "config" in data:
        class_name = data["class_name"]
        config = data["config"]
        if not isinstance(config, Mapping):
            raise ConfigError("the model's 'config' must be a JSON object")
        if class_name == "Sequential":
            return _sequential(config)
        if class_name in MODEL_CLASSES or "layers" in config:
            return _structured(_functional(config), config)
        module = data.get("module")
        if isinstance(module, str) and not module.startswith("keras"):
            raise ConfigError(
                f"'{module}.{class_name}' is a custom class whose config holds no layer graph "
                "(a subclassed model?): only functional and Sequential models can be imported"
            )
        raise ConfigError(f"'{class_name}' is a layer, not a model")
    if "layers" in data:
        return _structured(_functional(data), data)
    raise ConfigError("this JSON is not a Keras model config (no 'layers')")


def _rename_slashes(config: Any, prefix: str, renamed: dict[str, str]) -> None:
    """Renames the layers of one model config (and its sub-models) whose names hold "/"."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        return
    items = [item for item in config["layers"] if isinstance(item, dict)]
    ordered = [item.get("name", (item.get("config") or {}).get("name")) for item in items]
    names = set(ordered)
    mapping: dict[str, str] = {}
    for name in ordered:
        if isinstance(name, str) and "/" in name:
            new = base = name.replace("/", "_")
            while new in names or new in mapping.values():
                new = f"{base}_{len(mapping) + 1}"
            mapping[name] = new
    for item in items:
        inner = item.get("config")
        if mapping:
            if item.get("name") in mapping:
                item["name"] = mapping[item["name"]]
            if isinstance(inner, dict) and inner.get("name") in mapping:
                inner["name"] = mapping[inner["name"]]
            _rename_references(item.get("inbound_nodes"), mapping)
        if item.get("class_name") in MODEL_CLASSES:
            _rename_slashes(inner, f"{prefix}{item.get('name')}/", renamed)
    if mapping:
        for key in ("input_layers", "output_layers"):
            _rename_references(config.get(key), mapping)
        renamed.update({f"{prefix}{old}": f"{prefix}{new}" for old, new in mapping.items()})


def _rename_references(value: Any, mapping: dict[str, str]) -> None:
    """Renames layers in tensor references: [name, node, tensor(, kwargs)] and keras_history."""
    if isinstance(value, list):
        if len(value) >= 3 and value[0] in mapping and isinstance(value[1], int) and isinstance(value[2], int):
            value[0] = mapping[value[0]]
        for item in value:
            _rename_references(item, mapping)
    elif isinstance(value, dict):
        for item in value.values():
            _rename_references(item, mapping)


def _layer_record(item: Mapping[str, Any], where: str) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a layer entry must be a JSON object")
    class_name = item.get("class_name")
    config = item.get("config", {})
    if not isinstance(class_name, str) or not isinstance(config, Mapping):
        raise ConfigError(f"{where}: a layer needs a 'class_name' and a 'config' object")
    name = item.get("name", config.get("name"))
    if not isinstance(name, str):
        raise ConfigError(f"{where}: a {class_name} layer has no name")
    module = item.get("module")
    if isinstance(module, str) and module not in ("keras.layers", "keras", "keras.models", *keras_compat.MODEL_MODULES):
        # Keep where it came from, so the unknown class is named fully.
        if class_name not in MODEL_CLASSES and not module.startswith("keras.layers"):
            class_name = f"{module}.{class_name}"
    # The data is fresh from json.loads (see graph_from_model_config): no copy needed.
    layer_config = {k: v for k, v in config.items() if k != "name"}
    return name, *_from_keras2(class_name, layer_config)


def _submodel(class_name: str, config: Mapping[str, Any]) -> ModelGraph | None:
    if class_name == "Sequential":
        return _sequential(config)
    if class_name in MODEL_CLASSES and "layers" in config:
        return _functional(config)
    return None


def _functional(config: Mapping[str, Any]) -> ModelGraph:
    name = config.get("name", "model")
    graph = ModelGraph(name if isinstance(name, str) else "model")
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ConfigError("a functional model config needs a 'layers' list")
    node_ids: dict[tuple[str, int], str] = {}
    is_model: dict[str, bool] = {}
    any_model: dict[str, bool] = {}
    legacy = False
    pending: list[tuple[str, list[tuple[str, list[Any], bool]]]] = []
    count = 0
    for i, item in enumerate(layers):
        layer_name, class_name, layer_config = _layer_record(item, f"layer {i}")
        inbound = item.get("inbound_nodes", [])
        if class_name == "TFOpLambda":
            class_name, layer_config, inbound = _from_tf_op_lambda(layer_config, inbound)
        submodel = _submodel(class_name, item.get("config", {}))
        if submodel is not None:
            layer_config = {"trainable": layer_config.get("trainable", True)}
        layer = Layer(layer_name, class_name, layer_config, submodel)
        if layer_name in graph.layers:
            raise ConfigError(f"two layers are named '{layer_name}'")
        is_model[layer_name] = class_name in MODEL_CLASSES and class_name != "Sequential"
        any_model[layer_name] = class_name in MODEL_CLASSES
        if not isinstance(inbound, list):
            raise ConfigError(f"layer '{layer_name}': 'inbound_nodes' must be a list")
        calls = inbound if inbound or class_name != INPUT_CLASS else []
        if class_name == INPUT_CLASS:
            calls = [None]
        elif not calls:
            continue  # a layer never called in this model
        ports_per_call = []
        for k, node_data in enumerate(calls):
            count += 1
            node_id = f"n{count}"
            node_ids[(layer_name, k)] = node_id
            # Keras 2 (lists of [layer, node, tensor, kwargs]) counted the calls of
            # every model from 1: node 0 was the model's own.
            node_legacy = isinstance(node_data, list) or (isinstance(node_data, dict) and node_data.pop(_KERAS2, False))
            template, refs = (None, []) if node_data is None else _call_template(node_data, layer_name)
            legacy |= node_legacy
            graph.apply(
                AddNode(
                    Node(node_id, layer_name, (0.0, 0.0), _simplify(template, len(refs), class_name)),
                    layer if k == 0 else None,
                )
            )
            ports_per_call.append((node_id, refs, node_legacy))
        pending.append((layer_name, ports_per_call))
    for layer_name, calls in pending:
        for node_id, refs, node_legacy in calls:
            for port, (src_layer, node_index, tensor_index) in enumerate(refs):
                if node_legacy and any_model.get(src_layer):
                    node_index -= 1
                src = node_ids.get((src_layer, node_index))
                if src is None:
                    raise ConfigError(
                        f"layer '{layer_name}' takes a tensor from '{src_layer}' "
                        f"(call {node_index}), which the config does not define"
                    )
                try:
                    graph.apply(Connect(src, tensor_index, node_id, port))
                except GraphError as exc:
                    raise ConfigError(f"layer '{layer_name}': {exc}") from None
    models = any_model if legacy else is_model
    inputs = [_tensor_ref(t, node_ids, models) for t in _history_list(config.get("input_layers"))]
    outputs = [_tensor_ref(t, node_ids, models) for t in _history_list(config.get("output_layers"))]
    try:
        graph.apply(
            SetModelIO(
                [ref.node for ref in inputs if graph.is_input(ref.node)],
                outputs,
            )
        )
    except GraphError as exc:
        raise ConfigError(str(exc)) from None
    return graph


def _structured(graph: ModelGraph, config: Mapping[str, Any]) -> ModelGraph:
    """The model's graph keeping how its inputs and outputs are grouped (dicts stay dicts).

    Only the model itself: a sub-model's calls in the graph take and give its
    tensors one by one, whatever its own grouping.
    """
    from builder_app.core.io_structure import SetStructure, structure_from_config

    sides = {"inputs": config.get("input_layers"), "outputs": config.get("output_layers")}
    counts = {"inputs": len(graph.explicit_inputs()), "outputs": len(graph.explicit_outputs())}
    structure = {
        side: found
        for side, value in sides.items()
        if (found := structure_from_config(value)) is not None
        and found != ({"kind": "single"} if counts[side] == 1 else {"kind": "list"})
    }
    if structure:
        graph.apply(SetStructure(structure))
    return graph


def _sequential(config: Mapping[str, Any]) -> ModelGraph:
    name = config.get("name", "sequential")
    graph = ModelGraph(name if isinstance(name, str) else "sequential")
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ConfigError("a Sequential config needs a 'layers' list")
    previous: str | None = None
    entries = [(_layer_record(item, f"layer {i}"), item) for i, item in enumerate(layers)]
    if not entries or entries[0][0][1] != INPUT_CLASS:
        shape = config.get("build_input_shape")
        first = layers[0].get("config") if layers and isinstance(layers[0], Mapping) else None
        if isinstance(first, Mapping) and isinstance(first.get("batch_input_shape"), list):
            shape = first["batch_input_shape"]  # Keras 2: the first layer carried the input shape
        if not isinstance(shape, list):
            raise ConfigError(
                f"Sequential model '{graph.name}' has no Input and no build_input_shape"
            )
        entries.insert(0, (("input_layer", INPUT_CLASS, {"batch_shape": shape, "dtype": "float32"}), {}))
    for i, ((layer_name, class_name, layer_config), item) in enumerate(entries):
        submodel = _submodel(class_name, item.get("config", {}))
        if submodel is not None:
            layer_config = {"trainable": layer_config.get("trainable", True)}
        if layer_name in graph.layers:
            raise ConfigError(f"two layers are named '{layer_name}'")
        node_id = f"n{i + 1}"
        graph.apply(AddNode(Node(node_id, layer_name), Layer(layer_name, class_name, layer_config, submodel)))
        if previous is not None:
            graph.apply(Connect(previous, 0, node_id, 0))
        previous = node_id
    return graph


def _history_list(value: Any) -> list[list[Any]]:
    """``input_layers`` / ``output_layers``: one triple, or a (nested) list of them."""
    if value is None:
        return []
    if _is_history(value):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _history_list(v)]
    if isinstance(value, list):
        return [t for v in value for t in _history_list(v)]
    raise ConfigError(f"malformed model inputs/outputs: {json.dumps(value)[:80]}")


def _is_history(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and isinstance(value[2], int)
    )


def _tensor_ref(history: list[Any], node_ids, is_model) -> PortRef:
    layer_name, node_index, tensor_index = history
    if is_model.get(layer_name):
        node_index -= 1  # here (only) Keras counts calls of a sub-model from 1
    node_id = node_ids.get((layer_name, node_index))
    if node_id is None:
        raise ConfigError(f"the model's inputs or outputs name an unknown layer '{layer_name}'")
    return PortRef(node_id, tensor_index)


def _call_template(node_data: Any, layer_name: str) -> tuple[dict[str, Any], list[tuple[str, int, int]]]:
    """Replaces the tensors of one recorded call by ``{"port": i}`` placeholders."""
    refs: list[tuple[str, int, int]] = []

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                history = (value.get("config") or {}).get("keras_history")
                if not _is_history(history):
                    raise ConfigError(f"layer '{layer_name}': a tensor without keras_history")
                refs.append(tuple(history))
                return {"port": len(refs) - 1}
            if value.get("class_name") in CONSTANT_KINDS:
                # A constant array (preprocess_input's channel means): plain numbers, kept as they are.
                problem = constant_problem(value)
                if problem is not None:
                    raise ConfigError(f"layer '{layer_name}': {problem}")
                return value
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    def legacy_walk(value: Any) -> Any:
        # Keras 2 wrote tensors among call arguments as [layer, node, tensor(, kwargs)].
        if isinstance(value, list) and len(value) in (3, 4) and _is_history(value[:3]):
            if len(value) == 3 or isinstance(value[3], dict):
                refs.append(tuple(value[:3]))
                return {"port": len(refs) - 1}
        if isinstance(value, dict):
            return {k: legacy_walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [legacy_walk(v) for v in value]
        return value

    if isinstance(node_data, dict) and ("args" in node_data or "kwargs" in node_data):
        args = walk(node_data.get("args", []))
        kwargs = walk(node_data.get("kwargs", {}))
        return {"args": args, "kwargs": kwargs}, refs
    if isinstance(node_data, list):
        # Legacy (Keras 2 / .h5) format: [[layer, node_index, tensor_index, kwargs], ...]
        kwargs: dict[str, Any] = {}
        for entry in node_data:
            if not (isinstance(entry, list) and len(entry) >= 3 and _is_history(entry[:3])):
                raise ConfigError(f"layer '{layer_name}': malformed inbound node")
            refs.append(tuple(entry[:3]))
        placeholders = [{"port": i} for i in range(len(refs))]
        args = [placeholders[0]] if len(refs) == 1 else [placeholders]
        for entry in node_data:
            if len(entry) > 3 and isinstance(entry[3], dict):
                kwargs.update(legacy_walk(entry[3]))
        return {"args": args, "kwargs": kwargs}, refs
    raise ConfigError(f"layer '{layer_name}': malformed inbound node")


def _simplify(template: dict[str, Any] | None, n_ports: int, class_name: str) -> dict[str, Any] | None:
    """None when the call is the layer's usual one (nothing worth storing)."""
    if template is None:
        return None
    ports = [{"port": i} for i in range(n_ports)]
    usual = [
        {"args": ports[:1], "kwargs": {}},  # single tensor
        {"args": [ports], "kwargs": {}},  # a list of tensors
    ]
    if n_ports >= 2:
        usual.append({"args": ports[:2], "kwargs": {"key": ports[2]} if n_ports == 3 else {}})
    if class_name in ("MultiHeadAttention", "GroupQueryAttention"):
        return None if template in usual[2:] else template
    if n_ports == 1 and template == usual[0]:
        return None
    if n_ports >= 1 and template == usual[1] and class_name not in MODEL_CLASSES:
        return _keep_list_if_single_style(template, class_name)
    return template


def _keep_list_if_single_style(template: dict[str, Any], class_name: str) -> dict[str, Any] | None:
    # A list call is the usual one only for layers that take a list.
    from builder_app.core import catalog

    try:
        style = catalog.layer_spec(class_name).ports.style
    except KeyError:
        return template
    return None if style == "list" else template


# Keras 2 (tf.keras, .h5 files) wrote arguments that Keras 3 no longer takes. Each is
# dropped only when it holds the value that behaves as Keras 3 does; any other value
# stays, and the node then says which argument Keras 3 refuses.
_TRANSPOSED_OR_SEPARABLE = {
    "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
}  # fmt: skip
_RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
_WRAPPED = ("layer", "backward_layer")


def _from_keras2(class_name: str, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Keras 2 layer config as Keras 3 reads it (configs of Keras 3 pass unchanged)."""
    if class_name == INPUT_CLASS:
        if "batch_input_shape" in config and "batch_shape" not in config:
            config["batch_shape"] = config.pop("batch_input_shape")
        if config.get("ragged") is False:
            config.pop("ragged")
        return class_name, config
    config.pop("batch_input_shape", None)  # the input shape of a Keras 2 model's first layer
    drops: dict[str, Any] = {}
    if class_name in _RECURRENT:
        drops["time_major"] = False
    if class_name in _TRANSPOSED_OR_SEPARABLE:
        drops["groups"] = 1
    if class_name.startswith("SeparableConv"):
        for key in ("kernel_initializer", "kernel_regularizer", "kernel_constraint"):
            config.pop(key, None)  # Keras 2 wrote them, never used them
    if class_name.startswith("SpatialDropout"):
        drops.update(noise_shape=None, trainable=True)
    if class_name == "MultiHeadAttention":
        for key in ("query_shape", "key_shape", "value_shape"):
            config.pop(key, None)  # build shapes: Keras 3 takes them from the call
        drops["softmax_robust_masking"] = False
    if class_name.startswith("Random"):
        config.pop("rng_type", None)
    if class_name == "BatchNormalization" and isinstance(config.get("axis"), list) and len(config["axis"]) == 1:
        config["axis"] = config["axis"][0]  # Keras 2 wrote the built axis as a list
    for key, value in drops.items():
        if key in config and config[key] == value:
            del config[key]
    if class_name == "ThresholdedReLU":
        # max(x, 0) above theta: ReLU with a threshold computes it (x == theta aside).
        kept = {k: v for k, v in config.items() if k in ("trainable", "dtype")}
        return "ReLU", {**kept, "threshold": config.get("theta", 1.0)}
    policy = config.get("dtype")
    if isinstance(policy, dict) and policy.get("class_name") == "Policy":
        config["dtype"] = {"module": "keras", "class_name": "DTypePolicy", "config": policy.get("config", {})}
    for key in _WRAPPED:
        inner = config.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("class_name"), str) and isinstance(inner.get("config"), dict):
            inner["class_name"], inner["config"] = _from_keras2(inner["class_name"], dict(inner["config"]))
    return class_name, config


# Keras 2 recorded TensorFlow functions applied to tensors (x + 3, tf.nn.relu6(x)) as
# TFOpLambda layers naming the function; Keras 3 records keras.ops operations. The
# element-wise ones map one to one; any other stays an unknown TFOpLambda node.
_TF_OPS = {
    "__operators__.add": "numpy.Add",
    "math.add": "numpy.Add",
    "math.subtract": "numpy.Subtract",
    "math.multiply": "numpy.Multiply",
    "math.truediv": "numpy.TrueDivide",
    "math.divide": "numpy.TrueDivide",
    "math.maximum": "numpy.Maximum",
    "math.minimum": "numpy.Minimum",
    "nn.relu": "nn.Relu",
    "nn.relu6": "nn.Relu6",
    "math.sigmoid": "nn.Sigmoid",
    "nn.sigmoid": "nn.Sigmoid",
    "nn.silu": "nn.Silu",
    "nn.swish": "nn.Silu",
    "math.tanh": "numpy.Tanh",
    "nn.tanh": "numpy.Tanh",
    "math.exp": "numpy.Exp",
    "math.sqrt": "numpy.Sqrt",
}
_BINARY_ARGUMENT = "y"
_KERAS2 = "__keras2__"


def _from_tf_op_lambda(config: dict[str, Any], inbound: Any) -> tuple[str, dict[str, Any], Any]:
    """A Keras 2 TFOpLambda layer as the keras.ops operation it computes, when there is one."""
    unchanged = ("TFOpLambda", config, inbound)
    operation = _TF_OPS.get(config.get("function"))
    if operation is None or not isinstance(inbound, list):
        return unchanged
    calls = []
    for node in inbound:
        # One call: [layer, node, tensor, {"y": ..., "name": None}] (a single entry, not a list).
        if isinstance(node, list) and len(node) == 1 and isinstance(node[0], list):
            node = node[0]
        if not (isinstance(node, list) and len(node) == 4 and _is_history(node[:3]) and isinstance(node[3], dict)):
            return unchanged
        kwargs = {k: v for k, v in node[3].items() if k != "name"}
        args: list[Any] = [_keras3_tensor(node[:3])]
        if operation.startswith("numpy.") and operation not in ("numpy.Tanh", "numpy.Exp", "numpy.Sqrt"):
            other = kwargs.pop(_BINARY_ARGUMENT, None)
            if isinstance(other, list) and _is_history(other[:3]) and len(other) in (3, 4):
                other = _keras3_tensor(other[:3])
            elif not isinstance(other, (int, float)) or isinstance(other, bool):
                return unchanged
            args.append(other)
        if kwargs:
            return unchanged
        calls.append({"args": args, "kwargs": {}, _KERAS2: True})
    return keras_compat.operation_class_name(*operation.split(".", 1)), {}, calls


def _keras3_tensor(history: list[Any]) -> dict[str, Any]:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": list(history)}}
