"""The Help menu's contents: the user guide, the keyboard shortcuts and the examples.

The guide is Markdown shipped beside this module (``user_guide.md``). The shortcuts
table is read from a window's menus when it is opened, so it always shows the
shortcuts the window really has (a platform's own bindings included).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.ui import theme

GUIDE = Path(__file__).with_name("user_guide.md")
EXAMPLES = theme.RESOURCES / "examples"

#: Canvas gestures that are no menu command (the shortcuts table lists them after the menus').
GESTURES = (
    ("Canvas", "Search for a layer and insert it", "Tab, or double-click empty canvas"),
    ("Canvas", "Delete the selection", "Del, Backspace"),
    ("Canvas", "Pan", "Middle button drag, or Space + drag"),
    ("Canvas", "Zoom", "Mouse wheel"),
    ("Canvas", "Connect two layers", "Drag from an output port to an input port"),
    ("Canvas", "Open a sub-model or expand a block", "Double-click it"),
)


def guide_markdown() -> str:
    """The user guide's text (Markdown)."""
    try:
        return GUIDE.read_text(encoding="utf-8")
    except OSError as exc:
        return f"# User guide\n\nThe guide could not be read from {GUIDE}: {exc.strerror or exc}."


@dataclass(frozen=True)
class ShortcutRow:
    menu: str
    command: str
    keys: str


_KEY = QtCore.Qt.Key
#: Keys of special keyboards (an "Undo" or "Copy" key): real bindings, but noise in the table.
DEDICATED_KEYS = frozenset({
    _KEY.Key_New, _KEY.Key_Open, _KEY.Key_Save, _KEY.Key_Close, _KEY.Key_Undo, _KEY.Key_Redo,
    _KEY.Key_Copy, _KEY.Key_Cut, _KEY.Key_Paste, _KEY.Key_Find, _KEY.Key_ZoomIn, _KEY.Key_ZoomOut,
    _KEY.Key_Help, _KEY.Key_Exit,
})


def _typed(sequence: QtGui.QKeySequence) -> bool:
    """Whether a key sequence is typed on an ordinary keyboard (not a dedicated "Undo" key)."""
    return not sequence.isEmpty() and sequence[0].key() not in DEDICATED_KEYS


def _plain(text: str) -> str:
    """A menu text without its mnemonic marks and trailing ellipsis."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").strip()


def shortcut_rows(window: QtWidgets.QMainWindow) -> list[ShortcutRow]:
    """Every command of ``window``'s menus that has a shortcut, in menu order, with all its typed keys."""
    rows: list[ShortcutRow] = []
    seen: set[int] = set()

    def walk(menu: QtWidgets.QMenu, path: str) -> None:
        for action in menu.actions():
            sub = action.menu()
            if sub is not None:
                walk(sub, f"{path} › {_plain(action.text())}")
                continue
            native = QtGui.QKeySequence.SequenceFormat.NativeText
            keys = [k.toString(native) for k in action.shortcuts() if _typed(k)]
            if action.isSeparator() or not keys or id(action) in seen:
                continue
            seen.add(id(action))
            rows.append(ShortcutRow(path, _plain(action.text()), ", ".join(keys)))

    for action in window.menuBar().actions():
        if action.menu() is not None:
            walk(action.menu(), _plain(action.text()))
    return rows


def shortcuts_html(rows: list[ShortcutRow]) -> str:
    """The shortcuts as an HTML table: the menus' commands, then the canvas gestures."""
    lines = ["<h2>Keyboard shortcuts</h2>", "<table cellspacing='0' cellpadding='4'>"]
    last = None
    for menu, command, keys in [(r.menu, r.command, r.keys) for r in rows] + list(GESTURES):
        if menu != last:
            lines.append(f"<tr><td colspan='2'><br><b>{html.escape(menu)}</b></td></tr>")
            last = menu
        lines.append(f"<tr><td>{html.escape(command)}</td><td><tt>{html.escape(keys)}</tt></td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def examples() -> list[Path]:
    """The example projects shipped with the app, by name."""
    return sorted(EXAMPLES.glob("*.kproj")) if EXAMPLES.is_dir() else []


class HelpDialog(QtWidgets.QDialog):
    """A window of help text (the guide, or the shortcuts); links open in the browser."""

    def __init__(self, title: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.browser = QtWidgets.QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        column = QtWidgets.QVBoxLayout(self)
        column.addWidget(self.browser)
        column.addWidget(buttons)
        self.resize(720, 640)

    def show_markdown(self, text: str) -> None:
        self.browser.setMarkdown(text)

    def show_html(self, text: str) -> None:
        self.browser.setHtml(text)

    def text(self) -> str:
        """What the dialog shows, as plain text."""
        return self.browser.toPlainText()


def guide_dialog(parent: QtWidgets.QWidget | None = None) -> HelpDialog:
    dialog = HelpDialog("builder-app user guide", parent)
    dialog.show_markdown(guide_markdown())
    return dialog


def shortcuts_dialog(window: QtWidgets.QMainWindow) -> HelpDialog:
    dialog = HelpDialog("Keyboard shortcuts", window)
    dialog.show_html(shortcuts_html(shortcut_rows(window)))
    dialog.resize(560, 720)
    return dialog


def keep_open(dialog: QtWidgets.QDialog) -> QtWidgets.QDialog:
    """Shows a help window beside the editor (not modal) and deletes it once closed."""
    dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    dialog.raise_()
    return dialog
