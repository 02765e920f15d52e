"""The inspector: the selected layer's parameters, one editor per kind, every edit undoable.

What a parameter is (its kind, default, choices, documentation) comes from the layer
catalog (:mod:`builder_app.core.catalog`); the inspector knows no layer by hand. Every
edit is handed to the editor controller (``set_param``, ``rename``), which checks it
as a file's config is checked and pushes one undoable step, or answers with a typed
refusal the inspector shows beside the field. The inspector never changes the graph
itself, and it never edits while it shows what the graph holds (``_refreshing``), so
undo from anywhere just refreshes the editors.

Nested Keras objects (initializers, regularizers, constraints, dtype policies) are
built by Keras and serialized by Keras, so that a config holds exactly what the
layer's ``get_config()`` would write and stays valid for shapes and exports.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core import catalog
from builder_app.core.events import Change
from builder_app.core.graph import (
    INPUT_CLASS,
    MISSING,
    SUBMODEL_CLASS,
    ConfigError,
    Layer,
    ModelGraph,
)
from builder_app.core.text import format_shape, json_plain
from builder_app.ui.document import Document

#: What the inspector says when no layer is selected.
EMPTY_TEXT = "Select a layer to edit its parameters"
#: What it says while Keras (and so the catalog) is still loading.
LOADING_TEXT = "Parameters appear once Keras has loaded."

# Errors are the one colour not taken from the palette: red reads as red on both.
_ERROR_RED = "#e5484d"
_INT_RANGE = (-(2**31) + 1, 2**31 - 1)
# Integer tuples whose length is the user's choice: edited as text, not as spin boxes.
_FREE_LENGTH = {
    "axis",
    "axes",
    "shared_axes",
    "attention_axes",
    "input_axes",
    "output_axes",
    "ngrams",
}
_ADVANCED_NAMES = {"dtype", "trainable", "quantization_config"}
_ADVANCED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")
_OBJECT_MODULES = {
    catalog.INITIALIZER: "initializers",
    catalog.REGULARIZER: "regularizers",
    catalog.CONSTRAINT: "constraints",
}


class InvalidValue(ValueError):
    """An editor's input is not a value of its parameter; the message says why.

    Attributes:
        keep: The input stays as typed (marked red) rather than being reverted:
            the user is still typing.
    """

    def __init__(self, message: str, keep: bool = False):
        super().__init__(message)
        self.keep = keep


# --------------------------------------------------------------------------- #
# Values
# --------------------------------------------------------------------------- #


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``1``, ``1.0`` and ``True`` differ; dict order does not matter."""
    if a is MISSING or b is MISSING:
        return a is b
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (TypeError, ValueError):
        return a == b


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _format_float(value: Any) -> str:
    """A number as the user would type it (a float32-rounded value shows its short form)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if len(text) > 10 and math.isfinite(value) and _float32(value) == value:
        for digits in range(1, 10):
            short = f"{value:.{digits}g}"
            if _float32(float(short)) == value:
                return short
    return text


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidValue(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidValue("the value must be a finite number")
    return value


def _format_int_list(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join("None" if v is None else str(v) for v in value)
    return "" if value is None else str(value)


def _parse_int_list(text: str, *, none_items: bool, nullable: bool, single_int: bool) -> Any:
    """``"None, 28, 28, 1"`` -> ``[None, 28, 28, 1]``; ``"-1"`` -> ``-1`` where an int fits."""
    stripped = text.strip()
    if stripped[:1] in "([" and stripped[-1:] in ")]":
        stripped = stripped[1:-1].strip()
    if not stripped:
        if nullable:
            return None
        raise InvalidValue("enter integers separated by commas")
    parts = [p.strip() for p in stripped.split(",")]
    if parts and not parts[-1]:  # "1, 2," while typing
        parts.pop()
    values: list[int | None] = []
    for part in parts:
        if part.lower() in ("none", "null") and none_items:
            values.append(None)
            continue
        try:
            values.append(int(part))
        except ValueError:
            allowed = "integers or None" if none_items else "integers"
            raise InvalidValue(f"{part!r} is not an integer; enter {allowed}") from None
    if single_int and len(values) == 1 and "," not in text and values[0] is not None:
        return values[0]
    return values


def _int_leaves(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is a non-empty list of ints, or of lists of ints."""
    if not isinstance(value, list) or not value or depth > 1:
        return False
    return all(
        (isinstance(v, int) and not isinstance(v, bool)) or _int_leaves(v, depth + 1) for v in value
    )


def _keras_object(kind: str, class_name: str, kwargs: dict[str, Any]) -> dict:
    """An initializer, regularizer or constraint, serialized exactly as Keras does."""
    import keras  # Loaded already: the catalog needed it to list the classes.

    module = getattr(keras, _OBJECT_MODULES[kind])
    # Only names the catalog listed reach here, looked up among Keras's own classes.
    classes = {c.__name__: c for c in vars(module).values() if inspect.isclass(c)}
    try:
        instance = classes[class_name](**kwargs)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; shown to the user
        raise InvalidValue(f"{class_name}: {exc}") from None
    return json_plain(keras.saving.serialize_keras_object(instance))


def _dtype_policy(name: str) -> dict:
    """A layer's ``dtype`` entry as ``get_config()`` writes it."""
    import keras

    try:
        policy = keras.dtype_policies.DTypePolicy(name)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        raise InvalidValue(f"dtype {name}: {exc}") from None
    return json_plain(keras.saving.serialize_keras_object(policy))


def _is_advanced(name: str) -> bool:
    return name in _ADVANCED_NAMES or name.endswith(_ADVANCED_SUFFIXES)


# --------------------------------------------------------------------------- #
# Editors: one per kind
# --------------------------------------------------------------------------- #


class _Editor(QtWidgets.QWidget):
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
            widget.setStyleSheet(f"{name} {{ border: 1px solid {_ERROR_RED}; }}")
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


class _IntEditor(_Editor):
    def __init__(self, spec, parent=None):
        super().__init__(spec, parent)
        self.spin = QtWidgets.QSpinBox()
        self.spin.setRange(*_INT_RANGE)
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


class _BoolEditor(_Editor):
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


class _LineEditor(_Editor):
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
            if _same(self._parse(self.line.text()), value) or self._close(value):
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


class _FloatEditor(_LineEditor):
    """Any float: ``1e-5`` as well as ``0.25`` (a spin box would round to its decimals)."""

    def _parse(self, text):
        stripped = text.strip()
        if self.spec.nullable and stripped.lower() in ("", "none", "null"):
            return None
        if not stripped:
            raise InvalidValue("enter a number")
        return _parse_float(stripped)

    def _close(self, value):
        try:
            typed = self._parse(self.line.text())
        except InvalidValue:
            return False
        # Keras keeps some factors as float32: 0.02 comes back as 0.0199999995.
        return isinstance(typed, float) and isinstance(value, float) and _float32(typed) == value

    def _format(self, value):
        return "" if value is None else _format_float(value)


class _TextEditor(_LineEditor):
    def _parse(self, text):
        if self.spec.nullable and not text:
            return None
        return text

    def _format(self, value):
        return "" if value is None else str(value)


class _IntListEditor(_LineEditor):
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
        return _parse_int_list(
            text,
            none_items=self.spec.kind == catalog.SHAPE,
            nullable=self.spec.nullable,
            single_int=isinstance(self._template, int) and not isinstance(self._template, bool),
        )

    def _format(self, value):
        return _format_int_list(value)


class _JsonEditor(_LineEditor):
    """Any JSON value; invalid JSON is marked red and never pushed."""

    def _parse(self, text):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidValue(f"not valid JSON: {exc}") from None

    def _format(self, value):
        return json.dumps(value)


class _ChoiceEditor(_Editor):
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
        index = next((i for i, v in enumerate(self._values) if _same(v, key)), -1)
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


class _DtypeEditor(_ChoiceEditor):
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
        return _dtype_policy(name)


class _TupleEditor(_Editor):
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
                spin.setRange(*_INT_RANGE)
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
            spin.setStyleSheet(f"QSpinBox {{ border: 1px solid {_ERROR_RED}; }}" if reason else "")


class _ObjectEditor(_Editor):
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
        self._args: dict[str, _Editor] = {}
        self._args_class: str | None = None
        self.primary = self.combo

    def arg_editor(self, name: str) -> QtWidgets.QWidget:
        """The editing widget of one of the object's own arguments."""
        return self._args[name].primary

    def _class_of(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return None
        module, name = value.get("module"), value.get("class_name")
        expected = f"keras.{_OBJECT_MODULES[self.kind]}"
        if module not in (None, expected) or value.get("registered_name") not in (None, name):
            return None
        return name if name in self._classes else None

    def _build_args(self, class_name: str | None, values: dict[str, Any]) -> None:
        while self._args_form.rowCount():
            self._args_form.removeRow(0)
        self._args = {}
        self._args_class = class_name
        for arg in self._classes.get(class_name, ()) if class_name else ():
            editor = _make_editor(arg, values.get(arg.name, arg.default))
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
            text = value if isinstance(value, str) else json.dumps(value)
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
            return _keras_object(self.kind, name, kwargs)
        except InvalidValue as exc:
            # Keras refused the arguments (a negative factor...): keep what was typed.
            super().mark_invalid(str(exc))
            raise InvalidValue(str(exc), keep=True) from None

    def mark_invalid(self, reason):
        super().mark_invalid(reason)
        if not reason:
            for editor in self._args.values():
                editor.mark_invalid(None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(value: int) -> bool:
    return _INT_RANGE[0] <= value <= _INT_RANGE[1]


def _editor_type(spec: catalog.ParamSpec, value: Any) -> type[_Editor]:
    """Which editor shows ``value`` of a parameter.

    A value the kind's editor cannot show (an int where the catalog expects a
    tuple of fixed length, a float in an int parameter) falls back to JSON.
    """
    kind = spec.kind
    shown = value if value is not None else spec.default
    if kind == catalog.INT and (shown is None or (_is_int(shown) and _in_range(shown))):
        return _IntEditor
    if kind == catalog.FLOAT and (shown is None or _is_int(shown) or isinstance(shown, float)):
        return _FloatEditor
    if kind == catalog.BOOL and (shown is None or isinstance(shown, bool)):
        return _BoolEditor
    if kind == catalog.STR and (shown is None or isinstance(shown, str)):
        return _TextEditor
    if kind in (catalog.CHOICE, catalog.ACTIVATION):
        return _ChoiceEditor
    if kind == catalog.DTYPE:
        return _DtypeEditor
    if kind in _OBJECT_MODULES:
        return _ObjectEditor
    # Spin boxes where Keras fixes the length (kernel_size: one per spatial dimension);
    # decided by the default so that typing never swaps the editor under the cursor.
    fixed = spec.name not in _FREE_LENGTH and _int_leaves(spec.default)
    if kind == catalog.INT_TUPLE and fixed and (value is None or _int_leaves(value)):
        return _TupleEditor
    flat = isinstance(shown, list) and all(v is None or _is_int(v) for v in shown)
    if kind in (catalog.INT_TUPLE, catalog.SHAPE) and (shown is None or _is_int(shown) or flat):
        return _IntListEditor
    return _JsonEditor  # LIST, ANY, LAYER, and values of an unexpected form


def _make_editor(spec: catalog.ParamSpec, value: Any) -> _Editor:
    """The editor for a parameter, showing ``value``."""
    cls = _editor_type(spec, value)
    editor: _Editor
    if cls is _ChoiceEditor and spec.kind == catalog.ACTIVATION:
        # Keras writes an activation as its name ("linear" where None was given).
        editor = _ChoiceEditor(spec, [(n, n) for n in catalog.activation_names()])
    elif cls is _ChoiceEditor:
        options = [(str(c), c) for c in spec.choices or ()]
        if spec.nullable:
            options.insert(0, ("None", None))
        editor = _ChoiceEditor(spec, options)
    elif cls is _TupleEditor:
        editor = _TupleEditor(spec, value if value is not None else spec.default)
    else:
        editor = cls(spec)
    editor.primary.setToolTip(spec.doc)
    editor.set_value(value)
    return editor


# --------------------------------------------------------------------------- #
# The inspector
# --------------------------------------------------------------------------- #


@dataclass
class _Row:
    spec: catalog.ParamSpec
    label: QtWidgets.QLabel
    editor: _Editor
    reset: QtWidgets.QToolButton | None  # None: no default to go back to


class Inspector(QtWidgets.QWidget):
    """The selected layer's name, shapes and parameters, each edit one undo step.

    Args:
        document: The open project; edits go through :meth:`Document.push`.
        parent: The Qt parent (a dock widget, in the editor window).
    """

    def __init__(self, document: Document, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self._graph: ModelGraph | None = None
        self._node_id: str | None = None
        self._layer_key: tuple[str, str, int] | None = None
        self._spec: catalog.LayerSpec | None = None
        self._rows: dict[str, _Row] = {}
        self._refreshing = False
        self._waiting_for_keras = False
        self._advanced_open = False
        self._shown_name: str | None = None
        self.setMinimumWidth(280)

        self.scroll = QtWidgets.QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        content = QtWidgets.QWidget()
        self._content_layout = QtWidgets.QVBoxLayout(content)
        self._content_layout.setContentsMargins(8, 8, 8, 8)
        self.scroll.setWidget(content)

        self.placeholder = QtWidgets.QLabel(EMPTY_TEXT)
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setForegroundRole(QtGui.QPalette.ColorRole.PlaceholderText)
        self._content_layout.addWidget(self.placeholder)

        self.header = QtWidgets.QWidget()
        header = QtWidgets.QVBoxLayout(self.header)
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(3)
        self.name_edit = QtWidgets.QLineEdit()
        self.name_edit.setToolTip("The Keras layer name (Enter to rename)")
        font = self.name_edit.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.name_edit.setFont(font)
        self.name_edit.editingFinished.connect(self._rename)
        self.name_edit.textEdited.connect(lambda _text: self.name_error.hide())
        self.name_error = self._error_label()
        self.class_label = QtWidgets.QLabel()
        self.class_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.description_label = self._wrapped_label()
        self.description_label.setForegroundRole(QtGui.QPalette.ColorRole.PlaceholderText)
        self.shape_label = self._wrapped_label()
        self.shape_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.params_label = QtWidgets.QLabel()
        self.shared_label = self._wrapped_label()
        self.note_label = self._wrapped_label()
        self.errors_label = self._error_label()
        self.warnings_label = self._wrapped_label()
        for widget in (
            self.name_edit,
            self.name_error,
            self.class_label,
            self.description_label,
            self.shape_label,
            self.params_label,
            self.shared_label,
            self.errors_label,
            self.warnings_label,
            self.note_label,
        ):
            header.addWidget(widget)
        self._content_layout.addWidget(self.header)

        self._params_holder = QtWidgets.QWidget()
        self._content_layout.addWidget(self._params_holder)
        self._content_layout.addStretch(1)

        self.status_label = self._error_label()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.scroll, 1)
        status_row = QtWidgets.QHBoxLayout()
        status_row.setContentsMargins(8, 0, 8, 6)
        status_row.addWidget(self.status_label)
        layout.addLayout(status_row)

        self.advanced_toggle: QtWidgets.QToolButton | None = None
        document.graph_changed.connect(self._graph_changed)
        document.shapes_updated.connect(self._shapes_updated)
        self.show_node(None, None)

    # ------------------------------------------------------------------ public
    def show_node(self, graph: ModelGraph | None, node_id: str | None) -> None:
        """Shows one node's layer (``None`` clears the inspector)."""
        if graph is None or node_id is None or node_id not in graph.nodes:
            graph, node_id = None, None
        if (graph, node_id) != (self._graph, self._node_id):
            self._show_status("")
            self.name_error.hide()
        self._graph, self._node_id = graph, node_id
        self._rebuild()

    def editor(self, param_name: str) -> QtWidgets.QWidget:
        """The widget editing one parameter of the shown layer.

        A ``QSpinBox`` (int), ``QLineEdit`` (float, text, shape, axes, JSON),
        ``QCheckBox`` (bool) or ``QComboBox`` (choice, activation, dtype); for an int
        tuple the editor with its ``spin_boxes``; for an initializer, regularizer or
        constraint the editor with its ``combo`` and ``arg_editor(name)``.

        Raises:
            KeyError: The shown layer has no such parameter.
        """
        editor = self._rows[param_name].editor
        return editor if isinstance(editor, _TupleEditor | _ObjectEditor) else editor.primary

    def none_box(self, param_name: str) -> QtWidgets.QCheckBox | None:
        """The "None" check box of a parameter that accepts None, if it has one."""
        return self._rows[param_name].editor.none_box

    def reset_button(self, param_name: str) -> QtWidgets.QToolButton | None:
        """The "reset to default" button of a parameter (None for required ones)."""
        return self._rows[param_name].reset

    def is_default(self, param_name: str) -> bool:
        """Whether a parameter holds its default value."""
        row = self._rows[param_name]
        return row.reset is not None and _same(self._value_of(row.spec), row.spec.default)

    def param_names(self) -> list[str]:
        """The parameters shown, in order."""
        return list(self._rows)

    # --------------------------------------------------------------- building
    def _wrapped_label(self) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel()
        label.setWordWrap(True)
        return label

    def _error_label(self) -> QtWidgets.QLabel:
        label = self._wrapped_label()
        label.setStyleSheet(f"color: {_ERROR_RED};")
        label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        label.hide()
        return label

    def _layer(self) -> Layer | None:
        if self._graph is None or self._node_id not in self._graph.nodes:
            return None
        return self._graph.layer_of(self._node_id)

    def _rebuild(self) -> None:
        layer = self._layer()
        self._rows = {}
        self._spec = None
        self.advanced_toggle = None
        old = self._params_holder
        self._params_holder = QtWidgets.QWidget()
        self._content_layout.replaceWidget(old, self._params_holder)
        self._params_holder.show()  # now, not when the event loop next runs
        old.hide()
        old.deleteLater()
        self.placeholder.setVisible(layer is None)
        self.header.setVisible(layer is not None)
        if layer is None:
            self._layer_key = None
            self._shown_name = None
            return
        self._layer_key = (layer.name, layer.class_name, id(layer))
        self._shown_name = layer.name
        self.name_edit.setText(layer.name)
        self._waiting_for_keras = False
        note = ""
        if layer.class_name == SUBMODEL_CLASS:
            category, description = "Model", "A sub-model: a graph of layers used as one layer."
            count = len(layer.submodel.layers) if layer.submodel is not None else 0
            note = f"Its {count} layers are edited inside it: open the sub-model on the canvas."
        elif self.document.engine is None:
            category, description = "", ""
            note = LOADING_TEXT
            self._waiting_for_keras = True
        else:
            try:
                self._spec = (
                    catalog.input_spec()
                    if layer.class_name == INPUT_CLASS
                    else catalog.layer_spec(layer.class_name)
                )
            except KeyError as exc:
                reason = exc.args[0] if exc.args else str(exc)
                category, description = "Unknown", "Not a layer the editor knows."
                note = f"Shown read-only: {reason}."
                self._add_read_only_config(layer)
            else:
                category, description = self._spec.category, self._spec.description
                self._add_rows(layer, self._spec)
        self.class_label.setText(
            f"<b>{layer.class_name}</b>" + (f" · {category}" if category else "")
        )
        self.description_label.setText(description)
        self.description_label.setVisible(bool(description))
        self.note_label.setText(note)
        self.note_label.setVisible(bool(note))
        self._refresh_header()
        self._refresh_result()

    def _add_read_only_config(self, layer: Layer) -> None:
        layout = QtWidgets.QVBoxLayout(self._params_holder)
        layout.setContentsMargins(0, 6, 0, 0)
        text = QtWidgets.QPlainTextEdit(json.dumps(layer.config, indent=2, default=repr))
        text.setReadOnly(True)
        text.setMinimumHeight(160)
        layout.addWidget(text)

    def _add_rows(self, layer: Layer, spec: catalog.LayerSpec) -> None:
        # One grid for all rows, so that labels and editors line up in both sections.
        grid = QtWidgets.QGridLayout(self._params_holder)
        grid.setContentsMargins(0, 6, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        grid.setColumnStretch(1, 1)
        known = set(spec.param_names)
        # Keys this Keras does not list (an imported config): shown as JSON, no default.
        extras = [
            catalog.ParamSpec(k, catalog.ANY, None, required=True)
            for k in layer.config
            if k not in known
        ]
        for param in spec.params:
            if not _is_advanced(param.name):
                self._add_row(grid, param, has_default=not param.required)
        advanced = [p for p in spec.params if _is_advanced(p.name)] + extras
        if not advanced:
            return
        toggle = QtWidgets.QToolButton()
        toggle.setText(f"Advanced ({len(advanced)})")
        toggle.setCheckable(True)
        toggle.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toggle.setAutoRaise(True)
        toggle.setToolTip("dtype, trainable, initializers, regularizers and constraints")
        grid.addWidget(toggle, grid.rowCount(), 0, 1, 3)
        hidden: list[QtWidgets.QWidget] = []
        for param in advanced:
            row = self._add_row(grid, param, has_default=param not in extras)
            hidden += [w for w in (row.label, row.editor, row.reset) if w is not None]

        def expand(on: bool) -> None:
            arrow = QtCore.Qt.ArrowType.DownArrow if on else QtCore.Qt.ArrowType.RightArrow
            toggle.setArrowType(arrow)
            for widget in hidden:
                widget.setVisible(on)
            self._advanced_open = on

        toggle.setChecked(self._advanced_open)
        expand(self._advanced_open)
        toggle.toggled.connect(expand)
        self.advanced_toggle = toggle

    def _add_row(
        self, grid: QtWidgets.QGridLayout, param: catalog.ParamSpec, has_default: bool
    ) -> _Row:
        row_index = grid.rowCount()
        label = QtWidgets.QLabel(param.name)
        label.setToolTip(param.doc)
        editor = _make_editor(param, self._value_of(param))
        reset = None
        if has_default:
            reset = QtWidgets.QToolButton()
            reset.setText("↺")
            reset.setAutoRaise(True)
            reset.setToolTip(f"Reset to the default: {_short(param.default)}")
            reset.clicked.connect(lambda _checked=False, name=param.name: self._reset(name))
        row = _Row(param, label, editor, reset)
        editor.edited.connect(lambda name=param.name: self._edited(name))
        align = (
            QtCore.Qt.AlignmentFlag.AlignTop
            if isinstance(editor, _ObjectEditor)
            else QtCore.Qt.AlignmentFlag.AlignVCenter
        )
        grid.addWidget(label, row_index, 0, align)
        grid.addWidget(editor, row_index, 1)
        if reset is not None:
            grid.addWidget(reset, row_index, 2, align)
        self._rows[param.name] = row
        self._style_row(row)
        return row

    # -------------------------------------------------------------- refreshing
    def _value_of(self, param: catalog.ParamSpec) -> Any:
        """The layer's value of a parameter; its default when the config leaves it out."""
        layer = self._layer()
        if layer is None:
            return param.default
        return layer.config.get(param.name, param.default)

    def _style_row(self, row: _Row) -> None:
        default = row.reset is not None and _same(self._value_of(row.spec), row.spec.default)
        font = row.label.font()
        font.setBold(row.reset is not None and not default)
        row.label.setFont(font)
        # Defaults recede (a palette role, readable in light and dark themes).
        role = (
            QtGui.QPalette.ColorRole.PlaceholderText
            if default
            else QtGui.QPalette.ColorRole.WindowText
        )
        row.label.setForegroundRole(role)
        suffix = " (default)" if default else ""
        row.label.setToolTip(f"{row.spec.doc}{suffix}".strip())
        if row.reset is not None:
            row.reset.setEnabled(not default)

    def _refresh_values(self) -> None:
        """Shows what the graph holds; pushes nothing."""
        self._refreshing = True
        try:
            for row in self._rows.values():
                value = self._value_of(row.spec)
                # An editor that cannot show the value (undo brought back an int where
                # a tuple was) is replaced; JSON shows anything, so the user's own JSON
                # edit never swaps the editor under the cursor.
                kind = _editor_type(row.spec, value)
                if not isinstance(row.editor, _JsonEditor) and kind is not type(row.editor):
                    rebuild = True
                    break
                row.editor.set_value(value)
                self._style_row(row)
            else:
                rebuild = False
        finally:
            self._refreshing = False
        if rebuild:
            self._rebuild()

    def _refresh_header(self) -> None:
        layer = self._layer()
        if layer is None or self._graph is None:
            return
        if layer.name != self._shown_name:
            self._shown_name = layer.name
            self.name_edit.setText(layer.name)
        calls = len(self._graph.nodes_of_layer(layer.name))
        self.shared_label.setText(
            f"Shared by {calls} calls; editing changes all." if calls > 1 else ""
        )
        self.shared_label.setVisible(calls > 1)

    def _refresh_result(self) -> None:
        if self._node_id is None or self._graph is None:
            return
        result = self.document.result(self._node_id, self._graph)
        if result is None:
            shapes = (
                "Output: not computed yet"
                if self.document.engine is not None
                else "Output: known once Keras has loaded"
            )
            self.shape_label.setText(shapes)
            self.params_label.hide()
            self.errors_label.hide()
            self.warnings_label.hide()
            return
        if result.outputs is None:
            self.shape_label.setText("Output: unknown")
        else:
            shapes = ", ".join(format_shape(shape) for shape in result.output_shapes)
            self.shape_label.setText(f"Output: {shapes}")
        if result.params is not None:
            text = f"{result.params:,} parameters"
            if result.trainable_params is not None and result.trainable_params != result.params:
                text += f" ({result.trainable_params:,} trainable)"
            self.params_label.setText(text)
        self.params_label.setVisible(result.params is not None)
        errors = list(result.errors)
        self.errors_label.setText("\n".join(errors))
        self.errors_label.setVisible(bool(errors))
        warnings = list(result.warnings)
        if not errors and result.blocked_by and self._graph is not None:
            names = ", ".join(self._graph.label(n) for n in result.blocked_by)
            warnings.append(f"Unknown until {names} is fixed.")
        self.warnings_label.setText("\n".join(warnings))
        self.warnings_label.setVisible(bool(warnings))

    def _graph_changed(self, change: Change) -> None:
        if self._graph is None or self._node_id is None:
            return
        layer = self._layer()
        if layer is None:  # the node was removed
            self.show_node(None, None)
            return
        if self._layer_key != (layer.name, layer.class_name, id(layer)):
            renamed = self._layer_key is not None and self._layer_key[2] == id(layer)
            if renamed and layer.class_name == self._layer_key[1]:
                # Same layer, new name: the editors stay, their merge keys follow the name.
                self._layer_key = (layer.name, layer.class_name, id(layer))
            else:
                self._rebuild()
                return
        self._refresh_header()
        if self._node_id in change.nodes or layer.name in change.layers:
            self._refresh_values()

    def _shapes_updated(self, changes) -> None:
        if self._waiting_for_keras and self.document.engine is not None:
            self._rebuild()
        elif self._graph is not None and self._node_id in changes.get(self._graph, ()):
            self._refresh_result()

    # ----------------------------------------------------------------- editing
    def _show_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setVisible(bool(text))

    def _edited(self, name: str) -> None:
        if self._refreshing:
            return
        row = self._rows.get(name)
        layer = self._layer()
        if row is None or layer is None:
            return
        try:
            value = row.editor.value()
        except InvalidValue as exc:
            if row.editor.is_text:
                row.editor.mark_invalid(str(exc))
            else:
                self._show_status(f"{name}: {exc}")
                if not exc.keep:  # keep: a nested argument being typed, marked there
                    self._refresh_values()
            return
        self._set(row, value, merge=True)

    def _reset(self, name: str) -> None:
        row = self._rows.get(name)
        if row is not None:
            self._set(row, row.spec.default, merge=False)

    def _set(self, row: _Row, value: Any, merge: bool) -> None:
        layer = self._layer()
        if layer is None or self._graph is None:
            return
        key = row.spec.name
        default = row.spec.default if row.reset is not None else MISSING
        if _same(value, layer.config.get(key, default)):
            row.editor.mark_invalid(None)
            return
        outcome = self.document.controller.set_param(self._graph, layer.name, key, value, merge=merge)
        if outcome:
            row.editor.mark_invalid(None)
            self._show_status("")
        elif isinstance(outcome.error, ConfigError) and row.editor.is_text:
            # The text stays as typed, marked, so it can be corrected.
            row.editor.mark_invalid(outcome.message)
        else:
            self._show_status(outcome.message)
            self._refresh_values()

    def _rename(self) -> None:
        layer = self._layer()
        if layer is None:
            return
        new = self.name_edit.text()
        if new == layer.name:
            return
        outcome = self.document.controller.rename(self._graph, layer.name, new)
        if outcome:
            self.name_error.hide()
            return
        self.name_error.setText(outcome.message)
        self.name_error.show()
        self.name_edit.setText(layer.name)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["EMPTY_TEXT", "LOADING_TEXT", "Inspector", "InvalidValue"]
