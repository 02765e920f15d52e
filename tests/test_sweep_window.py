"""The Sweep window (pytest-qt): its form, a real sweep watched live, "Apply best" as one undo step;
and the run comparison (the training window's Compare…) with its differences highlighted."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtCore

from builder_app.core.project import load_project
from builder_app.core.runs import record_run

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"


@pytest.fixture
def editing(qtbot, tmp_path):
    """A sweep window over an iris project held by an editor document and its controller."""
    from builder_app.ui.editor.controller import EditorController
    from builder_app.ui.editor.document import Document
    from builder_app.ui.training.sweep_window import SweepWindow

    path = tmp_path / "iris.kproj"
    path.write_bytes((EXAMPLES / "iris_mlp.kproj").read_bytes())
    document = Document(load_project(path))
    controller = EditorController(document)
    window = SweepWindow(document.project, controller=controller)
    qtbot.addWidget(window)
    window.show()
    yield window, document
    window.close()
    window.wait(60)
    document.close()


def test_the_window_opens_ready_for_a_dropout_grid(editing):
    window, _ = editing
    assert [(d.name, d.spec.text) for d in window.dims] == [("dropout.rate", "0.0,0.1,0.2,0.3,0.4,0.5")]
    assert window.sampler_box.currentText() == "grid"
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()
    assert not window.apply_button.isEnabled()  # no trial yet


def test_dimensions_are_picked_checked_and_refused_in_one_line(editing, qtbot):
    window, _ = editing
    window.layer_box.setCurrentText("hidden_1")
    window.param_box.setCurrentText("units")
    assert window.spec_edit.text() == "8,16,32"  # around the current 16
    qtbot.mouseClick(window.add_button, QtCore.Qt.MouseButton.LeftButton)
    window.layer_box.setCurrentText("(training)")
    window.param_box.setCurrentText("learning_rate")
    assert window.spec_edit.text() == "log:1e-4:1e-2"
    qtbot.mouseClick(window.add_button, QtCore.Qt.MouseButton.LeftButton)
    assert [d.name for d in window.dims] == ["dropout.rate", "hidden_1.units", "learning_rate"]
    assert window.dims_table.rowCount() == 3
    problem = window.add_dimension("dropout.rate", "0.5:0.1")
    assert problem is not None and "lo must be below hi" in window.message.text() and "\n" not in problem
    assert len(window.dims) == 3  # nothing changed
    window.dims_table.selectRow(1)
    qtbot.mouseClick(window.remove_button, QtCore.Qt.MouseButton.LeftButton)
    assert [d.name for d in window.dims] == ["dropout.rate", "learning_rate"]


@pytest.mark.slow
@pytest.mark.training
def test_a_sweep_runs_live_and_apply_best_is_one_undo_step(editing, qtbot):
    window, document = editing
    assert window.add_dimension("dropout.rate", "0.0,0.5") is None
    window.epochs_box.setValue(1)
    with qtbot.waitSignal(window.sweep_finished, timeout=400_000):
        qtbot.mouseClick(window.start_button, QtCore.Qt.MouseButton.LeftButton)
        assert window.stop_button.isEnabled() and not window.start_button.isEnabled()
    assert window.results.rowCount() == 2
    states = {window.results.item(r, window.results.columnCount() - 1).text() for r in range(2)}
    assert states == {"complete"}
    values = [float(window.results.item(r, 2).text()) for r in range(2)]
    assert values == sorted(values)  # best first
    best_rate = float(window.results.item(0, 1).text())
    window.show_trial(window.sorted_trials()[-1])
    window.dashboard.flush()
    assert window.dashboard.epoch_count() == 1 and window.dashboard.batch_count() > 0
    assert len(window.coordinates.listDataItems()) == 2
    assert set(window.wait_for_importance()) <= {"dropout.rate"}
    trials = [r for r in document.project.runs if "sweep" in r]
    assert len(trials) == 2
    assert window.apply_button.isEnabled()
    before = document.project.graph.layers["dropout"].config["rate"]
    qtbot.mouseClick(window.apply_button, QtCore.Qt.MouseButton.LeftButton)
    assert document.project.graph.layers["dropout"].config["rate"] == best_rate
    document.undo_stack.undo()
    assert document.project.graph.layers["dropout"].config["rate"] == before


# ------------------------------------------------------------- comparison
def _record(rate: float, lr: float, losses: list[float]) -> dict:
    return {
        "status": "completed",
        "seconds": 1.0,
        "settings": {"epochs": len(losses), "optimizer": {"class_name": "Adam", "config": {"learning_rate": lr}}},
        "history": {"loss": losses, "val_loss": [v + 0.1 for v in losses]},
        "sweep": {"params": {"dropout.rate": rate}},
    }


def test_compare_overlays_curves_and_highlights_differences(qtbot):
    from builder_app.ui.training.run_compare import RunComparison, compare_rows

    records = [_record(0.0, 0.01, [1.0, 0.5]), _record(0.5, 0.01, [1.2, 0.7, 0.6])]
    rows = {name: (texts, differs) for name, texts, differs in compare_rows(records)}
    assert rows["sweep: dropout.rate"] == (["0", "0.5"], True)
    assert rows["optimizer.config.learning_rate"] == (["0.01", "0.01"], False)
    assert rows["final val_loss"] == (["0.6", "0.7"], True)
    widget = RunComparison(records, ["run 1", "run 2"])
    qtbot.addWidget(widget)
    assert widget.metric_box.currentText() == "val_loss"
    assert len(widget.curves()) == 2
    assert "epochs" in widget.differing_rows() and "optimizer.class_name" not in widget.differing_rows()
    row = [widget.table.verticalHeaderItem(r).text() for r in range(widget.table.rowCount())].index("epochs")
    assert widget.table.item(row, 0).font().bold()


def test_the_training_windows_history_compares_selected_runs(qtbot, tmp_path, monkeypatch):
    from builder_app.ui.training import window as window_module
    from builder_app.ui.training.window import TrainingWindow

    monkeypatch.setattr(window_module, "WARM_CHILD", False)
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    for rate in (0.1, 0.3, 0.5):
        record_run(project, _record(rate, 0.01, [1.0, rate]))
    window = TrainingWindow(project)
    qtbot.addWidget(window)
    window.history.item(0).setSelected(True)
    assert not window.compare_button.isEnabled() and window.restore_button.isEnabled() is False  # no weights kept
    assert window.selected_run() is project.runs[0]
    window.history.item(2).setSelected(True)
    assert window.compare_button.isEnabled()
    assert window.selected_run() is None  # restore and delete take one run
    qtbot.mouseClick(window.compare_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.comparison.labels == ["run 1", "run 3"]
    assert len(window.comparison.curves()) == 2
    window.comparison.close()
