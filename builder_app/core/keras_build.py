"""Keras's build machinery: making a Keras object from a graph layer and calling it symbolically.

A graph layer becomes a Keras layer only through :func:`make_keras_layer` (known
classes, checked configs); it is built on its first call's input shapes with
``add_weight`` recording the declared shapes instead of creating variables
(:mod:`builder_app.core.keras_compat`), and called with Keras's own
``compute_output_shape`` / ``compute_output_spec``. :mod:`builder_app.core.shapes`
decides what to build and when. Keras is imported lazily; no Qt here.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from builder_app.core import catalog, keras_compat
from builder_app.core.calls import call_arguments, template_ports
from builder_app.core.messages import NodeError, clean_message
from builder_app.core.text import format_shape

# Facts about call templates, by identity: a node's template is replaced, never
# mutated, so the object itself is the key (and is kept alive by the entry).
_call_cache: dict[int, tuple[dict[str, Any], str, bool, frozenset[int]]] = {}


_merge_classes: dict[type, bool] = {}


# Layers for which Keras's compute_output_spec reduces to compute_output_shape
# with the single input's shape and the layer's compute dtype.
_fast_classes: dict[type, bool] = {}


Shape = tuple[int | None, ...]


class TensorType(NamedTuple):
    """A symbolic tensor: its shape (batch dimension first) and dtype."""

    shape: Shape
    dtype: str


@dataclass
class LayerState:
    """The Keras instance standing for one graph layer."""

    instance: Any = None
    error: str | None = None
    build_key: Any = None
    build_error: Exception | None = None
    build_outputs: list[TensorType] | None = None
    params: int | None = None
    trainable_params: int | None = None
    real: bool = False  # built with real variables
    rebuilds: int = 0
    pristine_input_spec: Any = None
    runs_here: bool | None = None  # None until asked (see runs_here)


# --------------------------------------------------------------------- Keras
def import_keras():
    """Imports Keras once (with the weight recorder, see keras_compat)."""
    return keras_compat.import_keras()


def is_operation(class_name: str) -> bool:
    """Whether a class name is a ``keras.ops`` operation (module-qualified)."""
    return keras_compat.operation_module(class_name) is not None


class Ports(NamedTuple):
    style: str
    names: tuple[str, ...]
    min_inputs: int
    max_inputs: int | None


class LayerError(ValueError):
    """A graph layer cannot become a Keras object; the message says why."""


def make_keras_layer(layer):
    """The Keras object for a graph layer (not a sub-model), made safely.

    Only classes of the catalog (or keras.ops operations) are made, and only
    after every nested object in the config was checked against Keras's own
    classes: ``from_config`` would otherwise import whatever a file names.

    Raises:
        LayerError: Unknown class, unsafe or invalid config.
    """
    if is_operation(layer.class_name):
        try:
            cls = keras_compat.operation_class(layer.class_name)
        except KeyError:
            raise LayerError(_unknown_class_message(layer.class_name)) from None
        try:
            return cls(**{k: v for k, v in layer.config.items() if k != "name"}, name=layer.name)
        except Exception as exc:  # noqa: BLE001 - bad arguments, in Keras's words
            raise LayerError(
                f"{layer.class_name.rpartition('.')[2]} '{layer.name}': {clean_message(exc)}"
            ) from None
    try:
        cls = catalog.keras_class(layer.class_name)
    except KeyError:
        return _make_outside_catalog(layer)
    problems = catalog.check_config(layer.class_name, layer.config)
    if problems:
        raise LayerError(f"{layer.class_name} '{layer.name}': {all_problems(problems)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = cls.from_config({**layer.config, "name": layer.name})
    except Exception as exc:  # noqa: BLE001 - bad parameters, in Keras's words
        raise LayerError(f"{layer.class_name} '{layer.name}': {clean_message(exc)}") from None
    from builder_app.core.layer_state import give_assets

    problem = give_assets(obj, layer)
    if problem is not None:
        raise LayerError(f"{layer.class_name} '{layer.name}': {problem}")
    return obj


def all_problems(problems: list[str]) -> str:
    """Every problem of a layer's config, on one line: fixing one never reveals the next."""
    if len(problems) == 1:
        return problems[0]
    return "; ".join(f"({i}) {problem}" for i, problem in enumerate(problems, 1))


def _make_outside_catalog(layer):
    """A layer Keras ships outside keras.layers, or one of the user's activated classes."""
    from builder_app.core import custom_code

    if layer.class_name == "Lambda" and custom_code.lambda_allowed(layer.config):
        return _trusted_lambda(layer)
    cls = custom_code.layer_class(layer.class_name)
    if cls is None:
        raise LayerError(_unknown_class_message(layer.class_name))
    config = custom_code.keras_config(layer.config)
    if layer.class_name.startswith("keras."):
        # Keras's own class, but the config is from a file: nested objects only where a
        # catalog layer's base arguments allow them (the dtype policy), checked as theirs are.
        base = {k: v for k, v in config.items() if k in ("dtype", "trainable")}
        problems = catalog.check_config("Identity", base)
        nested = [k for k, v in config.items() if k not in base and isinstance(v, Mapping)]
        if problems or nested:
            reason = problems[0] if problems else f"'{nested[0]}' holds an object, which this layer does not take"
            raise LayerError(f"{custom_code.bare_name(layer.class_name)} '{layer.name}': {reason}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls.from_config({**config, "name": layer.name})
    except Exception as exc:  # noqa: BLE001 - the class's own refusal, in its words
        raise LayerError(f"{custom_code.bare_name(layer.class_name)} '{layer.name}': {clean_message(exc)}") from None


def _trusted_lambda(layer):
    """A Lambda whose function the user trusted: Keras loads its bytecode (safe_mode off)."""
    import copy

    keras = import_keras()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = copy.deepcopy({**layer.config, "name": layer.name})
            return keras.layers.Lambda.from_config(config, safe_mode=False)
    except Exception as exc:  # noqa: BLE001 - the function's own failure, in one line
        raise LayerError(f"Lambda '{layer.name}': {clean_message(exc)}") from None


def instantiate(layer) -> LayerState:
    state = LayerState()
    try:
        state.instance = make_keras_layer(layer)
    except LayerError as exc:
        state.error = str(exc)
        return state
    state.pristine_input_spec = getattr(state.instance, "input_spec", None)
    return state


def runs_here(state: LayerState, config: Mapping[str, Any]) -> bool:
    """Whether this machine can run the layer (channels_first convolutions may not)."""
    if state.runs_here is None:
        state.runs_here = not _mentions_channels_first(config) or keras_compat.runs_here(state.instance)
    return state.runs_here


def _mentions_channels_first(value: Any) -> bool:
    """Whether a config (nested layers included) may make a layer channels_first."""
    if isinstance(value, Mapping):
        if "data_format" in value and value["data_format"] in (None, "channels_first"):
            return True
        return any(isinstance(v, Mapping | list) and _mentions_channels_first(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_channels_first(v) for v in value)
    return False


def _unknown_class_message(class_name: str) -> str:
    if class_name == "Lambda":
        return "Lambda is shown but not run: its code runs only once the project's code is trusted (--trust)"
    reason = catalog.EXCLUDED.get(class_name)
    if reason:
        return f"{class_name} is shown but not run: {reason}"
    return f"unknown layer {class_name}: {NEEDS_CODE}"


#: What an unknown layer class needs, on its node.
NEEDS_CODE = "the node needs its code (--custom-layers F.py --trust, or trust the project's code)"


def build_layer(state: LayerState, args, kwargs) -> list[TensorType]:
    """Builds the layer for these inputs, recording weight shapes, not creating them.

    Returns:
        The outputs of the call that built it.
    """
    instance = state.instance
    if instance.built:
        if state.real or state.rebuilds >= 20:
            # Rebuilding in place leaves stale sub-layers behind; start afresh.
            fresh = type(instance).from_config(instance.get_config())
            state.instance, state.real, state.rebuilds = fresh, False, 0
            instance = fresh
        else:
            keras_compat.unbuild(instance)
            instance.input_spec = state.pristine_input_spec
            state.rebuilds += 1
    call_spec = keras_compat.call_spec(instance, args, kwargs)
    keras_compat.assert_input_compatibility(instance.input_spec, call_spec.first_arg, instance.name)
    with keras_compat.recording_weights() as records:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                keras_compat.maybe_build(instance, call_spec)
            outputs = call_outputs(instance, args, kwargs)
            recorded = True
        except Exception:  # noqa: BLE001 - retried below with real weights
            recorded = False
    # Checked before anything is allocated: export and the real build below
    # would create these weights.
    check_declared_sizes(instance, records.declared)
    if recorded:
        check_initializers(instance, records.declared)
        existing = instance.weights  # created outside build (in __init__), real
        state.params = sum(n for n, _ in records) + sum(math.prod(w.shape) for w in existing)
        state.trainable_params = sum(n for n, t in records if t) + sum(
            math.prod(w.shape) for w in instance.trainable_weights
        )
        return outputs
    # The layer needs real variables to build (or the inputs are wrong): build a
    # fresh instance for real, which also yields Keras's own error message.
    fresh = type(instance).from_config(instance.get_config())
    state.instance, state.real, state.rebuilds = fresh, True, 0
    state.pristine_input_spec = fresh.input_spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh(*args, **kwargs)
    state.params = fresh.count_params()
    state.trainable_params = sum(math.prod(w.shape) for w in fresh.trainable_weights)
    return call_outputs(fresh, args, kwargs)


#: The most elements one weight may have, and one sample of a node's output: 2**31 - 1.
#: Shape inference records weights without creating them, so any size validates;
#: exporting, training or ``export --check`` creates them. TensorFlow indexes many
#: kernels with 32-bit integers, and 2**31 float32 elements are 8 GiB: a model past
#: this is a typo (``units=10**12``), and a node error says so before anything is
#: allocated.
MAX_ELEMENTS = 2**31 - 1

#: An initializer whose config values are all scalars depends on the shape only
#: through its rank (and fans): it is probed on a shape of at most this much a side.
_SHAPE_FREE_PROBE_LIMIT = 2
#: The largest weight an initializer that depends on the exact shape (a list value,
#: an STFT window) is probed on; larger ones are not probed.
_EXACT_PROBE_LIMIT = 2**22
# Initializer config (and probe shape, dtype) -> the failure, or None.
_probed: dict[tuple[str, str, tuple[int, ...], str], str | None] = {}


def check_declared_sizes(instance: Any, declared: list[keras_compat.DeclaredWeight]) -> None:
    """Refuses a declared weight of more than :data:`MAX_ELEMENTS` elements.

    Raises:
        NodeError: One sentence naming the layer, the weight and its shape.
    """
    for weight in declared:
        size = math.prod(d or 1 for d in weight.shape)
        if size > MAX_ELEMENTS:
            raise NodeError(
                f"{type(instance).__name__} '{instance.name}': its weight "
                f"'{weight.name or 'weight'}' of shape {tuple(weight.shape)} would have "
                f"{size:,} elements, more than the {MAX_ELEMENTS:,} (2**31 - 1) a weight may have"
            )


def check_initializers(instance: Any, declared: list[keras_compat.DeclaredWeight]) -> None:
    """Runs each declared weight's initializer on a small shape, as export would on the real one.

    A recording build never calls the initializers, so an argument of the wrong
    type (``RandomNormal(mean="zero")``, a list where a number belongs) would first
    fail when the model is exported. Results are cached by the initializer's config.

    Raises:
        NodeError: One sentence naming the layer, the weight and Keras's reason.
    """
    keras = import_keras()
    for weight in declared:
        if weight.initializer is None:  # Keras's default (glorot_uniform or zeros)
            continue
        failure = _probe_initializer(keras, weight, instance)
        if failure is not None:
            raise NodeError(
                f"{type(instance).__name__} '{instance.name}': the initializer of its weight "
                f"'{weight.name or 'weight'}' fails: {failure}"
            )


def _probe_initializer(keras: Any, weight: keras_compat.DeclaredWeight, instance: Any) -> str | None:
    try:
        initializer = keras.initializers.get(weight.initializer)
        if not isinstance(initializer, keras.initializers.Initializer):
            return None  # a plain callable: not from a config
        config = initializer.get_config()
        dtype = keras.backend.standardize_dtype(weight.dtype or instance.variable_dtype)
    except Exception as exc:  # noqa: BLE001 - Keras's refusal, in its words
        return clean_message(exc)
    if any(d is None for d in weight.shape):
        return None  # not a shape an initializer is called with
    name = type(initializer).__name__
    shape = tuple(int(d) for d in weight.shape)
    exact = name == "STFT" or not all(
        v is None or isinstance(v, bool | int | float | str) for v in config.values()
    )
    if not exact:
        shape = tuple(min(d, _SHAPE_FREE_PROBE_LIMIT) for d in shape)
    elif math.prod(shape) > _EXACT_PROBE_LIMIT:
        return None
    try:
        key = (name, json.dumps(config, sort_keys=True), shape, dtype)
    except TypeError:  # a value JSON cannot write: probe it every time
        key = None
    if key is not None and key in _probed:
        return _probed[key]
    try:
        # A fresh copy: a stateful seed (a SeedGenerator) must not advance.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            type(initializer).from_config(config)(shape, dtype=dtype)
        failure = None
    except Exception as exc:  # noqa: BLE001 - whatever the initializer raises
        failure = clean_message(exc)
    if key is not None:
        if len(_probed) > 10_000:
            _probed.clear()
        _probed[key] = failure
    return failure


def check_output_sizes(outputs: list[TensorType]) -> str | None:
    """Why one of these outputs is too big (more than :data:`MAX_ELEMENTS` a sample), or None."""
    for tensor in outputs:
        size = math.prod(d or 1 for d in tensor.shape[1:])
        if size > MAX_ELEMENTS:
            return (
                f"its output {format_shape(tensor.shape)} would have {size:,} elements a sample, "
                f"more than the {MAX_ELEMENTS:,} (2**31 - 1) a tensor may have"
            )
    return None


def check_submodel_inputs(
    model_name: str, input_names: list[str], expected: list[TensorType], given: list[TensorType]
) -> None:
    """Checks the inputs of a sub-model call as calling a Keras functional model does.

    That call first checks each tensor against the model's ``input_spec``: its
    Input's shape, with any batch size (and a last axis of 1 that may be missing
    or extra). The layers inside may accept more (a Dense takes any rank), so
    without this check export would be the first to refuse the call.

    Raises:
        ValueError: Keras's message naming the input and both shapes.
    """
    keras = import_keras()
    specs = [
        keras.InputSpec(shape=(None, *t.shape[1:]) if t.shape else (), allow_last_axis_squeeze=True, name=name)
        for t, name in zip(expected, input_names, strict=True)
    ]
    keras_compat.assert_input_compatibility(specs, [_Spec(t) for t in given], model_name)


#: Stands for the input spec of a keras.ops operation (they have none to check).
OPERATION = object()


def _single_tensor_call(call, ports) -> bool:
    """Whether the call passes one tensor first and only constants besides.

    Keras then gives ``compute_output_shape`` that tensor's shape alone (constant
    arguments such as ``training=False`` or ``mask=None`` never reach it).
    """
    if call is None:
        return ports.style == "single"
    return call_facts(call)[1]


def call_facts(call: dict[str, Any]) -> tuple[str, bool, frozenset[int]]:
    """(a key for the call, whether it passes one tensor first, its ports)."""
    entry = _call_cache.get(id(call))
    if entry is None or entry[0] is not call:
        args = call.get("args") or []
        ports = frozenset(template_ports(call))
        single = bool(args) and args[0] == {"port": 0} and ports == {0}
        if len(_call_cache) > 100_000:
            _call_cache.clear()
        entry = _call_cache[id(call)] = (call, json.dumps(call, sort_keys=True), single, ports)
    return entry[1], entry[2], entry[3]


def call_key(call: dict[str, Any] | None) -> str | None:
    return None if call is None else call_facts(call)[0]


class _Spec:
    """What ``assert_input_compatibility`` reads of a tensor, without a KerasTensor."""

    __slots__ = ("shape", "dtype")

    def __init__(self, tensor: TensorType):
        self.shape, self.dtype = tensor.shape, tensor.dtype


def plain_outputs(instance, input_spec, call, ports, inputs) -> list[TensorType]:
    """Outputs of calling an already built layer, checked against ``input_spec``.

    The common case (one tensor in, ``compute_output_shape`` overridden) skips
    creating KerasTensors, which is most of the cost of a symbolic call.
    """
    if input_spec is OPERATION:  # keras.ops operations check their own arguments
        args, kwargs = keras_call_arguments(call, ports, inputs)
        return call_outputs(instance, args, kwargs)
    if len(inputs) == 1 and _single_tensor_call(call, ports) and _is_fast(type(instance)):
        ((_, tensor),) = inputs.values()
        keras_compat.assert_input_compatibility(input_spec, _Spec(tensor), instance.name)
        return _shape_outputs(instance, tensor.shape)
    if call is None and ports.style == "list" and _is_merge(type(instance)):
        tensors = [t for _, t in (inputs[p] for p in sorted(inputs))]
        keras_compat.assert_input_compatibility(input_spec, [_Spec(t) for t in tensors], instance.name)
        shape = instance.compute_output_shape([t.shape for t in tensors])
        return [TensorType(as_shape(shape), instance.compute_dtype)]
    args, kwargs = keras_call_arguments(call, ports, inputs)
    keras_compat.assert_input_compatibility(input_spec, args[0] if args else None, instance.name)
    return call_outputs(instance, args, kwargs)


def _is_merge(cls: type) -> bool:
    """Whether the class computes its output spec exactly as Keras's Merge does.

    That is: ``compute_output_shape`` of the list of shapes, in the compute dtype.
    """
    merge = _merge_classes.get(cls)
    if merge is None:
        merge = _merge_classes[cls] = cls.compute_output_spec is keras_compat.merge_class().compute_output_spec
    return merge


def _is_fast(cls: type) -> bool:
    fast = _fast_classes.get(cls)
    if fast is None:
        Layer = import_keras().layers.Layer  # noqa: N806 - the class

        fast = (
            cls.compute_output_spec is Layer.compute_output_spec
            and cls.compute_output_shape is not Layer.compute_output_shape
        )
        _fast_classes[cls] = fast
    return fast


def call_outputs(instance, args, kwargs) -> list[TensorType]:
    keras = import_keras()
    if not kwargs and len(args) == 1 and isinstance(args[0], keras.KerasTensor) and _is_fast(type(instance)):
        return _shape_outputs(instance, args[0].shape)
    spec = instance.compute_output_spec(*args, **kwargs)
    return [
        TensorType(as_shape(t.shape), keras.backend.standardize_dtype(t.dtype))
        for t in keras.tree.flatten(spec)
        if t is not None
    ]


def _shape_outputs(instance, input_shape: Shape) -> list[TensorType]:
    """What Layer.compute_output_spec makes of compute_output_shape (see Keras)."""
    shape = instance.compute_output_shape(input_shape)
    if isinstance(shape, list) and shape and isinstance(shape[0], int | type(None)):
        shape = tuple(shape)
    dtype = instance.compute_dtype
    if isinstance(shape, tuple) and (not shape or isinstance(shape[0], int | type(None))):
        return [TensorType(as_shape(shape), dtype)]
    return [TensorType(as_shape(s), dtype) for s in _flatten_shapes(shape)]


def _flatten_shapes(structure) -> list[Shape]:
    if isinstance(structure, dict):
        return [s for v in structure.values() for s in _flatten_shapes(v)]
    if isinstance(structure, list | tuple) and (
        not structure or isinstance(structure[0], int | type(None))
    ):
        return [tuple(structure)]
    return [s for v in structure for s in _flatten_shapes(v)]


def as_shape(shape) -> Shape:
    return tuple(None if d is None else int(d) for d in shape)


def _tensor(t: TensorType):
    # A name skips Keras's automatic naming, a regex per tensor.
    return import_keras().KerasTensor(t.shape, dtype=t.dtype, name="input")


def keras_call_arguments(call, ports, inputs) -> tuple[list[Any], dict[str, Any]]:
    """The call's arguments, with KerasTensors standing for the inputs."""
    return call_arguments(call, ports, {port: _tensor(t) for port, (_, t) in inputs.items()})
