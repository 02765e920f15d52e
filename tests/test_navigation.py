"""Finding and jumping to layers, the overview map, and importing without freezing the window.

pytest-qt, offscreen, real Keras: the find bar driven with keys, the summary and problems
rows clicked, the minimap measured and dragged, a ``.keras`` file imported on the worker
thread while a timer keeps ticking on the GUI thread.
"""

from __future__ import annotations

import time

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core import ops
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, add_layer
from builder_app.core.project import Project, load_project
from builder_app.ui.editor.document import KerasLoader
from builder_app.ui.editor.find import find_nodes, search_terms
from builder_app.ui.editor.view import READABLE_ZOOM, Minimap
from builder_app.ui.editor.window import MainWindow
from tests.editor_support import EXAMPLES, open_window, settle

pytestmark = pytest.mark.usefixtures("isolated")


def chain(count: int, step: tuple[float, float], name: str = "chain") -> ModelGraph:
    """An input and ``count - 1`` Dense layers in a line, each ``step`` from the one before."""
    graph = ModelGraph(name)
    previous = None
    for index in range(count):
        position = (index * step[0], index * step[1])
        if previous is None:
            op = add_layer(graph, "InputLayer", {"batch_shape": [None, 4], "dtype": "float32"}, position=position)
        else:
            op = add_layer(graph, "Dense", {"units": 4}, position=position)
        graph.apply(op)
        if previous is not None:
            graph.apply(Connect(previous, 0, op.node.id, 0))
        previous = op.node.id
    return graph


def drawn_columns(widget: QtWidgets.QWidget, background: QtGui.QColor) -> int:
    """How many pixel columns of the widget, as painted now, hold something besides the background."""
    image = widget.grab().toImage()
    columns = 0
    for x in range(3, image.width() - 3):  # the frame's edge aside
        for y in range(3, image.height() - 3):
            colour = image.pixelColor(x, y)
            if abs(colour.red() - background.red()) + abs(colour.green() - background.green()) + abs(colour.blue() - background.blue()) > 60:
                columns += 1
                break
    return columns


# ---------------------------------------------------------------------- find
def test_find_matches_names_and_classes_in_graph_order():
    graph = chain(5, (300.0, 0.0))
    dense = [n for n in graph.nodes if graph.layer_of(n).class_name == "Dense"]
    assert find_nodes(graph, "DENSE") == dense  # the class, any case
    assert find_nodes(graph, "dense_2") == [n for n in dense if graph.layer_of(n).name == "dense_2"]
    assert find_nodes(graph, "input") == [next(iter(graph.nodes))]
    assert find_nodes(graph, "  ") == []
    assert find_nodes(graph, "conv") == []
    again = ops.call_again(graph, dense[0])
    graph.apply(again)
    assert find_nodes(graph, graph.layer_of(dense[0]).name)[-1] == again.node.id  # every call of a shared layer
    assert "Dense" in search_terms(graph) and "dense_2" in search_terms(graph)


def test_ctrl_f_enter_shift_enter_and_escape(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "digits_cnn.kproj"))
    view = window.current_view()
    graph = window.document.graph
    view.set_zoom(0.2)
    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_F, QtCore.Qt.KeyboardModifier.ControlModifier)
    bar = view.find_bar
    assert bar.isVisible() and bar.field.hasFocus()
    qtbot.keyClicks(bar.field, "conv")
    wanted = [n for n in graph.nodes if "conv" in graph.layer_of(n).class_name.lower() or "conv" in graph.layer_of(n).name]
    assert len(wanted) >= 2 and bar.matches == wanted
    assert bar.count_label.text() == f"{len(wanted)} matches"
    bar.field.completer().popup().hide()
    qtbot.keyClick(bar.field, QtCore.Qt.Key.Key_Return)
    assert bar.count_label.text() == f"1 of {len(wanted)}"
    assert window.current_scene().selected_ids() == [wanted[0]]
    assert view.zoom() == pytest.approx(READABLE_ZOOM)
    item = window.current_scene().items_by_id[wanted[0]]
    centre = view.mapFromScene(item.sceneBoundingRect().center())
    middle = view.viewport().rect().center()
    assert abs(centre.x() - middle.x()) <= 2 and abs(centre.y() - middle.y()) <= 2
    qtbot.keyClick(bar.field, QtCore.Qt.Key.Key_Return)
    assert window.current_scene().selected_ids() == [wanted[1]]
    qtbot.keyClick(bar.field, QtCore.Qt.Key.Key_Return, QtCore.Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(bar.field, QtCore.Qt.Key.Key_Return, QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert bar.count_label.text() == f"{len(wanted)} of {len(wanted)}"  # back past the first: the last
    assert window.current_scene().selected_ids() == [wanted[-1]]
    bar.field.setText("no such layer")
    assert bar.count_label.text() == "no match" and bar.find_next() is None
    qtbot.keyClick(bar.field, QtCore.Qt.Key.Key_Escape)
    assert not bar.isVisible()


def test_reveal_keeps_a_readable_zoom_and_refuses_unknown_nodes(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    view = window.current_view()
    node = list(window.document.graph.nodes)[-1]
    view.set_zoom(1.5)
    assert view.reveal(node)
    assert view.zoom() == pytest.approx(1.5)
    assert window.current_scene().selected_ids() == [node]
    assert not view.reveal("no-such-node")


def test_summary_and_problem_rows_jump_like_find(qtbot, loader):
    window = open_window(qtbot, loader, Project(chain(40, (300.0, 0.0))))
    view = window.current_view()
    graph = window.document.graph
    window._refresh_panels()
    last = list(graph.nodes)[-1]
    view.fit()
    assert view.zoom() < READABLE_ZOOM
    row = window.summary_model.row_of(last)
    window.summary_table.clicked.emit(window.summary_model.index(row, 0))
    assert window.current_scene().selected_ids() == [last]
    assert view.zoom() == pytest.approx(READABLE_ZOOM)
    assert view.viewport().rect().contains(view.mapFromScene(window.current_scene().items_by_id[last].sceneBoundingRect().center()))
    # a broken layer's problem row
    window.document.push(ops.SetParam(graph.node(last).layer, "units", -3), "units")
    settle(qtbot, window)
    window._refresh_panels()
    item = window.problems.item(0)
    assert item.data(QtCore.Qt.ItemDataRole.UserRole) == last
    view.fit()
    window.current_scene().clearSelection()
    window.problems.itemClicked.emit(item)
    assert window.current_scene().selected_ids() == [last]
    assert view.zoom() == pytest.approx(READABLE_ZOOM)


# ------------------------------------------------------------------- minimap
def test_minimap_takes_the_diagrams_aspect_and_a_long_line_shows(qtbot, loader):
    window = open_window(qtbot, loader, Project(chain(175, (300.0, 0.0), "line")))
    view = window.current_view()
    minimap = view.minimap
    # a line: as flat as allowed, never a sliver
    qtbot.waitUntil(lambda: minimap.height() == Minimap.MIN_SIDE, timeout=3000)
    assert minimap.width() == Minimap.DEFAULT_LONG
    view.set_zoom(1.0)
    view.reveal(list(window.document.graph.nodes)[0])
    background = window.current_scene().colors.background
    # ResNet50 is 175 layers in a line: every part of it is drawn, not a blank box.
    qtbot.waitUntil(lambda: drawn_columns(minimap, background) >= 0.9 * (minimap.width() - 14), timeout=3000)

    tall = open_window(qtbot, loader, Project(chain(30, (0.0, 160.0), "tall")))
    tall_map = tall.current_view().minimap
    rect = tall.current_scene().diagram_rect()
    qtbot.waitUntil(lambda: tall_map.width() < tall_map.height(), timeout=3000)
    assert tall_map.height() == Minimap.DEFAULT_LONG
    assert tall_map.width() == max(Minimap.MIN_SIDE, round(Minimap.DEFAULT_LONG * rect.width() / rect.height()))
    assert tall_map.width() < tall_map.height()


def test_minimap_resizes_by_its_grip_hides_and_remembers_both(qtbot, loader):
    window = open_window(qtbot, loader, Project(chain(12, (300.0, 0.0))))
    minimap = window.current_view().minimap
    qtbot.waitUntil(lambda: minimap.height() == Minimap.MIN_SIDE, timeout=3000)
    # the grip is the map's top-left corner (the map sits bottom right): drag it up and left
    start = QtCore.QPoint(4, 4)
    qtbot.mousePress(minimap, QtCore.Qt.MouseButton.LeftButton, pos=start)
    move = QtGui.QMouseEvent(
        QtCore.QEvent.Type.MouseMove, QtCore.QPointF(start - QtCore.QPoint(60, 20)),
        QtCore.QPointF(minimap.mapToGlobal(start - QtCore.QPoint(60, 20))),
        QtCore.Qt.MouseButton.NoButton, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
    )
    QtWidgets.QApplication.sendEvent(minimap, move)
    qtbot.mouseRelease(minimap, QtCore.Qt.MouseButton.LeftButton, pos=minimap.mapFromGlobal(move.globalPosition().toPoint()))
    assert minimap.width() == Minimap.DEFAULT_LONG + 60
    viewport = window.current_view().viewport()
    assert minimap.geometry().right() == viewport.width() - 11  # still in its corner
    window.actions_by_name["minimap"].trigger()
    assert not minimap.isVisible()

    again = open_window(qtbot, loader, Project(chain(12, (300.0, 0.0))))
    assert not again.actions_by_name["minimap"].isChecked()
    assert not again.current_view().minimap.isVisible()
    assert again.current_view().minimap.long_side == Minimap.DEFAULT_LONG + 60
    again.actions_by_name["minimap"].trigger()
    assert again.current_view().minimap.isVisible() and Minimap.remembered_visible()


def test_a_node_added_under_the_minimap_moves_it_to_another_corner(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    view = window.current_view()
    minimap = view.minimap
    qtbot.waitUntil(lambda: minimap.isVisible(), timeout=3000)
    assert minimap.corner == "bottom-right"
    window.current_scene().clearSelection()
    under = view.mapToScene(minimap.geometry().topLeft() + QtCore.QPoint(20, 10))
    [new] = view.insert("Dense", under)
    item = window.current_scene().items_by_id[new]
    placed = view.mapFromScene(item.sceneBoundingRect()).boundingRect()
    assert placed.intersects(minimap.geometry())  # it did land under the map
    qtbot.waitUntil(lambda: minimap.corner != "bottom-right", timeout=2000)
    assert not placed.intersects(minimap.geometry())
    assert view.viewport().rect().contains(minimap.geometry())


# -------------------------------------------------------------------- import
@pytest.fixture(scope="module")
def keras_file(tmp_path_factory, loader):
    """A small convolutional model saved as a .keras file (with its weights)."""
    import keras

    layers = [keras.Input((32, 32, 3))]
    for index in range(12):
        layers += [keras.layers.Conv2D(8, 3, padding="same", name=f"conv_{index}"), keras.layers.BatchNormalization()]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="head")]
    model = keras.Sequential(layers, name="small_cnn")
    path = tmp_path_factory.mktemp("models") / "small_cnn.keras"
    model.save(path)
    return path


def test_import_runs_on_a_worker_thread_while_the_window_keeps_painting(qtbot, loader, keras_file, tmp_path):
    window = open_window(qtbot, loader)
    ticks: list[float] = []
    timer = QtCore.QTimer(window, interval=10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    started = time.perf_counter()
    job = window.import_path(keras_file)
    returned = time.perf_counter() - started
    assert job is not None
    assert window.is_importing()
    assert "small_cnn.keras" in window._import_label.text() and window._import_bar.isVisible()
    assert not window.import_path(keras_file)  # one import at a time
    assert "being imported" in window.statusBar().currentMessage()
    assert window._import_bar.isVisible()  # a status message does not hide the busy bar
    qtbot.waitUntil(lambda: job.preview is not None, timeout=60_000)
    if window.is_importing():  # shown before its weights are read
        assert window.document is job.preview and window.document.graph.layer("conv_3").weights is None
    qtbot.waitUntil(lambda: not window.is_importing(), timeout=60_000)
    took = time.perf_counter() - started
    timer.stop()
    during = [t for t in ticks if started + returned <= t <= started + took]
    # The call returned with the import still running (asserted above), and the GUI
    # thread kept running its timers meanwhile. No timed thresholds: the machine's
    # load decides how long each part takes; `python -m benchmarks open` measures them.
    assert len(during) >= 3
    # The model was shown while its weights were read; then they came into that same document.
    assert job.preview is window.document
    graph = window.document.graph
    assert {"conv_0", "conv_11", "head"} <= set(graph.layers)
    assert graph.layer("conv_3").weights  # the weights came along
    assert window.document.is_dirty and window.document.path is None
    assert window.statusBar().currentMessage().startswith("Imported small_cnn.keras")
    assert not window._import_bar.isVisible()


def test_an_unreadable_file_is_one_line_and_the_project_stays(qtbot, loader, tmp_path):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    before = window.document
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip archive")
    assert window.import_path(broken)
    qtbot.waitUntil(lambda: not window.is_importing(), timeout=30_000)
    message = window.statusBar().currentMessage()
    assert message.startswith("broken.keras: ") and "\n" not in message
    assert window.document is before


def test_an_import_asked_for_before_keras_has_loaded_waits_for_it(qtbot, loader, keras_file):
    pending = KerasLoader()  # as `builder-app MODEL.keras` starts: Keras not loaded yet
    window = MainWindow(loader=pending)
    window.ask_unsaved = lambda: QtWidgets.QMessageBox.StandardButton.Discard
    qtbot.addWidget(window)
    window.show()
    before = window.document
    assert window.import_path(keras_file)
    qtbot.wait(300)
    assert window.is_importing() and window.document is before  # waiting for Keras, painting meanwhile
    pending.start()
    qtbot.waitUntil(lambda: not window.is_importing(), timeout=60_000)
    assert "conv_5" in window.document.graph.layers


def test_ctrl_f_belongs_to_the_canvas_and_the_palette_keeps_its_own(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    view = window.current_view()
    window.palette.tree.setFocus()
    qtbot.keyClick(window.palette.tree, QtCore.Qt.Key.Key_F, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert window.palette.search_box.hasFocus() and not view.find_bar.isVisible()
    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_F, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert view.find_bar.isVisible() and view.find_bar.field.hasFocus()
    window.actions_by_name["find"].trigger()  # the Edit menu's entry opens the same bar
    assert view.find_bar.isVisible()


def test_weights_that_fail_after_the_preview_bring_the_project_back(qtbot, loader, keras_file, tmp_path):
    import zipfile

    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    before = window.document.graph.to_dict()
    broken = tmp_path / "bad_weights.keras"
    with zipfile.ZipFile(keras_file) as source, zipfile.ZipFile(broken, "w") as target:
        for info in source.infolist():
            data = b"not an HDF5 file" if info.filename == "model.weights.h5" else source.read(info)
            target.writestr(info.filename, data)
    job = window.import_path(broken)
    assert job is not None
    qtbot.waitUntil(lambda: not window.is_importing(), timeout=30_000)
    assert job.preview is not None and window.document is not job.preview  # shown, then taken back
    message = window.statusBar().currentMessage()
    assert message.startswith("bad_weights.keras: ") and "HDF5" in message and "\n" not in message
    assert window.document.graph.to_dict() == before and window.document.path is not None
