"""The Activations window: what the chosen nodes compute on one sample, training vs inference, weights.

Model → Inspect Activations (or a node's context menu) opens it on the nodes
selected in the canvas. It only draws: the work (building the model, running the
sample, statistics, BatchNormalization's statistics, weight histograms) is
:mod:`builder_app.training.activations` and :mod:`builder_app.training.weight_stats`,
run on one worker thread; the window never waits for it. Each request carries a
number, and only the answer to the latest one is drawn.

Feature maps of convolutions are a grid of channel images under one colour
scale, sequences a heat map, vectors bars and a histogram, image inputs the image.
After training, or when a run's weights are restored, :meth:`weights_changed`
rebuilds the model and draws again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from builder_app.core.graph import ModelGraph
from builder_app.core.runs import run_label
from builder_app.training import weight_stats
from builder_app.training.activations import (
    ActivationProbe,
    BatchNormStatistics,
    Comparison,
    InspectError,
    NodeActivation,
    Sample,
    channel_maps,
    data_sample,
    feature_grid,
    load_project_data,
    random_inputs,
)
from builder_app.ui import theme
from builder_app.ui.inspect.figure import COLOUR_MAP, MAX_BARS, MAX_CHANNELS, stats_text

#: Nodes drawn at most at once (the first ones chosen).
MAX_NODES = 12
#: Height of one node's drawing, in pixels (feature maps get more).
VIEW_HEIGHT = 220
MAPS_HEIGHT = 380
#: BatchNormalization layers whose statistics are shown at most.
MAX_BATCHNORMS = 8


@dataclass
class Answer:
    """What the worker computed for one request."""

    sample: Sample
    activations: list[NodeActivation]
    comparisons: list[Comparison] | None
    batchnorms: list[BatchNormStatistics]
    samples: int | None  # how many samples the data has (None: random)


class Worker(QtCore.QObject):
    """One thread running jobs in order; a job older than the latest of its kind is skipped."""

    done = QtCore.Signal(int, object, object)  # request number, result, error message

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self._jobs: queue.Queue = queue.Queue()
        self._count = 0
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="activations", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any], kind: str) -> int:
        """Queues ``job``; returns its number. It supersedes the earlier jobs of its ``kind`` not yet started."""
        with self._lock:
            self._count += 1
            number = self._latest[kind] = self._count
        self._jobs.put((number, job, kind))
        return number

    def idle(self) -> bool:
        """Whether no job is queued (one may be running)."""
        return self._jobs.empty()

    def close(self, timeout: float = 10.0) -> None:
        self._jobs.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            number, job, kind = item
            if number < self._latest.get(kind, 0):
                continue  # a later request of the same kind is queued
            try:
                result, error = job(), None
            except InspectError as exc:
                result, error = None, str(exc)
            except Exception as exc:  # noqa: BLE001 - shown in the window, one line
                result, error = None, f"{type(exc).__name__}: {exc}"
            try:
                self.done.emit(number, result, error)
            except RuntimeError:  # the window went while the job ran
                return


class ActivationsWindow(QtWidgets.QMainWindow):
    """Inspects one document's model. Touch it from the GUI thread only."""

    #: A request was answered (drawn): for tests and the status bar.
    answered = QtCore.Signal()

    def __init__(self, document, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.setWindowTitle(f"Activations — {document.graph.name}")
        self.nodes: list[str] = []
        #: The output shown of each node with several (the others show output 0).
        self.ports: dict[str, int] = {}
        self.answer: Answer | None = None
        self.error: str | None = None
        self._probe: ActivationProbe | None = None  # the worker's: read and replaced there only
        self._stale = True  # the model changed since the probe was built
        self._data = None  # the project's data, loaded once (worker)
        self._pending = 0
        self._weights_pending = 0
        self.worker = Worker(self)
        self.worker.done.connect(self._done)
        self._build()
        document.graph_changed.connect(self._graph_changed)
        theme.signals().changed.connect(self._theme_changed)

    # ---------------------------------------------------------------- layout
    def _build(self) -> None:
        bar = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(bar)
        row.setContentsMargins(6, 6, 6, 0)
        self.nodes_label = QtWidgets.QLabel("no nodes chosen")
        self.use_selection = QtWidgets.QPushButton("Use Selection")
        self.use_selection.setToolTip("inspect the nodes selected in the canvas")
        self.source = QtWidgets.QComboBox()
        self.source.addItems(["Data sample", "Random input, seed"])
        self.source.setToolTip("a sample of the project's training data, or a seeded random input of the input shape")
        self.index = QtWidgets.QSpinBox()
        self.index.setRange(0, 10_000_000)
        self.index.setKeyboardTracking(False)
        self.compare = QtWidgets.QCheckBox("Training vs inference")
        self.compare.setToolTip("the output with training=False and with training=True, side by side")
        self.status = QtWidgets.QLabel("")
        for widget in (QtWidgets.QLabel("Nodes:"), self.nodes_label, self.use_selection, QtWidgets.QLabel("  Sample:"), self.source, self.index, self.compare):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.status)
        self.use_selection.clicked.connect(self._use_selection)
        self.source.currentIndexChanged.connect(lambda *_: self.refresh())
        self.index.valueChanged.connect(lambda *_: self.refresh())
        self.compare.toggled.connect(lambda *_: self.refresh())

        self.tabs = QtWidgets.QTabWidget()
        self.maps_area = QtWidgets.QScrollArea()
        self.maps_area.setWidgetResizable(True)
        self.maps = QtWidgets.QWidget()
        self.maps_layout = QtWidgets.QVBoxLayout(self.maps)
        self.maps_area.setWidget(self.maps)
        self.tabs.addTab(self.maps_area, "Activations")
        self.table = QtWidgets.QTableWidget(0, 10)
        self.table.setHorizontalHeaderLabels(["layer", "mode", "shape", "mean", "std", "min", "max", "zeros", "NaN", "Inf"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tabs.addTab(self.table, "Statistics")
        self.bn_note = QtWidgets.QLabel()
        self.bn_note.setWordWrap(True)
        self.bn_table = QtWidgets.QTableWidget(0, 6)
        self.bn_table.setHorizontalHeaderLabels(["layer", "channel", "moving mean", "batch mean", "moving variance", "batch variance"])
        self.bn_table.verticalHeader().setVisible(False)
        self.bn_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        bn = QtWidgets.QWidget()
        bn_layout = QtWidgets.QVBoxLayout(bn)
        bn_layout.addWidget(self.bn_note)
        bn_layout.addWidget(self.bn_table)
        self.tabs.addTab(bn, "BatchNorm")
        self.weights_tab = self._weights_tab()
        self.tabs.addTab(self.weights_tab, "Weights")
        self.tabs.currentChanged.connect(lambda *_: self._request_weights())

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.resize(1100, 760)
        self._weight_sources()

    def _weights_tab(self) -> QtWidgets.QWidget:
        tab = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(tab)
        row = QtWidgets.QHBoxLayout()
        self.weight_choice = QtWidgets.QComboBox()
        self.weight_choice.setMinimumContentsLength(24)
        self.weights_from = QtWidgets.QComboBox()
        self.weights_against = QtWidgets.QComboBox()
        for label, widget in (("Weight:", self.weight_choice), ("from", self.weights_from), ("compared with", self.weights_against)):
            row.addWidget(QtWidgets.QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        layout.addLayout(row)
        self.weight_plot = pg.PlotWidget()
        self.weight_plot.setBackground(theme.plot_colors().background)
        self.weight_plot.setMinimumHeight(240)
        self.weight_plot.addLegend()
        layout.addWidget(self.weight_plot, 1)
        self.weight_note = QtWidgets.QLabel()
        self.weight_note.setWordWrap(True)
        layout.addWidget(self.weight_note)
        self.weight_choice.currentIndexChanged.connect(lambda *_: self._request_weights())
        self.weights_from.currentIndexChanged.connect(lambda *_: self._request_weights())
        self.weights_against.currentIndexChanged.connect(lambda *_: self._request_weights())
        return tab

    # ---------------------------------------------------------------- requests
    def inspect(self, node_ids: list[str]) -> None:
        """Inspects these nodes of the model (the model's inputs are always shown first)."""
        graph = self.document.graph
        chosen = [n for n in node_ids if n in graph.nodes][:MAX_NODES]
        if not chosen:
            chosen = [ref.node for ref in graph.model_outputs()][:MAX_NODES]
        inputs = [n for n in graph.model_inputs() if n not in chosen]
        self.nodes = inputs + chosen
        self.nodes_label.setText(", ".join(graph.label(n) for n in chosen) or "no nodes chosen")
        self.refresh()

    def _use_selection(self) -> None:
        window = self.parent()
        ids: list[str] = []
        if window is not None and hasattr(window, "current_scene"):
            scene = window.current_scene()
            if scene.graph is self.document.graph:
                ids = scene.selected_ids()
        self.inspect(list(ids))

    def weights_changed(self) -> None:
        """The project's weights changed (training ended, a run restored): build again and draw."""
        self._stale = True
        self._weight_sources()
        self.refresh()

    def _graph_changed(self, *_args) -> None:
        self._stale = True
        graph = self.document.graph
        self.nodes = [n for n in self.nodes if n in graph.nodes]
        self.ports = {n: p for n, p in self.ports.items() if n in graph.nodes}
        if self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        """Asks the worker for the current nodes on the current sample (the window never waits)."""
        if not self.nodes:
            return
        graph = self.document.graph.clone() if self._stale else None
        training = dict(self.document.project.training or {})
        from_data = self.source.currentIndex() == 0
        index = self.index.value()
        nodes = [(n, self.ports.get(n, 0)) for n in self.nodes]
        compare = self.compare.isChecked()

        def job() -> Answer:
            return self._compute(graph, training, nodes, from_data, index, compare)

        self._stale = False
        self.status.setText("computing…")
        self._pending = self.worker.submit(job, "activations")

    def show_output(self, node_id: str, port: int) -> None:
        """Shows output ``port`` of a node with several outputs (the picker above its drawing)."""
        if self.ports.get(node_id, 0) != port:
            self.ports[node_id] = port
            self.refresh()

    def _compute(self, graph: ModelGraph | None, training: dict, nodes, from_data: bool, index: int, compare: bool) -> Answer:
        """On the worker thread: (re)build the probe, take the sample, run it (one pass: nodes and BatchNorms)."""
        if graph is not None or self._probe is None:
            if graph is None:
                raise InspectError("the model is not built yet")
            self._probe = ActivationProbe(graph, seed=int(training.get("seed", 0) or 0))
            self._data = None
        probe = self._probe
        count = None
        if from_data:
            if self._data is None:
                from builder_app.core.project import Project

                self._data = load_project_data(Project(graph=probe.graph, training=training), probe.model)
            count = len(self._data)
            sample = data_sample(self._data, min(index, count - 1))
        else:
            sample = random_inputs(probe.model, index)
        # An output the node no longer has (its settings changed) falls back to output 0.
        targets = [(n, p if p < probe.output_count(n) else 0) for n, p in nodes if n in probe.graph.nodes]
        # The model's BatchNormalizations (the chosen ones first), their inputs computed in the same pass.
        chosen = {n for n, _ in targets}
        normalising = [n for n in probe.nodes() if probe.graph.layer_of(n).class_name == "BatchNormalization"]
        normalising = sorted(normalising, key=lambda n: n not in chosen)[:MAX_BATCHNORMS]
        sources = [probe.batchnorm_source(n) for n in normalising]
        if compare:
            comparisons = probe.compare(targets, sample, also=sources)
            activations = [c.inference for c in comparisons]
        else:
            comparisons = None
            activations = probe.run(targets, sample, also=sources)
        batchnorms = probe.batchnorms(normalising, sample)
        return Answer(sample, activations, comparisons, batchnorms, count)

    def _done(self, number: int, result: Any, error: str | None) -> None:
        if number == self._weights_pending:
            self._weights_done(result, error)
            return
        if number != self._pending:
            return  # an answer to an earlier request
        self.error = error
        if error is not None:
            self.status.setText(error)
            self._stale = True  # build again next time
        else:
            self.answer = result
            self.index.blockSignals(True)  # a data index up to the last sample; any seed
            self.index.setMaximum(result.samples - 1 if result.samples is not None else 10_000_000)
            self.index.blockSignals(False)
            self.status.setText(result.sample.description)
            self._draw()
            self._weight_sources()
        self.answered.emit()

    # ---------------------------------------------------------------- drawing
    def _theme_changed(self, *_args) -> None:
        self.weight_plot.setBackground(theme.plot_colors().background)
        self._draw()

    def _draw(self) -> None:
        answer = self.answer
        while self.maps_layout.count():
            item = self.maps_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        if answer is None:
            return
        colors = theme.plot_colors()
        pairs = answer.comparisons or [None] * len(answer.activations)
        for activation, comparison in zip(answer.activations, pairs, strict=True):
            name = activation.layer if activation.outputs == 1 else f"{activation.layer}:{activation.port}"
            box = QtWidgets.QGroupBox(f"{name} · {activation.class_name} · {_shape(activation)}")
            layout = QtWidgets.QVBoxLayout(box)
            if activation.outputs > 1:
                layout.addLayout(self._output_picker(activation))
            if comparison is not None and activation.class_name != "InputLayer":
                note = QtWidgets.QLabel(_difference_text(comparison))
                note.setWordWrap(True)
                layout.addWidget(note)
                row = QtWidgets.QHBoxLayout()
                for side, title in ((comparison.inference, "inference (training=False)"), (comparison.training, "training=True")):
                    column = QtWidgets.QVBoxLayout()
                    column.addWidget(QtWidgets.QLabel(title))
                    column.addWidget(activation_view(side, colors, scale=_joint_range(comparison)))
                    column.addWidget(QtWidgets.QLabel(stats_text(side)))
                    row.addLayout(column)
                layout.addLayout(row)
            else:
                layout.addWidget(activation_view(activation, colors))
                layout.addWidget(QtWidgets.QLabel(stats_text(activation)))
            self.maps_layout.addWidget(box)
        self.maps_layout.addStretch(1)
        self._fill_table(answer)
        self._fill_batchnorm(answer)

    def _output_picker(self, activation: NodeActivation) -> QtWidgets.QHBoxLayout:
        """"Output [k] of n" for a node with several outputs; choosing one asks for it."""
        row = QtWidgets.QHBoxLayout()
        picker = QtWidgets.QComboBox()
        picker.setObjectName(f"output_picker:{activation.node}")
        picker.setToolTip("this node has several outputs: the one drawn")
        picker.addItems([str(k) for k in range(activation.outputs)])
        picker.setCurrentIndex(activation.port)
        node = activation.node
        picker.currentIndexChanged.connect(lambda k: self.show_output(node, k))
        row.addWidget(QtWidgets.QLabel("Output"))
        row.addWidget(picker)
        row.addWidget(QtWidgets.QLabel(f"of {activation.outputs} (0 is the first; LAYER:N on the command line)"))
        row.addStretch(1)
        return row

    def _fill_table(self, answer: Answer) -> None:
        rows: list[NodeActivation] = []
        for i, activation in enumerate(answer.activations):
            rows.append(activation)
            if answer.comparisons:
                rows.append(answer.comparisons[i].training)
        self.table.setRowCount(len(rows))
        for r, a in enumerate(rows):
            s = a.stats
            cells = [
                a.layer if a.outputs == 1 else f"{a.layer}:{a.port}", "training" if a.training else "inference", _shape(a), _num(s.mean), _num(s.std), _num(s.min),
                _num(s.max), f"{s.zero_fraction:.1%}", str(s.nan_count), str(s.inf_count),
            ]  # fmt: skip
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _fill_batchnorm(self, answer: Answer) -> None:
        if not answer.batchnorms:
            self.bn_note.setText(
                "The model has no BatchNormalization layer. Where it has one, its moving mean and variance "
                "(used in inference) are shown here beside the statistics of the batch (used in training)."
            )
            self.bn_table.setRowCount(0)
            return
        notes = [
            f"{b.layer}: batch statistics over {b.count} values per channel (this sample); in training the layer "
            "normalises with these, in inference with the moving ones"
            for b in answer.batchnorms
        ]
        self.bn_note.setText("\n".join(notes))
        rows = [(b, c) for b in answer.batchnorms for c in range(len(b.moving_mean))]
        self.bn_table.setRowCount(len(rows))
        for r, (b, c) in enumerate(rows):
            cells = [b.layer, str(c), _num(b.moving_mean[c]), _num(b.batch_mean[c]), _num(b.moving_variance[c]), _num(b.batch_variance[c])]
            for k, text in enumerate(cells):
                self.bn_table.setItem(r, k, QtWidgets.QTableWidgetItem(text))
        self.bn_table.resizeColumnsToContents()

    # ---------------------------------------------------------------- weights
    def _weight_sources(self) -> None:
        """The sources the Weights tab offers: the model now, and each run that kept weights."""
        project = self.document.project
        runs = [(run_label(r, i), r.get("id")) for i, r in enumerate(project.runs) if r.get("id") in project.run_weights]
        for combo, first in ((self.weights_from, ("the model now", "model")), (self.weights_against, ("nothing", None))):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(*first)
            if combo is self.weights_against:
                combo.addItem("the model now", "model")
            for label, run_id in runs:
                combo.addItem(label, run_id)
            found = combo.findData(current)
            combo.setCurrentIndex(found if found >= 0 else 0)
            combo.blockSignals(False)
        self._request_weights()

    def _request_weights(self) -> None:
        if self.tabs.currentWidget() is not self.weights_tab:
            return  # read when the tab is shown
        source, against = self.weights_from.currentData(), self.weights_against.currentData()
        chosen = self.weight_choice.currentData()
        project = self.document.project

        def read(which):
            if which == "model":
                if self._probe is None:
                    raise InspectError("inspect a node first: the model is built then")
                return weight_stats.model_weights(self._probe.model)
            return weight_stats.run_weights(project, which)

        def job():
            names = weight_stats.weight_names(self._probe.model) if self._probe is not None else {}
            first = read(source)
            second = read(against) if against is not None else None
            return names, first, second, chosen

        self._weights_pending = self.worker.submit(job, "weights")

    def _weights_done(self, result: Any, error: str | None) -> None:
        self.weight_plot.clear()
        if error is not None:
            self.weight_note.setText(error)
            return
        names, first, second, chosen = result
        keys = [(label, i) for label, values in first.items() for i in range(len(values))]
        self.weight_choice.blockSignals(True)
        self.weight_choice.clear()
        for label, i in keys:
            name = (names.get(label) or [])[i] if i < len(names.get(label) or []) else f"weight {i}"
            self.weight_choice.addItem(f"{label} · {name} {tuple(np.shape(first[label][i]))}", f"{i}:{label}")
        found = self.weight_choice.findData(chosen) if chosen is not None else 0
        self.weight_choice.setCurrentIndex(max(0, found))
        self.weight_choice.blockSignals(False)
        if not keys:
            self.weight_note.setText("no layer holds weights")
            return
        index, _, label = self.weight_choice.currentData().partition(":")
        i = int(index)
        colors = theme.plot_colors()
        if second is not None and label in second:
            moved, apart = weight_stats.changes({label: first[label]}, {label: second[label]}, names)
            if apart:
                self.weight_note.setText(f"'{label}' has weights of other shapes in {self.weights_against.currentText()}")
                return
            change = moved[i]
            for hist, pen, title in ((change.before, colors.foreground, self.weights_from.currentText()), (change.after, "#e07020", self.weights_against.currentText())):
                self.weight_plot.plot(hist.edges, hist.counts, stepMode="center", pen=pg.mkPen(pen, width=2), name=title)
            relative = "-" if change.relative_change is None else f"{change.relative_change:.3g}"
            self.weight_note.setText(
                f"{label} · {change.name}: mean |change| {change.mean_abs_change:.4g}, relative change "
                f"‖after − before‖ / ‖before‖ {relative}"
            )
        else:
            (hist,) = [h for h in weight_stats.histograms({label: first[label]}, names) if h.index == i]
            self.weight_plot.plot(hist.histogram.edges, hist.histogram.counts, stepMode="center", fillLevel=0,
                                  brush=(59, 110, 168, 120), pen=pg.mkPen("#3b6ea8", width=2), name=self.weights_from.currentText())
            extra = "" if second is None else f" ({self.weights_against.currentText()} has no '{label}')"
            self.weight_note.setText(f"{label} · {hist.name} {hist.shape}: {_stats_line(hist.stats)}{extra}")

    # ---------------------------------------------------------------- closing
    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.worker.close(timeout=0.1)
        super().closeEvent(event)


def activation_view(activation: NodeActivation, colors, *, scale: tuple[float, float] | None = None) -> QtWidgets.QWidget:
    """A pyqtgraph view of one output, as its kind is best seen; ``scale`` fixes the colour or value range."""
    stats = activation.stats
    low, high = scale or (stats.min if stats.min is not None else 0.0, stats.max if stats.max is not None else 1.0)
    if high <= low:
        high = low + 1.0
    widget = pg.GraphicsLayoutWidget()
    widget.setBackground(colors.background)
    kind = activation.display
    widget.setFixedHeight(MAPS_HEIGHT if kind in ("feature_maps", "volume") else VIEW_HEIGHT)
    if kind in ("feature_maps", "volume", "sequence", "image"):
        if kind == "sequence":
            values = np.asarray(activation.array, dtype=np.float32).T  # features down, time across
        elif kind == "image":
            values = np.asarray(activation.array, dtype=np.float32)
            values = values[..., 0] if values.shape[-1] == 1 else values
        else:
            values = feature_grid(channel_maps(activation)[:MAX_CHANNELS])
        view = widget.addViewBox(lockAspect=kind != "sequence")
        view.invertY(True)
        image = pg.ImageItem(axisOrder="row-major")
        image.setImage(values, levels=(low, high) if values.ndim == 2 else None)
        if kind == "image" and values.ndim == 2:
            image.setColorMap(pg.colormap.get("CET-L1"))  # grey, as the picture is
        elif values.ndim == 2:
            image.setColorMap(pg.colormap.get(COLOUR_MAP))
        view.addItem(image)
        if kind != "image":
            bar = pg.ColorBarItem(values=(low, high), colorMap=pg.colormap.get(COLOUR_MAP), interactive=False, width=14)
            bar.setImageItem(image)
            widget.addItem(bar)
        widget.image_item = image  # for tests
    elif kind == "scalar":
        widget.addLabel(f"value {float(np.ravel(activation.array)[0]):.6g}")
    else:
        values = np.ravel(activation.array).astype(np.float64)
        bars = widget.addPlot(title=f"{values.size} values")
        if values.size <= MAX_BARS:
            bars.addItem(pg.BarGraphItem(x=np.arange(values.size), height=np.nan_to_num(values), width=0.8, brush="#3b6ea8"))
            if scale is not None:
                bars.setYRange(min(0.0, low), max(0.0, high))
        hist = widget.addPlot(title="histogram")
        finite = values[np.isfinite(values)]
        if finite.size:
            counts, edges = np.histogram(finite, bins=min(40, max(5, finite.size // 2)))
            hist.plot(edges, counts, stepMode="center", fillLevel=0, brush=(59, 110, 168, 120), pen="#3b6ea8")
    return widget


def _joint_range(comparison: Comparison) -> tuple[float, float]:
    values = [v for s in (comparison.inference.stats, comparison.training.stats) for v in (s.min, s.max) if v is not None]
    return (min(values), max(values)) if values else (0.0, 1.0)


def _difference_text(comparison: Comparison) -> str:
    layers = comparison.differing_layers
    where = f"Layers up to here that compute differently when training: {', '.join(layers)}." if layers else (
        "No layer up to here computes differently when training."
    )
    if comparison.max_difference is None:
        return f"Training and inference differ (not finite). {where}"
    if comparison.max_difference == 0:
        return f"Training and inference give the same output. {where}"
    return f"Training and inference differ: largest difference {comparison.max_difference:.4g}. {where}"


def _shape(activation: NodeActivation) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in activation.output_shape) + ")"


def _num(value) -> str:
    return "-" if value is None else f"{float(value):.4g}"


def _stats_line(stats) -> str:
    return (
        f"mean {_num(stats.mean)}, std {_num(stats.std)}, min {_num(stats.min)}, max {_num(stats.max)}, "
        f"zeros {stats.zero_fraction:.1%}, NaN {stats.nan_count}, Inf {stats.inf_count}"
    )
