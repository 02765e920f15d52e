"""Inspecting one node of EfficientNetB7 on one sample, with the model already built.

Target (issue 12): at most 1 s. The inspector (training/activations.py) runs a
``keras.Model(inputs, [node outputs])`` over the built model's layers; the
baseline, measured in the same run, is Keras's own ``predict_on_batch`` of the
whole model on the same sample. A node deep in the network costs a forward pass
up to it: the last node (``top_activation``) is the whole model, a middle one
(``block4a_expand_activation``) about a third of it. Each time is the median of
three calls after a first one (which traces the predict step, once per probe).
"""

from __future__ import annotations

import statistics
import time

NAME = "inspect"
NODES = ("block4a_expand_activation", "top_activation")
TARGET_S = 1.0


def _median_seconds(call, repeats: int = 3) -> tuple[float, float]:
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def run() -> list[tuple[str, str]]:
    import keras

    from builder_app.importers.keras_config import graph_from_model_config
    from builder_app.training.activations import ActivationProbe, random_inputs

    keras.utils.set_random_seed(0)
    model = keras.applications.EfficientNetB7(weights=None)
    graph = graph_from_model_config({"class_name": "Functional", "config": model.get_config()})
    t0 = time.perf_counter()
    probe = ActivationProbe(graph, model)  # the model is already built: only the nodes' outputs are traced
    trace_s = time.perf_counter() - t0
    sample = random_inputs(model, 0)
    rows = [("trace every node's output (once per built model)", f"{trace_s:.2f} s")]
    _, plain_s = _median_seconds(lambda: model.predict_on_batch(sample.inputs[0]))
    rows.append(("keras predict_on_batch, whole model (baseline)", f"{plain_s:.3f} s"))
    for name in NODES:
        node = probe.node_for(name)
        first_s, inspect_s = _median_seconds(lambda node=node: probe.run([node], sample))
        verdict = "ok" if inspect_s <= TARGET_S else "over"
        rows.append((f"inspect {name}, first call (traces)", f"{first_s:.2f} s"))
        rows.append((f"inspect {name} (target <= {TARGET_S:g} s)", f"{inspect_s:.3f} s ({verdict})"))
        rows.append((f"inspect {name} / whole-model predict", f"{inspect_s / plain_s:.2f}x"))
    return rows


if __name__ == "__main__":
    for measure, value in run():
        print(f"{measure:<60} {value}")
