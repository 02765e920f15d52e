"""The command line answers before importing TensorFlow wherever the answer does not need it.

Each test runs the real ``main`` in a fresh interpreter (``python -c``) that says
afterwards whether TensorFlow was imported: a usage error, ``--help``, ``--version``,
a missing, unreadable or unparsable file, an output path that cannot be written,
or a mistyped sub-command is answered in one line, naming the file by its full
path, with exit code 2 and without TensorFlow (a fraction of a second, where the
import takes seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

#: The sub-commands of DESIGN.md's contract that the command line has.
COMMANDS = ("validate", "summary", "export", "import", "train", "render", "gui", "sweep", "inspect")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "resources" / "examples" / "iris_mlp.kproj"

#: Runs the command line, then prints whether TensorFlow was imported (the last line of stdout).
PROBE = (
    "import sys; from builder_app.cli import main; code = main(sys.argv[1:]); "
    "print('tensorflow' in sys.modules); sys.exit(code)"
)


class Answer:
    def __init__(self, done: subprocess.CompletedProcess):
        lines = done.stdout.splitlines()
        assert lines and lines[-1] in ("True", "False"), done.stdout + done.stderr
        self.code = done.returncode
        self.out = "\n".join(lines[:-1])
        self.err = done.stderr
        self.tensorflow = lines[-1] == "True"

    @property
    def line(self) -> str:
        """The one line on stderr (asserting there is exactly one)."""
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        return lines[0]


def cli(*args: str | Path, cwd: Path, display: bool = True) -> Answer:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    if not display:
        for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
            env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )
    return Answer(done)


def refused(answer: Answer, path: Path, problem: str) -> None:
    """Exit 2, one line naming ``path`` in full and saying ``problem``, and no TensorFlow."""
    assert answer.code == 2, answer.err
    assert answer.line.startswith(f"builder-app: {path.resolve()}: "), answer.line
    assert problem in answer.line
    assert not answer.tensorflow


MISSING = {
    "validate": [],
    "summary": [],
    "export": ["--python", "out.py"],
    "render": ["--png", "out.png"],
    "train": ["--epochs", "1"],
    "gui": [],
}


@pytest.mark.parametrize("command", [*MISSING, "import", "bare"])
def test_a_missing_file_is_named_in_full_without_tensorflow(tmp_path, command):
    name = "missing.keras" if command == "import" else "missing.kproj"
    if command == "import":
        args = ["import", name, "-o", "out.kproj"]
    elif command == "bare":  # `builder-app missing.kproj` opens the editor: a file, not a command
        args = [name]
    else:
        args = [command, name, *MISSING[command]]
    answer = cli(*args, cwd=tmp_path)
    refused(answer, tmp_path / name, "cannot open the file (No such file or directory)")
    assert not (tmp_path / "out.kproj").exists() and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("command", ["validate", "export", "train", "import"])
def test_a_folder_instead_of_a_file(tmp_path, command):
    folder = tmp_path / "folder.kproj"
    folder.mkdir()
    extra = {"export": ["--python", "out.py"], "import": ["-o", "out.kproj"]}.get(command, [])
    answer = cli(command, "folder.kproj", *extra, cwd=tmp_path)
    refused(answer, folder, "is a folder, not a")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file(tmp_path):
    path = tmp_path / "locked.kproj"
    path.write_bytes(EXAMPLE.read_bytes())
    path.chmod(0)
    refused(cli("validate", path, cwd=tmp_path), path, "Permission denied")


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"not a zip at all", "not a project file"), (b"PK\x03\x04truncated", "not a project file"), (b"", "")],
    ids=["text", "truncated-zip", "empty"],
)
@pytest.mark.parametrize("command", ["validate", "summary", "render"])
def test_a_corrupt_project(tmp_path, content, problem, command):
    path = tmp_path / "bad.kproj"
    path.write_bytes(content)
    extra = ["--png", "out.png"] if command == "render" else []
    refused(cli(command, "bad.kproj", *extra, cwd=tmp_path), path, problem)


def project_of_format(path: Path, version: int) -> Path:
    document = {"format": "builder-app-project", "format_version": version, "graph": {}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("project.json", json.dumps(document))
    return path


@pytest.mark.parametrize("command", ["validate", "export", "train"])
def test_a_project_of_a_newer_format(tmp_path, command):
    path = project_of_format(tmp_path / "future.kproj", 99)
    extra = ["--keras", "m.keras"] if command == "export" else []
    answer = cli(command, path.name, *extra, cwd=tmp_path)
    refused(answer, path, "made by a newer version of builder-app (format 99;")
    assert not (tmp_path / "m.keras").exists()


def test_export_without_a_target(tmp_path):
    answer = cli("export", EXAMPLE, cwd=tmp_path)
    assert answer.code == 2 and not answer.tensorflow
    assert answer.line == (
        "builder-app: say what to export: --python, --keras, --savedmodel, --onnx, --litert or --train-script"
    )


@pytest.mark.parametrize(
    ("args", "option", "problem"),
    [
        (["export", EXAMPLE, "--keras", "nowhere/m.keras"], "--keras", "there is no folder"),
        (["export", EXAMPLE, "--python", "."], "--python", "is a folder, not a file"),
        (["export", EXAMPLE, "--savedmodel", "file.txt"], "--savedmodel", "is a file, not a folder"),
        (["render", EXAMPLE, "--svg", "nowhere/d.svg"], "--svg", "there is no folder"),
        (["train", EXAMPLE, "--save", "nowhere/m.keras"], "--save", "there is no folder"),
        (["import", EXAMPLE, "-o", "nowhere/p.kproj"], "-o", "there is no folder"),
    ],
    ids=["export-file", "export-folder", "savedmodel-file", "render", "train", "import"],
)
def test_an_output_that_cannot_be_written(tmp_path, args, option, problem):
    (tmp_path / "file.txt").write_text("x")
    answer = cli(*args, cwd=tmp_path)
    assert answer.code == 2 and not answer.tensorflow
    target = (tmp_path / args[-1]).resolve()
    assert answer.line.startswith(f"builder-app: {option} {target}: {problem}"), answer.line
    assert not (tmp_path / "nowhere").exists()


def test_bad_data_is_refused_before_tensorflow(tmp_path):
    answer = cli("train", EXAMPLE, "--data", "nothing.bin", cwd=tmp_path)
    assert answer.code == 2 and not answer.tensorflow
    assert answer.line.startswith("builder-app: unknown data 'nothing.bin'")


@pytest.mark.parametrize(
    "args",
    [
        ["train", "p.kproj", "--epochs", "0"],
        ["train", "p.kproj", "--batch-size", "many"],
        ["train", "p.kproj", "--learning-rate", "-1"],
        ["render", "p.kproj", "--png", "x.png", "--scale", "0"],
        ["validate"],
        ["export", "p.kproj", "--python"],
        ["import", "m.keras"],
    ],
    ids=["epochs", "batch-size", "learning-rate", "scale", "no-project", "no-value", "no-output"],
)
def test_a_usage_error_is_one_line(tmp_path, args):
    answer = cli(*args, cwd=tmp_path)
    assert answer.code == 2 and not answer.tensorflow
    assert answer.line.startswith(f"builder-app {args[0]}: ")
    assert answer.line.endswith(f"(see `builder-app {args[0]} --help`)")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("exprt", "unknown command 'exprt' (did you mean 'export'?)"),
        ("valdate", "unknown command 'valdate' (did you mean 'validate'?)"),
        ("trian", "unknown command 'trian' (did you mean 'train'?)"),
        ("frobnicate", "unknown command 'frobnicate' (the commands: validate, summary, export, import, "
         "train, render, gui, sweep, inspect; or give a project file)"),
    ],
)
def test_a_mistyped_command_is_named_with_a_suggestion(tmp_path, word, expected):
    answer = cli(word, "x.kproj", cwd=tmp_path)
    assert answer.code == 2 and not answer.tensorflow
    assert answer.line == f"builder-app: {expected}"


@pytest.mark.parametrize("path", ["exprt", "sub/model", "model.keras", "model.H5"])
def test_a_file_is_still_a_project_to_open(tmp_path, path):
    """An existing file, a path or a known suffix opens the editor (here: says there is no display)."""
    target = tmp_path / path
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(EXAMPLE.read_bytes())
    answer = cli(path, cwd=tmp_path, display=False)
    assert answer.code == 2 and not answer.tensorflow
    assert answer.line.startswith("builder-app: no display to open the editor on")


def test_version(tmp_path):
    answer = cli("--version", cwd=tmp_path)
    assert answer.code == 0 and not answer.tensorflow
    assert answer.out.startswith("builder-app ") and answer.err == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_without_tensorflow(tmp_path, command):
    answer = cli(command, "--help", cwd=tmp_path)
    assert answer.code == 0 and not answer.tensorflow and answer.err == ""
    assert answer.out.startswith(f"usage: builder-app {command}")
