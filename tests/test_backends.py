"""Training backends: the choice and its refusals, a run on JAX, JAX data-parallel in the app and the script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core.keras_model import build_keras_model, copy_weights_to_graph
from builder_app.core.project import load_project, save_project
from builder_app.exporters.train_script import training_script
from builder_app.training import backends
from builder_app.training.backends import BackendError, check_backend, child_environment, refusal
from builder_app.training.events import EventKind
from builder_app.training.runner import Overrides, TrainingRun, WarmChild, backend_problem

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"
needs_jax = pytest.mark.skipif(not backends.is_installed("jax"), reason="jax is not installed (the dev extra has it)")
needs_torch = pytest.mark.skipif(
    not backends.is_installed("torch"), reason='torch is not installed: pip install "builder-app[torch]"'
)


# ----------------------------------------------------------------- the choice
def test_backends_are_found_without_importing_them():
    assert "tensorflow" in backends.installed_backends()
    for name in ("jax", "torch"):
        if name not in sys.modules:  # finding a backend must not load it (the GUI lists them)
            backends.installed_backends()
            assert name not in sys.modules


def test_an_unknown_or_missing_backend_is_one_line(monkeypatch):
    with pytest.raises(BackendError, match=r"^unknown backend 'mxnet': one of tensorflow, jax, torch$"):
        check_backend("mxnet")
    assert check_backend("TF") == "tensorflow" and check_backend(None) == backends.default_backend()
    monkeypatch.setattr(backends, "is_installed", lambda name: name == "tensorflow")
    with pytest.raises(BackendError, match=r"the jax backend is not installed here \(installed: tensorflow\): pip install"):
        check_backend("jax")


def test_the_train_command_refuses_a_bad_backend_before_anything(tmp_path, capsys):
    project = tmp_path / "iris.kproj"
    project.write_bytes((EXAMPLES / "iris_mlp.kproj").read_bytes())
    assert main(["train", str(project), "--backend", "mxnet"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "builder-app: unknown backend 'mxnet': one of tensorflow, jax, torch\n"
    if not backends.is_installed("torch"):
        assert main(["train", str(project), "--backend", "torch"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and "torch backend is not installed" in err


@needs_jax
def test_a_setting_the_backend_lacks_is_refused_before_the_run(tmp_path, capsys):
    path = tmp_path / "iris.kproj"
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    project.training["callbacks"] = {"tensorboard": {"log_dir": str(tmp_path / "logs"), "profile_batch": 2}}
    save_project(project, path)
    assert main(["train", str(path), "--backend", "jax", "--epochs", "1"]) == 2
    out, err = capsys.readouterr()
    assert "training on" not in out  # no child started
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "profiler" in lines[0] and "TensorFlow backend only" in lines[0]
    # The same settings are fine on TensorFlow; several devices have no PyTorch path.
    assert backend_problem(project, Overrides(backend="tensorflow")) is None
    settings = {"callbacks": {"tensorboard": {"profile_batch": 0}}}
    assert refusal("jax", settings) is None and refusal("jax", settings, replicas=2) is None
    assert "Keras has neither on PyTorch" in refusal("torch", settings, replicas=2)


def test_each_backend_starts_with_its_environment(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=8")
    assert child_environment("tensorflow") == {"KERAS_BACKEND": "tensorflow"}
    assert child_environment("torch") == {"KERAS_BACKEND": "torch"}
    jax = child_environment("jax")
    assert jax == {"KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    flags = child_environment("jax", replicas=2)["XLA_FLAGS"].split()
    assert flags == ["--xla_cpu_enable_fast_math=false", "--xla_force_host_platform_device_count=2"]


# -------------------------------------------------------------- runs on JAX
@needs_jax
@pytest.mark.training
@pytest.mark.slow
def test_a_jax_run_in_a_warm_jax_child_streams_pauses_stops_and_brings_weights_back():
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    project.training["epochs"] = 200
    copy_weights_to_graph(project.graph, build_keras_model(project.graph))  # known starting weights
    shapes = {name: [w.shape for w in layer.weights] for name, layer in project.graph.layers.items() if layer.weights}
    warm = WarmChild("jax").start()
    assert warm.ready.wait(240), "the warm JAX child did not start"
    run = TrainingRun(project, Overrides(backend="jax"), warm=warm)
    seen = []
    try:
        run.start()
        assert run.warm_started  # a JAX child serves a JAX run
        for event in run.events(timeout=240):
            seen.append(event)
            kinds = [e["kind"] for e in seen]
            if event["kind"] == EventKind.BATCH and EventKind.PAUSED not in kinds:
                run.pause()
            elif event["kind"] == EventKind.PAUSED:
                run.resume()
            elif event["kind"] == EventKind.EPOCH and event["epoch"] >= 2:
                run.stop()
        kinds = [e["kind"] for e in seen]
        started = seen[0]
        assert started["kind"] == EventKind.STARTED and started["device"] == "CPU (jax)"
        assert started["metrics"] == ["loss", "accuracy", "val_loss", "val_accuracy"]
        assert EventKind.PAUSED in kinds and EventKind.RESUMED in kinds
        epochs = [e for e in seen if e["kind"] == EventKind.EPOCH]
        assert set(epochs[0]["logs"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert all(np.isfinite(e["learning_rate"]) for e in epochs)
        assert run.status == "stopped" and 3 <= len(epochs) < 200
        trained = run.trained_weights()  # the same .weights.h5 layout, read as every run's is
        assert {n: [w.shape for w in layer.weights] for n, layer in trained.graph.layers.items() if layer.weights} == shapes
        assert any(
            not np.array_equal(a, b)
            for name, layer in trained.graph.layers.items() if layer.weights
            for a, b in zip(layer.weights, project.graph.layers[name].weights, strict=True)
        )
    finally:
        run.close()


def test_a_warm_child_of_another_backend_is_not_handed_the_run():
    warm = WarmChild("tensorflow")
    run = TrainingRun(load_project(EXAMPLES / "iris_mlp.kproj"), Overrides(backend="jax", epochs=1), warm=warm)
    if not backends.is_installed("jax"):
        pytest.skip("jax is not installed")
    warm.start()
    try:
        run.start()
        assert not run.warm_started and not warm.handed and not warm.alive  # closed; the run went cold
    finally:
        run.close()


@needs_jax
@pytest.mark.training
@pytest.mark.slow
def test_jax_data_parallel_in_the_app_over_two_logical_cpus():
    project = load_project(EXAMPLES / "digits_cnn.kproj")
    run = TrainingRun(project, Overrides(epochs=1, cpu_replicas=2, backend="jax"))
    try:
        run.start()
        seen = list(run.events(timeout=300))
        assert run.status == "completed", seen[-1]
        assert seen[0]["device"] == "2 logical CPUs (jax)"
        # Every batch, the last ones too, splits over the two devices: whole samples each.
        assert seen[0]["samples"] % 2 == 0 and seen[0]["validation_samples"] % 2 == 0
    finally:
        run.close()


@needs_jax
@pytest.mark.training
@pytest.mark.slow
def test_the_training_script_runs_data_parallel_over_two_cpu_devices(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(training_script(load_project(EXAMPLES / "digits_cnn.kproj")))
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    args = [sys.executable, str(script), "--epochs", "1", "--strategy", "jax-data-parallel"]
    done = subprocess.run([*args, "--save", "t.keras"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "data-parallel over 2 devices: cpu:0, cpu:1" in done.stdout and "val_accuracy" in done.stdout
    assert (tmp_path / "t.keras").exists()
    odd = subprocess.run([*args, "--batch-size", "33"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)
    assert odd.returncode == 2 and "--batch-size 33 must be a multiple of the 2 devices" in odd.stderr
    on_tf = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=400,
                           env={**env, "KERAS_BACKEND": "tensorflow"})
    assert on_tf.returncode == 1 and "needs the JAX backend (KERAS_BACKEND=jax)" in on_tf.stderr


@needs_jax
@pytest.mark.training
@pytest.mark.slow
def test_train_command_on_jax_reaches_90_percent_on_digits(tmp_path, capsys):
    project = tmp_path / "digits.kproj"
    project.write_bytes((EXAMPLES / "digits_cnn.kproj").read_bytes())
    code = main(["train", str(project), "--backend", "jax", "--epochs", "10", "--update-project"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("training on CPU (jax): 1438 samples (359 for validation), 10 epochs")
    record = load_project(project).runs[-1]
    assert record["device"] == "CPU (jax)" and record["history"]["val_accuracy"][-1] >= 0.9


@needs_torch
@pytest.mark.training
@pytest.mark.slow
def test_a_torch_run_trains_and_brings_weights_back():
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    run = TrainingRun(project, Overrides(backend="torch", epochs=2))
    try:
        run.start()
        seen = list(run.events(timeout=300))
        assert run.status == "completed", seen[-1]
        assert seen[0]["device"].endswith("(torch)") and run.trained_weights() is not None
    finally:
        run.close()
