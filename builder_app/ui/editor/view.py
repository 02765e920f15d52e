"""The canvas view: zoom, pan, rubber-band selection, drops from the palette, quick add, minimap."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.ui.editor.canvas import GraphScene
from builder_app.ui.editor.palette import LAYER_MIME, payload_from_mime

MIN_ZOOM, MAX_ZOOM = 0.05, 3.0


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
        self._extend_scene()

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
            self.fitInView(rect, QtCore.Qt.AspectRatioMode.KeepAspectRatio)
            if self.zoom() > 1.0:
                self.set_zoom(1.0)
            self.centerOn(rect.center())
        self.zoom_changed.emit(self.zoom())
        self.minimap.refresh()

    def show_start(self, smallest: float = 0.6, readable: float = 0.85) -> None:
        """Fit the diagram; if its text would then be too small, show its inputs' end instead."""
        self.fit()
        rect = self.graph_scene.diagram_rect()
        if rect.isEmpty() or self.zoom() >= smallest:
            return
        self.set_zoom(readable)
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        self.centerOn(rect.left() + visible.width() / 2 - 20, rect.center().y())
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

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt's name
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

    # ----------------------------------------------------------------- drops
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt's name
        if not event.mimeData().hasFormat(LAYER_MIME):
            super().dropEvent(event)
            return
        payload = payload_from_mime(event.mimeData())
        if payload is None:
            return
        self.insert(payload, self.mapToScene(event.position().toPoint()))
        event.acceptProposedAction()

    def insert(self, payload: str, scene_pos: QtCore.QPointF, source: str | None = None) -> list[str]:
        """Adds a palette entry at a scene position; returns the new node ids ([] if refused)."""
        scene = self.graph_scene
        position = (round(scene_pos.x() / 10) * 10.0, round(scene_pos.y() / 10) * 10.0)
        outcome = scene.controller.insert(scene.graph, payload, position, source)
        if not outcome:
            return []
        scene.select_nodes(outcome.nodes[-1:])
        self.minimap.refresh()
        return list(outcome.nodes)


class Minimap(QtWidgets.QFrame):
    """The whole diagram small, in a corner; the visible part framed; click or drag to go there.

    The diagram is drawn into a pixmap when the scene changes (at most every 250 ms);
    scrolling only moves the frame, so a big model pans as smoothly as a small one.
    """

    SIZE = QtCore.QSize(200, 130)

    def __init__(self, view: GraphView):
        super().__init__(view)
        self._view = view
        self._pixmap = QtGui.QPixmap()
        self._source = QtCore.QRectF()
        self._target = QtCore.QRectF()
        self.setFixedSize(self.SIZE)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setToolTip("Overview: click to move there")
        self._timer = QtCore.QTimer(self, singleShot=True, interval=250)
        self._timer.timeout.connect(self._redraw)
        view.graph_scene.changed.connect(lambda _rects: self._timer.start())
        self.place()
        self._timer.start()

    def place(self) -> None:
        parent = self._view.viewport()
        self.move(parent.width() - self.width() - 10, parent.height() - self.height() - 10)

    def refresh(self) -> None:
        """The visible part moved: repaint the frame (the diagram is cached)."""
        self.update()

    def _redraw(self) -> None:
        if not self.isVisible():
            return
        scene = self._view.graph_scene
        if scene.document.is_computing:  # painting now would fight the shape pass for the GIL
            self._timer.start()
            return
        rect = scene.diagram_rect()
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
            scene.render(painter, self._target, rect)
            painter.end()
        self.update()

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
        if not self._target.isEmpty():
            visible = self._view.mapToScene(self._view.viewport().rect()).boundingRect()
            top_left = self._from_scene(visible.topLeft())
            bottom_right = self._from_scene(visible.bottomRight())
            frame = QtCore.QRectF(top_left, bottom_right).intersected(QtCore.QRectF(self.rect()))
            colour = self._view.graph_scene.colors.selection
            fill = QtGui.QColor(colour)
            fill.setAlpha(40)
            painter.setPen(QtGui.QPen(colour, 1))
            painter.setBrush(fill)
            painter.drawRect(frame)
        painter.end()
        super().paintEvent(event)

    def _from_scene(self, point: QtCore.QPointF) -> QtCore.QPointF:
        x = self._target.left() + (point.x() - self._source.left()) * self._target.width() / self._source.width()
        y = self._target.top() + (point.y() - self._source.top()) * self._target.height() / self._source.height()
        return QtCore.QPointF(x, y)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self._go(event.position())

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if event.buttons():
            self._go(event.position())

    def _go(self, point: QtCore.QPointF) -> None:
        target = self._to_scene(point)
        if target is not None:
            self._view.centerOn(target)
