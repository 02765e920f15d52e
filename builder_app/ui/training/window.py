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
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.datasets import BUILTIN
from builder_app.core.project import Project, save_project
from builder_app.core.runs import RunError, delete_run, restore_run, run_label
from builder_app.core.training_settings import DEFAULTS
from builder_app.training.data import KERAS_DATASETS, DataError, parse_spec
from builder_app.training.events import EventKind, FinalEvent, FinishStatus
from builder_app.training.runner import (
    Overrides,
    TrainingRun,
    copy_trained_weights,
    keep_run,
    usable_weights,
)
from builder_app.ui.training.dashboard import TrainingDashboard

#: Optimizers offered first; every keras.optimizers class can be typed in.
OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Nadam", "Adagrad", "Adadelta", "Adamax", "Lion", "Ftrl", "Lamb")
POLL_MS = 30


class TrainingWindow(QtWidgets.QMainWindow):
    """Trains one project's model. Touch it from the GUI thread only."""

    run_finished = QtCore.Signal(dict)
    #: The project changed outside the model's edits: a run, restored weights, settings.
    project_changed = QtCore.Signal()

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
        form.addRow("", self.settings_button)
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.train_button, self.pause_button, self.stop_button):
            buttons.addWidget(button)
        self.history = QtWidgets.QListWidget()
        self.history.setToolTip("earlier runs of this project, drawn dashed for comparison")
        self.history.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
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
        run_buttons = QtWidgets.QHBoxLayout()
        run_buttons.addWidget(self.restore_button)
        run_buttons.addWidget(self.delete_button)

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
            match event["kind"]:
                case EventKind.STARTED:
                    self._say(f"training on {event['device']}")
                case EventKind.FINISHED | EventKind.FAILED:
                    self._finish(event)
        self._update_buttons()

    def _finish(self, event: FinalEvent) -> None:
        self._timer.stop()
        run = self.run
        trained = None
        match event["kind"]:
            case EventKind.FAILED:
                hint = f" — {event['hint']}" if event.get("hint") else ""
                self._say(f"{event['message']}{hint}", error=True)
            case EventKind.FINISHED:
                # None after NaN (or when none came back): the model keeps its weights.
                trained = usable_weights(run)
                status = str(run.status).replace("_", " ")
                if trained is not None:
                    copy_trained_weights(self.project, trained)
                    self._say(f"training {status}; the weights are in the project")
                elif run.status == FinishStatus.NAN:
                    self._say("training ended in NaN; the model keeps its weights (try a lower learning rate)", error=True)
                else:
                    self._say(f"training {status}; no weights came back, the model keeps its weights")
        dropped = keep_run(self.project, run, trained)  # the run, with the weights it left
        if dropped and not self.message.styleSheet():
            let_go = ", ".join(run_label({"id": run_id}, 0) for run_id in dropped)
            self._say(f"{self.message.text()}; to stay within what a project file holds, the weights of {let_go} are no longer kept")
        self._changed()
        self._show_history(overlay=self.project.runs[:-1])  # this run is drawn already
        self.pause_button.setText("Pause")
        self.run_finished.emit(run.result or event)

    def _show_history(self, overlay: list[dict[str, Any]] | None = None) -> None:
        self.history.clear()
        for i, record in enumerate(self.project.runs):
            history = record.get("history") or {}
            losses = [v for v in history.get("val_loss") or history.get("loss") or [] if isinstance(v, (int, float))]
            best = f", best loss {min(losses):.4g}" if losses else ""
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
        """The run record selected in the history, if any."""
        items = self.history.selectedItems()
        if not items:
            return None
        index = items[0].data(QtCore.Qt.ItemDataRole.UserRole)
        return self.project.runs[index] if isinstance(index, int) and index < len(self.project.runs) else None

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
        self.train_button.setEnabled(not running)
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
