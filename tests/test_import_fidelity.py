"""Issue 17: what an import keeps (vocabularies, structure) and how the exports and messages read."""

from __future__ import annotations

import runpy

import keras
import numpy as np
import pytest

from builder_app import cli
from builder_app.core.keras_build import LayerError, make_keras_layer
from builder_app.core.keras_model import BuildError, build_keras_model
from builder_app.core.project import project_from_bytes, project_to_bytes, save_project
from builder_app.core.shapes import ShapeEngine
from builder_app.exporters.python_code import CodegenError, python_source
from builder_app.exporters.saved_model import export_keras, export_savedmodel
from builder_app.importers.keras_file import import_model


def lookup_model() -> keras.Model:
    """The issue's repro: adapted IntegerLookup and StringLookup in a functional model."""
    ids = keras.Input((1,), dtype="int64", name="ids")
    words = keras.Input((1,), dtype="string", name="words")
    int_lookup = keras.layers.IntegerLookup(output_mode="one_hot", name="int_lookup")
    int_lookup.adapt(np.array([[3], [5], [7], [7]]))
    str_lookup = keras.layers.StringLookup(output_mode="one_hot", name="str_lookup")
    str_lookup.adapt(np.array([["cat"], ["dog"], ["dog"], ["emu"]]))
    joined = keras.layers.Concatenate(name="joined")([int_lookup(ids), str_lookup(words)])
    out = keras.layers.Dense(2, name="out")(joined)
    return keras.Model([ids, words], out, name="lookups")


FEED = [np.array([[3], [5], [7], [9], [0]], dtype="int64"), np.array([["cat"], ["dog"], ["emu"], ["yak"], [""]])]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lookups")
    model = lookup_model()
    model.save(folder / "lookups.keras")
    result = import_model(folder / "lookups.keras")
    # Through the project file: format 4 keeps the vocabularies.
    project = project_from_bytes(project_to_bytes(result.project))
    return model, result, project, folder


def test_the_vocabularies_are_imported_and_kept_in_the_project(imported):
    model, result, project, _ = imported
    assert result.warnings == []
    layers = project.graph.layers
    assert layers["int_lookup"].assets == {"vocabulary.txt": b"-1\n7\n5\n3"}
    assert layers["str_lookup"].assets == {"vocabulary.txt": b"[UNK]\ndog\nemu\ncat"}
    engine = ShapeEngine(project.graph)
    try:
        assert engine.errors() == []
        shapes = {project.graph.layer_of(n).name: engine.peek(n).outputs[0].shape for n in project.graph.nodes}
    finally:
        engine.close()
    assert shapes["int_lookup"] == (None, 4) and shapes["str_lookup"] == (None, 4)


def test_the_app_model_the_code_and_the_keras_file_give_the_original_outputs(imported, tmp_path):
    model, _, project, _ = imported
    expected = np.asarray(model(FEED))
    app_model = build_keras_model(project.graph)
    np.testing.assert_allclose(np.asarray(app_model(FEED)), expected, atol=1e-6)

    source = python_source(project.graph)
    assert "vocabulary=[-1, 7, 5, 3]" in source and 'vocabulary=["[UNK]", "dog", "emu", "cat"]' in source
    (tmp_path / "code.py").write_text(source)
    coded = runpy.run_path(str(tmp_path / "code.py"))["build_model"]()
    coded.get_layer("out").set_weights(model.get_layer("out").get_weights())
    np.testing.assert_allclose(np.asarray(coded(FEED)), expected, atol=1e-6)

    export_keras(project.graph, tmp_path / "again.keras", model=app_model)
    reloaded = keras.saving.load_model(tmp_path / "again.keras", safe_mode=True)  # plain Keras loads it
    np.testing.assert_allclose(np.asarray(reloaded(FEED)), expected, atol=1e-6)
    # ...and imports again with its vocabularies.
    again = import_model(tmp_path / "again.keras")
    assert again.project.graph.layers["str_lookup"].assets == project.graph.layers["str_lookup"].assets


@pytest.mark.slow
def test_the_savedmodel_gives_the_original_outputs(imported, tmp_path):
    import tensorflow as tf

    model, _, project, _ = imported
    export_savedmodel(project.graph, tmp_path / "served", model=build_keras_model(project.graph))
    served = tf.saved_model.load(str(tmp_path / "served"))
    got = served.serve([tf.constant(FEED[0]), tf.constant(FEED[1])])
    np.testing.assert_allclose(np.asarray(got), np.asarray(model(FEED)), atol=1e-6)


def test_a_lookup_without_its_vocabulary_is_a_node_error_in_every_export(imported):
    _, _, project, _ = imported
    graph = project.graph.clone()
    graph.layers["int_lookup"].assets = None
    with pytest.raises(LayerError, match="IntegerLookup 'int_lookup': it has no vocabulary, so Keras cannot call it"):
        make_keras_layer(graph.layers["int_lookup"])
    engine = ShapeEngine(graph)
    try:
        (problem,) = engine.errors()
    finally:
        engine.close()
    assert "has no vocabulary" in str(problem)
    with pytest.raises(BuildError, match="no vocabulary"):
        build_keras_model(graph)
    with pytest.raises(CodegenError):
        python_source(graph)


def test_unreadable_vocabulary_files_are_left_out_with_a_warning(tmp_path):
    from tests.test_import import rewrite_archive

    model = lookup_model()
    model.save(tmp_path / "m.keras")
    bad = rewrite_archive(
        tmp_path / "m.keras", tmp_path / "bad.keras", **{"assets/layers/integer_lookup/vocabulary.txt": b"seven\n"}
    )
    result = import_model(bad)
    assert result.project.graph.layers["int_lookup"].assets is None
    assert result.project.graph.layers["str_lookup"].assets is not None
    assert any(w.startswith("layer 'int_lookup': its vocabulary was not imported (") for w in result.warnings)


def test_a_layer_that_keeps_assets_its_class_does_not_load_cannot_be_written_as_code(imported):
    _, _, project, _ = imported
    graph = project.graph.clone()
    graph.layers["str_lookup"].assets = {"vocabulary.txt": b"[UNK]\na\nb\nc", "extra.bin": b"\x00"}
    with pytest.raises(CodegenError, match="layer 'str_lookup': its state \\(the asset files extra.bin\\) cannot be written as code"):
        python_source(graph)


def test_export_check_says_one_line_when_the_model_cannot_run(imported, tmp_path, capsys):
    _, _, project, _ = imported
    broken = project.graph.clone()
    broken.layers["int_lookup"].assets = None  # what format 3 kept: no vocabulary
    from builder_app.core.project import Project

    save_project(Project(broken), tmp_path / "broken.kproj")
    code = cli.main(["export", str(tmp_path / "broken.kproj"), "--keras", str(tmp_path / "b.keras"), "--check"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INVALID
    assert len(err.strip().splitlines()) == 1, err
    assert "\x1b" not in err and "no vocabulary" in err
    assert not (tmp_path / "b.keras").exists()


# ----------------------------------------------------------------- 17.3
def test_every_problem_of_a_layer_is_reported_at_once():
    from builder_app.core.graph import Layer

    with pytest.raises(LayerError) as caught:
        make_keras_layer(Layer("d", "Dense", {"units": 3, "use_bias": "maybe", "bogus": 1}))
    message = str(caught.value)
    assert message == "Dense 'd': (1) use_bias: must be true or false, not 'maybe'; (2) unknown parameter 'bogus' for Dense"


# ----------------------------------------------------------------- 17.5
def test_rnn_defaults_and_recorded_default_training_flags_are_not_written(tmp_path):
    inner_in = keras.Input((4,), name="inner_in")
    backbone = keras.Model(inner_in, keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(4, name="d")(inner_in)), name="backbone")
    backbone.trainable = False
    x = keras.Input((5, 4), name="x")
    y = keras.layers.LSTM(4, name="lstm")(x)
    y = keras.layers.Dropout(0.5, name="drop")(y)
    y = backbone(y, training=False)
    model = keras.Model(x, y, name="m")
    model.save(tmp_path / "m.keras")
    source = python_source(import_model(tmp_path / "m.keras").project.graph)
    assert 'layers.LSTM(4, name="lstm")(x)' in source
    assert "initializer" not in source
    assert 'layers.Dropout(0.5, name="drop")(lstm)' in source
    # A sub-model called with training=False was called so on purpose: kept.
    assert "(drop, training=False)" in source


# ----------------------------------------------------------------- 17.4
def dict_model() -> keras.Model:
    """Keras flattens dict inputs in sorted-key order: "context" before "target"."""
    target = keras.Input((2,), name="target")
    context = keras.Input((3,), name="context")
    joined = keras.layers.Concatenate(name="cat")([target, keras.layers.Dense(2, name="d")(context)])
    side = keras.layers.Dense(1, name="side")(context)
    return keras.Model({"target": target, "context": context}, {"out": joined, "side": side}, name="dm")


def test_dict_inputs_and_outputs_stay_dicts_through_import_the_project_and_every_export(tmp_path):
    model = dict_model()
    model.save(tmp_path / "dm.keras")
    graph = project_from_bytes(project_to_bytes(import_model(tmp_path / "dm.keras").project)).graph
    assert graph.structure == {
        "inputs": {"kind": "dict", "keys": ["target", "context"]},
        "outputs": {"kind": "dict", "keys": ["out", "side"]},
    }
    feed = {"target": np.arange(4, dtype="float32").reshape(2, 2), "context": np.ones((2, 3), "float32")}
    expected = model(feed)

    source = python_source(graph)
    assert 'inputs={"target": target, "context": context}, outputs={"out": cat, "side": side}' in source
    (tmp_path / "code.py").write_text(source)
    coded = runpy.run_path(str(tmp_path / "code.py"))["build_model"]()
    assert isinstance(coded.input, dict)
    for name in ("d", "side"):
        coded.get_layer(name).set_weights(model.get_layer(name).get_weights())
    got = coded(feed)
    for key in ("out", "side"):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), atol=1e-6)

    app_model = build_keras_model(graph)
    export_keras(graph, tmp_path / "again.keras", model=app_model)
    reloaded = keras.saving.load_model(tmp_path / "again.keras", safe_mode=True)
    assert isinstance(reloaded.input, dict) and sorted(reloaded.input) == ["context", "target"]
    got = reloaded(feed)
    for key in ("out", "side"):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), atol=1e-6)


def test_a_list_of_one_input_stays_a_list_and_plain_models_are_unchanged(tmp_path):
    x = keras.Input((3,), name="x")
    keras.Model([x], [keras.layers.Dense(2, name="d")(x)], name="listed").save(tmp_path / "l.keras")
    keras.Model(x, keras.layers.Dense(2, name="d")(x), name="plain").save(tmp_path / "p.keras")
    listed = import_model(tmp_path / "l.keras").project.graph
    plain = import_model(tmp_path / "p.keras").project.graph
    assert listed.structure == {"inputs": {"kind": "list"}, "outputs": {"kind": "list"}}
    assert "inputs=[x], outputs=[d]" in python_source(listed)
    assert plain.structure == {} and "structure" not in plain.to_dict()
    assert "inputs=x, outputs=d" in python_source(plain)


@pytest.mark.slow
def test_export_check_feeds_dict_inputs_by_name(tmp_path, capsys):
    model = dict_model()
    model.save(tmp_path / "dm.keras")
    save_project(import_model(tmp_path / "dm.keras").project, tmp_path / "dm.kproj")
    code = cli.main([
        "export", str(tmp_path / "dm.kproj"), "--python", str(tmp_path / "dm.py"),
        "--keras", str(tmp_path / "dm2.keras"), "--savedmodel", str(tmp_path / "served"), "--check",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("(ok)") == 6  # two outputs, three exports, each fed by name


# ----------------------------------------------------------------- 17.6
def test_keras_backticked_messages_read_as_sentences():
    from builder_app.core.graph import Layer

    cases = {
        ("Dense", '{"units": -1}'): "Dense 'x': 'units' must be a positive integer, not -1",
        ("Dropout", '{"rate": 2.0}'): "Dropout 'x': 'rate' must be a float value between 0 and 1, not 2.0",
        ("Embedding", '{"input_dim": 0, "output_dim": 3}'): "Embedding 'x': 'input_dim' must be a positive integer, not 0",
    }
    import json

    for (class_name, config), expected in cases.items():
        with pytest.raises(LayerError) as caught:
            make_keras_layer(Layer("x", class_name, json.loads(config)))
        assert str(caught.value) == expected
        assert "`" not in str(caught.value)


def test_import_that_drops_weights_exits_3_and_names_the_layers_that_kept_theirs(tmp_path, capsys):
    from tests.test_import import rewrite_archive

    x = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, name="hidden")(x)
    keras.Model(x, keras.layers.Dense(2, name="out")(hidden), name="m").save(tmp_path / "m.keras")
    other = tmp_path / "other.weights.h5"
    y = keras.Input((4,), name="x")
    keras.Model(y, keras.layers.Dense(5, name="out")(keras.layers.Dense(3, name="hidden")(y))).save_weights(other)
    broken = rewrite_archive(tmp_path / "m.keras", tmp_path / "broken.keras", **{"model.weights.h5": other.read_bytes()})

    assert cli.main(["import", str(tmp_path / "m.keras"), "-o", str(tmp_path / "ok.kproj")]) == 0
    capsys.readouterr()
    code = cli.main(["import", str(broken), "-o", str(tmp_path / "p.kproj")])
    err = capsys.readouterr().err.splitlines()
    assert code == 0  # written all the same, and said in the last line
    assert (tmp_path / "p.kproj").exists()
    assert err[-1] == "warning: WEIGHTS LEFT OUT (1 warning above): only 1 layer kept theirs: 'hidden'"
    assert err[0].startswith("warning: layer 'out': its weights were not imported")


def test_validate_names_layers_and_keeps_ids_for_json(imported, tmp_path, capsys):
    import json

    from builder_app.core.project import Project

    _, _, project, _ = imported
    broken = project.graph.clone()
    broken.layers["int_lookup"].assets = None
    save_project(Project(broken), tmp_path / "b.kproj")
    assert cli.main(["validate", str(tmp_path / "b.kproj")]) == 1
    out = capsys.readouterr().out
    node_id = broken.nodes_of_layer("int_lookup")[0]
    assert "b.kproj: layer 'int_lookup': IntegerLookup 'int_lookup': it has no vocabulary" in out
    assert f"node {node_id}" not in out
    assert cli.main(["validate", str(tmp_path / "b.kproj"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [e["node"] for e in report["errors"]] == [node_id]


def frozen_model(backbone: keras.Model) -> keras.Model:
    backbone.trainable = False
    x = keras.Input(backbone.input_shape[1:], name="image")
    y = keras.layers.Dropout(0.3, name="drop")(backbone(x, training=False))
    return keras.Model(x, keras.layers.Dense(2, name="head")(y), name="keypoints")


def test_a_frozen_backbone_is_a_function_frozen_once(tmp_path):
    inner = keras.Input((6,), name="inner_in")
    h = keras.layers.Dense(5, activation="relu", name="b1")(inner)
    backbone = keras.Model(inner, keras.layers.Dense(4, name="b2")(h), name="backbone")
    frozen_model(backbone).save(tmp_path / "m.keras")
    source = python_source(import_model(tmp_path / "m.keras").project.graph)
    assert "def build_backbone() -> keras.Model:" in source
    assert source.count("trainable") == 1
    assert "    backbone = build_backbone()\n    backbone.trainable = False\n" in source
    (tmp_path / "code.py").write_text(source)
    coded = runpy.run_path(str(tmp_path / "code.py"))["build_model"]()
    assert not coded.get_layer("backbone").trainable
    assert not coded.get_layer("backbone").get_layer("b1").trainable
    assert coded.get_layer("head").trainable


@pytest.mark.slow
def test_a_frozen_application_backbone_is_written_as_the_application(tmp_path):
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    model = frozen_model(base)
    model.save(tmp_path / "m.keras")
    graph = import_model(tmp_path / "m.keras").project.graph
    source = python_source(graph)
    assert "keras.applications.MobileNetV2(\n        input_shape=(32, 32, 3), include_top=False, weights=None\n    )" in source
    assert source.count("trainable") == 1 and "def build_" not in source.replace("def build_model", "")
    (tmp_path / "code.py").write_text(source)
    coded = runpy.run_path(str(tmp_path / "code.py"))["build_model"]()
    app_model = build_keras_model(graph)
    app_model.save_weights(tmp_path / "w.weights.h5")
    coded.load_weights(tmp_path / "w.weights.h5")  # the same layers, by the same paths
    feed = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(coded(feed)), np.asarray(model(feed)), atol=1e-5)


def test_an_adapted_tf_idf_lookup_is_not_carried_and_says_so(tmp_path):
    words = keras.Input((1,), dtype="string", name="w")
    lookup = keras.layers.StringLookup(output_mode="tf_idf", name="tfidf")
    lookup.adapt(np.array([["a"], ["b"], ["b"]]))
    keras.Model(words, lookup(words)).save(tmp_path / "t.keras")
    result = import_model(tmp_path / "t.keras")
    assert result.warnings[0].startswith(
        "layer 'tfidf': its vocabulary was not imported (StringLookup 'tfidf': an adapted TF-IDF lookup keeps its IDF weights"
    )
    with pytest.raises(LayerError, match="it has no vocabulary"):
        make_keras_layer(result.project.graph.layers["tfidf"])


def test_the_training_script_feeds_a_dict_model_by_position_in_the_apps_order(tmp_path):
    from builder_app.exporters.train_script import training_script

    model = dict_model()
    model.save(tmp_path / "dm.keras")
    project = import_model(tmp_path / "dm.keras").project
    script = training_script(project)
    assert "inputs=[target, context], outputs=[cat, side]" in script
    assert project.graph.structure  # the project itself is untouched


def test_an_adapted_text_vectorization_round_trips_through_code_with_only_its_own_arguments(tmp_path):
    text = keras.Input((1,), dtype="string", name="text")
    vectorize = keras.layers.TextVectorization(max_tokens=10, output_sequence_length=4, name="tv")
    vectorize.adapt(np.array(["hello world", "hello there"]))
    model = keras.Model(text, vectorize(text), name="tvm")
    model.save(tmp_path / "t.keras")
    graph = import_model(tmp_path / "t.keras").project.graph
    source = python_source(graph)
    assert (
        'layers.TextVectorization(\n        max_tokens=10,\n        output_sequence_length=4,\n'
        '        vocabulary=["", "[UNK]", "hello", "world", "there"],\n        name="tv",\n    )(text)'
    ) in source
    (tmp_path / "code.py").write_text(source)
    coded = runpy.run_path(str(tmp_path / "code.py"))["build_model"]()
    feed = np.array([["hello world"], ["there is more"]])
    np.testing.assert_array_equal(np.asarray(coded(feed)), np.asarray(model(feed)))
    export_keras(graph, tmp_path / "again.keras")
    reloaded = keras.saving.load_model(tmp_path / "again.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(reloaded(feed)), np.asarray(model(feed)))
