"""Inspecting one node of EfficientNetB7 on one sample, with the model already built.

Target (issue 12): at most 1 s. The inspector (training/activations.py) calls a
``keras.Model(inputs, [node outputs])`` over the built model's layers eagerly; the
baseline, measured in the same run, is Keras's own eager call of the whole model
on the same sample (and, for the record, its compiled ``predict_on_batch``, which
the inspector used before: its first call traces a function, once per set of
nodes asked for).

A first call and a repeated call are reported apart. The first forward pass in a
process also pays TensorFlow's one-time set-up of each operation's kernel: so
that both sides pay it, the Keras baseline runs in a fresh Python of its own, and
the inspector's first node is the first forward pass of this one. Each later node
is a new set of nodes (a new sub-model) over kernels already set up: what a
click in the window costs after the first. Times are wall-clock seconds and, in
brackets, the process's CPU seconds (on a shared machine the wall time also
counts waiting for a core). A repeated call is the median of two.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

NAME = "inspect"
#: A middle node (about a third of the network), the last node (the whole of it), a node between.
NODES = ("block4a_expand_activation", "top_activation", "block6a_expand_activation")
TARGET_S = 1.0
REPEATS = 2


def _timed(call) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - w0, time.process_time() - c0


def _first_and_repeated(call) -> dict[str, tuple[float, float]]:
    first = _timed(call)
    again = [_timed(call) for _ in range(REPEATS)]
    return {"first": first, "repeated": (statistics.median(w for w, _ in again), statistics.median(c for _, c in again))}


def _model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.EfficientNetB7(weights=None)


def _keras_part() -> dict:
    """In a fresh Python: Keras's own eager call, then its compiled predict, of the whole model."""
    from builder_app.training.activations import random_inputs

    model = _model()
    x = random_inputs(model, 0).inputs
    return {
        "eager": _first_and_repeated(lambda: model(x, training=False)),
        "predict": _first_and_repeated(lambda: model.predict_on_batch(x)),
    }


def _show(times: tuple[float, float]) -> str:
    return f"{times[0]:.2f} s ({times[1]:.2f} s CPU)"


def run() -> list[tuple[str, str]]:
    from builder_app.importers.keras_config import graph_from_model_config
    from builder_app.training.activations import ActivationProbe, random_inputs

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    baseline = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_inspect", "--keras-part"],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    keras_times = json.loads(baseline.stdout.strip().splitlines()[-1])
    model = _model()
    graph = graph_from_model_config({"class_name": "Functional", "config": model.get_config()})
    trace = _timed(lambda: ActivationProbe(graph, model))  # the model is built: only the nodes' outputs are traced
    probe = ActivationProbe(graph, model)
    sample = random_inputs(model, 0)
    eager = keras_times["eager"]
    rows = [
        ("trace every node's output (once per built model)", _show(trace)),
        ("keras eager call, whole model, first (fresh process)", _show(eager["first"])),
        ("keras eager call, whole model, repeated", _show(eager["repeated"])),
        ("keras predict_on_batch, whole model, first (traces)", _show(keras_times["predict"]["first"])),
        ("keras predict_on_batch, whole model, repeated", _show(keras_times["predict"]["repeated"])),
    ]
    for i, name in enumerate(NODES):
        node = probe.node_for(name)
        times = _first_and_repeated(lambda node=node: probe.run([node], sample))
        when = "first forward pass of this process" if i == 0 else "new node set"
        for kind, label in (("first", f"first call ({when})"), ("repeated", "repeated")):
            wall, cpu = times[kind]
            verdict = "ok" if wall <= TARGET_S else "over"
            rows.append((f"inspect {name}, {label} (target <= {TARGET_S:g} s)", f"{_show(times[kind])} {verdict}"))
            ratio_wall, ratio_cpu = wall / eager[kind][0], cpu / eager[kind][1]
            rows.append((f"  / keras eager whole model, {kind}", f"{ratio_wall:.2f}x ({ratio_cpu:.2f}x CPU)"))
    return rows


if __name__ == "__main__":
    if sys.argv[1:] == ["--keras-part"]:
        print(json.dumps(_keras_part()))
    else:
        for measure, value in run():
            print(f"{measure:<70} {value}")
