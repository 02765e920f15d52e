"""How shape inference phrases what it finds: sentences on nodes that name the nodes involved.

No Keras and no Qt here: the engine (:mod:`builder_app.core.shapes`) and the build
machinery (:mod:`builder_app.core.keras_build`) raise or return these sentences.
"""

from __future__ import annotations

import re

from builder_app.core.graph import ModelGraph
from builder_app.core.text import format_shape

#: Layers that look up integer ids (a float input is cast, and worth a warning).
INTEGER_INPUT_LAYERS = {"Embedding", "ReversibleEmbedding"}


#: Layers whose messages say "merge": their inputs must agree in shape.
ELEMENTWISE_MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}


class NodeError(Exception):
    """A problem already phrased for the user."""


def problems_message(graph: ModelGraph, problems: list[tuple[str | None, str]]) -> str:
    """One line for a model with errors: the first, where it is, and how many more."""
    node, message = problems[0]
    where = f"'{graph.label(node)}': " if node else ""
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"the model is not valid: {where}{message}{more}"


def shared_input_message(graph: ModelGraph, node_id: str) -> str:
    """An Input layer with more than one node: Keras makes one tensor of an InputLayer."""
    node = graph.node(node_id)
    calls = graph.nodes_of_layer(node.layer)
    return (
        f"Input '{graph.label(node_id)}': the Input layer '{node.layer}' has {len(calls)} nodes, "
        f"but an Input is one tensor of the model; give each node its own Input layer "
        f"or wire every consumer from one node"
    )


def count_of(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def node_warnings(graph: ModelGraph, node_id: str, class_name: str, inputs) -> list[str]:
    found = []
    if class_name in ("Embedding", "ReversibleEmbedding"):
        for _, (ref, tensor) in inputs.items():
            if not re.match(r"u?int", tensor.dtype):
                found.append(
                    f"Embedding expects integer token ids but gets {tensor.dtype} from "
                    f"'{graph.label(ref.node)}'; Keras casts it to int32 (set that Input's dtype to int32)"
                )
    return found


def clean_message(exc: BaseException) -> str:
    """Keras's message on one line, without the boilerplate around it."""
    text = str(exc) or type(exc).__name__
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # terminal bold/reset codes
    text = re.split(r"\n\s*(?:Arguments received by|Received arguments|Call arguments received)", text)[0]
    text = re.sub(r"Exception encountered when calling [^\n]*\n", "", text)
    text = re.sub(r"^Error when deserializing class '\w+' using config=.*?Exception encountered: ", "", text, flags=re.S)
    text = re.sub(r"^Exception encountered: ", "", text)
    text = text.replace(" with name 'None'", "")
    # TensorFlow's eager errors: "{{function_node __wrapped__Mul_device_...}} Incompatible shapes [Op:Mul] name: "
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    text = re.sub(r"\s*\[Op:\w+\](?:\s*name:.*)?$", "", text, flags=re.S)
    text = re.sub(r"\s+", " ", text).strip()
    from builder_app.core.keras_sentences import as_sentence

    text = as_sentence(text)  # Keras's backticked phrasing, as a sentence
    if len(text) > 400:
        text = text[:397] + "..."
    return text


def describe_failure(graph: ModelGraph, node_id: str, class_name: str, inputs, exc: BaseException) -> str:
    """Keras's refusal of a node's inputs, phrased for the user: which inputs, from where.

    Merges and Concatenate say which shapes disagree; anything else keeps Keras's
    own message with the inputs it was given.
    """
    message = clean_message(exc)
    sources = [(graph.label(ref.node), t.shape) for _, (ref, t) in sorted(inputs.items())]
    if class_name in ELEMENTWISE_MERGES and len({s for _, s in sources}) > 1:
        listed = " vs ".join(f"{format_shape(s)} from '{name}'" for name, s in sources)
        return f"{class_name} needs inputs of one shape: {listed}"
    if class_name == "Concatenate" and sources:
        listed = ", ".join(f"{format_shape(s)} from '{name}'" for name, s in sources)
        return f"Concatenate needs inputs that match except on the concatenation axis: {listed}"
    if len(sources) == 1:
        name, shape = sources[0]
        return f"{message} (input {format_shape(shape)} from '{name}')"
    if sources:
        listed = ", ".join(f"{format_shape(s)} from '{name}'" for name, s in sources)
        return f"{message} (inputs {listed})"
    return message
