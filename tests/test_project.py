"""The project file: round trips, atomic saves, golden files per format version,
refusals with clear messages, and a fuzzed loader that only ever raises ProjectLoadError."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import signal
import stat
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from builder_app.core import atomic, runs, weights_file
from builder_app.core import project as proj
from builder_app.core.assets import walk_assets
from builder_app.core.atomic import clean_stale_temp_files
from builder_app.core.graph import ModelGraph, PortRef
from builder_app.core.ops import Connect, SetModelIO, add_layer, call_again, group_as_submodel
from builder_app.core.project import (
    FORMAT_VERSION,
    MIGRATIONS,
    Project,
    ProjectLoadError,
    ProjectSaveError,
    load_project,
    project_from_bytes,
    project_to_bytes,
    save_project,
)
from builder_app.core.runs import RunError, RunWeights, delete_run, record_run, restore_run

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
MIB = 1 << 20


# ------------------------------------------------------------------ helpers
def build_graph() -> ModelGraph:
    """Input -> shared Dense (called twice) -> sub-model "head" (Dense, Dense) ; with weights."""
    graph = ModelGraph("mlp")
    x = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 8], "dtype": "float32"})).node_id
    shared = graph.apply(add_layer(graph, "Dense", {"units": 8}, name="shared", position=(100.0, 5.5))).node_id
    graph.apply(Connect(x, 0, shared, 0))
    again = graph.apply(call_again(graph, shared)).node_id
    graph.apply(Connect(shared, 0, again, 0))
    a = graph.apply(add_layer(graph, "Dense", {"units": 4, "activation": "relu"}, name="inner_a")).node_id
    graph.apply(Connect(again, 0, a, 0))
    b = graph.apply(add_layer(graph, "Dense", {"units": 2}, name="inner_b")).node_id
    graph.apply(Connect(a, 0, b, 0))
    graph.apply(SetModelIO([x], [PortRef(b, 0)]))
    rng = np.random.default_rng(1)
    graph.layers["shared"].weights = [rng.standard_normal((8, 8)).astype(np.float32), np.zeros(8, np.float32)]
    graph.layers["inner_a"].weights = [
        rng.standard_normal((8, 4)).astype(np.float64),
        np.arange(4).astype(ml_dtypes.bfloat16),
        np.array(7, dtype=np.int64),  # a scalar
    ]
    graph.layers["inner_b"].weights = [
        np.arange(8, dtype=np.float16).reshape(4, 2),
        np.array([True, False]),
        np.arange(2, dtype=">i4"),  # big-endian stays big-endian
        np.array([1 + 2j], np.complex64),
        np.zeros((0, 2), np.uint8),
    ]
    graph.layers["input_layer"].weights = []  # empty, unlike None
    graph.apply(group_as_submodel(graph, [a, b], {PortRef(again, 0): ([None, 8], "float32")}, name="head"))
    return graph


def trained_variant(graph: ModelGraph, offset: float) -> ModelGraph:
    """A copy of ``graph`` whose floating-point weights are moved by ``offset``, as a run would."""
    twin = graph.clone()
    for _, layer in all_layers(twin):
        if layer.weights is not None:
            layer.weights = [w + np.asarray(offset, w.dtype) if w.dtype.kind == "f" else w for w in layer.weights]
    return twin


def all_layers(graph: ModelGraph, prefix: str = ""):
    for layer in graph.layers.values():
        yield prefix + layer.name, layer
        if layer.submodel is not None:
            yield from all_layers(layer.submodel, f"{prefix}{layer.name}/")


def sample_project() -> Project:
    graph = build_graph()
    return Project(
        graph,
        training={"optimizer": "adam", "epochs": 3, "lr": 1e-3, "note": "héllo"},
        # Run ids are free JSON values; only runs that keep weights need a RUN_ID.
        runs=[{"id": "run-1", "loss": [0.5, 0.25]}, {"id": 2, "loss": [], "stopped": True}],
        run_weights={"run-1": RunWeights.from_graph(trained_variant(graph, 1.5))},
    )


def all_weights(graph: ModelGraph, prefix: str = "") -> dict[str, list[np.ndarray] | None]:
    found: dict[str, list[np.ndarray] | None] = {}
    for layer in graph.layers.values():
        found[prefix + layer.name] = layer.weights
        if layer.submodel is not None:
            found.update(all_weights(layer.submodel, f"{prefix}{layer.name}/"))
    return found


def assert_same_project(loaded: Project, original: Project) -> None:
    assert loaded.graph.to_dict() == original.graph.to_dict()
    assert loaded.training == original.training
    assert loaded.runs == original.runs
    assert_same_weights(all_weights(loaded.graph), all_weights(original.graph))
    assert loaded.run_weights.keys() == original.run_weights.keys()
    for run_id, weights in original.run_weights.items():
        assert_same_weights(loaded.run_weights[run_id].arrays(), weights.arrays())


def assert_same_weights(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for label, arrays in want.items():
        if arrays is None:
            assert got[label] is None, label
            continue
        assert got[label] is not None and len(got[label]) == len(arrays), label
        for g, w in zip(got[label], arrays, strict=True):
            assert isinstance(g, np.ndarray)
            assert g.dtype == w.dtype and g.shape == w.shape, label
            assert np.array_equal(g, w), label


def small_graph_dict() -> dict:
    graph = ModelGraph("tiny")
    x = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 2], "dtype": "float32"})).node_id
    d = graph.apply(add_layer(graph, "Dense", {"units": 2})).node_id
    graph.apply(Connect(x, 0, d, 0))
    return graph.to_dict()


def document(**changes) -> dict:
    doc = {
        "format": "builder-app-project",
        "format_version": FORMAT_VERSION,
        "app_version": "0.1.0",
        "graph": small_graph_dict(),
        "training": {},
        "runs": [],
    }
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


_DROP = object()


def archive(members, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name, bytes) pairs, in order, duplicates allowed."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are on purpose
        with zipfile.ZipFile(buffer, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buffer.getvalue()


def doc_archive(doc: dict, *extra) -> bytes:
    return archive([("project.json", json.dumps(doc).encode()), *extra])


def h5_bytes(build) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        build(f)
    return buffer.getvalue()


def weights_archive(build) -> bytes:
    """A project whose weights file is made by ``build(h5file)`` (graph: input_layer, dense)."""
    return doc_archive(document(weights={"file": "model.weights.h5"}), ("model.weights.h5", h5_bytes(build)))


def patch_central_directory(data: bytes, name: str, *, file_size=None, flag_bits=None) -> bytes:
    """Rewrites fields of one member's central directory entry (32-bit sizes only)."""
    out = bytearray(data)
    pos = zipfile.ZipFile(io.BytesIO(data)).start_dir
    while out[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<3H", out, pos + 28)
        if out[pos + 46 : pos + 46 + name_len].decode() == name:
            if flag_bits is not None:
                struct.pack_into("<H", out, pos + 8, flag_bits)
            if file_size is not None:
                struct.pack_into("<L", out, pos + 24, file_size)
            return bytes(out)
        pos += 46 + name_len + extra_len + comment_len
    raise AssertionError(f"no member {name}")


def load_error(data: bytes, tmp_path: Path, name: str = "model.kproj") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ProjectLoadError) as info:
        load_project(path)
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    return message


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# =============================================================== round trip
def test_round_trip_through_a_file(tmp_path):
    original = sample_project()
    path = tmp_path / "model.kproj"
    save_project(original, path)
    assert original.path == path
    loaded = load_project(path)
    assert loaded.path == path
    assert_same_project(loaded, original)
    # A shared layer is one layer with two calls, and it stays that way.
    assert len(loaded.graph.nodes_of_layer("shared")) == 2
    assert loaded.graph.layers["head"].submodel.layers["inner_a"].weights[1].dtype == ml_dtypes.bfloat16
    assert loaded.graph.layers["input_layer"].weights == []
    assert loaded.graph.layers["head"].weights is None


def test_saving_is_deterministic_and_equals_project_to_bytes(tmp_path):
    project = sample_project()
    save_project(project, tmp_path / "a.kproj")
    save_project(project, tmp_path / "b.kproj")
    data = (tmp_path / "a.kproj").read_bytes()
    assert data == (tmp_path / "b.kproj").read_bytes() == project_to_bytes(project)
    assert_same_project(project_from_bytes(data), project)


def test_archive_layout_is_readable_json_and_keras_style_h5():
    data = project_to_bytes(sample_project())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["project.json", "model.weights.h5", "runs/run-1.weights.h5"]
        assert [info.compress_type for info in zf.infolist()] == [zipfile.ZIP_DEFLATED, *[zipfile.ZIP_STORED] * 2]
        text = zf.read("project.json").decode()
        h5 = zf.read("model.weights.h5")
        run_h5 = zf.read("runs/run-1.weights.h5")
    assert text.startswith(f'{{\n "format": "builder-app-project",\n "format_version": {FORMAT_VERSION},\n')
    doc = json.loads(text)
    assert list(doc) == ["format", "format_version", "app_version", "graph", "training", "runs", "weights", "run_weights"]
    assert doc["weights"] == {"file": "model.weights.h5"}
    assert doc["run_weights"] == {"run-1": {"file": "runs/run-1.weights.h5"}}
    with h5py.File(io.BytesIO(run_h5), "r") as f:  # the same layout as the model's
        assert f["layers/shared/vars/0"].shape == (8, 8)
        assert f["layers/head/layers/inner_a/vars/1"].attrs["dtype"] == b"bfloat16"
    with h5py.File(io.BytesIO(h5), "r") as f:
        assert f["layers/shared/vars/0"].shape == (8, 8)
        assert f["layers/shared/vars"].attrs["name"] == "shared"
        assert f["layers/head/layers/inner_b/vars/1"].dtype == np.bool_
        assert f["layers/head/layers/inner_a/vars/1"].attrs["dtype"] == b"bfloat16"
        assert list(f["layers/input_layer/vars"]) == []
        assert "vars" not in f["layers/head"]


def test_no_weights_means_no_weights_member():
    graph = ModelGraph.from_dict(small_graph_dict())
    data = project_to_bytes(Project(graph))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["project.json"]
        assert "weights" not in json.loads(zf.read("project.json"))
    loaded = project_from_bytes(data)
    assert all(layer.weights is None for layer in loaded.graph.layers.values())


def test_layer_names_hdf5_treats_specially_round_trip():
    graph = ModelGraph.from_dict(small_graph_dict())
    for name in [".", "..", "%2E", "100%", "ü b"]:
        node = graph.apply(add_layer(graph, "Dense", {"units": 1}, name=name)).node_id
        graph.layers[name].weights = [np.array([len(name)], np.int16)]
        assert node
    loaded = project_from_bytes(project_to_bytes(Project(graph)))
    for name in [".", "..", "%2E", "100%", "ü b"]:
        assert loaded.graph.layers[name].weights[0].tolist() == [len(name)]


def test_numpy_values_in_the_run_history_are_stored_as_numbers():
    project = Project(ModelGraph.from_dict(small_graph_dict()), {"lr": np.float32(0.5)}, [{"loss": np.arange(3)}])
    loaded = project_from_bytes(project_to_bytes(project))
    assert loaded.training == {"lr": 0.5} and loaded.runs == [{"loss": [0, 1, 2]}]
    assert loaded.run_weights == {}


def test_an_invalid_model_is_still_saved():
    graph = ModelGraph("broken")
    dense = graph.apply(add_layer(graph, "Dense", {"units": -3})).node_id  # no input, bad units
    graph.apply(add_layer(graph, "NotAKerasLayer", {"x": 1}))
    loaded = project_from_bytes(project_to_bytes(Project(graph)))
    assert loaded.graph.to_dict() == graph.to_dict() and dense in loaded.graph


@pytest.mark.parametrize(
    "weights, message",
    [
        ([np.array(["a", "b"], dtype=object)], "dtype object"),
        ([np.array(["ab"])], "dtype <U2"),
        ([np.zeros(2, dtype=[("a", "f4")])], "only numeric weights"),
    ],
)
def test_saving_refuses_weights_it_could_not_load(tmp_path, weights, message):
    path = tmp_path / "model.kproj"
    save_project(sample_project(), path)
    before = path.read_bytes()
    project = sample_project()
    project.graph.layers["shared"].weights = weights
    with pytest.raises(ProjectSaveError, match=re.escape(message)):
        save_project(project, path)
    assert path.read_bytes() == before and temp_files(tmp_path) == []


def test_saving_refuses_what_loading_would_refuse(monkeypatch):
    monkeypatch.setattr(weights_file, "MAX_WEIGHTS_BYTES", 100)
    with pytest.raises(ProjectSaveError, match="weights take"):
        project_to_bytes(sample_project())
    monkeypatch.setattr(weights_file, "MAX_WEIGHTS_BYTES", 1000)  # the arrays fit, the HDF5 file not
    graph = ModelGraph.from_dict(small_graph_dict())
    graph.layers["dense"].weights = [np.zeros(10, np.float32)]
    with pytest.raises(ProjectSaveError, match="weights file would take"):
        project_to_bytes(Project(graph))
    with pytest.raises(ProjectSaveError, match="training settings must be a dict"):
        project_to_bytes(Project(graph, training=[1]))
    with pytest.raises(ProjectSaveError, match="JSON cannot store"):
        project_to_bytes(Project(graph, training={"f": object()}))


# ============================================================== run weights
def project_with_two_runs() -> tuple[Project, ModelGraph, ModelGraph]:
    graph = build_graph()
    project = Project(graph)
    first, second = trained_variant(graph, 1.0), trained_variant(graph, -2.0)
    assert record_run(project, {"status": "completed"}, first) == []
    assert record_run(project, {"status": "stopped"}, second) == []
    return project, first, second


def test_two_runs_keep_their_weights_through_a_file_and_each_restores(tmp_path):
    project, first, second = project_with_two_runs()
    assert [r["id"] for r in project.runs] == ["run-1", "run-2"]
    save_project(project, tmp_path / "runs.kproj")
    loaded = load_project(tmp_path / "runs.kproj")
    assert_same_project(loaded, project)
    assert loaded.run_weights["run-2"].shapes()["shared"] == [(8, 8), (8,)]
    restored = restore_run(loaded, "run-1")
    assert sorted(restored) == ["head/inner_a", "head/inner_b", "input_layer", "shared"]
    assert_same_weights(all_weights(loaded.graph), all_weights(first))
    restore_run(loaded, "run-2")
    assert_same_weights(all_weights(loaded.graph), all_weights(second))
    # Restoring changes the weights, not the model: the graph and the history stay.
    assert loaded.graph.to_dict() == project.graph.to_dict() and loaded.runs == project.runs


def test_run_weights_are_kept_on_disk_not_in_memory():
    graph = ModelGraph.from_dict(small_graph_dict())
    graph.layers["dense"].weights = [np.ones((2, 2), np.float32), np.zeros(2, np.float32)]
    project = Project(graph)
    tracemalloc.start()
    try:
        for _ in range(5):
            big = graph.clone()
            big.layers["dense"].weights = [np.ones((2, 2), np.float32), np.zeros(2 * MIB, np.float32)]
            record_run(project, {}, big)
            del big
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(project.run_weights) == 5 and kept < 4 * MIB  # 40 MiB of weights in temporary files
    assert all(w.nbytes > 8 * MIB for w in project.run_weights.values())


def test_a_run_that_no_longer_fits_is_refused_naming_the_layer():
    project, first, _ = project_with_two_runs()
    before = all_weights(project.graph)
    project.graph.layers["shared"].weights = [np.zeros((8, 16), np.float32), np.zeros(16, np.float32)]
    with pytest.raises(RunError) as info:
        restore_run(project, "run-1")
    assert str(info.value) == (
        "run 'run-1' cannot be restored: layer 'shared' has weights of shapes [(8, 16), (16,)] now, "
        "the run's are [(8, 8), (8,)]"
    )
    # All or nothing: no other layer took the run's weights.
    assert_same_weights(
        {k: v for k, v in all_weights(project.graph).items() if k != "shared"},
        {k: v for k, v in before.items() if k != "shared"},
    )

    # A layer of the run that the model lost; a layer with weights the run never had.
    tiny = Project(ModelGraph.from_dict(small_graph_dict()), runs=project.runs, run_weights=project.run_weights)
    with pytest.raises(RunError, match=r"^run 'run-1' cannot be restored: the model has no layer 'head/inner_a' any more$"):
        restore_run(tiny, "run-1")
    lonely = Project(first.clone(), runs=[{"id": "old"}])
    lonely.run_weights["old"] = RunWeights.from_graph(ModelGraph.from_dict(small_graph_dict()))
    with pytest.raises(RunError, match=r"^run 'old' cannot be restored: layer 'shared' was not in the model of that run$"):
        restore_run(lonely, "old")
    with pytest.raises(RunError, match=r"^run 'nope' is not in the history$"):
        restore_run(project, "nope")
    project.runs.append({"id": "bare"})
    with pytest.raises(RunError, match=r"^run 'bare' kept no weights$"):
        restore_run(project, "bare")


def test_layers_without_weights_take_the_runs():
    project, first, _ = project_with_two_runs()
    for _, layer in all_layers(project.graph):
        layer.weights = None
    restore_run(project, "run-1")
    assert_same_weights(all_weights(project.graph), {k: v for k, v in all_weights(first).items()})


def test_deleting_a_run_deletes_its_weights(tmp_path):
    project, _, second = project_with_two_runs()
    assert delete_run(project, "run-1")["status"] == "completed"
    assert [r["id"] for r in project.runs] == ["run-2"] and list(project.run_weights) == ["run-2"]
    data = project_to_bytes(project)
    assert sorted(members_of(data)) == ["model.weights.h5", "project.json", "runs/run-2.weights.h5"]
    with pytest.raises(RunError, match="no run 'run-1'"):
        delete_run(project, "run-1")
    # Ids only grow: a deleted run's id is not given again.
    record_run(project, {}, second)
    assert [r["id"] for r in project.runs] == ["run-2", "run-3"]
    delete_run(project, "run-3")
    assert [r["id"] for r in project.runs] == ["run-2"]
    record_run(project, {"id": 7})  # no weights: any JSON id will do
    delete_run(project, 7)


def test_recording_lets_the_oldest_runs_weights_go_past_the_limits(monkeypatch):
    project, first, second = project_with_two_runs()
    monkeypatch.setattr(runs, "MAX_RUN_WEIGHTS", 2)
    assert record_run(project, {}, first) == ["run-1"]
    assert [r["id"] for r in project.runs] == ["run-1", "run-2", "run-3"]  # records stay
    assert list(project.run_weights) == ["run-2", "run-3"]
    size = project.run_weights["run-3"].nbytes
    monkeypatch.setattr(weights_file, "MAX_ALL_WEIGHTS_BYTES", 2 * size + 1000)
    assert record_run(project, {}, second) == ["run-2"]
    monkeypatch.setattr(weights_file, "MAX_ALL_WEIGHTS_BYTES", size // 2)
    assert record_run(project, {}, second) == ["run-3", "run-4", "run-5"]  # even its own do not fit
    assert project.run_weights == {} and len(project.runs) == 5
    with pytest.raises(RunError, match="already has a run 'run-5'"):
        record_run(project, {"id": "run-5"}, second)
    with pytest.raises(RunError, match="a run id is 1 to 64 letters"):
        record_run(project, {"id": "../x"}, second)


def test_saving_refuses_run_weights_loading_would_refuse(monkeypatch):
    project, first, _ = project_with_two_runs()
    project.run_weights["ghost"] = project.run_weights["run-1"]
    with pytest.raises(ProjectSaveError, match="the run history has no run 'ghost'"):
        project_to_bytes(project)
    del project.run_weights["ghost"]
    project.runs.append({"id": "run-1"})
    with pytest.raises(ProjectSaveError, match="has more than one run 'run-1'"):
        project_to_bytes(project)
    project.runs.pop()
    project.run_weights["a/b"] = project.run_weights.pop("run-1")
    with pytest.raises(ProjectSaveError, match="the run id 'a/b' is not"):
        project_to_bytes(project)
    project.run_weights["run-1"] = project.run_weights.pop("a/b")
    monkeypatch.setattr(weights_file, "MAX_ALL_WEIGHTS_BYTES", project.run_weights["run-1"].nbytes)
    with pytest.raises(ProjectSaveError, match=r"of the model and of 2 runs take .*: delete earlier runs$"):
        project_to_bytes(project)


def write_v1_file(path: Path) -> None:
    """A project file as format 1 wrote it: no run weights, runs without ids."""
    graph = ModelGraph.from_dict(small_graph_dict())
    doc = document(
        format_version=1,
        graph=graph.to_dict(),
        runs=[{"status": "completed", "history": {"loss": [1.0, 0.5]}}, {"id": "run-1"}, {"status": "stopped"}],
        weights={"file": "model.weights.h5"},
    )

    def build(f):
        f.create_dataset("layers/dense/vars/0", data=np.full((2, 2), 3.0, np.float32))
        f.create_dataset("layers/dense/vars/1", data=np.zeros(2, np.float32))

    path.write_bytes(doc_archive(doc, ("model.weights.h5", h5_bytes(build))))


def test_a_format_1_file_migrates(tmp_path):
    write_v1_file(tmp_path / "v1.kproj")
    loaded = load_project(tmp_path / "v1.kproj")
    # Every run gets an id (run-1 is taken), none has weights; the model's weights stay.
    assert [r["id"] for r in loaded.runs] == ["run-2", "run-1", "run-3"]
    assert loaded.runs[0]["history"] == {"loss": [1.0, 0.5]}
    assert loaded.run_weights == {}
    assert loaded.graph.layers["dense"].weights[0].tolist() == [[3.0, 3.0], [3.0, 3.0]]
    # Saved again, it is a current-format file, and runs recorded now keep weights.
    record_run(loaded, {"status": "completed"}, trained_variant(loaded.graph, 1.0))
    save_project(loaded, tmp_path / "v2.kproj")
    with zipfile.ZipFile(tmp_path / "v2.kproj") as zf:
        assert json.loads(zf.read("project.json"))["format_version"] == FORMAT_VERSION
        assert "runs/run-4.weights.h5" in zf.namelist()
    again = load_project(tmp_path / "v2.kproj")
    restore_run(again, "run-4")
    assert again.graph.layers["dense"].weights[0].tolist() == [[4.0, 4.0], [4.0, 4.0]]


def test_a_format_1_file_with_run_weights_is_refused(tmp_path):
    doc = document(format_version=1, runs=[{"id": "run-1"}], run_weights={"run-1": {"file": "runs/run-1.weights.h5"}})
    message = load_error(doc_archive(doc, ("runs/run-1.weights.h5", h5_bytes(lambda f: None))), tmp_path)
    assert "cannot upgrade from format 1: ValueError: a format-1 file holds no 'run_weights'" in message
    doc = document(format_version=1, runs=[{"id": "run-1"}])
    message = load_error(doc_archive(doc, ("runs/run-1.weights.h5", h5_bytes(lambda f: None))), tmp_path)
    assert "runs/run-1.weights.h5 is in the archive but project.json does not name it" in message


# ============================================================== atomic save
class FailingFile(io.FileIO):
    """A temp file whose writes fail once ``limit`` bytes have been written."""

    def __init__(self, fd: int, limit: int, error: BaseException):
        super().__init__(fd, "w")
        self.limit, self.error, self.count = limit, error, 0

    def write(self, data):
        if self.count + len(data) > self.limit:
            raise self.error
        self.count += len(data)
        return super().write(data)


def fail_after_bytes(monkeypatch, limit: int, error: BaseException) -> None:
    real = atomic._open_temp

    def failing(target):
        path, handle = real(target)
        fd = os.dup(handle.fileno())  # keeps the writer's lock
        handle.close()
        return path, FailingFile(fd, limit, error)

    monkeypatch.setattr(atomic, "_open_temp", failing)


def fail_on_call(monkeypatch, owner, name: str, after: int, error: BaseException) -> None:
    real = getattr(owner, name)
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)


INTERRUPTIONS = {
    "before the first byte": lambda mp: fail_after_bytes(mp, 0, OSError(28, "No space left on device")),
    "inside project.json": lambda mp: fail_after_bytes(mp, 100, OSError(28, "No space left on device")),
    # project.json is the first ~700 bytes of the ~2700 the sample takes.
    "inside the weights": lambda mp: fail_after_bytes(mp, 1500, OSError(5, "Input/output error")),
    "in the central directory": lambda mp: fail_after_bytes(mp, len(project_to_bytes(sample_project())) - 30, OSError(5, "I/O")),
    "ctrl-c mid-write": lambda mp: fail_after_bytes(mp, 1000, KeyboardInterrupt()),
    "writing the third dataset": lambda mp: fail_on_call(mp, h5py.Group, "create_dataset", 2, RuntimeError("h5 broke")),
    "creating a group": lambda mp: fail_on_call(mp, h5py.Group, "create_group", 3, KeyboardInterrupt()),
    "fsync": lambda mp: fail_on_call(mp, os, "fsync", 0, OSError(5, "I/O")),
    "rename": lambda mp: fail_on_call(mp, os, "replace", 0, PermissionError(13, "Permission denied")),
}


@pytest.mark.parametrize("where", list(INTERRUPTIONS))
def test_an_interrupted_save_leaves_the_previous_file_and_no_temp(tmp_path, monkeypatch, where):
    path = tmp_path / "model.kproj"
    first = sample_project()
    first.training = {"version": "old"}
    save_project(first, path)
    before = path.read_bytes()
    second = sample_project()
    second.training = {"version": "new"}
    assert len(project_to_bytes(second)) > 2000
    INTERRUPTIONS[where](monkeypatch)
    with pytest.raises((Exception, KeyboardInterrupt)):
        save_project(second, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.kproj"]


def test_the_first_save_interrupted_leaves_nothing(tmp_path, monkeypatch):
    fail_after_bytes(monkeypatch, 500, OSError(28, "No space left on device"))
    with pytest.raises(OSError):
        save_project(sample_project(), tmp_path / "model.kproj")
    assert list(tmp_path.iterdir()) == []


def test_saving_keeps_permissions_and_follows_symlinks(tmp_path):
    path = tmp_path / "model.kproj"
    save_project(sample_project(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    save_project(sample_project(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    link = tmp_path / "link.kproj"
    link.symlink_to(path)
    project = sample_project()
    project.training = {"through": "link"}
    save_project(project, link)
    assert link.is_symlink() and project.path == link
    assert load_project(path).training == {"through": "link"}


def stale_name(target: Path, token: str = "0123456789ab") -> str:
    return f".{target.name}.{token}.tmp"


def test_the_next_save_removes_stale_temp_files_of_that_target_only(tmp_path):
    path = tmp_path / "model.kproj"
    save_project(sample_project(), path)
    before = path.read_bytes()
    stale = [tmp_path / stale_name(path), tmp_path / stale_name(path, "fedcba987654")]
    others = [
        tmp_path / stale_name(tmp_path / "other.kproj"),  # another project's
        tmp_path / f".{path.name}.mine.tmp",  # not our pattern
        tmp_path / "notes.tmp",
    ]
    for p in [*stale, *others]:
        p.write_bytes(b"half a zip")
    assert load_project(path).training == sample_project().training  # loading leaves them
    assert path.read_bytes() == before
    save_project(sample_project(), path)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)


@pytest.mark.skipif(atomic.fcntl is None, reason="POSIX locks")
def test_a_temp_file_of_a_live_save_is_not_swept(tmp_path):
    path = tmp_path / "model.kproj"
    live_path, handle = atomic._open_temp(path)  # as a save in progress holds it
    try:
        assert clean_stale_temp_files(path) == []
        assert live_path.exists()
    finally:
        handle.close()
    assert clean_stale_temp_files(path) == [live_path]


CHILD = """
import sys
import numpy as np
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, add_layer
from builder_app.core.project import Project, save_project

target, size, i = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
graph = ModelGraph("big")
x = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 4], "dtype": "float32"})).node_id
d = graph.apply(add_layer(graph, "Dense", {"units": 4})).node_id
graph.apply(Connect(x, 0, d, 0))
# Random floats barely compress, so every save takes a while.
big = np.random.default_rng(0).standard_normal(size, dtype=np.float32)
print("ready", flush=True)
while True:
    graph.layers["dense"].weights = [big, np.array([i])]
    save_project(Project(graph, {"iteration": i}), target)
    print(i, flush=True)
    i += 1
"""


def test_a_killed_save_leaves_a_valid_file_and_the_next_save_cleans_up(tmp_path):
    """SIGKILL a process that keeps saving a large project, at several moments.

    The target is always either the previous file, byte for byte, or a complete new
    one. A killed process cannot remove its temporary file: that is left behind,
    and the next save of the target removes it.
    """
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    path = tmp_path / "model.kproj"
    save_project(Project(ModelGraph.from_dict(small_graph_dict()), {"iteration": 0}), path)
    size = 8 * MIB  # 32 MiB of float32
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(1234)
    for round_, moment in enumerate(["when the temp file appears", "random", "random"]):
        before = path.read_bytes()
        done_before = load_project(path).training["iteration"]
        first = 1000 * (round_ + 1)  # this child's first save; unique per round
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(size), str(first)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            if moment == "random":
                time.sleep(rng.uniform(0.0, 2.0))
            else:
                deadline = time.monotonic() + 30
                while not temp_files(tmp_path) and time.monotonic() < deadline:
                    time.sleep(0.001)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        completed = [int(line) for line in child.stdout.read().split()]
        child.stdout.close()
        loaded = load_project(path)  # always a complete, valid file
        iteration = loaded.graph.layers["dense"].weights[1][0] if loaded.graph.layers["dense"].weights else 0
        assert loaded.training["iteration"] == iteration
        print(f"{moment}: file had {done_before}, now {iteration}; saves reported {completed}; temps {temp_files(tmp_path)}")
        if iteration == done_before:
            assert path.read_bytes() == before
        else:
            # Saved and renamed; maybe killed before it could report it.
            assert iteration in {*completed, max(completed, default=first - 1) + 1}
            assert loaded.graph.layers["dense"].weights[0].shape == (size,)
        if moment != "random" and iteration == done_before:
            assert temp_files(tmp_path), "killed mid-write: its temp file stays behind"
    final = Project(ModelGraph.from_dict(small_graph_dict()), {"iteration": "final"})
    save_project(final, path)
    assert temp_files(tmp_path) == []
    assert load_project(path).training == {"iteration": "final"}


# ============================================================ golden files
def golden_versions() -> list[int]:
    return sorted(int(m.group(1)) for p in GOLDEN.glob("project_v*.kproj") if (m := re.fullmatch(r"project_v(\d+)\.kproj", p.name)))


def test_there_is_a_golden_file_for_every_readable_version():
    assert set(golden_versions()) == {*MIGRATIONS, FORMAT_VERSION}


@pytest.mark.parametrize("version", golden_versions())
def test_golden_file_loads_as_expected(version):
    path = GOLDEN / f"project_v{version}.kproj"
    expected = json.loads((GOLDEN / f"project_v{version}.expected.json").read_text(encoding="utf-8"))
    assert expected["format_version"] == version
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("project.json"))["format_version"] == version
    loaded = load_project(path)  # through the migrations, for an old version
    assert loaded.graph.to_dict() == expected["graph"]
    assert loaded.training == expected["training"]
    assert loaded.runs == expected["runs"]
    weights = {label: arrays for label, arrays in all_weights(loaded.graph).items() if arrays is not None}
    assert described(weights) == expected["weights"]
    # Format 1 kept no run weights.
    kept = {run_id: described(w.arrays()) for run_id, w in loaded.run_weights.items()}
    assert kept == expected.get("run_weights", {})
    assets = {label: {k: v.decode("utf-8") for k, v in layer.assets.items()} for label, layer in walk_assets(loaded.graph)}
    assert assets == expected.get("assets", {})  # format 4 on
    assert len(loaded.graph.nodes_of_layer("hidden")) == 2  # still shared
    assert loaded.graph.layers["head"].submodel is not None


def described(weights: dict[str, list[np.ndarray]]) -> dict:
    return {
        label: [{"dtype": str(a.dtype), "shape": list(a.shape), "values": a.ravel().tolist()} for a in arrays]
        for label, arrays in weights.items()
    }


def test_migrations_chain_from_every_version_to_the_current_one():
    for start in MIGRATIONS:
        version = start
        while version < FORMAT_VERSION:
            assert version in MIGRATIONS, f"no migration from format {version}"
            version += 1
        assert version == FORMAT_VERSION
    assert all(v < FORMAT_VERSION for v in MIGRATIONS)


def test_a_migration_upgrades_an_old_file(tmp_path, monkeypatch):
    calls = []

    def minus_one_to_zero(doc):
        calls.append(doc["format_version"])
        doc["model"] = doc.pop("net")
        return doc

    def zero_to_one(doc):
        calls.append(doc["format_version"])
        doc["graph"] = doc.pop("model")
        doc["training"] = {"epochs": doc.pop("epochs")}
        return doc

    monkeypatch.setitem(MIGRATIONS, -1, minus_one_to_zero)
    monkeypatch.setitem(MIGRATIONS, 0, zero_to_one)
    old = document(format_version=-1, net=small_graph_dict(), epochs=4, graph=_DROP, training=_DROP)
    path = tmp_path / "old.kproj"
    path.write_bytes(doc_archive(old))
    loaded = load_project(path)
    assert calls == [-1, 0]
    assert loaded.graph.to_dict() == small_graph_dict()
    assert loaded.training == {"epochs": 4}
    test_migrations_chain_from_every_version_to_the_current_one()


def test_a_migration_that_fails_is_a_load_error(tmp_path, monkeypatch):
    monkeypatch.setitem(MIGRATIONS, 0, lambda doc: doc["no such key"])
    message = load_error(doc_archive(document(format_version=0)), tmp_path)
    assert "cannot upgrade from format 0: KeyError" in message


def test_a_gap_in_the_migrations_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(MIGRATIONS, -1, lambda doc: doc)  # but none from 0
    message = load_error(doc_archive(document(format_version=-1)), tmp_path)
    assert "format 0 cannot be upgraded" in message


# ================================================================= refusals
BAD_JSON = b'{\n "format": "builder-app-project",\n "format_version": 1\n "graph": {}\n}'

REFUSALS = {
    "newer version": (
        lambda: doc_archive(document(format_version=FORMAT_VERSION + 1)),
        f"model.kproj: made by a newer version of builder-app (format {FORMAT_VERSION + 1}; this version reads up to {FORMAT_VERSION})",
    ),
    "unknown version": (lambda: doc_archive(document(format_version=0)), f"unknown format version 0 (this version reads format 1 to {FORMAT_VERSION})"),
    "version not an int": (lambda: doc_archive(document(format_version="1")), 'format_version "1" is not a whole number'),
    "version a float": (lambda: doc_archive(document(format_version=1.0)), "format_version 1.0 is not a whole number"),
    "version a bool": (lambda: doc_archive(document(format_version=True)), "format_version true is not a whole number"),
    "version missing": (lambda: doc_archive(document(format_version=_DROP)), "format_version null is not a whole number"),
    "missing marker": (lambda: doc_archive(document(format=_DROP)), 'lacks the "format": "builder-app-project" marker'),
    "wrong marker": (lambda: doc_archive(document(format="keras")), "marker"),
    "not a zip": (lambda: b"hello, world" * 10, "model.kproj: not a project file (not a zip archive)"),
    "empty file": (lambda: b"", "not a zip archive"),
    "truncated zip": (lambda: project_to_bytes(sample_project())[:1500], "damaged or truncated zip archive"),
    "truncated central directory": (
        lambda: (lambda d: d[: zipfile.ZipFile(io.BytesIO(d)).start_dir + 10] + d[-22:])(project_to_bytes(sample_project())),
        "damaged zip archive",
    ),
    "project.json not JSON": (
        lambda: archive([("project.json", BAD_JSON)]),
        "model.kproj: project.json line 4: Expecting ',' delimiter (column 2)",
    ),
    "project.json not UTF-8": (lambda: archive([("project.json", b'{"a": "\xff"}')]), "not UTF-8 text"),
    "project.json a list": (lambda: archive([("project.json", b"[1, 2]")]), "does not hold an object"),
    "duplicate key": (
        lambda: archive([("project.json", b'{"format": "builder-app-project", "format": "x"}')]),
        "the key 'format' appears twice",
    ),
    "deeply nested": (lambda: archive([("project.json", b"[" * 100_000 + b"]" * 100_000)]), "nested"),
    "nested past the limit": (lambda: doc_archive(document(training={"a": json.loads("[" * 200 + "]" * 200)})), "nested more than 128"),
    "huge number": (lambda: archive([("project.json", b"1" * 10_000)]), "project.json holds a number with too many digits"),
    "graph malformed": (
        lambda: doc_archive(document(graph={"layers": [], "nodes": [{"id": "n1", "layer": "ghost"}]})),
        "the graph is malformed: node 'n1' calls an unknown layer 'ghost'",
    ),
    "graph not an object": (lambda: doc_archive(document(graph=[])), "the graph is malformed: a model graph should be a dict"),
    "graph missing": (lambda: doc_archive(document(graph=_DROP)), "holds no graph"),
    "unhashable model input": (
        lambda: doc_archive(document(graph={**small_graph_dict(), "inputs": [[1]]})),
        "the graph is malformed: model input [1] is not an Input node",
    ),
    "unknown entry": (lambda: doc_archive(document(extras=1)), "unknown entry 'extras'"),
    "training a list": (lambda: doc_archive(document(training=[])), "'training' in project.json should be an object, not a list"),
    "runs of numbers": (lambda: doc_archive(document(runs=[1])), "'runs' in project.json should be a list of objects"),
    "odd weights reference": (lambda: doc_archive(document(weights={"file": "../x.h5"})), "'weights' in project.json should be"),
    "weights named but missing": (
        lambda: doc_archive(document(weights={"file": "model.weights.h5"})),
        "names model.weights.h5, which the archive lacks",
    ),
    "weights present but not named": (
        lambda: doc_archive(document(), ("model.weights.h5", h5_bytes(lambda f: None))),
        "model.weights.h5 is in the archive but project.json does not name it",
    ),
    "no project.json": (lambda: archive([("model.weights.h5", b"x")]), "the archive has no project.json"),
    "path traversal": (lambda: doc_archive(document(), ("../evil.py", b"import os")), "unsafe name '../evil.py'"),
    "absolute name": (lambda: doc_archive(document(), ("/etc/cron.d/x", b"x")), "unsafe name '/etc/cron.d/x'"),
    "windows traversal": (lambda: doc_archive(document(), ("..\\evil", b"x")), "unsafe name"),
    "unknown member": (lambda: doc_archive(document(), ("notes.txt", b"x")), "unknown member 'notes.txt'"),
    "directory member": (lambda: doc_archive(document(), ("weights/", b"")), "unknown member 'weights/'"),
    "duplicate member": (
        lambda: archive([("project.json", json.dumps(document()).encode())] * 2),
        "holds project.json twice",
    ),
    "too many members": (lambda: archive([(f"m{i}", b"") for i in range(proj.MAX_MEMBERS + 1)]), f"more than {proj.MAX_MEMBERS} members"),
    "run member traversal": (
        lambda: run_archive(name="runs/../x.weights.h5"),
        "unsafe name 'runs/../x.weights.h5'",
    ),
    "run member deeper": (lambda: run_archive(name="runs/a/b.weights.h5"), "unknown member 'runs/a/b.weights.h5'"),
    "run member odd name": (lambda: run_archive(name="runs/run 1.weights.h5"), "unknown member 'runs/run 1.weights.h5'"),
    "run member not named": (
        lambda: run_archive(entry=_DROP),
        "runs/run-1.weights.h5 is in the archive but project.json does not name it",
    ),
    "run member named but missing": (
        lambda: doc_archive(document(runs=[{"id": "run-1"}], run_weights={"run-1": {"file": "runs/run-1.weights.h5"}})),
        "names runs/run-1.weights.h5, which the archive lacks",
    ),
    "run weights of a run not in the history": (
        lambda: run_archive(runs=[{"id": "run-2"}]),
        "'run_weights' in project.json names run 'run-1', which the run history lacks",
    ),
    "run weights of a run twice in the history": (
        lambda: run_archive(runs=[{"id": "run-1"}, {"id": "run-1"}]),
        "which the run history has more than once",
    ),
    "run weights under a bad id": (
        lambda: doc_archive(document(runs=[{"id": "../x"}], run_weights={"../x": {"file": "runs/../x.weights.h5"}})),
        "'run_weights' in project.json names a run '../x'; a run id is 1 to 64 letters",
    ),
    "run weights elsewhere": (
        lambda: run_archive(entry={"file": "model.weights.h5"}),
        "run 'run-1' should be {\"file\": \"runs/run-1.weights.h5\"}",
    ),
    "run weights a list": (lambda: doc_archive(document(run_weights=[])), "'run_weights' in project.json should be an object, not a list"),
    "run weights not HDF5": (lambda: run_archive(data=b"\x80\x04K\x01."), "runs/run-1.weights.h5 is not an HDF5 file"),
    "huge zip directory": (
        lambda: archive([("project.json", b"{}"), (f"{'x' * 60_000}", b""), (f"{'y' * 60_000}", b"")]),
        "its zip directory takes more than 64 KiB",
    ),
    "encrypted member": (
        lambda: patch_central_directory(doc_archive(document()), "project.json", flag_bits=1),
        "project.json is encrypted",
    ),
    "bzip2 member": (lambda: archive([("project.json", b"{}")], zipfile.ZIP_BZIP2), "unsupported compression method (12)"),
    "stored is fine, content wrong": (lambda: archive([("project.json", b"{}")], zipfile.ZIP_STORED), "marker"),
    "pickle as project.json": (lambda: archive([("project.json", pickle.dumps({"format": 1}))]), "project.json"),
    "pickle as weights": (
        lambda: doc_archive(document(weights={"file": "model.weights.h5"}), ("model.weights.h5", pickle.dumps([1.0]))),
        "model.weights.h5 is not an HDF5 file",
    ),
}


def run_archive(*, name="runs/run-1.weights.h5", entry=None, runs=None, data=None) -> bytes:
    """A project keeping the weights of run-1 in ``name``."""
    doc = document(
        runs=[{"id": "run-1"}] if runs is None else runs,
        run_weights={"run-1": {"file": "runs/run-1.weights.h5"} if entry is None else entry},
    )
    if entry is _DROP:
        doc.pop("run_weights")
    return doc_archive(doc, (name, h5_bytes(lambda f: None) if data is None else data))


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_have_clear_messages(tmp_path, case):
    make, expected = REFUSALS[case]
    message = load_error(make(), tmp_path)
    assert expected in message


def test_file_system_refusals(tmp_path):
    with pytest.raises(ProjectLoadError, match=r"^missing.kproj: cannot open the file \(No such file or directory\)$"):
        load_project(tmp_path / "missing.kproj")
    (tmp_path / "dir.kproj").mkdir()
    with pytest.raises(ProjectLoadError, match=r"^dir.kproj: not a regular file$"):
        load_project(tmp_path / "dir.kproj")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    data = project_to_bytes(sample_project())
    monkeypatch.setattr(proj, "MAX_PROJECT_BYTES", 1000)
    message = load_error(data, tmp_path)
    assert "a project file takes at most 1000 bytes" in message


@pytest.fixture(scope="module")
def zeros_zip(tmp_path_factory):
    """An archive whose project.json is 256 MiB of zeros (a quarter MiB compressed)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.kproj"
    chunk = bytes(MIB)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("project.json", "w") as member:
            for _ in range(256):
                member.write(chunk)
    return path


def bounded_load_error(data_or_path, tmp_path) -> tuple[str, int]:
    path = data_or_path if isinstance(data_or_path, Path) else tmp_path / "bomb.kproj"
    if not isinstance(data_or_path, Path):
        path.write_bytes(data_or_path)
    tracemalloc.start()
    try:
        with pytest.raises(ProjectLoadError) as info:
            load_project(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value), peak


def test_a_zip_bomb_is_refused_from_its_header(zeros_zip, tmp_path):
    assert zeros_zip.stat().st_size < 2 * MIB
    message, peak = bounded_load_error(zeros_zip, tmp_path)
    assert "project.json takes 256.0 MiB uncompressed; the limit is 64.0 MiB" in message
    assert peak < 100 * MIB


def test_a_zip_bomb_lying_about_its_size_stops_at_the_declared_size(zeros_zip, tmp_path):
    lying = patch_central_directory(zeros_zip.read_bytes(), "project.json", file_size=1000)
    message, peak = bounded_load_error(lying, tmp_path)
    assert "damaged zip archive" in message or "larger than its declared size" in message
    assert peak < 100 * MIB


class EndlessZeros(io.RawIOBase):
    """A member stream that never ends, whatever its header says."""

    def __init__(self):
        self.handed_out = 0

    def readable(self):
        return True

    def read(self, n=-1):
        n = MIB if n is None or n < 0 else n
        self.handed_out += n
        return bytes(n)


def test_a_member_is_never_read_past_its_declared_size(tmp_path, monkeypatch):
    # zipfile itself stops at the declared size; the loader counts too, in case
    # it did not: it stops one chunk past the declared size, whatever comes.
    streams = []

    def endless(self, name, mode="r", pwd=None, **kwargs):
        streams.append(EndlessZeros())
        return streams[-1]

    data = doc_archive(document())
    monkeypatch.setattr(zipfile.ZipFile, "open", endless)
    message, peak = bounded_load_error(data, tmp_path)
    assert "project.json is larger than its declared size" in message
    assert streams[0].handed_out <= 2 * MIB
    assert peak < 100 * MIB


def test_a_weights_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_file, "MAX_WEIGHTS_BYTES", 8 * MIB)
    data = weights_archive(lambda f: None)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        doc = zf.read("project.json")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.json", doc)
        with zf.open("model.weights.h5", "w") as member:
            for _ in range(16):
                member.write(bytes(MIB))
    message, peak = bounded_load_error(buffer.getvalue(), tmp_path)
    assert "model.weights.h5 takes 16.0 MiB uncompressed; the limit is 8.0 MiB" in message
    assert peak < 100 * MIB


def _external_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"TOP SECRET" * 100)
    return secret


H5_REFUSALS = {
    "enormous declared shape": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", shape=(2**40,), maxshape=(None,), chunks=(1024,), dtype="f4"),
        "weight 0 of layer 'dense' declares shape (1099511627776,) (4096.0 GiB), more than the weights file holds",
    ),
    "too many elements": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", shape=(2**20, 2**20), chunks=(1, 1024), dtype="u1"),
        "more than the weights file holds",
    ),
    "declared but never written": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", shape=(100,), dtype="f4"),
        "does not hold the data it declares",
    ),
    "chunked": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=np.ones(8, "f4"), chunks=(4,)),
        "not stored as plain data",
    ),
    "compressed": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=np.zeros(64, "f4"), compression="gzip"),
        "not stored as plain data",
    ),
    "external storage": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", shape=(100,), dtype="u1", external=[(str(_external_file(tmp)), 0, 100)]),
        "not stored as plain data",
    ),
    "object dtype (vlen strings)": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=["a", "b"], dtype=h5py.string_dtype()),
        "has dtype object, which is not a plain number type",
    ),
    "vlen ints": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", shape=(2,), dtype=h5py.vlen_dtype(np.int32)),
        "not a plain number type",
    ),
    "fixed strings": (lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=np.array([b"ab"])), "not a plain number type"),
    "compound": (lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])), "not a plain number type"),
    "opaque bytes": (lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=np.void(b"\x80\x04K\x01.")), "not a plain number type"),
    "bfloat16 tagged with a variable-length string": (
        lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=np.zeros(2, ml_dtypes.bfloat16)).attrs.__setitem__("dtype", "bfloat16"),
        "has dtype |V2, which is not a plain number type",
    ),
    "untagged 2-byte opaque": (lambda f, tmp: f.create_dataset("layers/dense/vars/0", data=np.zeros(2, "V2")), "not a plain number type"),
    "unknown layer": (lambda f, tmp: f.create_dataset("layers/ghost/vars/0", data=np.ones(2)), "weights for an unknown layer 'ghost'"),
    "escaped name of no layer": (lambda f, tmp: f.create_dataset("layers/%zz/vars/0", data=np.ones(2)), "unknown layer '%zz'"),
    "numbering gap": (
        lambda f, tmp: [f.create_dataset(f"layers/dense/vars/{i}", data=np.ones(2)) for i in (0, 2)],
        "the weights of layer 'dense' are not numbered 0 to 1",
    ),
    "soft link": (lambda f, tmp: f.__setitem__("layers/dense/vars/0", h5py.SoftLink("/elsewhere")), "'/layers/dense/vars' holds a link '0'"),
    "external link": (
        lambda f, tmp: f.__setitem__("layers/dense", h5py.ExternalLink(str(tmp / "other.h5"), "/")),
        "'/layers' holds a link 'dense'; only plain entries are allowed",
    ),
    "unexpected top entry": (lambda f, tmp: f.create_group("optimizer"), "unexpected entry 'optimizer'"),
    "sub-model entry on a plain layer": (lambda f, tmp: f.create_group("layers/dense/layers"), "layer 'dense' has an unexpected entry 'layers'"),
    "vars a dataset": (lambda f, tmp: f.create_dataset("layers/dense/vars", data=np.ones(2)), "'vars' under 'dense' should be a group"),
    "weight a group": (lambda f, tmp: f.create_group("layers/dense/vars/0"), "weight 0 of layer 'dense' is not a dataset"),
    "too many objects": (
        lambda f, tmp: [f.create_group(f"layers/dense/g{i}") for i in range(50)],
        "holds more than 40 groups and datasets",
    ),
}


@pytest.mark.parametrize("case", list(H5_REFUSALS))
def test_weights_refusals(tmp_path, monkeypatch, case):
    monkeypatch.setattr(weights_file, "MAX_H5_OBJECTS", 40)
    build, expected = H5_REFUSALS[case]
    data = weights_archive(lambda f: build(f, tmp_path))
    assert len(data) < 64 * 1024
    tracemalloc.start()
    try:
        message = load_error(data, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected in message
    assert "TOP SECRET" not in message
    assert peak < 100 * MIB


#: Cases that are no refusal for a run's weights, which are not matched to the graph.
_GRAPH_CASES = {"unknown layer", "sub-model entry on a plain layer", "escaped name of no layer"}


@pytest.mark.parametrize("case", [c for c in H5_REFUSALS if c not in _GRAPH_CASES])
def test_run_weights_refusals(tmp_path, monkeypatch, case):
    # A run's weights go through the same checks as the model's, named by their member.
    monkeypatch.setattr(weights_file, "MAX_H5_OBJECTS", 40)
    build, expected = H5_REFUSALS[case]
    data = run_archive(data=h5_bytes(lambda f: build(f, tmp_path)))
    tracemalloc.start()
    try:
        message = load_error(data, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "runs/run-1.weights.h5" in message and expected in message
    assert "TOP SECRET" not in message
    assert peak < 100 * MIB


def test_run_weights_of_layers_the_model_lacks_load_and_odd_names_do_not(tmp_path):
    def build(f):
        f.create_dataset("layers/gone/vars/0", data=np.ones(2))
        f.create_dataset("layers/tower/layers/%2E/vars/0", data=np.ones(3, np.float16))

    loaded = project_from_bytes(run_archive(data=h5_bytes(build)))
    assert loaded.run_weights["run-1"].shapes() == {"gone": [(2,)], "tower/.": [(3,)]}
    message = load_error(run_archive(data=h5_bytes(lambda f: f.create_group("layers/%zz"))), tmp_path)
    assert "runs/run-1.weights.h5: '%zz' is not a layer name" in message

    def deep(f):
        f.create_group("layers/" + "/".join(["m/layers"] * 40))

    assert "nested more than 32 levels deep" in load_error(run_archive(data=h5_bytes(deep)), tmp_path)


def test_all_weights_together_are_bounded_before_any_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(weights_file, "MAX_ALL_WEIGHTS_BYTES", 8 * MIB)
    ids = [f"run-{i}" for i in range(3)]
    doc = document(runs=[{"id": i} for i in ids], run_weights={i: {"file": f"runs/{i}.weights.h5"} for i in ids})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.json", json.dumps(doc))
        for i in ids:
            with zf.open(f"runs/{i}.weights.h5", "w") as member:
                for _ in range(3):
                    member.write(bytes(MIB))
    message, peak = bounded_load_error(buffer.getvalue(), tmp_path)
    assert "the weights in the archive take 9.0 MiB uncompressed; the limit is 8.0 MiB" in message
    assert peak < 100 * MIB


def test_weights_of_a_good_file_are_all_or_nothing(tmp_path):
    # The first layer's weights are fine, the second's not: the error is the only result.
    def build(f):
        f.create_dataset("layers/dense/vars/0", data=np.ones(2))
        f.create_dataset("layers/input_layer/vars/0", data=np.array(["x"], dtype=object), dtype=h5py.string_dtype())

    assert "not a plain number type" in load_error(weights_archive(build), tmp_path)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    payload = pickle.dumps(Payload())

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a project")

    for name in ("loads", "load", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    doc = document(weights={"file": "model.weights.h5"}, training={"blob": payload.decode("latin-1")})
    cases = [
        archive([("project.json", payload)]),
        doc_archive(document(weights={"file": "model.weights.h5"}), ("model.weights.h5", payload)),
        doc_archive(document(), ("payload.pkl", payload)),
        doc_archive(doc, ("model.weights.h5", h5_bytes(lambda f: f.create_dataset("layers/dense/vars/0", data=np.void(payload))))),
    ]
    for data in cases:
        load_error(data, tmp_path)
    # As a string in project.json it is only ever a string.
    ok = doc_archive(document(training={"blob": payload.decode("latin-1")}))
    assert project_from_bytes(ok).training["blob"].encode("latin-1") == payload
    assert not marker.exists()


@pytest.mark.parametrize("module", [proj, runs, weights_file, atomic], ids=lambda m: m.__name__)
def test_the_module_never_uses_code_loading_tools(module):
    source = Path(module.__file__).read_text(encoding="utf-8")
    for word in ("pickle", "eval(", "exec(", "allow_pickle", "import keras", "tensorflow", "PySide6", "marshal"):
        assert word not in source, word


# ==================================================================== fuzzing
_VALID = None


def valid_bytes() -> bytes:
    global _VALID
    if _VALID is None:
        _VALID = project_to_bytes(sample_project())
    return _VALID


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=12)


@st.composite
def damaged_projects(draw) -> bytes:
    valid = valid_bytes()
    kind = draw(st.sampled_from(["truncate", "mutate", "insert", "append", "random", "json", "h5", "run_h5"]))
    if kind == "truncate":
        return valid[: draw(st.integers(0, len(valid)))]
    if kind == "mutate":
        return mutate(valid, draw(EDITS))
    if kind == "insert":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.binary(min_size=1, max_size=2048)) + valid[at:]
    if kind == "append":
        return valid + draw(st.binary(min_size=1, max_size=4096)) * draw(st.integers(1, 64))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    # Damage inside a member, then zip it up properly: CRCs match, so the
    # damage reaches the JSON and HDF5 readers.
    members = members_of(valid)
    if kind == "json":
        text = members["project.json"]
        if draw(st.booleans()):
            text = text[: draw(st.integers(0, len(text)))]
        members["project.json"] = mutate(text, draw(EDITS))
    else:
        name = "model.weights.h5" if kind == "h5" else "runs/run-1.weights.h5"
        members[name] = mutate(members[name], draw(EDITS))
    return archive(list(members.items()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=damaged_projects())
def test_fuzzed_files_load_or_raise_project_load_error(data):
    try:
        project = project_from_bytes(data, "fuzz.kproj")
    except ProjectLoadError as exc:
        message = str(exc)
        assert message.startswith("fuzz.kproj: ") and "\n" not in message
        event(re.sub(r"[\d'(].*", "", message))  # which check caught it (--hypothesis-show-statistics)
    else:
        event("loaded")
        assert isinstance(project, Project)
        assert isinstance(project.graph, ModelGraph)


# ============================================================ format 3: how graphs are drawn
def test_a_format_2_file_keeps_its_left_to_right_drawing():
    loaded = load_project(GOLDEN / "project_v2.kproj")
    assert loaded.graph.canvas.direction == "LR"
    assert loaded.graph.layers["head"].submodel.canvas.direction == "LR"
    assert loaded.graph.canvas.blocks == ()


def test_direction_and_display_blocks_round_trip(tmp_path):
    loaded = load_project(GOLDEN / "project_v3.kproj")
    canvas = loaded.graph.canvas
    assert canvas.direction == "TB"
    assert [(b.name, len(b.nodes), b.collapsed) for b in canvas.blocks] == [("trunk", 3, True)]
    save_project(loaded, tmp_path / "again.kproj")
    assert load_project(tmp_path / "again.kproj").graph.canvas == canvas


@pytest.mark.parametrize(
    ("canvas", "message"),
    [
        ({"direction": "up"}, "canvas direction should be one of TB, LR"),
        ({"blocks": [{"name": 3, "nodes": []}]}, "display block's name"),
        ({"blocks": [{"name": "b", "nodes": "n1"}]}, "display block 'b': its nodes"),
        ({"blocks": [{"name": "b", "nodes": [], "collapsed": "yes"}]}, "'collapsed' should be true or false"),
        ([], "the canvas settings"),
    ],
)
def test_malformed_canvas_settings_are_refused_in_one_line(tmp_path, canvas, message):
    graph = small_graph_dict()
    graph["canvas"] = canvas
    error = load_error(doc_archive(document(graph=graph)), tmp_path)
    assert message in error and "\n" not in error


def test_display_blocks_drop_unknown_nodes_and_keep_a_node_in_one_block(tmp_path):
    graph = small_graph_dict()
    ids = [n["id"] for n in graph["nodes"]]
    graph["canvas"] = {"direction": "TB", "blocks": [
        {"name": "a", "nodes": [ids[0], "ghost"]}, {"name": "b", "nodes": [ids[0], ids[1]]}, {"name": "c", "nodes": ["ghost"]},
    ]}
    path = tmp_path / "p.kproj"
    path.write_bytes(doc_archive(document(graph=graph)))
    blocks = load_project(path).graph.canvas.blocks
    assert [(b.name, b.nodes) for b in blocks] == [("a", (ids[0],)), ("b", (ids[1],))]


def test_a_project_of_ten_thousand_layer_calls_saves_and_opens(tmp_path):
    """Reading a graph is linear in its size (it once relinked every layer by scanning every node)."""
    count = 10_000
    layers = [{"name": "inp", "class_name": "InputLayer", "config": {"batch_shape": [None, 4], "dtype": "float32"}}]
    nodes = [{"id": "n0", "layer": "inp", "position": [0.0, 0.0]}]
    edges = []
    for i in range(1, count):
        layers.append({"name": f"relu_{i}", "class_name": "ReLU", "config": {}})
        nodes.append({"id": f"n{i}", "layer": f"relu_{i}", "position": [0.0, 100.0 * i]})
        edges.append([f"n{i - 1}", 0, f"n{i}", 0])
    graph = ModelGraph.from_dict({"name": "long", "layers": layers, "nodes": nodes, "edges": edges, "inputs": [], "outputs": []})
    save_project(Project(graph), tmp_path / "long.kproj")
    loaded = load_project(tmp_path / "long.kproj").graph
    assert len(loaded.nodes) == count
    assert loaded.nodes_of_layer("relu_9999") == ["n9999"]
    assert loaded.inputs_of("n9999")[0].node == "n9998"


def _save_repeatedly(path: str, marker: str, times: int) -> None:
    project = Project(ModelGraph.from_dict(small_graph_dict()), {"marker": marker})
    for _ in range(times):
        save_project(project, path)


def test_two_processes_saving_one_project_at_once_leave_a_whole_file(tmp_path):
    """Say `train --update-project` finishing while the editor saves: one wins, the file is never torn."""
    import multiprocessing

    path = tmp_path / "raced.kproj"
    save_project(Project(ModelGraph.from_dict(small_graph_dict())), path)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_save_repeatedly, args=(str(path), m, 150)) for m in ("editor", "trainer")]
    for writer in writers:
        writer.start()
    seen = set()
    while any(w.is_alive() for w in writers):
        seen.add(load_project(path).training.get("marker"))  # every read in between is whole too
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert load_project(path).training["marker"] in {"editor", "trainer"}
    assert seen <= {None, "editor", "trainer"}
    assert temp_files(tmp_path) == []
