"""The model summary as a Qt table model: one row per node, read from the graph and its shapes.

Cells are computed when the view asks for them (only the visible rows of a big
model), from the graph and the shape engine's last results; nothing is copied
into widgets, so a refresh is a signal, not a rebuild.
"""

from __future__ import annotations

from PySide6 import QtCore

from builder_app.core.graph import ModelGraph
from builder_app.core.text import format_shape
from builder_app.ui import theme

#: The node id of a row, for every cell (``index.data(NODE_ROLE)``).
NODE_ROLE = QtCore.Qt.ItemDataRole.UserRole

COLUMNS = ("Layer (type)", "Output shape", "Param #", "Connected to")


class SummaryModel(QtCore.QAbstractTableModel):
    """Rows in topological order: the layer and its class, output shapes, parameters, sources."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._graph: ModelGraph | None = None
        self._engine = None
        self._rows: list[str] = []

    def show(self, graph: ModelGraph | None, engine) -> None:
        """Shows ``graph`` with the results of ``engine`` (None: no shapes yet)."""
        rows = graph.topological_order() if graph is not None else []
        if graph is self._graph and engine is self._engine and rows == self._rows:
            if rows:  # same rows: only the cells' contents may have changed
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self._graph, self._engine, self._rows = graph, engine, rows
        self.endResetModel()

    def node_at(self, row: int) -> str | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, node_id: str) -> int | None:
        try:
            return self._rows.index(node_id)
        except ValueError:
            return None

    # ----------------------------------------------------------------- Qt's model API
    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008, N802 - Qt's name
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008, N802 - Qt's name
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role: int = QtCore.Qt.ItemDataRole.DisplayRole):  # noqa: N802 - Qt's name
        if orientation == QtCore.Qt.Orientation.Horizontal and role == QtCore.Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        graph = self._graph
        if graph is None or not index.isValid() or index.row() >= len(self._rows):
            return None
        node_id = self._rows[index.row()]
        if node_id not in graph.nodes:  # removed; a reset follows
            return None
        if role == NODE_ROLE:
            return node_id
        result = self._engine.peek(node_id) if self._engine is not None else None
        if role == QtCore.Qt.ItemDataRole.ForegroundRole:
            return theme.ERROR if result is not None and result.errors else None
        if role != QtCore.Qt.ItemDataRole.DisplayRole:
            return None
        column = index.column()
        if column == 0:
            return f"{graph.label(node_id)} ({graph.layer_of(node_id).class_name.rpartition('.')[2]})"
        if column == 1:
            return ", ".join(format_shape(s) for s in (result.output_shapes if result else [])) or "?"
        if column == 2:
            return "" if result is None or result.params is None else f"{result.params:,}"
        return ", ".join(graph.label(ref.node) for ref in graph.inputs_of(node_id).values())
