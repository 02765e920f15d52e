"""The training window drives a real run: Train, live dashboard, Stop, weights and history kept;
earlier runs' weights restored and runs deleted; every training setting edited in its dialog."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from builder_app.core import training_settings
from builder_app.core.keras_model import build_keras_model, copy_weights_to_graph
from builder_app.core.project import load_project
from builder_app.core.runs import record_run

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"


@pytest.fixture(autouse=True)
def _warm_child_only_when_training(request, monkeypatch):
    """A window keeps a warm training child (TensorFlow importing); tests that never train go without."""
    from builder_app.ui.training import window as window_module

    if request.node.get_closest_marker("training") is None:
        monkeypatch.setattr(window_module, "WARM_CHILD", False)


@pytest.fixture
def window(qtbot, tmp_path):
    from builder_app.ui.training.window import CloseAnswer, TrainingWindow

    path = tmp_path / "iris.kproj"
    path.write_bytes((EXAMPLES / "iris_mlp.kproj").read_bytes())
    widget = TrainingWindow(load_project(path))
    widget.ask_close_run = lambda: CloseAnswer.DISCARD  # a run left going by a failure is not asked about
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_train_watch_and_keep_the_weights(window, qtbot, tmp_path):
    assert window.data.currentText() == "iris" and window.epochs.value() == 100
    window.epochs.setValue(5)
    graph = window.project.graph
    copy_weights_to_graph(graph, build_keras_model(graph))  # known starting weights
    before = np.array(graph.layers["species"].weights[0])
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as finished:
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
        assert not window.train_button.isEnabled() and window.stop_button.isEnabled()
    assert finished.args[0]["status"] == "completed"
    window.dashboard.flush()
    assert window.dashboard.epoch_count() == 5 and window.dashboard.batch_count() > 0
    assert window.history.count() == 1 and window.history.item(0).text().startswith("run 1: completed")
    after = window.project.graph.layers["species"].weights[0]
    assert after.shape == before.shape and not np.allclose(before, after)
    assert window.save_button.isEnabled()
    qtbot.mouseClick(window.save_button, QtCore.Qt.MouseButton.LeftButton)
    saved = load_project(window.project.path)
    assert len(saved.runs) == 1 and saved.runs[0]["settings"]["epochs"] == 5
    # The run kept the weights it left, in the file too.
    assert list(saved.run_weights) == [saved.runs[0]["id"]] == ["run-1"]
    kept = saved.run_weights["run-1"].arrays()["species"]
    assert all(np.array_equal(a, b) for a, b in zip(kept, saved.graph.layers["species"].weights, strict=True))
    window.grab().save("/tmp/training_window.png")


def test_stop_in_the_middle_keeps_the_window_answering(window, qtbot):
    window.epochs.setValue(100_000)
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.dashboard.epoch_count() >= 1, timeout=180_000)
    with qtbot.waitSignal(window.run_finished, timeout=30_000) as finished:
        qtbot.mouseClick(window.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert finished.args[0]["status"] == "stopped"
    assert window.train_button.isEnabled() and not window.stop_button.isEnabled()


def test_bad_data_is_one_line_in_the_window(window, qtbot):
    import keras  # noqa: F401 - loaded, as in the editor: the window reads the output shapes too

    window.data.setCurrentText("digits")
    window.epochs.setValue(1)
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    # Checked in the window, before any child starts.
    qtbot.waitUntil(lambda: window.train_button.isEnabled() and window.message.text() != "reading the data…")
    assert window.run is None
    assert window.message.text() == (
        "input 'measurements' expects (None, 4); digits gives (None, 8, 8, 1); "
        "output 'species' has 3 classes; digits has class numbers up to 9"
    )
    window.data.setCurrentText("nothing.bin")
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.message.text().startswith("unknown data 'nothing.bin'")


# ------------------------------------------------------------ run history
def with_weights(graph, offset: float):
    """A copy of ``graph`` holding Keras's initial weights moved by ``offset``."""
    from builder_app.core.keras_model import build_keras_model, copy_weights_to_graph

    twin = graph.clone()
    copy_weights_to_graph(twin, build_keras_model(twin))
    for layer in twin.layers.values():
        if layer.weights:
            layer.weights = [w + offset for w in layer.weights]
    return twin


def item_of(window, label: str):
    for i in range(window.history.count()):
        if window.history.item(i).text().startswith(label):
            return window.history.item(i)
    raise AssertionError(f"no {label} in the history")


def test_restore_and_delete_runs_from_the_history(qtbot, tmp_path):
    from builder_app.ui.training.window import TrainingWindow

    path = tmp_path / "iris.kproj"
    path.write_bytes((EXAMPLES / "iris_mlp.kproj").read_bytes())
    project = load_project(path)
    first, second = with_weights(project.graph, 1.0), with_weights(project.graph, 2.0)
    record_run(project, {"status": "completed", "history": {"loss": [1.0, 0.5]}}, first)
    record_run(project, {"status": "completed", "history": {"loss": [0.9, 0.4]}}, second)
    project.runs.append({"id": "run-3", "status": "failed"})  # kept no weights
    window = TrainingWindow(project)
    qtbot.addWidget(window)
    window.show()
    assert window.history.count() == 3
    assert item_of(window, "run 3").text().endswith("(no weights kept)")
    assert not window.restore_button.isEnabled() and not window.delete_button.isEnabled()
    # The context menu holds the same two actions.
    assert [a.text() for a in window.history.actions()] == ["Restore weights", "Delete run"]

    window.history.setCurrentItem(item_of(window, "run 1"))
    assert window.restore_button.isEnabled() and window.restore_action.isEnabled()
    qtbot.mouseClick(window.restore_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.message.text() == "restored the weights of run 1 (3 layers)"
    assert np.array_equal(project.graph.layers["species"].weights[0], first.layers["species"].weights[0])
    assert window.dirty and window.save_button.isEnabled()
    window.history.setCurrentItem(item_of(window, "run 2"))
    window.restore_action.trigger()
    assert np.array_equal(project.graph.layers["species"].weights[1], second.layers["species"].weights[1])
    window.history.setCurrentItem(item_of(window, "run 3"))
    assert not window.restore_button.isEnabled() and window.delete_button.isEnabled()

    # A run whose shapes no longer fit is refused in one line naming the layer.
    before = [w.copy() for w in project.graph.layers["species"].weights]
    project.graph.layers["species"].weights = [np.zeros((5, 3), np.float32), np.zeros(3, np.float32)]
    window.history.setCurrentItem(item_of(window, "run 1"))
    window.restore_action.trigger()
    assert window.message.text().startswith("run 'run-1' cannot be restored: layer 'species' has weights of shapes")
    project.graph.layers["species"].weights = before

    window.history.setCurrentItem(item_of(window, "run 1"))
    with qtbot.waitSignal(window.project_changed):
        qtbot.mouseClick(window.delete_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.message.text() == "deleted run 1"
    assert [r["id"] for r in project.runs] == ["run-2", "run-3"] and list(project.run_weights) == ["run-2"]
    assert window.history.count() == 2 and window.history.item(0).text().startswith("run 2")
    qtbot.mouseClick(window.save_button, QtCore.Qt.MouseButton.LeftButton)
    saved = load_project(path)
    assert [r["id"] for r in saved.runs] == ["run-2", "run-3"] and list(saved.run_weights) == ["run-2"]


# --------------------------------------------------------------- settings
def test_settings_dialog_writes_what_training_settings_accepts(window, qtbot):
    qtbot.mouseClick(window.settings_button, QtCore.Qt.MouseButton.LeftButton)
    dialog = window.settings_dialog
    assert dialog.isVisible()
    # Every argument of the optimizer's class, its default shown.
    assert dialog.optimizer.currentText() == "Adam"
    assert dialog.optimizer_form.fields["learning_rate"].text() == "0.01"
    for name in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "gradient_accumulation_steps"):
        assert name in dialog.optimizer_form.fields, name
    assert dialog.optimizer_form.fields["beta_1"].placeholderText() == "0.9"

    dialog.optimizer.setCurrentText("SGD")
    assert "beta_1" not in dialog.optimizer_form.fields
    assert dialog.optimizer_form.fields["learning_rate"].text() == "0.01"  # carried over
    dialog.optimizer_form.fields["momentum"].setText("0.9")
    dialog.optimizer_form.fields["clipnorm"].setText("1.0")
    dialog.optimizer_form.fields["nesterov"].setChecked(True)
    dialog.schedule.setCurrentText("CosineDecay")
    assert not dialog.optimizer_form.fields["learning_rate"].isEnabled()
    schedule = dialog.schedule_form.fields
    assert schedule["initial_learning_rate"].text() == "0.01"  # where the constant rate was
    schedule["decay_steps"].setText("1000")
    schedule["warmup_steps"].setText("100")
    schedule["warmup_target"].setText("0.05")
    dialog.losses["species"].setCurrentText("sparse_categorical_crossentropy")
    dialog.metrics["species"].setText("accuracy, sparse_top_k_categorical_accuracy")
    box, form = dialog.callbacks["early_stopping"]
    box.setChecked(True)
    form.fields["patience"].setText("5")
    form.fields["restore_best_weights"].setChecked(True)
    dialog.callbacks["csv_logger"][0].setChecked(True)
    dialog.callbacks["csv_logger"][1].fields["filename"].setText("log.csv")
    dialog.validation_split.setValue(0.25)
    dialog.seed.setValue(7)
    dialog.mixed_precision.setChecked(True)
    with qtbot.waitSignal(window.project_changed):
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert not dialog.isVisible() and dialog.error.text() == ""

    training = window.project.training
    assert training["optimizer"] == {
        "class_name": "SGD",
        "config": {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True, "clipnorm": 1.0},
    }
    assert training["learning_rate_schedule"] == {
        "class_name": "CosineDecay",
        "config": {"initial_learning_rate": 0.01, "decay_steps": 1000, "warmup_target": 0.05, "warmup_steps": 100},
    }
    assert training["loss"] == "sparse_categorical_crossentropy"
    assert training["metrics"] == ["accuracy", "sparse_top_k_categorical_accuracy"]
    assert training["callbacks"] == {
        "early_stopping": {"patience": 5, "restore_best_weights": True},
        "terminate_on_nan": {},
        "csv_logger": {"filename": "log.csv"},
    }
    assert (training["validation_split"], training["seed"], training["mixed_precision"]) == (0.25, 7, True)
    assert training["data"] == {"source": "builtin", "name": "iris"} and training["epochs"] == 100  # kept
    resolved = training_settings.resolve(training, window.project.graph)
    assert resolved["optimizer"]["class_name"] == "SGD"
    # The window follows: the schedule sets the rate, so its field is off and overrides nothing.
    assert window.optimizer.currentText() == "SGD" and not window.learning_rate.isEnabled()
    overrides = window.overrides()
    assert overrides.optimizer is None and overrides.learning_rate is None
    assert overrides.apply(training)["learning_rate_schedule"] == training["learning_rate_schedule"]
    assert window.dirty


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.optimizer_form.fields["beta_1"].setText("fast"), "optimizer: beta_1 must be a number, not 'fast'"),
        (
            lambda d: d.schedule.setCurrentText("CosineDecay"),
            "learning_rate_schedule: CosineDecay needs a value for 'decay_steps'",
        ),
        (
            lambda d: (d.schedule.setCurrentText("PiecewiseConstantDecay"),
                       d.schedule_form.fields["boundaries"].setText("[100, 200]"),
                       d.schedule_form.fields["values"].setText("[0.1, 0.01]")),
            "learning_rate_schedule: The length of boundaries should be 1 less than the length of values",
        ),
        (lambda d: d.losses["species"].setCurrentText("mean_happiness"), "loss: 'mean_happiness' is not a Keras loss"),
        (
            lambda d: (d.callbacks["model_checkpoint"][0].setChecked(True),
                       d.callbacks["model_checkpoint"][1].fields["filepath"].setText("best.txt")),
            "callbacks.model_checkpoint: The filepath provided must end in `.keras`",
        ),
    ],
)
def test_settings_dialog_refuses_invalid_values_in_one_line(window, qtbot, edit, message):
    before = json.loads(json.dumps(window.project.training))
    window.open_settings()
    dialog = window.settings_dialog
    edit(dialog)
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert dialog.isVisible()  # stays open, says why, keeps nothing
    assert dialog.error.text().startswith(message), dialog.error.text()
    assert "\n" not in dialog.error.text()
    assert window.project.training == before and not window.dirty
    dialog.reject()
