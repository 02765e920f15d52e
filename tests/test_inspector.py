"""The inspector edits a real project through its widgets; every edit is one undoable SetParam."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from builder_app.core import catalog, ops
from builder_app.core.graph import ModelGraph
from builder_app.core.project import load_project
from builder_app.core.shapes import ShapeEngine
from builder_app.ui.editor.document import Document
from builder_app.ui.editor.inspector import EMPTY_TEXT, LOADING_TEXT, Inspector

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"
Key = QtCore.Qt.Key


@pytest.fixture
def document(qtbot):
    doc = Document(load_project(EXAMPLES / "digits_cnn.kproj"))
    doc.attach_engine()
    doc.update_shapes()
    yield doc
    close(doc)


def close(doc: Document) -> None:
    # Emptied while the document lives: the stack's destructor would otherwise announce
    # a clean state to a document already half destroyed.
    doc.undo_stack.clear()
    doc.close()


@pytest.fixture
def inspector(qtbot, document):
    widget = Inspector(document)
    qtbot.addWidget(widget)
    widget.resize(360, 700)
    widget.show()
    return widget


def node_of(graph: ModelGraph, layer_name: str) -> str:
    return graph.nodes_of_layer(layer_name)[0]


def show(inspector: Inspector, layer_name: str) -> str:
    graph = inspector.document.graph
    node_id = node_of(graph, layer_name)
    inspector.show_node(graph, node_id)
    return node_id


def type_into(qtbot, widget: QtWidgets.QWidget, text: str) -> None:
    """Selects what the widget holds and types ``text`` key by key, then Enter."""
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClicks(widget, text)
    qtbot.keyClick(widget, Key.Key_Return)


def test_empty_and_header(inspector, document):
    assert inspector.placeholder.isVisible() and inspector.placeholder.text() == EMPTY_TEXT
    node_id = show(inspector, "conv_1")
    assert not inspector.placeholder.isVisible()
    assert inspector.name_edit.text() == "conv_1"
    assert (
        "Conv2D" in inspector.class_label.text() and "Convolution" in inspector.class_label.text()
    )
    assert inspector.description_label.text() == catalog.layer_spec("Conv2D").description
    shape = document.result(node_id).output_shapes[0]
    assert inspector.shape_label.text() == "Output: (" + ", ".join(map(str, shape)) + ")"
    document._update_builds()  # parameter counts come when the editor is idle
    assert inspector.params_label.text() == f"{document.result(node_id).params:,} parameters"
    assert not inspector.errors_label.isVisible() and not inspector.shared_label.isVisible()
    assert (
        inspector.editor("filters").toolTip() == catalog.layer_spec("Conv2D").param("filters").doc
    )
    inspector.show_node(None, None)
    assert inspector.placeholder.isVisible() and not inspector.header.isVisible()


def test_filters_edit_is_one_undoable_step(inspector, document):
    node_id = show(inspector, "conv_1")
    layer = document.graph.layer("conv_1")
    before = copy.deepcopy(layer.config)
    spin = inspector.editor("filters")
    assert isinstance(spin, QtWidgets.QSpinBox) and spin.value() == 16
    spin.setValue(24)
    spin.editingFinished.emit()  # finishing an edit that was pushed pushes nothing more
    assert layer.config["filters"] == 24
    assert document.undo_stack.count() == 1
    document.update_shapes()
    assert document.result(node_id).output_shapes[0][-1] == 24
    assert "24)" in inspector.shape_label.text()
    document.undo_stack.undo()
    assert layer.config == before
    assert spin.value() == 16  # the editor follows undo without pushing
    assert document.undo_stack.count() == 1 and document.undo_stack.canRedo()
    document.update_shapes()
    assert document.result(node_id).output_shapes[0][-1] == 16


def test_typing_several_keystrokes_is_one_undo_step(inspector, document, qtbot):
    show(inspector, "conv_1")
    layer = document.graph.layer("conv_1")
    before = copy.deepcopy(layer.config)
    pushes = []
    document.graph.changed.connect(pushes.append)
    type_into(qtbot, inspector.editor("filters"), "128")
    assert layer.config["filters"] == 128
    assert len(pushes) == 3  # 1, 12, 128: each keystroke applied...
    assert document.undo_stack.count() == 1  # ...one undo step
    document.undo_stack.undo()
    assert layer.config == before

    show(inspector, "batch_norm_1")
    norm = document.graph.layer("batch_norm_1")
    epsilon = inspector.editor("epsilon")
    assert isinstance(epsilon, QtWidgets.QLineEdit) and epsilon.text() == "0.001"
    type_into(qtbot, epsilon, "1e-5")
    assert norm.config["epsilon"] == 1e-5  # any float, not a spin box's fixed decimals
    assert epsilon.text() == "1e-5"  # left as typed
    assert document.undo_stack.index() == 1  # one step after the undone one


def test_invalid_text_is_marked_and_never_pushed(inspector, document, qtbot):
    show(inspector, "batch_norm_1")
    norm = document.graph.layer("batch_norm_1")
    momentum = inspector.editor("momentum")
    momentum.setFocus()
    momentum.selectAll()
    qtbot.keyClicks(momentum, "0.9x")
    assert norm.config["momentum"] == 0.9  # "0.9" was pushed, "0.9x" was not
    assert "border" in momentum.styleSheet() and "not a number" in momentum.toolTip()
    qtbot.keyClick(momentum, Key.Key_Backspace)
    assert momentum.styleSheet() == "" and norm.config["momentum"] == 0.9

    show(inspector, "digit")
    inspector.advanced_toggle.click()
    json_edit = inspector.editor("quantization_config")
    assert json_edit.isVisible() and json_edit.text() == "null"
    count = document.undo_stack.count()
    json_edit.setFocus()
    json_edit.selectAll()
    qtbot.keyClicks(json_edit, "{bad")
    assert "border" in json_edit.styleSheet() and "JSON" in json_edit.toolTip()
    assert document.graph.layer("digit").config["quantization_config"] is None
    assert document.undo_stack.count() == count


def test_kernel_size_tuple(inspector, document):
    node_id = show(inspector, "conv_1")
    layer = document.graph.layer("conv_1")
    tuple_editor = inspector.editor("kernel_size")
    assert [s.value() for s in tuple_editor.spin_boxes] == [3, 3]
    tuple_editor.spin_boxes[1].setValue(5)
    assert layer.config["kernel_size"] == [3, 5]
    # A required parameter has no default to go back to: no reset button, never "at its default".
    assert catalog.layer_spec("Conv2D").param("kernel_size").required
    assert inspector.reset_button("kernel_size") is None and not inspector.is_default("kernel_size")
    document.engine.update()
    assert document.result(node_id).params == 16 * (1 * 3 * 5) + 16
    assert catalog.check_config("Conv2D", layer.config) == []
    # Strides, at the default: shown as such, with the reset button off until changed.
    assert inspector.is_default("strides") and not inspector.reset_button("strides").isEnabled()
    inspector.editor("strides").spin_boxes[0].setValue(2)
    assert layer.config["strides"] == [2, 1] and inspector.reset_button("strides").isEnabled()
    assert inspector._rows["strides"].label.font().bold()
    inspector.reset_button("strides").click()
    assert layer.config["strides"] == [1, 1] and inspector.is_default("strides")
    assert [s.value() for s in inspector.editor("strides").spin_boxes] == [1, 1]


def test_activation_and_choice(inspector, document):
    show(inspector, "conv_1")
    layer = document.graph.layer("conv_1")
    combo = inspector.editor("activation")
    assert isinstance(combo, QtWidgets.QComboBox) and combo.currentText() == "relu"
    combo.setCurrentIndex(combo.findText("tanh"))
    assert layer.config["activation"] == "tanh"
    padding = inspector.editor("padding")
    assert padding.currentText() == "same" and not inspector.is_default("padding")
    padding.setCurrentIndex(padding.findText("valid"))
    assert layer.config["padding"] == "valid" and inspector.is_default("padding")
    document.update_shapes()
    assert document.result(node_of(document.graph, "conv_1")).output_shapes[0][1:3] == (6, 6)
    inspector.reset_button("activation").click()
    assert layer.config["activation"] == "linear" == combo.currentText()
    assert document.undo_stack.count() == 3
    assert catalog.check_config("Conv2D", layer.config) == []


def test_regularizer_initializer_and_dtype_are_keras_serialized(inspector, document, qtbot):
    import keras

    show(inspector, "conv_2")
    layer = document.graph.layer("conv_2")
    assert not inspector.editor("kernel_regularizer").isVisible()  # in the Advanced section
    inspector.advanced_toggle.click()
    regularizer = inspector.editor("kernel_regularizer")
    assert regularizer.isVisible() and regularizer.combo.currentText() == "None"
    regularizer.combo.setCurrentIndex(regularizer.combo.findText("L2"))
    expected = keras.saving.serialize_keras_object(keras.regularizers.L2(0.01))
    assert layer.config["kernel_regularizer"] == expected
    assert regularizer.arg_editor("l2").text() == "0.01"
    type_into(qtbot, regularizer.arg_editor("l2"), "0.02")
    assert layer.config["kernel_regularizer"]["config"] == {"l2": 0.02}
    # Choosing L2 and typing its factor edit one field: one undo step.
    assert document.undo_stack.count() == 1
    assert catalog.check_config("Conv2D", layer.config) == []
    engine = ShapeEngine(document.graph)
    try:
        assert engine.is_valid(), engine.errors()
    finally:
        engine.close()
    # A negative factor: Keras refuses it; the text stays, marked, and nothing is pushed.
    type_into(qtbot, regularizer.arg_editor("l2"), "-1")
    assert layer.config["kernel_regularizer"]["config"] == {"l2": 0.02}
    assert "non-negative" in inspector.status_label.text()

    initializer = inspector.editor("kernel_initializer")
    initializer.combo.setCurrentIndex(initializer.combo.findText("RandomNormal"))
    type_into(qtbot, initializer.arg_editor("stddev"), "0.1")
    seed = initializer.arg_editor("seed")
    seed.parent().none_box.setChecked(False)
    seed.setValue(7)
    expected = keras.initializers.RandomNormal(mean=0.0, stddev=0.1, seed=7)
    assert layer.config["kernel_initializer"] == keras.saving.serialize_keras_object(expected)

    dtype = inspector.editor("dtype")
    dtype.setCurrentIndex(dtype.findText("float64"))
    assert layer.config["dtype"] == {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": "float64"},
        "registered_name": None,
    }
    assert catalog.check_config("Conv2D", layer.config) == []
    engine = ShapeEngine(document.graph)
    try:
        assert engine.is_valid(), engine.errors()
    finally:
        engine.close()


def test_input_shape_and_nullable_int(inspector, document, qtbot):
    node_id = show(inspector, "image")
    shape = inspector.editor("batch_shape")
    assert shape.text() == "None, 8, 8, 1"
    type_into(qtbot, shape, "None, 12, 12, 1")
    assert document.graph.layer("image").config["batch_shape"] == [None, 12, 12, 1]
    document.update_shapes()
    assert document.result(node_id).output_shapes == [(None, 12, 12, 1)]

    show(inspector, "dropout")
    dropout = document.graph.layer("dropout")
    none_box = inspector.none_box("seed")
    assert none_box.isChecked() and not inspector.editor("seed").isEnabled()
    none_box.setChecked(False)
    assert dropout.config["seed"] == 0
    inspector.editor("seed").setValue(42)
    assert dropout.config["seed"] == 42
    none_box.setChecked(True)
    assert dropout.config["seed"] is None


def test_rename(inspector, document, qtbot):
    show(inspector, "conv_1")
    inspector.name_edit.setText("conv_2")
    inspector.name_edit.editingFinished.emit()
    assert "already exists" in inspector.name_error.text() and inspector.name_error.isVisible()
    assert inspector.name_edit.text() == "conv_1"
    assert "conv_1" in document.graph.layers and document.undo_stack.count() == 0
    type_into(qtbot, inspector.name_edit, "stem")
    assert "stem" in document.graph.layers and not inspector.name_error.isVisible()
    # The editors stay and now edit the renamed layer.
    inspector.editor("filters").setValue(20)
    assert document.graph.layer("stem").config["filters"] == 20
    document.undo_stack.undo()
    document.undo_stack.undo()
    assert inspector.name_edit.text() == "conv_1"
    assert document.graph.layer("conv_1").config["filters"] == 16


def test_undo_from_outside_refreshes_without_pushing(inspector, document):
    show(inspector, "digit")
    units = inspector.editor("units")
    document.push(ops.SetParam("digit", "units", 12), "units", merge_key="outside")
    assert units.value() == 12
    document.push(ops.SetParam("digit", "use_bias", False), "bias")
    assert not inspector.editor("use_bias").isChecked()
    document.undo_stack.undo()
    document.undo_stack.undo()
    assert units.value() == 10 and inspector.editor("use_bias").isChecked()
    assert document.undo_stack.count() == 2 and document.undo_stack.index() == 0
    document.undo_stack.redo()
    assert units.value() == 12


def test_shared_unknown_submodel_and_removed(inspector, document):
    graph = document.graph
    conv = node_of(graph, "conv_2")
    second = ops.call_again(graph, conv)
    document.push(second, "call again")
    inspector.show_node(graph, second.node.id)
    assert inspector.shared_label.text() == "Shared by 2 calls; editing changes all."

    custom = ops.add_layer(graph, "MyCustomLayer", {"units": 3})
    document.push(custom, "custom")
    inspector.show_node(graph, custom.node.id)
    assert "read-only" in inspector.note_label.text() and inspector.param_names() == []
    with pytest.raises(KeyError):
        inspector.editor("units")

    document.push(ops.RemoveNode(custom.node.id), "remove")
    assert inspector.placeholder.isVisible()


def test_waits_for_the_catalog_where_this_keras_has_none_cached(qtbot, monkeypatch):
    loaded = catalog._data()
    doc = Document(load_project(EXAMPLES / "digits_cnn.kproj"))
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    monkeypatch.setattr(catalog, "_loaded", None)  # no cache fits: the Keras loader derives it
    monkeypatch.setattr(catalog, "_missed", True)
    widget.show_node(doc.graph, node_of(doc.graph, "conv_1"))
    assert widget.note_label.text() == LOADING_TEXT and widget.param_names() == []
    monkeypatch.setattr(catalog, "_loaded", loaded)  # derived
    doc.attach_engine()
    doc.update_shapes()
    assert "filters" in widget.param_names() and widget.note_label.isHidden()
    close(doc)


def test_parameters_from_the_cached_catalog_before_the_engine(qtbot):
    doc = Document(load_project(EXAMPLES / "digits_cnn.kproj"))
    widget = Inspector(doc)
    qtbot.addWidget(widget)
    widget.show_node(doc.graph, node_of(doc.graph, "conv_1"))
    assert doc.engine is None and "filters" in widget.param_names() and widget.note_label.isHidden()
    assert widget.shape_label.text() == "Output: known once Keras has loaded"
    spin = widget.editor("filters")
    widget.keras_ready(doc.graph, node_of(doc.graph, "conv_1"))
    assert widget.editor("filters") is spin  # kept: a value being typed is not lost
    doc.attach_engine()
    doc.update_shapes()
    assert widget.editor("filters") is spin and widget.shape_label.text().startswith("Output: (None,")
    assert widget.editor("kernel_initializer").isEnabled()  # Keras is loaded: it writes them now
    close(doc)
