"""Frozen backbones in exported code: one ``.trainable = False``, and ``keras.applications`` when it is one.

An imported keypoint model holds MobileNetV2 as a frozen sub-model. Written as
it was saved, its function repeats ``trainable=False`` on each of its 150 layers;
the Python export writes the sub-model's function without them (:func:`thawed`)
and freezes it once where it is made. When the sub-model is exactly what
``keras.applications.<Name>(input_shape=..., include_top=False, weights=None)``
builds (same layers, configs and wiring), that call is written instead of the
function (:func:`application_call`); the weights load into it by the same paths.

Keras is imported lazily; no Qt here.
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any

from builder_app.core.graph import INPUT_CLASS, ModelGraph

#: Sub-models larger than this are not compared with an application (building one costs).
MAX_LAYERS = 2_000


def thawed(graph: ModelGraph) -> ModelGraph:
    """A copy of a frozen sub-model's graph without its layers' ``trainable=False``.

    The sub-model's own ``.trainable = False`` sets every layer inside it so.
    """
    copy = graph.clone()
    stack = [copy]
    while stack:
        current = stack.pop()
        for layer in current.layers.values():
            if layer.config.get("trainable") is False:
                del layer.config["trainable"]
            if layer.submodel is not None:
                stack.append(layer.submodel)
    return copy


def application_call(graph: ModelGraph) -> tuple[str, tuple[int | None, ...]] | None:
    """The keras.applications model this graph is exactly, as ``(Name, input_shape)``, or None.

    ``keras.applications.Name(input_shape=..., include_top=False, weights=None)`` must
    build the very layers, configs and wiring; None too when that cannot be told.
    """
    inputs = graph.model_inputs()
    if len(inputs) != 1 or len(graph.layers) > MAX_LAYERS or graph.structure:
        return None
    shape = graph.layer_of(inputs[0]).config.get("batch_shape")
    if not isinstance(shape, list) or len(shape) < 2 or not all(d is None or isinstance(d, int) for d in shape):
        return None
    candidates = _candidates(graph.name)
    if not candidates:
        return None
    wanted = _graph_form(graph)
    for name in candidates:
        built = _application_form(name, tuple(shape[1:]))
        if wanted is not None and built == wanted:
            return name, tuple(shape[1:])
    return None


def _candidates(model_name: str) -> list[str]:
    import keras

    plain = model_name.lower()
    names = [
        n for n in dir(keras.applications)
        if n[:1].isupper() and callable(getattr(keras.applications, n)) and plain.startswith(n.lower())
    ]
    return sorted(names, key=len, reverse=True)  # MobileNetV2 before MobileNet


@functools.lru_cache(maxsize=8)
def _application_form(name: str, input_shape: tuple[int | None, ...]) -> str | None:
    """The comparable form of what the application builds, or None if it does not build."""
    import keras

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = getattr(keras.applications, name)(input_shape=input_shape, include_top=False, weights=None)
        return _model_form(model)
    except Exception:  # noqa: BLE001 - no match: the sub-model is written as a function
        return None


def _graph_form(graph: ModelGraph) -> str | None:
    """The comparable form of the Keras model the sub-model's graph builds (None: it does not build)."""
    from builder_app.core.keras_model import build_keras_model

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _model_form(build_keras_model(graph, with_weights=False))
    except Exception:  # noqa: BLE001 - no match: the sub-model is written as a function
        return None


def _model_form(model: Any) -> str:
    """A Keras model's saved config, without what does not tell two builds apart.

    The Inputs' names (Keras counts them up per process), ``trainable`` (the frozen
    sub-model sets it once) and Keras's ``shared_object_id`` marks are left out.
    """
    import keras

    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model), default=str))
    inputs = {
        layer["config"].get("name")
        for layer in config.get("config", {}).get("layers", [])
        if layer.get("class_name") == INPUT_CLASS
    }
    return json.dumps(_plain(config, inputs), sort_keys=True)


def _plain(value: Any, inputs: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, inputs) for k, v in value.items() if k not in ("shared_object_id", "trainable")}
    if isinstance(value, list):
        return [_plain(v, inputs) for v in value]
    if isinstance(value, str) and value in inputs:
        return "<input>"
    return value


