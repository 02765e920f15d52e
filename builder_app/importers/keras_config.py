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

from builder_app.core.graph import INPUT_CLASS, GraphError, Layer, ModelGraph, Node, PortRef
from builder_app.core.ops import AddNode, Connect, SetModelIO

#: Classes whose config is itself a model.
MODEL_CLASSES = {"Functional", "Model", "Sequential"}


class ConfigError(ValueError):
    """The config is not a Keras model config; the message says where."""


def graph_from_model_config(data: Mapping[str, Any]) -> ModelGraph:
    """Builds a graph from a serialized Keras model.

    Args:
        data: Either ``{"class_name": "Functional" | "Sequential", "config": {...}}``
            (what ``config.json`` and ``model.to_json()`` hold) or the inner
            ``model.get_config()`` dict of a functional model.

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
    if "class_name" in data and "config" in data:
        class_name = data["class_name"]
        config = data["config"]
        if not isinstance(config, Mapping):
            raise ConfigError("the model's 'config' must be a JSON object")
        if class_name == "Sequential":
            return _sequential(config)
        if class_name in MODEL_CLASSES or "layers" in config:
            return _functional(config)
        raise ConfigError(f"'{class_name}' is a layer, not a model")
    if "layers" in data:
        return _functional(data)
    raise ConfigError("this JSON is not a Keras model config (no 'layers')")


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
    if isinstance(module, str) and module not in ("keras.layers", "keras", "keras.models", "keras.src.models.functional", "keras.src.models.sequential"):
        # Keep where it came from, so the unknown class is named fully.
        if class_name not in MODEL_CLASSES and not module.startswith("keras.layers"):
            class_name = f"{module}.{class_name}"
    # The data is fresh from json.loads (see graph_from_model_config): no copy needed.
    layer_config = {k: v for k, v in config.items() if k != "name"}
    return name, class_name, layer_config


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
    pending: list[tuple[str, list[tuple[int, list[Any]]]]] = []
    count = 0
    for i, item in enumerate(layers):
        layer_name, class_name, layer_config = _layer_record(item, f"layer {i}")
        submodel = _submodel(class_name, item.get("config", {}))
        if submodel is not None:
            layer_config = {"trainable": layer_config.get("trainable", True)}
        layer = Layer(layer_name, class_name, layer_config, submodel)
        if layer_name in graph.layers:
            raise ConfigError(f"two layers are named '{layer_name}'")
        is_model[layer_name] = class_name in MODEL_CLASSES and class_name != "Sequential"
        inbound = item.get("inbound_nodes", [])
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
            template, refs = (None, []) if node_data is None else _call_template(node_data, layer_name)
            graph.apply(
                AddNode(
                    Node(node_id, layer_name, (0.0, 0.0), _simplify(template, len(refs), class_name)),
                    layer if k == 0 else None,
                )
            )
            ports_per_call.append((node_id, refs))
        pending.append((layer_name, ports_per_call))
    for layer_name, calls in pending:
        for node_id, refs in calls:
            for port, (src_layer, node_index, tensor_index) in enumerate(refs):
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
    inputs = [_tensor_ref(t, node_ids, is_model) for t in _history_list(config.get("input_layers"))]
    outputs = [_tensor_ref(t, node_ids, is_model) for t in _history_list(config.get("output_layers"))]
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
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
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
            if len(entry) > 3 and isinstance(entry[3], dict):
                kwargs.update(walk(entry[3]))
        placeholders = [{"port": i} for i in range(len(refs))]
        args = [placeholders[0]] if len(refs) == 1 else [placeholders]
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
