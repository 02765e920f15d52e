"""channels_first convolutions on every kind of machine.

Without a GPU, TensorFlow on some CPUs (AMD processors, for one) has no
channels_first convolution. There the node says so, the model stays valid and
exports, and what would run it (training, ``export --check``) refuses in one
line naming the layer; where the convolution exists, the same model trains and
its export checks out.
"""

import json

import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core import keras_compat
from builder_app.core.catalog import default_config
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, add_layer
from builder_app.core.project import Project, save_project

SENTENCE = "channels_first convolutions run only on a GPU with TensorFlow on this machine"


@pytest.fixture(scope="module")
def runs_here():
    return keras_compat.channels_first_runs("conv", 2)


def channels_first_project(path):
    graph = ModelGraph("nchw")
    previous = None
    for name, class_name, params in (
        ("image", "InputLayer", {"batch_shape": [None, 2, 6, 6], "dtype": "float32"}),
        ("cf", "Conv2D", {"filters": 3, "kernel_size": 3, "data_format": "channels_first"}),
        ("flat", "Flatten", {}),
        ("score", "Dense", {"units": 1}),
    ):
        op = add_layer(graph, class_name, {**default_config(class_name), **params}, name=name)
        graph.apply(op)
        if previous is not None:
            graph.apply(Connect(previous, 0, op.node.id, 0))
        previous = op.node.id
    save_project(Project(graph), path)
    return path


def test_the_sentence_is_the_one_the_app_says():
    assert keras_compat.CHANNELS_FIRST_ON_CPU == SENTENCE


def test_validate_reports_it_on_the_node_and_the_model_stays_valid(tmp_path, capsys, runs_here):
    project = channels_first_project(tmp_path / "nchw.kproj")
    assert main(["validate", str(project), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True
    assert [node["output_shapes"] for node in report["nodes"]][1] == [[None, 3, 4, 4]]
    # The JSON contract's node fields are fixed; the warning is in the summary and on the canvas.
    assert main(["validate", str(project)]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if ": warning: " in line]
    assert warnings == ([] if runs_here else [f"{project}: warning: layer 'cf': {SENTENCE}"])


def test_export_writes_the_file_and_check_refuses_or_passes(tmp_path, capsys, runs_here):
    project = channels_first_project(tmp_path / "nchw.kproj")
    target = tmp_path / "nchw.keras"
    code = main(["export", str(project), "--keras", str(target), "--check"])
    captured = capsys.readouterr()
    assert target.exists()  # exporting needs no convolution kernel: the file runs on a GPU
    if runs_here:
        assert code == 0, captured.err
        assert "(ok)" in captured.out
    else:
        assert code == 1
        assert captured.err.strip().splitlines() == [
            f"check failed: {target}: layer 'cf' cannot run here: {SENTENCE}"
        ]


def test_training_refuses_in_one_line_or_trains(tmp_path, capsys, runs_here):
    project = channels_first_project(tmp_path / "nchw.kproj")
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(
        data,
        x=rng.normal(size=(32, 2, 6, 6)).astype("float32"),
        y=rng.normal(size=(32, 1)).astype("float32"),
    )
    code = main(["train", str(project), "--data", str(data), "--epochs", "1", "--batch-size", "16"])
    err = capsys.readouterr().err.strip().splitlines()
    if runs_here:
        assert code == 0, err
    else:
        assert code == 1
        assert err[-1] == f"builder-app: {project}: layer 'cf' cannot run here: {SENTENCE}"
