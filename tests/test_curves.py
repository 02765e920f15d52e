"""The dashboard's arithmetic, without Qt: smoothing, the batch log, ticks, time left, event fields."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from builder_app.training import curves
from builder_app.training.curves import (
    BatchLog,
    IncrementalSmoother,
    TimeLeft,
    as_integer,
    as_number,
    best_epoch,
    best_text,
    blend_opaque,
    constant_range,
    count_ticks,
    default_monitor,
    epoch_markers,
    finite_bounds,
    format_duration,
    format_ticks,
    format_value,
    history_best_text,
    is_loss_metric,
    is_validation,
    log_tick_label,
    metric_base_name,
    metric_order,
    metric_title,
    monitor_mode,
    nice_epoch_step,
    shows_log_tick_label,
    tensorboard_smooth,
)


def reference_smooth(values, weight):
    """TensorBoard's smoothing written out: debiased EMA, non-finite values passed through."""
    last, n, out = 0.0, 0, []
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        last = last * weight + (1 - weight) * value
        n += 1
        out.append(last / (1 - weight**n) if weight != 1 else last)
    return np.array(out)


def test_the_module_imports_without_qt():
    code = (
        "import sys, builder_app.training.curves, builder_app.training.events;"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'shiboken6', 'tensorflow', 'keras') if m in sys.modules];"
        "print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.99, 1.0])
def test_tensorboard_smooth_matches_the_reference(weight):
    values = [2.0, 1.5, float("nan"), 1.2, float("inf"), 0.9, 1.1]
    smoothed, _, count = tensorboard_smooth(values, weight)
    np.testing.assert_allclose(smoothed, reference_smooth(values, weight), equal_nan=True)
    assert count == 5
    if weight == 0.0:
        np.testing.assert_array_equal(smoothed, values)  # no smoothing at all
    if weight == 1.0:
        assert smoothed[0] == 0.0  # nothing but the (zero) start, never debiased


def test_the_incremental_smoother_equals_smoothing_all_at_once():
    rng = np.random.default_rng(1)
    values = rng.normal(1.0, 0.3, 10_000)
    values[[5, 500, 7000]] = np.nan
    smoother = IncrementalSmoother(capacity=16)  # grows many times
    for end in (1, 2, 17, 300, 301, 4096, 10_000):
        got = smoother.smooth(values[:end], 0.8)
        assert smoother.done == end and len(got) == end
    np.testing.assert_allclose(got, reference_smooth(values, 0.8), rtol=1e-12, equal_nan=True)


def test_a_new_weight_or_a_restart_smooths_from_the_start():
    values = np.array([4.0, 2.0, 3.0, 1.0])
    smoother = IncrementalSmoother()
    smoother.smooth(values, 0.5)
    np.testing.assert_allclose(smoother.smooth(values, 0.9), reference_smooth(values, 0.9))
    other = np.array([10.0, 20.0])
    smoother.restart()
    assert smoother.done == 0
    np.testing.assert_allclose(smoother.smooth(other, 0.9), reference_smooth(other, 0.9))


def test_the_batch_log_grows_and_keeps_every_column():
    log = BatchLog(capacity=2)
    for g in range(5):
        log.append(g, g // 2, g % 2, 1.0 / (g + 1), 1e-3, 100.0 + g)
    assert log.size == 5 and log.capacity == 8
    np.testing.assert_array_equal(log.column(log.STEP), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(log.column(log.EPOCH), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(log.column(log.STEP_IN_EPOCH), [0, 1, 0, 1, 0])
    np.testing.assert_allclose(log.column(log.LOSS), [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    np.testing.assert_array_equal(log.column(log.SAMPLES_PER_SECOND), [100, 101, 102, 103, 104])
    log.clear()
    assert log.size == 0 and len(log.column(log.LOSS)) == 0 and log.capacity == 8


def test_batches_on_the_epoch_axis():
    log = BatchLog()
    assert len(log.epoch_positions(4)) == 0
    for g in range(6):
        log.append(g, g // 3, g % 3, 0.5, 1e-3, 1.0)
    # Batch k of epoch e ends at e + (k + 1) / steps.
    np.testing.assert_allclose(log.epoch_positions(3), [1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    np.testing.assert_allclose(log.epoch_positions(0), log.epoch_positions(3))  # steps seen
    np.testing.assert_allclose(log.epoch_positions(6), [1 / 6, 2 / 6, 3 / 6, 7 / 6, 8 / 6, 9 / 6])


def test_metric_names():
    assert metric_base_name("val_loss") == "loss" and metric_base_name("accuracy") == "accuracy"
    assert metric_base_name("interval_loss") == "interval_loss"  # only a leading val_
    assert is_validation("val_auc") and not is_validation("auc")
    assert is_loss_metric("loss") and is_loss_metric("mean_absolute_error")
    assert not is_loss_metric("accuracy")
    assert metric_title("auc") == "AUC" and metric_title("top_k_accuracy") == "Top k accuracy"
    assert "lr" in curves.LEARNING_RATE_KEYS and "learning_rate" in curves.LEARNING_RATE_KEYS
    assert 0 < curves.DEFAULT_SMOOTHING < curves.MAX_SMOOTHING < 1


def test_epoch_ticks_are_whole_numbers_from_1():
    levels = [(0.5, [0.0, 0.5, 1.0, 1.5, 2.0]), (0.1, [0.1, 0.2, 1.0000000001])]
    assert count_ticks(levels) == [(1.0, [1.0, 2.0]), (1.0, [1.0000000001])]
    # Epoch 1 spans (0, 1]: no epoch 0, nor a negative one, on any epoch axis.
    assert count_ticks([(5.0, [-5.0, 0.0, 5.0])]) == [(5.0, [5.0])]


@pytest.mark.parametrize(
    ("values", "spacing", "strings"),
    [
        ([0.001, 0.002, 0.003], 0.001, ["0.001", "0.002", "0.003"]),  # not "1 (x0.001)"
        ([0.0005, 0.001, 0.0015], 0.0005, ["0.0005", "0.0010", "0.0015"]),
        ([0.0, 1e-5, 2e-5, 3e-5], 1e-5, ["0", "1e-5", "2e-5", "3e-5"]),
        ([8e-5, 1e-4, 1.2e-4], 2e-5, ["8e-5", "1e-4", "1.2e-4"]),
        ([10_000.0, 20_000.0, 30_000.0], 10_000, ["10,000", "20,000", "30,000"]),
        ([1000.0, 1500.0, 2000.0], 500, ["1000", "1500", "2000"]),
        ([1e6, 1.5e6, 2e6], 5e5, ["1e6", "1.5e6", "2e6"]),
        ([0.1 * 3, 0.1 * 6, 5.551115123125783e-17], 0.3, ["0.3", "0.6", "0.0"]),  # float noise
        ([-0.5, 0.0, 0.5], 0.25, ["-0.50", "0.00", "0.50"]),
        ([0.00100, 0.00105, 0.0011], 0.00005, ["0.00100", "0.00105", "0.00110"]),
    ],
)
def test_tick_labels_are_real_values(values, spacing, strings):
    assert format_ticks(values, spacing) == strings


def test_the_axis_range_picks_the_tick_notation():
    # Minor ticks below 0.001 on an axis that reaches 0.001: plain decimals like the major ones.
    assert format_ticks([1e-4, 3e-4, 9e-4], 1e-4, largest=0.00105) == ["0.0001", "0.0003", "0.0009"]
    assert format_ticks([1e-4, 3e-4, 9e-4], 1e-4) == ["1e-4", "3e-4", "9e-4"]
    assert format_ticks([math.nan], 1.0) == ["nan"]


def test_log_tick_labels_are_real_values():
    labels = [log_tick_label(math.log10(v)) for v in (1e-5, 2e-5, 3e-5, 0.001, 0.5, 1, 20, 3e4, 5e6)]
    assert labels == ["1e-5", "2e-5", "", "0.001", "0.5", "1", "20", "", "5e6"]


def test_format_value_keeps_four_significant_digits():
    assert format_value(0.123) == "0.123"
    assert format_value(0.0012345) == "0.001234"
    assert format_value(1.2345e-5) == "1.234e-5"
    assert format_value(30_000.0) == "30,000"
    assert format_value(2.0) == "2" and format_value(0.0) == "0"
    assert format_value(math.nan) == "nan"


def test_epoch_marker_steps_are_nice_numbers():
    assert nice_epoch_step(1, 5, 12) == 1
    assert nice_epoch_step(1, 13, 12) == 2
    assert nice_epoch_step(1, 60, 12) == 5
    assert nice_epoch_step(1, 200, 12) == 20
    assert nice_epoch_step(1, 1000, 12) == 100
    assert nice_epoch_step(1, 100_000, 12) == 10_000


def test_epoch_markers_stay_readable_at_any_zoom():
    ends = np.arange(1, 501) * 20.0  # 500 epochs of 20 steps
    whole = epoch_markers(ends, 0, 10_000, 12)
    assert len(whole) == 10 and whole[0] == (50, 1000.0) and whole[-1] == (500, 10_000.0)
    zoomed = epoch_markers(ends, 1000, 1400, 12)  # epochs 50 to 70 in view
    assert [e for e, _ in zoomed] == list(range(50, 71, 2))
    assert epoch_markers(ends, 1001, 1019, 12) == []  # inside one epoch
    assert [e for e, _ in epoch_markers(ends[:5], 0, 100, 12)] == [1, 2, 3, 4, 5]
    for most in range(1, 16):
        for low, high in ((0, 10_000), (3000, 3500), (0, 260), (7777, 9999)):
            markers = epoch_markers(ends, low, high, most)
            assert len(markers) <= most
            assert all(low <= x <= high for _, x in markers)


def test_metric_plots_have_a_fixed_order():
    compiled = ["loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"]
    # Keras logs come alphabetically; saved histories in any order: loss first, then as compiled.
    assert metric_order(["accuracy", "auc", "loss"], compiled) == ["loss", "accuracy", "auc"]
    assert metric_order(["auc", "loss", "accuracy"], compiled) == ["loss", "accuracy", "auc"]
    # Unknown names follow: losses first, then by name, whatever order they come in.
    names = ["precision", "out_b_loss", "accuracy", "loss", "out_a_loss", "mae"]
    expected = ["loss", "accuracy", "out_a_loss", "out_b_loss", "mae", "precision"]
    assert metric_order(names, compiled) == expected
    assert metric_order(list(reversed(names)), compiled) == expected
    assert metric_order(["accuracy", "loss"]) == ["loss", "accuracy"]


def test_the_best_epoch_is_named_after_its_metric():
    assert monitor_mode("val_loss") == "min" and monitor_mode("mean_absolute_error") == "min"
    assert monitor_mode("val_accuracy") == "max" and monitor_mode("auc") == "max"
    assert default_monitor(["loss", "val_loss"]) == "val_loss"
    assert default_monitor(["loss", "accuracy"]) == "loss" and default_monitor(["auc"]) is None
    assert best_epoch([0.5, math.nan, 0.2, 0.2, 0.3]) == (3, 0.2)  # from 1; the first of ties
    assert best_epoch([0.5, 0.9, 0.7], "max") == (2, 0.9)
    assert best_epoch([math.nan, None]) is None
    assert best_epoch([0.4, 0.3], epochs=[6.0, 7.0]) == (7, 0.3)
    assert best_text("val_loss", [0.5, 0.3, 0.123, 0.2]) == "best val_loss: 0.123 (epoch 3)"
    assert best_text("val_accuracy", [0.5, 0.91, 0.8]) == "best val_accuracy: 0.91 (epoch 2)"
    assert best_text("loss", []) == ""
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [2.0, 1.5, math.nan]}
    assert history_best_text(history) == "best val_loss: 1.5 (epoch 2)"
    assert history_best_text(history, monitor="loss") == "best loss: 0.4 (epoch 3)"
    assert history_best_text({"accuracy": [0.5]}) == ""
    assert history_best_text({"val_loss": 0.5}) == "" and history_best_text([1.0]) == ""  # damaged records
    assert history_best_text({"val_loss": ["x", 0.3]}) == "best val_loss: 0.3 (epoch 2)"


def test_log_ticks_label_1_2_and_5_of_each_decade():
    shown = [k for k in range(1, 10) if shows_log_tick_label(math.log10(k))]
    assert shown == [1, 2, 5]
    assert shows_log_tick_label(math.log10(0.002)) and not shows_log_tick_label(math.log10(300))
    assert shows_log_tick_label(math.log10(5), scale=10)  # 50
    assert not shows_log_tick_label(math.log10(3), scale=10)  # 30


def test_finite_bounds_on_linear_and_log_axes():
    values = np.array([0.5, np.nan, -2.0, np.inf, 100.0, 0.0])
    assert finite_bounds(values) == (-2.0, 100.0)
    assert finite_bounds(values, log=True) == pytest.approx((math.log10(0.5), 2.0))
    assert finite_bounds(np.array([np.nan, -np.inf])) is None
    assert finite_bounds(np.array([-1.0, 0.0]), log=True) is None  # nothing a log axis shows
    assert finite_bounds(np.array([])) is None


def test_a_constant_series_gets_a_range_around_it():
    assert constant_range(0.001, 0.001) == pytest.approx((0.0005, 0.0015))
    assert constant_range(-4.0, -4.0) == (-6.0, -2.0)
    assert constant_range(0.0, 0.0) == (-1.0, 1.0)
    assert constant_range(0.001, 0.001 * (1 + 1e-12)) is not None  # rounding is no change
    assert constant_range(0.001, 0.002) is None  # a schedule: auto-range
    assert constant_range(1e-4, 1e-3) is None


def test_blend_opaque():
    assert blend_opaque((1.0, 0.0, 0.0), 1.0, (0.0, 0.0, 1.0)) == (1.0, 0.0, 0.0)
    assert blend_opaque((1.0, 0.0, 0.0), 0.0, (0.0, 0.0, 1.0)) == (0.0, 0.0, 1.0)
    assert blend_opaque((1.0, 1.0, 1.0), 0.25, (0.0, 0.2, 1.0)) == pytest.approx((0.25, 0.4, 1.0))


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(75.4) == "1:15"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(-3) == "0:00"


def test_time_left_from_the_runners_throughput():
    left = TimeLeft()
    # 100 steps of 32 samples left at 320 samples/s: 10 s.
    assert left.estimate(900, 1000, seconds=5.0, batch_size=32, samples_per_second=320.0) == 10.0
    assert left.estimate(1000, 1000, seconds=5.0, batch_size=32, samples_per_second=320.0) is None
    assert left.estimate(5, 0, seconds=5.0, batch_size=32, samples_per_second=320.0) is None


def test_time_left_from_the_steps_seen_over_a_window():
    left = TimeLeft()
    nan = math.nan
    # Without samples/s, the first call has no rate yet.
    assert left.estimate(0, 100, seconds=0.0, batch_size=0, samples_per_second=nan) is None
    # 10 steps a second: 80 steps left take 8 s.
    assert left.estimate(
        20, 100, seconds=2.0, batch_size=0, samples_per_second=nan
    ) == pytest.approx(8.0)
    assert left.estimate(20, 100, seconds=nan, batch_size=0, samples_per_second=nan) is None
    # Only the last WINDOW calls count: a slow start is forgotten.
    for i in range(TimeLeft.WINDOW):
        left.estimate(
            20 + 2 * (i + 1), 1000, seconds=2.0 + (i + 1), batch_size=0, samples_per_second=nan
        )
    got = left.estimate(20 + 2 * 41, 1000, seconds=2.0 + 41, batch_size=0, samples_per_second=nan)
    assert got == pytest.approx((1000 - 102) / 2.0)  # 2 steps a second
    left.clear()
    assert left.estimate(500, 1000, seconds=50.0, batch_size=0, samples_per_second=nan) is None


@pytest.mark.parametrize(
    ("value", "number", "integer"),
    [
        (3, 3.0, 3),
        ("2.5", 2.5, 2),
        (None, math.nan, -1),
        ("text", math.nan, -1),
        (float("inf"), math.inf, -1),
    ],
)
def test_event_fields_as_numbers(value, number, integer):
    got = as_number(value)
    assert got == number or (math.isnan(got) and math.isnan(number))
    assert as_integer(value, -1) == integer
