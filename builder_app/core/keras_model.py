"""Graph -> a live ``keras.Model``, with the weights the project holds.

Every exporter that needs a real model (``.keras``, SavedModel, ONNX), the
importer (which loads weights into it) and the training runner start here.
Keras is imported only when a model is built. Layers are made through the same
safe path as shape inference (:func:`builder_app.core.keras_build.make_keras_layer`),
calls through the same call templates, so the model Keras builds is the graph
the user sees.
"""

from __future__ import annotations

from typing import Any

from builder_app.core import catalog, keras_compat
from builder_app.core.calls import call_arguments
from builder_app.core.graph import INPUT_CLASS, Layer, ModelGraph, PortRef
from builder_app.core.keras_build import LayerError, is_operation, make_keras_layer
from builder_app.core.messages import problems_message
from builder_app.core.shapes import ShapeEngine


class BuildError(ValueError):
    """The graph cannot become a Keras model; the message names the node."""


def build_keras_model(graph: ModelGraph, *, with_weights: bool = True, validate: bool = True):
    """Builds the Keras functional model the graph describes.

    Args:
        graph: A valid graph (see :class:`ShapeEngine`); invalid ones are refused.
        with_weights: Load the weights the project holds into the layers.
        validate: Check the graph with the shape engine first, so that an error
            names its node. Without it, building is faster (a large model's
            validation costs about half a build) and an invalid graph fails with
            whatever Keras says; layers are made through the same safe path.

    Raises:
        BuildError: The graph has errors, or a layer's weights do not fit it.
    """
    if not validate:
        try:
            return _build(graph, graph.name, None, with_weights)
        except BuildError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever Keras raises for a bad graph
            raise BuildError(f"Keras cannot build the model: {type(exc).__name__}: {exc}") from None
    engine = ShapeEngine(graph)
    try:
        problems = engine.errors()
        counts = {n: len(r.outputs or [None]) for n, r in engine.results().items()}
    finally:
        engine.close()
    if problems:
        raise BuildError(problems_message(graph, problems))
    return _build(graph, graph.name, counts, with_weights)


def refuse_if_it_cannot_run_here(model) -> None:
    """Refuses, in one line naming the layer, a model this machine cannot run.

    Building a model symbolically, exporting or saving it works anywhere; running
    it (training, ``export --check``, inspecting activations) needs every kernel on
    this machine. TensorFlow on some CPUs has no channels_first convolution.

    Raises:
        BuildError: A layer cannot run here.
    """
    names = keras_compat.layers_that_cannot_run_here(model)
    if names:
        more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
        raise BuildError(f"layer '{names[0]}' cannot run here: {keras_compat.CHANNELS_FIRST_ON_CPU}{more}")


def _build(graph: ModelGraph, name: str, counts: dict[str, int] | None, with_weights: bool):
    import keras

    made: dict[str, Any] = {}
    tensors: dict[PortRef, Any] = {}
    for node_id in graph.topological_order():
        layer = graph.layer_of(node_id)
        if layer.class_name == INPUT_CLASS:
            tensors[PortRef(node_id, 0)] = _input(keras, layer)
            continue
        obj = made.get(layer.name)
        if obj is None:
            obj = made[layer.name] = _make(layer, with_weights)
        inputs = {port: tensors[ref] for port, ref in graph.inputs_of(node_id).items()}
        node = graph.node(node_id)
        if layer.submodel is not None:
            args, kwargs = call_arguments(node.call or _submodel_call(inputs), None, inputs)
        else:
            ports = None if is_operation(layer.class_name) else _layer_ports(layer.class_name)
            if ports is None and node.call is None:
                args, kwargs = [inputs[0]], {}
            else:
                args, kwargs = call_arguments(node.call, ports, inputs)
        outputs = keras.tree.flatten(obj(*args, **kwargs))
        for port, tensor in enumerate(outputs):
            tensors[PortRef(node_id, port)] = tensor
    if counts is None:  # how many outputs each node has, as Keras built them
        counts = {}
        for ref in tensors:
            counts[ref.node] = max(counts.get(ref.node, 0), ref.port + 1)
    model_inputs = [tensors[PortRef(n, 0)] for n in graph.model_inputs()]
    model_outputs = [tensors[ref] for ref in graph.model_outputs(counts)]
    model = keras.Model(
        model_inputs[0] if len(model_inputs) == 1 else model_inputs,
        model_outputs[0] if len(model_outputs) == 1 else model_outputs,
        name=name,
    )
    if with_weights:
        for layer_name, obj in made.items():
            layer = graph.layers[layer_name]
            if layer.weights is not None and layer.submodel is None:
                _set_weights(obj, layer)
    return model


def _submodel_call(inputs: dict[int, Any]) -> dict[str, Any]:
    """The usual call of a sub-model: one tensor, or a list of them."""
    if len(inputs) == 1:
        return {"args": [{"port": next(iter(inputs))}], "kwargs": {}}
    return {"args": [[{"port": p} for p in sorted(inputs)]], "kwargs": {}}


def _input(keras, layer: Layer):
    config = layer.config
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None:
        shape = [config.get("batch_size"), *config.get("shape", [])]
    dtype = config.get("dtype") or "float32"
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name", "float32")
    return keras.Input(
        batch_shape=tuple(shape),
        dtype=dtype,
        sparse=bool(config.get("sparse", False)),
        name=layer.name,
    )


def _make(layer: Layer, with_weights: bool):
    if layer.submodel is not None:
        model = _build(layer.submodel, layer.name, None, with_weights)
        model.trainable = bool(layer.config.get("trainable", True))
        return model
    try:
        return make_keras_layer(layer)
    except LayerError as exc:  # the engine reported it already; defensive
        raise BuildError(str(exc)) from None


def _set_weights(obj, layer: Layer) -> None:
    expected = [tuple(w.shape) for w in obj.weights]
    given = [tuple(w.shape) for w in layer.weights]
    if expected != given:
        raise BuildError(
            f"the weights of '{layer.name}' do not fit it any more: it has {expected}, "
            f"the project holds {given}"
        )
    obj.set_weights(layer.weights)


def copy_weights_to_graph(graph: ModelGraph, model) -> None:
    """Gives each graph layer the current weights of its Keras layer, by name (sub-models too)."""
    import numpy as np

    objects = {obj.name: obj for obj in model.layers}
    for layer in graph.layers.values():
        obj = objects.get(layer.name)
        if obj is None:
            continue  # an Input, or a keras.ops call: no weights
        if layer.submodel is not None:
            copy_weights_to_graph(layer.submodel, obj)
        elif obj.weights:
            layer.weights = [np.array(w) for w in obj.get_weights()]


def _layer_ports(class_name: str):
    try:
        return catalog.layer_spec(class_name).ports
    except KeyError:  # Keras's own layers outside keras.layers, or trusted custom code
        from builder_app.core import custom_code

        return custom_code.ports(class_name)
