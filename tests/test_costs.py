"""Cost readouts: multiply-accumulates and activation bytes per sample, against hand arithmetic."""

import keras
import pytest

from builder_app.core import costs
from builder_app.core.costs import NodeCost, format_bytes, format_count, model_costs, total_cost
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, SetParam, add_layer
from builder_app.core.report import validation_report
from builder_app.core.shapes import ShapeEngine
from tests.keras_compare import graph_of


def costs_by_layer(model: keras.Model) -> tuple[dict[str, NodeCost], ShapeEngine]:
    graph = graph_of(model)
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    found = model_costs(graph, engine)
    return {graph.layer_of(node).name: cost for node, cost in found.items()}, engine


def test_conv_and_dense_match_hand_arithmetic():
    image = keras.Input((28, 28, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv")(image)
    x = keras.layers.Flatten(name="flat")(x)
    vector = keras.Input((784,), name="vector")
    y = keras.layers.Dense(128, name="dense")(vector)
    by_layer, _ = costs_by_layer(keras.Model([image, vector], [x, y]))
    assert by_layer["conv"] == NodeCost(28 * 28 * 16 * 3 * 3 * 3, 28 * 28 * 16 * 4)
    assert by_layer["dense"] == NodeCost(784 * 128, 128 * 4)
    assert by_layer["dense"].flops == 100352
    assert by_layer["flat"] == NodeCost(0, 28 * 28 * 16 * 4)
    assert by_layer["image"] == NodeCost(0, 28 * 28 * 3 * 4)


def test_convolution_family():
    image = keras.Input((16, 16, 8))
    layers = [
        keras.layers.Conv2D(12, 3, strides=2, groups=4, activation="relu", name="grouped"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise"),
        keras.layers.SeparableConv2D(10, (3, 5), padding="same", name="separable"),
        keras.layers.Conv2DTranspose(6, 2, strides=2, name="transpose"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
    ]
    outputs = [layer(image) for layer in layers]
    sequence = keras.Input((20, 5))
    outputs.append(keras.layers.Conv1D(7, 4, name="conv1d")(sequence))
    volume = keras.Input((6, 6, 6, 2))
    outputs.append(keras.layers.Conv3D(3, 3, name="conv3d")(volume))
    by_layer, _ = costs_by_layer(keras.Model([image, sequence, volume], outputs))
    # 7x7 positions x 12 filters x 3x3 kernel x 8/4 channels, + the fused relu on each output.
    assert by_layer["grouped"].flops == 7 * 7 * 12 * 9 * 2 + 7 * 7 * 12
    assert by_layer["depthwise"].flops == 16 * 16 * 16 * 9
    assert by_layer["separable"].flops == 16 * 16 * 8 * 15 + 16 * 16 * 8 * 10
    assert by_layer["transpose"].flops == 16 * 16 * 8 * 4 * 6
    assert by_layer["transpose"].activation_bytes == 32 * 32 * 6 * 4
    assert by_layer["pool"].flops == 8 * 8 * 8 * 4
    assert by_layer["bn"].flops == 16 * 16 * 8
    assert by_layer["gap"].flops == 16 * 16 * 8
    assert by_layer["conv1d"].flops == 17 * 7 * 4 * 5
    assert by_layer["conv3d"].flops == 4 * 4 * 4 * 3 * 27 * 2


def test_sequence_layers():
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(50, 3, name="embed")(tokens)
    lstm = keras.layers.LSTM(4, name="lstm")(embedded)
    gru = keras.layers.GRU(4, return_sequences=True, name="gru")(embedded)
    both = keras.layers.Bidirectional(keras.layers.SimpleRNN(2), name="bi")(embedded)
    query = keras.Input((10, 16), name="query")
    value = keras.Input((6, 8), name="value")
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(query, value)
    steps = keras.layers.TimeDistributed(keras.layers.Dense(3), name="td")(query)
    summed = keras.layers.Add(name="add")([query, query, attended])
    folded = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 9), name="einsum")(query)
    model = keras.Model([tokens, query, value], [lstm, gru, both, summed, steps, folded])
    by_layer, _ = costs_by_layer(model)
    assert by_layer["tokens"].activation_bytes == 5 * 4  # int32
    assert by_layer["embed"] == NodeCost(0, 5 * 3 * 4)
    assert by_layer["lstm"].flops == 5 * 4 * 4 * (3 + 4)
    assert by_layer["gru"].flops == 5 * 3 * 4 * (3 + 4)
    assert by_layer["bi"].flops == 2 * 5 * 2 * (3 + 2)
    projections = 10 * 16 * 8 + 6 * 8 * 8 + 6 * 8 * 8
    scores_softmax_mix = 2 * 10 * 6 * 4 + 2 * 10 * 6 + 2 * 10 * 6 * 4
    assert by_layer["mha"].flops == projections + scores_softmax_mix + 10 * 8 * 16
    assert by_layer["td"].flops == 10 * 16 * 3
    assert by_layer["add"].flops == 2 * 10 * 16
    assert by_layer["einsum"].flops == 10 * 16 * 9


def test_dtype_widths_and_unknown_sizes():
    half = keras.Input((4, 4), dtype="float16", name="half")
    wide = keras.Input((3,), dtype="int64", name="wide")
    ragged = keras.Input((None, 8), name="ragged")
    dense = keras.layers.Dense(2, name="dense_on_ragged")(ragged)
    pooled = keras.layers.GlobalMaxPooling1D(name="pooled")(dense)
    by_layer, _ = costs_by_layer(keras.Model([half, wide, ragged], [half, wide, pooled]))
    assert by_layer["half"].activation_bytes == 16 * 2
    assert by_layer["wide"].activation_bytes == 3 * 8
    # A size beyond the batch is unknown: so are the costs, never a guess of 0.
    assert by_layer["dense_on_ragged"] == NodeCost(None, None)
    assert by_layer["pooled"] == NodeCost(None, 2 * 4)


def test_a_class_without_a_rule_is_unknown_and_the_total_says_what_is_known():
    x = keras.Input((6,), name="x")
    bins = keras.layers.Discretization(bin_boundaries=[0.0, 1.0], name="bins")(x)
    scaled = keras.layers.Dense(3, name="scaled")(x)
    by_layer, _ = costs_by_layer(keras.Model(x, [bins, scaled]))
    assert by_layer["bins"].flops is None
    assert by_layer["bins"].activation_bytes == 6 * 4  # int32 bin indices
    total = total_cost(by_layer)
    assert total == NodeCost(18, 6 * 4 + 6 * 4 + 3 * 4)
    assert total_cost({"a": NodeCost(None, None)}) == NodeCost(None, None)
    assert total_cost({}) == NodeCost(None, None)


def test_a_sub_model_costs_what_its_nodes_cost():
    inner_in = keras.Input((8,), name="inner_in")
    inner_out = keras.layers.Dense(4, activation="relu", name="inner_dense")(inner_in)
    inner = keras.Model(inner_in, inner_out, name="tower")
    x = keras.Input((8,), name="x")
    y = keras.layers.Dense(1, name="head")(inner(x))
    graph = graph_of(keras.Model(x, y))
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    found = model_costs(graph, engine)
    tower = graph.nodes_of_layer("tower")[0]
    assert found[tower] == NodeCost(8 * 4 + 4, 4 * 4)
    assert total_cost(found).flops == 8 * 4 + 4 + 4


def test_a_model_built_in_the_editor_follows_edits():
    graph = ModelGraph()
    x = add_layer(graph, "InputLayer", {"batch_shape": [None, 10]}, name="x")
    graph.apply(x)
    dense = add_layer(graph, "Dense", {"units": 5}, name="d")
    graph.apply(dense)
    graph.apply(Connect(x.node.id, 0, dense.node.id, 0))
    engine = ShapeEngine(graph)
    engine.update()
    assert costs.node_cost(graph, engine, dense.node.id) == NodeCost(50, 20)
    graph.apply(SetParam("d", "units", 7))
    engine.update()
    assert costs.node_cost(graph, engine, dense.node.id) == NodeCost(70, 28)
    report = validation_report(graph, engine)
    by_id = {n["id"]: n for n in report["nodes"]}
    assert by_id[dense.node.id]["flops"] == 70
    assert by_id[dense.node.id]["activation_bytes"] == 28
    assert by_id[x.node.id]["flops"] == 0
    assert report["total_flops"] == 70
    assert report["total_activation_bytes"] == 40 + 28


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (None, "?"),
        (0, "0"),
        (448, "448"),
        (12_345, "12.3 K"),
        (120_400_000, "120.4 M"),
        (3_885_069_288, "3.9 G"),
    ],
)
def test_format_count(count, text):
    assert format_count(count) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [(None, "?"), (448, "448 B"), (2048, "2.0 KB"), (3_250_586, "3.1 MB"), (3 * 1024**3, "3.0 GB")],
)
def test_format_bytes(count, text):
    assert format_bytes(count) == text


@pytest.mark.slow  # 10 s: ResNet50 at 224x224
def test_resnet50_is_about_3_9_g_macs():
    by_layer, _ = costs_by_layer(keras.applications.ResNet50(weights=None))
    total = total_cost(by_layer)
    assert all(cost.flops is not None for cost in by_layer.values())
    assert 3.85e9 < total.flops < 3.95e9
    assert format_count(total.flops) == "3.9 G"
    # The first convolution: 112x112x64 outputs of a 7x7x3 kernel.
    assert by_layer["conv1_conv"].flops == 112 * 112 * 64 * 7 * 7 * 3


def test_summary_table_shows_costs_and_follows_edits(qapp):
    from PySide6 import QtCore

    from builder_app.ui.editor.summary import COLUMNS, SummaryModel

    image = keras.Input((28, 28, 3), name="image")
    conv = keras.layers.Conv2D(16, 3, padding="same", name="conv")(image)
    graph = graph_of(keras.Model(image, conv))
    engine = ShapeEngine(graph)
    engine.update()
    table = SummaryModel()
    table.show(graph, engine)
    assert COLUMNS[2:5] == ("Param #", "MACs", "Activations")
    row = table.row_of(graph.nodes_of_layer("conv")[0])

    def cell(column, role=QtCore.Qt.ItemDataRole.DisplayRole):
        return table.data(table.index(row, column), role)

    assert (cell(2), cell(3), cell(4)) == ("448", "338.7 K", "49.0 KB")
    assert cell(3, QtCore.Qt.ItemDataRole.ToolTipRole) == "338,688 multiply-accumulates per sample"
    assert cell(4, QtCore.Qt.ItemDataRole.ToolTipRole) == "50,176 bytes of outputs per sample"
    assert cell(COLUMNS.index("Connected to")) == "image"
    graph.apply(SetParam("conv", "filters", 8))
    engine.update()
    table.show(graph, engine)
    assert (cell(3), cell(4)) == ("169.3 K", "24.5 KB")
    assert table.total() == NodeCost(169_344, 28 * 28 * 8 * 4 + 28 * 28 * 3 * 4)
    table.show(graph, None)  # shapes not known yet: no costs to show
    assert (cell(3), cell(4)) == ("", "")


def test_keras_ops_in_a_functional_model():
    x = keras.Input((4, 6), name="x")
    doubled = x * 2.0
    flipped = keras.ops.transpose(doubled, (0, 2, 1))
    product = keras.ops.matmul(flipped, x)
    graph = graph_of(keras.Model(x, product))
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    by_class = {
        graph.layer_of(node).class_name.rpartition(".")[2]: cost
        for node, cost in model_costs(graph, engine).items()
    }
    assert by_class["Multiply"] == NodeCost(24, 24 * 4)
    assert by_class["Transpose"].flops == 0
    assert by_class["Matmul"] == NodeCost(6 * 6 * 4, 6 * 6 * 4)
