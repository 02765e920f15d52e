"""Constant arrays in ``keras.ops`` calls (issue 16, item 4).

``keras.applications.<model>.preprocess_input(x)`` on a symbolic input records
``keras.ops`` calls whose arguments hold constant arrays (``__tensor__``, or
``__numpy__`` for a NumPy array): the channel means of caffe mode, the mean and
standard deviation of torch mode. Such models import, infer Keras's shapes, export
to Python code and to ``.keras``, and compute what the original computes. A
constant from a file is plain numbers, bounded in size, and refused in one line
otherwise.
"""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from builder_app.core.calls import MAX_CONSTANT_ELEMENTS, constant_problem
from builder_app.core.catalog import check_config
from builder_app.core.keras_model import build_keras_model
from builder_app.core.project import load_project, save_project
from builder_app.core.shapes import ShapeEngine
from builder_app.exporters.python_code import python_source
from builder_app.exporters.saved_model import export_keras
from builder_app.importers.keras_file import ModelImportError, import_model
from tests.keras_compare import compare_with_keras
from tests.test_import import with_random_weights
from tests.test_python_code import load_built, write

#: preprocess_input's module -> the kinds of constant arrays its calls record.
MODES = {
    "resnet50": {"__tensor__"},  # caffe: RGB -> BGR, minus the ImageNet means
    "vgg16": {"__tensor__"},  # caffe
    "densenet": {"__tensor__"},  # torch: / 255, minus the means, / the deviations
    "efficientnet": set(),  # a no-op: EfficientNet models rescale inside themselves
    "mobilenet_v2": set(),  # tf: / 127.5 - 1, plain numbers only
    "inception_v3": set(),  # tf
    "xception": set(),  # tf
}


def preprocessed(module: str) -> keras.Model:
    x = keras.Input((224, 224, 3))
    y = getattr(keras.applications, module).preprocess_input(x)
    y = keras.layers.Conv2D(4, 3)(y)
    return with_random_weights(keras.Model(x, y))


def constant_kinds(graph) -> set[str]:
    """The kinds of constant arrays the graph's recorded calls hold."""
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            if (
                str(value.get("class_name", "")).startswith("__")
                and value["class_name"] != "__keras_tensor__"
            ):
                found.add(value["class_name"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for node_id in graph.nodes:
        walk(graph.node(node_id).call)
    return found - {"__ellipsis__", "__slice__", "__tuple__"}


def assert_same_outputs(original: keras.Model, other: keras.Model, inputs: np.ndarray) -> None:
    expected = keras.tree.flatten(original(inputs, training=False))
    got = keras.tree.flatten(other(inputs, training=False))
    assert len(got) == len(expected)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-5)


def round_trip(original: keras.Model, tmp_path, inputs: np.ndarray):
    """Import, check, export to code, to .keras and to a project: each computes what ``original`` does."""
    source = tmp_path / "original.keras"
    original.save(source)
    result = import_model(source)
    graph = result.project.graph
    assert result.warnings == []
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    engine.close()
    assert compare_with_keras(original, graph) == []
    assert_same_outputs(original, build_keras_model(graph), inputs)

    # Python code: lints; the rebuilt model, given the weights by layer name, is the same function.
    rebuilt = load_built(write(python_source(graph), tmp_path / "model.py"))
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in original.layers]
    for layer in original.layers:
        rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    assert_same_outputs(original, rebuilt, inputs)

    # .keras: plain Keras loads it safely.
    export_keras(graph, tmp_path / "exported.keras")
    assert_same_outputs(
        original, keras.saving.load_model(tmp_path / "exported.keras", safe_mode=True), inputs
    )

    # The project file keeps the constants as plain lists.
    save_project(result.project, tmp_path / "model.builder.json")
    reloaded = load_project(tmp_path / "model.builder.json").graph
    assert constant_kinds(reloaded) == constant_kinds(graph)
    assert_same_outputs(original, build_keras_model(reloaded), inputs)
    return graph


@pytest.mark.parametrize("module", MODES)
def test_preprocess_input_imports_infers_and_exports_the_same_function(module, tmp_path):
    original = preprocessed(module)
    inputs = np.random.default_rng(3).uniform(0, 255, size=(2, 224, 224, 3)).astype("float32")
    graph = round_trip(original, tmp_path, inputs)
    # What each mode records: the test fails if a mode starts recording something new.
    assert constant_kinds(graph) == MODES[module]
    if module == "efficientnet":
        assert sorted(layer.class_name for layer in graph.layers.values()) == [
            "Conv2D",
            "InputLayer",
        ]


def test_constants_are_written_as_short_literal_lists(tmp_path):
    graph = import_model(_saved(preprocessed("resnet50"), tmp_path)).project.graph
    source = python_source(graph)
    assert (
        'keras.ops.convert_to_tensor([[[[-103.939, -116.779, -123.68]]]], dtype="float32")'
        in source
    )
    graph = import_model(_saved(preprocessed("densenet"), tmp_path)).project.graph
    assert 'keras.ops.convert_to_tensor([0.229, 0.224, 0.225], dtype="float32")' in python_source(
        graph
    )


def test_numpy_and_tensor_constants_of_any_op_round_trip(tmp_path):
    x = keras.Input((4, 3))
    a = keras.ops.multiply(x, np.array([1, 2, 3], "float32"))  # recorded as __numpy__
    b = keras.ops.matmul(
        a, keras.ops.convert_to_tensor(np.arange(15).reshape(3, 5) / 7, dtype="float32")
    )
    c = keras.ops.greater(b, np.array([0, 1, 2, 3, 4], "int32"))  # an int constant
    d = keras.ops.where(c, b, keras.ops.convert_to_tensor([[-1.5] * 5] * 4, dtype="float16"))
    original = keras.Model(x, d)
    inputs = np.random.default_rng(5).normal(size=(2, 4, 3)).astype("float32")
    graph = round_trip(original, tmp_path, inputs)
    assert constant_kinds(graph) == {"__numpy__", "__tensor__"}


def _saved(model: keras.Model, tmp_path) -> str:
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return path


def _config_with_constant(value, dtype="float32") -> dict:
    """resnet50's preprocessing as a model config, its channel means replaced by ``value``."""
    x = keras.Input((8, 8, 3))
    model = keras.Model(x, keras.applications.resnet50.preprocess_input(x))
    data = json.loads(model.to_json())
    (constant,) = [
        arg
        for layer in data["config"]["layers"]
        for node in layer["inbound_nodes"]
        for arg in node["args"]
        if isinstance(arg, dict) and arg.get("class_name") == "__tensor__"
    ]
    constant["config"] = {"value": value, "dtype": dtype}
    return data


BAD_CONSTANTS = {
    "too big": ([[0.0] * 1001] * 1000, "float32", "more than 1,000,000 numbers"),
    "too big, claimed by the first row": (
        [[0.0] * 10**6] + [[0.0]],
        "float32",
        "more than 1,000,000",
    ),
    "ragged": ([[1.0, 2.0], [3.0]], "float32", "not rectangular"),
    "strings": ([["os.system"]], "float32", "holds str values"),
    "an object inside": (
        [{"class_name": "__lambda__", "config": {}}],
        "float32",
        "holds dict values",
    ),
    "an unknown dtype": ([1.0], "object", "dtype must be one of"),
    "too deep": (
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1.0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        "float32",
        "dimensions",
    ),
}


@pytest.mark.parametrize("case", BAD_CONSTANTS, ids=BAD_CONSTANTS)
def test_bad_constants_in_a_file_are_refused_in_one_line(case, tmp_path):
    value, dtype, expected = BAD_CONSTANTS[case]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(_config_with_constant(value, dtype)))
    with pytest.raises(ModelImportError) as info:
        import_model(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert expected in message and "layer 'add" in message


def test_the_limit_itself_is_accepted_and_an_int_constant_of_a_float_is_made():
    assert (
        constant_problem(
            {
                "class_name": "__tensor__",
                "config": {"value": [0.0] * MAX_CONSTANT_ELEMENTS, "dtype": "float32"},
            }
        )
        is None
    )
    assert (
        constant_problem({"class_name": "__numpy__", "config": {"value": 2, "dtype": "int8"}})
        is None
    )
    assert constant_problem({"class_name": "__numpy__", "config": {"value": []}}) is not None


def test_a_bad_constant_in_a_project_file_is_a_node_error_not_a_crash(tmp_path):
    result = import_model(_saved(preprocessed("vgg16"), tmp_path))
    path = tmp_path / "model.builder.json"
    save_project(result.project, path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    document = json.loads(members["project.json"])
    (constant,) = _constants_in(document)
    np.testing.assert_allclose(
        constant["config"]["value"], [[[[-103.939, -116.779, -123.68]]]], rtol=1e-6
    )
    constant["config"]["value"] = [["not", "numbers"]]
    members["project.json"] = json.dumps(document).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    graph = load_project(path).graph
    engine = ShapeEngine(graph)
    errors = engine.errors()
    engine.close()
    assert len(errors) == 1 and "holds str values" in errors[0][1]
    assert graph.node(errors[0][0]).layer.startswith("add")


def _constants_in(value) -> list[dict]:
    """The constant arrays anywhere in parsed JSON."""
    if isinstance(value, dict):
        if value.get("class_name") in ("__tensor__", "__numpy__"):
            return [value]
        return [c for item in value.values() for c in _constants_in(item)]
    if isinstance(value, list):
        return [c for item in value for c in _constants_in(item)]
    return []


def test_a_constant_naming_a_module_is_refused():
    value = {"class_name": "__tensor__", "config": {"value": [1.0], "dtype": "float32"}}
    assert constant_problem(value) is None
    assert "module" in constant_problem({**value, "module": "os"})
    assert "registered_name" in constant_problem({**value, "registered_name": "evil"})
    assert "fn" in constant_problem({**value, "config": {**value["config"], "fn": "os.system"}})


def test_layer_configs_read_constants_as_bounded_plain_data():
    small = {"class_name": "__tensor__", "config": {"value": [0.5, 0.25], "dtype": "float32"}}
    big = {
        "class_name": "__tensor__",
        "config": {"value": [[0.0] * 2000] * 600, "dtype": "float32"},
    }
    code = {
        "class_name": "__tensor__",
        "config": {"value": [{"class_name": "__lambda__"}], "dtype": "float32"},
    }
    assert check_config("Normalization", {"mean": small}) == []
    (problem,) = check_config("Normalization", {"mean": big})
    assert problem.startswith("mean: ") and "more than 1,000,000" in problem
    (problem,) = check_config("Normalization", {"mean": code})
    assert "holds dict values" in problem


@pytest.mark.parametrize("module", ["resnet50", "densenet"])
def test_savedmodel_and_onnx_hold_the_constants_as_values(module, tmp_path):
    """A traced export keeps the constants inside the graph, not as extra inputs to feed."""
    import tensorflow as tf

    from builder_app.exporters.saved_model import export_savedmodel

    original = preprocessed(module)
    graph = import_model(_saved(original, tmp_path)).project.graph
    inputs = np.random.default_rng(4).uniform(0, 255, size=(2, 224, 224, 3)).astype("float32")
    expected = np.asarray(original(inputs, training=False))

    export_savedmodel(graph, tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(np.asarray(served.serve(inputs)), expected, rtol=0, atol=1e-4)

    pytest.importorskip("tf2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from builder_app.exporters.onnx_export import export_onnx

    export_onnx(graph, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (name,) = [i.name for i in session.get_inputs()]  # the image only
    (got,) = session.run(None, {name: inputs})
    # float32 rounding on activations in the hundreds: relative, as the export's own check is
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
