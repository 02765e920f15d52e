"""The project file: one zip holding the graph, the training setup, the run history and weights.

A project file (``.kproj``) is a zip archive in the spirit of Keras's own
``.keras`` files (the JSON deflated, the weights stored). It holds:

* ``project.json``: ``{"format": "builder-app-project", "format_version": 4,
  "app_version": ..., "graph": ModelGraph.to_dict(), "training": {...},
  "runs": [...], "weights": {"file": "model.weights.h5"},
  "run_weights": {"<run id>": {"file": "runs/<run id>.weights.h5"}, ...}}``
  (``weights`` only when the archive has weights, ``run_weights`` only when it
  keeps some run's weights), indented so that a person can read and diff it.
* ``model.weights.h5``, when any layer holds weights: HDF5 in the layout of Keras's
  ``model.save_weights("x.weights.h5")``, groups named after the layers (see
  :mod:`builder_app.core.weights_file`), matched to the graph's layers by name.
* ``assets/<layer path>/<file>`` (format 4): the files a layer's Keras
  ``save_assets`` writes (an adapted lookup's ``vocabulary.txt``), deflated, named
  in project.json by ``"assets": {"<layer path>": ["<file>", ...]}`` (only when
  some layer has assets); see :mod:`builder_app.core.assets`.
* ``custom/<file>.py`` (format 4): the project's custom-layer code, UTF-8 text,
  named in project.json by ``"custom_code": ["<file>.py", ...]`` (only when the
  project holds code). Loading reads it as text and never runs it; it runs only
  once the user trusts it (:mod:`builder_app.core.trust`, :mod:`builder_app.core.custom_code`).
* ``runs/<run id>.weights.h5`` (format 2): the weights a finished run left, in the
  same layout, one member per run that keeps them. They are checked like the
  model's weights when the file opens, but not matched to the graph, which may
  have changed since; :mod:`builder_app.core.runs` keeps them
  (:class:`~builder_app.core.runs.RunWeights`) and restores them.

This module is the format: the :class:`Project`, the format version and its
:data:`MIGRATIONS`, and saving and loading, each load a chain of small steps
(archive -> checked members -> parse -> migrate -> build -> weights).

Saving is atomic (:func:`builder_app.core.atomic.write_atomically`): an
interrupted save leaves the previous file byte-identical, and the next save of a
target removes the temporary files killed saves left.

Loading never executes anything from the file: it reads JSON and plain numeric
HDF5 datasets only, under the ``MAX_*`` limits below and those of
:mod:`~builder_app.core.weights_file` and :mod:`~builder_app.core.runs`, and
every failure is one :class:`ProjectLoadError` whose one-line message names the
file. Older format versions are upgraded by the functions in :data:`MIGRATIONS`;
newer or unknown versions are refused before anything else is read.

Format history: 1, the graph, the settings, the run history and the model's
weights; 2, each run's weights too (``runs/``, ``run_weights``), and every run
record has an ``id``; 3, graphs say how they are drawn (``canvas``); 4, layers'
assets (``assets/``, ``"assets"``). Every member of the archive is named by
project.json; an archive member it does not name is refused. Format 4 is also the
format in which a project keeps its trusted custom code (the custom-layers
feature adds its own optional members and entry, absent from projects without
custom code).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from builder_app import __version__ as APP_VERSION
from builder_app.core import assets as _assets
from builder_app.core import custom_code as _custom
from builder_app.core import runs as _runs
from builder_app.core import safe_io, weights_file
from builder_app.core.atomic import clean_stale_temp_files, write_atomically
from builder_app.core.graph import GraphError, Layer, ModelGraph
from builder_app.core.runs import RunWeights
from builder_app.core.safe_io import GIB as _GIB
from builder_app.core.safe_io import KIB as _KIB
from builder_app.core.safe_io import MIB as _MIB
from builder_app.core.safe_io import Refused as _Refusal
from builder_app.core.safe_io import h5_children as _children
from builder_app.core.safe_io import size_text as _size
from builder_app.core.text import one_line
from builder_app.core.weights_file import ProjectSaveError

FORMAT_MARKER = "builder-app-project"
#: The format this version writes; it reads this one and every one in MIGRATIONS.
FORMAT_VERSION = 4
PROJECT_SUFFIX = ".kproj"
PROJECT_MEMBER = "project.json"
WEIGHTS_MEMBER = "model.weights.h5"
_KNOWN_MEMBERS = (PROJECT_MEMBER, WEIGHTS_MEMBER)

# Limits on what loading accepts (read at call time, so tests can lower them).
# Saving refuses to write a file that loading would refuse. The weights' limits
# are weights_file's (MAX_WEIGHTS_BYTES, MAX_ALL_WEIGHTS_BYTES, MAX_H5_OBJECTS,
# MAX_WEIGHT_ELEMENTS) and runs' (MAX_RUN_WEIGHTS, MAX_RUN_WEIGHTS_DEPTH).
#: Size of the whole project file.
MAX_PROJECT_BYTES = 2 * _GIB
#: Members in the archive: project.json, model.weights.h5, one per kept run, the
#: asset files, and a few spare so that a stray member is named in the message
#: rather than counted. 112 directory entries take about 20 KiB (asset paths are
#: longer), within MAX_CENTRAL_DIRECTORY_BYTES.
MAX_MEMBERS = 2 + _runs.MAX_RUN_WEIGHTS + _assets.MAX_ASSET_FILES + _custom.MAX_CODE_FILES + 14
#: Size of the zip central directory: bounds what zipfile parses before we look.
MAX_CENTRAL_DIRECTORY_BYTES = 64 * _KIB
#: Uncompressed size of project.json.
MAX_JSON_BYTES = 64 * _MIB
#: Nesting of project.json (a sub-model adds four levels).
MAX_JSON_DEPTH = 128
#: Layer calls (nodes) in a project, sub-models' included. A shape pass costs about
#: 8 ms and 50 kB a call on the 2-core machine: 10,000 take 85 s and 1 GB; 100,000
#: did not finish in 10 minutes and passed 2.3 GB.
MAX_NODES = 20_000

_CHUNK = safe_io.CHUNK
# Fixed member timestamps: saving the same project twice gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_JSON_LEVEL = 9
_DOC_KEYS = frozenset(
    {"format", "format_version", "app_version", "graph", "training", "runs", "weights", "run_weights", "assets",
     "custom_code"}
)


class ProjectLoadError(Exception):
    """A project file cannot be opened. The one-line message names the file and says why."""


@dataclass
class Project:
    """Everything a project file holds.

    Attributes:
        graph: The model, with its layers' weights.
        training: Free-form training settings (JSON-able).
        runs: The run history, one JSON-able dict per run; a run's ``"id"`` names it.
        path: Where the project was last loaded from or saved to.
        run_weights: The weights each finished run left, by run id (a run's
            ``"id"``, matching :data:`~builder_app.core.runs.RUN_ID`). See
            :mod:`builder_app.core.runs`: ``record_run``, ``restore_run``, ``delete_run``.
        custom_code: The project's custom-layer code files (text; run only once trusted).
    """

    graph: ModelGraph
    training: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    run_weights: dict[str, RunWeights] = field(default_factory=dict)
    custom_code: list[_custom.CodeFile] = field(default_factory=list)


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


def _v2_to_v3(document: dict[str, Any]) -> dict[str, Any]:
    """Format 2 -> 3: graphs say how they are drawn (``"canvas"``: direction, display blocks).

    Format-2 positions were laid out left to right, so every graph, sub-models
    included, keeps that direction; new graphs are drawn top to bottom.
    """
    stack = [document.get("graph")]
    while stack:
        graph = stack.pop()
        if not isinstance(graph, dict):
            continue
        graph.setdefault("canvas", {"direction": "LR", "blocks": []})
        for layer in graph.get("layers") or []:
            if isinstance(layer, dict):
                stack.append(layer.get("submodel"))
    return document


def _v3_to_v4(document: dict[str, Any]) -> dict[str, Any]:
    """Format 3 -> 4: layers may keep assets (``assets/``); a format-3 file has none."""
    if "assets" in document:
        raise ValueError("a format-3 file holds no 'assets'")
    return document


#: Version v -> function upgrading a format-v document (parsed project.json) to v + 1.
#: Loading applies them in order; the result always gets ``format_version = v + 1``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


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
    write_atomically(
        target, lambda handle: _write_archive(handle, json_bytes, project.graph, has_weights, runs, project.custom_code)
    )
    project.path = Path(path)


def project_to_bytes(project: Project) -> bytes:
    """The bytes :func:`save_project` would write."""
    json_bytes, has_weights, runs = _encode(project)
    buffer = io.BytesIO()
    _write_archive(buffer, json_bytes, project.graph, has_weights, runs, project.custom_code)
    return buffer.getvalue()


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
    problem = nodes_problem(graph_dict)
    if problem is not None:
        raise ProjectSaveError(problem)
    try:
        # The graph is saved as it is, but it must read back; graphs edited only
        # through builder_app.core.ops always do.
        ModelGraph.from_dict(graph_dict)
    except GraphError as exc:
        raise ProjectSaveError(f"the graph could not be read back: {exc}") from None
    weight_bytes = 0
    has_weights = False
    for label, layer in weights_file.walk_layers(project.graph):
        if layer.weights is None:
            continue
        has_weights = True
        for i, value in enumerate(layer.weights):
            weight_bytes += weights_file.checked_weight(value, label, i).nbytes
    if weight_bytes > weights_file.MAX_WEIGHTS_BYTES:
        raise ProjectSaveError(
            f"the weights take {_size(weight_bytes)}; a project file holds at most {_size(weights_file.MAX_WEIGHTS_BYTES)}"
        )
    try:
        layer_assets = _assets.checked_assets(project.graph)
    except _Refusal as exc:
        raise ProjectSaveError(str(exc)) from None
    runs = _checked_run_weights(project)
    all_bytes = weight_bytes + sum(weights.nbytes for _, weights in runs)
    if all_bytes > weights_file.MAX_ALL_WEIGHTS_BYTES:
        raise ProjectSaveError(
            f"the weights of the model and of {len(runs)} runs take {_size(all_bytes)}; a project file holds at "
            f"most {_size(weights_file.MAX_ALL_WEIGHTS_BYTES)}: delete earlier runs"
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
        document["run_weights"] = {run_id: {"file": _runs.run_weights_member(run_id)} for run_id, _ in runs}
    if layer_assets:
        document["assets"] = {path: sorted(files) for path, files in sorted(layer_assets.items())}
    code = _checked_code(project)
    if code:
        document["custom_code"] = [file.name for file in code]
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


def _checked_code(project: Project) -> list[_custom.CodeFile]:
    code = project.custom_code
    if not isinstance(code, list) or not all(isinstance(f, _custom.CodeFile) for f in code):
        raise ProjectSaveError("the custom code must be a list of CodeFile")
    if len(code) > _custom.MAX_CODE_FILES:
        raise ProjectSaveError(f"the project holds {len(code)} code files; at most {_custom.MAX_CODE_FILES}")
    if len({f.name for f in code}) != len(code):
        raise ProjectSaveError("the project holds two code files of one name")
    return code


def _checked_run_weights(project: Project) -> list[tuple[str, RunWeights]]:
    """The runs' weights, in the order of the run history, checked as loading checks them."""
    kept = project.run_weights
    if not isinstance(kept, dict):
        raise ProjectSaveError("the runs' weights must be a dict of run id -> RunWeights")
    if len(kept) > _runs.MAX_RUN_WEIGHTS:
        raise ProjectSaveError(f"the project keeps the weights of {len(kept)} runs; a project file holds at most {_runs.MAX_RUN_WEIGHTS}")
    ids = [record.get("id") for record in project.runs]
    for run_id, weights in kept.items():
        if not isinstance(run_id, str) or not _runs.RUN_ID.fullmatch(run_id):
            raise ProjectSaveError(f"the run id {str(run_id)[:80]!r} is not 1 to 64 letters, digits, '_' or '-'")
        if not isinstance(weights, RunWeights):
            raise ProjectSaveError(f"the weights of run {run_id!r} are a {type(weights).__name__}, not RunWeights")
        if ids.count(run_id) != 1:
            where = "has no run" if run_id not in ids else "has more than one run"
            raise ProjectSaveError(f"the run history {where} {run_id!r}, whose weights the project keeps")
        if weights.nbytes > weights_file.MAX_WEIGHTS_BYTES:
            raise ProjectSaveError(f"the weights of run {run_id!r} take {_size(weights.nbytes)}; the limit is {_size(weights_file.MAX_WEIGHTS_BYTES)}")
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


def _write_archive(
    handle: IO[bytes],
    json_bytes: bytes,
    graph: ModelGraph,
    has_weights: bool,
    runs: list[tuple[str, RunWeights]],
    code: list[_custom.CodeFile] = (),  # type: ignore[assignment]
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
                    weights_file.write_layers(h5.create_group("layers"), graph)
                size = h5_file.seek(0, io.SEEK_END)
                if size > weights_file.MAX_WEIGHTS_BYTES:
                    raise ProjectSaveError(
                        f"the weights file would take {_size(size)}; the limit is {_size(weights_file.MAX_WEIGHTS_BYTES)}"
                    )
                if size + runs_size > weights_file.MAX_ALL_WEIGHTS_BYTES:
                    raise ProjectSaveError(
                        f"the weights of the model and of {len(runs)} runs would take {_size(size + runs_size)}; "
                        f"the limit is {_size(weights_file.MAX_ALL_WEIGHTS_BYTES)}: delete earlier runs"
                    )
                h5_file.seek(0)
                with archive.open(_stored_member(WEIGHTS_MEMBER, size), "w") as member:
                    while chunk := h5_file.read(_CHUNK):
                        member.write(chunk)
        for run_id, weights in runs:
            with archive.open(_stored_member(_runs.run_weights_member(run_id), weights.nbytes), "w") as member:
                weights.write_to(member.write)
        for path, files in sorted(_assets.checked_assets(graph).items()):
            for file_name, data in sorted(files.items()):
                info = zipfile.ZipInfo(_assets.member_name(path, file_name), _ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data, compresslevel=_JSON_LEVEL)
        for file in code:
            info = zipfile.ZipInfo(file.member, _ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, file.text.encode("utf-8", "surrogatepass"), compresslevel=_JSON_LEVEL)
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
    raise ProjectLoadError(f"{name}: {one_line(problem)}") from None


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
        named.update({_runs.run_weights_member(run_id): run_id for run_id in document.get("run_weights") or {}})
        asset_members = {
            _assets.member_name(path, file_name): (path, file_name)
            for path, files in (document.get("assets") or {}).items()
            for file_name in files
        }
        for name in asset_members:
            if name not in members:
                raise _Refusal(f"{PROJECT_MEMBER} names {name}, which the archive lacks")
        code_members = {f"{_custom.CUSTOM_DIR}/{name}": name for name in document.get("custom_code") or []}
        for name in code_members:
            if name not in members:
                raise _Refusal(f"{PROJECT_MEMBER} names {name}, which the archive lacks")
        for name in members:
            if name != PROJECT_MEMBER and name not in named and name not in asset_members and name not in code_members:
                raise _Refusal(f"{name} is in the archive but {PROJECT_MEMBER} does not name it")
        for name in named:
            if name not in members:
                raise _Refusal(f"{PROJECT_MEMBER} names {name}, which the archive lacks")
        # What the weights may write to temporary files, bounded before any is read.
        declared = sum(members[name].file_size for name in named)
        if declared > weights_file.MAX_ALL_WEIGHTS_BYTES:
            raise _Refusal(
                f"the weights in the archive take {_size(declared)} uncompressed; the limit is "
                f"{_size(weights_file.MAX_ALL_WEIGHTS_BYTES)}"
            )
        if WEIGHTS_MEMBER in named:
            _read_weights(archive, members[WEIGHTS_MEMBER], project.graph)
        _read_assets(archive, members, asset_members, project.graph)
        project.custom_code = [_read_code(archive, members[member], name) for member, name in code_members.items()]
        try:
            for name, run_id in named.items():
                if run_id is not None:
                    project.run_weights[run_id] = _runs.read_run_weights(archive, members[name])
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
        if (
            name not in _KNOWN_MEMBERS and not _runs.RUN_MEMBER.fullmatch(name) and not _is_asset_member(name)
            and not _is_code_member(name)
        ):
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


def nodes_problem(graph: Any, what: str = "the project") -> str | None:
    """Why a graph's plain dict (or a clipboard payload) holds more nodes than :data:`MAX_NODES`.

    Counted on the dict without recursion, before any node is read; None when it fits.
    """
    total, stack = 0, [graph]
    while stack:
        current = stack.pop()
        if not isinstance(current, dict):
            continue
        nodes, layers = current.get("nodes"), current.get("layers")
        total += len(nodes) if isinstance(nodes, list) else 0
        if isinstance(layers, list):
            stack.extend(layer.get("submodel") for layer in layers if isinstance(layer, dict))
    if total <= MAX_NODES:
        return None
    return f"{what} has {total:,} layer calls (sub-models' included); a project holds at most {MAX_NODES:,}"


def _build_project(document: dict[str, Any]) -> Project:
    """A current-format document -> a Project (without weights)."""
    unknown = sorted(set(document) - _DOC_KEYS)
    if unknown:
        raise _Refusal(f"{PROJECT_MEMBER} has an unknown entry {unknown[0][:40]!r}")
    if "graph" not in document:
        raise _Refusal(f"{PROJECT_MEMBER} holds no graph")
    problem = nodes_problem(document["graph"])
    if problem is not None:
        raise _Refusal(problem)
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
    if "assets" in document:
        _assets.check_entry(document["assets"], f"'assets' in {PROJECT_MEMBER}")
    if "custom_code" in document:
        _check_code_entry(document["custom_code"])
    return Project(graph=graph, training=training, runs=runs)


def _check_run_weights_entry(entry: Any, runs: list[dict[str, Any]]) -> None:
    """``run_weights``: run id -> ``{"file": "runs/<id>.weights.h5"}``, for runs in the history."""
    where = f"'run_weights' in {PROJECT_MEMBER}"
    if not isinstance(entry, dict):
        raise _Refusal(f"{where} should be an object, not {_json_kind(entry)}")
    if len(entry) > _runs.MAX_RUN_WEIGHTS:
        raise _Refusal(f"{where} names {len(entry)} runs; a project keeps the weights of at most {_runs.MAX_RUN_WEIGHTS}")
    ids = [record.get("id") for record in runs]
    for run_id, value in entry.items():
        if not _runs.RUN_ID.fullmatch(run_id):
            raise _Refusal(f"{where} names a run {run_id[:40]!r}; a run id is 1 to 64 letters, digits, '_' or '-'")
        if value != {"file": _runs.run_weights_member(run_id)}:
            raise _Refusal(f"{where}: run {run_id!r} should be {{\"file\": \"{_runs.run_weights_member(run_id)}\"}}")
        if ids.count(run_id) != 1:
            what = "lacks" if run_id not in ids else "has more than once"
            raise _Refusal(f"{where} names run {run_id!r}, which the run history {what}")


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _is_code_member(name: str) -> bool:
    head, _, file_name = name.partition("/")
    return head == _custom.CUSTOM_DIR and _custom.name_problem(file_name) is None


def _check_code_entry(entry: Any) -> None:
    where = f"'custom_code' in {PROJECT_MEMBER}"
    if not isinstance(entry, list) or not all(isinstance(name, str) for name in entry):
        raise _Refusal(f"{where} should be a list of file names")
    if len(entry) > _custom.MAX_CODE_FILES or len(set(entry)) != len(entry):
        raise _Refusal(f"{where} names {len(entry)} files, some twice or more than {_custom.MAX_CODE_FILES}")
    for name in entry:
        problem = _custom.name_problem(name)
        if problem:
            raise _Refusal(f"{where}: {problem}")


def _read_code(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> _custom.CodeFile:
    """A code member as text (it is never run here)."""
    buffer = bytearray()
    _copy_member(archive, info, _custom.MAX_CODE_BYTES, buffer.extend)
    try:
        return _custom.CodeFile(name, bytes(buffer).decode("utf-8"))
    except UnicodeDecodeError:
        raise _Refusal(f"{info.filename} is not UTF-8 text") from None
    except _custom.CustomCodeError as exc:
        raise _Refusal(str(exc)) from None


def _is_asset_member(name: str) -> bool:
    head, _, rest = name.partition("/")
    path, _, file_name = rest.rpartition("/")
    return head == _assets.ASSETS_DIR and _assets.is_layer_path(path) and bool(_assets.ASSET_FILE.fullmatch(file_name))


def _read_assets(
    archive: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    asset_members: dict[str, tuple[str, str]],
    graph: ModelGraph,
) -> None:
    """Reads the asset members project.json names and gives each layer its files (all or none)."""
    declared = sum(members[name].file_size for name in asset_members)
    _assets.check_totals(len(asset_members), declared)
    found: dict[str, dict[str, bytes]] = {}
    for name, (path, file_name) in asset_members.items():
        if _assets.find_layer(graph, path) is None:
            raise _Refusal(f"{name} holds assets for an unknown layer '{path[:80]}'")
        _assets.check_size(members[name].file_size, name)
        buffer = bytearray()
        _copy_member(archive, members[name], _assets.MAX_ASSET_BYTES, buffer.extend)
        found.setdefault(path, {})[file_name] = bytes(buffer)
    for path, files in found.items():
        layer = _assets.find_layer(graph, path)
        assert layer is not None
        layer.assets = files


def _read_weights(archive: zipfile.ZipFile, info: zipfile.ZipInfo, graph: ModelGraph) -> None:
    """Reads the weights member and gives each layer its arrays (all or none)."""
    with tempfile.TemporaryFile() as h5_file:  # private, removed even if we are killed
        size = _copy_member(archive, info, weights_file.MAX_WEIGHTS_BYTES, h5_file.write)
        h5_file.seek(0)
        found: list[tuple[Layer, list[np.ndarray]]] = []
        weights_file.walk_weights_file(
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
        name = weights_file.layer_name(key)
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
            found.append((layer, weights_file.read_vars(safe_io.h5_subgroup(layer_group, "vars", label, budget), label, budget)))
        if "layers" in entries and layer.submodel is not None:
            _read_layer_groups(safe_io.h5_subgroup(layer_group, "layers", label, budget), layer.submodel, f"{label}/", budget, found)


