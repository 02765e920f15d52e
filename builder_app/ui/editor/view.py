"""The canvas view: zoom, pan, rubber-band selection, drops from the palette, quick add, find, minimap."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.events import ChangeKind
from builder_app.core.graph import Edge
from builder_app.ui import theme
from builder_app.ui.editor.canvas import GraphScene, NodeItem, WireItem
from builder_app.ui.editor.files import settings
from builder_app.ui.editor.find import FindBar
from builder_app.ui.editor.palette import LAYER_MIME, payload_from_mime

MIN_ZOOM, MAX_ZOOM = 0.05, 3.0
#: What an empty canvas says, in its middle, until the first node is there.
EMPTY_HINT = (
    "Drag a layer from the Layers palette,\n"
    "press Tab to search for one,\n"
    "or open an example (Help → Examples)"
)
#: The zoom a jump to a node (find, a summary or problems row) shows it at, at least.
READABLE_ZOOM = 0.85


class GraphView(QtWidgets.QGraphicsView):
    """Shows a :class:`GraphScene`; every gesture becomes one undoable operation.

    Signals:
        quick_add_requested(QPoint, QPointF): Tab or a double-click on empty canvas,
            with the global and scene positions.
    """

    quick_add_requested = QtCore.Signal(QtCore.QPoint, QtCore.QPointF)
    zoom_changed = QtCore.Signal(float)

    def __init__(self, scene: GraphScene, parent: QtWidgets.QWidget | None = None):
        super().__init__(scene, parent)
        self.setRenderHints(QtGui.QPainter.RenderHint.Antialiasing | QtGui.QPainter.RenderHint.TextAntialiasing)
        self.setViewportUpdateMode(QtWidgets.QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlags(QtWidgets.QGraphicsView.OptimizationFlag.DontSavePainterState)
        self.setDragMode(QtWidgets.QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(QtCore.Qt.ItemSelectionMode.IntersectsItemShape)
        self.setTransformationAnchor(QtWidgets.QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QtWidgets.QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setAcceptDrops(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self._pan_from: QtCore.QPoint | None = None
        self._space = False
        self.minimap = Minimap(self)
        self.find_bar = FindBar(self)
        self._extend_scene()
        self._was_empty = self.is_empty()
        scene.document.graph_changed.connect(self._follow_emptiness)
        scene.theme_changed.connect(self._theme_changed)  # a method: Qt disconnects it when the view goes

    @property
    def graph_scene(self) -> GraphScene:
        return self.scene()  # type: ignore[return-value]

    def zoom(self) -> float:
        return self.transform().m11()

    # ------------------------------------------------------------ navigation
    def _extend_scene(self) -> None:
        """Leave room around the diagram so it can be panned past its edges."""
        rect = self.graph_scene.itemsBoundingRect().adjusted(-2000, -2000, 2000, 2000)
        self.setSceneRect(rect.united(QtCore.QRectF(-2000, -2000, 4000, 4000)))

    def fit(self) -> None:
        """Fit the whole diagram in view (never zooming in past 100%)."""
        self._extend_scene()
        rect = self.graph_scene.diagram_rect()
        if rect.isEmpty():
            self.resetTransform()
            self.centerOn(0, 0)
        else:
            # The part of the viewport the minimap leaves free: fitting under it would hide nodes.
            free = self._free_area(rect)
            zoom = min(free.width() / rect.width(), free.height() / rect.height(), 1.0)
            self.set_zoom(zoom)
            # Centre the diagram in the free part: shift the view's centre by the difference.
            offset = (QtCore.QRectF(self.viewport().rect()).center() - free.center()) / zoom
            self.centerOn(rect.center() + offset)
        self.zoom_changed.emit(self.zoom())
        self.minimap.refresh()

    def _free_area(self, rect: QtCore.QRectF) -> QtCore.QRectF:
        """The part of the viewport to fit ``rect`` into: beside or above/below the minimap.

        Fitting under the minimap would hide nodes; of the strip beside it and the
        strip above or below it, the one that lets the diagram be drawn larger wins.
        """
        whole = QtCore.QRectF(self.viewport().rect()).adjusted(8, 8, -8, -8)
        if not self.minimap.isVisible():
            return whole
        box = QtCore.QRectF(self.minimap.geometry())
        beside, across = QtCore.QRectF(whole), QtCore.QRectF(whole)
        if box.center().x() > whole.center().x():
            beside.setRight(box.left() - 8)
        else:
            beside.setLeft(box.right() + 8)
        if box.center().y() > whole.center().y():
            across.setBottom(box.top() - 8)
        else:
            across.setTop(box.bottom() + 8)

        def zoom(area: QtCore.QRectF) -> float:
            if area.width() <= 0 or area.height() <= 0:
                return 0.0
            return min(area.width() / rect.width(), area.height() / rect.height())

        best = max((beside, across), key=zoom)
        return best if zoom(best) > 0 else whole

    def reveal(self, node_id: str) -> bool:
        """Brings a node into view: expands a collapsed block holding it, selects it, centres it.

        The view zooms in to :data:`READABLE_ZOOM` when it is further out, and keeps
        its zoom when the text is readable already. The one way to jump to a node
        (find, the summary and problems rows). False when the graph has no such node.
        """
        item = self.graph_scene.expand_to(node_id)
        if item is None:
            return False
        self.graph_scene.select_nodes([node_id])
        self._extend_scene()  # an expanded block may reach past the old scene rect
        if self.zoom() < READABLE_ZOOM:
            self.set_zoom(READABLE_ZOOM)
        self.centerOn(item.sceneBoundingRect().center())
        self.minimap.refresh()
        return True

    def open_find(self) -> None:
        """Shows the find bar over the canvas (Ctrl+F)."""
        self.find_bar.open()

    def show_start(self, smallest: float = 0.6, readable: float = 0.85) -> None:
        """Fit the diagram; if its text would then be too small, show its inputs' end instead.

        The inputs' end is the diagram's top-left corner in either direction: top to
        bottom the inputs are at the top and a folded overview's first column on the
        left; left to right they are on the left and its first row at the top. Along a
        side the diagram fits in, it stays centred.
        """
        self.fit()
        rect = self.graph_scene.diagram_rect()
        if rect.isEmpty() or self.zoom() >= smallest:
            return
        self.set_zoom(readable)
        visible = self.mapToScene(self.viewport().rect()).boundingRect()

        def start(low: float, high: float, span: float) -> float:
            return (low + high) / 2 if high - low <= span else low + span / 2 - 20

        self.centerOn(
            start(rect.left(), rect.right(), visible.width()),
            start(rect.top(), rect.bottom(), visible.height()),
        )
        self.minimap.refresh()

    def set_zoom(self, zoom: float) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        factor = zoom / self.zoom()
        self.scale(factor, factor)
        self.zoom_changed.emit(self.zoom())
        self.minimap.refresh()

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:  # noqa: N802 - Qt's name
        if event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier:
            super().wheelEvent(event)
            return
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom() * (1.15**steps))
        event.accept()

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if event.button() == QtCore.Qt.MouseButton.MiddleButton or (
            self._space and event.button() == QtCore.Qt.MouseButton.LeftButton
        ):
            self._pan_from = event.position().toPoint()
            self.viewport().setCursor(QtCore.Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._pan_from is not None:
            delta = event.position().toPoint() - self._pan_from
            self._pan_from = event.position().toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            self.minimap.refresh()
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._pan_from is not None:
            self._pan_from = None
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self.itemAt(event.position().toPoint()) is None:
            self.quick_add_requested.emit(event.globalPosition().toPoint(), self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def event(self, event: QtCore.QEvent) -> bool:
        # Ctrl+F on the canvas finds a layer; elsewhere in the window it searches the palette.
        if event.type() == QtCore.QEvent.Type.ShortcutOverride and event.matches(QtGui.QKeySequence.StandardKey.Find):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.matches(QtGui.QKeySequence.StandardKey.Find):
            self.open_find()
            return
        key = event.key()
        if key == QtCore.Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(QtCore.Qt.CursorShape.OpenHandCursor)
            return
        if key == QtCore.Qt.Key.Key_Tab:
            self.request_quick_add()
            return
        if key in (QtCore.Qt.Key.Key_Delete, QtCore.Qt.Key.Key_Backspace):
            self.graph_scene.delete_selection()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() == QtCore.Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().unsetCursor()
            return
        super().keyReleaseEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 - Qt's names
        return False  # Tab belongs to quick add

    def request_quick_add(self) -> None:
        local = self.viewport().mapFromGlobal(QtGui.QCursor.pos())
        if not self.viewport().rect().contains(local):
            local = self.viewport().rect().center()
        self.quick_add_requested.emit(self.viewport().mapToGlobal(local), self.mapToScene(local))

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 - Qt's name
        super().scrollContentsBy(dx, dy)
        self.minimap.refresh()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.minimap.place()
        if self.find_bar.isVisible():
            self.find_bar.place()

    # ----------------------------------------------------------------- drops
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
            self._highlight_drop_wire(self.wire_at(event.position().toPoint()))
        else:
            super().dragMoveEvent(event)

    def dragLeaveEvent(self, event: QtGui.QDragLeaveEvent) -> None:  # noqa: N802 - Qt's name
        self._highlight_drop_wire(None)
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt's name
        if not event.mimeData().hasFormat(LAYER_MIME):
            super().dropEvent(event)
            return
        self._highlight_drop_wire(None)
        payload = payload_from_mime(event.mimeData())
        if payload is None:
            return
        wire = self.wire_at(event.position().toPoint())
        at = self.mapToScene(event.position().toPoint())
        edge = None
        if wire is not None:  # the new node is centred on the wire, as big as the node feeding it
            edge = wire.edge
            source = self.graph_scene.items_by_id.get(edge.src)
            if source is not None:
                at -= source.body().center()
        self.insert(payload, at, edge=edge)
        event.acceptProposedAction()

    def wire_at(self, point: QtCore.QPoint) -> WireItem | None:
        """The wire under a viewport point (a drop there splices into it); None over a node or empty canvas."""
        for item in self.items(point):
            if item.isVisible() and isinstance(item, WireItem):
                return item
            if isinstance(item, NodeItem):
                return None
        return None

    def _highlight_drop_wire(self, wire: WireItem | None) -> None:
        """Lights the wire a drop would splice into (drawn by :meth:`drawForeground`)."""
        changed = wire is not getattr(self, "_drop_wire", None)
        self._drop_wire = wire
        if changed:
            self.viewport().update()

    def _theme_changed(self, _dark: bool) -> None:
        self.viewport().update()

    # ------------------------------------------------------------ empty canvas
    def is_empty(self) -> bool:
        """Whether the graph shown has no nodes (the canvas then shows :meth:`empty_hint`)."""
        return len(self.graph_scene.graph) == 0

    def empty_hint(self) -> str:
        """The hint drawn on the canvas: :data:`EMPTY_HINT` while the graph is empty, else ""."""
        return EMPTY_HINT if self.is_empty() else ""

    def _follow_emptiness(self, change) -> None:
        # The hint is drawn over the viewport, not where items change: repaint it all when it comes or goes.
        if getattr(change, "graph", None) not in (None, self.graph_scene.graph):
            return
        empty = self.is_empty()
        if empty != self._was_empty:
            self._was_empty = empty
            self.viewport().update()

    def _draw_empty_hint(self, painter: QtGui.QPainter) -> None:
        text = self.empty_hint()
        if not text:
            return
        colors = self.graph_scene.colors
        painter.save()
        painter.resetTransform()  # viewport pixels: the hint keeps its size at any zoom
        font = QtGui.QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        painter.setFont(font)
        painter.setPen(colors.muted)
        painter.drawText(
            QtCore.QRectF(self.viewport().rect()).adjusted(24, 24, -24, -24),
            int(QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap),
            text,
        )
        painter.restore()

    def drawForeground(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:  # noqa: N802 - Qt's name
        super().drawForeground(painter, rect)
        self._draw_empty_hint(painter)
        wire = getattr(self, "_drop_wire", None)
        if wire is not None and wire.scene() is self.graph_scene:
            painter.setPen(QtGui.QPen(self.graph_scene.colors.selection, 4.0))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawPath(wire.path())

    def insert(
        self, payload: str, scene_pos: QtCore.QPointF, source: str | None = None, edge: Edge | None = None
    ) -> list[str]:
        """Adds a palette entry at a scene position; returns the new node ids ([] if refused).

        With ``edge`` (a drop onto a wire) it is spliced into that wire; with ``source``
        spliced in after that node (see :meth:`EditorController.insert`).
        """
        scene = self.graph_scene
        position = (round(scene_pos.x() / 10) * 10.0, round(scene_pos.y() / 10) * 10.0)
        outcome = scene.controller.insert(scene.graph, payload, position, source, edge=edge)
        if not outcome:
            return []
        scene.select_nodes(outcome.nodes[-1:])
        self.minimap.refresh()
        return list(outcome.nodes)


class Minimap(QtWidgets.QFrame):
    """The whole diagram small, in a corner; the visible part framed; click or drag to go there.

    The map takes the diagram's aspect ratio: its long side is :attr:`long_side` pixels
    (dragged with the grip on its inner corner, remembered in the settings), its short
    side follows the diagram down to :data:`MIN_SIDE`, so a tall top-to-bottom model is
    a tall map. Every node is drawn at least :data:`MIN_MARK` pixels wide, so a model of
    hundreds of layers in a long line still shows as a line, not as a blank box.

    The diagram is drawn into a pixmap when the scene changes (at most every 250 ms);
    scrolling only moves the frame, so a big model pans as smoothly as a small one.
    A node added where the map sits sends the map to another corner of the canvas.
    """

    DEFAULT_LONG, MIN_LONG, MAX_LONG = 220, 120, 480
    MIN_SIDE = 48
    MIN_MARK = 2.0
    GRIP = 12
    #: The corners tried, in order, when a new node lies under the map.
    CORNERS = ("bottom-right", "bottom-left", "top-left", "top-right")
    VISIBLE_KEY, SIZE_KEY = "minimap/visible", "minimap/long_side"

    def __init__(self, view: GraphView):
        super().__init__(view)
        self._view = view
        self._pixmap = QtGui.QPixmap()
        self._source = QtCore.QRectF()
        self._target = QtCore.QRectF()
        self.corner = self.CORNERS[0]
        self.long_side = self.remembered_long_side()
        self._resize_from: tuple[QtCore.QPointF, int] | None = None
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setToolTip("Overview: click to move there; drag the inner corner to resize")
        self.setMouseTracking(True)
        self._timer = QtCore.QTimer(self, singleShot=True, interval=250)
        self._timer.timeout.connect(self._redraw)
        # Methods, not lambdas: Qt disconnects them when the map goes (its scene may outlive it).
        view.graph_scene.changed.connect(self._scene_changed)
        view.graph_scene.document.graph_changed.connect(self._graph_changed)
        view.graph_scene.theme_changed.connect(self._theme_changed)
        self._fit_to(QtCore.QRectF())
        self._timer.start()

    # ------------------------------------------------------------- settings
    @classmethod
    def remembered_visible(cls) -> bool:
        """Whether the user last left the map shown (View → Overview Map)."""
        value = settings().value(cls.VISIBLE_KEY, True)
        return value not in (False, "false", "0", 0)

    @classmethod
    def remember_visible(cls, visible: bool) -> None:
        settings().setValue(cls.VISIBLE_KEY, bool(visible))

    @classmethod
    def remembered_long_side(cls) -> int:
        try:
            value = int(settings().value(cls.SIZE_KEY, cls.DEFAULT_LONG))
        except (TypeError, ValueError):
            value = cls.DEFAULT_LONG
        return min(cls.MAX_LONG, max(cls.MIN_LONG, value))

    def set_long_side(self, pixels: int, *, remember: bool = True) -> None:
        """Resizes the map (its long side, within bounds); the short side follows the diagram."""
        self.long_side = min(self.MAX_LONG, max(self.MIN_LONG, int(pixels)))
        if remember:
            settings().setValue(self.SIZE_KEY, self.long_side)
        self._fit_to(self._view.graph_scene.diagram_rect())
        self._redraw()

    # ------------------------------------------------------------- geometry
    def size_for(self, rect: QtCore.QRectF) -> QtCore.QSize:
        """The map's size for a diagram covering ``rect``: its aspect ratio, within bounds."""
        viewport = self._view.viewport()
        room = max(self.MIN_LONG, int(min(viewport.width(), viewport.height()) * 0.6))
        long_side = min(self.long_side, room)
        if rect.isEmpty():
            return QtCore.QSize(long_side, max(self.MIN_SIDE, round(long_side * 0.6)))
        wide = rect.width() >= rect.height()
        ratio = min(rect.width(), rect.height()) / max(rect.width(), rect.height())
        short_side = min(long_side, max(self.MIN_SIDE, round(long_side * ratio)))
        return QtCore.QSize(long_side, short_side) if wide else QtCore.QSize(short_side, long_side)

    def _fit_to(self, rect: QtCore.QRectF) -> None:
        size = self.size_for(rect)
        if size != self.size():
            self.setFixedSize(size)
        self.place()

    def place(self) -> None:
        """Puts the map in its corner of the canvas, 10 pixels in."""
        parent = self._view.viewport()
        right = parent.width() - self.width() - 10
        bottom = parent.height() - self.height() - 10
        x = 10 if self.corner.endswith("left") else right
        y = 10 if self.corner.startswith("top") else bottom
        self.move(max(0, x), max(0, y))

    def _rect_in(self, corner: str) -> QtCore.QRect:
        was = self.corner
        self.corner = corner
        self.place()
        rect = self.geometry()
        self.corner = was
        self.place()
        return rect

    def keep_clear_of(self, node_ids: list[str]) -> bool:
        """Moves the map to another corner when it would cover one of these nodes; True if it moved.

        Moving the map, not the view, keeps a dropped node where the user put it.
        """
        scene = self._view.graph_scene
        covered = []
        for node_id in node_ids:
            item = scene.items_by_id.get(node_id)
            if item is not None:
                covered.append(self._view.mapFromScene(item.sceneBoundingRect()).boundingRect())
        if not covered or not self.isVisible():
            return False
        if not any(r.intersects(self.geometry()) for r in covered):
            return False
        for corner in self.CORNERS:
            if corner != self.corner and not any(r.intersects(self._rect_in(corner)) for r in covered):
                self.corner = corner
                self.place()
                self.update()
                return True
        return False

    def _graph_changed(self, change) -> None:
        if change.kind != ChangeKind.ADD_NODE or change.graph is not self._view.graph_scene.graph:
            return
        nodes = sorted(change.nodes)
        # The scene adds its items after the document has relayed the change: look then.
        QtCore.QTimer.singleShot(0, self, lambda: self.keep_clear_of(nodes))

    def _theme_changed(self, _dark: bool) -> None:
        self._redraw()  # the cached diagram, in the new colours

    def _scene_changed(self, _rects) -> None:
        self._timer.start()

    def refresh(self) -> None:
        """The visible part moved: repaint the frame (the diagram is cached)."""
        self.update()

    # -------------------------------------------------------------- drawing
    def _redraw(self) -> None:
        if not self.isVisible():
            return
        scene = self._view.graph_scene
        if scene.document.is_computing:  # painting now would fight the shape pass for the GIL
            self._timer.start()
            return
        rect = scene.diagram_rect()
        self._fit_to(rect)
        ratio = self.devicePixelRatioF()
        self._pixmap = QtGui.QPixmap(self.size() * ratio)
        self._pixmap.setDevicePixelRatio(ratio)
        self._pixmap.fill(scene.colors.background)
        self._source = rect
        if rect.isEmpty():
            self._target = QtCore.QRectF()
        else:
            inner = QtCore.QRectF(self.rect()).adjusted(4, 4, -4, -4)
            scale = min(inner.width() / rect.width(), inner.height() / rect.height())
            size = QtCore.QSizeF(rect.width() * scale, rect.height() * scale)
            self._target = QtCore.QRectF(inner.center() - QtCore.QPointF(size.width() / 2, size.height() / 2), size)
            painter = QtGui.QPainter(self._pixmap)
            self._draw_diagram(painter, scale)
            painter.end()
        self.update()

    def _draw_diagram(self, painter: QtGui.QPainter, scale: float) -> None:
        """Wires as hairlines, nodes as blocks in their category's colour, none under MIN_MARK px.

        Drawn from the items (not ``scene.render``): at a few percent a node's own
        painting shrinks to nothing, and this costs a rectangle a node at any size.
        """
        scene = self._view.graph_scene
        transform = QtGui.QTransform()
        transform.translate(self._target.left(), self._target.top())
        transform.scale(scale, scale)
        transform.translate(-self._source.left(), -self._source.top())
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        wire_pen = QtGui.QPen(scene.colors.wire, 1.0)
        wire_pen.setCosmetic(True)
        frame_pen = QtGui.QPen(scene.colors.node_border, 1.0)
        frame_pen.setCosmetic(True)
        blocks: list[tuple[QtCore.QRectF, QtGui.QColor]] = []
        for item in scene.items():
            if item.parentItem() is not None or not item.isVisible():
                continue
            if isinstance(item, QtWidgets.QGraphicsPathItem):  # wires, and the wire being drawn
                painter.setPen(wire_pen)
                painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
                painter.drawPath(transform.map(item.sceneTransform().map(item.path())))
                continue
            mark = transform.mapRect(item.sceneBoundingRect())
            if item.zValue() < 1:  # frames behind the nodes (an expanded block): an outline
                painter.setPen(frame_pen)
                painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
                painter.drawRect(mark)
                continue
            grow_x = max(0.0, self.MIN_MARK - mark.width()) / 2
            grow_y = max(0.0, self.MIN_MARK - mark.height()) / 2
            blocks.append((mark.adjusted(-grow_x, -grow_y, grow_x, grow_y), self._colour_of(item)))
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        for mark, colour in blocks:  # over the wires
            painter.fillRect(mark, colour)

    def _colour_of(self, item: QtWidgets.QGraphicsItem) -> QtGui.QColor:
        colors = self._view.graph_scene.colors
        if item.isSelected():
            return QtGui.QColor(colors.selection)
        if isinstance(item, NodeItem):
            return QtGui.QColor(theme.ERROR if item.face.errors else theme.category_color(item.face.category))
        return QtGui.QColor(colors.node_border)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._timer.start()

    def _to_scene(self, point: QtCore.QPointF) -> QtCore.QPointF | None:
        if self._target.isEmpty():
            return None
        x = self._source.left() + (point.x() - self._target.left()) * self._source.width() / self._target.width()
        y = self._source.top() + (point.y() - self._target.top()) * self._source.height() / self._target.height()
        return QtCore.QPointF(x, y)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QtGui.QPainter(self)
        painter.drawPixmap(0, 0, self._pixmap)
        colour = self._view.graph_scene.colors.selection
        if not self._target.isEmpty():
            visible = self._view.mapToScene(self._view.viewport().rect()).boundingRect()
            top_left = self._from_scene(visible.topLeft())
            bottom_right = self._from_scene(visible.bottomRight())
            frame = QtCore.QRectF(top_left, bottom_right).intersected(QtCore.QRectF(self.rect()))
            fill = QtGui.QColor(colour)
            fill.setAlpha(40)
            painter.setPen(QtGui.QPen(colour, 1))
            painter.setBrush(fill)
            painter.drawRect(frame)
        # the resize grip: three short diagonals in the corner facing the canvas
        grip = self._grip_rect()
        painter.setPen(QtGui.QPen(self._view.graph_scene.colors.node_border, 1))
        for step in (4, 8, 12):
            if self.corner.endswith("right"):  # grip on the left
                a, b = QtCore.QPointF(grip.left(), grip.top() + step), QtCore.QPointF(grip.left() + step, grip.top())
            else:
                a, b = QtCore.QPointF(grip.right() - step, grip.top()), QtCore.QPointF(grip.right(), grip.top() + step)
            if self.corner.startswith("top"):  # the grip sits on the bottom edge instead
                a.setY(grip.bottom() - (a.y() - grip.top()))
                b.setY(grip.bottom() - (b.y() - grip.top()))
            painter.drawLine(a, b)
        painter.end()
        super().paintEvent(event)

    def _grip_rect(self) -> QtCore.QRectF:
        """The square, on the map's corner facing the middle of the canvas, that resizes it."""
        x = 0 if self.corner.endswith("right") else self.width() - self.GRIP
        y = 0 if self.corner.startswith("bottom") else self.height() - self.GRIP
        return QtCore.QRectF(x, y, self.GRIP, self.GRIP)

    def _from_scene(self, point: QtCore.QPointF) -> QtCore.QPointF:
        x = self._target.left() + (point.x() - self._source.left()) * self._target.width() / self._source.width()
        y = self._target.top() + (point.y() - self._source.top()) * self._target.height() / self._source.height()
        return QtCore.QPointF(x, y)

    # ---------------------------------------------------------------- mouse
    def _growth(self, start: QtCore.QPointF, now: QtCore.QPointF) -> float:
        """How much a drag of the grip from ``start`` to ``now`` (global) lengthens the map."""
        dx, dy = now.x() - start.x(), now.y() - start.y()
        dx = -dx if self.corner.endswith("right") else dx  # the grip moves away from the map's corner
        dy = -dy if self.corner.startswith("bottom") else dy
        return max(dx, dy)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._grip_rect().contains(event.position()):
            self._resize_from = (event.globalPosition(), self.long_side)
            return
        self._go(event.position())

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._resize_from is not None:
            start, side = self._resize_from
            self.set_long_side(round(side + self._growth(start, event.globalPosition())), remember=False)
            return
        if self._grip_rect().contains(event.position()):
            diagonal = self.corner in ("bottom-right", "top-left")
            shape = QtCore.Qt.CursorShape.SizeFDiagCursor if diagonal else QtCore.Qt.CursorShape.SizeBDiagCursor
            self.setCursor(shape)
        else:
            self.unsetCursor()
        if event.buttons():
            self._go(event.position())

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._resize_from is not None:
            self._resize_from = None
            self.set_long_side(self.long_side)  # remembered for the next window
            return
        super().mouseReleaseEvent(event)

    def _go(self, point: QtCore.QPointF) -> None:
        target = self._to_scene(point)
        if target is not None:
            self._view.centerOn(target)
