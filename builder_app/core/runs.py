"""The run history's weights: what each finished run left, and restoring or deleting a run.

A project keeps, beside each run's record in ``project.runs``, the weights the
run left: ``runs/<run id>.weights.h5`` in the project file (format 2), in the
layout of ``model.weights.h5`` (:mod:`builder_app.core.weights_file`). They are
checked like the model's weights when the file opens, but not matched to the
graph, which may have changed since: :func:`restore_run` does that. While a
project is open each is kept in a private temporary file (:class:`RunWeights`),
not in memory.

This module knows the run ids and their archive members; the file format itself
(what project.json says about them, loading and saving) is
:mod:`builder_app.core.project`'s.
"""

from __future__ import annotations

import io
import re
import tempfile
import threading
import zipfile
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import h5py
import numpy as np

from builder_app.core import safe_io, weights_file
from builder_app.core.graph import Layer, ModelGraph
from builder_app.core.safe_io import Refused as _Refusal
from builder_app.core.safe_io import h5_children as _children
from builder_app.core.safe_io import size_text as _size
from builder_app.core.text import format_shape
from builder_app.core.weights_file import ProjectSaveError

if TYPE_CHECKING:
    from builder_app.core.project import Project

#: A run id as the weights of a run use it: it names the run's member.
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The archive member of a run's weights; its group is the run id.
RUN_MEMBER = re.compile(r"runs/([A-Za-z0-9_-]{1,64})\.weights\.h5")
#: Runs whose weights one project keeps (read at call time, so tests can lower
#: it). While the project is open each one is a private temporary file, so an
#: open file descriptor (macOS allows a process 256 by default); past this,
#: :func:`record_run` lets the oldest runs' weights go.
MAX_RUN_WEIGHTS = 64
#: Sub-models nested in a run's weights (project.json allows 32: four levels each).
MAX_RUN_WEIGHTS_DEPTH = 32

_CHUNK = safe_io.CHUNK


class RunError(ValueError):
    """A run cannot be restored or deleted as asked; the one-line message says why."""


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
        for label, layer in weights_file.walk_layers(graph):
            for i, value in enumerate(layer.weights or ()):
                total += weights_file.checked_weight(value, label, i).nbytes
        if total > weights_file.MAX_WEIGHTS_BYTES:
            raise ProjectSaveError(f"the weights take {_size(total)}; a run keeps at most {_size(weights_file.MAX_WEIGHTS_BYTES)}")
        handle = tempfile.TemporaryFile()
        try:
            with h5py.File(handle, "w") as h5:
                weights_file.write_layers(h5.create_group("layers"), graph)
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
    what a project file holds (:data:`weights_file.MAX_ALL_WEIGHTS_BYTES`, the model's own
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
    if trained is None or not weights_file.holds_weights(trained):
        return []
    project.run_weights[run_id] = RunWeights.from_graph(trained)
    dropped: list[str] = []
    model_bytes = sum(weights_file.array_bytes(layer.weights) for _, layer in weights_file.walk_layers(project.graph))
    while project.run_weights and (
        len(project.run_weights) > MAX_RUN_WEIGHTS
        or model_bytes + sum(w.nbytes for w in project.run_weights.values()) > weights_file.MAX_ALL_WEIGHTS_BYTES
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
    layers = dict(weights_file.walk_layers(project.graph))
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
    return "[" + ", ".join(format_shape(shape) for shape in shapes) + "]"


def read_run_weights(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> RunWeights:
    """A run's weights member, copied to a private temporary file and checked (not read)."""
    handle = tempfile.TemporaryFile()
    try:
        size = safe_io.copy_member(archive, info, weights_file.MAX_WEIGHTS_BYTES, handle.write, kind="project file")
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
    weights_file.walk_weights_file(
        handle, size, label, lambda layers, budget: _walk_run_layers(layers, "", 0, budget, read, found)
    )
    return found


def _walk_run_layers(
    group: h5py.Group, prefix: str, depth: int, budget: safe_io.H5Budget, read: bool, found: dict[str, list[Any]]
) -> None:
    if depth > MAX_RUN_WEIGHTS_DEPTH:
        raise _Refusal(f"{budget.label}: sub-models are nested more than {MAX_RUN_WEIGHTS_DEPTH} levels deep")
    for key in sorted(_children(group, budget)):
        name = weights_file.layer_name(key)
        if not name:
            raise _Refusal(f"{budget.label}: '{prefix}{key[:80]}' is not a layer name")
        label = f"{prefix}{name}"
        layer_group = safe_io.h5_subgroup(group, key, label, budget)
        entries = _children(layer_group, budget)
        if entries - {"vars", "layers"}:
            unexpected = sorted(entries - {"vars", "layers"})[0][:40]
            raise _Refusal(f"{budget.label}: layer '{label}' has an unexpected entry {unexpected!r}")
        if "vars" in entries:
            found[label] = weights_file.read_vars(safe_io.h5_subgroup(layer_group, "vars", label, budget), label, budget, read=read)
        if "layers" in entries:
            inner = safe_io.h5_subgroup(layer_group, "layers", label, budget)
            _walk_run_layers(inner, f"{label}/", depth + 1, budget, read, found)
