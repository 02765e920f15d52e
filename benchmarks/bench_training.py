"""Training in the app against plain ``model.fit``, and the GUI while it trains.

Targets (issue 14): Train -> the first batch event in the training window, with the
warm child (TensorFlow imported when the window opened), at most 3 s on digits;
measured beside a cold start and ``python -c "import tensorflow"`` in the same run::

    python -m benchmarks.bench_training --first-batch 2   # only this, twice

Targets (issue "Training"): the app's throughput >= 0.97 x plain ``model.fit`` of
the exported model on the same data; while training, the GUI's event loop
answers: the largest gap between 10 ms timer ticks has p99 <= 50 ms; the GUI
process's memory does not grow during a run with live plotting.

Everything is measured in this run, on this machine: the app trains in its child
process (events streamed back), plain ``fit`` runs in a child process of the
same kind (a fresh Python), on the same data, model and settings. Throughput
counts the epochs after the first (which includes tracing).

The GUI's memory over a long run is measured on its own (it takes minutes)::

    python -m benchmarks.bench_training --memory-seconds 300   # the training window, live plots
    python -m benchmarks.bench_training --throughput-repeats 3 # the comparison above, 3 times

It trains in the training window (dashboard shown and repainting) until the
time is up, samples the window process's resident memory at intervals, and
reports it at start, along the way and at the end, with the least-squares slope
in MiB per minute and the ratio end / start.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time

NAME = "training"

EPOCHS = 8
BATCH_SIZE = 64
SAMPLES = 20_000


#: The benchmark MLP's chain: (layer name or None for the default, class, parameters).
MLP = (
    (None, "InputLayer", {"batch_shape": [None, 32], "dtype": "float32"}),
    (None, "Dense", {"units": 256, "activation": "relu"}),
    (None, "Dense", {"units": 256, "activation": "relu"}),
    (None, "Dense", {"units": 10, "activation": "softmax"}),
)


def _project(data: str, epochs: int, layers=MLP, name: str = "bench_mlp"):
    """A chain of ``layers`` with its training settings: the .npz at ``data``, ``epochs`` epochs."""
    from builder_app.core.catalog import default_config
    from builder_app.core.graph import ModelGraph
    from builder_app.core.ops import Connect, add_layer
    from builder_app.core.project import Project

    graph = ModelGraph(name)
    previous = None
    for layer_name, class_name, params in layers:
        op = add_layer(graph, class_name, {**default_config(class_name), **params}, name=layer_name)
        graph.apply(op)
        if previous is not None:
            graph.apply(Connect(previous, 0, op.node.id, 0))
        previous = op.node.id
    training = {
        "data": {"source": "npz", "path": data},
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "shuffle": True,
        "callbacks": {},
    }
    return Project(graph, training=training)


def _data(folder: str) -> str:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 32)).astype("float32")
    y = (x[:, :10].argmax(axis=1)).astype("int64")
    path = os.path.join(folder, "data.npz")
    np.savez(path, x=x, y=y)
    return path


def _plain_fit(script: str, data: str, out, epochs: int = EPOCHS, niceness: int = 0) -> None:
    """The baseline, in a fresh process: the exported training script's model, plain fit.

    ``niceness`` lowers its priority (the app's child runs at ``CHILD_NICENESS``); it puts
    the backend Keras ran on, the training samples and each epoch's seconds on ``out``.
    """
    import runpy

    if niceness:
        os.nice(niceness)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    namespace = runpy.run_path(script)
    keras.utils.set_random_seed(0)
    with np.load(data) as arrays:
        x, y = arrays["x"], arrays["y"]
    cut = int(len(x) * 0.8)
    model = namespace["build_model"]()
    model.compile(optimizer=namespace["make_optimizer"](), loss=namespace["LOSS"], metrics=namespace["METRICS"])
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(
        x[:cut], y[:cut], batch_size=BATCH_SIZE, epochs=epochs, validation_data=(x[cut:], y[cut:]),
        shuffle=True, callbacks=[Timer()], verbose=0,
    )
    out.put((keras.backend.backend(), cut, times))


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tensorflow_import_seconds() -> float:
    """Wall time of ``python -c "import tensorflow"`` in a fresh Python (the baseline)."""
    import subprocess

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, capture_output=True)
    return time.perf_counter() - started


def _train_to_first_batch(warm: bool) -> tuple[float, float | None]:
    """(seconds from Train to the first batch event in the window, seconds the warm child took to get ready).

    The digits example in the training window; with ``warm``, Train is pressed once
    the window's warm child has imported TensorFlow and prepared the run (as when a
    user looks at the window for a while first).
    """
    from builder_app.core.project import load_project
    from builder_app.training.events import EventKind
    from builder_app.ui.training import window as window_module

    gui = _gui(dashboard=False)
    if gui is None:
        return float("nan"), None
    app = gui[0]
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "examples")
    window_module.WARM_CHILD = warm
    try:
        window = window_module.TrainingWindow(load_project(os.path.join(examples, "digits_cnn.kproj")))
        window.epochs.setValue(1)
        opened = time.perf_counter()
        window.show()
        ready = None
        if warm:
            # As when a user looks at the window first: TensorFlow imported, the run prepared.
            while not window.warm.prepared.is_set() and time.perf_counter() - opened < 600:
                app.processEvents()
                time.sleep(0.01)
            ready = time.perf_counter() - opened
        first: list[float] = []
        add_event = window.dashboard.add_event

        def note(event) -> None:
            if event["kind"] == EventKind.BATCH and not first:
                first.append(time.perf_counter())
            add_event(event)

        window.dashboard.add_event = note
        pressed = time.perf_counter()
        window.start()
        while not first and (window.run is None or not window.run.finished):
            app.processEvents()
            time.sleep(0.002)
        window.ask_close_run = lambda: window_module.CloseAnswer.DISCARD
        window.close()
    finally:
        window_module.WARM_CHILD = True
    return (first[0] - pressed if first else float("nan")), ready


def first_batch(repeats: int = 1) -> list[tuple[str, str]]:
    """Train -> first batch event, warm and cold, against the TensorFlow import, in this run."""
    rows: list[tuple[str, str]] = []
    for i in range(repeats):
        tf_import = _tensorflow_import_seconds()
        warm, ready = _train_to_first_batch(warm=True)
        cold, _ = _train_to_first_batch(warm=False)
        tag = f" ({i + 1})" if repeats > 1 else ""
        rows.append((f"python -c 'import tensorflow'{tag}", f"{tf_import:.1f} s"))
        rows.append((f"Train -> first batch, warm child{tag}", f"{warm:.2f} s = {warm / tf_import:.2f}x the TensorFlow import (target <= 3 s on digits)"))
        rows.append((f"Train -> first batch, cold start{tag}", f"{cold:.2f} s = {cold / tf_import:.2f}x the TensorFlow import"))
        rows.append((f"warm / cold{tag}", f"{warm / cold:.2f}x (the warm child had the run prepared {ready:.1f} s after the window opened)"))
    return rows


def run() -> list[tuple[str, str]]:
    import tempfile

    from builder_app.exporters.train_script import training_script
    from builder_app.training.events import EventKind
    from builder_app.training.runner import Overrides, TrainingRun

    rows: list[tuple[str, str]] = first_batch()
    with tempfile.TemporaryDirectory() as folder:
        data = _data(folder)
        project = _project(data, epochs=EPOCHS)
        script = os.path.join(folder, "train.py")
        with open(script, "w") as handle:
            handle.write(training_script(project))

        context = multiprocessing.get_context("spawn")

        def plain_fit() -> list[float]:
            out = context.Queue()
            baseline = context.Process(target=_plain_fit, args=(script, data, out))
            baseline.start()
            times = out.get(timeout=600)[2]
            baseline.join()
            return times

        # The baseline runs first and last, so a drift of the machine's load over the
        # benchmark falls on both sides of the comparison.
        plain_times = plain_fit()

        headless = TrainingRun(project, Overrides())
        headless.start()
        headless_times = [e["seconds"] for e in headless.events(timeout=600) if e["kind"] == EventKind.EPOCH]
        headless.close()

        gui = _gui()
        run = TrainingRun(project, Overrides())
        app_times: list[float] = []
        gaps: list[float] = []
        rss: list[float] = []
        run.start()
        if gui is not None:
            app, dashboard, QTimer = gui
            last = [time.perf_counter()]

            def tick() -> None:
                now = time.perf_counter()
                gaps.append((now - last[0]) * 1000)
                last[0] = now
                for event in run.poll():
                    dashboard.add_event(event)
                    if event["kind"] == EventKind.EPOCH:
                        app_times.append(event["seconds"])
                        rss.append(_rss_mib())
                if run.finished:
                    app.quit()

            timer = QTimer()
            timer.setInterval(10)
            timer.timeout.connect(tick)
            timer.start()
            app.exec()
            timer.stop()
        else:
            for event in run.events(timeout=600):
                if event["kind"] == EventKind.EPOCH:
                    app_times.append(event["seconds"])
        status = run.status
        run.close()
        plain_after = plain_fit()

    rate = lambda times: (EPOCHS - 1) * int(SAMPLES * 0.8) / sum(times[1:])  # noqa: E731
    plain_before, plain_later = rate(plain_times), rate(plain_after)
    plain = (plain_before + plain_later) / 2
    in_app = (EPOCHS - 1) * int(SAMPLES * 0.8) / sum(app_times[1:]) if len(app_times) > 1 else float("nan")
    rows.append(("model", f"MLP 32-256-256-10, {SAMPLES} samples, batch {BATCH_SIZE}, {EPOCHS} epochs ({status})"))
    rows.append(("plain model.fit samples/s", f"{plain:,.0f} (first {plain_before:,.0f}, last {plain_later:,.0f})"))
    headless_rate = (EPOCHS - 1) * int(SAMPLES * 0.8) / sum(headless_times[1:])
    rows.append(("app run, no GUI (builder-app train) samples/s", f"{headless_rate:,.0f}"))
    rows.append(("app run, no GUI / plain fit", f"{headless_rate / plain:.3f}x (target >= 0.97)"))
    rows.append(("app run with the live dashboard samples/s", f"{in_app:,.0f}"))
    rows.append(("app run with the dashboard / plain fit", f"{in_app / plain:.3f}x (target >= 0.97)"))
    if gaps:
        ordered = sorted(gaps[1:])
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        rows.append(("GUI 10 ms tick gap p99 / max", f"{p99:.1f} / {ordered[-1]:.1f} ms over {len(gaps)} ticks (target p99 <= 50)"))
        rows.append(("GUI median tick gap", f"{statistics.median(ordered):.1f} ms"))
    if len(rss) > 1:
        rows.append(("GUI memory over the run", f"{rss[0]:.0f} -> {rss[-1]:.0f} MiB (after epoch 1 -> last)"))
    return rows


def _gui(dashboard: bool = True):
    """(QApplication, TrainingDashboard or None, QTimer), or None when the dashboard is not there."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        from builder_app.ui.training.dashboard import TrainingDashboard
    except ImportError as exc:
        print(f"  training: no GUI measurement ({exc})", file=sys.stderr)
        return None
    app = QApplication.instance() or QApplication([])
    if not dashboard:
        return app, None, QTimer
    board = TrainingDashboard()
    board.resize(1200, 800)
    board.show()
    return app, board, QTimer


# ============================================================== long memory run
def memory(seconds: float = 300.0, interval: float = 30.0) -> list[tuple[str, str]]:
    """The training window's resident memory over a run of ``seconds`` with live plotting.

    "start" is the first sample after the first epoch reached the dashboard (the
    plots, fonts and caches exist by then); the slope is fitted to the samples from
    there until Stop. The window keeps the run and its weights at the end.
    """
    import tempfile

    gui = _gui(dashboard=False)
    if gui is None:
        return [("GUI memory", "not measured (no GUI)")]
    app, _, QTimer = gui
    from builder_app.ui.training.window import TrainingWindow

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        data = _data(folder)
        project = _project(data, epochs=1_000_000)
        window = TrainingWindow(project)
        window.resize(1400, 860)
        window.show()
        samples: list[tuple[float, float]] = []  # (seconds since the first epoch, MiB)
        state = {"t0": None, "stopped": False, "launched": time.monotonic(), "before": _rss_mib()}

        def sample() -> None:
            if state["t0"] is None:
                if window.dashboard.epoch_count() >= 1:
                    state["t0"] = time.monotonic()
                    samples.append((0.0, _rss_mib()))
                return
            elapsed = time.monotonic() - state["t0"]
            if state["stopped"]:
                return
            done = elapsed >= seconds
            if done or seconds - 1 > elapsed >= len(samples) * interval - 0.05:
                samples.append((elapsed, _rss_mib()))
            if done:
                state["stopped"] = True
                window.stop()

        window.run_finished.connect(lambda event: app.quit())
        timer = QTimer()
        timer.setInterval(100)
        timer.timeout.connect(sample)
        timer.start()
        window.start()
        app.exec()
        timer.stop()
        after = _rss_mib()
        points = window.dashboard.batch_count()
        epochs = window.dashboard.epoch_count()
        window.close()

    if len(samples) < 2:
        return [("GUI memory", f"not measured: the run ended early ({window.message.text()})")]
    times = [t / 60 for t, _ in samples]
    values = [v for _, v in samples]
    slope = statistics.linear_regression(times, values).slope
    start, end = values[0], values[-1]
    rows.append(("memory run", f"{samples[-1][0]:.0f} s after the first epoch: {epochs} epochs, {points:,} batch points plotted"))
    rows.append(("GUI RSS before the run / at the first epoch", f"{state['before']:.0f} / {start:.0f} MiB"))
    rows.append(("GUI RSS samples", ", ".join(f"{t:.0f}s {v:.1f}" for t, v in samples)))
    rows.append(("GUI RSS at the end / after the run is kept", f"{end:.1f} / {after:.1f} MiB"))
    rows.append(("GUI RSS slope", f"{slope:+.2f} MiB/min (least squares over the samples)"))
    rows.append(("GUI RSS end / start", f"{end / start:.3f}"))
    return rows


def _print(rows: list[tuple[str, str]]) -> None:
    width = max(len(measure) for measure, _ in rows)
    for measure, value in rows:
        print(f"{measure:<{width}}  {value}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Training benchmarks: GUI memory over a long run, throughput.")
    parser.add_argument("--memory-seconds", type=float, default=300.0, metavar="S", help="length of the memory run (default 300)")
    parser.add_argument("--interval", type=float, default=30.0, metavar="S", help="seconds between memory samples (default 30)")
    parser.add_argument("--throughput-repeats", type=int, default=0, metavar="N", help="run the throughput comparison N times instead")
    parser.add_argument("--first-batch", type=int, default=0, metavar="N", help="measure Train -> first batch (warm, cold) N times instead")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.first_batch:
        _print(first_batch(args.first_batch))
        return 0
    if args.throughput_repeats:
        for i in range(args.throughput_repeats):
            print(f"-- throughput comparison {i + 1} of {args.throughput_repeats}", flush=True)
            _print(run())
        return 0
    _print(memory(args.memory_seconds, args.interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
