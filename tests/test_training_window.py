"""The training window drives a real run: Train, live dashboard, Stop, weights and history kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from builder_app.core.project import load_project

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"


@pytest.fixture
def window(qtbot, tmp_path):
    from builder_app.ui.training_window import TrainingWindow

    path = tmp_path / "iris.kproj"
    path.write_bytes((EXAMPLES / "iris_mlp.kproj").read_bytes())
    widget = TrainingWindow(load_project(path))
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_train_watch_and_keep_the_weights(window, qtbot, tmp_path):
    assert window.data.currentText() == "iris" and window.epochs.value() == 100
    window.epochs.setValue(5)
    before = np.array(window.project.graph.layers["species"].weights[0]) if window.project.graph.layers["species"].weights else None
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as finished:
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
        assert not window.train_button.isEnabled() and window.stop_button.isEnabled()
    assert finished.args[0]["status"] == "completed"
    window.dashboard.flush()
    assert window.dashboard.epoch_count() == 5 and window.dashboard.batch_count() > 0
    assert window.history.count() == 1 and window.history.item(0).text().startswith("run 1: completed")
    after = window.project.graph.layers["species"].weights[0]
    assert before is None or not np.allclose(before, after)
    assert window.save_button.isEnabled()
    qtbot.mouseClick(window.save_button, QtCore.Qt.MouseButton.LeftButton)
    saved = load_project(window.project.path)
    assert len(saved.runs) == 1 and saved.runs[0]["settings"]["epochs"] == 5
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
    window.data.setCurrentText("digits")
    window.epochs.setValue(1)
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as finished:
        qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    assert finished.args[0]["kind"] == "failed"
    assert window.message.text() == (
        "input 'measurements' expects (None, 4); digits gives (None, 8, 8, 1); "
        "output 'species' has 3 classes; digits has class numbers up to 9"
    )
    window.data.setCurrentText("nothing.bin")
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.message.text().startswith("unknown data 'nothing.bin'")
