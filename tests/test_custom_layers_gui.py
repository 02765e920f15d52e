"""The inspector of a custom node whose code the project does not run: its output shapes are declared there."""

from __future__ import annotations

import json

import keras
import pytest
from PySide6 import QtCore

from builder_app.core import custom_code, trust
from builder_app.core.project import Project
from builder_app.importers.keras_file import import_model
from builder_app.ui.editor.document import Document
from builder_app.ui.editor.inspector import Inspector


@pytest.fixture
def opaque_document(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv(trust.CONFIG_DIR_ENV, str(tmp_path / "settings"))
    custom_code.deactivate_all()
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="out")(keras.layers.Dense(6, name="mystery")(x)))
    config = json.loads(model.to_json())
    layer = next(item for item in config["config"]["layers"] if item["config"]["name"] == "mystery")
    layer.update(module="my_layers", class_name="Mystery", registered_name="Mystery")
    (tmp_path / "model.json").write_text(json.dumps(config))
    doc = Document(Project(import_model(tmp_path / "model.json").project.graph))
    doc.attach_engine()
    doc.update_shapes()
    yield doc
    doc.undo_stack.clear()
    doc.close()


def test_declaring_an_opaque_nodes_shapes_in_the_inspector(qtbot, opaque_document, tmp_path):
    doc = opaque_document
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    widget.resize(360, 600)
    widget.show()
    graph = doc.graph
    (mystery,) = graph.nodes_of_layer("mystery")
    (out,) = graph.nodes_of_layer("out")
    widget.show_node(graph, mystery)
    assert "Custom" in widget.class_label.text()
    edit = widget.declared_edit
    edit.setFocus()
    qtbot.keyClicks(edit, "(None, 6)")
    qtbot.keyClick(edit, QtCore.Qt.Key.Key_Return)
    doc.update_shapes()
    assert custom_code.declared_shapes(graph.layers["mystery"].config) == [(None, 6)]
    assert doc.engine.result(out).output_shapes == [(None, 2)]
    widget.grab().save(str(tmp_path / "inspector.png"))
    doc.undo_stack.undo()
    assert custom_code.declared_shapes(graph.layers["mystery"].config) is None


def test_new_custom_layer_checks_names_the_pitfalls_and_fills_the_palette(qtbot, loader, tmp_path, monkeypatch):
    from tests.editor_support import open_window

    monkeypatch.setenv(trust.CONFIG_DIR_ENV, str(tmp_path / "settings"))
    monkeypatch.setenv("BUILDER_APP_RECOVERY_DIR", str(tmp_path / "recovery"))
    custom_code.deactivate_all()
    window = open_window(qtbot, loader)
    try:
        editor = window.new_custom_layer()
        qtbot.addWidget(editor)
        editor.text.setPlainText(
            "import keras\n\n\nclass Forgetful(keras.layers.Layer):\n"
            "    def __init__(self, units):\n        super().__init__()\n        self.units = units\n\n"
            "    def call(self, x):\n        return x\n"
        )
        assert not editor.check()
        assert "pass **kwargs (the name) through" in editor.results.toPlainText()
        editor._example()
        assert editor.check(), editor.results.toPlainText()
        editor.resize(760, 640)
        editor.grab().save(str(tmp_path / "custom_layer_editor.png"))
        assert editor.add_to_project()
        assert [f.name for f in window.document.project.custom_code] == ["group_norm.py"]
        entries = {e.payload: e.category for e in window.palette.entries()}
        assert entries.get("GroupNorm") == "Custom"
        assert trust.is_trusted(window.document.project.custom_code[0])
        project_path = tmp_path / "with_code.kproj"
        from builder_app.core.project import load_project, save_project

        save_project(window.document.project, project_path)
        assert [f.name for f in load_project(project_path).custom_code] == ["group_norm.py"]
        editor.close()
    finally:
        custom_code.deactivate_all()
        window.close()


def test_opening_a_project_with_untrusted_code_runs_nothing_until_trust_is_given(qtbot, loader, tmp_path, monkeypatch):
    from builder_app.core.project import load_project
    from builder_app.ui.editor.custom_layers import offer_trust
    from tests.editor_support import open_window
    from tests.test_custom_layers import marker_project

    monkeypatch.setenv(trust.CONFIG_DIR_ENV, str(tmp_path / "settings"))
    monkeypatch.setenv("BUILDER_APP_RECOVERY_DIR", str(tmp_path / "recovery"))
    marker = tmp_path / "marker"
    monkeypatch.setenv("BUILDER_APP_TEST_MARKER", str(marker))
    custom_code.deactivate_all()
    window = open_window(qtbot, loader, load_project(marker_project(tmp_path)))
    try:
        qtbot.wait(50)
        assert not marker.exists()
        assert "not trusted: marker_layer.py (Marker)" in window.statusBar().currentMessage()
        (mark,) = window.document.graph.nodes_of_layer("mark")
        assert window.document.engine.result(mark).errors
        asked = []
        assert not offer_trust(window, ask=lambda text: asked.append(text) or False)
        assert "marker_layer.py (Marker)" in asked[0] and not marker.exists()
        assert offer_trust(window, ask=lambda text: True)
        assert marker.read_text() == "ran"
        window.document.update_shapes()
        assert window.document.engine.result(mark).errors == []
        assert {e.payload: e.category for e in window.palette.entries()}.get("Marker") == "Custom"
    finally:
        custom_code.deactivate_all()
        window.close()
