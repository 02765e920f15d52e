"""The training settings dialog: every setting the training supports, checked before it is kept.

Four tabs: the optimizer (any ``keras.optimizers`` class, one field per argument of
its signature, its default shown greyed), the learning-rate schedule (constant or
any ``keras.optimizers.schedules`` class, with its arguments), loss and metrics per
model output, the callbacks (each one switched on or off, with its arguments), and
the rest (validation split, shuffle, seed, mixed precision). An empty field means
the default, and is not written.

OK writes the values into ``project.training`` in the format
:mod:`builder_app.core.training_settings` reads, but only when
:func:`~builder_app.core.training_settings.resolve` accepts them; otherwise the
dialog shows its one-line message and keeps nothing.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from typing import Any

from PySide6 import QtCore, QtWidgets

from builder_app.core import training_settings
from builder_app.core.project import Project
from builder_app.core.training_settings import CALLBACKS, DEFAULTS, SettingsError, arguments

#: Optimizers listed first; the rest of keras.optimizers follows.
FIRST_OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Nadam", "Adagrad", "Adadelta", "Adamax", "Lion", "Ftrl", "Lamb")
CONSTANT = "constant (no schedule)"
LOSSES = (
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "huber",
    "log_cosh",
    "kl_divergence",
    "poisson",
    "hinge",
    "cosine_similarity",
)
CALLBACK_TITLES = {
    "early_stopping": "Early stopping",
    "reduce_lr_on_plateau": "Reduce learning rate on plateau",
    "model_checkpoint": "Best checkpoint",
    "terminate_on_nan": "Stop on NaN loss",
    "backup_and_restore": "Back up and resume after a crash",
    "csv_logger": "CSV log",
    "tensorboard": "TensorBoard log directory",
}
_REQUIRED = inspect.Parameter.empty


# ============================================================ field values
def format_value(value: Any) -> str:
    """A setting's value as a field shows it: ``0.001``, ``val_loss``, ``[10, 20]``, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def parse_value(text: str, default: Any, where: str) -> Any:
    """A field's text -> the setting's value.

    ``none``, ``true``/``false``, numbers and ``[lists]`` are read as such; any other
    text is text, unless the default is a number.

    Raises:
        SettingsError: The argument takes a number and the text is none.
    """
    text = text.strip()
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{where} must be a finite number, not {text!r}")
    number = isinstance(default, (int, float)) and not isinstance(default, bool)
    if number and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise SettingsError(f"{where} must be a number, not {text!r}")
    return value


class ArgumentsForm(QtWidgets.QWidget):
    """One field per argument of a Keras class: a check box for true/false, else a line of text.

    Attributes:
        fields: The field of each argument, by name.
    """

    def __init__(
        self,
        cls: type,
        config: dict[str, Any] | None,
        where: str,
        texts: dict[str, Any] | None = None,
        parent: QtWidgets.QWidget | None = None,
    ):
        super().__init__(parent)
        self.cls = cls
        self.where = where
        self.parameters = arguments(cls)
        self._given = dict(config or {})
        self.fields: dict[str, QtWidgets.QWidget] = {}
        layout = QtWidgets.QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name, parameter in self.parameters.items():
            default = parameter.default
            kept = (texts or {}).get(name)
            if isinstance(default, bool):
                field = QtWidgets.QCheckBox()
                field.setChecked(bool(self._given.get(name, default)) if kept is None else bool(kept))
            else:
                field = QtWidgets.QLineEdit()
                field.setPlaceholderText("required" if default is _REQUIRED else format_value(default))
                if isinstance(kept, str):
                    field.setText(kept)
                elif name in self._given:
                    field.setText(format_value(self._given[name]))
            field.setToolTip(f"{cls.__name__}({name}=…)")
            self.fields[name] = field
            layout.addRow(name, field)

    def values(self) -> dict[str, Any]:
        """The arguments given (empty fields left out, check boxes when not at their default).

        Raises:
            SettingsError: A field holds what its argument cannot take.
        """
        config: dict[str, Any] = {}
        for name, field in self.fields.items():
            default = self.parameters[name].default
            if isinstance(field, QtWidgets.QCheckBox):
                if field.isChecked() != default or name in self._given:
                    config[name] = field.isChecked()
            elif field.text().strip():
                config[name] = parse_value(field.text(), default, f"{self.where}: {name}")
        return config

    def texts(self) -> dict[str, Any]:
        """What the fields hold as typed (to carry over to another class's form)."""
        return {
            name: field.isChecked() if isinstance(field, QtWidgets.QCheckBox) else field.text()
            for name, field in self.fields.items()
            if not isinstance(field, QtWidgets.QLineEdit) or field.text().strip()
        }


# ================================================================= dialog
class TrainingSettingsDialog(QtWidgets.QDialog):
    """Edits ``project.training``; OK keeps the values only when they are valid."""

    def __init__(self, project: Project, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        import keras

        self._keras = keras
        self.project = project
        self.setWindowTitle("Training settings")
        self._original = copy.deepcopy(project.training)
        self._outputs = [project.graph.layer_of(ref.node).name for ref in project.graph.model_outputs()]
        self._auto = self._automatic_choices()
        training = self._original

        tabs = QtWidgets.QTabWidget()
        tabs.addTab(self._scrolled(self._optimizer_tab(training)), "Optimizer")
        tabs.addTab(self._scrolled(self._outputs_tab(training)), "Loss and metrics")
        tabs.addTab(self._scrolled(self._callbacks_tab(training)), "Callbacks")
        tabs.addTab(self._scrolled(self._other_tab(training)), "Data and run")
        self.tabs = tabs

        self.error = QtWidgets.QLabel(wordWrap=True)
        self.error.setStyleSheet("color: #b3261e;")
        self.error.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(tabs, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.resize(560, 640)

    # ---------------------------------------------------------------- tabs
    def _optimizer_tab(self, training: dict[str, Any]) -> QtWidgets.QWidget:
        optimizer = training.get("optimizer") or DEFAULTS["optimizer"]
        self.optimizer = QtWidgets.QComboBox()
        self.optimizer.addItems(self._optimizer_names())
        self.optimizer.setCurrentText(str(optimizer.get("class_name", "Adam")))
        self._optimizer_box = QtWidgets.QGroupBox("Arguments")
        QtWidgets.QVBoxLayout(self._optimizer_box)
        self.optimizer_form = self._form(
            self._optimizer_box, self._keras.optimizers, self.optimizer.currentText(), optimizer.get("config"), "optimizer"
        )
        self.optimizer.currentTextChanged.connect(self._optimizer_changed)

        schedule = training.get("learning_rate_schedule")
        self.schedule = QtWidgets.QComboBox()
        self.schedule.addItems([CONSTANT, *self._schedule_names()])
        self.schedule.setCurrentText(schedule["class_name"] if isinstance(schedule, dict) else CONSTANT)
        self._schedule_box = QtWidgets.QGroupBox("Schedule arguments")
        QtWidgets.QVBoxLayout(self._schedule_box)
        self.schedule_form: ArgumentsForm | None = None
        if isinstance(schedule, dict) and self.schedule.currentText() != CONSTANT:
            self.schedule_form = self._form(
                self._schedule_box,
                self._keras.optimizers.schedules,
                schedule["class_name"],
                schedule.get("config"),
                "learning_rate_schedule",
            )
        self.schedule.currentTextChanged.connect(self._schedule_changed)
        self._show_schedule()

        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        form = QtWidgets.QFormLayout()
        form.addRow("Optimizer", self.optimizer)
        layout.addLayout(form)
        layout.addWidget(self._optimizer_box)
        form = QtWidgets.QFormLayout()
        form.addRow("Learning-rate schedule", self.schedule)
        layout.addLayout(form)
        layout.addWidget(self._schedule_box)
        layout.addStretch(1)
        return page

    def _outputs_tab(self, training: dict[str, Any]) -> QtWidgets.QWidget:
        losses = _per_output(training.get("loss"), self._outputs)
        metrics = _per_output(training.get("metrics"), self._outputs, lists=True)
        self.losses: dict[str, QtWidgets.QComboBox] = {}
        self.metrics: dict[str, QtWidgets.QLineEdit] = {}
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        for i, name in enumerate(self._outputs):
            box = QtWidgets.QGroupBox(f"Output '{name}'")
            form = QtWidgets.QFormLayout(box)
            loss = QtWidgets.QComboBox(editable=True)
            loss.addItems(["", *LOSSES])
            loss.lineEdit().setPlaceholderText(f"automatic: {self._auto['loss'][i]}")
            loss.setCurrentText(losses[i] if isinstance(losses[i], str) else "")
            metric = QtWidgets.QLineEdit()
            metric.setPlaceholderText(f"automatic: {', '.join(self._auto['metrics'][i]) or 'none'}")
            if isinstance(metrics[i], list):
                metric.setText(", ".join(str(m) for m in metrics[i]) or "none")
            metric.setToolTip("metric names separated by commas; 'none' for none")
            form.addRow("Loss", loss)
            form.addRow("Metrics", metric)
            self.losses[name], self.metrics[name] = loss, metric
            layout.addWidget(box)
        layout.addStretch(1)
        return page

    def _callbacks_tab(self, training: dict[str, Any]) -> QtWidgets.QWidget:
        current = training.get("callbacks", DEFAULTS["callbacks"])
        current = current if isinstance(current, dict) else {}
        self.callbacks: dict[str, tuple[QtWidgets.QGroupBox, ArgumentsForm]] = {}
        page = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(page)
        for key, class_name in CALLBACKS.items():
            config = current.get(key)
            box = QtWidgets.QGroupBox(f"{CALLBACK_TITLES.get(key, key)} ({class_name})")
            box.setCheckable(True)
            box.setChecked(isinstance(config, dict))
            inner = QtWidgets.QVBoxLayout(box)
            form = ArgumentsForm(
                getattr(self._keras.callbacks, class_name), config if isinstance(config, dict) else {}, f"callbacks.{key}"
            )
            inner.addWidget(form)
            self.callbacks[key] = (box, form)
            layout.addWidget(box)
        layout.addStretch(1)
        return page

    def _other_tab(self, training: dict[str, Any]) -> QtWidgets.QWidget:
        def get(key: str) -> Any:
            return training.get(key, DEFAULTS[key])

        self.validation_split = QtWidgets.QDoubleSpinBox(decimals=3, minimum=0.0, maximum=0.95, singleStep=0.05)
        split = get("validation_split")
        self.validation_split.setValue(float(split) if isinstance(split, (int, float)) else 0.2)
        self.shuffle = QtWidgets.QCheckBox("shuffle the samples every epoch")
        self.shuffle.setChecked(bool(get("shuffle")))
        self.seed = QtWidgets.QSpinBox(minimum=0, maximum=2**31 - 1)
        seed = get("seed")
        self.seed.setValue(seed if isinstance(seed, int) and 0 <= seed < 2**31 else 0)
        self.mixed_precision = QtWidgets.QCheckBox("mixed precision (float16 compute, float32 weights)")
        self.mixed_precision.setChecked(bool(get("mixed_precision")))
        page = QtWidgets.QWidget()
        form = QtWidgets.QFormLayout(page)
        form.addRow("Validation split", self.validation_split)
        form.addRow("", self.shuffle)
        form.addRow("Seed", self.seed)
        form.addRow("", self.mixed_precision)
        form.addRow(QtWidgets.QLabel("Data, epochs and batch size are chosen in the training window."))
        return page

    # -------------------------------------------------------------- values
    def settings(self) -> dict[str, Any]:
        """The training settings the dialog shows (not yet checked by resolve).

        Raises:
            SettingsError: A field holds what its setting cannot take.
        """
        training = copy.deepcopy(self._original)

        def put(key: str, value: Any) -> None:
            # Keys the project had stay; others are written only when not the default.
            if key in self._original or value != DEFAULTS[key]:
                training[key] = value

        put("optimizer", {"class_name": self.optimizer.currentText(), "config": self.optimizer_form.values()})
        if self.schedule_form is None:
            put("learning_rate_schedule", None)
        else:
            put(
                "learning_rate_schedule",
                {"class_name": self.schedule.currentText(), "config": self.schedule_form.values()},
            )
        losses = [self.losses[name].currentText().strip() for name in self._outputs]
        if not any(losses):
            put("loss", None)
        else:
            chosen = [loss or auto for loss, auto in zip(losses, self._auto["loss"], strict=True)]
            put("loss", chosen[0] if len(chosen) == 1 else dict(zip(self._outputs, chosen, strict=True)))
        metrics = [_metric_names(self.metrics[name].text()) for name in self._outputs]
        if all(m is None for m in metrics):
            put("metrics", None)
        else:
            chosen = [m if m is not None else auto for m, auto in zip(metrics, self._auto["metrics"], strict=True)]
            put("metrics", chosen[0] if len(chosen) == 1 else dict(zip(self._outputs, chosen, strict=True)))
        put("callbacks", {key: form.values() for key, (box, form) in self.callbacks.items() if box.isChecked()})
        put("validation_split", round(self.validation_split.value(), 6))
        put("shuffle", self.shuffle.isChecked())
        put("seed", self.seed.value())
        put("mixed_precision", self.mixed_precision.isChecked())
        return training

    def accept(self) -> None:
        """Keeps the settings when they are valid; else says why in one line and stays open."""
        try:
            candidate = self.settings()
            training_settings.resolve(candidate, self.project.graph)
        except SettingsError as exc:
            self.error.setText(" ".join(str(exc).split()))
            return
        self.project.training.clear()
        self.project.training.update(candidate)
        self.error.clear()
        super().accept()

    # ------------------------------------------------------------- helpers
    def _automatic_choices(self) -> dict[str, list[Any]]:
        """The loss and metrics chosen per output when the settings name none."""
        try:
            resolved = training_settings.resolve({}, self.project.graph)
        except SettingsError:
            return {"loss": [""] * len(self._outputs), "metrics": [[] for _ in self._outputs]}
        return {"loss": resolved["loss"], "metrics": resolved["metrics"]}

    def _optimizer_names(self) -> list[str]:
        module = self._keras.optimizers
        names = [
            name
            for name in dir(module)
            if not name.startswith("_")
            and inspect.isclass(getattr(module, name))
            and issubclass(getattr(module, name), module.Optimizer)
            and getattr(module, name) is not module.Optimizer
            # Those needing another optimizer or a map of them cannot come from literals.
            and all(p.default is not _REQUIRED for p in arguments(getattr(module, name)).values())
        ]
        return [n for n in FIRST_OPTIMIZERS if n in names] + [n for n in names if n not in FIRST_OPTIMIZERS]

    def _schedule_names(self) -> list[str]:
        module = self._keras.optimizers.schedules
        return [
            name
            for name in dir(module)
            if not name.startswith("_")
            and inspect.isclass(getattr(module, name))
            and issubclass(getattr(module, name), module.LearningRateSchedule)
            and getattr(module, name) is not module.LearningRateSchedule
        ]

    def _form(
        self, box: QtWidgets.QGroupBox, module, class_name: str, config: Any, where: str, texts=None
    ) -> ArgumentsForm:
        cls = getattr(module, class_name, None)
        if not inspect.isclass(cls):
            cls = module.Adam if where == "optimizer" else module.CosineDecay
        form = ArgumentsForm(cls, config if isinstance(config, dict) else {}, where, texts)
        box.layout().addWidget(form)
        return form

    def _optimizer_changed(self, name: str) -> None:
        texts = self.optimizer_form.texts()
        self.optimizer_form.setParent(None)
        self.optimizer_form.deleteLater()
        self.optimizer_form = self._form(self._optimizer_box, self._keras.optimizers, name, {}, "optimizer", texts)
        self._show_schedule()

    def _schedule_changed(self, name: str) -> None:
        texts = self.schedule_form.texts() if self.schedule_form is not None else {}
        if self.schedule_form is not None:
            self.schedule_form.setParent(None)
            self.schedule_form.deleteLater()
            self.schedule_form = None
        if name != CONSTANT:
            rate = self.optimizer_form.fields.get("learning_rate")
            if "initial_learning_rate" not in texts and isinstance(rate, QtWidgets.QLineEdit):
                # The schedule starts where the constant rate was.
                texts["initial_learning_rate"] = rate.text() or rate.placeholderText()
            self.schedule_form = self._form(
                self._schedule_box, self._keras.optimizers.schedules, name, {}, "learning_rate_schedule", texts
            )
        self._show_schedule()

    def _show_schedule(self) -> None:
        scheduled = self.schedule_form is not None
        self._schedule_box.setVisible(scheduled)
        rate = self.optimizer_form.fields.get("learning_rate")
        if rate is not None:
            rate.setEnabled(not scheduled)
            rate.setToolTip("set by the learning-rate schedule" if scheduled else "")

    @staticmethod
    def _scrolled(page: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
        area = QtWidgets.QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        area.setWidget(page)
        return area


def _per_output(value: Any, outputs: list[str], *, lists: bool = False) -> list[Any]:
    """The project's loss (or metrics) setting, one entry per output; None where it gives none."""
    if value is None:
        return [None] * len(outputs)
    if isinstance(value, dict):
        return [value.get(name) for name in outputs]
    single = isinstance(value, str) or (lists and isinstance(value, list) and all(isinstance(v, str) for v in value))
    if single and len(outputs) == 1:
        return [value if not lists or isinstance(value, list) else [value]]
    if isinstance(value, list) and len(value) == len(outputs):
        return list(value)
    return [None] * len(outputs)


def _metric_names(text: str) -> list[str] | None:
    """``accuracy, auc`` -> the names; empty -> None (automatic); ``none`` -> no metrics."""
    text = text.strip()
    if not text:
        return None
    if text.lower() == "none":
        return []
    return [name.strip() for name in text.split(",") if name.strip()]
