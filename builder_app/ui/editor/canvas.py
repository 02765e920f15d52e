"""The node-graph canvas: a QGraphicsScene of layer calls and the tensors between them.

Items are views. A :class:`GraphScene` follows one :class:`ModelGraph` (the model or
a sub-model) through the graph's own change events and the document's
``shapes_updated`` (refreshing only the nodes whose results changed); it never
changes the graph itself: every gesture (move, wire, delete, layout) is handed to
the document's :class:`~builder_app.ui.editor.controller.EditorController`, which
makes it one undo step.

Painting reads one description per node (:func:`node_face`); ``builder-app render``
draws the same scene offscreen, so a diagram on disk looks exactly like the canvas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.events import Change, ChangeKind
from builder_app.core.graph import (
    INPUT_CLASS,
    SUBMODEL_CLASS,
    Edge,
    GraphError,
    ModelGraph,
)
from builder_app.core.keras_build import is_operation
from builder_app.core.ports import input_ports
from builder_app.core.shapes import NodeResult
from builder_app.core.text import format_shape
from builder_app.core.wire_check import check_wire
from builder_app.ui import theme

NODE_WIDTH = 184.0
HEADER = 24.0
PORT_GAP = 18.0
PORT_RADIUS = 5.0
GRID = 10.0
#: Below this zoom, texts are left out (they would be unreadable specks anyway).
TEXT_LOD = 0.42
#: Below this zoom, nodes are coloured blocks and wires straight lines.
OVERVIEW_LOD = 0.18


# --------------------------------------------------------------------------- #
# What a node looks like: plain data, shared by the canvas and `render`
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class NodeFace:
    """Everything painting needs to know about one node."""

    title: str
    class_name: str
    category: str
    detail: str
    params: str
    inputs: tuple[str, ...]
    outputs: int
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    shared: tuple[int, int] | None  # (this call, number of calls)
    is_output: bool


def _category(class_name: str) -> str:
    if class_name == INPUT_CLASS:
        return "Input"
    if class_name == SUBMODEL_CLASS:
        return "Model"
    if is_operation(class_name):
        return "Operations"
    from builder_app.core import catalog

    if not catalog.is_loaded():
        return ""
    try:
        return catalog.layer_spec(class_name).category
    except KeyError:
        return ""


def node_face(graph: ModelGraph, node_id: str, result: NodeResult | None) -> NodeFace:
    node = graph.node(node_id)
    layer = graph.layer(node.layer)
    class_name = layer.class_name
    calls = graph.nodes_of_layer(node.layer)
    params = ""
    if graph.is_input(node_id):
        shape = layer.config.get("batch_shape")
        detail = f"Input {format_shape(shape)}" if isinstance(shape, list) else "Input"
        outputs = 1
    else:
        detail = class_name.rpartition(".")[2] if is_operation(class_name) else class_name
        activation = layer.config.get("activation")
        if class_name == "Activation" and isinstance(activation, str):
            detail += f" · {activation}"
        if result is not None and result.params:
            params = f"{result.params:,} params"
        consumed = max((e.src_port for e in graph.consumers_of(node_id)), default=-1) + 1
        known = len(result.outputs) if result is not None and result.outputs else 1
        outputs = max(known, consumed)
    output_refs = graph.explicit_outputs()
    is_output = any(ref.node == node_id for ref in output_refs) if output_refs else not graph.consumers_of(node_id)
    return NodeFace(
        title=node.layer,
        class_name=class_name,
        category=_category(class_name),
        detail=detail,
        params=params,
        inputs=input_ports(graph, node_id),
        outputs=outputs,
        errors=tuple(result.errors) if result else (),
        warnings=tuple(result.warnings) if result else (),
        shared=(calls.index(node_id) + 1, len(calls)) if len(calls) > 1 else None,
        is_output=is_output and not graph.is_input(node_id),
    )


def node_height(face: NodeFace) -> float:
    ports = max(len(face.inputs), face.outputs, 1)
    return port_y(ports - 1) + 14.0


def port_y(index: int) -> float:
    """Ports sit below the node's detail line, one row each."""
    return HEADER + 28.0 + PORT_GAP * index


# --------------------------------------------------------------------------- #
# Items
# --------------------------------------------------------------------------- #
class NodeItem(QtWidgets.QGraphicsItem):
    """One call of a layer: a box with input ports on the left, outputs on the right."""

    def __init__(self, scene: GraphScene, node_id: str):
        super().__init__()
        self.node_id = node_id
        self._scene = scene
        self.face: NodeFace = scene.face(node_id)
        self.wires: set[WireItem] = set()
        self.setFlags(
            QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.setAcceptHoverEvents(True)
        # Repaints blit a pixmap per node instead of calling paint() (Python) again.
        self.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setZValue(1)
        self._set_height(node_height(self.face))
        self._tooltip()

    # geometry
    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def _set_height(self, height: float) -> None:
        self._height = height
        self._bounds = QtCore.QRectF(-PORT_RADIUS - 2, -14, NODE_WIDTH + 2 * PORT_RADIUS + 4, height + 16)

    def body(self) -> QtCore.QRectF:
        return QtCore.QRectF(0, 0, NODE_WIDTH, self._height)

    def input_pos(self, port: int) -> QtCore.QPointF:
        return self.mapToScene(QtCore.QPointF(0, port_y(port)))

    def output_pos(self, port: int) -> QtCore.QPointF:
        return self.mapToScene(QtCore.QPointF(NODE_WIDTH, port_y(port)))

    def port_at(self, pos: QtCore.QPointF) -> tuple[str, int] | None:
        """('in'|'out', port) under a point in item coordinates."""
        for kind, x, count in (("in", 0.0, len(self.face.inputs)), ("out", NODE_WIDTH, self.face.outputs)):
            for i in range(count):
                if math.hypot(pos.x() - x, pos.y() - port_y(i)) <= PORT_RADIUS + 5:
                    return kind, i
        return None

    def refresh(self) -> None:
        face = self._scene.face(self.node_id)
        if face == self.face:
            return
        height = node_height(face)
        if height != self._height:
            self.prepareGeometryChange()
            self._set_height(height)
        self.face = face
        self._tooltip()
        for wire in self.wires:
            wire.refresh()
        self.update()

    def _tooltip(self) -> None:
        lines = [f"{self.face.title} ({self.face.class_name})"]
        lines += [f"⚠ {m}" for m in self.face.errors]
        lines += [f"note: {m}" for m in self.face.warnings]
        self.setToolTip("\n".join(lines))

    # painting
    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        colors = self._scene.colors
        face = self.face
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        accent = theme.category_color(face.category)
        rect = self.body()
        if lod < OVERVIEW_LOD:  # a coloured block is all that can be seen at this size
            painter.fillRect(rect, colors.selection if self.isSelected() else theme.ERROR if face.errors else accent)
            return
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, lod > 0.3)
        border = colors.node_border
        width = 1.0
        if face.errors:
            border, width = theme.ERROR, 2.5
        if self.isSelected():
            border, width = colors.selection, 2.5
        elif self._scene.highlighted_layer == face.title and face.shared:
            border, width = accent, 2.0
        painter.setPen(QtGui.QPen(border, width))
        painter.setBrush(colors.node)
        painter.drawRoundedRect(rect, 6, 6)
        header = QtGui.QPainterPath()
        header.addRoundedRect(QtCore.QRectF(0.5, 0.5, NODE_WIDTH - 1, HEADER), 5.5, 5.5)
        clip = QtGui.QPainterPath()
        clip.addRect(QtCore.QRectF(0, 0, NODE_WIDTH, HEADER))
        painter.fillPath(header.intersected(clip), accent)
        if face.errors and not self.isSelected():
            painter.setPen(QtGui.QPen(theme.ERROR, 2.5))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect, 6, 6)
        # ports
        painter.setPen(QtGui.QPen(colors.node, 1.5))
        painter.setBrush(colors.wire)
        for i in range(len(face.inputs)):
            painter.drawEllipse(QtCore.QPointF(0, port_y(i)), PORT_RADIUS, PORT_RADIUS)
        painter.setBrush(accent)
        for i in range(face.outputs):
            painter.drawEllipse(QtCore.QPointF(NODE_WIDTH, port_y(i)), PORT_RADIUS, PORT_RADIUS)
        if lod < TEXT_LOD:
            return
        fonts = self._scene.fonts
        painter.setFont(fonts.title)
        painter.setPen(QtGui.QColor("#ffffff"))
        title_rect = QtCore.QRectF(8, 0, NODE_WIDTH - 16, HEADER)
        title = QtGui.QFontMetricsF(fonts.title).elidedText(face.title, QtCore.Qt.TextElideMode.ElideRight, title_rect.width())
        painter.drawText(title_rect, QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignLeft, title)
        painter.setFont(fonts.body)
        painter.setPen(colors.muted)
        body = QtCore.QRectF(10, HEADER + 4, NODE_WIDTH - 20, 16)
        detail = QtGui.QFontMetricsF(fonts.body).elidedText(face.detail, QtCore.Qt.TextElideMode.ElideRight, body.width())
        painter.drawText(body, QtCore.Qt.AlignmentFlag.AlignLeft, detail)
        if face.params:  # on the first port row, right-aligned before the output port
            painter.setFont(fonts.small)
            row = QtCore.QRectF(NODE_WIDTH / 2, port_y(0) - 7, NODE_WIDTH / 2 - 12, 14)
            painter.drawText(row, QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignRight, face.params)
        if any(face.inputs):
            painter.setFont(fonts.small)
            for i, name in enumerate(face.inputs):
                if name:
                    painter.drawText(QtCore.QRectF(9, port_y(i) - 7, 90, 14), QtCore.Qt.AlignmentFlag.AlignVCenter, name)
        badges = []
        if face.shared:
            badges.append((f"shared {face.shared[0]}/{face.shared[1]}", accent))
        if face.is_output:
            badges.append(("output", colors.muted))
        if face.errors:
            badges.append(("error", theme.ERROR))
        x = NODE_WIDTH
        painter.setFont(fonts.small)
        metrics = QtGui.QFontMetricsF(fonts.small)
        for text, colour in badges:
            w = metrics.horizontalAdvance(text) + 10
            x -= w + 4
            pill = QtCore.QRectF(x, -13, w, 13)
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawRoundedRect(pill, 6, 6)
            painter.setPen(QtGui.QColor("#ffffff"))
            painter.drawText(pill, QtCore.Qt.AlignmentFlag.AlignCenter, text)

    # interaction
    def itemChange(self, change, value):  # noqa: N802 - Qt's name
        flag = QtWidgets.QGraphicsItem.GraphicsItemChange
        if change == flag.ItemPositionChange and self._scene.snap:
            return QtCore.QPointF(round(value.x() / GRID) * GRID, round(value.y() / GRID) * GRID)
        if change == flag.ItemPositionHasChanged:
            for wire in self.wires:
                wire.refresh()
        return super().itemChange(change, value)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        port = self.port_at(event.pos()) if event.button() == QtCore.Qt.MouseButton.LeftButton else None
        if port is not None:
            self._scene.begin_wire(self, *port, event.scenePos())
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._scene.dragging_wire:
            self._scene.drag_wire(event.scenePos())
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._scene.dragging_wire:
            self._scene.end_wire(event.scenePos())
            return
        super().mouseReleaseEvent(event)
        self._scene.commit_moves()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._scene.node_activated.emit(self.node_id)
        event.accept()

    def hoverEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.face.shared:
            self._scene.highlight_layer(self.face.title)

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._scene.highlight_layer(None)

    def hoverMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        on_port = self.port_at(event.pos()) is not None
        self.setCursor(QtCore.Qt.CursorShape.CrossCursor if on_port else QtCore.Qt.CursorShape.ArrowCursor)


class WireItem(QtWidgets.QGraphicsPathItem):
    """A tensor: a curve from an output port to an input port, labelled with its shape."""

    def __init__(self, scene: GraphScene, edge: Edge):
        super().__init__()
        self.edge = edge
        self._scene = scene
        self.label = ""
        self.ends = QtCore.QLineF()
        self._bounds = QtCore.QRectF()
        self.setFlags(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        self.refresh()

    def refresh(self) -> None:
        src = self._scene.items_by_id.get(self.edge.src)
        dst = self._scene.items_by_id.get(self.edge.dst)
        if src is None or dst is None:
            return
        a, b = src.output_pos(self.edge.src_port), dst.input_pos(self.edge.dst_port)
        result = self._scene.result(self.edge.src)
        label = ""
        if result is not None and result.outputs and self.edge.src_port < len(result.outputs):
            label = format_shape(result.outputs[self.edge.src_port].shape)
        ends = QtCore.QLineF(a, b)
        if ends == self.ends and label == self.label:
            return  # refreshed after every edit: most wires have not changed
        self.prepareGeometryChange()
        self.ends, self.label = ends, label
        self.setPath(_curve(a, b))
        self._update_bounds()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt's name
        return self._bounds  # asked for many times per repaint: computed once per change

    def _update_bounds(self) -> None:
        rect = self.path().controlPointRect().adjusted(-4, -4, 4, 4)
        if self.label:
            rect = rect.united(self._label_rect())
        self._bounds = rect

    def shape(self) -> QtGui.QPainterPath:
        stroker = QtGui.QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def _label_rect(self) -> QtCore.QRectF:
        mid = self.path().pointAtPercent(0.5)
        width = QtGui.QFontMetricsF(self._scene.fonts.small).horizontalAdvance(self.label) + 10
        return QtCore.QRectF(mid.x() - width / 2, mid.y() - 8, width, 16)

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        colors = self._scene.colors
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        colour = colors.selection if self.isSelected() else colors.wire
        if lod < OVERVIEW_LOD:
            painter.setPen(QtGui.QPen(colour, 0))
            painter.drawLine(self.ends)
            return
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, lod > 0.3)
        painter.setPen(QtGui.QPen(colour, 2.0 if self.isSelected() else 1.6))
        painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
        if not self.label or lod < TEXT_LOD:
            return
        rect = self._label_rect()
        painter.setPen(QtGui.QPen(colors.node_border, 1))
        painter.setBrush(colors.background)
        painter.drawRoundedRect(rect, 7, 7)
        painter.setFont(self._scene.fonts.small)
        painter.setPen(colors.text)
        painter.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, self.label)


def _curve(a: QtCore.QPointF, b: QtCore.QPointF) -> QtGui.QPainterPath:
    path = QtGui.QPainterPath(a)
    dx = max(40.0, abs(b.x() - a.x()) * 0.5)
    path.cubicTo(QtCore.QPointF(a.x() + dx, a.y()), QtCore.QPointF(b.x() - dx, b.y()), b)
    return path


class _Fonts:
    def __init__(self):
        base = QtGui.QFont(QtWidgets.QApplication.font() if QtWidgets.QApplication.instance() else QtGui.QFont())
        self.title = QtGui.QFont(base)
        self.title.setPointSizeF(9.5)
        self.title.setBold(True)
        self.body = QtGui.QFont(base)
        self.body.setPointSizeF(8.5)
        self.small = QtGui.QFont(base)
        self.small.setPointSizeF(7.5)


# --------------------------------------------------------------------------- #
# The scene
# --------------------------------------------------------------------------- #
class GraphScene(QtWidgets.QGraphicsScene):
    """The items of one graph, kept in step with it.

    Signals:
        node_activated(str): a node was double-clicked (open a sub-model, focus the inspector).
        hint(str): a sentence for the status bar (why a wire cannot be drawn, ...).
    """

    node_activated = QtCore.Signal(str)
    hint = QtCore.Signal(str)
    selected_node = QtCore.Signal(object)  # node id or None

    def __init__(self, document, graph: ModelGraph | None = None, parent=None, dark: bool | None = None):
        super().__init__(parent)
        self.document = document
        self.graph = graph if graph is not None else document.graph
        self.colors = theme.canvas_colors(dark)
        self.fonts = _Fonts()
        self.snap = True
        self.highlighted_layer: str | None = None
        self.items_by_id: dict[str, NodeItem] = {}
        self.wires_by_dst: dict[tuple[str, int], WireItem] = {}
        self.dragging_wire = False
        self._wire_from: tuple[NodeItem, str, int] | None = None
        self._detached: Edge | None = None
        self._verdict: tuple[Edge, str | None] | None = None
        self._temp = QtWidgets.QGraphicsPathItem()
        self._temp.setZValue(3)
        self._temp.hide()
        self.addItem(self._temp)
        self.setItemIndexMethod(QtWidgets.QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        self.setBackgroundBrush(self.colors.background)
        self.rebuild()
        self.graph.changed.connect(self._on_change)
        document.shapes_updated.connect(self._shapes_updated)
        self.selectionChanged.connect(self._on_selection)

    @property
    def controller(self):
        """The document's editor controller: where every gesture of this scene goes."""
        return self.document.controller

    def close(self) -> None:
        self.graph.changed.disconnect(self._on_change)
        try:
            self.document.shapes_updated.disconnect(self._shapes_updated)
        except (RuntimeError, TypeError):  # pragma: no cover - already gone
            pass

    # reading
    def result(self, node_id: str) -> NodeResult | None:
        return self.document.result(node_id, self.graph)

    def face(self, node_id: str) -> NodeFace:
        return node_face(self.graph, node_id, self.result(node_id))

    def selected_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, WireItem)]

    def diagram_rect(self) -> QtCore.QRectF:
        """The area the diagram covers, with a margin (read from the graph: cheap)."""
        if not self.items_by_id:
            return QtCore.QRectF()
        left = top = math.inf
        right = bottom = -math.inf
        for node_id, item in self.items_by_id.items():
            x, y = self.graph.node(node_id).position
            left, top = min(left, x), min(top, y)
            right, bottom = max(right, x + NODE_WIDTH), max(bottom, y + item._height)
        return QtCore.QRectF(left, top, right - left, bottom - top).adjusted(-40, -40, 40, 40)

    # building
    def rebuild(self) -> None:
        for item in list(self.items_by_id.values()) + list(self.wires_by_dst.values()):
            self.removeItem(item)
        self.items_by_id.clear()
        self.wires_by_dst.clear()
        for node_id in self.graph.nodes:
            self._add_node(node_id)
        for edge in self.graph.edges():
            self._add_wire(edge)

    def _add_node(self, node_id: str) -> NodeItem:
        item = NodeItem(self, node_id)
        item.setPos(*self.graph.node(node_id).position)
        self.addItem(item)
        self.items_by_id[node_id] = item
        return item

    def _add_wire(self, edge: Edge) -> None:
        wire = WireItem(self, edge)
        self.addItem(wire)
        self.wires_by_dst[(edge.dst, edge.dst_port)] = wire
        for node_id in (edge.src, edge.dst):
            self.items_by_id[node_id].wires.add(wire)

    def _remove_wire(self, dst: str, dst_port: int) -> None:
        wire = self.wires_by_dst.pop((dst, dst_port), None)
        if wire is None:
            return
        for node_id in (wire.edge.src, wire.edge.dst):
            item = self.items_by_id.get(node_id)
            if item is not None:
                item.wires.discard(wire)
        self.removeItem(wire)

    def _on_change(self, change: Change) -> None:
        kind = change.kind
        graph = self.graph
        if kind is ChangeKind.ADD_NODE:
            for node_id in change.nodes:
                if node_id not in self.items_by_id:
                    self._add_node(node_id)
            self._refresh_layer(change.detail.get("layer"))
        elif kind is ChangeKind.REMOVE_NODE:
            for node_id in change.nodes:
                item = self.items_by_id.pop(node_id, None)
                if item is not None:
                    for wire in list(item.wires):
                        self._remove_wire(wire.edge.dst, wire.edge.dst_port)
                    self.removeItem(item)
            self._refresh_layer(change.detail.get("layer"))
        elif kind is ChangeKind.CONNECT:
            edge = change.detail["edge"]
            self._add_wire(edge)
            self._refresh_nodes((edge.src, edge.dst))
        elif kind is ChangeKind.DISCONNECT:
            edge = change.detail["edge"]
            self._remove_wire(edge.dst, edge.dst_port)
            self._refresh_nodes((edge.src, edge.dst))
        elif kind is ChangeKind.MOVE:
            node_id = change.detail["node"]
            item = self.items_by_id.get(node_id)
            position = QtCore.QPointF(*graph.node(node_id).position)
            if item is not None and item.pos() != position:
                snap, self.snap = self.snap, False
                item.setPos(position)
                self.snap = snap
        elif kind is ChangeKind.SET_IO:
            self.refresh_all()
        else:
            touched = set(change.nodes)
            for name in change.layers:
                touched.update(graph.nodes_of_layer(name))
            layer = change.detail.get("layer")
            if layer:
                touched.update(graph.nodes_of_layer(layer))
            self._refresh_nodes(touched or graph.nodes)

    def _refresh_layer(self, layer: str | None) -> None:
        if layer:
            self._refresh_nodes(self.graph.nodes_of_layer(layer))

    def _refresh_nodes(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            item = self.items_by_id.get(node_id)
            if item is not None:
                item.refresh()

    def _shapes_updated(self, changes) -> None:
        """Repaints the nodes whose results changed, and the wires leaving them."""
        for node_id in changes.get(self.graph, ()):
            item = self.items_by_id.get(node_id)
            if item is not None:
                item.refresh()
                for wire in item.wires:
                    wire.refresh()

    def refresh_all(self) -> None:
        for item in self.items_by_id.values():
            item.refresh()
        for wire in self.wires_by_dst.values():
            wire.refresh()
        self.update()

    def set_dark(self, dark: bool) -> None:
        self.colors = theme.canvas_colors(dark)
        self.setBackgroundBrush(self.colors.background)
        self.update()

    # grid
    def drawBackground(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, self.colors.background)
        lod = QtWidgets.QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < 0.5 or not self.views():
            return
        step = GRID * 2
        left = math.floor(rect.left() / step) * step
        top = math.floor(rect.top() / step) * step
        lines_minor, lines_major = [], []
        x = left
        while x < rect.right():
            (lines_major if round(x / step) % 5 == 0 else lines_minor).append(QtCore.QLineF(x, rect.top(), x, rect.bottom()))
            x += step
        y = top
        while y < rect.bottom():
            (lines_major if round(y / step) % 5 == 0 else lines_minor).append(QtCore.QLineF(rect.left(), y, rect.right(), y))
            y += step
        painter.setPen(QtGui.QPen(self.colors.grid, 0))
        painter.drawLines(lines_minor)
        painter.setPen(QtGui.QPen(self.colors.grid_major, 0))
        painter.drawLines(lines_major)

    # selection and highlights
    def _on_selection(self) -> None:
        ids = self.selected_ids()
        self.selected_node.emit(ids[0] if len(ids) == 1 else None)

    def highlight_layer(self, name: str | None) -> None:
        if name == self.highlighted_layer:
            return
        previous, self.highlighted_layer = self.highlighted_layer, name
        for layer in (previous, name):
            if layer:
                self._update_nodes(self.graph.nodes_of_layer(layer))

    def _update_nodes(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            item = self.items_by_id.get(node_id)
            if item is not None:
                item.update()

    def select_nodes(self, node_ids: Iterable[str]) -> None:
        wanted = set(node_ids)
        self.clearSelection()
        for node_id in wanted:
            item = self.items_by_id.get(node_id)
            if item is not None:
                item.setSelected(True)

    # moving
    def commit_moves(self) -> None:
        positions = {
            item.node_id: (item.pos().x(), item.pos().y())
            for item in self.selectedItems()
            if isinstance(item, NodeItem)
        }
        self.controller.move(self.graph, positions)

    # wiring
    def begin_wire(self, item: NodeItem, kind: str, port: int, pos: QtCore.QPointF) -> None:
        self._detached = None
        if kind == "in":
            ref = self.graph.inputs_of(item.node_id).get(port)
            if ref is not None:  # pick up the existing wire by its end
                self._detached = Edge(ref.node, ref.port, item.node_id, port)
                source = self.items_by_id[ref.node]
                self._wire_from = (source, "out", ref.port)
                self.wires_by_dst[(item.node_id, port)].hide()
            else:
                self._wire_from = (item, "in", port)
        else:
            self._wire_from = (item, "out", port)
        self.dragging_wire = True
        self._verdict = None
        self._temp.show()
        self.drag_wire(pos)

    def _target(self, pos: QtCore.QPointF) -> tuple[NodeItem, str, int] | None:
        for hit in self.items(pos, QtCore.Qt.ItemSelectionMode.IntersectsItemBoundingRect):
            if isinstance(hit, NodeItem):
                port = hit.port_at(hit.mapFromScene(pos))
                if port is not None:
                    return hit, *port
        return None

    def _proposed(self, target) -> tuple[Edge | None, str | None]:
        """The wire a drop on ``target`` would make, or why none can be made."""
        if self._wire_from is None or target is None:
            return None, None
        item, kind, port = self._wire_from
        t_item, t_kind, t_port = target
        if t_kind == kind:
            return None, "connect an output to an input"
        if kind == "out":
            edge = Edge(item.node_id, port, t_item.node_id, t_port)
        else:
            edge = Edge(t_item.node_id, t_port, item.node_id, port)
        problem = self.controller.wire_problem(self.graph, edge, self._detached)
        return edge, (str(problem) if problem is not None else None)

    def drag_wire(self, pos: QtCore.QPointF) -> None:
        if self._wire_from is None:
            return
        item, kind, port = self._wire_from
        start = item.output_pos(port) if kind == "out" else item.input_pos(port)
        target = self._target(pos)
        end = pos
        edge, problem = self._proposed(target)
        if target is not None:
            t_item, t_kind, t_port = target
            end = t_item.input_pos(t_port) if t_kind == "in" else t_item.output_pos(t_port)
        path = _curve(start, end) if kind == "out" else _curve(end, start)
        self._temp.setPath(path)
        if problem:
            colour = theme.ERROR
            self.hint.emit(f"Cannot connect: {problem}")
        elif edge is not None:
            refusal = self._keras_verdict(edge)
            if refusal:
                colour = theme.WARNING
                self.hint.emit(f"Keras would refuse this: {refusal}")
            else:
                colour = QtGui.QColor("#22a06b")
                shape = self._shape_text(edge)
                self.hint.emit(f"Connect {self.graph.label(edge.src)} → {self.graph.label(edge.dst)}{shape}")
        else:
            colour = self.colors.selection
        pen = QtGui.QPen(colour, 2.0)
        pen.setStyle(QtCore.Qt.PenStyle.DashLine)
        self._temp.setPen(pen)

    def _keras_verdict(self, edge: Edge) -> str | None:
        """Keras's own objection to the node this wire would feed (cached per wire)."""
        if self._verdict is not None and self._verdict[0] == edge:
            return self._verdict[1]
        engine = self.document.engine_for(self.graph)
        message = None
        if engine is not None:
            try:
                message = check_wire(self.graph, engine, edge, self._detached)
            except GraphError:
                message = None
        self._verdict = (edge, message)
        return message

    def _shape_text(self, edge: Edge) -> str:
        result = self.result(edge.src)
        if result is not None and result.outputs and edge.src_port < len(result.outputs):
            return f" ({format_shape(result.outputs[edge.src_port].shape)})"
        return ""

    def end_wire(self, pos: QtCore.QPointF) -> None:
        edge, problem = self._proposed(self._target(pos))
        detached = self._detached
        self.dragging_wire = False
        self._wire_from = None
        self._detached = None
        self._temp.hide()
        if detached is not None and (detached.dst, detached.dst_port) in self.wires_by_dst:
            self.wires_by_dst[(detached.dst, detached.dst_port)].show()
        if problem:
            self.hint.emit(f"Cannot connect: {problem}")
            return
        if edge is None and detached is None:
            return
        if self.controller.rewire(self.graph, edge, detached):
            self.hint.emit("")

    # editing helpers used by the view and the window
    def delete_selection(self) -> bool:
        """Deletes the selected nodes and wires (one step); False when nothing was deleted."""
        nodes, edges = self.selected_ids(), self.selected_edges()
        if not nodes and not edges:
            return False
        return bool(self.controller.delete(self.graph, nodes, edges))

    def layout(self, node_ids: Iterable[str] | None = None) -> None:
        self.controller.layout(self.graph, node_ids)

    def expand_to(self, node_id: str):
        """The item of node_id, after expanding a collapsed block that holds it (None if no such node)."""
        return self.items_by_id.get(node_id)
