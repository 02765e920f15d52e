"""Makes every screenshot of docs/user-guide.md and docs/tutorial-siamese.md, from the real app.

Run from the repository root (about two minutes; it trains two small models)::

    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py            # every image
    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py build train  # some scenes

Each scene opens the editor window (1600x1000, offscreen) over a fresh user profile
(its own settings and recovery folder), does what the docs tell the reader to do
through the window's own actions and its controller, and saves ``window.grab()``
(cropped to what the text talks about) into ``docs/images/``. Re-run it whenever the
interface changes: the pictures are made, never edited.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_PROFILE = Path(tempfile.mkdtemp(prefix="builder-app-docs-"))
os.environ["BUILDER_APP_RECOVERY_DIR"] = str(_PROFILE / "recovery")
os.environ.setdefault("XDG_CACHE_HOME", str(_PROFILE / "cache"))

import numpy as np  # noqa: E402
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
EXAMPLES = ROOT / "resources" / "examples"
WORK = _PROFILE / "work"
SIZE = (1600, 1000)
#: Widest image written; wider grabs are scaled down (smooth) to keep the files small.
MAX_WIDTH = 1400


# ---------------------------------------------------------------- plumbing
def app() -> QtWidgets.QApplication:
    instance = QtWidgets.QApplication.instance()
    if instance is None:
        instance = QtWidgets.QApplication(["builder-app"])
        instance.setApplicationName("builder-app")
        instance.setOrganizationName("builder-app")
        QtCore.QSettings.setPath(
            QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Scope.UserScope, str(_PROFILE / "settings")
        )
        from builder_app.ui import collector, theme

        collector.install(instance)
        theme.apply_style(instance)
    return instance


def pump(ms: int = 50) -> None:
    """Lets Qt run for ``ms`` milliseconds (timers, queued signals, paints)."""
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        app().processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"make_screenshots: timed out waiting for {what}")
        pump(30)


_LOADER = None


def loader():
    """Keras, loaded once (synchronously: every window finds it ready)."""
    global _LOADER
    if _LOADER is None:
        from builder_app.ui.editor.document import KerasLoader

        _LOADER = KerasLoader()
        _LOADER._load()
        if not _LOADER.is_ready:
            raise SystemExit(f"make_screenshots: Keras did not load: {_LOADER.error}")
    return _LOADER


def open_window(project=None):
    """The editor window, 1600x1000, shown, its shapes computed."""
    from builder_app.ui.editor.window import MainWindow

    app()
    window = MainWindow(project, loader=loader())
    window.ask_unsaved = lambda: QtWidgets.QMessageBox.StandardButton.Discard
    window.resize(*SIZE)
    window.show()
    wait_until(lambda: window.document.engine is not None, 30, "the shape engine")
    settle(window)
    return window


def settle(window, ms: int = 300) -> None:
    window.document.update_shapes()
    window.document._update_builds()
    pump(ms)
    window._refresh_panels()
    pump(100)


def close(window) -> None:
    window.document._extra_dirty = False
    window.document.undo_stack.setClean()
    window.close()
    window.deleteLater()
    pump(100)


def load(name: str):
    from builder_app.core.project import load_project

    return load_project(EXAMPLES / name)


def rect_of(widget: QtWidgets.QWidget, top: QtWidgets.QWidget, margin: int = 0) -> QtCore.QRect:
    """``widget``'s rectangle in ``top``'s coordinates, grown by ``margin``."""
    origin = widget.mapTo(top, QtCore.QPoint(0, 0))
    return QtCore.QRect(origin, widget.size()).adjusted(-margin, -margin, margin, margin).intersected(top.rect())


def union(*rects: QtCore.QRect) -> QtCore.QRect:
    out = QtCore.QRect(rects[0])
    for rect in rects[1:]:
        out = out.united(rect)
    return out


def save(image: QtGui.QImage | QtGui.QPixmap, name: str, *, max_width: int = MAX_WIDTH) -> Path:
    if isinstance(image, QtGui.QPixmap):
        image = image.toImage()
    if image.width() > max_width:
        image = image.scaledToWidth(max_width, QtCore.Qt.TransformationMode.SmoothTransformation)
    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    if not image.save(str(path), "PNG", 9):
        raise SystemExit(f"make_screenshots: cannot write {path}")
    print(f"{path.relative_to(ROOT)}: {image.width()}x{image.height()}, {path.stat().st_size // 1024} KB")
    return path


def shot(widget: QtWidgets.QWidget, name: str, crop: QtCore.QRect | None = None, **kw) -> Path:
    pump(150)
    pixmap = widget.grab(crop) if crop is not None else widget.grab()
    return save(pixmap, name, **kw)


def node_named(graph, layer: str) -> str:
    return next(n for n in graph.nodes if graph.node(n).layer == layer)


def select(window, *node_ids: str) -> None:
    scene = window.current_scene()
    scene.clearSelection()
    scene.select_nodes(node_ids)
    pump(100)


def insert_after(window, payload: str, source: str | None, name: str | None = None, **params) -> str:
    """Tab / a palette double-click with ``source`` selected: the new layer goes in after it."""
    if source is not None:
        select(window, source)
    else:
        window.current_scene().clearSelection()
    view = window.current_view()
    added = window._insert(payload, view.mapToScene(view.viewport().rect().center()))
    node_id = added[-1]
    graph = window.graph
    layer = graph.node(node_id).layer
    if name is not None and name != layer:
        window.controller.rename(graph, layer, name)
        layer = name
    for key, value in params.items():
        window.controller.set_param(graph, layer, key, value)
    return node_id


def add_input(window, shape: list[int], name: str, at: tuple[float, float]) -> str:
    from builder_app.core.graph import INPUT_CLASS

    window.current_scene().clearSelection()
    added = window.current_view().insert(INPUT_CLASS, QtCore.QPointF(*at))
    node_id = added[-1]
    graph = window.graph
    old = graph.node(node_id).layer
    window.controller.rename(graph, old, name)
    window.controller.set_param(graph, name, "batch_shape", [None, *shape])
    return node_id


def fit(window) -> None:
    window.actions_by_name["fit"].trigger()
    pump(200)


def export_project(project_path: Path, **targets: Path) -> None:
    """What ``builder-app export PROJECT --KIND PATH ...`` writes, through the exporter registry."""
    from builder_app.core.project import load_project
    from builder_app.exporters.registry import export

    project = load_project(project_path)
    for kind, path in targets.items():
        export(kind, project, path)


# ---------------------------------------------------------------- scenes
def scene_editor() -> None:
    """The editor with the digits example: palette, canvas, inspector, problems."""
    window = open_window(load("digits_cnn.kproj"))
    fit(window)
    select(window, node_named(window.graph, "conv_2"))
    settle(window)
    shot(window, "editor-overview.png")
    close(window)


def scene_build() -> None:
    """A model built from nothing: palette search, Tab, the inspector."""
    window = open_window()
    x = add_input(window, [8, 8, 1], "image", (0, 0))
    h = insert_after(window, "Conv2D", x, "conv", filters=16, kernel_size=[3, 3], activation="relu")
    h = insert_after(window, "Flatten", h, "flatten")
    h = insert_after(window, "Dense", h, "digit", units=10, activation="softmax")
    window.auto_layout()
    settle(window)
    window.palette.search_box.setText("conv")
    select(window, node_named(window.graph, "conv"))
    settle(window)
    shot(window, "build-model.png")

    # The quick-add box (Tab on the canvas), typed into: a popup of its own.
    view = window.current_view()
    window._open_quick_add(view.viewport().mapToGlobal(QtCore.QPoint(700, 300)), QtCore.QPointF(0, 0))
    window.quick_add.search_box.setText("dense")
    pump(150)
    rows = window.quick_add.list
    last = rows.visualItemRect(rows.item(rows.count() - 1))
    bottom = rows.mapTo(window.quick_add, last.bottomLeft()).y() + 12
    shot(window.quick_add, "quick-add.png", QtCore.QRect(0, 0, window.quick_add.width(), bottom))
    window.quick_add.hide()

    inspector = window.inspector.parentWidget()
    crop = rect_of(inspector, window)
    toggle = window.inspector.advanced_toggle
    if toggle is not None:  # down to the Advanced line: the dock's empty rest left out
        crop.setBottom(min(crop.bottom(), toggle.mapTo(window, QtCore.QPoint(0, toggle.height())).y() + 16))
    shot(window, "inspector.png", crop)
    close(window)


def scene_shape_error() -> None:
    """A convolution too many: the Problems panel, the inspector's quick fixes."""
    window = open_window()
    x = add_input(window, [8, 8, 1], "image", (0, 0))
    h = insert_after(window, "Conv2D", x, "conv_1", filters=16, kernel_size=[3, 3])
    h = insert_after(window, "MaxPooling2D", h, "pool")
    h = insert_after(window, "Conv2D", h, "conv_2", filters=32, kernel_size=[3, 3])
    h = insert_after(window, "Conv2D", h, "conv_3", filters=64, kernel_size=[3, 3])
    h = insert_after(window, "GlobalAveragePooling2D", h, "global_pool")
    insert_after(window, "Dense", h, "digit", units=10, activation="softmax")
    window.auto_layout()
    settle(window)
    window._show_problems()
    bad = node_named(window.graph, "conv_3")
    select(window, bad)
    settle(window)
    window.inspector.refresh_fixes()
    pump(300)
    if not window.inspector.fix_buttons():
        raise SystemExit("make_screenshots: no quick fix offered for conv_3")
    shot(window, "shape-error.png")
    # The fix works, and is one undo step.
    fix = window.inspector.fix_buttons()[0]
    print(f"  quick fix offered: {fix.text()!r}")
    fix.click()
    settle(window)
    if window.document.engine.errors():
        raise SystemExit(f"make_screenshots: {fix.text()} left {window.document.engine.errors()}")
    window.actions_by_name["undo"].trigger()
    settle(window)
    if not window.document.engine.errors():
        raise SystemExit("make_screenshots: undoing the quick fix did not bring the error back")
    close(window)


def run_training(window, epochs: int, data: str | None = None, name: str | None = None, timeout: float = 400):
    """Model > Train…, the fields set, Train pressed, the run waited for; returns the training window."""
    window.actions_by_name["train"].trigger()
    pump(200)
    training = window._training_window
    training.resize(*SIZE)
    if data is not None:
        training.data.setCurrentText(data)
    training.epochs.setValue(epochs)
    pump(100)
    training.train_button.click()
    wait_until(lambda: training.run is not None, 30, "the run to start")
    wait_until(lambda: training.run.finished, timeout, "the run to finish")
    pump(600)
    if name is not None:
        shot(training, name)
    return training


def close_training(window) -> None:
    training = window._training_window
    if training is not None:
        training.close()
        pump(300)


def scene_train() -> None:
    """The digits example trained for 10 epochs: the training window and its dashboard."""
    project = load("digits_cnn.kproj")
    window = open_window(project)
    training = run_training(window, 10, name="training.png")
    print(f"  training message: {training.message.text()!r}")
    # Stop: a long run stopped after its first epoch (what the guide says Stop does).
    training.epochs.setValue(200)
    training.train_button.click()
    wait_until(lambda: training.run is not None and not training.run.finished, 30, "the second run to start")
    wait_until(lambda: training.dashboard.epoch_count() >= 1, 300, "the second run's first epoch")
    training.stop_button.click()
    wait_until(lambda: training.run.finished, 120, "the stopped run to end")
    pump(600)
    print(f"  after Stop: {training.message.text()!r}")
    print(f"  runs: {[training.history.item(i).text() for i in range(training.history.count())]}")
    close_training(window)
    # The trained project, for the export and fine-tuning scenes.
    from builder_app.core.project import save_project

    save_project(window.document.project, WORK / "digits_trained.kproj")
    close(window)


def _trained_digits() -> Path:
    path = WORK / "digits_trained.kproj"
    return path if path.exists() else EXAMPLES / "digits_cnn.kproj"


def scene_export() -> None:
    """File > Export: every exporter of the registry, then the diagram."""
    window = open_window(load("digits_cnn.kproj"))
    fit(window)
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    export_menu = next(a.menu() for a in file_menu.actions() if a.menu() is not None and "Export" in a.text())
    bar = window.menuBar()
    origin = bar.mapToGlobal(QtCore.QPoint(0, bar.height()))
    file_menu.popup(origin)
    pump(200)
    export_action = next(a for a in file_menu.actions() if a.menu() is export_menu)
    file_menu.setActiveAction(export_action)
    pump(100)
    export_menu.popup(file_menu.mapToGlobal(file_menu.actionGeometry(export_action).topRight()))
    pump(300)
    # The two menus side by side, as the user sees them.
    left, right = file_menu.grab().toImage(), export_menu.grab().toImage()
    drop = file_menu.actionGeometry(export_action).top()
    image = QtGui.QImage(left.width() + right.width(), max(left.height(), drop + right.height()), QtGui.QImage.Format.Format_RGB32)
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    painter.drawImage(0, 0, left)
    painter.drawImage(left.width(), drop, right)
    painter.end()
    save(image, "export-menu.png")
    export_menu.hide()
    file_menu.hide()
    pump(100)
    # Each entry's file dialog returns a path; the window writes it (what the guide promises).
    from builder_app.exporters.registry import EXPORTERS

    out = WORK / "export"
    out.mkdir(exist_ok=True)
    for kind, exporter in EXPORTERS.items():
        if exporter.unavailable():
            print(f"  export {kind}: unavailable here ({exporter.unavailable()})")
            continue
        target = out / ("digits_cnn_savedmodel" if exporter.is_directory else f"digits_cnn_{kind}{exporter.suffix}")
        if not window.export_to(kind, target):
            raise SystemExit(f"make_screenshots: File > Export > {exporter.label} failed: {window.statusBar().currentMessage()}")
        print(f"  export {kind}: {target.name} written")
    close(window)


def _applications_model() -> Path:
    """A keras.applications model with weights=None, saved to .keras (as a user would have one)."""
    import keras

    path = WORK / "mobilenet_v2.keras"
    if not path.exists():
        model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
        model.save(path)
    return path


def import_into(window, path: Path) -> None:
    job = window.import_path(path)
    if job is None:
        raise SystemExit(f"make_screenshots: the import of {path} did not start")
    wait_until(lambda: not window.is_importing(), 300, f"the import of {path.name}")
    settle(window, 600)


def scene_import() -> None:
    """File > Import Keras Model… of a MobileNetV2 (.keras): drawn as collapsed blocks."""
    path = _applications_model()
    window = open_window()
    import_into(window, path)
    fit(window)
    settle(window)
    shot(window, "import-mobilenet.png")
    close(window)


def scene_finetune() -> None:
    """A trained model exported to .keras, imported again, its convolutions frozen, trained on."""
    keras_file = WORK / "digits.keras"
    export_project(_trained_digits(), keras=keras_file)
    window = open_window()
    import_into(window, keras_file)
    graph = window.graph
    frozen = ["conv_1", "batch_norm_1", "conv_2"]
    before = {name: [w.copy() for w in graph.layers[name].weights or []] for name in frozen}
    head_before = graph.layers["digit"].weights[0].copy()
    if not all(before.values()):
        raise SystemExit("make_screenshots: the imported digits model has no weights")
    for name in frozen:  # the inspector's Advanced > trainable box, unticked
        select(window, node_named(graph, name))
        settle(window, 100)
        if window.inspector.advanced_toggle is not None and not window.inspector.advanced_toggle.isChecked():
            window.inspector.advanced_toggle.setChecked(True)
        box = window.inspector.editor("trainable")
        if box.isChecked():
            box.click()
        settle(window, 150)
        if graph.layers[name].config.get("trainable", True):
            raise SystemExit(f"make_screenshots: unticking trainable did not freeze {name}")
    fit(window)
    window.summary_dock.raise_()
    select(window, node_named(graph, "conv_2"))
    settle(window)
    inspector = window.inspector
    scroll = inspector.scroll
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    shot(window, "finetune-frozen.png")
    run_training(window, 3, data="digits", name="finetune-training.png")
    after = window.document.project.graph.layers
    for name in frozen:
        if not all(np.array_equal(a, b) for a, b in zip(before[name], after[name].weights, strict=True)):
            raise SystemExit(f"make_screenshots: the frozen layer {name} changed in training")
    moved = not np.array_equal(after["digit"].weights[0], head_before)
    print(f"  frozen layers unchanged; the head trained: {moved}")
    close_training(window)
    close(window)


def scene_dark() -> None:
    """View > Theme > Dark: the whole window, the canvas with it (the light theme is put back after)."""
    window = open_window(load("unet_groupnorm.kproj"))
    if "theme_dark" not in window.actions_by_name:
        print("  no View > Theme here: no dark screenshot")
        close(window)
        return
    window.actions_by_name["theme_dark"].trigger()
    settle(window)
    fit(window)
    select(window, node_named(window.graph, "enc1_norm"))
    settle(window)
    shot(window, "editor-dark.png", max_width=1100)
    window.actions_by_name["theme_light"].trigger()
    pump(200)
    close(window)


# ---------------------------------------------------------------- the siamese tutorial
def _tutorial_window():
    window = open_window()
    if window.actions_by_name["minimap"].isChecked():  # the overview map would cover the small drawing
        window.actions_by_name["minimap"].trigger()
    return window


def _siamese_towers(window) -> tuple[str, str, list[str]]:
    """Steps 1-2: the two inputs, and one tower of layers on the left one."""
    left = add_input(window, [8, 8, 1], "left", (0, 0))
    right = add_input(window, [8, 8, 1], "right", (400, 0))
    h = insert_after(window, "Conv2D", left, "tower_conv", filters=16, kernel_size=[3, 3], padding="same", activation="relu")
    p = insert_after(window, "GlobalAveragePooling2D", h, "tower_pool")
    e = insert_after(window, "Dense", p, "tower_embedding", units=32)
    return left, right, [h, p, e]


def _siamese_group(window, tower: list[str]) -> str:
    """Step 3: the tower grouped into a sub-model named ``tower`` (Layer > Group as Sub-model)."""
    graph = window.graph
    select(window, *tower)
    if hasattr(window, "ask_submodel_name"):  # the name dialog, answered "tower"
        window.ask_submodel_name = lambda _graph, _ids, _default: "tower"
        window.actions_by_name["group"].trigger()
    else:
        window.controller.group(graph, tower, name="tower")
    pump(100)
    calls = list(graph.nodes_of_layer("tower")) if "tower" in graph.layers else []
    if not calls:
        raise SystemExit(f"make_screenshots: grouping the tower failed: {window.statusBar().currentMessage()}")
    return calls[0]


def _group_name_dialog() -> None:
    """The question Group as Sub-model asks, answered "tower" (where this version asks it)."""
    try:
        from builder_app.ui.editor.naming import SubmodelNameDialog
    except ImportError:
        return
    dialog = SubmodelNameDialog("functional", lambda _name: None, 3)
    dialog.field.setText("tower")
    dialog.show()
    pump(150)
    shot(dialog, "siamese-group-name.png")
    dialog.close()
    dialog.deleteLater()


def _siamese_share(window, call: str, right: str) -> str:
    """Step 4: Layer > Call Again on the tower, wired to the right input."""
    select(window, call)
    window.actions_by_name["call_again"].trigger()
    pump(100)
    second = next(n for n in window.graph.nodes_of_layer("tower") if n != call)
    outcome = window.controller.connect(window.graph, right, 0, second, 0)
    if not outcome:
        raise SystemExit(f"make_screenshots: wiring the right input was refused: {outcome.message}")
    return second


def _siamese_head(window, first: str, second: str) -> str:
    """Step 5: the cosine similarity of the two embeddings, and the output."""
    dot = insert_after(window, "Dot", first, "cosine", axes=1, normalize=True)
    outcome = window.controller.connect(window.graph, second, 0, dot, 1)
    if not outcome:
        raise SystemExit(f"make_screenshots: wiring the second embedding was refused: {outcome.message}")
    return insert_after(window, "Dense", dot, "same_digit", units=1, activation="sigmoid")


def _layout(window) -> None:
    window.auto_layout()
    settle(window)
    fit(window)


def _canvas_crop(window, margin: int = 50) -> QtCore.QRect:
    """The canvas's tabs and the inspector, down to the drawing's end: where the tutorial's steps happen."""
    view = window.current_view()
    drawn = view.mapFromScene(view.graph_scene.diagram_rect()).boundingRect()
    drawn = QtCore.QRect(view.viewport().mapTo(window, drawn.topLeft()), drawn.size()).adjusted(-margin, -margin, margin, margin)
    tabs, inspector = rect_of(window.tabs, window), rect_of(window.inspector.parentWidget(), window)
    bottom = min(tabs.bottom(), max(drawn.bottom(), tabs.top() + 420))
    return QtCore.QRect(tabs.topLeft(), QtCore.QPoint(inspector.right(), bottom))


def scene_siamese() -> None:
    """Every step of docs/tutorial-siamese.md, in one window, as the tutorial does them."""
    window = _tutorial_window()
    left, right, tower = _siamese_towers(window)
    _layout(window)
    select(window, tower[-1])
    settle(window)
    shot(window, "siamese-1-tower.png", _canvas_crop(window))

    _group_name_dialog()
    call = _siamese_group(window, tower)
    _layout(window)
    select(window, call)
    settle(window)
    shot(window, "siamese-2-grouped.png", _canvas_crop(window))

    second = _siamese_share(window, call, right)
    _layout(window)
    select(window, second)
    settle(window)
    shot(window, "siamese-3-shared.png", _canvas_crop(window))

    _siamese_head(window, call, second)
    _layout(window)
    window._show_problems()
    window.current_scene().clearSelection()
    settle(window)
    errors = window.document.engine.errors()
    if errors:
        raise SystemExit(f"make_screenshots: the siamese model is invalid: {errors}")
    print(f"  status after the head: {window.statusBar().currentMessage()!r}")
    window.statusBar().clearMessage()
    shot(window, "siamese-4-model.png")

    select(window, call)
    window.actions_by_name["open_submodel"].trigger()
    settle(window)
    window.actions_by_name["layout"].trigger()  # Ctrl+L in the sub-model's tab
    select(window, node_named(window.graph, "tower_conv"))
    settle(window)
    shot(window, "siamese-5-submodel.png", _canvas_crop(window))
    window.tabs.setCurrentIndex(0)
    pump(100)

    from builder_app.core.project import save_project

    project_path = WORK / "siamese_digits.kproj"
    save_project(window.document.project, project_path)
    window.document.project.path = project_path
    data = write_pairs(WORK / "digit_pairs.npz")
    training = run_training(window, 10, data=str(data), name="siamese-6-training.png")
    print(f"  siamese training: {training.message.text()!r}")
    close_training(window)
    close(window)


def write_pairs(path: Path) -> Path:
    """The tutorial's pair data: x0, x1 (two digits each) and y (1.0 when they are the same digit)."""
    from builder_app.core.datasets import load_digits

    x, y = load_digits()
    rng = np.random.default_rng(0)
    n = 4000
    first = rng.integers(0, len(x), n)
    same = rng.random(n) < 0.5
    second = np.empty(n, dtype=np.int64)
    for i in range(n):
        pool = np.flatnonzero((y == y[first[i]]) == same[i])
        second[i] = rng.choice(pool)
    np.savez(path, x0=x[first], x1=x[second], y=(y[first] == y[second]).astype("float32"))
    return path


SCENES: dict[str, Callable[[], None]] = {
    "editor": scene_editor,
    "build": scene_build,
    "shape_error": scene_shape_error,
    "train": scene_train,
    "export": scene_export,
    "import": scene_import,
    "finetune": scene_finetune,
    "siamese": scene_siamese,
    "dark": scene_dark,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(SCENES)
    unknown = [name for name in chosen if name not in SCENES]
    if unknown:
        print(f"make_screenshots: unknown scene {', '.join(unknown)}; scenes: {', '.join(SCENES)}", file=sys.stderr)
        return 2
    app()
    WORK.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        started = time.monotonic()
        SCENES[name]()
        print(f"[{name}: {time.monotonic() - started:.0f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
