"""The inspector's editor widgets: one per kind of parameter, each showing and reading a value.

An editor shows a JSON value (``set_value``, which never signals) and reads one back
(``value``, raising :class:`~builder_app.core.values.InvalidValue` with the reason);
``edited`` fires on the user's edits only. What the typed text means is decided in
:mod:`builder_app.core.values`, without Qt; which editor a parameter gets comes from its
kind in the layer catalog and the value shown (``editor_type``). Editors change nothing:
the inspector hands each value to the editor controller.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from PySide6 import QtCore, QtWidgets

from builder_app.core import catalog, custom_code
from builder_app.core.values import (
    INT_RANGE,
    OBJECT_MODULES,
    InvalidValue,
    dtype_policy,
    float32,
    format_float,
    format_int_list,
    in_int_range,
    int_leaves,
    is_int,
    keras_object,
    object_class,
    parse_float,
    parse_int_list,
    parse_json,
    same,
)

# Errors are the one colour not taken from the palette: red reads as red on both.
ERROR_RED = "#e5484d"
# Integer tuples whose length is the user's choice: edited as text, not as spin boxes.
FREE_LENGTH = {
    "axis",
    "axes",
    "shared_axes",
    "attention_axes",
    "input_axes",
    "output_axes",
    "ngrams",
}


class Editor(QtWidgets.QWidget):
    """Edits one JSON value. ``edited`` fires on user edits only, never on set_value."""

    edited = QtCore.Signal()
    #: Text editors keep invalid input (marked red) instead of reverting it.
    is_text = False

    def __init__(self, spec: catalog.ParamSpec, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.spec = spec
        self._setting = False
        self.none_box: QtWidgets.QCheckBox | None = None
        self.primary: QtWidgets.QWidget = self
        self._layout = QtWidgets.QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)

    def set_value(self, value: Any) -> None:
        with self._quiet():
            self._show(value)

    def value(self) -> Any:
        raise NotImplementedError

    def _show(self, value: Any) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        old, self._setting = self._setting, True
        try:
            yield
        finally:
            self._setting = old

    def _changed(self, *_args: Any) -> None:
        if not self._setting:
            self.edited.emit()

    def mark_invalid(self, reason: str | None) -> None:
        """A red border and the reason as tooltip; None restores the editor."""
        widget = self.primary
        if reason:
            name = widget.metaObject().className()
            widget.setStyleSheet(f"{name} {{ border: 1px solid {ERROR_RED}; }}")
            widget.setToolTip(reason)
        else:
            widget.setStyleSheet("")
            widget.setToolTip(self.spec.doc)

    def _add_none_box(self, inner: QtWidgets.QWidget) -> None:
        """A "None" check box beside ``inner`` for a parameter that accepts None."""
        box = QtWidgets.QCheckBox("None")
        box.setToolTip("No value: Keras decides")
        box.toggled.connect(lambda on: inner.setEnabled(not on))
        box.toggled.connect(self._changed)
        self._layout.addWidget(box)
        self.none_box = box

    def _none_checked(self) -> bool:
        return self.none_box is not None and self.none_box.isChecked()

    def _set_none(self, on: bool) -> None:
        if self.none_box is not None:
            self.none_box.setChecked(on)


class IntEditor(Editor):
    def __init__(self, spec, parent=None):
        super().__init__(spec, parent)
        self.spin = QtWidgets.QSpinBox()
        self.spin.setRange(*INT_RANGE)
        self.spin.setMinimumWidth(60)  # the range alone would ask for room for 11 digits
        # Every keystroke is an edit; one merge key keeps typing one undo step.
        self.spin.setKeyboardTracking(True)
        self.spin.valueChanged.connect(self._changed)
        self._layout.addWidget(self.spin, 1)
        self.primary = self.spin
        if spec.nullable:
            self._add_none_box(self.spin)

    def _show(self, value):
        self._set_none(value is None)
        if isinstance(value, int):
            self.spin.setValue(value)
        elif value is None and isinstance(self.spec.default, int):
            self.spin.setValue(self.spec.default)

    def value(self):
        return None if self._none_checked() else self.spin.value()


class BoolEditor(Editor):
    def __init__(self, spec, parent=None):
        super().__init__(spec, parent)
        self.check = QtWidgets.QCheckBox()
        self.check.toggled.connect(self._changed)
        self._layout.addWidget(self.check)
        self.primary = self.check
        if spec.nullable:
            self._add_none_box(self.check)
        self._layout.addStretch(1)

    def _show(self, value):
        self._set_none(value is None)
        self.check.setChecked(bool(value))

    def value(self):
        return None if self._none_checked() else self.check.isChecked()


class LineEditor(Editor):
    """A line edit that pushes each valid keystroke; invalid text stays, marked red."""

    is_text = True

    def __init__(self, spec, parent=None):
        super().__init__(spec, parent)
        self.line = QtWidgets.QLineEdit()
        self.line.setMinimumWidth(60)
        if spec.nullable:
            self.line.setPlaceholderText("None")
        self.line.textEdited.connect(self._changed)
        self._layout.addWidget(self.line, 1)
        self.primary = self.line

    def _show(self, value):
        # Leave text that already means this value: rewriting it under the cursor
        # would turn "0.10" into "0.1" while the user is typing "0.105".
        try:
            if same(self._parse(self.line.text()), value) or self._close(value):
                self.mark_invalid(None)
                return
        except InvalidValue:
            pass
        self.line.setText(self._format(value))
        self.mark_invalid(None)

    def _close(self, value: Any) -> bool:
        return False

    def value(self):
        return self._parse(self.line.text())

    def _parse(self, text: str) -> Any:
        raise NotImplementedError

    def _format(self, value: Any) -> str:
        raise NotImplementedError


class FloatEditor(LineEditor):
    """Any float: ``1e-5`` as well as ``0.25`` (a spin box would round to its decimals)."""

    def _parse(self, text):
        return parse_float(text, nullable=self.spec.nullable)

    def _close(self, value):
        try:
            typed = self._parse(self.line.text())
        except InvalidValue:
            return False
        # Keras keeps some factors as float32: 0.02 comes back as 0.0199999995.
        return isinstance(typed, float) and isinstance(value, float) and float32(typed) == value

    def _format(self, value):
        return "" if value is None else format_float(value)


class TextEditor(LineEditor):
    def _parse(self, text):
        if self.spec.nullable and not text:
            return None
        return text

    def _format(self, value):
        return "" if value is None else str(value)


class IntListEditor(LineEditor):
    """Integers separated by commas: a shape (``None, 28, 28, 1``) or axes (``-1`` / ``1, 2``)."""

    def __init__(self, spec, parent=None):
        super().__init__(spec, parent)
        self._template = spec.default
        example = "None, 28, 28, 1" if spec.kind == catalog.SHAPE else "1, 2"
        self.line.setPlaceholderText("None" if spec.nullable else f"e.g. {example}")

    def _show(self, value):
        if value is not None:
            self._template = value
        super()._show(value)

    def _parse(self, text):
        return parse_int_list(
            text,
            none_items=self.spec.kind == catalog.SHAPE,
            nullable=self.spec.nullable,
            single_int=isinstance(self._template, int) and not isinstance(self._template, bool),
        )

    def _format(self, value):
        return format_int_list(value)


class JsonEditor(LineEditor):
    """Any JSON value; invalid JSON is marked red and never pushed."""

    def _parse(self, text):
        return parse_json(text)

    def _format(self, value):
        return json.dumps(value)


class ChoiceEditor(Editor):
    """A combo box over fixed values; a value outside them shows as one more item."""

    def __init__(self, spec, options: list[tuple[str, Any]], parent=None):
        super().__init__(spec, parent)
        self.combo = QtWidgets.QComboBox()
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self._values: list[Any] = []
        for label, value in options:
            self.combo.addItem(label)
            self._values.append(value)
        self._fixed = len(self._values)
        self._odd: Any = None
        self.combo.currentIndexChanged.connect(self._changed)
        self._layout.addWidget(self.combo, 1)
        self.primary = self.combo

    def _key(self, value: Any) -> Any:
        """What the combo lists for a config value (the value itself, here)."""
        return value

    def _show(self, value):
        key = self._key(value)
        index = next((i for i, v in enumerate(self._values) if same(v, key)), -1)
        while self.combo.count() > self._fixed:  # an earlier odd value
            self.combo.removeItem(self.combo.count() - 1)
            self._values.pop()
        if index < 0:
            text = key if isinstance(key, str) else json.dumps(value)
            self.combo.addItem(f"{text} (as loaded)")
            self._values.append(key)
            self._odd = value
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)

    def _selected(self) -> Any:
        return self._values[self.combo.currentIndex()]

    def value(self):
        if self.combo.currentIndex() >= self._fixed:
            return self._odd
        return self._selected()


class DtypeEditor(ChoiceEditor):
    """A dtype name; a layer's ``dtype`` is written as the policy Keras serializes."""

    def __init__(self, spec, parent=None):
        names = catalog.dtype_names()
        options = [("None", None)] if spec.nullable else []
        super().__init__(spec, options + [(n, n) for n in names], parent)
        self._as_policy = isinstance(spec.default, dict)

    def _key(self, value):
        if isinstance(value, dict):
            self._as_policy = True
            config = value.get("config")
            if value.get("class_name") == "DTypePolicy" and isinstance(config, dict):
                return config.get("name")
            return value  # another policy class: kept as loaded
        if isinstance(value, str):
            self._as_policy = False
        return value

    def value(self):
        if self.combo.currentIndex() >= self._fixed:
            return self._odd
        name = self._selected()
        if name is None or not self._as_policy:
            return name
        return dtype_policy(name)


class TupleEditor(Editor):
    """One small spin box per element of an int tuple (a row per pair, when nested)."""

    def __init__(self, spec, template: list, parent=None):
        super().__init__(spec, parent)
        self.grid_holder = QtWidgets.QWidget()
        self._grid = QtWidgets.QGridLayout(self.grid_holder)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._layout.addWidget(self.grid_holder)
        self._layout.addStretch(1)
        self.spin_boxes: list[QtWidgets.QSpinBox] = []
        self._structure: list = []
        self._build(template)
        if spec.nullable:
            self._add_none_box(self.grid_holder)

    def _build(self, template: list) -> None:
        for spin in self.spin_boxes:
            spin.deleteLater()
        self.spin_boxes = []
        self._structure = [len(v) if isinstance(v, list) else None for v in template]
        for row, item in enumerate(template):
            leaves = item if isinstance(item, list) else [item]
            for column, leaf in enumerate(leaves):
                spin = QtWidgets.QSpinBox()
                spin.setRange(*INT_RANGE)
                spin.setValue(leaf)
                spin.setMinimumWidth(56)
                spin.setMaximumWidth(90)
                spin.setToolTip(self.spec.doc)
                spin.valueChanged.connect(self._changed)
                nested = isinstance(item, list)
                self._grid.addWidget(spin, row if nested else 0, column if nested else row)
                self.spin_boxes.append(spin)

    def _fits(self, value: list) -> bool:
        return [len(v) if isinstance(v, list) else None for v in value] == self._structure

    def _show(self, value):
        self._set_none(value is None)
        if value is None:
            return
        if not self._fits(value):
            self._build(value)
        leaves = [leaf for v in value for leaf in (v if isinstance(v, list) else [v])]
        for spin, leaf in zip(self.spin_boxes, leaves, strict=True):
            spin.setValue(leaf)

    def value(self):
        if self._none_checked():
            return None
        values = iter(spin.value() for spin in self.spin_boxes)
        return [
            [next(values) for _ in range(size)] if size is not None else next(values)
            for size in self._structure
        ]

    def mark_invalid(self, reason):
        for spin in self.spin_boxes:
            spin.setStyleSheet(f"QSpinBox {{ border: 1px solid {ERROR_RED}; }}" if reason else "")


class ObjectEditor(Editor):
    """An initializer, regularizer or constraint: its class, then its own arguments."""

    def __init__(self, spec, parent=None):
        super().__init__(spec, parent)
        self.kind = spec.kind
        lister = {
            catalog.INITIALIZER: catalog.initializer_classes,
            catalog.REGULARIZER: catalog.regularizer_classes,
            catalog.CONSTRAINT: catalog.constraint_classes,
        }[spec.kind]
        self._classes = lister()
        self._layout.setDirection(QtWidgets.QBoxLayout.Direction.TopToBottom)
        self.combo = QtWidgets.QComboBox()
        self.combo.setToolTip(spec.doc)
        self._names: list[str | None] = []
        if spec.nullable:
            self.combo.addItem("None")
            self._names.append(None)
        for name in sorted(self._classes):
            self.combo.addItem(name)
            self._names.append(name)
        self._fixed = len(self._names)
        self._odd: Any = None
        self.combo.currentIndexChanged.connect(self._class_chosen)
        self._layout.addWidget(self.combo)
        self.args_holder = QtWidgets.QWidget()
        self._args_form = QtWidgets.QFormLayout(self.args_holder)
        self._args_form.setContentsMargins(12, 0, 0, 0)
        # Labels go above their field when the dock is narrow.
        self._args_form.setRowWrapPolicy(QtWidgets.QFormLayout.RowWrapPolicy.WrapLongRows)
        self._args_form.setFieldGrowthPolicy(
            QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow
        )
        self._layout.addWidget(self.args_holder)
        self._args: dict[str, Editor] = {}
        self._args_class: str | None = None
        self.primary = self.combo

    def arg_editor(self, name: str) -> QtWidgets.QWidget:
        """The editing widget of one of the object's own arguments."""
        return self._args[name].primary

    def _class_of(self, value: Any) -> str | None:
        name = object_class(self.kind, value)
        return name if name in self._classes else None

    def _build_args(self, class_name: str | None, values: dict[str, Any]) -> None:
        while self._args_form.rowCount():
            self._args_form.removeRow(0)
        self._args = {}
        self._args_class = class_name
        for arg in self._classes.get(class_name, ()) if class_name else ():
            editor = make_editor(arg, values.get(arg.name, arg.default))
            editor.edited.connect(self._changed)
            label = QtWidgets.QLabel(arg.name)
            label.setToolTip(arg.doc)
            self._args_form.addRow(label, editor)
            self._args[arg.name] = editor
        self.args_holder.setVisible(bool(self._args))

    def _show(self, value):
        while self.combo.count() > self._fixed:
            self.combo.removeItem(self.combo.count() - 1)
            self._names.pop()
        class_name = self._class_of(value)
        if value is None and None in self._names:
            index = self._names.index(None)
        elif class_name is not None:
            index = self._names.index(class_name)
        else:  # a name string ("l2") or another form: kept as loaded until changed
            # An object of the project's own code by its name (objs>MyReg), not its JSON.
            text = value if isinstance(value, str) else custom_code.object_name(value) or json.dumps(value)
            self.combo.addItem(f"{text} (as loaded)")
            self._names.append(None)
            self._odd = value
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)
        config = value.get("config") if isinstance(value, dict) else None
        config = config if isinstance(config, dict) else {}
        if class_name != self._args_class:
            self._build_args(class_name, config)
        else:
            for name, editor in self._args.items():
                arg = editor.spec
                editor.set_value(config.get(name, arg.default))

    def _class_chosen(self, index: int) -> None:
        if self._setting:
            return
        # Keep the arguments both classes take (a seed, a stddev), defaults for the rest.
        carried = {}
        for name, editor in self._args.items():
            with contextlib.suppress(InvalidValue):
                carried[name] = editor.value()
        name = self._names[index] if index < self._fixed else None
        self._build_args(name, carried)
        self._changed()

    def value(self):
        index = self.combo.currentIndex()
        if index >= self._fixed:
            return self._odd
        name = self._names[index]
        if name is None:
            return None
        kwargs = {}
        for arg, editor in self._args.items():
            try:
                kwargs[arg] = editor.value()
            except InvalidValue as exc:
                editor.mark_invalid(str(exc))
                raise InvalidValue(f"{arg}: {exc}", keep=editor.is_text) from None
            editor.mark_invalid(None)
        try:
            return keras_object(self.kind, name, kwargs)
        except InvalidValue as exc:
            # Keras refused the arguments (a negative factor...): keep what was typed.
            super().mark_invalid(str(exc))
            raise InvalidValue(str(exc), keep=True) from None

    def mark_invalid(self, reason):
        super().mark_invalid(reason)
        if not reason:
            for editor in self._args.values():
                editor.mark_invalid(None)


def editor_type(spec: catalog.ParamSpec, value: Any) -> type[Editor]:
    """Which editor shows ``value`` of a parameter.

    A value the kind's editor cannot show (an int where the catalog expects a
    tuple of fixed length, a float in an int parameter) falls back to JSON.
    """
    kind = spec.kind
    shown = value if value is not None else spec.default
    if kind == catalog.INT and (shown is None or (is_int(shown) and in_int_range(shown))):
        return IntEditor
    if kind == catalog.FLOAT and (shown is None or is_int(shown) or isinstance(shown, float)):
        return FloatEditor
    if kind == catalog.BOOL and (shown is None or isinstance(shown, bool)):
        return BoolEditor
    if kind == catalog.STR and (shown is None or isinstance(shown, str)):
        return TextEditor
    if kind in (catalog.CHOICE, catalog.ACTIVATION):
        return ChoiceEditor
    if kind == catalog.DTYPE:
        return DtypeEditor
    if kind in OBJECT_MODULES:
        return ObjectEditor
    # Spin boxes where Keras fixes the length (kernel_size: one per spatial dimension);
    # decided by the default so that typing never swaps the editor under the cursor.
    fixed = spec.name not in FREE_LENGTH and int_leaves(spec.default)
    if kind == catalog.INT_TUPLE and fixed and (value is None or int_leaves(value)):
        return TupleEditor
    flat = isinstance(shown, list) and all(v is None or is_int(v) for v in shown)
    if kind in (catalog.INT_TUPLE, catalog.SHAPE) and (shown is None or is_int(shown) or flat):
        return IntListEditor
    return JsonEditor  # LIST, ANY, LAYER, and values of an unexpected form


#: Kinds whose value Keras itself writes (a dtype policy, a serialized initializer...):
#: their editors wait, disabled, until Keras is loaded, so that editing one never
#: imports TensorFlow on the GUI thread.
KERAS_KINDS = frozenset({catalog.DTYPE, *OBJECT_MODULES})
#: The tooltip of an editor waiting for Keras.
WAITING_TIP = "Editable once Keras has loaded."


def needs_keras(spec: catalog.ParamSpec) -> bool:
    """Whether editing this parameter needs Keras (see :data:`KERAS_KINDS`)."""
    return spec.kind in KERAS_KINDS


def enable_after_keras(editor: Editor) -> None:
    """Enables an editor that was waiting for Keras (see :func:`make_editor`)."""
    if not editor.isEnabled():
        editor.setEnabled(True)
        editor.primary.setToolTip(editor.spec.doc)


def make_editor(spec: catalog.ParamSpec, value: Any) -> Editor:
    """The editor for a parameter, showing ``value``.

    Before Keras is loaded an editor of a kind Keras writes (:data:`KERAS_KINDS`)
    shows its value but is disabled; :func:`enable_after_keras` enables it.
    """
    cls = editor_type(spec, value)
    editor: Editor
    if cls is ChoiceEditor and spec.kind == catalog.ACTIVATION:
        # Keras writes an activation as its name ("linear" where None was given).
        editor = ChoiceEditor(spec, [(n, n) for n in catalog.activation_names()])
    elif cls is ChoiceEditor:
        options = [(str(c), c) for c in spec.choices or ()]
        if spec.nullable:
            options.insert(0, ("None", None))
        editor = ChoiceEditor(spec, options)
    elif cls is TupleEditor:
        editor = TupleEditor(spec, value if value is not None else spec.default)
    else:
        editor = cls(spec)
    editor.primary.setToolTip(spec.doc)
    editor.set_value(value)
    if needs_keras(spec) and not catalog.keras_loaded():
        editor.setEnabled(False)
        editor.primary.setToolTip(f"{spec.doc}\n{WAITING_TIP}".strip())
    return editor


__all__ = [
    "ERROR_RED",
    "BoolEditor",
    "ChoiceEditor",
    "DtypeEditor",
    "Editor",
    "FloatEditor",
    "IntEditor",
    "IntListEditor",
    "JsonEditor",
    "LineEditor",
    "ObjectEditor",
    "TextEditor",
    "TupleEditor",
    "KERAS_KINDS",
    "WAITING_TIP",
    "editor_type",
    "enable_after_keras",
    "make_editor",
    "needs_keras",
]
