"""How models are drawn: direction, display blocks collapsed and expanded, routed wires, labels, layout on open.

Driven through the window and the controller, on real Keras; the model itself (its
layers, wires and exports) must never change when only its drawing does.
"""

from __future__ import annotations

import keras
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core import display
from builder_app.core.graph import CanvasBlock, CanvasState, ModelGraph
from builder_app.core.ops import Connect, SetCanvas, add_layer, group_as_submodel
from builder_app.core.project import Project, load_project, save_project
from builder_app.exporters.python_code import python_source
from builder_app.importers.keras_file import import_model
from builder_app.ui.editor.canvas import BlockItem, NodeItem, WireItem
from builder_app.ui.editor.window import READABLE_ZOOM
from tests.editor_support import EXAMPLES, open_window, settle

pytestmark = pytest.mark.usefixtures("isolated")


def model_only(graph: ModelGraph) -> dict:
    """The graph's description without how it is drawn (positions and canvas settings)."""
    data = graph.to_dict()
    data.pop("canvas")
    for node in data["nodes"]:
        node.pop("position")
    return data


def staged_model(stages: int = 4, per_stage: int = 18) -> keras.Model:
    """A hand-written model whose layer names say its blocks: stage1_dense1, stage1_dense2, ..."""
    x = inputs = keras.Input((8,), name="features")
    for stage in range(1, stages + 1):
        for j in range(1, per_stage + 1):
            x = keras.layers.Dense(8, activation="relu", name=f"stage{stage}_dense{j}")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs, name="staged")


@pytest.fixture
def staged_project(tmp_path) -> Project:
    path = tmp_path / "staged.keras"
    staged_model().save(path)
    return import_model(path).project


def box_rects(scene) -> dict[str, QtCore.QRectF]:
    return {item.node_id: item.sceneBoundingRect() & QtCore.QRectF(item.pos(), QtCore.QSizeF(*item.size()))
            for item in scene.visible_boxes()}


# ------------------------------------------------------------------ imported models open readable
def test_a_big_imported_model_opens_as_collapsed_blocks_that_fit_readably(qtbot, loader, staged_project):
    graph = staged_project.graph
    assert [b.name for b in graph.canvas.blocks] == [f"stage{i}" for i in range(1, 5)]
    assert all(b.collapsed for b in graph.canvas.blocks)  # 74 nodes: too many to read whole
    window = open_window(qtbot, loader, staged_project)
    window.resize(1400, 900)
    window.fit_readable()
    scene = window.current_scene()
    assert set(scene.blocks_by_name) == {"stage1", "stage2", "stage3", "stage4"}
    assert window.current_view().zoom() >= READABLE_ZOOM
    block = scene.blocks_by_name["stage2"]
    assert block.summary.layers == 18 and block.summary.params == 18 * (8 * 8 + 8)
    assert block.summary.in_shapes == "(None, 8)" and block.summary.out_shapes == "(None, 8)"
    hidden = [scene.items_by_id[n] for n in block.members]
    assert not any(item.isVisible() for item in hidden)
    # The wire from stage1 into stage2 ends on the block's input port.
    into = next(w for w in scene.wires_by_dst.values() if w.edge.dst == block.members[0])
    assert into.isVisible() and into.ends.p2() == block.input_pos(0)
    # Wires inside a collapsed block are not drawn.
    inside = [w for w in scene.wires_by_dst.values() if w.edge.src in block.members and w.edge.dst in block.members]
    assert inside and not any(w.isVisible() for w in inside)
    assert window.document.engine.is_valid()


def test_fit_collapses_expanded_blocks_rather_than_shrink_names_away(qtbot, loader, staged_project):
    window = open_window(qtbot, loader, staged_project)
    window.resize(1400, 900)
    scene, view = window.current_scene(), window.current_view()
    window.collapse_all(False)
    settle(qtbot, window)
    assert not scene.blocks_by_name and view.zoom() < READABLE_ZOOM  # 74 boxes: too small to read
    steps = window.document.undo_stack.count()
    window.actions_by_name["fit"].trigger()
    settle(qtbot, window)
    assert set(scene.blocks_by_name) == {"stage1", "stage2", "stage3", "stage4"}
    assert view.zoom() >= READABLE_ZOOM
    assert window.document.undo_stack.count() == steps + 1  # the collapse is one undo step
    window.undo()
    settle(qtbot, window)
    assert not scene.blocks_by_name


def test_an_overview_too_big_to_read_whole_shows_its_input_readably(qtbot, loader, tmp_path):
    path = tmp_path / "many.keras"
    staged_model(stages=40, per_stage=3).save(path)  # 40 collapsed blocks, folded into columns
    window = open_window(qtbot, loader, import_model(path).project)
    window.resize(1400, 900)
    settle(qtbot, window)
    window.fit_readable()
    view, scene = window.current_view(), window.current_scene()
    assert view.zoom() >= READABLE_ZOOM
    diagram = scene.diagram_rect()
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert diagram.width() > visible.width()  # several columns, more than the view holds
    first = scene.items_by_id[next(n for n in scene.graph.nodes if scene.graph.is_input(n))]
    assert visible.contains(first.sceneBoundingRect())  # the input, not the middle columns


def test_collapse_and_expand_are_undoable_and_leave_the_model_alone(qtbot, loader, staged_project):
    window = open_window(qtbot, loader, staged_project)
    graph = window.document.graph
    scene = window.current_scene()
    model = model_only(graph)
    code = python_source(graph)
    # Expand one block by double-clicking it: its nodes come back, laid out in place.
    block = scene.blocks_by_name["stage3"]
    view = window.current_view()
    view.centerOn(block)
    point = view.mapFromScene(block.sceneBoundingRect().center())
    qtbot.mouseDClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=point)
    settle(qtbot, window)
    assert "stage3" not in scene.blocks_by_name
    members = [n for n in graph.canvas.blocks[2].nodes]
    assert all(scene.items_by_id[n].isVisible() for n in members)
    assert window.document.undo_stack.undoText() == "Expand 'stage3'"
    rects = box_rects(scene)
    for a in members:  # expanded nodes got room of their own
        for b, rect in rects.items():
            if a != b:
                assert not rects[a].intersects(rect), (a, b)
    assert model_only(graph) == model and python_source(graph) == code
    window.undo()
    settle(qtbot, window)
    assert "stage3" in scene.blocks_by_name
    # Expand all, collapse all from the menu.
    window.collapse_all(False)
    assert not scene.blocks_by_name and all(i.isVisible() for i in scene.items_by_id.values())
    window.collapse_all(True)
    assert set(scene.blocks_by_name) == {"stage1", "stage2", "stage3", "stage4"}
    assert model_only(graph) == model


def test_find_expands_the_block_that_hides_a_layer(qtbot, loader, staged_project):
    window = open_window(qtbot, loader, staged_project)
    graph = window.document.graph
    scene = window.current_scene()
    target = next(n for n in graph.nodes if graph.node(n).layer == "stage4_dense7")
    assert not scene.items_by_id[target].isVisible()
    assert window.current_view().reveal(target)
    assert "stage4" not in scene.blocks_by_name
    assert scene.items_by_id[target].isVisible() and scene.selected_ids() == [target]


def test_a_block_from_the_selection_and_into_a_sub_model(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "digits_cnn.kproj"))
    graph = window.document.graph
    scene = window.current_scene()
    chain = graph.topological_order()[1:4]
    scene.select_nodes(chain)
    window.make_block()
    assert [(b.nodes, b.collapsed) for b in graph.canvas.blocks] == [(tuple(chain), False)]
    name = graph.canvas.blocks[0].name
    scene.select_nodes(chain[:1])
    window.collapse_selection(True)
    assert name in scene.blocks_by_name
    before = len(graph.nodes)
    scene.clearSelection()
    scene.blocks_by_name[name].setSelected(True)  # a collapsed block is selected as one box
    assert scene.selected_ids() == list(chain)
    window.block_to_submodel()
    settle(qtbot, window)
    assert len(graph.nodes) == before - 2
    sub = next(n for n in graph.nodes if graph.layer_of(n).submodel is not None)
    assert graph.node(sub).layer == name
    assert window.document.engine.is_valid()
    window.undo()
    assert len(graph.nodes) == before


# ------------------------------------------------------------------ direction
def test_direction_puts_ports_on_the_sides_it_names_in_one_undo_step(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "unet_groupnorm.kproj"))
    graph = window.document.graph
    scene = window.current_scene()
    assert graph.canvas.direction == "TB"
    item = scene.items_by_id[graph.topological_order()[1]]
    assert item.input_pos(0).y() == item.pos().y()  # on the top edge
    steps = window.document.undo_stack.count()
    window.set_direction("LR")
    assert graph.canvas.direction == "LR"
    assert window.document.undo_stack.count() == steps + 1
    item = scene.items_by_id[graph.topological_order()[1]]
    assert item.input_pos(0).x() == item.pos().x()  # on the left edge
    for edge in graph.edges():  # laid out left to right
        assert graph.node(edge.src).position[0] < graph.node(edge.dst).position[0]
    window.undo()
    assert graph.canvas.direction == "TB"
    for edge in graph.edges():
        assert graph.node(edge.src).position[1] < graph.node(edge.dst).position[1]


# ------------------------------------------------------------------ wires and labels
def painted_points(wire: WireItem, steps: int = 40) -> list[QtCore.QPointF]:
    path = wire.path()
    return [path.pointAtPercent(i / steps) for i in range(1, steps)]


@pytest.mark.parametrize("example", ["unet_groupnorm", "siamese_digits", "digits_cnn"])
def test_wires_go_around_nodes_and_labels_are_never_behind_one(qtbot, loader, example):
    window = open_window(qtbot, loader, load_project(EXAMPLES / f"{example}.kproj"))
    scene = window.current_scene()
    bodies = {n: QtCore.QRectF(i.pos(), QtCore.QSizeF(*i.size())) for n, i in scene.items_by_id.items()}
    long_wires = 0
    for wire in scene.wires_by_dst.values():
        ends = {wire.edge.src, wire.edge.dst}
        long_wires += bool(wire.bends)
        for point in painted_points(wire):
            for node_id, body in bodies.items():
                if node_id not in ends:
                    assert not body.adjusted(2, 2, -2, -2).contains(point), (wire.edge, node_id)
        if wire.label:
            label = wire._label_rect()
            for node_id, body in bodies.items():
                assert not label.intersects(body), (wire.label, node_id)
    if example == "unet_groupnorm":
        assert long_wires >= 1  # the skip connection bends around the encoder and decoder


# ------------------------------------------------------------------ layout on open
def stacked_submodel_project() -> Project:
    graph = ModelGraph("outer")
    x = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 4], "dtype": "float32"})).node_id
    ids = []
    previous = x
    for units in (8, 8, 4):
        node = graph.apply(add_layer(graph, "Dense", {"units": units})).node_id
        graph.apply(Connect(previous, 0, node, 0))
        ids.append(node)
        previous = node
    from builder_app.core.graph import PortRef

    graph.apply(group_as_submodel(graph, ids, {PortRef(x, 0): ([None, 4], "float32")}, name="tower"))
    return Project(graph)


def test_sub_models_without_positions_are_laid_out_on_open(qtbot, loader, tmp_path):
    project = stacked_submodel_project()
    sub = next(layer.submodel for layer in project.graph.layers.values() if layer.submodel is not None)
    from builder_app.core.ops import MoveNode

    for node_id in list(sub.nodes):  # all stacked on one point, as a hand-written file may have them
        sub.apply(MoveNode(node_id, (0.0, 0.0)))
    path = tmp_path / "stacked.kproj"
    save_project(project, path)
    window = open_window(qtbot, loader, load_project(path))
    assert not window.document.is_dirty
    assert window.document.undo_stack.count() == 0  # laid out on open, not as an edit
    graph = window.document.graph
    sub_node = next(n for n in graph.nodes if graph.layer_of(n).submodel is not None)
    window._node_activated(sub_node)
    inner = window.current_scene()
    assert inner.graph is graph.layer_of(sub_node).submodel
    rects = [QtCore.QRectF(i.pos(), QtCore.QSizeF(*i.size())) for i in inner.items_by_id.values()]
    assert len({(r.x(), r.y()) for r in rects}) == len(rects) == 4
    assert not any(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1 :])


def test_overlapping_positions_are_laid_out_and_display_blocks_round_trip(tmp_path):
    graph = stacked_submodel_project().graph
    graph.apply(display.layout_ops(graph))
    assert not display.overlapping(graph)
    first, second = list(graph.nodes)[:2]
    from builder_app.core.ops import MoveNode

    graph.apply(MoveNode(second, graph.node(first).position))
    assert display.overlapping(graph)
    state = CanvasState("LR", (CanvasBlock("pair", (first, second), collapsed=True),))
    graph.apply(SetCanvas(state))
    assert not display.overlapping(graph)  # the collapsed pair is one box
    save_project(Project(graph), tmp_path / "p.kproj")
    assert load_project(tmp_path / "p.kproj").graph.canvas == state


# ------------------------------------------------------------------ cost colouring
def test_heat_colouring_tints_nodes_by_their_cost(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "digits_cnn.kproj"))
    scene = window.current_scene()
    assert scene.heat_fill(next(iter(scene.items_by_id))) is None
    window.set_heat("flops")
    fills = {n: scene.heat_fill(n).name() for n in scene.items_by_id}
    assert len(set(fills.values())) >= 3  # the convolutions are hotter than the rest
    window.set_heat(None)
    assert all(scene.heat_fill(n) is None for n in scene.items_by_id)
    image = QtGui.QImage(400, 300, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    scene.render(painter)
    painter.end()


def test_the_siamese_sub_model_opens_laid_out(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "siamese_digits.kproj"))
    graph = window.document.graph
    sub_node = next(n for n in graph.nodes if graph.layer_of(n).submodel is not None)
    window._node_activated(sub_node)
    inner = window.current_scene()
    positions = [inner.graph.node(n).position for n in inner.graph.nodes]
    assert len(set(positions)) == len(positions)
    assert isinstance(next(iter(inner.items_by_id.values())), NodeItem)
    assert not any(isinstance(i, BlockItem) for i in inner.items())
    assert QtWidgets.QApplication.instance() is not None
