"""Automatic layout (core.layout): layered positions, their bend points and the crossing count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_layout import _old_sweep
from builder_app.core.graph import ModelGraph
from builder_app.core.layout import (
    COLUMN_WIDTH,
    DEFAULT_SIZE,
    LAYER_GAP,
    ROW_HEIGHT,
    WIRE_GAP,
    crossings,
    layered_layout,
    layered_positions,
)
from builder_app.core.ops import Connect, MoveNode, add_layer
from builder_app.core.project import load_project

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"
#: Room a shape label needs on a wire between two layers.
LABEL = 18.0


def build(spec: list[tuple[str, str, list[str]]]) -> tuple[ModelGraph, dict[str, str]]:
    """A graph from (key, class name, input keys) rows, every node at the origin."""
    graph = ModelGraph("layout")
    ids: dict[str, str] = {}
    for key, class_name, sources in spec:
        config = (
            {"batch_shape": [None, 4], "dtype": "float32"} if class_name == "InputLayer" else {}
        )
        op = add_layer(graph, class_name, config)
        graph.apply(op)
        ids[key] = op.node.id
        for port, source in enumerate(sources):
            graph.apply(Connect(ids[source], 0, op.node.id, port))
    return graph, ids


def boxes(
    graph: ModelGraph,
    positions: Mapping[str, tuple[float, float]],
    direction: str,
    sizes: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, tuple[float, float, float, float]]:
    """Node -> (left, top, right, bottom)."""
    out = {}
    for n, (x, y) in positions.items():
        w, h = (sizes or {}).get(n, DEFAULT_SIZE[direction])
        out[n] = (x, y, x + w, y + h)
    return out


def assert_layered(
    graph: ModelGraph,
    positions: Mapping[str, tuple[float, float]],
    direction: str = "TB",
    sizes: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """Every node placed, each past its inputs with room for a label, no two boxes overlapping."""
    assert set(positions) == set(graph.nodes)
    box = boxes(graph, positions, direction, sizes)
    for edge in graph.edges():
        (_, _, sr, sb), (dl, dt, _, _) = box[edge.src], box[edge.dst]
        gap = dt - sb if direction == "TB" else dl - sr
        assert gap >= LABEL, (edge, box[edge.src], box[edge.dst])
    placed = sorted(box.items(), key=lambda item: item[1])
    for i, (a, (_, at, ar, ab)) in enumerate(placed):
        for b, (bl, bt, _, bb) in placed[i + 1 :]:
            if bl >= ar:  # sorted by left edge: no later box reaches a in x
                break
            assert bt >= ab or at >= bb, (a, b, box[a], box[b])


def centre(positions: Mapping[str, tuple[float, float]], node: str, direction: str = "TB") -> float:
    """A node's centre across the layers (x in TB, y in LR)."""
    w, h = DEFAULT_SIZE[direction]
    x, y = positions[node]
    return x + w / 2 if direction == "TB" else y + h / 2


# ----------------------------------------------------------------- small graphs
def test_an_empty_graph_has_no_positions():
    assert layered_positions(ModelGraph()) == {}
    assert layered_layout(ModelGraph(), "LR") == ({}, {})


def test_one_node_is_placed():
    graph, ids = build([("x", "InputLayer", [])])
    assert layered_positions(graph) == {ids["x"]: (0.0, 0.0)}


def test_a_chain_is_one_straight_line_down():
    graph, ids = build(
        [
            ("x", "InputLayer", []),
            ("a", "Dense", ["x"]),
            ("b", "Dense", ["a"]),
            ("c", "Dense", ["b"]),
        ]
    )
    positions = layered_positions(graph)
    assert [positions[ids[k]] for k in "xabc"] == [(0.0, i * ROW_HEIGHT) for i in range(4)]


def test_left_to_right_a_chain_is_one_row():
    graph, ids = build([("x", "InputLayer", []), ("a", "Dense", ["x"]), ("b", "Dense", ["a"])])
    positions = layered_positions(graph, "LR")
    assert [positions[ids[k]] for k in "xab"] == [(i * COLUMN_WIDTH, 0.0) for i in range(3)]
    assert_layered(graph, positions, "LR")


def branches() -> tuple[ModelGraph, dict[str, str]]:
    return build(
        [
            ("x", "InputLayer", []),
            ("left", "Dense", ["x"]),
            ("right", "Dense", ["x"]),
            ("join", "Add", ["left", "right"]),
        ]
    )


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_branches_stand_side_by_side_and_the_join_is_centred_under_them(direction):
    graph, ids = branches()
    positions = layered_positions(graph, direction)
    assert_layered(graph, positions, direction)
    along = 1 if direction == "TB" else 0
    assert positions[ids["left"]][along] == positions[ids["right"]][along]  # one layer
    sides = (centre(positions, ids["left"], direction), centre(positions, ids["right"], direction))
    assert sides[0] < sides[1]  # left into port 0, right into port 1: no crossing at the join
    assert centre(positions, ids["join"], direction) == pytest.approx(sum(sides) / 2)
    assert centre(positions, ids["x"], direction) == pytest.approx(sum(sides) / 2)


def test_a_skip_connection_passes_its_layers_through_a_gap():
    graph, ids = build(
        [
            ("x", "InputLayer", []),
            ("a", "Dense", ["x"]),
            ("b", "Dense", ["a"]),
            ("c", "Dense", ["b"]),
            ("add", "Add", ["x", "c"]),
        ]
    )
    layout = layered_layout(graph)
    positions = layout.positions
    assert_layered(graph, positions)
    assert positions[ids["add"]][1] == 4 * ROW_HEIGHT  # after the longest path
    (skip,) = [e for e in graph.edges() if e.src == ids["x"] and e.dst == ids["add"]]
    assert list(layout.bends) == [skip]
    bends = layout.bends[skip]
    assert len(bends) == 6  # into and out of each of the three layers it passes
    w, h = DEFAULT_SIZE["TB"]
    for x, y in bends:
        for node, (left, top) in positions.items():
            if top <= y <= top + h:  # a node of the layer the wire passes
                assert x <= left - WIRE_GAP or x >= left + w + WIRE_GAP, (node, x, y)
    assert crossings(graph, positions) == 0


def test_several_inputs_share_the_top_layer():
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
    assert {positions[ids[k]][1] for k in "xyz"} == {0.0}
    assert [centre(positions, ids[k]) for k in "xyz"] == sorted(
        centre(positions, ids[k]) for k in "xyz"
    )
    assert crossings(graph, positions) == 0


def test_a_node_with_many_ports_takes_them_in_order():
    spec: list[tuple[str, str, list[str]]] = [(f"i{k}", "InputLayer", []) for k in range(8)]
    spec.append(("cat", "Concatenate", [f"i{k}" for k in (3, 0, 7, 1, 6, 2, 5, 4)]))
    graph, ids = build(spec)
    positions = layered_positions(graph)
    assert_layered(graph, positions)
    assert crossings(graph, positions) == 0  # the inputs stand in port order


def test_disconnected_pieces_are_all_placed_apart():
    graph, _ = build(
        [
            ("x", "InputLayer", []),
            ("a", "Dense", ["x"]),
            ("y", "InputLayer", []),
            ("b", "Dense", ["y"]),
            ("lone", "Dense", []),
        ]
    )
    for direction in ("TB", "LR"):
        assert_layered(graph, layered_positions(graph, direction), direction)


def test_a_layer_nobody_feeds_sits_just_above_its_consumer():
    graph, ids = build(
        [
            ("x", "InputLayer", []),
            ("a", "Dense", ["x"]),
            ("b", "Dense", ["a"]),
            ("free", "Dense", []),
            ("add", "Add", ["b", "free"]),
        ]
    )
    positions = layered_positions(graph)
    assert_layered(graph, positions)
    assert positions[ids["free"]][1] == positions[ids["b"]][1]


def test_sizes_keep_tall_and_wide_nodes_apart():
    graph, ids = branches()
    sizes = {ids["left"]: (400.0, 300.0), ids["x"]: (100.0, 500.0)}
    for direction in ("TB", "LR"):
        positions = layered_positions(graph, direction, sizes)
        assert_layered(graph, positions, direction, sizes)
    # TB: the layer after the tall one starts below its bottom, with the usual gap
    positions = layered_positions(graph, "TB", sizes)
    assert positions[ids["join"]][1] == positions[ids["left"]][1] + 300.0 + LAYER_GAP["TB"]
    assert crossings(graph, positions, "TB", sizes) == 0


def test_crossings_counts_crossed_wires_and_not_shared_ports():
    graph, ids = build(
        [("x", "InputLayer", []), ("y", "InputLayer", []), ("cat", "Concatenate", ["y", "x"])]
    )
    crossed = {ids["x"]: (0.0, 0.0), ids["y"]: (300.0, 0.0), ids["cat"]: (150.0, 200.0)}
    assert crossings(graph, crossed) == 1  # y (right) into port 0 (left), x into port 1
    assert crossings(graph, layered_positions(graph)) == 0
    fan, _ = build([("x", "InputLayer", []), ("a", "Dense", ["x"]), ("b", "Dense", ["x"])])
    assert crossings(fan, layered_positions(fan)) == 0  # two wires from one port only touch


def test_an_unknown_direction_is_refused_in_one_line():
    graph, _ = branches()
    with pytest.raises(ValueError, match="'up' is not 'TB' or 'LR'"):
        layered_positions(graph, "up")  # type: ignore[arg-type]


# ----------------------------------------------------------------- real models
def test_layout_reads_the_graph_and_changes_nothing():
    graph = load_project(EXAMPLES / "unet_groupnorm.kproj").graph
    before = graph.to_dict()
    first = layered_positions(graph)
    assert graph.to_dict() == before
    assert layered_positions(graph) == first  # the same model, the same picture
    assert layered_positions(load_project(EXAMPLES / "unet_groupnorm.kproj").graph) == first


def test_a_fresh_python_gives_the_same_picture(tmp_path):
    graph = load_project(EXAMPLES / "siamese_digits.kproj").graph
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph.to_dict()))
    code = (
        "import json, sys; from builder_app.core.graph import ModelGraph; "
        "from builder_app.core.layout import layered_positions; "
        "graph = ModelGraph.from_dict(json.loads(open(sys.argv[1]).read())); "
        "print(sorted(layered_positions(graph).items()))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {f"{sorted(layered_positions(graph).items())}\n"}


def test_positions_do_not_depend_on_where_the_nodes_were():
    graph = load_project(EXAMPLES / "unet_groupnorm.kproj").graph
    first = layered_positions(graph, "LR")
    for k, node in enumerate(graph.topological_order()):
        graph.apply(MoveNode(node, (-50.0 * k, 999.0)))
    assert layered_positions(graph, "LR") == first


@pytest.mark.parametrize("direction", ["TB", "LR"])
@pytest.mark.parametrize("example", ["iris_mlp", "digits_cnn", "unet_groupnorm", "siamese_digits"])
def test_every_example_lays_out(example, direction):
    graph = load_project(EXAMPLES / f"{example}.kproj").graph
    assert_layered(graph, layered_positions(graph, direction), direction)
    tower = next(
        (layer.submodel for layer in graph.layers.values() if layer.submodel is not None), None
    )
    if tower is not None:  # a sub-model's own graph lays out the same way
        assert_layered(tower, layered_positions(tower, direction), direction)


def test_fewer_crossings_than_the_old_sweep_on_the_u_net():
    graph = load_project(EXAMPLES / "unet_groupnorm.kproj").graph
    old = crossings(graph, _old_sweep(graph), "LR")
    assert old > 0
    assert crossings(graph, layered_positions(graph)) < old
    assert crossings(graph, layered_positions(graph, "LR"), "LR") < old


def application(name: str) -> ModelGraph:
    import keras

    from builder_app.importers.keras_config import graph_from_model_config

    if name == "MobileNetV2":
        model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    else:
        model = getattr(keras.applications, name)(weights=None)
    return graph_from_model_config(
        {"class_name": model.__class__.__name__, "config": model.get_config()}
    )


def breadth(positions: Mapping[str, tuple[float, float]], direction: str = "TB") -> float:
    """How far the drawing reaches across the layers (its width in TB)."""
    across = 0 if direction == "TB" else 1
    ends = [p[across] for p in positions.values()]
    return max(ends) + DEFAULT_SIZE[direction][across] - min(ends)


def test_a_mobilenet_lays_out_without_overlaps_or_crossings():
    graph = application("MobileNetV2")
    for direction in ("TB", "LR"):
        positions = layered_positions(graph, direction)
        assert_layered(graph, positions, direction)
        assert crossings(graph, positions, direction) <= crossings(graph, _old_sweep(graph), "LR")
        assert breadth(positions, direction) <= 3 * 184.0  # a chain with skips stays narrow


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ResNet50", "DenseNet121", "EfficientNetB7"])
def test_large_applications_lay_out_without_overlaps_and_with_fewer_crossings(name):
    graph = application(name)
    positions = layered_positions(graph)
    assert_layered(graph, positions)
    assert crossings(graph, positions) <= crossings(graph, _old_sweep(graph), "LR")
    assert breadth(positions) <= 5 * 184.0  # DenseNet's long concatenation wires included
    assert layered_positions(graph) == positions


# ----------------------------------------------------------------- any graph
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
@given(dags(), st.sampled_from(["TB", "LR"]), st.data())
def test_any_graph_is_layered_without_overlaps(spec, direction, data):
    graph, ids = build(spec)
    sizes = {
        ids[key]: data.draw(st.tuples(st.floats(40, 400), st.floats(30, 300)))
        for key in data.draw(st.lists(st.sampled_from(sorted(ids)), unique=True, max_size=4))
    }
    layout = layered_layout(graph, direction, sizes)
    assert_layered(graph, layout.positions, direction, sizes)
    for edge, points in layout.bends.items():  # long wires keep clear of every node
        for x, y in points:
            for left, top, right, bottom in boxes(
                graph, layout.positions, direction, sizes
            ).values():
                assert not (left < x < right and top < y < bottom), (edge, x, y)
