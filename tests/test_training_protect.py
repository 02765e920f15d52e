"""Training that protects runs (issue 14, item 4): closing a window with a live run asks, the
last line says what was kept, fresh or continued weights are a remembered choice the run honours,
the data is checked in the window before any child starts, and a warm child makes Train fast."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from builder_app.core.keras_model import build_keras_model, copy_weights_to_graph
from builder_app.core.project import load_project, save_project
from builder_app.training import data as data_module
from builder_app.training.runner import Overrides

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"
ROOT = Path(__file__).parents[1]
RUN_TIMEOUT = 240_000  # ms: a child starting TensorFlow on a loaded 2-core machine


@pytest.fixture(autouse=True)
def _warm_child_only_when_training(request, monkeypatch):
    from builder_app.ui.training import window as window_module

    if request.node.get_closest_marker("training") is None:
        monkeypatch.setattr(window_module, "WARM_CHILD", False)


def iris_window(qtbot, tmp_path, *, weights_offset: float | None = None):
    from builder_app.ui.training.window import CloseAnswer, TrainingWindow

    project = load_project(EXAMPLES / "iris_mlp.kproj")
    copy_weights_to_graph(project.graph, build_keras_model(project.graph))
    if weights_offset is not None:
        for layer in project.graph.layers.values():
            if layer.weights:
                layer.weights = [np.full_like(w, weights_offset) for w in layer.weights]
    path = tmp_path / "iris.kproj"
    save_project(project, path)
    window = TrainingWindow(load_project(path))
    # A run still going when a test ends (a failure) is discarded, never asked about.
    window.ask_close_run = lambda: CloseAnswer.DISCARD
    qtbot.addWidget(window)
    window.show()
    return window


def weights_of(project) -> list[np.ndarray]:
    return [np.array(w) for w in project.graph.layers["species"].weights]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (ended, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ------------------------------------------------------------- closing with a live run
@pytest.mark.training
@pytest.mark.slow
def test_closing_a_window_with_a_live_run_asks_and_does_what_was_answered(qtbot, tmp_path):
    from builder_app.ui.training.window import CloseAnswer

    window = iris_window(qtbot, tmp_path)
    before = weights_of(window.project)
    asked = []

    def answer(choice):
        def ask():
            asked.append(choice)
            return choice

        return ask

    window.epochs.setValue(100_000)
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.dashboard.epoch_count() >= 1, timeout=RUN_TIMEOUT)
    child = window.run._process.pid

    # Cancel: the window stays, the run goes on.
    window.ask_close_run = answer(CloseAnswer.CANCEL)
    assert not window.close()
    assert asked == [CloseAnswer.CANCEL] and window.isVisible() and not window.run.finished and alive(child)
    epochs = window.dashboard.epoch_count()
    qtbot.waitUntil(lambda: window.dashboard.epoch_count() > epochs, timeout=60_000)

    # Stop and keep: the run and its weights are kept, as Stop keeps them.
    window.ask_close_run = answer(CloseAnswer.KEEP)
    with qtbot.waitSignal(window.project_changed, timeout=60_000):
        assert window.close()
    assert not window.isVisible() and not alive(child)
    assert [r["status"] for r in window.project.runs] == ["stopped"]
    assert list(window.project.run_weights) == ["run-1"]
    kept = weights_of(window.project)
    assert not np.allclose(kept[0], before[0])
    assert window.message.text() == "run 1 stopped; the model has its weights, and the run keeps a copy"
    assert window.warm is None  # no warm child outlives the window

    # Stop and discard: nothing of the run is kept.
    window.show()
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.dashboard.batch_count() >= 1, timeout=RUN_TIMEOUT)
    child = window.run._process.pid
    window.ask_close_run = answer(CloseAnswer.DISCARD)
    assert window.close()
    assert not alive(child) and window.warm is None
    assert [r["status"] for r in window.project.runs] == ["stopped"]  # still only run 1
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(window.project), kept, strict=True))
    assert window.message.text() == "run discarded; nothing of it was kept"


def test_closing_without_a_run_asks_nothing(qtbot, tmp_path):
    window = iris_window(qtbot, tmp_path)
    window.ask_close_run = lambda: pytest.fail("asked without a run")
    assert window.close()


# --------------------------------------------------------------- what the last line says
@pytest.mark.training
@pytest.mark.slow
def test_a_stop_before_training_began_says_nothing_was_kept(qtbot, tmp_path):
    window = iris_window(qtbot, tmp_path)
    before = weights_of(window.project)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT):
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.run is not None)  # after the data check
        assert window.run.started_event is None  # TensorFlow is still starting
        qtbot.mouseClick(window.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.message.text() == "stopped before training began; nothing was kept, the model keeps its weights"
    assert window.project.runs == [] and window.history.count() == 0 and not window.dirty
    assert all(np.array_equal(a, b) for a, b in zip(weights_of(window.project), before, strict=True))
    window.close()


def test_the_last_line_is_made_from_what_was_kept(tmp_path):
    from builder_app.core.runs import record_run
    from builder_app.training import events
    from builder_app.training.runner import TrainingRun
    from builder_app.ui.training.window import final_status

    project = load_project(EXAMPLES / "iris_mlp.kproj")
    copy_weights_to_graph(project.graph, build_keras_model(project.graph))
    started = events.started(
        device="CPU", epochs=1, steps_per_epoch=1, batch_size=1, samples=1, validation_samples=0, metrics=["loss"]
    )

    def ended(status, *, began=True):
        run = TrainingRun(project)
        run.started_event = started if began else None
        run.result = events.finished(status=status, history={}, seconds=1.0, weights=None)
        run.status = str(status)
        return run

    run = ended("completed")
    record_run(project, {"status": "completed"}, project.graph)
    assert final_status(run, project.runs[-1], project, model_updated=True, dropped=[]) == (
        "run 1 completed; the model has its weights, and the run keeps a copy", False)
    record_run(project, {"status": "completed"}, None)  # the run's weights were not kept
    assert final_status(run, project.runs[-1], project, model_updated=True, dropped=["run-2"]) == (
        "run 2 completed; the model has its weights, but the run keeps no copy (a project file holds no more)", False)
    record_run(project, {"status": "stopped"}, None)
    assert final_status(ended("stopped"), project.runs[-1], project, model_updated=False, dropped=[]) == (
        "run 3 stopped; no weights came back, the model keeps its weights", False)
    assert final_status(ended("stopped", began=False), None, project, model_updated=False, dropped=[]) == (
        "stopped before training began; nothing was kept, the model keeps its weights", False)
    line, error = final_status(ended("nan"), project.runs[-1], project, model_updated=False, dropped=[])
    assert error and "NaN" in line and "the model keeps its weights" in line


# ------------------------------------------------------------ continue or fresh weights
def test_continue_or_fresh_is_a_choice_kept_in_the_project(qtbot, tmp_path):
    from builder_app.core.training_settings import SettingsError, resolve
    from builder_app.ui.training.window import TrainingWindow

    window = iris_window(qtbot, tmp_path)
    assert window.continue_weights.isChecked() and window.initial_weights() == "continue"
    assert window.continue_weights.isVisible() and window.fresh_weights.isVisible()
    assert not window.dirty
    with qtbot.waitSignal(window.project_changed):
        window.fresh_weights.setChecked(True)
    assert window.project.training["initial_weights"] == "fresh" and window.dirty
    assert window.overrides().initial_weights == "fresh"
    assert window.message.text() == "new runs start from fresh weights"
    window.save()
    reopened = TrainingWindow(load_project(window.project.path))
    qtbot.addWidget(reopened)
    assert reopened.fresh_weights.isChecked() and not reopened.dirty
    # The setting is checked like every other.
    assert resolve({"initial_weights": "fresh"}, window.project.graph)["initial_weights"] == "fresh"
    assert resolve({}, window.project.graph)["initial_weights"] == "continue"
    with pytest.raises(SettingsError, match="initial_weights must be"):
        resolve({"initial_weights": "random"}, window.project.graph)
    assert Overrides(initial_weights="fresh").apply({})["initial_weights"] == "fresh"
    assert "initial_weights" not in Overrides().apply({})  # the command line keeps the project's


@pytest.mark.training
@pytest.mark.slow
def test_fresh_weights_start_from_the_initializers_not_the_projects(qtbot, tmp_path):
    window = iris_window(qtbot, tmp_path, weights_offset=5.0)  # far from any initializer
    window.epochs.setValue(1)
    window.fresh_weights.setChecked(True)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT) as finished:
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    assert finished.args[0]["status"] == "completed", window.message.text()
    kernel = weights_of(window.project)[0]
    # One epoch at the example's learning rate moves weights by far less than 5 from where they start.
    assert np.abs(kernel).max() < 2.5
    assert window.project.runs[0]["settings"]["initial_weights"] == "fresh"
    window.close()


# ------------------------------------------------------------------ the data check
def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    np.savez(path, x=x, y=y)
    return str(path)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((30, 5), "float32"), np.arange(30) % 3,
         "input 'measurements' expects (None, 4); bad.npz gives (None, 5)"),
        (np.zeros((30, 4), "float32"), np.arange(30) % 7,
         "output 'species' has 3 classes; bad.npz has class numbers up to 6"),
        (np.zeros((30, 2, 2), "float32"), np.arange(30) % 3,
         "input 'measurements' expects (None, 4); bad.npz gives (None, 2, 2) — fix: reshape to (None, 4)"),
    ],
)
def test_a_mismatch_is_one_line_in_the_window_and_no_child_starts(qtbot, tmp_path, x, y, message):
    import keras  # noqa: F401 - loaded, as the editor has it: the output shapes are known

    window = iris_window(qtbot, tmp_path)
    window.data.setCurrentText(write_npz(tmp_path / "bad.npz", x, y))
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.train_button.isEnabled(), timeout=30_000)
    assert window.run is None and window.warm is None  # no child at all
    assert window.message.text() == message
    # Data that fits goes through the check.
    window.data.setCurrentText(write_npz(tmp_path / "good.npz", np.zeros((30, 4), "float32"), np.arange(30) % 3))
    assert window.check_data(window.overrides()) is None


def test_the_window_checks_the_data_without_importing_tensorflow(tmp_path):
    """In a Python without Keras the input shapes (from the Input layers) are still checked."""
    script = f"""
import sys
from builder_app.core.project import load_project
from PySide6 import QtWidgets
from builder_app.ui.training import window as module
module.WARM_CHILD = False
app = QtWidgets.QApplication([])
window = module.TrainingWindow(load_project({str(EXAMPLES / "iris_mlp.kproj")!r}))
window.data.setCurrentText("digits")
print(window.check_data(window.overrides()))
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["input 'measurements' expects (None, 4); digits gives (None, 8, 8, 1)", "False False"]


def test_check_fit_reads_facts_and_signatures_as_it_reads_arrays_and_models():
    import keras

    inputs = keras.Input((4,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(inputs))
    arrays = data_module.Arrays([np.zeros((10, 6), "float32")], [np.arange(10)], "some data")
    from_model = data_module.check_fit(arrays, model, ["sparse_categorical_crossentropy"])
    signature = data_module.ModelSignature([("features", (None, 4))], [("head", (None, 3))])
    from_facts = data_module.check_fit(data_module.DataFacts.of(arrays), signature, ["sparse_categorical_crossentropy"])
    assert from_model == from_facts == [
        data_module.Problem("input 'features' expects (None, 4); some data gives (None, 6)"),
        data_module.Problem("output 'head' has 3 classes; some data has class numbers up to 9"),
    ]
    assert data_module.ModelSignature.of_model(model) == signature
    # Shapes the editor does not know (an error upstream) are not held against the data.
    unknown = data_module.ModelSignature([("features", None)], [("head", None)])
    assert data_module.check_fit(arrays, unknown, ["sparse_categorical_crossentropy"]) == []
    assert data_module.facts({"source": "keras", "name": "mnist"}) is None  # Keras reads it: the child checks


# ------------------------------------------------------------------- the warm child
@pytest.mark.training
@pytest.mark.slow
def test_a_warm_child_serves_train_and_a_dead_one_falls_back_to_a_cold_start(qtbot, tmp_path):
    window = iris_window(qtbot, tmp_path)
    window.epochs.setValue(2)
    first = window.warm
    assert first is not None and first.alive  # started when the window opened

    # Handed the job while still importing TensorFlow, then killed: the run starts cold.
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT) as finished:
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.run is not None)  # after the data check
        run = window.run
        assert run.warm_started and run._process.pid == first.process.pid
        assert not first.accepted.is_set()
        os.kill(first.process.pid, signal.SIGKILL)
    assert finished.args[0]["status"] == "completed", window.message.text()
    assert not run.warm_started  # it fell back
    assert window.project.runs[-1]["status"] == "completed"

    # The window has a fresh warm child for the next run, which takes it once it is ready.
    second = window.warm
    assert second is not None and second is not first and second.alive
    qtbot.waitUntil(lambda: second.is_ready, timeout=RUN_TIMEOUT)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT) as finished:
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.run is not None and window.run.status == "running")
        assert window.run.warm_started and window.run._process.pid == second.process.pid
    assert finished.args[0]["status"] == "completed", window.message.text()
    assert [r["status"] for r in window.project.runs] == ["completed", "completed"]

    # A warm child that died before Train: Train starts cold.
    third = window.warm
    os.kill(third.process.pid, signal.SIGKILL)
    third.process.join(10)
    window.epochs.setValue(1)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT) as finished:
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.run is not None and window.run.status == "running")
        assert not window.run.warm_started
    assert finished.args[0]["status"] == "completed", window.message.text()

    fourth = window.warm
    window.close()
    assert window.warm is None and not alive(fourth.process.pid)


@pytest.mark.training
@pytest.mark.slow
def test_a_warm_child_that_prepared_the_run_trains_exactly_as_a_cold_start():
    """The expected run's model is built and its train step traced ahead, then put back as it was."""
    from builder_app.training.events import EventKind
    from builder_app.training.runner import TrainingRun, WarmChild

    project = load_project(EXAMPLES / "digits_cnn.kproj")  # dropout: seed states are put back too
    overrides = Overrides(epochs=1)

    def trained(run):
        run.start()
        kinds = [event["kind"] for event in run.events(timeout=600)]
        assert kinds[-1] == EventKind.FINISHED and run.status == "completed", run.result
        graph = run.trained_weights().graph
        run.close()
        return {name: layer.weights for name, layer in graph.layers.items() if layer.weights}

    warm = WarmChild().start()
    warm.expect(project, overrides)
    assert warm.prepared.wait(600)
    run = TrainingRun(project, Overrides(epochs=1), warm=warm)
    from_warm = trained(run)
    assert run.warm_started
    from_cold = trained(TrainingRun(project, overrides))
    assert from_warm.keys() == from_cold.keys() and from_warm
    for name, weights in from_cold.items():
        assert all(np.array_equal(a, b) for a, b in zip(weights, from_warm[name], strict=True)), name
