"""Display blocks proposed from layer names (core.display_blocks), on real Keras models."""

from __future__ import annotations

import keras
import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder_app.core.display_blocks import (
    DisplayBlock,
    block_boundary,
    is_automatic_name,
    numbered_prefixes,
    propose_blocks,
)
from builder_app.core.graph import ModelGraph, PortRef
from builder_app.core.ops import Connect, add_layer
from tests.keras_compare import graph_of


def build(spec: list[tuple[str, str, list[str]]]) -> tuple[ModelGraph, dict[str, str]]:
    """A graph from (layer name, class name, input layer names) rows."""
    graph = ModelGraph("blocks")
    ids: dict[str, str] = {}
    for name, class_name, sources in spec:
        config = (
            {"batch_shape": [None, 4], "dtype": "float32"} if class_name == "InputLayer" else {}
        )
        op = add_layer(graph, class_name, config, name=name)
        graph.apply(op)
        ids[name] = op.node.id
        for port, source in enumerate(sources):
            graph.apply(Connect(ids[source], 0, op.node.id, port))
    return graph, ids


def assert_valid(graph: ModelGraph, blocks: list[DisplayBlock], min_size: int = 3) -> None:
    """Blocks never overlap, each is weakly connected and in topological order, and
    collapsing all of them keeps the graph acyclic."""
    wires = nx.MultiDiGraph()
    wires.add_nodes_from(graph.nodes)
    wires.add_edges_from((e.src, e.dst) for e in graph.edges())
    index = graph.topological_index()
    seen: set[str] = set()
    for block in blocks:
        assert len(block.nodes) >= min_size, block
        assert not seen & set(block.nodes), f"{block.name} overlaps another block"
        seen |= set(block.nodes)
        assert list(block.nodes) == sorted(block.nodes, key=index.__getitem__), block.name
        assert nx.is_weakly_connected(wires.subgraph(block.nodes)), block.name
    assert len({b.name for b in blocks}) == len(blocks)
    partition = [set(b.nodes) for b in blocks] + [{n} for n in graph.nodes if n not in seen]
    assert nx.is_directed_acyclic_graph(nx.quotient_graph(wires, partition))


def names(graph: ModelGraph, block: DisplayBlock) -> list[str]:
    return [graph.node(n).layer for n in block.nodes]


def test_name_prefixes_that_carry_a_block_number():
    assert numbered_prefixes("conv2_block1_1_conv") == ["conv2_block1", "conv2"]
    assert numbered_prefixes("block2b_se_squeeze") == ["block2b", "block2"]
    assert numbered_prefixes("block_3_expand") == ["block_3"]
    assert numbered_prefixes("convnext_tiny_stage_0_block_0_depthwise_conv") == [
        "convnext_tiny_stage_0_block_0",
        "convnext_tiny_stage_0",
    ]
    assert numbered_prefixes("stem_conv") == []
    assert is_automatic_name("dense_1", "Dense") and is_automatic_name("re_lu", "ReLU")
    assert not is_automatic_name("dense_head", "Dense")


@pytest.fixture(scope="module")
def resnet50() -> ModelGraph:
    return graph_of(keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3)))


def test_resnet50_opens_as_its_residual_blocks(resnet50):
    blocks = propose_blocks(resnet50)
    assert_valid(resnet50, blocks)
    assert 16 <= len(blocks) <= 20
    expected = [
        f"conv{s}_block{b}" for s, n in [(2, 3), (3, 4), (4, 6), (5, 3)] for b in range(1, n + 1)
    ]
    assert [b.name for b in blocks] == ["conv1", *expected]
    covered = sum(len(b.nodes) for b in blocks)
    assert covered >= 0.9 * len(resnet50)
    first = blocks[1]
    assert names(resnet50, first)[0] == "conv2_block1_1_conv"
    assert names(resnet50, first)[-1] == "conv2_block1_out"
    assert all(name.startswith("conv2_block1_") for name in names(resnet50, first))


def test_proposals_are_deterministic(resnet50):
    again = ModelGraph.from_dict(resnet50.to_dict())
    assert propose_blocks(again) == propose_blocks(resnet50) == propose_blocks(resnet50)


def test_a_block_boundary_gives_the_collapsed_node_its_ports(resnet50):
    blocks = {b.name: b for b in propose_blocks(resnet50)}
    inputs, outputs = block_boundary(resnet50, blocks["conv2_block1"].nodes)
    # the first residual block reads the stem's pooling and hands its sum on
    assert [resnet50.node(ref.node).layer for ref in inputs] == ["pool1_pool"]
    assert [resnet50.node(ref.node).layer for ref in outputs] == ["conv2_block1_out"]
    assert all(ref.port == 0 for ref in [*inputs, *outputs])
    # the last block's output is the one the head reads
    inputs, outputs = block_boundary(resnet50, blocks["conv5_block3"].nodes)
    assert [resnet50.node(ref.node).layer for ref in outputs] == ["conv5_block3_out"]
    with pytest.raises(ValueError, match="display block: there is no node 'nowhere' in the graph"):
        block_boundary(resnet50, ["nowhere"])


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        pytest.param(
            lambda: keras.applications.MobileNetV2(
                weights=None, input_shape=(32, 32, 3), alpha=0.35
            ),
            ["expanded_conv", *(f"block_{i}" for i in range(1, 17))],
            id="MobileNetV2",
        ),
        pytest.param(
            lambda: keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3)),
            [
                "stem",
                "block1a",
                "block2a",
                "block2b",
                "block3a",
                "block3b",
                "block4a",
                "block4b",
                "block4c",
                "block5a",
                "block5b",
                "block5c",
                "block6a",
                "block6b",
                "block6c",
                "block6d",
                "block7a",
                "top",
            ],
            id="EfficientNetB0",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda: keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3)),
            ["conv1"]
            + [f"conv2_block{i}" for i in range(1, 7)]
            + ["pool2"]
            + [f"conv3_block{i}" for i in range(1, 13)]
            + ["pool3"]
            + [f"conv4_block{i}" for i in range(1, 25)]
            + ["pool4"]
            + [f"conv5_block{i}" for i in range(1, 17)],
            id="DenseNet121",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_applications_give_their_blocks(app, expected):
    graph = graph_of(app())
    blocks = propose_blocks(graph)
    assert_valid(graph, blocks)
    assert [b.name for b in blocks] == expected
    for block in blocks:
        assert all(
            name.startswith(block.name)
            for name in names(graph, block)
            if not is_automatic(graph, name)
        )


def is_automatic(graph: ModelGraph, layer_name: str) -> bool:
    return is_automatic_name(layer_name, graph.layer(layer_name).class_name)


def test_keras_automatic_names_make_no_blocks():
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same")(x)
    h = keras.layers.Conv2D(4, 3, padding="same")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(8)(h)
    h = keras.layers.Dense(8)(h)
    h = keras.layers.Dense(2)(h)
    graph = graph_of(keras.Model(x, h))
    assert any(name.startswith("dense_") for name in graph.layers)  # dense, dense_1, ...
    assert propose_blocks(graph) == []


def test_hand_written_stages_and_numbered_parts():
    graph, ids = build(
        [
            ("image", "InputLayer", []),
            ("stem_conv", "Conv2D", ["image"]),
            ("stem_bn", "BatchNormalization", ["stem_conv"]),
            ("stem_relu", "ReLU", ["stem_bn"]),
            ("stage2_conv", "Conv2D", ["stem_relu"]),
            ("stage2_bn", "BatchNormalization", ["stage2_conv"]),
            ("re_lu", "ReLU", ["stage2_bn"]),  # an automatic name inside a stage joins it
            ("stage2_pool", "MaxPooling2D", ["re_lu"]),
            ("encoder_1_conv", "Conv2D", ["stage2_pool"]),
            ("encoder_1_norm", "BatchNormalization", ["encoder_1_conv"]),
            ("encoder_1_act", "ReLU", ["encoder_1_norm"]),
            ("encoder_2_conv", "Conv2D", ["encoder_1_act"]),
            ("encoder_2_act", "ReLU", ["encoder_2_conv"]),
            ("head", "GlobalAveragePooling2D", ["encoder_2_act"]),
        ]
    )
    blocks = propose_blocks(graph)
    assert_valid(graph, blocks)
    assert [(b.name, names(graph, b)) for b in blocks] == [
        ("stem", ["stem_conv", "stem_bn", "stem_relu"]),
        ("stage2", ["stage2_conv", "stage2_bn", "re_lu", "stage2_pool"]),
        ("encoder_1", ["encoder_1_conv", "encoder_1_norm", "encoder_1_act"]),
    ]
    # encoder_2 has two layers: too few for the default, a block at min_size=2
    assert [b.name for b in propose_blocks(graph, min_size=2)][-1] == "encoder_2"
    with pytest.raises(ValueError, match="display blocks: min_size must be a whole number >= 2"):
        propose_blocks(graph, min_size=1)


def test_a_block_that_would_close_a_cycle_is_split():
    # b1_a feeds b1_d through a layer of no block: collapsing b1_a..b1_d would loop
    graph, ids = build(
        [
            ("x", "InputLayer", []),
            ("b1_a", "Dense", ["x"]),
            ("b1_b", "Dense", ["b1_a"]),
            ("b1_c", "Dense", ["b1_b"]),
            ("side", "Dense", ["b1_a"]),
            ("b1_d", "Add", ["b1_c", "side"]),
            ("b1_e", "Dense", ["b1_d"]),
            ("b1_f", "Dense", ["b1_e"]),
        ]
    )
    blocks = propose_blocks(graph)
    assert_valid(graph, blocks)
    assert [names(graph, b) for b in blocks] == [["b1_a", "b1_b", "b1_c"], ["b1_d", "b1_e", "b1_f"]]
    assert [b.name for b in blocks] == ["b1", "b1 (2)"]
    inputs, outputs = block_boundary(graph, blocks[0].nodes)
    assert inputs == [PortRef(ids["x"], 0)]
    # b1_a's tensor leaves for 'side', b1_c's for b1_d
    assert outputs == [PortRef(ids["b1_a"], 0), PortRef(ids["b1_c"], 0)]
    inputs, outputs = block_boundary(graph, blocks[1].nodes)
    assert inputs == [PortRef(ids["b1_c"], 0), PortRef(ids["side"], 0)]
    assert outputs == [PortRef(ids["b1_f"], 0)]  # a model output


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_blocks_of_any_graph_never_overlap_and_never_close_a_cycle(data):
    # random DAGs whose names share block prefixes at random, with automatic names among them
    count = data.draw(st.integers(2, 40))
    prefixes = ["b1", "b2", "block_3", "stage1_unit2", "stem", "dense"]
    spec = [("x", "InputLayer", [])]
    for i in range(count):
        earlier = [row[0] for row in spec]
        sources = data.draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=2, unique=True))
        prefix = data.draw(st.sampled_from(prefixes))
        name = f"{prefix}_{i}" if prefix == "dense" else f"{prefix}_l{i}"
        spec.append((name, "Add" if len(sources) == 2 else "Dense", sources))
    graph, _ = build(spec)
    min_size = data.draw(st.integers(2, 4))
    blocks = propose_blocks(graph, min_size=min_size)
    assert_valid(graph, blocks, min_size)
    assert propose_blocks(graph, min_size=min_size) == blocks
    for block in blocks:
        inputs, outputs = block_boundary(graph, block.nodes)
        assert all(ref.node not in block.nodes for ref in inputs)
        assert outputs and all(ref.node in block.nodes for ref in outputs)
