"""The exporter registry: one entry gives the command line its flag and the editor its menu entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder_app import cli
from builder_app.core.project import load_project
from builder_app.exporters import registry
from builder_app.exporters.registry import EXPORTERS, Exporter
from tests.editor_support import open_window

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"
pytestmark = pytest.mark.usefixtures("isolated")


def test_every_exporter_has_a_flag_and_a_menu_entry(qtbot, loader, tmp_path):
    parser = cli._parser()
    export = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["export"]
    flags = {option for action in export._actions for option in action.option_strings}
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    menu = [action.text() for action in window.actions_by_name.values()]
    for exporter in EXPORTERS.values():
        assert exporter.flag in flags
        assert window.actions_by_name[f"export_{exporter.kind}"].text() == exporter.label in menu
    assert registry.flags_sentence() == "--python, --keras, --savedmodel, --onnx, --litert or --train-script"


@pytest.fixture
def text_exporter(monkeypatch):
    """A new exporter, added as a new one is: one registry entry."""
    written = []

    def write(project, path, model):
        written.append(model)
        path.write_text(f"{project.graph.name}\n")

    entry = Exporter(
        kind="names",
        help="the model's name",
        metavar="F.txt",
        label="Model Name…",
        suffix=".txt",
        file_filter="Text (*.txt)",
        write=write,
        checkable=False,
    )
    monkeypatch.setitem(EXPORTERS, entry.kind, entry)
    return written


def test_a_new_entry_reaches_the_command_line(text_exporter, tmp_path, capsys):
    target = tmp_path / "name.txt"
    assert cli.main(["export", str(EXAMPLES / "iris_mlp.kproj"), "--names", str(target), "--check"]) == 0
    assert target.read_text() == "iris_mlp\n"
    assert capsys.readouterr().out.splitlines() == [f"wrote {target}"]  # not checkable: no check line
    assert text_exporter[0] is not None  # the command line's one model, shared by every export
    assert cli.main(["export", str(EXAMPLES / "iris_mlp.kproj")]) == 2
    assert "--train-script or --names" in capsys.readouterr().err


def test_a_new_entry_reaches_the_editor(text_exporter, qtbot, loader, tmp_path):
    window = open_window(qtbot, loader, load_project(EXAMPLES / "iris_mlp.kproj"))
    assert window.actions_by_name["export_names"].text() == "Model Name…"
    assert window.export_to("names", tmp_path / "n.txt")
    assert (tmp_path / "n.txt").read_text() == "iris_mlp\n"
    assert text_exporter == [None]  # the window lets the exporter build its model


def test_an_unavailable_exporter_says_why_in_one_line(monkeypatch, capsys, tmp_path):
    onnx = EXPORTERS["onnx"]
    monkeypatch.setitem(EXPORTERS, "onnx", Exporter(**{**onnx.__dict__, "unavailable": lambda: "no converter here"}))
    assert cli.main(["export", str(EXAMPLES / "iris_mlp.kproj"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err == "builder-app: no converter here\n"
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_kind():
    with pytest.raises(KeyError, match="unknown export 'pdf': one of python, keras"):
        registry.exporter("pdf")
