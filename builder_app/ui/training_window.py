"""The training window: pick data and an optimizer, press Train, watch, stop, keep the weights.

The run lives in a child process (:class:`~builder_app.training.runner.TrainingRun`);
a 30 ms timer on the GUI thread drains its events into the dashboard, so the
window answers whatever the training does. Finished runs go into the project's
run history with their settings, metrics, duration and device; their weights
come back into the project (saved with Save).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from builder_app.core.datasets import BUILTIN
from builder_app.core.project import Project, save_project
from builder_app.training import events
from builder_app.training.data import KERAS_DATASETS, DataError, parse_spec
from builder_app.training.runner import Overrides, TrainingRun, copy_trained_weights, run_record
from builder_app.ui.dashboard import TrainingDashboard

#: Optimizers offered first; every keras.optimizers class can be typed in.
OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Nadam", "Adagrad", "Adadelta", "Adamax", "Lion", "Ftrl", "Lamb")
POLL_MS = 30


class TrainingWindow(QtWidgets.QMainWindow):
    """Trains one project's model. Touch it from the GUI thread only."""

    run_finished = QtCore.Signal(dict)

    def __init__(self, project: Project, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.run: TrainingRun | None = None
        self.dirty = False
        self.setWindowTitle(f"Train {project.graph.name}")
        self.dashboard = TrainingDashboard()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
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
        self.train_button = QtWidgets.QPushButton("Train")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.save_button = QtWidgets.QPushButton("Save project")
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
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.train_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        self.history = QtWidgets.QListWidget()
        self.history.setToolTip("earlier runs of this project, drawn dashed for comparison")

        side = QtWidgets.QVBoxLayout()
        side.addLayout(form)
        side.addLayout(buttons)
        side.addWidget(self.message)
        side.addWidget(QtWidgets.QLabel("Runs"))
        side.addWidget(self.history, 1)
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
        optimizer = training.get("optimizer") or {"class_name": "Adam", "config": {}}
        self.optimizer.setCurrentText(optimizer.get("class_name", "Adam"))
        self.learning_rate.setValue(float((optimizer.get("config") or {}).get("learning_rate", 0.001)))

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Training data", "", "Data (*.npz *.csv *.npy)")
        if path:
            self.data.setCurrentText(path if not path.endswith(".csv") else f"{path}:")

    # ------------------------------------------------------------------ runs
    def overrides(self) -> Overrides:
        """The choices in the window, as overrides of the project's settings."""
        text = self.data.currentText().strip()
        return Overrides(
            data=parse_spec(text) if text else None,
            epochs=self.epochs.value(),
            batch_size=self.batch_size.value(),
            optimizer=self.optimizer.currentText().strip() or None,
            learning_rate=self.learning_rate.value(),
        )

    def start(self) -> None:
        if self.run is not None and not self.run.finished:
            return
        try:
            overrides = self.overrides()
        except DataError as exc:
            self._say(str(exc), error=True)
            return
        self._close_run()
        self.dashboard.reset()
        self._show_history()  # every earlier run, dashed, under the new one
        self.run = TrainingRun(self.project, overrides)
        self.run.start()
        self._started = time.monotonic()
        self._say("starting TensorFlow in the training process…")
        self._timer.start()
        self._update_buttons()

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
            self.run.stop()
            self._say("stopping at the next batch…")

    def _poll(self) -> None:
        run = self.run
        if run is None:
            return
        for event in run.poll(limit=2000):
            self.dashboard.add_event(event)
            if event["kind"] == events.STARTED:
                self._say(f"training on {event['device']}")
            elif event["kind"] in events.FINAL:
                self._finish(event)
        self._update_buttons()

    def _finish(self, event: dict[str, Any]) -> None:
        self._timer.stop()
        run = self.run
        if event["kind"] == events.FAILED:
            hint = f" — {event['hint']}" if event.get("hint") else ""
            self._say(f"{event['message']}{hint}", error=True)
        else:
            trained = run.trained_weights()
            if trained is not None:
                copy_trained_weights(self.project, trained)
            self._say(f"training {event['status'].replace('_', ' ')}; the weights are in the project")
        self.project.runs.append(run_record(run))
        self.dirty = True
        self._show_history(overlay=self.project.runs[:-1])  # this run is drawn already
        self.pause_button.setText("Pause")
        self.run_finished.emit(event)

    def _show_history(self, overlay: list[dict[str, Any]] | None = None) -> None:
        self.history.clear()
        for i, record in enumerate(self.project.runs, start=1):
            history = record.get("history") or {}
            best = min(history.get("val_loss") or history.get("loss") or [float("nan")])
            seconds = record.get("seconds")
            took = f", {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""
            self.history.addItem(f"run {i}: {record.get('status')}, best loss {best:.4g}{took}, {record.get('device', '')}")
        runs = self.project.runs if overlay is None else overlay
        self.dashboard.show_previous_runs(
            [{"name": f"run {i}", "history": r.get("history") or {}} for i, r in enumerate(runs, start=1)]
        )

    def _update_buttons(self) -> None:
        running = self.run is not None and not self.run.finished
        self.train_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.save_button.setEnabled(self.project.path is not None and self.dirty)

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

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.run is not None and not self.run.finished:
            self.run.stop()
        self._timer.stop()
        self._close_run()
        super().closeEvent(event)
