"""The live training dashboard: loss, metrics, learning rate and progress of one run.

:class:`TrainingDashboard` reads the events of :mod:`builder_app.training.events`
(typed dicts) through :meth:`TrainingDashboard.add_event` and draws them with
pyqtgraph. It knows nothing of TensorFlow or Keras, nor of how the events arrive:
the caller drains the runner's queue and hands each event over on the GUI thread.

Thousands of batch events a second must stay cheap, so an event only appends to
numpy arrays that double when full and marks what changed; a single-shot timer
redraws at most ``max_redraws_per_second`` times, feeding each curve once with
``setData()`` (peak downsampling and clipping to the view keep 100k-point curves
fast to paint). The arithmetic (smoothing, the batch log, ticks, time left) is
:mod:`builder_app.training.curves`, without Qt; this module only draws.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

# isort: split
# pyqtgraph binds to the Qt already imported: PySide6, above.
import pyqtgraph as pg

from builder_app.training.curves import (
    DEFAULT_SMOOTHING,
    LEARNING_RATE_KEYS,
    MAX_SMOOTHING,
    BatchLog,
    IncrementalSmoother,
    TimeLeft,
    as_integer,
    as_number,
    best_epoch,
    best_text,
    blend_opaque,
    constant_range,
    count_ticks,
    default_monitor,
    epoch_markers,
    finite_bounds,
    format_duration,
    format_ticks,
    is_loss_metric,
    is_validation,
    log_tick_label,
    metric_base_name,
    metric_order,
    metric_title,
    monitor_mode,
)
from builder_app.training.events import EventKind, FinishStatus
from builder_app.ui import theme

pg.setConfigOptions(antialias=True)

#: Colours of the current run's series (Tailwind-like, readable on light and dark).
TRAIN_COLOR = "#2563eb"
VALIDATION_COLOR = "#ea580c"
SMOOTHED_COLOR = "#1e40af"
RAW_COLOR = (37, 99, 235, 70)
LEARNING_RATE_COLOR = "#7c3aed"
THROUGHPUT_COLOR = "#059669"
#: Previous runs cycle through muted colours, drawn dashed behind the current run.
PREVIOUS_COLORS = ("#64748b", "#0d9488", "#db2777", "#a16207", "#7c3aed", "#0891b2")
PREVIOUS_ALPHA = 150

_STATUS_COLORS = {
    "idle": "#94a3b8",
    "running": "#16a34a",
    "paused": "#d97706",
    "stopped": "#64748b",
    "finished": "#2563eb",
    "failed": "#dc2626",
}

# What a redraw has to refresh.
_BATCHES = 1
_EPOCHS = 2
_RESMOOTH = 4
_LABELS = 8

#: The most epoch markers in view (a marker an epoch is a curtain on a long run),
#: and the room between two labels of the epoch axis, in pixels.
_MAX_EPOCH_MARKERS = 12
_EPOCH_LABEL_GAP = 28


class _BatchCurve(pg.PlotDataItem):
    """A curve of one point a batch that tells auto-range the bounds of all its data.

    pyqtgraph measures the downsampled curve instead: its last x moves with the bin
    size, the bin size with the range, the range with the last x, and the view can
    flip between two ranges for ever, one repaint after another.
    """

    def setData(self, *args: Any, **kwargs: Any) -> None:
        self._bounds: dict[tuple[int, bool], tuple[float, float] | tuple[None, None]] = {}
        super().setData(*args, **kwargs)

    def dataBounds(
        self, ax: int, frac: float = 1.0, orthoRange: tuple[float, float] | None = None
    ) -> tuple[float, float] | tuple[None, None]:
        if frac != 1.0 or orthoRange is not None:
            return super().dataBounds(ax, frac, orthoRange)
        log = bool(self.opts["logMode"][ax])
        key = (ax, log)
        bounds = self._bounds.get(key)
        if bounds is None:
            values = self.getOriginalDataset()[ax]
            found = finite_bounds(values, log) if values is not None else None
            bounds = found if found is not None else (None, None)
            self._bounds[key] = bounds
        return bounds


class _Axis(pg.AxisItem):
    """An axis whose grid lines are opaque: their colour blended with the background.

    Qt's raster engine draws translucent horizontal lines ~20x slower than opaque
    ones, which made the grid the costliest part of a repaint. The plots put the axes
    behind the curves, so that opaque lines never cross them.
    """

    def __init__(self, orientation: str, background: QtGui.QColor, **kwargs: Any) -> None:
        super().__init__(orientation, **kwargs)
        self._background = QtGui.QColor(background)
        # Real values on the ticks: never "loss (x0.001)" over ticks of 100 to 500.
        self.enableAutoSIPrefix(False)
        self._fitted: tuple | None = None  # what fit_tick_labels measured last

    def generateDrawSpecs(self, p: QtGui.QPainter) -> tuple | None:
        specs = super().generateDrawSpecs(p)
        if specs is None:
            return None
        axis_spec, tick_specs, text_specs = specs
        background = self._background
        opaque = []
        for pen, p1, p2 in tick_specs:
            color = pen.color()
            if color.alpha() < 255:
                pen = QtGui.QPen(pen)
                pen.setColor(
                    QtGui.QColor.fromRgbF(
                        *blend_opaque(
                            (color.redF(), color.greenF(), color.blueF()),
                            color.alphaF(),
                            (background.redF(), background.greenF(), background.blueF()),
                        )
                    )
                )
            opaque.append((pen, p1, p2))
        return axis_spec, opaque, text_specs

    def fit_tick_labels(self, *_: Any) -> None:
        """Widens a left axis to its widest tick label ("0.00035", "160,000") before it paints.

        pyqtgraph drops the labels that do not fit and widens the axis for the next
        paint; this widens it first. It never narrows: a width that followed every
        redraw would shift the plot under a live run.
        """
        low, high = self.range
        size = max(self.height(), 1.0)
        # The labels' widths follow from the tick spacings, the range's sign and its
        # decade alone (the notation, the decimals, the digits before the point):
        # measure again only when one of them changes, not at every redraw.
        if self.logMode:
            key: tuple = (True, math.floor(low), math.ceil(high))
        else:
            magnitude = max(abs(low), abs(high)) * self.scale
            decade = math.floor(math.log10(magnitude)) if magnitude > 0 else None
            spacings = tuple(spacing for spacing, _ in self.tickSpacing(low, high, size))
            key = (False, low < 0, decade, spacings)
        key += (self.label.isVisible(), self.style["maxTextLevel"])
        if key == self._fitted:
            return
        self._fitted = key
        metrics = QtGui.QFontMetricsF(self.style["tickFont"] or self.font())
        widest = 0.0
        levels = self.tickValues(low, high, size)
        for spacing, values in levels[: self.style["maxTextLevel"] + 1]:
            for text in self.tickStrings(values, self.autoSIPrefixScale * self.scale, spacing):
                widest = max(widest, metrics.horizontalAdvance(text))
        needed = widest + self.style["tickTextOffset"][0] + max(0, self.style["tickLength"]) + 4
        if self.label.isVisible():
            needed += self.label.boundingRect().height() * 0.8
        if needed > self.width():
            self.setWidth(math.ceil(needed))

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        if self.logMode:
            return self.logTickStrings(values, scale, spacing)
        # The range, not one tick level's values, picks the notation: major and minor
        # ticks of one axis never mix "9e-4" with "0.0008".
        largest = max(abs(self.range[0]), abs(self.range[1])) * scale
        return format_ticks([v * scale for v in values], spacing * scale, largest=largest)

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        # Label 1, 2 and 5 of each decade only: all nine overlap on a small plot.
        return [log_tick_label(v, scale) for v in values]


class _CountAxis(_Axis):
    """A bottom axis that only ticks whole epochs or steps, counted from 1 as Keras counts them."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        return count_ticks(super().tickValues(minVal, maxVal, size))


class _MetricPlot:
    """One per-epoch plot: a metric's train and validation curves, and previous runs'."""

    def __init__(self, name: str, widget: pg.PlotWidget) -> None:
        self.name = name
        self.widget = widget
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.previous: list[pg.PlotDataItem] = []
        self.best: pg.PlotDataItem | None = None  # the monitored metric's best epoch
        self.framed = False  # its y range set around a constant series, not auto-ranged


class TrainingDashboard(QtWidgets.QWidget):
    """Live plots and status of one training run, with previous runs for comparison.

    Feed it the run's events with :meth:`add_event`, **on the GUI thread only**: the
    widget is not thread-safe, and the caller (the runner's queue reader) must hand
    events over from the thread that owns the widget, e.g. through a queued signal
    connected to :meth:`add_event`. Events are absorbed at once; the plots follow at
    most ``max_redraws_per_second`` times a second (:meth:`flush` redraws now).

    Args:
        parent: The parent widget.
        max_redraws_per_second: The most redraws a second, however fast events arrive.
    """

    def __init__(
        self, parent: QtWidgets.QWidget | None = None, *, max_redraws_per_second: float = 20.0
    ) -> None:
        super().__init__(parent)
        self._batches = BatchLog()
        self._smoother = IncrementalSmoother(self._batches.capacity)
        self._time_left = TimeLeft()
        self._redraw_timer = QtCore.QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(max(1, round(1000 / max_redraws_per_second)))
        self._redraw_timer.timeout.connect(self._redraw)
        self._redraws = 0
        self._metric_plots: dict[str, _MetricPlot] = {}
        self._previous_runs: list[tuple[str, dict[str, list[float]]]] = []
        self._previous_lr_curves: list[pg.PlotDataItem] = []
        self._epoch_lines: list[pg.InfiniteLine] = []
        self._epoch_markers_shown: list[tuple[int, float]] = []
        self._metric_columns = 0
        # The log keys as the model was compiled, kept from run to run: the plots keep
        # their places when a new run's previous runs arrive before its started event.
        self._compiled_metrics: list[str] = []
        self._monitor: str | None = None
        # A table, not a match: a plain-string kind finds its handler too (StrEnum
        # hashes as its value), and thousands of batch events a second pay one lookup.
        self._handlers = {
            EventKind.STARTED: self._on_started,
            EventKind.BATCH: self._on_batch,
            EventKind.EPOCH: self._on_epoch,
            EventKind.PAUSED: self._on_paused,
            EventKind.RESUMED: self._on_resumed,
            EventKind.FINISHED: self._on_finished,
            EventKind.FAILED: self._on_failed,
        }
        self._clear_run_state()
        self._build()
        theme.signals().changed.connect(self._theme_changed)  # View → Theme, at once
        self._refresh_labels()

    # ----------------------------------------------------------------- public API

    @QtCore.Slot(dict)
    def add_event(self, event: dict[str, Any]) -> None:
        """Takes one training event (see :mod:`builder_app.training.events`).

        Call on the GUI thread only. Unknown kinds are ignored; a ``started`` event
        after another run's events clears them first, as :meth:`reset` does.
        """
        handler = self._handlers.get(event.get("kind"))
        if handler is not None:
            handler(event)
            if not self._redraw_timer.isActive():
                self._redraw_timer.start()

    def reset(self) -> None:
        """Clears the current run's data for a new run; previous runs stay overlaid."""
        self._clear_run_state()
        self._rebuild_metric_plots()
        for line in self._epoch_lines:
            self.batch_plot.removeItem(line)
        self._epoch_lines.clear()
        self._epoch_markers_shown = []
        self._epoch_axis.setTicks([[]])
        self._refresh_best()
        for curve in (
            self.raw_loss_curve,
            self.smoothed_loss_curve,
            self.lr_batch_curve,
            self.lr_epoch_curve,
            self.throughput_curve,
        ):
            curve.setData([], [])
        self._redraw_timer.stop()
        self._refresh_labels()

    def show_previous_runs(self, runs: Sequence[Mapping[str, Any]]) -> None:
        """Overlays previous runs on the per-epoch plots, dashed and dimmer, with a legend.

        Args:
            runs: Each ``{"name": str, "history": {log key: [one value per epoch]}}``
                (Keras's ``History.history``). Replaces the runs shown before; an
                empty list removes them.
        """
        self._previous_runs = [
            (
                str(run.get("name", f"run {i + 1}")),
                {
                    str(k): [as_number(v) for v in vs]
                    for k, vs in dict(run.get("history") or {}).items()
                },
            )
            for i, run in enumerate(runs)
        ]
        self._draw_previous_runs()

    def flush(self) -> None:
        """Redraws now whatever changed since the last redraw."""
        self._redraw_timer.stop()
        self._redraw()

    def batch_count(self) -> int:
        """How many batch events the current run has had."""
        return self._batches.size

    def epoch_count(self) -> int:
        """How many epoch events the current run has had."""
        return self._epochs_seen

    def redraw_count(self) -> int:
        """How many redraws happened since the widget was made (coalescing shows here)."""
        return self._redraws

    def smoothing(self) -> float:
        """The batch-loss smoothing weight, 0 to 0.99."""
        return self._weight

    def set_smoothing(self, weight: float) -> None:
        """Sets the smoothing weight (0 to 0.99, in steps of 0.01) and re-smooths the curve."""
        self.smoothing_slider.setValue(round(min(max(weight, 0.0), MAX_SMOOTHING) * 100))

    def log_scale(self) -> bool:
        """Whether the loss axes are logarithmic."""
        return self.log_scale_check.isChecked()

    def set_log_scale(self, on: bool) -> None:
        """Makes the loss axes (batch loss and every loss-like metric) logarithmic or linear."""
        self.log_scale_check.setChecked(on)

    def status(self) -> str:
        """The run's state: idle, running, paused, stopped, finished or failed."""
        return self._state

    def status_text(self) -> str:
        """The status line as plain text, with the failure's hint on a second line."""
        return f"{self._status_text}\n{self._hint}" if self._hint else self._status_text

    def metric_names(self) -> list[str]:
        """The per-epoch plots' metric base names, in their order on screen.

        Loss first, then the metrics in the order the model was compiled with (a
        ``started`` event's ``metrics``), then any others, losses first, by name: the
        same order in every run, whatever order the logs or previous runs come in.
        """
        return list(self._metric_plots)

    def set_monitor(self, key: str | None) -> None:
        """Names the metric the run is judged by (an early-stopping or checkpoint ``monitor``).

        None (the default) judges by ``val_loss``, else ``loss``.
        """
        self._monitor = key or None
        self._refresh_best()

    def monitor(self) -> str | None:
        """The log key the best epoch is judged by now (None before any epoch)."""
        if self._monitor is not None:
            return self._monitor
        return default_monitor(set(self._epoch_data) | set(self._announced_metrics))

    def best_summary(self) -> str:
        """``"best val_loss: 0.123 (epoch 7)"`` for the current run, or "" before its first epoch."""
        return self.best_label.text()

    def best_marker(self, name: str) -> pg.PlotDataItem | None:
        """The ring around the best epoch on a metric's plot (None if it never had one)."""
        return self._metric_plots[name].best

    def epoch_markers(self) -> list[tuple[int, float]]:
        """The epoch-end markers shown on the batch loss plot: ``(epoch from 1, step)``."""
        return list(self._epoch_markers_shown)

    def metric_plot(self, name: str) -> pg.PlotWidget:
        """The per-epoch plot of a metric base name."""
        return self._metric_plots[name].widget

    def metric_curves(self, name: str) -> dict[str, pg.PlotDataItem]:
        """The current run's curves on a metric's plot, by log key (``"val_loss"``...)."""
        return dict(self._metric_plots[name].curves)

    def previous_run_curves(self, name: str) -> list[pg.PlotDataItem]:
        """The previous runs' curves on a metric's plot (their ``name()`` is the legend's)."""
        return list(self._metric_plots[name].previous)

    def legend_names(self) -> list[str]:
        """The per-epoch plots' shared legend, in order (train, validation, previous runs)."""
        return list(self._legend_entries)

    def loss_plots(self) -> list[pg.PlotWidget]:
        """The plots the log-scale toggle applies to."""
        return [self.batch_plot] + [
            p.widget for name, p in self._metric_plots.items() if is_loss_metric(name)
        ]

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        palette = self.palette()
        self._background = palette.color(QtGui.QPalette.ColorRole.Base)
        self._foreground = palette.color(QtGui.QPalette.ColorRole.Text)
        muted = QtGui.QColor(self._foreground)
        muted.setAlpha(150)
        self._muted = muted
        self._tick_font = QtGui.QFont(self.font())
        self._tick_font.setPointSizeF(8.5)

        self.status_label = QtWidgets.QLabel()
        self.status_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        font = self.status_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.status_label.setFont(font)
        self.epoch_label = QtWidgets.QLabel()
        self.best_label = QtWidgets.QLabel()
        self.best_label.setToolTip("The best epoch so far of the metric the run is judged by")
        self.device_label = QtWidgets.QLabel()
        self.throughput_label = QtWidgets.QLabel()
        for label in (self.epoch_label, self.device_label, self.throughput_label):
            label.setStyleSheet(f"color: {self._muted.name(QtGui.QColor.NameFormat.HexArgb)};")
        self.failure_label = QtWidgets.QLabel()
        self.failure_label.setWordWrap(True)  # a long message wraps here, not in the header
        self.failure_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.failure_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.failure_label.setStyleSheet(
            "QLabel { background: rgba(220, 38, 38, 24); border: 1px solid rgba(220, 38, 38, 90);"
            " border-radius: 4px; padding: 4px 8px; }"
        )
        self.failure_label.hide()

        header = QtWidgets.QHBoxLayout()
        header.setSpacing(16)
        header.addWidget(self.status_label)
        header.addWidget(self.epoch_label)
        header.addWidget(self.best_label)
        header.addWidget(self.device_label)
        header.addStretch(1)
        header.addWidget(self.throughput_label)

        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setMinimumHeight(22)

        self.smoothing_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smoothing_slider.setRange(0, round(MAX_SMOOTHING * 100))
        self.smoothing_slider.setValue(round(DEFAULT_SMOOTHING * 100))
        self.smoothing_slider.setFixedWidth(180)
        self.smoothing_slider.setToolTip(
            "Exponential moving average of the batch loss, debiased as TensorBoard does"
        )
        self.smoothing_value = QtWidgets.QLabel()
        self.smoothing_value.setMinimumWidth(32)
        self.log_scale_check = QtWidgets.QCheckBox("Log-scale loss")
        self._weight = DEFAULT_SMOOTHING
        self.smoothing_value.setText(f"{self._weight:.2f}")
        self.smoothing_slider.valueChanged.connect(self._on_smoothing_changed)
        self.log_scale_check.toggled.connect(self._on_log_scale_toggled)

        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("Smoothing"))
        controls.addWidget(self.smoothing_slider)
        controls.addWidget(self.smoothing_value)
        controls.addSpacing(16)
        controls.addWidget(self.log_scale_check)
        controls.addStretch(1)

        self.batch_plot = self._make_plot("Batch loss", "step", "loss")
        self.batch_plot.setMinimumHeight(250)
        legend = self.batch_plot.getPlotItem().addLegend(offset=(-8, 8), **self._legend_style())
        legend.setZValue(20)
        self.raw_loss_curve = self._big_curve(self.batch_plot, pg.mkPen(RAW_COLOR), "batch")
        self.smoothed_loss_curve = self._big_curve(
            self.batch_plot, pg.mkPen(SMOOTHED_COLOR), "smoothed"
        )
        self._epoch_pen = pg.mkPen(
            QtGui.QColor(self._muted.red(), self._muted.green(), self._muted.blue(), 90),
            width=1,
            style=QtCore.Qt.PenStyle.DashLine,
        )
        # The epoch markers' numbers, on a top axis: inside the plot they would run
        # into its legend and off its right edge.
        batch_item = self.batch_plot.getPlotItem()
        self._epoch_axis = _Axis("top", self._background)
        self._epoch_axis.setPen(pg.mkPen(self._muted))
        self._epoch_axis.setTextPen(pg.mkPen(self._muted))
        self._epoch_axis.setTickFont(self._tick_font)
        self._epoch_axis.setZValue(-1)
        batch_item.setAxisItems({"top": self._epoch_axis})
        batch_item.showAxis("top")
        batch_item.setLabel("top", "epoch", **self._axis_label_style())
        self._epoch_axis.setTicks([[]])
        self._epoch_digit_width = QtGui.QFontMetrics(self._tick_font).horizontalAdvance("0")
        batch_view = batch_item.getViewBox()
        batch_view.sigXRangeChanged.connect(self._place_epoch_markers)
        batch_view.sigResized.connect(self._place_epoch_markers)
        self.lr_plot = self._make_plot("Learning rate", "epoch", None)
        self.lr_plot.setMinimumHeight(120)
        self.lr_batch_curve = self._big_curve(self.lr_plot, pg.mkPen(LEARNING_RATE_COLOR))
        self.lr_epoch_curve = self.lr_plot.plot(
            pen=None, symbol="o", symbolSize=6, symbolPen=None, symbolBrush=LEARNING_RATE_COLOR
        )
        self.throughput_plot = self._make_plot("Throughput", "step", "samples/s")
        self.throughput_plot.setMinimumHeight(120)
        self.throughput_curve = self._big_curve(self.throughput_plot, pg.mkPen(THROUGHPUT_COLOR))

        side = QtWidgets.QVBoxLayout()
        side.setSpacing(8)
        side.addWidget(self.lr_plot)
        side.addWidget(self.throughput_plot)
        top = QtWidgets.QHBoxLayout()
        top.setSpacing(8)
        top.addWidget(self.batch_plot, 2)
        top.addLayout(side, 1)

        # One legend for all per-epoch plots: small plots have no room for their own.
        self.metrics_legend_view = pg.GraphicsLayoutWidget()
        self.metrics_legend_view.setBackground(palette.color(QtGui.QPalette.ColorRole.Window))
        self.metrics_legend_view.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.metrics_legend_view.ci.setContentsMargins(0, 0, 0, 0)
        self.metrics_legend = pg.LegendItem(
            labelTextSize="8.5pt", labelTextColor=self._foreground, frame=False, horSpacing=18
        )
        self.metrics_legend.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Maximum, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.metrics_legend_view.addItem(self.metrics_legend, row=0, col=0)
        self.metrics_legend_view.ci.layout.setColumnStretchFactor(1, 1)  # entries to the left
        self.metrics_legend_view.addLabel("", row=0, col=1)
        self.metrics_legend_view.hide()
        self._legend_entries: tuple[str, ...] = ()
        self._legend_samples: list[pg.PlotDataItem] = []

        self._metrics_grid = QtWidgets.QGridLayout()
        self._metrics_grid.setSpacing(8)
        self._metrics_placeholder = QtWidgets.QLabel(
            "Per-epoch metrics appear after the first epoch."
        )
        self._metrics_placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._metrics_placeholder.setStyleSheet(
            f"color: {self._muted.name(QtGui.QColor.NameFormat.HexArgb)};"
        )
        self._metrics_placeholder.setMinimumHeight(60)

        content = QtWidgets.QWidget()
        body = QtWidgets.QVBoxLayout(content)
        body.setContentsMargins(0, 0, 0, 0)
        body.setSpacing(8)
        body.addLayout(top)
        body.addWidget(self._metrics_placeholder)
        body.addWidget(self.metrics_legend_view)
        body.addLayout(self._metrics_grid)
        body.addStretch(1)
        self._scroll = QtWidgets.QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self._scroll.setWidget(content)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        layout.addLayout(header)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.failure_label)
        layout.addLayout(controls)
        layout.addWidget(self._scroll, 1)

    def _legend_style(self) -> dict[str, Any]:
        background = QtGui.QColor(self._background)
        background.setAlpha(210)
        border = QtGui.QColor(self._foreground)
        border.setAlpha(40)
        return {
            "labelTextSize": "8pt",
            "labelTextColor": self._foreground,
            "brush": pg.mkBrush(background),
            "pen": pg.mkPen(border),
            "verSpacing": -4,
        }

    def _make_plot(self, title: str, x_label: str, y_label: str | None) -> pg.PlotWidget:
        bottom = _CountAxis if x_label in ("epoch", "step") else _Axis
        axes = {
            "left": _Axis("left", self._background),
            "bottom": bottom("bottom", self._background),
        }
        widget = pg.PlotWidget(background=self._background, axisItems=axes)
        plot = widget.getPlotItem()
        plot.setTitle(title, color=self._foreground.name(), size="10pt", bold=True)
        plot.showGrid(x=True, y=True, alpha=0.12)
        label_style = self._axis_label_style()
        for side in ("left", "bottom"):
            axis = plot.getAxis(side)
            axis.setPen(pg.mkPen(self._muted))
            axis.setTextPen(pg.mkPen(self._muted))
            axis.setTickFont(self._tick_font)
            # Major and one minor level: the second minor level's grid doubled paint time.
            axis.setStyle(maxTickLevel=1)
            axis.setZValue(-1)  # the grid behind the curves
        left = plot.getAxis("left")
        left.setWidth(52)
        plot.getViewBox().sigYRangeChanged.connect(left.fit_tick_labels)
        plot.setLabel("bottom", x_label, **label_style)
        if y_label:
            plot.setLabel("left", y_label, **label_style)
        widget.setMinimumWidth(220)
        return widget

    def _axis_label_style(self) -> dict[str, str]:
        return {"color": self._muted.name(QtGui.QColor.NameFormat.HexArgb), "font-size": "8.5pt"}

    def _theme_changed(self, dark: bool) -> None:
        """The app switched between light and dark: every plot, axis and legend takes the new colours."""
        colors = theme.plot_colors(dark)
        self._background, self._foreground, self._muted = colors.background, colors.foreground, colors.muted
        window = (theme.dark_palette() if dark else theme.light_palette()).color(QtGui.QPalette.ColorRole.Window)
        label_style = self._axis_label_style()
        for widget in self.findChildren(pg.PlotWidget):
            widget.setBackground(self._background)
            plot = widget.getPlotItem()
            plot.setTitle(plot.titleLabel.text, color=self._foreground.name(), size="10pt", bold=True)
            for entry in plot.axes.values():
                axis = entry["item"]
                if isinstance(axis, _Axis):
                    axis._background = QtGui.QColor(self._background)
                axis.setPen(pg.mkPen(self._muted))
                axis.setTextPen(pg.mkPen(self._muted))
                if axis.label.isVisible() and axis.labelText:
                    axis.setLabel(axis.labelText, **label_style)
            if plot.legend is not None:
                style = self._legend_style()
                plot.legend.setBrush(style["brush"])
                plot.legend.setPen(style["pen"])
                plot.legend.setLabelTextColor(self._foreground)
        self.metrics_legend_view.setBackground(window)
        self.metrics_legend.setLabelTextColor(self._foreground)
        muted = f"color: {self._muted.name(QtGui.QColor.NameFormat.HexArgb)};"
        for label in (self.epoch_label, self.device_label, self.throughput_label, self._metrics_placeholder):
            label.setStyleSheet(muted)
        self._epoch_pen.setColor(QtGui.QColor(self._muted.red(), self._muted.green(), self._muted.blue(), 90))
        for line in getattr(self, "_epoch_lines", ()):
            line.setPen(self._epoch_pen)

    def _big_curve(
        self, widget: pg.PlotWidget, pen: QtGui.QPen, name: str | None = None
    ) -> pg.PlotDataItem:
        """A curve fed one point per batch: downsampled to the pixels and clipped to the view.

        Peak downsampling keeps each pixel column's min and max, so one bin a pixel
        (``autoDownsampleFactor=1``) loses nothing visible. Keep these pens one pixel
        wide: Qt's raster engine strokes a wider antialiased zigzag 5-20x slower.
        """
        curve = _BatchCurve(pen=pen, name=name, autoDownsampleFactor=1.0)
        widget.addItem(curve)
        curve.setDownsampling(auto=True, method="peak")
        curve.setClipToView(True)
        return curve

    def _metric_plot_for(self, name: str) -> _MetricPlot:
        plot = self._metric_plots.get(name)
        if plot is not None:
            return plot
        widget = self._make_plot(metric_title(name), "epoch", None)
        widget.setMinimumHeight(200)
        if is_loss_metric(name) and self.log_scale():
            widget.getPlotItem().setLogMode(y=True)
        plot = _MetricPlot(name, widget)
        self._metric_plots[name] = plot
        self._layout_metric_plots(force=True)
        return plot

    def _metric_curve(self, plot: _MetricPlot, key: str) -> pg.PlotDataItem:
        curve = plot.curves.get(key)
        if curve is None:
            validation = is_validation(key)
            color = VALIDATION_COLOR if validation else TRAIN_COLOR
            name = "validation" if validation else "train"
            curve = plot.widget.plot(name=name, **self._series_style(color))
            curve.setZValue(10)
            plot.curves[key] = curve
        return curve

    def _layout_metric_plots(self, force: bool = False) -> None:
        order = metric_order(self._metric_plots, self._compiled_metrics)
        if list(self._metric_plots) != order:
            self._metric_plots = {name: self._metric_plots[name] for name in order}
            force = True
        width = self._scroll.viewport().width() if self.isVisible() else self.width()
        columns = max(1, min(3, width // 340, len(self._metric_plots) or 1))
        if columns == self._metric_columns and not force:
            return
        self._metric_columns = columns
        while self._metrics_grid.count():
            self._metrics_grid.takeAt(0)
        for i, plot in enumerate(self._metric_plots.values()):
            self._metrics_grid.addWidget(plot.widget, i // columns, i % columns)
            plot.widget.show()  # now, not at the next event-loop pass: it has a parent
        for c in range(3):
            self._metrics_grid.setColumnStretch(c, 1 if c < columns else 0)
        self._metrics_placeholder.setVisible(not self._metric_plots)
        self._legend_entries = ()  # its columns follow the width too
        self._refresh_legend()

    def _rebuild_metric_plots(self) -> None:
        for plot in self._metric_plots.values():
            self._metrics_grid.removeWidget(plot.widget)
            plot.widget.deleteLater()
        self._metric_plots.clear()
        self._draw_previous_runs()
        self._layout_metric_plots(force=True)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._layout_metric_plots()

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        self._layout_metric_plots()

    # ------------------------------------------------------------------ events

    def _clear_run_state(self) -> None:
        self._batches.clear()
        self._smoother.restart()
        self._epoch_data: dict[str, tuple[list[float], list[float]]] = {}
        self._epoch_lr: tuple[list[float], list[float]] = ([], [])
        self._epoch_ends: list[float] = []
        self._epochs_seen = 0
        self._announced_metrics: list[str] = []
        self._epochs = 0
        self._steps_per_epoch = 0
        self._batch_size = 0
        self._device = ""
        self._state = "idle"
        self._completed = False
        self._status_text = "Waiting for training to start"
        self._hint = ""
        self._global_step = -1
        self._epoch = -1
        self._seconds = 0.0
        self._samples_per_second = math.nan
        self._time_left.clear()
        self._dirty = 0
        self._has_events = False

    def _on_started(self, event: Mapping[str, Any]) -> None:
        if self._has_events:
            self.reset()
        self._has_events = True
        self._device = str(event.get("device") or "")
        self._epochs = as_integer(event.get("epochs"), 0)
        self._steps_per_epoch = as_integer(event.get("steps_per_epoch"), 0)
        self._batch_size = as_integer(event.get("batch_size"), 0)
        self._announced_metrics = [str(k) for k in event.get("metrics") or ()]
        if self._announced_metrics:
            self._compiled_metrics = list(self._announced_metrics)
        for key in self._announced_metrics:
            if metric_base_name(key) not in LEARNING_RATE_KEYS:
                self._metric_plot_for(metric_base_name(key))
        self._layout_metric_plots()  # the previous runs' plots, in this run's order
        self._state, self._status_text = "running", "Running"
        self._dirty |= _LABELS

    def _on_batch(self, event: Mapping[str, Any]) -> None:
        self._has_events = True
        get = event.get
        step = as_integer(get("global_step"), self._batches.size)
        epoch = as_integer(get("epoch"), max(self._epoch, 0))
        self._batches.append(
            step + 1,  # the step's number, from 1, as Keras prints "1/50"
            epoch,
            as_integer(get("step"), 0),
            as_number(get("loss")),
            as_number(get("learning_rate")),
            as_number(get("samples_per_second")),
        )
        self._global_step = step
        self._epoch = epoch
        self._seconds = as_number(get("seconds"))
        sps = get("samples_per_second")
        if sps is not None:
            self._samples_per_second = as_number(sps)
        self._dirty |= _BATCHES | _LABELS

    def _on_epoch(self, event: Mapping[str, Any]) -> None:
        self._has_events = True
        epoch = as_integer(event.get("epoch"), self._epochs_seen)
        x = float(epoch + 1)
        logs = dict(event.get("logs") or {})
        lr = event.get("learning_rate")
        for key in LEARNING_RATE_KEYS:
            if lr is None and key in logs:
                lr = logs[key]
        if lr is not None:
            self._epoch_lr[0].append(x)
            self._epoch_lr[1].append(as_number(lr))
        for key, value in logs.items():
            if key in LEARNING_RATE_KEYS or value is None or isinstance(value, str):
                continue  # not a metric (NaN is: a diverged loss is worth seeing)
            xs, ys = self._epoch_data.setdefault(key, ([], []))
            xs.append(x)
            ys.append(as_number(value))
        if self._batches.size:
            # Epoch n ends after its last step: at step n * steps, as epoch n ends at x = n.
            self._epoch_ends.append(float(self._global_step + 1))
        self._epochs_seen += 1
        self._epoch = max(self._epoch, epoch)
        if event.get("samples_per_second") is not None and not self._batches.size:
            self._samples_per_second = as_number(event.get("samples_per_second"))
        self._dirty |= _EPOCHS | _LABELS

    def _on_paused(self, event: Mapping[str, Any]) -> None:
        self._state, self._status_text = "paused", "Paused"
        self._dirty |= _LABELS

    def _on_resumed(self, event: Mapping[str, Any]) -> None:
        self._state, self._status_text = "running", "Running"
        self._dirty |= _LABELS

    def _on_finished(self, event: Mapping[str, Any]) -> None:
        status = event.get("status", FinishStatus.COMPLETED)
        self._state, self._status_text = {
            FinishStatus.COMPLETED: ("finished", "Finished"),
            FinishStatus.EARLY_STOPPED: ("finished", "Finished early (a callback stopped the run)"),
            FinishStatus.STOPPED: ("stopped", "Stopped"),
            FinishStatus.NAN: ("stopped", "Stopped: the loss became NaN"),
        }.get(status, ("finished", f"Finished ({status})"))
        self._completed = status == FinishStatus.COMPLETED
        if event.get("seconds") is not None:
            self._seconds = as_number(event.get("seconds"))
        if not self._epochs_seen and event.get("history"):
            # The epoch events never came (e.g. a run replayed from its saved history).
            history = dict(event["history"])
            length = max((len(v) for v in history.values()), default=0)
            for epoch in range(length):
                logs = {k: v[epoch] for k, v in history.items() if epoch < len(v)}
                self._on_epoch({"epoch": epoch, "logs": logs})
        self._dirty |= _LABELS | _EPOCHS

    def _on_failed(self, event: Mapping[str, Any]) -> None:
        self._state = "failed"
        self._status_text = f"Failed: {event.get('message') or 'the run stopped with an error'}"
        self._hint = str(event.get("hint") or "")
        self._dirty |= _LABELS

    def _on_smoothing_changed(self, value: int) -> None:
        self._weight = value / 100
        self.smoothing_value.setText(f"{self._weight:.2f}")
        self._dirty |= _RESMOOTH
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _on_log_scale_toggled(self, on: bool) -> None:
        for widget in self.loss_plots():
            widget.getPlotItem().setLogMode(y=on)
        self._frame_metric_plots()  # a range around a constant is linear: auto-range in log

    # ------------------------------------------------------------------ redraw

    def _redraw(self) -> None:
        self._redraws += 1
        dirty, self._dirty = self._dirty, 0
        if dirty & (_BATCHES | _RESMOOTH):
            self._draw_batches(lr_and_throughput=bool(dirty & _BATCHES))
            self._settle_ranges((self.batch_plot, self.lr_plot, self.throughput_plot))
        if dirty & _EPOCHS:
            self._draw_epochs()
        if dirty & (_LABELS | _BATCHES | _EPOCHS):
            self._refresh_labels()

    def _draw_batches(self, lr_and_throughput: bool) -> None:
        log = self._batches
        n = log.size
        loss = log.column(log.LOSS)
        smoothed = self._smoother.smooth(loss, self._weight)  # a new weight smooths all again
        steps = log.column(log.STEP)
        if n:
            self.raw_loss_curve.setData(steps, loss)
            self.smoothed_loss_curve.setData(steps, smoothed)
        if not lr_and_throughput or not n:
            return
        lr = log.column(log.LEARNING_RATE)
        if not np.isnan(lr[-1]) or not np.isnan(lr[0]):
            self.lr_batch_curve.setData(log.epoch_positions(self._steps_per_epoch), lr)
            self._frame_learning_rate(lr)
        sps = log.column(log.SAMPLES_PER_SECOND)
        if not np.isnan(sps[-1]):
            self.throughput_curve.setData(steps, sps)

    def _frame_learning_rate(self, values: np.ndarray) -> None:
        """A constant rate gets an axis around it (auto-range would centre 0.001 in ±0.5)."""
        bounds = finite_bounds(values)
        view = self.lr_plot.getPlotItem().getViewBox()
        if bounds is None:
            return
        fixed = constant_range(*bounds)
        if fixed is not None:
            view.setYRange(*fixed, padding=0)
        elif not view.autoRangeEnabled()[1]:
            view.enableAutoRange(axis=pg.ViewBox.YAxis)

    @staticmethod
    def _settle_ranges(widgets: Iterable[pg.PlotWidget]) -> None:
        """Applies auto-range now, so that the axes change before, not after, the next paint.

        Left to pyqtgraph, the range follows the data while painting, and the axes'
        change asks for a second paint of every plot in each frame.
        """
        for widget in widgets:
            view = widget.getPlotItem().getViewBox()
            view.updateAutoRange()
            view.updateMatrix()

    def _draw_epochs(self) -> None:
        for key, (xs, ys) in self._epoch_data.items():
            plot = self._metric_plot_for(metric_base_name(key))
            self._metric_curve(plot, key).setData(xs, ys)
        self._refresh_legend()
        if self._epoch_lr[0]:
            self.lr_epoch_curve.setData(*self._epoch_lr)
            if not self._batches.size:
                self._frame_learning_rate(np.asarray(self._epoch_lr[1], dtype=np.float64))
        self._frame_metric_plots()
        self._place_epoch_markers()
        self._refresh_best()

    def _frame_metric_plots(self) -> None:
        """A metric plot whose values are all one (its first epoch) gets an axis around them.

        Auto-range puts a single 9000 between 8999.5 and 9000.5, five labels of
        "9000.x"; this gives 4500 to 13,500, as the learning rate's plot does.
        """
        for plot in self._metric_plots.values():
            item = plot.widget.getPlotItem()
            if item.getAxis("left").logMode:
                fixed = None
            else:
                series = [c.getOriginalDataset()[1] for c in (*plot.curves.values(), *plot.previous)]
                values = np.concatenate([y for y in series if y is not None and len(y)] or [[]])
                bounds = finite_bounds(values)
                fixed = constant_range(*bounds) if bounds is not None else None
            view = item.getViewBox()
            if fixed is not None:
                view.setYRange(*fixed, padding=0)
                plot.framed = True
            elif plot.framed:
                plot.framed = False
                view.enableAutoRange(axis=pg.ViewBox.YAxis)

    def _place_epoch_markers(self, *_: Any) -> None:
        """Marks the ends of the epochs in view, at most a dozen, at a nice epoch step.

        Called after each redraw of the epochs and whenever the batch plot's view
        changes (zoom, scroll, resize); a few lines are reused, never one an epoch.
        """
        view = self.batch_plot.getPlotItem().getViewBox()
        if self._epoch_ends:
            (low, high), _ = view.viewRange()
            label = len(str(len(self._epoch_ends))) * self._epoch_digit_width + _EPOCH_LABEL_GAP
            most = max(1, min(_MAX_EPOCH_MARKERS, int(view.width() // label)))
            markers = epoch_markers(np.asarray(self._epoch_ends), low, high, most)
        else:
            markers = []
        if markers == self._epoch_markers_shown:
            return
        self._epoch_markers_shown = markers
        while len(self._epoch_lines) < len(markers):
            line = pg.InfiniteLine(angle=90, pen=self._epoch_pen)
            line.setZValue(-2)
            self.batch_plot.addItem(line, ignoreBounds=True)
            self._epoch_lines.append(line)
        for i, line in enumerate(self._epoch_lines):
            if i < len(markers):
                line.setValue(markers[i][1])
                line.show()
            else:
                line.hide()
        self._epoch_axis.setTicks([[(x, str(epoch)) for epoch, x in markers]])

    def _refresh_best(self) -> None:
        """Shows the monitored metric's best epoch, in the header and on its plot.

        The header reads "best val_loss: 0.123 (epoch 7)"; a ring marks the point.
        """
        key = self.monitor()
        data = self._epoch_data.get(key) if key else None
        found = best_epoch(data[1], monitor_mode(key), data[0]) if data else None
        self.best_label.setText(best_text(key, data[1], epochs=data[0]) if found else "")
        shown = self._metric_plots.get(metric_base_name(key)) if found else None
        for plot in self._metric_plots.values():
            if plot.best is not None and plot is not shown:
                plot.best.setData([], [])
        if shown is None:
            return
        if shown.best is None:
            color = VALIDATION_COLOR if is_validation(key) else TRAIN_COLOR
            shown.best = pg.PlotDataItem(  # not a bare ScatterPlotItem: it follows log mode
                pen=None, symbol="o", symbolSize=13, symbolPen=pg.mkPen(color, width=1.6),
                symbolBrush=None,
            )  # fmt: skip
            shown.best.setZValue(11)
            shown.widget.addItem(shown.best)
        epoch, value = found
        shown.best.setData([float(epoch)], [value])
        shown.best.setToolTip(self.best_label.text())

    def _draw_previous_runs(self) -> None:
        for plot in self._metric_plots.values():
            for curve in plot.previous:
                plot.widget.removeItem(curve)
            plot.previous.clear()
        for curve in self._previous_lr_curves:
            self.lr_plot.removeItem(curve)
        self._previous_lr_curves.clear()
        for i, (name, history) in enumerate(self._previous_runs):
            color = QtGui.QColor(PREVIOUS_COLORS[i % len(PREVIOUS_COLORS)])
            color.setAlpha(PREVIOUS_ALPHA)
            for key, values in history.items():
                if not values:
                    continue
                validation = is_validation(key)
                style = QtCore.Qt.PenStyle.DotLine if validation else QtCore.Qt.PenStyle.DashLine
                pen = pg.mkPen(color, width=1.6, style=style)
                xs = np.arange(1, len(values) + 1, dtype=np.float64)
                ys = np.asarray(values, dtype=np.float64)
                if key in LEARNING_RATE_KEYS:
                    self._previous_lr_curves.append(self.lr_plot.plot(xs, ys, pen=pen))
                    continue
                plot = self._metric_plot_for(metric_base_name(key))
                label = f"{name} (val)" if validation else name
                curve = plot.widget.plot(xs, ys, pen=pen, name=label)
                curve.setZValue(-5)
                plot.previous.append(curve)
        self._refresh_legend()

    def _refresh_legend(self) -> None:
        """Rebuilds the per-epoch plots' shared legend when its entries change."""
        entries: list[tuple[str, dict[str, Any]]] = []
        if self._metric_plots:
            entries.append(("train", self._series_style(TRAIN_COLOR)))
            keys = set(self._epoch_data) | set(self._announced_metrics)
            if any(is_validation(k) for k in keys):
                entries.append(("validation", self._series_style(VALIDATION_COLOR)))
        for i, (name, history) in enumerate(self._previous_runs):
            color = QtGui.QColor(PREVIOUS_COLORS[i % len(PREVIOUS_COLORS)])
            color.setAlpha(PREVIOUS_ALPHA)
            entries.append(
                (name, {"pen": pg.mkPen(color, width=1.6, style=QtCore.Qt.PenStyle.DashLine)})
            )
            if any(is_validation(k) for k in history):
                dotted = pg.mkPen(color, width=1.6, style=QtCore.Qt.PenStyle.DotLine)
                entries.append((f"{name} (val)", {"pen": dotted}))
        names = tuple(name for name, _ in entries)
        if names == self._legend_entries:
            return
        self._legend_entries = names
        self.metrics_legend.clear()
        self._legend_samples = [pg.PlotDataItem(**style) for _, style in entries]
        width = self._scroll.viewport().width() if self.isVisible() else self.width()
        columns = max(1, min(len(entries), width // 190))
        self.metrics_legend.setColumnCount(columns)
        for (name, _), sample in zip(entries, self._legend_samples, strict=True):
            self.metrics_legend.addItem(sample, name)
        rows = -(-len(entries) // columns)
        self.metrics_legend_view.setFixedHeight(rows * 22 + 6)
        self.metrics_legend_view.setVisible(bool(entries))

    @staticmethod
    def _series_style(color: str) -> dict[str, Any]:
        return {
            "pen": pg.mkPen(color, width=2),
            "symbol": "o",
            "symbolSize": 6,
            "symbolPen": pg.mkPen(color),
            "symbolBrush": color,
        }

    def _refresh_labels(self) -> None:
        color = _STATUS_COLORS.get(self._state, _STATUS_COLORS["idle"])
        failed = self._state == "failed"
        shown = "Failed" if failed else self._status_text
        self.status_label.setText(
            f'<span style="color:{color}">\u25cf</span>&nbsp;{html.escape(shown)}'
        )
        self.failure_label.setVisible(failed)
        if failed:
            message = html.escape(self._status_text.removeprefix("Failed: "))
            hint = f"<br>{html.escape(self._hint)}" if self._hint else ""
            self.failure_label.setText(f"<b>{message}</b>{hint}")
        self.device_label.setText(f"Device: {self._device}" if self._device else "")
        if self._epochs and self._epoch >= 0:
            self.epoch_label.setText(f"Epoch {min(self._epoch + 1, self._epochs)} / {self._epochs}")
        else:
            self.epoch_label.setText("")
        sps = self._samples_per_second
        self.throughput_label.setText(f"{sps:,.0f} samples/s" if math.isfinite(sps) else "")
        self._refresh_progress()

    def _refresh_progress(self) -> None:
        total = self._epochs * self._steps_per_epoch
        done = self._global_step + 1
        if self._steps_per_epoch and self._epoch >= 0:
            # Epoch events count too when batch events are sparse (or absent).
            done = max(done, self._epochs_seen * self._steps_per_epoch)
        if self._completed and total:
            done = total
        parts = []
        if total:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))
            parts.append(
                f"{min(done, total):,} / {total:,} steps \u00b7 {100 * min(done, total) / total:.0f}%"
            )
        else:
            self.progress_bar.setRange(0, 1)
            self.progress_bar.setValue(0)
            parts.append(f"step {max(done, 0):,}")
        if math.isfinite(self._seconds) and self._seconds > 0:
            parts.append(f"{format_duration(self._seconds)} elapsed")
        left = self._seconds_left(done, total)
        if self._state == "paused":
            parts.append("paused")
        elif left is not None and self._state == "running":
            parts.append(f"about {format_duration(left)} left")
        self.progress_bar.setFormat(" \u00b7 ".join(parts))

    def _seconds_left(self, done: int, total: int) -> float | None:
        """Time left from recent throughput (see :class:`~builder_app.training.curves.TimeLeft`)."""
        return self._time_left.estimate(
            done,
            total,
            seconds=self._seconds,
            batch_size=self._batch_size,
            samples_per_second=self._samples_per_second,
        )
