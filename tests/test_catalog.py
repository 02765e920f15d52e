"""The layer catalog matches the installed Keras and guards configs from files."""

import inspect
import json
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder_app.core import catalog
from builder_app.core.text import json_plain

ROOT = Path(__file__).resolve().parents[1]
NAMES = list(catalog.catalog())


def _public_layer_classes() -> dict[str, type]:
    return {
        attr: obj
        for attr in dir(keras.layers)
        if not attr.startswith("_")
        and inspect.isclass(obj := getattr(keras.layers, attr))
        and issubclass(obj, keras.layers.Layer)
    }


def _build(class_name: str, config: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return catalog.keras_class(class_name).from_config(config)


# --------------------------------------------------------------------------- #
# Coverage of keras.layers: a new Keras release fails here, naming the classes.
# --------------------------------------------------------------------------- #


def test_every_public_layer_is_cataloged_or_excluded():
    known = set(NAMES) | set(catalog.ALIASES) | set(catalog.EXCLUDED)
    missing = sorted(attr for attr in _public_layer_classes() if attr not in known)
    assert missing == [], f"keras.layers classes neither in the catalog nor EXCLUDED: {missing}"


def test_catalog_holds_only_keras_layers():
    public = _public_layer_classes()
    strays = sorted(name for name in NAMES if name not in public)
    assert strays == [], f"catalog names that keras.layers does not export: {strays}"
    stale = sorted(name for name in catalog.EXCLUDED if name not in public)
    assert stale == [], f"EXCLUDED names that keras.layers does not export: {stale}"


def test_aliases_point_at_the_same_class():
    for alias, canonical in catalog.ALIASES.items():
        assert alias not in catalog.catalog()
        if hasattr(keras.layers, alias):
            assert getattr(keras.layers, alias) is catalog._layer_classes()[0][canonical]
    assert catalog.ALIASES["Convolution2D"] == "Conv2D"
    assert catalog.ALIASES["AvgPool2D"] == "AveragePooling2D"
    assert catalog.layer_spec("MaxPool2D").class_name == "MaxPooling2D"


def test_canonical_name_is_the_one_keras_serializes():
    # GroupedQueryAttention is exported (and saved) as GroupQueryAttention.
    layer = keras.layers.GroupQueryAttention(head_dim=4, num_query_heads=2, num_key_value_heads=1)
    assert keras.saving.serialize_keras_object(layer)["class_name"] == "GroupQueryAttention"
    assert "GroupQueryAttention" in catalog.catalog()
    assert catalog.ALIASES["GroupedQueryAttention"] == "GroupQueryAttention"


def test_excluded_layers_are_not_in_the_catalog():
    for name in catalog.EXCLUDED:
        assert name not in catalog.catalog()
        assert catalog.EXCLUDED[name]
    for name in ("Lambda", "TFSMLayer", "JaxLayer", "FlaxLayer", "TorchModuleWrapper", "LSTMCell"):
        assert name in catalog.EXCLUDED


def test_wanted_layers_are_present():
    for name in (
        "Dense", "Conv2DTranspose", "SeparableConv1D", "DepthwiseConv2D", "RNN",
        "Bidirectional", "TimeDistributed", "SpectralNormalization", "EinsumDense",
        "ReversibleEmbedding", "GroupQueryAttention", "RandomFlip", "Rescaling",
        "TextVectorization", "GroupNormalization", "RMSNormalization",
    ):
        assert name in catalog.catalog(), name


def test_catalog_is_sorted_by_category_then_name():
    order = {c: i for i, c in enumerate(catalog.CATEGORIES)}
    keys = [(order[s.category], s.class_name) for s in catalog.catalog().values()]
    assert keys == sorted(keys)
    assert catalog.categories() == [c for c in catalog.CATEGORIES if c in {s.category for s in catalog.catalog().values()}]


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("Dense", "Core"), ("Conv2D", "Convolution"), ("MaxPooling2D", "Pooling"),
        ("BatchNormalization", "Normalization"), ("Dropout", "Regularization"),
        ("GaussianNoise", "Regularization"), ("ActivityRegularization", "Regularization"),
        ("ReLU", "Activation"), ("Concatenate", "Merge"), ("Reshape", "Reshaping"),
        ("LSTM", "Recurrent"), ("MultiHeadAttention", "Attention"), ("Embedding", "Embedding"),
        ("Rescaling", "Preprocessing"), ("Resizing", "Preprocessing"),
        ("RandomFlip", "Augmentation"), ("Bidirectional", "Wrappers"),
        ("TimeDistributed", "Wrappers"),
    ],
)
def test_categories(name, category):
    assert catalog.layer_spec(name).category == category


def test_every_spec_is_well_formed():
    for name, spec in catalog.catalog().items():
        assert spec.category in catalog.CATEGORIES, name
        assert spec.description and "\n" not in spec.description, name
        assert "name" not in spec.param_names, name
        for param in spec.params:
            assert param.kind in catalog.KINDS, (name, param.name)
            assert (param.kind == catalog.CHOICE) == (param.choices is not None), (name, param.name)
            json.dumps(param.default)  # JSON-safe
        if "trainable" in spec.param_names:
            assert spec.param("trainable").kind == catalog.BOOL
        assert spec.param("dtype").kind == catalog.DTYPE, name


# --------------------------------------------------------------------------- #
# Default configs: exactly what Keras produces, and accepted by check_config
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", NAMES)
def test_default_config_round_trips_and_is_valid(name):
    config = catalog.default_config(name)
    assert json.loads(json.dumps(config)) == config  # JSON-safe as is
    rebuilt = json_plain(_build(name, {**config, "name": "x"}).get_config())
    assert rebuilt == {**config, "name": "x"}
    assert catalog.check_config(name, config) == []
    assert catalog.check_config(name, {**config, "name": "x"}) == []
    spec = catalog.layer_spec(name)
    for param in spec.params:
        if param.name in config and (name, param.name) not in catalog._VOLATILE:
            assert param.default == config[param.name], (name, param.name)
    for param in spec.params:
        if param.required:
            assert param.name in config or param.default is not None, (name, param.name)


def test_default_config_is_a_fresh_copy():
    config = catalog.default_config("Dense")
    config["units"] = 999
    assert catalog.default_config("Dense")["units"] == 32
    assert catalog.default_config("Convolution2D") == catalog.default_config("Conv2D")


def test_curated_starting_values():
    assert catalog.default_config("Dense")["units"] == 32
    assert catalog.default_config("Conv2D")["kernel_size"] == [3, 3]
    assert catalog.default_config("Dropout")["rate"] == 0.5
    assert catalog.default_config("Reshape")["target_shape"] == [-1]
    assert catalog.default_config("Bidirectional")["layer"]["class_name"] == "LSTM"
    assert catalog.default_config("TimeDistributed")["layer"]["class_name"] == "Dense"
    assert catalog.default_config("RNN")["cell"]["class_name"] == "LSTMCell"
    spec = catalog.layer_spec("Dense")
    assert spec.param("units").required and spec.param("units").default == 32
    assert spec.param("activation").kind == catalog.ACTIVATION
    assert spec.param("kernel_initializer").kind == catalog.INITIALIZER
    assert spec.param("kernel_initializer").default["class_name"] == "GlorotUniform"
    assert spec.param("trainable").default is True


def test_parameter_kinds_and_choices():
    conv1d, conv2d = catalog.layer_spec("Conv1D"), catalog.layer_spec("Conv2D")
    assert conv1d.param("padding").choices == ("valid", "same", "causal")
    assert conv2d.param("padding").choices == ("valid", "same")
    assert conv2d.param("kernel_size").kind == catalog.INT_TUPLE
    assert conv2d.param("data_format").choices == ("channels_last", "channels_first")
    assert conv2d.param("data_format").nullable
    assert conv2d.param("kernel_regularizer").kind == catalog.REGULARIZER
    assert conv2d.param("bias_constraint").kind == catalog.CONSTRAINT
    assert catalog.layer_spec("ZeroPadding2D").param("padding").kind == catalog.INT_TUPLE
    assert catalog.layer_spec("Reshape").param("target_shape").kind == catalog.SHAPE
    assert catalog.layer_spec("Permute").param("dims").kind == catalog.SHAPE
    assert catalog.layer_spec("LSTM").param("recurrent_activation").kind == catalog.ACTIVATION
    assert catalog.layer_spec("RNN").param("cell").kind == catalog.LAYER
    assert catalog.layer_spec("Bidirectional").param("layer").kind == catalog.LAYER
    assert "area" in catalog.layer_spec("Resizing").param("interpolation").choices
    assert catalog.layer_spec("RandomRotation").param("interpolation").choices == ("nearest", "bilinear")
    assert catalog.layer_spec("Dropout").param("rate").kind == catalog.FLOAT
    assert catalog.layer_spec("BatchNormalization").param("center").kind == catalog.BOOL
    assert catalog.layer_spec("Dense").param("units").doc.startswith("Positive integer")
    with pytest.raises(KeyError):
        catalog.layer_spec("Dense").param("nope")


def test_unknown_classes_raise_key_error():
    for name in ("Lambda", "Nope", "os.system"):
        with pytest.raises(KeyError):
            catalog.layer_spec(name)
        with pytest.raises(KeyError):
            catalog.keras_class(name)
        with pytest.raises(KeyError):
            catalog.default_config(name)
    assert catalog.keras_class("Convolution2D") is keras.layers.Conv2D
    assert catalog.keras_class("InputLayer") is keras.layers.InputLayer


def test_input_spec_matches_keras_input_layer():
    spec = catalog.input_spec()
    assert spec.class_name == "InputLayer"
    assert spec.ports == catalog.PortsSpec("none", (), 0, 0)
    assert spec.param_names == ("batch_shape", "dtype", "sparse", "ragged", "optional")
    assert spec.param("batch_shape").kind == catalog.SHAPE
    config = catalog.default_config("InputLayer")
    assert set(config) == set(spec.param_names)
    for param in spec.params:
        assert param.default == config[param.name]
    assert catalog.check_config("InputLayer", {"batch_shape": [None, 4], "dtype": "float32"}) == []
    assert catalog.check_config("InputLayer", {**config, "name": "x"}) == []


# --------------------------------------------------------------------------- #
# check_config: the security boundary
# --------------------------------------------------------------------------- #


def _dense(**changes):
    return {**catalog.default_config("Dense"), **changes}


def test_check_config_accepts_keras_names():
    config = _dense(
        activation="relu", kernel_initializer="he_normal", kernel_regularizer="l2",
        bias_constraint="non_neg", dtype="mixed_float16",
    )
    assert catalog.check_config("Dense", config) == []
    assert catalog.check_config("Dense", _dense(activation="swish", dtype="float32")) == []
    assert catalog.check_config("Embedding", {"input_dim": 4, "output_dim": 2,
                                              "embeddings_initializer": "uniform"}) == []
    assert catalog.check_config("Dense", {"units": 3, "input_shape": [4]}) == []  # Keras warns only
    assert catalog.check_config("LeakyReLU", {"alpha": 0.1}) == []  # popped from **kwargs
    assert catalog.check_config("LSTM", {"units": 3, "implementation": 2}) == []


def test_check_config_accepts_what_keras_serializes():
    layer = keras.layers.Dense(
        3, activation=keras.layers.ReLU(max_value=6.0), kernel_regularizer=keras.regularizers.L1L2(0.1, 0.2),
        kernel_constraint=keras.constraints.MaxNorm(3), kernel_initializer=keras.initializers.VarianceScaling(2.0),
    )
    config = json_plain(keras.saving.serialize_keras_object(layer)["config"])
    assert catalog.check_config("Dense", config) == []
    public_fn = {"module": "keras.activations", "class_name": "function",
                 "config": "gelu", "registered_name": "gelu"}
    assert catalog.check_config("Dense", _dense(activation=public_fn)) == []


def test_check_config_rejects_an_unknown_activation():
    problems = catalog.check_config("Dense", _dense(activation="os.system"))
    assert problems == ["activation 'os.system' is not a Keras activation"]
    evil_fn = {"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}
    assert catalog.check_config("Dense", _dense(activation=evil_fn))


def test_check_config_rejects_foreign_modules_and_classes():
    evil = {"module": "os", "class_name": "system", "config": {}, "registered_name": None}
    problems = catalog.check_config("Dense", _dense(kernel_initializer=evil))
    assert problems and "os" in problems[0] and problems[0].startswith("kernel_initializer")
    unknown = {"module": "keras.initializers", "class_name": "Evil", "config": {}, "registered_name": None}
    assert catalog.check_config("Dense", _dense(kernel_initializer=unknown)) == [
        "kernel_initializer: unknown initializer class 'Evil'"
    ]
    custom = {"module": "keras.initializers", "class_name": "Zeros", "config": {},
              "registered_name": "evil_pkg>Zeros"}
    assert catalog.check_config("Dense", _dense(bias_initializer=custom))
    # A foreign object hidden in a parameter of kind "any".
    assert catalog.check_config("Dense", _dense(quantization_config=evil))
    assert catalog.check_config("Dense", _dense(dtype={"module": "os", "class_name": "DTypePolicy",
                                                        "config": {"name": "float32"}}))
    assert catalog.check_config("Dense", _dense(dtype="os.system"))


def test_check_config_rejects_lambdas_and_functions():
    lam = {"class_name": "__lambda__", "config": {"code": "x", "defaults": None, "closure": None}}
    assert catalog.check_config("Dense", _dense(activation=lam))
    assert catalog.check_config("Reshape", {"target_shape": [lam]})
    assert catalog.check_config("Dense", _dense(quantization_config={"nested": [lam]}))
    raw = {"class_name": "__bytes__", "config": {"value": "AAAA"}}
    assert catalog.check_config("Hashing", {"num_bins": 3, "salt": raw})
    lambda_layer = {"module": "keras.layers", "class_name": "Lambda", "config": {}}
    assert catalog.check_config("TimeDistributed", {"layer": lambda_layer})


def test_check_config_rejects_unknown_parameters_and_classes():
    assert catalog.check_config("Dense", _dense(evil=1)) == ["unknown parameter 'evil' for Dense"]
    assert catalog.check_config("Conv2D", {**catalog.default_config("Conv2D"), "rank": 2})
    assert catalog.check_config("SpatialDropout1D", {"rate": 0.5, "trainable": True})
    assert catalog.check_config("Dense", _dense(trainable="yes"))
    assert catalog.check_config("Conv2D", {**catalog.default_config("Conv2D"), "padding": "full"})
    assert catalog.check_config("Conv2D", {**catalog.default_config("Conv2D"), "padding": "SAME"}) == []
    assert catalog.check_config("Dense", {"activation": "relu"}) == ["Dense needs the parameter 'units'"]
    assert catalog.check_config("Lambda", {"function": "x"})
    assert catalog.check_config("Nope", {})
    assert catalog.check_config("Dense", ["not", "a", "dict"])


def test_check_config_checks_nested_layers():
    config = catalog.default_config("Bidirectional")
    config["layer"]["config"]["activation"] = "os.system"
    problems = catalog.check_config("Bidirectional", config)
    assert problems == ["layer.activation 'os.system' is not a Keras activation"]
    config = catalog.default_config("TimeDistributed")
    config["layer"]["module"] = "evil"
    assert catalog.check_config("TimeDistributed", config)
    config = catalog.default_config("RNN")
    config["cell"]["config"]["kernel_initializer"] = {"module": "builtins", "class_name": "eval"}
    assert catalog.check_config("RNN", config)
    # A cell is a valid nested layer, even though it is no palette entry.
    cells = {"module": "keras.layers", "class_name": "StackedRNNCells", "config": {
        "cells": [catalog.default_config("RNN")["cell"]] * 2}}
    assert catalog.check_config("RNN", {"cell": cells}) == []


def test_check_config_survives_deep_nesting():
    value = {"a": 1}
    for _ in range(200):
        value = {"nested": value}
    assert catalog.check_config("Dense", _dense(quantization_config=value))


def test_check_config_rejects_malformed_serialized_objects():
    assert catalog.check_config("Dense", _dense(kernel_initializer={"class_name": ["Zeros"]}))
    assert catalog.check_config("Dense", _dense(activation={"module": {"x": 1}, "class_name": "relu"}))
    assert catalog.check_config("Dense", _dense(quantization_config={"module": None, "class_name": 3}))
    assert catalog.check_config("Dense", _dense(dtype={"class_name": "DTypePolicy", "config": []}))


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False),
    st.sampled_from(["keras", "keras.layers", "keras.initializers", "os", "builtins", "Dense",
                     "function", "__lambda__", "relu", "system", "GlorotUniform", "float32"]),
)
_KEYS = st.sampled_from(["module", "class_name", "config", "registered_name", "units", "layer",
                         "activation", "kernel_initializer", "dtype", "name", "value"])
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=20,
)


def _foreign_objects(value):
    """Dicts naming a module outside Keras, or a code-carrying class, anywhere in value."""
    if isinstance(value, list):
        return [found for item in value for found in _foreign_objects(item)]
    if not isinstance(value, dict):
        return []
    found = [found for item in value.values() for found in _foreign_objects(item)]
    module, class_name = value.get("module"), value.get("class_name")
    if module is not None and not (isinstance(module, str) and module.startswith("keras")):
        found.append(value)
    if class_name in ("__lambda__", "__bytes__") or (
        class_name == "function" and module != "keras.activations"
    ):
        found.append(value)
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(class_name=st.sampled_from(["Dense", "Bidirectional", "TimeDistributed", "RNN", "Hashing"]),
       changes=st.dictionaries(_KEYS, _JSON, max_size=4))
def test_check_config_never_raises_and_never_passes_foreign_objects(class_name, changes):
    config = {**catalog.default_config(class_name), **changes}
    problems = catalog.check_config(class_name, config)
    assert isinstance(problems, list)
    if _foreign_objects(config):
        assert problems


# --------------------------------------------------------------------------- #
# Ports
# --------------------------------------------------------------------------- #


def test_port_specs():
    assert catalog.layer_spec("Add").ports == catalog.PortsSpec("list", (), 2, None)
    assert catalog.layer_spec("Concatenate").ports.style == "list"
    assert catalog.layer_spec("Subtract").ports == catalog.PortsSpec("list", (), 2, 2)
    assert catalog.layer_spec("Dot").ports.max_inputs == 2
    assert catalog.layer_spec("Attention").ports == catalog.PortsSpec(
        "list", ("query", "value", "key"), 2, 3)
    assert catalog.layer_spec("MultiHeadAttention").ports == catalog.PortsSpec(
        "positional", ("query", "value", "key"), 2, 3)
    assert catalog.layer_spec("GroupQueryAttention").ports.style == "positional"
    assert catalog.layer_spec("HashedCrossing").ports.style == "list"
    assert catalog.layer_spec("Dense").ports == catalog.PortsSpec("single", ("inputs",), 1, 1)
    singles = [n for n, s in catalog.catalog().items() if s.ports.style == "single"]
    assert len(singles) > 100


# --------------------------------------------------------------------------- #
# Nested objects
# --------------------------------------------------------------------------- #


def test_nested_object_classes():
    inits = catalog.initializer_classes()
    assert [p.name for p in inits["RandomNormal"]] == ["mean", "stddev", "seed"]
    assert [p.name for p in inits["Constant"]] == ["value"]
    scaling = {p.name: p for p in inits["VarianceScaling"]}
    assert scaling["mode"].choices == ("fan_in", "fan_out", "fan_avg")
    assert scaling["distribution"].kind == catalog.CHOICE
    assert {p.name for p in inits["Orthogonal"]} == {"gain", "seed"}
    assert "Initializer" not in inits
    assert set(catalog.regularizer_classes()) == {"L1", "L2", "L1L2", "OrthogonalRegularizer"}
    assert set(catalog.constraint_classes()) == {"MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"}
    names = catalog.activation_names()
    for name in ("relu", "gelu", "swish", "silu", "softmax", "linear", "tanh", "selu"):
        assert name in names
    assert "get" not in names and "serialize" not in names
    assert {"float32", "float16", "bfloat16", "int32", "mixed_float16"} <= set(catalog.dtype_names())
    assert {"glorot_uniform", "he_normal", "GlorotUniform"} <= catalog.known_identifiers("initializer")


def test_importing_the_catalog_does_not_import_keras():
    code = (
        "import builder_app.core.catalog as c, sys; "
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules; "
        "assert c.EXCLUDED['Lambda']"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={"PYTHONPATH": str(ROOT), "PATH": ""})


def test_non_string_class_names_raise_key_error():
    for bad in (None, 3, ["Dense"]):
        for lookup in (catalog.layer_spec, catalog.keras_class, catalog.default_config):
            with pytest.raises(KeyError):
                lookup(bad)
        assert catalog.check_config(bad, {})
