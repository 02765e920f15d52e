"""Autosave and crash recovery: a recovery file per open project, guarded by a lock.

Each window holds a :class:`RecoverySlot`: a recovery file in :func:`recovery_dir`
beside a ``QLockFile`` the window keeps locked while it runs. Autosave copies the
project on the GUI thread and writes the copy on a worker thread, so a big model
does not stall the window. After a crash no live process holds the lock, and
:func:`recoverable` finds the file; a second window editing the same file holds
its lock, so it is never mistaken for a crash.

A slot ``KEY`` is these files, and nothing else in the folder is ours:

* ``KEY.kproj``: the project as last autosaved (only while it has unsaved changes);
* ``KEY.json``: what the offer says (:class:`RecoveryOffer`): the file the project was
  edited from and when it was last edited. Written atomically *before* the project,
  so a crash between the two leaves it a few seconds newer, never missing or torn;
* ``KEY.lock``: the ``QLockFile`` of the window that owns the slot;
* ``.KEY.kproj.<hex>.tmp``, ``.KEY.json.<hex>.tmp``: an atomic write under way, or
  killed (:mod:`builder_app.core.atomic` names them);
* ``KEY.corrupt``: a recovery file that would not load, kept until the user discards it.

Which files go when (the rule: the only copy of unsaved work goes only when the user
says Discard, or once it is saved or back to what the project file holds):

* saved, back to clean (undo), Discard, or a clean exit: the slot's files, bar ``.corrupt``;
* Discard of a recovery offer: the slot's files, ``.corrupt`` too;
* :func:`sweep`, on start: temporary files no live writer holds, locks and ``.json``
  files without a project beside them and no live owner, and recovery files no live
  process owns that hold nothing the file they were edited from (or a new project)
  does not hold byte for byte.
"""

from __future__ import annotations

import copy
import filecmp
import hashlib
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from builder_app.core.atomic import clean_stale_temp_files, write_atomically
from builder_app.core.graph import ModelGraph
from builder_app.core.project import (
    PROJECT_SUFFIX,
    Project,
    ProjectLoadError,
    load_project,
    project_to_bytes,
    save_project,
)

META_FORMAT = "builder-app-recovery"
#: What an untitled project's offer calls it.
UNTITLED = "Untitled project"
_KEY_DIGEST = re.compile(r"(?P<stem>.+)-[0-9a-f]{12}")
#: The atomic writer's temporary files: ``.<target name>.<12 hex>.tmp``.
_TEMP_FILE = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{12}\.tmp")
_SLOT_SUFFIXES = (PROJECT_SUFFIX, ".json", ".lock")
#: Lock files this process holds: one that names this process's id but is not among
#: them was left by a killed process whose id this one reuses (as in containers).
_HELD: set[str] = set()


def recovery_dir() -> Path:
    """Where recovery files live (``BUILDER_APP_RECOVERY_DIR`` overrides it)."""
    override = os.environ.get("BUILDER_APP_RECOVERY_DIR")
    if override:
        return Path(override)
    base = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".builder-app") / "recovery"


def recovery_key(path: Path | None) -> str:
    """A recovery slot's name: the project file's stem and a digest of its path, or untitled and a random token.

    The name is never shown (the offer reads the slot's ``.json``); an untitled
    one is random so that a later process (which may get the same process id)
    never lands on a crashed one's slot.
    """
    if path is not None:
        digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
        return f"{Path(path).stem}-{digest}"
    return f"untitled-{secrets.token_hex(6)}"


def take_lock(lock_path: Path) -> QtCore.QLockFile | None:
    """Locks ``lock_path`` unless a live process (this one included) holds it; None if one does.

    A lock left by a dead process is taken over. So is one that names this very
    process but that this process does not hold: a killed process's, whose id was
    given to this one. Give it back with :func:`drop_lock`.
    """
    lock = QtCore.QLockFile(str(lock_path))
    lock.setStaleLockTime(0)  # never stale by age: only when its process is gone
    name = str(Path(lock_path).absolute())
    if not lock.tryLock(0):
        if lock.error() != QtCore.QLockFile.LockError.LockFailedError or name in _HELD:
            return None
        pid, host, _app = lock.getLockInfo()  # (0, "", "") when unreadable
        if not (pid == os.getpid() and host == QtCore.QSysInfo.machineHostName()):
            return None
        lock.removeStaleLockFile()
        if not lock.tryLock(0):
            return None
    _HELD.add(name)
    return lock


def drop_lock(lock: QtCore.QLockFile) -> None:
    """Gives a lock from :func:`take_lock` back (its file goes)."""
    _HELD.discard(str(Path(lock.fileName()).absolute()))
    lock.unlock()


def recoverable() -> list[Path]:
    """Recovery files left by windows that are no longer running (crashed)."""
    directory = recovery_dir()
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob(f"*{PROJECT_SUFFIX}")):
        lock = take_lock(path.with_suffix(".lock"))
        if lock is not None:  # nobody holds it: its window is gone
            drop_lock(lock)
            found.append(path)
    return found


@dataclass(frozen=True)
class RecoveryOffer:
    """What a recovery file holds, as the offer names it.

    Attributes:
        path: The recovery file.
        original: The project file the work was edited from; None if untitled.
        edited: When the work was last edited (to the autosave interval), in local time.
    """

    path: Path
    original: Path | None
    edited: datetime

    @property
    def name(self) -> str:
        """The project's file name, or :data:`UNTITLED`."""
        return self.original.name if self.original is not None else UNTITLED

    def text(self, now: datetime | None = None) -> str:
        """``digits_cnn.kproj, unsaved changes from 14:02`` (with the date when not today)."""
        now = now or datetime.now().astimezone()
        edited = self.edited.astimezone(now.tzinfo) if now.tzinfo else self.edited
        when = edited.strftime("%H:%M") if edited.date() == now.date() else edited.strftime("%Y-%m-%d %H:%M")
        return f"{self.name}, unsaved changes from {when}"


def read_offer(path: Path) -> RecoveryOffer:
    """The offer for the recovery file ``path``, from its ``.json`` (or, without one, its name and time)."""
    path = Path(path)
    meta = _read_meta(path)
    original = meta.get("original")
    edited = None
    if isinstance(meta.get("edited"), str):
        try:
            edited = datetime.fromisoformat(meta["edited"])
        except ValueError:
            edited = None
    if edited is None or edited.tzinfo is None:
        try:
            edited = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:
            edited = datetime.now(UTC)
    if "original" not in meta:  # no side file: what the slot's name tells
        match = _KEY_DIGEST.fullmatch(path.stem)
        if not path.stem.startswith("untitled-"):
            original = (match["stem"] if match else path.stem) + PROJECT_SUFFIX
    return RecoveryOffer(path, Path(original) if isinstance(original, str) and original else None, edited.astimezone())


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) and meta.get("format") == META_FORMAT else {}


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
    original = _read_meta(path).get("original")
    project.path = Path(original) if isinstance(original, str) and original else None
    return project


def discard(path: Path, *, corrupt: bool = False) -> None:
    """Removes a recovery file, its ``.json`` and killed writes of either; its ``.corrupt`` too if ``corrupt``.

    The project goes first: interrupted here, what is left (a ``.json`` alone) is
    swept on the next start, never offered. The lock is its holder's to give back.
    """
    path = Path(path)
    meta = path.with_suffix(".json")
    for target in (path, meta):
        target.unlink(missing_ok=True)
        clean_stale_temp_files(target)
    if corrupt:
        path.with_suffix(".corrupt").unlink(missing_ok=True)


def sweep() -> list[Path]:
    """Removes what no live window owns and no one could want back (see the module's rules).

    Never a recovery file that holds changes: those are offered. Never a ``.corrupt``.

    Returns:
        The files removed.
    """
    directory = recovery_dir()
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    removed: list[Path] = []
    for target in sorted({m["target"] for name in names if (m := _TEMP_FILE.fullmatch(name))}):
        removed += clean_stale_temp_files(directory / target)
    for name in names:  # QLockFile's guard while it removes a stale lock, left by a kill
        if name.endswith(".lock.rmlink") and (guard := take_lock(directory / name)) is not None:
            drop_lock(guard)
            removed.append(directory / name)
    keys = sorted({name[: -len(suffix)] for name in names for suffix in _SLOT_SUFFIXES
                   if name.endswith(suffix) and not name.startswith(".") and len(name) > len(suffix)})
    for key in keys:
        lock_path = directory / f"{key}.lock"
        had_lock = lock_path.exists()
        lock = take_lock(lock_path)
        if lock is None:  # a live window's slot (it may not have autosaved yet)
            continue
        try:
            project, meta = directory / f"{key}{PROJECT_SUFFIX}", directory / f"{key}.json"
            gone = []
            if not project.exists():
                gone = [meta] if meta.exists() else []
            elif _holds_no_changes(project):
                gone = [project] + ([meta] if meta.exists() else [])
            for path in gone:
                path.unlink(missing_ok=True)
            removed += gone
        except OSError:
            continue
        finally:
            drop_lock(lock)
        if had_lock:
            removed.append(lock_path)
    return removed


def _holds_no_changes(project: Path) -> bool:
    """True when the recovery file is byte for byte the file it was edited from (or a new project).

    Saving is deterministic (fixed zip timestamps), so equal bytes mean equal
    projects; anything else, an unreadable original included, counts as changes.
    """
    meta = _read_meta(project)
    if "original" not in meta and not project.stem.startswith("untitled-"):
        return False  # no side file: where it came from is unknown
    original = meta.get("original")
    try:
        if isinstance(original, str) and original:
            return filecmp.cmp(project, original, shallow=False)
        blank = project_to_bytes(Project(ModelGraph("model")))
        return project.stat().st_size == len(blank) and project.read_bytes() == blank
    except (OSError, ValueError):
        return False


class _GraphCopy:
    """A graph as :meth:`ModelGraph.clone` would copy it, in two halves.

    Made on the GUI thread: the graph's description (``to_dict``, a deep copy) and
    copies of its weights, which are all that may change after. :meth:`build`, on the
    autosave thread, makes the graph from them: the part of a clone that takes longest.
    """

    def __init__(self, graph: ModelGraph):
        self.data = graph.to_dict()
        self.weights = self._copy_weights(graph)

    @classmethod
    def _copy_weights(cls, graph: ModelGraph) -> dict[str, tuple]:
        copies: dict[str, tuple] = {}
        for name, layer in graph.layers.items():
            weights = [w.copy() for w in layer.weights] if layer.weights is not None else None
            assets = dict(layer.assets) if layer.assets is not None else None
            inner = cls._copy_weights(layer.submodel) if layer.submodel is not None else None
            copies[name] = (weights, assets, inner)
        return copies

    def build(self) -> ModelGraph:
        twin = ModelGraph.from_dict(self.data)
        self._give_weights(twin, self.weights)
        return twin

    @classmethod
    def _give_weights(cls, graph: ModelGraph, copies: dict[str, tuple]) -> None:
        for name, layer in graph.layers.items():
            weights, assets, inner = copies[name]
            layer.weights, layer.assets = weights, assets
            if inner is not None and layer.submodel is not None:
                cls._give_weights(layer.submodel, inner)


class RecoverySlot:
    """The recovery file of one open project, and its background writes."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._lock: QtCore.QLockFile | None = None
        self._thread: threading.Thread | None = None
        self._written: Any = -1
        #: The last background write's failure, until reported.
        self.error: str | None = None

    def claim(self, key: str, *, reuse: Path | None = None) -> None:
        """Takes a slot: ``reuse``'s (a recovery file being recovered), else ``key``, else a fresh untitled one.

        A slot another window holds is passed over, and so is one that holds a
        crashed window's work (a recovery file no live process owns): that stays
        for the offer, not overwritten nor removed by this window.
        """
        directory = recovery_dir()
        directory.mkdir(parents=True, exist_ok=True)
        names = ([Path(reuse).stem] if reuse is not None else []) + [key]
        names += [recovery_key(None) for _ in range(100)]
        for i, name in enumerate(names):
            path = directory / f"{name}{PROJECT_SUFFIX}"
            lock = take_lock(path.with_suffix(".lock"))
            if lock is None:  # another window edits this very file: it keeps the slot
                continue
            if path.exists() and not (reuse is not None and i == 0):
                drop_lock(lock)  # a crashed window's work, left for the offer
                continue
            self._lock, self.path = lock, path
            return
        raise OSError(f"no recovery file can be claimed in {directory}")  # pragma: no cover - 100 random names taken

    def release(self, *, keep: bool) -> None:
        """Gives the slot up; its files go unless ``keep`` (changes nobody saved nor discarded)."""
        self.wait()
        if self.path is not None and not keep:
            discard(self.path)
        if self._lock is not None:
            drop_lock(self._lock)
            self._lock = None
        self.path = None

    def clear(self, state: Any) -> None:
        """The project is back to what its file holds (``state``): its recovery file goes, the slot stays.

        Skipped while a write is under way (it is not waited for): the next call
        removes what it wrote.
        """
        if self.path is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._written = state
        if self.path.exists() or self.path.with_suffix(".json").exists():
            discard(self.path)

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
        # The copy taken here is the graph's description and its weights' copies; the
        # graph is built from them on the autosave thread (a ModelGraph.clone here held
        # the window 50-300 ms on ResNet50, the slowest frame after it opened).
        graph = _GraphCopy(project.graph)
        extra = (copy.deepcopy(project.training), copy.deepcopy(project.runs), dict(project.run_weights))
        original = str(Path(project.path).absolute()) if project.path else None
        edited = datetime.now(UTC).isoformat(timespec="seconds")
        meta = {"format": META_FORMAT, "original": original, "edited": edited, "pid": os.getpid()}
        self._written = state
        self._thread = threading.Thread(
            target=self._write_copy, args=(graph, extra, self.path, meta), name="autosave", daemon=True
        )
        self._thread.start()
        if wait:
            self._thread.join()
            return self.error is None
        return True

    def _write_copy(self, graph: _GraphCopy, extra: tuple, target: Path, meta: dict[str, Any]) -> None:
        """Runs on the autosave thread: builds the project from the copy, then writes it."""
        training, runs, run_weights = extra
        try:
            snapshot = Project(graph.build(), training, runs, run_weights=run_weights)
        except ValueError as exc:  # the graph was valid when copied: not expected
            self.error = f"Autosave failed: {exc}"
            self._written = -1
            return
        self._write(snapshot, target, meta)

    def _write(self, project: Project, target: Path, meta: dict[str, Any]) -> None:
        """Runs on the autosave thread: touches files only, never widgets.

        The ``.json`` first, each atomically: a recovery file never lacks the
        side file that names it.
        """
        try:
            text = json.dumps(meta, indent=1).encode("utf-8")
            write_atomically(target.with_suffix(".json"), lambda handle: handle.write(text))
            save_project(project, target)
            self.error = None
        except (OSError, ValueError) as exc:
            self.error = f"Autosave failed: {exc}"
            self._written = -1

    def wait(self) -> None:
        """Returns when a background write has finished."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
