"""What the exports need to know about a model's inputs: the vocabularies they feed.

Keras is imported by the callers; no Qt here.
"""

from __future__ import annotations

from typing import Any

from builder_app.core.graph import ModelGraph
from builder_app.core.layer_state import vocabulary_literal


def input_vocabularies(graph: ModelGraph, model: Any) -> list[list[Any] | None]:
    """For each of ``model.inputs``, the vocabulary of a lookup it feeds directly (or None).

    ``export --check`` feeds such an input tokens the lookup knows, not only
    unknown ones, so that a lost vocabulary shows as a difference.
    """
    by_name = {graph.layer_of(node_id).name: node_id for node_id in graph.model_inputs()}
    found: list[list[Any] | None] = []
    for tensor in model.inputs:
        node_id = by_name.get(_input_name(tensor))
        vocabulary = None
        if node_id is not None:
            for edge in graph.consumers_of(node_id):
                layer = graph.layer_of(edge.dst)
                vocabulary = vocabulary_literal(layer) or _plain_list(layer.config.get("vocabulary"))
                if vocabulary:
                    break
        found.append(vocabulary or None)
    return found


def _input_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return getattr(operation, "name", None) or str(getattr(tensor, "name", ""))


def _plain_list(value: Any) -> list[Any] | None:
    return value if isinstance(value, list) and value else None


def with_state(layer: Any, where: str) -> Any:
    """The layer with its asset state in its config, as code writes it: ``vocabulary=[...]``.

    A layer whose assets cannot be written as an argument is refused (CodegenError),
    never written without them.
    """
    if not getattr(layer, "assets", None):
        return layer
    from builder_app.exporters.python_code import CodegenError

    try:
        vocabulary = vocabulary_literal(layer)
    except (UnicodeDecodeError, ValueError):
        vocabulary = None
    others = sorted(set(layer.assets) - {"vocabulary.txt"})
    if vocabulary is None or others:
        what = ", ".join(others or sorted(layer.assets))
        raise CodegenError(f"{where}: its state (the asset files {what}) cannot be written as code")
    config = {k: v for k, v in layer.config.items() if k != "vocabulary_size"}
    config["vocabulary"] = vocabulary
    twin = layer.clone()
    twin.config = config
    twin.assets = None
    return twin
