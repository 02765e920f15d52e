"""The layer palette beside the canvas and the quick-add popup the canvas opens.

Both list the same entries: the model's Input, every layer of the catalog by
category, and the composite blocks of :mod:`builder_app.core.blocks`. An entry is
named by its *payload*, the string a drag carries (mime type :data:`LAYER_MIME`)
and the signals send: a Keras class name (``"Conv2D"``, ``"InputLayer"``) or
``"block:"`` and a block's name (``"block:Residual block"``).

Both fill themselves from the first frame when the catalog is cached
(:func:`builder_app.core.catalog.load_cached`: the user's cache or the copy shipped
for the pinned Keras), without importing Keras. Where this Keras has no cached
catalog yet they show a disabled "Loading Keras…" line, and fill in when
:meth:`Palette.populate` / :meth:`QuickAdd.populate` are called once Keras is ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core import catalog
from builder_app.core.blocks import BLOCKS
from builder_app.core.graph import INPUT_CLASS
from builder_app.ui.theme import category_color

#: Mime type of a palette drag; the data is the payload as UTF-8.
LAYER_MIME = "application/x-builder-app-layer"
#: Prefix of a block's payload.
BLOCK_PREFIX = "block:"
#: The palette's category holding the composite blocks (shown last).
BLOCKS_CATEGORY = "Blocks"
LOADING_TEXT = "Loading Keras…"

_PAYLOAD_ROLE = QtCore.Qt.ItemDataRole.UserRole
_CATEGORY_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
_QUICK_ADD_LIMIT = 60


@dataclass(frozen=True)
class Entry:
    """One thing the palette offers.

    Attributes:
        payload: What a drag carries and the signals send.
        title: The text shown.
        category: The palette category it is listed under.
        description: One line, shown as the tooltip.
        color: The category whose colour its swatch has (the canvas's for a node).
        names: The names a search matches first (title, class name), lower case.
    """

    payload: str
    title: str
    category: str
    description: str
    color: str
    names: tuple[str, ...]


def palette_entries() -> list[Entry]:
    """Every entry, in palette order: Input, then the catalog by category, then blocks.

    Reads the catalog: it imports Keras unless the catalog is loaded (see
    :func:`builder_app.core.catalog.is_loaded`).
    """
    found = [
        Entry(
            INPUT_CLASS,
            "Input",
            "Core",
            catalog.input_spec().description,
            "Input",
            ("input", INPUT_CLASS.lower()),
        )
    ]
    for name, spec in catalog.catalog().items():
        found.append(
            Entry(name, name, spec.category, spec.description, spec.category, (name.lower(),))
        )
    from builder_app.core import custom_code

    for name, cls in sorted(custom_code.active_classes().items()):  # the project's trusted code
        doc = (cls.__doc__ or "").strip().splitlines()
        description = doc[0] if doc else f"{name}, from {cls.__module__}.py"
        found.append(Entry(name, name, custom_code.CUSTOM_CATEGORY, description, custom_code.CUSTOM_CATEGORY,
                           (name.lower(),)))
    for name, block in BLOCKS.items():
        found.append(
            Entry(
                BLOCK_PREFIX + name,
                name,
                BLOCKS_CATEGORY,
                block.description,
                BLOCKS_CATEGORY,
                (name.lower(),),
            )
        )
    return found


def _is_subsequence(needle: str, haystack: str) -> bool:
    rest = iter(haystack)
    return all(ch in rest for ch in needle)


def _token_rank(entry: Entry, token: str, fuzzy: bool) -> int | None:
    names = entry.names
    if token in names:
        return 0
    if any(name.startswith(token) for name in names):
        return 1
    if any(token in name for name in names):
        return 2
    if token in entry.category.lower():
        return 3
    if token in entry.description.lower():
        return 4
    if fuzzy and any(_is_subsequence(token, name) for name in names):
        return 5
    return None


def rank(entry: Entry, query: str, fuzzy: bool = False) -> int | None:
    """How well ``entry`` matches ``query`` (lower is better), or None for no match.

    Every word of the query must match, case-insensitively: the name exactly (0),
    as a prefix (1), anywhere in the name (2), in the category (3), in the
    description (4), or with ``fuzzy`` as a subsequence of the name (5). An entry
    ranks as its worst-matching word.
    """
    worst = 0
    for token in query.lower().split():
        found = _token_rank(entry, token, fuzzy)
        if found is None:
            return None
        worst = max(worst, found)
    return worst


def search(entries: Sequence[Entry], query: str, fuzzy: bool = False) -> list[Entry]:
    """The entries matching ``query``, best first; all of them for an empty query.

    Ties go to the shorter title (``Conv2D`` before ``Conv2DTranspose``), then
    to palette order.
    """
    if not query.split():
        return list(entries)
    ranked = []
    for i, entry in enumerate(entries):
        found = rank(entry, query, fuzzy)
        if found is not None:
            ranked.append(((found, len(entry.title), i), entry))
    return [entry for _, entry in sorted(ranked, key=lambda pair: pair[0])]


_swatches: dict[str, QtGui.QIcon] = {}


def swatch(category: str) -> QtGui.QIcon:
    """A small rounded square in the category's colour."""
    icon = _swatches.get(category)
    if icon is None:
        size = 12
        pixmap = QtGui.QPixmap(size, size)
        pixmap.fill(QtCore.Qt.GlobalColor.transparent)
        painter = QtGui.QPainter(pixmap)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        painter.setBrush(category_color(category))
        painter.drawRoundedRect(QtCore.QRectF(1, 1, size - 2, size - 2), 3, 3)
        painter.end()
        icon = _swatches[category] = QtGui.QIcon(pixmap)
    return icon


def mime_data(payload: str) -> QtCore.QMimeData:
    """The mime data of a drag carrying ``payload``."""
    data = QtCore.QMimeData()
    data.setData(LAYER_MIME, QtCore.QByteArray(payload.encode("utf-8")))
    return data


def payload_from_mime(data: QtCore.QMimeData) -> str | None:
    """The payload a drop carries, or None when it is not a palette drag."""
    if not data.hasFormat(LAYER_MIME):
        return None
    return bytes(data.data(LAYER_MIME).data()).decode("utf-8", errors="replace")


def _loading_item() -> QtWidgets.QTreeWidgetItem:
    item = QtWidgets.QTreeWidgetItem([LOADING_TEXT])
    item.setFlags(QtCore.Qt.ItemFlag.NoItemFlags)
    return item


class _Tree(QtWidgets.QTreeWidget):
    """The palette's tree: drags carry the payload of the dragged entry."""

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt's name
        return [LAYER_MIME]

    def mimeData(self, items: Sequence[QtWidgets.QTreeWidgetItem]) -> QtCore.QMimeData:  # noqa: N802
        payloads = [item.data(0, _PAYLOAD_ROLE) for item in items]
        payloads = [p for p in payloads if p]
        return mime_data(payloads[0]) if payloads else QtCore.QMimeData()

    def supportedDropActions(self) -> QtCore.Qt.DropAction:  # noqa: N802 - Qt's name
        return QtCore.Qt.DropAction.CopyAction


class Palette(QtWidgets.QWidget):
    """The layer palette: a search box over a tree of layers and blocks by category.

    Signals:
        activated(str): An entry's payload, on double-click or Enter.
    """

    activated = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self._entries: list[Entry] = []
        # Which categories the user opened, kept while a search expands others.
        self._expanded: set[str] = {"Core"}
        self._searching = False

        self.search_box = QtWidgets.QLineEdit()
        self.search_box.setPlaceholderText("Search layers (Ctrl+F)")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(self._refresh)
        self.search_box.installEventFilter(self)

        self.tree = _Tree()
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QtWidgets.QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(QtCore.Qt.DropAction.CopyAction)
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self.tree.itemExpanded.connect(lambda item: self._remember(item, True))
        self.tree.itemCollapsed.connect(lambda item: self._remember(item, False))
        self.tree.installEventFilter(self)
        self.tree.addTopLevelItem(_loading_item())

        shortcut = QtGui.QShortcut(QtGui.QKeySequence.StandardKey.Find, self)
        shortcut.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(self.focus_search)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.search_box)
        layout.addWidget(self.tree)
        if catalog.load_cached():  # the first frame lists the layers; Keras comes later
            self.populate()

    # ----------------------------------------------------------------- filling
    def populate(self, entries: Iterable[Entry] | None = None) -> None:
        """Lists the catalog's layers and the blocks (Keras must be importable).

        The same entries again change nothing (the tree, its scroll and the
        current entry stay as the user left them).

        Args:
            entries: What to list; by default :func:`palette_entries`.
        """
        entries = list(palette_entries() if entries is None else entries)
        if entries == self._entries:
            return
        self._entries = entries
        self._refresh()

    def is_populated(self) -> bool:
        return bool(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def _refresh(self) -> None:
        if not self._entries:
            return
        query = self.search_box.text()
        self._searching = bool(query.split())
        hits = search(self._entries, query)
        order = {c: i for i, c in enumerate([*catalog.CATEGORIES, BLOCKS_CATEGORY])}
        groups: dict[str, list[Entry]] = {}
        for entry in hits:
            groups.setdefault(entry.category, []).append(entry)
        categories = list(groups)  # by best hit while searching
        if not self._searching:
            categories.sort(key=lambda c: order.get(c, len(order)))
        tree = self.tree
        tree.setUpdatesEnabled(False)
        try:
            tree.clear()
            for category in categories:
                top = QtWidgets.QTreeWidgetItem([category])
                top.setData(0, _CATEGORY_ROLE, category)
                top.setIcon(0, swatch(category))
                top.setFlags(QtCore.Qt.ItemFlag.ItemIsEnabled)
                font = top.font(0)
                font.setBold(True)
                top.setFont(0, font)
                for entry in groups[category]:
                    top.addChild(self._make_item(entry))
                tree.addTopLevelItem(top)
                top.setExpanded(self._searching or category in self._expanded)
            if not categories:
                empty = QtWidgets.QTreeWidgetItem([f"No layer matches “{query.strip()}”"])
                empty.setFlags(QtCore.Qt.ItemFlag.NoItemFlags)
                tree.addTopLevelItem(empty)
            first = self.first_hit()
            if self._searching and first is not None:
                tree.setCurrentItem(first)
        finally:
            tree.setUpdatesEnabled(True)

    @staticmethod
    def _make_item(entry: Entry) -> QtWidgets.QTreeWidgetItem:
        item = QtWidgets.QTreeWidgetItem([entry.title])
        item.setData(0, _PAYLOAD_ROLE, entry.payload)
        item.setToolTip(0, entry.description)
        item.setIcon(0, swatch(entry.color))
        item.setFlags(
            QtCore.Qt.ItemFlag.ItemIsEnabled
            | QtCore.Qt.ItemFlag.ItemIsSelectable
            | QtCore.Qt.ItemFlag.ItemIsDragEnabled
        )
        return item

    def _remember(self, item: QtWidgets.QTreeWidgetItem, expanded: bool) -> None:
        category = item.data(0, _CATEGORY_ROLE)
        if category and not self._searching:
            (self._expanded.add if expanded else self._expanded.discard)(category)

    # ---------------------------------------------------------------- reading
    @staticmethod
    def payload_of(item: QtWidgets.QTreeWidgetItem | None) -> str | None:
        """The payload of an entry's item; None for a category or message."""
        return item.data(0, _PAYLOAD_ROLE) if item is not None else None

    def mime_data_for(self, item: QtWidgets.QTreeWidgetItem) -> QtCore.QMimeData:
        """The mime data a drag of ``item`` carries."""
        return self.tree.mimeData([item])

    def item_for(self, payload: str) -> QtWidgets.QTreeWidgetItem | None:
        """The listed item of an entry, or None when it is filtered out."""
        for item in self._leaf_items():
            if self.payload_of(item) == payload:
                return item
        return None

    def visible_categories(self) -> list[str]:
        """The categories listed now, in display order."""
        tree = self.tree
        found = []
        for i in range(tree.topLevelItemCount()):
            category = tree.topLevelItem(i).data(0, _CATEGORY_ROLE)
            if category:
                found.append(category)
        return found

    def visible_payloads(self) -> list[str]:
        """The payloads listed now, in display order."""
        return [self.payload_of(item) for item in self._leaf_items()]

    def first_hit(self) -> QtWidgets.QTreeWidgetItem | None:
        return next(iter(self._leaf_items()), None)

    def _leaf_items(self) -> list[QtWidgets.QTreeWidgetItem]:
        tree = self.tree
        return [
            top.child(j)
            for i in range(tree.topLevelItemCount())
            for top in (tree.topLevelItem(i),)
            for j in range(top.childCount())
        ]

    # ----------------------------------------------------------------- acting
    def focus_search(self) -> None:
        self.search_box.setFocus(QtCore.Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def activate_current(self) -> bool:
        """Activates the current entry, else the first hit; False when there is none."""
        item = self.tree.currentItem()
        payload = self.payload_of(item) or self.payload_of(self.first_hit())
        if not payload:
            return False
        self.activated.emit(payload)
        return True

    def _on_double_click(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        payload = self.payload_of(item)
        if payload:
            self.activated.emit(payload)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        if event.type() != QtCore.QEvent.Type.KeyPress:
            return super().eventFilter(watched, event)
        key = event.key()
        enter = key in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter)
        if watched is self.search_box:
            if enter:
                self.activate_current()
                return True
            if key in (QtCore.Qt.Key.Key_Up, QtCore.Qt.Key.Key_Down):
                self._step(-1 if key == QtCore.Qt.Key.Key_Up else 1)
                return True
            if key == QtCore.Qt.Key.Key_Escape and self.search_box.text():
                self.search_box.clear()
                return True
        elif watched is self.tree and enter:
            item = self.tree.currentItem()
            if self.payload_of(item):
                self.activated.emit(self.payload_of(item))
            elif item is not None:
                item.setExpanded(not item.isExpanded())
            return True
        return super().eventFilter(watched, event)

    def _step(self, delta: int) -> None:
        """Moves the current entry from the search box, over listed entries only."""
        items = [i for i in self._leaf_items() if not i.parent() or i.parent().isExpanded()]
        if not items:
            return
        current = self.tree.currentItem()
        index = items.index(current) + delta if current in items else (0 if delta > 0 else -1)
        self.tree.setCurrentItem(items[max(0, min(index, len(items) - 1))])


class QuickAdd(QtWidgets.QFrame):
    """A popup for adding a layer by typing: what Tab or double-click on the canvas opens.

    Up/Down move, Enter chooses, Esc closes.

    Signals:
        chosen(str): The chosen entry's payload (as :data:`LAYER_MIME` carries).
    """

    chosen = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, QtCore.Qt.WindowType.Popup)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self._entries: list[Entry] = []

        self.search_box = QtWidgets.QLineEdit()
        self.search_box.setPlaceholderText("Add layer…")
        self.search_box.textChanged.connect(self._refresh)
        self.search_box.installEventFilter(self)

        self.list = QtWidgets.QListWidget()
        self.list.setUniformItemSizes(True)
        self.list.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.list.itemClicked.connect(self._choose_item)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.search_box)
        layout.addWidget(self.list)
        self.resize(320, 360)
        if catalog.load_cached():  # Tab works from the first frame too
            self._entries = palette_entries()
        self._refresh()

    def populate(self, entries: Iterable[Entry] | None = None) -> None:
        """Lists the catalog's layers and the blocks (Keras must be importable); the same ones again change nothing."""
        entries = list(palette_entries() if entries is None else entries)
        if entries == self._entries:
            return
        self._entries = entries
        self._refresh()

    def is_populated(self) -> bool:
        return bool(self._entries)

    def open_at(self, global_pos: QtCore.QPoint) -> None:
        """Opens empty at ``global_pos`` (kept on its screen) with the focus in the box."""
        self.search_box.clear()
        self._refresh()
        screen = QtGui.QGuiApplication.screenAt(global_pos) or self.screen()
        pos = QtCore.QPoint(global_pos)
        if screen is not None:
            area = screen.availableGeometry()
            pos.setX(max(area.left(), min(pos.x(), area.right() - self.width())))
            pos.setY(max(area.top(), min(pos.y(), area.bottom() - self.height())))
        self.move(pos)
        self.show()
        self.raise_()
        self.activateWindow()
        self.search_box.setFocus(QtCore.Qt.FocusReason.PopupFocusReason)

    def payloads(self) -> list[str]:
        """The payloads listed now, best first."""
        return [self.list.item(i).data(_PAYLOAD_ROLE) for i in range(self.list.count())
                if self.list.item(i).data(_PAYLOAD_ROLE)]

    def current_payload(self) -> str | None:
        item = self.list.currentItem()
        return item.data(_PAYLOAD_ROLE) if item is not None else None

    def _refresh(self) -> None:
        self.list.clear()
        if not self._entries:
            item = QtWidgets.QListWidgetItem(LOADING_TEXT)
            item.setFlags(QtCore.Qt.ItemFlag.NoItemFlags)
            self.list.addItem(item)
            return
        for entry in search(self._entries, self.search_box.text(), fuzzy=True)[:_QUICK_ADD_LIMIT]:
            item = QtWidgets.QListWidgetItem(swatch(entry.color), entry.title)
            item.setData(_PAYLOAD_ROLE, entry.payload)
            item.setToolTip(f"{entry.category}: {entry.description}")
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def _choose_item(self, item: QtWidgets.QListWidgetItem | None) -> None:
        payload = item.data(_PAYLOAD_ROLE) if item is not None else None
        if payload:
            self.close()
            self.chosen.emit(payload)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        if watched is self.search_box and event.type() == QtCore.QEvent.Type.KeyPress:
            key = event.key()
            if key in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
                self._choose_item(self.list.currentItem())
                return True
            if key == QtCore.Qt.Key.Key_Escape:
                self.close()
                return True
            if key in (QtCore.Qt.Key.Key_Up, QtCore.Qt.Key.Key_Down):
                count = self.list.count()
                if count:
                    step = -1 if key == QtCore.Qt.Key.Key_Up else 1
                    row = max(0, min(self.list.currentRow() + step, count - 1))
                    self.list.setCurrentRow(row)
                return True
        return super().eventFilter(watched, event)
