"""The editor's document: a big model's first shape pass on a worker thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder_app.core import ops
from builder_app.core.project import load_project
from builder_app.core.shapes import ShapeEngine
from builder_app.ui.editor import document as document_module
from builder_app.ui.editor.document import Document

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


@pytest.fixture
def big(monkeypatch):
    """Every model counts as big: the worker-thread path, on a small example."""
    monkeypatch.setattr(document_module, "BACKGROUND_NODES", 0)


def expected(project):
    engine = ShapeEngine(load_project(project).graph)
    return {n: (r.output_shapes, r.params, r.errors) for n, r in engine.results().items()}


def test_shapes_computed_on_a_worker_thread_are_handed_to_the_graph(qtbot, big):
    document = Document(load_project(EXAMPLES / "unet_groupnorm.kproj"))
    with qtbot.waitSignal(document.computing, timeout=60_000) as started:
        document.attach_engine()
    assert started.args == [True] and document.engine is None
    qtbot.waitUntil(lambda: document.engine is not None, timeout=60_000)
    assert document.engine.graph is document.graph
    got = {n: (r.output_shapes, r.params, r.errors) for n, r in document.engine.results().items()}
    assert got == expected(EXAMPLES / "unet_groupnorm.kproj")
    # the adopted engine follows edits of the real graph
    conv = next(n for n in document.graph.nodes if document.graph.layer_of(n).class_name == "Conv2D")
    document.push(ops.SetParam(document.graph.node(conv).layer, "filters", 4), "filters")
    assert document.engine.result(conv).output_shapes[0][-1] == 4
    document.close()


def test_an_edit_during_the_pass_starts_it_again(qtbot, big):
    document = Document(load_project(EXAMPLES / "siamese_digits.kproj"))
    graph = document.graph
    document.attach_engine()
    dense = next(n for n in graph.nodes if graph.layer_of(n).class_name == "Dense")
    document.push(ops.SetParam(graph.node(dense).layer, "units", 3), "units")
    qtbot.waitUntil(lambda: document.engine is not None, timeout=60_000)
    assert document.engine.graph is graph
    assert document.engine.result(dense).output_shapes == [(None, 3)]
    # the sub-model's engine follows the real sub-model, not the copy it was computed on
    tower = next(n for n in graph.nodes if graph.layer_of(n).submodel is not None)
    inner = graph.layer_of(tower).submodel
    inner_dense = next(n for n in inner.nodes if inner.layer_of(n).class_name == "Dense")
    document.push(ops.SetParam(inner.node(inner_dense).layer, "units", 5), "inner units", graph=inner)
    assert document.engine.result(tower).output_shapes == [(None, 5)]
    document.close()
