"""The layer catalog: one registry describing every Keras layer the editor offers.

The palette, the inspector, validation and code generation all read this module.
Parameters, their kinds and defaults are derived from the installed Keras itself
(``inspect.signature`` of each layer's ``__init__`` and the layer's own
``get_config()``), so a new Keras release shows up here without edits; only the
things Keras cannot tell us are curated: categories, starting values for
required arguments, port styles and a few choice lists.

Keras is imported lazily, inside functions, because importing TensorFlow takes
seconds; importing this module is instant. Everything derived from Keras is one
:class:`CatalogData`, derived once per Keras version and kept as JSON
(:mod:`builder_app.core.catalog_cache`: the user's cache directory, or the copy
shipped in the package for the pinned Keras), so the palette, the inspector and
the config check read it from the first frame, before TensorFlow is imported;
only :func:`keras_class` (and building layers) needs Keras itself.

``check_config`` (in :mod:`builder_app.core.config_check`) is a security boundary: configs come from user files, and
Keras deserialization of an arbitrary ``{"module": ..., "class_name": ...}``
dict can import code. It validates a config against what the catalog knows and
never imports anything a config names.
"""

from __future__ import annotations

import copy
import functools
import inspect
import random
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from builder_app.core import keras_compat
from builder_app.core.docstrings import arg_docs, first_sentence
from builder_app.core.text import json_plain

# --------------------------------------------------------------------------- #
# Data types
# --------------------------------------------------------------------------- #

INT = "int"
FLOAT = "float"
BOOL = "bool"
STR = "str"
CHOICE = "choice"
INT_TUPLE = "int_tuple"
ACTIVATION = "activation"
INITIALIZER = "initializer"
REGULARIZER = "regularizer"
CONSTRAINT = "constraint"
DTYPE = "dtype"
LAYER = "layer"
SHAPE = "shape"
LIST = "list"
ANY = "any"

#: Every parameter kind, for editors that dispatch on it.
KINDS = (
    INT, FLOAT, BOOL, STR, CHOICE, INT_TUPLE, ACTIVATION, INITIALIZER, REGULARIZER,
    CONSTRAINT, DTYPE, LAYER, SHAPE, LIST, ANY,
)

#: The palette's categories, in display order.
CATEGORIES = (
    "Core", "Convolution", "Pooling", "Normalization", "Regularization", "Activation",
    "Merge", "Reshaping", "Recurrent", "Attention", "Embedding", "Preprocessing",
    "Augmentation", "Wrappers",
)


@dataclass(frozen=True)
class ParamSpec:
    """One constructor argument of a layer (or of an initializer, regularizer...).

    Attributes:
        name: The argument name, as in ``__init__`` and ``get_config()``.
        kind: One of ``KINDS``; tells the inspector which editor to show.
        default: The JSON value the argument has in a freshly made layer's
            ``get_config()`` (for required arguments: the curated starting value).
        required: True when Keras's signature has no default.
        choices: The accepted values, for kind ``"choice"``.
        nullable: True when ``None`` is an accepted value.
        doc: A one-line description from the class docstring's ``Args:``.
    """

    name: str
    kind: str
    default: Any
    required: bool = False
    choices: tuple | None = None
    nullable: bool = False
    doc: str = ""


@dataclass(frozen=True)
class PortsSpec:
    """How a layer takes its inputs.

    Attributes:
        style: ``"single"`` (``call(x)``), ``"list"`` (``call([x0, x1, ...])``),
            ``"positional"`` (``call(a, b, c=None)``) or ``"none"`` (no input).
        names: Port names: the call argument for ``"single"``, the names of the
            list items or positional arguments where Keras names them, else empty.
        min_inputs: The fewest inputs the layer accepts.
        max_inputs: The most inputs it accepts; ``None`` for no limit.
    """

    style: str
    names: tuple[str, ...]
    min_inputs: int
    max_inputs: int | None


@dataclass(frozen=True)
class LayerSpec:
    """Everything the editor knows about one Keras layer class.

    Attributes:
        class_name: The canonical name: the one Keras serializes the class under.
        category: One of ``CATEGORIES``.
        description: A one-line description for the palette.
        params: The constructor arguments, in signature order, then the extra
            keys ``get_config()`` reports, then ``trainable`` and ``dtype``.
        ports: How the layer takes its inputs.
        module: The Python module defining the class (``cls.__module__``).
        doc: The class docstring, cleaned of indentation.
    """

    class_name: str
    category: str
    description: str
    params: tuple[ParamSpec, ...]
    ports: PortsSpec
    module: str
    doc: str

    def param(self, name: str) -> ParamSpec:
        """Returns the parameter called ``name``.

        Raises:
            KeyError: The layer has no such parameter.
        """
        for spec in self.params:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.class_name} has no parameter {name!r}")

    @property
    def param_names(self) -> tuple[str, ...]:
        """The names of all parameters, in order."""
        return tuple(p.name for p in self.params)


@dataclass(frozen=True)
class CatalogData:
    """Everything the catalog derives from one Keras, as plain data: what the cache stores.

    Attributes:
        keras_version: The version of the Keras it was derived from.
        specs: A LayerSpec for every describable class (catalog layers, RNN cells,
            InputLayer), by canonical name.
        input_spec: The spec of the graph's Input node.
        default_configs: The config of each describable class when dropped (None
            where Keras could not build the class).
        aliases: Alias -> canonical class name.
        accepted: The config keys each describable class accepts (the config check's).
        nested: By kind (initializer, regularizer, constraint), each public class's
            arguments.
        identifiers: By kind (and activation), the strings Keras resolves.
        dtype_names: What a layer's ``dtype`` accepts.
        dtype_policy_classes: The public classes of ``keras.dtype_policies``.
        quantizer_classes: The public classes of ``keras.quantizers``.
    """

    keras_version: str
    specs: dict[str, LayerSpec]
    input_spec: LayerSpec
    default_configs: dict[str, dict | None]
    aliases: dict[str, str]
    accepted: dict[str, frozenset[str]]
    nested: dict[str, dict[str, tuple[ParamSpec, ...]]]
    identifiers: dict[str, frozenset[str]]
    dtype_names: tuple[str, ...]
    dtype_policy_classes: frozenset[str]
    quantizer_classes: frozenset[str]
    # The palette's layers in palette order, computed once from the fields above.
    ordered: dict[str, LayerSpec] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        specs = [s for n, s in self.specs.items() if n not in EXCLUDED]
        order = {c: i for i, c in enumerate(CATEGORIES)}
        specs.sort(key=lambda s: (order.get(s.category, len(order)), s.class_name))
        object.__setattr__(self, "ordered", {s.class_name: s for s in specs})


# --------------------------------------------------------------------------- #
# Curated knowledge: what Keras's signatures cannot tell
# --------------------------------------------------------------------------- #

_WRAPS_CODE = "wraps arbitrary code, which a project file must not carry"
_CELL = "a cell is an argument of RNN, not a graph node"

#: Public ``keras.layers`` classes that are deliberately not graph nodes.
EXCLUDED: dict[str, str] = {
    "Lambda": _WRAPS_CODE,
    "TFSMLayer": _WRAPS_CODE + " (a SavedModel on disk)",
    "JaxLayer": _WRAPS_CODE,
    "FlaxLayer": _WRAPS_CODE,
    "TorchModuleWrapper": _WRAPS_CODE,
    "Layer": "the abstract base class of all layers",
    "Wrapper": "the abstract base class of layer wrappers",
    "InputLayer": "it is the graph's Input node (see input_spec())",
    "SimpleRNNCell": _CELL,
    "LSTMCell": _CELL,
    "GRUCell": _CELL,
    "StackedRNNCells": _CELL,
    "Pipeline": "a chain of layers held in one layer; draw the layers as nodes instead",
}

# RNN cells are not palette entries but are valid values of RNN's `cell`.
_CELL_CLASSES = ("SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells")

# Starting values for arguments Keras requires (or needs to be usable), by
# argument name; `_STARTING_BY_CLASS` overrides per class.
_STARTING: dict[str, Any] = {
    "units": 32,
    "filters": 32,
    "kernel_size": 3,
    "rate": 0.5,
    "stddev": 0.1,
    "pool_size": 2,
    "output_size": 4,
    "target_shape": [-1],
    "dims": [2, 1],
    "n": 2,
    "axes": -1,
    "input_dim": 1000,
    "output_dim": 32,
    "num_heads": 2,
    "key_dim": 16,
    "head_dim": 16,
    "num_query_heads": 4,
    "num_key_value_heads": 2,
    "activation": "relu",
    "height": 224,
    "width": 224,
    "factor": 0.2,
    "height_factor": 0.2,
    "width_factor": 0.2,
    "scale": 1.0 / 255,
    "num_bins": 16,
    "equation": "ab,bc->ac",
    "output_shape": 32,
    "max_number": 10,
}

# Nested layers are built from (class name, kwargs) with a fixed name so that a
# default config is the same in every session (Keras otherwise numbers names).
_STARTING_BY_CLASS: dict[str, dict[str, Any]] = {
    "Bidirectional": {"layer": ("LSTM", {"units": 32, "name": "lstm"})},
    "TimeDistributed": {"layer": ("Dense", {"units": 32, "name": "dense"})},
    "SpectralNormalization": {"layer": ("Dense", {"units": 32, "name": "dense"})},
    "RNN": {"cell": ("LSTMCell", {"units": 32, "name": "lstm_cell"})},
    "StackedRNNCells": {"cells": [("LSTMCell", {"units": 32, "name": "lstm_cell"})]},
    "CategoryEncoding": {"num_tokens": 16},
    "Discretization": {"bin_boundaries": [-1.0, 0.0, 1.0]},
    "RandomPosterization": {"factor": 4},  # bits kept, in [1, 8]
    "RandomRotation": {"factor": 0.1},  # a fraction of a full turn
    "RandomCrop": {"height": 24, "width": 24},
    "CenterCrop": {"height": 24, "width": 24},
}

# Arguments whose value Keras derives anew on every construction (RandomCrop
# draws a seed when given none): their spec default stays the signature's.
_VOLATILE = {("RandomCrop", "seed")}

# Arguments that hold Python objects, not settings; the inspector hides them.
_HIDDEN = {"weights", "input_tensor"}

_LAYER_ARGS = {"layer", "backward_layer", "cell"}

_INT_TUPLE_NAMES = {
    "kernel_size", "strides", "pool_size", "dilation_rate", "size", "cropping",
    "output_padding", "output_size", "tile_grid_size", "shared_axes", "attention_axes",
}
_SHAPE_NAMES = {"target_shape", "dims", "output_shape", "noise_shape", "batch_shape", "shape"}

# Kinds for arguments whose default is None, so the value's type says nothing.
_NONE_KINDS = {
    "seed": INT, "num_tokens": INT, "max_tokens": INT, "lora_rank": INT, "num_bins": INT,
    "sequence_length": INT, "output_sequence_length": INT, "frame_step": INT,
    "fft_length": INT, "sliding_window": INT, "value_dim": INT, "batch_size": INT,
    "gptq_unpacked_column_size": INT, "lora_alpha": FLOAT, "max_value": FLOAT,
    "max_freq": FLOAT, "logit_soft_cap": FLOAT, "fill_value": FLOAT, "bias_axes": STR,
    "flash_attention": BOOL, "sparse": BOOL, "ragged": BOOL, "bin_boundaries": LIST,
    "vocabulary": LIST, "idf_weights": LIST, "mean": LIST, "variance": LIST,
    "ngrams": INT_TUPLE, "reverse_dtype": DTYPE, "vocabulary_size": INT,
}

_DATA_FORMATS = ("channels_last", "channels_first")
_RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")
_AFFINE_INTERPOLATIONS = ("nearest", "bilinear")
_AFFINE_FILL_MODES = ("reflect", "wrap", "constant", "nearest")

# Choice lists read from the Keras source (validation in each layer's __init__).
# Keyed by argument name, then by class name ("*" for every class).
_CHOICES: dict[str, dict[str, tuple]] = {
    "interpolation": {
        "Resizing": _RESIZE_INTERPOLATIONS,
        "UpSampling2D": _RESIZE_INTERPOLATIONS,
        "AugMix": _AFFINE_INTERPOLATIONS,
        "RandAugment": _AFFINE_INTERPOLATIONS,
        "*": _AFFINE_INTERPOLATIONS,
    },
    "fill_mode": {"Resizing": ("constant",), "*": _AFFINE_FILL_MODES},
    "merge_mode": {"Bidirectional": ("concat", "sum", "mul", "ave", None)},
    "score_mode": {"Attention": ("dot", "concat")},
    "output_mode": {
        "CategoryEncoding": ("multi_hot", "one_hot", "count"),
        "HashedCrossing": ("int", "one_hot"),
        "Hashing": ("int", "one_hot", "multi_hot", "count"),
        "Discretization": ("int", "one_hot", "multi_hot", "count"),
        "*": ("int", "one_hot", "multi_hot", "count", "tf_idf"),
    },
    "mode": {
        "RandomFlip": ("horizontal_and_vertical", "horizontal", "vertical"),
        "STFTSpectrogram": ("log", "magnitude", "psd", "real", "imag", "angle", "stft"),
    },
    "scaling": {"STFTSpectrogram": ("density", "spectrum", None)},
    "standardize": {
        "TextVectorization": ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
    },
    "split": {"TextVectorization": ("whitespace", "character", None)},
    "oov_method": {"*": ("floormod", "farmhash")},
    "use_cudnn": {"*": ("auto", True, False)},
    "vocabulary_dtype": {"IntegerLookup": ("int64",)},
}

_MODULE_CATEGORIES = {
    "core": "Core",
    "convolutional": "Convolution",
    "pooling": "Pooling",
    "normalization": "Normalization",
    "regularization": "Regularization",
    "activations": "Activation",
    "merging": "Merge",
    "reshaping": "Reshaping",
    "rnn": "Recurrent",
    "attention": "Attention",
    "preprocessing": "Preprocessing",
}
_EMBEDDING_MODULES = ("embedding", "reversible_embedding")

_LIST_PORTS: dict[str, tuple[tuple[str, ...], int, int | None]] = {
    "Add": ((), 2, None),
    "Multiply": ((), 2, None),
    "Average": ((), 2, None),
    "Maximum": ((), 2, None),
    "Minimum": ((), 2, None),
    "Concatenate": ((), 2, None),
    "Subtract": ((), 2, 2),
    "Dot": ((), 2, 2),
    "Attention": (("query", "value", "key"), 2, 3),
    "AdditiveAttention": (("query", "value", "key"), 2, 3),
    "HashedCrossing": ((), 2, None),
}
_POSITIONAL_PORTS = {
    "MultiHeadAttention": (("query", "value", "key"), 2, 3),
    "GroupQueryAttention": (("query", "value", "key"), 2, 3),
}

_DESCRIPTIONS = {
    "Dense": "Fully-connected layer: activation(inputs · kernel + bias).",
    "Identity": "Passes its input through unchanged.",
    "MultiHeadAttention": "Multi-head attention, as in Transformers (query, value, optional key).",
    "GroupQueryAttention": "Grouped-query attention: fewer key/value heads shared by query heads.",
    "GRU": "Gated Recurrent Unit layer (Cho et al., 2014).",
    "LSTM": "Long Short-Term Memory layer (Hochreiter, 1997).",
    "SimpleRNN": "Fully-connected RNN whose output is fed back as the next input.",
    "RNN": "Runs a recurrent cell over the time steps of a sequence.",
    "Bidirectional": "Runs an RNN forwards and backwards and merges the two outputs.",
    "TimeDistributed": "Applies a layer to every temporal slice of its input.",
    "ActivityRegularization": "Adds an L1/L2 penalty on its input's values to the loss.",
    "Average": "Averages a list of inputs element-wise.",
    "UnitNormalization": "Scales each input vector to unit L2 norm.",
    "GroupNormalization": "Normalizes over groups of channels (groups=-1: instance norm).",
    "RandomColorJitter": "Randomly adjusts brightness, contrast, saturation and hue.",
    "Solarization": "Inverts pixels above a threshold (solarization).",
    "Flatten": "Flattens the input to (batch, features); the batch size is kept.",
    "EinsumDense": "A dense layer of any rank, written as an einsum equation.",
}

# --------------------------------------------------------------------------- #
# Lazily built views of Keras
# --------------------------------------------------------------------------- #


def _keras():
    import keras  # Lazy: importing TensorFlow takes seconds.

    return keras


def _serialized_name(cls: type, keras) -> str:
    """The name Keras writes as ``class_name`` when it serializes ``cls``.

    It is ``cls.__name__`` except where the class is exported under another name
    (``GroupedQueryAttention`` is exported, and serialized, as
    ``GroupQueryAttention``); generated code and saved files must use that one.
    """
    if getattr(keras.layers, cls.__name__, None) is cls:
        return cls.__name__
    try:
        exported = keras_compat.exported_name(cls)
    except ImportError:  # pragma: no cover - private API moved (tests/test_keras_compat.py)
        exported = None
    if exported and exported.startswith("keras.layers."):
        return exported.rpartition(".")[2]
    names = sorted(n for n in dir(keras.layers) if getattr(keras.layers, n) is cls)
    return names[0] if names else cls.__name__


@functools.cache
def _layer_classes() -> tuple[dict[str, type], dict[str, str]]:
    """All public layer classes of ``keras.layers``, by canonical name, and aliases."""
    keras = _keras()
    classes: dict[str, type] = {}
    aliases: dict[str, str] = {}
    for attr in sorted(dir(keras.layers)):
        obj = getattr(keras.layers, attr)
        if attr.startswith("_") or not inspect.isclass(obj):
            continue
        if not issubclass(obj, keras.layers.Layer):
            continue
        canonical = _serialized_name(obj, keras)
        classes[canonical] = obj
        if attr != canonical:
            aliases[attr] = canonical
        if obj.__name__ != canonical:
            aliases[obj.__name__] = canonical
    return classes, aliases


class _LazyMapping(Mapping):
    """A read-only mapping filled on first access, so importing stays Keras-free."""

    def __init__(self, load: Callable[[], Mapping]):
        self._load = load

    def _data(self) -> Mapping:
        return self._load()

    def __getitem__(self, key):
        return self._data()[key]

    def __iter__(self) -> Iterator:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        return repr(dict(self._data()))


#: Alias -> canonical class name (``"Convolution2D" -> "Conv2D"``), from keras.layers.
ALIASES: Mapping[str, str] = _LazyMapping(lambda: _data().aliases)


def _resolve(class_name: str) -> str:
    """The canonical name for an alias; other names unchanged.

    Raises:
        KeyError: ``class_name`` is not a string (configs come from files).
    """
    if not isinstance(class_name, str):
        raise KeyError(f"layer class name must be a string, not {class_name!r}")
    return _data().aliases.get(class_name, class_name)


def _class_of(class_name: str) -> type:
    """Any public keras.layers class by (possibly aliased) name, excluded ones too."""
    classes, aliases = _layer_classes()  # live: deriving the catalog calls it
    name = aliases.get(class_name, class_name)
    if name not in classes:
        raise KeyError(f"unknown layer class {class_name!r}")
    return classes[name]


def _describable(name: str) -> bool:
    """Whether a class gets a LayerSpec: catalog layers, cells and InputLayer."""
    return name not in EXCLUDED or name in _CELL_CLASSES or name == "InputLayer"


# --------------------------------------------------------------------------- #
# Default configs
# --------------------------------------------------------------------------- #


def _build_nested(value: Any) -> Any:
    """Turns ``(class name, kwargs)`` starting values into layer instances."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
        return _class_of(value[0])(**value[1])
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return [_build_nested(v) for v in value]
    return value


def _starting_kwargs(name: str, cls: type) -> dict[str, Any]:
    """The constructor arguments a freshly dropped layer gets."""
    curated = _STARTING_BY_CLASS.get(name, {})
    kwargs = {}
    for param in _signature_params(cls):
        if param.name in curated:
            kwargs[param.name] = _build_nested(curated[param.name])
        elif param.default is inspect.Parameter.empty and param.name in _STARTING:
            kwargs[param.name] = _STARTING[param.name]
    return kwargs


@functools.cache
def _default_config(name: str) -> dict:
    if name == "InputLayer":
        instance = _class_of(name)(shape=(8,))
    else:
        cls = _class_of(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            instance = cls(**_starting_kwargs(name, cls))
    config = json_plain(instance.get_config())
    config.pop("name", None)
    return config


def _derive_default_config(name: str) -> dict | None:
    try:
        return copy.deepcopy(_default_config(name))
    except Exception:  # noqa: BLE001 - a class we cannot build is still described
        return None


def _try_default_config(name: str) -> dict | None:
    """The default config of a describable class, None if Keras could not build it (not a copy)."""
    return _data().default_configs.get(name)


def default_config(class_name: str) -> dict:
    """The full config a layer has when dropped from the palette.

    It is exactly ``get_config()`` of the Keras layer built with the curated
    starting values, without ``"name"``, made JSON-safe (tuples become lists).

    Args:
        class_name: A catalog class name or alias, or ``"InputLayer"``.

    Returns:
        A fresh deep copy; callers may change it.

    Raises:
        KeyError: The class is not in the catalog (or Keras cannot build it).
    """
    name = _resolve(class_name)
    if name not in _catalog() and name != "InputLayer":
        raise KeyError(f"{class_name!r} is not in the layer catalog")
    config = _try_default_config(name)
    if config is None:
        raise KeyError(f"{class_name!r} cannot be built by this Keras with its starting values")
    return copy.deepcopy(config)


# --------------------------------------------------------------------------- #
# Parameter specs
# --------------------------------------------------------------------------- #


@functools.cache
def _signature_params(cls: type) -> tuple[inspect.Parameter, ...]:
    # Cached: check_config asks for the same classes for every layer of a model.
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return tuple(p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))


def _accepts_kwargs(cls: type) -> bool:
    params = inspect.signature(cls.__init__).parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in params)


def _choices(class_name: str, cls: type, name: str) -> tuple | None:
    # Several image layers publish what they accept as class attributes.
    if name == "interpolation":
        found = getattr(cls, "_SUPPORTED_INTERPOLATION", None)
        if found:
            return tuple(found)
    if name == "fill_mode":
        found = getattr(cls, "_SUPPORTED_FILL_MODE", None) or getattr(
            cls, "_SUPPORTED_FILL_MODES", None
        )
        if found:
            return tuple(sorted(found, key=lambda m: (m != "reflect", m)))
    if name == "data_format":
        return _DATA_FORMATS
    if name == "padding" and _module_part(cls) in ("convolutional", "pooling", "rnn"):
        causal = class_name == "Conv1D"  # only BaseConv with rank 1 allows it
        return ("valid", "same", "causal") if causal else ("valid", "same")
    if name == "padding" and class_name == "STFTSpectrogram":
        return ("valid", "same")
    by_class = _CHOICES.get(name)
    if by_class:
        return by_class.get(class_name, by_class.get("*"))
    return None


def _infer_kind(name: str, value: Any, choices: tuple | None, cls: type, doc: str = "") -> str:
    if name in _LAYER_ARGS:
        return LAYER
    if name.endswith("_initializer"):
        return INITIALIZER
    if name.endswith("_regularizer"):
        return REGULARIZER
    if name.endswith("_constraint"):
        return CONSTRAINT
    if name in ("activation", "recurrent_activation"):
        return ACTIVATION
    if name == "dtype" or (name.endswith("_dtype") and choices is None):
        return DTYPE
    if choices is not None:
        return CHOICE
    if name in _INT_TUPLE_NAMES or (name == "padding" and _module_part(cls) == "reshaping"):
        return INT_TUPLE
    if name == "axes" or (name == "axis" and re.search(r"list|tuple", doc, re.IGNORECASE)):
        return INT_TUPLE  # an int, or several axes where the docstring says so
    if name in _SHAPE_NAMES:
        return SHAPE
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    if isinstance(value, list):
        return LIST
    return _NONE_KINDS.get(name, ANY)


def _make_param(
    class_name: str, cls: type, name: str, value: Any, sig_default: Any, required: bool,
    docs: Mapping[str, str],
) -> ParamSpec:
    choices = _choices(class_name, cls, name)
    kind = _infer_kind(name, value, choices, cls, docs.get(name, ""))
    nullable = (
        (sig_default is None and not required)
        or name == "data_format"
        or (choices is not None and None in choices)
    )
    if kind == CHOICE and choices is not None:
        choices = tuple(c for c in choices if c is not None)
    return ParamSpec(
        name=name,
        kind=kind,
        default=value,
        required=required,
        choices=choices if kind == CHOICE else None,
        nullable=nullable,
        doc=docs.get(name, ""),
    )


_BASE_DOCS = {
    "trainable": "Whether the layer's weights are updated during training.",
    "dtype": "The dtype policy: the dtype of the weights and of the computation.",
    "activity_regularizer": "Regularizer applied to the layer's output.",
}


def _param_specs(name: str, cls: type, config: dict | None) -> tuple[ParamSpec, ...]:
    """Signature arguments, then extra get_config keys, then trainable/dtype."""
    docs = {**_BASE_DOCS, **arg_docs(cls.__doc__ or "")}
    specs = []
    seen = {"name"} | _HIDDEN
    for param in _signature_params(cls):
        if param.name in seen:
            continue
        seen.add(param.name)
        required = param.default is inspect.Parameter.empty
        sig_default = None if required else json_plain(param.default)
        if config is not None and param.name in config and (name, param.name) not in _VOLATILE:
            value = config[param.name]
        elif required:
            value = json_plain(_STARTING.get(param.name))
        else:
            value = sig_default
        specs.append(_make_param(name, cls, param.name, value, sig_default, required, docs))
    # Keys get_config() reports beyond the signature (trainable, dtype, and
    # arguments a base class takes through **kwargs, like zero_output_for_mask).
    extras = [k for k in (config or {}) if k not in seen]
    if _accepts_kwargs(cls):
        extras += [k for k in ("trainable", "dtype") if k not in seen and k not in extras]
    for key in extras:
        seen.add(key)
        fallback = {"trainable": True}.get(key)
        value = config.get(key, fallback) if config else fallback
        specs.append(_make_param(name, cls, key, value, value, False, docs))
    return tuple(specs)


# --------------------------------------------------------------------------- #
# Categories and ports
# --------------------------------------------------------------------------- #


def _module_part(cls: type) -> str:
    """The package of Keras's layers holding ``cls`` (``"convolutional"``)."""
    parts = cls.__module__.split(".")
    if "layers" in parts:
        index = parts.index("layers")
        if index + 1 < len(parts):
            return parts[index + 1]
    return ""


def _category(name: str, cls: type) -> str:
    keras = _keras()
    # Bidirectional is no keras.layers.Wrapper subclass, but wraps a layer too.
    if issubclass(cls, keras.layers.Wrapper) or any(
        p.name == "layer" for p in _signature_params(cls)
    ):
        return "Wrappers"
    parts = cls.__module__.split(".")
    if parts[-1] in _EMBEDDING_MODULES:
        return "Embedding"
    if "image_preprocessing" in parts:
        # Random image layers (those taking a seed) augment; the rest transform.
        has_seed = any(p.name == "seed" for p in _signature_params(cls))
        return "Augmentation" if has_seed else "Preprocessing"
    return _MODULE_CATEGORIES.get(_module_part(cls), "Core")


def _ports(name: str, cls: type) -> PortsSpec:
    if name == "InputLayer":
        return PortsSpec("none", (), 0, 0)
    if name in _LIST_PORTS:
        return PortsSpec("list", *_LIST_PORTS[name])
    if name in _POSITIONAL_PORTS:
        return PortsSpec("positional", *_POSITIONAL_PORTS[name])
    if _module_part(cls) == "merging":  # a merge layer new to this Keras
        return PortsSpec("list", (), 2, None)
    call_params = list(inspect.signature(cls.call).parameters)
    first = call_params[1] if len(call_params) > 1 and call_params[0] == "self" else "inputs"
    return PortsSpec("single", (first,), 1, 1)


# --------------------------------------------------------------------------- #
# The catalog
# --------------------------------------------------------------------------- #


def _describe(name: str, cls: type, config: dict | None) -> LayerSpec:
    doc = inspect.cleandoc(cls.__doc__ or "")
    return LayerSpec(
        class_name=name,
        category="Core" if name == "InputLayer" else _category(name, cls),
        description=_DESCRIPTIONS.get(name) or first_sentence(doc) or name,
        params=_param_specs(name, cls, config),
        ports=_ports(name, cls),
        module=cls.__module__,
        doc=doc,
    )


def derive() -> CatalogData:
    """Derives the whole catalog from the installed Keras (imports it; seconds).

    The editor reads the cached result instead (:func:`load_cached`); this is
    what the cache is made of, and what it is checked against.
    """
    from builder_app.core.config_check import _accepted_names

    classes, aliases = _layer_classes()
    names = [name for name in classes if _describable(name)]
    configs = {name: _derive_default_config(name) for name in names}
    specs = {name: _describe(name, classes[name], configs[name]) for name in names}
    return CatalogData(
        keras_version=_keras().__version__,
        specs=specs,
        input_spec=_derive_input_spec(),
        default_configs=configs,
        aliases=dict(aliases),
        accepted={name: _accepted_names(name) for name in names},
        nested={kind: _derive_nested_params(kind) for kind in (INITIALIZER, REGULARIZER, CONSTRAINT)},
        identifiers={
            kind: _derive_identifiers(kind)
            for kind in (ACTIVATION, INITIALIZER, REGULARIZER, CONSTRAINT)
        },
        dtype_names=_derive_dtype_names(),
        dtype_policy_classes=_derive_dtype_policy_classes(),
        quantizer_classes=_derive_quantizer_classes(),
    )


# --------------------------------------------------------------------------- #
# The data in use: from the cache, else derived (and cached)
# --------------------------------------------------------------------------- #

_lock = threading.Lock()
_loaded: CatalogData | None = None
_source = ""
_missed = False  # no cache fitted: asking again reads nothing until the catalog is derived


def _install(data: CatalogData, source: str) -> CatalogData:
    global _loaded, _source
    with _lock:
        if _loaded is None:
            if source != "derived":
                _draw_volatile(data)
            _loaded, _source = data, source
        return _loaded


def _draw_volatile(data: CatalogData) -> None:
    """Draws the values Keras draws for every new layer (RandomCrop's seed) for this session.

    A live catalog draws them once a session (as Keras's ``make_default_seed``); a
    cached one would give every session the seed of the one that derived it.
    """
    for name, key in _VOLATILE:
        config = data.default_configs.get(name)
        if config is not None and type(config.get(key)) is int:
            config[key] = random.randint(1, int(1e9))


def load_cached() -> bool:
    """Reads the cached catalog of the installed Keras, if there is one; never imports Keras.

    Returns:
        Whether the catalog is loaded now (read here, or loaded before). Once no
        cache fitted, it answers False at once until the catalog is derived.
    """
    global _missed
    if _loaded is not None:
        return True
    if _missed:
        return False
    from builder_app.core import catalog_cache

    found = catalog_cache.load()
    if found is None:
        _missed = True
        return False
    data, source = found
    _install(data, source)
    return True


def _data() -> CatalogData:
    """The catalog data: the cached one, else derived from Keras now and cached."""
    if _loaded is not None or load_cached():
        return _loaded  # type: ignore[return-value]
    from builder_app.core import catalog_cache

    data = derive()
    catalog_cache.store(data)
    return _install(data, "derived")


def prepare() -> None:
    """Loads the catalog (cached, else derived and cached) and Keras's layer classes.

    Imports Keras: call it off the GUI thread (the editor's Keras loader does).
    """
    _data()
    _layer_classes()


def _forget() -> None:
    """Forgets the catalog in use, so that the next read loads it again (tests)."""
    global _loaded, _source, _missed
    with _lock:
        _loaded, _source, _missed = None, "", False


def source() -> str:
    """Where the catalog in use came from: ``"cache"``, ``"shipped"``, ``"derived"``; "" before."""
    return _source


def _specs() -> dict[str, LayerSpec]:
    """LayerSpecs of every describable class: catalog, cells and InputLayer."""
    return _data().specs


def _catalog() -> dict[str, LayerSpec]:
    return _data().ordered


def _accepted(name: str) -> frozenset[str]:
    """The config keys a describable class accepts (see ``config_check._accepted_names``)."""
    return _data().accepted[name]


def catalog() -> dict[str, LayerSpec]:
    """Every layer the palette offers, by canonical name, by category then name."""
    return dict(_catalog())


def is_loaded() -> bool:
    """Whether the catalog is loaded (reading it now will not import Keras)."""
    return _loaded is not None


def keras_loaded() -> bool:
    """Whether Keras is imported and its layer classes listed (:func:`keras_class` is instant)."""
    return _layer_classes.cache_info().currsize > 0


def layer_spec(class_name: str) -> LayerSpec:
    """The spec of a catalog layer, resolving aliases.

    Raises:
        KeyError: Not a catalog layer (unknown, or in ``EXCLUDED``).
    """
    name = _resolve(class_name)
    spec = _catalog().get(name)
    if spec is None:
        reason = EXCLUDED.get(name)
        detail = f": {reason}" if reason else ""
        raise KeyError(f"{class_name!r} is not in the layer catalog{detail}")
    return spec


def categories() -> list[str]:
    """The categories that hold at least one layer, in palette order."""
    used = {s.category for s in _catalog().values()}
    return [c for c in CATEGORIES if c in used]


def keras_class(class_name: str) -> type:
    """The Keras class of a catalog layer (or InputLayer), resolving aliases.

    Only classes of ``keras.layers`` the catalog describes are returned; no
    module named by the caller is ever imported.

    Raises:
        KeyError: Anything else.
    """
    name = _resolve(class_name)
    if name != "InputLayer" and name not in _catalog():
        raise KeyError(f"{class_name!r} is not in the layer catalog")
    return _layer_classes()[0][name]


def input_spec() -> LayerSpec:
    """The spec of the graph's Input node, ``keras.layers.InputLayer``."""
    return _data().input_spec


def _derive_input_spec() -> LayerSpec:
    """The spec of the graph's Input node, ``keras.layers.InputLayer``, from Keras.

    Keras 3 keeps ``batch_shape``, ``dtype``, ``sparse``, ``ragged`` and
    ``optional`` in the config; ``shape`` and ``batch_size`` are constructor
    conveniences that end up in ``batch_shape``.
    """
    docs = {
        "batch_shape": "Shape of the input including the batch size (None: any batch).",
        "dtype": "The dtype of the input tensor.",
        "sparse": "Whether the input is a sparse tensor.",
        "ragged": "Whether the input is a ragged tensor.",
        "optional": "Whether the input may be None when the model is called.",
    }
    config = _default_config("InputLayer")
    params = tuple(
        ParamSpec(key, kind, config.get(key, default), doc=docs[key], nullable=key == "dtype")
        for key, kind, default in (
            ("batch_shape", SHAPE, [None, 8]),
            ("dtype", DTYPE, "float32"),
            ("sparse", BOOL, False),
            ("ragged", BOOL, False),
            ("optional", BOOL, False),
        )
    )
    cls = _layer_classes()[0]["InputLayer"]
    return LayerSpec(
        class_name="InputLayer",
        category="Core",
        description="The model's input: a placeholder tensor of a given shape and dtype.",
        params=params,
        ports=PortsSpec("none", (), 0, 0),
        module=cls.__module__,
        doc=inspect.cleandoc(cls.__doc__ or ""),
    )


# --------------------------------------------------------------------------- #
# Nested objects: initializers, regularizers, constraints, activations, dtypes
# --------------------------------------------------------------------------- #


def _object_params(cls: type) -> tuple[ParamSpec, ...]:
    docs = arg_docs(cls.__doc__ or "")
    specs = []
    for param in _signature_params(cls):
        required = param.default is inspect.Parameter.empty
        value = None if required else json_plain(param.default)
        choices = None
        if param.name == "mode" and cls.__name__ == "VarianceScaling":
            choices = ("fan_in", "fan_out", "fan_avg")
        elif param.name == "distribution":
            choices = ("truncated_normal", "untruncated_normal", "uniform")
        elif param.name == "mode" and cls.__name__ == "OrthogonalRegularizer":
            choices = ("rows", "columns")
        kind = CHOICE if choices else _infer_kind(param.name, value, None, cls)
        if param.name in ("input_axes", "output_axes"):
            kind = INT_TUPLE
        if kind == ANY and param.name == "value":
            kind = FLOAT
        specs.append(
            ParamSpec(
                param.name, kind, value, required=required, choices=choices,
                nullable=value is None, doc=docs.get(param.name, ""),
            )
        )
    return tuple(specs)


def _public_classes(module, base: type) -> dict[str, type]:
    found = {}
    for attr in sorted(dir(module)):
        obj = getattr(module, attr)
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base:
            found[obj.__name__] = obj
    return found


@functools.cache
def _nested_classes(kind: str) -> dict[str, type]:
    keras = _keras()
    module, base = {
        INITIALIZER: (keras.initializers, keras.initializers.Initializer),
        REGULARIZER: (keras.regularizers, keras.regularizers.Regularizer),
        CONSTRAINT: (keras.constraints, keras.constraints.Constraint),
    }[kind]
    return _public_classes(module, base)


def _derive_nested_params(kind: str) -> dict[str, tuple[ParamSpec, ...]]:
    return {name: _object_params(cls) for name, cls in _nested_classes(kind).items()}


def _nested_params(kind: str) -> dict[str, tuple[ParamSpec, ...]]:
    return _data().nested[kind]


def initializer_classes() -> dict[str, tuple[ParamSpec, ...]]:
    """Every public class of ``keras.initializers`` with its arguments."""
    return dict(_nested_params(INITIALIZER))


def regularizer_classes() -> dict[str, tuple[ParamSpec, ...]]:
    """Every public class of ``keras.regularizers`` (L1, L2, L1L2, ...) with its arguments."""
    return dict(_nested_params(REGULARIZER))


def constraint_classes() -> dict[str, tuple[ParamSpec, ...]]:
    """Every public class of ``keras.constraints`` (MaxNorm, NonNeg, ...) with its arguments."""
    return dict(_nested_params(CONSTRAINT))


def _identifiers(kind: str) -> frozenset[str]:
    """Every string Keras resolves for a kind: class names, snake names, aliases."""
    return _data().identifiers[kind]


def _derive_identifiers(kind: str) -> frozenset[str]:
    keras = _keras()
    if kind == ACTIVATION:
        names = {
            n for n in dir(keras.activations)
            if not n.startswith("_") and n not in ("get", "serialize", "deserialize")
            and inspect.isfunction(getattr(keras.activations, n))
        }
        return frozenset(names | {"linear"})
    classes = _nested_classes(kind)
    module = {INITIALIZER: keras.initializers, REGULARIZER: keras.regularizers,
              CONSTRAINT: keras.constraints}[kind]
    names = set(classes)
    names |= {n for n in dir(module) if getattr(module, n) in classes.values()}
    try:  # Keras also resolves a few names it does not export ("uniform", "l1l2").
        registered = keras_compat.registered_objects(module.__name__.rpartition(".")[2])
        names |= {k for k, v in registered.items() if v in classes.values()}
    except (ImportError, AttributeError):  # pragma: no cover - private API moved (tests/test_keras_compat.py)
        pass
    return frozenset(names)


def known_identifiers(kind: str) -> frozenset[str]:
    """The strings Keras accepts for a nested object of ``kind``.

    Args:
        kind: ``"activation"``, ``"initializer"``, ``"regularizer"`` or ``"constraint"``.
    """
    return _identifiers(kind)


def activation_names() -> list[str]:
    """Every public activation function of ``keras.activations``, plus ``"linear"``."""
    return sorted(_identifiers(ACTIVATION))


def _dtype_names() -> tuple[str, ...]:
    return _data().dtype_names


def _derive_dtype_names() -> tuple[str, ...]:
    try:
        names = list(keras_compat.allowed_dtypes())
    except ImportError:  # pragma: no cover - private API moved (tests/test_keras_compat.py)
        names = ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32",
                 "int64", "uint8", "uint16", "uint32", "uint64", "bool", "string"]
    return (*names, "mixed_float16", "mixed_bfloat16")


def dtype_names() -> list[str]:
    """The dtypes and dtype-policy names a layer's ``dtype`` accepts."""
    return list(_dtype_names())


def _dtype_policy_classes() -> frozenset[str]:
    return _data().dtype_policy_classes


def _quantizer_classes() -> frozenset[str]:
    return _data().quantizer_classes


def _derive_dtype_policy_classes() -> frozenset[str]:
    keras = _keras()
    return frozenset(
        n for n in dir(keras.dtype_policies) if inspect.isclass(getattr(keras.dtype_policies, n))
    )


def _derive_quantizer_classes() -> frozenset[str]:
    keras = _keras()
    return frozenset(n for n in dir(keras.quantizers) if inspect.isclass(getattr(keras.quantizers, n)))


def check_config(class_name: str, config: dict) -> list[str]:
    """Checks a layer config from a file before Keras sees it (see :mod:`.config_check`).

    Returns:
        One human-readable line per problem; empty when the config is safe and
        every parameter is one the class accepts.
    """
    from builder_app.core.config_check import check_config as check

    return check(class_name, config)
