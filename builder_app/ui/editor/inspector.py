"""The inspector: the selected layer's parameters, one editor per kind, every edit undoable.

What a parameter is (its kind, default, choices, documentation) comes from the layer
catalog (:mod:`builder_app.core.catalog`); the inspector knows no layer by hand. Every
edit is handed to the editor controller (``set_param``, ``rename``), which checks it
as a file's config is checked and pushes one undoable step, or answers with a typed
refusal the inspector shows beside the field. The inspector never changes the graph
itself, and it never edits while it shows what the graph holds (``_refreshing``), so
undo from anywhere just refreshes the editors.

The catalog is read from its cache (:func:`builder_app.core.catalog.load_cached`), so
parameters are editable from the first frame, before Keras is imported; only the
editors of values Keras itself writes (dtype policies, initializers...) wait for it
(:func:`~builder_app.ui.editor.param_editors.needs_keras`), and shapes come once
the shape engine runs.

The editor widgets, one per kind of parameter, are in
:mod:`builder_app.ui.editor.param_editors`; what typed text means and which values
are equal, in :mod:`builder_app.core.values` (no Qt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core import catalog, custom_code
from builder_app.core.costs import format_bytes, format_count, node_cost
from builder_app.core.events import Change
from builder_app.core.graph import (
    INPUT_CLASS,
    MISSING,
    SUBMODEL_CLASS,
    ConfigError,
    Layer,
    ModelGraph,
)
from builder_app.core.quick_fixes import QuickFix
from builder_app.core.text import format_shape
from builder_app.core.values import InvalidValue, same, short_text
from builder_app.ui.editor.document import Document
from builder_app.ui.editor.param_editors import (
    ERROR_RED,
    Editor,
    JsonEditor,
    ObjectEditor,
    TupleEditor,
    editor_type,
    enable_after_keras,
    make_editor,
    needs_keras,
)

#: What the inspector says when no layer is selected.
EMPTY_TEXT = "Select a layer to edit its parameters"
#: What it says while the catalog is still loading (this Keras has no cached catalog yet).
LOADING_TEXT = "Parameters appear once Keras has loaded."
#: How long the selection and the shapes must rest before the shown node's fixes are computed.
FIXES_DELAY_MS = 150

# Shown in the Advanced section, folded until the user opens it.
_ADVANCED_NAMES = {"dtype", "trainable", "quantization_config"}
_ADVANCED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def _is_advanced(name: str) -> bool:
    return name in _ADVANCED_NAMES or name.endswith(_ADVANCED_SUFFIXES)


@dataclass
class _Row:
    spec: catalog.ParamSpec
    label: QtWidgets.QLabel
    editor: Editor
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
        self.cost_label = self._wrapped_label()
        self.cost_label.setToolTip("Per sample: multiply-accumulates of the layer's computation, and the bytes of its outputs")
        self.shared_label = self._wrapped_label()
        self.note_label = self._wrapped_label()
        self.errors_label = self._error_label()
        self._init_fixes()
        self.warnings_label = self._wrapped_label()
        for widget in (
            self.name_edit,
            self.name_error,
            self.class_label,
            self.description_label,
            self.shape_label,
            self.params_label,
            self.cost_label,
            self.shared_label,
            self.errors_label,
            self.fixes_box,
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

    def keras_ready(self, graph: ModelGraph | None, node_id: str | None) -> None:
        """Keras is loaded: shows ``node_id`` as :meth:`show_node` does, keeping editors already shown.

        The editors of the node already shown stay (a value being typed is not
        lost); those that waited for Keras become editable.
        """
        if self._waiting_for_keras or (graph, node_id) != (self._graph, self._node_id):
            self.show_node(graph, node_id)
            return
        self._enable_keras_editors()
        self._refresh_result()

    def _enable_keras_editors(self) -> None:
        if not catalog.keras_loaded():
            return
        for row in self._rows.values():
            if needs_keras(row.spec):
                enable_after_keras(row.editor)

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
        return editor if isinstance(editor, TupleEditor | ObjectEditor) else editor.primary

    def none_box(self, param_name: str) -> QtWidgets.QCheckBox | None:
        """The "None" check box of a parameter that accepts None, if it has one."""
        return self._rows[param_name].editor.none_box

    def reset_button(self, param_name: str) -> QtWidgets.QToolButton | None:
        """The "reset to default" button of a parameter (None for required ones)."""
        return self._rows[param_name].reset

    def is_default(self, param_name: str) -> bool:
        """Whether a parameter holds its default value."""
        row = self._rows[param_name]
        return row.reset is not None and same(self._value_of(row.spec), row.spec.default)

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
        label.setStyleSheet(f"color: {ERROR_RED};")
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
        elif not catalog.load_cached():
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
                known = custom_code.layer_class_known(layer.class_name)  # never imports Keras here
                self._spec = custom_code.layer_spec(layer.class_name, layer.config) if known else None
                if self._spec is not None:  # Keras's own layer outside keras.layers, or trusted code
                    category, description = self._spec.category, self._spec.description
                    self._add_rows(layer, self._spec)
                elif custom_code.is_outside_catalog(layer.class_name):
                    category = "Custom"
                    description = "A custom layer whose code this project does not run (not given, or not trusted)."
                    note = ("Its config is shown read-only. Declare its output shapes to give the layers "
                            "after it shapes; import with --custom-layers F.py --trust to run it.")
                    self._add_read_only_config(layer, declare=True)
                else:
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

    def _add_read_only_config(self, layer: Layer, declare: bool = False) -> None:
        layout = QtWidgets.QVBoxLayout(self._params_holder)
        layout.setContentsMargins(0, 6, 0, 0)
        if declare:
            layout.addWidget(QtWidgets.QLabel("Output shapes (batch first, ';' between outputs):"))
            shapes = custom_code.declared_shapes(layer.config) or []
            self.declared_edit = QtWidgets.QLineEdit(
                "; ".join("(" + ", ".join("None" if d is None else str(d) for d in s) + ")" for s in shapes)
            )
            self.declared_edit.setPlaceholderText("(None, 16)")
            self.declared_edit.setToolTip("What the layer returns; the layers after it get their shapes from this")
            self.declared_edit.editingFinished.connect(self._declare_shapes)
            layout.addWidget(self.declared_edit)
        text = QtWidgets.QPlainTextEdit(json.dumps(custom_code.keras_config(layer.config), indent=2, default=repr))
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
        editor = make_editor(param, self._value_of(param))
        reset = None
        if has_default:
            reset = QtWidgets.QToolButton()
            reset.setText("↺")
            reset.setAutoRaise(True)
            reset.setToolTip(f"Reset to the default: {short_text(param.default)}")
            reset.clicked.connect(lambda _checked=False, name=param.name: self._reset(name))
        row = _Row(param, label, editor, reset)
        editor.edited.connect(lambda name=param.name: self._edited(name))
        align = (
            QtCore.Qt.AlignmentFlag.AlignTop
            if isinstance(editor, ObjectEditor)
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
        default = row.reset is not None and same(self._value_of(row.spec), row.spec.default)
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
                kind = editor_type(row.spec, value)
                if not isinstance(row.editor, JsonEditor) and kind is not type(row.editor):
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
            self.cost_label.hide()
            self.errors_label.hide()
            self._schedule_fixes([])
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
        engine = self.document.engine_for(self._graph)
        cost = node_cost(self._graph, engine, self._node_id) if engine is not None else None
        if cost is not None and (cost.flops is not None or cost.activation_bytes is not None):
            self.cost_label.setText(
                f"{format_count(cost.flops)} multiply-accumulates, "
                f"{format_bytes(cost.activation_bytes)} of activations per sample"
            )
            self.cost_label.show()
        else:
            self.cost_label.hide()
        errors = list(result.errors)
        self.errors_label.setText("\n".join(errors))
        self.errors_label.setVisible(bool(errors))
        self._schedule_fixes(errors)
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
        if self._waiting_for_keras and catalog.is_loaded():
            self._rebuild()
            return
        self._enable_keras_editors()
        if self._graph is not None and self._node_id in changes.get(self._graph, ()):
            self._refresh_result()

    # ------------------------------------------------------------- quick fixes
    def _init_fixes(self) -> None:
        """The Fixes area under the errors: one button per verified fix, filled off the paint path."""
        self.fixes_box = QtWidgets.QWidget()
        box = QtWidgets.QVBoxLayout(self.fixes_box)
        box.setContentsMargins(0, 2, 0, 4)
        box.setSpacing(2)
        title = QtWidgets.QLabel("<b>Fixes</b>")
        title.setToolTip("Each fix was checked by the shape engine; applying one is one undo step")
        box.addWidget(title)
        self._fix_buttons: list[QtWidgets.QPushButton] = []
        self._fixes: list[QuickFix] = []
        self._fixes_key: tuple | None = None
        self.fixes_box.hide()
        # Computing fixes builds Keras layers: after the selection or the shapes settle,
        # once, never while painting.
        self._fix_timer = QtCore.QTimer(self)
        self._fix_timer.setSingleShot(True)
        self._fix_timer.setInterval(FIXES_DELAY_MS)
        self._fix_timer.timeout.connect(self.refresh_fixes)

    def _fixes_key_of(self, errors: list[str]) -> tuple | None:
        """What the fixes shown were computed for: the node, its errors and the graph's version."""
        engine = self.document.engine_for(self._graph) if self._graph is not None else None
        if not errors or engine is None:
            return None
        return (id(self._graph), self._node_id, tuple(errors), engine.version)

    def _schedule_fixes(self, errors: list[str]) -> None:
        key = self._fixes_key_of(errors)
        if key is None:
            self._fix_timer.stop()
            self._show_fixes([], None)
        elif key != self._fixes_key:
            self._fix_timer.start()

    def refresh_fixes(self) -> None:
        """Computes the shown node's fixes now (the timer calls this; so may a test)."""
        self._fix_timer.stop()
        graph, node_id = self._graph, self._node_id
        result = self.document.result(node_id, graph) if graph is not None and node_id is not None else None
        if result is None or not result.errors:
            self._show_fixes([], None)
            return
        fixes = self.document.controller.quick_fixes(graph, node_id)
        self._show_fixes(fixes, self._fixes_key_of(result.errors))

    def fix_buttons(self) -> list[QtWidgets.QPushButton]:
        """The buttons of the fixes shown, in order (empty when none is)."""
        return list(self._fix_buttons)

    def _show_fixes(self, fixes: list[QuickFix], key: tuple | None) -> None:
        self._fixes_key = key
        self._fixes = list(fixes)
        layout = self.fixes_box.layout()
        for button in self._fix_buttons:
            layout.removeWidget(button)
            button.deleteLater()
        self._fix_buttons = []
        for fix in fixes:
            button = QtWidgets.QPushButton(fix.title)
            button.setToolTip(fix.title)
            button.setStyleSheet("text-align: left; padding: 2px 6px;")
            button.clicked.connect(lambda _checked=False, fix=fix: self._apply_fix(fix))
            layout.addWidget(button)
            self._fix_buttons.append(button)
        self.fixes_box.setVisible(bool(fixes))

    def _apply_fix(self, fix: QuickFix) -> None:
        if self._graph is None or self._node_id is None:
            return
        result = self.document.result(self._node_id, self._graph)
        if result is None or self._fixes_key_of(result.errors) != self._fixes_key:
            # The graph changed since the fixes were checked: check again, and
            # apply the same fix if it still holds.
            self.refresh_fixes()
            fix = next((f for f in self._fixes if f.title == fix.title), None)
            if fix is None:
                self._show_status("That fix no longer applies; the fixes shown are up to date")
                return
        outcome = self.document.controller.apply_fix(self._graph, fix)
        self._show_status("" if outcome else outcome.message)

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
        if same(value, layer.config.get(key, default)):
            row.editor.mark_invalid(None)
            return
        outcome = self.document.controller.set_param(
            self._graph, layer.name, key, value, merge=merge
        )
        if outcome:
            row.editor.mark_invalid(None)
            self._show_status("")
        elif isinstance(outcome.error, ConfigError) and row.editor.is_text:
            # The text stays as typed, marked, so it can be corrected.
            row.editor.mark_invalid(outcome.message)
        else:
            self._show_status(outcome.message)
            self._refresh_values()

    def _declare_shapes(self) -> None:
        """The opaque node's declared output shapes, as typed (empty: none declared)."""
        layer = self._layer()
        if layer is None or self._graph is None:
            return
        text = self.declared_edit.text().strip()
        try:
            value = custom_code.parse_declared_shapes(text) if text else MISSING
        except custom_code.CustomCodeError as exc:
            self._show_status(str(exc))
            return
        if value == layer.config.get(custom_code.DECLARED_SHAPES_KEY, MISSING):
            return
        outcome = self.document.controller.set_param(self._graph, layer.name, custom_code.DECLARED_SHAPES_KEY, value)
        self._show_status("" if outcome else outcome.message)

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


__all__ = ["EMPTY_TEXT", "LOADING_TEXT", "Inspector"]
