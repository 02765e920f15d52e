"""Frozen backbones in exported code: one ``.trainable = False``, and ``keras.applications`` when it is one.

An imported keypoint model holds MobileNetV2 as a frozen sub-model. Written as
it was saved, its function repeats ``trainable=False`` on each of its 150 layers;
the Python export writes the sub-model's function without them (:func:`thawed`)
and freezes it once where it is made. When the sub-model is exactly what
``keras.applications.<Name>(input_shape=..., include_top=False, weights=None)``
builds (same layers, configs and wiring), that call is written instead of the
function (:func:`application_call`); the weights load into it by the same paths.

Keras is imported lazily; no Qt here.
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any

from builder_app.core.graph import INPUT_CLASS, ModelGraph

#: Sub-models larger than this are not compared with an application (building one costs).
MAX_LAYERS = 2_000


def thawed(graph: ModelGraph) -> ModelGraph:
    """A copy of a frozen sub-model's graph without its layers' ``trainable=False``.

    The sub-model's own ``.trainable = False`` sets every layer inside it so.
    """
    copy = graph.clone()
    stack = [copy]
    while stack:
        current = stack.pop()
        for layer in current.layers.values():
            if layer.config.get("trainable") is False:
                del layer.config["trainable"]
            if layer.submodel is not None:
                stack.append(layer.submodel)
    return copy


def application_call(graph: ModelGraph) -> tuple[str, tuple[int | None, ...]] | None:
    """The keras.applications model this graph is exactly, as ``(Name, input_shape)``, or None.

    ``keras.applications.Name(input_shape=..., include_top=False, weights=None)`` must
    build the very layers, configs and wiring; None too when that cannot be told.
    """
    inputs = graph.model_inputs()
    if len(inputs) != 1 or len(graph.layers) > MAX_LAYERS or graph.structure:
        return None
    shape = graph.layer_of(inputs[0]).config.get("batch_shape")
    if not isinstance(shape, list) or len(shape) < 2 or not all(d is None or isinstance(d, int) for d in shape):
        return None
    wanted = _canonical(graph)
    for name in _candidates(graph.name):
        built = _application_graph(name, tuple(shape[1:]))
        if built is not None and built == wanted:
            return name, tuple(shape[1:])
    return None


def _candidates(model_name: str) -> list[str]:
    import keras

    plain = model_name.lower()
    names = [
        n for n in dir(keras.applications)
        if n[:1].isupper() and callable(getattr(keras.applications, n)) and plain.startswith(n.lower())
    ]
    return sorted(names, key=len, reverse=True)  # MobileNetV2 before MobileNet


@functools.lru_cache(maxsize=8)
def _application_graph(name: str, input_shape: tuple[int | None, ...]) -> str | None:
    """The canonical form of what the application builds, or None if it does not build."""
    import keras

    from builder_app.importers.keras_config import graph_from_model_config

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = getattr(keras.applications, name)(input_shape=input_shape, include_top=False, weights=None)
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(model), default=str))
        return _canonical(graph_from_model_config(config))
    except Exception:  # noqa: BLE001 - no match: the sub-model is written as a function
        return None


def _canonical(graph: ModelGraph) -> str:
    """Layers, configs and wiring, without what does not tell two builds apart.

    The Input's name (Keras counts it up per process), ``trainable`` (the frozen
    sub-model sets it once) and how the graph is drawn are left out.
    """
    def named(layer_name: str) -> str:
        return "<input>" if graph.layers[layer_name].class_name == INPUT_CLASS else layer_name

    layers = []
    for layer in graph.layers.values():
        config = _unshared({k: v for k, v in layer.config.items() if k not in ("trainable", "name")})
        layers.append([named(layer.name), layer.class_name, config, layer.submodel is not None])
    nodes = {node_id: named(node.layer) for node_id, node in graph.nodes.items()}
    edges = sorted([nodes[e.src], e.src_port, nodes[e.dst], e.dst_port] for e in graph.edges())
    calls = sorted([nodes[n], json.dumps(node.call, sort_keys=True)] for n, node in graph.nodes.items())
    outputs = [[nodes[ref.node], ref.port] for ref in graph.model_outputs()]
    return json.dumps([graph.name, layers, edges, calls, outputs], sort_keys=True, default=str)


def _unshared(value: Any) -> Any:
    """Without Keras's ``shared_object_id`` marks, which say nothing of a value."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value
