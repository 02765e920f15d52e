"""Per-layer weight histograms, and how the weights changed between two sources.

A source is the weights of a built Keras model (the project's weights, or the
layers' seeded initializers where the project holds none), the project's own
weights, or the weights a kept run left (:mod:`builder_app.core.runs`). Each is a
mapping ``label -> [array, ...]`` in the labels of ``model.weights.h5``
(``dense``, ``tower/dense``), so any two can be compared.

Qt-free and Keras-free (a built model is only read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from builder_app.core import weights_file
from builder_app.core.graph import ModelGraph
from builder_app.training.activations import InspectError, Statistics, statistics

#: Bins of a weight histogram.
BINS = 40

Weights = Mapping[str, list[np.ndarray]]


@dataclass
class Histogram:
    """Counts of values between ``edges`` (one more edge than counts)."""

    counts: np.ndarray
    edges: np.ndarray


@dataclass
class WeightHistogram:
    """One weight of one layer (``conv_1`` kernel), its histogram and statistics."""

    label: str
    index: int
    name: str
    shape: tuple[int, ...]
    histogram: Histogram
    stats: Statistics


@dataclass
class WeightChange:
    """One weight in two sources: both histograms over the same bins, and how far it moved."""

    label: str
    index: int
    name: str
    shape: tuple[int, ...]
    before: Histogram
    after: Histogram
    #: Mean of |after - before|.
    mean_abs_change: float
    #: ||after - before|| / ||before|| (None when ``before`` is all zeros).
    relative_change: float | None


def histogram(values: np.ndarray, bins: int = BINS, value_range: tuple[float, float] | None = None) -> Histogram:
    """A histogram of the finite values of ``values``."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if value_range is None:
        value_range = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 1.0)
    low, high = value_range
    if high <= low:  # one value everywhere (a bias of zeros): a bin around it
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(flat, bins=bins, range=(low, high))
    return Histogram(counts, edges)


def model_weights(model) -> dict[str, list[np.ndarray]]:
    """The weights of a built Keras model's layers, by label (sub-models' layers too)."""
    return {label: [np.asarray(v) for v in obj.get_weights()] for label, obj in _model_layers(model) if obj.weights}


def weight_names(model) -> dict[str, list[str]]:
    """Each weight's name in a built Keras model (``kernel``, ``bias``, ``moving_mean``), by label."""
    return {label: [w.name for w in obj.weights] for label, obj in _model_layers(model) if obj.weights}


def project_weights(graph: ModelGraph) -> dict[str, list[np.ndarray]]:
    """The weights the project holds, by label (layers without any are left out)."""
    return {
        label: [np.asarray(w) for w in layer.weights]
        for label, layer in weights_file.walk_layers(graph)
        if layer.submodel is None and layer.weights
    }


def run_weights(project, run_id: str) -> dict[str, list[np.ndarray]]:
    """The weights a kept run left, by label.

    Raises:
        InspectError: The run is unknown or kept no weights.
    """
    kept = project.run_weights.get(run_id)
    if kept is None:
        known = any(record.get("id") == run_id for record in project.runs)
        raise InspectError(f"run {run_id!r} {'kept no weights' if known else 'is not in the history'}")
    return {label: values for label, values in kept.arrays().items() if values}


def histograms(weights: Weights, names: Mapping[str, list[str]] | None = None, bins: int = BINS) -> list[WeightHistogram]:
    """One :class:`WeightHistogram` per weight of every layer, in the order given."""
    result = []
    for label, values in weights.items():
        for i, value in enumerate(values):
            array = np.asarray(value)
            result.append(
                WeightHistogram(label, i, _name(names, label, i), tuple(array.shape), histogram(array, bins), statistics(array))
            )
    return result


def changes(before: Weights, after: Weights, names: Mapping[str, list[str]] | None = None, bins: int = BINS) -> tuple[list[WeightChange], list[str]]:
    """How each weight moved from ``before`` to ``after``.

    Returns:
        The changes of the weights both sources hold with the same shapes, and
        the labels of the layers that cannot be compared (missing from one
        source, or of other shapes).
    """
    result, apart = [], []
    for label in list(before) + [k for k in after if k not in before]:
        a, b = before.get(label), after.get(label)
        if a is None or b is None or [np.shape(x) for x in a] != [np.shape(x) for x in b]:
            apart.append(label)
            continue
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            x64 = np.asarray(x, dtype=np.float64)
            y64 = np.asarray(y, dtype=np.float64)
            both = np.concatenate([x64.ravel(), y64.ravel()])
            both = both[np.isfinite(both)]
            value_range = (float(both.min()), float(both.max())) if both.size else None
            delta = y64 - x64
            norm = float(np.linalg.norm(x64))
            result.append(
                WeightChange(
                    label,
                    i,
                    _name(names, label, i),
                    tuple(x64.shape),
                    histogram(x64, bins, value_range),
                    histogram(y64, bins, value_range),
                    float(np.abs(delta).mean()) if delta.size else 0.0,
                    float(np.linalg.norm(delta)) / norm if norm > 0 else None,
                )
            )
    return result, apart


def _name(names: Mapping[str, list[str]] | None, label: str, index: int) -> str:
    known = (names or {}).get(label) or []
    return known[index] if index < len(known) else f"weight {index}"


def _model_layers(model, prefix: str = ""):
    for obj in getattr(model, "layers", ()):
        label = f"{prefix}{obj.name}"
        if hasattr(obj, "layers") and getattr(obj, "layers", None) and type(obj).__name__ in ("Functional", "Model", "Sequential"):
            yield from _model_layers(obj, f"{label}/")
        else:
            yield label, obj
