"""The editor window's file commands: new, open, import, save, recent files.

A mixin of :class:`~builder_app.ui.editor.window.EditorWindow`: these methods read
and replace the window's document and report in its status bar; the project file
itself is :mod:`builder_app.core.project`'s business (atomic, versioned, checked).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from builder_app.core.graph import ModelGraph
from builder_app.core.project import (
    PROJECT_SUFFIX,
    Project,
    ProjectLoadError,
    load_project,
    save_project,
)
from builder_app.ui.editor.document import Document

MAX_RECENT = 10
PROJECT_FILTER = f"builder-app projects (*{PROJECT_SUFFIX})"
MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5 *.json)"


def settings() -> QtCore.QSettings:
    """The user's settings (recent files, window geometry)."""
    return QtCore.QSettings("builder-app", "builder-app")


class ImportJob(QtCore.QObject):
    """One model file imported on a worker thread; its signals fire on the GUI thread.

    ``previewed(job, graph)``: for a file with weights, the model as soon as its config
    is mapped, laid out and grouped as the import will be, without weights (a copy: the
    window may show and edit it). ``done(job, outcome)``: the
    :class:`~builder_app.importers.keras_file.ImportResult`, or the
    :class:`~builder_app.importers.keras_file.ModelImportError` whose one line says why not.
    ``import_model`` touches no widget and no open document: it builds its own graph and,
    for the weights, its own Keras model (Keras keeps its build state per thread), so it
    runs beside the GUI thread's shape passes. The window runs one job at a time.
    """

    previewed = QtCore.Signal(object, object)
    done = QtCore.Signal(object, object)

    #: Python's thread switch interval while an import runs (the default is 5 ms). The
    #: worker's Keras and h5py work holds the interpreter lock; switching more often
    #: lets the GUI thread paint between (``python -m benchmarks open``, ResNet50: the
    #: longest gap between frames 300-510 ms at 5 ms, 140-300 ms at 1 ms; the import
    #: itself up to a quarter slower, which the window, painting throughout, hides).
    #: A paint calls into Python once per canvas item, and each call waits for the lock
    #: up to this long: at 0.2 ms the gaps while importing were 60-152 ms on a machine
    #: with a load of 4 (75-227 ms at 1 ms, same load), the import no slower to see.
    SWITCH_INTERVAL = 0.0002

    def __init__(self, path: Path, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.path = path
        self._thread: threading.Thread | None = None
        #: The window's document showing the preview, and the project it replaced.
        self.preview: Document | None = None
        self.replaced: tuple[Project, bool] | None = None

    def start(self, *_args) -> None:
        """Starts the import (once; the loader's ready or failed signal may call it)."""
        if self._thread is not None:
            return
        # Not a daemon: a process exiting mid-import waits for it rather than tearing
        # TensorFlow down under a running thread (which aborts the process).
        self._thread = threading.Thread(target=self._run, name="model-import", daemon=False)
        self._thread.start()

    def _run(self) -> None:
        from builder_app.importers.keras_file import ModelImportError, import_model

        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, self.SWITCH_INTERVAL))
        try:
            outcome: object = import_model(self.path, on_graph=self._preview)
        except ModelImportError as exc:
            outcome = exc
        finally:
            sys.setswitchinterval(interval)
        try:
            self.done.emit(self, outcome)  # queued across threads: the slot runs on the GUI thread
        except RuntimeError:  # the window is gone: nobody takes the model
            pass

    def _preview(self, graph: ModelGraph) -> None:
        from builder_app.core import display

        copy = ModelGraph.from_dict(graph.to_dict())
        display.prepare_imported(copy)  # what the import does to its graph once the weights are in
        try:
            self.previewed.emit(self, copy)
        except RuntimeError:  # the window is gone
            pass


def adopt_weights(into: ModelGraph, source: ModelGraph) -> int:
    """Gives ``into``'s layers the weights of ``source``'s layers of the same name, class and config.

    Sub-models are followed. A layer edited since (its class or config differ) keeps
    what it has. Returns how many layers with weights were left out that way.
    """
    left_out = 0
    for name, layer in source.layers.items():
        target = into.layers.get(name)
        if layer.submodel is not None:
            if target is not None and target.submodel is not None:
                left_out += adopt_weights(target.submodel, layer.submodel)
            continue
        if not layer.weights:
            continue
        if target is None or target.class_name != layer.class_name or target.config != layer.config:
            left_out += 1
            continue
        target.weights = layer.weights
    return left_out


class ProjectFiles:
    """Opening, importing and saving the window's project (mixed into the window)."""

    #: The import running on its worker thread (one at a time), and the status bar's busy bar.
    _import_job: ImportJob | None = None
    _import_bar: QtWidgets.QProgressBar | None = None

    def new_project(self) -> None:
        if self.maybe_save():
            self.set_document(Document())

    def open_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open project", self._last_dir(), PROJECT_FILTER)
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path) -> bool:
        """Opens a project file; a broken file is reported and the current project stays."""
        try:
            project = load_project(path)
        except ProjectLoadError as exc:
            self._error("Cannot open project", str(exc))
            return False
        self.set_document(Document(project))
        self._add_recent(path)
        return True

    def import_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Import Keras model", self._last_dir(), MODEL_FILTER)
        if path:
            self.import_path(Path(path))

    def import_path(self, path: Path) -> ImportJob | None:
        """Starts importing a Keras model file on a worker thread; None if one is importing already.

        The window keeps painting and answering while the file is read, mapped and laid
        out (a busy bar in the status bar names the file). The model shows as soon as its
        config is mapped, as an unsaved project, and its weights follow. If the file cannot
        be imported, the one-line reason is reported and the project shown before comes back.
        """
        if self._import_job is not None:
            self.statusBar().showMessage(f"Not done: {self._import_job.path.name} is being imported", 8000)
            return None
        job = ImportJob(Path(path), self)
        job.previewed.connect(self._import_previewed)
        job.done.connect(self._import_done)
        self._import_job = job
        self._import_started_at = self._undo_state()
        self._show_import_progress(job.path)
        if self.loader.is_ready or self.loader.error is not None:
            job.start()
        else:  # Keras is being imported on the loader's thread: the job imports nothing of its own
            self.loader.ready.connect(job.start, QtCore.Qt.ConnectionType.SingleShotConnection)
            self.loader.failed.connect(job.start, QtCore.Qt.ConnectionType.SingleShotConnection)
        return job

    def is_importing(self) -> bool:
        """True while a model file is being imported on the worker thread."""
        return self._import_job is not None

    def _show_import_progress(self, path: Path) -> None:
        bar = self._import_bar
        if bar is None:
            self._import_label = QtWidgets.QLabel()
            bar = self._import_bar = QtWidgets.QProgressBar()
            bar.setRange(0, 0)  # busy: the importer reports no fraction done
            bar.setMaximumWidth(160)
            bar.setMaximumHeight(14)
            bar.setTextVisible(False)
            # Permanent: a status message (a shape pass, a refusal) must not hide them.
            self.statusBar().insertPermanentWidget(0, self._import_label)
            self.statusBar().insertPermanentWidget(1, bar)
        self._import_label.setText(f"Importing {path.name}…")
        self._import_label.show()
        bar.show()

    def _import_previewed(self, job: ImportJob, graph: ModelGraph) -> None:
        """Shows the imported model while its weights are read; edits to it are kept."""
        if job is not self._import_job or job.preview is not None:
            return
        # The window stayed editable: changes made meanwhile are asked about (again, at the end).
        if self._undo_state() != self._import_started_at and not self.maybe_save():
            return
        job.replaced = (self.document.project, self.document.is_dirty)
        self.set_document(Document(Project(graph)))
        self.document.mark_dirty()
        job.preview = self.document
        self._import_started_at = self._undo_state()
        self._import_label.setText(f"Importing {job.path.name}: reading the weights…")

    def _import_done(self, job: ImportJob, outcome: object) -> None:
        from builder_app.importers.keras_file import ModelImportError

        if job is not self._import_job:
            return
        self._import_job = None
        self._import_label.hide()
        self._import_bar.hide()
        showing = job.preview is not None and self.document is job.preview
        if isinstance(outcome, ModelImportError):
            if showing:  # the preview goes: the project it replaced comes back
                project, dirty = job.replaced
                self.agree_to_discard()  # the preview's autosave too: nothing in it is the user's
                self.set_document(Document(project))
                if dirty:
                    self.document.mark_dirty()
            self._error("Cannot import model", str(outcome))
            return
        result = outcome
        warnings = list(result.warnings)
        if showing:  # the window shows this model already: only its weights are new
            left_out = adopt_weights(self.document.graph, result.project.graph)
            if left_out:
                warnings.append(f"{left_out} layer(s) edited while the weights were read keep their own weights")
            self.document.mark_dirty()
        else:
            if self._undo_state() != self._import_started_at and not self.maybe_save():
                self.statusBar().showMessage(f"Import of {job.path.name} dropped; the project is kept", 8000)
                return
            result.project.path = None
            self.set_document(Document(result.project))
            self.document.mark_dirty()
        if warnings:
            self.statusBar().showMessage(f"Imported {job.path.name} with {len(warnings)} warning(s): {warnings[0]}", 15000)
        else:
            self.statusBar().showMessage(f"Imported {job.path.name}", 6000)

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self.save_to(self.document.path)

    def save_as(self) -> bool:
        start = str(self.document.path or Path(self._last_dir()) / f"{self.document.graph.name}{PROJECT_SUFFIX}")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save project", start, PROJECT_FILTER)
        if not path:
            return False
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(PROJECT_SUFFIX)
        return self.save_to(target)

    def save_to(self, path: Path) -> bool:
        try:
            save_project(self.document.project, path)
        except (OSError, ValueError) as exc:
            self._error("Cannot save project", f"{path}: {exc}")
            return False
        self.document.mark_saved(path)
        self._add_recent(path)
        self._release_recovery()  # saved: its recovery file goes
        self._claim_recovery()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def maybe_save(self) -> bool:
        """Asks about unsaved changes; False when the user cancels."""
        if self.document is None or not self.document.is_dirty:
            return True
        answer = self.ask_unsaved()
        buttons = QtWidgets.QMessageBox.StandardButton
        if answer == buttons.Save:
            return self.save()
        if answer == buttons.Discard:
            self.agree_to_discard()  # the autosave of these changes may go with them
            return True
        return False

    def ask_unsaved(self) -> QtWidgets.QMessageBox.StandardButton:
        buttons = QtWidgets.QMessageBox.StandardButton
        return QtWidgets.QMessageBox.question(
            self,
            "Unsaved changes",
            f"Save the changes to {self.document.title().rstrip(' *')}?",
            buttons.Save | buttons.Discard | buttons.Cancel,
            buttons.Save,
        )

    def _last_dir(self) -> str:
        path = self.document.path if self.document is not None else None
        return str(path.parent) if path else str(Path.cwd())

    def recent_files(self) -> list[str]:
        value = settings().value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []]

    def _add_recent(self, path: Path) -> None:
        recent = [str(Path(path).resolve())] + [p for p in self.recent_files() if p != str(Path(path).resolve())]
        settings().setValue("recent", recent[:MAX_RECENT])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.maybe_save() and self.open_path(Path(p)))

