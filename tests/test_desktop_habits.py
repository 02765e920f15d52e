"""Desktop habits of the editor window: the platform's standard shortcuts (sent as real key
events), a whole-app light or dark theme that every open view follows at once, the Help
menu (guide, shortcuts, examples), the empty canvas's hint, and grouping that asks for the
sub-model's name. pytest-qt, offscreen, real Keras and Qt."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.graph import ModelGraph
from builder_app.core.project import Project, load_project
from builder_app.ui import help as help_pages
from builder_app.ui import theme
from builder_app.ui.editor.naming import SubmodelNameDialog
from builder_app.ui.editor.window import MainWindow
from tests.editor_support import open_window, settle

pytestmark = pytest.mark.usefixtures("isolated", "light_afterwards")

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"
Key = QtCore.Qt.Key
Mod = QtCore.Qt.KeyboardModifier
StandardKey = QtGui.QKeySequence.StandardKey


@pytest.fixture
def light_afterwards():
    """Whatever theme a test chose, the next test starts in the light one."""
    yield
    theme.set_theme("light")


def active(qtbot, window: MainWindow) -> QtWidgets.QWidget:
    """Makes the window the active one (window shortcuts need it) and focuses its canvas."""
    window.activateWindow()
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is window, timeout=5_000)
    view = window.current_view()
    view.setFocus()
    return view


def two_moves(window: MainWindow) -> None:
    graph = window.document.graph
    first, second = graph.topological_order()[:2]
    window.controller.move(graph, {first: (500.0, 500.0)})
    window.controller.move(graph, {second: (800.0, 800.0)})
    assert window.document.undo_stack.index() == 2


def keys_of(action: QtGui.QAction) -> set[str]:
    return {k.toString() for k in action.shortcuts()}


# ------------------------------------------------------------------ shortcuts
def test_ctrl_y_and_ctrl_shift_z_both_redo(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    stack = window.document.undo_stack
    two_moves(window)
    view = active(qtbot, window)
    qtbot.keyClick(view, Key.Key_Z, Mod.ControlModifier)
    qtbot.keyClick(view, Key.Key_Z, Mod.ControlModifier)
    assert stack.index() == 0
    qtbot.keyClick(view, Key.Key_Y, Mod.ControlModifier)
    assert stack.index() == 1
    qtbot.keyClick(view, Key.Key_Z, Mod.ControlModifier | Mod.ShiftModifier)
    assert stack.index() == 2


def test_every_standard_command_has_all_its_platform_keys(qtbot, loader):
    window = open_window(qtbot, loader)
    a = window.actions_by_name
    standard = {
        "new": StandardKey.New, "open": StandardKey.Open, "save": StandardKey.Save, "save_as": StandardKey.SaveAs,
        "close": StandardKey.Close, "quit": StandardKey.Quit, "undo": StandardKey.Undo, "redo": StandardKey.Redo,
        "cut": StandardKey.Cut, "copy": StandardKey.Copy, "paste": StandardKey.Paste, "delete": StandardKey.Delete,
        "select_all": StandardKey.SelectAll, "find": StandardKey.Find, "zoom_in": StandardKey.ZoomIn,
        "zoom_out": StandardKey.ZoomOut, "guide": StandardKey.HelpContents,
    }
    for name, key in standard.items():
        platform = {k.toString() for k in QtGui.QKeySequence.keyBindings(key)}
        assert platform <= keys_of(a[name]), name
        assert keys_of(a[name]), f"{name} has no shortcut"
    assert {"Ctrl+Y", "Ctrl+Shift+Z"} <= keys_of(a["redo"])
    assert "Ctrl+Q" in keys_of(a["quit"]) and "Ctrl+Shift+S" in keys_of(a["save_as"])
    # No key is claimed by two commands of the window (an ambiguous key does nothing).
    owners: dict[str, str] = {}
    for name, action in a.items():
        for key in keys_of(action):
            assert key not in owners, f"{key}: {owners.get(key)} and {name}"
            owners[key] = name


def test_ctrl_a_selects_all_and_ctrl_w_closes_a_sub_models_tab(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "siamese_digits.kproj"))
    graph = window.document.graph
    view = active(qtbot, window)
    qtbot.keyClick(view, Key.Key_A, Mod.ControlModifier)
    assert sorted(window.current_scene().selected_ids()) == sorted(graph.nodes)
    window.current_scene().select_nodes([graph.nodes_of_layer("tower")[0]])
    window.open_selected_submodel()
    assert window.tabs.count() == 2
    view = active(qtbot, window)
    qtbot.keyClick(view, Key.Key_W, Mod.ControlModifier)
    assert window.tabs.count() == 1 and window.isVisible()  # the model's own tab stays, and the window


# ------------------------------------------------------------------ theme
def node_body_colour(window: MainWindow) -> QtGui.QColor:
    """The colour the canvas paints a node's body in, read from the screen (offscreen: a grab)."""
    scene = window.current_scene()
    view = window.current_view()
    item = next(iter(scene.items_by_id.values()))
    view.centerOn(item)
    QtWidgets.QApplication.processEvents()
    spot = view.mapFromScene(item.mapToScene(QtCore.QPointF(item.body().width() - 6, item.body().height() - 4)))
    return view.viewport().grab().toImage().pixelColor(spot)


def test_dark_theme_repaints_every_open_view_at_once_and_is_remembered(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "siamese_digits.kproj"))
    graph = window.document.graph
    window.current_scene().select_nodes([graph.nodes_of_layer("tower")[0]])
    window.open_selected_submodel()  # a second canvas, in its own tab
    window.tabs.setCurrentIndex(0)
    assert node_body_colour(window) == theme.canvas_colors(False).node
    window.actions_by_name["theme_dark"].trigger()
    app = QtWidgets.QApplication.instance()
    assert app.style().name().lower() == "fusion"
    assert app.palette().color(QtGui.QPalette.ColorRole.Window).lightness() < 100
    # Widgets hear of the application's palette by an event, and take it.
    qtbot.waitUntil(lambda: window.inspector.palette().color(QtGui.QPalette.ColorRole.Window).lightness() < 100)
    assert window.palette.palette().color(QtGui.QPalette.ColorRole.Base).lightness() < 100
    for scene in window.scenes:  # both tabs, without reopening anything
        assert scene.colors.dark and scene.backgroundBrush().color() == theme.canvas_colors(True).background
    assert node_body_colour(window) == theme.canvas_colors(True).node
    minimap = window.current_view().minimap
    qtbot.waitUntil(lambda: minimap._pixmap.toImage().pixelColor(1, 1) == theme.canvas_colors(True).background)
    # Remembered: the next window starts dark, its menu says so.
    assert theme.chosen_theme() == "dark"
    other = open_window(qtbot, loader)
    assert other.actions_by_name["theme_dark"].isChecked() and other.current_scene().colors.dark
    window.actions_by_name["theme_light"].trigger()
    assert node_body_colour(window) == theme.canvas_colors(False).node
    assert not other.current_scene().colors.dark
    assert app.palette().color(QtGui.QPalette.ColorRole.Window).lightness() > 150


def test_the_system_theme_follows_the_desktops_scheme(qtbot, loader):
    window = open_window(qtbot, loader)
    window.choose_theme("system")
    app = QtWidgets.QApplication.instance()
    assert not window.current_scene().colors.dark  # the offscreen desktop is light
    hints = QtGui.QGuiApplication.styleHints()
    saved = list(theme._SYSTEM_PALETTE)
    try:
        # A desktop that reports no scheme but hands out a dark palette is a dark desktop.
        theme._SYSTEM_PALETTE[:] = [theme.dark_palette()]
        hints.colorSchemeChanged.emit(QtCore.Qt.ColorScheme.Unknown)
        assert window.current_scene().colors.dark
        assert app.palette().color(QtGui.QPalette.ColorRole.Window).lightness() < 100
        window.choose_theme("light")  # a choice wins over the desktop
        assert not window.current_scene().colors.dark
        hints.colorSchemeChanged.emit(QtCore.Qt.ColorScheme.Unknown)
        assert not window.current_scene().colors.dark
    finally:
        theme._SYSTEM_PALETTE[:] = saved


def test_render_keeps_its_own_colours_whatever_the_theme(qtbot, tmp_path):
    from builder_app.ui.render import render_project

    theme.set_theme("dark")
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    render_project(project, tmp_path / "dark.png", dark=True)
    render_project(project, tmp_path / "light.png")
    assert QtGui.QImage(str(tmp_path / "dark.png")).pixelColor(1, 1) == theme.canvas_colors(True).background
    assert QtGui.QImage(str(tmp_path / "light.png")).pixelColor(1, 1) == theme.canvas_colors(False).background


def test_an_open_training_dashboard_follows_the_theme(qtbot):
    from builder_app.ui.training.dashboard import TrainingDashboard

    assert theme.plot_colors(True).background.lightness() < 100 < theme.plot_colors(False).background.lightness()
    assert theme.plot_colors(True).foreground.lightness() > 150 > theme.plot_colors(False).foreground.lightness()
    theme.set_theme("light")
    dashboard = TrainingDashboard()
    qtbot.addWidget(dashboard)
    dashboard.add_event({"kind": "started", "epochs": 2, "steps_per_epoch": 3})
    dashboard.add_event({"kind": "epoch", "epoch": 0, "logs": {"loss": 1.0, "val_loss": 1.2}})
    dashboard.flush()
    dashboard.show()
    plots = dashboard.findChildren(pg.PlotWidget)
    assert len(plots) >= 4  # batch loss, learning rate, throughput, the loss per epoch
    assert all(p.backgroundBrush().color() == theme.plot_colors(False).background for p in plots)
    theme.set_theme("dark")
    dark = theme.plot_colors(True)
    for plot in plots:
        assert plot.backgroundBrush().color() == dark.background
        item = plot.getPlotItem()
        assert item.getAxis("left").textPen().color().rgb() == dark.muted.rgb()
        assert dark.foreground.name() in item.titleLabel.item.toHtml()
    shot = plots[0].grab().toImage()
    assert shot.pixelColor(shot.width() // 2, shot.height() // 2).lightness() < 100  # the plot itself, dark


# ------------------------------------------------------------------ empty canvas
def hint_pixels(window: MainWindow) -> int:
    """Pixels in the canvas's middle drawn in (about) the hint's colour."""
    view = window.current_view()
    QtWidgets.QApplication.processEvents()
    image = view.viewport().grab().toImage()
    muted = window.current_scene().colors.muted
    middle = QtCore.QRect(image.width() // 4, image.height() // 3, image.width() // 2, image.height() // 3)
    count = 0
    for y in range(middle.top(), middle.bottom(), 2):
        for x in range(middle.left(), middle.right(), 2):
            c = image.pixelColor(x, y)
            if abs(c.red() - muted.red()) + abs(c.green() - muted.green()) + abs(c.blue() - muted.blue()) < 40:
                count += 1
    return count


def test_an_empty_canvas_says_how_to_start_until_a_node_is_there(qtbot, loader):
    window = open_window(qtbot, loader, Project(ModelGraph("model")))
    view = window.current_view()
    window.current_view().minimap.hide()
    assert "Tab" in view.empty_hint() and "Help → Examples" in view.empty_hint()
    assert hint_pixels(window) > 30
    graph = window.document.graph
    window.controller.insert(graph, "Dense", (4000.0, 4000.0))  # far away: the middle stays empty canvas
    assert graph.nodes and view.empty_hint() == ""
    assert hint_pixels(window) == 0
    window.undo()
    assert not graph.nodes and view.empty_hint()
    assert hint_pixels(window) > 30


# ------------------------------------------------------------------ grouping
def test_grouping_asks_for_the_sub_models_name(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    hidden = list(graph.nodes_of_layer("hidden_1")) + list(graph.nodes_of_layer("hidden_2"))
    asked = []

    def answer(graph_asked, ids, default):
        asked.append((graph_asked, sorted(ids), default))
        return "encoder"

    window.ask_submodel_name = answer
    window.current_scene().select_nodes(hidden)
    window.group()
    settle(qtbot, window)
    assert asked == [(graph, sorted(hidden), "hidden")]  # what the names share, proposed
    assert graph.layer("encoder").submodel is not None and "functional" not in graph.layers
    assert window.document.engine.is_valid()


def test_cancelling_the_name_groups_nothing(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = window.document.graph
    before = graph.to_dict()
    window.ask_submodel_name = lambda graph, ids, default: None
    window.current_scene().select_nodes(list(graph.nodes_of_layer("hidden_1")))
    window.group()
    assert graph.to_dict() == before and window.document.undo_stack.count() == 0


def test_the_proposed_name_is_free_and_says_something(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph, controller = window.document.graph, window.controller

    def ids(*layers):
        return [n for layer in layers for n in graph.nodes_of_layer(layer)]

    assert controller.submodel_name(graph, ids("hidden_1", "hidden_2")) == "hidden"
    assert controller.submodel_name(graph, ids("hidden_1", "dropout")) == "submodel"  # nothing shared
    assert controller.submodel_name(graph, ids("hidden_1")) == "submodel"  # one layer: its own name is taken
    window.current_scene().select_nodes(ids("dropout"))
    window.group()  # takes "submodel" (the test windows accept the proposal)
    assert "submodel" in graph.layers
    assert controller.submodel_name(graph, ids("hidden_1")) == "submodel_1"


def test_the_name_dialog_accepts_only_a_free_keras_layer_name(qtbot, loader):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph, controller = window.document.graph, window.controller
    dialog = SubmodelNameDialog("hidden", lambda name: controller.submodel_name_problem(graph, name), 2, window)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.ok_button().isEnabled() and dialog.field.selectedText() == "hidden"
    for bad, why in (("hidden_1", "already exists"), ("a/b", "'/'"), ("", "non-empty"), (" x", "spaces")):
        dialog.field.setText(bad)
        assert not dialog.ok_button().isEnabled(), bad
        assert why in dialog.reason.text(), (bad, dialog.reason.text())
        qtbot.keyClick(dialog.field, Key.Key_Return)
        assert dialog.isVisible()  # Enter does not accept a bad name either
    dialog.field.setText("encoder")
    assert dialog.ok_button().isEnabled() and not dialog.reason.text()
    qtbot.keyClick(dialog.field, Key.Key_Return)
    assert dialog.result() == QtWidgets.QDialog.DialogCode.Accepted and dialog.name() == "encoder"


# ------------------------------------------------------------------ help
def test_help_has_a_guide_the_shortcuts_and_the_examples(qtbot, loader):
    window = open_window(qtbot, loader)
    guide = window.show_guide()
    qtbot.addWidget(guide)
    text = guide.text()
    for heading in ("Build a model", "Fix a shape error", "Train", "Export", "Import a model"):
        assert heading in text, heading
    table = window.show_shortcuts()
    qtbot.addWidget(table)
    text = table.text()
    assert "Redo" in text and "Ctrl+Y" in text and "Ctrl+Shift+Z" in text and "Tab" in text
    rows = {(r.menu, r.command): r.keys for r in help_pages.shortcut_rows(window)}
    assert rows[("Edit", "Undo")].startswith("Ctrl+Z")
    assert rows[("View", "Fit to View")] == "F"
    # Read from the actions as they are: a changed shortcut shows at once.
    window.actions_by_name["layout"].setShortcut(QtGui.QKeySequence("Ctrl+Shift+L"))
    rows = {(r.menu, r.command): r.keys for r in help_pages.shortcut_rows(window)}
    assert rows[("View", "Auto Layout")] == "Ctrl+Shift+L"
    (examples,) = [m for m in window.menuBar().findChildren(QtWidgets.QMenu) if m.title() == "&Examples"]
    assert {a.text() for a in examples.actions()} == {p.stem for p in EXAMPLES.glob("*.kproj")}


def test_an_example_opens_as_a_new_unsaved_project(qtbot, loader):
    window = open_window(qtbot, loader)
    example = EXAMPLES / "digits_cnn.kproj"
    before = example.read_bytes()
    window.actions_by_name["example_digits_cnn"].trigger()
    settle(qtbot, window)
    assert window.document.path is None  # Save asks where: the shipped example stays as it is
    assert set(window.document.graph.layers) == set(load_project(example).graph.layers)
    assert window.document.engine.is_valid()
    assert example.read_bytes() == before
