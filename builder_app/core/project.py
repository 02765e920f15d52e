"""The project file: one zip holding the graph, the training setup, the run history and weights.

A project file (``.kproj``) is a zip archive in the spirit of Keras's own
``.keras`` files (the JSON deflated, the weights stored). It holds:

* ``project.json``: ``{"format": "builder-app-project", "format_version": 1,
  "app_version": ..., "graph": ModelGraph.to_dict(), "training": {...},
  "runs": [...], "weights": {"file": "model.weights.h5"}}`` (``weights`` only when
  the archive has weights), indented so that a person can read and diff it.
* ``model.weights.h5``, when any layer holds weights: HDF5 in the layout of Keras's
  ``model.save_weights("x.weights.h5")``: ``layers/<layer>/vars/0``, ``.../1``, ...
  and, for the layers of a sub-model, ``layers/<sub-model>/layers/<layer>/vars/...``.
  Unlike Keras 3 (which names groups after the class, ``dense_1``), groups are
  named after the layer, so weights are matched to layers by name. A layer whose
  ``weights`` is None has no group; an empty list is an empty ``vars`` group.

Saving is atomic: the archive is written to a temporary file beside the target,
synced, then renamed over it, so an interrupted save leaves the previous file
byte-identical. A killed process can leave its temporary file behind; the next
save of that target removes it (see :func:`clean_stale_temp_files`).

Loading never executes anything from the file: it reads JSON and plain numeric
HDF5 datasets only, under the ``MAX_*`` limits below, and every failure is one
:class:`ProjectLoadError` whose one-line message names the file. Older format
versions are upgraded by the functions in :data:`MIGRATIONS`; newer or unknown
versions are refused before anything else is read.
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
FORMAT_VERSION = 1
PROJECT_SUFFIX = ".kproj"
PROJECT_MEMBER = "project.json"
WEIGHTS_MEMBER = "model.weights.h5"
_KNOWN_MEMBERS = (PROJECT_MEMBER, WEIGHTS_MEMBER)

# Limits on what loading accepts (read at call time, so tests can lower them).
# Saving refuses to write a file that loading would refuse.
#: Size of the whole project file.
MAX_PROJECT_BYTES = 2 * _GIB
#: Members in the archive (only two are known; a few spare for a clear message).
MAX_MEMBERS = 16
#: Size of the zip central directory: bounds what zipfile parses before we look.
MAX_CENTRAL_DIRECTORY_BYTES = 64 * _KIB
#: Uncompressed size of project.json.
MAX_JSON_BYTES = 64 * _MIB
#: Nesting of project.json (a sub-model adds four levels).
MAX_JSON_DEPTH = 128
#: Uncompressed size of model.weights.h5.
MAX_WEIGHTS_BYTES = 2 * _GIB
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
_DOC_KEYS = frozenset({"format", "format_version", "app_version", "graph", "training", "runs", "weights"})


class ProjectLoadError(Exception):
    """A project file cannot be opened. The one-line message names the file and says why."""


class ProjectSaveError(ValueError):
    """A project cannot be written as it is (the target file is left untouched)."""


@dataclass
class Project:
    """Everything a project file holds.

    Attributes:
        graph: The model, with its layers' weights.
        training: Free-form training settings (JSON-able).
        runs: The run history, one JSON-able dict per run.
        path: Where the project was last loaded from or saved to.
    """

    graph: ModelGraph
    training: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None


#: Version v -> function upgrading a format-v document (parsed project.json) to v + 1.
#: Loading applies them in order; the result always gets ``format_version = v + 1``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


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
    json_bytes, has_weights = _encode(project)
    target = Path(os.path.realpath(os.fspath(path)))
    clean_stale_temp_files(target)
    write_atomically(target, lambda handle: _write_archive(handle, json_bytes, project.graph, has_weights))
    project.path = Path(path)


def project_to_bytes(project: Project) -> bytes:
    """The bytes :func:`save_project` would write."""
    json_bytes, has_weights = _encode(project)
    buffer = io.BytesIO()
    _write_archive(buffer, json_bytes, project.graph, has_weights)
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


def _encode(project: Project) -> tuple[bytes, bool]:
    """project.json's bytes, and whether the archive gets a weights file.

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
    return data, has_weights


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


def _write_archive(handle: IO[bytes], json_bytes: bytes, graph: ModelGraph, has_weights: bool) -> None:
    start = handle.tell()
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
                h5_file.seek(0)
                info = zipfile.ZipInfo(WEIGHTS_MEMBER, _ZIP_DATE)
                # Stored: trained weights deflate by a few percent at seconds per
                # hundred megabytes (measured on EfficientNetB7: 8% for 8 s).
                info.compress_type = zipfile.ZIP_STORED
                info.file_size = size  # lets zipfile choose zip64 when needed
                with archive.open(info, "w") as member:
                    while chunk := h5_file.read(_CHUNK):
                        member.write(chunk)
    written = handle.tell() - start
    if written > MAX_PROJECT_BYTES:
        raise ProjectSaveError(f"the project file would take {_size(written)}; the limit is {_size(MAX_PROJECT_BYTES)}")


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
        weights = document.get("weights")
        if weights is None:
            if WEIGHTS_MEMBER in members:
                raise _Refusal(f"{WEIGHTS_MEMBER} is in the archive but {PROJECT_MEMBER} does not name it")
        else:
            if WEIGHTS_MEMBER not in members:
                raise _Refusal(f"{PROJECT_MEMBER} names {WEIGHTS_MEMBER}, which the archive lacks")
            _read_weights(archive, members[WEIGHTS_MEMBER], project.graph)
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
        if name not in _KNOWN_MEMBERS:
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
    return Project(graph=graph, training=training, runs=runs)


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _read_weights(archive: zipfile.ZipFile, info: zipfile.ZipInfo, graph: ModelGraph) -> None:
    """Reads the weights member and gives each layer its arrays (all or none)."""
    with tempfile.TemporaryFile() as h5_file:  # private, removed even if we are killed
        size = _copy_member(archive, info, MAX_WEIGHTS_BYTES, h5_file.write)
        h5_file.seek(0)
        try:
            h5 = h5py.File(h5_file, "r")
        except OSError:
            raise _Refusal(f"{WEIGHTS_MEMBER} is not an HDF5 file") from None
        found: list[tuple[Layer, list[np.ndarray]]] = []
        try:
            with h5:
                budget = safe_io.H5Budget(
                    WEIGHTS_MEMBER, bytes_left=size, objects_left=MAX_H5_OBJECTS, max_elements=MAX_WEIGHT_ELEMENTS
                )
                keys = _children(h5, budget)
                if keys - {"layers"}:
                    raise _Refusal(f"{WEIGHTS_MEMBER} holds an unexpected entry {sorted(keys - {'layers'})[0][:40]!r}")
                if "layers" in keys:
                    _read_layer_groups(safe_io.h5_subgroup(h5, "layers", "/", budget), graph, "", budget, found)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            # What HDF5 says about a damaged file, e.g. "addr overflow" or "bad heap".
            raise _Refusal(f"{WEIGHTS_MEMBER} is damaged ({type(exc).__name__}: {exc})") from None
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


def _read_vars(group: h5py.Group, label: str, budget: safe_io.H5Budget) -> list[np.ndarray]:
    keys = _children(group, budget)
    if keys != {str(i) for i in range(len(keys))}:
        raise _Refusal(f"{WEIGHTS_MEMBER}: the weights of layer '{label}' are not numbered 0 to {len(keys) - 1}")
    return [_read_dataset(group, str(i), f"weight {i} of layer '{label}'", budget) for i in range(len(keys))]
