"""Finding a layer on the canvas: the matches of a name or class, and the find bar over the view.

:func:`find_nodes` is the search (no Qt, graph order); :class:`FindBar` is the small
bar Ctrl+F opens over a :class:`~builder_app.ui.editor.view.GraphView`. Jumping to a
match goes through ``GraphView.reveal``, the one way to bring a node into view.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.graph import ModelGraph


def find_nodes(graph: ModelGraph, text: str) -> list[str]:
    """The nodes whose layer name or class name contains ``text`` (case-insensitive), in graph order.

    Every call of a shared layer matches. Empty or blank text matches nothing.
    """
    wanted = text.strip().casefold()
    if not wanted:
        return []
    found = []
    for node_id in graph.nodes:
        layer = graph.layer_of(node_id)
        if wanted in layer.name.casefold() or wanted in layer.class_name.casefold():
            found.append(node_id)
    return found


def search_terms(graph: ModelGraph) -> list[str]:
    """What the completer offers: every layer name and every class name of ``graph``, sorted."""
    names = {layer.name for layer in graph.layers.values()}
    names |= {layer.class_name for layer in graph.layers.values()}
    return sorted(names, key=str.casefold)


class FindBar(QtWidgets.QFrame):
    """A search field over the canvas: Enter jumps to the next match, Shift+Enter back, Esc closes.

    The bar reads the view's graph each time the text changes or a jump is asked for,
    so edits made while it is open are found. ``count_label`` says "3 of 12".
    """

    def __init__(self, view: QtWidgets.QGraphicsView):
        super().__init__(view)
        self._view = view
        self._matches: list[str] = []
        self._current = -1
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.field = QtWidgets.QLineEdit()
        self.field.setPlaceholderText("Find a layer by name or class")
        self.field.setClearButtonEnabled(True)
        self.field.setMinimumWidth(220)
        self.field.installEventFilter(self)
        self.field.textChanged.connect(self._text_changed)
        self._terms = QtCore.QStringListModel(self)
        completer = QtWidgets.QCompleter(self._terms, self)
        completer.setCaseSensitivity(QtCore.Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(QtCore.Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QtWidgets.QCompleter.CompletionMode.PopupCompletion)
        completer.activated.connect(self._completed)
        self.field.setCompleter(completer)
        self.count_label = QtWidgets.QLabel()
        self.count_label.setMinimumWidth(64)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(6, 4, 4, 4)
        row.setSpacing(4)
        row.addWidget(self.field)
        row.addWidget(self.count_label)
        for text, tip, slot in (
            ("↑", "Previous match (Shift+Enter)", self.find_previous),
            ("↓", "Next match (Enter)", self.find_next),
            ("✕", "Close (Esc)", self.close_bar),
        ):
            button = QtWidgets.QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setAutoRaise(True)
            button.clicked.connect(slot)
            row.addWidget(button)
        self.hide()

    # ------------------------------------------------------------------ state
    @property
    def matches(self) -> list[str]:
        """The node ids the text matches now, in graph order."""
        return list(self._matches)

    @property
    def current(self) -> str | None:
        """The match jumped to last (None before the first jump)."""
        return self._matches[self._current] if 0 <= self._current < len(self._matches) else None

    def open(self) -> None:
        """Shows the bar with its text selected, ready for typing."""
        self._terms.setStringList(search_terms(self._view.graph_scene.graph))
        self.place()
        self.show()
        self.raise_()
        self.field.setFocus(QtCore.Qt.FocusReason.ShortcutFocusReason)
        self.field.selectAll()
        self._refind()

    def close_bar(self) -> None:
        self.hide()
        self._view.setFocus(QtCore.Qt.FocusReason.OtherFocusReason)

    def place(self) -> None:
        """Top right of the canvas, clear of the scroll bar."""
        self.adjustSize()
        viewport = self._view.viewport()
        self.move(max(0, viewport.width() - self.width() - 10), 10)

    # ------------------------------------------------------------------ jumps
    def find_next(self) -> str | None:
        """Jumps to the next match (wrapping round); returns it, or None when nothing matches."""
        return self._step(+1)

    def find_previous(self) -> str | None:
        """Jumps to the previous match (wrapping round); returns it, or None when nothing matches."""
        return self._step(-1)

    def _step(self, direction: int) -> str | None:
        was = self.current
        self._refind()
        if not self._matches:
            return None
        if was in self._matches:
            self._current = (self._matches.index(was) + direction) % len(self._matches)
        else:
            self._current = 0 if direction > 0 else len(self._matches) - 1
        node_id = self._matches[self._current]
        self._view.reveal(node_id)
        self._show_count()
        return node_id

    def _text_changed(self, _text: str) -> None:
        self._current = -1
        self._refind()

    def _completed(self, text: str) -> None:
        if self.field.text() != text:
            self.field.setText(text)
        self.find_next()

    def _refind(self) -> None:
        was = self.current
        self._matches = find_nodes(self._view.graph_scene.graph, self.field.text())
        self._current = self._matches.index(was) if was in self._matches else -1
        self._show_count()

    def _show_count(self) -> None:
        total = len(self._matches)
        if not self.field.text().strip():
            text = ""
        elif not total:
            text = "no match"
        elif self._current < 0:
            text = f"{total} match{'es' * (total != 1)}"
        else:
            text = f"{self._current + 1} of {total}"
        self.count_label.setText(text)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.field and event.type() == QtCore.QEvent.Type.KeyPress:
            popup = self.field.completer().popup()
            if popup is not None and popup.isVisible():
                return False  # Enter picks the completion; Esc closes the popup
            key = event.key()
            if key in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
                if event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
                    self.find_previous()
                else:
                    self.find_next()
                return True
            if key == QtCore.Qt.Key.Key_Escape:
                self.close_bar()
                return True
        if watched is self.field and event.type() == QtCore.QEvent.Type.ShortcutOverride:
            if event.matches(QtGui.QKeySequence.StandardKey.Find):  # Ctrl+F again: select the text
                self.field.selectAll()
                event.accept()
                return True
        return super().eventFilter(watched, event)
