"""Colours, fonts and icons: one colour per layer category, light and dark following the system."""

from __future__ import annotations

import functools
from pathlib import Path

import shiboken6
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


#: View → Theme: follow the system's light or dark scheme, or always one of them.
THEMES = ("system", "light", "dark")
THEME_KEY = "view/theme"

#: The dark theme's window colours; the canvas and the plots use the same base and text.
_DARK_PALETTE = {
    # Fields (Base) a step lighter than the window, so that inputs and check boxes stand out.
    "Window": "#23262d", "WindowText": "#e6e8eb", "Base": "#2b2f37", "AlternateBase": "#30353e",
    "ToolTipBase": "#2a2f38", "ToolTipText": "#e6e8eb", "Text": "#e6e8eb", "Button": "#343a44",
    "ButtonText": "#e6e8eb", "BrightText": "#ffffff", "Highlight": "#2563eb", "HighlightedText": "#ffffff",
    "PlaceholderText": "#8b94a3", "Link": "#60a5fa", "LinkVisited": "#a78bfa",
    "Light": "#3a404b", "Midlight": "#323741", "Mid": "#2a2f38", "Dark": "#15171c", "Shadow": "#0b0c0f",
}
#: Disabled text in the dark theme: dimmer, still readable.
_DARK_DISABLED = "#6b7280"


def _settings() -> QtCore.QSettings:
    """The user's settings (the store :func:`builder_app.ui.editor.files.settings` opens too)."""
    return QtCore.QSettings("builder-app", "builder-app")


def chosen_theme() -> str:
    """What View → Theme says: "system" (the default), "light" or "dark"."""
    value = str(_settings().value(THEME_KEY, "system"))
    return value if value in THEMES else "system"


def system_is_dark() -> bool:
    """Whether the desktop asks for a dark scheme (Qt 6.5+ style hints, else its palette)."""
    app = QtGui.QGuiApplication.instance()
    if app is None:
        return False
    hints = QtGui.QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else None
    if scheme == QtCore.Qt.ColorScheme.Dark:
        return True
    if scheme == QtCore.Qt.ColorScheme.Light:
        return False
    palette = _SYSTEM_PALETTE[0] if _SYSTEM_PALETTE else app.palette()
    return palette.color(QtGui.QPalette.ColorRole.Window).lightness() < 128


def is_dark() -> bool:
    """Whether the app is drawn dark now: the chosen theme, or the system's for "system"."""
    choice = chosen_theme()
    if choice != "system":
        return choice == "dark"
    return system_is_dark()


#: The palette the platform gave the application, before the theme replaced it.
_SYSTEM_PALETTE: list[QtGui.QPalette] = []


class ThemeSignals(QtCore.QObject):
    """The application's one theme announcer.

    Signals:
        changed(bool): the theme switched; True when it is dark now. Every view that
            draws with the theme's colours (canvases, minimaps, plots) repaints on it.
    """

    changed = QtCore.Signal(bool)

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.dark = False  # the scheme views are drawn in now


_SIGNALS: list[ThemeSignals] = []


def signals() -> ThemeSignals:
    """The announcer of theme changes (one per application; made on first use)."""
    if _SIGNALS and shiboken6.isValid(_SIGNALS[0]):
        return _SIGNALS[0]
    app = QtCore.QCoreApplication.instance()
    _SIGNALS[:] = [ThemeSignals(app)]  # goes with the application
    _SIGNALS[0].dark = is_dark()  # what every view made until now was drawn in
    hints = QtGui.QGuiApplication.styleHints() if isinstance(app, QtGui.QGuiApplication) else None
    if hints is not None and hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(_system_scheme_changed)
    return _SIGNALS[0]


def _system_scheme_changed(*_args) -> None:
    if chosen_theme() == "system":
        app = QtWidgets.QApplication.instance()
        if isinstance(app, QtWidgets.QApplication):
            apply_style(app)


def dark_palette() -> QtGui.QPalette:
    """The dark theme's palette for the Fusion style."""
    palette = QtGui.QPalette()
    role, group = QtGui.QPalette.ColorRole, QtGui.QPalette.ColorGroup
    for name, colour in _DARK_PALETTE.items():
        palette.setColor(getattr(role, name), QtGui.QColor(colour))
    for name in ("WindowText", "Text", "ButtonText", "HighlightedText"):
        palette.setColor(group.Disabled, getattr(role, name), QtGui.QColor(_DARK_DISABLED))
    palette.setColor(group.Disabled, role.Highlight, QtGui.QColor("#3a404b"))
    return palette


def light_palette() -> QtGui.QPalette:
    """The light theme's palette: Fusion's own."""
    style = QtWidgets.QStyleFactory.create("Fusion")
    return style.standardPalette() if style is not None else QtGui.QPalette()


def set_theme(choice: str) -> bool:
    """Chooses View → Theme ("system", "light" or "dark"), remembers it and applies it at once.

    Returns whether the app is dark now.
    """
    if choice not in THEMES:
        raise ValueError(f"theme must be one of {', '.join(THEMES)}, not {choice!r}")
    signals()  # knows the theme being left, to announce the switch
    _settings().setValue(THEME_KEY, choice)
    app = QtWidgets.QApplication.instance()
    if isinstance(app, QtWidgets.QApplication):
        apply_style(app)
    return is_dark()


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
    """Fusion with the theme's palette; announces a switch between light and dark.

    Widgets that take their colours from the palette follow by themselves; the
    canvas, the minimap and the plots listen to :func:`signals`.
    """
    announcer = signals()
    if not _SYSTEM_PALETTE:
        _SYSTEM_PALETTE.append(QtGui.QPalette(app.palette()))
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    dark = is_dark()
    hints = QtGui.QGuiApplication.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+: native dialogs and title bars follow too
        wanted = {"dark": QtCore.Qt.ColorScheme.Dark, "light": QtCore.Qt.ColorScheme.Light}
        hints.setColorScheme(wanted.get(chosen_theme(), QtCore.Qt.ColorScheme.Unknown))
        dark = is_dark()  # "system" reads the desktop's own scheme again
    app.setPalette(dark_palette() if dark else light_palette())
    if announcer.dark != dark:
        announcer.dark = dark
        announcer.changed.emit(dark)


class PlotColors:
    """The plots' colours for the current theme: the palette's base and text, and text dimmed."""

    def __init__(self, dark: bool):
        self.dark = dark
        palette = dark_palette() if dark else light_palette()
        self.background = palette.color(QtGui.QPalette.ColorRole.Base)
        self.foreground = palette.color(QtGui.QPalette.ColorRole.Text)
        self.muted = QtGui.QColor(self.foreground)
        self.muted.setAlpha(150)


def plot_colors(dark: bool | None = None) -> PlotColors:
    """The training dashboard's background, text and muted colours (the current theme's by default)."""
    return PlotColors(is_dark() if dark is None else dark)
