"""The editor window: palette, canvas tabs, inspector, problems, summary, files and recovery.

Widgets are touched from the GUI thread only. Keras loads on a background thread
(:class:`~builder_app.ui.editor.document.KerasLoader`) and announces itself with a queued
signal; until then the canvas works and shapes say nothing.

Autosave writes the project (a project file, never a pickle) to a recovery file
every few seconds while there are unsaved changes. A :class:`QLockFile` beside it
tells a second running window apart from one that crashed: a recovery file whose
lock nobody holds is offered back on the next start.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app import __version__
from builder_app.core.clipboard import copy_nodes
from builder_app.core.editing import needs_layout
from builder_app.core.graph import SUBMODEL_CLASS, ModelGraph
from builder_app.core.project import (
    PROJECT_SUFFIX,
    Project,
    ProjectLoadError,
    load_project,
    save_project,
)
from builder_app.exporters.registry import EXPORTERS
from builder_app.ui import collector, theme
from builder_app.ui import help as help_pages
from builder_app.ui.editor.canvas import GraphScene
from builder_app.ui.editor.controller import EditorController, Notice, Refusal
from builder_app.ui.editor.document import Document, KerasLoader
from builder_app.ui.editor.exporting import DIAGRAM_EXPORTS, Exports, export_kinds
from builder_app.ui.editor.files import PROJECT_FILTER, ProjectFiles, settings
from builder_app.ui.editor.inspector import Inspector
from builder_app.ui.editor.naming import SubmodelNameDialog
from builder_app.ui.editor.palette import Palette, QuickAdd
from builder_app.ui.editor.recovery import (
    RecoveryOffer,
    RecoverySlot,
    discard,
    drop_lock,
    load_recovered,
    read_offer,
    recoverable,
    recovery_key,
    sweep,
    take_lock,
)
from builder_app.ui.editor.summary import SummaryModel
from builder_app.ui.editor.view import GraphView, Minimap

AUTOSAVE_MS = 5_000
#: Below this zoom the canvas's names get too small to read (about 8 px): Fit collapses blocks.
READABLE_ZOOM = 0.63
CLIPBOARD_MIME = "application/x-builder-app-layers"

_KEYS = QtGui.QKeySequence.StandardKey
#: Keys a command answers to besides its platform's standard ones, where the platform lacks
#: them: Redo is Ctrl+Y and Ctrl+Shift+Z off macOS; some platforms give Quit or Save As no key.
EXTRA_BINDINGS: dict[QtGui.QKeySequence.StandardKey, tuple[str, ...]] = {
    _KEYS.Redo: ("Ctrl+Shift+Z",) if sys.platform == "darwin" else ("Ctrl+Y", "Ctrl+Shift+Z"),
    _KEYS.Quit: ("Ctrl+Q",),
    _KEYS.Close: ("Ctrl+W",),
    _KEYS.SaveAs: ("Ctrl+Shift+S",),
    _KEYS.ZoomIn: ("Ctrl++", "Ctrl+="),
    _KEYS.ZoomOut: ("Ctrl+-",),
    _KEYS.HelpContents: ("F1",),
}


def key_bindings(shortcut) -> list[QtGui.QKeySequence]:
    """The keys of a shortcut: all of a standard key's platform bindings (plus :data:`EXTRA_BINDINGS`), or the one given.

    ``QKeySequence(StandardKey.Redo)`` would keep only the platform's first binding.
    """
    if not isinstance(shortcut, QtGui.QKeySequence.StandardKey):
        return [QtGui.QKeySequence(shortcut)]
    keys = [k for k in QtGui.QKeySequence.keyBindings(shortcut) if not k.isEmpty()]
    for extra in EXTRA_BINDINGS.get(shortcut, ()):
        sequence = QtGui.QKeySequence(extra)
        if sequence not in keys:
            keys.append(sequence)
    return keys

class EditorWindow(ProjectFiles, Exports, QtWidgets.QMainWindow):
    """One editor window over one :class:`Document`: its tabs, docks, menus and status bar.

    Every edit gesture goes to the document's controller; the File menu's commands
    live in :class:`ProjectFiles`, the exports in :class:`Exports`, autosave and
    recovery in a :class:`RecoverySlot`.
    """

    def __init__(self, project: Project | None = None, loader: KerasLoader | None = None):
        super().__init__()
        self.setWindowIcon(theme.icon("app"))
        self.document: Document | None = None
        self.scenes: list[GraphScene] = []
        self.recovery = RecoverySlot()
        self._training_window = None
        self._build_widgets()
        self._build_actions()
        self.loader = loader or KerasLoader(self)
        self.loader.ready.connect(self._keras_ready)
        self.loader.failed.connect(self._keras_failed)
        self.set_document(Document(project))
        self._autosave_timer = QtCore.QTimer(self, interval=AUTOSAVE_MS)
        self._autosave_timer.timeout.connect(lambda: self.autosave(wait=False))
        self._autosave_timer.start()
        self.resize(1500, 920)
        self._docks_sized = False
        if loader is None:  # after the first paint: the import holds the GIL at times
            QtCore.QTimer.singleShot(0, self.loader.start)
        elif loader.is_ready:
            QtCore.QTimer.singleShot(0, self._keras_ready)

    # ================================================================ layout
    def _build_widgets(self) -> None:
        self.tabs = QtWidgets.QTabWidget(documentMode=True, tabsClosable=True, movable=False)
        self.tabs.tabCloseRequested.connect(self._close_tab)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.setCentralWidget(self.tabs)
        self.setDockNestingEnabled(True)

        self.palette = Palette()
        self.palette.activated.connect(self._insert_at_centre)
        self.palette.tree.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.palette.tree.customContextMenuRequested.connect(self._palette_menu)
        self._dock("Layers", self.palette, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.quick_add = QuickAdd(self)
        self.quick_add.chosen.connect(self._quick_add_chosen)
        self._quick_add_at: QtCore.QPointF | None = None

        self.problems = QtWidgets.QListWidget()
        self.problems.setWordWrap(True)
        self.problems.itemClicked.connect(self._problem_clicked)
        self.problems.itemActivated.connect(self._problem_clicked)
        self.problems.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.problems.customContextMenuRequested.connect(self._problem_menu)
        self.problems_dock = self._dock("Problems", self.problems, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)

        summary = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(summary)
        column.setContentsMargins(4, 4, 4, 4)
        self.summary_model = SummaryModel(self)
        self.summary_table = QtWidgets.QTableView()
        self.summary_table.setModel(self.summary_model)
        self.summary_table.horizontalHeader().setStretchLastSection(True)
        self.summary_table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Interactive)
        for index, width in enumerate((240, 180, 90, 80, 90)):
            self.summary_table.setColumnWidth(index, width)
        self.summary_table.verticalHeader().hide()
        self.summary_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.summary_table.clicked.connect(self._summary_clicked)
        self.summary_totals = QtWidgets.QLabel()
        column.addWidget(self.summary_table)
        column.addWidget(self.summary_totals)
        self.summary_dock = self._dock("Model summary", summary, QtCore.Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.problems_dock, self.summary_dock)
        self.problems_dock.raise_()

        self.status_keras = QtWidgets.QLabel("Loading TensorFlow…")
        self.status_device = QtWidgets.QLabel("")
        self.status_zoom = QtWidgets.QLabel("100%")
        self.status_params = QtWidgets.QLabel("")
        bar = self.statusBar()
        for widget in (self.status_params, self.status_zoom, self.status_device, self.status_keras):
            bar.addPermanentWidget(widget)
        self._summary_timer = QtCore.QTimer(self, singleShot=True, interval=120)
        self._summary_timer.timeout.connect(self._refresh_panels)

    def _dock(self, title: str, widget: QtWidgets.QWidget, area) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, slot, shortcut=None, icon: str | None = None, tip: str = "") -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut is not None:
            action.setShortcuts(key_bindings(shortcut))
        if icon:
            action.setIcon(theme.icon(icon))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        keys = QtGui.QKeySequence.StandardKey
        a = self.actions_by_name = {}
        a["new"] = self._action("&New", self.new_project, keys.New, "new", "Start a new model")
        a["open"] = self._action("&Open…", self.open_dialog, keys.Open, "open", "Open a project")
        a["save"] = self._action("&Save", self.save, keys.Save, "save", "Save the project")
        a["save_as"] = self._action("Save &As…", self.save_as, keys.SaveAs)
        a["import"] = self._action("&Import Keras Model…", self.import_dialog, "Ctrl+I", "import", "Import a .keras, .h5 or model JSON file")
        a["close"] = self._action("&Close", self.close_current, keys.Close, None, "Close the sub-model's tab, or the window")
        a["quit"] = self._action("&Quit", self.close, keys.Quit)
        # One action per model exporter of the registry, then the diagram's two.
        for kind, label in export_kinds():
            a[f"export_{kind}"] = self._action(label, lambda _=False, k=kind: self.export_dialog(k))

        a["undo"] = self._action("&Undo", self.undo, keys.Undo, "undo")
        a["redo"] = self._action("&Redo", self.redo, keys.Redo, "redo")
        a["cut"] = self._action("Cu&t", self.cut, keys.Cut)
        a["copy"] = self._action("&Copy", self.copy, keys.Copy)
        a["paste"] = self._action("&Paste", self.paste, keys.Paste)
        a["duplicate"] = self._action("D&uplicate", self.duplicate, "Ctrl+D")
        a["delete"] = self._action("&Delete", self.delete, keys.Delete, "delete")
        a["select_all"] = self._action("Select &All", self.select_all, keys.SelectAll)
        a["quick_add"] = self._action("&Quick Add Layer…", lambda: self.current_view().request_quick_add(), None)
        a["quick_add"].setShortcutContext(QtCore.Qt.ShortcutContext.WidgetShortcut)
        # Ctrl+F itself is the canvas's (GraphView takes it; elsewhere it searches the palette).
        a["find"] = self._action("&Find Layer…", lambda: self.current_view().open_find(), keys.Find)
        a["find"].setShortcutContext(QtCore.Qt.ShortcutContext.WidgetShortcut)

        a["call_again"] = self._action("Call &Again (Share Weights)", self.call_again, "Ctrl+Shift+D", "share")
        a["unshare"] = self._action("&Unshare", self.unshare)
        a["group"] = self._action("&Group as Sub-model", self.group, "Ctrl+G", "submodel")
        a["ungroup"] = self._action("U&ngroup Sub-model", self.ungroup, "Ctrl+Shift+G")
        a["open_submodel"] = self._action("&Open Sub-model", self.open_selected_submodel, "Ctrl+Return")
        a["extract"] = self._action("&Extract Selection as Model…", self.extract_model)
        a["set_outputs"] = self._action("Set Selection as Model &Outputs", self.set_outputs)

        a["fit"] = self._action("&Fit to View", self.fit_readable, "F", "fit", "Fit the model in view, collapsing its blocks if names would be unreadable")
        a["zoom_in"] = self._action("Zoom &In", lambda: self._zoom(1.25), keys.ZoomIn, "zoom-in")
        a["zoom_out"] = self._action("Zoom &Out", lambda: self._zoom(0.8), keys.ZoomOut, "zoom-out")
        a["zoom_reset"] = self._action("Actual &Size", lambda: self.current_view().set_zoom(1.0), "Ctrl+0")
        a["layout"] = self._action("Auto &Layout", self.auto_layout, "Ctrl+L", "layout", "Lay the model out again, in its direction")
        directions = QtGui.QActionGroup(self)
        for key, label in (("TB", "&Top to Bottom"), ("LR", "&Left to Right")):
            action = a[f"direction_{key.lower()}"] = self._action(label, lambda _=False, d=key: self.set_direction(d))
            action.setCheckable(True)
            directions.addAction(action)
        a["blocks_from_names"] = self._action(
            "Blocks from Layer &Names", self.blocks_from_names, None, None, "Group the nodes into display blocks by their layer names"
        )
        a["make_block"] = self._action("&Make Display Block", self.make_block, "Ctrl+B", None, "Show the selected nodes as one block")
        a["collapse"] = self._action("&Collapse Block", lambda: self.collapse_selection(True), "Ctrl+[")
        a["expand"] = self._action("&Expand Block", lambda: self.collapse_selection(False), "Ctrl+]")
        a["collapse_all"] = self._action("Collapse &All Blocks", lambda: self.collapse_all(True))
        a["expand_all"] = self._action("E&xpand All Blocks", lambda: self.collapse_all(False))
        a["remove_blocks"] = self._action("&Remove Display Blocks", self.remove_blocks)
        a["block_to_submodel"] = self._action("Convert Block to &Sub-model", self.block_to_submodel)
        heat = QtGui.QActionGroup(self)
        for key, label in ((None, "&None"), ("flops", "&Multiply-accumulates"), ("activation_bytes", "&Activation Memory")):
            action = a[f"heat_{key or 'none'}"] = self._action(label, lambda _=False, k=key: self.set_heat(k))
            action.setCheckable(True)
            action.setChecked(key is None)
            heat.addAction(action)
        a["snap"] = self._action("&Snap to Grid", self._toggle_snap)
        a["snap"].setCheckable(True)
        a["snap"].setChecked(True)
        a["minimap"] = self._action("&Overview Map", self._toggle_minimap)
        a["minimap"].setCheckable(True)
        a["minimap"].setChecked(Minimap.remembered_visible())
        themes = QtGui.QActionGroup(self)
        chosen = theme.chosen_theme()
        for key, label in (("system", "&System"), ("light", "&Light"), ("dark", "&Dark")):
            action = a[f"theme_{key}"] = self._action(label, lambda _=False, t=key: self.choose_theme(t))
            action.setCheckable(True)
            action.setChecked(key == chosen)
            themes.addAction(action)

        a["validate"] = self._action("&Validate", self._show_problems, "Ctrl+Shift+V")
        a["train"] = self._action("&Train…", self.open_training, "Ctrl+T", "train", "Train the model in a window with a live dashboard")
        a["inspect"] = self._action(
            "&Inspect Activations…", self.open_activations, "Ctrl+Shift+I", None, "What the selected nodes compute on a sample"
        )
        a["sweep"] = self._action("S&weep…", self.open_sweep, tip="Search hyperparameters (Optuna): each trial a training run")
        a["trust_code"] = self._action(
            "Trust &Custom Code…", self.trust_custom_code, tip="Run the project's custom layer code (it asks first)"
        )
        a["new_custom_layer"] = self._action(
            "&New Custom Layer…", self.new_custom_layer, tip="Write a layer class, check it, add it to the palette"
        )

        # The canvas shortcuts that would fire while typing in the inspector belong to the view.
        for name in ("delete", "fit"):
            a[name].setShortcutContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.tabs.addAction(a[name])

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([a["new"], a["open"]])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addActions([a["save"], a["save_as"]])
        file_menu.addSeparator()
        file_menu.addAction(a["import"])
        export_menu = file_menu.addMenu("&Export")
        export_menu.setIcon(theme.icon("export"))
        export_menu.addActions([a[f"export_{k}"] for k in EXPORTERS])
        export_menu.addSeparator()
        export_menu.addActions([a[f"export_{k}"] for k in DIAGRAM_EXPORTS])
        file_menu.addSeparator()
        file_menu.addActions([a["close"], a["quit"]])
        edit = menu.addMenu("&Edit")
        edit.addActions([a["undo"], a["redo"]])
        edit.addSeparator()
        edit.addActions([a["cut"], a["copy"], a["paste"], a["duplicate"], a["delete"]])
        edit.addSeparator()
        edit.addActions([a["select_all"], a["quick_add"], a["find"]])
        layer = menu.addMenu("&Layer")
        layer.addActions([a["call_again"], a["unshare"]])
        layer.addSeparator()
        layer.addActions([a["group"], a["ungroup"], a["open_submodel"], a["extract"]])
        layer.addSeparator()
        layer.addAction(a["set_outputs"])
        view = menu.addMenu("&View")
        view.addActions([a["fit"], a["zoom_in"], a["zoom_out"], a["zoom_reset"], a["layout"]])
        direction_menu = view.addMenu("Layout &Direction")
        direction_menu.addActions([a["direction_tb"], a["direction_lr"]])
        direction_menu.aboutToShow.connect(self._check_direction)
        blocks_menu = view.addMenu("&Blocks")
        blocks_menu.addActions([a["blocks_from_names"], a["make_block"], a["remove_blocks"]])
        blocks_menu.addSeparator()
        blocks_menu.addActions([a["collapse"], a["expand"], a["collapse_all"], a["expand_all"]])
        blocks_menu.addSeparator()
        blocks_menu.addAction(a["block_to_submodel"])
        heat_menu = view.addMenu("Cost &Colouring")
        heat_menu.addActions([a["heat_none"], a["heat_flops"], a["heat_activation_bytes"]])
        view.addSeparator()
        view.addActions([a["snap"], a["minimap"]])
        theme_menu = view.addMenu("&Theme")
        theme_menu.addActions([a["theme_system"], a["theme_light"], a["theme_dark"]])
        view.addSeparator()
        for dock in self.findChildren(QtWidgets.QDockWidget):
            view.addAction(dock.toggleViewAction())
        model = menu.addMenu("&Model")
        model.addActions([a["validate"], a["train"], a["sweep"], a["inspect"]])
        model.addSeparator()
        model.addActions([a["new_custom_layer"], a["trust_code"]])
        help_menu = menu.addMenu("&Help")
        a["guide"] = self._action("&User Guide", self.show_guide, keys.HelpContents, None, "How to build, fix, train, export and import a model")
        a["shortcuts"] = self._action("&Keyboard Shortcuts", self.show_shortcuts)
        help_menu.addActions([a["guide"], a["shortcuts"]])
        examples_menu = help_menu.addMenu("&Examples")
        for path in help_pages.examples():
            a[f"example_{path.stem}"] = self._action(
                path.stem, lambda _=False, p=path: self.open_example(p), None, None, f"Open {path.name} as a new project"
            )
            examples_menu.addAction(a[f"example_{path.stem}"])
        help_menu.addSeparator()
        help_menu.addAction(self._action("&About builder-app", self._about))

        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setIconSize(QtCore.QSize(20, 20))
        bar.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonIconOnly)
        bar.addActions([a["new"], a["open"], a["save"]])
        bar.addSeparator()
        bar.addActions([a["undo"], a["redo"]])
        bar.addSeparator()
        bar.addActions([a["zoom_out"], a["zoom_in"], a["fit"], a["layout"]])
        bar.addSeparator()
        bar.addActions([a["group"], a["call_again"]])
        bar.addSeparator()
        bar.addAction(a["train"])
        export_button = QtWidgets.QToolButton()
        export_button.setIcon(theme.icon("export"))
        export_button.setToolTip("Export")
        export_button.setMenu(export_menu)
        export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        bar.addWidget(export_button)

    # ============================================================= documents
    def set_document(self, document: Document) -> None:
        """Shows ``document`` (closing the previous one's tabs and recovery file)."""
        old = self.document
        if self._training_window is not None:  # it trains the project being closed
            self._training_window.close()
        if old is not None:
            while self.tabs.count():
                self._remove_tab(0)
            self._release_recovery()
            old.close()
            old.deleteLater()
        self.document = document
        document.setParent(self)
        document.dirty_changed.connect(self._update_title)
        document.controller.refused.connect(self._refused)
        document.controller.noticed.connect(self._noticed)
        document.computing.connect(self._computing)
        document.shapes_updated.connect(lambda _changes: self._summary_timer.start())
        document.graph_changed.connect(self._graph_changed)
        document.undo_stack.canUndoChanged.connect(self.actions_by_name["undo"].setEnabled)
        document.undo_stack.canRedoChanged.connect(self.actions_by_name["redo"].setEnabled)
        self.actions_by_name["undo"].setEnabled(False)
        self.actions_by_name["redo"].setEnabled(False)
        self.inspector = Inspector(document)
        if getattr(self, "_inspector_dock", None) is None:
            self._inspector_dock = self._dock("Inspector", self.inspector, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        else:
            previous = self._inspector_dock.widget()
            self._inspector_dock.setWidget(self.inspector)
            previous.deleteLater()
        self.open_graph(document.graph, document.graph.name)
        self._claim_recovery()
        self.recovery.mark_written(self._undo_state())
        self._update_title()
        self._refresh_panels()
        QtCore.QTimer.singleShot(0, lambda: self.current_view() and self.current_view().show_start())
        if self.loader is not None and self.loader.is_ready:
            # Shapes after the first paint: a big model shows at once, its shapes a moment later.
            QtCore.QTimer.singleShot(0, document.attach_engine)
        QtCore.QTimer.singleShot(0, self._run_trusted_code)  # code (or a Lambda) trusted before

    def open_graph(self, graph: ModelGraph, title: str) -> GraphView:
        """Shows ``graph`` (the model or a sub-model's graph) in a tab, reusing an open one."""
        for i in range(self.tabs.count()):
            view = self.tabs.widget(i)
            if view.graph_scene.graph is graph:
                self.tabs.setCurrentIndex(i)
                return view
        scene = GraphScene(self.document, graph)  # in View → Theme's colours, following it
        scene.snap = self.actions_by_name["snap"].isChecked()
        scene.selected_node.connect(self._selection_changed)
        scene.node_activated.connect(self._node_activated)
        scene.hint.connect(self._hint)
        scene.selectionChanged.connect(self._update_actions)
        view = GraphView(scene)
        view.minimap.setVisible(self.actions_by_name["minimap"].isChecked())
        view.quick_add_requested.connect(self._open_quick_add)
        view.zoom_changed.connect(lambda z: self.status_zoom.setText(f"{z * 100:.0f}%"))
        view.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._context_menu)
        self.scenes.append(scene)
        index = self.tabs.addTab(view, title)
        if index == 0:
            self.tabs.tabBar().setTabButton(0, QtWidgets.QTabBar.ButtonPosition.RightSide, None)
        self.tabs.setCurrentIndex(index)
        QtCore.QTimer.singleShot(0, view.fit)
        return view

    def _graph_changed(self, change) -> None:
        self._summary_timer.start()
        if self.tabs.count() > 1 and change.kind in ("remove_node", "set_node_layer", "add_node"):
            self._prune_tabs()

    def _prune_tabs(self) -> None:
        """Closes the tabs of sub-models the model no longer holds (deleted, ungrouped)."""
        alive: set[int] = set()
        stack = [self.document.graph]
        while stack:
            graph = stack.pop()
            alive.add(id(graph))
            stack.extend(layer.submodel for layer in graph.layers.values() if layer.submodel is not None)
        for index in range(self.tabs.count() - 1, 0, -1):
            if id(self.tabs.widget(index).graph_scene.graph) not in alive:
                self._remove_tab(index)

    def _remove_tab(self, index: int) -> None:
        view = self.tabs.widget(index)
        self.tabs.removeTab(index)
        scene = view.graph_scene
        scene.close()
        self.scenes.remove(scene)
        view.deleteLater()
        scene.deleteLater()

    def _close_tab(self, index: int) -> None:
        if index > 0:
            self._remove_tab(index)

    def _tab_changed(self, _index: int) -> None:
        self._selection_changed(None)
        self._update_actions()
        self._refresh_panels()

    def current_view(self) -> GraphView:
        return self.tabs.currentWidget()  # type: ignore[return-value]

    def current_scene(self) -> GraphScene:
        return self.current_view().graph_scene

    @property
    def controller(self) -> EditorController:
        """Where every edit gesture of this window goes (the open document's controller)."""
        return self.document.controller

    @property
    def graph(self) -> ModelGraph:
        """The graph of the current tab."""
        return self.current_scene().graph

    # ================================================================= Keras
    def _keras_ready(self) -> None:
        import keras

        self.palette.populate()
        self.quick_add.populate()
        if self.document is not None:
            QtCore.QTimer.singleShot(0, self._run_trusted_code)
        self.status_keras.setText(f"Keras {keras.__version__} · {keras.backend.backend()}")
        self.status_device.setText(_device_name())
        self.status_device.setToolTip(_training_backends_text())
        if self.document is not None:
            self.document.attach_engine()
        for scene in self.scenes:
            scene.refresh_all()
        # The palette and the inspector worked from the cached catalog already: nothing typed is lost.
        self.inspector.keras_ready(*self._selected_for_inspector())

    def _training_started(self, event: dict) -> None:
        """The status bar names what the training child sees (its backend and devices) while it trains."""
        self.status_device.setText(f"training on {event.get('device', '')}")

    def _keras_failed(self, message: str) -> None:
        self.status_keras.setText("Keras unavailable")
        self.status_keras.setToolTip(message)
        self.statusBar().showMessage(message)

    # ================================================================ panels
    def _update_title(self, *_args) -> None:
        self.setWindowTitle(f"{self.document.title()} — builder-app")

    def _computing(self, busy: bool) -> None:
        if busy:
            self.statusBar().showMessage(f"Computing the shapes of {len(self.document.graph):,} layers…")
        else:  # the panels follow on shapes_updated
            self.statusBar().clearMessage()

    def _refused(self, refusal: Refusal | str) -> None:
        message = refusal.message if isinstance(refusal, Refusal) else refusal
        self.statusBar().showMessage(f"Not done: {message}", 8000)

    def _noticed(self, notice: Notice) -> None:
        """What a done edit did beyond the asked; an accidental model output gets Undo and Keep buttons.

        The buttons stay while the notice is the status bar's message and the edit is
        the last one on the undo stack; any other message or edit takes them away.
        """
        bar = self.statusBar()
        if getattr(self, "output_actions", None) is None:
            self.output_actions = QtWidgets.QWidget()
            row = QtWidgets.QHBoxLayout(self.output_actions)
            row.setContentsMargins(0, 0, 0, 0)
            self.output_undo = QtWidgets.QPushButton("Undo", flat=True, toolTip="Undo the edit")
            self.output_keep = QtWidgets.QPushButton(
                "Keep as output", flat=True, toolTip="Make the model's outputs as they are now explicit"
            )
            row.addWidget(self.output_undo)
            row.addWidget(self.output_keep)
            bar.insertPermanentWidget(0, self.output_actions)
            self.output_actions.hide()
            self.output_undo.clicked.connect(lambda: self._answer_output_notice(keep=False))
            self.output_keep.clicked.connect(lambda: self._answer_output_notice(keep=True))

            def follow(text: str) -> None:
                if text != self._output_notice[1]:
                    self.output_actions.hide()

            bar.messageChanged.connect(follow)
        self._output_notice = (notice, notice.message, self.document.undo_stack, self.document.undo_stack.index())
        bar.showMessage(notice.message, 15000)
        self.output_actions.setVisible(bool(notice.outputs))

    def _answer_output_notice(self, keep: bool) -> None:
        notice, _, stack, index = self._output_notice
        self.output_actions.hide()
        self.statusBar().clearMessage()
        if stack is not self.document.undo_stack or stack.index() != index:
            return  # another edit came since: the answer no longer applies to it
        if keep:
            self.controller.keep_outputs(notice.graph)
        else:
            stack.undo()

    def trust_custom_code(self) -> bool:
        from builder_app.ui.editor.custom_layers import offer_trust

        return offer_trust(self)

    def new_custom_layer(self):
        from builder_app.ui.editor.custom_layers import CustomLayerEditor

        editor = CustomLayerEditor(self)
        editor.show()
        return editor

    def _run_trusted_code(self) -> None:
        """Code trusted before runs once Keras is here; untrusted code is named in the status bar."""
        from builder_app.ui.editor.custom_layers import activate_trusted

        if self.document is not None and self.loader is not None and self.loader.is_ready:
            problem = activate_trusted(self)
            if problem:
                self.statusBar().showMessage(problem, 15000)

    def _hint(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(text, 6000)
        else:
            self.statusBar().clearMessage()

    def _selected_for_inspector(self) -> tuple[ModelGraph | None, str | None]:
        if not self.tabs.count():
            return None, None
        ids = self.current_scene().selected_ids()
        return (self.graph, ids[0]) if len(ids) == 1 else (self.graph, None)

    def _selection_changed(self, _node_id) -> None:
        graph, node_id = self._selected_for_inspector()
        self.inspector.show_node(graph, node_id)

    def _update_actions(self) -> None:
        view = self.tabs.currentWidget()
        if not isinstance(view, GraphView) or not isinstance(view.scene(), GraphScene):
            return  # no tab, or Qt is tearing the window down
        ids = self.current_scene().selected_ids()
        a = self.actions_by_name
        graph = self.graph
        one = len(ids) == 1
        for name in ("cut", "copy", "duplicate", "delete", "group", "extract", "set_outputs"):
            a[name].setEnabled(bool(ids) or (name == "delete" and bool(self.current_scene().selected_edges())))
        a["call_again"].setEnabled(one and not graph.is_input(ids[0]))
        a["unshare"].setEnabled(one and len(graph.nodes_of_layer(graph.node(ids[0]).layer)) > 1)
        is_sub = one and graph.layer_of(ids[0]).class_name == SUBMODEL_CLASS
        a["ungroup"].setEnabled(is_sub)
        a["open_submodel"].setEnabled(is_sub)

    def _refresh_panels(self) -> None:
        """The problems list, the summary table and the parameter totals."""
        document = self.document
        if document is None or not self.tabs.count():
            return
        graph = self.graph
        engine = document.engine_for(graph)
        self.problems.clear()
        self.summary_model.show(graph, engine)
        if engine is None:
            self.status_params.setText("")
            waiting = "are being computed" if document.is_computing else "appear when Keras has loaded"
            self.summary_totals.setText(f"Shapes {waiting}.")
            return
        for node_id, message in engine.errors():
            where = graph.label(node_id) if node_id else "model"
            item = QtWidgets.QListWidgetItem(f"{where}: {message}")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, node_id)
            item.setForeground(theme.ERROR)
            self.problems.addItem(item)
        count = self.problems.count()
        self.problems_dock.setWindowTitle(f"Problems ({count})" if count else "Problems")
        if not count:
            self.problems.addItem("No problems: the model is valid.")
        total, trainable = engine.total_params(), engine.trainable_params()
        text = f"Total params: {total:,}   Trainable params: {trainable:,}   Non-trainable params: {total - trainable:,}"
        self.summary_totals.setText(text)
        self.status_params.setText(f"{total:,} params" + (f" · {count} problem{'s' * (count != 1)}" if count else ""))
        # Reading the totals may have brought results up to date: the canvas hears of them now.
        document.flush_changes()

    def _problem_clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        node_id = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if node_id:
            self.current_view().reveal(node_id)

    def problem_fix_menu(self, item: QtWidgets.QListWidgetItem) -> QtWidgets.QMenu | None:
        """A problem's quick fixes as a menu (checked now, on demand); None for a model-wide problem."""
        node_id = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if not node_id or self.document is None:
            return None
        graph, controller = self.graph, self.document.controller
        menu = QtWidgets.QMenu(self.problems)
        fixes = controller.quick_fixes(graph, node_id)
        for fix in fixes:
            menu.addAction(fix.title).triggered.connect(lambda _=False, fix=fix: controller.apply_fix(graph, fix))
        if not fixes:
            menu.addAction("No quick fix found").setEnabled(False)
        return menu

    def _problem_menu(self, pos: QtCore.QPoint) -> None:
        item = self.problems.itemAt(pos)
        menu = self.problem_fix_menu(item) if item is not None else None
        if menu is not None:
            menu.exec(self.problems.viewport().mapToGlobal(pos))
            menu.deleteLater()

    def _summary_clicked(self, index: QtCore.QModelIndex) -> None:
        node_id = self.summary_model.node_at(index.row())
        if node_id is not None:
            self.current_view().reveal(node_id)

    def focus_node(self, node_id: str) -> bool:
        """Jumps to a node of the current tab (as find does); False when the tab has no such node.

        The problems and summary rows name nodes of the current tab's graph only.
        """
        return self.current_view().reveal(node_id)

    def _show_problems(self) -> None:
        self.document.update_shapes()
        self._refresh_panels()
        self.problems_dock.show()
        self.problems_dock.raise_()

    # ================================================================ adding
    def _insert_at_centre(self, payload: str) -> None:
        view = self.current_view()
        centre = view.mapToScene(view.viewport().rect().center())
        self._insert(payload, centre)

    def _palette_menu(self, pos: QtCore.QPoint) -> None:
        payload = self.palette.payload_of(self.palette.tree.itemAt(pos))
        if payload is None:
            return
        menu = QtWidgets.QMenu(self)
        menu.addAction("Insert", lambda: self._insert_at_centre(payload))
        if payload.startswith("block:"):
            menu.addAction("Insert as Sub-model", lambda: self.insert_block_as_submodel(payload))
        menu.exec(self.palette.tree.viewport().mapToGlobal(pos))

    def insert_block_as_submodel(self, payload: str) -> str | None:
        """Inserts a block wired to the selected node and groups it into one sub-model (one undo step)."""
        scene = self.current_scene()
        ids = scene.selected_ids()
        if len(ids) != 1:
            self._refused("select the layer whose output feeds the block first")
            return None
        x, y = self.graph.node(ids[0]).position
        outcome = self.controller.insert_block_as_submodel(self.graph, payload, (x + 330.0, y), ids[0])
        if not outcome:
            return None
        scene.select_nodes(outcome.nodes)
        return outcome.nodes[0] if outcome.nodes else None

    def _open_quick_add(self, global_pos: QtCore.QPoint, scene_pos: QtCore.QPointF) -> None:
        self._quick_add_at = scene_pos
        self.quick_add.open_at(global_pos)

    def _quick_add_chosen(self, payload: str) -> None:
        at = self._quick_add_at
        if at is None:
            view = self.current_view()
            at = view.mapToScene(view.viewport().rect().center())
        self._insert(payload, at)

    def _insert(self, payload: str, at: QtCore.QPointF) -> list[str]:
        """Inserts a palette entry at ``at``; with one node selected, spliced in after it, beside it.

        The new layer then takes over what the selected node fed (see
        :func:`builder_app.core.editing.splice_after_ops`); ``at`` is not used.
        """
        ids = self.current_scene().selected_ids()
        source = ids[0] if len(ids) == 1 else None
        return self.current_view().insert(payload, at, source)

    # ============================================================= editing
    def undo(self) -> None:
        self.document.undo_stack.undo()

    def redo(self) -> None:
        self.document.undo_stack.redo()

    def delete(self) -> None:
        self.current_scene().delete_selection()

    def select_all(self) -> None:
        for item in self.current_scene().items_by_id.values():
            item.setSelected(True)

    def copy(self) -> bool:
        ids = self.current_scene().selected_ids()
        if not ids:
            return False
        data = json.dumps(copy_nodes(self.graph, ids))
        mime = QtCore.QMimeData()
        mime.setData(CLIPBOARD_MIME, data.encode("utf-8"))
        mime.setText(data)
        QtGui.QGuiApplication.clipboard().setMimeData(mime)
        return True

    def cut(self) -> None:
        if self.copy():
            self.current_scene().delete_selection()

    def paste(self) -> list[str]:
        mime = QtGui.QGuiApplication.clipboard().mimeData()
        if mime is None:
            return []
        raw = bytes(mime.data(CLIPBOARD_MIME).data()) if mime.hasFormat(CLIPBOARD_MIME) else mime.text().encode()
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # [[[... too deep for the parser
            self._refused("the clipboard holds no layers")
            return []
        return self._paste_data(data)

    def _paste_data(self, data: Any, offset: tuple[float, float] = (40.0, 40.0)) -> list[str]:
        outcome = self.controller.paste(self.graph, data, offset)
        if not outcome:
            return []
        self.current_scene().select_nodes(outcome.nodes)
        return list(outcome.nodes)

    def duplicate(self) -> list[str]:
        ids = self.current_scene().selected_ids()
        if not ids:
            return []
        return self._paste_data(copy_nodes(self.graph, ids))

    def call_again(self) -> None:
        ids = self.current_scene().selected_ids()
        if len(ids) != 1:
            return
        outcome = self.controller.call_again(self.graph, ids[0], self._free_spot_beside(ids[0]))
        if outcome:
            self.current_scene().select_nodes(outcome.nodes)

    def _free_spot_beside(self, node_id: str) -> tuple[float, float]:
        """A position beside a node (across the flow) where a box of its size overlaps nothing."""
        scene = self.current_scene()
        item = scene.visible_item(node_id)
        x, y = self.graph.node(node_id).position
        width, height = item.size() if item is not None else (184.0, 64.0)
        step = (width + 60.0, 0.0) if scene.direction == "TB" else (0.0, height + 50.0)
        taken = [QtCore.QRectF(i.pos(), QtCore.QSizeF(*i.size())).adjusted(-10, -10, 10, 10) for i in scene.visible_boxes()]
        for _ in range(len(taken) + 1):
            x, y = x + step[0], y + step[1]
            spot = QtCore.QRectF(x, y, width, height)
            if not any(spot.intersects(rect) for rect in taken):
                break
        return (round(x / 10) * 10.0, round(y / 10) * 10.0)

    def unshare(self) -> None:
        ids = self.current_scene().selected_ids()
        if len(ids) == 1:
            self.controller.unshare(self.graph, ids[0])

    def group(self) -> None:
        """Groups the selection into a sub-model, asking its name first (Cancel groups nothing)."""
        ids = self.current_scene().selected_ids()
        if not ids:
            return
        graph = self.graph
        name = self.ask_submodel_name(graph, ids, self.controller.submodel_name(graph, ids))
        if name is not None:
            self.controller.group(graph, ids, name=name)

    def ask_submodel_name(self, graph: ModelGraph, ids: list[str], default: str) -> str | None:
        """The new sub-model's name, or None when the user cancels (tests replace this)."""
        dialog = SubmodelNameDialog(default, lambda name: self.controller.submodel_name_problem(graph, name), len(ids), self)
        try:
            return dialog.name() if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted else None
        finally:
            dialog.deleteLater()

    def ungroup(self) -> None:
        ids = self.current_scene().selected_ids()
        if len(ids) == 1:
            self.controller.ungroup(self.graph, ids[0])

    def open_selected_submodel(self) -> None:
        ids = self.current_scene().selected_ids()
        if len(ids) == 1:
            self._node_activated(ids[0])

    def _node_activated(self, node_id: str) -> None:
        graph = self.graph
        layer = graph.layer_of(node_id)
        if layer.submodel is not None:
            title = f"{self.tabs.tabText(self.tabs.currentIndex())} › {layer.name}"
            view = self.open_graph(layer.submodel, title)
            if needs_layout(layer.submodel):
                view.graph_scene.layout()
        else:
            self._inspector_dock.show()
            self._inspector_dock.raise_()

    def extract_model(self) -> Path | None:
        """Saves the selected layers as a model of their own (asks where)."""
        ids = self.current_scene().selected_ids()
        if not ids:
            return None
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Extract as model", "", PROJECT_FILTER)
        if not path:
            return None
        return self.extract_to(ids, Path(path))

    def extract_to(self, ids: list[str], path: Path) -> Path | None:
        path = path.with_suffix(PROJECT_SUFFIX) if not path.suffix else path
        model = self.controller.extract(self.graph, ids, path.stem)
        if isinstance(model, Refusal):
            return None
        try:
            save_project(Project(model), path)
        except (OSError, ValueError) as exc:
            self._refused(f"cannot save {path.name}: {exc}")
            return None
        self.statusBar().showMessage(f"Extracted {len(ids)} layers to {path}", 6000)
        return path

    def set_outputs(self) -> None:
        self.controller.set_outputs(self.graph, self.current_scene().selected_ids())

    def auto_layout(self) -> None:
        self.current_scene().layout()
        self.current_view().fit()

    def fit_readable(self) -> None:
        """Fits the model in view; where its names would be unreadable, collapses its blocks first.

        If even the collapsed drawing is too big to read whole, the view shows its
        inputs' end at a readable size instead of shrinking the text away.
        """
        view = self.current_view()
        scene = view.graph_scene
        view.fit()
        if view.zoom() >= READABLE_ZOOM:
            return
        expanded = [b.name for b in scene.graph.canvas.blocks if not b.collapsed]
        if expanded and scene.set_collapsed(expanded, True):
            view.fit()
        if view.zoom() < READABLE_ZOOM:
            view.show_start(smallest=READABLE_ZOOM)

    # ------------------------------------------------------------ drawing and display blocks
    def set_direction(self, direction: str) -> None:
        """Draws the current tab's graph top to bottom ("TB") or left to right ("LR")."""
        scene = self.current_scene()
        if scene.graph.canvas.direction != direction and self.document.controller.set_direction(scene.graph, direction):
            self.current_view().fit()
        self._check_direction()

    def _check_direction(self) -> None:
        direction = self.current_scene().graph.canvas.direction
        self.actions_by_name["direction_tb"].setChecked(direction == "TB")
        self.actions_by_name["direction_lr"].setChecked(direction == "LR")

    def _selected_blocks(self) -> list[str]:
        """Names of the display blocks the selection touches (collapsed or not)."""
        scene = self.current_scene()
        canvas = scene.graph.canvas
        names = []
        for node_id in scene.selected_ids():
            block = canvas.block_of(node_id)
            if block is not None and block.name not in names:
                names.append(block.name)
        return names

    def blocks_from_names(self) -> None:
        from builder_app.core.display import proposed_state

        scene = self.current_scene()
        state = proposed_state(scene.graph)
        if not state.blocks:
            self.statusBar().showMessage("No display blocks: the layer names share no block prefixes", 8000)
            return
        if self.document.controller.set_blocks(scene.graph, state.blocks):
            self.statusBar().showMessage(f"{len(state.blocks)} display blocks from the layer names", 8000)
            self.current_view().fit()

    def make_block(self) -> None:
        """Shows the selected nodes as one display block (taking them out of other blocks)."""
        from builder_app.core.graph import CanvasBlock

        scene = self.current_scene()
        ids = scene.selected_ids()
        if len(ids) < 2:
            self.statusBar().showMessage("Select two or more nodes to make a display block", 8000)
            return
        canvas = scene.graph.canvas
        taken = {b.name for b in canvas.blocks}
        names = [scene.graph.node(n).layer for n in ids]
        stem = os.path.commonprefix(names).rstrip("_-") or "block"
        name, number = stem, 1
        while name in taken:
            number += 1
            name = f"{stem}_{number}"
        chosen = set(ids)
        kept = [CanvasBlock(b.name, tuple(n for n in b.nodes if n not in chosen), b.collapsed) for b in canvas.blocks]
        order = [n for n in scene.graph.topological_order() if n in chosen]
        blocks = [b for b in kept if b.nodes] + [CanvasBlock(name, tuple(order), False)]
        if self.document.controller.set_blocks(scene.graph, blocks):
            self.statusBar().showMessage(f"Display block '{name}': {len(order)} layers (Ctrl+[ collapses it)", 8000)

    def remove_blocks(self) -> None:
        scene = self.current_scene()
        chosen = set(self._selected_blocks())
        blocks = [b for b in scene.graph.canvas.blocks if chosen and b.name not in chosen]
        self.document.controller.set_blocks(scene.graph, blocks)

    def collapse_selection(self, collapsed: bool) -> None:
        names = self._selected_blocks()
        if not names:
            self.statusBar().showMessage("The selection is in no display block", 8000)
            return
        self.current_scene().set_collapsed(names, collapsed)

    def collapse_all(self, collapsed: bool) -> None:
        scene = self.current_scene()
        names = [b.name for b in scene.graph.canvas.blocks if b.collapsed != collapsed]
        if names and scene.set_collapsed(names, collapsed):
            self.current_view().fit()

    def block_to_submodel(self) -> None:
        """Turns the selected display block into a real sub-model of the same name (one step)."""
        scene = self.current_scene()
        names = self._selected_blocks()
        if len(names) != 1:
            self.statusBar().showMessage("Select the nodes of one display block", 8000)
            return
        block = next(b for b in scene.graph.canvas.blocks if b.name == names[0])
        members = [n for n in block.nodes if n in scene.graph.nodes]
        self.document.controller.group(scene.graph, members, name=block.name)

    def set_heat(self, kind: str | None) -> None:
        """Colours every canvas by cost: "flops", "activation_bytes", or None for plain nodes."""
        for scene in self.scenes:
            scene.set_heat(kind)

    def _zoom(self, factor: float) -> None:
        view = self.current_view()
        view.set_zoom(view.zoom() * factor)

    def _toggle_snap(self, on: bool) -> None:
        for scene in self.scenes:
            scene.snap = on

    def _toggle_minimap(self, on: bool) -> None:
        Minimap.remember_visible(on)
        for i in range(self.tabs.count()):
            self.tabs.widget(i).minimap.setVisible(on)

    def choose_theme(self, choice: str) -> None:
        """View → Theme: "system", "light" or "dark", remembered; every open canvas and plot follows at once."""
        theme.set_theme(choice)
        self.actions_by_name[f"theme_{choice}"].setChecked(True)

    def _context_menu(self, pos: QtCore.QPoint) -> None:
        view = self.current_view()
        item = view.itemAt(pos)
        scene = view.graph_scene
        if item is not None and not item.isSelected():
            scene.clearSelection()
            item.setSelected(True)
        menu = QtWidgets.QMenu(self)
        a = self.actions_by_name
        if scene.selectedItems():
            menu.addActions([a["cut"], a["copy"], a["duplicate"], a["delete"]])
            menu.addSeparator()
            menu.addActions([a["call_again"], a["unshare"], a["group"], a["ungroup"], a["open_submodel"], a["extract"], a["set_outputs"]])
            menu.addAction(a["inspect"])
            menu.addSeparator()
            blocks = self._selected_blocks()
            if blocks:
                collapsed = {b.name: b.collapsed for b in scene.graph.canvas.blocks}
                menu.addAction(a["expand"] if any(collapsed.get(n) for n in blocks) else a["collapse"])
                menu.addAction(a["block_to_submodel"])
            if len(scene.selected_ids()) > 1:
                menu.addAction(a["make_block"])
        else:
            menu.addActions([a["paste"], a["quick_add"], a["layout"], a["fit"]])
        self._update_actions()
        menu.exec(view.viewport().mapToGlobal(pos))

    def _error(self, title: str, message: str) -> None:
        self.statusBar().showMessage(message, 15000)
        if QtGui.QGuiApplication.platformName() != "offscreen":
            QtWidgets.QMessageBox.warning(self, title, message)

    def open_training(self) -> None:
        from builder_app.ui.training.window import TrainingWindow

        if self._training_window is not None:
            self._training_window.show()
            self._training_window.raise_()
            self._training_window.activateWindow()
            return
        window = TrainingWindow(self.document.project, self)
        window.setWindowFlag(QtCore.Qt.WindowType.Window, True)
        window.run_finished.connect(lambda _event: self._weights_changed())
        window.run_started.connect(self._training_started)
        window.run_finished.connect(lambda _event: self.status_device.setText(_device_name()))
        window.project_changed.connect(self._weights_changed)
        window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        window.destroyed.connect(lambda *_: self._training_closed())
        window.show()
        self._training_window = window

    def open_sweep(self) -> None:
        """Model → Sweep…: the Sweep window of this project (builder_app/ui/training/sweep_window.py)."""
        from builder_app.ui.training.sweep_window import SweepWindow

        window = getattr(self, "_sweep_window", None)
        if window is not None:
            window.show()
            window.raise_()
            return
        window = SweepWindow(self.document.project, self, controller=self.controller)
        window.setWindowFlag(QtCore.Qt.WindowType.Window, True)
        window.project_changed.connect(self._weights_changed)
        window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        window.destroyed.connect(lambda *_: setattr(self, "_sweep_window", None))
        window.show()
        self._sweep_window = window

    def _training_closed(self) -> None:
        self._training_window = None
        self._update_title()

    def _weights_changed(self) -> None:
        self.document.mark_dirty()
        self._update_title()
        activations = getattr(self, "_activations_window", None)
        if activations is not None and activations.document is self.document:
            activations.weights_changed()  # the trained or restored weights, drawn again

    def open_activations(self) -> None:
        """Model → Inspect Activations: the Activations window on the selected nodes (ui/inspect/window.py)."""
        from builder_app.ui.inspect.window import ActivationsWindow

        window = getattr(self, "_activations_window", None)
        if window is not None and window.document is not self.document:  # another project is open now
            window.close()
            window = None
        if window is None:
            window = ActivationsWindow(self.document, self)
            window.setWindowFlag(QtCore.Qt.WindowType.Window, True)
            window.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
            window.destroyed.connect(lambda *_: setattr(self, "_activations_window", None))
            self._activations_window = window
        scene = self.current_scene()
        window.inspect(scene.selected_ids() if scene.graph is self.document.graph else [])
        window.show()
        window.raise_()

    def close_current(self) -> None:
        """File → Close: the current sub-model's tab, or on the model's own tab the window."""
        index = self.tabs.currentIndex()
        if index > 0:
            self._remove_tab(index)
        else:
            self.close()

    def show_guide(self) -> QtWidgets.QDialog:
        """Help → User Guide, beside the editor."""
        return help_pages.keep_open(help_pages.guide_dialog(self))

    def show_shortcuts(self) -> QtWidgets.QDialog:
        """Help → Keyboard Shortcuts: a table read from this window's menus as they are now."""
        return help_pages.keep_open(help_pages.shortcuts_dialog(self))

    def open_example(self, path: Path) -> bool:
        """Help → Examples: opens an example as a new, unsaved project (Save asks where; the example stays)."""
        if not self.maybe_save():
            return False
        try:
            project = load_project(path)
        except ProjectLoadError as exc:
            self._error("Cannot open the example", str(exc))
            return False
        project.path = None
        self.set_document(Document(project))
        self.statusBar().showMessage(f"Example {path.stem} opened as a new project; Save keeps your copy", 10000)
        return True

    def _about(self) -> None:
        QtWidgets.QMessageBox.about(
            self, "builder-app", f"builder-app {__version__}\nBuild Keras models visually, with Keras-exact live shapes."
        )

    # ============================================================== recovery
    def _claim_recovery(self) -> None:
        self.recovery.claim(recovery_key(self.document.path), reuse=getattr(self, "_recovering", None))
        self._discard_agreed = None  # a new document: nothing about it was agreed yet

    def _release_recovery(self) -> None:
        # Unsaved work goes only when the user said Discard (maybe_save records it):
        # replaced without a question, it stays to be offered at the next start.
        document = self.document
        unsaved = document is not None and document.is_dirty
        self.recovery.release(keep=unsaved and self._undo_state() != getattr(self, "_discard_agreed", None))

    def agree_to_discard(self) -> None:
        """The user discards the unsaved changes as they are now: their autosave may go with the document."""
        self._discard_agreed = self._undo_state()

    def _undo_state(self) -> Any:
        document = self.document
        return (document.undo_stack.index(), document.undo_stack.count(), document._extra_dirty)

    def autosave(self, *, wait: bool = True) -> bool:
        """Writes the recovery file if there are changes since the last one.

        The project is copied on the GUI thread (the graph may change right after)
        and written on a worker thread, so a big model does not stall the window.
        With ``wait`` the call returns when the file is written.
        """
        if self.recovery.error is not None and not wait:  # the last background write failed
            self.statusBar().showMessage(self.recovery.error, 8000)
            self.recovery.error = None
        document = self.document
        if document is None:
            return False
        if not document.is_dirty:  # saved, or undone back to the file: nothing to recover
            self.recovery.clear(self._undo_state())
            return False
        return self.recovery.write(document.project, self._undo_state(), wait=wait)

    @staticmethod
    def recoverable() -> list[Path]:
        """Recovery files left by windows that are no longer running (crashed)."""
        return recoverable()

    def recover(self, path: Path) -> bool:
        """Opens a recovery file as an unsaved project; a corrupt one is set aside and reported.

        Unsaved changes of the project shown are asked about first (False if the
        user cancels). The window takes the recovery file as its own slot.
        """
        if not self.maybe_save():
            return False
        try:
            project = load_recovered(path)
        except ProjectLoadError as exc:
            self._error("Recovery file is damaged", str(exc))
            return False
        self._recovering = Path(path)
        try:
            self.set_document(Document(project))
        finally:
            self._recovering = None
        self.document.mark_dirty()
        # The recovery file goes only once this window's slot holds the work (a crash
        # right now must still offer it).
        if not self.recovery.adopt(path, self.document.project, self._undo_state()):
            message = self.recovery.error or "Autosave failed"
            self.recovery.error = None
            self.statusBar().showMessage(f"Recovered; {message}; {path.name} is kept", 10000)
            return True
        self.statusBar().showMessage("Recovered unsaved changes; save them to keep them", 10000)
        return True

    def discard_recovery(self, path: Path) -> None:
        """Removes a recovery file the user discards, its side files and its ``.corrupt`` with it."""
        discard(path, corrupt=True)

    def ask_recovery(self, offer: RecoveryOffer) -> str:
        """Asks what to do with ``offer``: ``"recover"``, ``"discard"`` or ``"keep"`` (asked again next start)."""
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Question)
        box.setWindowTitle("Recover unsaved work?")
        box.setText(f"builder-app did not close properly.\n\n{offer.text()}")
        box.setInformativeText("Recover them, or discard them for good?")
        roles = QtWidgets.QMessageBox.ButtonRole
        recover = box.addButton("Recover", roles.AcceptRole)
        discard_button = box.addButton("Discard", roles.DestructiveRole)
        later = box.addButton("Keep for Later", roles.RejectRole)
        box.setDefaultButton(recover)
        box.setEscapeButton(later)  # Escape never deletes work
        box.exec()
        clicked = box.clickedButton()
        box.deleteLater()
        return "recover" if clicked is recover else "discard" if clicked is discard_button else "keep"

    def offer_recovery(self) -> None:
        """On start: sweeps stale side files, then offers each crashed window's work, once.

        The offered file stays locked while the question is open, so a second
        instance starting meanwhile does not offer it too.
        """
        sweep()
        for path in self.recoverable():
            hold = take_lock(path.with_suffix(".lock"))
            if hold is None:  # another instance is offering it right now
                continue
            try:
                answer = self.ask_recovery(read_offer(path))
                if answer == "discard":
                    self.discard_recovery(path)
            finally:
                drop_lock(hold)
            if answer == "recover" and self.recover(path):
                return

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._docks_sized:  # docks take their sizes once the window has its own
            self._docks_sized = True
            QtCore.QTimer.singleShot(0, self._size_docks)

    def _size_docks(self) -> None:
        self.resizeDocks([self.problems_dock], [150], QtCore.Qt.Orientation.Vertical)
        self.resizeDocks([self.palette.parentWidget(), self._inspector_dock], [220, 330], QtCore.Qt.Orientation.Horizontal)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self.maybe_save():
            event.ignore()
            return
        self._autosave_timer.stop()
        activations = getattr(self, "_activations_window", None)
        if activations is not None:
            activations.close()
        training = getattr(self, "_training_window", None)
        if training is not None:
            try:
                training.close()  # stops a run still going: its process must not outlive the app
            except RuntimeError:  # already deleted by Qt
                pass
        sweeping = getattr(self, "_sweep_window", None)
        if sweeping is not None:
            try:
                sweeping.close()  # stops the sweep: its trials' processes must not outlive the app
            except RuntimeError:
                pass
        if self.document is not None:
            self.document._extra_dirty = False
            self.document.undo_stack.setClean()
        self._release_recovery()
        settings().setValue("geometry", self.saveGeometry())
        super().closeEvent(event)


def _device_name() -> str:
    from builder_app.training.runner import describe_devices, gpu_names

    try:
        return describe_devices(gpu_names())
    except Exception:  # noqa: BLE001 - a backend that cannot list devices trains on the CPU
        return "CPU"


def _training_backends_text() -> str:
    """What the status bar's device tells on hover: the backends a training run may choose."""
    from builder_app.training.backends import LABELS, default_backend, installed_backends

    names = [f"{LABELS[n]}{' (default)' if n == default_backend() else ''}" for n in installed_backends()]
    return f"devices the editor's Keras sees; training runs on: {', '.join(names)} (Train… → Backend)"


def run_app(project_path: Path | None = None) -> int:
    """Starts the editor (the default ``builder-app`` command)."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["builder-app"])
    app.setApplicationName("builder-app")
    app.setOrganizationName("builder-app")
    collector.install(app)
    theme.apply_style(app)
    window = MainWindow()
    geometry = settings().value("geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    window.show()
    if project_path is not None:
        if project_path.suffix.lower() in (".keras", ".h5", ".hdf5", ".json"):
            window.import_path(project_path)
        else:
            window.open_path(project_path)
    QtCore.QTimer.singleShot(0, window.offer_recovery)
    return app.exec()


#: The name the tests, the benchmarks and older code know the editor window by.
MainWindow = EditorWindow
