"""Recovery without false alarms: what a clean exit, Discard and a kill -9 leave, and what is offered.

The windows here never load Keras (an unstarted loader): recovery is about files,
and the apps run in subprocesses start in about a second.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from builder_app.core import ops
from builder_app.core.atomic import write_atomically
from builder_app.core.graph import ModelGraph
from builder_app.core.project import Project, load_project, project_to_bytes, save_project
from builder_app.ui.editor import recovery
from builder_app.ui.editor.document import KerasLoader
from builder_app.ui.editor.files import settings
from builder_app.ui.editor.window import MainWindow

pytestmark = pytest.mark.usefixtures("isolated")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "resources" / "examples"
BUTTONS = QtWidgets.QMessageBox.StandardButton

APP = """
import os, sys, time
from pathlib import Path
from PySide6 import QtCore, QtWidgets
app = QtWidgets.QApplication(["builder-app"])
from builder_app.core import ops
from builder_app.core.project import Project, load_project
from builder_app.ui.editor import window as window_module
from builder_app.ui.editor.document import KerasLoader
from builder_app.ui.editor.window import MainWindow
window_module.AUTOSAVE_MS = {autosave_ms}
project_file = Path(sys.argv[1])
Discard = QtWidgets.QMessageBox.StandardButton.Discard
answer = QtWidgets.QMessageBox.StandardButton.{answer}

def start(project):
    window = MainWindow(project, loader=KerasLoader())
    window.ask_unsaved = lambda: Discard
    window.show()
    return window

def edit(window, name):
    graph = window.document.graph
    node = next(n for n in graph.nodes if graph.layer_of(n).class_name == "Dense")
    window.document.push(ops.RenameLayer(graph.node(node).layer, name), "rename")

def wait_for_autosave(window):  # the window's own timer writes it
    path = window.recovery.path
    while not (path.exists() and path.with_suffix(".json").exists()) or window.recovery._thread.is_alive():
        app.processEvents()
        time.sleep(0.02)
"""

# A user's session: an untitled model edited, then a project opened over it with
# Discard, edited too; then the app is quit, the user answering `answer`.
CLEAN_QUIT = """
window = start(Project(load_project(project_file).graph))
edit(window, "draft")
wait_for_autosave(window)
assert window.maybe_save()  # File > Open, "Discard"
assert window.open_path(project_file)
edit(window, "survivor")
wait_for_autosave(window)
windows = [window]
if {two_windows}:
    windows.append(start(Project(load_project(project_file).graph)))
    edit(windows[1], "second")
    wait_for_autosave(windows[1])
for each in windows:  # what the user answers when quitting
    each.ask_unsaved = lambda: answer
QtCore.QTimer.singleShot(0, {quit})
app.exec()
assert not any(w.isVisible() for w in windows)
print("quit cleanly", flush=True)
"""

# Edits a project, waits for the autosave, says so and waits to be killed.
EDIT_AND_WAIT = """
window = start(load_project(project_file))
edit(window, "survivor")
wait_for_autosave(window)
print("autosaved", flush=True)
while True:
    app.processEvents()
    time.sleep(0.05)
"""


def app_script(body: str, *, answer: str = "Discard", autosave_ms: int = 200, **fields) -> str:
    return textwrap.dedent(APP).format(autosave_ms=autosave_ms, answer=answer) + textwrap.dedent(body).format(**fields)


def app_env() -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "BUILDER_APP_RECOVERY_DIR": str(recovery.recovery_dir())}


def project_copy(tmp_path: Path, name: str = "iris_mlp.kproj") -> Path:
    target = tmp_path / "projects" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "iris_mlp.kproj", target)
    return target


def bare_window(qtbot, project: Project | None = None) -> MainWindow:
    """A shown window that never loads Keras; closing it discards."""
    window = MainWindow(project, loader=KerasLoader())
    window.ask_unsaved = lambda: BUTTONS.Discard
    qtbot.addWidget(window)
    window.show()
    return window


def edit(window: MainWindow, name: str) -> None:
    graph = window.document.graph
    node = next(n for n in graph.nodes if graph.layer_of(n).class_name == "Dense")
    window.document.push(ops.RenameLayer(graph.node(node).layer, name), "rename")


def leftovers() -> list[str]:
    directory = recovery.recovery_dir()
    return sorted(os.listdir(directory)) if directory.is_dir() else []


class Dialogs:
    """Answers the recovery question as a user would: reads the real box, clicks a button by its text."""

    def __init__(self, choice: str):
        self.choice = choice
        self.asked: list[tuple[str, list[Path]]] = []
        self._timer = QtCore.QTimer(interval=20)
        self._timer.timeout.connect(self._answer)
        self._timer.start()

    def _answer(self) -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        if not isinstance(box, QtWidgets.QMessageBox) or not box.isVisible():
            return
        # What another start would find while the question is open.
        self.asked.append((box.text(), recovery.recoverable()))
        buttons = {b.text().replace("&", ""): b for b in box.buttons()}
        (buttons.get(self.choice) or box.buttons()[-1]).click()

    def stop(self) -> None:
        self._timer.stop()


def offers_at_start(qtbot, choice: str = "Keep for Later") -> tuple[MainWindow, list[str]]:
    """A new start: a window, then its offers (the texts of the questions it asked)."""
    window = bare_window(qtbot)
    dialogs = Dialogs(choice)
    try:
        window.offer_recovery()
    finally:
        dialogs.stop()
    return window, [text for text, _others in dialogs.asked]


@pytest.mark.parametrize(
    ("answer", "two_windows", "quit"),
    [
        pytest.param("Discard", False, 'window.actions_by_name["quit"].trigger', id="ctrl-q-discard"),
        pytest.param("Save", False, 'window.actions_by_name["quit"].trigger', id="ctrl-q-save"),
        pytest.param("Discard", True, "app.quit", id="app-quit-two-windows"),
    ],
)
def test_a_clean_quit_leaves_nothing_to_offer(qtbot, tmp_path, answer, two_windows, quit):
    project_file = project_copy(tmp_path)
    script = app_script(CLEAN_QUIT, answer=answer, two_windows=two_windows, quit=quit)
    done = subprocess.run(
        [sys.executable, "-c", script, str(project_file)], env=app_env(), cwd=ROOT, capture_output=True, timeout=180
    )
    assert done.returncode == 0 and b"quit cleanly" in done.stdout, done.stderr.decode()[-3000:]
    assert leftovers() == []  # no autosave, no side file
    _window, offers = offers_at_start(qtbot)
    assert offers == []
    if answer == "Save":
        assert "survivor" in load_project(project_file).graph.layers


def _discard_by_new(window: MainWindow, project_file: Path) -> None:
    window.actions_by_name["new"].trigger()


def _discard_by_open_recent(window: MainWindow, project_file: Path) -> None:
    settings().setValue("recent", [str(project_file)])
    window._fill_recent()
    (action,) = [a for a in window.recent_menu.actions() if a.text() == str(project_file)]
    action.trigger()
    assert window.document.path == project_file


def _discard_by_closing(window: MainWindow, project_file: Path) -> None:
    assert window.close()


@pytest.mark.parametrize("gesture", [_discard_by_new, _discard_by_open_recent, _discard_by_closing], ids=["new", "open-recent", "close"])
@pytest.mark.parametrize("titled", [False, True], ids=["untitled", "titled"])
def test_discard_leaves_nothing_to_offer(qtbot, tmp_path, gesture, titled):
    project_file = project_copy(tmp_path)
    project = load_project(project_file) if titled else Project(load_project(project_file).graph)
    window = bare_window(qtbot, project)
    edit(window, "unwanted")
    assert window.autosave()
    autosave = window.recovery.path
    assert autosave.exists() and autosave.with_suffix(".json").exists()
    gesture(window, project_file)  # each asks Save / Discard / Cancel; the user says Discard
    assert not autosave.exists() and not autosave.with_suffix(".json").exists()
    assert [name for name in leftovers() if not name.endswith(".lock")] == []
    _second, offers = offers_at_start(qtbot)
    assert offers == []
    window.close()
    _second.close()
    assert leftovers() == []


def test_cancel_keeps_the_autosave_and_a_replaced_project_nobody_asked_about_is_offered(qtbot, tmp_path):
    project_file = project_copy(tmp_path)
    window = bare_window(qtbot, Project(load_project(project_file).graph))
    edit(window, "kept")
    assert window.autosave()
    autosave = window.recovery.path
    window.ask_unsaved = lambda: BUTTONS.Cancel
    window.actions_by_name["new"].trigger()
    assert autosave.exists() and "kept" in window.document.graph.layers
    window.open_path(project_file)  # replaced without a question (as a script may do)
    assert recovery.recoverable() == [autosave]  # it was nobody's decision: kept for the offer


def test_undoing_back_to_the_file_removes_its_autosave(qtbot, tmp_path):
    window = bare_window(qtbot, load_project(project_copy(tmp_path)))
    edit(window, "undone")
    assert window.autosave()
    autosave = window.recovery.path
    window.undo()
    assert not window.document.is_dirty
    window.autosave()
    assert not autosave.exists() and not autosave.with_suffix(".json").exists()
    edit(window, "again")
    assert window.autosave() and autosave.exists()


@pytest.mark.parametrize("choice", ["Recover", "Discard"])
def test_a_killed_app_is_offered_its_work_once(qtbot, tmp_path, choice):
    project_file = project_copy(tmp_path, "digits_cnn.kproj")
    started = datetime.now().astimezone().replace(microsecond=0)
    child = subprocess.Popen(
        [sys.executable, "-c", app_script(EDIT_AND_WAIT), str(project_file)],
        env=app_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        line = child.stdout.readline()
        assert line == b"autosaved\n", child.stderr.read().decode()[-3000:] if child.poll() is not None else line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
    killed = datetime.now().astimezone()
    assert child.returncode == -signal.SIGKILL
    (crashed,) = recovery.recoverable()
    offer = recovery.read_offer(crashed)
    assert offer.original == project_file
    assert started <= offer.edited <= killed

    window = bare_window(qtbot)
    dialogs = Dialogs(choice)
    try:
        window.offer_recovery()
    finally:
        dialogs.stop()
    assert len(dialogs.asked) == 1
    text, others_see = dialogs.asked[0]
    assert others_see == []  # locked while asked: a second start meanwhile does not offer it too
    named = text.splitlines()[-1]  # the project's name, never its slot's hash
    assert re.fullmatch(r"digits_cnn\.kproj, unsaved changes from (\d{4}-\d\d-\d\d )?\d\d:\d\d", named), text
    assert named == offer.text()

    if choice == "Recover":
        assert "survivor" in window.document.graph.layers and window.document.is_dirty
        assert window.document.path == project_file
        _again, offers = offers_at_start(qtbot)  # the window that took it runs: nothing to offer
        assert offers == []
        _again.close()
        assert window.close()  # Discard
    else:
        assert "survivor" not in window.document.graph.layers
        assert not crashed.exists()
    _next, offers = offers_at_start(qtbot)
    assert offers == []
    _next.close()
    window.close()
    assert leftovers() == []


def test_the_offer_names_the_project_and_the_time_of_its_last_edit(qtbot, tmp_path):
    today = datetime.now().astimezone()
    edited = today.replace(hour=14, minute=2, second=30, microsecond=0)
    titled = bare_window(qtbot, load_project(project_copy(tmp_path, "digits_cnn.kproj")))
    untitled = bare_window(qtbot, Project(load_project(EXAMPLES / "iris_mlp.kproj").graph))
    for window in (titled, untitled):
        edit(window, "edited")
        assert window.autosave()
    offer = recovery.read_offer(titled.recovery.path)
    assert offer.original == tmp_path / "projects" / "digits_cnn.kproj"
    stamped = recovery.RecoveryOffer(offer.path, offer.original, edited)
    assert stamped.text(now=edited + timedelta(hours=3)) == "digits_cnn.kproj, unsaved changes from 14:02"
    later = edited + timedelta(days=2)
    assert stamped.text(now=later) == f"digits_cnn.kproj, unsaved changes from {edited:%Y-%m-%d} 14:02"
    offer = recovery.read_offer(untitled.recovery.path)
    assert offer.original is None
    stamped = recovery.RecoveryOffer(offer.path, None, edited)
    assert stamped.text(now=edited) == "Untitled project, unsaved changes from 14:02"

    # A recovery file without its side file (an older version's): named from its slot, timed by the file.
    bare = recovery.recovery_dir() / "digits_cnn-0123456789ab.kproj"
    shutil.copy(EXAMPLES / "digits_cnn.kproj", bare)
    os.utime(bare, (edited.timestamp(), edited.timestamp()))
    assert recovery.read_offer(bare).text(now=edited) == "digits_cnn.kproj, unsaved changes from 14:02"


STALE = """
import os, sys
from pathlib import Path
from PySide6 import QtCore
from builder_app.core.atomic import write_atomically
directory = Path(sys.argv[1])
for name in sys.argv[2:]:  # locks a killed process leaves
    lock = QtCore.QLockFile(str(directory / name))
    assert lock.tryLock(0)

def killed_mid_write(handle):
    handle.write(b"half a project")
    handle.flush()
    os._exit(0)

write_atomically(directory / "crashed-aaaaaaaaaaaa.kproj", killed_mid_write)
"""


def test_stale_side_files_are_swept_and_work_is_not(qtbot, tmp_path):
    directory = recovery.recovery_dir()
    directory.mkdir(parents=True)
    original = project_copy(tmp_path)
    changed = load_project(original)
    node = next(n for n in changed.graph.nodes if changed.graph.layer_of(n).class_name == "Dense")
    ops.RenameLayer(changed.graph.node(node).layer, "survivor").apply(changed.graph)

    def slot(key: str, content: bytes | None, source: Path | None) -> None:
        meta = {"format": recovery.META_FORMAT, "original": str(source) if source else None, "edited": "2026-01-02T03:04:05+00:00"}
        write_atomically(directory / f"{key}.json", lambda h: h.write(__import__("json").dumps(meta).encode()))
        if content is not None:
            (directory / f"{key}.kproj").write_bytes(content)

    slot("orphan-meta-111111111111", None, original)  # killed between its side file and its first autosave
    slot("unchanged-222222222222", original.read_bytes(), original)  # killed right after a save
    slot("untitled-333333333333", project_to_bytes(Project(ModelGraph("model"))), None)  # a new project's
    save_project(changed, directory / "changed-444444444444.kproj")
    slot("changed-444444444444", None, original)
    (directory / "changed-444444444444.corrupt").write_bytes(b"damaged, kept for the user")
    (directory / "noside-555555555555.kproj").write_bytes(original.read_bytes())  # where from? unknown: kept
    dead_locks = [f"{key}.lock" for key in ("lockonly-666666666666", "orphan-meta-111111111111", "unchanged-222222222222", "untitled-333333333333", "changed-444444444444")]
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(STALE), str(directory), *dead_locks], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert any(name.startswith(".crashed-aaaaaaaaaaaa.kproj.") for name in leftovers())

    live = bare_window(qtbot, Project(load_project(original).graph))  # a running window: all of its slot stays
    edit(live, "live")
    assert live.autosave()
    held = recovery.take_lock(directory / "claimed-777777777777.lock")  # claimed, not autosaved yet
    writing = directory / ".busy-888888888888.kproj.0123456789ab.tmp"  # a save under way in a live process
    handle = open(writing, "wb")  # noqa: SIM115 - held open across the sweep
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
        window, offers = offers_at_start(qtbot)
        kept = set(leftovers())
    finally:
        handle.close()
        recovery.drop_lock(held)
    live_slot = {live.recovery.path.name, live.recovery.path.with_suffix(".json").name, live.recovery.path.with_suffix(".lock").name}
    fresh = {window.recovery.path.with_suffix(".lock").name}
    assert kept == live_slot | fresh | {
        "changed-444444444444.kproj", "changed-444444444444.json", "changed-444444444444.corrupt",
        "noside-555555555555.kproj", "claimed-777777777777.lock", writing.name,
    }
    named = sorted(text.splitlines()[-1].split(",")[0] for text in offers)
    assert named == ["iris_mlp.kproj", "noside.kproj"]  # the changed one, and one whose origin is unknown
