"""Edits that follow the chain: splice insert, delete with reconnection, accidental outputs (issue 11, 5).

The rules in :mod:`builder_app.core.editing` are tested without Qt on small graphs;
the gestures (Tab quick add, a palette drop onto a wire, Delete) through a real
window, each one undo step that undo takes back to the graph's exact ``to_dict()``.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core import catalog, editing
from builder_app.core.graph import CanvasState, Edge, ModelGraph, NotFoundError, PortRef
from builder_app.core.ops import Connect, SetCanvas, SetModelIO, add_layer
from builder_app.core.project import Project, load_project
from builder_app.core.shapes import ShapeEngine
from builder_app.ui.editor.canvas import WireItem
from builder_app.ui.editor.palette import mime_data
from tests.editor_support import open_window, settle

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"
INPUT_8 = {"batch_shape": [None, 8], "dtype": "float32"}


@pytest.fixture(scope="module", autouse=True)
def keras_catalog():
    catalog.catalog()  # palette_ops and the config check read it


def build(layers: list[tuple[str, str, dict, list[str]]]) -> ModelGraph:
    """A graph from (id, class, config, sources) rows, laid out along the graph's direction."""
    graph = ModelGraph("chain")
    ids: dict[str, str] = {}
    for key, class_name, config, sources in layers:
        op = add_layer(graph, class_name, config, name=key)
        graph.apply(op)
        ids[key] = op.node.id
        for port, source in enumerate(sources):
            graph.apply(Connect(ids[source], 0, op.node.id, port))
    graph.apply(editing.layout_ops(graph))
    return graph


def node(graph: ModelGraph, layer: str) -> str:
    return graph.nodes_of_layer(layer)[0]


def chain() -> ModelGraph:
    return build(
        [
            ("x", "InputLayer", INPUT_8, []),
            ("a", "Dense", {"units": 16}, ["x"]),
            ("b", "Dense", {"units": 4}, ["a"]),
            ("c", "Dense", {"units": 2}, ["b"]),
        ]
    )


def apply_and_undo(graph: ModelGraph, op) -> dict:
    """Applies ``op``, checks its inverse restores the graph exactly, applies it again; the dict before."""
    before = graph.to_dict()
    inverse = graph.apply(op)
    after = graph.to_dict()
    graph.apply(inverse)
    assert graph.to_dict() == before
    graph.apply(op)
    assert graph.to_dict() == after
    return before


# ----------------------------------------------------------------- core: splice
def test_splice_after_a_middle_node_takes_its_place_in_the_chain_beside_it():
    graph = chain()
    a, b, c = node(graph, "a"), node(graph, "b"), node(graph, "c")
    moves = editing.move_ops(graph, {b: editing.after_position(graph, a)})  # b sits where the new layer goes
    if moves is not None:  # (a laid out chain has it there already)
        graph.apply(moves)
    c_before = graph.node(c).position
    op = editing.splice_after_ops(graph, "Dropout", a)
    apply_and_undo(graph, op)
    (new,) = editing.added_node_ids(op)
    assert graph.layer_of(new).class_name == "Dropout"
    assert graph.inputs_of(new) == {0: PortRef(a, 0)}
    assert graph.inputs_of(b) == {0: PortRef(new, 0)}
    assert graph.node(new).position == editing.after_position(graph, a) != graph.node(a).position
    # b and what follows it moved along the chain by the same distance, off the new node
    moved = [graph.node(b).position[i] - editing.after_position(graph, a)[i] for i in (0, 1)]
    assert moved != [0.0, 0.0]
    assert [graph.node(c).position[i] - c_before[i] for i in (0, 1)] == moved
    assert editing.implicit_outputs(graph) == {c}


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_the_new_layer_goes_below_top_to_bottom_and_right_left_to_right(direction):
    graph = chain()
    graph.apply(SetCanvas(CanvasState(direction)))
    step = (0.0, 120.0) if direction == "TB" else (330.0, 0.0)
    order = [node(graph, k) for k in "xabc"]
    moves = editing.move_ops(graph, {n: (i * step[0], i * step[1]) for i, n in enumerate(order)})
    if moves is not None:  # (the top-to-bottom layout has put them there already)
        graph.apply(moves)
    x, a, b, c = order
    op = editing.splice_after_ops(graph, "Dropout", a)
    graph.apply(op)
    (new,) = editing.added_node_ids(op)
    assert graph.node(new).position == (2 * step[0], 2 * step[1])  # beside a, where b was
    # b and c moved one step on along the flow, nothing across it
    assert [graph.node(n).position for n in (b, c)] == [(3 * step[0], 3 * step[1]), (4 * step[0], 4 * step[1])]
    assert graph.node(x).position == (0.0, 0.0)


def test_splice_moves_nothing_when_there_is_room_and_a_leaf_just_gets_appended():
    graph = chain()
    a, b, c = node(graph, "a"), node(graph, "b"), node(graph, "c")
    far = {n: (graph.node(n).position[0] + 2000.0, graph.node(n).position[1] + 2000.0) for n in (b, c)}
    graph.apply(editing.move_ops(graph, far))
    op = editing.splice_after_ops(graph, "Dropout", a)
    graph.apply(op)
    assert graph.node(b).position == far[b] and graph.node(c).position == far[c]
    append = editing.splice_after_ops(graph, "Dense", c)
    graph.apply(append)
    (tail,) = editing.added_node_ids(append)
    assert graph.inputs_of(tail) == {0: PortRef(c, 0)} and not graph.consumers_of(tail)
    assert editing.implicit_outputs(graph) == {tail}


def test_splice_after_a_node_feeding_several_consumers_takes_them_all_over():
    graph = build(
        [
            ("x", "InputLayer", INPUT_8, []),
            ("trunk", "Dense", {"units": 8}, ["x"]),
            ("left", "Dense", {"units": 8}, ["trunk"]),
            ("sum", "Add", {}, ["left", "trunk"]),
        ]
    )
    trunk, left, total = node(graph, "trunk"), node(graph, "left"), node(graph, "sum")
    op = editing.splice_after_ops(graph, "BatchNormalization", trunk)
    apply_and_undo(graph, op)
    (new,) = editing.added_node_ids(op)
    assert graph.inputs_of(left) == {0: PortRef(new, 0)}
    assert graph.inputs_of(total) == {0: PortRef(left, 0), 1: PortRef(new, 0)}  # the skip keeps port 1
    assert [e.dst for e in graph.consumers_of(trunk)] == [new]
    assert editing.implicit_outputs(graph) == {total}


def test_a_drop_on_a_wire_splices_into_that_wire_only_keeping_the_port():
    graph = build(
        [
            ("x", "InputLayer", INPUT_8, []),
            ("trunk", "Dense", {"units": 8}, ["x"]),
            ("left", "Dense", {"units": 8}, ["trunk"]),
            ("sum", "Add", {}, ["left", "trunk"]),
        ]
    )
    trunk, left, total = node(graph, "trunk"), node(graph, "left"), node(graph, "sum")
    skip = Edge(trunk, 0, total, 1)
    op = editing.splice_ops(graph, "Dropout", skip, (123.0, 456.0))
    apply_and_undo(graph, op)
    (new,) = editing.added_node_ids(op)
    assert graph.node(new).position == (123.0, 456.0)
    assert graph.inputs_of(new) == {0: PortRef(trunk, 0)}
    assert graph.inputs_of(total) == {0: PortRef(left, 0), 1: PortRef(new, 0)}
    assert graph.inputs_of(left) == {0: PortRef(trunk, 0)}  # the other consumer is untouched
    with pytest.raises(NotFoundError, match="no wire into input 1 of 'left'"):
        editing.splice_ops(graph, "Dropout", Edge(trunk, 0, left, 1), (0.0, 0.0))


def test_a_drop_half_onto_the_source_goes_one_step_past_it_and_pushes_the_chain_on():
    graph = chain()
    a, b, c = node(graph, "a"), node(graph, "b"), node(graph, "c")
    ax, ay = graph.node(a).position
    op = editing.splice_ops(graph, "Dropout", Edge(a, 0, b, 0), (ax + 7.0, ay + 30.0))
    graph.apply(op)
    (new,) = editing.added_node_ids(op)
    assert graph.node(new).position == (ax + 7.0, editing.after_position(graph, a)[1])  # TB: below a
    positions = [graph.node(n).position for n in (a, new, b, c)]
    assert [y for _, y in positions] == sorted(y for _, y in positions)  # still one chain down the page
    assert all(later[1] - earlier[1] >= 120.0 for earlier, later in pairwise(positions))


def test_a_block_splices_in_by_its_entry_and_exit_and_an_input_is_only_added():
    graph = build(
        [
            ("x", "InputLayer", {"batch_shape": [None, 16, 16, 8], "dtype": "float32"}, []),
            ("conv", "Conv2D", {"filters": 64, "kernel_size": [3, 3], "padding": "same"}, ["x"]),
            ("pool", "GlobalAveragePooling2D", {}, ["conv"]),
        ]
    )
    conv, pool = node(graph, "conv"), node(graph, "pool")
    op = editing.splice_ops(graph, "block:Residual block", Edge(conv, 0, pool, 0), (0.0, 400.0))
    apply_and_undo(graph, op)
    added = editing.added_node_ids(op)
    assert len(added) > 2
    assert graph.inputs_of(added[0]) == {0: PortRef(conv, 0)}
    assert graph.inputs_of(pool) == {0: PortRef(added[-1], 0)}
    engine = ShapeEngine(graph)
    try:
        assert engine.is_valid(), engine.errors()
    finally:
        engine.close()
    wires = graph.edges()
    op = editing.splice_ops(graph, "InputLayer", Edge(added[-1], 0, pool, 0), (0.0, 0.0))
    graph.apply(op)
    (new,) = editing.added_node_ids(op)
    assert graph.is_input(new) and graph.edges() == wires


def test_a_splice_the_layer_cannot_take_is_made_and_the_error_shows_on_the_new_node():
    graph = chain()
    a, b = node(graph, "a"), node(graph, "b")
    op = editing.splice_after_ops(graph, "Conv2D", a)
    graph.apply(op)
    (new,) = editing.added_node_ids(op)
    assert graph.inputs_of(b) == {0: PortRef(new, 0)}
    engine = ShapeEngine(graph)
    try:
        assert engine.result(new).errors  # a Conv2D on a (None, 16) tensor
        assert not engine.result(b).errors  # blocked by it, not blamed
    finally:
        engine.close()


# ----------------------------------------------------------------- core: delete with reconnection
def with_engine(graph: ModelGraph):
    engine = ShapeEngine(graph)
    engine.update()
    return engine


def test_deleting_a_middle_node_wires_its_source_on_to_its_consumers():
    graph = chain()
    a, b, c = node(graph, "a"), node(graph, "b"), node(graph, "c")
    engine = with_engine(graph)
    try:
        batch, reason = editing.delete_reconnect_ops(graph, engine, b)
    finally:
        engine.close()
    assert reason is None
    apply_and_undo(graph, batch)
    assert b not in graph.nodes and graph.inputs_of(c) == {0: PortRef(a, 0)}


def test_a_consumer_that_cannot_take_the_source_is_left_unconnected_and_the_reason_says_why():
    graph = build(
        [
            ("x", "InputLayer", INPUT_8, []),
            ("wide", "Dense", {"units": 16}, ["x"]),
            ("other", "Dense", {"units": 16}, ["x"]),
            ("sum", "Add", {}, ["wide", "other"]),
            ("head", "Dense", {"units": 2}, ["wide"]),
        ]
    )
    x, wide, total, head = node(graph, "x"), node(graph, "wide"), node(graph, "sum"), node(graph, "head")
    engine = with_engine(graph)
    try:
        batch, reason = editing.delete_reconnect_ops(graph, engine, wide)
    finally:
        engine.close()
    assert reason == "'sum' left unconnected: it needs (None, 16), 'x' gives (None, 8)"
    apply_and_undo(graph, batch)
    assert 0 not in graph.inputs_of(total)
    assert graph.inputs_of(head) == {0: PortRef(x, 0)}  # a Dense takes any width: reconnected


def test_inputs_multi_input_nodes_and_unknown_shapes_delete_as_before():
    graph = build(
        [
            ("x", "InputLayer", INPUT_8, []),
            ("a", "Dense", {"units": 8}, ["x"]),
            ("b", "Dense", {"units": 8}, ["x"]),
            ("sum", "Add", {}, ["a", "b"]),
            ("c", "Dense", {"units": 2}, ["sum"]),
        ]
    )
    x, total, c = node(graph, "x"), node(graph, "sum"), node(graph, "c")
    engine = with_engine(graph)
    try:
        for gone in (x, total):
            batch, reason = editing.delete_reconnect_ops(graph, engine, gone)
            assert reason is None and len(batch.ops) == 1  # the removal alone
    finally:
        engine.close()
    batch, reason = editing.delete_reconnect_ops(graph, None, node(graph, "a"))
    assert reason == "'sum' left unconnected: the shape of 'x' is unknown"
    with pytest.raises(NotFoundError):
        editing.delete_reconnect_ops(graph, None, "n99")
    assert c in graph.nodes


# ----------------------------------------------------------------- core: accidental outputs
def test_new_outputs_flags_a_branch_that_grows_the_outputs_not_one_that_moves_the_end():
    graph = chain()
    x, a, b, c = (node(graph, k) for k in "xabc")
    before = editing.implicit_outputs(graph)
    graph.apply(editing.splice_after_ops(graph, "Dense", c))  # appended: the end moved
    assert editing.new_outputs(before, graph) == []
    before = editing.implicit_outputs(graph)
    loose = add_layer(graph, "Dense", {"units": 3})
    graph.apply(loose)  # not wired yet: no one means it as an output
    assert editing.new_outputs(before, graph) == []
    graph.apply(Connect(a, 0, loose.node.id, 0))  # a second branch from a: now an extra output
    assert editing.new_outputs(before, graph) == [loose.node.id]
    before = editing.implicit_outputs(graph)
    batch, _ = editing.delete_reconnect_ops(graph, None, b)  # shapes unknown: c is left unconnected
    graph.apply(batch)
    assert editing.new_outputs(before, graph) == []  # c feeds nothing but is no output: it has no input
    graph.apply(SetModelIO([], [PortRef(c, 0)]))
    assert editing.implicit_outputs(graph) == frozenset()
    assert x in graph.nodes


# ----------------------------------------------------------------- the window
def drop(view, payload: str, scene_pos: QtCore.QPointF) -> WireItem | None:
    """A real drag over the view and a drop, with the palette's drag data; the wire lit before the drop."""
    point = view.mapFromScene(scene_pos)
    mime = mime_data(payload)
    buttons, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    copy = QtCore.Qt.DropAction.CopyAction
    QtWidgets.QApplication.sendEvent(view.viewport(), QtGui.QDragEnterEvent(point, copy, mime, buttons, none))
    QtWidgets.QApplication.sendEvent(view.viewport(), QtGui.QDragMoveEvent(point, copy, mime, buttons, none))
    lit = view._drop_wire
    QtWidgets.QApplication.sendEvent(view.viewport(), QtGui.QDropEvent(QtCore.QPointF(point), copy, mime, buttons, none))
    return lit


def iris(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    return window, graph, {graph.node(n).layer: n for n in graph.nodes}


def test_tab_quick_add_mid_chain_splices_beside_the_selection_and_undo_restores(qtbot, loader):
    window, graph, ids = iris(qtbot, loader)
    before = graph.to_dict()
    hidden_1, hidden_2 = ids["hidden_1"], ids["hidden_2"]
    window.current_scene().select_nodes([hidden_1])
    window.current_view().request_quick_add()
    window.quick_add.chosen.emit("BatchNormalization")
    settle(qtbot, window)
    (new,) = [n for n in graph.nodes if n not in ids.values()]
    assert graph.inputs_of(new) == {0: PortRef(hidden_1, 0)}
    assert graph.inputs_of(hidden_2) == {0: PortRef(new, 0)}
    assert graph.node(new).position == editing.after_position(graph, hidden_1)
    assert len({graph.node(n).position for n in graph.nodes}) == len(graph.nodes)  # hidden_2 on moved off it
    assert editing.implicit_outputs(graph) == {ids["species"]}  # no extra model output
    assert window.current_scene().selected_ids() == [new]
    assert window.document.undo_stack.count() == 1
    assert window.document.engine.is_valid()
    window.undo()
    assert graph.to_dict() == before


def test_a_palette_drop_onto_a_wire_splices_into_it(qtbot, loader):
    window, graph, ids = iris(qtbot, loader)
    before = graph.to_dict()
    view, scene = window.current_view(), window.current_scene()
    wire = scene.wires_by_dst[(ids["dropout"], 0)]
    assert isinstance(wire, WireItem)
    middle = wire.path().pointAtPercent(0.5)
    view.centerOn(middle)
    assert drop(view, "Dense", middle) is wire  # lit while dragged over
    settle(qtbot, window)
    (new,) = [n for n in graph.nodes if n not in ids.values()]
    assert graph.inputs_of(new) == {0: PortRef(ids["hidden_2"], 0)}
    assert graph.inputs_of(ids["dropout"]) == {0: PortRef(new, 0)}
    assert window.document.undo_stack.count() == 1 and view._drop_wire is None
    window.undo()
    assert graph.to_dict() == before
    assert drop(view, "Dense", QtCore.QPointF(-900.0, -900.0)) is None  # empty canvas: only added, as before
    (loose,) = [n for n in graph.nodes if n not in ids.values()]
    assert graph.inputs_of(loose) == {} and not graph.consumers_of(loose)


def test_delete_reconnects_a_middle_node_and_undo_restores(qtbot, loader):
    window, graph, ids = iris(qtbot, loader)
    before = graph.to_dict()
    window.current_scene().select_nodes([ids["dropout"]])
    window.delete()
    assert ids["dropout"] not in graph.nodes
    assert graph.inputs_of(ids["species"]) == {0: PortRef(ids["hidden_2"], 0)}
    assert window.document.undo_stack.count() == 1
    settle(qtbot, window)
    assert window.document.engine.is_valid()
    window.undo()
    assert graph.to_dict() == before


def test_delete_that_cannot_reconnect_says_why_in_the_status_bar(qtbot, loader):
    graph = build(
        [
            ("x", "InputLayer", INPUT_8, []),
            ("wide", "Dense", {"units": 16}, ["x"]),
            ("other", "Dense", {"units": 16}, ["x"]),
            ("sum", "Add", {}, ["wide", "other"]),
        ]
    )
    window = open_window(qtbot, loader, Project(graph))
    graph = window.document.graph
    before = graph.to_dict()
    window.current_scene().select_nodes([node(graph, "wide")])
    window.delete()
    message = window.statusBar().currentMessage()
    assert message == "'wide' deleted; 'sum' left unconnected: it needs (None, 16), 'x' gives (None, 8)"
    assert graph.inputs_of(node(graph, "sum")) == {1: PortRef(node(graph, "other"), 0)}
    window.undo()
    assert graph.to_dict() == before


def test_an_accidental_output_is_flagged_with_undo_and_keep(qtbot, loader):
    window, graph, ids = iris(qtbot, loader)
    before = graph.to_dict()
    controller = window.controller
    added = controller.insert(graph, "Dense", (330.0, 400.0)).nodes  # loose: not flagged
    assert window.output_actions.isHidden() if hasattr(window, "output_actions") else True
    outcome = controller.connect(graph, ids["hidden_1"], 0, added[0], 0)
    assert outcome.notice is not None and outcome.notice.outputs == (added[0],)
    label = graph.label(added[0])
    assert window.statusBar().currentMessage() == f"'{label}' is now a model output; was that meant?"
    assert window.output_actions.isVisible()
    window.output_undo.click()  # undoes the connection only
    assert graph.inputs_of(added[0]) == {} and not window.output_actions.isVisible()
    controller.connect(graph, ids["hidden_1"], 0, added[0], 0)
    assert window.output_actions.isVisible()
    window.output_keep.click()
    assert [ref.node for ref in graph.explicit_outputs()] == [ids["species"], added[0]]
    controller.connect(graph, ids["hidden_2"], 0, added[0], 0)  # outputs are explicit now: nothing to say
    assert window.statusBar().currentMessage() != f"'{label}' is now a model output; was that meant?"
    for _ in range(4):
        window.undo()
    assert graph.to_dict() == before
