"""Hyperparameter sweeps: SPECs, search spaces, the study, the `sweep` command and its CSV.

Parsing and checking need no training; the sweeps themselves train tiny trials
(iris, one epoch) in child processes and are marked slow.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from builder_app.core import catalog
from builder_app.core.project import load_project
from builder_app.training import sweep
from builder_app.training.sweep import Spec, SweepError, parse_spec, search_space

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "resources" / "examples" / "iris_mlp.kproj"
SWEEP_EXAMPLE = ROOT / "resources" / "examples" / "dropout_sweep.kproj"


@pytest.fixture(scope="module")
def iris():
    catalog.prepare()
    return load_project(IRIS)


# ------------------------------------------------------------------ SPECs
@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("0.0,0.25,0.5", Spec("choices", choices=(0.0, 0.25, 0.5), text="0.0,0.25,0.5")),
        ("relu,tanh", Spec("choices", choices=("relu", "tanh"), text="relu,tanh")),
        ("16,32", Spec("choices", choices=(16, 32), text="16,32")),
        ("true,false", Spec("choices", choices=(True, False), text="true,false")),
        ("8:64", Spec("range", low=8, high=64, text="8:64")),
        ("0.1:0.5", Spec("range", low=0.1, high=0.5, text="0.1:0.5")),
        ("0:0.5:0.1", Spec("range", low=0, high=0.5, step=0.1, text="0:0.5:0.1")),
        ("log:1e-4:1e-2", Spec("log", low=1e-4, high=1e-2, text="log:1e-4:1e-2")),
    ],
)
def test_good_specs_parse(text, spec):
    assert parse_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty SPEC"),
        ("0.1,,0.2", "empty choice"),
        ("0.1,0.1", "named twice"),
        ("5:1", "lo must be below hi"),
        ("0:1:0", "step must be above 0"),
        ("0:1:2:3", "lo:hi or lo:hi:step"),
        ("a:b", "must be a number"),
        ("log:0:1", "above 0"),
        ("log:1", "log:lo:hi"),
        ("1:inf", "finite"),
    ],
)
def test_bad_specs_are_one_line(text, says):
    with pytest.raises(SweepError) as caught:
        parse_spec(text)
    message = str(caught.value)
    assert says in message and "\n" not in message


# ------------------------------------------------------------ dimensions
def test_a_layer_parameter_and_training_settings_make_a_space(iris):
    dims = search_space(
        iris.graph,
        ["dropout.rate=0,0.25,0.5", "hidden_1.units=8:32:8", "learning_rate=log:1e-4:1e-2", "optimizer=adam,sgd"],
    )
    rate, units, lr, opt = dims
    assert (rate.layer, rate.key, rate.kind) == ("dropout", "rate", "float")
    assert rate.spec.choices == (0.0, 0.25, 0.5)  # 0 becomes 0.0: rate is a float
    assert all(isinstance(v, float) for v in rate.grid_values())
    assert units.grid_values() == [8, 16, 24, 32]
    assert (lr.layer, lr.kind, lr.spec.kind) == (None, "float", "log")
    assert opt.spec.choices == ("adam", "sgd")
    with pytest.raises(SweepError, match="grid takes choices or a stepped range"):
        lr.grid_values()


@pytest.mark.parametrize(
    ("param", "says"),
    [
        ("droput.rate=0.1", "no layer 'droput' (did you mean 'dropout'?)"),
        ("dropout.rat=0.1", "unknown parameter 'rat' for Dropout"),
        ("dropout.rate=low,high", "'low' is not a number"),
        ("hidden_1.units=8.5:16", "range of whole numbers"),
        ("hidden_1.activation=0:1", "not a number; give choices"),
        ("momentum=0.1,0.9", "not a training setting"),
        ("learning_rate=0,0.1", "must be above 0"),
        ("batch_size=0:8", "at least 1"),
        ("optimizer=0.1:0.2", "a choice of names"),
        ("dropout.rate", "expected LAYER.ARG=SPEC"),
        ("dropout.rate=", "empty SPEC"),
    ],
)
def test_bad_dimensions_are_one_line_naming_what(iris, param, says):
    with pytest.raises(SweepError) as caught:
        search_space(iris.graph, [param])
    message = str(caught.value)
    assert says in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("params", "sampler"),
    [
        (["dropout.rate=0.0,0.25,0.5"], "grid"),
        (["dropout.rate=0.0:0.5:0.1", "batch_size=8,16"], "grid"),
        (["dropout.rate=0.0:0.5"], "tpe"),
        (["dropout.rate=0.1,0.2", "learning_rate=log:1e-4:1e-2"], "tpe"),
    ],
)
def test_without_a_sampler_listed_values_are_a_grid_and_ranges_are_searched(iris, params, sampler):
    assert sweep.default_sampler(search_space(iris.graph, params)) == sampler


def test_keras_refuses_a_value_before_any_trial(iris):
    with pytest.raises(SweepError, match="Keras refuses rate=1.5"):
        search_space(iris.graph, ["dropout.rate=0.1,1.5"], construct=True)
    with pytest.raises(SweepError, match="no optimizer 'adamm'"):
        search_space(iris.graph, ["optimizer=adam,adamm"], construct=True)


def test_a_trial_project_sets_its_params_with_set_param_and_leaves_the_project(iris):
    dims = search_space(iris.graph, ["dropout.rate=0.3", "batch_size=8"])
    values = {"dropout.rate": 0.3, "batch_size": 8}
    copy = sweep.trial_project(iris, dims, values)
    assert copy.graph.layers["dropout"].config["rate"] == 0.3
    assert iris.graph.layers["dropout"].config["rate"] == 0.1
    assert copy.runs == []
    from builder_app.training.runner import Overrides

    assert sweep.trial_overrides(Overrides(epochs=1), dims, values) == Overrides(epochs=1, batch_size=8)


def test_apply_best_is_one_batch_and_sets_training_settings(iris):
    from builder_app.core.ops import Batch

    project = load_project(IRIS)
    dims = search_space(project.graph, ["dropout.rate=0.0,0.4", "learning_rate=log:1e-4:1e-1"])
    steps, training = sweep.best_changes(dims, {"dropout.rate": 0.4, "learning_rate": 0.02})
    inverse = project.graph.apply(Batch(steps))
    assert project.graph.layers["dropout"].config["rate"] == 0.4
    project.graph.apply(inverse)
    assert project.graph.layers["dropout"].config["rate"] == 0.1
    sweep.apply_best(project, dims, {"dropout.rate": 0.4, "learning_rate": 0.02})
    assert project.graph.layers["dropout"].config["rate"] == 0.4
    assert project.training["optimizer"]["config"]["learning_rate"] == 0.02
    assert training == {"learning_rate": 0.02}


def test_csv_has_trial_params_value_state(tmp_path, iris):
    dims = search_space(iris.graph, ["dropout.rate=0,0.5", "batch_size=8,16"])
    rows = [
        sweep.TrialRow(0, {"dropout.rate": 0.0, "batch_size": 8}, 0.5, "COMPLETE"),
        sweep.TrialRow(1, {"dropout.rate": 0.5, "batch_size": 16}, None, "PRUNED"),
    ]
    sweep.write_csv(tmp_path / "r.csv", dims, rows)
    with open(tmp_path / "r.csv", newline="") as handle:
        read = list(csv.reader(handle))
    assert read == [
        ["trial", "dropout.rate", "batch_size", "value", "state"],
        ["0", "0.0", "8", "0.5", "COMPLETE"],
        ["1", "0.5", "16", "", "PRUNED"],
    ]


def test_results_are_sorted_by_the_objective():
    rows = [
        sweep.TrialRow(0, {}, 0.5, "COMPLETE"),
        sweep.TrialRow(1, {}, None, "RUNNING"),
        sweep.TrialRow(2, {}, 0.2, "COMPLETE"),
    ]
    assert [r.number for r in sweep.sorted_rows(rows, "minimize")] == [2, 0, 1]
    assert [r.number for r in sweep.sorted_rows(rows, "maximize")] == [0, 2, 1]
    assert sweep.direction_of("val_accuracy") == "maximize"
    assert sweep.direction_of("val_loss") == "minimize"


def test_the_study_is_stored_beside_the_project(tmp_path):
    assert sweep.default_storage(tmp_path / "m.kproj") == f"sqlite:///{(tmp_path / 'm.sweep.db').resolve()}"


# ----------------------------------------------------------- the command
def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "builder_app", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900
    )


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--param", "nosuch.rate=0.1"], "no layer 'nosuch'"),
        (["--param", "dropout.rate=0.1:0.5", "--sampler", "grid"], "a grid needs a step"),
        (["--param", "dropout.rate=5:1"], "lo must be below hi"),
        (["--param", "dropout.rate=0.1", "--storage", "nosuchdb://x"], "--storage nosuchdb://x"),
    ],
)
def test_bad_arguments_exit_2_in_one_line(tmp_path, extra, says):
    project = tmp_path / "iris.kproj"
    project.write_bytes(IRIS.read_bytes())
    done = _cli("sweep", project, *extra, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_project_and_no_param_exit_2(tmp_path):
    done = _cli("sweep", tmp_path / "missing.kproj", "--param", "dropout.rate=0.1", cwd=tmp_path)
    assert done.returncode == 2 and "cannot open the file" in done.stderr
    done = _cli("sweep", IRIS, cwd=tmp_path)
    assert done.returncode == 2 and "--param" in done.stderr


@pytest.mark.slow
@pytest.mark.training
def test_a_grid_of_three_dropout_rates_gives_three_trials_and_apply_best_sets_the_rate(tmp_path):
    project = tmp_path / "iris.kproj"
    project.write_bytes(IRIS.read_bytes())
    out = tmp_path / "results.csv"
    done = _cli(
        "sweep", project, "--param", "dropout.rate=0.0,0.25,0.5", "--sampler", "grid", "--epochs", "1",
        "--out", out, "--apply-best", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["trial", "dropout.rate", "value", "state"]
    assert sorted(float(r["dropout.rate"]) for r in rows) == [0.0, 0.25, 0.5]
    assert all(r["state"] == "COMPLETE" for r in rows)
    best = min(rows, key=lambda r: float(r["value"]))
    saved = load_project(project)
    assert saved.graph.layers["dropout"].config["rate"] == float(best["dropout.rate"])
    trials = [r for r in saved.runs if "sweep" in r]
    assert len(trials) == 3
    assert sorted(r["sweep"]["params"]["dropout.rate"] for r in trials) == [0.0, 0.25, 0.5]
    assert all(r["settings"]["epochs"] == 1 and r["history"]["val_loss"] for r in trials)
    assert (tmp_path / "iris.sweep.db").exists()
    # The same command again: the grid is complete in the stored study, no trial runs.
    again = _cli("sweep", project, "--param", "dropout.rate=0.0,0.25,0.5", "--sampler", "grid", "--epochs", "1",
                 cwd=tmp_path)
    assert again.returncode == 0 and "0 trials" in again.stdout, again.stdout + again.stderr


@pytest.mark.slow
@pytest.mark.training
def test_no_trial_succeeding_exits_1(tmp_path):
    project = tmp_path / "iris.kproj"
    project.write_bytes(IRIS.read_bytes())
    # Regression targets for a softmax classifier: every trial's data check fails in its child.
    done = _cli("sweep", project, "--param", "dropout.rate=0.1", "--sampler", "grid", "--data", "regression",
                "--epochs", "1", "--out", tmp_path / "r.csv", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no trial succeeded" in done.stderr
    assert (tmp_path / "r.csv").read_text().splitlines()[1].endswith(",FAIL")
