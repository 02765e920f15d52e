"""Crash recovery: recovered work stays recoverable until it is autosaved or saved again."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from builder_app.core.project import load_project
from tests.editor_support import open_window

pytestmark = pytest.mark.usefixtures("isolated")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "resources" / "examples"
IRIS = EXAMPLES / "iris_mlp.kproj"

PRELUDE = """
import os
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
from builder_app.core import ops
from builder_app.core.project import Project, load_project
from builder_app.ui.editor.document import KerasLoader
from builder_app.ui.editor.window import MainWindow
"""

EDIT_AND_CRASH = """
project = load_project({iris!r})
if not {titled}:
    project = Project(project.graph)  # never saved: an untitled recovery slot
window = MainWindow(project, loader=KerasLoader())
graph = window.document.graph
node = next(n for n in graph.nodes if graph.layer_of(n).class_name == "Dense")
window.document.push(ops.RenameLayer(graph.node(node).layer, "survivor"), "rename")
assert window.autosave()
os._exit(9)  # a crash: no close, no cleanup
"""

RECOVER_AND_CRASH = """
window = MainWindow(loader=KerasLoader())
found = window.recoverable()
assert len(found) == 1, found
assert window.recover(found[0])
assert "survivor" in window.document.graph.layers
os._exit(9)  # crashes at once: long before the next autosave
"""


def crash(script: str, recovery: Path) -> None:
    env = {**os.environ, "BUILDER_APP_RECOVERY_DIR": str(recovery), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + script], env=env, cwd=ROOT, capture_output=True, timeout=180
    )
    assert done.returncode == 9, done.stderr.decode()[-2000:]


@pytest.mark.parametrize("titled", [True, False], ids=["saved-project", "untitled"])
def test_a_crash_right_after_recover_still_offers_the_work(qtbot, loader, tmp_path, titled):
    recovery = tmp_path / "recovery"
    crash(EDIT_AND_CRASH.format(iris=str(IRIS), titled=titled), recovery)
    crash(RECOVER_AND_CRASH, recovery)
    window = open_window(qtbot, loader)
    found = window.recoverable()
    assert len(found) == 1  # still there, once
    assert window.recover(found[0])
    assert "survivor" in window.document.graph.layers
    assert window.document.is_dirty
    assert window.document.path == (IRIS if titled else None)
    assert window.recoverable() == []  # this window holds it now


def test_recovered_work_is_kept_until_saved_and_then_removed(qtbot, loader, tmp_path):
    recovery = tmp_path / "recovery"
    crash(EDIT_AND_CRASH.format(iris=str(IRIS), titled=False), recovery)
    window = open_window(qtbot, loader)
    (found,) = window.recoverable()
    assert window.recover(found)
    kept = window.recovery.path
    assert kept.exists()  # the recovered project is in this window's slot already
    assert "survivor" in load_project(kept).graph.layers
    assert sorted(p.name for p in recovery.glob("*.kproj")) == [kept.name]  # the old file is gone
    saved = tmp_path / "saved.kproj"
    assert window.save_to(saved)
    assert not window.document.is_dirty
    window.close()
    assert list(recovery.glob("*.kproj")) == [] and list(recovery.glob("*.json")) == []


def test_reopening_the_crashed_project_neither_hides_nor_removes_its_recovery_file(qtbot, loader, tmp_path):
    """``builder-app iris_mlp.kproj`` after a crash: the same project's slot holds the crashed work."""
    recovery = tmp_path / "recovery"
    crash(EDIT_AND_CRASH.format(iris=str(IRIS), titled=True), recovery)
    (crashed,) = recovery.glob("*.kproj")
    reopened = open_window(qtbot, loader, load_project(IRIS))
    assert reopened.recoverable() == [crashed]  # still offered, not taken as this window's slot
    assert reopened.recovery.path != crashed
    reopened.close()  # a clean close removes this window's files only
    assert crashed.exists()
    window = open_window(qtbot, loader)
    assert window.recover(crashed)
    assert "survivor" in window.document.graph.layers


def test_a_lock_naming_this_process_but_not_held_by_it_is_a_crash(qtbot, loader, tmp_path):
    """A killed process's id given to this one (as in a container): its lock is stale all the same."""
    from PySide6 import QtCore

    recovery = tmp_path / "recovery"
    crash(EDIT_AND_CRASH.format(iris=str(IRIS), titled=True), recovery)
    (crashed,) = recovery.glob("*.kproj")
    mine = QtCore.QLockFile(str(tmp_path / "mine.lock"))
    assert mine.tryLock(0)
    crashed.with_suffix(".lock").write_bytes((tmp_path / "mine.lock").read_bytes())  # names this process
    mine.unlock()
    window = open_window(qtbot, loader)
    assert window.recoverable() == [crashed]
    assert window.recover(crashed)
    assert window.recoverable() == []  # now this window holds it
