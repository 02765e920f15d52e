"""Graph -> keras.Model: the same layers, parameters, weights and function."""

import keras
import numpy as np
import pytest

from builder_app.core.graph import ModelGraph
from builder_app.core.keras_model import BuildError, build_keras_model
from builder_app.core.ops import Connect, SetParam, add_layer
from tests.keras_compare import graph_of
from tests.test_shapes import (
    conv_zoo_to_run,
    recurrent_and_attention,
    shared_and_nested,
    two_branches,
)


def random_inputs(model, seed=0):
    rng = np.random.default_rng(seed)
    batch = []
    for tensor in model.inputs:
        shape = [2 if d is None else d for d in tensor.shape]
        if "int" in str(tensor.dtype):
            batch.append(rng.integers(0, 10, size=shape).astype(str(tensor.dtype)))
        else:
            batch.append(rng.normal(size=shape).astype("float32"))
    return batch[0] if len(batch) == 1 else batch


def same_function(a, b, inputs):
    out_a = keras.tree.flatten(a(inputs, training=False))
    out_b = keras.tree.flatten(b(inputs, training=False))
    assert len(out_a) == len(out_b)
    for x, y in zip(out_a, out_b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-5)


BUILDERS = [
    conv_zoo_to_run,
    shared_and_nested,
    recurrent_and_attention,
    lambda: keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3)),
]


@pytest.mark.parametrize("build", BUILDERS, ids=["conv_zoo", "siamese", "recurrent", "MobileNetV2"])
def test_round_trip_keeps_names_params_and_function(build):
    original = build()
    graph = graph_of(original)
    rebuilt = build_keras_model(graph)
    assert rebuilt.count_params() == original.count_params()
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in original.layers]
    assert [tuple(t.shape) for t in rebuilt.outputs] == [tuple(t.shape) for t in original.outputs]
    for layer in original.layers:
        rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    same_function(original, rebuilt, random_inputs(original))


def test_weights_held_by_the_project_are_loaded():
    original = shared_and_nested()
    graph = graph_of(original)
    for layer in original.layers:
        target = graph.layers[layer.name]
        if target.submodel is not None:
            for inner in layer.layers:
                if inner.weights:
                    target.submodel.layers[inner.name].weights = inner.get_weights()
        elif layer.weights:
            target.weights = layer.get_weights()
    same_function(original, build_keras_model(graph), random_inputs(original))


def test_stale_weights_are_refused_with_the_layer_named():
    graph, ids = two_branches(8, 8)
    graph.layers["branch_a"].weights = [np.zeros((4, 8), "float32"), np.zeros(8, "float32")]
    build_keras_model(graph)
    graph.apply(SetParam("branch_a", "units", 8))
    graph.apply(SetParam("branch_b", "units", 8))
    graph.layers["branch_a"].weights = [np.zeros((4, 3), "float32"), np.zeros(3, "float32")]
    with pytest.raises(BuildError, match="weights of 'branch_a' do not fit"):
        build_keras_model(graph)


def test_invalid_graph_is_refused_with_the_node_named():
    graph, _ = two_branches(8, 16)
    with pytest.raises(BuildError, match="'add': Add needs inputs of one shape"):
        build_keras_model(graph)


def test_drawn_model_builds():
    graph = ModelGraph("drawn")
    x = add_layer(graph, "InputLayer", {"batch_shape": [None, 6]}, name="x")
    graph.apply(x)
    d = add_layer(graph, "Dense", {"units": 3, "activation": "relu"}, name="hidden")
    graph.apply(d)
    graph.apply(Connect(x.node.id, 0, d.node.id, 0))
    model = build_keras_model(graph)
    assert model.name == "drawn" and model.count_params() == 21
    assert model.get_layer("hidden").activation.__name__ == "relu"
