"""The live training dashboard, driven by real widgets and synthetic training events."""

from __future__ import annotations

import math
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from builder_app.training import events as ev
from builder_app.training.curves import tensorboard_smooth
from builder_app.ui.training.dashboard import TrainingDashboard

EPOCHS, STEPS, BATCH_SIZE = 3, 50, 32


def test_the_qt_binding_does_not_leak_references_to_none():
    """PySide6 6.12.0 under Python 3.11 drops a reference to None on every void call, and
    the app aborts ("none_dealloc") a few seconds into a live run; pyproject.toml excludes it."""
    timer = QtCore.QTimer()
    before = sys.getrefcount(None)
    for _ in range(1000):
        timer.stop()
    assert sys.getrefcount(None) >= before - 10


def reference_smooth(values, weight):
    """TensorBoard's smoothing, written out independently of the dashboard."""
    last, n, out = 0.0, 0, []
    for value in values:
        last = last * weight + (1 - weight) * value
        n += 1
        debias = 1 - weight**n
        out.append(last / debias)
    return np.array(out)


def batch_loss(global_step):
    return 2.0 * math.exp(-global_step / 40) + 0.2 + 0.05 * math.sin(global_step * 1.7)


def run_events(epochs=EPOCHS, steps=STEPS, status="completed"):
    """A whole run: started, batches, epochs with train and validation logs, finished."""
    yield ev.started(
        device="GPU: Test Device",
        epochs=epochs,
        steps_per_epoch=steps,
        batch_size=BATCH_SIZE,
        samples=steps * BATCH_SIZE,
        validation_samples=100,
        metrics=["loss", "accuracy", "val_loss", "val_accuracy"],
    )
    global_step = 0
    for epoch in range(epochs):
        for step in range(steps):
            yield ev.batch(
                epoch=epoch,
                step=step,
                global_step=global_step,
                loss=batch_loss(global_step),
                running_loss=batch_loss(global_step),
                learning_rate=1e-3 / (1 + global_step / 100),
                samples_per_second=3200.0,
                seconds=global_step * 0.01,
            )
            global_step += 1
        yield ev.epoch(
            epoch=epoch,
            logs={
                "loss": 1.0 / (epoch + 1),
                "accuracy": 0.5 + 0.1 * epoch,
                "val_loss": 1.2 / (epoch + 1),
                "val_accuracy": 0.45 + 0.1 * epoch,
            },
            learning_rate=1e-3 / (1 + epoch),
            seconds=0.5,
            samples_per_second=3200.0,
        )
    yield ev.finished(status=status, history={}, seconds=global_step * 0.01, weights=None)


@pytest.fixture
def dashboard(qtbot):
    widget = TrainingDashboard()
    qtbot.addWidget(widget)
    widget.resize(1200, 850)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def feed(dashboard, events):
    for event in events:
        dashboard.add_event(event)


def wait_for_redraw(qtbot, dashboard):
    """Lets the coalescing timer fire (the dashboard never redraws inside add_event)."""
    before = dashboard.redraw_count()
    qtbot.waitUntil(lambda: dashboard.redraw_count() > before, timeout=2000)


def test_a_whole_run_fills_every_plot(qtbot, dashboard):
    feed(dashboard, run_events())
    wait_for_redraw(qtbot, dashboard)

    n = EPOCHS * STEPS
    assert dashboard.batch_count() == n
    assert dashboard.epoch_count() == EPOCHS
    steps, losses = dashboard.raw_loss_curve.getOriginalDataset()
    np.testing.assert_array_equal(steps, np.arange(n))
    np.testing.assert_allclose(losses, [batch_loss(g) for g in range(n)])
    _, smoothed = dashboard.smoothed_loss_curve.getOriginalDataset()
    np.testing.assert_allclose(smoothed, reference_smooth(losses, 0.6), rtol=1e-12)

    assert dashboard.metric_names() == ["loss", "accuracy"]
    loss_curves = dashboard.metric_curves("loss")
    assert set(loss_curves) == {"loss", "val_loss"}
    x, y = loss_curves["val_loss"].getOriginalDataset()
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_allclose(y, [1.2, 0.6, 0.4])
    _, accuracy = dashboard.metric_curves("accuracy")["accuracy"].getOriginalDataset()
    np.testing.assert_allclose(accuracy, [0.5, 0.6, 0.7])
    assert dashboard.legend_names() == ["train", "validation"]

    # Learning rate: per epoch at x = 1, 2, 3; per batch on the same epoch axis.
    x, lr = dashboard.lr_epoch_curve.getOriginalDataset()
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_allclose(lr, [1e-3, 5e-4, 1e-3 / 3])
    x, _ = dashboard.lr_batch_curve.getOriginalDataset()
    assert x[0] == pytest.approx(1 / STEPS) and x[-1] == pytest.approx(EPOCHS)
    _, sps = dashboard.throughput_curve.getOriginalDataset()
    assert len(sps) == n and np.all(sps == 3200.0)

    assert dashboard.progress_bar.maximum() == n
    assert dashboard.progress_bar.value() == n
    assert dashboard.status() == "finished"
    assert dashboard.status_text() == "Finished"
    assert "Test Device" in dashboard.device_label.text()
    assert "3,200 samples/s" in dashboard.throughput_label.text()


def test_progress_and_time_left_while_running(qtbot, dashboard):
    events = list(run_events())
    feed(dashboard, events[: 1 + STEPS + 1 + 10])  # epoch 1 done, 10 batches into epoch 2
    wait_for_redraw(qtbot, dashboard)

    assert dashboard.status() == "running"
    assert dashboard.progress_bar.value() == STEPS + 10
    assert dashboard.progress_bar.maximum() == EPOCHS * STEPS
    # 90 steps left of 32 samples at 3,200 samples/s: 0.9 s.
    assert "about 0:01 left" in dashboard.progress_bar.text()
    assert dashboard.epoch_label.text() == "Epoch 2 / 3"


def test_redraws_are_coalesced(qtbot, dashboard):
    events = list(run_events())
    before = dashboard.redraw_count()
    feed(dashboard, events[:500])
    assert dashboard.redraw_count() == before  # nothing drawn inside add_event
    wait_for_redraw(qtbot, dashboard)
    qtbot.wait(150)
    assert dashboard.redraw_count() == before + 1  # one redraw for 500 events


def test_smoothing_slider_resmooths_the_whole_curve(qtbot, dashboard):
    feed(dashboard, run_events())
    wait_for_redraw(qtbot, dashboard)
    _, raw = dashboard.raw_loss_curve.getOriginalDataset()

    dashboard.smoothing_slider.setValue(90)
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.smoothing() == pytest.approx(0.9)
    assert dashboard.smoothing_value.text() == "0.90"
    _, smoothed = dashboard.smoothed_loss_curve.getOriginalDataset()
    np.testing.assert_allclose(smoothed, reference_smooth(raw, 0.9), rtol=1e-12)

    dashboard.set_smoothing(0.0)
    wait_for_redraw(qtbot, dashboard)
    _, smoothed = dashboard.smoothed_loss_curve.getOriginalDataset()
    np.testing.assert_allclose(smoothed, raw)


def test_smoothing_continues_across_redraws(qtbot, dashboard):
    events = list(run_events())
    for chunk in (events[:7], events[7:60], events[60:]):
        feed(dashboard, chunk)
        wait_for_redraw(qtbot, dashboard)
    _, raw = dashboard.raw_loss_curve.getOriginalDataset()
    _, smoothed = dashboard.smoothed_loss_curve.getOriginalDataset()
    np.testing.assert_allclose(smoothed, reference_smooth(raw, 0.6), rtol=1e-12)


def test_tensorboard_smooth_skips_non_finite_values():
    values = [1.0, math.nan, 3.0, math.inf, 2.0]
    smoothed, _, count = tensorboard_smooth(values, 0.5)
    expected = reference_smooth([1.0, 3.0, 2.0], 0.5)
    np.testing.assert_allclose(smoothed[[0, 2, 4]], expected)
    assert math.isnan(smoothed[1]) and smoothed[3] == math.inf
    assert count == 3
    head, last, count = tensorboard_smooth(values[:2], 0.5)
    tail, _, _ = tensorboard_smooth(values[2:], 0.5, last, count)
    np.testing.assert_array_equal(np.concatenate([head, tail]), smoothed)


def test_log_scale_toggle_changes_the_loss_axes(qtbot, dashboard):
    feed(dashboard, run_events())
    wait_for_redraw(qtbot, dashboard)
    loss_axis = dashboard.metric_plot("loss").getPlotItem().getAxis("left")
    accuracy_axis = dashboard.metric_plot("accuracy").getPlotItem().getAxis("left")
    batch_axis = dashboard.batch_plot.getPlotItem().getAxis("left")
    assert not batch_axis.logMode and not loss_axis.logMode

    qtbot.mouseClick(dashboard.log_scale_check, QtCore.Qt.MouseButton.LeftButton)
    assert dashboard.log_scale()
    assert batch_axis.logMode and loss_axis.logMode
    assert not accuracy_axis.logMode
    assert dashboard.metric_plot("loss") in dashboard.loss_plots()

    dashboard.set_log_scale(False)
    assert not batch_axis.logMode and not loss_axis.logMode


def test_a_metric_plot_appears_with_its_metric(qtbot, dashboard):
    events = list(run_events())
    feed(dashboard, events[:-2])
    extra = {"kind": ev.EventKind.EPOCH, "epoch": 2, "logs": {"loss": 0.3, "val_loss": 0.4, "auc": 0.8}}
    dashboard.add_event(extra)
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.metric_names() == ["loss", "accuracy", "auc"]
    assert set(dashboard.metric_curves("auc")) == {"auc"}
    assert dashboard.metric_plot("auc").isVisible()


def test_previous_runs_are_overlaid_dashed_with_a_legend(qtbot, dashboard):
    feed(dashboard, run_events())
    runs = [
        {"name": "baseline", "history": {"loss": [1.5, 0.9, 0.7], "val_loss": [1.6, 1.1, 1.0]}},
        {"name": "wider", "history": {"loss": [1.1, 0.6], "precision": [0.4, 0.6]}},
    ]
    dashboard.show_previous_runs(runs)
    wait_for_redraw(qtbot, dashboard)

    previous = dashboard.previous_run_curves("loss")
    assert [c.name() for c in previous] == ["baseline", "baseline (val)", "wider"]
    x, y = previous[0].getOriginalDataset()
    np.testing.assert_array_equal(x, [1, 2, 3])
    np.testing.assert_allclose(y, [1.5, 0.9, 0.7])
    assert previous[0].opts["pen"].style() == QtCore.Qt.PenStyle.DashLine
    assert previous[1].opts["pen"].style() == QtCore.Qt.PenStyle.DotLine
    current = dashboard.metric_curves("loss")["loss"].opts["pen"].color()
    assert previous[0].opts["pen"].color().alpha() < current.alpha()
    assert "precision" in dashboard.metric_names()  # a metric only a previous run has
    assert dashboard.legend_names() == [
        "train",
        "validation",
        "baseline",
        "baseline (val)",
        "wider",
    ]
    assert dashboard.metrics_legend_view.isVisible()

    dashboard.reset()  # a new run: previous runs stay for comparison
    assert dashboard.batch_count() == 0
    assert len(dashboard.previous_run_curves("loss")) == 3
    dashboard.show_previous_runs([])
    assert dashboard.previous_run_curves("loss") == []
    assert "baseline" not in dashboard.legend_names()


def test_failed_event_shows_message_and_hint(qtbot, dashboard):
    events = list(run_events())
    feed(dashboard, events[:20])
    dashboard.add_event(
        ev.failed(message="Out of memory on the GPU", hint="Lower the batch size.")
    )
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.status() == "failed"
    assert dashboard.status_text() == "Failed: Out of memory on the GPU\nLower the batch size."
    assert "Failed" in dashboard.status_label.text()
    assert dashboard.failure_label.isVisible()
    assert "Out of memory on the GPU" in dashboard.failure_label.text()
    assert "Lower the batch size." in dashboard.failure_label.text()


@pytest.mark.parametrize(
    ("status", "state", "text"),
    [
        ("stopped", "stopped", "Stopped"),
        ("early_stopped", "finished", "Finished early"),
        ("nan", "stopped", "NaN"),
    ],
)
def test_finished_statuses(qtbot, dashboard, status, state, text):
    feed(dashboard, run_events(status=status))
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.status() == state
    assert text in dashboard.status_text()
    assert not dashboard.failure_label.isVisible()


def test_pause_and_resume(qtbot, dashboard):
    events = list(run_events())
    feed(dashboard, events[:30])
    dashboard.add_event(ev.paused())
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.status() == "paused"
    assert dashboard.status_text() == "Paused"
    assert "paused" in dashboard.progress_bar.text()
    dashboard.add_event(ev.resumed())
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.status() == "running"


def test_reset_and_a_second_start_clear_the_run(qtbot, dashboard):
    feed(dashboard, run_events())
    wait_for_redraw(qtbot, dashboard)
    dashboard.reset()
    assert dashboard.batch_count() == 0
    assert dashboard.epoch_count() == 0
    assert dashboard.status() == "idle"
    assert dashboard.metric_names() == []
    assert dashboard.raw_loss_curve.getOriginalDataset() == (None, None)

    feed(dashboard, run_events())
    feed(dashboard, list(run_events(epochs=1, steps=10))[:5])  # a new run starts
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.batch_count() == 4
    assert dashboard.status() == "running"
    assert dashboard.progress_bar.maximum() == 10


def test_history_fills_the_epoch_plots_when_epoch_events_are_missing(qtbot, dashboard):
    # Sparse events, as a hand-written or older record gives them.
    dashboard.add_event({"kind": ev.EventKind.STARTED, "device": "CPU", "epochs": 2, "steps_per_epoch": 5})
    history = {"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]}
    dashboard.add_event({"kind": ev.EventKind.FINISHED, "status": ev.FinishStatus.COMPLETED, "history": history})
    wait_for_redraw(qtbot, dashboard)
    _, y = dashboard.metric_curves("loss")["val_loss"].getOriginalDataset()
    np.testing.assert_allclose(y, [1.0, 0.7])


def test_100k_batch_events_are_absorbed_and_rendered(qtbot, dashboard):
    n = 100_000
    dashboard.add_event(
        {"kind": ev.EventKind.STARTED, "device": "CPU", "epochs": 10, "steps_per_epoch": n // 10, "batch_size": 32}
    )
    rng = np.random.default_rng(0)
    losses = (2.0 * np.exp(-np.arange(n) / 20_000) + rng.normal(0, 0.05, n)).tolist()
    for g, loss in enumerate(losses):
        dashboard.add_event(
            {
                "kind": "batch",
                "epoch": g // 10_000,
                "step": g % 10_000,
                "global_step": g,
                "loss": loss,
                "learning_rate": 1e-3,
                "samples_per_second": 5000.0,
                "seconds": g * 0.001,
            }
        )
        if g % 20_000 == 0:
            qtbot.wait(1)  # let the timer interleave, as a live run does
    wait_for_redraw(qtbot, dashboard)
    qtbot.wait(100)

    assert dashboard.batch_count() == n
    x, y = dashboard.raw_loss_curve.getOriginalDataset()
    assert len(x) == len(y) == n
    np.testing.assert_array_equal(y, losses)
    _, smoothed = dashboard.smoothed_loss_curve.getOriginalDataset()
    assert len(smoothed) == n
    np.testing.assert_allclose(smoothed[-100:], reference_smooth(losses, 0.6)[-100:], rtol=1e-9)
    # Drawn downsampled to the plot's pixels, not point by point.
    shown_x, _ = dashboard.raw_loss_curve.getData()
    assert 0 < len(shown_x) < n
    assert dashboard.progress_bar.value() == n
    assert not dashboard.grab().isNull()


def test_grab_works_offscreen(qtbot, dashboard):
    feed(dashboard, run_events())
    dashboard.show_previous_runs([{"name": "earlier", "history": {"loss": [1.3, 0.8, 0.5]}}])
    wait_for_redraw(qtbot, dashboard)
    pixmap = dashboard.grab()
    assert (pixmap.width(), pixmap.height()) == (dashboard.width(), dashboard.height())
    image = pixmap.toImage()
    colours = {
        image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)
    }
    assert len(colours) > 20  # plots, text and curves, not a blank widget


def test_add_event_is_a_slot(qtbot, dashboard):
    class Source(QtCore.QObject):
        sent = QtCore.Signal(dict)

    source = Source()
    source.sent.connect(dashboard.add_event)
    source.sent.emit({"kind": ev.EventKind.STARTED, "device": "CPU", "epochs": 1, "steps_per_epoch": 4})
    source.sent.emit({"kind": ev.EventKind.BATCH, "epoch": 0, "step": 0, "global_step": 0, "loss": 1.0})
    assert dashboard.batch_count() == 1
    assert isinstance(dashboard, QtWidgets.QWidget)


def test_sparse_events_are_taken_as_far_as_they_go(qtbot, dashboard):
    dashboard.add_event({"kind": "started"})
    dashboard.add_event({"kind": "batch", "loss": 0.5, "epoch": None})
    dashboard.add_event({"kind": "batch", "loss": None})
    dashboard.add_event({"kind": "epoch", "epoch": None, "logs": {"loss": 0.4, "note": "text"}})
    dashboard.add_event({"kind": "no such kind"})
    dashboard.add_event({"kind": "failed", "message": "", "hint": None})
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.batch_count() == 2
    x, y = dashboard.raw_loss_curve.getOriginalDataset()
    np.testing.assert_array_equal(x, [0, 1])
    assert y[0] == 0.5 and math.isnan(y[1])
    assert dashboard.metric_names() == ["loss"]  # "note" is no metric
    assert dashboard.status() == "failed"
    assert dashboard.status_text().startswith("Failed: ")
    assert "step 2" in dashboard.progress_bar.text()
