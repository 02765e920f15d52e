"""Quick fixes for shape errors: each kind clears its error on real Keras shapes, one undo step.

Core tests build small graphs with the errors users meet (a Dense fed an image,
a U-Net skip one pixel off, a residual Add with other channels, a convolution on
too small an input, a Conv2D on a flat vector), ask for fixes, apply each to a
copy and run a fresh engine on it. The inspector tests click the fix buttons in a
real window-less inspector and undo.
"""

from __future__ import annotations

import pytest
from PySide6 import QtCore

from builder_app.core import catalog, ops
from builder_app.core.graph import INPUT_CLASS, ModelGraph
from builder_app.core.project import Project
from builder_app.core.quick_fixes import QuickFix, quick_fixes
from builder_app.core.shapes import ShapeEngine
from builder_app.ui.editor.document import Document
from builder_app.ui.editor.inspector import Inspector
from tests.editor_support import open_window, settle


# ---------------------------------------------------------------- building graphs
def add_input(graph: ModelGraph, shape: list[int]) -> str:
    add = ops.add_layer(graph, INPUT_CLASS, {"batch_shape": [None, *shape], "dtype": "float32"})
    graph.apply(add)
    return add.node.id


def add_layer(graph: ModelGraph, class_name: str, sources: str | list[str], **config) -> str:
    add = ops.add_layer(graph, class_name, {**catalog.default_config(class_name), **config})
    graph.apply(add)
    for port, source in enumerate([sources] if isinstance(sources, str) else sources):
        graph.apply(ops.Connect(source, 0, add.node.id, port))
    return add.node.id


def dense_on_image() -> tuple[ModelGraph, str]:
    """A Dense fed an image keeps its rank: the Concatenate with a vector fails."""
    g = ModelGraph()
    image, vector = add_input(g, [8, 8, 3]), add_input(g, [16])
    dense = add_layer(g, "Dense", image, units=16)
    return g, add_layer(g, "Concatenate", [dense, vector])


def unet_skip(merge: str = "Concatenate") -> tuple[ModelGraph, str]:
    """A U-Net skip 57x57 against an upsampled 56x56."""
    g = ModelGraph()
    big, small = add_input(g, [57, 57, 8]), add_input(g, [56, 56, 8])
    return g, add_layer(g, merge, [big, small])


def half_size_skip() -> tuple[ModelGraph, str]:
    g = ModelGraph()
    big, small = add_input(g, [28, 28, 4]), add_input(g, [14, 14, 4])
    return g, add_layer(g, "Concatenate", [big, small])


def residual_channels() -> tuple[ModelGraph, str]:
    """A residual Add: the block's output has 16 channels, the shortcut 8."""
    g = ModelGraph()
    x = add_input(g, [16, 16, 8])
    conv = add_layer(g, "Conv2D", x, filters=16, kernel_size=[3, 3], padding="same")
    return g, add_layer(g, "Add", [conv, x])


def conv_too_big() -> tuple[ModelGraph, str]:
    g = ModelGraph()
    x = add_input(g, [4, 4, 3])
    return g, add_layer(g, "Conv2D", x, filters=4, kernel_size=[5, 5])


def valid_residual() -> tuple[ModelGraph, str]:
    """A valid convolution shrinks 16x16 to 14x14 before the Add with its input."""
    g = ModelGraph()
    x = add_input(g, [16, 16, 8])
    conv = add_layer(g, "Conv2D", x, filters=8, kernel_size=[3, 3])
    return g, add_layer(g, "Add", [conv, x])


def conv_on_vector() -> tuple[ModelGraph, str]:
    g = ModelGraph()
    x = add_input(g, [784])
    return g, add_layer(g, "Conv2D", x, filters=4, kernel_size=[3, 3])


def fixes_of(graph: ModelGraph, node_id: str) -> list[QuickFix]:
    engine = ShapeEngine(graph)
    engine.update()
    assert engine.result(node_id).errors, "the example has no error to fix"
    try:
        return quick_fixes(graph, engine, node_id)
    finally:
        engine.close()


def errors_after(graph: ModelGraph, fix: QuickFix) -> list[tuple[str | None, str]]:
    """Every error of a cold engine on a copy with the fix applied."""
    copy = ModelGraph.from_dict(graph.to_dict())
    copy.apply(fix.op)
    engine = ShapeEngine(copy)
    try:
        return engine.errors()
    finally:
        engine.close()


def only(fixes: list[QuickFix], start: str) -> QuickFix:
    found = [f for f in fixes if f.title.startswith(start)]
    assert len(found) == 1, [f.title for f in fixes]
    return found[0]


# Each example: the title each kind of fix must be offered under, and what it inserts or sets.
CASES = {
    "flatten": (dense_on_image, "Insert Flatten before 'dense'", "Flatten"),
    "global_pooling": (dense_on_image, "Insert GlobalAveragePooling2D before 'dense'", "GlobalAveragePooling2D"),
    "crop": (unet_skip, "Crop 'input_layer' to 56×56 (Cropping2D)", "Cropping2D"),
    "pad": (unet_skip, "Pad 'input_layer_1' to 57×57 (ZeroPadding2D)", "ZeroPadding2D"),
    "upsample": (half_size_skip, "Upsample 'input_layer_1' by 2×2 (UpSampling2D)", "UpSampling2D"),
    "conv1x1": (residual_channels, "Project 'input_layer' to 16 channels with a 1×1 Conv2D", "Conv2D"),
    "padding_same": (conv_too_big, "Set padding=\"same\" on 'conv2d'", None),
    "padding_same_upstream": (valid_residual, "Set padding=\"same\" on 'conv2d'", None),
    "reshape": (conv_on_vector, "Insert Reshape to (28, 28, 1) before 'conv2d'", "Reshape"),
}  # fmt: skip


# ---------------------------------------------------------------- core
@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_clears_the_error_on_keras_shapes(kind):
    build, title, inserted = CASES[kind]
    graph, node_id = build()
    before = graph.to_dict()
    fix = only(fixes_of(graph, node_id), title)
    assert graph.to_dict() == before, "asking for fixes changed the graph"
    assert isinstance(fix.op, ops.Batch)
    assert errors_after(graph, fix) == []
    copy = ModelGraph.from_dict(before)
    inverse = copy.apply(fix.op)
    added = [layer.class_name for name, layer in copy.layers.items() if name not in graph.layers]
    assert added == ([inserted] if inserted else [])
    copy.apply(inverse)
    assert copy.to_dict() == before


def test_the_unet_crop_takes_the_extra_row_and_column_off_the_larger_input():
    graph, node_id = unet_skip()
    fix = only(fixes_of(graph, node_id), "Crop")
    added = next(op for op in fix.op.ops if isinstance(op, ops.AddNode))
    assert added.layer.config["cropping"] == [[0, 1], [0, 1]]
    pad = only(fixes_of(graph, node_id), "Pad")
    padding = next(op for op in pad.op.ops if isinstance(op, ops.AddNode)).layer.config["padding"]
    assert padding == [[0, 1], [0, 1]]


def test_every_offered_fix_is_verified_and_unverified_ones_are_not_offered():
    # Every example: each fix offered clears every error (a cold engine agrees).
    for build, _, _ in CASES.values():
        graph, node_id = build()
        for fix in fixes_of(graph, node_id):
            assert errors_after(graph, fix) == [], fix.title
    # UpSampling is no fix for 57 against 56, nor a 1x1 Conv for a size mismatch.
    titles = [f.title for f in fixes_of(*unet_skip("Add"))]
    assert not any(t.startswith(("Upsample", "Project")) for t in titles), titles
    # Concatenate takes different channels: no projection is offered for it.
    g = ModelGraph()
    a, b = add_input(g, [8, 8, 3]), add_input(g, [9, 9, 5])
    titles = [f.title for f in fixes_of(g, add_layer(g, "Concatenate", [a, b]))]
    assert titles and not any(t.startswith("Project") for t in titles), titles


def test_a_fix_that_breaks_another_consumer_is_not_offered():
    # The valid conv feeds the Add and a Flatten -> Dense whose Dense was built for 14x14x8;
    # padding="same" on it changes what the second branch sees, but that branch has no
    # fixed size: the fix stays. A Reshape to 14x14x8 on that branch does not take 16x16x8.
    graph, node_id = valid_residual()
    conv = next(n for n in graph.nodes if graph.layer_of(n).class_name == "Conv2D")
    add_layer(graph, "Reshape", conv, target_shape=[14, 14, 8])
    titles = [f.title for f in fixes_of(graph, node_id)]
    assert not any("padding" in t for t in titles), titles
    assert any(t.startswith("Crop") for t in titles), titles


def test_no_fixes_for_a_node_without_error_or_an_unknown_one():
    g = ModelGraph()
    x = add_input(g, [8])
    dense = add_layer(g, "Dense", x)
    engine = ShapeEngine(g)
    engine.update()
    assert quick_fixes(g, engine, dense) == []
    assert quick_fixes(g, engine, "no such node") == []
    engine.close()


def test_a_new_layer_is_placed_between_its_neighbours():
    graph, node_id = residual_channels()
    x = next(n for n in graph.nodes if graph.is_input(n))
    graph.apply(ops.MoveNode(x, (0.0, 0.0)))
    graph.apply(ops.MoveNode(node_id, (200.0, 100.0)))
    fix = only(fixes_of(graph, node_id), "Project 'input_layer'")
    added = next(op for op in fix.op.ops if isinstance(op, ops.AddNode))
    assert added.node.position == (100.0, 50.0)


# ---------------------------------------------------------------- inspector
@pytest.fixture
def document(qtbot):
    doc = Document()
    doc.attach_engine(background=False)
    yield doc
    doc.undo_stack.clear()
    doc.close()


def load(document: Document, graph: ModelGraph) -> None:
    """Puts an example's nodes into the document's graph (not undoable: the starting point)."""
    target = document.graph
    for node_id in list(target.nodes):
        target.apply(ops.RemoveNode(node_id))
    data = graph.to_dict()
    copy = ModelGraph.from_dict(data)
    for node_id in copy.topological_order():
        node = copy.node(node_id)
        layer = copy.layer(node.layer)
        target.apply(ops.AddNode(node, layer if node.layer not in target.layers else None))
    for edge in copy.edges():
        target.apply(ops.Connect(*edge))
    document.update_shapes()
    document._update_builds()
    document.undo_stack.clear()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_fix_applied_from_the_inspector_and_undone(qtbot, document, kind):
    build, title, _ = CASES[kind]
    graph, node_id = build()
    load(document, graph)
    before = document.graph.to_dict()
    inspector = Inspector(document)
    qtbot.addWidget(inspector)
    inspector.resize(360, 700)
    inspector.show()
    inspector.show_node(document.graph, node_id)
    # Computed after the selection rests, not while the inspector is being built.
    assert inspector.fix_buttons() == []
    qtbot.waitUntil(lambda: inspector.fix_buttons() != [], timeout=5_000)
    assert inspector.fixes_box.isVisible()
    button = next(b for b in inspector.fix_buttons() if b.text().startswith(title))
    qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    document.update_shapes()
    document._update_builds()
    assert document.engine.errors() == []
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == button.text()
    assert not inspector.errors_label.isVisible()
    qtbot.waitUntil(lambda: not inspector.fixes_box.isVisible(), timeout=2_000)
    document.controller.undo()
    document.update_shapes()
    document._update_builds()
    assert document.graph.to_dict() == before
    assert document.engine.result(node_id).errors
    qtbot.waitUntil(lambda: inspector.fix_buttons() != [], timeout=5_000)


def test_a_fix_checked_before_an_unrelated_edit_still_applies(qtbot, document):
    graph, node_id = conv_on_vector()
    load(document, graph)
    inspector = Inspector(document)
    qtbot.addWidget(inspector)
    inspector.resize(360, 700)
    inspector.show()
    inspector.show_node(document.graph, node_id)
    qtbot.waitUntil(lambda: inspector.fix_buttons() != [], timeout=5_000)
    button = next(b for b in inspector.fix_buttons() if "Reshape" in b.text())
    # A layer named like the fix's new one arrives meanwhile: the fix is checked again.
    unrelated = document.controller.insert(document.graph, "Reshape", (300.0, 0.0)).nodes[0]
    document.update_shapes()
    qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    document.update_shapes()
    document._update_builds()
    assert document.engine.result(node_id).errors == []
    assert [document.undo_stack.text(i) for i in range(2)] == ["Add Reshape", button.text()]
    feeding = document.graph.inputs_of(node_id)[0].node
    assert feeding != unrelated and document.graph.layer_of(feeding).config["target_shape"] == [28, 28, 1]


@pytest.mark.usefixtures("isolated")
def test_the_problems_list_offers_the_fixes_of_a_problem(qtbot, loader):
    graph, node_id = unet_skip()
    window = open_window(qtbot, loader, Project(graph))
    window._refresh_panels()
    item = next(
        window.problems.item(i)
        for i in range(window.problems.count())
        if window.problems.item(i).data(QtCore.Qt.ItemDataRole.UserRole) == node_id
    )
    menu = window.problem_fix_menu(item)
    titles = [action.text() for action in menu.actions()]
    assert titles == [f.title for f in fixes_of(graph, node_id)] and titles
    before = window.document.graph.to_dict()
    menu.actions()[0].trigger()
    settle(qtbot, window)
    assert window.document.engine.errors() == []
    assert window.document.undo_stack.undoText() == titles[0]
    window.document.controller.undo()
    assert window.document.graph.to_dict() == before
