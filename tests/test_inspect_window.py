"""The Activations window (ui/inspect/window.py), driven with pytest-qt."""

import numpy as np
import pyqtgraph as pg
import pytest

from builder_app.core.project import load_project
from builder_app.core.runs import record_run
from builder_app.training.activations import channel_maps, feature_grid
from builder_app.ui.editor.document import Document
from builder_app.ui.inspect.window import ActivationsWindow
from tests.editor_support import EXAMPLES, open_window

pytestmark = pytest.mark.usefixtures("isolated")


def node(graph, name):
    return next(n for n in graph.topological_order() if graph.node(n).layer == name)


def answered(qtbot, window, timeout=60_000):
    with qtbot.waitSignal(window.answered, timeout=timeout):
        pass
    assert window.error is None, window.error


@pytest.fixture
def digits_window(qtbot, loader):
    document = Document(load_project(EXAMPLES / "digits_cnn.kproj"))
    window = ActivationsWindow(document)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()
    document.close()


def test_feature_maps_statistics_and_the_sample_picker(qtbot, digits_window):
    window = digits_window
    graph = window.document.graph
    window.index.setValue(4)
    with qtbot.waitSignal(window.answered, timeout=60_000):
        window.inspect([node(graph, "conv_1"), node(graph, "dropout")])
        # Asked, not computed: the answer comes from the worker thread, through the event loop.
        assert window.status.text() == "computing…" and window.answer is None
    answer = window.answer
    assert [a.layer for a in answer.activations] == ["image", "conv_1", "dropout"]  # the input first
    assert answer.sample.description == "digits sample 4" and answer.samples == 1797
    assert window.index.maximum() == 1796
    conv = answer.activations[1]
    # The grid drawn is the conv output's channels, tiled.
    views = [w for w in window.maps.findChildren(pg.GraphicsLayoutWidget) if hasattr(w, "image_item")]
    grids = [v.image_item.image for v in views]
    expected = feature_grid(channel_maps(conv))
    assert any(g.shape == expected.shape and np.allclose(g, expected, equal_nan=True) for g in grids)
    table = [[window.table.item(r, c).text() for c in range(window.table.columnCount())] for r in range(window.table.rowCount())]
    assert [row[0] for row in table] == ["image", "conv_1", "dropout"]
    assert table[1][2] == "(None, 8, 8, 16)" and table[1][3] == f"{conv.stats.mean:.4g}"
    # Another sample: a random one.
    with qtbot.waitSignal(window.answered, timeout=60_000):
        window.source.setCurrentIndex(1)
    assert window.answer.sample.description.startswith("random input (seed ")
    assert not np.allclose(window.answer.activations[1].array, conv.array)


def test_training_vs_inference_side_by_side_names_the_layers_that_differ(qtbot, digits_window):
    window = digits_window
    graph = window.document.graph
    window.compare.setChecked(True)
    with qtbot.waitSignal(window.answered, timeout=60_000):
        window.inspect([node(graph, "conv_1"), node(graph, "batch_norm_1"), node(graph, "dropout")])
    comparisons = {c.inference.layer: c for c in window.answer.comparisons}
    assert not comparisons["conv_1"].differs and comparisons["dropout"].differs
    assert comparisons["dropout"].differing_layers == ["batch_norm_1", "dropout"]
    notes = [label.text() for label in window.maps.findChildren(type(window.status))]
    assert any(t.startswith("Training and inference give the same output.") for t in notes)
    assert any("Layers up to here that compute differently when training: batch_norm_1, dropout." in t for t in notes)
    rows = [window.table.item(r, 1).text() for r in range(window.table.rowCount())]
    assert rows.count("training") == rows.count("inference") == 4  # the input too
    # BatchNormalization: the moving statistics beside the batch's, one row per channel.
    assert window.bn_table.rowCount() == 16
    assert window.bn_table.item(0, 2).text() == "0" and window.bn_table.item(0, 4).text() == "1"
    assert "over 64 values per channel" in window.bn_note.text()


def test_weights_histograms_and_the_change_between_runs(qtbot, digits_window):
    window = digits_window
    graph = window.document.graph
    with qtbot.waitSignal(window.answered, timeout=60_000):
        window.inspect([node(graph, "digit")])
    window.tabs.setCurrentWidget(window.weights_tab)
    qtbot.waitUntil(lambda: "kernel" in window.weight_note.text(), timeout=20_000)
    assert window.weight_choice.count() == 10  # kernel and bias of conv_1, conv_2 and digit; batch_norm_1 4
    # Two kept runs, the second with conv_1's kernel moved by 0.25: compared in the window.
    from builder_app.training.weight_stats import model_weights

    start = model_weights(window._probe.model)
    trained = graph.clone()
    for label, values in start.items():
        trained.layers[label].weights = [v.copy() for v in values]
    record_run(window.document.project, {"id": "run-1"}, trained)
    trained.layers["conv_1"].weights = [start["conv_1"][0] + 0.25, start["conv_1"][1]]
    record_run(window.document.project, {"id": "run-2"}, trained)
    window.weights_changed()
    assert [window.weights_against.itemText(i) for i in range(window.weights_against.count())] == [
        "nothing", "the model now", "run 1", "run 2"
    ]
    window.weights_from.setCurrentIndex(window.weights_from.findData("run-1"))
    window.weight_choice.setCurrentIndex(window.weight_choice.findData("0:conv_1"))  # its kernel
    window.weights_against.setCurrentIndex(window.weights_against.findData("run-2"))
    qtbot.waitUntil(lambda: "mean |change| 0.25" in window.weight_note.text(), timeout=20_000)
    assert window.weight_note.text().startswith("conv_1 · kernel")
    assert len(window.weight_plot.getPlotItem().listDataItems()) == 2


def test_the_editor_opens_it_on_the_selection_and_redraws_after_training(qtbot, loader):
    editor = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    graph = editor.document.graph
    scene = editor.current_scene()
    scene.items_by_id[node(graph, "hidden_2")].setSelected(True)
    editor.open_activations()
    window = editor._activations_window
    answered(qtbot, window)
    assert [a.layer for a in window.answer.activations] == ["measurements", "hidden_2"]
    assert "Inspect Activations" in editor.actions_by_name["inspect"].text()
    before = window.answer.activations[1].array
    # Weights restored or trained: the project's layers get new weights; the window draws them.
    model = window._probe.model
    graph.layers["hidden_1"].weights = [np.asarray(w) * 2 for w in model.get_layer("hidden_1").get_weights()]
    graph.layers["hidden_2"].weights = [np.asarray(w) for w in model.get_layer("hidden_2").get_weights()]
    with qtbot.waitSignal(window.answered, timeout=60_000):
        editor._weights_changed()
    assert window.error is None
    assert not np.allclose(window.answer.activations[1].array, before)
    editor.close()
    assert editor._activations_window is None or not editor._activations_window.isVisible()


def test_every_kind_of_output_is_drawn(qtbot):
    from builder_app.training.activations import NodeActivation, display_kind, statistics
    from builder_app.ui import theme
    from builder_app.ui.inspect import figure
    from builder_app.ui.inspect.window import activation_view

    rng = np.random.default_rng(0)
    shapes = {
        "InputLayer": (8, 8, 3),  # an RGB image input
        "Conv3D": (4, 5, 6, 3),  # a volume: the middle depth slice of each channel
        "LSTM": (10, 7),  # a sequence: a heat map
        "Dense": (300,),  # a long vector: a histogram
        "Dropout": (12,),  # bars
        "Activation": (1,),  # one value
    }
    activations = []
    for class_name, shape in shapes.items():
        array = rng.normal(size=shape).astype("float32")
        activations.append(
            NodeActivation("n", class_name.lower(), class_name, array, statistics(array), False, display=display_kind(class_name, shape))
        )
    assert [a.display for a in activations] == ["image", "volume", "sequence", "vector", "vector", "scalar"]
    volume = activations[1]
    middle = channel_maps(volume)
    np.testing.assert_array_equal(middle[2], volume.array[2, :, :, 2])
    assert feature_grid(middle).shape == (5 * 2 + 1, 6 * 2 + 1)
    image = figure.render(activations, "every kind")
    assert image.width() == figure.WIDTH + 32 and image.height() > 6 * 60
    for activation in activations:
        widget = activation_view(activation, theme.plot_colors())
        qtbot.addWidget(widget)
        if activation.display in ("image", "volume", "sequence"):
            assert widget.image_item.image is not None
    # The colour scale: the lowest value takes the scale's first colour, the highest its last.
    table = figure.lookup_table()
    picture = figure.colour_image(np.array([[0.0, 1.0]]), 0.0, 1.0)
    assert picture.pixelColor(0, 0).getRgb()[:3] == tuple(int(v) for v in table[0])
    assert picture.pixelColor(1, 0).getRgb()[:3] == tuple(int(v) for v in table[-1])


def test_a_model_that_cannot_be_built_is_one_line_in_the_window(qtbot, loader, tmp_path):
    from tests.test_cli import broken_project

    path, _ = broken_project(tmp_path)
    document = Document(load_project(path))
    window = ActivationsWindow(document)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.answered, timeout=60_000):
        window.inspect([node(document.graph, "branch_a")])
    assert window.answer is None and "Add needs inputs of one shape" in window.error
    assert window.status.text() == window.error and "\n" not in window.error
    window.close()
    document.close()


def test_a_node_with_several_outputs_gets_a_picker_of_the_output_drawn(qtbot, loader, tmp_path):
    from PySide6 import QtWidgets

    from tests.test_inspect import lstm_project

    lstm_project(tmp_path)
    document = Document(load_project(tmp_path / "lstm.kproj"))
    window = ActivationsWindow(document)
    qtbot.addWidget(window)
    window.show()
    graph = document.graph
    lstm, head = node(graph, "lstm"), node(graph, "head")
    window.source.setCurrentIndex(1)  # the project has no data: a random input
    with qtbot.waitSignal(window.answered, timeout=60_000):
        window.inspect([lstm, head])
    assert window.error is None
    pickers = {p.objectName(): p for p in window.maps.findChildren(QtWidgets.QComboBox)}
    assert list(pickers) == [f"output_picker:{lstm}"]  # only the node with several outputs has one
    picker = pickers[f"output_picker:{lstm}"]
    assert [picker.itemText(i) for i in range(picker.count())] == ["0", "1", "2"]
    sequence = window.answer.activations[1]
    assert (sequence.port, sequence.array.shape, sequence.display) == (0, (5, 4), "sequence")
    with qtbot.waitSignal(window.answered, timeout=60_000):
        picker.setCurrentIndex(1)
    state = window.answer.activations[1]
    assert (state.layer, state.port, state.array.shape, state.display) == ("lstm", 1, (4,), "vector")
    assert window.ports == {lstm: 1}
    titles = [box.title() for box in window.maps.findChildren(QtWidgets.QGroupBox)]
    assert "lstm:1 · LSTM · (None, 4)" in titles and "head · Dense · (None, 2)" in titles
    qtbot.waitUntil(lambda: len(window.maps.findChildren(QtWidgets.QComboBox)) == 1)  # the old drawing deleted
    (picker,) = window.maps.findChildren(QtWidgets.QComboBox)
    assert picker.currentIndex() == 1  # drawn again, showing the choice
    window.maps_area.grab().save(str(tmp_path / "picker.png"))
    window.close()
    document.close()
