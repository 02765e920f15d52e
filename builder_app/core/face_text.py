"""The one line of settings a node's face carries, and whether a layer trains differently.

A face has room for a few words, so it says what makes this layer this layer:
``filters 32 · 3×3 · stride 2``, ``128 units · relu``, ``rate 0.5``. Settings that
always matter (units, filters, kernel, rate, heads...) are always shown; the others
(strides, dilation, padding, groups, activation, data format...) only when they
differ from Keras's own default, which says nothing. Those defaults are written
here rather than read from :func:`builder_app.core.catalog.default_config`: the
palette's starting values (``filters 32``) do carry information, and a face is
painted before Keras has loaded. The rules a class uses are looked up once per
class; :func:`key_settings` is called on every repaint of every node face.

Keras-free and Qt-free: configs are read as plain data (lists or tuples alike).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

#: Between two settings on a face.
SEPARATOR = " · "

#: Layers that compute differently in training than in inference.
_TRAINING_ONLY = {
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
    "GaussianDropout", "GaussianNoise", "BatchNormalization", "ActivityRegularization",
    "AugMix", "CutMix", "MixUp", "RandAugment",
}  # fmt: skip

Rule = Callable[[str, Mapping[str, Any]], str]


def differs_in_training(class_name: str) -> bool:
    """True for layers that compute differently when training.

    The Dropout family (SpatialDropout*, AlphaDropout, GaussianDropout), GaussianNoise,
    BatchNormalization (batch statistics, then the moving ones) and the random
    augmentation layers (RandomFlip, RandomRotation..., MixUp, CutMix, AugMix,
    RandAugment), which are identities at inference.
    """
    name = class_name.rpartition(".")[2]
    return name in _TRAINING_ONLY or name.startswith("Random")


def key_settings(class_name: str, config: Mapping[str, Any]) -> str:
    """One short line of the settings that matter, e.g. ``'filters 32 · 3×3 · stride 2'``.

    ``'128 units · relu'`` for Dense, ``'rate 0.5'`` for Dropout, ``'axis -1'`` for
    Concatenate, ``'8 heads · key 64'`` for MultiHeadAttention, the pool size and
    strides for pooling, ``'target (7, 7, 64)'`` for Reshape, ``'mode bilinear ×2'``
    for UpSampling2D. Settings at Keras's default that carry no information are
    omitted; the empty string when nothing matters (Flatten, Add...). Wrappers
    (Bidirectional, TimeDistributed) show their inner layer's line.

    Args:
        class_name: The Keras class (module-qualified names are read by their last part).
        config: The layer's config as ``get_config()`` returns it.
    """
    parts = []
    for rule in _rules_of(class_name.rpartition(".")[2]):
        try:
            text = rule(class_name, config)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            continue  # an odd value (an imported config): a face never fails to paint
        if text:
            parts.append(text)
    return SEPARATOR.join(parts)


# --------------------------------------------------------------------- values
def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sizes(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _cross(value: Any) -> str:
    """``3×3`` for a kernel, ``5`` for one dimension."""
    return "×".join(_number(v) for v in _sizes(value))


def _uniform(value: Any) -> str:
    """``2`` when every dimension is 2, else ``2×1``."""
    sizes = _sizes(value)
    return _number(sizes[0]) if sizes and all(s == sizes[0] for s in sizes) else _cross(sizes)


def _all(value: Any, neutral: Any) -> bool:
    return all(v == neutral for v in _sizes(value))


def _tuple(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_tuple(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return _number(value)


def _activation_name(value: Any) -> str | None:
    if isinstance(value, Mapping):  # a serialized function or object
        inner = value.get("config")
        return inner if isinstance(inner, str) else value.get("class_name")
    return value if isinstance(value, str) else None


def _flat_edges(value: Any) -> list[Any]:
    found = []
    for item in _sizes(value):
        found.extend(_flat_edges(item) if isinstance(item, list | tuple) else [item])
    return found


# --------------------------------------------------------------------- rules
def _key(key: str, render: Callable[[Any], str], *, neutral: tuple = ()) -> Rule:
    """A rule showing ``config[key]`` through ``render``, unless absent or one of ``neutral``."""

    def rule(class_name: str, config: Mapping[str, Any]) -> str:
        if key not in config:
            return ""
        value = config[key]
        if value in neutral or (isinstance(value, list | tuple) and tuple(value) in neutral):
            return ""
        return render(value)

    return rule


def _filters(class_name: str, config: Mapping[str, Any]) -> str:
    return f"filters {config['filters']}" if "filters" in config else ""


def _depth(class_name: str, config: Mapping[str, Any]) -> str:
    multiplier = config.get("depth_multiplier", 1)
    return f"depth ×{multiplier}" if multiplier not in (None, 1) else ""


def _kernel(class_name: str, config: Mapping[str, Any]) -> str:
    kernel = config.get("kernel_size")
    if kernel is None:
        return ""
    return _cross(kernel) if len(_sizes(kernel)) > 1 else f"kernel {_cross(kernel)}"


def _strides(class_name: str, config: Mapping[str, Any]) -> str:
    strides = config.get("strides")
    if strides is None or _all(strides, 1):
        return ""
    return f"stride {_uniform(strides)}"


def _dilation(class_name: str, config: Mapping[str, Any]) -> str:
    dilation = config.get("dilation_rate")
    if dilation is None or _all(dilation, 1):
        return ""
    return f"dilation {_uniform(dilation)}"


def _padding(class_name: str, config: Mapping[str, Any]) -> str:
    padding = config.get("padding")
    return padding if isinstance(padding, str) and padding != "valid" else ""


def _groups(class_name: str, config: Mapping[str, Any]) -> str:
    groups = config.get("groups", 1)
    return f"groups {groups}" if groups not in (None, 1) else ""


def _activation(class_name: str, config: Mapping[str, Any]) -> str:
    name = _activation_name(config.get("activation"))
    if class_name.rpartition(".")[2] == "Activation":
        return name or ""
    return name if name not in (None, "linear") else ""


def _recurrent_activation(class_name: str, config: Mapping[str, Any]) -> str:
    name = _activation_name(config.get("activation"))
    return name if name not in (None, "tanh") else ""


def _channels_first(class_name: str, config: Mapping[str, Any]) -> str:
    return "channels first" if config.get("data_format") == "channels_first" else ""


def _units(class_name: str, config: Mapping[str, Any]) -> str:
    return f"{config['units']} units" if "units" in config else ""


def _pool(class_name: str, config: Mapping[str, Any]) -> str:
    size = config.get("pool_size")
    if size is None:
        return ""
    strides = config.get("strides")
    text = _cross(size)
    if strides is not None and _sizes(strides) != _sizes(size):
        text += f"{SEPARATOR}stride {_uniform(strides)}"
    return text


def _upsampling(class_name: str, config: Mapping[str, Any]) -> str:
    size = f"×{_uniform(config.get('size', 2))}"
    mode = config.get("interpolation", "nearest")
    return size if mode in (None, "nearest") else f"mode {mode} {size}"


def _edges(word: str, key: str) -> Rule:
    """Cropping and padding amounts: ``crop 1`` when every edge is 1, else the tuple."""

    def rule(class_name: str, config: Mapping[str, Any]) -> str:
        value = config.get(key)
        if value is None or isinstance(value, str):
            return ""
        edges = _flat_edges(value)
        if edges and all(e == edges[0] for e in edges):
            return f"{word} {_number(edges[0])}"
        return f"{word} {_tuple(value)}"

    return rule


def _embedding(class_name: str, config: Mapping[str, Any]) -> str:
    vocabulary, dim = config.get("input_dim"), config.get("output_dim")
    parts = [f"vocab {vocabulary}" if vocabulary is not None else "", f"dim {dim}" if dim else ""]
    if config.get("mask_zero"):
        parts.append("mask 0")
    return SEPARATOR.join(p for p in parts if p)


def _sequences(class_name: str, config: Mapping[str, Any]) -> str:
    flags = [
        "sequences" if config.get("return_sequences") else "",
        "state" if config.get("return_state") else "",
        "backwards" if config.get("go_backwards") else "",
    ]
    return SEPARATOR.join(f for f in flags if f)


def _heads(class_name: str, config: Mapping[str, Any]) -> str:
    heads, key_dim = config.get("num_heads"), config.get("key_dim")
    parts = [f"{heads} heads" if heads is not None else "", f"key {key_dim}" if key_dim else ""]
    value_dim = config.get("value_dim")
    if value_dim not in (None, key_dim):
        parts.append(f"value {value_dim}")
    return SEPARATOR.join(p for p in parts if p)


def _wrapped(class_name: str, config: Mapping[str, Any]) -> str:
    inner = config.get("layer")
    if not isinstance(inner, Mapping):
        return ""
    inner_class = str(inner.get("class_name", ""))
    text = key_settings(inner_class, inner.get("config") or {})
    label = inner_class.rpartition(".")[2]
    return f"{label} {text}" if text else label


def _merge_mode(class_name: str, config: Mapping[str, Any]) -> str:
    mode = config.get("merge_mode", "concat")
    return f"merge {mode}" if mode not in ("concat",) else ""


def _size(class_name: str, config: Mapping[str, Any]) -> str:
    height, width = config.get("height"), config.get("width")
    return f"{height}×{width}" if height is not None and width is not None else ""


def _scale(class_name: str, config: Mapping[str, Any]) -> str:
    scale, offset = config.get("scale", 1.0), config.get("offset", 0.0)
    parts = []
    inverse = 1 / scale if isinstance(scale, int | float) and 0 < scale < 1 else None
    if inverse is not None and abs(inverse - round(inverse)) < 1e-6:
        parts.append(f"×1/{round(1 / scale)}")
    elif scale != 1.0:
        parts.append(f"×{_number(scale)}")
    if offset not in (0, 0.0, None):
        parts.append(f"{'+' if offset > 0 else '−'}{_number(abs(offset))}")
    return " ".join(parts)


def _factor(class_name: str, config: Mapping[str, Any]) -> str:
    factor = config.get("factor")
    if factor is None:
        return ""
    sizes = _sizes(factor)
    if len(sizes) == 2 and sizes[0] == -sizes[1]:
        return f"factor ±{_number(sizes[1])}"
    return f"factor {_tuple(factor) if len(sizes) > 1 else _number(sizes[0])}"


_CONV = (_filters, _depth, _kernel, _strides, _dilation, _padding, _groups, _activation,
         _channels_first)  # fmt: skip
_POOL = (_pool, _padding, _channels_first)

#: Class -> its rules, in the order their words appear. Families are filled in below.
_BY_CLASS: dict[str, tuple[Rule, ...]] = {
    "Dense": (_units, _activation),
    "EinsumDense": (_key("equation", str), _activation),
    "Activation": (_activation,),
    "ReLU": (_key("max_value", lambda v: f"max {_number(v)}", neutral=(None,)),
             _key("negative_slope", lambda v: f"slope {_number(v)}", neutral=(0, 0.0)),
             _key("threshold", lambda v: f"threshold {_number(v)}", neutral=(0, 0.0))),
    "LeakyReLU": (_key("negative_slope", lambda v: f"slope {_number(v)}"),),
    "ELU": (_key("alpha", lambda v: f"alpha {_number(v)}", neutral=(1, 1.0)),),
    "Softmax": (_key("axis", lambda v: f"axis {_tuple(v)}", neutral=(-1,)),),
    "Concatenate": (_key("axis", lambda v: f"axis {_tuple(v)}"),),
    "Dot": (_key("axes", lambda v: f"axes {_tuple(v)}"),
            _key("normalize", lambda v: "normalized", neutral=(False,))),
    "BatchNormalization": (_key("axis", lambda v: f"axis {_tuple(v)}", neutral=(-1, (-1,))),
                           _key("momentum", lambda v: f"momentum {_number(v)}", neutral=(0.99,))),
    "LayerNormalization": (_key("axis", lambda v: f"axis {_tuple(v)}", neutral=(-1, (-1,))),),
    "GroupNormalization": (_key("groups", lambda v: f"groups {v}"),),
    "Reshape": (_key("target_shape", lambda v: f"target {_tuple(v)}"),),
    "Permute": (_key("dims", lambda v: f"dims {_tuple(v)}"),),
    "RepeatVector": (_key("n", lambda v: f"×{v}"),),
    "Embedding": (_embedding,),
    "MultiHeadAttention": (_heads,),
    "GroupQueryAttention": (_key("num_query_heads", lambda v: f"{v} heads"),
                            _key("num_key_value_heads", lambda v: f"{v} kv heads"),
                            _key("head_dim", lambda v: f"head {v}")),
    "Bidirectional": (_wrapped, _merge_mode),
    "TimeDistributed": (_wrapped,),
    "Rescaling": (_scale,),
    "Resizing": (_size, _key("interpolation", str, neutral=("bilinear",))),
    "CenterCrop": (_size,),
    "RandomCrop": (_size,),
    "RandomFlip": (_key("mode", lambda v: v.replace("_", " ")),),
    "RandomRotation": (_factor,),
    "RandomZoom": (_key("height_factor", lambda v: f"factor {_tuple(v)}"),),
    "RandomContrast": (_factor,),
    "RandomBrightness": (_factor,),
    "RandomTranslation": (_key("height_factor", lambda v: f"height {_tuple(v)}"),
                          _key("width_factor", lambda v: f"width {_tuple(v)}")),
    "GaussianNoise": (_key("stddev", lambda v: f"stddev {_number(v)}"),),
    "Masking": (_key("mask_value", lambda v: f"mask {_number(v)}"),),
}  # fmt: skip
for _rank in (1, 2, 3):
    for _name in (f"Conv{_rank}D", f"Conv{_rank}DTranspose", f"DepthwiseConv{_rank}D",
                  f"SeparableConv{_rank}D"):  # fmt: skip
        _BY_CLASS[_name] = _CONV
    _BY_CLASS[f"ConvLSTM{_rank}D"] = (*_CONV[:-2], _sequences, _channels_first)
    for _name in (f"MaxPooling{_rank}D", f"AveragePooling{_rank}D"):
        _BY_CLASS[_name] = _POOL
    for _name in (f"GlobalMaxPooling{_rank}D", f"GlobalAveragePooling{_rank}D"):
        _BY_CLASS[_name] = (_key("keepdims", lambda v: "keep dims", neutral=(False,)),
                            _channels_first)  # fmt: skip
    _BY_CLASS[f"UpSampling{_rank}D"] = (_upsampling, _channels_first)
    _BY_CLASS[f"Cropping{_rank}D"] = (_edges("crop", "cropping"), _channels_first)
    _BY_CLASS[f"ZeroPadding{_rank}D"] = (_edges("pad", "padding"), _channels_first)
for _name in ("LSTM", "GRU", "SimpleRNN"):
    _BY_CLASS[_name] = (_units, _recurrent_activation, _sequences)
for _name in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
              "AlphaDropout", "GaussianDropout"):  # fmt: skip
    _BY_CLASS[_name] = (_key("rate", lambda v: f"rate {_number(v)}"),)


@functools.cache
def _rules_of(class_name: str) -> tuple[Rule, ...]:
    """The rules of a class; an unlisted class shows its units or filters if it has any."""
    return _BY_CLASS.get(class_name, (_units, _filters))
