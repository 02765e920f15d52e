"""The HDF5 weights layout a project file keeps, for the model and for each run.

``model.weights.h5`` and ``runs/<run id>.weights.h5`` are laid out as Keras's
``model.save_weights("x.weights.h5")`` writes them: ``layers/<layer>/vars/0``,
``.../1``, ... and, for the layers of a sub-model,
``layers/<sub-model>/layers/<layer>/vars/...``. Unlike Keras 3 (which names
groups after the class, ``dense_1``), groups are named after the layer, so
weights are matched to layers by name. A layer whose ``weights`` is None has no
group; an empty list is an empty ``vars`` group.

This module writes that layout, and opens and walks it under the limits below
(read at call time, so tests can lower them); what the walk finds is up to the
caller (:mod:`builder_app.core.project` matches the model's to the graph,
:mod:`builder_app.core.runs` keeps a run's as they are). It reads plain numeric
datasets only, through :mod:`builder_app.core.safe_io`, and never executes
anything from a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import unquote

import h5py
import numpy as np

from builder_app.core import safe_io
from builder_app.core.graph import Layer, ModelGraph
from builder_app.core.safe_io import GIB as _GIB
from builder_app.core.safe_io import Refused as _Refusal
from builder_app.core.safe_io import h5_children as _children
from builder_app.core.safe_io import read_h5_dataset as _read_dataset

#: Uncompressed size of one weights file (model.weights.h5, or one run's weights).
MAX_WEIGHTS_BYTES = 2 * _GIB
#: Uncompressed size of all weights members of a project file together: what
#: opening a file may write to temporary files. Weights are stored, not deflated,
#: so this is also about the most the weights of a file this version writes can take.
MAX_ALL_WEIGHTS_BYTES = 2 * _GIB
#: Groups and datasets in one weights file.
MAX_H5_OBJECTS = 100_000
#: Elements of one weight array.
MAX_WEIGHT_ELEMENTS = 1 << 31

_BFLOAT16 = safe_io.BFLOAT16


class ProjectSaveError(ValueError):
    """A project cannot be written as it is (the target file is left untouched)."""


def checked_weight(value: Any, label: str, index: int) -> np.ndarray:
    """Weight ``index`` of layer ``label`` as an array, if a weights file can hold it.

    Raises:
        ProjectSaveError: It is not numeric, or has too many elements.
    """
    array = np.asarray(value)
    if array.dtype.name not in safe_io.NUMERIC_DTYPES and array.dtype.name != _BFLOAT16:
        raise ProjectSaveError(
            f"weight {index} of layer '{label}' has dtype {array.dtype}; only numeric weights can be saved"
        )
    if array.size > MAX_WEIGHT_ELEMENTS:
        raise ProjectSaveError(f"weight {index} of layer '{label}' has more than {MAX_WEIGHT_ELEMENTS} elements")
    return array


def write_layers(group: h5py.Group, graph: ModelGraph) -> None:
    """Writes the weights of ``graph``'s layers (and their sub-models') under ``group``."""
    for layer in graph.layers.values():
        inner = layer.submodel is not None and holds_weights(layer.submodel)
        if layer.weights is None and not inner:
            continue
        layer_group = group.create_group(group_key(layer.name))
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
            write_layers(layer_group.create_group("layers"), layer.submodel)


def holds_weights(graph: ModelGraph) -> bool:
    """Whether any layer of ``graph`` (or of its sub-models) holds weights."""
    return any(layer.weights is not None for _, layer in walk_layers(graph))


def walk_layers(graph: ModelGraph, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """Every layer, sub-models' layers included, with a path-like label."""
    for layer in graph.layers.values():
        label = f"{prefix}{layer.name}"
        yield label, layer
        if layer.submodel is not None:
            yield from walk_layers(layer.submodel, f"{label}/")


def array_bytes(weights: list[Any] | None) -> int:
    """The bytes a layer's weights take in memory."""
    return sum(np.asarray(w).nbytes for w in weights or ())


def group_key(name: str) -> str:
    """The HDF5 group name of a layer: the layer name, escaped only where HDF5 needs it.

    Layer names never contain "/", but "." is a valid Keras name and means "this
    group" to HDF5; "%" is escaped so that the escaping can be undone.
    """
    key = name.replace("%", "%25")
    return "%2E" if key == "." else key


def layer_name(key: str) -> str | None:
    """The layer an HDF5 group name stands for; None if :func:`group_key` would not give it."""
    name = unquote(key, errors="strict")
    return name if group_key(name) == key else None


def read_vars(group: h5py.Group, label: str, budget: safe_io.H5Budget, *, read: bool = True) -> list[Any]:
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


def walk_weights_file(
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
