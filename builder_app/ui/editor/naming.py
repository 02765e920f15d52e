"""The dialog that names a new sub-model: a Keras layer name, free in the model it goes into."""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtWidgets


class SubmodelNameDialog(QtWidgets.QDialog):
    """Asks for a sub-model's name, prefilled; OK only while the name is valid and free.

    Args:
        default: The name proposed (selected, so typing replaces it).
        problem: Why a name cannot be used, or None when it can (the controller's
            :meth:`~builder_app.ui.editor.controller.EditorController.submodel_name_problem`).
        count: How many layers go into the sub-model (for the question).
    """

    def __init__(
        self,
        default: str,
        problem: Callable[[str], str | None],
        count: int,
        parent: QtWidgets.QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Group as Sub-model")
        self._problem = problem
        layers = f"{count} layer{'s' * (count != 1)}"
        question = QtWidgets.QLabel(f"Group {layers} into a sub-model named:")
        self.field = QtWidgets.QLineEdit(default)
        self.field.selectAll()
        self.reason = QtWidgets.QLabel()
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet("color: #e5484d;")
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        column = QtWidgets.QVBoxLayout(self)
        for widget in (question, self.field, self.reason, self.buttons):
            column.addWidget(widget)
        self.field.textChanged.connect(self._check)
        self._check(default)
        self.setMinimumWidth(360)

    def name(self) -> str:
        return self.field.text()

    def ok_button(self) -> QtWidgets.QPushButton:
        return self.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok)

    def _check(self, text: str) -> None:
        problem = self._problem(text)
        self.reason.setText(problem or "")
        self.reason.setVisible(bool(problem))
        self.ok_button().setEnabled(problem is None)

    def accept(self) -> None:
        if self._problem(self.name()) is None:  # Enter in the field, too, only with a valid name
            super().accept()
