"""The project file: one zip holding the graph, the training setup, the run history and weights.

A project file (``.kproj``) is a ZIP_DEFLATED archive in the spirit of Keras's own
``.keras`` files. It holds:

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
import math
import os
import re
import secrets
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import h5py
import numpy as np

from builder_app import __version__ as APP_VERSION
from builder_app.core.graph import GraphError, Layer, ModelGraph

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

_KIB, _MIB, _GIB = 1 << 10, 1 << 20, 1 << 30
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

_CHUNK = _MIB
# Fixed member timestamps: saving the same project twice gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Weights barely compress; the fastest level saves nearly as much as the best.
_WEIGHTS_LEVEL = 1
_JSON_LEVEL = 9
_TEMP_NAME_KEEP = 200  # of the target's name in its temp name, under NAME_MAX
_TEMP_TOKEN_HEX = 12
_DOC_KEYS = frozenset({"format", "format_version", "app_version", "graph", "training", "runs", "weights"})
# Plain numeric dtypes a weights file may hold (any byte order); plus bfloat16,
# stored as Keras does: 2-byte opaque data with the attribute dtype="bfloat16".
_NUMERIC_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)
_BFLOAT16 = "bfloat16"


class ProjectLoadError(Exception):
    """A project file cannot be opened. The one-line message names the file and says why."""


class ProjectSaveError(ValueError):
    """A project cannot be written as it is (the target file is left untouched)."""


class _Refusal(Exception):
    """Why loading stopped; :func:`load_project` prefixes the file name."""


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
    if _depth(json.loads(data)) > MAX_JSON_DEPTH:
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
    if array.dtype.name not in _NUMERIC_DTYPES and array.dtype.name != _BFLOAT16:
        raise ProjectSaveError(
            f"weight {index} of layer '{label}' has dtype {array.dtype}; only numeric weights can be saved"
        )
    if array.size > MAX_WEIGHT_ELEMENTS:
        raise ProjectSaveError(f"weight {index} of layer '{label}' has more than {MAX_WEIGHT_ELEMENTS} elements")
    return array


def _write_archive(handle: IO[bytes], json_bytes: bytes, graph: ModelGraph, has_weights: bool) -> None:
    start = handle.tell()
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=_WEIGHTS_LEVEL) as archive:
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
                info.compress_type = zipfile.ZIP_DEFLATED
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
                    # Keras's tag, as a fixed-length string: see _is_bfloat16.
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


_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _check_central_directory(handle: IO[bytes], size: int) -> None:
    """Refuses archives whose directory is too large before zipfile parses all of it.

    zipfile builds one object per directory entry up front; the end record says
    how large the directory is (as zipfile finds it: the last end-of-directory
    signature in the file's final 64 KiB, plus the zip64 record before it).
    """
    tail_size = min(size, _EOCD.size + 0xFFFF + _ZIP64_LOCATOR.size + _ZIP64_EOCD.size)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    search_from = max(0, len(tail) - (_EOCD.size + (1 << 16)))
    at = tail.rfind(b"PK\x05\x06", search_from)
    if at < 0 or len(tail) - at < _EOCD.size:
        handle.seek(0)
        if handle.read(4) == b"PK\x03\x04":
            raise _Refusal("not a project file (a damaged or truncated zip archive)")
        raise _Refusal("not a project file (not a zip archive)")
    _, _, _, _, entries, directory_size, _, _ = _EOCD.unpack_from(tail, at)
    counts = [entries] if entries != 0xFFFF else []
    sizes = [directory_size] if directory_size != 0xFFFFFFFF else []
    locator = at - _ZIP64_LOCATOR.size
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        record = locator - _ZIP64_EOCD.size
        if record < 0 or tail[record : record + 4] != b"PK\x06\x06":
            raise _Refusal("not a project file (damaged zip64 directory)")
        fields = _ZIP64_EOCD.unpack_from(tail, record)
        counts.append(fields[7])
        sizes.append(fields[8])
    if any(count > MAX_MEMBERS for count in counts):
        raise _Refusal(f"not a project file (the archive has more than {MAX_MEMBERS} members)")
    if any(size > MAX_CENTRAL_DIRECTORY_BYTES for size in sizes):
        raise _Refusal(f"not a project file (its zip directory takes more than {_size(MAX_CENTRAL_DIRECTORY_BYTES)})")


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
    """Streams a member into ``write``, never past ``limit`` bytes nor its declared size."""
    if info.file_size > limit:
        raise _Refusal(f"{info.filename} takes {_size(info.file_size)} uncompressed; the limit is {_size(limit)}")
    allowed = min(limit, info.file_size)
    total = 0
    try:
        with archive.open(info) as member:
            # zipfile decompresses at most _CHUNK bytes per read, so memory stays
            # bounded even when the header lies about the size.
            while chunk := member.read(_CHUNK):
                total += len(chunk)
                if total > allowed:
                    raise _Refusal(f"{info.filename} is larger than its declared size")
                write(chunk)
    except (zlib.error, EOFError) as exc:
        raise _Refusal(f"not a project file (damaged zip archive: {info.filename}: {exc})") from None
    return total


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
    if _depth(document) > MAX_JSON_DEPTH:
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


def _depth(value: Any) -> int:
    """Nesting depth of JSON data, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                return level
            stack.extend((child, level + 1) for child in item)
    return deepest


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


@dataclass
class _Budget:
    """What the rest of a weights file may still declare."""

    bytes_left: int
    objects_left: int = field(default_factory=lambda: MAX_H5_OBJECTS)

    def take_objects(self, count: int) -> None:
        self.objects_left -= count
        if self.objects_left < 0:
            raise _Refusal(f"{WEIGHTS_MEMBER} holds more than {MAX_H5_OBJECTS} groups and datasets")


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
                budget = _Budget(bytes_left=size)
                keys = _children(h5, budget)
                if keys - {"layers"}:
                    raise _Refusal(f"{WEIGHTS_MEMBER} holds an unexpected entry {sorted(keys - {'layers'})[0][:40]!r}")
                if "layers" in keys:
                    _read_layer_groups(_subgroup(h5, "layers", "/"), graph, "", budget, found)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            # What HDF5 says about a damaged file, e.g. "addr overflow" or "bad heap".
            raise _Refusal(f"{WEIGHTS_MEMBER} is damaged ({type(exc).__name__}: {exc})") from None
    for layer, arrays in found:
        layer.weights = arrays


def _read_layer_groups(
    group: h5py.Group,
    graph: ModelGraph,
    prefix: str,
    budget: _Budget,
    found: list[tuple[Layer, list[np.ndarray]]],
) -> None:
    for key in sorted(_children(group, budget)):
        name = _layer_name(key)
        layer = graph.layers.get(name) if name is not None else None
        if layer is None:
            raise _Refusal(f"{WEIGHTS_MEMBER} holds weights for an unknown layer '{prefix}{key[:80]}'")
        label = f"{prefix}{layer.name}"
        layer_group = _subgroup(group, key, label)
        entries = _children(layer_group, budget)
        allowed = {"vars", "layers"} if layer.submodel is not None else {"vars"}
        if entries - allowed:
            raise _Refusal(f"{WEIGHTS_MEMBER}: layer '{label}' has an unexpected entry {sorted(entries - allowed)[0][:40]!r}")
        if "vars" in entries:
            found.append((layer, _read_vars(_subgroup(layer_group, "vars", label), label, budget)))
        if "layers" in entries and layer.submodel is not None:
            _read_layer_groups(_subgroup(layer_group, "layers", label), layer.submodel, f"{label}/", budget, found)


def _children(group: h5py.Group, budget: _Budget) -> set[str]:
    """A group's entry names, after counting them against the budget; hard links only."""
    budget.take_objects(len(group))
    names = set()
    for name in group:
        link = group.get(name, getlink=True)
        # Soft and external links could point anywhere, other files included.
        if not isinstance(link, h5py.HardLink):
            raise _Refusal(f"{WEIGHTS_MEMBER}: '{group.name}' holds a link {name[:40]!r}; only plain entries are allowed")
        names.add(name)
    return names


def _subgroup(group: h5py.Group, name: str, label: str) -> h5py.Group:
    if group.get(name, getclass=True) is not h5py.Group:
        raise _Refusal(f"{WEIGHTS_MEMBER}: '{name}' under '{label}' should be a group")
    return group[name]


def _read_vars(group: h5py.Group, label: str, budget: _Budget) -> list[np.ndarray]:
    keys = _children(group, budget)
    if keys != {str(i) for i in range(len(keys))}:
        raise _Refusal(f"{WEIGHTS_MEMBER}: the weights of layer '{label}' are not numbered 0 to {len(keys) - 1}")
    return [_read_dataset(group, str(i), f"weight {i} of layer '{label}'", budget) for i in range(len(keys))]


def _read_dataset(group: h5py.Group, key: str, what: str, budget: _Budget) -> np.ndarray:
    """Reads one weight array after checking everything it declares."""
    if group.get(key, getclass=True) is not h5py.Dataset:
        raise _Refusal(f"{WEIGHTS_MEMBER}: {what} is not a dataset")
    dataset = group[key]
    dtype = dataset.dtype
    bfloat16 = _is_bfloat16(dataset)
    if not bfloat16 and not (
        dtype.name in _NUMERIC_DTYPES and dtype.names is None and dtype.subdtype is None
    ):
        raise _Refusal(f"{WEIGHTS_MEMBER}: {what} has dtype {dtype}, which is not a plain number type")
    shape = dataset.shape
    if shape is None:
        raise _Refusal(f"{WEIGHTS_MEMBER}: {what} has no shape")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if count > MAX_WEIGHT_ELEMENTS or nbytes > budget.bytes_left:
        raise _Refusal(
            f"{WEIGHTS_MEMBER}: {what} declares shape {tuple(shape)} ({_size(nbytes)}), "
            "more than the weights file holds"
        )
    budget.bytes_left -= nbytes
    create = dataset.id.get_create_plist()
    # Only what this module writes: contiguous bytes inside the file. External and
    # virtual datasets read other files; filters may load plugins.
    if (
        dataset.is_virtual
        or create.get_layout() != h5py.h5d.CONTIGUOUS
        or create.get_external_count()
        or create.get_nfilters()
    ):
        raise _Refusal(f"{WEIGHTS_MEMBER}: {what} is not stored as plain data in the file")
    if dataset.id.get_storage_size() != nbytes:
        raise _Refusal(f"{WEIGHTS_MEMBER}: {what} does not hold the data it declares")
    array = np.asarray(dataset[()])
    if bfloat16:
        import ml_dtypes  # only bfloat16 weights need it; Keras depends on it

        array = array.view(ml_dtypes.bfloat16)
    return array


def _is_bfloat16(dataset: h5py.Dataset) -> bool:
    """bfloat16 as Keras stores it: 2-byte opaque data tagged with the attribute dtype="bfloat16".

    Only a short fixed-length tag is read (this module writes one): reading a
    variable-length string makes HDF5 follow a length and a heap address that a
    damaged file can set to anything, and fuzzing found that to hang.
    """
    dtype = dataset.dtype
    if dtype.kind != "V" or dtype.itemsize != 2 or dtype.names is not None or dtype.subdtype is not None:
        return False
    if "dtype" not in dataset.attrs:
        return False
    attr = h5py.h5a.open(dataset.id, b"dtype")
    kind = attr.get_type()
    if (
        attr.shape != ()
        or not isinstance(kind, h5py.h5t.TypeStringID)
        or kind.is_variable_str()
        or kind.get_size() > 16
    ):
        return False
    value = np.zeros((), dtype=f"S{kind.get_size()}")
    attr.read(value, mtype=h5py.h5t.py_create(value.dtype))
    return value.item().rstrip(b"\0 ") == _BFLOAT16.encode()


def _size(nbytes: int) -> str:
    if nbytes >= _GIB:
        return f"{nbytes / _GIB:.1f} GiB"
    if nbytes >= _MIB:
        return f"{nbytes / _MIB:.1f} MiB"
    if nbytes >= _KIB and nbytes % _KIB == 0:
        return f"{nbytes // _KIB} KiB"
    return f"{nbytes} bytes"
