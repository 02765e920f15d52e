"""Graph -> Python source: code that lints, runs, and rebuilds the very same model."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, add_layer
from builder_app.core.project import load_project
from builder_app.exporters.python_code import CodegenError, python_source
from tests.keras_compare import graph_of
from tests.test_keras_model import random_inputs, same_function
from tests.test_shapes import (
    conv_zoo,
    conv_zoo_to_run,
    recurrent_and_attention,
    shared_and_nested,
    two_branches,
)

RUFF = Path(sys.executable).parent / "ruff"
PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
EXAMPLES = sorted((Path(__file__).parents[1] / "resources" / "examples").glob("*.kproj"))


def ops_model():
    x = keras.Input((5, 4), name="x")
    mean = keras.ops.mean(x, axis=1)
    shifted = mean + 1.0
    first = x[:, 0]
    tail = x[..., 1:3]
    both = keras.ops.concatenate([shifted, first], axis=-1)
    dense = keras.layers.Dense(3, name="head")(both)
    return keras.Model(x, [dense, keras.ops.transpose(tail, (0, 2, 1))], name="ops_model")


def initialized_model():
    x = keras.Input((6,), name="features")
    h = keras.layers.Dense(
        8,
        kernel_initializer=keras.initializers.HeNormal(seed=1),
        kernel_regularizer=keras.regularizers.L2(0.02),
        name="hidden",
    )(x)
    return keras.Model(x, keras.layers.Dense(2, use_bias=False, name="out")(h), name="init")


def recurrent_cells_and_policies():
    x = keras.Input((7, 3), name="x")
    r = keras.layers.RNN(keras.layers.LSTMCell(5, dropout=0.1), return_sequences=True, name="rnn")(x)
    seq, fh, _, _, bc = keras.layers.Bidirectional(keras.layers.LSTM(4, return_state=True), name="bi")(r)
    d = keras.layers.Dense(3, dtype="mixed_float16", trainable=False, name="d")(seq)
    return keras.Model(x, [d, fh, bc], name="misc")


BUILDERS = {
    "conv_zoo": conv_zoo_to_run,
    "siamese": shared_and_nested,
    "recurrent": recurrent_and_attention,
    "ops": ops_model,
    "initialized": initialized_model,
    "cells_and_policies": recurrent_cells_and_policies,
    "MobileNetV2": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3)),
}


def write(source: str, path: Path) -> Path:
    path.write_text(source)
    assert_ruff_clean(path)
    return path


def assert_ruff_clean(path: Path) -> None:
    """``ruff format --check`` and ``ruff check`` pass: with this project's config, and with ruff's defaults."""
    for command in (
        ["format", "--check", "--diff", "--config", str(PYPROJECT)],
        ["check", "--no-cache", "--config", str(PYPROJECT)],
        ["check", "--no-cache", "--isolated"],
    ):
        done = subprocess.run(
            [str(RUFF), *command, str(path)], capture_output=True, text=True, check=False, cwd=path.parent
        )
        assert done.returncode == 0, f"ruff {' '.join(command[:2])}:\n{done.stdout}{done.stderr}"


def load_built(path: Path) -> keras.Model:
    namespace = runpy.run_path(str(path))
    return namespace["build_model"]()


def assert_same_model(original: keras.Model, rebuilt: keras.Model) -> None:
    assert rebuilt.name == original.name
    assert rebuilt.count_params() == original.count_params()
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in original.layers]
    assert [tuple(t.shape) for t in rebuilt.outputs] == [tuple(t.shape) for t in original.outputs]
    for layer in original.layers:
        rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    same_function(original, rebuilt, random_inputs(original))


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_code_lints_runs_and_rebuilds_the_model(build, tmp_path):
    original = build()
    source = python_source(graph_of(original))
    assert "builder_app" not in source
    path = write(source, tmp_path / "model.py")
    assert_same_model(original, load_built(path))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_bundled_examples(example, tmp_path):
    from builder_app.core.keras_model import build_keras_model

    graph = load_project(example).graph
    path = write(python_source(graph), tmp_path / "model.py")
    assert_same_model(build_keras_model(graph), load_built(path))


def test_the_code_is_formatted_by_construction_without_running_ruff(tmp_path, monkeypatch):
    import shutil

    def no_formatter(*args, **kwargs):
        raise AssertionError(f"the exporter ran a program: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", no_formatter)
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    original = recurrent_and_attention()
    source = python_source(graph_of(original))
    monkeypatch.undo()
    assert all(len(line) <= 100 for line in source.splitlines())
    assert_same_model(original, load_built(write(source, tmp_path / "model.py")))


def resnet_ish():
    return keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3))


RUFF_MODELS = {
    "MobileNetV2": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3)),
    "ResNet50": resnet_ish,
    "shared_and_nested": shared_and_nested,
    "multi_output_recurrent": recurrent_and_attention,
    "ops_and_states": recurrent_cells_and_policies,
}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_passes_ruff(example, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(python_source(load_project(example).graph))
    assert_ruff_clean(path)


@pytest.mark.parametrize("build", RUFF_MODELS.values(), ids=RUFF_MODELS.keys())
def test_imported_models_pass_ruff(build, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(python_source(graph_of(build())))
    assert_ruff_clean(path)


def test_runs_as_a_script_in_a_fresh_python(tmp_path):
    path = write(python_source(graph_of(initialized_model())), tmp_path / "model.py")
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'Model: "init"' in done.stdout and "hidden" in done.stdout


def test_shared_layer_is_made_once_and_called_twice():
    source = python_source(graph_of(shared_and_nested()))
    assert source.count('layers.Dense(12, name="shared_proj")') == 1
    assert len(re.findall(r"= shared_proj\(", source)) == 2
    # The sub-model gets its own function, built once and called twice.
    assert "def build_tower() -> keras.Model:" in source
    assert source.count("build_tower()") == 2  # the definition and the one call
    assert len(re.findall(r"= tower\(", source)) == 2


def test_defaults_are_left_out_and_objects_written_as_objects():
    source = python_source(graph_of(initialized_model()))
    assert "keras.initializers.HeNormal(seed=1)" in source
    assert "keras.regularizers.L2(0.02)" in source
    assert "use_bias=False" in source
    for default in ("use_bias=True", "trainable=", "dtype=", "bias_initializer", "activation="):
        assert default not in source
    conv = python_source(graph_of(conv_zoo()))
    assert 'padding="valid"' not in conv and 'padding="same"' in conv
    # keras.io style: leading arguments positional, a uniform kernel or stride as one number.
    assert "kernel_size=" not in conv and 'layers.Conv2D(8, 3, strides=2, padding="same", name="c1")' in conv
    assert "strides=(1, 2, 2)" in conv


def test_operations_and_multiple_outputs_read_naturally():
    ops = python_source(graph_of(ops_model()))
    # Operations are named by Keras's global counters: mean, mean_1...
    assert re.search(r"(mean\w*) = keras\.ops\.mean\(x, axis=1\)\n.*= keras\.ops\.add\(\1, 1\.0\)", ops)
    assert "x[:, 0]" in ops and "x[..., 1:3]" in ops
    rnn = python_source(graph_of(recurrent_and_attention()))
    assert "lstm, lstm_state_h, lstm_state_c = " in rnn
    assert "layers.Bidirectional(\n        layers.GRU(" in rnn
    misc = python_source(graph_of(recurrent_cells_and_policies()))
    # The two states nothing reads are not named (ruff's RUF059).
    assert "bi, bi_forward_h, _, _, bi_backward_c = " in misc
    assert 'dtype="mixed_float16"' in misc and "trainable=False" in misc
    assert "layers.LSTMCell(5, dropout=0.1" in misc


def test_awkward_layer_names_become_identifiers(tmp_path):
    graph = ModelGraph("names")
    previous = None
    for class_name, config, name in [
        ("InputLayer", {"batch_shape": [None, 4]}, "in"),
        ("Dense", {"units": 3}, "block1a-dw"),
        ("Dense", {"units": 3}, "Block1a_DW"),
        ("Dense", {"units": 3}, "1x1"),
        ("Dense", {"units": 3}, "keras"),
    ]:
        op = add_layer(graph, class_name, config, name=name)
        graph.apply(op)
        if previous is not None:
            graph.apply(Connect(previous, 0, op.node.id, 0))
        previous = op.node.id
    source = python_source(graph)
    for expected in ("in_ = keras.Input", "block1a_dw = ", "block1a_dw_2 = ", "layer_1x1 = ", "keras_ = "):
        assert expected in source
    model = load_built(write(source, tmp_path / "model.py"))
    assert [layer.name for layer in model.layers] == ["in", "block1a-dw", "Block1a_DW", "1x1", "keras"]


def test_invalid_graph_is_refused_with_the_node_named():
    graph, _ = two_branches(8, 16)
    with pytest.raises(CodegenError, match="'add': Add needs inputs of one shape"):
        python_source(graph)


def test_code_reads_like_the_keras_guides():
    siamese = python_source(load_project(EXAMPLES[[p.stem for p in EXAMPLES].index("siamese_digits")]).graph)
    assert "import keras\nfrom keras import layers\n" in siamese and "keras.layers." not in siamese
    assert 'layers.Conv2D(16, 3, padding="same", activation="relu", name="tower_conv")(left_in)' in siamese
    assert 'layers.Dot(axes=1, normalize=True, name="cosine")([tower_1, tower_2])' in siamese  # axes: a keyword
    assert ",)" not in siamese
    digits = python_source(load_project(EXAMPLES[[p.stem for p in EXAMPLES].index("digits_cnn")]).graph)
    assert 'layers.Dropout(0.2, name="dropout")' in digits and 'layers.Dense(10, activation="softmax"' in digits
    x = keras.Input((4,), name="x")
    only_ops = python_source(graph_of(keras.Model(x, keras.ops.exp(x), name="ops_only")))
    assert "from keras import layers" not in only_ops  # nothing to import it for (ruff: F401)
