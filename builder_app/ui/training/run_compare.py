"""Run comparison: several runs of the history, their curves overlaid and their settings side by side.

The curves are one plot per chosen metric (``val_loss`` first), one line per run
and a legend. The table has one column per run and one row per setting (flattened:
``optimizer.config.learning_rate``), per searched parameter of a sweep trial
(``sweep: dropout.rate``) and per final metric; a row whose values are not all
equal is highlighted. What differs is found by :func:`compare_rows` (no Qt).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.runs import run_label
from builder_app.ui import theme

#: Line colours of the compared runs, in order (then repeated).
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
#: The highlight of a row whose values differ between runs.
DIFFERENT = QtGui.QColor(255, 200, 60, 90)


def _flat(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flat(inner, f"{prefix}.{key}" if prefix else str(key), into)
    else:
        into[prefix] = value


def run_facts(record: Mapping[str, Any]) -> dict[str, Any]:
    """One run's comparable facts: its settings (flattened), sweep parameters and final metrics."""
    facts: dict[str, Any] = {}
    for key, value in dict((record.get("sweep") or {}).get("params") or {}).items():
        facts[f"sweep: {key}"] = value
    settings: dict[str, Any] = {}
    _flat(dict(record.get("settings") or {}), "", settings)
    facts.update(settings)
    for key, values in sorted(dict(record.get("history") or {}).items()):
        if isinstance(values, list) and values:
            facts[f"final {key}"] = values[-1]
    facts["status"] = record.get("status")
    facts["seconds"] = record.get("seconds")
    return facts


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return "" if value is None else str(value)


def compare_rows(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str], bool]]:
    """``(name, one text per run, differs)`` for every fact any of the runs has, differing ones first."""
    facts = [run_facts(r) for r in records]
    names: list[str] = []
    for one in facts:
        names.extend(n for n in one if n not in names)
    rows = []
    for name in names:
        texts = [_text(one.get(name)) for one in facts]
        rows.append((name, texts, len(set(texts)) > 1))
    sweep_first = [r for r in rows if r[0].startswith("sweep: ")]
    final = [r for r in rows if r[0].startswith("final ")]
    rest = [r for r in rows if r not in sweep_first and r not in final]
    return sweep_first + final + [r for r in rest if r[2]] + [r for r in rest if not r[2]]


class RunComparison(QtWidgets.QWidget):
    """Compares the runs it is given (records of ``project.runs``, with their places)."""

    def __init__(self, records: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Compare runs")
        self.records = list(records)
        self.labels = list(labels) if labels is not None else [run_label(r, i) for i, r in enumerate(self.records)]
        colors = theme.plot_colors()
        self.metric_box = QtWidgets.QComboBox()
        keys: list[str] = []
        for record in self.records:
            keys.extend(k for k in (record.get("history") or {}) if k not in keys)
        keys.sort(key=lambda k: (not k.startswith("val_"), "loss" not in k, k))
        self.metric_box.addItems(keys)
        self.metric_box.currentTextChanged.connect(self._draw)
        self.plot = pg.PlotWidget(background=colors.background)
        self.plot.setLabel("bottom", "epoch")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.table = QtWidgets.QTableWidget()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Metric"))
        top.addWidget(self.metric_box, 1)
        upper = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(upper)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.plot, 1)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(self.table)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(split)
        self._fill_table()
        self._draw(self.metric_box.currentText())
        self.resize(900, 700)

    def curves(self) -> list[pg.PlotDataItem]:
        """The plotted lines, one per run that has the metric."""
        return [item for item in self.plot.listDataItems()]

    def differing_rows(self) -> list[str]:
        """The names of the highlighted rows."""
        return [name for name, _, differs in self.rows if differs]

    def _fill_table(self) -> None:
        self.rows = compare_rows(self.records)
        self.table.setColumnCount(len(self.records))
        self.table.setRowCount(len(self.rows))
        self.table.setHorizontalHeaderLabels(self.labels)
        self.table.setVerticalHeaderLabels([name for name, _, _ in self.rows])
        for row, (_, texts, differs) in enumerate(self.rows):
            for column, text in enumerate(texts):
                item = QtWidgets.QTableWidgetItem(text)
                if differs:
                    item.setBackground(DIFFERENT)
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()

    def _draw(self, key: str) -> None:
        self.plot.clear()
        self.legend.clear()
        self.plot.setLabel("left", key)
        for i, (record, label) in enumerate(zip(self.records, self.labels, strict=True)):
            values = (record.get("history") or {}).get(key) or []
            if not values:
                continue
            pen = pg.mkPen(COLORS[i % len(COLORS)], width=2)
            self.plot.plot(list(range(1, len(values) + 1)), [float(v) for v in values], pen=pen, name=label,
                           symbol="o", symbolSize=5, symbolBrush=COLORS[i % len(COLORS)])
