"""Node faces: the settings line read from real Keras configs, and layers that train differently."""

import json
import time

import keras
import pytest

from builder_app.core import catalog
from builder_app.core.face_text import differs_in_training, key_settings

L = keras.layers

CASES = [
    (L.Conv2D(32, 3, strides=2), "filters 32 · 3×3 · stride 2"),
    (L.Conv2D(64, (3, 1), padding="same", activation="relu", dilation_rate=2),
     "filters 64 · 3×1 · dilation 2 · same · relu"),
    (L.Conv2D(16, 3, groups=4, data_format="channels_first"),
     "filters 16 · 3×3 · groups 4 · channels first"),
    (L.Conv1D(4, 5), "filters 4 · kernel 5"),
    (L.Conv2DTranspose(8, 2, strides=2), "filters 8 · 2×2 · stride 2"),
    (L.DepthwiseConv2D(3, depth_multiplier=2), "depth ×2 · 3×3"),
    (L.SeparableConv2D(10, 3, strides=(2, 1)), "filters 10 · 3×3 · stride 2×1"),
    (L.Dense(128, activation="relu"), "128 units · relu"),
    (L.Dense(4), "4 units"),
    (L.Dropout(0.5), "rate 0.5"),
    (L.SpatialDropout2D(0.2), "rate 0.2"),
    (L.Concatenate(), "axis -1"),
    (L.MultiHeadAttention(num_heads=8, key_dim=64), "8 heads · key 64"),
    (L.MultiHeadAttention(num_heads=2, key_dim=16, value_dim=8), "2 heads · key 16 · value 8"),
    (L.MaxPooling2D(2), "2×2"),
    (L.AveragePooling2D(3, strides=2, padding="same"), "3×3 · stride 2 · same"),
    (L.GlobalAveragePooling2D(), ""),
    (L.GlobalAveragePooling1D(keepdims=True), "keep dims"),
    (L.Reshape((7, 7, 64)), "target (7, 7, 64)"),
    (L.UpSampling2D(interpolation="bilinear"), "mode bilinear ×2"),
    (L.UpSampling2D(size=3), "×3"),
    (L.Cropping2D(1), "crop 1"),
    (L.ZeroPadding2D(((1, 2), (0, 0))), "pad ((1, 2), (0, 0))"),
    (L.Embedding(1000, 64), "vocab 1000 · dim 64"),
    (L.LSTM(32, return_sequences=True), "32 units · sequences"),
    (L.GRU(8, activation="relu"), "8 units · relu"),
    (L.Bidirectional(L.LSTM(4)), "LSTM 4 units"),
    (L.Bidirectional(L.GRU(4), merge_mode="sum"), "GRU 4 units · merge sum"),
    (L.TimeDistributed(L.Dense(3)), "Dense 3 units"),
    (L.Activation("tanh"), "tanh"),
    (L.ReLU(), ""),
    (L.ReLU(max_value=6.0), "max 6"),
    (L.LeakyReLU(negative_slope=0.2), "slope 0.2"),
    (L.Rescaling(1 / 255), "×1/255"),
    (L.Rescaling(2.0, offset=-1.0), "×2 −1"),
    (L.Resizing(64, 64), "64×64"),
    (L.RandomRotation(0.1), "factor ±0.1"),
    (L.BatchNormalization(), ""),
    (L.BatchNormalization(axis=1), "axis 1"),
    (L.EinsumDense("ab,bc->ac", output_shape=4), "ab,bc->ac"),
    (L.Add(), ""),
    (L.Flatten(), ""),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "text"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_settings_of_real_layers(layer, text):
    config = layer.get_config()
    assert key_settings(type(layer).__name__, config) == text
    # A project's config went through JSON: lists where Keras has tuples.
    assert key_settings(type(layer).__name__, json.loads(json.dumps(config))) == text


def test_every_catalog_default_gives_one_short_line():
    for class_name in catalog.catalog():
        text = key_settings(class_name, catalog.default_config(class_name))
        assert isinstance(text, str) and "\n" not in text and len(text) < 80, class_name


def test_odd_values_never_break_a_face():
    assert key_settings("Conv2D", {"filters": 8, "kernel_size": None, "strides": "x"}) == (
        "filters 8 · stride x"
    )
    assert key_settings("Bidirectional", {"layer": "not a layer"}) == ""
    assert key_settings("keras.src.applications.convnext.LayerScale", {"init_values": 1e-6}) == ""
    assert key_settings("MyDense", {"units": 3}) == "3 units"


def test_fast_enough_for_every_repaint():
    config = L.Conv2D(32, 3, strides=2, activation="relu").get_config()
    start = time.perf_counter()
    for _ in range(2000):
        key_settings("Conv2D", config)
    assert (time.perf_counter() - start) / 2000 < 1e-4  # under 0.1 ms a face


@pytest.mark.parametrize(
    "class_name",
    ["Dropout", "SpatialDropout1D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
     "AlphaDropout", "BatchNormalization", "RandomFlip", "RandomRotation", "RandomZoom", "MixUp"],
)  # fmt: skip
def test_layers_that_train_differently(class_name):
    assert differs_in_training(class_name)


@pytest.mark.parametrize(
    "class_name",
    ["Dense", "Conv2D", "LayerNormalization", "GroupNormalization", "Add", "InputLayer",
     "keras.src.ops.numpy.Add"],
)  # fmt: skip
def test_layers_that_do_not(class_name):
    assert not differs_in_training(class_name)
