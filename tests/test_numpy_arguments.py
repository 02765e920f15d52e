"""NumPy constants in layer arguments (issue 17, item 2).

``keras.initializers.Constant(np.eye(3).flatten())`` starts the transform nets of
PointNet: Keras serializes the array as ``__numpy__`` (a tensor as ``__tensor__``).
Such an argument is read as plain numbers, bounded in size, nothing executed, and
written back by every export: ``np.array([...])`` in the code, the same
``__numpy__`` in ``.keras``, the same numbers in the project file.
"""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from builder_app.core.keras_model import build_keras_model
from builder_app.core.project import load_project, save_project
from builder_app.core.shapes import ShapeEngine
from builder_app.exporters.python_code import CodegenError, python_source
from builder_app.exporters.saved_model import export_keras
from builder_app.importers.keras_file import import_model
from tests.test_import import with_random_weights
from tests.test_python_code import load_built, write

POINTS, FEATURES = 16, 3


def transform_net() -> keras.Model:
    """PointNet's input transform: a learned 3x3 matrix that starts as the identity."""
    points = keras.Input((POINTS, FEATURES), name="points")
    x = keras.layers.Conv1D(8, 1, activation="relu", name="features")(points)
    x = keras.layers.GlobalMaxPooling1D(name="pool")(x)
    x = keras.layers.Dense(
        FEATURES * FEATURES,
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(np.eye(FEATURES).flatten()),
        name="transform",
    )(x)
    matrix = keras.layers.Reshape((FEATURES, FEATURES), name="matrix")(x)
    aligned = keras.layers.Dot(axes=(2, 1), name="aligned")([points, matrix])
    # Other dtypes of constant: a float32 array, an int array, and a tensor.
    y = keras.layers.Dense(
        4, bias_initializer=keras.initializers.Constant(np.full(4, 0.1, "float32")), name="f32"
    )(aligned)
    y = keras.layers.Dense(
        3, bias_initializer=keras.initializers.Constant(np.arange(3, dtype="int32")), name="ints"
    )(y)
    y = keras.layers.Dense(
        2,
        bias_initializer=keras.initializers.Constant(
            keras.ops.convert_to_tensor([0.5, -0.25], dtype="float32")
        ),
        name="tensor",
    )(y)
    return keras.Model(points, [aligned, y], name="pointnet_tnet")


def bias_configs(model: keras.Model) -> dict[str, dict]:
    return {
        layer.name: layer.get_config()["bias_initializer"]
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense)
    }


def outputs(model: keras.Model, inputs: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(t) for t in keras.tree.flatten(model(inputs, training=False))]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    original = transform_net()
    path = tmp_path_factory.mktemp("tnet") / "tnet.keras"
    original.save(path)
    return original, path


def test_the_constants_are_what_keras_writes(saved):
    original, _ = saved
    biases = bias_configs(original)
    assert biases["transform"]["config"]["value"]["class_name"] == "__numpy__"
    assert biases["tensor"]["config"]["value"]["class_name"] == "__tensor__"


def test_a_pointnet_transform_net_round_trips(saved, tmp_path):
    original, path = saved
    result = import_model(path)
    graph = result.project.graph
    assert result.warnings == []
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    engine.close()
    points = np.random.default_rng(1).normal(size=(2, POINTS, FEATURES)).astype("float32")

    # Python code: NumPy's own spelling, and a fresh model starts where the original did.
    source = python_source(graph)
    assert "import numpy as np" in source
    bare = "".join(source.split())  # as laid out, a call may span lines
    assert "keras.initializers.Constant(np.array([1.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0,1.0]))" in bare
    assert 'Constant(np.array([0.1,0.1,0.1,0.1],dtype="float32"))' in bare
    assert 'Constant(np.array([0,1,2],dtype="int32"))' in bare
    assert 'Constant(keras.ops.convert_to_tensor([0.5,-0.25],dtype="float32"))' in bare
    rebuilt = load_built(write(source, tmp_path / "tnet.py"))
    assert bias_configs(rebuilt) == bias_configs(original)
    # The transform starts as the identity: the fresh model passes the points through.
    np.testing.assert_array_equal(outputs(rebuilt, points)[0], points)

    # Trained weights: the code, the app's model and the .keras export compute the same.
    trained = with_random_weights(original)
    expected = outputs(trained, points)
    for layer in trained.layers:
        rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    graph = import_model(_save(trained, tmp_path / "trained.keras")).project.graph
    for model in (rebuilt, build_keras_model(graph)):
        for got, want in zip(outputs(model, points), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

    export_keras(graph, tmp_path / "exported.keras")
    exported = keras.saving.load_model(tmp_path / "exported.keras", safe_mode=True)
    assert bias_configs(exported) == bias_configs(original)
    for got, want in zip(outputs(exported, points), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

    # The project file keeps the numbers as they are.
    save_project(result.project, tmp_path / "tnet.builder.json")
    reloaded = load_project(tmp_path / "tnet.builder.json").graph
    transform = graph.layers["transform"].config["bias_initializer"]
    assert reloaded.layers["transform"].config["bias_initializer"] == transform
    assert python_source(reloaded) == python_source(graph)


def _save(model: keras.Model, path):
    model.save(path)
    return path


def _with_bias_value(path, value: dict, tmp_path):
    """A copy of the saved model whose transform's Constant holds ``value``."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    data = json.loads(members["config.json"])
    (layer,) = [layer for layer in data["config"]["layers"] if layer["name"] == "transform"]
    layer["config"]["bias_initializer"]["config"]["value"] = value
    members["config.json"] = json.dumps(data).encode()
    crafted = tmp_path / "crafted.keras"
    with zipfile.ZipFile(crafted, "w") as archive:
        for name, member in members.items():
            archive.writestr(name, member)
    return crafted


BAD_ARGUMENTS = {
    "too big": (
        {"class_name": "__numpy__", "config": {"value": [[0.0] * 1001] * 1000, "dtype": "float64"}},
        "more than 1,000,000 numbers",
    ),
    "strings": (
        {"class_name": "__numpy__", "config": {"value": ["os.system"], "dtype": "float64"}},
        "holds str values",
    ),
    "code inside": (
        {"class_name": "__numpy__", "config": {"value": [{"class_name": "__lambda__"}], "dtype": "float64"}},
        "holds dict values",
    ),
    "a module": (
        {"class_name": "__numpy__", "module": "os", "config": {"value": [1.0], "dtype": "float64"}},
        "fields Keras never writes: module",
    ),
    "an object dtype": (
        {"class_name": "__numpy__", "config": {"value": [1.0], "dtype": "object"}},
        "dtype must be one of",
    ),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=BAD_ARGUMENTS)
def test_a_bad_numpy_argument_is_a_node_error_in_one_line(saved, case, tmp_path):
    """The file imports as a graph; the layer holding the bad constant is the one node error."""
    _, path = saved
    value, expected = BAD_ARGUMENTS[case]
    graph = import_model(_with_bias_value(path, value, tmp_path)).project.graph
    engine = ShapeEngine(graph)
    errors = engine.errors()
    engine.close()
    assert [graph.node(node).layer for node, _ in errors] == ["transform"]
    message = errors[0][1]
    assert "\n" not in message and len(message) < 300, message
    assert expected in message and "bias_initializer" in message, message
    assert "__numpy__" not in message, message
    with pytest.raises(CodegenError, match="not valid: 'transform'"):
        python_source(graph)


MARKERS = {
    "__lambda__": "holds a Python lambda, which is code and is never run from a file",
    "function": "holds a Python function, which is code and is never run from a file",
    "__bytes__": "holds raw bytes, which this app does not read here",
    "__typespec__": "holds a TensorFlow type spec, which this app does not read here",
    "__made_up__": "holds an object of a kind this app does not read",
}


@pytest.mark.parametrize("marker", MARKERS)
def test_keras_markers_are_refused_in_a_sentence(marker):
    """Issue 17, item 6: "__lambda__", "__bytes__" and the like are named in words."""
    from builder_app.core.calls import CallError, constant
    from builder_app.core.catalog import check_config, default_config

    value = {"class_name": marker, "config": {"value": "AAAA"}}
    (problem,) = check_config("Dense", {**default_config("Dense"), "units": 2, "bias_initializer": {
        "module": "keras.initializers", "class_name": "Constant", "config": {"value": value},
    }})
    assert problem.startswith("bias_initializer.value: " + MARKERS[marker]), problem
    assert f"(Keras's {marker})" in problem  # the marker only in brackets, for a search
    with pytest.raises(CallError) as info:
        constant(value)
    assert str(info.value).startswith(f"the call {MARKERS[marker]}")
