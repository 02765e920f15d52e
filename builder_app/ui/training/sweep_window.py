"""The Sweep window: search hyperparameters with Optuna and watch the trials.

Pick what to search (a layer and one of its parameters, or a training setting,
and a SPEC: ``a,b,c``, ``lo:hi``, ``lo:hi:step``, ``log:lo:hi``), the number of
trials, the sampler and how many trials run at a time, and press Start. The
window opens with the first Dropout layer's rate on a grid from 0.0 to 0.5, so a
dropout sweep is Model → Sweep…, then Start.

The sweep (:class:`~builder_app.training.sweep.Sweep`) runs on a thread of its
own; each trial trains in a child process. The thread only puts updates on a
queue, which a timer on the GUI thread drains: a live results table sorted by
the objective, the selected trial's curves (the training dashboard), a
parallel-coordinates plot and the parameters' importance (Optuna's, computed on
a worker thread). "Apply best" sets the best trial's parameters through the
editor's controller, as one undo step. Trials become runs in the project's
history, so the training window lists and compares them.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.graph import INPUT_CLASS
from builder_app.core.project import Project
from builder_app.training import sweep as sweep_module
from builder_app.training.sweep import Dimension, Sweep, SweepError, SweepSettings, TrialUpdate
from builder_app.ui import theme
from builder_app.ui.training.dashboard import TrainingDashboard

#: How often the window drains the sweep's updates.
POLL_MS = 40
#: The most updates one drain takes (the rest wait for the next tick).
DRAIN_LIMIT = 400
#: The name the parameter chooser gives the training settings.
TRAINING = "(training)"
#: Parameter kinds a sweep can search (numbers, names, choices).
_SEARCHABLE = ("int", "float", "bool", "choice", "str", "activation")


def suggested_spec(kind: str, value: Any, choices: tuple | None = None, name: str = "") -> str:
    """A SPEC to start from for a parameter of ``kind`` whose value is ``value``."""
    if name == "rate" and kind == "float":
        return "0.0,0.1,0.2,0.3,0.4,0.5"
    if name == "learning_rate":
        return "log:1e-4:1e-2"
    if name == "batch_size":
        return "16,32,64"
    if name == "optimizer":
        return "adam,sgd,rmsprop"
    if name == "epochs":
        return "5,10,20"
    if choices:
        return ",".join(str(c) for c in choices if c is not None)
    if kind == "bool":
        return "true,false"
    if kind == "int" and isinstance(value, int) and value > 0:
        return f"{max(1, value // 2)},{value},{value * 2}"
    if kind == "float" and isinstance(value, (int, float)):
        return f"{value / 2:g},{value:g},{value * 2:g}" if value else "0.0,0.1,0.2"
    if isinstance(value, str):
        return value
    return ""


class SweepWindow(QtWidgets.QMainWindow):
    """A sweep of one project. Touch it from the GUI thread only.

    Args:
        project: The project (its graph is the editor's; trials go into its history).
        controller: The editor's controller (:class:`~builder_app.ui.editor.controller.EditorController`),
            through which "Apply best" sets parameters as one undo step; without one they are set directly.
    """

    #: The project changed outside the model's edits: trials added to the history, settings applied.
    project_changed = QtCore.Signal()
    #: The sweep ended (its trials are all in).
    sweep_finished = QtCore.Signal()

    def __init__(self, project: Project, parent: QtWidgets.QWidget | None = None, *, controller=None):
        super().__init__(parent)
        self.project = project
        self.controller = controller
        self.sweep: Sweep | None = None
        self.dims: list[Dimension] = []
        self.trials: dict[int, dict[str, Any]] = {}
        self.shown_trial: int | None = None
        self._updates: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._importance_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="builder-app-importance")
        self._importance: Future | None = None
        self._importance_wanted = False
        self.importances: dict[str, float] = {}
        # Importing SQLAlchemy (Optuna's storages) holds the interpreter ~1 s the first time,
        # whichever thread imports it: done now, while the form is read, not under live plots.
        self.preloaded = self._importance_pool.submit(_preload)
        self.setWindowTitle(f"Sweep {project.graph.name}")
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._drain)
        self._build()
        self._prefill()
        self._update_buttons()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        self.layer_box = QtWidgets.QComboBox()
        self.param_box = QtWidgets.QComboBox()
        self.spec_edit = QtWidgets.QLineEdit(placeholderText="a,b,c  or  lo:hi  or  lo:hi:step  or  log:lo:hi")
        self.add_button = QtWidgets.QPushButton("Add")
        self.add_button.setToolTip("add this parameter and its values to the search")
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.dims_table = QtWidgets.QTableWidget(0, 2)
        self.dims_table.setHorizontalHeaderLabels(["Parameter", "Values (SPEC)"])
        self.dims_table.horizontalHeader().setStretchLastSection(True)
        self.dims_table.verticalHeader().hide()
        self.dims_table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.dims_table.setMaximumHeight(140)
        for name in self._layer_names():
            self.layer_box.addItem(name)
        self.layer_box.addItem(TRAINING)
        self.layer_box.currentTextChanged.connect(self._fill_params)
        self.param_box.currentTextChanged.connect(self._suggest)
        self.add_button.clicked.connect(self._add_clicked)
        self.remove_button.clicked.connect(self._remove_selected)
        self.trials_box = QtWidgets.QSpinBox(minimum=0, maximum=10_000, specialValueText="all (grid) / 10")
        self.trials_box.setToolTip("trials to run; 0: every point of a grid, or 10")
        self.sampler_box = QtWidgets.QComboBox()
        self.sampler_box.addItems(list(sweep_module.SAMPLERS))
        self.parallel_box = QtWidgets.QSpinBox(minimum=1, maximum=32)
        self.parallel_box.setToolTip("trials that train at a time, each in its own process")
        self.epochs_box = QtWidgets.QSpinBox(minimum=0, maximum=100_000, specialValueText="project's")
        self.epochs_box.setValue(min(int(self.project.training.get("epochs", 10) or 10), 10))
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.apply_button = QtWidgets.QPushButton("Apply best")
        self.apply_button.setToolTip("set the best trial's values on the model (one undo step)")
        self.apply_button.clicked.connect(self.apply_best)
        self.message = QtWidgets.QLabel(wordWrap=True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        pick = QtWidgets.QFormLayout()
        pick.addRow("Layer", self.layer_box)
        pick.addRow("Parameter", self.param_box)
        pick.addRow("Values", self.spec_edit)
        dim_buttons = QtWidgets.QHBoxLayout()
        dim_buttons.addWidget(self.add_button)
        dim_buttons.addWidget(self.remove_button)
        form = QtWidgets.QFormLayout()
        form.addRow("Trials", self.trials_box)
        form.addRow("Sampler", self.sampler_box)
        form.addRow("At a time", self.parallel_box)
        form.addRow("Epochs", self.epochs_box)
        run_buttons = QtWidgets.QHBoxLayout()
        run_buttons.addWidget(self.start_button)
        run_buttons.addWidget(self.stop_button)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(QtWidgets.QLabel("<b>Search</b>"))
        side.addLayout(pick)
        side.addLayout(dim_buttons)
        side.addWidget(self.dims_table)
        side.addLayout(form)
        side.addLayout(run_buttons)
        side.addWidget(self.message)
        side.addStretch(1)
        side.addWidget(self.apply_button)
        panel = QtWidgets.QWidget()
        panel.setLayout(side)
        panel.setFixedWidth(320)

        self.results = QtWidgets.QTableWidget(0, 0)
        self.results.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.results.verticalHeader().hide()
        self.results.itemSelectionChanged.connect(self._selection_changed)
        self.dashboard = TrainingDashboard()
        colors = theme.plot_colors()
        self.coordinates = pg.PlotWidget(background=colors.background, title="Parallel coordinates")
        self.coordinates.hideAxis("left")
        self.coordinates.setMouseEnabled(False, False)
        self.coordinates.setMenuEnabled(False)
        self.importance_plot = pg.PlotWidget(background=colors.background, title="Parameter importance")
        self.importance_plot.setMouseEnabled(False, False)
        self.importance_plot.setMenuEnabled(False)
        self.importance_plot.setYRange(0, 1)
        plots = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        plots.addWidget(self.coordinates)
        plots.addWidget(self.importance_plot)
        plots.setSizes([600, 300])
        upper = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        upper.addWidget(self.results)
        upper.addWidget(plots)
        upper.setSizes([480, 700])
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(upper)
        right.addWidget(self.dashboard)
        right.setSizes([280, 720])
        body = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(body)
        row.addWidget(panel)
        row.addWidget(right, 1)
        self.setCentralWidget(body)
        self.resize(1500, 1000)

    def _layer_names(self) -> list[str]:
        graph = self.project.graph
        names = []
        for node in graph.nodes:
            layer = graph.layer_of(node)
            if layer.class_name != INPUT_CLASS and layer.submodel is None and layer.name not in names:
                names.append(layer.name)
        return names

    def _param_specs(self, layer_name: str) -> list[tuple[str, str, Any, tuple | None]]:
        """``(name, kind, value, choices)`` of the layer's searchable parameters."""
        from builder_app.core import catalog

        layer = self.project.graph.layers.get(layer_name)
        if layer is None:
            return []
        try:
            spec = catalog.layer_spec(layer.class_name) if catalog.is_loaded() or catalog.load_cached() else None
        except KeyError:
            spec = None
        if spec is None:
            return [(k, "any", v, None) for k, v in layer.config.items() if isinstance(v, (int, float, str))]
        return [
            (p.name, p.kind, layer.config.get(p.name, p.default), p.choices)
            for p in spec.params
            if p.kind in _SEARCHABLE and p.name not in ("name", "trainable", "dtype")
        ]

    def _fill_params(self, layer_name: str) -> None:
        self.param_box.blockSignals(True)
        self.param_box.clear()
        if layer_name == TRAINING:
            self.param_box.addItems(list(sweep_module.TRAINING_SETTINGS))
        else:
            self.param_box.addItems([p[0] for p in self._param_specs(layer_name)])
        self.param_box.blockSignals(False)
        self._suggest(self.param_box.currentText())

    def _suggest(self, param: str) -> None:
        layer_name = self.layer_box.currentText()
        if layer_name == TRAINING:
            self.spec_edit.setText(suggested_spec(sweep_module.TRAINING_SETTINGS.get(param, ""), None, name=param))
            return
        for name, kind, value, choices in self._param_specs(layer_name):
            if name == param:
                self.spec_edit.setText(suggested_spec(kind, value, choices, name))
                return

    def _prefill(self) -> None:
        """The first Dropout's rate on a grid, 0.0 to 0.5: the classic sweep, ready to start."""
        graph = self.project.graph
        dropout = next((n for n in self._layer_names() if graph.layers[n].class_name == "Dropout"), None)
        if dropout is not None:
            self.layer_box.setCurrentText(dropout)
            self._fill_params(dropout)
            self.param_box.setCurrentText("rate")
            self._suggest("rate")
            self._add_clicked()
            self.sampler_box.setCurrentText("grid")
        else:
            self._fill_params(self.layer_box.currentText())
            self.sampler_box.setCurrentText("tpe")

    # ------------------------------------------------------------ dimensions
    def add_dimension(self, name: str, spec: str) -> str | None:
        """Adds ``name=spec`` to the search; returns the one-line refusal, or None."""
        try:
            dim = sweep_module.dimension(self.project.graph, name, spec)
        except SweepError as exc:
            self._say(str(exc), error=True)
            return str(exc)
        self.dims = [d for d in self.dims if d.name != dim.name] + [dim]
        self._show_dims()
        self._say("")
        return None

    def _add_clicked(self) -> None:
        layer, param = self.layer_box.currentText(), self.param_box.currentText()
        if not param:
            return
        name = param if layer == TRAINING else f"{layer}.{param}"
        self.add_dimension(name, self.spec_edit.text())

    def _remove_selected(self) -> None:
        rows = {i.row() for i in self.dims_table.selectedItems()}
        self.dims = [d for i, d in enumerate(self.dims) if i not in rows]
        self._show_dims()

    def _show_dims(self) -> None:
        self.dims_table.setRowCount(len(self.dims))
        for row, dim in enumerate(self.dims):
            self.dims_table.setItem(row, 0, QtWidgets.QTableWidgetItem(dim.name))
            self.dims_table.setItem(row, 1, QtWidgets.QTableWidgetItem(dim.spec.text))
        self.dims_table.resizeColumnToContents(0)
        self._update_buttons()

    # ------------------------------------------------------------------ runs
    def settings(self) -> SweepSettings:
        """The sweep the form describes."""
        storage = sweep_module.default_storage(self.project.path) if self.project.path is not None else None
        sampler = self.sampler_box.currentText()
        # Each Start is a study of its own (beside the others in the project's file): pressing
        # Start again on the same grid runs it again, where `builder-app sweep` continues one.
        name = sweep_module.study_name(self.project.graph, self.dims, sampler, sweep_module.DEFAULT_MONITOR)
        return SweepSettings(
            trials=self.trials_box.value() or None,
            sampler=sampler,
            parallel=self.parallel_box.value(),
            storage=storage,
            epochs=self.epochs_box.value() or None,
            study=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
        )

    def start(self) -> None:
        """Starts the sweep on its own thread (the window keeps answering)."""
        if self.running or not self.dims:
            return
        try:
            self.sweep = Sweep(self.project, self.dims, self.settings(), on_update=self._updates.put)
        except SweepError as exc:
            self._say(str(exc), error=True)
            return
        self.trials.clear()
        self.shown_trial = None
        self.importances = {}
        self._set_columns()
        self._thread = threading.Thread(target=self._run_sweep, args=(self.sweep,), name="builder-app-sweep", daemon=True)
        self._thread.start()
        self._timer.start()
        self._say(f"sweeping {', '.join(d.name for d in self.dims)} ({self.sampler_box.currentText()})…")
        self._update_buttons()

    def _run_sweep(self, sweep: Sweep) -> None:
        try:
            sweep.run()
        except Exception as exc:  # noqa: BLE001 - said in the window, in one line
            from builder_app.core.text import one_line

            self._updates.put(("error", one_line(exc, 300)))
        finally:
            self._updates.put(("done", None))

    def stop(self) -> None:
        """Ends the sweep: no more trials; running ones stop at their next batch."""
        if self.sweep is not None and self.running:
            self.sweep.stop()
            self._say("stopping the sweep…")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the sweep's thread (tests, closing); True when it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --------------------------------------------------------------- updates
    def _drain(self) -> None:
        changed = ended = False
        for _ in range(DRAIN_LIMIT):
            try:
                item = self._updates.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                kind, text = item
                if kind == "error":
                    self._say(text, error=True)
                else:
                    self._done()
                continue
            changed |= item.kind != "event"
            ended |= item.kind == "ended"
            self._take(item)
        if changed:
            self._show_results()
        if ended:
            self._draw_coordinates()
            self._ask_importance()
            self.project_changed.emit()
        self._poll_importance()

    def _take(self, update: TrialUpdate) -> None:
        trial = self.trials.setdefault(
            update.number, {"params": update.params, "state": "RUNNING", "value": None, "events": [], "run_id": None}
        )
        if update.kind == "event":
            trial["events"].append(update.event)
            if self.shown_trial is None:
                self.shown_trial = update.number
            if update.number == self.shown_trial:
                self.dashboard.add_event(update.event)
        elif update.kind == "ended":
            trial.update(state=update.state, value=update.value, run_id=update.run_id, message=update.message)

    def _done(self) -> None:
        self._timer.stop()
        self._drain_rest()
        best = self.best()
        done = sum(t["state"] == "COMPLETE" for t in self.trials.values())
        if best is not None:
            shown = ", ".join(f"{k}={_short(v)}" for k, v in best[1]["params"].items())
            self._say(f"{done} of {len(self.trials)} trials complete; best: trial {best[0]} ({shown})")
        elif not self.message.text().startswith("sweep failed"):
            self._say(f"no trial succeeded ({len(self.trials)} run)", error=True)
        self._update_buttons()
        self.sweep_finished.emit()

    def _drain_rest(self) -> None:
        while True:
            try:
                item = self._updates.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, TrialUpdate):
                self._take(item)
            elif item[0] == "error":
                self._say(f"sweep failed: {item[1]}", error=True)
        self._show_results()
        self._draw_coordinates()
        self._ask_importance()
        self.project_changed.emit()

    # --------------------------------------------------------------- results
    @property
    def direction(self) -> str:
        return sweep_module.direction_of(self.sweep.settings.monitor if self.sweep else sweep_module.DEFAULT_MONITOR)

    def sorted_trials(self) -> list[int]:
        """Trial numbers as the table shows them: complete best first, then the rest by number."""
        rows = [sweep_module.TrialRow(n, t["params"], t["value"], t["state"]) for n, t in sorted(self.trials.items())]
        return [r.number for r in sweep_module.sorted_rows(rows, self.direction)]

    def best(self) -> tuple[int, dict[str, Any]] | None:
        order = self.sorted_trials()
        if order and self.trials[order[0]]["state"] == "COMPLETE":
            return order[0], self.trials[order[0]]
        return None

    def _set_columns(self) -> None:
        monitor = self.sweep.settings.monitor if self.sweep else sweep_module.DEFAULT_MONITOR
        labels = ["Trial", *(d.name for d in self.dims), monitor, "State"]
        self.results.setColumnCount(len(labels))
        self.results.setHorizontalHeaderLabels(labels)
        self.results.setRowCount(0)

    def _show_results(self) -> None:
        order = self.sorted_trials()
        self.results.blockSignals(True)
        self.results.setRowCount(len(order))
        best = self.best()
        for row, number in enumerate(order):
            trial = self.trials[number]
            value = trial["value"]
            cells = [
                str(number),
                *(_short(trial["params"].get(d.name)) for d in self.dims),
                "" if value is None else f"{value:.5g}",
                trial["state"].lower(),
            ]
            for column, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setData(QtCore.Qt.ItemDataRole.UserRole, number)
                if best is not None and number == best[0]:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                if trial.get("message"):
                    item.setToolTip(trial["message"])
                self.results.setItem(row, column, item)
            if number == self.shown_trial:
                self.results.selectRow(row)
        self.results.blockSignals(False)
        self.results.resizeColumnsToContents()
        self._update_buttons()

    def _selection_changed(self) -> None:
        items = self.results.selectedItems()
        if not items:
            return
        self.show_trial(items[0].data(QtCore.Qt.ItemDataRole.UserRole))

    def show_trial(self, number: int) -> None:
        """Shows trial ``number``'s curves in the dashboard (its events replayed)."""
        if number not in self.trials or number == self.shown_trial:
            return
        self.shown_trial = number
        self.dashboard.reset()
        for event in self.trials[number]["events"]:
            self.dashboard.add_event(event)
        self.dashboard.flush()

    def _draw_coordinates(self) -> None:
        """One line per finished trial across the parameters' axes and the objective's, coloured by rank."""
        plot = self.coordinates
        plot.clear()
        done = [(n, t) for n, t in self.trials.items() if t["state"] == "COMPLETE" and t["value"] is not None]
        axes = [d.name for d in self.dims] + ["value"]
        plot.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(axes)]])
        plot.setXRange(-0.3, len(axes) - 0.7, padding=0)
        plot.setYRange(-0.12, 1.12, padding=0)
        muted = theme.plot_colors().muted
        for i in range(len(axes)):
            plot.addItem(pg.InfiniteLine(pos=i, angle=90, pen=pg.mkPen(muted, width=1)))
        if not done:
            return
        columns = [[t["params"].get(d.name) for _, t in done] for d in self.dims] + [[t["value"] for _, t in done]]
        for i, values in enumerate(columns):  # each axis says what its ends are
            low, high = _ends(values, self.dims[i] if i < len(self.dims) else None)
            for text, y, anchor in ((high, 1.0, (0.5, 1.0)), (low, 0.0, (0.5, 0.0))):
                label = pg.TextItem(text, color=theme.plot_colors().foreground, anchor=anchor)
                label.setPos(i, y)
                plot.addItem(label)
        scaled = [_scaled(values, self.dims[i] if i < len(self.dims) else None) for i, values in enumerate(columns)]
        values = np.array([t["value"] for _, t in done], dtype=float)
        ranks = values.argsort().argsort() / max(len(values) - 1, 1)
        if self.direction == "maximize":
            ranks = 1 - ranks
        for k, (_number, _trial) in enumerate(done):
            # The best trial red and opaque, the worst blue and faint.
            color = QtGui.QColor.fromHsvF(0.6 * ranks[k], 0.8, 0.85, 1.0 - 0.6 * ranks[k])
            plot.plot(list(range(len(axes))), [s[k] for s in scaled], pen=pg.mkPen(color, width=3 if ranks[k] == 0 else 2),
                      symbol="o", symbolSize=6, symbolBrush=color)

    def _ask_importance(self) -> None:
        if self.sweep is None or self.sweep.study is None:
            return
        if self._importance is not None and not self._importance.done():
            self._importance_wanted = True  # once this one is done
            return
        self._importance_wanted = False
        self._importance = self._importance_pool.submit(sweep_module.importances, self.sweep.study)

    def _poll_importance(self) -> None:
        future = self._importance
        if future is None or not future.done():
            return
        self._importance = None
        try:
            self.importances = future.result()
        except Exception:  # noqa: BLE001 - the plot stays as it was
            return
        self._draw_importance()
        if self._importance_wanted:
            self._ask_importance()

    def _draw_importance(self) -> None:
        plot = self.importance_plot
        plot.clear()
        names = [d.name for d in self.dims]
        heights = [float(self.importances.get(n, 0.0)) for n in names]
        plot.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(names)]])
        plot.addItem(pg.BarGraphItem(x=list(range(len(names))), height=heights, width=0.6, brush="#1f77b4"))
        plot.setXRange(-0.6, len(names) - 0.4, padding=0)

    def wait_for_importance(self, timeout: float = 30.0) -> dict[str, float]:
        """Waits for the importance being computed and draws it (tests)."""
        if self._importance is not None:
            self._importance.result(timeout)
            self._poll_importance()
        return self.importances

    # ----------------------------------------------------------------- apply
    def apply_best(self) -> bool:
        """Sets the best trial's values on the project: layer parameters as one undo step."""
        best = self.best()
        if best is None or self.running:
            return False
        params = best[1]["params"]
        steps, training = sweep_module.best_changes(self.dims, params)
        if steps:
            if self.controller is not None:
                values = {(s.layer, s.key): s.value for s in steps}
                outcome = self.controller.set_params(self.project.graph, values, f"Apply best trial {best[0]}")
                if not outcome:
                    self._say(outcome.message, error=True)
                    return False
            else:
                from builder_app.core.ops import Batch

                self.project.graph.apply(Batch(steps, "apply best trial"))
        if training:
            self.project.training = sweep_module.training_with(self.project.training, training)
        shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
        self._say(f"applied trial {best[0]}: {shown}")
        self.project_changed.emit()
        return True

    # ---------------------------------------------------------------- others
    def _update_buttons(self) -> None:
        running = self.running
        self.start_button.setEnabled(not running and bool(self.dims))
        self.stop_button.setEnabled(running)
        self.add_button.setEnabled(not running)
        self.remove_button.setEnabled(not running and bool(self.dims))
        self.apply_button.setEnabled(not running and self.best() is not None)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b3261e;" if error else "")

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.running and self.sweep is not None:
            self.sweep.stop()  # the trials stop at their next batch; the thread ends by itself
        self._timer.stop()
        self._importance_pool.shutdown(wait=False, cancel_futures=True)
        super().closeEvent(event)


def _preload() -> None:
    """Imports Optuna and makes SQLAlchemy generate its code (it compiles some on first use)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage("sqlite:///:memory:")
    optuna.create_study(storage=storage).optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _ends(values: list[Any], dim: Dimension | None) -> tuple[str, str]:
    """What the bottom and the top of an axis of the parallel coordinates stand for."""
    if dim is not None and dim.spec.kind == "choices":
        choices = list(dim.spec.choices)
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
            return _short(min(choices)), _short(max(choices))
        return _short(choices[0]), _short(choices[-1])
    if dim is not None:
        return _short(dim.spec.low), _short(dim.spec.high)
    numbers = [float(v) for v in values]
    return _short(min(numbers)), _short(max(numbers))


def _scaled(values: list[Any], dim: Dimension | None) -> list[float]:
    """Values placed on [0, 1]: numbers by their range (log ranges by log), choices by their place."""
    if dim is not None and dim.spec.kind == "choices":
        choices = list(dim.spec.choices)
        numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
        if numeric:
            low, high = min(choices), max(choices)
            return [0.5 if high == low else (float(v) - low) / (high - low) for v in values]
        return [choices.index(v) / max(len(choices) - 1, 1) if v in choices else 0.5 for v in values]
    numbers = [float(v) for v in values]
    if dim is not None and dim.spec.kind == "log":
        numbers = [math.log(v) for v in numbers]
        low, high = math.log(dim.spec.low), math.log(dim.spec.high)
    elif dim is not None:
        low, high = float(dim.spec.low), float(dim.spec.high)
    else:
        low, high = min(numbers), max(numbers)
    return [0.5 if high == low else (v - low) / (high - low) for v in numbers]
