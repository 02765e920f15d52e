"""Format 4: layers' assets (an adapted vocabulary) in the project file."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from builder_app.core import assets
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, SetModelIO, add_layer
from builder_app.core.project import (
    FORMAT_VERSION,
    Project,
    ProjectLoadError,
    ProjectSaveError,
    project_from_bytes,
    project_to_bytes,
)


def lookup_project(vocabulary: bytes = b"-1\n3\n5\n7") -> Project:
    graph = ModelGraph("lookups")
    x = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 1], "dtype": "int64"})).node_id
    lookup = graph.apply(add_layer(graph, "IntegerLookup", {"output_mode": "one_hot"}, name="lookup")).node_id
    graph.apply(Connect(x, 0, lookup, 0))
    graph.apply(SetModelIO([x], []))
    graph.layers["lookup"].assets = {"vocabulary.txt": vocabulary}
    return Project(graph)


def rewritten(data: bytes, change) -> bytes:
    """The archive with project.json changed by ``change(doc)`` and members by its return."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        doc = json.loads(src.read("project.json"))
        members = {name: src.read(name) for name in src.namelist() if name != "project.json"}
        changed = change(doc, members)
        members = members if changed is None else changed
        dst.writestr("project.json", json.dumps(doc))
        for name, value in members.items():
            dst.writestr(name, value)
    return out.getvalue()


def test_format_4_keeps_a_layers_assets_as_named_members():
    assert FORMAT_VERSION == 4
    data = project_to_bytes(lookup_project())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["project.json", "assets/lookup/vocabulary.txt"]
        doc = json.loads(zf.read("project.json"))
    assert doc["format_version"] == 4
    assert doc["assets"] == {"lookup": ["vocabulary.txt"]}
    loaded = project_from_bytes(data)
    assert loaded.graph.layers["lookup"].assets == {"vocabulary.txt": b"-1\n3\n5\n7"}
    assert loaded.graph.clone().layers["lookup"].assets == {"vocabulary.txt": b"-1\n3\n5\n7"}
    assert project_to_bytes(loaded) == data  # deterministic


def test_a_project_without_assets_has_no_assets_entry():
    project = lookup_project()
    project.graph.layers["lookup"].assets = None
    with zipfile.ZipFile(io.BytesIO(project_to_bytes(project))) as zf:
        assert "assets" not in json.loads(zf.read("project.json"))


def test_an_asset_member_project_json_does_not_name_is_refused():
    data = project_to_bytes(lookup_project())

    def drop_entry(doc, members):
        del doc["assets"]

    with pytest.raises(ProjectLoadError, match="assets/lookup/vocabulary.txt is in the archive but project.json does not name it"):
        project_from_bytes(rewritten(data, drop_entry), "p.kproj")


def test_a_named_asset_the_archive_lacks_is_refused():
    data = project_to_bytes(lookup_project())

    def drop_member(doc, members):
        return {k: v for k, v in members.items() if not k.startswith("assets/")}

    with pytest.raises(ProjectLoadError, match="names assets/lookup/vocabulary.txt, which the archive lacks"):
        project_from_bytes(rewritten(data, drop_member), "p.kproj")


def test_assets_of_an_unknown_layer_or_with_unsafe_names_are_refused():
    data = project_to_bytes(lookup_project())

    def other_layer(doc, members):
        doc["assets"] = {"ghost": ["vocabulary.txt"]}
        return {"assets/ghost/vocabulary.txt": b"1"}

    with pytest.raises(ProjectLoadError, match="unknown layer 'ghost'"):
        project_from_bytes(rewritten(data, other_layer), "p.kproj")

    def unsafe(doc, members):
        doc["assets"] = {"lookup": ["../x"]}
        return {"assets/lookup/../x": b"1"}

    with pytest.raises(ProjectLoadError, match="unsafe name|not a plain file name"):
        project_from_bytes(rewritten(data, unsafe), "p.kproj")


def test_asset_sizes_are_bounded_on_save_and_on_load(monkeypatch):
    data = project_to_bytes(lookup_project(b"1\n" * 100))
    monkeypatch.setattr(assets, "MAX_ASSET_BYTES", 50)
    with pytest.raises(ProjectSaveError, match="an asset file takes at most 50 bytes"):
        project_to_bytes(lookup_project(b"1\n" * 100))
    with pytest.raises(ProjectLoadError, match="vocabulary.txt takes 200 bytes.*at most 50 bytes"):
        project_from_bytes(data, "p.kproj")


def test_a_format_3_file_gains_no_assets_and_may_not_hold_any():
    data = project_to_bytes(lookup_project())

    def as_v3(doc, members):
        doc["format_version"] = 3

    with pytest.raises(ProjectLoadError, match="cannot upgrade from format 3: ValueError: a format-3 file holds no 'assets'"):
        project_from_bytes(rewritten(data, as_v3), "p.kproj")

    def plain_v3(doc, members):
        doc["format_version"] = 3
        del doc["assets"]
        return {}

    loaded = project_from_bytes(rewritten(data, plain_v3), "p.kproj")
    assert loaded.graph.layers["lookup"].assets is None
