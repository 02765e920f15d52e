"""Weights for the layers of a model that cannot be rebuilt whole (a custom layer lacks its code).

When a node needs code the project does not run, the model cannot be built and
its weights could not be loaded the usual way. Each other layer is then built on
its own from the ``build_config`` Keras saved beside its config (the input shapes
of its first call) and given its weights from the file. Each layer's weights are
first declared without being created (:func:`keras_compat.recording_weights`)
and weighed against what the file holds at its path: only a layer whose weights
match in number is built for real. Nothing here runs code from the file. No Qt.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from builder_app.core.graph import INPUT_CLASS, ModelGraph
from builder_app.core.text import one_line

#: The most elements one layer may declare to be rebuilt on its own.
MAX_LAYER_ELEMENTS = 2**31 - 1


def build_configs(parsed: Any) -> dict[str, dict]:
    """Layer name -> ``build_config`` of the top-level layers of a saved functional model config."""
    config = parsed.get("config") if isinstance(parsed, Mapping) else None
    layers = config.get("layers") if isinstance(config, Mapping) else None
    found: dict[str, dict] = {}
    for item in layers if isinstance(layers, list) else []:
        if not isinstance(item, Mapping):
            continue
        name = item.get("name", (item.get("config") or {}).get("name") if isinstance(item.get("config"), Mapping) else None)
        build = item.get("build_config")
        if isinstance(name, str) and isinstance(build, dict) and _plain_shapes(build):
            found[name] = build
    return found


def _plain_shapes(value: Any, depth: int = 0) -> bool:
    """Only dicts, lists, ints and None, a few levels deep: shapes, nothing else."""
    if depth > 6:
        return False
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain_shapes(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return len(value) <= 64 and all(_plain_shapes(v, depth + 1) for v in value)
    return value is None or (type(value) is int and 0 <= value < 2**31)


def load_layer_by_layer(
    graph: ModelGraph,
    weights_path,
    paths: Mapping[str, str],
    held: Mapping[str, int],
    configs: Mapping[str, dict],
) -> tuple[list[str], list[str]]:
    """Gives each layer that can be built alone its weights from a Keras 3 weights file.

    Args:
        graph: The imported graph (top level only; sub-models are not visited).
        weights_path: The ``model.weights.h5`` file, already checked.
        paths: Layer name -> its group in the file (``layers/dense_1``).
        held: Elements the file holds under each group.
        configs: Layer name -> its saved ``build_config``.

    Returns:
        The names of the layers that got their weights, and one line per layer that
        holds weights in the file but did not get them.
    """
    from builder_app.core import keras_compat
    from builder_app.core.keras_build import LayerError, make_keras_layer

    loaded: list[str] = []
    missed: list[str] = []
    with keras_compat.weights_store(weights_path) as store:
        for name, path in paths.items():
            layer = graph.layers.get(name)
            if layer is None or layer.class_name == INPUT_CLASS or layer.submodel is not None:
                continue
            wanted = held.get(path, 0)
            if not wanted:
                continue
            build = configs.get(name)
            try:
                if build is None:
                    raise LayerError("its input shapes are not in the file")
                with keras_compat.recording_weights() as records:
                    _build(make_keras_layer(layer), build)
                declared = sum(size for size, _ in records)
                if declared != wanted or declared > MAX_LAYER_ELEMENTS:
                    raise LayerError(f"it declares {declared:,} weights, the file holds {wanted:,}")
                obj = make_keras_layer(layer)
                _build(obj, build)
                exc = keras_compat.load_saved_state(obj, store, path)
                if exc is not None:
                    raise LayerError(one_line(exc, 200))
                layer.weights = [np.array(w) for w in obj.get_weights()]
                loaded.append(name)
            except LayerError as exc:
                missed.append(f"layer '{name}': {exc}")
            except Exception as exc:  # noqa: BLE001 - Keras refused this layer alone: the others go on
                missed.append(f"layer '{name}': {type(exc).__name__}: {one_line(exc, 200)}")
    return loaded, missed


def _build(obj, build_config: dict) -> None:
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        obj.build_from_config(build_config)
