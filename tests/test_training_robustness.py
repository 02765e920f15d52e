"""Training robustness (issue 16): NaN runs never replace the weights, no orphaned training
process, output paths checked before training, damaged data in one line, Ctrl-C stops cleanly."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core.keras_model import build_keras_model, copy_weights_to_graph
from builder_app.core.project import load_project, save_project
from builder_app.training import data as app_data
from builder_app.training.data import DataError

EXAMPLES = Path(__file__).parents[1] / "resources" / "examples"
ROOT = Path(__file__).parents[1]


def trained_iris(tmp_path: Path) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """A copy of the iris example holding known, finite weights; those weights by layer."""
    project = load_project(EXAMPLES / "iris_mlp.kproj")
    copy_weights_to_graph(project.graph, build_keras_model(project.graph))
    path = tmp_path / "iris.kproj"
    save_project(project, path)
    weights = {n: [np.array(w) for w in layer.weights] for n, layer in project.graph.layers.items() if layer.weights}
    return path, weights


def same_weights(path: Path, weights: dict[str, list[np.ndarray]]) -> bool:
    graph = load_project(path).graph
    return all(
        all(np.array_equal(a, b) for a, b in zip(graph.layers[name].weights, values, strict=True))
        for name, values in weights.items()
    )


def nan_iris(tmp_path: Path) -> Path:
    """iris-shaped data whose inputs are NaN."""
    path = tmp_path / "nan.npz"
    x = np.full((60, 4), np.nan, dtype="float32")
    np.savez(path, x=x, y=np.arange(60) % 3)
    return path


# ---------------------------------------------------------------- 7: NaN runs
@pytest.mark.training
@pytest.mark.slow
@pytest.mark.parametrize("how", ["learning_rate", "nan_inputs"])
def test_a_nan_run_never_replaces_the_projects_weights(tmp_path, capsys, how):
    path, weights = trained_iris(tmp_path)
    extra = ["--learning-rate", "1e30"] if how == "learning_rate" else ["--data", str(nan_iris(tmp_path))]
    code = main(["train", str(path), "--epochs", "3", "--update-project", "--save", str(tmp_path / "t.keras"), *extra])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "training nan" in out
    assert same_weights(path, weights)  # the user's weights are still there
    updated = load_project(path)
    assert updated.runs[-1]["status"] == "nan"  # the run is in the history, its weights are not
    assert updated.runs[-1]["id"] not in updated.run_weights
    assert not (tmp_path / "t.keras").exists()
    assert "weights are unchanged" in err


@pytest.mark.training
@pytest.mark.slow
def test_a_nan_run_in_the_window_keeps_the_models_weights(qtbot, tmp_path):
    from builder_app.ui.training.window import TrainingWindow

    path, weights = trained_iris(tmp_path)
    window = TrainingWindow(load_project(path))
    qtbot.addWidget(window)
    window.data.setCurrentText(str(nan_iris(tmp_path)))
    window.epochs.setValue(3)
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as finished:
        window.start()
    assert finished.args[0]["status"] == "nan"
    graph = window.project.graph
    for name, values in weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(graph.layers[name].weights, values, strict=True))
    assert window.project.runs[-1]["status"] == "nan"
    assert window.project.runs[-1]["id"] not in window.project.run_weights
    window.close()


# ------------------------------------------------------ 11, 6: the processes
def start_cli(*args: str) -> tuple[subprocess.Popen, queue.Queue]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "builder_app.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: signals reach it and its child only
    )
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def wait_for(lines: queue.Queue, text: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout} s: {''.join(seen)[-2000:]}")


def training_children(parent: int) -> list[int]:
    """The spawned training processes of ``parent`` (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.training
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_training_child_ends_when_its_parent_is_killed(tmp_path):
    path, _ = trained_iris(tmp_path)
    process, lines = start_cli("train", str(path), "--epochs", "100000")
    children: list[int] = []
    try:
        wait_for(lines, "epoch 2:", 180)
        children = training_children(process.pid)
        assert len(children) == 1
        process.kill()  # SIGKILL: the parent gets no chance to end its child
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(children[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(children[0]), "the training child outlived its parent"
    finally:
        for pid in children:  # no orphans, whatever happened
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.training
@pytest.mark.slow
@pytest.mark.parametrize("target", ["group", "parent"])
def test_ctrl_c_stops_at_the_next_batch_and_keeps_the_promise(tmp_path, target):
    path, weights = trained_iris(tmp_path)
    process, lines = start_cli("train", str(path), "--epochs", "100000", "--update-project")
    children: list[int] = []
    try:
        wait_for(lines, "epoch 2:", 180)
        children = training_children(process.pid)
        if target == "group":  # what Ctrl-C in a terminal does
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        asked = time.monotonic()
        code = process.wait(timeout=30)
        took = time.monotonic() - asked
        rest = []
        while (line := lines.get(timeout=5)) is not None:
            rest.append(line)
        output = "".join(rest)
        assert code == 130, output
        assert took < 15, output
        assert "training stopped" in output and "KeyboardInterrupt" not in output and "Traceback" not in output
        assert f"updated {path}" in output
        updated = load_project(path)
        assert updated.runs[-1]["status"] == "stopped" and updated.runs[-1]["id"] in updated.run_weights
        assert not same_weights(path, weights)  # the weights trained so far
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()


# ------------------------------------------------------- 14a: output paths
@pytest.mark.parametrize("option", ["--metrics-out", "--save"])
@pytest.mark.parametrize("problem", ["missing_folder", "a_folder"])
def test_bad_output_paths_are_refused_before_training(tmp_path, capsys, option, problem):
    path, weights = trained_iris(tmp_path)
    target = tmp_path / "nowhere" / "out.csv" if problem == "missing_folder" else tmp_path
    started = time.monotonic()
    code = main(["train", str(path), "--epochs", "1", "--update-project", option, str(target)])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "training on" not in out  # refused before anything trained
    assert time.monotonic() - started < 20
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(target) in lines[0] and option in lines[0], err
    assert load_project(path).runs == [] and same_weights(path, weights)


# ------------------------------------------------------- 14b: damaged data
def damaged_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((10, 4), "float32"), y=np.zeros(10, "int64"))
    data = good.read_bytes()
    made = {}

    def put(name: str, content: bytes) -> None:
        made[name] = tmp_path / name
        made[name].write_bytes(content)

    put("truncated.npz", data[: len(data) // 2])
    put("empty.npz", b"")
    put("garbage.npz", b"not an archive at all " * 10)
    flipped = bytearray(data)
    flipped[200] ^= 0xFF
    put("flipped.npz", bytes(flipped))
    with zipfile.ZipFile(tmp_path / "member.npz", "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY garbage")
        archive.writestr("y.npy", b"")
    made["member.npz"] = tmp_path / "member.npz"
    np.savez(tmp_path / "text.npz", x=np.array([["a", "b", "c", "d"]] * 3), y=np.zeros(3, "int64"))
    made["text.npz"] = tmp_path / "text.npz"
    np.save(tmp_path / "x.npy", np.zeros((10, 4)))
    put("truncated_x.npy", (tmp_path / "x.npy").read_bytes()[:100])
    put("empty_x.npy", b"")
    np.save(tmp_path / "text_x.npy", np.array(["a", "b"]))
    made["text_x.npy"] = tmp_path / "text_x.npy"
    return made


RAW = ("BadZipFile", "EOFError", "Invalid dtype", "pickled", "Traceback", "zipfile", "CRC")


def test_damaged_data_files_give_one_line_naming_the_file(tmp_path):
    np.save(tmp_path / "y.npy", np.zeros(10, "int64"))
    for name, path in damaged_files(tmp_path).items():
        spec = (
            {"source": "npz", "path": str(path)}
            if name.endswith(".npz")
            else {"source": "npy", "x": str(path), "y": str(tmp_path / "y.npy")}
        )
        with pytest.raises(DataError) as caught:
            app_data.load(spec)
        message = str(caught.value)
        assert message.startswith(f"{name}: ") and "\n" not in message, message
        assert not any(raw in message for raw in RAW), message


def test_the_training_script_reads_damaged_data_as_the_app_does(tmp_path):
    import runpy

    from builder_app.exporters.train_script import training_script

    script = tmp_path / "train.py"
    script.write_text(training_script(load_project(EXAMPLES / "iris_mlp.kproj")))
    namespace = runpy.run_path(str(script), run_name="not_main")
    for name, path in damaged_files(tmp_path).items():
        if not name.endswith(".npz"):
            continue
        with pytest.raises(DataError) as app:
            app_data.load({"source": "npz", "path": str(path)})
        with pytest.raises(namespace["DataError"]) as script_error:
            namespace["read_npz"](path)
        assert str(script_error.value) == str(app.value)


@pytest.mark.training
@pytest.mark.slow
def test_the_train_command_says_which_data_file_is_damaged(tmp_path, capsys):
    path, weights = trained_iris(tmp_path)
    bad = damaged_files(tmp_path)["truncated.npz"]
    code = main(["train", str(path), "--data", str(bad), "--epochs", "1", "--update-project"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2)
    assert len(err) == 1 and "truncated.npz: " in err[0] and "BadZipFile" not in err[0], err
    assert same_weights(path, weights)
