"""The editor window, driven through its real widgets (pytest-qt, offscreen, real Keras)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core import ops
from builder_app.core.graph import ModelGraph
from builder_app.core.project import Project, load_project
from builder_app.ui.editor.canvas import NodeItem, WireItem
from builder_app.ui.editor.palette import mime_data
from tests.editor_support import open_window, settle

pytestmark = pytest.mark.usefixtures("isolated")

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"
ROOT = Path(__file__).resolve().parents[1]


def drop(view, payload: str, scene_pos: QtCore.QPointF) -> None:
    """A real drop event from the palette's drag data, delivered to the view."""
    point = view.mapFromScene(scene_pos)
    mime = mime_data(payload)
    for kind in (QtCore.QEvent.Type.DragEnter, QtCore.QEvent.Type.DragMove):
        cls = QtGui.QDragEnterEvent if kind == QtCore.QEvent.Type.DragEnter else QtGui.QDragMoveEvent
        event = cls(point, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
        QtWidgets.QApplication.sendEvent(view.viewport(), event)
    event = QtGui.QDropEvent(QtCore.QPointF(point), QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(view.viewport(), event)


def drag_wire(qtbot, view, src: NodeItem, dst: NodeItem, dst_port: int = 0) -> None:
    """Presses on an output port, moves and releases on an input port, with the mouse."""
    start = view.mapFromScene(src.output_pos(0))
    end = view.mapFromScene(dst.input_pos(dst_port))
    viewport = view.viewport()
    qtbot.mousePress(viewport, QtCore.Qt.MouseButton.LeftButton, pos=start)
    middle = (start + end) / 2
    for point in (middle, end):
        move = QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove, QtCore.QPointF(point), viewport.mapToGlobal(QtCore.QPointF(point)),
            QtCore.Qt.MouseButton.NoButton, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
        )
        QtWidgets.QApplication.sendEvent(viewport, move)
    qtbot.mouseRelease(viewport, QtCore.Qt.MouseButton.LeftButton, pos=end)


def node_of(graph: ModelGraph, class_name: str) -> str:
    return next(n for n in graph.nodes if graph.layer_of(n).class_name == class_name)


def test_build_a_model_with_the_mouse(qtbot, loader):
    window = open_window(qtbot, loader)
    view = window.current_view()
    graph = window.document.graph
    drop(view, "InputLayer", QtCore.QPointF(0, 0))
    drop(view, "Dense", QtCore.QPointF(300, 0))
    assert [graph.layer_of(n).class_name for n in graph.nodes] == ["InputLayer", "Dense"]
    scene = window.current_scene()
    source, dense = (scene.items_by_id[n] for n in graph.nodes)
    drag_wire(qtbot, view, source, dense)
    settle(qtbot, window)
    assert len(graph.edges()) == 1
    wire = next(iter(scene.wires_by_dst.values()))
    assert isinstance(wire, WireItem) and wire.label == "(None, 8)"
    assert dense.face.params == "288 params"  # Dense(32) on 8 features
    assert window.windowTitle().startswith("untitled *")
    # three steps: two drops and one wire; undoing them all gives the empty model back
    stack = window.document.undo_stack
    assert stack.count() == 3
    for _ in range(3):
        window.undo()
    assert len(graph) == 0 and not scene.items_by_id


def test_an_invalid_wire_says_why_and_is_not_made(qtbot, loader):
    window = open_window(qtbot, loader, Project(ModelGraph()))
    view = window.current_view()
    drop(view, "InputLayer", QtCore.QPointF(0, 0))
    drop(view, "Dense", QtCore.QPointF(300, 0))
    scene = window.current_scene()
    graph = window.document.graph
    source, dense = (scene.items_by_id[n] for n in graph.nodes)
    drag_wire(qtbot, view, source, dense)
    # a second Input into the same Dense port would replace it; into itself is a cycle
    messages = []
    scene.hint.connect(messages.append)
    drag_wire(qtbot, view, dense, dense)
    assert any("cannot take its own output" in m for m in messages)
    assert len(graph.edges()) == 1


def test_parameter_edit_changes_shapes_and_undo_restores_the_exact_project(qtbot, loader):
    project = load_project(EXAMPLES / "digits_cnn.kproj")
    window = open_window(qtbot, loader, project)
    graph = window.document.graph
    before = graph.to_dict()
    conv = node_of(graph, "Conv2D")
    window.current_scene().select_nodes([conv])
    qtbot.wait(10)
    editor = window.inspector.editor("filters")
    spin = editor if isinstance(editor, QtWidgets.QSpinBox) else editor.findChild(QtWidgets.QSpinBox)
    spin.selectAll()
    qtbot.keyClicks(spin, "24")
    qtbot.keyClick(spin, QtCore.Qt.Key.Key_Return)
    settle(qtbot, window)
    layer = graph.layer_of(conv)
    assert layer.config["filters"] == 24
    wire = next(w for w in window.current_scene().wires_by_dst.values() if w.edge.src == conv)
    assert wire.label.endswith("24)")
    assert window.document.undo_stack.count() == 1  # two keystrokes, one step
    window.undo()
    settle(qtbot, window)
    assert graph.to_dict() == before
    assert wire.label.endswith("16)")
    window.redo()
    assert graph.layer_of(conv).config["filters"] == 24


def test_problems_list_selects_the_broken_node(qtbot, loader):
    project = load_project(EXAMPLES / "digits_cnn.kproj")
    window = open_window(qtbot, loader, project)
    graph = window.document.graph
    dense = node_of(graph, "Dense")
    flat = next(n for n in graph.nodes if graph.layer_of(n).class_name == "GlobalAveragePooling2D")
    # rewire the Dense straight onto a 4-D tensor that a Flatten-less head cannot take... use a
    # Reshape with the wrong element count instead: a real Keras error.
    window.current_scene().select_nodes([flat])
    new = window._insert("Reshape", QtCore.QPointF(600, 300))
    layer = graph.layer_of(new[0]).name
    window.document.push(ops.SetParam(layer, "target_shape", [7]), "target")
    settle(qtbot, window)
    window._refresh_panels()
    item = window.problems.item(0)
    assert "Reshape" in item.text() or "reshape" in item.text()
    assert window.current_scene().items_by_id[new[0]].face.errors
    window.current_scene().clearSelection()
    window._problem_clicked(item)
    assert window.current_scene().selected_ids() == [new[0]]
    assert dense in graph.nodes


def test_save_reopen_and_the_dirty_marker(qtbot, loader, tmp_path):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    assert "*" not in window.windowTitle()
    graph = window.document.graph
    dense = node_of(graph, "Dense")
    window.current_scene().select_nodes([dense])
    window.call_again()
    assert "*" in window.windowTitle()
    target = tmp_path / "again.kproj"
    assert window.save_to(target)
    assert "*" not in window.windowTitle()
    assert str(target.resolve()) in window.recent_files()
    reopened = load_project(target)
    assert reopened.graph.to_dict() == graph.to_dict()
    other = open_window(qtbot, loader)
    assert other.open_path(target)
    assert other.document.graph.to_dict() == graph.to_dict()
    # a broken file is reported in one line and the open project stays
    broken = tmp_path / "broken.kproj"
    broken.write_bytes(b"not a zip")
    assert not other.open_path(broken)
    assert "broken.kproj" in other.statusBar().currentMessage()
    assert other.document.graph.to_dict() == graph.to_dict()


def test_copy_paste_across_projects_and_duplicate(qtbot, loader):
    first = open_window(qtbot, loader, load_project(EXAMPLES / "digits_cnn.kproj"))
    graph = first.document.graph
    conv = node_of(graph, "Conv2D")
    downstream = next(iter(graph.successors(conv)))
    first.current_scene().select_nodes([conv, downstream])
    assert first.copy()
    second = open_window(qtbot, loader, Project(ModelGraph("other")))
    pasted = second.paste()
    assert len(pasted) == 2
    other = second.document.graph
    assert [other.layer_of(n).class_name for n in pasted] == [graph.layer_of(conv).class_name, graph.layer_of(downstream).class_name]
    assert len(other.edges()) == 1
    duplicated = first.duplicate()
    assert len(duplicated) == 2 and len(graph) == 10
    assert {graph.node(n).layer for n in duplicated}.isdisjoint({graph.node(conv).layer, graph.node(downstream).layer})
    first.undo()
    assert len(graph) == 8


def test_group_open_and_shared_calls(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    hidden = [n for n in graph.topological_order() if not graph.is_input(n)][:2]
    window.current_scene().select_nodes(hidden)
    window.group()
    settle(qtbot, window)
    sub = next(n for n in graph.nodes if graph.layer_of(n).submodel is not None)
    assert window.document.engine.is_valid()
    window._node_activated(sub)
    assert window.tabs.count() == 2
    inner_scene = window.current_scene()
    assert inner_scene.graph is graph.layer_of(sub).submodel
    assert len(inner_scene.items_by_id) == 3  # its Input and the two grouped layers
    window.tabs.setCurrentIndex(0)
    window.current_scene().select_nodes([sub])
    window.ungroup()
    assert all(graph.layer_of(n).submodel is None for n in graph.nodes)
    assert window.tabs.count() == 1  # the sub-model's tab went with it
    window.undo()
    window.undo()
    settle(qtbot, window)
    assert window.document.engine.is_valid()


def test_quick_add_inserts_wired_to_the_selection(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    last = graph.topological_order()[-1]
    window.current_scene().select_nodes([last])
    window.current_view().request_quick_add()
    window.quick_add.chosen.emit("Dropout")
    settle(qtbot, window)
    new = graph.topological_order()[-1]
    assert graph.layer_of(new).class_name == "Dropout"
    assert graph.inputs_of(new)[0].node == last


def test_recover_after_a_crash(qtbot, loader, tmp_path):
    """A window killed mid-edit leaves a recovery file; the next start offers it back."""
    recovery = tmp_path / "recovery"
    script = textwrap.dedent(
        f"""
        import os
        from PySide6 import QtWidgets
        app = QtWidgets.QApplication([])
        from builder_app.core.project import load_project
        from builder_app.core import ops
        from builder_app.ui.editor.document import KerasLoader
        from builder_app.ui.editor.window import MainWindow
        window = MainWindow(load_project({str(EXAMPLES / "iris_mlp.kproj")!r}), loader=KerasLoader())
        graph = window.document.graph
        node = next(n for n in graph.nodes if graph.layer_of(n).class_name == "Dense")
        window.document.push(ops.RenameLayer(graph.node(node).layer, "survivor"), "rename")
        assert window.autosave()
        os._exit(9)  # a crash: no close, no cleanup
        """
    )
    env = {**os.environ, "BUILDER_APP_RECOVERY_DIR": str(recovery), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    window = open_window(qtbot, loader)
    found = window.recoverable()
    assert len(found) == 1
    assert window.recover(found[0])
    assert "survivor" in window.document.graph.layers
    assert window.document.is_dirty
    assert window.document.path == EXAMPLES / "iris_mlp.kproj"
    assert window.recoverable() == []


def test_a_running_window_is_not_a_crash_and_a_corrupt_recovery_file_is_set_aside(qtbot, loader, tmp_path):
    live = open_window(qtbot, loader, Project(ModelGraph()))
    live.document.push(ops.add_layer(live.document.graph, "InputLayer", {"batch_shape": [None, 3], "dtype": "float32", "sparse": False, "ragged": False, "optional": False}), "add")
    assert live.autosave()
    assert live.recoverable() == []  # its lock is held: a second instance, not a crash
    recovery = tmp_path / "recovery"
    corrupt = recovery / "old-0123456789ab.kproj"
    corrupt.write_bytes(b"PK\x03\x04 garbage")
    found = live.recoverable()
    assert found == [corrupt]
    assert not live.recover(corrupt)
    assert not corrupt.exists() and corrupt.with_suffix(".corrupt").exists()
    message = live.statusBar().currentMessage()  # names the file, what is wrong, and where it went
    assert message.startswith(f"{corrupt.name}: ") and "damaged" in message
    assert message.endswith(f"(moved to {corrupt.with_suffix('.corrupt').name})")


def test_closing_with_unsaved_changes_asks(qtbot, loader, monkeypatch):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    window.current_scene().select_nodes([node_of(graph, "Dense")])
    window.delete()
    asked = []
    buttons = QtWidgets.QMessageBox.StandardButton

    def answer(choice):
        def ask():
            asked.append(choice)
            return choice
        return ask

    monkeypatch.setattr(window, "ask_unsaved", answer(buttons.Cancel))
    assert not window.close()
    assert window.isVisible() and asked == [buttons.Cancel]
    monkeypatch.setattr(window, "ask_unsaved", answer(buttons.Discard))
    assert window.close()


def test_export_from_the_window(qtbot, loader, tmp_path):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    assert window.export_to("python", tmp_path / "iris.py")
    assert "def build_model" in (tmp_path / "iris.py").read_text()
    assert window.export_to("keras", tmp_path / "iris.keras")
    assert window.export_to("png", tmp_path / "iris.png")
    image = QtGui.QImage(str(tmp_path / "iris.png"))
    assert image.width() > 200 and image.height() > 300  # a chain, drawn top to bottom


def test_render_command_draws_the_canvas(tmp_path):
    target = tmp_path / "siamese.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "builder_app", "render", str(EXAMPLES / "siamese_digits.kproj"), "--png", str(target)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    image = QtGui.QImage(str(target))
    assert image.width() > 400 and image.height() > 400
    # the Input nodes' header colour is in the picture
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 3) for y in range(0, image.height(), 3)}
    assert "#f59e0b" in colours
    svg = tmp_path / "siamese.svg"
    done = subprocess.run(
        [sys.executable, "-m", "builder_app", "render", str(EXAMPLES / "siamese_digits.kproj"), "--svg", str(svg)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "<svg" in svg.read_text() and "tower" in svg.read_text()
    odd = tmp_path / "diagram.out"  # --png means PNG, whatever the name says
    done = subprocess.run(
        [sys.executable, "-m", "builder_app", "render", str(EXAMPLES / "iris_mlp.kproj"), "--png", str(odd)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0 and odd.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run(
        [sys.executable, "-m", "builder_app", "render", str(tmp_path / "nope.kproj"), "--png", str(target)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_clipboard_json_is_refused_when_foreign(qtbot, loader):
    window = open_window(qtbot, loader, Project(ModelGraph()))
    QtGui.QGuiApplication.clipboard().setText(json.dumps({"format": "something else"}))
    assert window.paste() == []
    assert "no layers" in window.statusBar().currentMessage()


def test_dragging_a_wire_shows_what_keras_would_say_before_the_drop(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "unet_groupnorm.kproj"))
    graph = window.document.graph
    before = graph.to_dict()
    scene = window.current_scene()
    view = window.current_view()
    view.set_zoom(1.0)
    image = next(n for n in graph.nodes if graph.node(n).layer == "image")
    add = node_of(graph, "Add")
    view.centerOn(scene.items_by_id[add])
    messages = []
    scene.hint.connect(messages.append)
    drag_wire(qtbot, view, scene.items_by_id[image], scene.items_by_id[add], 0)
    assert any(m.startswith("Keras would refuse this: Add needs inputs of one shape") for m in messages)
    settle(qtbot, window)
    assert graph.inputs_of(add)[0].node == image  # allowed: the user may fix the shapes next
    assert scene.items_by_id[add].face.errors
    window.undo()
    assert graph.to_dict() == before


def test_builder_app_opens_the_editor_and_says_so_without_a_display(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "BUILDER_APP_RECOVERY_DIR": str(tmp_path / "recovery")}
    app = subprocess.Popen(
        [sys.executable, "-m", "builder_app", str(EXAMPLES / "iris_mlp.kproj")],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            app.wait(timeout=8)  # the window is up and waiting for the user
    finally:
        app.terminate()
        _, err = app.communicate(timeout=30)
    assert "Traceback" not in err
    bare = {k: v for k, v in env.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "builder_app", str(EXAMPLES / "iris_mlp.kproj")],
        env=bare, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    if sys.platform.startswith("linux"):
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and "no display" in done.stderr


def test_the_training_window_belongs_to_the_open_project(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    window.open_training()
    training = window._training_window
    assert training is not None and training.isVisible() and training.project is window.document.project
    window.open_training()
    assert window._training_window is training  # raised, not opened twice
    training.project_changed.emit()  # e.g. a run's weights restored
    assert window.document.is_dirty and "*" in window.windowTitle()
    window.new_project()  # Discard (the test's answer): the training window goes with its project
    qtbot.waitUntil(lambda: window._training_window is None, timeout=5_000)


def test_a_block_goes_in_as_one_sub_model_in_one_undo_step(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    before = graph.to_dict()
    hidden = next(n for n in graph.topological_order() if graph.layer_of(n).class_name == "Dense")
    window.current_scene().select_nodes([hidden])
    node = window.insert_block_as_submodel("block:MLP block")
    settle(qtbot, window)
    layer = graph.layer_of(node)
    assert layer.name == "mlp_block" and layer.submodel is not None
    assert graph.inputs_of(node)[0].node == hidden
    assert window.document.engine.is_valid()
    assert window.document.result(node).output_shapes == [(None, 64)]
    window.undo()
    assert graph.to_dict() == before
