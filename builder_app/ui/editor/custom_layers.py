"""The editor's custom layers: trusting a project's code, and writing a layer in the app.

:func:`offer_trust` asks before a project's code runs (the files and their classes
named, trust kept by content hash, see :mod:`builder_app.core.trust`);
:class:`CustomLayerEditor` is "New Custom Layer…": a template, a GroupNormalization
example, a check naming the walk-through's pitfalls
(:mod:`builder_app.core.custom_layer_check`), and "Add to Project", which stores the
file in the project, trusts it and puts its classes in the palette under "Custom".
"""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

from builder_app.core import custom_code, trust
from builder_app.core.custom_code import CodeFile, CustomCodeError


def activate_trusted(window) -> str | None:
    """Runs the open project's code if every file is trusted; the palette and shapes follow.

    Returns:
        None when done (or nothing to run), else one line saying why it did not run.
    """
    document = window.document
    files = list(getattr(document.project, "custom_code", []) or [])
    lambdas = custom_code.lambda_code(document.graph)
    if not files and not lambdas:
        return None
    missing = trust.untrusted([*files, *lambdas])
    if missing:
        return trust.untrusted_message(missing, "Model > Trust Custom Code… runs it")
    try:
        custom_code.activate(files)
    except CustomCodeError as exc:
        return f"the custom code raised: {exc}"
    custom_code.allow_lambdas(lambdas)
    refresh(window)
    return None


def refresh(window) -> None:
    """New classes are known: the palette lists them and every node is computed again."""
    window.palette.populate()
    window.quick_add.populate()
    document = window.document
    if document.engine is not None:
        document.engine.close()
        document.engine = None
    document.attach_engine()
    for scene in window.scenes:
        scene.refresh_all()


def offer_trust(window, ask=None) -> bool:
    """Asks whether to trust and run the project's code; runs it on Yes.

    Args:
        window: The editor window.
        ask: Shows the question's text and returns the answer (default: a message box).
    """
    files = [
        *(getattr(window.document.project, "custom_code", []) or []),
        *custom_code.lambda_code(window.document.graph),
    ]
    if not files:
        QtWidgets.QMessageBox.information(window, "Custom Code", "This project holds no custom layer code.")
        return False
    listing = "\n".join(f"  {custom_code.describe([f])}  (sha256 {f.sha256[:12]}…)" for f in files)
    text = (
        "This project holds Python code that will run on this computer with your permissions:\n\n"
        f"{listing}\n\nRun it only if you trust where it came from. The trust is remembered for "
        "exactly this text; a changed file asks again."
    )
    if ask is None:
        def ask(question: str) -> bool:
            answer = QtWidgets.QMessageBox.question(window, "Trust Custom Code?", question)
            return answer == QtWidgets.QMessageBox.StandardButton.Yes
    if not ask(text):
        return False
    trust.trust(files)
    problem = activate_trusted(window)
    if problem:
        QtWidgets.QMessageBox.warning(window, "Custom Code", problem)
        return False
    return True


class CustomLayerEditor(QtWidgets.QDialog):
    """Write a layer class, check it, and add it to the project."""

    def __init__(self, window, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent or window)
        self.window_ = window
        self.setWindowTitle("New Custom Layer")
        self.resize(760, 640)
        self.file_name = QtWidgets.QLineEdit("my_layers.py")
        self.file_name.setToolTip("The file the project keeps the code in (a Python module name)")
        self.text = QtWidgets.QPlainTextEdit(_template())
        font = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        self.text.setFont(font)
        self.text.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.shape = QtWidgets.QLineEdit("(None, 8, 8, 8)")
        self.shape.setToolTip("The symbolic input the check calls each layer on")
        self.results = QtWidgets.QPlainTextEdit()
        self.results.setReadOnly(True)
        self.results.setMaximumHeight(150)
        example = QtWidgets.QPushButton("GroupNormalization Example")
        example.clicked.connect(self._example)
        check = QtWidgets.QPushButton("Check")
        check.clicked.connect(self.check)
        self.add_button = QtWidgets.QPushButton("Add to Project")
        self.add_button.clicked.connect(self.add_to_project)
        close = QtWidgets.QPushButton("Close")
        close.clicked.connect(self.reject)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("File:"))
        top.addWidget(self.file_name, 1)
        top.addWidget(QtWidgets.QLabel("Check on input:"))
        top.addWidget(self.shape, 1)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(example)
        buttons.addStretch(1)
        buttons.addWidget(check)
        buttons.addWidget(self.add_button)
        buttons.addWidget(close)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.results)
        layout.addLayout(buttons)

    def _example(self) -> None:
        from builder_app.core.custom_layer_check import GROUP_NORMALIZATION_EXAMPLE

        self.text.setPlainText(GROUP_NORMALIZATION_EXAMPLE)
        self.file_name.setText("group_norm.py")
        self.shape.setText("(None, 8, 8, 8)")

    def code_file(self) -> CodeFile:
        return CodeFile(self.file_name.text().strip(), self.text.toPlainText())

    def check(self) -> bool:
        """Runs the check; shows one line per finding. Returns whether everything passed."""
        from builder_app.core.custom_layer_check import check_source

        try:
            shapes = custom_code.parse_declared_shapes(self.shape.text())
            findings = check_source(self.code_file(), tuple(shapes[0]))
        except CustomCodeError as exc:
            self.results.setPlainText(f"problem: {exc}")
            return False
        self.results.setPlainText("\n".join(str(f) for f in findings))
        return all(f.ok for f in findings)

    def add_to_project(self) -> bool:
        """Stores the file in the project (replacing one of its name), trusts it and runs it."""
        try:
            file = self.code_file()
            custom_code.class_names(file)
        except CustomCodeError as exc:
            self.results.setPlainText(f"problem: {exc}")
            return False
        project = self.window_.document.project
        kept = [f for f in project.custom_code if f.name != file.name]
        trust.trust([file])  # the user wrote it here
        try:
            custom_code.activate([file])
        except CustomCodeError as exc:
            self.results.setPlainText(f"problem: {exc}")
            return False
        project.custom_code = [*kept, file]
        self.window_.document.mark_dirty()
        refresh(self.window_)
        names = ", ".join(custom_code.class_names(file))
        self.results.appendPlainText(f"added {file.name} to the project: {names} in the palette under Custom")
        return True


def _template() -> str:
    from builder_app.core.custom_layer_check import TEMPLATE

    return TEMPLATE
