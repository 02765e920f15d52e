"""Custom layers: Keras's own outside keras.layers, the user's code under explicit trust.

Keras's ``LayerScale`` / ``CustomScaleLayer`` are known layers; the user's code is
stored in the project as text and runs only once trusted (by content hash, in the
settings directory ``BUILDER_APP_CONFIG_DIR`` points at); without its code a custom
node is opaque and every other layer keeps its weights.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core import custom_code, ops, trust
from builder_app.core.custom_code import CodeFile
from builder_app.core.keras_model import build_keras_model
from builder_app.core.project import ProjectLoadError, load_project, save_project
from builder_app.core.shapes import ShapeEngine
from builder_app.exporters.check import TOLERANCE, check_export
from builder_app.exporters.python_code import python_source
from builder_app.importers.keras_file import import_model
from tests.test_keras_model import random_inputs, same_function

DATA = Path(__file__).parent / "data" / "custom_layers"

MARKER_CODE = '''
import os
import pathlib

import keras

pathlib.Path(os.environ["BUILDER_APP_TEST_MARKER"]).write_text("ran")


class Marker(keras.layers.Layer):
    def call(self, x):
        return x
'''


@pytest.fixture(autouse=True)
def settings(tmp_path, monkeypatch):
    """A fresh settings directory (nothing trusted), and no code left active afterwards."""
    monkeypatch.setenv(trust.CONFIG_DIR_ENV, str(tmp_path / "settings"))
    custom_code.deactivate_all()
    yield tmp_path / "settings"
    custom_code.deactivate_all()


def code(name: str) -> CodeFile:
    return custom_code.read_file(DATA / name)


def vae_encoder(path: Path) -> keras.Model:
    """keras.io's VAE encoder (a Sampling layer), saved to ``path`` with the code active."""
    (sampling,) = custom_code.activate([code("sampling.py")]).values()
    x = keras.Input((8,), name="x")
    h = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    mean = keras.layers.Dense(2, name="z_mean")(h)
    log_var = keras.layers.Dense(2, name="z_log_var")(h)
    z = sampling(name="z")([mean, log_var])
    model = keras.Model(x, [mean, log_var, z], name="encoder")
    model.save(path)
    return model


def text_classifier(path: Path) -> keras.Model:
    """A token-and-position embedding feeding attention, saved to ``path`` with the code active."""
    (embedding,) = custom_code.activate([code("token_embedding.py")]).values()
    x = keras.Input((12,), dtype="int32", name="tokens")
    h = embedding(12, 50, 8, name="embedding")(x)
    h = keras.layers.MultiHeadAttention(2, 4, name="attention")(h, h)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    model = keras.Model(x, keras.layers.Dense(3, name="out")(h), name="classifier")
    model.save(path)
    return model


def tokens(model) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 50, size=(2, 12)).astype("int32")


# ------------------------------------------------------------ Keras's own layers
@pytest.mark.slow
@pytest.mark.parametrize(
    "build",
    [
        lambda: keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3)),
        lambda: keras.applications.InceptionResNetV2(weights=None, input_shape=(75, 75, 3)),
    ],
    ids=["ConvNeXtTiny", "InceptionResNetV2"],
)
def test_layers_keras_ships_outside_keras_layers_round_trip(build, tmp_path):
    model = build()
    model.save(tmp_path / "app.keras")
    result = import_model(tmp_path / "app.keras")
    graph = result.project.graph
    assert not [w for w in result.warnings if "weights" in w]
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    assert engine.total_params() == model.count_params()
    rebuilt = build_keras_model(graph)
    inputs = random_inputs(model)
    same_function(model, rebuilt, inputs)
    source = python_source(graph)
    assert "from keras.src.applications." in source and "builder_app" not in source
    (tmp_path / "model.py").write_text(source)
    rebuilt.save(tmp_path / "out.keras")
    checks = [("keras", tmp_path / "out.keras")]
    if len(graph) < 300:  # InceptionResNetV2's 782 nodes: the code is checked by ConvNeXt's run
        checks.append(("python", tmp_path / "model.py"))
    for kind, path in checks:
        assert max(check_export(graph, kind, path, model=rebuilt)) <= TOLERANCE


# ------------------------------------------------------------ the user's layers, trusted
@pytest.mark.slow
@pytest.mark.parametrize("make", [vae_encoder, text_classifier], ids=["vae-sampling", "token-embedding"])
def test_custom_layers_round_trip_with_their_code_trusted(make, tmp_path, capsys):
    model = make(tmp_path / "model.keras")
    name = "sampling.py" if make is vae_encoder else "token_embedding.py"
    custom_code.deactivate_all()
    project = tmp_path / "p.kproj"
    assert main(["import", str(tmp_path / "model.keras"), "-o", str(project),
                 "--custom-layers", str(DATA / name), "--trust"]) == 0
    assert "weights" not in capsys.readouterr().err
    loaded = load_project(project)
    assert [f.name for f in loaded.custom_code] == [name]
    custom_code.deactivate_all()
    assert main(["validate", str(project)]) == 0  # trusted before: the hash is remembered
    graph = loaded.graph
    rebuilt = build_keras_model(graph)  # the custom layer's own weights came in too
    inputs = tokens(model) if make is text_classifier else random_inputs(model)
    same_function(model, rebuilt, inputs)
    out = tmp_path / "out"
    # One export a command: a check calls the model, which moves a Sampling layer's seed on.
    assert main(["export", str(project), "--python", f"{out}.py", "--check"]) == 0
    assert main(["export", str(project), "--keras", f"{out}.keras", "--check"]) == 0
    source = Path(f"{out}.py").read_text()
    assert "class " in source and "builder_app" not in source
    assert capsys.readouterr().out.count("(ok)") >= 2


# ------------------------------------------------------------ without the code
def test_without_the_code_every_other_layer_keeps_its_weights(tmp_path, capsys):
    model = text_classifier(tmp_path / "model.keras")
    custom_code.deactivate_all()
    result = import_model(tmp_path / "model.keras")
    graph = result.project.graph
    weights = {name: layer.weights for name, layer in graph.layers.items()}
    assert weights["embedding"] is None
    for name in ("attention", "out"):
        expected = model.get_layer(name).get_weights()
        assert len(weights[name]) == len(expected)
        for got, want in zip(weights[name], expected, strict=True):
            np.testing.assert_array_equal(got, want)
    assert any("need their code ('embedding')" in w for w in result.warnings)
    assert [cls for _, cls in custom_code.needs_code(graph)] == ["token_embedding.TokenAndPositionEmbedding"]
    save_project(result.project, tmp_path / "p.kproj")
    assert main(["validate", str(tmp_path / "p.kproj")]) == 1
    out = capsys.readouterr().out
    assert "'embedding': unknown layer token_embedding.TokenAndPositionEmbedding: the node needs its code" in out


def test_a_vae_without_its_sampling_code_keeps_the_dense_weights(tmp_path):
    model = vae_encoder(tmp_path / "vae.keras")
    custom_code.deactivate_all()
    graph = import_model(tmp_path / "vae.keras").project.graph
    for name in ("hidden", "z_mean", "z_log_var"):
        for got, want in zip(graph.layers[name].weights, model.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------ the project keeps the code
def marker_project(tmp_path: Path) -> Path:
    """A project whose custom code writes a marker file when it is run."""
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="out")(keras.layers.Dense(4, name="mark")(x)))
    config = json.loads(model.to_json())
    layer = next(item for item in config["config"]["layers"] if item["config"]["name"] == "mark")
    layer.update(module="marker_layer", class_name="Marker", registered_name="Marker")
    layer["config"] = {"name": "mark", "trainable": True, "dtype": "float32"}
    (tmp_path / "model.json").write_text(json.dumps(config))
    project = import_model(tmp_path / "model.json").project
    project.custom_code = [CodeFile("marker_layer.py", MARKER_CODE)]
    save_project(project, tmp_path / "marked.kproj")
    return tmp_path / "marked.kproj"


def test_custom_code_never_runs_until_trusted(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "marker"
    monkeypatch.setenv("BUILDER_APP_TEST_MARKER", str(marker))
    path = marker_project(tmp_path)
    project = load_project(path)
    assert [f.name for f in project.custom_code] == ["marker_layer.py"]
    ShapeEngine(project.graph).errors()
    assert main(["validate", str(path)]) == 1
    assert "not trusted: marker_layer.py (Marker); run again with --trust" in capsys.readouterr().err
    assert main(["export", str(path), "--python", str(tmp_path / "m.py")]) == 1
    assert main(["render", str(path), "--svg", str(tmp_path / "m.svg")]) == 0
    (tmp_path / "marker_layer.py").write_text(MARKER_CODE)
    assert main(["import", str(tmp_path / "model.json"), "-o", str(tmp_path / "again.kproj"),
                 "--custom-layers", str(tmp_path / "marker_layer.py")]) == 0
    assert [f.name for f in load_project(tmp_path / "again.kproj").custom_code] == ["marker_layer.py"]
    assert not marker.exists()
    assert main(["validate", str(path), "--trust"]) == 0
    assert marker.read_text() == "ran"


def test_a_changed_file_asks_again(tmp_path, capsys):
    first = CodeFile("layers_a.py", "X = 1\n")
    trust.trust([first])
    assert trust.is_trusted(first)
    changed = CodeFile("layers_a.py", "X = 2\n")
    assert trust.untrusted([first, changed]) == [changed]
    assert "(changed since it was trusted)" in trust.untrusted_message([changed])
    with pytest.raises(trust.UntrustedCodeError, match="layers_a.py"):
        trust.check([changed])


def test_trusted_code_that_raises_is_one_line_and_loses_nothing(tmp_path, capsys):
    path = marker_project(tmp_path)
    project = load_project(path)
    project.custom_code = [CodeFile("marker_layer.py", "import keras\n\nraise RuntimeError('broken on purpose')\n")]
    save_project(project, path)
    before = path.read_bytes()
    assert main(["validate", str(path), "--trust"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "marker_layer.py line 3: RuntimeError: broken on purpose" in err
    assert path.read_bytes() == before
    assert custom_code.active_classes() == {}


def test_the_code_is_kept_in_the_project_file_and_checked_on_open(tmp_path):
    path = marker_project(tmp_path)
    with zipfile.ZipFile(path) as archive:
        assert "custom/marker_layer.py" in archive.namelist()
        document = json.loads(archive.read("project.json"))
        assert document["custom_code"] == ["marker_layer.py"]
        members = {name: archive.read(name) for name in archive.namelist()}
    stray = tmp_path / "stray.kproj"
    with zipfile.ZipFile(stray, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("custom/other.py", b"print('never read')")
    with pytest.raises(ProjectLoadError, match="custom/other.py is in the archive but project.json does not name it"):
        load_project(stray)
    bad = tmp_path / "bad.kproj"
    document["custom_code"] = ["../evil.py"]
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, json.dumps(document) if name == "project.json" else data)
    with pytest.raises(ProjectLoadError, match="not a Python module name"):
        load_project(bad)


def test_classes_are_listed_without_running_the_file():
    listed = custom_code.class_names(CodeFile("marker_layer.py", MARKER_CODE))
    assert listed == ["Marker"]
    assert custom_code.describe([code("sampling.py")]) == "sampling.py (Sampling)"
    with pytest.raises(custom_code.CustomCodeError, match="broken.py line 1: not valid Python"):
        custom_code.class_names(CodeFile("broken.py", "class (:\n"))


def test_an_opaque_node_with_declared_shapes_gives_the_layers_after_it_shapes(tmp_path):
    text_classifier(tmp_path / "model.keras")
    custom_code.deactivate_all()
    project = import_model(tmp_path / "model.keras").project
    graph = project.graph
    (embedding,) = graph.nodes_of_layer("embedding")
    (out,) = graph.nodes_of_layer("out")
    engine = ShapeEngine(graph)
    assert engine.result(out).outputs is None
    shapes = custom_code.parse_declared_shapes("(None, 12, 8)")
    graph.apply(ops.SetParam("embedding", custom_code.DECLARED_SHAPES_KEY, shapes))
    engine = ShapeEngine(graph)
    assert engine.result(embedding).errors  # it still needs its code
    assert engine.result(out).output_shapes == [(None, 3)]
    assert [node for node, _ in engine.errors()] == [embedding]
    save_project(project, tmp_path / "p.kproj")
    reopened = load_project(tmp_path / "p.kproj")
    assert custom_code.declared_shapes(reopened.graph.layers["embedding"].config) == [(None, 12, 8)]
    # Once the code runs, the declared shapes are the app's note, never a Keras argument.
    custom_code.activate([code("token_embedding.py")])
    engine = ShapeEngine(reopened.graph)
    assert engine.errors() == []
    assert "__output_shapes__" not in python_source(reopened.graph)
    with pytest.raises(custom_code.CustomCodeError, match="not a shape"):
        custom_code.parse_declared_shapes("(None, sixteen)")


def test_a_lambda_runs_only_under_the_same_trust(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "lambda-ran"
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x * 2.0)[1]")  # noqa: S307
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Lambda(touch, name="double")(keras.layers.Dense(3, name="d")(x)))
    model.save(tmp_path / "lambda.keras")
    marker.unlink()
    project = tmp_path / "lambda.kproj"
    assert main(["import", str(tmp_path / "lambda.keras"), "-o", str(project)]) == 0
    assert main(["validate", str(project)]) == 1
    assert "not trusted: Lambda 'double' (its function's bytecode)" in capsys.readouterr().err
    assert not marker.exists()
    assert main(["validate", str(project), "--trust"]) == 0
    assert marker.exists()  # Keras traced the trusted function
    graph = load_project(project).graph
    inputs = random_inputs(model)
    same_function(model, build_keras_model(graph), inputs)


def test_a_shipped_layers_config_from_a_file_is_checked_before_keras_sees_it():
    from builder_app.core.graph import Layer
    from builder_app.core.keras_build import LayerError, make_keras_layer

    name = "keras.src.applications.convnext.LayerScale"
    assert make_keras_layer(Layer("ok", name, {"init_values": 1e-6, "projection_dim": 8})).projection_dim == 8
    foreign = {"module": "os", "class_name": "system", "config": {}}
    for config in ({"init_values": foreign, "projection_dim": 8}, {"init_values": 1.0, "projection_dim": 8, "dtype": foreign}):
        with pytest.raises(LayerError, match="LayerScale 'bad'"):
            make_keras_layer(Layer("bad", name, config))
    with pytest.raises(LayerError, match="needs its code"):
        make_keras_layer(Layer("other", "keras.src.applications.convnext.NotThere", {}))


@pytest.mark.training
def test_the_training_child_and_script_carry_the_trusted_code(tmp_path, capsys):
    from builder_app.core.custom_layer_check import TEMPLATE

    (tmp_path / "my_layers.py").write_text(TEMPLATE)
    (scale,) = custom_code.activate([custom_code.read_file(tmp_path / "my_layers.py")]).values()
    x = keras.Input((4,), name="x")
    h = scale(name="scale")(keras.layers.Dense(8, activation="relu", name="hidden")(x))
    keras.Model(x, keras.layers.Dense(3, activation="softmax", name="out")(h)).save(tmp_path / "m.keras")
    custom_code.deactivate_all()
    project = tmp_path / "m.kproj"
    assert main(["import", str(tmp_path / "m.keras"), "-o", str(project),
                 "--custom-layers", str(tmp_path / "my_layers.py"), "--trust"]) == 0
    custom_code.deactivate_all()  # the run activates the (trusted) code again, here and in the child
    assert main(["train", str(project), "--data", "iris", "--epochs", "1", "--save", str(tmp_path / "t.keras")]) == 0
    assert "epoch 1" in capsys.readouterr().out
    assert main(["export", str(project), "--train-script", str(tmp_path / "train.py")]) == 0
    assert "class Scale(keras.layers.Layer)" in (tmp_path / "train.py").read_text()


PITFALLS = '''
import keras


class NoKwargs(keras.layers.Layer):
    def __init__(self, units):
        super().__init__()
        self.units = units

    def call(self, x):
        return x


class NoConfig(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def call(self, x):
        return x

    def get_config(self):
        return {"name": self.name}
'''


def test_the_layer_check_names_the_walk_throughs_pitfalls():
    from builder_app.core.custom_layer_check import (
        GROUP_NORMALIZATION_EXAMPLE,
        PITFALL_CONFIG,
        PITFALL_CUSTOM_OBJECTS,
        PITFALL_KWARGS,
        TEMPLATE,
        check_source,
    )

    for text in (TEMPLATE, GROUP_NORMALIZATION_EXAMPLE):
        findings = check_source(CodeFile("ok.py", text))
        assert all(f.ok for f in findings), [str(f) for f in findings]
    found = {(f.class_name, f.ok): str(f) for f in check_source(CodeFile("pitfalls.py", PITFALLS), (None, 4))}
    assert PITFALL_KWARGS in found[("NoKwargs", False)]
    problems = [str(f) for f in check_source(CodeFile("pitfalls.py", PITFALLS), (None, 4)) if not f.ok]
    assert any("NoConfig" in p and "get_config() lacks units" in p and PITFALL_CONFIG in p for p in problems)
    assert any("NoConfig" in p and PITFALL_CUSTOM_OBJECTS in p for p in problems)
    lazy = code("token_embedding.py").text.replace("    def build(self, input_shape):", "    def _later(self, input_shape):")
    problems = [str(f) for f in check_source(CodeFile("lazy.py", lazy), (None, 12)) if not f.ok]
    assert problems and "a saved model does not reload it" in problems[0]


@pytest.mark.parametrize("name", ["json.py", "keras.py", "numpy.py"])
def test_a_code_file_never_shadows_a_module_the_app_uses(name):
    import sys

    before = sys.modules.get(name[:-3])
    with pytest.raises(custom_code.CustomCodeError, match="rename the file"):
        custom_code.activate([CodeFile(name, "X = 1\n")])
    assert sys.modules.get(name[:-3]) is before
