"""Compare what the app says about a model with what Keras says."""

from __future__ import annotations

import keras
from keras.src.ops.function import make_node_key

from builder_app.core.shapes import ShapeEngine
from builder_app.importers.keras_config import graph_from_model_config


def kept_calls(model: keras.Model, layer) -> list:
    """The calls of ``layer`` that belong to ``model``, in Keras's order."""
    return [
        node
        for i, node in enumerate(layer._inbound_nodes)
        if make_node_key(layer, i) in model._nodes
    ]


def graph_of(model: keras.Model):
    return graph_from_model_config(
        {"class_name": model.__class__.__name__, "config": model.get_config()}
    )


def compare_with_keras(model: keras.Model, graph=None) -> list[str]:
    """Every difference between Keras and the app (empty when they agree).

    ``graph`` is the app's graph of ``model``; by default, read from its config.
    """
    graph = graph_of(model) if graph is None else graph
    engine = ShapeEngine(graph)
    problems = [f"app error at {n}: {m}" for n, m in engine.errors()]
    for layer in model.layers:
        calls = kept_calls(model, layer)
        nodes = graph.nodes_of_layer(layer.name)
        if len(calls) != len(nodes):
            problems.append(f"{layer.name}: Keras has {len(calls)} calls, the app {len(nodes)}")
            continue
        for call, node_id in zip(calls, nodes, strict=True):
            result = engine.result(node_id)
            expected = [tuple(t.shape) for t in keras.tree.flatten(call.output_tensors)]
            if result.output_shapes != expected:
                problems.append(f"{layer.name}: shapes {result.output_shapes} != Keras {expected}")
            dtypes = [keras.backend.standardize_dtype(t.dtype) for t in keras.tree.flatten(call.output_tensors)]
            got_dtypes = [t.dtype for t in result.outputs or []]
            if got_dtypes != dtypes:
                problems.append(f"{layer.name}: dtypes {got_dtypes} != Keras {dtypes}")
        if nodes:
            params = engine.result(nodes[0]).params
            if params != layer.count_params():
                problems.append(f"{layer.name}: params {params} != Keras {layer.count_params()}")
    if engine.total_params() != model.count_params():
        problems.append(f"total params {engine.total_params()} != Keras {model.count_params()}")
    trainable = sum(_size(v) for v in model.trainable_weights)
    if engine.trainable_params() != trainable:
        problems.append(f"trainable params {engine.trainable_params()} != Keras {trainable}")
    expected_out = [tuple(t.shape) for t in model.outputs]
    got_out = [t.shape if t else None for t in engine.output_types()]
    if got_out != expected_out:
        problems.append(f"model outputs {got_out} != Keras {expected_out}")
    engine.close()
    return problems


def _size(variable) -> int:
    n = 1
    for d in variable.shape:
        n *= d
    return n
