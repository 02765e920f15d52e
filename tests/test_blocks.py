"""Composite blocks: Keras-exact shapes and parameter counts, one undoable batch."""

import keras
import pytest

from builder_app.core import catalog
from builder_app.core.blocks import BLOCKS, SPACING, added_nodes
from builder_app.core.graph import ModelGraph, PortRef
from builder_app.core.ops import add_layer
from builder_app.core.shapes import ShapeEngine


def graph_with_input(batch_shape):
    graph = ModelGraph()
    config = {**catalog.default_config("InputLayer"), "batch_shape": list(batch_shape)}
    op = add_layer(graph, "InputLayer", config, position=(0.0, 0.0))
    graph.apply(op)
    return graph, op.node.id


def residual_keras(shape, filters=64):
    x = keras.Input(batch_shape=shape)
    h = keras.layers.Conv2D(filters, 3, padding="same")(x)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(filters, 3, padding="same")(h)
    h = keras.layers.BatchNormalization()(h)
    out = keras.layers.ReLU()(keras.layers.Add()([x, h]))
    return keras.Model(x, out)


def transformer_keras(shape):
    x = keras.Input(batch_shape=shape)
    a = keras.layers.MultiHeadAttention(num_heads=4, key_dim=32)(x, x)
    a = keras.layers.Dropout(0.1)(a)
    x1 = keras.layers.LayerNormalization()(keras.layers.Add()([x, a]))
    f = keras.layers.Dense(128, activation="relu")(x1)
    f = keras.layers.Dense(64)(f)
    f = keras.layers.Dropout(0.1)(f)
    out = keras.layers.LayerNormalization()(keras.layers.Add()([x1, f]))
    return keras.Model(x, out)


def conv_bn_relu_keras(shape):
    x = keras.Input(batch_shape=shape)
    h = keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(x)
    out = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    return keras.Model(x, out)


def mlp_keras(shape):
    x = keras.Input(batch_shape=shape)
    h = keras.layers.Dense(128, activation="relu")(x)
    out = keras.layers.Dense(64, activation="relu")(keras.layers.Dropout(0.1)(h))
    return keras.Model(x, out)


CASES = [
    ("Residual block", (None, 16, 16, 64), residual_keras),
    ("Transformer encoder block", (None, 10, 64), transformer_keras),
    ("Conv-BN-ReLU", (None, 16, 16, 3), conv_bn_relu_keras),
    ("MLP block", (None, 20), mlp_keras),
]


@pytest.mark.parametrize(("name", "shape", "reference"), CASES, ids=[c[0] for c in CASES])
def test_block_matches_keras_and_undoes_exactly(name, shape, reference):
    graph, input_id = graph_with_input(shape)
    before = graph.to_dict()
    batch = BLOCKS[name].build(graph, (240.0, 100.0), PortRef(input_id, 0))
    assert graph.to_dict() == before  # building does not edit

    inverse = graph.apply(batch)
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    model = reference(shape)
    nodes = added_nodes(batch)
    assert engine.result(nodes[-1]).output_shapes == [tuple(model.output.shape)]
    assert engine.total_params() == model.count_params()
    assert [graph.node(n).position for n in nodes] == [
        (240.0 + i * SPACING, 100.0) for i in range(len(nodes))
    ]

    graph.apply(inverse)
    assert graph.to_dict() == before
    engine.close()


def test_residual_filters_are_an_option_and_names_stay_unique():
    graph, input_id = graph_with_input((None, 8, 8, 32))
    block = BLOCKS["Residual block"]
    first = block.build(graph, (240.0, 0.0), PortRef(input_id, 0), filters=32)
    graph.apply(first)
    second = block.build(graph, (240.0, 200.0), PortRef(added_nodes(first)[-1], 0), filters=32)
    graph.apply(second)
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    assert engine.total_params() == residual_keras((None, 8, 8, 32), 32).count_params() * 2
    convs = [layer for layer in graph.layers.values() if layer.class_name == "Conv2D"]
    assert len(convs) == 4 and {c.config["filters"] for c in convs} == {32}
    assert len(set(added_nodes(first)) | set(added_nodes(second))) == 16
    engine.close()


def test_block_without_source_and_unknown_option():
    graph = ModelGraph()
    batch = BLOCKS["Transformer encoder block"].build(graph, (0.0, 0.0))
    graph.apply(batch)
    entry = added_nodes(batch)[0]
    assert graph.inputs_of(entry) == {}
    attention = added_nodes(batch)[1]
    assert graph.inputs_of(attention) == {0: PortRef(entry, 0), 1: PortRef(entry, 0)}
    with pytest.raises(KeyError, match="no option"):
        BLOCKS["Residual block"].build(graph, (0.0, 0.0), kernel=5)


def test_transformer_width_mismatch_is_a_shape_error():
    graph, input_id = graph_with_input((None, 10, 32))
    graph.apply(BLOCKS["Transformer encoder block"].build(graph, (240.0, 0.0), PortRef(input_id, 0)))
    engine = ShapeEngine(graph)
    assert engine.errors()
    engine.close()
