"""Robustness at the limits (issue 16, "also check"): deep sub-models, deep pastes, huge graphs,
and `train --update-project` racing another process saving the same project.

A project whose sub-models nest deeper than project.json may is refused in one line by
every command; the deepest one allowed validates and exports. A paste too deep for a
project is refused before it is read (never a RecursionError), so a paste never makes a
project unsaveable. Two processes writing one project leave a whole file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from builder_app.cli import main
from builder_app.core import project as project_format
from builder_app.core.clipboard import copy_nodes, paste_ops
from builder_app.core.graph import GraphError, ModelGraph
from builder_app.core.project import Project, ProjectLoadError, load_project, save_project
from builder_app.importers import keras_file
from builder_app.importers.keras_file import import_model
from tests.test_import_limits import nested_config

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "resources" / "examples"


def deep_project(tmp_path: Path, levels: int) -> Path:
    """A project of sub-models ``levels`` deep (saved past the limit when it must be)."""
    source = tmp_path / f"deep{levels}.json"
    source.write_text(json.dumps(nested_config(levels)))
    path = tmp_path / f"deep{levels}.kproj"
    if levels <= keras_file.max_submodel_levels():
        save_project(import_model(source).project, path)
        return path
    with pytest.MonkeyPatch.context() as patch:  # as a build of this app with a higher limit writes it
        patch.setattr(project_format, "MAX_JSON_DEPTH", 400)
        save_project(import_model(source).project, path)
    return path


# ------------------------------------------------------------ sub-models 50 deep
@pytest.mark.parametrize("command", ["validate", "export", "render"])
def test_a_project_of_submodels_50_deep_is_refused_in_one_line(tmp_path, capsys, command):
    path = deep_project(tmp_path, 50)
    with pytest.raises(ProjectLoadError) as info:
        load_project(path)
    assert str(info.value) == "deep50.kproj: project.json is nested more than 128 levels deep"
    extra = {"validate": [], "export": ["--python", str(tmp_path / "m.py")], "render": ["--svg", str(tmp_path / "m.svg")]}
    assert main([command, str(path), *extra[command]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nested more than 128 levels deep" in err, err
    assert not (tmp_path / "m.py").exists() and not (tmp_path / "m.svg").exists()


def test_the_deepest_project_allowed_validates_and_exports(tmp_path, capsys):
    levels = keras_file.max_submodel_levels()
    path = deep_project(tmp_path, levels)
    assert main(["validate", str(path)]) == 0
    assert main(["export", str(path), "--python", str(tmp_path / "m.py"), "--keras", str(tmp_path / "m.keras")]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "wrote" in out
    assert len(re.findall(r"^def build_m\d+\(", (tmp_path / "m.py").read_text(), re.M)) == levels


# ------------------------------------------------------------ pastes too deep
def _wrapped(data: dict, levels: int) -> dict:
    """The payload's first layer inside ``levels`` more sub-models, as a crafted payload nests it."""
    layer = data["layers"][0]
    for level in range(levels):
        name = f"wrap{level}"
        inner = {"id": "n1", "layer": layer["name"], "position": [0.0, 0.0]}
        layer = {
            "name": name,
            "class_name": "Functional",
            "config": {},
            "submodel": {"name": name, "layers": [layer], "nodes": [inner], "edges": [], "inputs": [], "outputs": []},
        }
    return {**data, "layers": [layer], "nodes": [{**data["nodes"][0], "layer": layer["name"]}], "edges": []}


@pytest.fixture(scope="module")
def deep_payload(tmp_path_factory) -> dict:
    """A copy of the top sub-model of the deepest project allowed."""
    path = deep_project(tmp_path_factory.mktemp("deep"), keras_file.max_submodel_levels())
    graph = load_project(path).graph
    (node,) = [n for n in graph.nodes if graph.layer(graph.node(n).layer).submodel is not None]
    return copy_nodes(graph, [node])


def test_a_paste_as_deep_as_a_project_allows_pastes_and_saves(deep_payload, tmp_path):
    target = load_project(EXAMPLES / "iris_mlp.kproj")
    batch, ids = paste_ops(target.graph, deep_payload)
    target.graph.apply(batch)
    save_project(target, tmp_path / "pasted.kproj")
    assert len(load_project(tmp_path / "pasted.kproj").graph.nodes) == len(target.graph.nodes)


@pytest.mark.parametrize("levels", [3, 5000])
def test_a_paste_too_deep_for_a_project_is_refused_in_one_line(deep_payload, levels):
    target = load_project(EXAMPLES / "iris_mlp.kproj").graph
    before = target.to_dict()
    start = time.monotonic()
    with pytest.raises(GraphError) as info:  # never a RecursionError, nor an unsaveable project
        paste_ops(target, _wrapped(deep_payload, levels))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert message == (
        "the clipboard's layers nest too deeply for a project (at most 128 levels, sub-models included)"
    )
    assert target.to_dict() == before


def test_a_clipboard_too_deep_for_the_json_parser_is_refused_in_the_window(qtbot, loader):
    from PySide6 import QtGui

    from tests.editor_support import open_window

    window = open_window(qtbot, loader, Project(ModelGraph()))
    QtGui.QGuiApplication.clipboard().setText("[" * 100_000 + "]" * 100_000)
    assert window.paste() == []
    assert "no layers" in window.statusBar().currentMessage()


# ------------------------------------------------------------ huge graphs
def chain(count: int) -> dict:
    """An Input and ``count - 1`` ReLU layers in a row, as a graph's plain dict."""
    layers = [{"name": "inp", "class_name": "InputLayer", "config": {"batch_shape": [None, 4], "dtype": "float32"}}]
    nodes = [{"id": "n0", "layer": "inp", "position": [0.0, 0.0]}]
    edges = []
    for i in range(1, count):
        layers.append({"name": f"relu_{i}", "class_name": "ReLU", "config": {}})
        nodes.append({"id": f"n{i}", "layer": f"relu_{i}", "position": [0.0, 100.0 * i]})
        edges.append([f"n{i - 1}", 0, f"n{i}", 0])
    return {"name": "long", "layers": layers, "nodes": nodes, "edges": edges, "inputs": [], "outputs": []}


def huge_project(tmp_path: Path, count: int) -> Path:
    from tests.test_boundaries import project_bytes

    path = tmp_path / "huge.kproj"
    path.write_bytes(project_bytes(chain(count)))
    return path


def test_a_project_of_one_node_too_many_is_refused_in_one_line(tmp_path, capsys):
    path = huge_project(tmp_path, project_format.MAX_NODES + 1)
    with pytest.raises(ProjectLoadError) as info:
        load_project(path)
    assert str(info.value) == (
        "huge.kproj: the project has 20,001 layer calls (sub-models' included); a project holds at most 20,000"
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at most 20,000" in err


@pytest.mark.slow
def test_a_project_of_100k_nodes_is_refused_within_memory(tmp_path):
    """Reading 100,000 nodes took 14 s and 400 MB, and a shape pass over them more than 10 minutes
    and 2.3 GB: the file is refused from project.json's counts, before any node is read."""
    import tracemalloc

    path = huge_project(tmp_path, 100_000)
    tracemalloc.start()
    try:
        with pytest.raises(ProjectLoadError, match="the project has 100,000 layer calls"):
            load_project(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 250 * 2**20, f"{peak / 2**20:.0f} MiB"  # the parsed project.json (150 MiB), no graph


def test_the_node_limit_counts_submodels_and_binds_save_import_and_paste(tmp_path, monkeypatch):
    # The deepest project allowed has 2 nodes a level (an Input and the next sub-model's call).
    path = deep_project(tmp_path, 3)
    project = load_project(path)
    payload = copy_nodes(project.graph, list(project.graph.nodes))
    monkeypatch.setattr(project_format, "MAX_NODES", 7)  # 8 nodes in all
    with pytest.raises(ProjectLoadError, match="the project has 8 layer calls .*at most 7$"):
        load_project(path)
    with pytest.raises(project_format.ProjectSaveError, match="the project has 8 layer calls"):
        save_project(project, tmp_path / "again.kproj")
    with pytest.raises(keras_file.ModelImportError, match="deep3.json: the model has 8 layer calls"):
        import_model(tmp_path / "deep3.json")
    with pytest.raises(GraphError, match="the clipboard has 8 layer calls"):
        paste_ops(ModelGraph("target"), payload)
    monkeypatch.setattr(project_format, "MAX_NODES", 8)
    assert len(load_project(path).graph.nodes) == 2


# ------------------------------------------------------------ train --update-project racing a save
@pytest.mark.slow
@pytest.mark.training
def test_train_update_project_racing_another_save_leaves_a_whole_file(tmp_path):
    """The editor saves the project over and over while `train --update-project` writes it:
    both finish without an error, every read in between is a whole project, one wins."""
    path = tmp_path / "iris.kproj"
    save_project(load_project(EXAMPLES / "iris_mlp.kproj"), path)
    runs_before = len(load_project(path).runs)
    edited = load_project(path)
    edited.graph.name = "edited_elsewhere"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    train = subprocess.Popen(
        [sys.executable, "-m", "builder_app", "train", str(path), "--epochs", "1", "--update-project"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    saves, reads, problems = 0, 0, []

    def keep_saving() -> None:
        nonlocal saves
        while train.poll() is None:
            try:
                save_project(edited, path)
                saves += 1
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                problems.append(f"save: {exc!r}")
            time.sleep(0.02)

    saver = threading.Thread(target=keep_saving)
    saver.start()
    try:
        while train.poll() is None:
            try:
                load_project(path)
                reads += 1
            except Exception as exc:  # noqa: BLE001
                problems.append(f"read: {exc!r}")
            time.sleep(0.02)
        out, err = train.communicate(timeout=300)
    finally:
        saver.join(timeout=60)
    assert train.returncode == 0, out + err
    assert f"updated {path}" in out
    assert problems == []
    assert saves > 10 and reads > 10
    final = load_project(path)
    assert [p.name for p in tmp_path.iterdir()] == ["iris.kproj"]  # no temporary file stays
    # One of them won: the trainer's file holds the new run, the editor's holds its edit.
    assert (len(final.runs), final.graph.name == "edited_elsewhere") in {
        (runs_before + 1, False),
        (runs_before + 1, True),  # the trainer read the project after an edit was saved
        (runs_before, True),
    }
