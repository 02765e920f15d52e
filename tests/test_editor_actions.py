"""The window's Layer and View actions: Auto Layout, Extract Selection as Model, Set Outputs,
and sub-model tabs closing with their sub-models. Driven through the window's own methods and
actions (pytest-qt, offscreen, real Keras)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtCore, QtGui

from builder_app.core import ops
from builder_app.core.catalog import default_config
from builder_app.core.graph import ModelGraph, PortRef
from builder_app.core.keras_model import build_keras_model
from builder_app.core.layout import layered_positions
from builder_app.core.project import Project, load_project
from builder_app.core.shapes import ShapeEngine
from builder_app.ui.editor.window import MainWindow
from tests.editor_support import open_window, settle

pytestmark = pytest.mark.usefixtures("isolated")

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


def named(graph: ModelGraph, layer_name: str) -> str:
    (node_id,) = graph.nodes_of_layer(layer_name)
    return node_id


def select(window: MainWindow, ids: list[str]) -> None:
    window.current_scene().select_nodes(ids)
    assert sorted(window.current_scene().selected_ids()) == sorted(ids)


def steps(window: MainWindow) -> int:
    return window.document.undo_stack.count()


def positions(graph: ModelGraph) -> dict[str, tuple[float, float]]:
    return {n: tuple(graph.node(n).position) for n in graph.nodes}


def painted(window: MainWindow) -> dict[str, QtCore.QRectF]:
    """Each node's box as the canvas draws it, in scene coordinates."""
    return {n: item.mapRectToScene(item.body()) for n, item in window.current_scene().items_by_id.items()}


def scrambled(example: str) -> Project:
    """An example whose nodes were dragged about by hand: every node at its own odd spot.

    No two overlap (a file with overlapping nodes is laid out when it opens).
    """
    project = load_project(EXAMPLES / f"{example}.kproj")
    for i, node_id in enumerate(project.graph.topological_order()):
        project.graph.apply(ops.MoveNode(node_id, (float((i * 7) % 5) * 260.0 - 300.0, i * 95.0 - 350.0)))
    return project


# ------------------------------------------------------------------ automatic layout
def test_ctrl_l_lays_the_model_out_in_one_undo_step(qtbot, loader):
    window = open_window(qtbot, loader, scrambled("unet_groupnorm"))
    graph = window.document.graph
    by_hand = graph.to_dict()
    action = window.actions_by_name["layout"]
    assert action.shortcut() == QtGui.QKeySequence("Ctrl+L")
    action.trigger()
    settle(qtbot, window)
    assert steps(window) == 1
    assert positions(graph) == layered_positions(graph)
    boxes = painted(window)
    for node_id, box in boxes.items():  # the canvas follows the graph
        assert (box.x(), box.y()) == graph.node(node_id).position
    for edge in graph.edges():  # top to bottom along every wire (the layout's default)
        assert boxes[edge.src].bottom() < boxes[edge.dst].top(), edge
    window.undo()
    settle(qtbot, window)
    assert graph.to_dict() == by_hand
    assert {n: (b.x(), b.y()) for n, b in painted(window).items()} == positions(graph)
    window.redo()
    assert positions(graph) == layered_positions(graph)


def test_laying_out_a_laid_out_model_is_no_undo_step(qtbot, loader):
    window = open_window(qtbot, loader, scrambled("iris_mlp"))
    window.auto_layout()
    assert steps(window) == 1
    window.auto_layout()
    assert steps(window) == 1


@pytest.mark.parametrize("example", ["digits_cnn", "unet_groupnorm", "siamese_digits"])
def test_laid_out_nodes_do_not_overlap_on_the_canvas(qtbot, loader, example):
    window = open_window(qtbot, loader, scrambled(example))
    window.auto_layout()
    settle(qtbot, window)
    boxes = list(painted(window).items())
    assert len(boxes) == len(window.document.graph)
    for i, (a, box) in enumerate(boxes):
        for b, other in boxes[i + 1 :]:
            assert not box.intersects(other), (a, b)


def wide_model() -> Project:
    """Five inputs into one Concatenate and a sixth into a Dense: two nodes in one column,
    one of them with five input ports (a tall box)."""
    graph = ModelGraph("wide")
    inputs = []
    for _ in range(6):
        op = ops.add_layer(graph, "InputLayer", {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "ragged": False, "optional": False})
        graph.apply(op)
        inputs.append(op.node.id)
    cat = ops.add_layer(graph, "Concatenate", default_config("Concatenate"))
    graph.apply(cat)
    for port, source in enumerate(inputs[:5]):
        graph.apply(ops.Connect(source, 0, cat.node.id, port))
    dense = ops.add_layer(graph, "Dense", {**default_config("Dense"), "units": 3})
    graph.apply(dense)
    graph.apply(ops.Connect(inputs[5], 0, dense.node.id, 0))
    return Project(graph)


def test_a_tall_node_does_not_overlap_its_neighbour_after_layout(qtbot, loader):
    window = open_window(qtbot, loader, wide_model())
    window.auto_layout()
    settle(qtbot, window)
    boxes = list(painted(window).items())
    for i, (a, box) in enumerate(boxes):
        for b, other in boxes[i + 1 :]:
            assert not box.intersects(other), (a, b)


# ------------------------------------------------------------- extract selection as model
def test_extract_selection_writes_a_model_of_the_selection(qtbot, loader, tmp_path):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "digits_cnn.kproj"))
    graph = window.document.graph
    before = graph.to_dict()
    chosen = [named(graph, "conv_2"), named(graph, "global_pool"), named(graph, "dropout")]
    feeding = window.document.result(named(graph, "pool_1")).output_shapes[0]
    last = window.document.result(named(graph, "dropout")).output_shapes[0]
    select(window, chosen)
    written = window.extract_to(chosen, tmp_path / "head")
    assert written == tmp_path / "head.kproj" and written.is_file()
    # the open project is untouched and nothing went on the undo stack
    assert graph.to_dict() == before and steps(window) == 0
    extracted = load_project(written).graph
    assert extracted.name == "head"
    inner = [extracted.layer_of(n) for n in extracted.topological_order() if not extracted.is_input(n)]
    assert [(layer.name, layer.class_name, layer.config) for layer in inner] == [
        (graph.layer_of(n).name, graph.layer_of(n).class_name, graph.layer_of(n).config) for n in chosen
    ]
    engine = ShapeEngine(extracted)
    assert engine.is_valid(), engine.errors()
    model = build_keras_model(extracted)
    assert [tuple(t.shape) for t in model.inputs] == [tuple(feeding)]
    assert [tuple(t.shape) for t in model.outputs] == [tuple(last)]
    engine.close()


def test_extracting_a_join_gives_the_model_an_input_per_incoming_wire(qtbot, loader, tmp_path):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "unet_groupnorm.kproj"))
    graph = window.document.graph
    chosen = [named(graph, "skip"), named(graph, "dec1_conv")]
    incoming = {graph.label(ref.node): tuple(window.document.result(ref.node).output_shapes[0]) for ref in graph.inputs_of(chosen[0]).values()}
    assert len(incoming) == 2  # the upsampled path and the skip from the encoder
    select(window, chosen)
    written = window.extract_to(chosen, tmp_path / "decoder.kproj")
    extracted = load_project(written).graph
    model = build_keras_model(extracted)
    assert sorted(tuple(t.shape) for t in model.inputs) == sorted(incoming.values())
    assert tuple(model.outputs[0].shape) == tuple(window.document.result(chosen[-1]).output_shapes[0])
    assert {extracted.layer_of(n).class_name for n in extracted.nodes if not extracted.is_input(n)} == {"Concatenate", "Conv2D"}


# ------------------------------------------------------------------------ set outputs
def test_set_outputs_makes_the_selection_the_models_outputs_in_one_step(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "digits_cnn.kproj"))
    graph = window.document.graph
    before = graph.to_dict()
    image, conv, digit = named(graph, "image"), named(graph, "conv_2"), named(graph, "digit")
    assert graph.model_outputs() == [PortRef(digit, 0)]
    select(window, [digit, image, conv])  # an input in the selection is not an output
    window.set_outputs()
    settle(qtbot, window)
    assert steps(window) == 1
    assert graph.model_outputs() == [PortRef(conv, 0), PortRef(digit, 0)]  # in the model's order
    model = build_keras_model(graph)
    assert [tuple(t.shape) for t in model.outputs] == [
        tuple(window.document.result(conv).output_shapes[0]),
        tuple(window.document.result(digit).output_shapes[0]),
    ]
    window.undo()
    assert graph.to_dict() == before and graph.model_outputs() == [PortRef(digit, 0)]
    window.redo()
    assert graph.model_outputs() == [PortRef(conv, 0), PortRef(digit, 0)]


def test_set_outputs_names_every_output_of_a_multi_output_node(qtbot, loader):
    graph = ModelGraph("states")
    source = ops.add_layer(graph, "InputLayer", {"batch_shape": [None, 5, 3], "dtype": "float32", "sparse": False, "ragged": False, "optional": False})
    graph.apply(source)
    lstm = ops.add_layer(graph, "LSTM", {**default_config("LSTM"), "units": 4, "return_state": True})
    graph.apply(lstm)
    graph.apply(ops.Connect(source.node.id, 0, lstm.node.id, 0))
    window = open_window(qtbot, loader, Project(graph))
    graph = window.document.graph
    assert len(window.document.result(lstm.node.id).output_shapes) == 3  # output, h, c
    select(window, [lstm.node.id])
    window.set_outputs()
    assert graph.model_outputs() == [PortRef(lstm.node.id, p) for p in range(3)]
    assert len(build_keras_model(graph).outputs) == 3


# ------------------------------------------------------------------- sub-model tabs
def reachable(window: MainWindow) -> list[ModelGraph]:
    """The model's graph and every sub-model graph it holds, at any depth."""
    found, stack = [], [window.document.graph]
    while stack:
        graph = stack.pop()
        found.append(graph)
        stack.extend(layer.submodel for layer in graph.layers.values() if layer.submodel is not None)
    return found


def tab_graphs(window: MainWindow) -> list[ModelGraph]:
    return [window.tabs.widget(i).graph_scene.graph for i in range(window.tabs.count())]


def assert_tabs_alive(window: MainWindow) -> None:
    alive = reachable(window)
    assert all(any(tab is graph for graph in alive) for tab in tab_graphs(window))


def test_a_sub_models_tab_closes_when_its_last_call_is_deleted(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "siamese_digits.kproj"))
    graph = window.document.graph
    left, right = graph.nodes_of_layer("tower")
    tower = graph.layer("tower").submodel
    select(window, [left])
    window.open_selected_submodel()
    assert window.tabs.count() == 2 and window.current_scene().graph is tower
    window.tabs.setCurrentIndex(0)
    select(window, [left])
    window.delete()
    assert left not in graph.nodes
    assert tab_graphs(window)[1] is tower  # the other call still holds the tower: its tab stays
    select(window, [right])
    window.delete()
    assert "tower" not in graph.layers
    assert window.tabs.count() == 1 and window.current_scene().graph is graph
    window.undo()
    window.undo()
    settle(qtbot, window)
    assert set(graph.nodes_of_layer("tower")) == {left, right}
    select(window, [right])
    window.open_selected_submodel()  # opens again on the restored sub-model
    assert window.tabs.count() == 2 and window.current_scene().graph is graph.layer("tower").submodel
    assert window.document.engine.is_valid()


def test_a_nested_sub_models_tab_follows_its_sub_model(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    hidden = [named(graph, "hidden_1"), named(graph, "hidden_2"), named(graph, "dropout")]
    select(window, hidden)
    window.group()
    settle(qtbot, window)
    (outer_node,) = [n for n in graph.nodes if graph.layer_of(n).submodel is not None]
    outer = graph.layer_of(outer_node).submodel
    select(window, [outer_node])
    window.open_selected_submodel()
    assert window.current_scene().graph is outer
    inside = [n for n in outer.topological_order() if not outer.is_input(n)][:2]
    select(window, inside)
    window.group()  # a sub-model inside the sub-model, grouped in its own tab
    settle(qtbot, window)
    (inner_node,) = [n for n in outer.nodes if outer.layer_of(n).submodel is not None]
    select(window, [inner_node])
    window.open_selected_submodel()
    assert window.tabs.count() == 3
    assert_tabs_alive(window)
    # deleting an unrelated node closes nothing
    window.tabs.setCurrentIndex(0)
    select(window, [named(graph, "species")])
    window.delete()
    assert window.tabs.count() == 3
    # deleting the outer sub-model takes both tabs with it
    select(window, [outer_node])
    window.delete()
    assert window.tabs.count() == 1 and tab_graphs(window) == [graph]
    window.undo()
    window.undo()
    settle(qtbot, window)
    # ungrouping the outer one closes its tab; whatever tab stays shows a graph the model holds
    select(window, [outer_node])
    window.open_selected_submodel()
    window.tabs.setCurrentIndex(0)
    select(window, [outer_node])
    window.ungroup()
    assert outer_node not in graph.nodes
    assert all(tab is not outer for tab in tab_graphs(window))
    assert_tabs_alive(window)
    assert window.document.engine.is_valid()
