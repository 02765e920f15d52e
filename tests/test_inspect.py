"""The activation inspector's work (training/activations.py, weight_stats.py) and `builder-app inspect`."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core.keras_model import copy_weights_to_graph
from builder_app.core.project import Project, load_project, save_project
from builder_app.core.runs import record_run
from builder_app.importers.keras_config import graph_from_model_config
from builder_app.training import weight_stats
from builder_app.training.activations import (
    ActivationProbe,
    InspectError,
    data_sample,
    feature_grid,
    find_target,
    load_project_data,
    random_inputs,
    statistics,
)
from tests.test_cli import broken_project

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "resources" / "examples"
DIGITS = EXAMPLES / "digits_cnn.kproj"
IRIS = EXAMPLES / "iris_mlp.kproj"
CONTRACT_KEYS = {"layer", "output_shape", "mean", "std", "min", "max", "zero_fraction", "nan_count"}


@pytest.fixture(scope="module")
def digits():
    project = load_project(DIGITS)
    probe = ActivationProbe(project.graph)
    return project, probe, load_project_data(project, probe.model)


@pytest.fixture(scope="module")
def iris():
    project = load_project(IRIS)
    probe = ActivationProbe(project.graph)
    return project, probe, load_project_data(project, probe.model)


def direct(model, layer_name, inputs):
    """The layer's output as Keras itself computes it: a model ending there, called in inference."""
    ending = keras.Model(model.inputs, model.get_layer(layer_name).output)
    return np.asarray(ending(inputs, training=False))[0]


def test_statistics_equal_a_direct_keras_computation(digits):
    project, probe, data = digits
    sample = data_sample(data, 5)
    names = ["image", "conv_1", "batch_norm_1", "global_pool", "dropout", "digit"]
    activations = probe.run([probe.node_for(n) for n in names], sample)
    assert [a.layer for a in activations] == names
    for activation in activations:
        expected = direct(probe.model, activation.layer, sample.inputs)
        assert activation.array.shape == expected.shape
        np.testing.assert_array_equal(activation.array, expected)  # the same eager computation: exactly
        stats = activation.stats
        assert stats.mean == pytest.approx(float(expected.mean()), rel=1e-5, abs=1e-7)
        assert stats.std == pytest.approx(float(expected.std()), rel=1e-4, abs=1e-7)
        assert stats.min == pytest.approx(float(expected.min()), abs=1e-6)
        assert stats.max == pytest.approx(float(expected.max()), rel=1e-5)
        assert stats.zero_fraction == pytest.approx(float(np.mean(expected == 0)), abs=1e-3)
        assert stats.nan_count == 0 and stats.inf_count == 0
    # The input is the sample itself, drawn as an image; conv outputs as feature maps.
    np.testing.assert_array_equal(activations[0].array, sample.inputs[0][0])
    assert [a.display for a in activations[:2]] == ["image", "feature_maps"]
    assert activations[-1].display == "vector"
    assert activations[1].to_dict()["output_shape"] == [None, 8, 8, 16]


def test_statistics_count_nan_inf_and_zeros():
    stats = statistics(np.array([0.0, np.nan, np.inf, -np.inf, 2.0, 0.0], dtype="float32"))
    assert (stats.nan_count, stats.inf_count) == (1, 2)
    assert stats.zero_fraction == pytest.approx(2 / 6)
    assert (stats.min, stats.max, stats.mean) == (0.0, 2.0, pytest.approx(2 / 3))
    nothing = statistics(np.array([np.nan, np.nan]))
    assert nothing.mean is None and nothing.nan_count == 2
    assert statistics(np.arange(4, dtype="int32")).to_dict()["zero_fraction"] == 0.25


def test_training_and_inference_differ_for_dropout_and_agree_for_dense(iris):
    project, probe, data = iris
    sample = data_sample(data, 10)
    by_name = {c.inference.layer: c for c in probe.compare([probe.node_for(n) for n in ("hidden_1", "hidden_2", "dropout", "species")], sample)}
    for dense in ("hidden_1", "hidden_2"):
        assert by_name[dense].max_difference == 0.0 and not by_name[dense].differs
        assert by_name[dense].differing_layers == []
        np.testing.assert_array_equal(by_name[dense].inference.array, by_name[dense].training.array)
    dropped = by_name["dropout"]
    assert dropped.differs and dropped.max_difference > 0
    assert dropped.differing_layers == ["dropout"]
    rate = project.graph.layer("dropout").config["rate"]
    kept = dropped.training.array != 0
    # Kept units are scaled by 1 / (1 - rate); dropped ones are 0.
    np.testing.assert_allclose(dropped.training.array[kept], dropped.inference.array[kept] / (1 - rate), rtol=1e-5)
    assert np.count_nonzero(~kept) > np.count_nonzero(dropped.inference.array == 0)
    assert by_name["species"].differs and by_name["species"].differing_layers == ["dropout"]
    # Seeded: the same sample drops the same units each time.
    again = probe.run([probe.node_for("dropout")], sample, training=True)[0]
    np.testing.assert_array_equal(again.array, dropped.training.array)


def test_batchnorm_moving_statistics_beside_the_batchs_and_left_unchanged(digits):
    project, probe, data = digits
    sample = data_sample(data, 2)
    bn_node = probe.node_for("batch_norm_1")
    layer = probe.model.get_layer("batch_norm_1")
    before = [np.array(v) for v in layer.non_trainable_weights]
    inference, training = probe.compare([bn_node], sample)[0].inference, probe.compare([bn_node], sample)[0].training
    assert not np.allclose(inference.array, training.array)  # batch statistics, not the moving ones
    for old, new in zip(before, layer.non_trainable_weights, strict=True):
        np.testing.assert_array_equal(old, np.asarray(new))  # training mode did not move them
    stats = probe.batchnorm(bn_node, sample)
    given = direct(probe.model, "conv_1", sample.inputs)
    np.testing.assert_allclose(stats.batch_mean, given.mean(axis=(0, 1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats.batch_variance, given.var(axis=(0, 1)), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(stats.moving_mean, np.asarray(layer.moving_mean))
    np.testing.assert_allclose(stats.moving_variance, np.asarray(layer.moving_variance))
    assert stats.count == 64 and stats.axis == 3
    with pytest.raises(InspectError, match="'conv_1' is a Conv2D, not a BatchNormalization"):
        probe.batchnorm(probe.node_for("conv_1"), sample)


def test_each_call_of_a_shared_sub_model_has_its_own_output():
    project = load_project(EXAMPLES / "siamese_digits.kproj")
    probe = ActivationProbe(project.graph)
    sample = random_inputs(probe.model, 3)
    first, second = [n for n in project.graph.topological_order() if project.graph.node(n).layer == "tower"]
    assert probe.node_for("tower") == first
    a, b = probe.run([first, second], sample)
    tower = probe.model.get_layer("tower")
    np.testing.assert_allclose(a.array, np.asarray(tower(sample.inputs[0]))[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.array, np.asarray(tower(sample.inputs[1]))[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.array, b.array)
    again = random_inputs(probe.model, 3)
    np.testing.assert_array_equal(again.inputs[0], sample.inputs[0])


def test_unknown_names_and_samples_say_which(digits):
    project, probe, data = digits
    with pytest.raises(InspectError, match=r"no layer 'conv1' \(did you mean 'conv_1'\?\)"):
        probe.node_for("conv1")
    with pytest.raises(InspectError, match=f"samples 0 to {len(data) - 1}; there is no sample {len(data)}"):
        data_sample(data, len(data))


def test_feature_grid_tiles_channels_with_gaps():
    maps = np.arange(5 * 2 * 3, dtype="float32").reshape(5, 2, 3)
    grid = feature_grid(maps, columns=3)
    assert grid.shape == (2 * 2 + 1, 3 * 3 + 2)
    np.testing.assert_array_equal(grid[0:2, 4:7], maps[1])
    np.testing.assert_array_equal(grid[3:5, 0:3], maps[3])
    assert np.isnan(grid[2]).all() and np.isnan(grid[3:5, 8:]).all()


def test_weight_histograms_and_the_change_between_two_runs(digits):
    project, probe, _ = digits
    project = load_project(DIGITS)
    names = weight_stats.weight_names(probe.model)
    assert names["conv_1"] == ["kernel", "bias"]
    start = weight_stats.model_weights(probe.model)
    hists = weight_stats.histograms(start, names, bins=20)
    conv_kernel = next(h for h in hists if h.label == "conv_1" and h.name == "kernel")
    assert conv_kernel.shape == (3, 3, 1, 16) and conv_kernel.histogram.counts.sum() == 3 * 3 * 16
    assert len(conv_kernel.histogram.edges) == 21
    # Two kept runs: the second moved conv_1's kernel by exactly 0.5 everywhere.
    graph = project.graph.clone()
    for label, values in start.items():
        graph.layers[label].weights = [v.copy() for v in values]
    record_run(project, {"id": "run-1"}, graph)
    graph.layers["conv_1"].weights = [start["conv_1"][0] + 0.5, start["conv_1"][1]]
    record_run(project, {"id": "run-2"}, graph)
    moved, apart = weight_stats.changes(
        weight_stats.run_weights(project, "run-1"), weight_stats.run_weights(project, "run-2"), names
    )
    assert apart == []
    by_key = {(c.label, c.name): c for c in moved}
    assert by_key[("conv_1", "kernel")].mean_abs_change == pytest.approx(0.5)
    kernel = start["conv_1"][0].astype(np.float64)
    assert by_key[("conv_1", "kernel")].relative_change == pytest.approx(0.5 * np.sqrt(kernel.size) / np.linalg.norm(kernel))
    assert by_key[("conv_1", "bias")].mean_abs_change == 0.0 and by_key[("conv_1", "bias")].relative_change is None
    assert by_key[("digit", "kernel")].mean_abs_change == 0.0
    change = by_key[("conv_1", "kernel")]
    assert change.before.counts.sum() == change.after.counts.sum() == kernel.size
    np.testing.assert_array_equal(change.before.edges, change.after.edges)
    with pytest.raises(InspectError, match="run 'run-9' is not in the history"):
        weight_stats.run_weights(project, "run-9")
    project.runs.append({"id": "run-3"})
    with pytest.raises(InspectError, match="run 'run-3' kept no weights"):
        weight_stats.run_weights(project, "run-3")


# ------------------------------------------------------------------ the command line
def test_inspect_json_on_a_bundled_example_equals_keras(digits, tmp_path, capsys):
    _, probe, data = digits
    # The example holds no weights: give it the probe's, so the command computes with the same ones.
    project = load_project(DIGITS)
    copy_weights_to_graph(project.graph, probe.model)
    path = tmp_path / "digits_weights.kproj"
    save_project(project, path)
    code = main(["inspect", str(path), "--node", "conv_1", "--node", "digit", "--sample", "7", "--json"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and len(out) == 2
    objects = [json.loads(line) for line in out]
    assert [o["layer"] for o in objects] == ["conv_1", "digit"]
    sample = data_sample(data, 7)
    for obj in objects:
        assert CONTRACT_KEYS <= set(obj)
        expected = direct(probe.model, obj["layer"], sample.inputs)
        assert obj["output_shape"] == [None, *expected.shape]
        assert obj["mean"] == pytest.approx(float(expected.mean()), rel=1e-5, abs=1e-7)
        assert obj["std"] == pytest.approx(float(expected.std()), rel=1e-4, abs=1e-7)
        assert obj["max"] == pytest.approx(float(expected.max()), rel=1e-5)
        assert obj["zero_fraction"] == pytest.approx(float(np.mean(expected == 0)), abs=1e-3)
        assert obj["nan_count"] == 0 and obj["sample"] == "digits sample 7" and obj["training"] is False


def test_inspect_training_flag_and_random_sample(capsys):
    args = ["inspect", str(IRIS), "--node", "hidden_1", "--node", "dropout", "--random", "4", "--json"]
    assert main(args) == 0
    inference = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main([*args, "--training"]) == 0
    training = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert inference[0]["mean"] == training[0]["mean"]  # Dense: the same
    assert inference[1]["zero_fraction"] < training[1]["zero_fraction"]  # Dropout: units dropped
    assert training[1]["training"] is True and training[1]["differs_in_training"] is True
    assert inference[0]["sample"] == "random input (seed 4)"
    assert main(["inspect", str(IRIS), "--node", "dropout", "--training"]) == 0
    out = capsys.readouterr().out
    assert "training=True" in out and "computes differently when training, up to here: dropout" in out


def test_inspect_png_draws_a_figure(tmp_path, capsys):
    target = tmp_path / "maps.png"
    assert main(["inspect", str(DIGITS), "--node", "conv_1", "--node", "digit", "--png", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PySide6 import QtGui

    image = QtGui.QImage(str(target))
    assert image.width() > 800 and image.height() > 600
    assert f"{target}: {image.width()}x{image.height()}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--node", "conv1"], "the model has no layer 'conv1' (did you mean 'conv_1'?)"),
        (["--node", "conv_1", "--sample", "5000"], "there is no sample 5000"),
    ],
)
def test_inspect_bad_arguments_are_one_line_and_exit_2(extra, message, capsys):
    assert main(["inspect", str(DIGITS), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(DIGITS) in err


def test_inspect_refuses_an_invalid_project_in_one_line(tmp_path, capsys):
    path, _ = broken_project(tmp_path)
    assert main(["inspect", str(path), "--node", "branch_a", "--random", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Add needs inputs of one shape" in err


def test_inspect_without_data_asks_for_a_random_sample(tmp_path, capsys):
    project = load_project(IRIS)
    project.training = {k: v for k, v in project.training.items() if k != "data"}
    path = tmp_path / "no_data.kproj"
    save_project(project, path)
    assert main(["inspect", str(path), "--node", "hidden_1", "--sample", "0"]) == 2
    assert "names no training data: use a random sample (--random SEED)" in capsys.readouterr().err
    assert main(["inspect", str(path), "--node", "hidden_1", "--json"]) == 0  # no data: a random input
    assert json.loads(capsys.readouterr().out)["sample"] == "random input (seed 0)"


def test_inspect_answers_help_and_a_mistyped_layer_without_tensorflow(tmp_path):
    from tests.test_cli_fast import cli

    answer = cli("inspect", "--help", cwd=tmp_path)
    assert answer.code == 0 and not answer.tensorflow and answer.out.startswith("usage: builder-app inspect")
    answer = cli("inspect", DIGITS, "--node", "conv1", cwd=tmp_path)
    assert answer.code == 2 and not answer.tensorflow
    assert answer.line == f"builder-app: {DIGITS}: the model has no layer 'conv1' (did you mean 'conv_1'?)"
    answer = cli("inspect", DIGITS, "--node", "conv_1", "--sample", "-1", cwd=tmp_path)
    assert answer.code == 2 and not answer.tensorflow and "expected a whole number of at least 0" in answer.line


# ------------------------------------------------------------------ several outputs
def lstm_project(tmp_path=None):
    """A project whose LSTM has three outputs (sequence, h, c); the head reads h."""
    inputs = keras.Input((5, 3), name="steps")
    seq, h, c = keras.layers.LSTM(4, return_sequences=True, return_state=True, name="lstm")(inputs)
    head = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(inputs, [head, seq, c])
    project = Project(graph=graph_from_model_config({"class_name": "Functional", "config": model.get_config()}))
    if tmp_path is not None:
        save_project(project, tmp_path / "lstm.kproj")
    return project


def test_each_output_of_a_node_with_several_can_be_inspected():
    project = lstm_project()
    probe = ActivationProbe(project.graph)
    sample = random_inputs(probe.model, 1)
    lstm = probe.node_for("lstm")
    assert probe.output_count(lstm) == 3 and probe.output_count(probe.node_for("head")) == 1
    outputs = probe.model.get_layer("lstm").output
    activations = probe.run([lstm, (lstm, 1), (lstm, 2)], sample)
    for port, activation in enumerate(activations):
        expected = np.asarray(keras.Model(probe.model.inputs, outputs[port])(sample.inputs, training=False))[0]
        np.testing.assert_array_equal(activation.array, expected)
        assert (activation.port, activation.outputs) == (port, 3)
        assert activation.to_dict()["port"] == port
    assert activations[0].array.shape == (5, 4) and activations[1].array.shape == (4,)
    assert not np.array_equal(activations[1].array, activations[2].array)  # h is not c
    assert probe.target_for("lstm:2") == (lstm, 2) and probe.target_for("lstm") == (lstm, 0)
    with pytest.raises(InspectError, match="'lstm' has outputs 0 to 2; there is no output 3"):
        probe.run([(lstm, 3)], sample)
    with pytest.raises(InspectError, match="'head' has output 0; there is no output 1"):
        probe.target_for("head:1")
    with pytest.raises(InspectError, match="an output is named LAYER:N"):
        find_target(project.graph, "lstm:h")
    with pytest.raises(InspectError, match="no layer 'lstn'"):
        find_target(project.graph, "lstn:1")


def test_inspect_names_an_output_as_layer_colon_n(tmp_path, capsys):
    lstm_project(tmp_path)
    path = tmp_path / "lstm.kproj"
    assert main(["inspect", str(path), "--node", "lstm", "--node", "lstm:1", "--random", "2", "--json"]) == 0
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (first["port"], first["output_shape"], first["outputs"]) == (0, [None, 5, 4], 3)
    assert (second["port"], second["output_shape"]) == (1, [None, 4])
    assert main(["inspect", str(path), "--node", "lstm:7", "--random", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'lstm' has outputs 0 to 2; there is no output 7" in err


# ------------------------------------------------------------------ one eager pass, nothing stale
def test_batchnorm_inputs_come_from_the_same_pass_and_a_new_run_computes_afresh(digits):
    project, probe, data = digits
    sample = data_sample(data, 9)
    bn = probe.node_for("batch_norm_1")
    source = probe.batchnorm_source(bn)
    (conv,) = probe.run([probe.node_for("digit")], sample, also=[source])
    (alone,) = probe.batchnorms([bn], sample)
    fresh = probe.batchnorm(bn, random_inputs(probe.model, 0))  # another sample: its own pass
    assert not np.allclose(alone.batch_mean, fresh.batch_mean)
    given = direct(probe.model, "conv_1", sample.inputs)
    np.testing.assert_allclose(alone.batch_mean, given.mean(axis=(0, 1)), rtol=1e-6, atol=1e-8)
    # The weights change in place: the next run of the same sample sees them (nothing kept from before).
    dense = probe.model.get_layer("digit")
    bias = np.array(dense.weights[1])
    try:
        dense.weights[1].assign(bias + np.eye(len(bias), dtype=bias.dtype)[0] * 3.0)  # favour digit 0
        (moved,) = probe.run([probe.node_for("digit")], sample)
        assert moved.array[0] > conv.array[0]
        np.testing.assert_array_equal(moved.array, direct(probe.model, "digit", sample.inputs))
    finally:
        dense.weights[1].assign(bias)
    # No predict function was traced for any set of nodes asked for.
    assert probe._probes and all(m.predict_function is None for m in probe._probes.values())
