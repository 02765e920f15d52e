"""Every piece of Keras's private API the app uses, checked against the installed Keras.

builder_app/core/keras_compat.py is the only module that touches ``keras.src``;
each test here exercises one of its symbols, so a Keras release that moves or
changes one fails here, naming the symbol and the Keras version. The releases
the app is tested with are the ``keras`` dependency's range in pyproject.toml:
after these tests (and the suite) pass on a new release, widen it.
"""

import contextlib
import importlib
import io
import re
import tomllib
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from packaging.requirements import Requirement

from builder_app.core import catalog, keras_compat

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def private(symbol: str):
    """Turns a moved or changed private symbol into one clear failure."""
    try:
        yield
    except (ImportError, AttributeError, TypeError, KeyError, AssertionError) as exc:
        pytest.fail(
            f"Keras {keras.__version__}: {symbol} moved or changed ({type(exc).__name__}: {exc}); "
            "update builder_app/core/keras_compat.py",
            pytrace=False,
        )


def test_the_installed_keras_is_a_tested_release():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [keras_requirement] = [
        Requirement(r) for r in project["project"]["dependencies"] if Requirement(r).name == "keras"
    ]
    assert keras_requirement.specifier.filter([keras.__version__]), (
        f"Keras {keras.__version__} is outside the releases pyproject.toml declares tested "
        f"({keras_requirement}): run tests/test_keras_compat.py and the suite on it, then widen the range"
    )
    assert any(s.operator in ("<", "<=", "==", "~=") for s in keras_requirement.specifier), (
        f"the keras dependency ({keras_requirement}) needs an upper bound: the app uses Keras's private API"
    )


def test_only_the_compat_module_imports_keras_src():
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "builder_app").rglob("*.py"))
        if path.name != "keras_compat.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "keras.src" in line
    ]
    assert found == [], "keras.src outside builder_app/core/keras_compat.py"


def test_add_weight_records_declared_shapes_while_recording():
    with private("keras.layers.Layer.add_weight (patched by keras_compat.import_keras)"):
        keras_compat.import_keras()
        layer = keras.layers.Dense(3)
        with keras_compat.recording_weights() as records:
            weight = layer.add_weight(shape=(4, 3), name="kernel")
            layer.add_weight(shape=(3,), name="bias", trainable=False)
        assert isinstance(weight, keras_compat.DeclaredWeight) and weight.shape == (4, 3)
        assert records == [(12, True), (3, False)]
        assert layer.weights == []
        real = layer.add_weight(shape=(2,), name="real")  # outside: Keras's own
        assert isinstance(real, keras.Variable)


def test_call_spec_and_maybe_build_build_like_a_call():
    layer = keras.layers.Dense(5)
    x = keras.KerasTensor((None, 7))
    with private("keras.src.layers.layer.CallSpec and Layer._maybe_build"):
        spec = keras_compat.call_spec(layer, [x], {})
        assert spec.first_arg is x
        with keras_compat.recording_weights() as records:
            keras_compat.maybe_build(layer, spec)
        assert layer.built
        assert records == [(35, True), (5, True)]


def test_assert_input_compatibility_refuses_a_wrong_rank():
    layer = keras.layers.Conv2D(2, 3)
    with private("keras.src.layers.input_spec.assert_input_compatibility"):
        keras_compat.assert_input_compatibility(
            layer.input_spec, keras.KerasTensor((None, 8, 8, 1)), "c"
        )
        with pytest.raises(ValueError, match="ndim"):
            keras_compat.assert_input_compatibility(
                layer.input_spec, keras.KerasTensor((None, 8)), "c"
            )


def test_sublayers_and_unbuild():
    layer = keras.layers.Bidirectional(keras.layers.LSTM(2))
    with private("Layer._flatten_layers and Layer._tracker"):
        names = [type(sub).__name__ for sub in keras_compat.sublayers(layer)]
        assert names[0] == "Bidirectional" and "LSTMCell" in names
        layer(keras.KerasTensor((None, 4, 3)))
        assert layer.built
        keras_compat.unbuild(layer)
        assert not any(sub.built for sub in keras_compat.sublayers(layer))
        layer.build((None, 5, 3))  # builds again once unlocked
        assert layer.built


def test_merge_class():
    with private("keras.src.layers.merging.base_merge.Merge"):
        merge = keras_compat.merge_class()
        assert issubclass(keras.layers.Add, merge) and issubclass(keras.layers.Concatenate, merge)


def test_operation_modules_are_where_keras_records_operations():
    x = keras.Input((4,))
    y = keras.ops.add(keras.ops.relu(x), 1.0)
    config = keras.saving.serialize_keras_object(keras.Model(x, y))
    recorded = {(item["module"], item["class_name"]) for item in config["config"]["layers"]}
    with private("the keras.src.ops modules operations are serialized under"):
        assert {"keras.src.ops.numpy", "keras.src.ops.nn"} <= {m for m, _ in recorded}
        for module, name in recorded - {("keras.layers", "InputLayer")}:
            class_name = f"{module}.{name}"
            assert keras_compat.operation_module(class_name) == module
            assert issubclass(keras_compat.operation_class(class_name), keras.Operation)
        for module, namespace in keras_compat.OPERATION_MODULES.items():
            public = getattr(keras.ops, namespace, keras.ops)  # math, core: keras.ops itself
            assert public.__name__ in (f"keras.ops.{namespace}", "keras.ops")
            private_module = importlib.import_module(module)
            assert any(
                isinstance(v, type) and issubclass(v, keras.Operation)
                for v in vars(private_module).values()
            ), module
            assert keras_compat.operation_class_name(namespace, "Add") == f"{module}.Add"
    assert keras_compat.operation_module("keras.layers.Dense") is None
    with pytest.raises(KeyError):
        keras_compat.operation_class("keras.src.ops.numpy.NoSuchOperation")


def test_model_modules_are_what_keras_writes_for_models():
    x = keras.Input((3,))
    functional = keras.saving.serialize_keras_object(keras.Model(x, keras.layers.Dense(1)(x)))
    with private("the module of keras.Model in a config"):
        assert functional["module"] in keras_compat.MODEL_MODULES


def test_exported_name():
    with private("keras.src.api_export.get_name_from_symbol"):
        assert keras_compat.exported_name(keras.layers.Dense) == "keras.layers.Dense"
        # Serialized under another name than the class's: what the catalog relies on.
        assert (
            keras_compat.exported_name(keras.layers.GroupQueryAttention)
            == "keras.layers.GroupQueryAttention"
        )


@pytest.mark.parametrize(
    ("package", "name", "cls"),
    [
        ("initializers", "uniform", keras.initializers.RandomUniform),
        ("regularizers", "l1l2", keras.regularizers.L1L2),
        ("constraints", "max_norm", keras.constraints.MaxNorm),
    ],
)
def test_registered_objects(package, name, cls):
    with private(f"keras.src.{package}.ALL_OBJECTS_DICT"):
        assert keras_compat.registered_objects(package)[name] is cls


def test_shipped_layer_classes():
    with private("keras.src.applications.<module>.<Layer> (ConvNeXt's LayerScale, InceptionResNetV2's CustomScaleLayer)"):
        shipped = keras_compat.shipped_layer_classes()
        model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3))
        config = next(c for c in model.get_config()["layers"] if c["class_name"] == "LayerScale")
        assert shipped[f"{config['module']}.LayerScale"] is type(model.get_layer(config["name"]))
        assert "keras.src.applications.inception_resnet_v2.CustomScaleLayer" in shipped
        assert all(not issubclass(cls, keras.Model) for cls in shipped.values())


def test_allowed_dtypes():
    with private("keras.src.backend.common.dtypes.ALLOWED_DTYPES"):
        dtypes = keras_compat.allowed_dtypes()
        assert {"float32", "bfloat16", "int8", "uint8", "bool", "string"} <= set(dtypes)


def test_to_snake_case():
    with private("keras.src.utils.naming.to_snake_case"):
        assert keras_compat.to_snake_case("Conv2DTranspose") == "conv2d_transpose"
        assert keras_compat.to_snake_case("BatchNormalization") == "batch_normalization"


def model_with_weights():
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="dense")(x))
    model.get_layer("dense").set_weights(
        [np.arange(6, dtype="float32").reshape(3, 2), np.ones(2, "float32")]
    )
    return model


def test_save_model_into_an_open_file(tmp_path):
    model = model_with_weights()
    handle = io.BytesIO()
    with private("keras.src.saving.saving_lib.save_model"):
        keras_compat.save_model(model, handle)
    path = tmp_path / "m.keras"
    path.write_bytes(handle.getvalue())
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        loaded.get_layer("dense").get_weights()[0], model.get_layer("dense").get_weights()[0]
    )


def test_weights_store_and_load_saved_state(tmp_path):
    model = model_with_weights()
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    fresh = keras.Model.from_config(model.get_config())
    with private("keras.src.saving.saving_lib.H5IOStore and _load_state"):
        with keras_compat.weights_store(path) as store:
            assert (
                keras_compat.load_saved_state(fresh.get_layer("dense"), store, "layers/dense")
                is None
            )
            wrong = keras.layers.Dense(5)
            wrong.build((None, 3))
            assert isinstance(
                keras_compat.load_saved_state(wrong, store, "layers/dense"), Exception
            )
    np.testing.assert_array_equal(fresh.get_layer("dense").get_weights()[1], np.ones(2))


CONVOLUTIONS = {
    "Conv1D": ("conv", 1, False),
    "Conv2D": ("conv", 2, False),
    "Conv3D": ("conv", 3, False),
    "Conv1DTranspose": ("conv_transpose", 1, False),
    "Conv2DTranspose": ("conv_transpose", 2, False),
    "Conv3DTranspose": ("conv_transpose", 3, False),
    "DepthwiseConv1D": ("depthwise_conv", 1, False),
    "DepthwiseConv2D": ("depthwise_conv", 2, False),
    "SeparableConv1D": ("separable_conv", 1, False),
    "SeparableConv2D": ("separable_conv", 2, False),
    "ConvLSTM1D": ("conv", 1, False),
    "ConvLSTM2D": ("conv", 2, False),
    "ConvLSTM3D": ("conv", 3, False),
}


@pytest.mark.parametrize("class_name", sorted(CONVOLUTIONS))
def test_convolution_base_classes(class_name):
    layer = catalog.keras_class(class_name).from_config(
        {**catalog.default_config(class_name), "data_format": "channels_first"}
    )
    with private(
        "the base classes of Keras's convolutions (keras.src.layers.convolutional, ConvLSTMCell)"
    ):
        assert keras_compat.convolutions(layer)[:1] == [CONVOLUTIONS[class_name]]
    grouped = keras.layers.Conv2D(4, 3, groups=2, data_format="channels_first")
    assert keras_compat.convolutions(grouped) == [("conv", 2, True)]
    assert keras_compat.convolutions(keras.layers.Conv2D(4, 3)) == []
    wrapped = keras.layers.TimeDistributed(keras.layers.Conv1D(2, 1, data_format="channels_first"))
    assert keras_compat.convolutions(wrapped) == [("conv", 1, False)]
    assert keras_compat.convolutions(wrapped, recursive=False) == []


def _run_channels_first(class_name: str):
    """(the layer, whether it ran) on the first input rank it accepts; None if none suits it."""
    config = {**catalog.default_config(class_name), "data_format": "channels_first"}
    if "kernel_size" in config:
        config["kernel_size"] = 1
    for rank in (3, 4, 5, 6):
        layer = catalog.keras_class(class_name).from_config(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                layer(np.zeros((1, *(5,) * (rank - 1)), "float32"))
                return layer, True
            except Exception as exc:  # noqa: BLE001 - a missing kernel, or not this rank
                if re.search(r"NCHW|NHWC|NDHWC|NCDHW", str(exc)):
                    return layer, False
    return None


def test_what_the_probe_says_is_what_running_the_layers_does():
    """Every catalog layer with a data_format, run channels_first: the probe must predict it."""
    checked = []
    for class_name, spec in sorted(catalog.catalog().items()):
        if not any(p.name == "data_format" for p in spec.params):
            continue
        outcome = _run_channels_first(class_name)
        if outcome is None:
            continue
        layer, ran = outcome
        assert keras_compat.runs_here(layer) == ran, (
            f"{class_name} channels_first {'runs' if ran else 'does not run'} here on Keras "
            f"{keras.__version__}, but keras_compat.runs_here says the opposite"
        )
        checked.append(class_name)
    expected = {
        "Conv1D",
        "Conv2D",
        "Conv2DTranspose",
        "DepthwiseConv2D",
        "SeparableConv2D",
        "ConvLSTM2D",
    }
    assert expected <= set(checked)


def test_a_model_that_cannot_run_here_is_named():
    x = keras.Input((2, 6, 6), name="x")
    inner_in = keras.Input((2, 6, 6))
    inner = keras.Model(
        inner_in,
        keras.layers.Conv2D(2, 1, data_format="channels_first", name="inner_conv")(inner_in),
        name="inner",
    )
    y = keras.layers.Conv2D(2, 1, data_format="channels_first", name="cf")(inner(x))
    model = keras.Model(x, keras.layers.Flatten()(y))
    runs = keras_compat.channels_first_runs("conv", 2)
    assert keras_compat.layers_that_cannot_run_here(model) == (
        [] if runs else ["inner/inner_conv", "cf"]
    )
    if runs:
        model(np.zeros((1, 2, 6, 6), "float32"))
