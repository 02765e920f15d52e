"""The training window's Backend picker: what it lists, what a run gets, the warm child following it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtCore

from builder_app.core.project import load_project
from builder_app.training import backends

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"
needs_jax = pytest.mark.skipif(not backends.is_installed("jax"), reason="jax is not installed (the dev extra has it)")


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from builder_app.ui.training import window as window_module
    from builder_app.ui.training.window import CloseAnswer, TrainingWindow

    monkeypatch.setattr(window_module, "WARM_CHILD", False)  # a test that wants one says so
    path = tmp_path / "iris.kproj"
    path.write_bytes((EXAMPLES / "iris_mlp.kproj").read_bytes())
    widget = TrainingWindow(load_project(path))
    widget.ask_close_run = lambda: CloseAnswer.DISCARD
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_the_picker_lists_the_installed_backends_and_the_run_gets_the_choice(window):
    listed = [window.backend.itemData(i) for i in range(window.backend.count())]
    assert listed == backends.installed_backends()
    assert window.backend.currentText() == "TensorFlow" and window.overrides().backend == "tensorflow"
    window.set_backend("mxnet")  # not installed, not a backend: nothing changes
    assert window.backend_name() == "tensorflow"
    if "jax" in listed:
        window.set_backend("jax")
        assert window.backend.currentText() == "JAX" and window.overrides().backend == "jax"
        assert window.message.text() == "new runs train on JAX"


@needs_jax
def test_a_setting_the_backend_lacks_is_one_line_before_any_child(window, qtbot, tmp_path):
    import keras  # noqa: F401 - loaded, as in the editor: the window checks the settings too

    window.project.training["callbacks"] = {"tensorboard": {"log_dir": str(tmp_path / "logs"), "profile_batch": 3}}
    window.set_backend("jax")
    qtbot.mouseClick(window.train_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.train_button.isEnabled() and window.message.text() != "reading the data…")
    assert window.run is None
    assert window.message.text().startswith("TensorBoard's profiler (callbacks.tensorboard.profile_batch) runs on")


@needs_jax
def test_the_warm_child_follows_the_backend(window, monkeypatch):
    from builder_app.ui.training import window as window_module

    monkeypatch.setattr(window_module, "WARM_CHILD", True)
    window._start_warm()
    first = window.warm
    try:
        assert first.backend == "tensorflow" and first.alive
        window.set_backend("jax")
        assert not first.alive  # it had TensorFlow's Keras: ended
        assert window.warm is not None and window.warm.backend == "jax" and window.warm.alive
    finally:
        window._end_warm()
        first.close()
