"""The live training dashboard, driven by real widgets and synthetic training events."""

from __future__ import annotations

import math
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

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


def started(epochs, steps, device):
    """The run's first event: train and validation loss and accuracy, BATCH_SIZE samples a step."""
    return ev.started(
        device=device,
        epochs=epochs,
        steps_per_epoch=steps,
        batch_size=BATCH_SIZE,
        samples=steps * BATCH_SIZE,
        validation_samples=100,
        metrics=["loss", "accuracy", "val_loss", "val_accuracy"],
    )


def run_events(epochs=EPOCHS, steps=STEPS, status="completed"):
    """A whole run: started, batches, epochs with train and validation logs, finished."""
    yield started(epochs, steps, device="GPU: Test Device")
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
    np.testing.assert_array_equal(steps, np.arange(1, n + 1))  # steps from 1, as Keras counts
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
    np.testing.assert_array_equal(x, [1, 2])
    assert y[0] == 0.5 and math.isnan(y[1])
    assert dashboard.metric_names() == ["loss"]  # "note" is no metric
    assert dashboard.status() == "failed"
    assert dashboard.status_text().startswith("Failed: ")
    assert "step 2" in dashboard.progress_bar.text()


# ------------------------------------------------------------------ issue 14, item 5


def small_run(epochs, steps, scale=1e-3, throughput=3200.0, logs_order=None):
    """A run whose losses are around ``scale``; epoch logs in ``logs_order`` (Keras's is alphabetical)."""
    yield started(epochs, steps, device="CPU")
    g = 0
    for epoch in range(epochs):
        for step in range(steps):
            loss = scale * (1 + 4 * math.exp(-g / (epochs * steps / 4)))
            yield ev.batch(
                epoch=epoch, step=step, global_step=g, loss=loss, running_loss=loss,
                learning_rate=scale / (1 + g / 100), samples_per_second=throughput, seconds=g * 0.01,
            )  # fmt: skip
            g += 1
        logs = {
            "loss": scale * (1 + 4 / (epoch + 1)),
            "accuracy": 1 - 0.5 / (epoch + 1),
            "val_loss": scale * (1.5 + 4 / (epoch + 1)),
            "val_accuracy": 0.95 - 0.5 / (epoch + 1),
        }
        if logs_order:
            logs = {key: logs[key] for key in logs_order}
        yield ev.epoch(epoch=epoch, logs=logs, learning_rate=scale, seconds=0.1, samples_per_second=throughput)
    yield ev.finished(status="completed", history={}, seconds=g * 0.01, weights=None)


def every_plot(dashboard):
    return [dashboard.batch_plot, dashboard.lr_plot, dashboard.throughput_plot] + [
        dashboard.metric_plot(name) for name in dashboard.metric_names()
    ]


def shown_ticks(axis):
    """The axis's ticks as it draws them now: (value, label) of every level."""
    low, high = axis.range
    length = axis.height() if axis.orientation in ("left", "right") else axis.width()
    scale = axis.scale * axis.autoSIPrefixScale
    ticks = []
    for spacing, values in axis.tickValues(low, high, length):
        ticks += zip(values, axis.tickStrings(values, scale, spacing), strict=True)
    return ticks


@pytest.mark.parametrize(("scale", "throughput"), [(1e-3, 3200.0), (1e-5, 3e4), (3e4, 1e-5)])
def test_every_axis_shows_real_values_without_a_prefix_scale(qtbot, dashboard, scale, throughput):
    """The loss axis read "loss (x0.001)" over ticks of 100 to 500."""
    feed(dashboard, small_run(8, 10, scale=scale, throughput=throughput))
    wait_for_redraw(qtbot, dashboard)
    qtbot.wait(50)
    checked = 0
    for widget in every_plot(dashboard):
        for side in ("left", "bottom"):
            axis = widget.getPlotItem().getAxis(side)
            assert "(x" not in axis.labelString(), axis.labelString()
            assert axis.autoSIPrefixScale == 1.0
            ticks = shown_ticks(axis)
            assert ticks, f"no ticks on {side} of {widget.getPlotItem().titleLabel.text}"
            for value, text in ticks:
                if text:  # a real value, to the precision of its spacing
                    assert float(text.replace(",", "")) == pytest.approx(value, rel=1e-6, abs=1e-12)
                    assert len(text) <= 8, text
                    checked += 1
    assert checked > 20
    for widget in every_plot(dashboard):  # painted, not dropped for want of room
        axis = widget.getPlotItem().getAxis("left")
        assert len(drawn_labels(axis)) >= 2, (widget.getPlotItem().titleLabel.text, shown_ticks(axis))
    label = dashboard.batch_plot.getPlotItem().getAxis("left").labelString()
    assert ">loss </span>" in label, label  # the title alone, no "(x0.001)"


def test_tick_strings_of_small_and_large_values(dashboard):
    axis = dashboard.batch_plot.getPlotItem().getAxis("left")
    axis.setRange(0, 3.2e-5)
    assert axis.tickStrings([1e-5, 2e-5, 3e-5], 1.0, 1e-5) == ["1e-5", "2e-5", "3e-5"]
    axis.setRange(0, 32_000)
    assert axis.tickStrings([10_000.0, 20_000.0, 30_000.0], 1.0, 10_000.0) == [
        "10,000",
        "20,000",
        "30,000",
    ]
    axis.setRange(0, 0.0021)
    assert axis.tickStrings([0.001, 0.002], 1.0, 0.001) == ["0.001", "0.002"]
    dashboard.set_log_scale(True)
    assert axis.tickStrings([-5.0, math.log10(2e-5), math.log10(3e-5)], 1.0, 1.0) == ["1e-5", "2e-5", ""]


def drawn_labels(axis):
    """The tick labels the axis paints now, left to right."""
    image = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [text for rect, _, text in sorted(texts, key=lambda spec: spec[0].x())]


def visible_epoch_lines(dashboard):
    return [
        item
        for item in dashboard.batch_plot.getPlotItem().items
        if isinstance(item, pg.InfiniteLine) and item.isVisible()
    ]


def test_epoch_markers_stay_a_readable_few_on_a_long_run(qtbot, dashboard):
    """A marker for each of 200 epochs was a curtain over the batch loss."""
    feed(dashboard, small_run(200, 5))
    wait_for_redraw(qtbot, dashboard)
    qtbot.wait(50)
    markers = dashboard.epoch_markers()
    assert [epoch for epoch, _ in markers] == list(range(20, 201, 20))
    assert [x for _, x in markers] == [5.0 * epoch for epoch in range(20, 201, 20)]
    lines = visible_epoch_lines(dashboard)
    assert sorted(line.value() for line in lines) == [x for _, x in markers]
    top = dashboard.batch_plot.getPlotItem().getAxis("top")
    assert drawn_labels(top) == [str(e) for e in range(20, 201, 20)]
    assert ">epoch </span>" in top.labelString()

    # Zoomed to epochs 20 to 40: every other epoch, still a dozen at most.
    view = dashboard.batch_plot.getPlotItem().getViewBox()
    view.setXRange(100, 200, padding=0)
    qtbot.wait(20)
    assert [epoch for epoch, _ in dashboard.epoch_markers()] == list(range(20, 41, 2))
    assert len(visible_epoch_lines(dashboard)) == 11

    # A narrow plot has room for fewer.
    view.enableAutoRange()
    dashboard.resize(700, 850)
    qtbot.waitUntil(lambda: dashboard.batch_plot.width() < 500, timeout=2000)
    qtbot.wait(50)
    count = len(dashboard.epoch_markers())
    assert 1 <= count < 10 and count <= view.width() // 40  # labels of 3 digits and a gap
    assert len(visible_epoch_lines(dashboard)) == count


def test_a_short_run_marks_every_epoch(qtbot, dashboard):
    feed(dashboard, small_run(5, 20))
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.epoch_markers() == [(e, 20.0 * e) for e in range(1, 6)]
    top = dashboard.batch_plot.getPlotItem().getAxis("top")
    assert drawn_labels(top) == ["1", "2", "3", "4", "5"]
    dashboard.reset()  # a new run: no markers, no numbers of the old run's epochs
    assert dashboard.epoch_markers() == [] and visible_epoch_lines(dashboard) == []
    assert drawn_labels(top) == []
    feed(dashboard, small_run(2, 20))
    wait_for_redraw(qtbot, dashboard)
    assert drawn_labels(top) == ["1", "2"]


def test_the_panels_keep_their_order_from_run_to_run(qtbot, dashboard):
    """Loss and Accuracy swapped places when the previous runs came before the new run's start."""
    alphabetical = ["accuracy", "loss", "val_accuracy", "val_loss"]  # Keras's order of logs
    feed(dashboard, small_run(3, 4, logs_order=alphabetical))
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.metric_names() == ["loss", "accuracy"]

    # What the training window does for a second run: previous runs, reset, the new run.
    history = {"accuracy": [0.5, 0.7], "loss": [0.9, 0.4], "val_accuracy": [0.4, 0.6], "val_loss": [1.0, 0.5]}
    for _ in range(2):
        dashboard.show_previous_runs([{"name": "run 1", "history": history}])
        dashboard.reset()
        assert dashboard.metric_names() == ["loss", "accuracy"]
        feed(dashboard, small_run(2, 4, logs_order=alphabetical))
        wait_for_redraw(qtbot, dashboard)
        assert dashboard.metric_names() == ["loss", "accuracy"]
        qtbot.wait(20)
        loss, accuracy = dashboard.metric_plot("loss"), dashboard.metric_plot("accuracy")
        assert (loss.y(), loss.x()) < (accuracy.y(), accuracy.x())  # on screen too

    # A metric only a previous run has, and a started event without metrics, keep the order.
    dashboard.show_previous_runs([{"name": "old", "history": {"precision": [0.3], "accuracy": [0.5], "loss": [1.0]}}])
    dashboard.add_event({"kind": "started", "epochs": 1})
    dashboard.add_event({"kind": "epoch", "epoch": 0, "logs": {"auc": 0.7, "accuracy": 0.6, "loss": 0.5}})
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.metric_names() == ["loss", "accuracy", "auc", "precision"]


def test_epochs_count_from_1_in_every_plot(qtbot, dashboard):
    """Epochs counted from 0 in one plot and from 1 in the others."""
    events = list(run_events())
    feed(dashboard, events[:2])  # started, the first batch
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.epoch_label.text() == "Epoch 1 / 3"
    feed(dashboard, events[2:])
    dashboard.show_previous_runs([{"name": "earlier", "history": {"loss": [1.3, 0.8, 0.5]}}])
    wait_for_redraw(qtbot, dashboard)
    qtbot.wait(50)

    n = EPOCHS * STEPS
    x, _ = dashboard.raw_loss_curve.getOriginalDataset()
    assert (x[0], x[-1]) == (1, n)  # step 1 to n, as Keras prints "1/50"
    x, _ = dashboard.throughput_curve.getOriginalDataset()
    assert (x[0], x[-1]) == (1, n)
    # Epoch n ends at step n * steps on the batch plot, and at x = n on every epoch axis.
    assert dashboard.epoch_markers() == [(e, float(e * STEPS)) for e in (1, 2, 3)]
    x, _ = dashboard.lr_batch_curve.getOriginalDataset()
    assert x[0] == pytest.approx(1 / STEPS) and x[STEPS - 1] == pytest.approx(1) and x[-1] == pytest.approx(3)
    x, _ = dashboard.lr_epoch_curve.getOriginalDataset()
    np.testing.assert_array_equal(x, [1, 2, 3])
    for name in dashboard.metric_names():
        for curve in [*dashboard.metric_curves(name).values(), *dashboard.previous_run_curves(name)]:
            x, _ = curve.getOriginalDataset()
            np.testing.assert_array_equal(x, [1, 2, 3])
    # No axis of epochs or steps names an epoch 0.
    for widget in every_plot(dashboard):
        ticks = shown_ticks(widget.getPlotItem().getAxis("bottom"))
        assert ticks and all(value >= 1 for value, _ in ticks), ticks
    assert dashboard.best_summary().endswith("(epoch 3)")


def test_the_best_epoch_is_labelled_with_its_metric(qtbot, dashboard):
    """The best value showed as "best loss" whichever metric it was."""
    assert dashboard.best_summary() == ""
    feed(dashboard, list(run_events())[: 1 + STEPS + 1])  # the first epoch
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.best_summary() == "best val_loss: 1.2 (epoch 1)"
    assert dashboard.best_label.isVisible()
    feed(dashboard, list(run_events())[1 + STEPS + 1 :])
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.monitor() == "val_loss"
    assert dashboard.best_summary() == "best val_loss: 0.4 (epoch 3)"
    ring = dashboard.best_marker("loss")
    assert ring is not None and ring.toolTip() == "best val_loss: 0.4 (epoch 3)"
    np.testing.assert_allclose(np.column_stack(ring.getData()), [[3, 0.4]])
    dashboard.set_monitor("val_accuracy")  # an early-stopping monitor: higher is better
    assert dashboard.best_summary() == "best val_accuracy: 0.65 (epoch 3)"
    np.testing.assert_allclose(np.column_stack(dashboard.best_marker("accuracy").getData()), [[3, 0.65]])
    x, _ = dashboard.best_marker("loss").getData()
    assert x is None or len(x) == 0  # one ring, on the monitored plot only
    dashboard.set_monitor(None)

    # Without validation the run is judged by its loss; a new run starts blank.
    dashboard.add_event({"kind": "started", "epochs": 2, "metrics": ["loss"]})
    assert dashboard.best_summary() == ""
    for epoch, loss in enumerate([0.02, 0.0125]):
        dashboard.add_event({"kind": "epoch", "epoch": epoch, "logs": {"loss": loss}})
    wait_for_redraw(qtbot, dashboard)
    assert dashboard.best_summary() == "best loss: 0.0125 (epoch 2)"


def test_the_run_list_names_the_metric_of_each_runs_best_epoch(qtbot, tmp_path, monkeypatch):
    """The training window's list of runs (the runs compared on the dashboard) said "best loss"
    for the best val_loss, without its epoch."""
    from pathlib import Path

    from builder_app.core.project import load_project
    from builder_app.ui.training import window as window_module

    monkeypatch.setattr(window_module, "WARM_CHILD", False, raising=False)  # no TensorFlow child
    path = tmp_path / "iris.kproj"
    path.write_bytes((Path(__file__).parents[1] / "resources/examples/iris_mlp.kproj").read_bytes())
    project = load_project(path)
    project.runs = [
        {"id": "run-1", "status": "completed", "history": {"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.6, 0.7]}},
        {"id": "run-2", "status": "stopped", "history": {"loss": [0.8, 0.3]}},
        {"id": "run-3", "status": "failed", "history": {}},
    ]
    window = window_module.TrainingWindow(project)
    qtbot.addWidget(window)
    texts = [window.history.item(i).text() for i in range(window.history.count())]
    assert texts[0].startswith("run 1: completed, best val_loss: 0.6 (epoch 2)"), texts
    assert texts[1].startswith("run 2: stopped, best loss: 0.3 (epoch 2)"), texts
    assert "best" not in texts[2]


def test_a_metric_plot_of_one_epoch_gets_an_axis_around_its_value(qtbot, dashboard):
    """Auto-range put a single 9000 between 8999.5 and 9000.5: labels "8999.6" to "9000.4"."""
    dashboard.add_event({"kind": "started", "epochs": 3, "metrics": ["loss", "mae"]})
    dashboard.add_event({"kind": "epoch", "epoch": 0, "logs": {"loss": 9000.0, "mae": 90.0}})
    wait_for_redraw(qtbot, dashboard)
    view = dashboard.metric_plot("loss").getPlotItem().getViewBox()
    assert view.viewRange()[1] == pytest.approx([4500, 13_500])
    labels = [text for _, text in shown_ticks(dashboard.metric_plot("loss").getPlotItem().getAxis("left"))]
    assert "9,000" in labels or "10,000" in labels
    assert not any("." in text for text in labels), labels
    dashboard.set_log_scale(True)  # a linear range means nothing on a log axis
    assert view.autoRangeEnabled()[1]
    dashboard.set_log_scale(False)
    assert view.viewRange()[1] == pytest.approx([4500, 13_500])
    dashboard.add_event({"kind": "epoch", "epoch": 1, "logs": {"loss": 7000.0, "mae": 80.0}})
    wait_for_redraw(qtbot, dashboard)
    assert view.autoRangeEnabled()[1]  # values that vary: auto-range again
