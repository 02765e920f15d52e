"""The model summary as a Qt table model: one row per node, read from the graph and its shapes.

Cells are computed when the view asks for them (only the visible rows of a big
model), from the graph and the shape engine's last results; nothing is copied
into widgets, so a refresh is a signal, not a rebuild. A row's costs
(multiply-accumulates and activation bytes, :mod:`builder_app.core.costs`) are
kept once asked for, until the next :meth:`SummaryModel.show`.
"""

from __future__ import annotations

from PySide6 import QtCore

from builder_app.core.costs import NodeCost, format_bytes, format_count, node_cost, total_cost
from builder_app.core.graph import ModelGraph
from builder_app.core.text import format_shape
from builder_app.ui import theme

#: The node id of a row, for every cell (``index.data(NODE_ROLE)``).
NODE_ROLE = QtCore.Qt.ItemDataRole.UserRole

COLUMNS = ("Layer (type)", "Output shape", "Param #", "MACs", "Activations", "Connected to")

#: The columns of numbers, right-aligned.
_NUMBERS = (2, 3, 4)


class SummaryModel(QtCore.QAbstractTableModel):
    """Rows in topological order: layer and class, output shapes, parameters, costs, sources."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._graph: ModelGraph | None = None
        self._engine = None
        self._rows: list[str] = []
        self._costs: dict[str, NodeCost] = {}

    def show(self, graph: ModelGraph | None, engine) -> None:
        """Shows ``graph`` with the results of ``engine`` (None: no shapes yet)."""
        rows = graph.topological_order() if graph is not None else []
        self._costs = {}  # the engine's results may have changed
        if graph is self._graph and engine is self._engine and rows == self._rows:
            if rows:  # same rows: only the cells' contents may have changed
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self._graph, self._engine, self._rows = graph, engine, rows
        self.endResetModel()

    def node_at(self, row: int) -> str | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def cost_of(self, node_id: str) -> NodeCost:
        """A shown node's multiply-accumulates and activation bytes per sample (kept until show)."""
        cost = self._costs.get(node_id)
        if cost is None:
            if self._graph is None or self._engine is None or node_id not in self._graph.nodes:
                return NodeCost(None, None)
            cost = self._costs[node_id] = node_cost(self._graph, self._engine, node_id)
        return cost

    def total(self) -> NodeCost:
        """The sums over every row (unknown rows count as 0; None when all are unknown)."""
        return total_cost({node_id: self.cost_of(node_id) for node_id in self._rows})

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
        column = index.column()
        if role == QtCore.Qt.ItemDataRole.ForegroundRole:
            return theme.ERROR if result is not None and result.errors else None
        if role == QtCore.Qt.ItemDataRole.TextAlignmentRole and column in _NUMBERS:
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == QtCore.Qt.ItemDataRole.ToolTipRole and column in (3, 4) and result is not None:
            cost = self.cost_of(node_id)
            if column == 3:
                return _exact(cost.flops, "multiply-accumulates per sample")
            return _exact(cost.activation_bytes, "bytes of outputs per sample")
        if role != QtCore.Qt.ItemDataRole.DisplayRole:
            return None
        if column == 0:
            return f"{graph.label(node_id)} ({graph.layer_of(node_id).class_name.rpartition('.')[2]})"
        if column == 1:
            return ", ".join(format_shape(s) for s in (result.output_shapes if result else [])) or "?"
        if column == 2:
            return "" if result is None or result.params is None else f"{result.params:,}"
        if column == 3:
            return "" if result is None else format_count(self.cost_of(node_id).flops)
        if column == 4:
            return "" if result is None else format_bytes(self.cost_of(node_id).activation_bytes)
        return ", ".join(graph.label(ref.node) for ref in graph.inputs_of(node_id).values())


def _exact(value: int | None, what: str) -> str:
    return f"{value:,} {what}" if value is not None else f"unknown {what}"
