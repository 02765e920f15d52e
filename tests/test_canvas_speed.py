"""What keeps big models quick on the canvas stays exact: lazily made items, partial rerouting.

A scene makes the items of nodes hidden in collapsed blocks only when they are asked
for, and a moved box reroutes only the wires near its old and new place. Both must
look, to every caller, the same as making and routing everything. (How fast they are
is measured in ``benchmarks/bench_editor.py`` and ``bench_open.py``, not here.)
"""

from __future__ import annotations

import keras
import pytest
from PySide6 import QtCore

from builder_app.core.project import Project
from builder_app.importers.keras_file import import_model
from builder_app.ui.editor.canvas import BlockItem, NodeItem, node_face
from tests.editor_support import open_window, settle
from tests.test_canvas_display import staged_project  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("isolated")


def drawn_node_ids(scene) -> set[str]:
    return {item.node_id for item in scene.items() if isinstance(item, NodeItem)}


def test_hidden_nodes_get_their_items_when_asked_for_and_items_by_id_answers_for_every_node(
    qtbot, loader, staged_project  # noqa: F811 - the fixture
):
    window = open_window(qtbot, loader, staged_project)
    scene = window.current_scene()
    graph = window.document.graph
    engine = window.document.engine
    hidden = {n for block in graph.canvas.blocks if block.collapsed for n in block.nodes}
    assert hidden and len(hidden) < len(graph.nodes)
    # Only what is drawn is made: the input, the head, and one box per block.
    assert drawn_node_ids(scene) == set(graph.nodes) - hidden
    assert len([i for i in scene.items() if isinstance(i, BlockItem)]) == len(graph.canvas.blocks)
    # ... yet the mapping answers for every node, without making anything to say so.
    assert len(scene.items_by_id) == len(graph.nodes)
    assert all(n in scene.items_by_id for n in graph.nodes) and "no such node" not in scene.items_by_id
    assert scene.items_by_id.get("no such node") is None
    assert drawn_node_ids(scene) == set(graph.nodes) - hidden
    # A hidden node's item, made on asking, is what eager making would have given.
    member = sorted(hidden)[5]
    item = scene.items_by_id[member]
    assert item is scene.items_by_id[member]  # made once
    assert not item.isVisible()
    assert item.pos() == QtCore.QPointF(*graph.node(member).position)
    assert item.face == node_face(graph, member, engine.peek(member))
    assert item.face.params  # the shapes had been computed before it was made
    assert {(w.edge.src, w.edge.dst) for w in item.wires} == {
        (e.src, e.dst) for e in graph.edges() if member in (e.src, e.dst)
    }
    # Expanding a block makes and shows all its nodes, wired as drawn.
    block = graph.canvas.block_of(member)
    scene.set_collapsed([block.name], False)
    settle(qtbot, window)
    assert set(block.nodes) <= drawn_node_ids(scene)
    assert all(scene.items_by_id[n].isVisible() for n in block.nodes)
    inner = [w for w in scene.wires_by_dst.values() if w.edge.src in block.nodes and w.edge.dst in block.nodes]
    assert inner and all(w.isVisible() and w.ends.p1() == scene.items_by_id[w.edge.src].output_pos(0) for w in inner)
    # Iterating the mapping gives every node an item (the render and select-all read them so).
    assert {n for n, _ in scene.items_by_id.items()} == set(graph.nodes)
    assert drawn_node_ids(scene) == set(graph.nodes)


@pytest.fixture
def fork_project(tmp_path) -> Project:
    """One input feeding two Dense layers: a long wire to ``far`` and a short one to ``side``."""
    x = keras.Input((8,), name="features")
    far = keras.layers.Dense(4, name="far")(x)
    side = keras.layers.Dense(4, name="side")(x)
    path = tmp_path / "fork.keras"
    keras.Model(x, [far, side], name="fork").save(path)
    return import_model(path).project


def crosses(wire, body: QtCore.QRectF, steps: int = 60) -> bool:
    path = wire.path()
    inner = body.adjusted(2, 2, -2, -2)
    return any(inner.contains(path.pointAtPercent(i / steps)) for i in range(1, steps))


def drag(qtbot, window, node_id: str, to: tuple[float, float]) -> None:
    """A drag of one box, as the view does it: move the selected item, then commit."""
    scene = window.current_scene()
    item = scene.items_by_id[node_id]
    scene.clearSelection()
    item.setSelected(True)
    item.setPos(QtCore.QPointF(*to))
    scene.commit_moves()
    qtbot.wait(20)  # the reroute timer fires


def test_a_box_moved_onto_a_wire_bends_it_and_moved_away_straightens_it(qtbot, loader, fork_project):
    window = open_window(qtbot, loader, fork_project)
    scene = window.current_scene()
    graph = window.document.graph
    ids = {graph.node(n).layer: n for n in graph.nodes}
    source, far, side = ids["features"], ids["far"], ids["side"]
    scene.snap = False  # the box goes exactly where it is dragged
    x0, y0 = graph.node(source).position
    scene.controller.move(graph, {far: (x0, y0 + 600.0), side: (x0 + 500.0, y0 + 300.0)})
    qtbot.wait(20)
    long_wire = scene.wires_by_dst[(far, 0)]
    assert long_wire.bends == ()  # a straight drop, nothing in its way

    drag(qtbot, window, side, (x0, y0 + 300.0))  # right across the long wire
    body = QtCore.QRectF(scene.items_by_id[side].pos(), QtCore.QSizeF(*scene.items_by_id[side].size()))
    assert graph.node(side).position == (x0, y0 + 300.0)
    assert long_wire.bends and not crosses(long_wire, body)
    assert scene.wires_by_dst[(side, 0)].ends.p2() == scene.items_by_id[side].input_pos(0)

    drag(qtbot, window, side, (x0 + 500.0, y0 + 300.0))  # away again: the detour is not needed
    assert long_wire.bends == ()
    assert scene.wires_by_dst[(side, 0)].ends.p2() == scene.items_by_id[side].input_pos(0)

    window.undo()  # the move back, undone: the box is on the wire again
    qtbot.wait(20)
    body = QtCore.QRectF(scene.items_by_id[side].pos(), QtCore.QSizeF(*scene.items_by_id[side].size()))
    assert long_wire.bends and not crosses(long_wire, body)
    # Routed in steps, the wires are where routing everything afresh puts them.
    routed = {key: wire.bends for key, wire in scene.wires_by_dst.items()}
    scene.refresh_all()
    assert {key: wire.bends for key, wire in scene.wires_by_dst.items()} == routed
