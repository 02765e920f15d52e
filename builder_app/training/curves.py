"""The arithmetic behind the training dashboard's curves, without Qt.

Smoothing as TensorBoard does it (:func:`tensorboard_smooth`, and
:class:`IncrementalSmoother` for a series that only grows), the per-batch columns
(:class:`BatchLog`), which plot a Keras log key belongs on, the epoch axis's
ticks, the time left in a run, and how event fields become numbers. The widgets
in :mod:`builder_app.ui.training.dashboard` draw what these compute; everything
here is plain Python and numpy, tested without a window, and must never import
Qt or pyqtgraph (the import-linter contract on ``builder_app.training`` holds it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: The batch-loss smoothing weight a dashboard starts with, and the largest it offers.
DEFAULT_SMOOTHING = 0.6
MAX_SMOOTHING = 0.99

#: Keys of the epoch logs that have their own plot rather than a metric plot.
LEARNING_RATE_KEYS = ("learning_rate", "lr")
#: Keras's prefix of a validation metric's log key.
VAL_PREFIX = "val_"


# ------------------------------------------------------------------ smoothing
def tensorboard_smooth(
    values: Iterable[float], weight: float, last: float = 0.0, count: int = 0
) -> tuple[np.ndarray, float, int]:
    """Smooths a scalar series exactly as TensorBoard's scalar dashboard does.

    An exponential moving average with debiasing: for each finite value,
    ``last = last * weight + (1 - weight) * value``, ``count += 1`` and the
    smoothed value is ``last / (1 - weight ** count)`` (``last`` itself when
    ``weight == 1``). Non-finite values pass through and do not count. Pass the
    returned ``last`` and ``count`` back to smooth a continuation of the series.

    Args:
        values: The raw values, in step order.
        weight: The smoothing weight, 0 (none) to 1.
        last: The running average so far (0 for a new series).
        count: How many finite values the running average has seen so far.

    Returns:
        The smoothed values, and the ``last`` and ``count`` to continue with.
    """
    out = []
    append = out.append
    isfinite = math.isfinite
    keep = 1.0 - weight
    for value in np.asarray(values, dtype=np.float64).tolist():
        if not isfinite(value):
            append(value)
            continue
        last = last * weight + keep * value
        count += 1
        append(last / (1.0 - weight**count) if weight != 1.0 else last)
    return np.asarray(out, dtype=np.float64), last, count


class IncrementalSmoother:
    """The TensorBoard smoothing of a series that only grows, computed once a value.

    Each :meth:`smooth` smooths only the values added since the last call and
    keeps the result in an array that doubles when full. A new weight smooths
    the whole series again; :meth:`restart` does so for a new series.

    Args:
        capacity: How many smoothed values fit before the array first grows.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._smoothed = np.empty(capacity, dtype=np.float64)
        self._weight: float | None = None
        self.restart()

    @property
    def done(self) -> int:
        """How many values of the series are smoothed."""
        return self._done

    def restart(self) -> None:
        """Forgets the series: the next :meth:`smooth` starts from its first value."""
        self._done = 0
        self._last, self._count = 0.0, 0

    def smooth(self, values: np.ndarray, weight: float) -> np.ndarray:
        """The smoothed series (a view, valid until the next call).

        Args:
            values: The whole raw series so far: the values smoothed before,
                unchanged, then the new ones.
            weight: The smoothing weight, 0 (none) to 1.
        """
        if weight != self._weight:
            self._weight = weight
            self.restart()
        n = len(values)
        if self._smoothed.shape[0] < n:
            grown = np.empty(max(n, 2 * self._smoothed.shape[0]), dtype=np.float64)
            grown[: self._done] = self._smoothed[: self._done]
            self._smoothed = grown
        start = self._done
        if start < n:
            smoothed, self._last, self._count = tensorboard_smooth(
                values[start:], weight, self._last, self._count
            )
            self._smoothed[start:n] = smoothed
            self._done = n
        return self._smoothed[:n]


# ------------------------------------------------------------------ batch log
class BatchLog:
    """Per-batch columns in numpy arrays that double when full (amortised O(1) appends).

    Each column is one contiguous row of a 2-D array, so ``column(i)`` is a view that
    a plotting library takes without copying.
    """

    STEP, EPOCH, STEP_IN_EPOCH, LOSS, LEARNING_RATE, SAMPLES_PER_SECOND = range(6)

    def __init__(self, capacity: int = 4096) -> None:
        self._data = np.empty((6, capacity), dtype=np.float64)
        self.size = 0

    @property
    def capacity(self) -> int:
        return self._data.shape[1]

    def append(
        self, step: float, epoch: float, step_in_epoch: float, loss: float, lr: float, sps: float
    ) -> None:
        n = self.size
        data = self._data
        if n == data.shape[1]:
            data = np.empty((6, 2 * n), dtype=np.float64)
            data[:, :n] = self._data
            self._data = data
        data[0, n] = step
        data[1, n] = epoch
        data[2, n] = step_in_epoch
        data[3, n] = loss
        data[4, n] = lr
        data[5, n] = sps
        self.size = n + 1

    def column(self, index: int) -> np.ndarray:
        return self._data[index, : self.size]

    def epoch_positions(self, steps_per_epoch: int) -> np.ndarray:
        """Each batch on the epoch axis: batch ``k`` of epoch ``e`` ends at ``e + (k + 1) / steps``.

        Args:
            steps_per_epoch: The batches an epoch has; 0 when unknown, and then the
                most batches seen in an epoch.
        """
        if not self.size:
            return np.empty(0, dtype=np.float64)
        in_epoch = self.column(self.STEP_IN_EPOCH)
        per_epoch = steps_per_epoch or float(np.max(in_epoch)) + 1
        return self.column(self.EPOCH) + (in_epoch + 1) / per_epoch

    def clear(self) -> None:
        self.size = 0


# ------------------------------------------------------------------ metrics
def metric_base_name(key: str) -> str:
    """The plot a Keras log key belongs on: ``"val_loss"`` -> ``"loss"``."""
    return key[len(VAL_PREFIX) :] if key.startswith(VAL_PREFIX) else key


def is_validation(key: str) -> bool:
    """Whether a Keras log key is a validation metric's (``"val_loss"``)."""
    return key.startswith(VAL_PREFIX)


def is_loss_metric(name: str) -> bool:
    """Whether the log-scale toggle applies to a metric's plot (losses and errors)."""
    return "loss" in name or "error" in name


def metric_title(name: str) -> str:
    """A metric plot's title: ``"auc"`` -> ``"AUC"``, ``"top_k"`` -> ``"Top k"`` (short names are acronyms)."""
    return name.upper() if len(name) <= 3 else name.replace("_", " ").capitalize()


# ------------------------------------------------------------------ axes
Ticks = Sequence[tuple[float, Sequence[float]]]


def whole_number_ticks(levels: Ticks) -> list[tuple[float, list[float]]]:
    """An axis's tick levels, ``(spacing, values)``, kept to whole numbers (epochs)."""
    return [
        (max(spacing, 1.0), [v for v in values if abs(v - round(v)) < 1e-6])
        for spacing, values in levels
    ]


def shows_log_tick_label(value: float, scale: float = 1.0) -> bool:
    """Whether a log axis labels the tick at ``10 ** value``: 1, 2 and 5 of each decade only.

    All nine labels of a decade overlap on a small plot.
    """
    return f"{10.0**value * scale:.0e}"[0] in "125"


def finite_bounds(values: np.ndarray, log: bool = False) -> tuple[float, float] | None:
    """The least and greatest finite value, or None when there is none.

    Args:
        values: The data along one axis.
        log: Whether the axis is logarithmic: the bounds are then of ``log10`` of
            the positive values, as a log axis places them.
    """
    values = np.asarray(values, dtype=np.float64)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.log10(values[values > 0])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if len(values) else None


def constant_range(low: float, high: float) -> tuple[float, float] | None:
    """An axis range around a series that does not vary (bounds ``low``, ``high``); None when it varies.

    Auto-range would put a constant 0.001 in the middle of -0.5 to 0.5; this gives
    0.0005 to 0.0015 (half the value either side; 1 either side of 0).
    """
    if high - low > 1e-9 * max(abs(high), 1e-30):
        return None
    span = abs(high) * 0.5 or 1.0
    return high - span, high + span


def blend_opaque(
    color: tuple[float, float, float], alpha: float, background: tuple[float, float, float]
) -> tuple[float, float, float]:
    """The opaque colour that ``color`` at ``alpha`` shows over ``background`` (RGB, 0 to 1)."""
    return tuple(c * alpha + b * (1 - alpha) for c, b in zip(color, background, strict=True))


# ------------------------------------------------------------------ progress
def format_duration(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"`` (whole seconds, never negative)."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TimeLeft:
    """The time left in a run, from its recent throughput.

    The runner's samples/s when the batch size is known, else the steps/s seen
    over the last :attr:`WINDOW` calls of :meth:`estimate` (each records its
    ``(seconds, done)``; a dashboard calls it once a redraw).
    """

    WINDOW = 40

    def __init__(self) -> None:
        self._recent: list[tuple[float, float]] = []

    def clear(self) -> None:
        self._recent = []

    def estimate(
        self, done: int, total: int, *, seconds: float, batch_size: int, samples_per_second: float
    ) -> float | None:
        """Seconds left, or None when unknown (no total, done, or no rate yet).

        Args:
            done: Steps done.
            total: Steps the run has in all (0 when unknown).
            seconds: Seconds since the run started (NaN when unknown).
            batch_size: Samples a step (0 when unknown).
            samples_per_second: The runner's recent throughput (NaN when unknown).
        """
        if not total or done >= total:
            return None
        sps = samples_per_second
        if batch_size and math.isfinite(sps) and sps > 0:
            return (total - done) * batch_size / sps
        if math.isfinite(seconds):
            self._recent.append((seconds, float(done)))
            del self._recent[: -self.WINDOW]
            (t0, d0), (t1, d1) = self._recent[0], self._recent[-1]
            if t1 > t0 and d1 > d0:
                return (total - done) * (t1 - t0) / (d1 - d0)
        return None


# ------------------------------------------------------------------ event fields
def as_number(value: Any) -> float:
    """A log value as a float; NaN for None or anything not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def as_integer(value: Any, default: int) -> int:
    """A count or index from an event; the default for None or anything not a number."""
    number = as_number(value)
    return int(number) if math.isfinite(number) else default
