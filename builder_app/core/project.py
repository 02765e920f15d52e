"""The project file: one zip holding the graph, the training setup, the run history and weights.

A project file (``.kproj``) is a zip archive in the spirit of Keras's own
``.keras`` files (the JSON deflated, the weights stored). It holds:

* ``project.json``: ``{"format": "builder-app-project", "format_version": 2,
  "app_version": ..., "graph": ModelGraph.to_dict(), "training": {...},
  "runs": [...], "weights": {"file": "model.weights.h5"},
  "run_weights": {"<run id>": {"file": "runs/<run id>.weights.h5"}, ...}}``
  (``weights`` only when the archive has weights, ``run_weights`` only when it
  keeps some run's weights), indented so that a person can read and diff it.
* ``model.weights.h5``, when any layer holds weights: HDF5 in the layout of Keras's
  ``model.save_weights("x.weights.h5")``: ``layers/<layer>/vars/0``, ``.../1``, ...
  and, for the layers of a sub-model, ``layers/<sub-model>/layers/<layer>/vars/...``.
  Unlike Keras 3 (which names groups after the class, ``dense_1``), groups are
  named after the layer, so weights are matched to layers by name. A layer whose
  ``weights`` is None has no group; an empty list is an empty ``vars`` group.
* ``runs/<run id>.weights.h5`` (format 2): the weights a finished run left, in the
  same layout, one member per run that keeps them. They are checked like the
  model's weights when the file opens, but not matched to the graph, which may
  have changed since: :func:`restore_run` does that. While a project is open each
  is kept in a private temporary file (:class:`RunWeights`), not in memory.

Saving is atomic: the archive is written to a temporary file beside the target,
synced, then renamed over it, so an interrupted save leaves the previous file
byte-identical. A killed process can leave its temporary file behind; the next
save of that target removes it (see :func:`clean_stale_temp_files`).

Loading never executes anything from the file: it reads JSON and plain numeric
HDF5 datasets only, under the ``MAX_*`` limits below, and every failure is one
:class:`ProjectLoadError` whose one-line message names the file. Older format
versions are upgraded by the functions in :data:`MIGRATIONS`; newer or unknown
versions are refused before anything else is read.

Format history: 1, the graph, the settings, the run history and the model's
weights; 2, each run's weights too (``runs/``, ``run_weights``), and every run
record has an ``id``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import stat
import struct
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import h5py
import numpy as np

from builder_app import __version__ as APP_VERSION
from builder_app.core import safe_io
from builder_app.core.graph import GraphError, Layer, ModelGraph
from builder_app.core.safe_io import GIB as _GIB
from builder_app.core.safe_io import KIB as _KIB
from builder_app.core.safe_io import MIB as _MIB
from builder_app.core.safe_io import Refused as _Refusal
from builder_app.core.safe_io import h5_children as _children
from builder_app.core.safe_io import read_h5_dataset as _read_dataset
from builder_app.core.safe_io import size_text as _size

try:  # POSIX: a live writer holds a lock on its temporary file.
    import fcntl
except ImportError:  # pragma: no cover - Windows: an open file cannot be deleted anyway
    fcntl = None  # type: ignore[assignment]

FORMAT_MARKER = "builder-app-project"
#: The format this version writes; it reads this one and every one in MIGRATIONS.
FORMAT_VERSION = 2
PROJECT_SUFFIX = ".kproj"
PROJECT_MEMBER = "project.json"
WEIGHTS_MEMBER = "model.weights.h5"
_KNOWN_MEMBERS = (PROJECT_MEMBER, WEIGHTS_MEMBER)
#: A run id as the weights of a run use it: it names the run's member.
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RUN_MEMBER = re.compile(r"runs/([A-Za-z0-9_-]{1,64})\.weights\.h5")

# Limits on what loading accepts (read at call time, so tests can lower them).
# Saving refuses to write a file that loading would refuse.
#: Size of the whole project file.
MAX_PROJECT_BYTES = 2 * _GIB
#: Runs whose weights one project keeps. While the project is open each one is
#: a private temporary file, so an open file descriptor (macOS allows a process
#: 256 by default); past this, :func:`record_run` lets the oldest runs' weights go.
MAX_RUN_WEIGHTS = 64
#: Members in the archive: project.json, model.weights.h5, one per kept run, and
#: a few spare so that a stray member is named in the message rather than counted.
#: 80 directory entries take about 12 KiB, well within MAX_CENTRAL_DIRECTORY_BYTES.
MAX_MEMBERS = 2 + MAX_RUN_WEIGHTS + 14
#: Size of the zip central directory: bounds what zipfile parses before we look.
MAX_CENTRAL_DIRECTORY_BYTES = 64 * _KIB
#: Uncompressed size of project.json.
MAX_JSON_BYTES = 64 * _MIB
#: Nesting of project.json (a sub-model adds four levels).
MAX_JSON_DEPTH = 128
#: Uncompressed size of model.weights.h5 (and of one run's weights).
MAX_WEIGHTS_BYTES = 2 * _GIB
#: Uncompressed size of all weights members together: what opening a file may
#: write to temporary files. Weights are stored, not deflated, so this is also
#: about the most the weights of a file this version writes can take.
MAX_ALL_WEIGHTS_BYTES = 2 * _GIB
#: Sub-models nested in a run's weights (project.json allows 32: four levels each).
MAX_RUN_WEIGHTS_DEPTH = 32
#: Groups and datasets in model.weights.h5.
MAX_H5_OBJECTS = 100_000
#: Elements of one weight array.
MAX_WEIGHT_ELEMENTS = 1 << 31

_CHUNK = safe_io.CHUNK
_BFLOAT16 = safe_io.BFLOAT16
# Fixed member timestamps: saving the same project twice gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_JSON_LEVEL = 9
_TEMP_NAME_KEEP = 200  # of the target's name in its temp name, under NAME_MAX
_TEMP_TOKEN_HEX = 12
_DOC_KEYS = frozenset(
    {"format", "format_version", "app_version", "graph", "training", "runs", "weights", "run_weights"}
)


class ProjectLoadError(Exception):
    """A project file cannot be opened. The one-line message names the file and says why."""


class ProjectSaveError(ValueError):
    """A project cannot be written as it is (the target file is left untouched)."""


class RunError(ValueError):
    """A run cannot be restored or deleted as asked; the one-line message says why."""


@dataclass
class Project:
    """Everything a project file holds.

    Attributes:
        graph: The model, with its layers' weights.
        training: Free-form training settings (JSON-able).
        runs: The run history, one JSON-able dict per run; a run's ``"id"`` names it.
        path: Where the project was last loaded from or saved to.
        run_weights: The weights each finished run left, by run id (a run's
            ``"id"``, matching :data:`RUN_ID`). See :func:`record_run`,
            :func:`restore_run` and :func:`delete_run`.
    """

    graph: ModelGraph
    training: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    run_weights: dict[str, RunWeights] = field(default_factory=dict)


class RunWeights:
    """The weights one run left, kept in a private temporary HDF5 file, not in memory.

    A project may keep the weights of dozens of runs of a large model, and they
    are needed only to restore one run or to save the project; until then they
    cost disk, not memory. The file is in the layout of ``model.weights.h5``
    (labels: ``layer`` or ``sub-model/layer``) and was checked when it was made or
    read from a project file; :meth:`arrays` reads it through the same checks.
    An instance never changes, so copies of a project share it; its file goes
    when the last reference does (or at :meth:`close`).
    """

    def __init__(self, handle: IO[bytes], nbytes: int):
        """Takes over ``handle``, an anonymous temporary file holding checked HDF5 weights."""
        self._file = handle
        self._lock = threading.Lock()  # one reader at a time: they share the file position
        #: Size of the HDF5 file in bytes (what the run adds to a project file).
        self.nbytes = nbytes

    @classmethod
    def from_graph(cls, graph: ModelGraph) -> RunWeights:
        """The weights ``graph``'s layers hold now (sub-models' included).

        Raises:
            ProjectSaveError: A weight could not be saved (not numeric, too large).
        """
        total = 0
        for label, layer in _walk_layers(graph):
            for i, value in enumerate(layer.weights or ()):
                total += _checked_weight(value, label, i).nbytes
        if total > MAX_WEIGHTS_BYTES:
            raise ProjectSaveError(f"the weights take {_size(total)}; a run keeps at most {_size(MAX_WEIGHTS_BYTES)}")
        handle = tempfile.TemporaryFile()
        try:
            with h5py.File(handle, "w") as h5:
                _write_layers(h5.create_group("layers"), graph)
            size = handle.seek(0, io.SEEK_END)
        except BaseException:
            handle.close()
            raise
        return cls(handle, size)

    def arrays(self) -> dict[str, list[np.ndarray]]:
        """Every layer's weights, by label (``dense`` or ``head/dense``), read now."""
        return self._walk(read=True)

    def shapes(self) -> dict[str, list[tuple[int, ...]]]:
        """Every layer's weight shapes, by label, without reading the weights."""
        return self._walk(read=False)

    def write_to(self, write: Callable[[bytes], Any]) -> None:
        """Streams the HDF5 file's bytes into ``write``."""
        with self._lock:
            self._file.seek(0)
            while chunk := self._file.read(_CHUNK):
                write(chunk)

    def close(self) -> None:
        """Removes the temporary file now (it goes with the object anyway).

        Only for an instance nothing else holds: copies of a project share it.
        """
        with self._lock:
            self._file.close()

    def _walk(self, *, read: bool) -> dict[str, Any]:
        with self._lock:
            self._file.seek(0)
            return _walk_run_file(self._file, self.nbytes, "the run's weights", read=read)

    def __copy__(self) -> RunWeights:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RunWeights:
        return self

    def __repr__(self) -> str:
        return f"<RunWeights {_size(self.nbytes)}>"


def run_weights_member(run_id: str) -> str:
    """The archive member holding a run's weights."""
    return f"runs/{run_id}.weights.h5"


def new_run_id(project: Project) -> str:
    """An id no run of ``project`` has: ``run-<n>``, n one more than the highest so far.

    Ids only grow, so a deleted run's id (and its label) is never given again.
    """
    highest = len(project.runs)
    for record in project.runs:
        match = re.fullmatch(r"run-(\d{1,9})", str(record.get("id", "")))
        if match:
            highest = max(highest, int(match.group(1)))
    return f"run-{highest + 1}"


def run_label(record: dict[str, Any], index: int) -> str:
    """How a person sees a run: ``run 3`` for the id ``run-3``, else its id, else its place."""
    run_id = record.get("id")
    match = re.fullmatch(r"run-(\d+)", str(run_id))
    if match:
        return f"run {int(match.group(1))}"
    return str(run_id) if run_id is not None else f"run {index + 1}"


def record_run(project: Project, record: dict[str, Any], trained: ModelGraph | None = None) -> list[str]:
    """Appends a finished run to the history and keeps the weights it left.

    The record gets an ``"id"`` (:func:`new_run_id`) unless it has one. A project
    keeps the weights of at most :data:`MAX_RUN_WEIGHTS` runs, all of them within
    what a project file holds (:data:`MAX_ALL_WEIGHTS_BYTES`, the model's own
    weights included): the oldest runs' weights are let go to make room (their
    records stay).

    Args:
        project: The project; its history and run weights change.
        record: The run's record (settings, metrics, duration, device...).
        trained: The graph holding the weights the run left; None keeps none.

    Returns:
        The ids of the runs whose weights were let go: the new run's own when
        its weights alone do not fit beside the model's.

    Raises:
        RunError: The record's id is already in the history, or is not a valid id
            while weights are to be kept.
        ProjectSaveError: The trained weights could not be saved (not numeric).
    """
    run_id = record.setdefault("id", new_run_id(project))
    if any(other.get("id") == run_id for other in project.runs):
        raise RunError(f"the run history already has a run {run_id!r}")
    if trained is not None and not (isinstance(run_id, str) and RUN_ID.fullmatch(run_id)):
        raise RunError(f"a run id is 1 to 64 letters, digits, '_' or '-', not {str(run_id)[:80]!r}")
    project.runs.append(record)
    if trained is None or not _holds_weights(trained):
        return []
    project.run_weights[run_id] = RunWeights.from_graph(trained)
    dropped: list[str] = []
    model_bytes = sum(_array_bytes(layer.weights) for _, layer in _walk_layers(project.graph))
    while project.run_weights and (
        len(project.run_weights) > MAX_RUN_WEIGHTS
        or model_bytes + sum(w.nbytes for w in project.run_weights.values()) > MAX_ALL_WEIGHTS_BYTES
    ):
        oldest = next(iter(project.run_weights))  # kept in the order the runs finished
        # Dropped, not closed: a copy of the project (an autosave) may be writing it.
        del project.run_weights[oldest]
        dropped.append(oldest)
    return dropped


def delete_run(project: Project, run_id: Any) -> dict[str, Any]:
    """Removes a run from the history, its weights with it; returns its record.

    Raises:
        RunError: No run has that id.
    """
    for index, record in enumerate(project.runs):
        if record.get("id") == run_id:
            del project.runs[index]
            if isinstance(run_id, str):
                # Dropped, not closed: its file goes with the last copy of the project holding it.
                project.run_weights.pop(run_id, None)
            return record
    raise RunError(f"there is no run {run_id!r} in the history")


def restore_run(project: Project, run_id: str) -> list[str]:
    """Gives the graph's layers the weights run ``run_id`` left (all of them, or none).

    The run's layers must still be there, by name, with weights of the same
    shapes; a layer that holds weights now must have been in the run. Layers
    without weights now take the run's as they are (building the model checks
    them against the layer's configuration). This is not an edit of the model:
    it is outside the undo history, and the caller marks the project changed.

    Returns:
        The labels of the layers that got weights.

    Raises:
        RunError: The run keeps no weights, or they no longer fit the model; the
            one-line message names the layer.
    """
    weights = project.run_weights.get(run_id) if isinstance(run_id, str) else None
    if weights is None:
        known = any(record.get("id") == run_id for record in project.runs)
        raise RunError(f"run {run_id!r} {'kept no weights' if known else 'is not in the history'}")
    try:
        arrays = weights.arrays()
    except _Refusal as exc:  # the temporary file was damaged under us
        raise RunError(f"the weights of run {run_id!r} cannot be read: {exc}") from None
    layers = dict(_walk_layers(project.graph))
    plan: list[tuple[str, Layer, list[np.ndarray]]] = []
    for label, values in arrays.items():
        layer = layers.get(label)
        if layer is None:
            raise RunError(f"run {run_id!r} cannot be restored: the model has no layer '{label}' any more")
        if layer.submodel is not None:
            if values:
                raise RunError(f"run {run_id!r} cannot be restored: layer '{label}' is a sub-model now")
            continue
        if layer.weights is not None:
            now = [tuple(np.shape(w)) for w in layer.weights]
            then = [tuple(v.shape) for v in values]
            if now != then:
                raise RunError(
                    f"run {run_id!r} cannot be restored: layer '{label}' has weights of shapes "
                    f"{_shapes_text(now)} now, the run's are {_shapes_text(then)}"
                )
        plan.append((label, layer, values))
    for label, layer in layers.items():
        if layer.submodel is None and layer.weights and label not in arrays:
            raise RunError(f"run {run_id!r} cannot be restored: layer '{label}' was not in the model of that run")
    for _, layer, values in plan:
        layer.weights = values
    return [label for label, _, _ in plan]


def _shapes_text(shapes: list[tuple[int, ...]]) -> str:
    return "[" + ", ".join("(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")" for s in shapes) + "]"


def _array_bytes(weights: list[Any] | None) -> int:
    return sum(np.asarray(w).nbytes for w in weights or ())


def _v1_to_v2(document: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: runs keep their weights from now on; a format-1 file has none.

    Every run record gets an ``id`` (``run-1``, ``run-2``... by place, skipping
    ids taken), so that a run can be named: restored, deleted, compared.
    """
    if "run_weights" in document:
        raise ValueError("a format-1 file holds no 'run_weights'")
    runs = document.get("runs")
    if isinstance(runs, list):
        taken = {str(record.get("id")) for record in runs if isinstance(record, dict) and "id" in record}
        number = 0
        for record in runs:
            if isinstance(record, dict) and "id" not in record:
                number += 1
                while f"run-{number}" in taken:
                    number += 1
                record["id"] = f"run-{number}"
    return document


#: Version v -> function upgrading a format-v document (parsed project.json) to v + 1.
#: Loading applies them in order; the result always gets ``format_version = v + 1``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


# =================================================================== saving
def save_project(project: Project, path: str | os.PathLike[str]) -> None:
    """Writes a project file atomically and sets ``project.path``.

    The graph is stored as it is (shape errors and all); only what loading would
    refuse (unreadable structure, non-numeric weights, sizes over the limits) is
    refused. A symbolic link is followed: the file it points at is replaced.

    Args:
        project: The project to write.
        path: The target file; its permissions are kept if it exists.

    Raises:
        ProjectSaveError: The project cannot be written; the target is untouched.
        OSError: Writing failed; the target is untouched.
    """
    json_bytes, has_weights, runs = _encode(project)
    target = Path(os.path.realpath(os.fspath(path)))
    clean_stale_temp_files(target)
    write_atomically(target, lambda handle: _write_archive(handle, json_bytes, project.graph, has_weights, runs))
    project.path = Path(path)


def project_to_bytes(project: Project) -> bytes:
    """The bytes :func:`save_project` would write."""
    json_bytes, has_weights, runs = _encode(project)
    buffer = io.BytesIO()
    _write_archive(buffer, json_bytes, project.graph, has_weights, runs)
    return buffer.getvalue()


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Writes a file through a temporary file beside it, so it is never half-written.

    ``write`` fills the temporary file, which is then flushed, synced to disk and
    renamed over ``path``. On any exception, KeyboardInterrupt included, the
    temporary file is removed, ``path`` is left as it was and the exception
    propagates. The temporary file is named ``.<name>.<random>.tmp``.
    """
    target = Path(path)
    tmp_path, handle = _open_temp(target)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    _fsync_directory(target.parent)


def clean_stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Removes temporary files that killed saves of ``path`` left behind.

    Only files named like this module's temporary files for that target are
    touched, and (on POSIX) only when no live process holds their lock, so a
    save running in another process is not disturbed.

    Returns:
        The files removed.
    """
    target = Path(os.path.realpath(os.fspath(path)))
    pattern = re.compile(re.escape(_temp_prefix(target)) + f"[0-9a-f]{{{_TEMP_TOKEN_HEX}}}\\.tmp")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        with contextlib.suppress(OSError):
            if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            if _held_by_live_writer(entry.path):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _temp_prefix(target: Path) -> str:
    return f".{target.name[:_TEMP_NAME_KEEP]}."


def _open_temp(target: Path) -> tuple[Path, IO[bytes]]:
    """Creates and locks a fresh temporary file beside ``target``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp_path = target.parent / f"{_temp_prefix(target)}{secrets.token_hex(_TEMP_TOKEN_HEX // 2)}.tmp"
        try:
            # 0o666 less the umask, as for any new file; an existing target's
            # permissions are copied below.
            fd = os.open(tmp_path, flags, 0o666)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"cannot create a temporary file beside {target}")
    try:
        handle = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(tmp_path)
        raise
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):  # a file system without locks
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, stat.S_IMODE(os.stat(target).st_mode))
    except BaseException:
        handle.close()
        os.unlink(tmp_path)
        raise
    return tmp_path, handle


def _held_by_live_writer(path: str) -> bool:
    if fcntl is None:  # pragma: no cover - Windows refuses to delete an open file
        return False
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no locks on this file system: nothing to tell a live writer by
    finally:
        os.close(fd)  # releases our lock too
    return False


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable; not possible (nor needed) everywhere."""
    if os.name == "nt":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _encode(project: Project) -> tuple[bytes, bool, list[tuple[str, RunWeights]]]:
    """project.json's bytes, whether the archive gets a weights file, and the runs' weights.

    Everything that could make the file unreadable is checked here, before the
    target is touched.
    """
    if not isinstance(project.training, dict):
        raise ProjectSaveError(f"training settings must be a dict, not {type(project.training).__name__}")
    if not isinstance(project.runs, list) or not all(isinstance(r, dict) for r in project.runs):
        raise ProjectSaveError("the run history must be a list of dicts")
    graph_dict = project.graph.to_dict()
    try:
        # The graph is saved as it is, but it must read back; graphs edited only
        # through builder_app.core.ops always do.
        ModelGraph.from_dict(graph_dict)
    except GraphError as exc:
        raise ProjectSaveError(f"the graph could not be read back: {exc}") from None
    weight_bytes = 0
    has_weights = False
    for label, layer in _walk_layers(project.graph):
        if layer.weights is None:
            continue
        has_weights = True
        for i, value in enumerate(layer.weights):
            weight_bytes += _checked_weight(value, label, i).nbytes
    if weight_bytes > MAX_WEIGHTS_BYTES:
        raise ProjectSaveError(
            f"the weights take {_size(weight_bytes)}; a project file holds at most {_size(MAX_WEIGHTS_BYTES)}"
        )
    runs = _checked_run_weights(project)
    all_bytes = weight_bytes + sum(weights.nbytes for _, weights in runs)
    if all_bytes > MAX_ALL_WEIGHTS_BYTES:
        raise ProjectSaveError(
            f"the weights of the model and of {len(runs)} runs take {_size(all_bytes)}; a project file holds at "
            f"most {_size(MAX_ALL_WEIGHTS_BYTES)}: delete earlier runs"
        )
    document: dict[str, Any] = {
        "format": FORMAT_MARKER,
        "format_version": FORMAT_VERSION,
        "app_version": APP_VERSION,
        "graph": graph_dict,
        "training": project.training,
        "runs": project.runs,
    }
    if has_weights:
        document["weights"] = {"file": WEIGHTS_MEMBER}
    if runs:
        document["run_weights"] = {run_id: {"file": run_weights_member(run_id)} for run_id, _ in runs}
    try:
        try:
            text = json.dumps(document, indent=1, ensure_ascii=False, default=_json_default)
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escape everything instead
            data = json.dumps(document, indent=1, default=_json_default).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProjectSaveError(f"the project holds data JSON cannot store: {exc}") from None
    if len(data) > MAX_JSON_BYTES:
        raise ProjectSaveError(f"project.json would take {_size(len(data))}; the limit is {_size(MAX_JSON_BYTES)}")
    if safe_io.json_depth(json.loads(data), MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ProjectSaveError(f"the project is nested more than {MAX_JSON_DEPTH} levels deep")
    return data, has_weights, runs


def _checked_run_weights(project: Project) -> list[tuple[str, RunWeights]]:
    """The runs' weights, in the order of the run history, checked as loading checks them."""
    kept = project.run_weights
    if not isinstance(kept, dict):
        raise ProjectSaveError("the runs' weights must be a dict of run id -> RunWeights")
    if len(kept) > MAX_RUN_WEIGHTS:
        raise ProjectSaveError(f"the project keeps the weights of {len(kept)} runs; a project file holds at most {MAX_RUN_WEIGHTS}")
    ids = [record.get("id") for record in project.runs]
    for run_id, weights in kept.items():
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            raise ProjectSaveError(f"the run id {str(run_id)[:80]!r} is not 1 to 64 letters, digits, '_' or '-'")
        if not isinstance(weights, RunWeights):
            raise ProjectSaveError(f"the weights of run {run_id!r} are a {type(weights).__name__}, not RunWeights")
        if ids.count(run_id) != 1:
            where = "has no run" if run_id not in ids else "has more than one run"
            raise ProjectSaveError(f"the run history {where} {run_id!r}, whose weights the project keeps")
        if weights.nbytes > MAX_WEIGHTS_BYTES:
            raise ProjectSaveError(f"the weights of run {run_id!r} take {_size(weights.nbytes)}; the limit is {_size(MAX_WEIGHTS_BYTES)}")
    return [(run_id, kept[run_id]) for run_id in ids if isinstance(run_id, str) and run_id in kept]


def _json_default(value: Any) -> Any:
    # Training code hands over numpy scalars (losses, metrics); store them as numbers.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"a {type(value).__name__} is not JSON data")


def _checked_weight(value: Any, label: str, index: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.name not in safe_io.NUMERIC_DTYPES and array.dtype.name != _BFLOAT16:
        raise ProjectSaveError(
            f"weight {index} of layer '{label}' has dtype {array.dtype}; only numeric weights can be saved"
        )
    if array.size > MAX_WEIGHT_ELEMENTS:
        raise ProjectSaveError(f"weight {index} of layer '{label}' has more than {MAX_WEIGHT_ELEMENTS} elements")
    return array


def _write_archive(
    handle: IO[bytes],
    json_bytes: bytes,
    graph: ModelGraph,
    has_weights: bool,
    runs: list[tuple[str, RunWeights]],
) -> None:
    start = handle.tell()
    runs_size = sum(weights.nbytes for _, weights in runs)
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(PROJECT_MEMBER, _ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, json_bytes, compresslevel=_JSON_LEVEL)
        if has_weights:
            # A private temp file rather than memory: weights can be large.
            with tempfile.TemporaryFile() as h5_file:
                with h5py.File(h5_file, "w") as h5:
                    _write_layers(h5.create_group("layers"), graph)
                size = h5_file.seek(0, io.SEEK_END)
                if size > MAX_WEIGHTS_BYTES:
                    raise ProjectSaveError(
                        f"the weights file would take {_size(size)}; the limit is {_size(MAX_WEIGHTS_BYTES)}"
                    )
                if size + runs_size > MAX_ALL_WEIGHTS_BYTES:
                    raise ProjectSaveError(
                        f"the weights of the model and of {len(runs)} runs would take {_size(size + runs_size)}; "
                        f"the limit is {_size(MAX_ALL_WEIGHTS_BYTES)}: delete earlier runs"
                    )
                h5_file.seek(0)
                with archive.open(_stored_member(WEIGHTS_MEMBER, size), "w") as member:
                    while chunk := h5_file.read(_CHUNK):
                        member.write(chunk)
        for run_id, weights in runs:
            with archive.open(_stored_member(run_weights_member(run_id), weights.nbytes), "w") as member:
                weights.write_to(member.write)
    written = handle.tell() - start
    if written > MAX_PROJECT_BYTES:
        raise ProjectSaveError(f"the project file would take {_size(written)}; the limit is {_size(MAX_PROJECT_BYTES)}")


def _stored_member(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, _ZIP_DATE)
    # Stored: trained weights deflate by a few percent at seconds per
    # hundred megabytes (measured on EfficientNetB7: 8% for 8 s).
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size  # lets zipfile choose zip64 when needed
    return info


def _write_layers(group: h5py.Group, graph: ModelGraph) -> None:
    """Writes the weights of ``graph``'s layers (and their sub-models') under ``group``."""
    for layer in graph.layers.values():
        inner = layer.submodel is not None and _holds_weights(layer.submodel)
        if layer.weights is None and not inner:
            continue
        layer_group = group.create_group(_group_key(layer.name))
        if layer.weights is not None:
            variables = layer_group.create_group("vars")
            variables.attrs["name"] = layer.name  # as Keras writes it
            for i, value in enumerate(layer.weights):
                array = np.asarray(value)
                dataset = variables.create_dataset(str(i), data=array)
                if array.dtype.name == _BFLOAT16:
                    # Keras's tag, as a fixed-length string: see safe_io._is_bfloat16.
                    dataset.attrs["dtype"] = np.bytes_(_BFLOAT16)
        if inner:
            _write_layers(layer_group.create_group("layers"), layer.submodel)


def _holds_weights(graph: ModelGraph) -> bool:
    return any(layer.weights is not None for _, layer in _walk_layers(graph))


def _walk_layers(graph: ModelGraph, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """Every layer, sub-models' layers included, with a path-like label."""
    for layer in graph.layers.values():
        label = f"{prefix}{layer.name}"
        yield label, layer
        if layer.submodel is not None:
            yield from _walk_layers(layer.submodel, f"{label}/")


def _group_key(name: str) -> str:
    """The HDF5 group name of a layer: the layer name, escaped only where HDF5 needs it.

    Layer names never contain "/", but "." is a valid Keras name and means "this
    group" to HDF5; "%" is escaped so that the escaping can be undone.
    """
    key = name.replace("%", "%25")
    return "%2E" if key == "." else key


def _layer_name(key: str) -> str | None:
    name = unquote(key, errors="strict")
    return name if _group_key(name) == key else None


# ================================================================== loading
def load_project(path: str | os.PathLike[str]) -> Project:
    """Reads a project file, upgrading older formats.

    Raises:
        ProjectLoadError: The file cannot be opened as a project; the one-line
            message names the file and says what is wrong. Nothing else is raised
            (KeyboardInterrupt aside).
    """
    path = Path(path)
    name = path.name or str(path)

    def read() -> Project:
        try:
            info = os.stat(path)
        except OSError as exc:
            raise _Refusal(f"cannot open the file ({exc.strerror or exc})") from None
        if not stat.S_ISREG(info.st_mode):
            raise _Refusal("not a regular file")
        try:
            handle = open(path, "rb")  # closed by the with below
        except OSError as exc:
            raise _Refusal(f"cannot open the file ({exc.strerror or exc})") from None
        with handle:
            return _read_project(handle, os.fstat(handle.fileno()).st_size)

    project = _guarded(name, read)
    project.path = path
    return project


def project_from_bytes(data: bytes, name: str = "<memory>") -> Project:
    """Reads a project from the bytes of a project file (``name`` is for messages)."""
    return _guarded(name, lambda: _read_project(io.BytesIO(data), len(data)))


def _guarded(name: str, read: Callable[[], Project]) -> Project:
    """Runs ``read``, turning every failure into one ProjectLoadError naming ``name``."""
    try:
        return read()
    except _Refusal as exc:
        problem = str(exc)
    except zipfile.BadZipFile as exc:
        problem = f"not a project file (damaged zip archive: {exc})"
    except GraphError as exc:
        problem = f"the graph is malformed: {exc}"
    except RecursionError:
        problem = "the project is nested too deeply"
    except MemoryError:
        problem = "not enough memory to read it"
    except Exception as exc:  # the contract: loading raises one error type
        problem = f"cannot be read ({type(exc).__name__}: {exc})"
    raise ProjectLoadError(f"{name}: {_one_line(problem)}") from None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_project(handle: IO[bytes], size: int) -> Project:
    """Archive -> checked members -> parse -> migrate -> build -> weights."""
    if size > MAX_PROJECT_BYTES:
        raise _Refusal(f"the file takes {_size(size)}; a project file takes at most {_size(MAX_PROJECT_BYTES)}")
    _check_central_directory(handle, size)
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (ValueError, EOFError, struct.error) as exc:  # zipfile's less usual complaints
        raise _Refusal(f"not a project file (damaged zip archive: {exc})") from None
    with archive:
        members = _check_members(archive)
        if PROJECT_MEMBER not in members:
            raise _Refusal(f"not a project file (the archive has no {PROJECT_MEMBER})")
        buffer = bytearray()
        _copy_member(archive, members[PROJECT_MEMBER], MAX_JSON_BYTES, buffer.extend)
        document = _migrate(_parse_document(bytes(buffer)))
        project = _build_project(document)
        named = {WEIGHTS_MEMBER: None} if document.get("weights") is not None else {}
        named.update({run_weights_member(run_id): run_id for run_id in document.get("run_weights") or {}})
        for name in members:
            if name != PROJECT_MEMBER and name not in named:
                raise _Refusal(f"{name} is in the archive but {PROJECT_MEMBER} does not name it")
        for name in named:
            if name not in members:
                raise _Refusal(f"{PROJECT_MEMBER} names {name}, which the archive lacks")
        # What the weights may write to temporary files, bounded before any is read.
        declared = sum(members[name].file_size for name in named)
        if declared > MAX_ALL_WEIGHTS_BYTES:
            raise _Refusal(
                f"the weights in the archive take {_size(declared)} uncompressed; the limit is "
                f"{_size(MAX_ALL_WEIGHTS_BYTES)}"
            )
        if WEIGHTS_MEMBER in named:
            _read_weights(archive, members[WEIGHTS_MEMBER], project.graph)
        try:
            for name, run_id in named.items():
                if run_id is not None:
                    project.run_weights[run_id] = _read_run_weights(archive, members[name])
        except BaseException:
            for weights in project.run_weights.values():
                weights.close()
            raise
    return project


def _check_central_directory(handle: IO[bytes], size: int) -> None:
    safe_io.check_zip_directory(
        handle,
        size,
        kind="project file",
        max_members=MAX_MEMBERS,
        max_directory_bytes=MAX_CENTRAL_DIRECTORY_BYTES,
    )


def _check_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Refusal(f"not a project file (the archive has {len(infos)} members)")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if name not in _KNOWN_MEMBERS and not _RUN_MEMBER.fullmatch(name):
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", name):
                raise _Refusal(f"the archive holds a member with an unsafe name {name[:80]!r}")
            raise _Refusal(f"the archive holds an unknown member {name[:80]!r}")
        if name in members:
            raise _Refusal(f"the archive holds {name} twice")
        if info.flag_bits & 0x1:
            raise _Refusal(f"{name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Refusal(f"{name} uses an unsupported compression method ({info.compress_type})")
        members[name] = info
    return members


def _copy_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, write: Callable[[bytes], Any]
) -> int:
    return safe_io.copy_member(archive, info, limit, write, kind="project file")


def _parse_document(data: bytes) -> dict[str, Any]:
    """project.json's bytes -> a dict (any format version)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Refusal(f"{PROJECT_MEMBER} is not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise _Refusal(f"{PROJECT_MEMBER} line {exc.lineno}: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise _Refusal(f"{PROJECT_MEMBER} is nested too deeply") from None
    except ValueError as exc:  # duplicate keys, numbers too long
        if "integer string conversion" in str(exc):
            raise _Refusal(f"{PROJECT_MEMBER} holds a number with too many digits") from None
        raise _Refusal(f"{PROJECT_MEMBER}: {exc}") from None
    if safe_io.json_depth(document, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise _Refusal(f"{PROJECT_MEMBER} is nested more than {MAX_JSON_DEPTH} levels deep")
    if not isinstance(document, dict):
        raise _Refusal(f"not a project file ({PROJECT_MEMBER} does not hold an object)")
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key[:40]!r} appears twice in one object")
            seen.add(key)
    return result


def _migrate(document: dict[str, Any]) -> dict[str, Any]:
    """Checks the format marker and version, then upgrades to FORMAT_VERSION.

    A newer, unknown or malformed version is refused before any other part of
    the document is looked at.
    """
    if document.get("format") != FORMAT_MARKER:
        raise _Refusal(f'not a project file ({PROJECT_MEMBER} lacks the "format": "{FORMAT_MARKER}" marker)')
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        shown = json.dumps(version)[:40]
        raise _Refusal(f"format_version {shown} is not a whole number")
    if version > FORMAT_VERSION:
        raise _Refusal(
            f"made by a newer version of builder-app (format {version}; this version reads up to {FORMAT_VERSION})"
        )
    if version != FORMAT_VERSION and version not in MIGRATIONS:
        oldest = min(MIGRATIONS, default=FORMAT_VERSION)
        readable = f"{oldest} to {FORMAT_VERSION}" if oldest < FORMAT_VERSION else str(FORMAT_VERSION)
        raise _Refusal(f"unknown format version {version} (this version reads format {readable})")
    while version < FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise _Refusal(f"format {version} cannot be upgraded (no migration from it)")
        try:
            upgraded = step(document)
        except Exception as exc:  # a malformed old file, reported as such
            raise _Refusal(f"cannot upgrade from format {version}: {type(exc).__name__}: {exc}") from None
        if not isinstance(upgraded, dict):
            raise _Refusal(f"the upgrade from format {version} gave no document")
        version += 1
        upgraded["format_version"] = version
        document = upgraded
    return document


def _build_project(document: dict[str, Any]) -> Project:
    """A current-format document -> a Project (without weights)."""
    unknown = sorted(set(document) - _DOC_KEYS)
    if unknown:
        raise _Refusal(f"{PROJECT_MEMBER} has an unknown entry {unknown[0][:40]!r}")
    if "graph" not in document:
        raise _Refusal(f"{PROJECT_MEMBER} holds no graph")
    try:
        graph = ModelGraph.from_dict(document["graph"])
    except (TypeError, KeyError, AttributeError) as exc:  # GraphError says it better; these slip through
        raise _Refusal(f"the graph is malformed ({type(exc).__name__}: {exc})") from None
    training = document.get("training", {})
    if not isinstance(training, dict):
        raise _Refusal(f"'training' in {PROJECT_MEMBER} should be an object, not {_json_kind(training)}")
    runs = document.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise _Refusal(f"'runs' in {PROJECT_MEMBER} should be a list of objects")
    app_version = document.get("app_version")
    if app_version is not None and not isinstance(app_version, str):
        raise _Refusal(f"'app_version' in {PROJECT_MEMBER} should be a string")
    weights = document.get("weights")
    if weights is not None and weights != {"file": WEIGHTS_MEMBER}:
        raise _Refusal(f"'weights' in {PROJECT_MEMBER} should be {{\"file\": \"{WEIGHTS_MEMBER}\"}}")
    _check_run_weights_entry(document.get("run_weights", {}), runs)
    return Project(graph=graph, training=training, runs=runs)


def _check_run_weights_entry(entry: Any, runs: list[dict[str, Any]]) -> None:
    """``run_weights``: run id -> ``{"file": "runs/<id>.weights.h5"}``, for runs in the history."""
    where = f"'run_weights' in {PROJECT_MEMBER}"
    if not isinstance(entry, dict):
        raise _Refusal(f"{where} should be an object, not {_json_kind(entry)}")
    if len(entry) > MAX_RUN_WEIGHTS:
        raise _Refusal(f"{where} names {len(entry)} runs; a project keeps the weights of at most {MAX_RUN_WEIGHTS}")
    ids = [record.get("id") for record in runs]
    for run_id, value in entry.items():
        if not RUN_ID.fullmatch(run_id):
            raise _Refusal(f"{where} names a run {run_id[:40]!r}; a run id is 1 to 64 letters, digits, '_' or '-'")
        if value != {"file": run_weights_member(run_id)}:
            raise _Refusal(f"{where}: run {run_id!r} should be {{\"file\": \"{run_weights_member(run_id)}\"}}")
        if ids.count(run_id) != 1:
            what = "lacks" if run_id not in ids else "has more than once"
            raise _Refusal(f"{where} names run {run_id!r}, which the run history {what}")


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _read_weights(archive: zipfile.ZipFile, info: zipfile.ZipInfo, graph: ModelGraph) -> None:
    """Reads the weights member and gives each layer its arrays (all or none)."""
    with tempfile.TemporaryFile() as h5_file:  # private, removed even if we are killed
        size = _copy_member(archive, info, MAX_WEIGHTS_BYTES, h5_file.write)
        h5_file.seek(0)
        found: list[tuple[Layer, list[np.ndarray]]] = []
        _walk_weights_file(
            h5_file, size, WEIGHTS_MEMBER,
            lambda layers, budget: _read_layer_groups(layers, graph, "", budget, found),
        )
    for layer, arrays in found:
        layer.weights = arrays


def _read_layer_groups(
    group: h5py.Group,
    graph: ModelGraph,
    prefix: str,
    budget: safe_io.H5Budget,
    found: list[tuple[Layer, list[np.ndarray]]],
) -> None:
    for key in sorted(_children(group, budget)):
        name = _layer_name(key)
        layer = graph.layers.get(name) if name is not None else None
        if layer is None:
            raise _Refusal(f"{WEIGHTS_MEMBER} holds weights for an unknown layer '{prefix}{key[:80]}'")
        label = f"{prefix}{layer.name}"
        layer_group = safe_io.h5_subgroup(group, key, label, budget)
        entries = _children(layer_group, budget)
        allowed = {"vars", "layers"} if layer.submodel is not None else {"vars"}
        if entries - allowed:
            raise _Refusal(f"{WEIGHTS_MEMBER}: layer '{label}' has an unexpected entry {sorted(entries - allowed)[0][:40]!r}")
        if "vars" in entries:
            found.append((layer, _read_vars(safe_io.h5_subgroup(layer_group, "vars", label, budget), label, budget)))
        if "layers" in entries and layer.submodel is not None:
            _read_layer_groups(safe_io.h5_subgroup(layer_group, "layers", label, budget), layer.submodel, f"{label}/", budget, found)


def _read_vars(group: h5py.Group, label: str, budget: safe_io.H5Budget, *, read: bool = True) -> list[Any]:
    """A layer's arrays (or, with ``read`` false, their shapes, checked but not read)."""
    keys = _children(group, budget)
    if keys != {str(i) for i in range(len(keys))}:
        raise _Refusal(f"{budget.label}: the weights of layer '{label}' are not numbered 0 to {len(keys) - 1}")
    if not read:
        return [
            tuple(safe_io.check_h5_dataset(group, str(i), f"weight {i} of layer '{label}'", budget).shape)
            for i in range(len(keys))
        ]
    return [_read_dataset(group, str(i), f"weight {i} of layer '{label}'", budget) for i in range(len(keys))]


def _read_run_weights(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> RunWeights:
    """A run's weights member, copied to a private temporary file and checked (not read)."""
    handle = tempfile.TemporaryFile()
    try:
        size = _copy_member(archive, info, MAX_WEIGHTS_BYTES, handle.write)
        handle.seek(0)
        _walk_run_file(handle, size, info.filename, read=False)
    except BaseException:
        handle.close()
        raise
    return RunWeights(handle, size)


def _walk_run_file(handle: IO[bytes], size: int, label: str, *, read: bool) -> dict[str, list[Any]]:
    """Every layer's arrays (or shapes) in a run's weights file, by label.

    The layout is model.weights.h5's, but nothing is matched to a graph: any
    layer names, plain layers and sub-models alike (``vars`` and ``layers``).
    """
    found: dict[str, list[Any]] = {}
    _walk_weights_file(
        handle, size, label, lambda layers, budget: _walk_run_layers(layers, "", 0, budget, read, found)
    )
    return found


def _walk_weights_file(
    handle: IO[bytes], size: int, label: str, walk: Callable[[h5py.Group, safe_io.H5Budget], None]
) -> None:
    """Opens a weights file (``model.weights.h5``'s layout) under the limits and walks its layers.

    ``walk`` gets the ``layers`` group and the budget; anything else at the top, or
    damage HDF5 reports, is a refusal naming ``label``.
    """
    try:
        h5 = h5py.File(handle, "r")
    except OSError:
        raise _Refusal(f"{label} is not an HDF5 file") from None
    try:
        with h5:
            budget = safe_io.H5Budget(
                label, bytes_left=size, objects_left=MAX_H5_OBJECTS, max_elements=MAX_WEIGHT_ELEMENTS
            )
            keys = _children(h5, budget)
            if keys - {"layers"}:
                raise _Refusal(f"{label} holds an unexpected entry {sorted(keys - {'layers'})[0][:40]!r}")
            if "layers" in keys:
                walk(safe_io.h5_subgroup(h5, "layers", "/", budget), budget)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        # What HDF5 says about a damaged file, e.g. "addr overflow" or "bad heap".
        raise _Refusal(f"{label} is damaged ({type(exc).__name__}: {exc})") from None


def _walk_run_layers(
    group: h5py.Group, prefix: str, depth: int, budget: safe_io.H5Budget, read: bool, found: dict[str, list[Any]]
) -> None:
    if depth > MAX_RUN_WEIGHTS_DEPTH:
        raise _Refusal(f"{budget.label}: sub-models are nested more than {MAX_RUN_WEIGHTS_DEPTH} levels deep")
    for key in sorted(_children(group, budget)):
        name = _layer_name(key)
        if not name:
            raise _Refusal(f"{budget.label}: '{prefix}{key[:80]}' is not a layer name")
        label = f"{prefix}{name}"
        layer_group = safe_io.h5_subgroup(group, key, label, budget)
        entries = _children(layer_group, budget)
        if entries - {"vars", "layers"}:
            unexpected = sorted(entries - {"vars", "layers"})[0][:40]
            raise _Refusal(f"{budget.label}: layer '{label}' has an unexpected entry {unexpected!r}")
        if "vars" in entries:
            found[label] = _read_vars(safe_io.h5_subgroup(layer_group, "vars", label, budget), label, budget, read=read)
        if "layers" in entries:
            inner = safe_io.h5_subgroup(layer_group, "layers", label, budget)
            _walk_run_layers(inner, f"{label}/", depth + 1, budget, read, found)
