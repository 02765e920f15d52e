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


def structured_model(graph: ModelGraph, model: Any) -> Any:
    """The app's model regrouped as the graph says (dict inputs stay dicts); the model itself if no change.

    The new model shares the layers and weights: it is the same graph of tensors
    under another grouping of its ends, which ``.keras`` and SavedModel keep.
    """
    import keras

    from builder_app.core.io_structure import structured

    inputs, outputs = list(model.inputs), list(model.outputs)
    grouped_in = structured(graph, "inputs", inputs, len(graph.explicit_inputs()))
    grouped_out = structured(graph, "outputs", outputs, len(graph.explicit_outputs()))
    plain_in = inputs[0] if len(inputs) == 1 else inputs
    plain_out = outputs[0] if len(outputs) == 1 else outputs
    if _same_grouping(grouped_in, plain_in) and _same_grouping(grouped_out, plain_out):
        return model
    return keras.Model(grouped_in, grouped_out, name=model.name)


def _same_grouping(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (not isinstance(a, list) or len(a) == len(b))


def feed_names(graph: ModelGraph, model: Any) -> dict[str, Any]:
    """What ``export --check`` needs to feed an export and read it in the app's order."""
    from builder_app.core.io_structure import effective

    ins = effective(graph, "inputs", len(model.inputs), len(graph.explicit_inputs()))
    outs = effective(graph, "outputs", len(model.outputs), len(graph.explicit_outputs()))
    return {
        "inputs": ins.get("keys") or [_input_name(t) for t in model.inputs],
        "inputs_dict": ins["kind"] == "dict",
        "outputs": outs.get("keys"),
    }
