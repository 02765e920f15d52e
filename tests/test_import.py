"""Keras files -> projects: exact round trips, and hostile files that stay inert."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from builder_app.core.keras_build import NEEDS_CODE
from builder_app.core.keras_model import build_keras_model
from builder_app.core.project import load_project, project_to_bytes
from builder_app.core.shapes import ShapeEngine
from builder_app.exporters.check import TOLERANCE, check_export
from builder_app.exporters.python_code import python_source
from builder_app.importers import keras_file
from builder_app.importers.keras_file import ModelImportError, import_model
from tests.keras_compare import compare_with_keras
from tests.test_keras_model import random_inputs, same_function
from tests.test_python_code import assert_same_model, load_built, ops_model, write
from tests.test_shapes import conv_zoo_to_run, recurrent_and_attention, shared_and_nested

ROOT = Path(__file__).parents[1]


def masked_sequences():
    tokens = keras.Input((12,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(50, 8, mask_zero=True, name="embed")(tokens)
    masked = keras.layers.Masking(name="mask_more")(embedded)
    seq = keras.layers.LSTM(6, return_sequences=True, name="lstm")(masked)
    pooled = keras.layers.GlobalMaxPooling1D(name="pool")(seq)
    return keras.Model(tokens, keras.layers.Dense(2, activation="softmax", name="cls")(pooled), name="masked")


def nested_reuse():
    block_in = keras.Input((8, 8, 4), name="block_in")
    h = keras.layers.Conv2D(4, 3, padding="same", name="block_conv")(block_in)
    h = keras.layers.BatchNormalization(name="block_bn")(h)
    block = keras.Model(block_in, keras.layers.Add(name="block_add")([h, block_in]), name="res_block")
    x = keras.Input((8, 8, 4), name="image")
    y = block(block(x))  # one sub-model, called twice in a row
    y = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", name="up")(y)
    return keras.Model(x, y, name="nested_reuse")


def attention_encoder():
    x = keras.Input((10, 16), name="x")
    memory = keras.Input((6, 16), name="memory")
    att = keras.layers.MultiHeadAttention(4, 8, name="self_att")(x, x)
    h = keras.layers.LayerNormalization(name="norm1")(keras.layers.Add(name="res1")([x, att]))
    cross = keras.layers.MultiHeadAttention(2, 8, name="cross_att")(h, memory)
    h = keras.layers.LayerNormalization(name="norm2")(keras.layers.Add(name="res2")([h, cross]))
    return keras.Model([x, memory], [h, keras.layers.GlobalAveragePooling1D(name="pooled")(h)], name="encoder")


HAND_BUILT = {
    "conv_zoo": conv_zoo_to_run,
    "shared_and_nested": shared_and_nested,
    "recurrent_and_attention": recurrent_and_attention,
    "masked_sequences": masked_sequences,
    "nested_reuse": nested_reuse,
    "attention_encoder": attention_encoder,
    "keras_ops": ops_model,
}
APPLICATIONS = {
    "MobileNetV2": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.35),
    "EfficientNetB0": lambda: keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3)),
    "DenseNet121": lambda: keras.applications.DenseNet121(weights=None, input_shape=(64, 64, 3)),
    "ResNet50V2": lambda: keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3)),
}
MODELS = {**HAND_BUILT, **APPLICATIONS}


def with_random_weights(model: keras.Model, seed: int = 7) -> keras.Model:
    """Every weight random (BatchNorm statistics included), so a lost weight shows."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        value = rng.uniform(0.5, 1.5, size=shape) if "variance" in variable.path else rng.normal(0, 0.3, size=shape)
        variable.assign(value.astype(variable.dtype))
    return model


def imported(path: Path):
    result = import_model(path)
    return result.project.graph, result.warnings


@pytest.fixture(scope="module")
def exported_dir(tmp_path_factory):
    """Where the round-trip tests leave .keras exports and the outputs they must give."""
    return tmp_path_factory.mktemp("exports")


@pytest.mark.parametrize("name", MODELS, ids=MODELS)
def test_keras_file_round_trip(name, tmp_path, exported_dir):
    original = with_random_weights(MODELS[name]())
    source = tmp_path / "original.keras"
    original.save(source)

    graph, warnings = imported(source)
    assert warnings == []
    # Every node's shapes, dtypes and parameters are Keras's.
    assert compare_with_keras(original, graph) == []
    # The weights came along: the same function.
    inputs = random_inputs(original)
    same_function(original, build_keras_model(graph), inputs)

    # Python code: lints, builds the same model; with the weights copied by name, the same outputs.
    code = write(python_source(graph), tmp_path / "model.py")
    assert_same_model(original, load_built(code))

    # .keras export: checked in a fresh Python at the end (one interpreter for all models).
    target = exported_dir / f"{name}.keras"
    from builder_app.exporters.saved_model import export_keras

    export_keras(graph, target)
    expected = keras.tree.flatten(original(inputs, training=False))
    np.savez(
        exported_dir / f"{name}.npz",
        *[np.asarray(x) for x in (inputs if isinstance(inputs, list) else [inputs])],
    )
    np.savez(exported_dir / f"{name}.expected.npz", *[np.asarray(y) for y in expected])


KERAS2 = sorted(p.stem for p in (ROOT / "tests" / "data").glob("keras2_*.h5"))


@pytest.mark.parametrize("name", KERAS2)
def test_keras2_h5_files_import_exactly(name, tmp_path, exported_dir):
    """Files written by tf.keras (Keras 2), which Keras 3 itself often cannot load."""
    data = np.load(ROOT / "tests" / "data" / f"{name}.npz")
    inputs = [data[k] for k in sorted(data.files) if k.startswith("x")]
    expected = [data[k] for k in sorted(data.files) if k.startswith("y")]
    graph, warnings = imported(ROOT / "tests" / "data" / f"{name}.h5")
    assert all("renamed" in w for w in warnings), warnings
    assert ShapeEngine(graph).errors() == []
    model = build_keras_model(graph)
    got = keras.tree.flatten(model(inputs if len(inputs) > 1 else inputs[0], training=False))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), b, atol=1e-5)
    code = write(python_source(graph), tmp_path / "model.py")
    assert_same_model(model, load_built(code))
    from builder_app.exporters.saved_model import export_keras

    export_keras(graph, exported_dir / f"{name}.keras")
    np.savez(exported_dir / f"{name}.npz", *inputs)
    np.savez(exported_dir / f"{name}.expected.npz", *expected)


def test_keras2_names_with_slashes_and_tf_functions():
    graph, warnings = imported(ROOT / "tests" / "data" / "keras2_tf_ops.h5")
    assert warnings == ["Keras 3 layer names cannot hold '/': renamed 'stem/conv' to 'stem_conv' (and 2 more)"]
    assert {"stem_conv", "stem_bn", "head_out"} <= set(graph.layers)
    kinds = {layer.class_name for layer in graph.layers.values()}
    # x * relu6(x + 3) / 6, and ThresholdedReLU as the ReLU with a threshold Keras 3 has.
    assert {"keras.src.ops.numpy.Add", "keras.src.ops.nn.Relu6", "keras.src.ops.numpy.TrueDivide", "ReLU"} <= kinds
    assert graph.layers["thresh"].config["threshold"] == pytest.approx(0.1)


_FRESH_LOADER = """
import sys
from pathlib import Path
import numpy as np
import keras
folder = Path(sys.argv[1])
assert "builder_app" not in sys.modules
worst = {}
for path in sorted(folder.glob("*.keras")):
    model = keras.saving.load_model(path, safe_mode=True)
    inputs = list(np.load(folder / (path.stem + ".npz")).values())
    expected = list(np.load(folder / (path.stem + ".expected.npz")).values())
    got = keras.tree.flatten(model(inputs if len(inputs) > 1 else inputs[0], training=False))
    worst[path.stem] = max(float(np.max(np.abs(np.asarray(g) - e))) for g, e in zip(got, expected))
assert "builder_app" not in sys.modules
print(worst)
"""


def test_round_tripped_keras_exports_load_safely_in_a_fresh_python(exported_dir):
    exported = sorted(p.stem for p in exported_dir.glob("*.keras"))
    if not exported:
        pytest.skip("run together with test_keras_file_round_trip")
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_LOADER, str(exported_dir)],
        capture_output=True,
        text=True,
        cwd=exported_dir,  # no checkout on the path: builder_app is not importable by accident
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    worst = eval(done.stdout.strip().splitlines()[-1], {})  # a dict of floats we printed ourselves
    assert sorted(worst) == exported
    assert all(difference <= TOLERANCE for difference in worst.values()), worst


def test_legacy_h5_and_json_configs(tmp_path):
    original = with_random_weights(shared_and_nested())
    h5_path = tmp_path / "model.h5"
    original.save(h5_path)
    graph, warnings = imported(h5_path)
    assert warnings == []
    assert compare_with_keras(original, graph) == []
    same_function(original, build_keras_model(graph), random_inputs(original))

    json_path = tmp_path / "model.json"
    json_path.write_text(original.to_json())
    graph, warnings = imported(json_path)
    assert compare_with_keras(original, graph) == []
    assert warnings == ["a model config holds no weights; the layers start from their initializers"]


def test_savedmodel_of_an_imported_model_serves_the_same_outputs(tmp_path):
    original = with_random_weights(nested_reuse())
    original.save(tmp_path / "m.keras")
    graph, _ = imported(tmp_path / "m.keras")
    from builder_app.exporters.saved_model import export_savedmodel

    export_savedmodel(graph, tmp_path / "served")
    differences = check_export(graph, "savedmodel", tmp_path / "served", model=original)
    assert max(differences) <= TOLERANCE


def test_a_config_with_a_shape_error_imports_and_shows_where(tmp_path):
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.Dense(5, name="hidden")(x)))
    config = json.loads(model.to_json())
    config["config"]["layers"][1]["config"]["units"] = -2  # hidden: not a valid width
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(config))
    graph, _ = imported(path)
    engine = ShapeEngine(graph)
    (node,) = graph.nodes_of_layer("hidden")
    assert engine.result(node).errors and "units" in engine.result(node).errors[0]


def test_unknown_custom_layer_becomes_a_marked_node(tmp_path):
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="out")(x))
    config = json.loads(model.to_json())
    config["config"]["layers"][1].update(module="my_project.layers", class_name="Fancy", registered_name="Custom>Fancy")
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(config))
    graph, _ = imported(path)
    engine = ShapeEngine(graph)
    (node,) = graph.nodes_of_layer("out")
    assert engine.result(node).errors == [f"unknown layer my_project.layers.Fancy: {NEEDS_CODE}"]


def test_import_command(tmp_path):
    original = with_random_weights(masked_sequences())
    original.save(tmp_path / "model.keras")
    project = tmp_path / "model.kproj"
    done = run_cli("import", str(tmp_path / "model.keras"), "-o", str(project))
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stdout
    graph = load_project(project).graph
    same_function(original, build_keras_model(graph), random_inputs(original))
    validated = run_cli("validate", str(project), "--json")
    report = json.loads(validated.stdout)
    assert report["valid"] and report["total_params"] == original.count_params()
    # Every layer keeps its name (the keras.ops calls Masking records are nodes too).
    assert {n["layer"] for n in report["nodes"]} >= {layer.name for layer in original.layers}


def run_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "builder_app", *args], capture_output=True, text=True, env=env, timeout=300
    )


# ------------------------------------------------------------ bad and hostile input
def simple_keras_file(path: Path) -> Path:
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="out")(keras.layers.Dense(3, name="hidden")(x)), name="simple")
    model.save(path)
    return path


def rewrite_archive(source: Path, target: Path, **members: bytes | None) -> Path:
    """Copies a .keras archive, replacing (bytes) or dropping (None) members."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename in members:
                continue
            new.writestr(info.filename, old.read(info))
        for name, data in members.items():
            if data is not None:
                new.writestr(name, data)
    return target


def edit_config(source: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(source) as archive:
        config = json.loads(archive.read("config.json"))
    edit(config)
    return rewrite_archive(source, target, **{"config.json": json.dumps(config).encode()})


def cli_refuses(path: Path, tmp_path: Path, expected: str) -> None:
    done = run_cli("import", str(path), "-o", str(tmp_path / "out.kproj"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"builder-app: {path.resolve()}: ") and expected in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.kproj").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a Keras model"),
        (b"hello", "not a Keras model"),
        (b'{"layers": 3', "not JSON"),
        (b'{"name": "x"}', "not a Keras model config"),
        (b"[1, 2]", "not a Keras model"),
        (b'{"class_name": "Dense", "config": {"units": 3}}', "'Dense' is a layer, not a model"),
        (b"\x89HDF\r\n\x1a\ngarbage", "not a readable HDF5 file"),
        (
            b'{"module": "__main__", "class_name": "MyNet", "config": {"units": 3}}',
            "'__main__.MyNet' is a custom class whose config holds no layer graph (a subclassed model?)",
        ),
    ],
)
def test_files_that_are_not_models_get_one_line(content, expected, tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ModelImportError, match=re.escape(expected)) as caught:
        import_model(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("model.keras: ")


def test_truncated_and_incomplete_archives(tmp_path):
    whole = simple_keras_file(tmp_path / "whole.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(whole[: len(whole) // 2])
    cli_refuses(tmp_path / "cut.keras", tmp_path, "damaged or truncated zip archive")
    rewrite_archive(tmp_path / "whole.keras", tmp_path / "noconfig.keras", **{"config.json": None})
    with pytest.raises(ModelImportError, match="has no config.json"):
        import_model(tmp_path / "noconfig.keras")
    rewrite_archive(tmp_path / "whole.keras", tmp_path / "noweights.keras", **{"model.weights.h5": None})
    assert import_model(tmp_path / "noweights.keras").warnings == [
        "the file holds no weights; the layers start from their initializers"
    ]
    with pytest.raises(ModelImportError, match="No such file"):
        import_model(tmp_path / "missing.keras")
    with pytest.raises(ModelImportError, match="not a regular file"):
        import_model(tmp_path)


def test_lambda_with_marshalled_code_is_an_inert_node(tmp_path):
    marker = tmp_path / "lambda-ran"

    # A true lambda, so that Keras marshals its bytecode into the config.
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")  # noqa: S307
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Lambda(touch, name="code")(keras.layers.Dense(3, name="d")(x)))
    model.save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model above ran it once
    with zipfile.ZipFile(tmp_path / "lambda.keras") as archive:
        assert "__lambda__" in archive.read("config.json").decode()

    graph, warnings = imported(tmp_path / "lambda.keras")
    engine = ShapeEngine(graph)
    (node,) = graph.nodes_of_layer("code")
    assert engine.result(node).errors == [
        "Lambda is shown but not run: its code runs only once the project's code is trusted (--trust)"
    ]
    assert graph.layers["d"].weights is not None  # every other layer keeps its weights
    assert any("need their code ('code')" in w for w in warnings)
    done = run_cli("import", str(tmp_path / "lambda.keras"), "-o", str(tmp_path / "lambda.kproj"))
    assert done.returncode == 0
    exported = run_cli("export", str(tmp_path / "lambda.kproj"), "--keras", str(tmp_path / "again.keras"))
    assert exported.returncode == 1 and "Lambda is shown but not run" in exported.stderr
    assert not marker.exists()


def test_module_functions_named_by_a_config_are_never_called(tmp_path):
    marker = tmp_path / "os-system-ran"
    command = f"touch {marker}"
    source = simple_keras_file(tmp_path / "simple.keras")

    def poison(config):
        hidden, out = config["config"]["layers"][1], config["config"]["layers"][2]
        hidden["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}
        hidden["config"]["kernel_initializer"] = {"module": "os", "class_name": "system", "config": {"command": command}}
        out["module"], out["class_name"], out["config"]["command"] = "os", "system", command
        out["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["x", 0, 0]  # its own branch
        # A "layer" that would switch Keras's safe mode off if deserialized.
        config["config"]["layers"].insert(
            1,
            {"module": "keras.config", "class_name": "enable_unsafe_deserialization", "config": {}, "name": "unsafe", "inbound_nodes": []},
        )

    path = edit_config(source, tmp_path / "poisoned.keras", poison)
    from keras.src.saving import serialization_lib

    safe_before = serialization_lib.in_safe_mode()
    result = import_model(path)
    engine = ShapeEngine(result.project.graph)
    errors = dict(engine.errors())
    (hidden,) = result.project.graph.nodes_of_layer("hidden")
    (out,) = result.project.graph.nodes_of_layer("out")
    assert "activation" in errors[hidden] or "initializer" in errors[hidden]
    assert errors[out] == f"unknown layer os.system: {NEEDS_CODE}"
    for args in (["--python", "x.py"], ["--keras", "x.keras"], ["--savedmodel", "x"]):
        save = tmp_path / "poisoned.kproj"
        save.write_bytes(project_to_bytes(result.project))
        done = run_cli("export", str(save), *[str(tmp_path / a) if i else a for i, a in enumerate(args)])
        assert done.returncode == 1
    assert serialization_lib.in_safe_mode() == safe_before
    assert not marker.exists()


def test_vocabulary_paths_are_never_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-token\n")
    tokens = keras.Input((5,), dtype="string", name="words")
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"], name="lookup")
    model = keras.Model(tokens, lookup(tokens))
    model.save(tmp_path / "lookup.keras")

    def point_at_secret(config):
        config["config"]["layers"][1]["config"]["vocabulary"] = str(secret)

    path = edit_config(tmp_path / "lookup.keras", tmp_path / "vocab.keras", point_at_secret)
    result = import_model(path)
    engine = ShapeEngine(result.project.graph)
    (node,) = result.project.graph.nodes_of_layer("lookup")
    assert "names a file" in engine.result(node).errors[0]
    assert b"the-secret-token" not in project_to_bytes(result.project)


def bomb_weights(path: Path, declared: tuple[int, ...]) -> bytes:
    """A Keras weights file whose first kernel declares ``declared`` with no data behind it."""
    with h5py.File(path, "w") as h5:
        group = h5.create_group("layers/dense/vars")
        group.create_dataset("0", shape=declared, dtype="float32", chunks=(1024,), compression="gzip")
        group.create_dataset("1", data=np.zeros(3, "float32"))
    return path.read_bytes()


def peak_while_refused(path: Path, message: str) -> int:
    """The most memory Python allocated while the import refused ``path``."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelImportError, match=message):
            import_model(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_hdf5_dataset_declaring_terabytes_is_refused_in_bounded_memory(tmp_path):
    source = simple_keras_file(tmp_path / "simple.keras")
    weights = bomb_weights(tmp_path / "bomb.h5", (1 << 40,))
    assert len(weights) < 1 << 20
    path = rewrite_archive(source, tmp_path / "bomb.keras", **{"model.weights.h5": weights})
    assert peak_while_refused(path, "declares shape") < 64 << 20


def test_legacy_h5_bombs_and_links_to_other_files_are_refused(tmp_path):
    x = keras.Input((4,), name="x")
    keras.Model(x, keras.layers.Dense(2, name="dense")(x)).save(tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "a") as h5:
        kernel = h5["model_weights/dense/dense/kernel"]
        del h5["model_weights/dense/dense/kernel"]
        h5.create_dataset("model_weights/dense/dense/kernel", shape=(1 << 38, 2), dtype="float32", chunks=(64, 2))
        assert kernel is not None
    with pytest.raises(ModelImportError, match="declares shape"):
        import_model(tmp_path / "model.h5")

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x" * 32)
    keras.Model(x, keras.layers.Dense(2, name="dense")(x)).save(tmp_path / "external.h5")
    with h5py.File(tmp_path / "external.h5", "a") as h5:
        del h5["model_weights/dense/dense/kernel"]
        h5.create_dataset("model_weights/dense/dense/kernel", shape=(4, 2), dtype="float32", external=[(str(secret), 0, 32)])
    with pytest.raises(ModelImportError, match="not stored as plain data"):
        import_model(tmp_path / "external.h5")

    keras.Model(x, keras.layers.Dense(2, name="dense")(x)).save(tmp_path / "linked.h5")
    with h5py.File(tmp_path / "linked.h5", "a") as h5:
        del h5["model_weights/dense/dense/kernel"]
        h5["model_weights/dense/dense/kernel"] = h5py.ExternalLink(str(secret), "/data")
    with pytest.raises(ModelImportError, match="only plain entries"):
        import_model(tmp_path / "linked.h5")


def test_zip_path_traversal_is_refused(tmp_path):
    source = simple_keras_file(tmp_path / "simple.keras")
    for name in ("../escaped.txt", "/etc/evil", "assets/../../evil", "C:/evil"):
        path = rewrite_archive(source, tmp_path / "traversal.keras", **{name: b"boo"})
        with pytest.raises(ModelImportError, match="unsafe name"):
            import_model(path)
    assert not (tmp_path.parent / "escaped.txt").exists()


def lying_zip(path: Path, member: str, payload_bytes: int, claimed: int) -> Path:
    """A zip whose member inflates to ``payload_bytes`` while its headers claim ``claimed``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, b" " * payload_bytes)
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<L", data, local + 22, claimed)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<L", data, central + 24, claimed)
    path.write_bytes(bytes(data))
    return path


def test_zip_bombs_are_refused_in_bounded_memory(tmp_path, monkeypatch):
    honest = tmp_path / "honest.keras"
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * (80 << 20))
    assert honest.stat().st_size < 1 << 20
    with pytest.raises(ModelImportError, match="config.json takes 80.0 MiB uncompressed; the limit is 64.0 MiB"):
        import_model(honest)

    liar = lying_zip(tmp_path / "liar.keras", "config.json", 200 << 20, 100)
    # zipfile itself stops at the declared size; the CRC then tells the lie.
    assert peak_while_refused(liar, "damaged zip archive: Bad CRC-32 for file 'config.json'") < 16 << 20

    monkeypatch.setattr(keras_file, "MAX_MEMBERS", 3)
    many = rewrite_archive(simple_keras_file(tmp_path / "s.keras"), tmp_path / "many.keras", **{f"assets/{i}": b"" for i in range(5)})
    with pytest.raises(ModelImportError, match="more than 3 members"):
        import_model(many)


def test_assets_no_layer_owns_are_left_out_and_say_so(tmp_path):
    # Owned assets (adapted vocabularies) are imported: tests/test_import_fidelity.py.
    source = simple_keras_file(tmp_path / "simple.keras")
    path = rewrite_archive(source, tmp_path / "assets.keras", **{"assets/lookup/vocabulary.txt": b"a\nb\n"})
    assert import_model(path).warnings == [
        "ignored the assets in 'assets/lookup', which no layer of the model owns"
    ]


def test_weights_that_do_not_fit_the_layers_are_left_out_with_a_warning(tmp_path):
    source = simple_keras_file(tmp_path / "simple.keras")
    other = tmp_path / "other.weights.h5"
    x = keras.Input((4,), name="x")
    keras.Model(x, keras.layers.Dense(2, name="out")(keras.layers.Dense(7, name="hidden")(x))).save_weights(other)
    path = rewrite_archive(source, tmp_path / "mismatch.keras", **{"model.weights.h5": other.read_bytes()})
    result = import_model(path)
    assert any(w.startswith("layer 'hidden': its weights were not imported") for w in result.warnings)
    assert result.project.graph.layers["hidden"].weights is None
