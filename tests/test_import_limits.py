"""What a .keras file declares is bounded before the import acts on it (issue 16, items 8 and
14): a few-KB file whose config declares a 940 GB layer is refused (or imported without
weights) without allocating it, and a model is imported only as deep as a project can
save and reopen.

The files are written by hand (config.json, metadata.json and model.weights.h5 zipped in
``tmp_path``), as a crafted file would be: building the declared model is what must not
happen.
"""

from __future__ import annotations

import json
import resource
import time
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from builder_app.core import keras_compat
from builder_app.core import project as project_format
from builder_app.core.project import load_project, save_project
from builder_app.importers import keras_file
from builder_app.importers.keras_file import ModelImportError, import_model

#: 10 inputs to 200,000,000 units: 2,200,000,000 weights (8.2 GiB as float32), each
#: weight within the 2**31 - 1 elements one weight may have.
HUGE_UNITS = 200_000_000
#: The issue's layer: 784 inputs to 300,000,000 units, 940 GB.
ABSURD_UNITS = 300_000_000


# ----------------------------------------------------------------- crafting files
def _input(name: str, width: int) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {"batch_shape": [None, width], "dtype": "float32", "sparse": False, "name": name},
        "registered_name": None,
        "name": name,
        "inbound_nodes": [],
    }


def _tensor(source: str, width: int, node: int = 0) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, width], "dtype": "float32", "keras_history": [source, node, 0]},
    }


def _dense(name: str, units: int, source: str, width: int) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": name, "units": units, "activation": "linear", "use_bias": True},
        "registered_name": None,
        "name": name,
        "inbound_nodes": [{"args": [_tensor(source, width)], "kwargs": {}}],
    }


def _functional(name: str, layers: list[dict[str, Any]], output: str, node: int = 0) -> dict[str, Any]:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": name,
            "trainable": True,
            "layers": layers,
            "input_layers": [[layers[0]["name"], 0, 0]],
            "output_layers": [[output, node, 0]],
        },
        "registered_name": "Functional",
    }


def mnist_config(last_units: int, first_units: int = 10) -> dict[str, Any]:
    """784 -> Dense(first_units) 'dense_1' -> Dense(last_units) 'dense_9'."""
    layers = [
        _input("x", 784),
        _dense("dense_1", first_units, "x", 784),
        _dense("dense_9", last_units, "dense_1", first_units),
    ]
    return _functional("mlp", layers, "dense_9")


def weights_file(path: Path, layers: dict[str, list[tuple[int, ...]]]) -> None:
    """A Keras 3 weights file: ``layers/<group>/vars/<i>`` of these shapes (random float32)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        h5.create_group("vars")
        group = h5.create_group("layers")
        group.create_group("input_layer").create_group("vars")
        for name, shapes in layers.items():
            variables = group.create_group(name).create_group("vars")
            for i, shape in enumerate(shapes):
                variables.create_dataset(str(i), data=rng.standard_normal(shape).astype("float32"))


def keras_archive(path: Path, config: dict[str, Any], weights: dict[str, list[tuple[int, ...]]] | None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0", "date_saved": "2026-12-01"}))
        archive.writestr("config.json", json.dumps(config))
        if weights is not None:
            h5_path = path.with_suffix(".weights.h5")
            weights_file(h5_path, weights)
            archive.write(h5_path, "model.weights.h5")
    return path


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _bounded_import(path: Path):
    """Imports ``path``; asserts it took under 10 s and grew the peak RSS by under 1 GB.

    Keras is imported before measuring: it is not what is being bounded.
    """
    keras_compat.import_keras()
    before, start = _peak_rss_bytes(), time.monotonic()
    try:
        return import_model(path)
    finally:
        grown, took = _peak_rss_bytes() - before, time.monotonic() - start
        assert took < 10, f"the import took {took:.0f} s"
        assert grown < 1 << 30, f"the import grew the peak RSS by {grown / 2**30:.1f} GiB"


# ---------------------------------------------------------------- item 8: sizes
def test_a_huge_layer_whose_weights_the_file_contradicts_is_refused_without_allocating(tmp_path):
    # The file holds dense_9's honest 10 x 3 kernel; the config says 300,000,000 units.
    path = keras_archive(
        tmp_path / "huge.keras",
        mnist_config(HUGE_UNITS),
        {"dense": [(784, 10), (10,)], "dense_1": [(10, 3), (3,)]},
    )
    assert path.stat().st_size < 64 << 10
    with pytest.raises(ModelImportError) as caught:
        _bounded_import(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("huge.keras: layer 'dense_9' declares 2,200,000,000 weights"), message
    assert "(8.2 GiB as float32)" in message, message
    assert "the weights file holds 33 for it" in message, message


def test_a_huge_layer_the_file_holds_no_weights_for_imports_as_a_graph_with_a_warning(tmp_path):
    config = mnist_config(HUGE_UNITS)
    path = keras_archive(tmp_path / "bare.keras", config, {"dense": [(784, 10), (10,)]})
    result = _bounded_import(path)
    graph = result.project.graph
    assert graph.layers["dense_9"].config["units"] == HUGE_UNITS
    assert all(layer.weights is None for layer in graph.layers.values())
    [warning] = [w for w in result.warnings if "dense_9" in w]
    assert warning.startswith("the weights were not imported: layer 'dense_9' declares 2,200,000,000 weights")
    assert "the file holds none for it" in warning


def test_the_issues_940_gb_layer_is_neither_built_nor_given_weights(tmp_path):
    # 784 x 300,000,000: whether the shape engine calls the layer invalid (a weight
    # holds at most 2**31 - 1 elements) or the size check refuses it, the import names
    # it in one line, in bounded time and memory, and imports no weights.
    path = keras_archive(
        tmp_path / "absurd.keras",
        mnist_config(3, first_units=ABSURD_UNITS),
        {"dense": [(784, 10), (10,)], "dense_1": [(10, 3), (3,)]},
    )
    try:
        result = _bounded_import(path)
    except ModelImportError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("absurd.keras: layer 'dense_1' declares 235,500,000,000 weights"), exc
    else:
        assert all(layer.weights is None for layer in result.project.graph.layers.values())
        assert any(w.startswith("the weights were not imported: ") and "'dense_1'" in w for w in result.warnings)


def test_a_legacy_h5_model_is_weighed_the_same_way(tmp_path):
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(mnist_config(HUGE_UNITS))
        weights = h5.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([b"x", b"dense_1", b"dense_9"])
        weights.create_group("x").attrs["weight_names"] = np.array([], dtype="S1")
        for name, shapes in {"dense_1": [(784, 10), (10,)], "dense_9": [(10, 3), (3,)]}.items():
            group = weights.create_group(name)
            names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for weight_name, shape in zip(names, shapes, strict=True):
                group.create_dataset(weight_name, data=np.zeros(shape, "float32"))
    with pytest.raises(ModelImportError) as caught:
        _bounded_import(path)
    assert str(caught.value) == (
        "huge.h5: layer 'dense_9' declares 2,200,000,000 weights (8.2 GiB as float32); "
        "the weights file holds 33 for it"
    )


def test_weights_that_match_the_config_still_import(tmp_path):
    path = keras_archive(
        tmp_path / "fine.keras",
        mnist_config(3),
        {"dense": [(784, 10), (10,)], "dense_1": [(10, 3), (3,)]},
    )
    result = import_model(path)
    dense_9 = result.project.graph.layers["dense_9"]
    assert [w.shape for w in dense_9.weights] == [(10, 3), (3,)]
    with h5py.File(path.with_suffix(".weights.h5")) as h5:
        np.testing.assert_array_equal(dense_9.weights[0], h5["layers/dense_1/vars/0"][()])
    assert not [w for w in result.warnings if "weights" in w]


def test_a_layer_missing_from_a_small_model_keeps_the_others_weights(tmp_path):
    # Within the allowance: the model is rebuilt, dense_9 keeps its initializers.
    path = keras_archive(tmp_path / "partial.keras", mnist_config(3), {"dense": [(784, 10), (10,)]})
    result = import_model(path)
    layers = result.project.graph.layers
    assert [w.shape for w in layers["dense_1"].weights] == [(784, 10), (10,)]
    assert [w for w in result.warnings if "dense_9" in w]


def test_the_allowance_is_read_at_call_time(tmp_path, monkeypatch):
    # dense_9 (10 x 3 + 3 = 33 weights, 132 bytes) is missing from the file: over a 100-byte
    # allowance, the model is not rebuilt and the import says which layer.
    monkeypatch.setattr(keras_file, "MAX_UNBACKED_WEIGHTS_BYTES", 100)
    path = keras_archive(tmp_path / "partial.keras", mnist_config(3), {"dense": [(784, 10), (10,)]})
    result = import_model(path)
    assert all(layer.weights is None for layer in result.project.graph.layers.values())
    assert any(w.startswith("the weights were not imported: layer 'dense_9' declares 33 weights") for w in result.warnings)


# ------------------------------------------------------------- item 14c: depth
def nested_config(levels: int) -> dict[str, Any]:
    """Input -> sub-model -> sub-model ... ``levels`` deep -> Dense(4)."""
    model = _functional("m0", [_input("x0", 4), _dense("d0", 4, "x0", 4)], "d0")
    for level in range(1, levels + 1):
        inner = {
            **model,
            "name": f"m{level - 1}",
            "inbound_nodes": [{"args": [_tensor(f"x{level}", 4)], "kwargs": {}}],
        }
        # A functional model's own node is 0: its first call in another model is node 1.
        model = _functional(f"m{level}", [_input(f"x{level}", 4), inner], f"m{level - 1}", node=1)
    return model


def test_the_deepest_model_the_importer_accepts_saves_and_reopens(tmp_path):
    levels = keras_file.max_submodel_levels()
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(nested_config(levels)))
    project = import_model(path).project
    target = tmp_path / "deep.kproj"
    save_project(project, target)
    reopened = load_project(target)
    assert reopened.graph.to_dict() == project.graph.to_dict()
    graph, depth = reopened.graph, 0
    while "m0" not in graph.layers:
        graph = next(layer.submodel for layer in graph.layers.values() if layer.submodel is not None)
        depth += 1
    assert depth + 1 == levels


@pytest.mark.parametrize("extra", [1, 20])
def test_a_model_deeper_than_a_project_holds_is_refused_in_one_line(tmp_path, extra):
    levels = keras_file.max_submodel_levels()
    path = tmp_path / "deeper.json"
    path.write_text(json.dumps(nested_config(levels + extra)))
    with pytest.raises(ModelImportError) as caught:
        import_model(path)
    assert str(caught.value) == (
        f"deeper.json: sub-models are nested {levels + extra} deep; a project holds at most "
        f"{levels} sub-model levels"
    )


def test_the_depth_limit_follows_the_project_format(monkeypatch):
    levels = keras_file.max_submodel_levels()
    monkeypatch.setattr(project_format, "MAX_JSON_DEPTH", project_format.MAX_JSON_DEPTH + 30)
    assert keras_file.max_submodel_levels() == levels + 10


def test_a_layer_config_too_deep_for_a_project_is_refused_though_its_levels_fit(tmp_path):
    # Within the config's own limit, but project.json would nest more than 128 levels.
    config = mnist_config(3)
    deep: Any = 0
    for _ in range(project_format.MAX_JSON_DEPTH):
        deep = [deep]
    config["config"]["layers"][1]["config"]["kernel_initializer"] = {"class_name": "Constant", "config": {"value": deep}}
    path = tmp_path / "deep_config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ModelImportError) as caught:
        import_model(path)
    assert str(caught.value) == (
        "deep_config.json: the config of layer 'dense_1' nests too deeply: a project nests at most 128 levels"
    )
