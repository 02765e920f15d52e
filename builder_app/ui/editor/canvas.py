"""The node-graph canvas: a QGraphicsScene of layer calls and the tensors between them.

Items are views. A :class:`GraphScene` follows one :class:`ModelGraph` (the model or
a sub-model) through the graph's own change events and the document's
``shapes_updated`` (refreshing only the nodes whose results changed); it never
changes the graph itself: every gesture (move, wire, delete, layout) is handed to
the document's :class:`~builder_app.ui.editor.controller.EditorController`, which
makes it one undo step.

Painting reads one description per node (:func:`node_face`); ``builder-app render``
draws the same scene offscreen, so a diagram on disk looks exactly like the canvas.

The graph's :class:`~builder_app.core.graph.CanvasState` says how it is drawn: top to
bottom (ports on the top and bottom edges) or left to right, and which display
blocks are collapsed into one :class:`BlockItem`. Wires bend around the boxes between
their ends (:class:`~builder_app.core.routing.Router`, rebuilt when a box moves).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import shiboken6
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.costs import model_costs
from builder_app.core.display_blocks import block_boundary
from builder_app.core.events import Change, ChangeKind
from builder_app.core.face_text import differs_in_training, key_settings
from builder_app.core.graph import (
    INPUT_CLASS,
    SUBMODEL_CLASS,
    Edge,
    GraphError,
    ModelGraph,
    PortRef,
)
from builder_app.core.keras_build import is_operation
from builder_app.core.ports import input_ports
from builder_app.core.routing import Router
from builder_app.core.shapes import NodeResult
from builder_app.core.text import format_shape
from builder_app.core.wire_check import check_wire
from builder_app.ui import theme

NODE_WIDTH = 184.0
HEADER = 24.0
PORT_GAP = 18.0
PORT_RADIUS = 5.0
GRID = 10.0
#: A node's height in a top-to-bottom drawing: header, class line, settings line.
TB_HEIGHT = 64.0
#: A collapsed display block is a little wider than a node: it names two shapes.
BLOCK_WIDTH = 260.0
#: How far below its output port a wire's shape label sits (top to bottom).
LABEL_OFFSET = 15.0
#: Below this zoom, texts are left out (they would be unreadable specks anyway).
TEXT_LOD = 0.42
#: Below this zoom, nodes are coloured blocks and wires straight lines.
OVERVIEW_LOD = 0.18
#: How far a wire keeps from the boxes it passes (the router's clearance).
ROUTE_CLEARANCE = 12.0
#: More boxes changed than this since the last routing (a layout, a collapse), and
#: every wire is routed again; fewer (a drag), and only the wires near them.
REROUTE_ALL_AT = 24


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
    settings: str = ""  # the settings that matter: "32 filters · 3×3 · stride 2"
    trains_differently: bool = False  # Dropout, BatchNormalization...


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
    params = settings = ""
    if graph.is_input(node_id):
        shape = layer.config.get("batch_shape")
        detail = f"Input {format_shape(shape)}" if isinstance(shape, list) else "Input"
        outputs = 1
    else:
        detail = class_name.rpartition(".")[2] if is_operation(class_name) else class_name
        if layer.submodel is not None:
            count = len(layer.submodel.nodes)
            detail = f"Model · {count} layer{'s' if count != 1 else ''}"
        else:
            settings = key_settings(class_name, layer.config)
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
        settings=settings,
        trains_differently=differs_in_training(class_name),
    )


def port_y(index: int) -> float:
    """Left to right: ports sit below the node's class and settings lines, one row each."""
    return HEADER + 44.0 + PORT_GAP * index


def node_size(face: NodeFace, direction: str) -> tuple[float, float]:
    """A node's (width, height) on the canvas; the layout is given the same sizes."""
    ports = max(len(face.inputs), face.outputs, 1)
    if direction == "TB":
        return max(NODE_WIDTH, PORT_GAP * (ports + 1)), TB_HEIGHT
    return NODE_WIDTH, port_y(ports - 1) + 14.0


def port_offset(size: tuple[float, float], direction: str, kind: str, index: int, count: int) -> QtCore.QPointF:
    """Where port ``index`` of ``count`` inputs (``kind`` "in") or outputs sits, in item coordinates."""
    width, height = size
    if direction == "TB":
        x = width * (index + 1) / (max(count, 1) + 1)
        return QtCore.QPointF(x, 0.0 if kind == "in" else height)
    return QtCore.QPointF(0.0 if kind == "in" else width, port_y(index))


# --------------------------------------------------------------------------- #
# Items
# --------------------------------------------------------------------------- #
class _Box(QtWidgets.QGraphicsItem):
    """What nodes and collapsed blocks share: a box with input and output ports."""

    def __init__(self, scene: GraphScene):
        super().__init__()
        self._scene = scene
        self._size = (NODE_WIDTH, TB_HEIGHT)
        self._bounds = QtCore.QRectF()
        self.setAcceptHoverEvents(True)
        # Repaints blit a pixmap per item instead of calling paint() (Python) again.
        self.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setZValue(1)

    def port_counts(self) -> tuple[int, int]:  # pragma: no cover - interface
        raise NotImplementedError

    @property
    def wires(self) -> set[WireItem]:  # pragma: no cover - interface
        """The wires drawn to and from this box."""
        raise NotImplementedError

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def _set_size(self, size: tuple[float, float]) -> None:
        self._size = size
        width, height = size
        self._bounds = QtCore.QRectF(-PORT_RADIUS - 2, -16, width + 2 * PORT_RADIUS + 4, height + 32)

    @property
    def _height(self) -> float:
        return self._size[1]

    def size(self) -> tuple[float, float]:
        return self._size

    def body(self) -> QtCore.QRectF:
        return QtCore.QRectF(0, 0, *self._size)

    def box(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) in scene coordinates, for the wire router."""
        pos = self.pos()
        return (pos.x(), pos.y(), *self._size)

    def _port(self, kind: str, index: int) -> QtCore.QPointF:
        inputs, outputs = self.port_counts()
        return port_offset(self._size, self._scene.direction, kind, index, inputs if kind == "in" else outputs)

    def input_pos(self, port: int) -> QtCore.QPointF:
        return self.mapToScene(self._port("in", port))

    def output_pos(self, port: int) -> QtCore.QPointF:
        return self.mapToScene(self._port("out", port))

    def port_at(self, pos: QtCore.QPointF) -> tuple[str, int] | None:
        """('in'|'out', port) under a point in item coordinates."""
        inputs, outputs = self.port_counts()
        for kind, count in (("in", inputs), ("out", outputs)):
            for i in range(count):
                spot = self._port(kind, i)
                if math.hypot(pos.x() - spot.x(), pos.y() - spot.y()) <= PORT_RADIUS + 5:
                    return kind, i
        return None

    def itemChange(self, change, value):  # noqa: N802 - Qt's name
        flag = QtWidgets.QGraphicsItem.GraphicsItemChange
        if change == flag.ItemPositionChange and self._scene.snap:
            return QtCore.QPointF(round(value.x() / GRID) * GRID, round(value.y() / GRID) * GRID)
        if change == flag.ItemPositionHasChanged:
            self._scene.box_moved(self)
        return super().itemChange(change, value)

    def _paint_ports(self, painter: QtGui.QPainter, accent: QtGui.QColor) -> None:
        colors = self._scene.colors
        inputs, outputs = self.port_counts()
        painter.setPen(QtGui.QPen(colors.node, 1.5))
        painter.setBrush(colors.wire)
        for i in range(inputs):
            painter.drawEllipse(self._port("in", i), PORT_RADIUS, PORT_RADIUS)
        painter.setBrush(accent)
        for i in range(outputs):
            painter.drawEllipse(self._port("out", i), PORT_RADIUS, PORT_RADIUS)

    def _paint_frame(self, painter: QtGui.QPainter, accent: QtGui.QColor, fill: QtGui.QColor, border, width) -> None:
        rect = self.body()
        painter.setPen(QtGui.QPen(border, width))
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 6, 6)
        painter.fillPath(_header_path(rect.width()), accent)

    def _paint_title(self, painter: QtGui.QPainter, title: str, badges: list[tuple[str, QtGui.QColor]]) -> None:
        """The title in the header; badges at the header's right end (top to bottom) or above it."""
        fonts = self._scene.fonts
        width = self._size[0]
        painter.setFont(fonts.small)
        metrics = fonts.small_metrics
        inside = self._scene.direction == "TB"
        x = width - (4 if inside else 0)
        for text, colour in badges:
            w = metrics.horizontalAdvance(text) + 10
            x -= w + 4 * (not inside)
            pill = QtCore.QRectF(x, 5.5, w, 13) if inside else QtCore.QRectF(x, -14, w, 13)
            painter.setPen(QtGui.QPen(QtGui.QColor("#ffffff"), 1) if inside else QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawRoundedRect(pill, 6, 6)
            painter.setPen(QtGui.QColor("#ffffff"))
            painter.drawText(pill, QtCore.Qt.AlignmentFlag.AlignCenter, text)
            x -= 3 * inside
        right = x - 4 if inside and badges else width - 8
        painter.setFont(fonts.title)
        painter.setPen(QtGui.QColor("#ffffff"))
        title_rect = QtCore.QRectF(8, 0, right - 8, HEADER)
        shown = fonts.title_metrics.elidedText(title, QtCore.Qt.TextElideMode.ElideRight, title_rect.width())
        painter.drawText(title_rect, QtCore.Qt.AlignmentFlag.AlignVCenter | QtCore.Qt.AlignmentFlag.AlignLeft, shown)

    def _paint_lines(
        self, painter: QtGui.QPainter, left: str, right: str, second: str, pill: str = ""
    ) -> None:
        """The class line (with a right-aligned note) and the settings line (with a pill) below the header."""
        fonts = self._scene.fonts
        colors = self._scene.colors
        width = self._size[0]
        painter.setFont(fonts.body)
        painter.setPen(colors.text)
        metrics = fonts.small_metrics
        note_width = metrics.horizontalAdvance(right) + 4 if right else 0.0
        line = QtCore.QRectF(10, HEADER + 3, width - 20 - note_width, 17)
        body = fonts.body_metrics
        painter.drawText(line, QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter,
                         body.elidedText(left, QtCore.Qt.TextElideMode.ElideRight, line.width()))
        painter.setPen(colors.muted)
        if right:
            painter.setFont(fonts.small)
            note = QtCore.QRectF(width - 10 - note_width, HEADER + 3, note_width, 17)
            painter.drawText(note, QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter, right)
        pill_width = metrics.horizontalAdvance(pill) + 10 if pill else 0.0
        if pill:  # at the settings line's right end, where it never hides the title
            box = QtCore.QRectF(width - 8 - pill_width, HEADER + 22.5, pill_width, 13)
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(theme.WARNING)
            painter.drawRoundedRect(box, 6, 6)
            painter.setFont(fonts.small)
            painter.setPen(QtGui.QColor("#ffffff"))
            painter.drawText(box, QtCore.Qt.AlignmentFlag.AlignCenter, pill)
            painter.setPen(colors.muted)
        if second:
            painter.setFont(fonts.body)
            line = QtCore.QRectF(10, HEADER + 20, width - 20 - (pill_width + 4 if pill else 0), 17)
            painter.drawText(line, QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter,
                             body.elidedText(second, QtCore.Qt.TextElideMode.ElideRight, line.width()))


class NodeItem(_Box):
    """One call of a layer: a box with its input ports before and its outputs after it."""

    def __init__(self, scene: GraphScene, node_id: str):
        super().__init__(scene)
        self.node_id = node_id
        self.face: NodeFace = scene.face(node_id)
        # Placed before it sends geometry changes: a new item has no wires to tell.
        self.setPos(*scene.graph.node(node_id).position)
        self.setFlags(
            QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self._set_size(node_size(self.face, scene.direction))
        self._tooltip()

    def port_counts(self) -> tuple[int, int]:
        return len(self.face.inputs), self.face.outputs

    @property
    def wires(self) -> set[WireItem]:
        """The wires into and out of this node (kept by the scene, also while the item is unmade)."""
        return self._scene.wires_at(self.node_id)

    def refresh(self, force: bool = False) -> None:
        if self.read_face(force):
            for wire in self.wires:
                wire.refresh()

    def read_face(self, force: bool = False) -> bool:
        """Re-reads the node's face; True when it changed (then its wires need a refresh too)."""
        face = self._scene.face(self.node_id)
        if face == self.face and not force:
            return False
        size = node_size(face, self._scene.direction)
        if size != self._size:
            self.prepareGeometryChange()
            self._set_size(size)
            self._scene.box_moved(self)
        self.face = face
        self._tooltip()
        self.update()
        return True

    def _tooltip(self) -> None:
        face = self.face
        lines = [f"{face.title} ({face.class_name})"]
        if face.settings:
            lines.append(face.settings)
        if face.trains_differently:
            lines.append("computes differently when training and in inference")
        names = [n for n in face.inputs if n]
        if names:
            lines.append("inputs: " + ", ".join(names))
        lines += [f"⚠ {m}" for m in face.errors]
        lines += [f"note: {m}" for m in face.warnings]
        self.setToolTip("\n".join(lines))

    # painting
    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        colors = self._scene.colors
        face = self.face
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        accent = theme.category_color(face.category)
        fill = self._scene.heat_fill(self.node_id) or colors.node
        if lod < OVERVIEW_LOD:  # a coloured block is all that can be seen at this size
            painter.fillRect(self.body(), colors.selection if self.isSelected() else theme.ERROR if face.errors else accent)
            return
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, lod > 0.3)
        border, width = colors.node_border, 1.0
        if face.errors:
            border, width = theme.ERROR, 2.5
        if self.isSelected():
            border, width = colors.selection, 2.5
        elif self._scene.highlighted_layer == face.title and face.shared:
            border, width = accent, 2.0
        self._paint_frame(painter, accent, fill, border, width)
        if face.errors and not self.isSelected():
            painter.setPen(QtGui.QPen(theme.ERROR, 2.5))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(self.body(), 6, 6)
        self._paint_ports(painter, accent)
        if lod < TEXT_LOD:
            return
        badges = []
        if face.errors:
            badges.append(("error", theme.ERROR))
        if face.is_output:
            badges.append(("output", colors.muted))
        if face.shared:
            badges.append((f"shared {face.shared[0]}/{face.shared[1]}", accent))
        self._paint_title(painter, face.title, badges)
        pill = "train≠infer" if face.trains_differently else ""
        self._paint_lines(painter, face.detail, face.params, face.settings, pill)
        if any(face.inputs):
            painter.setFont(self._scene.fonts.small)
            painter.setPen(colors.muted)
            metrics = self._scene.fonts.small_metrics
            for i, name in enumerate(face.inputs):
                if not name:
                    continue
                spot = self._port("in", i)
                if self._scene.direction == "TB":  # above the port, outside the node
                    w = metrics.horizontalAdvance(name) + 4
                    painter.drawText(QtCore.QRectF(spot.x() + 6, -15, w, 12), QtCore.Qt.AlignmentFlag.AlignLeft, name)
                else:
                    painter.drawText(QtCore.QRectF(9, spot.y() - 7, 90, 14), QtCore.Qt.AlignmentFlag.AlignVCenter, name)

    # interaction
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


class BlockItem(_Box):
    """A collapsed display block: one box with the block's input and output tensors as ports.

    It stands where its first node is (that node's position is the block's); the
    block's nodes are hidden, the wires inside it too, and wires crossing its
    boundary end on its ports. Double-click expands it.
    """

    def __init__(self, scene: GraphScene, name: str, members: tuple[str, ...]):
        super().__init__(scene)
        self.name = name
        self.members = members
        self.anchor = members[0]
        self.setPos(*scene.graph.node(self.anchor).position)
        self.setFlags(
            QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
            | QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsMovable
            | QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges
        )
        self.inputs: list[PortRef] = []
        self.outputs: list[PortRef] = []
        self.summary: BlockSummary | None = None
        self.update_boundary()

    @property
    def node_id(self) -> str:
        """The node that carries the block's position (its first)."""
        return self.anchor

    def port_counts(self) -> tuple[int, int]:
        return len(self.inputs), len(self.outputs)

    @property
    def wires(self) -> set[WireItem]:
        """The wires of the block's nodes: those crossing its edge end on its ports."""
        found: set[WireItem] = set()
        for node_id in self.members:
            found |= self._scene.wires_at(node_id)
        return found

    def update_boundary(self) -> None:
        """Re-reads the tensors that cross the block's edge and its totals."""
        graph = self._scene.graph
        summary = block_summary(graph, self.members, self._scene.result)
        if summary == self.summary:
            return
        self.summary = summary
        self.inputs, self.outputs = list(summary.inputs), list(summary.outputs)
        ports = max(len(self.inputs), len(self.outputs), 1)
        if self._scene.direction == "TB":
            size = (max(BLOCK_WIDTH, PORT_GAP * (ports + 1)), TB_HEIGHT)
        else:
            size = (BLOCK_WIDTH, port_y(ports - 1) + 14.0)
        if size != self._size:
            self.prepareGeometryChange()
            self._set_size(size)
        params = f"{summary.params:,} params" if summary.params else ""
        self.setToolTip(
            f"{self.name}: {summary.layers} layers{', ' + params if params else ''}"
            f"\n{summary.shapes}\ndouble-click to expand"
            + "".join(f"\n⚠ {m}" for m in summary.errors[:5])
        )
        self.update()

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        colors = self._scene.colors
        summary = self.summary
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        accent = theme.category_color("Blocks")
        if lod < OVERVIEW_LOD:
            painter.fillRect(self.body(), colors.selection if self.isSelected() else accent)
            return
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, lod > 0.3)
        border, width = colors.node_border, 1.0
        if summary is not None and summary.errors:
            border, width = theme.ERROR, 2.5
        if self.isSelected():
            border, width = colors.selection, 2.5
        # A second outline behind the box: a stack of layers.
        painter.setPen(QtGui.QPen(colors.node_border, 1.0))
        painter.setBrush(colors.node)
        painter.drawRoundedRect(self.body().translated(4, 4), 6, 6)
        self._paint_frame(painter, accent, colors.node, border, width)
        self._paint_ports(painter, accent)
        if lod < TEXT_LOD or summary is None:
            return
        badges = [("error", theme.ERROR)] if summary.errors else []
        badges.append((f"{summary.layers} layers", colors.muted))
        self._paint_title(painter, f"▸ {self.name}", badges)
        params = f"{summary.params:,} params" if summary.params else ""
        self._paint_lines(painter, f"in {summary.in_shapes}", params, f"out {summary.out_shapes}")

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().mouseReleaseEvent(event)
        self._scene.commit_moves()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._scene.set_collapsed([self.name], False)
        event.accept()


@dataclass(frozen=True)
class BlockSummary:
    """What a collapsed block shows: its boundary tensors, shapes, totals and problems."""

    inputs: tuple[PortRef, ...]
    outputs: tuple[PortRef, ...]
    layers: int
    params: int
    in_shapes: str
    out_shapes: str
    errors: tuple[str, ...]

    @property
    def shapes(self) -> str:
        return f"{self.in_shapes} → {self.out_shapes}"


def block_summary(graph: ModelGraph, members: Iterable[str], result) -> BlockSummary:
    """The tensors entering and leaving ``members`` (in graph order), and their totals.

    Costs the block's size, not the graph's: the graph keeps its topological index,
    so a scene summing up twenty blocks of a big model reads each node once.
    """
    index = graph.topological_index()
    order = sorted((n for n in members if n in index), key=index.__getitem__)
    inputs, outputs = block_boundary(graph, order)
    layers: dict[str, None] = {}
    params = 0
    errors: list[str] = []
    for node_id in order:
        layer = graph.node(node_id).layer
        found = result(node_id)
        if layer not in layers:
            layers[layer] = None
            params += (found.params or 0) if found is not None else 0
        if found is not None:
            errors += [f"{graph.label(node_id)}: {m}" for m in found.errors]

    def shape(ref: PortRef) -> str:
        found = result(ref.node)
        if found is None or not found.outputs or ref.port >= len(found.outputs):
            return "?"
        return format_shape(found.outputs[ref.port].shape)

    ins = ", ".join(dict.fromkeys(shape(r) for r in inputs)) or "—"
    outs = ", ".join(dict.fromkeys(shape(r) for r in outputs)) or "—"
    return BlockSummary(tuple(inputs), tuple(outputs), len(layers), params, ins, outs, tuple(errors))


class WireItem(QtWidgets.QGraphicsPathItem):
    """A tensor: a curve from an output port to an input port, labelled with its shape.

    Long wires bend around the nodes between their ends (:mod:`builder_app.core.routing`);
    the label sits just after the output port, in the gap below (or right of) the node
    that makes the tensor, where no other node can hide it.
    """

    def __init__(self, scene: GraphScene, edge: Edge):
        super().__init__()
        self.edge = edge
        self._scene = scene
        self.label = ""
        self.ends = QtCore.QLineF()
        self.bends: tuple[tuple[float, float], ...] = ()
        self._bounds = QtCore.QRectF()
        self._label_box = QtCore.QRectF()
        self.setFlags(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(0)
        if not scene._building:  # a scene being built routes every wire once, when all are there
            self.refresh()

    def refresh(self) -> None:
        ends = self._scene.wire_ends(self.edge)
        if ends is None:  # inside a collapsed block
            self.setVisible(False)
            return
        self.setVisible(True)
        a, b = ends
        result = self._scene.result(self.edge.src)
        label = ""
        if result is not None and result.outputs and self.edge.src_port < len(result.outputs):
            label = format_shape(result.outputs[self.edge.src_port].shape)
        line = QtCore.QLineF(a, b)
        bends = self._scene.bends(self.edge, a, b)
        if line == self.ends and label == self.label and bends == self.bends:
            return  # refreshed after every edit: most wires have not changed
        self.prepareGeometryChange()
        self.ends, self.label, self.bends = line, label, bends
        self.setPath(_path(a, b, bends, self._scene.direction))
        self._update_bounds()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt's name
        return self._bounds  # asked for many times per repaint: computed once per change

    def _update_bounds(self) -> None:
        rect = self.path().controlPointRect().adjusted(-4, -4, 4, 4)
        self._label_box = self._label_rect() if self.label else QtCore.QRectF()
        if self.label:
            rect = rect.united(self._label_box)
        self._bounds = rect

    def shape(self) -> QtGui.QPainterPath:
        stroker = QtGui.QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def _label_rect(self) -> QtCore.QRectF:
        start = self.ends.p1()
        width = self._scene.fonts.small_metrics.horizontalAdvance(self.label) + 10
        if self._scene.direction == "TB":
            return QtCore.QRectF(start.x() - width / 2, start.y() + LABEL_OFFSET - 8, width, 16)
        return QtCore.QRectF(start.x() + 10, start.y() - 18, width, 16)

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        colors = self._scene.colors
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        colour = colors.selection if self.isSelected() else colors.wire
        if lod < OVERVIEW_LOD:
            painter.setPen(QtGui.QPen(colour, 0))
            painter.drawPath(self.path()) if self.bends else painter.drawLine(self.ends)
            return
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, lod > 0.3)
        painter.setPen(QtGui.QPen(colour, 2.0 if self.isSelected() else 1.6))
        painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())
        if not self.label or lod < TEXT_LOD:
            return
        rect = self._label_box  # measured when the label or the ends changed, not per repaint
        painter.setPen(QtGui.QPen(colors.node_border, 1))
        painter.setBrush(colors.background)
        painter.drawRoundedRect(rect, 7, 7)
        painter.setFont(self._scene.fonts.small)
        painter.setPen(colors.text)
        painter.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, self.label)


@functools.lru_cache(maxsize=64)
def _header_path(width: float) -> QtGui.QPainterPath:
    """A box's header band, rounded at the top: a path intersection, made once per width."""
    header = QtGui.QPainterPath()
    header.addRoundedRect(QtCore.QRectF(0.5, 0.5, width - 1, HEADER), 5.5, 5.5)
    clip = QtGui.QPainterPath()
    clip.addRect(QtCore.QRectF(0, 0, width, HEADER))
    return header.intersected(clip)


def _curve(a: QtCore.QPointF, b: QtCore.QPointF, direction: str = "LR") -> QtGui.QPainterPath:
    path = QtGui.QPainterPath(a)
    if direction == "TB":
        dy = max(30.0, abs(b.y() - a.y()) * 0.5)
        path.cubicTo(QtCore.QPointF(a.x(), a.y() + dy), QtCore.QPointF(b.x(), b.y() - dy), b)
    else:
        dx = max(40.0, abs(b.x() - a.x()) * 0.5)
        path.cubicTo(QtCore.QPointF(a.x() + dx, a.y()), QtCore.QPointF(b.x() - dx, b.y()), b)
    return path


def _path(a: QtCore.QPointF, b: QtCore.QPointF, bends, direction: str) -> QtGui.QPainterPath:
    """A smooth wire from ``a`` through the bend points to ``b``.

    Each piece between two consecutive points is a cubic whose tangents follow the
    drawing's direction at both ends, so the wire leaves and enters ports straight
    and turns softly at every bend.
    """
    if not bends:
        return _curve(a, b, direction)
    points = [a, *(QtCore.QPointF(x, y) for x, y in bends), b]
    path = QtGui.QPainterPath(a)
    for p, q in zip(points, points[1:], strict=False):
        if direction == "TB":
            dy = (q.y() - p.y()) * 0.5
            path.cubicTo(QtCore.QPointF(p.x(), p.y() + dy), QtCore.QPointF(q.x(), q.y() - dy), q)
        else:
            dx = (q.x() - p.x()) * 0.5
            path.cubicTo(QtCore.QPointF(p.x() + dx, p.y()), QtCore.QPointF(q.x() - dx, q.y()), q)
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
        # Measured on every node's paint: made once, not per paint.
        self.title_metrics = QtGui.QFontMetricsF(self.title)
        self.body_metrics = QtGui.QFontMetricsF(self.body)
        self.small_metrics = QtGui.QFontMetricsF(self.small)


# --------------------------------------------------------------------------- #
# The scene
# --------------------------------------------------------------------------- #
class NodeItems(Mapping[str, "NodeItem"]):
    """``GraphScene.items_by_id``: node id -> its :class:`NodeItem`, for every node of the graph.

    A node hidden in a collapsed block gets its item when it is first asked for (or
    when its block expands), not when the scene is built: an imported ResNet50 opens
    as about twenty boxes, and making the ~150 hidden ones would cost most of the
    time before the first frame. Reading an entry, ``get``, ``values()`` and
    ``items()`` make the items they return; ``in`` and ``len`` make none.
    """

    def __init__(self, scene: GraphScene):
        self._scene = scene
        #: The items made so far (what the scene keeps up to date and removes).
        self.made: dict[str, NodeItem] = {}

    def __getitem__(self, node_id: str) -> NodeItem:
        item = self.made.get(node_id)
        if item is None:
            if node_id not in self._scene.graph.nodes:
                raise KeyError(node_id)
            item = self._scene._add_node(node_id)
        return item

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._scene.graph.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._scene.graph.nodes))

    def __len__(self) -> int:
        return len(self._scene.graph.nodes)


class GraphScene(QtWidgets.QGraphicsScene):
    """The items of one graph, kept in step with it.

    Signals:
        node_activated(str): a node was double-clicked (open a sub-model, focus the inspector).
        hint(str): a sentence for the status bar (why a wire cannot be drawn, ...).
    """

    node_activated = QtCore.Signal(str)
    hint = QtCore.Signal(str)
    selected_node = QtCore.Signal(object)  # node id or None
    theme_changed = QtCore.Signal(bool)  # dark: the scene repainted in the theme's colours

    def __init__(self, document, graph: ModelGraph | None = None, parent=None, dark: bool | None = None):
        super().__init__(parent)
        self.document = document
        self.graph = graph if graph is not None else document.graph
        self.colors = theme.canvas_colors(dark)
        #: Without an explicit ``dark`` the scene follows View → Theme (render passes one).
        self.follows_theme = dark is None
        self.fonts = _Fonts()
        self.snap = True
        self.highlighted_layer: str | None = None
        self.items_by_id = NodeItems(self)
        self.wires_by_dst: dict[tuple[str, int], WireItem] = {}
        #: Node id -> the wires into and out of it (what its item, made or not, draws).
        self._wires_at: dict[str, set[WireItem]] = {}
        #: Collapsed display blocks by name, and the block drawn for each hidden node.
        self.blocks_by_name: dict[str, BlockItem] = {}
        self._collapsed_of: dict[str, BlockItem] = {}
        #: None, "flops" or "activation_bytes": what the heat colouring shows.
        self.heat: str | None = None
        self._heat: dict[str, float] = {}
        self._router: Router | None = None
        self._router_boxes: dict[str, tuple[float, float, float, float]] = {}
        #: The boxes the wires were last routed around (what a reroute compares with).
        self._routed: dict[str, tuple[float, float, float, float]] | None = None
        self._building = False
        self._reroute = QtCore.QTimer(self, singleShot=True, interval=0)
        self._reroute.timeout.connect(self._reroute_changed)
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
        self._drawn_direction = self.direction
        self.rebuild()
        self.graph.changed.connect(self._on_change)
        document.shapes_updated.connect(self._shapes_updated)
        # Not a bound method: the scene's C++ destructor clears its items and emits
        # selectionChanged once the scene can no longer be called ("Slot not found").
        alive = weakref.ref(self)

        def on_selection() -> None:
            scene = alive()
            if scene is not None and shiboken6.isValid(scene):
                scene._on_selection()

        self.selectionChanged.connect(on_selection)
        if self.follows_theme:
            theme.signals().changed.connect(self._follow_theme)

    @property
    def controller(self):
        """The document's editor controller: where every gesture of this scene goes."""
        return self.document.controller

    def close(self) -> None:
        self.graph.changed.disconnect(self._on_change)
        self._stop_following_theme()
        try:
            self.document.shapes_updated.disconnect(self._shapes_updated)
        except (RuntimeError, TypeError):  # pragma: no cover - already gone
            pass

    def _stop_following_theme(self) -> None:
        if self.follows_theme:
            self.follows_theme = False
            try:
                theme.signals().changed.disconnect(self._follow_theme)
            except (RuntimeError, TypeError):  # pragma: no cover - already gone
                pass

    def _follow_theme(self, dark: bool) -> None:
        if not self.views():  # its window is gone (a scene outlives its view): nobody sees it
            self._stop_following_theme()
            return
        self.set_dark(dark)

    # reading
    def result(self, node_id: str) -> NodeResult | None:
        return self.document.result(node_id, self.graph)

    def face(self, node_id: str) -> NodeFace:
        return node_face(self.graph, node_id, self.result(node_id))

    @property
    def direction(self) -> str:
        """"TB" (inputs at the top) or "LR" (inputs on the left): the graph's own setting."""
        return self.graph.canvas.direction

    def selected_ids(self) -> list[str]:
        """The selected nodes; a selected collapsed block stands for all its nodes."""
        ids: list[str] = []
        for item in self.selectedItems():
            if isinstance(item, NodeItem):
                ids.append(item.node_id)
            elif isinstance(item, BlockItem):
                ids += [n for n in item.members if n in self.graph.nodes]
        return ids

    def visible_item(self, node_id: str) -> _Box | None:
        """What is drawn for a node: its own box, or the collapsed block that holds it."""
        return self._collapsed_of.get(node_id) or self.items_by_id.get(node_id)

    def wires_at(self, node_id: str) -> set[WireItem]:
        """The wires into and out of a node (do not mutate)."""
        return self._wires_at.get(node_id, set())

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, WireItem)]

    def diagram_rect(self) -> QtCore.QRectF:
        """The area the diagram covers, with a margin (read from the graph: cheap)."""
        if not self.graph.nodes:
            return QtCore.QRectF()
        left = top = math.inf
        right = bottom = -math.inf
        for item in self.visible_boxes():
            x, y = self.graph.node(item.node_id).position
            width, height = item.size()
            left, top = min(left, x), min(top, y)
            right, bottom = max(right, x + width), max(bottom, y + height)
        if left == math.inf:
            return QtCore.QRectF()
        return QtCore.QRectF(left, top, right - left, bottom - top).adjusted(-40, -40, 40, 40)

    def visible_boxes(self) -> list[_Box]:
        """The boxes drawn: nodes outside collapsed blocks, and the collapsed blocks."""
        made, hidden = self.items_by_id.made, self._collapsed_of
        boxes: list[_Box] = [made.get(n) or self.items_by_id[n] for n in self.graph.nodes if n not in hidden]
        return boxes + list(self.blocks_by_name.values())

    def box_sizes(self) -> dict[str, tuple[float, float]]:
        """Node id -> the size of what is drawn for it (a collapsed block: by its first node)."""
        return {item.node_id: item.size() for item in self.visible_boxes()}

    # building
    def rebuild(self) -> None:
        """Makes the items afresh: the boxes drawn, then every wire (hidden nodes' items wait)."""
        for item in [*self.items_by_id.made.values(), *self.wires_by_dst.values(), *self.blocks_by_name.values()]:
            self.removeItem(item)
        self.items_by_id.made.clear()
        self.wires_by_dst.clear()
        self._wires_at.clear()
        self.blocks_by_name.clear()
        self._collapsed_of.clear()
        self._building = True
        try:
            self._sync_blocks()
            for edge in self.graph.edges():
                self._add_wire(edge)
        finally:
            self._building = False
        self._reroute_all()

    def _sync_blocks(self) -> None:
        """Makes the collapsed blocks drawn match the graph's canvas settings.

        Nodes that come out of a collapsed block get their items here if they had none.
        """
        wanted = {
            block.name: members
            for block in self.graph.canvas.blocks
            if block.collapsed and (members := tuple(n for n in block.nodes if n in self.graph.nodes))
        }
        for name, item in list(self.blocks_by_name.items()):
            if wanted.get(name) != item.members:
                self.removeItem(item)
                del self.blocks_by_name[name]
        self._collapsed_of = {}
        for name, members in wanted.items():
            item = self.blocks_by_name.get(name)
            if item is None:
                item = BlockItem(self, name, members)
                self.addItem(item)
                self.blocks_by_name[name] = item
            else:
                snap, self.snap = self.snap, False
                item.setPos(*self.graph.node(item.anchor).position)
                self.snap = snap
                item.update_boundary()
            for node_id in members:
                self._collapsed_of[node_id] = item
        made = self.items_by_id.made
        for node_id in self.graph.nodes:
            item = made.get(node_id)
            if item is not None:
                item.setVisible(node_id not in self._collapsed_of)
            elif node_id not in self._collapsed_of:
                self._add_node(node_id)
        for wire in self.wires_by_dst.values():
            wire.setVisible(wire.edge.dst not in self._collapsed_of or wire.edge.src not in self._collapsed_of
                            or self._collapsed_of[wire.edge.dst] is not self._collapsed_of[wire.edge.src])
        self._router = None

    # wires: ends and routes
    def wire_ends(self, edge: Edge) -> tuple[QtCore.QPointF, QtCore.QPointF] | None:
        """Where a wire starts and ends as drawn; None when it is inside a collapsed block."""
        src_block, dst_block = self._collapsed_of.get(edge.src), self._collapsed_of.get(edge.dst)
        if src_block is not None and src_block is dst_block:
            return None
        tensor = PortRef(edge.src, edge.src_port)
        a = self._end(edge.src, edge.src_port, src_block, tensor, output=True)
        b = self._end(edge.dst, edge.dst_port, dst_block, tensor, output=False)
        return None if a is None or b is None else (a, b)

    def _end(self, node_id: str, port: int, block, tensor: PortRef, output: bool) -> QtCore.QPointF | None:
        """One end of a wire: the node's port, or the port its collapsed block gives the tensor."""
        if block is not None:
            ports = block.outputs if output else block.inputs
            index = ports.index(tensor) if tensor in ports else 0
            return block.output_pos(index) if output else block.input_pos(index)
        item = self.items_by_id.get(node_id)
        if item is None:
            return None
        return item.output_pos(port) if output else item.input_pos(port)

    def bends(self, edge: Edge, a: QtCore.QPointF, b: QtCore.QPointF) -> tuple[tuple[float, float], ...]:
        """Bend points taking a wire around the boxes between its ends."""
        if self._building:
            return ()
        if self._router is None:
            self._router_for(self._boxes())
        own = [item.node_id for item in (self.visible_item(edge.src), self.visible_item(edge.dst)) if item is not None]
        return tuple(self._router.route((a.x(), a.y()), (b.x(), b.y()), own))

    def _boxes(self) -> dict[str, tuple[float, float, float, float]]:
        """Node id (a block: its first node) -> its box as drawn, for the wire router."""
        return {item.node_id: item.box() for item in self.visible_boxes()}

    def _router_for(self, boxes: dict[str, tuple[float, float, float, float]]) -> Router:
        """The router over these boxes: the last one built when they have not changed since.

        A drag routes the moved box's wires at once and the others a moment later, over
        the same boxes; building the index once for both halves the cost of a move.
        """
        if self._router is None or self._router_boxes != boxes:
            self._router = Router(boxes, self.direction, ROUTE_CLEARANCE)
            self._router_boxes = boxes
        return self._router

    def box_moved(self, item: _Box) -> None:
        """A box moved or changed size: its wires follow, the others are rerouted soon."""
        if self._building:
            return
        self._router = None
        for wire in self._wires_of(item):
            wire.refresh()
        self._reroute.start()

    def _wires_of(self, item: _Box) -> Iterable[WireItem]:
        return list(item.wires)

    def _reroute_all(self) -> None:
        """Routes every wire around the boxes as they stand."""
        boxes = self._boxes()
        self._router = None
        self._router_for(boxes)
        for wire in self.wires_by_dst.values():
            wire.refresh()
        self._routed = boxes

    def _reroute_changed(self) -> None:
        """After boxes moved, appeared or went: reroutes the wires they can have changed.

        Those are the wires of the boxes that changed and the wires passing near their
        old or new place; a wire elsewhere keeps its route, which stays clear of every
        box (no box came near it). Moving a node of an 800-node model so reroutes a few
        dozen wires instead of all of them. Many changed boxes (a layout) reroute all.
        """
        before = self._routed
        boxes = self._boxes()
        if before is None:
            self._reroute_all()
            return
        changed = [n for n in boxes.keys() | before.keys() if boxes.get(n) != before.get(n)]
        if not changed:
            return
        if len(changed) > REROUTE_ALL_AT:
            self._reroute_all()
            return
        margin = ROUTE_CLEARANCE + 1.0
        spots = [
            QtCore.QRectF(x - margin, y - margin, w + 2 * margin, h + 2 * margin)
            for x, y, w, h in [*(before[n] for n in changed if n in before), *(boxes[n] for n in changed if n in boxes)]
        ]
        wires: set[WireItem] = set()
        for node_id in changed:
            item = self.visible_item(node_id) if node_id in self.graph.nodes else None
            if item is not None:
                wires |= item.wires
        for wire in self.wires_by_dst.values():
            if wire not in wires and wire.isVisible():
                bounds = wire.boundingRect()
                if any(bounds.intersects(spot) for spot in spots):
                    wires.add(wire)
        self._router_for(boxes)
        for wire in wires:
            wire.refresh()
        self._routed = boxes

    def _add_node(self, node_id: str) -> NodeItem:
        item = NodeItem(self, node_id)
        item.setVisible(node_id not in self._collapsed_of)
        self.addItem(item)
        self.items_by_id.made[node_id] = item
        return item

    def _add_wire(self, edge: Edge) -> None:
        wire = WireItem(self, edge)
        self.addItem(wire)
        self.wires_by_dst[(edge.dst, edge.dst_port)] = wire
        for node_id in (edge.src, edge.dst):
            self._wires_at.setdefault(node_id, set()).add(wire)

    def _remove_wire(self, dst: str, dst_port: int) -> None:
        wire = self.wires_by_dst.pop((dst, dst_port), None)
        if wire is None:
            return
        for node_id in (wire.edge.src, wire.edge.dst):
            self._wires_at.get(node_id, set()).discard(wire)
        self.removeItem(wire)

    def _on_change(self, change: Change) -> None:
        kind = change.kind
        graph = self.graph
        made = self.items_by_id.made
        if kind is ChangeKind.ADD_NODE:
            if any(self.graph.canvas.block_of(n) for n in change.nodes):
                self._sync_blocks()  # makes the items of the nodes it leaves visible
            for node_id in change.nodes:
                if node_id not in made and node_id in graph.nodes and node_id not in self._collapsed_of:
                    self._add_node(node_id)
            self._refresh_layer(change.detail.get("layer"))
            self._reroute.start()
        elif kind is ChangeKind.REMOVE_NODE:
            for node_id in change.nodes:
                for wire in list(self._wires_at.pop(node_id, ())):
                    self._remove_wire(wire.edge.dst, wire.edge.dst_port)
                item = made.pop(node_id, None)
                if item is not None:
                    self.removeItem(item)
            self._refresh_layer(change.detail.get("layer"))
            if any(n in self._collapsed_of for n in change.nodes):
                self._sync_blocks()
            self._reroute.start()
        elif kind is ChangeKind.SET_CANVAS:
            if self._drawn_direction != self.direction:
                self._drawn_direction = self.direction
                self.rebuild()
            else:
                self._sync_blocks()
                self._reroute_all()
        elif kind is ChangeKind.CONNECT:
            edge = change.detail["edge"]
            self._add_wire(edge)
            self._refresh_nodes((edge.src, edge.dst))
            self._refresh_blocks((edge.src, edge.dst))
        elif kind is ChangeKind.DISCONNECT:
            edge = change.detail["edge"]
            self._remove_wire(edge.dst, edge.dst_port)
            self._refresh_nodes((edge.src, edge.dst))
            self._refresh_blocks((edge.src, edge.dst))
        elif kind is ChangeKind.MOVE:
            node_id = change.detail["node"]
            position = QtCore.QPointF(*graph.node(node_id).position)
            block = self._collapsed_of.get(node_id)
            for item in (made.get(node_id), block if block is not None and block.anchor == node_id else None):
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

    def _refresh_blocks(self, node_ids: Iterable[str]) -> None:
        """Collapsed blocks whose boundary an edit may have changed re-read it."""
        for block in {self._collapsed_of[n] for n in node_ids if n in self._collapsed_of}:
            block.update_boundary()
            for wire in self._wires_of(block):
                wire.refresh()

    def _refresh_layer(self, layer: str | None) -> None:
        if layer:
            self._refresh_nodes(self.graph.nodes_of_layer(layer))

    def _refresh_nodes(self, node_ids: Iterable[str]) -> None:
        """The items made of these nodes re-read their faces (one not made yet reads it when made)."""
        made = self.items_by_id.made
        for node_id in node_ids:
            item = made.get(node_id)
            if item is not None:
                item.refresh()

    def _shapes_updated(self, changes) -> None:
        """Repaints the nodes whose results changed, and the wires leaving them."""
        changed = changes.get(self.graph, ())
        made = self.items_by_id.made
        wires: set[WireItem] = set()  # each refreshed once, however many of its ends changed
        for node_id in changed:
            item = made.get(node_id)
            if item is not None:
                item.read_face()
            wires |= self.wires_at(node_id)  # a shape label: also of a wire leaving a hidden node
        for block in {self._collapsed_of[n] for n in changed if n in self._collapsed_of}:
            block.update_boundary()
            wires |= block.wires
        for wire in wires:
            wire.refresh()
        if self.heat and changed:
            self.set_heat(self.heat)

    def refresh_all(self) -> None:
        for item in list(self.items_by_id.made.values()):
            item.refresh()
        for block in self.blocks_by_name.values():
            block.update_boundary()
        self._reroute_all()
        self.update()

    def set_dark(self, dark: bool) -> None:
        """Draws the scene in the dark or light colours, at once: every item, made or made later."""
        self.colors = theme.canvas_colors(dark)
        self.setBackgroundBrush(self.colors.background)
        for item in [*self.items_by_id.made.values(), *self.blocks_by_name.values()]:
            item.update()  # cached pixmaps are painted again in the new colours
        for wire in self.wires_by_dst.values():
            wire.update()
        self.update()
        self.theme_changed.emit(dark)

    # cost heat colouring
    def set_heat(self, kind: str | None) -> None:
        """Tints every node by its cost: "flops" (multiply-accumulates), "activation_bytes", or None."""
        self.heat = kind
        self._heat = {}
        engine = self.document.engine_for(self.graph)
        if kind is not None and engine is not None:
            costs = model_costs(self.graph, engine)
            values = {n: getattr(c, kind) for n, c in costs.items() if getattr(c, kind)}
            top = max(values.values(), default=0)
            if top > 1:
                # Log scale: a model's costs span orders of magnitude.
                self._heat = {n: math.log1p(v) / math.log1p(top) for n, v in values.items()}
        for item in self.items_by_id.made.values():
            item.update()

    def heat_fill(self, node_id: str) -> QtGui.QColor | None:
        """The node's body colour under heat colouring (None: the usual colour)."""
        if self.heat is None:
            return None
        level = self._heat.get(node_id, 0.0)
        cold, hot = self.colors.node, QtGui.QColor("#f97316")
        mix = 0.08 + 0.8 * level
        return QtGui.QColor(
            round(cold.red() + (hot.red() - cold.red()) * mix),
            round(cold.green() + (hot.green() - cold.green()) * mix),
            round(cold.blue() + (hot.blue() - cold.blue()) * mix),
        )

    # display blocks
    def set_collapsed(self, names: Iterable[str], collapsed: bool) -> bool:
        """Collapses or expands display blocks, laying the drawing out again (one undo step)."""
        return bool(self.controller.set_collapsed(self.graph, list(names), collapsed))

    def expand_to(self, node_id: str) -> NodeItem | None:
        """The item of ``node_id``, after expanding a collapsed block that holds it (None if no such node)."""
        block = self._collapsed_of.get(node_id)
        if block is not None:
            self.set_collapsed([block.name], False)
        return self.items_by_id.get(node_id)

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
        # Axis-aligned hairlines look the same without antialiasing, which costs most of a repaint.
        smooth = painter.testRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        painter.setPen(QtGui.QPen(self.colors.grid, 0))
        painter.drawLines(lines_minor)
        painter.setPen(QtGui.QPen(self.colors.grid_major, 0))
        painter.drawLines(lines_major)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, smooth)

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
        made = self.items_by_id.made
        for node_id in node_ids:
            item = made.get(node_id)
            if item is not None:
                item.update()

    def select_nodes(self, node_ids: Iterable[str]) -> None:
        """Selects these nodes' items (a node hidden in a collapsed block cannot be selected)."""
        wanted = set(node_ids)
        self.clearSelection()
        for node_id in wanted:
            if node_id in self._collapsed_of:
                continue
            item = self.items_by_id.get(node_id)
            if item is not None:
                item.setSelected(True)

    # moving
    def commit_moves(self) -> None:
        positions = {
            item.node_id: (item.pos().x(), item.pos().y())
            for item in self.selectedItems()
            if isinstance(item, _Box)
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
            if isinstance(hit, NodeItem) and hit.isVisible():
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
        path = _curve(start, end, self.direction) if kind == "out" else _curve(end, start, self.direction)
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
        self.controller.layout(self.graph, node_ids, sizes=self.box_sizes())
