"""The autosave copies the project on the GUI thread and builds its graph on the autosave thread."""

from __future__ import annotations

import numpy as np
import pytest

from builder_app.core import ops
from builder_app.core.project import load_project
from tests.editor_support import EXAMPLES, open_window

pytestmark = pytest.mark.usefixtures("isolated")


def _layers_with_submodels(graph):
    for name, layer in graph.layers.items():
        yield graph, name, layer
        if layer.submodel is not None:
            yield from _layers_with_submodels(layer.submodel)


def test_the_autosave_holds_the_graph_and_weights_as_they_were_when_it_started(qtbot, loader):
    project = load_project(EXAMPLES / "siamese_digits.kproj")
    inner = next(
        layer for graph, _, layer in _layers_with_submodels(project.graph) if graph is not project.graph and layer.config.get("units")
    )
    inner.weights = [np.arange(6, dtype="float32").reshape(2, 3), np.ones(3, dtype="float32")]
    window = open_window(qtbot, loader, project)
    graph = window.document.graph
    node = next(n for n in graph.nodes if graph.layer_of(n).class_name != "InputLayer")
    window.document.push(ops.RenameLayer(graph.node(node).layer, "renamed_before_autosave"), "rename")
    expected = graph.to_dict()

    assert window.autosave(wait=False)
    inner.weights[0][...] = -1  # changed in place right after: the autosave holds its own copy
    window.document.push(ops.RenameLayer("renamed_before_autosave", "renamed_after"), "rename")
    window.recovery.wait()
    assert window.recovery.error is None

    recovered = load_project(window.recovery.path)
    assert recovered.graph.to_dict() == expected
    saved = next(
        layer for g, _, layer in _layers_with_submodels(recovered.graph) if g is not recovered.graph and layer.name == inner.name
    )
    np.testing.assert_array_equal(saved.weights[0], np.arange(6, dtype="float32").reshape(2, 3))
    np.testing.assert_array_equal(saved.weights[1], np.ones(3, dtype="float32"))
