"""The arithmetic behind the training dashboard's curves, without Qt.

Smoothing as TensorBoard does it (:func:`tensorboard_smooth`, and
:class:`IncrementalSmoother` for a series that only grows), the per-batch columns
(:class:`BatchLog`), which plot a Keras log key belongs on and in what order,
the axes' ticks and their labels (real values, never a prefix scale), the epoch
markers worth drawing, the best epoch of a monitored metric, the time left in a
run, and how event fields become numbers. Epochs and steps count from 1, as
Keras prints them: epoch 1 spans (0, 1] and its values sit at x = 1. The widgets
in :mod:`builder_app.ui.training.dashboard` draw what these compute; everything
here is plain Python and numpy, tested without a window, and must never import
Qt or pyqtgraph (the import-linter contract on ``builder_app.training`` holds it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
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


def count_ticks(levels: Ticks) -> list[tuple[float, list[float]]]:
    """An axis's tick levels, ``(spacing, values)``, kept to whole counts from 1.

    Epochs and steps are counted from 1, as Keras prints them ("Epoch 1/10",
    "1/50"): epoch 1 spans (0, 1] and ends at 1, so a tick at 0 or below would name
    an epoch that never was.
    """
    return [
        (max(spacing, 1.0), [v for v in values if abs(v - round(v)) < 1e-6 and v > 0.5])
        for spacing, values in levels
    ]


def shows_log_tick_label(value: float, scale: float = 1.0) -> bool:
    """Whether a log axis labels the tick at ``10 ** value``: 1, 2 and 5 of each decade only.

    All nine labels of a decade overlap on a small plot.
    """
    return f"{10.0**value * scale:.0e}"[0] in "125"


def _decimals(spacing: float) -> int:
    """The fewest decimal places that write multiples of ``spacing`` exactly (0.25 -> 2)."""
    for places in range(16):
        scaled = spacing * 10.0**places
        if round(scaled) >= 1 and abs(scaled - round(scaled)) <= 1e-6 * scaled:
            return places
    return 16


def _short_exponent(text: str) -> str:
    """``"1.50e-05"`` -> ``"1.5e-5"``, ``"3e+04"`` -> ``"3e4"``."""
    mantissa, _, exponent = text.partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _exponent(value: float) -> int:
    """The power of ten of a positive value's leading digit (tolerant of float noise)."""
    return math.floor(math.log10(value) + 1e-9)


def format_ticks(
    values: Sequence[float], spacing: float, largest: float | None = None
) -> list[str]:
    """An axis's tick labels: the real values, as precise as the ticks' spacing needs.

    No scaling by a prefix or a factor in the axis's title. Plain decimals when
    the axis reaches from 0.001 to a million ("0.0015", "250", "30,000"; thousands
    grouped from 10,000), short scientific notation outside that ("1e-5",
    "2.5e-4", "1.5e6").

    Args:
        values: The ticks' values.
        spacing: The distance between neighbouring ticks (sets the precision).
        largest: The greatest magnitude on the axis (picks the notation); by
            default the ticks' own.
    """
    values = [float(v) for v in values]
    finite = [abs(v) for v in values if math.isfinite(v)]
    if not finite:
        return [str(v) for v in values]
    if largest is None or not math.isfinite(largest) or largest <= 0:
        largest = max(finite)
    spacing = abs(float(spacing))
    if not (math.isfinite(spacing) and spacing > 0):
        spacing = 10.0 ** _exponent(largest) if largest else 1.0
    zero = spacing * 1e-6  # a tick at 0 computed as 1e-17
    places = _decimals(spacing)
    strings = []
    if largest >= 1e6 or largest < 1e-3 or places > 6:
        step_exponent = _exponent(spacing)
        for v in values:
            if not math.isfinite(v):
                strings.append(str(v))
            elif abs(v) < zero:
                strings.append("0")
            else:
                digits = min(15, max(0, _exponent(abs(v)) - step_exponent))
                strings.append(_short_exponent(f"{v:.{digits}e}"))
        return strings
    grouping = "," if largest >= 1e4 else ""
    for v in values:
        if not math.isfinite(v):
            strings.append(str(v))
        else:
            strings.append(f"{0.0 if abs(v) < zero else v:{grouping}.{places}f}")
    return strings


def log_tick_label(value: float, scale: float = 1.0) -> str:
    """A log axis's label of the tick at ``10 ** value``: the real value, or "" between 1, 2 and 5.

    ``log10(0.002)`` -> ``"0.002"``, ``log10(2e-5)`` -> ``"2e-5"``, ``log10(3)`` -> ``""``.
    """
    if not shows_log_tick_label(value, scale):
        return ""
    real = 10.0**value * scale
    # A tick of a log axis is 1, 2 or 5 times a power of ten: one significant digit.
    rounded = float(f"{real:.0e}")
    return format_ticks([rounded], 10.0 ** _exponent(rounded))[0]


def format_value(value: float) -> str:
    """A metric's value to four significant digits: ``0.1234``, ``12,346``, ``1.234e-5``."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if 1e-4 <= magnitude < 1e6:
        places = max(0, 3 - _exponent(magnitude))
        text = f"{value:,.{places}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return _short_exponent(f"{value:.3e}")


# ------------------------------------------------------------------ epoch markers
def nice_epoch_step(first: int, last: int, most: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... whose multiples in ``first..last`` number at most ``most``.

    Args:
        first: The first epoch in view (from 1).
        last: The last epoch in view.
        most: The most markers that stay readable.
    """
    most = max(1, most)
    magnitude = 1
    while True:
        for mantissa in (1, 2, 5):
            step = mantissa * magnitude
            if last // step - (first - 1) // step <= most:
                return step
        magnitude *= 10


def epoch_markers(ends: np.ndarray, low: float, high: float, most: int) -> list[tuple[int, float]]:
    """The epoch ends worth marking in a view: ``(epoch from 1, x)`` at a nice epoch step.

    A marker for every epoch of a long run is a curtain; this keeps at most
    ``most`` in view, at multiples of 1, 2, 5, 10, 20... epochs, so they stay put
    as the view scrolls and thin out as it zooms out.

    Args:
        ends: Where each epoch ends on the x axis, in order (index 0 is epoch 1).
        low: The view's least x.
        high: The view's greatest x.
        most: The most markers that stay readable.
    """
    ends = np.asarray(ends, dtype=np.float64)
    first = int(np.searchsorted(ends, low, side="left")) + 1
    last = int(np.searchsorted(ends, high, side="right"))
    if last < first:
        return []
    step = nice_epoch_step(first, last, most)
    start = -(-first // step) * step
    return [(epoch, float(ends[epoch - 1])) for epoch in range(start, last + 1, step)]


# ------------------------------------------------------------------ order and best
def metric_order(names: Iterable[str], compiled: Sequence[str] = ()) -> list[str]:
    """The per-epoch plots' order, the same in every run: loss, then the metrics as compiled.

    Args:
        names: The plots' metric base names.
        compiled: The run's log keys as the model was compiled (a ``started``
            event's ``metrics``); the other names follow, losses first, then by name.
    """
    rank: dict[str, int] = {}
    for key in compiled:
        rank.setdefault(metric_base_name(str(key)), len(rank))

    def order(name: str) -> tuple[int, int, str]:
        if name == "loss":
            return (0, 0, "")
        if name in rank:
            return (1, rank[name], "")
        return (2, 0 if is_loss_metric(name) else 1, name)

    return sorted(dict.fromkeys(names), key=order)


#: Words of a metric's name that say lower is better (the rest: higher is better).
_LOWER_IS_BETTER = (
    "loss", "error", "crossentropy", "hinge", "divergence", "poisson", "logcosh",
    "mse", "mae", "mape", "msle",
)  # fmt: skip


def monitor_mode(key: str) -> str:
    """``"min"`` when lower values of a metric are better (losses, errors), else ``"max"``."""
    name = metric_base_name(key).lower()
    return "min" if any(word in name for word in _LOWER_IS_BETTER) else "max"


def default_monitor(keys: Iterable[str]) -> str | None:
    """The metric a run is judged by when none is named: ``val_loss``, else ``loss``."""
    keys = set(keys)
    return next((key for key in ("val_loss", "loss") if key in keys), None)


def best_epoch(
    values: Sequence[float], mode: str = "min", epochs: Sequence[float] | None = None
) -> tuple[int, float] | None:
    """The epoch (from 1) with the best finite value, and the value; the first of ties.

    Args:
        values: One value an epoch.
        mode: ``"min"`` or ``"max"``.
        epochs: Each value's epoch, from 1; by default 1, 2, 3...
    """
    best: tuple[int, float] | None = None
    for i, value in enumerate(values):
        number = as_number(value)
        if not math.isfinite(number):
            continue
        if best is None or (number < best[1] if mode == "min" else number > best[1]):
            best = (round(epochs[i]) if epochs is not None else i + 1, number)
    return best


def best_text(
    key: str,
    values: Sequence[float],
    mode: str | None = None,
    epochs: Sequence[float] | None = None,
) -> str:
    """``"best val_loss: 0.123 (epoch 7)"``, named after the metric; "" with no finite value.

    Args:
        key: The monitored metric's log key.
        values: Its value at each epoch.
        mode: ``"min"`` or ``"max"``; by default :func:`monitor_mode`.
        epochs: Each value's epoch, from 1; by default 1, 2, 3...
    """
    found = best_epoch(values, mode or monitor_mode(key), epochs)
    if found is None:
        return ""
    epoch, value = found
    return f"best {key}: {format_value(value)} (epoch {epoch})"


def history_best_text(history: Mapping[str, Sequence[float]], monitor: str | None = None) -> str:
    """A saved run's best epoch (Keras ``History.history``), as :func:`best_text` writes it.

    Args:
        history: One list of values an epoch, by log key.
        monitor: The metric to judge by; by default :func:`default_monitor`.
    """
    if not isinstance(history, Mapping):
        return ""  # a damaged project file's record
    key = monitor if monitor in history else default_monitor(history)
    values = history.get(key) if key is not None else None
    if not isinstance(values, (list, tuple)):
        return ""
    return best_text(key, values)


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
