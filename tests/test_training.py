"""Training in the child process: events, stop, pause, NaN, data that does not fit, resume, devices."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core.catalog import default_config
from builder_app.core.graph import ModelGraph
from builder_app.core.keras_model import build_keras_model, copy_weights_to_graph
from builder_app.core.ops import Connect, add_layer
from builder_app.core.project import Project, load_project, save_project
from builder_app.training.events import EventKind
from builder_app.training.runner import Overrides, TrainingRun, copy_trained_weights, run_record

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"


def regression_project(**training) -> Project:
    graph = ModelGraph("regressor")
    previous = None
    for class_name, params in (
        ("InputLayer", {"batch_shape": [None, 8], "dtype": "float32"}),
        ("Dense", {"units": 16, "activation": "relu"}),
        ("Dense", {"units": 1}),
    ):
        op = add_layer(graph, class_name, {**default_config(class_name), **params})
        graph.apply(op)
        if previous is not None:
            graph.apply(Connect(previous, 0, op.node.id, 0))
        previous = op.node.id
    return Project(graph, training={"data": {"source": "builtin", "name": "regression"}, **training})


def run_to_end(run: TrainingRun, timeout: float = 240) -> list[dict]:
    run.start()
    return list(run.events(timeout=timeout))


def test_a_run_streams_events_and_brings_the_weights_back():
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    project.training["epochs"] = 3
    copy_weights_to_graph(project.graph, build_keras_model(project.graph))  # known starting weights
    run = TrainingRun(project)
    try:
        seen = run_to_end(run)
        kinds = [e["kind"] for e in seen]
        assert kinds[0] == EventKind.STARTED and kinds[-1] == EventKind.FINISHED
        started = seen[0]
        assert started["device"] == "CPU" and started["epochs"] == 3 and started["samples"] == 120
        assert started["metrics"] == ["loss", "accuracy", "val_loss", "val_accuracy"]
        epochs = [e for e in seen if e["kind"] == EventKind.EPOCH]
        assert [e["epoch"] for e in epochs] == [0, 1, 2]
        assert set(epochs[-1]["logs"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        batches = [e for e in seen if e["kind"] == EventKind.BATCH]
        assert batches and all(b["samples_per_second"] > 0 and b["learning_rate"] == pytest.approx(0.01) for b in batches)
        # Each batch event's loss covers the batches since the previous one (Keras logs a
        # running mean): weighted by their samples, they give back the epoch's loss.
        size, samples = started["batch_size"], started["samples"]
        for epoch in epochs:
            own = [b for b in batches if b["epoch"] == epoch["epoch"]]
            seen = [min((b["step"] + 1) * size, samples) for b in own]
            weights = np.diff([0, *seen])
            assert seen[-1] == samples
            assert own[-1]["running_loss"] == pytest.approx(epoch["logs"]["loss"], rel=1e-5)
            rebuilt = float(np.dot([b["loss"] for b in own], weights)) / samples
            assert rebuilt == pytest.approx(epoch["logs"]["loss"], rel=1e-4)
        assert run.status == "completed"
        assert len(run.result["history"]["val_loss"]) == 3
        trained = run.trained_weights()
        before = [w.copy() for w in project.graph.layers["species"].weights]
        copy_trained_weights(project, trained)
        after = project.graph.layers["species"].weights
        assert np.array_equal(after[0], trained.graph.layers["species"].weights[0])
        assert after[0].shape == before[0].shape and not np.allclose(before[0], after[0])
        record = run_record(run)
        assert record["status"] == "completed" and record["device"] == "CPU"
        assert type(record["status"]) is str  # plain in the saved history
        assert record["settings"]["optimizer"]["config"]["learning_rate"] == 0.01
        assert record["history"]["loss"] == run.result["history"]["loss"]
    finally:
        run.close()


def test_stop_ends_the_run_promptly_with_the_weights_so_far():
    project = load_project(EXAMPLES / "digits_cnn.kproj")
    run = TrainingRun(project, Overrides(epochs=500))
    run.start()
    try:
        asked = None
        for event in run.events(timeout=240):
            if event["kind"] == EventKind.EPOCH and asked is None:
                run.stop()
                asked = time.monotonic()
        assert asked is not None
        assert run.status == "stopped"
        assert time.monotonic() - asked < 10  # a batch end, not 500 epochs; generous for a loaded machine
        assert len(run.result["history"]["loss"]) < 500
        assert run.trained_weights() is not None
    finally:
        run.close()


def test_pause_and_resume():
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    run = TrainingRun(project, Overrides(epochs=30))
    run.start()
    try:
        kinds = []
        for event in run.events(timeout=240):
            kinds.append(event["kind"])
            if event["kind"] == EventKind.EPOCH and event["epoch"] == 1:
                run.pause()
            if event["kind"] == EventKind.PAUSED:
                run.resume()
        assert kinds.count(EventKind.PAUSED) == 1 and kinds.count(EventKind.RESUMED) == 1
        assert kinds.index(EventKind.PAUSED) < kinds.index(EventKind.RESUMED) and run.status == "completed"
    finally:
        run.close()


def test_nan_loss_ends_the_run_with_a_clear_status():
    project = regression_project(epochs=20, optimizer={"class_name": "SGD", "config": {"learning_rate": 1e12}})
    run = TrainingRun(project)
    try:
        run_to_end(run)
        assert run.status == "nan"
        assert len(run.result["history"]["loss"]) < 20
    finally:
        run.close()


def test_data_that_does_not_fit_says_exactly_what_and_offers_the_fix(tmp_path):
    project = load_project(EXAMPLES / "digits_cnn.kproj")
    run = TrainingRun(project, Overrides(data={"source": "builtin", "name": "iris"}))
    try:
        run_to_end(run)
        assert run.result["kind"] == EventKind.FAILED
        assert run.result["message"] == "input 'image' expects (None, 8, 8, 1); iris gives (None, 4)"
    finally:
        run.close()

    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "flat.npz", x=(digits.data / 16).astype("float32"), y=digits.target)
    flat = Overrides(data={"source": "npz", "path": str(tmp_path / "flat.npz")}, epochs=1)
    run = TrainingRun(project, flat)
    try:
        run_to_end(run)
        assert run.result["message"] == "input 'image' expects (None, 8, 8, 1); flat.npz gives (None, 64)"
        assert run.result["hint"] == "fix: reshape to (None, 8, 8, 1)"
    finally:
        run.close()
    flat.fix_data = True
    run = TrainingRun(project, flat)
    try:
        run_to_end(run)
        assert run.status == "completed"
    finally:
        run.close()


def test_resume_after_a_crash_with_backup_and_restore(tmp_path):
    backup = tmp_path / "backup"
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    project.training["epochs"] = 8
    project.training["callbacks"] = {"terminate_on_nan": {}, "backup_and_restore": {"backup_dir": str(backup)}}
    run = TrainingRun(project)
    run.start()
    try:
        for event in run.events(timeout=240):
            if event["kind"] == EventKind.EPOCH and event["epoch"] == 2:
                run.terminate()  # as a crash would
                break
    finally:
        run.close()
    assert backup.exists()
    again = TrainingRun(project)
    try:
        seen = run_to_end(again)
        assert again.status == "completed", seen[-1]
        epochs = [e["epoch"] for e in seen if e["kind"] == EventKind.EPOCH]
        # Resumed after the last epoch backed up (the crash came at the end of epoch 2).
        assert epochs[0] in (2, 3) and epochs[-1] == 7
    finally:
        again.close()


def test_mirrored_strategy_over_two_logical_cpus():
    project = load_project(EXAMPLES / "digits_cnn.kproj")
    run = TrainingRun(project, Overrides(epochs=2, cpu_replicas=2))
    try:
        seen = run_to_end(run)
        assert seen[0]["device"] == "2 logical CPUs"
        assert run.status == "completed"
    finally:
        run.close()


def test_train_command_reaches_90_percent_on_digits_and_writes_metrics(tmp_path, capsys):
    project = tmp_path / "digits.kproj"
    project.write_bytes((EXAMPLES / "digits_cnn.kproj").read_bytes())
    code = main(
        [
            "train",
            str(project),
            "--epochs",
            "10",
            "--metrics-out",
            str(tmp_path / "metrics.csv"),
            "--save",
            str(tmp_path / "trained.keras"),
            "--update-project",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("training on CPU: 1438 samples (359 for validation), 10 epochs")
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == list(range(10))
    assert float(rows[-1]["val_accuracy"]) >= 0.9
    import keras

    trained = keras.saving.load_model(tmp_path / "trained.keras")
    assert trained.name == "digits_cnn"
    updated = load_project(project)
    assert updated.runs[-1]["status"] == "completed" and updated.graph.layers["digit"].weights is not None
    # The run keeps the weights it left: restoring them gives the project's weights back.
    run_id = updated.runs[-1]["id"]
    assert list(updated.run_weights) == [run_id]
    kept = updated.run_weights[run_id].arrays()
    assert all(np.array_equal(a, b) for a, b in zip(kept["digit"], updated.graph.layers["digit"].weights, strict=True))


def test_train_command_refuses_bad_data_in_one_line(tmp_path, capsys):
    assert main(["train", str(EXAMPLES / "digits_cnn.kproj"), "--data", "iris", "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("digits_cnn.kproj: input 'image' expects (None, 8, 8, 1); iris gives (None, 4)")
    assert main(["train", str(EXAMPLES / "digits_cnn.kproj"), "--data", "nothing.bin"]) == 2
    assert "unknown data 'nothing.bin'" in capsys.readouterr().err
    save_project(regression_project(), tmp_path / "r.kproj")
    assert main(["train", str(tmp_path / "r.kproj"), "--data", "table.csv"]) == 2
    assert "say which column is the target" in capsys.readouterr().err
