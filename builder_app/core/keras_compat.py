"""Keras's private API, in one place.

The app needs a few things Keras does not export: the pieces of ``Layer.__call__``
that shape inference replays without creating weights (``CallSpec``,
``_maybe_build``, ``assert_input_compatibility``), the tables Keras resolves names
from (``ALL_OBJECTS_DICT``, ``ALLOWED_DTYPES``, the exported names of classes),
the modules ``keras.ops`` operations are serialized under, the saving library's
per-object weight loading, and the base classes of its convolutions. Every use
of ``keras.src`` in the app is here, behind a function: nothing is imported
when this module loads (Keras, and TensorFlow with it, takes seconds), and
``tests/test_keras_compat.py`` checks each symbol against the installed Keras,
so a release that moves one fails there, by name, rather than somewhere deep in
shape inference. The Keras releases this is tested with are the range of the
``keras`` dependency in ``pyproject.toml``.

It also knows what TensorFlow on this machine can run: without a GPU, some
builds of TensorFlow (on AMD processors, for one) have no channels_first
(NCHW) convolution on the CPU; :func:`channels_first_runs` finds out by running
a tiny one.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import warnings
from collections.abc import Iterator
from typing import Any

#: The private modules whose operations a functional config may record as nodes
#: (``class_name`` is ``<module>.<Operation>``), each with the name of its public
#: namespace (``keras.ops.numpy``; where Keras has none, as for math and core, the
#: functions are at ``keras.ops`` itself).
OPERATION_MODULES: dict[str, str] = {
    "keras.src.ops.numpy": "numpy",
    "keras.src.ops.nn": "nn",
    "keras.src.ops.math": "math",
    "keras.src.ops.core": "core",
    "keras.src.ops.linalg": "linalg",
    "keras.src.ops.image": "image",
}

#: The ``module`` Keras writes in a config for its own model classes.
MODEL_MODULES = ("keras.src.models.functional", "keras.src.models.sequential")

_keras_module = None
_recording = threading.local()


# --------------------------------------------------------------------------- #
# Importing Keras, with the weight recorder
# --------------------------------------------------------------------------- #


def import_keras():
    """Imports Keras once and installs the weight recorder on ``Layer.add_weight``.

    Outside :func:`recording_weights` the patched ``add_weight`` is Keras's own.
    """
    global _keras_module
    if _keras_module is None:
        import inspect
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        layer_class = keras.layers.Layer
        # Keras's own method, even if a reloaded copy of this module patched it before.
        original = getattr(layer_class.add_weight, "__wrapped__", layer_class.add_weight)
        signature = inspect.signature(original)

        def add_weight(self, *args, **kwargs):
            records = getattr(_recording, "records", None)
            if records is None:
                return original(self, *args, **kwargs)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            shape = tuple(bound.arguments.get("shape") or ())
            trainable = bool(bound.arguments.get("trainable", True)) and self.trainable
            records.append((math.prod(shape), trainable))
            weight = DeclaredWeight(shape, bound.arguments.get("dtype"), trainable)
            weight.name = bound.arguments.get("name")
            weight.initializer = bound.arguments.get("initializer")
            records.declared.append(weight)
            return weight

        add_weight.__wrapped__ = original
        layer_class.add_weight = add_weight
        _keras_module = keras
    return _keras_module


@contextlib.contextmanager
def recording_weights() -> Iterator[list[tuple[int, bool]]]:
    """While inside, ``add_weight`` creates no variable: it records (size, trainable).

    Yields:
        The list the declared weights are appended to (this thread's only); its
        ``declared`` attribute holds the :class:`DeclaredWeight` objects, whose
        shapes and initializers can be checked without creating the weights.
    """
    import_keras()
    records = _Records()
    _recording.records = records
    try:
        yield records
    finally:
        _recording.records = None


class _Records(list):
    """(size, trainable) of each declared weight, and the weights themselves."""

    def __init__(self):
        super().__init__()
        self.declared: list[DeclaredWeight] = []


class DeclaredWeight:
    """Stands for a weight during a recording build: only its shape is known.

    ``name`` and ``initializer`` are what ``add_weight`` was given (either may be None).
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any, trainable: bool):
        self.shape = shape
        self.dtype = dtype
        self.trainable = trainable
        self.name: str | None = None
        self.initializer: Any = None

    def __repr__(self) -> str:
        return f"<declared weight {self.shape}>"


# --------------------------------------------------------------------------- #
# What Layer.__call__ does, piece by piece
# --------------------------------------------------------------------------- #


def call_spec(layer, args: list[Any], kwargs: dict[str, Any]):
    """Keras's ``CallSpec`` of calling ``layer`` with these arguments."""
    from keras.src.layers.layer import CallSpec

    return CallSpec(layer._call_signature, layer._call_context_args, list(args), dict(kwargs))


def maybe_build(layer, spec) -> None:
    """Builds ``layer`` as its first call would (``Layer._maybe_build``)."""
    layer._maybe_build(spec)


def assert_input_compatibility(input_spec, inputs, layer_name: str) -> None:
    """Keras's check of inputs against a layer's ``input_spec`` (raises ValueError)."""
    from keras.src.layers.input_spec import assert_input_compatibility as check

    check(input_spec, inputs, layer_name)


def sublayers(layer) -> list:
    """The layer and every layer it holds, recursively (wrapped layers, cells...)."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def unbuild(layer) -> None:
    """Marks a built layer and its sub-layers unbuilt, so the next call builds again."""
    for sub in sublayers(layer):
        sub.built = False
        sub._tracker.unlock()


def merge_class() -> type:
    """The base class of Keras's merging layers (Add, Concatenate...)."""
    from keras.src.layers.merging.base_merge import Merge

    return Merge


# --------------------------------------------------------------------------- #
# keras.ops operations recorded in functional configs
# --------------------------------------------------------------------------- #


def operation_module(class_name: str) -> str | None:
    """The private module of a serialized operation's class name, or None if it names none."""
    module = class_name.rpartition(".")[0]
    return module if module in OPERATION_MODULES else None


def operation_class_name(namespace: str, name: str) -> str:
    """The class name a config records an operation under (``"numpy", "Add"``)."""
    return f"keras.src.ops.{namespace}.{name}"


def operation_class(class_name: str) -> type:
    """The ``keras.ops`` Operation class a serialized class name stands for.

    Raises:
        KeyError: No such operation (or not an operation).
    """
    import importlib

    keras = import_keras()
    module_name, _, name = class_name.rpartition(".")
    if module_name not in OPERATION_MODULES:
        raise KeyError(class_name)
    cls = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, keras.Operation)) or issubclass(
        cls, keras.layers.Layer
    ):
        raise KeyError(class_name)
    return cls


# --------------------------------------------------------------------------- #
# Names Keras resolves
# --------------------------------------------------------------------------- #


def exported_name(symbol) -> str | None:
    """The public path Keras exports ``symbol`` under (``"keras.layers.Dense"``), or None."""
    from keras.src.api_export import get_name_from_symbol

    return get_name_from_symbol(symbol)


def registered_objects(package: str) -> dict[str, Any]:
    """The names Keras resolves in one package (``"initializers"``), exported or not.

    Keras's ``get`` of ``keras.initializers``, ``keras.regularizers`` and
    ``keras.constraints`` looks names up in this table (``"uniform"``, ``"l1l2"``).
    """
    import importlib

    return dict(importlib.import_module(f"keras.src.{package}").ALL_OBJECTS_DICT)


#: The packages whose layer classes ship inside Keras but outside ``keras.layers``
#: (ConvNeXt's ``LayerScale``, InceptionResNetV2's ``CustomScaleLayer``).
SHIPPED_LAYER_PACKAGES = ("keras.src.applications",)


@functools.cache
def shipped_layer_classes() -> dict[str, type]:
    """Layer classes Keras ships outside ``keras.layers``, by ``"<module>.<Class>"``.

    These are the names a saved config gives them (``module`` + ``class_name``);
    they come from the installed Keras, never from a file.
    """
    import importlib
    import inspect
    import pkgutil

    keras = import_keras()
    found: dict[str, type] = {}
    for package_name in SHIPPED_LAYER_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, f"{package_name}."):
            if info.name.endswith("_test"):  # Keras's own tests sit beside its modules
                continue
            module = importlib.import_module(info.name)
            for attr, obj in sorted(vars(module).items()):
                if (
                    not attr.startswith("_") and inspect.isclass(obj) and obj.__module__ == info.name
                    and issubclass(obj, keras.layers.Layer) and getattr(keras.layers, attr, None) is not obj
                ):
                    found[f"{info.name}.{attr}"] = obj
    return found


def allowed_dtypes() -> tuple[str, ...]:
    """Every dtype name Keras's backends accept."""
    from keras.src.backend.common.dtypes import ALLOWED_DTYPES

    return tuple(ALLOWED_DTYPES)


def to_snake_case(name: str) -> str:
    """Keras's automatic layer naming (``"Conv2D"`` -> ``"conv2d"``)."""
    from keras.src.utils.naming import to_snake_case as snake

    return snake(name)


# --------------------------------------------------------------------------- #
# Saving and loading
# --------------------------------------------------------------------------- #


def save_model(model, handle) -> None:
    """Writes a ``.keras`` archive into an open binary file (the public call wants a path)."""
    from keras.src.saving import saving_lib

    saving_lib.save_model(model, handle)


@contextlib.contextmanager
def weights_store(path) -> Iterator[Any]:
    """Keras's reader of a ``model.weights.h5`` file, closed on leaving."""
    from keras.src.saving import saving_lib

    store = saving_lib.H5IOStore(path, mode="r")
    try:
        yield store
    finally:
        store.close()


def load_saved_state(obj, store, path: str) -> Exception | None:
    """Loads the weights saved at ``path`` of a weights store into one Keras object.

    Returns:
        None, or the exception that kept them from loading.
    """
    from keras.src.saving import saving_lib

    errors: dict[int, Any] = {}
    saving_lib._load_state(
        obj,
        weights_store=store,
        assets_store=None,
        inner_path=path,
        visited_saveables=set(),
        failed_saveables=set(),
        error_msgs=errors,
    )
    if errors:
        _, exc = next(iter(errors.values()))
        return exc
    return None


# --------------------------------------------------------------------------- #
# channels_first convolutions on this machine
# --------------------------------------------------------------------------- #

#: What the app says where a model cannot run on this machine because of it.
CHANNELS_FIRST_ON_CPU = (
    "channels_first convolutions run only on a GPU with TensorFlow on this machine"
)


def _convolution_bases() -> list[tuple[type, str]]:
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
    from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv
    from keras.src.layers.convolutional.base_separable_conv import BaseSeparableConv
    from keras.src.layers.rnn.conv_lstm import ConvLSTMCell

    return [
        (BaseConv, "conv"),
        (BaseConvTranspose, "conv_transpose"),
        (BaseDepthwiseConv, "depthwise_conv"),
        (BaseSeparableConv, "separable_conv"),
        (ConvLSTMCell, "conv"),
    ]


def convolutions(layer, *, recursive: bool = True) -> list[tuple[str, int, bool]]:
    """The channels_first convolutions a Keras layer runs: (operation, rank, grouped).

    ``operation`` is the ``keras.ops`` function the layer calls (``"conv"``,
    ``"conv_transpose"``, ``"depthwise_conv"``, ``"separable_conv"``); with
    ``recursive``, wrapped layers and cells count too (TimeDistributed, ConvLSTM2D).
    """
    bases = _convolution_bases()
    found = []
    for sub in sublayers(layer) if recursive else [layer]:
        if getattr(sub, "data_format", None) != "channels_first":
            continue
        for base, operation in bases:
            if isinstance(sub, base):
                found.append((operation, int(sub.rank), int(getattr(sub, "groups", 1) or 1) > 1))
                break
    return found


@functools.cache
def channels_first_runs(operation: str, rank: int, grouped: bool = False) -> bool:
    """Whether a channels_first convolution runs on this machine (cached).

    True without asking when Keras's backend is not TensorFlow (JAX and PyTorch
    have them on the CPU) or TensorFlow sees a GPU (nothing is run on it: the
    device is left to whoever trains). Otherwise a tiny one is run on the CPU,
    through Keras's own op, so Keras's workarounds (it transposes depthwise
    convolutions, compiles 3-D and grouped ones with XLA) count.
    """
    keras = import_keras()
    if keras.backend.backend() != "tensorflow":
        return True
    import numpy as np
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True
    ones = (1,) * rank
    x = np.zeros((1, 2, *(3,) * rank), "float32")
    ops = keras.ops
    try:
        with warnings.catch_warnings(), tf.device("/CPU:0"):
            warnings.simplefilter("ignore")
            if operation == "conv":
                kernel = np.zeros((*ones, 1 if grouped else 2, 2), "float32")
                ops.conv(x, kernel, data_format="channels_first")
            elif operation == "conv_transpose":
                ops.conv_transpose(
                    x, np.zeros((*ones, 2, 2), "float32"), data_format="channels_first"
                )
            elif operation == "depthwise_conv":
                ops.depthwise_conv(
                    x, np.zeros((*ones, 2, 1), "float32"), data_format="channels_first"
                )
            elif operation == "separable_conv":
                ops.separable_conv(
                    x,
                    np.zeros((*ones, 2, 1), "float32"),
                    np.zeros((*ones, 2, 2), "float32"),
                    data_format="channels_first",
                )
            else:
                raise ValueError(f"unknown convolution {operation!r}")
    except tf.errors.OpError:  # UnimplementedError, InvalidArgumentError: no such kernel
        return False
    return True


def runs_here(layer, *, recursive: bool = True) -> bool:
    """Whether every channels_first convolution of a Keras layer runs on this machine."""
    return all(channels_first_runs(*c) for c in convolutions(layer, recursive=recursive))


def layers_that_cannot_run_here(model) -> list[str]:
    """The layers of a Keras model (``outer/inner`` inside nested models) this machine cannot run."""
    keras = import_keras()
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += [f"{layer.name}/{name}" for name in layers_that_cannot_run_here(layer)]
        elif not runs_here(layer):
            found.append(layer.name)
    return found
