"""Project -> training script: it lints, trains as the settings say, and carries nothing else."""

from __future__ import annotations

import ast
import inspect
import os
import runpy
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from builder_app.core import portable_data as portable
from builder_app.core.datasets import BUILTIN
from builder_app.core.project import Project, load_project, save_project
from builder_app.core.training_settings import SettingsError, resolve
from builder_app.exporters.train_script import training_script
from builder_app.training import data as app_data
from tests.test_import import run_cli
from tests.test_python_code import write

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"


def run_script(path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        cwd=path.parent,  # away from the checkout: the script must not need builder_app
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        timeout=300,
    )


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_digits_script_trains_and_saves(strategy, tmp_path):
    project = load_project(EXAMPLES / "digits_cnn.kproj")
    source = training_script(project)
    assert "builder_app" not in source
    script = write(source, tmp_path / "train.py")
    done = run_script(script, "--epochs", "2", "--strategy", strategy, "--save", "trained.keras")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Epoch 2/2" in done.stdout and "val_accuracy" in done.stdout
    trained = keras.saving.load_model(tmp_path / "trained.keras", safe_mode=True)
    assert trained.name == "digits_cnn" and trained.optimizer.__class__.__name__ == "Adam"


def test_settings_reach_the_script_and_npz_data_feeds_several_inputs(tmp_path):
    project = load_project(EXAMPLES / "siamese_digits.kproj")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "pairs.npz",
        x0=rng.normal(size=(64, 8, 8, 1)).astype("float32"),
        x1=rng.normal(size=(64, 8, 8, 1)).astype("float32"),
        y=rng.integers(0, 2, size=(64, 1)).astype("float32"),
    )
    project.training = {
        "data": {"source": "npz", "path": "pairs.npz"},
        "epochs": 3,
        "batch_size": 16,
        "validation_split": 0.25,
        "optimizer": {"class_name": "SGD", "config": {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}},
        "metrics": ["accuracy", "AUC"],
    }
    source = training_script(project)
    assert "keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)" in source
    assert 'LOSS = "binary_crossentropy"' in source and 'METRICS = ["accuracy", "AUC"]' in source
    script = write(source, tmp_path / "train.py")
    done = run_script(script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Epoch 3/3" in done.stdout and "val_AUC" in done.stdout


def test_a_project_without_data_asks_for_it(tmp_path):
    project = load_project(EXAMPLES / "unet_groupnorm.kproj")
    script = write(training_script(project), tmp_path / "train.py")
    done = run_script(script)
    assert done.returncode == 2
    assert "say which data to train on: --data {digits,iris,regression,spirals} or --data FILE.npz" in done.stderr


def test_defaults_follow_what_each_output_computes():
    graph = load_project(EXAMPLES / "unet_groupnorm.kproj").graph
    settings = resolve({}, graph)
    assert settings["optimizer"] == {"class_name": "Adam", "config": {"learning_rate": 0.001}}
    assert (settings["epochs"], settings["batch_size"], settings["validation_split"]) == (10, 32, 0.2)
    assert settings["loss"] == ["binary_crossentropy"] and settings["metrics"] == [["mean_absolute_error"]]
    digits = load_project(EXAMPLES / "digits_cnn.kproj")
    settings = resolve(digits.training, digits.graph)
    assert settings["data"] == {"source": "builtin", "name": "digits"}
    assert settings["loss"] == ["sparse_categorical_crossentropy"] and settings["metrics"] == [["accuracy"]]


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"optimizer": {"class_name": "system"}}, "'system' is not a keras.optimizers class"),
        ({"optimizer": {"class_name": "Optimizer"}}, "'Optimizer' is not a keras.optimizers class"),
        ({"optimizer": {"class_name": "Adam", "config": {"learning_rate": {"class_name": "os.system"}}}}, "must be a number"),
        ({"optimizer": {"class_name": "Adam", "config": {"__import__": 1}}}, "Adam takes no argument '__import__'"),
        ({"loss": "os.system"}, "'os.system' is not a Keras loss"),
        ({"loss": "__import__('os').system('x')"}, "is not a Keras loss"),
        ({"metrics": ["accuracy", "eval"]}, "'eval' is not a Keras metric"),
        ({"data": {"source": "builtin", "name": "mnist'); import os; ('"}}, "unknown built-in dataset"),
        ({"data": {"source": "url", "path": "http://x"}}, "unknown source 'url'"),
        ({"epochs": 0}, "epochs must be a whole number of at least 1"),
        ({"validation_split": 1.5}, "validation_split must be a fraction"),
        ({"loss": ["mse", "mse"]}, "one entry per model output (1)"),
        ({"learning_rate_schedule": {"class_name": "Lambda"}}, "is not a keras.optimizers.schedules class"),
        ({"callbacks": {"lambda_callback": {}}}, "unknown callback 'lambda_callback'"),
        ({"callbacks": {"csv_logger": {"filename": {"class_name": "x"}}}}, "filename must be a number, text"),
        ({"callbacks": {"early_stopping": {"on_train_end": "x"}}}, "EarlyStopping takes no argument 'on_train_end'"),
    ],
)
def test_settings_from_a_file_name_only_what_keras_provides(training, message):
    graph = load_project(EXAMPLES / "iris_mlp.kproj").graph
    with pytest.raises(SettingsError) as caught:
        resolve(training, graph)
    assert message in str(caught.value)


def test_export_command_refuses_bad_settings_in_one_line(tmp_path):
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    project.training = {"loss": "os.system"}
    save_project(Project(project.graph, training=project.training), tmp_path / "bad.kproj")
    done = run_cli("export", str(tmp_path / "bad.kproj"), "--train-script", str(tmp_path / "train.py"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"builder-app: {tmp_path / 'bad.kproj'}: loss: 'os.system' is not a Keras loss"
    assert not (tmp_path / "train.py").exists()


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_datasets_load_offline_and_repeat(name):
    x1, y1 = BUILTIN[name].load(3)
    x2, y2 = BUILTIN[name].load(3)
    assert len(x1) == len(y1) > 100 and x1.dtype == np.float32
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_schedules_callbacks_and_csv_data_reach_the_script(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    with open(tmp_path / "flowers.csv", "w") as handle:
        handle.write("sepal_l,sepal_w,petal_l,petal_w,species\n")
        for row, label in zip(iris.data, iris.target, strict=True):
            handle.write(",".join(f"{v:.1f}" for v in row) + f",{iris.target_names[label]}\n")
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    project.training = {
        "data": {"source": "csv", "path": "flowers.csv", "target": "species"},
        "epochs": 3,
        "learning_rate_schedule": {
            "class_name": "CosineDecay",
            "config": {"initial_learning_rate": 0.02, "decay_steps": 100, "warmup_steps": 5, "warmup_target": 0.05},
        },
        "callbacks": {
            "terminate_on_nan": {},
            "early_stopping": {"monitor": "val_loss", "patience": 2},
            "csv_logger": {"filename": "log.csv"},
        },
    }
    source = training_script(project)
    # The calls as written, whatever the line breaks: each function's return value.
    returned = {
        node.name: ast.unparse(node.body[-1].value)
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name in ("make_optimizer", "make_callbacks")
    }
    assert returned["make_optimizer"] == (
        "keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.CosineDecay("
        "initial_learning_rate=0.02, decay_steps=100, warmup_steps=5, warmup_target=0.05))"
    )
    assert "keras.callbacks.EarlyStopping(monitor='val_loss', patience=2)" in returned["make_callbacks"]
    script = write(source, tmp_path / "train.py")
    done = run_script(script)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (tmp_path / "log.csv").read_text().splitlines()
    # One column per metric and its validation twin (a learning rate column only where Keras logs
    # the schedule's value: not Keras 3.15).
    columns = log[0].split(",")
    assert columns[0] == "epoch" and sorted(columns[1:]) == columns[1:]
    assert set(columns[1:]) - {"learning_rate"} == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert len(log) == 4  # a header and three epochs


def test_the_script_carries_the_apps_own_data_code():
    source = training_script(load_project(EXAMPLES / "digits_cnn.kproj"))
    for part in portable.SCRIPT_PARTS:
        assert inspect.getsource(part).strip() in source, part.__name__
    # What the copied functions import is what the script imports.
    module_imports = [
        ast.unparse(node)
        for node in ast.parse(inspect.getsource(portable)).body
        if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "module", None) != "__future__"
    ]
    assert sorted(module_imports) == sorted(portable.SCRIPT_IMPORTS)
    assert all(line in source.splitlines() for line in portable.SCRIPT_IMPORTS)


@pytest.mark.parametrize(
    ("n", "fraction", "shuffle", "seed"),
    [(150, 0.2, True, 0), (1797, 0.1, True, 42), (101, 0.33, False, 7), (64, 0.25, True, 3), (10, 0.0, True, 1)],
)
def test_the_app_and_the_script_set_the_same_samples_aside(n, fraction, shuffle, seed, tmp_path):
    script = write(training_script(load_project(EXAMPLES / "iris_mlp.kproj")), tmp_path / "train.py")
    namespace = runpy.run_path(str(script), run_name="not_main")  # the script's own functions
    train, held = namespace["split_indices"](n, fraction, shuffle, seed)
    samples = app_data.Arrays([np.arange(n)], [np.arange(n) * 10], "rows")
    app_train, app_held = app_data.split(samples, fraction, shuffle=shuffle, seed=seed)
    np.testing.assert_array_equal(app_train.x[0], train)
    np.testing.assert_array_equal(app_train.y[0], train * 10)
    if fraction == 0:
        assert held is None and app_held is None
    else:
        np.testing.assert_array_equal(app_held.x[0], held)
        assert len(held) == max(1, round(n * fraction)) and not set(held) & set(train)
    if not shuffle:
        np.testing.assert_array_equal(np.concatenate([train, held]), np.arange(n))


def test_the_script_reads_data_files_as_the_app_does(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "pairs.npz", x0=rng.normal(size=(20, 3)), x1=rng.normal(size=(20, 2)), y=np.arange(20))
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n")
    script = write(training_script(load_project(EXAMPLES / "iris_mlp.kproj")), tmp_path / "train.py")
    namespace = runpy.run_path(str(script), run_name="not_main")
    for text in ("pairs.npz", "t.csv:label", "digits"):
        spec = app_data.parse_spec(str(tmp_path / text) if text != "digits" else text)
        assert namespace["parse_spec"](str(tmp_path / text) if text != "digits" else text, namespace["BUILTIN"]) == spec
        xs, ys, name, classes = namespace["load_arrays"](spec, 0, [], namespace["BUILTIN"])
        app = app_data.load(spec, seed=0)
        assert (name, classes) == (app.name, app.classes)
        for a, b in zip([*xs, *ys], [*app.x, *app.y], strict=True):
            np.testing.assert_array_equal(a, b)
