"""Every model exporter, in one table: the command line and the editor read it.

An :class:`Exporter` says what its kind is called (``--python`` on the command
line, ``export_python`` in the editor's File > Export menu), what it writes (the
suffix and file-dialog filter, or a directory), how it writes it, whether
``export --check`` can load the result and compare it with the app's model, and
whether it can run here at all (ONNX needs optional packages).

Adding an exporter: write its writer (``write(project, path, model)``), add one
entry to :data:`EXPORTERS`, and a test. The command line gains the flag, the
editor the menu entry and the dialog, both with the same messages.

No Qt here (the diagram's PNG and SVG are drawn by the canvas's painting code,
so the editor keeps those two beside this table).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder_app.core.atomic import write_atomically

if TYPE_CHECKING:  # the command line reads this table before anything heavy is imported
    from builder_app.core.project import Project

#: ``write(project, path, model)``: ``model`` is the Keras model to export (built
#: once for several exports, so that they agree) or None to build one.
Writer = Callable[["Project", Path, Any], None]


@dataclass(frozen=True)
class Exporter:
    """One export format."""

    #: The kind: the command-line flag without ``--`` and the editor's action name.
    kind: str
    #: What it writes, for the command's help ("a .keras model with weights").
    help: str
    #: The command-line metavar ("F.py", "DIR").
    metavar: str
    #: The editor's menu entry ("Python Code…").
    label: str
    #: What the editor's save dialog proposes after the model's name ("_train.py").
    suffix: str
    #: The save dialog's filter ("Python (*.py)"); None: the export is a directory.
    file_filter: str | None
    #: Writes the export.
    write: Writer
    #: Whether ``export --check`` loads the result in a fresh Python and compares it.
    checkable: bool
    #: Why it cannot run here (one sentence), or None when it can.
    unavailable: Callable[[], str | None] = lambda: None
    #: Whether ``export --quantize int8`` applies (the writer is given the quantised model).
    quantizable: bool = False

    @property
    def flag(self) -> str:
        return f"--{self.kind}"

    @property
    def dest(self) -> str:
        """The attribute argparse stores the flag's value under."""
        return self.kind.replace("-", "_")

    @property
    def is_directory(self) -> bool:
        return self.file_filter is None


def _write_text(path: Path, source: str) -> None:
    data = source.encode("utf-8")
    write_atomically(path, lambda handle: handle.write(data))


def _write_python(project: Project, path: Path, model: Any) -> None:
    from builder_app.exporters.python_code import python_source

    _write_text(path, python_source(project.graph))


def _write_keras(project: Project, path: Path, model: Any) -> None:
    from builder_app.exporters.saved_model import export_keras

    export_keras(project.graph, path, model=model)


def _write_savedmodel(project: Project, path: Path, model: Any) -> None:
    from builder_app.exporters.saved_model import export_savedmodel

    export_savedmodel(project.graph, path, model=model)


def _write_onnx(project: Project, path: Path, model: Any) -> None:
    from builder_app.exporters.onnx_export import export_onnx

    export_onnx(project.graph, path, model=model)


def _onnx_unavailable() -> str | None:
    from builder_app.exporters.onnx_export import INSTALL_HINT, onnx_available

    return (
        None if onnx_available() else f"ONNX export needs tf2onnx and onnxruntime: {INSTALL_HINT}"
    )


def _write_litert(project: Project, path: Path, model: Any) -> None:
    from builder_app.exporters.litert import export_litert

    export_litert(project.graph, path, model=model)


def _litert_unavailable() -> str | None:
    from builder_app.exporters.litert import litert_unavailable

    return litert_unavailable()


def _write_train_script(project: Project, path: Path, model: Any) -> None:
    from builder_app.exporters.train_script import training_script

    _write_text(path, training_script(project))


#: The exporters, in the order the command's help and the editor's menu list them.
EXPORTERS: dict[str, Exporter] = {
    e.kind: e
    for e in (
        Exporter(
            kind="python",
            help="Keras functional code",
            metavar="F.py",
            label="Python Code…",
            suffix=".py",
            file_filter="Python (*.py)",
            write=_write_python,
            checkable=True,
        ),
        Exporter(
            kind="keras",
            help="a .keras model with weights",
            metavar="F.keras",
            label=".keras Model…",
            suffix=".keras",
            file_filter="Keras model (*.keras)",
            write=_write_keras,
            checkable=True,
            quantizable=True,
        ),
        Exporter(
            kind="savedmodel",
            help="a TensorFlow SavedModel",
            metavar="DIR",
            label="SavedModel…",
            suffix="",
            file_filter=None,
            write=_write_savedmodel,
            checkable=True,
        ),
        Exporter(
            kind="onnx",
            help="an ONNX model",
            metavar="F.onnx",
            label="ONNX…",
            suffix=".onnx",
            file_filter="ONNX (*.onnx)",
            write=_write_onnx,
            checkable=True,
            unavailable=_onnx_unavailable,
        ),
        Exporter(
            kind="litert",
            help="a LiteRT (TensorFlow Lite) flatbuffer",
            metavar="F.tflite",
            label="LiteRT (.tflite)…",
            suffix=".tflite",
            file_filter="LiteRT model (*.tflite)",
            write=_write_litert,
            checkable=True,
            unavailable=_litert_unavailable,
            quantizable=True,
        ),
        Exporter(
            kind="train-script",
            help="a training script",
            metavar="F.py",
            label="Training Script…",
            suffix="_train.py",
            file_filter="Python (*.py)",
            write=_write_train_script,
            checkable=False,
        ),
    )
}


def exporter(kind: str) -> Exporter:
    """The exporter of a kind.

    Raises:
        KeyError: No exporter has that kind (the message lists those there are).
    """
    try:
        return EXPORTERS[kind]
    except KeyError:
        raise KeyError(f"unknown export {kind!r}: one of {', '.join(EXPORTERS)}") from None


def _sentence(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def flags_sentence() -> str:
    """``--python, --keras, ... or --train-script``: every flag, for messages."""
    return _sentence([e.flag for e in EXPORTERS.values()])


def help_sentence() -> str:
    """``Keras functional code, ... or a training script``: what can be exported."""
    return _sentence([e.help for e in EXPORTERS.values()])


def export(kind: str, project: Project, path: str | os.PathLike[str], *, model: Any = None) -> None:
    """Writes one export of ``project`` to ``path`` (atomically: a failure leaves the old file).

    Raises:
        KeyError: An unknown kind.
        OSError: The file cannot be written.
        ValueError: The model or its settings cannot be exported (``CodegenError``,
            ``SettingsError``, ``OnnxExportError``); the message names the layer or setting.
    """
    exporter(kind).write(project, Path(path), model)
