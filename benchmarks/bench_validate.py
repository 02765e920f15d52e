"""Edit-to-shapes latency on an EfficientNetB7-sized graph, against Keras rebuilding it.

Baselines are measured in the same run (the machines are noisy): results are
printed as ratios. Targets (issue "Foundation"): p95 edit-to-shapes latency
<= 16 ms (one 60 Hz frame), and a cold full validation faster than
``keras.Model.from_config`` of the same model.
"""

from __future__ import annotations

import copy
import gc
import statistics
import time

NAME = "validate"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(repeats: int = 40) -> list[tuple[str, str]]:
    """Runs the benchmark; returns (measure, value) rows."""
    import keras

    from builder_app.core import catalog
    from builder_app.core.ops import SetParam
    from builder_app.core.shapes import ShapeEngine
    from builder_app.importers.keras_config import graph_from_model_config

    t0 = time.perf_counter()
    catalog.catalog()  # once per process (the editor does it while TensorFlow loads)
    catalog_s = time.perf_counter() - t0

    model = keras.applications.EfficientNetB7(weights=None)
    config = {"class_name": "Functional", "config": model.get_config()}
    n_layers = len(model.layers)

    t0 = time.perf_counter()
    graph = graph_from_model_config(config)
    load_s = time.perf_counter() - t0

    gc.collect()
    t0 = time.perf_counter()
    engine = ShapeEngine(graph)
    engine.update()
    cold_s = time.perf_counter() - t0
    assert engine.total_params() == model.count_params(), "the graph disagrees with Keras"

    gc.collect()
    t0 = time.perf_counter()
    keras.Model.from_config(copy.deepcopy(config["config"]))
    from_config_s = time.perf_counter() - t0

    def edit_latencies(layer: str, key: str, values: list) -> tuple[list[float], list[float]]:
        """Per edit: time until every shape is up to date, and until everything is."""
        to_shapes, to_all = [], []
        for i in range(repeats):
            value = values[i % len(values)]
            t = time.perf_counter()
            graph.apply(SetParam(layer, key, value))
            engine.update_shapes()
            to_shapes.append(time.perf_counter() - t)
            engine.update()
            to_all.append(time.perf_counter() - t)
        return to_shapes, to_all

    input_layer = graph.layer_of(graph.model_inputs()[0]).name
    edits = {
        # Stem filters: new shapes and parameter counts until the next convolution.
        "stem conv kernel (near input, all shapes change)": edit_latencies("stem_conv", "kernel_size", [[5, 5], [3, 3]]),
        # Input resolution: every shape downstream changes, all 815 layers recompute.
        "input size (everything downstream)": edit_latencies(
            input_layer, "batch_shape", [[None, 512, 512, 3], [None, 600, 600, 3]]
        ),
        "head units (near output)": edit_latencies("predictions", "units", [10, 1000]),
        "activation (shape unchanged)": edit_latencies("stem_activation", "activation", ["relu", "swish"]),
    }
    rows = [
        ("model", f"EfficientNetB7, {n_layers} layers, {model.count_params():,} params"),
        ("layer catalog from Keras signatures (once)", f"{catalog_s * 1e3:.0f} ms"),
        ("config -> graph", f"{load_s * 1e3:.0f} ms"),
        ("cold full validation", f"{cold_s * 1e3:.0f} ms"),
        ("keras.Model.from_config (baseline)", f"{from_config_s * 1e3:.0f} ms"),
        ("cold validation vs from_config", f"{from_config_s / cold_s:.1f}x faster (target > 1x)"),
    ]
    for label, (to_shapes, to_all) in edits.items():
        p50, p95 = statistics.median(to_shapes), _percentile(to_shapes, 0.95)
        rows.append(
            (
                f"edit -> shapes: {label}",
                f"p50 {p50 * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms "
                f"({'meets' if p95 <= 0.016 else 'misses'} 16 ms; "
                f"{from_config_s / p95:.0f}x faster than from_config)",
            )
        )
        rows.append(
            (
                f"edit -> shapes, params, checks: {label}",
                f"p50 {statistics.median(to_all) * 1e3:.1f} ms, "
                f"p95 {_percentile(to_all, 0.95) * 1e3:.1f} ms",
            )
        )
    engine.close()
    return rows
