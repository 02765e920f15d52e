"""Autosave and crash recovery: a recovery file per open project, guarded by a lock.

Each window holds a :class:`RecoverySlot`: a recovery file in :func:`recovery_dir`
beside a ``QLockFile`` the window keeps locked while it runs. Autosave copies the
project on the GUI thread and writes the copy on a worker thread, so a big model
does not stall the window. After a crash no live process holds the lock, and
:func:`recoverable` finds the file; a second window editing the same file holds
its lock, so it is never mistaken for a crash.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from builder_app.core.project import (
    PROJECT_SUFFIX,
    Project,
    ProjectLoadError,
    load_project,
    save_project,
)


def recovery_dir() -> Path:
    """Where recovery files live (``BUILDER_APP_RECOVERY_DIR`` overrides it)."""
    override = os.environ.get("BUILDER_APP_RECOVERY_DIR")
    if override:
        return Path(override)
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".builder-app") / "recovery"


def recovery_key(path: Path | None, owner: object) -> str:
    """The recovery file's name for a project: its file's stem and a digest of its path, or untitled."""
    if path is not None:
        digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
        return f"{Path(path).stem}-{digest}"
    return f"untitled-{os.getpid()}-{id(owner):x}"


def recoverable() -> list[Path]:
    """Recovery files left by windows that are no longer running (crashed)."""
    directory = recovery_dir()
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(f"*{PROJECT_SUFFIX}")):
        lock = QtCore.QLockFile(str(path.with_suffix(".lock")))
        lock.setStaleLockTime(0)
        if lock.tryLock(0):  # nobody holds it: its window is gone
            lock.unlock()
            found.append(path)
    return found


def load_recovered(path: Path) -> Project:
    """The project a recovery file holds, with the path of the file it was edited from.

    The recovery file is left in place: a crash before the recovered project is
    safe elsewhere must not lose it. The window hands it to its own slot
    (:meth:`RecoverySlot.adopt`), which removes it only once the project is written
    there. A damaged one is renamed ``.corrupt`` (kept for the user) and the error
    says so.

    Raises:
        ProjectLoadError: The file does not load.
    """
    try:
        project = load_project(path)
    except ProjectLoadError as exc:
        aside = path.with_suffix(".corrupt")
        path.replace(aside)
        raise ProjectLoadError(f"{exc} (moved to {aside.name})") from None
    meta = path.with_suffix(".json")
    try:
        original = json.loads(meta.read_text()).get("original")
    except (OSError, ValueError, AttributeError):
        original = None
    project.path = Path(original) if original else None
    return project


def discard(path: Path) -> None:
    """Removes a recovery file and its side file."""
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)


class RecoverySlot:
    """The recovery file of one open project, and its background writes."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._lock: QtCore.QLockFile | None = None
        self._thread: threading.Thread | None = None
        self._written: Any = -1
        #: The last background write's failure, until reported.
        self.error: str | None = None

    def claim(self, key: str, fallback: str) -> None:
        """Takes the slot ``key`` (or, when another window holds it, ``fallback``)."""
        directory = recovery_dir()
        directory.mkdir(parents=True, exist_ok=True)
        lock = QtCore.QLockFile(str(directory / f"{key}.lock"))
        lock.setStaleLockTime(0)
        if lock.tryLock(0):
            self._lock = lock
            self.path = directory / f"{key}{PROJECT_SUFFIX}"
        else:  # another window edits this very file: it keeps the recovery slot
            self._lock = None
            self.path = directory / f"{fallback}{PROJECT_SUFFIX}"
            other = QtCore.QLockFile(str(self.path.with_suffix(".lock")))
            if other.tryLock(0):
                self._lock = other

    def release(self, *, keep: bool) -> None:
        """Gives the slot up; its file is removed unless ``keep`` (changes nobody saved)."""
        self.wait()
        if self.path is not None and not keep:
            discard(self.path)
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None
        self.path = None

    def adopt(self, source: Path, project: Project, state: Any) -> bool:
        """Takes over the recovery file ``source`` that ``project`` (at ``state``) was recovered from.

        When ``source`` is this slot's own file it already holds the project and
        stays. Otherwise the project is written into this slot now, and ``source``
        is removed only once that write succeeded: at every moment one of the two
        files holds the recovered work. Returns False (``source`` kept, :attr:`error`
        says why) when the write failed.
        """
        if self.path is not None and Path(source).resolve() == self.path.resolve():
            self._written = state
            return True
        if self.path is None or not self.write(project, state, wait=True):
            if self.error is None:
                self.error = f"Autosave failed: no recovery file to keep {Path(source).name} in"
            return False
        discard(Path(source))
        return True

    def mark_written(self, state: Any) -> None:
        """Records that the project in ``state`` needs no autosave (just saved or opened)."""
        self._written = state

    def write(self, project: Project, state: Any, *, wait: bool) -> bool:
        """Writes a copy of ``project`` unless ``state`` (its undo position) was written already.

        Returns whether a write started (with ``wait``: whether it succeeded).
        """
        if self.path is None:
            return False
        if self._thread is not None and self._thread.is_alive():
            if not wait:
                return False
            self._thread.join()
        if state == self._written:
            return False
        snapshot = Project(
            project.graph.clone(), copy.deepcopy(project.training), copy.deepcopy(project.runs),
            run_weights=dict(project.run_weights),
        )
        original = str(project.path) if project.path else None
        self._written = state
        self._thread = threading.Thread(
            target=self._write, args=(snapshot, self.path, original), name="autosave", daemon=True
        )
        self._thread.start()
        if wait:
            self._thread.join()
            return self.error is None
        return True

    def _write(self, project: Project, target: Path, original: str | None) -> None:
        """Runs on the autosave thread: touches files only, never widgets."""
        try:
            save_project(project, target)
            target.with_suffix(".json").write_text(json.dumps({"original": original}))
            self.error = None
        except (OSError, ValueError) as exc:
            self.error = f"Autosave failed: {exc}"
            self._written = -1

    def wait(self) -> None:
        """Returns when a background write has finished."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
