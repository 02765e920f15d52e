"""The editor controller: every gesture is one undo step or a typed refusal, and the canvas follows.

Driven without mouse events through the controller (the same methods the widgets
call), on real Keras, with the window's own timers left to run as they do for a user.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder_app.core.graph import (
    ConfigError,
    CycleError,
    Edge,
    GroupingError,
    LayerNameError,
    ModelGraph,
)
from builder_app.core.project import load_project
from builder_app.ui.editor.canvas import node_face
from builder_app.ui.editor.controller import Applied, Refusal
from builder_app.ui.editor.window import MainWindow
from tests.editor_support import open_window

pytestmark = pytest.mark.usefixtures("isolated")

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


def stale_faces(window: MainWindow) -> list[str]:
    """Nodes whose painted face differs from what the engine says once fully up to date."""
    stale = []
    for scene in window.scenes:
        engine = window.document.engine_for(scene.graph)
        engine.update()
        for node_id, item in scene.items_by_id.items():
            if item.face != node_face(scene.graph, node_id, engine.peek(node_id)):
                stale.append(f"{scene.graph.name}/{scene.graph.label(node_id)}")
    return stale


def wait_faces(qtbot, window: MainWindow) -> None:
    """Lets the window's own timers (shapes, builds, panels) run, then compares every face."""
    qtbot.wait(400)  # the build timer is 150 ms, the panels' timer follows edits
    assert stale_faces(window) == []


def layer_of_class(graph: ModelGraph, class_name: str) -> str:
    return next(layer.name for layer in graph.layers.values() if layer.class_name == class_name)


def test_parameter_counts_on_the_canvas_follow_edits_undo_and_redo(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "digits_cnn.kproj"), settled=False)
    wait_faces(qtbot, window)
    graph = window.document.graph
    conv = layer_of_class(graph, "Conv2D")
    norm = layer_of_class(graph, "BatchNormalization")
    norm_node = graph.nodes_of_layer(norm)[0]
    before = window.current_scene().items_by_id[norm_node].face.params
    outcome = window.controller.set_param(graph, conv, "filters", graph.layer(conv).config["filters"] // 2)
    assert isinstance(outcome, Applied)
    wait_faces(qtbot, window)
    halved = window.current_scene().items_by_id[norm_node].face.params
    assert halved != before  # BatchNormalization counts 4 per channel
    window.undo()
    wait_faces(qtbot, window)
    assert window.current_scene().items_by_id[norm_node].face.params == before
    window.redo()
    wait_faces(qtbot, window)
    assert window.current_scene().items_by_id[norm_node].face.params == halved


def test_every_gesture_keeps_the_faces_exact(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "unet_groupnorm.kproj"), settled=False)
    controller, graph = window.controller, window.document.graph
    stack = window.document.undo_stack
    convs = [n for n in graph.topological_order() if graph.layer_of(n).class_name == "Conv2D"]
    steps = [
        lambda: controller.set_param(graph, graph.node(convs[0]).layer, "filters", 4),
        lambda: controller.rename(graph, graph.node(convs[1]).layer, "renamed_conv"),
        lambda: controller.call_again(graph, convs[-1]),
        lambda: controller.delete(graph, [graph.topological_order()[-1]]),
        lambda: controller.insert(graph, "Dense", (0.0, 900.0), source=convs[-1]),
        lambda: controller.group(graph, convs[:1]),
        lambda: controller.set_outputs(graph, [convs[-1]]),
        # a spliced layer lands where the layout puts it: move one so that laying out has work to do
        lambda: controller.move(graph, {convs[-1]: (0.0, 900.0)}),
        lambda: controller.layout(graph),
    ]
    done = 0
    for step in steps:
        outcome = step()
        assert isinstance(outcome, Applied), outcome
        done += 1
        assert stack.count() == done  # one gesture, one undo step
        wait_faces(qtbot, window)
    for _ in range(done):
        window.undo()
        wait_faces(qtbot, window)
    assert graph.to_dict() == load_project(EXAMPLES / "unet_groupnorm.kproj").graph.to_dict()
    for _ in range(done):
        window.redo()
        wait_faces(qtbot, window)


def test_refusals_are_typed_and_change_nothing(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"), settled=False)
    controller, graph = window.controller, window.document.graph
    heard: list[Refusal] = []
    controller.refused.connect(heard.append)
    before = graph.to_dict()
    order = graph.topological_order()
    first, last = order[1], order[-1]
    dense = layer_of_class(graph, "Dense")
    cases = [
        (controller.connect(graph, last, 0, first, 0), CycleError),
        (controller.rename(graph, dense, "a/b"), LayerNameError),
        (controller.set_param(graph, dense, "units", float("nan")), ConfigError),
        (controller.set_param(graph, dense, "activation", "no_such_activation"), ConfigError),
        (controller.group(graph, []), GroupingError),
        (controller.insert(graph, "NoSuchLayer", (0.0, 0.0)), Exception),
    ]
    for outcome, kind in cases:
        assert isinstance(outcome, Refusal) and not outcome
        assert isinstance(outcome.error, kind), outcome.message
        assert outcome.message  # a sentence, for the status bar
    assert [r.message for r in heard] == [o.message for o, _ in cases]
    assert graph.to_dict() == before and window.document.undo_stack.count() == 0


def test_a_wire_dropped_on_a_taken_input_replaces_it_unless_it_makes_a_cycle(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"), settled=False)
    controller, graph = window.controller, window.document.graph
    order = graph.topological_order()
    source, a, b = order[0], order[1], order[2]
    # b's input is taken by a; dropping source's output on it replaces that wire
    assert controller.wire_problem(graph, Edge(source, 0, b, 0)) is None
    assert controller.rewire(graph, Edge(source, 0, b, 0))
    assert graph.inputs_of(b)[0].node == source
    # picking up a wire by its input end and dropping it back changes nothing
    held = Edge(source, 0, b, 0)
    assert controller.rewire(graph, held, held) and window.document.undo_stack.count() == 1
    # dropping a's own consumer's output on a's input is a cycle
    consumer = next(e.dst for e in graph.consumers_of(a)) if graph.consumers_of(a) else None
    if consumer is not None:
        problem = controller.wire_problem(graph, Edge(consumer, 0, a, 0))
        assert isinstance(problem, CycleError)
    # dropping a picked-up wire on empty canvas removes it, as one step
    assert controller.rewire(graph, None, held)
    assert 0 not in graph.inputs_of(b)
    window.undo()
    assert graph.inputs_of(b)[0].node == source


def test_a_sub_model_tab_reads_the_models_own_engine(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "siamese_digits.kproj"), settled=False)
    graph = window.document.graph
    call = next(n for n in graph.nodes if graph.layer_of(n).submodel is not None)
    inner = graph.layer_of(call).submodel
    engine = window.document.engine_for(inner)
    assert engine is window.document.engine.engine_for(inner) and engine.graph is inner
    window.current_scene().select_nodes([call])
    window.open_selected_submodel()
    assert window.graph is inner
    dense = layer_of_class(inner, "Dense")
    node = inner.nodes_of_layer(dense)[0]
    assert window.controller.set_param(inner, dense, "units", 7)
    wait_faces(qtbot, window)
    assert window.current_scene().items_by_id[node].face.params == f"{engine.peek(node).params:,} params"
    # the calling node in the model's tab follows its sub-model
    outer = window.scenes[0].items_by_id[call]
    assert outer.face.params == f"{window.document.engine.peek(call).params:,} params"
