"""Colours, fonts and icons: one colour per layer category, light and dark following the system."""

from __future__ import annotations

import functools
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

#: ``resources/`` beside the package (an editable install keeps it there).
RESOURCES = Path(__file__).resolve().parents[2] / "resources"
ICONS = RESOURCES / "icons"

#: One colour per palette category (catalog.CATEGORIES), readable on light and dark canvases.
CATEGORY_COLORS = {
    "Input": "#f59e0b",
    "Core": "#3b82f6",
    "Convolution": "#10b981",
    "Pooling": "#14b8a6",
    "Normalization": "#a855f7",
    "Regularization": "#64748b",
    "Activation": "#ef4444",
    "Merge": "#eab308",
    "Reshaping": "#06b6d4",
    "Recurrent": "#f97316",
    "Attention": "#ec4899",
    "Embedding": "#84cc16",
    "Preprocessing": "#0ea5e9",
    "Augmentation": "#8b5cf6",
    "Wrappers": "#d946ef",
    "Model": "#6366f1",
    "Blocks": "#22c55e",
    "Operations": "#78716c",
}
_FALLBACK = "#94a3b8"
ERROR = QtGui.QColor("#e5484d")
WARNING = QtGui.QColor("#f5a524")


def category_color(category: str) -> QtGui.QColor:
    return QtGui.QColor(CATEGORY_COLORS.get(category, _FALLBACK))


@functools.cache
def icon(name: str) -> QtGui.QIcon:
    """An icon from ``resources/icons/NAME.svg`` (empty if missing)."""
    path = ICONS / f"{name}.svg"
    return QtGui.QIcon(str(path)) if path.exists() else QtGui.QIcon()


def is_dark() -> bool:
    app = QtGui.QGuiApplication.instance()
    if app is None:
        return False
    scheme = QtGui.QGuiApplication.styleHints().colorScheme()
    if scheme == QtCore.Qt.ColorScheme.Dark:
        return True
    if scheme == QtCore.Qt.ColorScheme.Light:
        return False
    return app.palette().color(QtGui.QPalette.ColorRole.Window).lightness() < 128


class CanvasColors:
    """The canvas's colours for the current scheme."""

    def __init__(self, dark: bool):
        self.dark = dark
        if dark:
            self.background = QtGui.QColor("#1b1e24")
            self.grid = QtGui.QColor("#252932")
            self.grid_major = QtGui.QColor("#2e333d")
            self.node = QtGui.QColor("#2a2f38")
            self.node_border = QtGui.QColor("#3d4450")
            self.text = QtGui.QColor("#e6e8eb")
            self.muted = QtGui.QColor("#9aa3af")
            self.wire = QtGui.QColor("#7b8594")
            self.selection = QtGui.QColor("#60a5fa")
        else:
            self.background = QtGui.QColor("#f6f7f9")
            self.grid = QtGui.QColor("#eceef2")
            self.grid_major = QtGui.QColor("#dfe2e8")
            self.node = QtGui.QColor("#ffffff")
            self.node_border = QtGui.QColor("#cfd4dc")
            self.text = QtGui.QColor("#1f2430")
            self.muted = QtGui.QColor("#687080")
            self.wire = QtGui.QColor("#8a93a3")
            self.selection = QtGui.QColor("#2563eb")


def canvas_colors(dark: bool | None = None) -> CanvasColors:
    return CanvasColors(is_dark() if dark is None else dark)


def apply_style(app: QtWidgets.QApplication) -> None:
    """Fusion with a palette following the system's light or dark scheme."""
    app.setStyle("Fusion")
    if not is_dark():
        return
    palette = QtGui.QPalette()
    role = QtGui.QPalette.ColorRole
    for r, colour in (
        (role.Window, "#23262d"), (role.WindowText, "#e6e8eb"), (role.Base, "#1b1e24"),
        (role.AlternateBase, "#262a31"), (role.ToolTipBase, "#2a2f38"), (role.ToolTipText, "#e6e8eb"),
        (role.Text, "#e6e8eb"), (role.Button, "#2a2f38"), (role.ButtonText, "#e6e8eb"),
        (role.Highlight, "#2563eb"), (role.HighlightedText, "#ffffff"), (role.PlaceholderText, "#7b8594"),
    ):
        palette.setColor(r, QtGui.QColor(colour))
    app.setPalette(palette)
