"""Automatic layout (core.layout.layered_positions), without Qt or Keras."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder_app.core.graph import ModelGraph
from builder_app.core.layout import COLUMN_WIDTH, ROW_HEIGHT, layered_positions
from builder_app.core.ops import Connect, add_layer
from builder_app.core.project import load_project

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


def build(spec: list[tuple[str, str, list[str]]]) -> tuple[ModelGraph, dict[str, str]]:
    """A graph from (key, class name, input keys) rows, every node at the origin."""
    graph = ModelGraph("layout")
    ids: dict[str, str] = {}
    for key, class_name, sources in spec:
        config = {"batch_shape": [None, 4], "dtype": "float32"} if class_name == "InputLayer" else {}
        op = add_layer(graph, class_name, config)
        graph.apply(op)
        ids[key] = op.node.id
        for port, source in enumerate(sources):
            graph.apply(Connect(ids[source], 0, op.node.id, port))
    return graph, ids


def assert_layered(graph: ModelGraph, positions: dict[str, tuple[float, float]]) -> None:
    """Every node placed, each right of its inputs, no two nodes in one cell."""
    assert set(positions) == set(graph.nodes)
    for edge in graph.edges():
        assert positions[edge.src][0] < positions[edge.dst][0], (edge, positions)
    placed = list(positions.items())
    for i, (a, (ax, ay)) in enumerate(placed):
        for b, (bx, by) in placed[i + 1 :]:
            # two boxes of one column are a row apart; different columns a column apart
            assert abs(ax - bx) >= COLUMN_WIDTH or abs(ay - by) >= ROW_HEIGHT, (a, b, positions)


def test_an_empty_graph_has_no_positions():
    assert layered_positions(ModelGraph()) == {}


def test_a_chain_runs_left_to_right_on_one_row():
    graph, ids = build([("x", "InputLayer", []), ("a", "Dense", ["x"]), ("b", "Dense", ["a"]), ("c", "Dense", ["b"])])
    positions = layered_positions(graph)
    assert [positions[ids[k]] for k in "xabc"] == [(i * COLUMN_WIDTH, 0.0) for i in range(4)]


def test_branches_stand_side_by_side_and_join_after_both():
    graph, ids = build(
        [
            ("x", "InputLayer", []),
            ("left", "Dense", ["x"]),
            ("right", "Dense", ["x"]),
            ("join", "Add", ["left", "right"]),
        ]
    )
    positions = layered_positions(graph)
    assert_layered(graph, positions)
    (lx, ly), (rx, ry) = positions[ids["left"]], positions[ids["right"]]
    assert lx == rx == COLUMN_WIDTH  # one column, the one after the input
    assert abs(ly - ry) == ROW_HEIGHT  # stacked one row apart
    assert positions[ids["x"]][1] == positions[ids["join"]][1] == (ly + ry) / 2  # centred on them
    assert positions[ids["join"]][0] == 2 * COLUMN_WIDTH


def test_a_skip_connection_places_the_join_after_the_longest_path():
    graph, ids = build(
        [
            ("x", "InputLayer", []),
            ("a", "Dense", ["x"]),
            ("b", "Dense", ["a"]),
            ("c", "Dense", ["b"]),
            ("add", "Add", ["x", "c"]),
        ]
    )
    positions = layered_positions(graph)
    assert_layered(graph, positions)
    assert positions[ids["add"]][0] == 4 * COLUMN_WIDTH


def test_several_inputs_share_the_first_column():
    graph, ids = build(
        [
            ("x", "InputLayer", []),
            ("y", "InputLayer", []),
            ("z", "InputLayer", []),
            ("cat", "Concatenate", ["x", "y", "z"]),
        ]
    )
    positions = layered_positions(graph)
    assert_layered(graph, positions)
    assert {positions[ids[k]][0] for k in "xyz"} == {0.0}
    assert sorted(positions[ids[k]][1] for k in "xyz") == [-ROW_HEIGHT, 0.0, ROW_HEIGHT]


def test_disconnected_pieces_are_all_placed_apart():
    graph, ids = build([("x", "InputLayer", []), ("a", "Dense", ["x"]), ("y", "InputLayer", []), ("b", "Dense", ["y"]), ("lone", "Dense", [])])
    assert_layered(graph, layered_positions(graph))


def test_layout_reads_the_graph_and_changes_nothing():
    graph = load_project(EXAMPLES / "unet_groupnorm.kproj").graph
    before = graph.to_dict()
    first = layered_positions(graph)
    assert graph.to_dict() == before
    assert layered_positions(graph) == first  # the same model, the same picture


@pytest.mark.parametrize("example", ["iris_mlp", "digits_cnn", "unet_groupnorm", "siamese_digits"])
def test_every_example_lays_out(example):
    graph = load_project(EXAMPLES / f"{example}.kproj").graph
    assert_layered(graph, layered_positions(graph))
    tower = next((layer.submodel for layer in graph.layers.values() if layer.submodel is not None), None)
    if tower is not None:  # a sub-model's own graph lays out the same way
        assert_layered(tower, layered_positions(tower))


@st.composite
def dags(draw):
    """Random functional graphs: a few inputs, then nodes taking 1-3 earlier nodes."""
    inputs = draw(st.integers(1, 3))
    spec: list[tuple[str, str, list[str]]] = [(f"i{k}", "InputLayer", []) for k in range(inputs)]
    for k in range(draw(st.integers(0, 14))):
        earlier = [key for key, _, _ in spec]
        sources = draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=3, unique=True))
        spec.append((f"n{k}", "Concatenate" if len(sources) > 1 else "Dense", sources))
    return spec


@settings(max_examples=60, deadline=None)
@given(dags())
def test_any_graph_is_layered_without_overlaps(spec):
    graph, _ = build(spec)
    assert_layered(graph, layered_positions(graph))
