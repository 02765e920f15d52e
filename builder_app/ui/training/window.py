"""The training window: pick data and an optimizer, press Train, watch, stop, keep the weights.

The run lives in a child process (:class:`~builder_app.training.runner.TrainingRun`);
a 30 ms timer on the GUI thread drains its events into the dashboard, so the
window answers whatever the training does. Finished runs go into the project's
run history with their settings, metrics, duration, device and the weights they
left; their weights also come back into the model (saved with Save). A run in the
history can give its weights back to the model ("Restore weights") or be deleted,
its weights with it. "Settings…" edits every training setting
(:class:`~builder_app.ui.training.settings_dialog.TrainingSettingsDialog`); the
fields in the window override the project's settings for a run when changed.

Restoring weights and deleting runs are not edits of the model: they are outside
the editor's undo history, and mark the project changed.

A run is protected: the data is checked against the model's shapes before any
child starts (:func:`~builder_app.training.data.check_fit` on the data's
:class:`~builder_app.training.data.DataFacts`, read without Keras, and the
model's :class:`~builder_app.training.data.ModelSignature`, from the shapes the
editor computes); closing the window while a run trains asks whether to keep or
discard it (:meth:`TrainingWindow.ask_close_run`); whether a run continues from
the model's weights or starts from fresh ones is a visible choice, kept in the
project's training settings (``initial_weights``). When the window opens, a
:class:`~builder_app.training.runner.WarmChild` starts importing TensorFlow in
the background, so that Train reaches its first batch quickly; each run gets a
fresh one.
"""

from __future__ import annotations

import enum
import json
import math
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.datasets import BUILTIN
from builder_app.core.project import Project, save_project
from builder_app.core.runs import RunError, delete_run, restore_run, run_label
from builder_app.core.training_settings import DEFAULTS, output_losses
from builder_app.training import data as data_module
from builder_app.training.backends import LABELS as BACKEND_LABELS
from builder_app.training.backends import BackendError, default_backend, installed_backends
from builder_app.training.curves import history_best_text
from builder_app.training.data import KERAS_DATASETS, DataError, parse_spec
from builder_app.training.events import EventKind, FinalEvent, FinishStatus
from builder_app.training.runner import (
    Overrides,
    TrainingRun,
    WarmChild,
    backend_problem,
    copy_trained_weights,
    keep_run,
    run_backend,
    usable_weights,
)
from builder_app.ui.training.dashboard import TrainingDashboard

#: Optimizers offered first; every keras.optimizers class can be typed in.
OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Nadam", "Adagrad", "Adadelta", "Adamax", "Lion", "Ftrl", "Lamb")
POLL_MS = 30
#: Whether an open window keeps a warm training child (tests that never train switch it off).
WARM_CHILD = True
#: How long a Stop (or "Stop and keep") waits for the run to hand its weights back before ending it:
#: after the batch, Keras still validates the epoch and the child writes the weights.
STOP_GRACE_SECONDS = 15.0


class CloseAnswer(enum.Enum):
    """What to do with a live run when its window closes."""

    KEEP = "keep"  #: stop at the next batch and keep the run and its weights, as Stop does
    DISCARD = "discard"  #: end the run now and keep nothing of it
    CANCEL = "cancel"  #: keep the window open, the run going


class TrainingWindow(QtWidgets.QMainWindow):
    """Trains one project's model. Touch it from the GUI thread only."""

    run_finished = QtCore.Signal(dict)
    #: A run's child has started training: its started event (the backend and devices it sees).
    run_started = QtCore.Signal(dict)
    #: The project changed outside the model's edits: a run, restored weights, settings.
    project_changed = QtCore.Signal()

    def __init__(self, project: Project, parent: QtWidgets.QWidget | None = None, *, engine=None):
        super().__init__(parent)
        self.project = project
        self.run: TrainingRun | None = None
        #: The shapes the editor computes for this project's graph (a ShapeEngine), if it shares them.
        self.engine = engine
        self.warm: WarmChild | None = None
        self._facts: dict[str, Future] = {}
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="builder-app-data-facts")
        self._pending: Overrides | None = None
        self._closing = False
        self.dirty = False
        self.setWindowTitle(f"Train {project.graph.name}")
        self.dashboard = TrainingDashboard()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._pending_timer = QtCore.QTimer(self)
        self._pending_timer.setInterval(POLL_MS)
        self._pending_timer.timeout.connect(self._start_when_checked)
        self._build()
        self._load_settings()
        self._show_history()
        self._update_buttons()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        self.data = QtWidgets.QComboBox(editable=True)
        self.data.addItems([*BUILTIN, *KERAS_DATASETS])
        self.data.setToolTip("a built-in or Keras dataset, F.npz, X.npy,Y.npy, F.csv:TARGET or an image folder")
        browse = QtWidgets.QToolButton(text="…", toolTip="choose a data file")
        browse.clicked.connect(self._browse)
        self.epochs = QtWidgets.QSpinBox(minimum=1, maximum=100_000)
        self.batch_size = QtWidgets.QSpinBox(minimum=1, maximum=1 << 20)
        self.optimizer = QtWidgets.QComboBox(editable=True)
        self.optimizer.addItems(OPTIMIZERS)
        self.learning_rate = QtWidgets.QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=10.0, singleStep=1e-4)
        self.backend = QtWidgets.QComboBox()
        for name in installed_backends():  # found, not imported: the window loads none of them
            self.backend.addItem(BACKEND_LABELS[name], name)
        self.backend.setCurrentIndex(max(0, self.backend.findData(default_backend())))
        self.backend.setToolTip(
            "the Keras backend the training process runs on (the editor keeps TensorFlow for its shapes)"
        )
        self.backend.currentIndexChanged.connect(self._backend_changed)
        self.continue_weights = QtWidgets.QRadioButton("Continue from current weights")
        self.continue_weights.setToolTip("train on from the weights the model holds now (kept in the project)")
        self.fresh_weights = QtWidgets.QRadioButton("Start from fresh weights")
        self.fresh_weights.setToolTip("start from the layers' initializers (seeded), not from the model's weights")
        self.start_from = QtWidgets.QButtonGroup(self)
        self.start_from.addButton(self.continue_weights)
        self.start_from.addButton(self.fresh_weights)
        self.start_from.buttonToggled.connect(self._start_from_changed)
        self.train_button = QtWidgets.QPushButton("Train")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.save_button = QtWidgets.QPushButton("Save project")
        self.settings_button = QtWidgets.QPushButton("Settings…")
        self.settings_button.setToolTip("optimizer arguments, learning-rate schedule, loss and metrics, callbacks…")
        self.settings_button.clicked.connect(self.open_settings)
        self.settings_dialog = None
        self.train_button.setDefault(True)
        self.train_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self.save)
        self.message = QtWidgets.QLabel(wordWrap=True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QtWidgets.QFormLayout()
        data_row = QtWidgets.QHBoxLayout()
        data_row.addWidget(self.data, 1)
        data_row.addWidget(browse)
        form.addRow("Data", data_row)
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Backend", self.backend)
        start_from = QtWidgets.QVBoxLayout()  # the whole row: the choices say what they are
        start_from.setSpacing(2)
        start_from.addWidget(self.continue_weights)
        start_from.addWidget(self.fresh_weights)
        form.addRow(start_from)
        form.addRow("", self.settings_button)
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.train_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        self.history = QtWidgets.QListWidget()
        self.history.setToolTip("earlier runs of this project, drawn dashed for comparison")
        # Several runs may be selected to compare them; restore and delete take one.
        self.history.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.restore_action = QtGui.QAction("Restore weights", self)
        self.restore_action.setToolTip("give the model the weights this run left")
        self.restore_action.triggered.connect(self.restore_selected)
        self.delete_action = QtGui.QAction("Delete run", self)
        self.delete_action.setToolTip("remove this run and the weights it kept from the project")
        self.delete_action.triggered.connect(self.delete_selected)
        self.history.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.ActionsContextMenu)
        self.history.addActions([self.restore_action, self.delete_action])
        self.history.itemSelectionChanged.connect(self._update_buttons)
        self.restore_button = QtWidgets.QPushButton("Restore weights")
        self.restore_button.clicked.connect(self.restore_selected)
        self.delete_button = QtWidgets.QPushButton("Delete run")
        self.delete_button.clicked.connect(self.delete_selected)
        self.compare_button = QtWidgets.QPushButton("Compare…")
        self.compare_button.setToolTip("select two runs or more: curves overlaid, settings and metrics side by side")
        self.compare_button.clicked.connect(self.compare_selected)
        self.comparison = None
        run_buttons = QtWidgets.QHBoxLayout()
        run_buttons.addWidget(self.restore_button)
        run_buttons.addWidget(self.delete_button)
        run_buttons.addWidget(self.compare_button)

        side = QtWidgets.QVBoxLayout()
        side.addLayout(form)
        side.addLayout(buttons)
        side.addWidget(self.message)
        side.addWidget(QtWidgets.QLabel("Runs"))
        side.addWidget(self.history, 1)
        side.addLayout(run_buttons)
        side.addWidget(self.save_button)
        panel = QtWidgets.QWidget()
        panel.setLayout(side)
        panel.setFixedWidth(300)

        body = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(body)
        row.addWidget(panel)
        row.addWidget(self.dashboard, 1)
        self.setCentralWidget(body)
        self.resize(1400, 860)

    def _load_settings(self) -> None:
        training = self.project.training
        data = training.get("data") or {}
        if data.get("source") in ("builtin", "keras"):
            self.data.setCurrentText(data["name"])
        elif data.get("path"):
            self.data.setCurrentText(data["path"] + (f":{data['target']}" if data.get("target") else ""))
        else:
            self.data.setCurrentText("")
        self.epochs.setValue(int(training.get("epochs", 10)))
        self.batch_size.setValue(int(training.get("batch_size", 32)))
        self.optimizer.setCurrentText(self._project_optimizer())
        self.learning_rate.setValue(self._project_learning_rate())
        scheduled = training.get("learning_rate_schedule") is not None
        self.learning_rate.setEnabled(not scheduled)
        self.learning_rate.setToolTip("set by the learning-rate schedule (Settings…)" if scheduled else "")
        fresh = training.get("initial_weights") == "fresh"
        self.start_from.blockSignals(True)  # showing the setting is not changing it
        (self.fresh_weights if fresh else self.continue_weights).setChecked(True)
        self.start_from.blockSignals(False)

    def initial_weights(self) -> str:
        """Where the next run starts: "continue" (the model's weights) or "fresh" (the initializers)."""
        return "fresh" if self.fresh_weights.isChecked() else "continue"

    def _start_from_changed(self, button, checked: bool) -> None:
        if not checked:
            return
        # Kept in the project's training settings: the choice is remembered with the project.
        self.project.training["initial_weights"] = self.initial_weights()
        said = "from fresh weights" if self.initial_weights() == "fresh" else "from the model's current weights"
        self._changed(f"new runs start {said}")

    def _project_optimizer(self) -> str:
        optimizer = self.project.training.get("optimizer") or DEFAULTS["optimizer"]
        return str(optimizer.get("class_name", "Adam"))

    def _project_learning_rate(self) -> float:
        optimizer = self.project.training.get("optimizer") or DEFAULTS["optimizer"]
        rate = (optimizer.get("config") or {}).get("learning_rate", 0.001)
        return float(rate) if isinstance(rate, (int, float)) else 0.001

    def open_settings(self) -> None:
        """Opens the settings dialog; OK keeps valid settings, and the fields above follow."""
        from builder_app.ui.training.settings_dialog import TrainingSettingsDialog

        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)  # Keras may load
        try:
            self.settings_dialog = TrainingSettingsDialog(self.project, self)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()
        self.settings_dialog.accepted.connect(self._settings_changed)
        self.settings_dialog.open()

    def _settings_changed(self) -> None:
        self._load_settings()
        self._changed("training settings changed")

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Training data", "", "Data (*.npz *.csv *.npy)")
        if path:
            self.data.setCurrentText(path if not path.endswith(".csv") else f"{path}:")

    # ------------------------------------------------------------------ runs
    def overrides(self) -> Overrides:
        """The choices in the window, as overrides of the project's settings.

        The optimizer and the learning rate override only when changed here, so
        that the optimizer's arguments and the schedule from Settings… stay.
        """
        text = self.data.currentText().strip()
        optimizer = self.optimizer.currentText().strip()
        rate = self.learning_rate.value()
        # Half the field's last decimal: a rate it cannot show is not a change.
        same_rate = math.isclose(rate, self._project_learning_rate(), rel_tol=1e-9, abs_tol=5e-7)
        return Overrides(
            data=parse_spec(text) if text else None,
            epochs=self.epochs.value(),
            batch_size=self.batch_size.value(),
            optimizer=optimizer if optimizer and optimizer.lower() != self._project_optimizer().lower() else None,
            learning_rate=None if same_rate or not self.learning_rate.isEnabled() else rate,
            initial_weights=self.initial_weights(),
            backend=self.backend_name(),
        )

    def backend_name(self) -> str:
        """The Keras backend the next run trains on ("tensorflow", "jax", "torch")."""
        return self.backend.currentData() or default_backend()

    def set_backend(self, name: str) -> None:
        """Chooses the backend of the next run (one of those installed; others are ignored)."""
        index = self.backend.findData(name)
        if index >= 0:
            self.backend.setCurrentIndex(index)

    def _backend_changed(self) -> None:
        # The warm child has imported the other backend: the next run's child starts on this one.
        if self.warm is not None and self.warm.backend != self.backend_name():
            self._end_warm()
            if self.isVisible() and not self._running():
                self._start_warm()
        self._say(f"new runs train on {BACKEND_LABELS.get(self.backend_name(), self.backend_name())}")

    def start(self) -> None:
        """Train: the data is checked against the model first (read in the background), then a run starts."""
        if self._running() or self._pending is not None:
            return
        try:
            overrides = self.overrides()
        except DataError as exc:
            self._say(str(exc), error=True)
            return
        self._pending = overrides
        self._start_when_checked()
        if self._pending is not None:  # the data is still being read
            self._say("reading the data…")
            self._pending_timer.start()
            self._update_buttons()

    def _start_when_checked(self) -> None:
        overrides = self._pending
        if overrides is None:
            self._pending_timer.stop()
            return
        spec = overrides.apply(self.project.training).get("data")
        future = self._read_facts(spec)
        if future is not None and not future.done():
            return  # the timer calls again
        self._pending_timer.stop()
        self._pending = None
        problem = self.check_backend(overrides) or self.check_data(overrides, future)
        if problem is not None:
            self._say(problem, error=True)  # no child starts
            self._update_buttons()
            return
        self._launch(overrides)

    def _launch(self, overrides: Overrides) -> None:
        self._close_run()
        self.dashboard.reset()
        self._show_history()  # every earlier run, dashed, under the new one
        warm, self.warm = self.warm, None
        if warm is not None and not warm.alive:  # it crashed: a cold start
            warm.close()
            warm = None
        self.run = TrainingRun(self.project, overrides, warm=warm)
        self.run.start()
        self._started = time.monotonic()
        label = BACKEND_LABELS.get(self.run.overrides.backend or "", "Keras")
        if warm is None:
            self._say(f"starting {label} in the training process…")
        elif warm.is_ready:
            self._say("preparing the run…")
        else:
            self._say(f"{label} is still starting in the training process…")
        self._timer.start()
        self._update_buttons()

    def check_backend(self, overrides: Overrides) -> str | None:
        """Why the run cannot train on its backend (one line), or None; settings checked once Keras is loaded."""
        if "keras" not in sys.modules:  # the child checks the settings, and says so
            try:
                run_backend(overrides)
            except BackendError as exc:
                return str(exc)
            return None
        return backend_problem(self.project, overrides)

    # ------------------------------------------------------------ data check
    def _read_facts(self, spec: dict[str, Any] | None) -> Future | None:
        """The facts of the data ``spec`` names, read on a worker thread; None when only Keras reads it."""
        if not isinstance(spec, dict) or spec.get("source") not in data_module.READ_WITHOUT_KERAS:
            return None
        key = json.dumps([spec, self._seed(), _mtimes(spec)], sort_keys=True, default=str)
        future = self._facts.get(key)
        if future is None:
            future = self._facts[key] = self._reader.submit(data_module.facts, dict(spec), seed=self._seed())
        return future

    def _seed(self) -> int:
        seed = self.project.training.get("seed", 0)
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0

    def signature(self) -> data_module.ModelSignature:
        """The model's inputs and outputs with their shapes, from the editor's shapes (or the graph's Input layers).

        Without an engine, one is made only when Keras is loaded already: the output
        shapes then stay unknown (None) rather than this window importing TensorFlow.
        """
        graph = self.project.graph
        engine, own = self.engine, False
        if engine is None and "keras" in sys.modules:
            from builder_app.core.shapes import ShapeEngine

            engine, own = ShapeEngine(graph), True
        try:
            if engine is not None:
                types = engine.input_types()
                inputs = [(name, t.shape if t else None) for name, t in zip(engine.input_names(), types, strict=True)]
                counts = {node: len(r.outputs or [None]) for node, r in engine.results().items()}
                refs = graph.model_outputs(counts)
                outputs = [
                    (graph.layer_of(ref.node).name, t.shape if t else None)
                    for ref, t in zip(refs, engine.output_types(), strict=True)
                ]
                return data_module.ModelSignature(inputs, outputs)
        finally:
            if own:
                engine.close()
        inputs = []
        for node in graph.model_inputs():
            layer = graph.layer_of(node)
            shape = layer.config.get("batch_shape")
            inputs.append((layer.name, tuple(shape) if isinstance(shape, (list, tuple)) else None))
        return data_module.ModelSignature(inputs, [(graph.layer_of(r.node).name, None) for r in graph.model_outputs()])

    def check_data(self, overrides: Overrides, future: Future | None = None) -> str | None:
        """The one line saying how the data does not fit the model, or None (fits, or only the child can tell)."""
        spec = overrides.apply(self.project.training).get("data")
        if future is None:
            future = self._read_facts(spec)
        if future is None:
            return None
        try:
            facts = future.result()
        except DataError as exc:
            return str(exc)
        except Exception:  # noqa: BLE001 - a reader's surprise: the child reports it in full
            return None
        losses = output_losses(overrides.apply(self.project.training), self.project.graph)
        if facts is None or losses is None:
            return None
        try:
            signature = self.signature()
        except Exception:  # noqa: BLE001 - a model the shapes cannot read: the child says what is wrong
            return None
        problems = data_module.check_fit(facts, signature, losses)
        if not problems:
            return None
        message, hint = data_module.problems_line(problems)
        return f"{message} — {hint}" if hint else message

    def toggle_pause(self) -> None:
        if self.run is None or self.run.finished:
            return
        if self.pause_button.text() == "Pause":
            self.run.pause()
            self.pause_button.setText("Resume")
        else:
            self.run.resume()
            self.pause_button.setText("Pause")

    def stop(self) -> None:
        if self.run is not None and not self.run.finished:
            self.run.stop(grace=STOP_GRACE_SECONDS)
            self._say("stopping at the next batch…")

    def _poll(self) -> None:
        run = self.run
        if run is None:
            return
        for event in run.poll(limit=2000):
            self.dashboard.add_event(event)
            match event["kind"]:
                case EventKind.STARTED:
                    self._say(f"training on {event['device']}")
                    self.run_started.emit(dict(event))
                case EventKind.FINISHED | EventKind.FAILED:
                    self._finish(event)
        self._update_buttons()

    def _finish(self, event: FinalEvent, *, keep: bool = True) -> None:
        """The run is over: its weights into the model and the run into the history, unless ``keep`` is False.

        A run stopped before its first batch keeps nothing (there is nothing to keep).
        The message is made from what was kept, after keeping it (:func:`final_status`).
        """
        self._timer.stop()
        run = self.run
        trained = None
        began = run.started_event is not None
        record = None
        dropped: list[str] = []
        if keep and (began or event["kind"] == EventKind.FAILED):
            # None after NaN (or when none came back): the model keeps its weights.
            trained = usable_weights(run) if event["kind"] == EventKind.FINISHED else None
            if trained is not None:
                copy_trained_weights(self.project, trained)
            dropped = keep_run(self.project, run, trained)  # the run, with the weights it left
            record = self.project.runs[-1]
            self._changed()
            self._show_history(overlay=self.project.runs[:-1])  # this run is drawn already
        line, error = final_status(run, record, self.project, model_updated=trained is not None, dropped=dropped)
        self._say(line, error=error)
        self.pause_button.setText("Pause")
        self._update_buttons()
        self.run_finished.emit(run.result or event)
        if self.isVisible() and keep:
            self._start_warm()  # the next run's child, TensorFlow imported by then

    def _show_history(self, overlay: list[dict[str, Any]] | None = None) -> None:
        self.history.clear()
        for i, record in enumerate(self.project.runs):
            history = record.get("history") or {}
            best = history_best_text(history)  # "best val_loss: 0.123 (epoch 7)"
            best = f", {best}" if best else ""
            seconds = record.get("seconds")
            took = f", {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
            device = f", {record['device']}" if record.get("device") else ""
            kept = "" if record.get("id") in self._kept_ids() else " (no weights kept)"
            item = QtWidgets.QListWidgetItem(f"{run_label(record, i)}: {record.get('status')}{best}{took}{device}{kept}")
            item.setData(QtCore.Qt.ItemDataRole.UserRole, i)
            self.history.addItem(item)
        runs = self.project.runs if overlay is None else overlay
        self.dashboard.show_previous_runs(
            [{"name": run_label(r, i), "history": r.get("history") or {}} for i, r in enumerate(runs)]
        )
        self._update_buttons()

    def _kept_ids(self) -> set[str]:
        return set(self.project.run_weights)

    def selected_run(self) -> dict[str, Any] | None:
        """The run record selected in the history, if one (and only one) is."""
        items = self.history.selectedItems()
        if len(items) != 1:
            return None
        index = items[0].data(QtCore.Qt.ItemDataRole.UserRole)
        return self.project.runs[index] if isinstance(index, int) and index < len(self.project.runs) else None

    def selected_runs(self) -> list[dict[str, Any]]:
        """The run records selected in the history, in the history's order."""
        places = sorted(i.data(QtCore.Qt.ItemDataRole.UserRole) for i in self.history.selectedItems())
        return [self.project.runs[i] for i in places if isinstance(i, int) and i < len(self.project.runs)]

    def compare_selected(self) -> None:
        """Opens the comparison of the selected runs (two or more)."""
        from builder_app.ui.training.run_compare import RunComparison

        records = self.selected_runs()
        if len(records) < 2:
            return
        labels = [run_label(r, self.project.runs.index(r)) for r in records]
        self.comparison = RunComparison(records, labels, self)
        self.comparison.setWindowFlag(QtCore.Qt.WindowType.Window, True)
        self.comparison.show()

    def restore_selected(self) -> None:
        """Gives the model the weights the selected run left (not while a run trains)."""
        record = self.selected_run()
        if record is None or self._running():
            return
        label = run_label(record, self.project.runs.index(record))
        try:
            layers = restore_run(self.project, record.get("id"))
        except RunError as exc:
            self._say(str(exc), error=True)
            return
        self._changed(f"restored the weights of {label} ({len(layers)} layers)")

    def delete_selected(self) -> None:
        """Removes the selected run, and the weights it kept, from the project."""
        record = self.selected_run()
        if record is None or self._running():
            return
        index = self.project.runs.index(record)
        label = run_label(record, index)
        if record.get("id") is not None:
            delete_run(self.project, record["id"])
        else:  # a hand-written record without an id
            del self.project.runs[index]
        self._show_history()
        self._changed(f"deleted {label}")

    def _changed(self, text: str | None = None) -> None:
        self.dirty = True
        if text is not None:
            self._say(text)
        self._update_buttons()
        self.project_changed.emit()

    def _running(self) -> bool:
        return self.run is not None and not self.run.finished

    def _update_buttons(self) -> None:
        running = self._running()
        self.train_button.setEnabled(not running and getattr(self, "_pending", None) is None)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.settings_button.setEnabled(not running)
        self.save_button.setEnabled(self.project.path is not None and self.dirty)
        record = self.selected_run()
        can_restore = record is not None and not running and record.get("id") in self._kept_ids()
        can_delete = record is not None and not running
        self.restore_action.setEnabled(can_restore)
        self.restore_button.setEnabled(can_restore)
        self.delete_action.setEnabled(can_delete)
        self.delete_button.setEnabled(can_delete)
        self.compare_button.setEnabled(len(self.history.selectedItems()) >= 2)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b3261e;" if error else "")

    # ----------------------------------------------------------------- files
    def save(self) -> None:
        if self.project.path is None:
            return
        try:
            save_project(self.project, self.project.path)
        except (OSError, ValueError) as exc:
            self._say(f"cannot save {Path(self.project.path).name}: {exc}", error=True)
            return
        self.dirty = False
        self._say(f"saved {Path(self.project.path).name}")
        self._update_buttons()

    def _close_run(self) -> None:
        if self.run is not None:
            self.run.close()
            self.run = None

    # ------------------------------------------------------- the warm child
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._running():
            self._start_warm()

    def _start_warm(self) -> None:
        """Gets the next Train ready: the data read for its check, and a warm child preparing the run.

        The child imports TensorFlow now and prepares the run the window's fields
        describe; Train with other settings prepares anew.
        """
        try:
            overrides = self.overrides()
        except DataError:
            overrides = None  # no data to expect yet: the child waits with TensorFlow imported
        data = overrides.apply(self.project.training).get("data") if overrides is not None else None
        if isinstance(data, dict):
            self._read_facts(data)
        if not WARM_CHILD or self._closing or (self.warm is not None and self.warm.alive):
            return
        if self.warm is not None:
            self.warm.close()  # it died: a fresh one
        self.warm = WarmChild(self.backend_name()).start()
        if isinstance(data, dict):
            self.warm.expect(self.project, overrides)

    def _end_warm(self) -> None:
        if self.warm is not None:
            self.warm.close()
            self.warm = None

    # ------------------------------------------------------------- closing
    def ask_close_run(self) -> CloseAnswer:
        """Asks what to do with the run that trains; tests replace this to answer."""
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Question)
        box.setWindowTitle("A run is training")
        box.setText(f"{self.project.graph.name} is still training.")
        box.setInformativeText(
            "Stop and keep: stop at the next batch and keep the run and its weights, as Stop does.\n"
            "Stop and discard: end the run now; nothing of it is kept."
        )
        keep = box.addButton("Stop and keep", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Stop and discard", QtWidgets.QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(keep)
        box.setEscapeButton(cancel)
        self.close_prompt = box  # for a screenshot while it shows
        box.exec()
        clicked = box.clickedButton()
        self.close_prompt = None
        if clicked is keep:
            return CloseAnswer.KEEP
        if clicked is discard:
            return CloseAnswer.DISCARD
        return CloseAnswer.CANCEL

    def stop_and_keep(self) -> None:
        """Stops the run at the next batch and waits for it, keeping it as Stop does (for a closing window)."""
        run = self.run
        if run is None or run.finished:
            return
        self._pending = None
        run.stop(grace=STOP_GRACE_SECONDS)
        self._say("stopping at the next batch…")
        QtWidgets.QApplication.setOverrideCursor(QtCore.Qt.CursorShape.WaitCursor)
        try:
            for event in run.events():
                self.dashboard.add_event(event)
                if event["kind"] in (EventKind.FINISHED, EventKind.FAILED):
                    self._finish(event)
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()

    def discard_run(self) -> None:
        """Ends the run now and keeps nothing of it: no history entry, no weights."""
        run = self.run
        if run is None or run.finished:
            return
        self._finish(run.discard(), keep=False)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self._running():
            answer = self.ask_close_run()
            if answer is CloseAnswer.CANCEL:
                event.ignore()
                return
            self._closing = True  # no warm child for a next run
            if self._running():  # it may have ended while the question was open
                if answer is CloseAnswer.KEEP:
                    self.stop_and_keep()
                else:
                    self.discard_run()
        self._pending = None
        self._pending_timer.stop()
        self._timer.stop()
        self._close_run()
        self._end_warm()
        self._closing = False
        super().closeEvent(event)


def final_status(
    run: TrainingRun, record: dict[str, Any] | None, project: Project, *, model_updated: bool, dropped: list[str]
) -> tuple[str, bool]:
    """The window's last line about a run, and whether it is an error: said from what was kept.

    Args:
        run: The finished run.
        record: Its record in the history, or None when it was not kept.
        project: The project (its run weights say what the history kept).
        model_updated: Whether the run's weights went into the model.
        dropped: Runs whose weights were let go to make room.
    """
    result = run.result or {}
    if result.get("kind") == EventKind.FAILED:
        hint = f" — {result['hint']}" if result.get("hint") else ""
        return f"{result.get('message', 'training failed')}{hint}", True
    if record is None:
        if run.started_event is None:
            return "stopped before training began; nothing was kept, the model keeps its weights", False
        return "run discarded; nothing of it was kept", False
    label = run_label(record, len(project.runs) - 1)
    status = str(run.status).replace("_", " ")
    if run.status == FinishStatus.NAN:
        return f"{label} ended in NaN; the model keeps its weights (try a lower learning rate)", True
    kept = record.get("id") in project.run_weights
    if not model_updated:
        line = f"{label} {status}; no weights came back, the model keeps its weights"
    elif kept:
        line = f"{label} {status}; the model has its weights, and the run keeps a copy"
    else:
        line = f"{label} {status}; the model has its weights, but the run keeps no copy (a project file holds no more)"
    let_go = [run_id for run_id in dropped if run_id != record.get("id")]
    if let_go:
        names = ", ".join(run_label({"id": run_id}, 0) for run_id in let_go)
        line += f"; to stay within what a project file holds, the weights of {names} are no longer kept"
    return line, False


def _mtimes(spec: dict[str, Any]) -> list[Any]:
    """The modification times of the files a data setting names (a changed file is read again)."""
    times = []
    for key in ("path", "x", "y"):
        value = spec.get(key)
        if isinstance(value, str):
            try:
                times.append(os.stat(value).st_mtime_ns)
            except OSError:
                times.append(None)
    return times
