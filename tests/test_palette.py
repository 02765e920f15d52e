"""The layer palette and the quick-add popup: search, activation, drag payloads."""

from __future__ import annotations

import pytest
from PySide6 import QtCore

from builder_app.core import catalog
from builder_app.ui.editor.palette import (
    LAYER_MIME,
    LOADING_TEXT,
    Palette,
    QuickAdd,
    palette_entries,
    payload_from_mime,
    search,
)

Key = QtCore.Qt.Key


@pytest.fixture(scope="module")
def entries():
    return palette_entries()


@pytest.fixture
def palette(qtbot, entries):
    widget = Palette()
    qtbot.addWidget(widget)
    widget.show()
    widget.populate(entries)
    return widget


def test_listed_from_the_first_frame_when_the_catalog_is_cached(qtbot, entries):
    assert catalog.load_cached()  # the shipped catalog fits the pinned Keras
    widget = Palette()
    qtbot.addWidget(widget)
    assert widget.is_populated() and widget.item_for("Conv2D") is not None
    widget.tree.setCurrentItem(widget.item_for("Conv2D"))
    widget.populate(entries)  # Keras came: the same entries change nothing
    assert widget.payload_of(widget.tree.currentItem()) == "Conv2D"
    quick = QuickAdd()
    qtbot.addWidget(quick)
    assert quick.is_populated()


def test_loading_until_populated(qtbot, entries, monkeypatch):
    monkeypatch.setattr(catalog, "_loaded", None)  # this Keras has no cached catalog yet
    monkeypatch.setattr(catalog, "_missed", True)
    widget = Palette()
    qtbot.addWidget(widget)
    monkeypatch.undo()
    assert not widget.is_populated()
    assert widget.tree.topLevelItemCount() == 1
    loading = widget.tree.topLevelItem(0)
    assert loading.text(0) == LOADING_TEXT and not loading.flags() & QtCore.Qt.ItemFlag.ItemIsEnabled
    widget.populate(entries)
    assert widget.visible_categories() == [*catalog.categories(), "Blocks"]
    assert widget.visible_payloads()[0] == "InputLayer"
    assert set(widget.visible_payloads()) >= {*catalog.catalog(), "block:Residual block"}
    item = widget.item_for("Dense")
    assert item.parent().text(0) == "Core"
    assert item.toolTip(0) == catalog.layer_spec("Dense").description


def test_blocks_category(palette):
    item = palette.item_for("block:Residual block")
    assert item is not None and item.parent().text(0) == "Blocks"
    assert palette.item_for("block:Transformer encoder block") is not None


def test_search_ranks_and_filters(palette, qtbot):
    qtbot.keyClicks(palette.search_box, "conv2d")
    assert palette.visible_payloads()[0] == "Conv2D"
    assert palette.visible_categories()[0] == "Convolution"
    assert "Pooling" not in palette.visible_categories()
    assert "Dense" not in palette.visible_payloads()
    assert all(palette.tree.topLevelItem(i).isExpanded() for i in range(palette.tree.topLevelItemCount()))
    with qtbot.waitSignal(palette.activated) as activated:
        qtbot.keyClick(palette.search_box, Key.Key_Return)
    assert activated.args == ["Conv2D"]

    palette.search_box.setText("NORMALIZATION")  # a category name, any case
    assert "BatchNormalization" in palette.visible_payloads()
    palette.search_box.setText("fully-connected")  # the description
    assert palette.visible_payloads()[0] == "Dense"
    palette.search_box.setText("zzzz")
    assert palette.visible_payloads() == [] and palette.first_hit() is None
    palette.search_box.clear()
    assert palette.visible_categories()[0] == "Core" and palette.visible_payloads()[0] == "InputLayer"


def test_up_down_and_enter(palette, qtbot):
    palette.search_box.setText("dense")
    qtbot.keyClick(palette.search_box, Key.Key_Down)
    second = palette.visible_payloads()[1]
    assert palette.payload_of(palette.tree.currentItem()) == second
    with qtbot.waitSignal(palette.activated) as activated:
        qtbot.keyClick(palette.search_box, Key.Key_Enter)
    assert activated.args == [second]


def test_double_click_activates(palette, qtbot):
    item = palette.item_for("InputLayer")
    with qtbot.waitSignal(palette.activated) as activated:
        palette.tree.itemDoubleClicked.emit(item, 0)
    assert activated.args == ["InputLayer"]


def test_drag_payload(palette):
    data = palette.mime_data_for(palette.item_for("Conv2D"))
    assert data.formats() == [LAYER_MIME]
    assert bytes(data.data(LAYER_MIME).data()) == b"Conv2D"
    block = palette.mime_data_for(palette.item_for("block:Residual block"))
    assert payload_from_mime(block) == "block:Residual block"
    assert palette.tree.mimeTypes() == [LAYER_MIME]
    category = palette.item_for("Conv2D").parent()
    assert not category.flags() & QtCore.Qt.ItemFlag.ItemIsDragEnabled


def test_search_function(entries):
    assert search(entries, "")[0].payload == "InputLayer"
    assert search(entries, "max pool 2d")[0].payload == "MaxPooling2D"
    assert search(entries, "mxpl2")[:1] == []  # subsequences only when fuzzy
    assert search(entries, "mxpl2d", fuzzy=True)[0].payload == "MaxPooling2D"
    assert search(entries, "input")[0].payload == "InputLayer"


@pytest.fixture
def quick(qtbot, entries):
    widget = QuickAdd()
    qtbot.addWidget(widget)
    widget.populate(entries)
    widget.open_at(QtCore.QPoint(50, 50))
    qtbot.waitExposed(widget)
    return widget


def test_quick_add_chooses(quick, qtbot):
    assert quick.isVisible() and quick.windowFlags() & QtCore.Qt.WindowType.Popup
    qtbot.keyClicks(quick.search_box, "dense")
    assert quick.payloads()[0] == "Dense"
    with qtbot.waitSignal(quick.chosen) as chosen:
        qtbot.keyClick(quick.search_box, Key.Key_Return)
    assert chosen.args == ["Dense"]
    assert not quick.isVisible()


def test_quick_add_keys_and_blocks(quick, qtbot):
    qtbot.keyClicks(quick.search_box, "residual")
    assert quick.payloads()[0] == "block:Residual block"
    quick.search_box.setText("conv")
    qtbot.keyClick(quick.search_box, Key.Key_Down)
    assert quick.current_payload() == quick.payloads()[1]
    qtbot.keyClick(quick.search_box, Key.Key_Up)
    qtbot.keyClick(quick.search_box, Key.Key_Up)
    assert quick.current_payload() == quick.payloads()[0]
    with qtbot.assertNotEmitted(quick.chosen):
        qtbot.keyClick(quick.search_box, Key.Key_Escape)
    assert not quick.isVisible()
    quick.open_at(QtCore.QPoint(10, 10))
    assert quick.search_box.text() == "" and quick.payloads()[0] == "InputLayer"


def test_quick_add_before_keras(qtbot, monkeypatch):
    monkeypatch.setattr(catalog, "_loaded", None)  # this Keras has no cached catalog yet
    monkeypatch.setattr(catalog, "_missed", True)
    widget = QuickAdd()
    qtbot.addWidget(widget)
    monkeypatch.undo()
    widget.open_at(QtCore.QPoint(0, 0))
    assert widget.list.count() == 1 and widget.list.item(0).text() == LOADING_TEXT
    with qtbot.assertNotEmitted(widget.chosen):
        qtbot.keyClick(widget.search_box, Key.Key_Return)
