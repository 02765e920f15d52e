"""The editor window's exports: every exporter of the registry, and the diagram as PNG or SVG.

A mixin of :class:`~builder_app.ui.editor.window.EditorWindow`. Which exports
exist, their suffixes, file filters and writers come from
:mod:`builder_app.exporters.registry` (the same table the ``export`` command
reads); only the diagram is drawn here, by the canvas's own painting code.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from builder_app.exporters.registry import EXPORTERS, export
from builder_app.ui.render import render_scene

#: The diagram's exports (drawn by the canvas's painting code, so not in the
#: Qt-free exporter registry): kind -> (menu entry, suffix, file-dialog filter).
DIAGRAM_EXPORTS = {
    "png": ("Diagram as PNG…", ".png", "PNG image (*.png)"),
    "svg": ("Diagram as SVG…", ".svg", "SVG image (*.svg)"),
}


def export_kinds() -> list[tuple[str, str]]:
    """Every export the window offers: (kind, menu entry), the model's first, then the diagram's."""
    return [(kind, exporter.label) for kind, exporter in EXPORTERS.items()] + [
        (kind, entry[0]) for kind, entry in DIAGRAM_EXPORTS.items()
    ]


class Exports:
    """The File > Export commands (mixed into the window)."""

    def export_dialog(self, kind: str) -> None:
        if kind in EXPORTERS:
            exporter = EXPORTERS[kind]
            suffix, file_filter = exporter.suffix, exporter.file_filter
        else:
            _, suffix, file_filter = DIAGRAM_EXPORTS[kind]
        start = str(Path(self._last_dir()) / f"{self.document.graph.name}{suffix}")
        if file_filter is None:  # a directory (SavedModel)
            title = f"Export {EXPORTERS[kind].label.rstrip('…')} (a directory)"
            path = QtWidgets.QFileDialog.getSaveFileName(self, title, start)[0]
        else:
            path = QtWidgets.QFileDialog.getSaveFileName(self, "Export", start, file_filter)[0]
        if path:
            self.export_to(kind, Path(path))

    def export_to(self, kind: str, path: Path) -> bool:
        """Exports the model (or the current diagram) to ``path``; errors are shown, never raised."""
        if kind in DIAGRAM_EXPORTS:
            if self.document.is_computing:  # a big model's first pass: the diagram shows its shapes
                QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
                try:
                    self.document.attach_engine(background=False)
                finally:
                    QtWidgets.QApplication.restoreOverrideCursor()
            try:
                render_scene(self.current_scene(), path, fmt=kind)
            except Exception as exc:  # noqa: BLE001 - RenderError or OSError: shown in one line
                self._error("Cannot export diagram", str(exc))
                return False
            self.statusBar().showMessage(f"Diagram written to {path}", 6000)
            return True
        engine = self.document.engine
        if engine is None:
            self._error("Cannot export yet", "Keras is still loading; try again in a moment.")
            return False
        reason = EXPORTERS[kind].unavailable()
        if reason:
            self._error("Cannot export", reason)
            return False
        problems = engine.errors()
        if problems:
            where, message = problems[0]
            self._error("Cannot export", f"the model is invalid at '{self.document.graph.label(where) if where else 'model'}': {message}")
            return False
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            export(kind, self.document.project, path)
        except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one line
            self._error("Export failed", f"{path.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return False
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.statusBar().showMessage(f"Exported {path}", 6000)
        return True

