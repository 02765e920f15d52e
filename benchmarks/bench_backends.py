"""The app's training run against a plain ``model.fit``, on every installed Keras backend.

Target (issue 15): throughput of the app's run >= 0.97x a plain ``model.fit`` of the
same model and data, for each installed backend; the median of 5 alternating
pairs (app, plain, app, plain...), since the machine is noisy::

    python -m benchmarks.bench_backends            # every installed backend, 5 pairs
    python -m benchmarks.bench_backends --pairs 3 --backends jax

Both sides train in a fresh process started with ``KERAS_BACKEND``: the app's run
through :class:`~builder_app.training.runner.TrainingRun` (events streamed back,
the dashboard's callback), the baseline through the exported training script's
``build_model`` and a plain ``fit`` with only a timing callback. The benchmark MLP
and its data are :mod:`benchmarks.bench_training`'s; the baseline runs at the app child's
scheduling priority (``CHILD_NICENESS``), so that the comparison is of the training, not of
the scheduler. Throughput counts the epochs
after the first (which includes tracing); the time of an epoch includes its
validation on both sides.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys

from benchmarks.bench_training import _plain_fit

NAME = "backends"

EPOCHS = 6
PAIRS = 5


def _throughput(samples: int, seconds: list[float]) -> float:
    """Samples per second over the epochs after the first (the median epoch)."""
    return samples / statistics.median(seconds[1:])


def _app_run(project, backend: str) -> tuple[str, float]:
    from builder_app.training.events import EventKind
    from builder_app.training.runner import Overrides, TrainingRun

    run = TrainingRun(project, Overrides(backend=backend))
    run.start()
    try:
        events = list(run.events(timeout=900))
    finally:
        run.close()
    started = next(e for e in events if e["kind"] == EventKind.STARTED)
    times = [e["seconds"] for e in events if e["kind"] == EventKind.EPOCH]
    if run.status != "completed" or len(times) < 2:
        raise RuntimeError(f"the app's run on {backend} ended {run.status}: {events[-1]}")
    return started["device"], _throughput(started["samples"], times)


def _plain_run(script: str, data: str, backend: str, epochs: int) -> float:
    from builder_app.training.backends import child_environment
    from builder_app.training.runner import CHILD_NICENESS, _environment

    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(
        target=_plain_fit, args=(script, data, out, epochs, CHILD_NICENESS), daemon=True
    )
    with _environment(child_environment(backend)):
        process.start()
    try:
        ran_on, samples, times = out.get(timeout=900)
    finally:
        process.join(timeout=30)
    if ran_on != backend:
        raise RuntimeError(f"the baseline ran on {ran_on}, not {backend}")
    return _throughput(samples, times)


def compare(backend: str, pairs: int = PAIRS, epochs: int = EPOCHS) -> list[tuple[str, str]]:
    """Rows of the app's run against plain fit on ``backend``: ``pairs`` alternating pairs, their median."""
    import tempfile

    from benchmarks.bench_training import _data, _project
    from builder_app.exporters.train_script import training_script

    with tempfile.TemporaryDirectory() as folder:
        data = _data(folder)
        project = _project(data, epochs=epochs)
        script = os.path.join(folder, "train.py")
        with open(script, "w") as handle:
            handle.write(training_script(project))
        ratios, apps, plains, device = [], [], [], ""
        for i in range(pairs):
            # Alternating which side goes first, so a drift of the load falls on both.
            if i % 2 == 0:
                device, app = _app_run(project, backend)
                plain = _plain_run(script, data, backend, epochs)
            else:
                plain = _plain_run(script, data, backend, epochs)
                device, app = _app_run(project, backend)
            apps.append(app)
            plains.append(plain)
            ratios.append(app / plain)
            print(f"  {backend} pair {i + 1}: app {app:.0f} / plain {plain:.0f} samples/s = {app / plain:.3f}x",
                  file=sys.stderr, flush=True)
    median = statistics.median(ratios)
    verdict = "ok" if median >= 0.97 else "BELOW the 0.97 target"
    return [
        (f"{backend}: app run ({device})", f"{statistics.median(apps):.0f} samples/s (median of {pairs})"),
        (f"{backend}: plain model.fit", f"{statistics.median(plains):.0f} samples/s (median of {pairs})"),
        (
            f"{backend}: app / plain fit",
            f"{median:.3f}x median of {pairs} alternating pairs "
            f"(pairs: {', '.join(f'{r:.3f}' for r in ratios)}; target >= 0.97: {verdict})",
        ),
    ]


def run(backends: list[str] | None = None, pairs: int = PAIRS) -> list[tuple[str, str]]:
    from builder_app.training.backends import installed_backends

    rows: list[tuple[str, str]] = []
    for backend in backends or installed_backends():
        rows.extend(compare(backend, pairs))
    return rows


def main(argv: list[str]) -> int:
    from builder_app.training.backends import BACKENDS, installed_backends

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_backends", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None)
    args = parser.parse_args(argv)
    missing = sorted(set(args.backends or ()) - set(installed_backends()))
    if missing:
        parser.error(f"not installed here: {', '.join(missing)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for measure, value in run(args.backends, args.pairs):
        print(f"{measure}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
