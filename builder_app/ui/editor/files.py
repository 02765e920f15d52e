"""The editor window's file commands: new, open, import, save, recent files.

A mixin of :class:`~builder_app.ui.editor.window.EditorWindow`: these methods read
and replace the window's document and report in its status bar; the project file
itself is :mod:`builder_app.core.project`'s business (atomic, versioned, checked).
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from builder_app.core.project import PROJECT_SUFFIX, ProjectLoadError, load_project, save_project
from builder_app.ui.editor.document import Document

MAX_RECENT = 10
PROJECT_FILTER = f"builder-app projects (*{PROJECT_SUFFIX})"
MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5 *.json)"


def settings() -> QtCore.QSettings:
    """The user's settings (recent files, window geometry)."""
    return QtCore.QSettings("builder-app", "builder-app")


class ProjectFiles:
    """Opening, importing and saving the window's project (mixed into the window)."""

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

    def import_path(self, path: Path) -> bool:
        from builder_app.importers.keras_file import ModelImportError, import_model

        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            result = import_model(path)
        except ModelImportError as exc:
            self._error("Cannot import model", str(exc))
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        result.project.path = None
        self.set_document(Document(result.project))
        self.document.mark_dirty()
        if result.warnings:
            self.statusBar().showMessage(f"Imported {path.name} with {len(result.warnings)} warning(s): {result.warnings[0]}", 15000)
        else:
            self.statusBar().showMessage(f"Imported {path.name}", 6000)
        return True

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
        return answer == buttons.Discard

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

