"""ONNX export: the file runs in onnxruntime and computes what the app's model does."""

import sys

import keras
import numpy as np
import pytest

from builder_app.exporters.onnx_export import OnnxExportError, OnnxUnavailable, export_onnx
from tests.test_saved_model import graph_with_weights
from tests.test_shapes import shared_and_nested


@pytest.fixture
def onnxruntime():
    pytest.importorskip("tf2onnx")
    return pytest.importorskip("onnxruntime")


def conv_two_heads():
    img, extra = keras.Input((16, 16, 3), name="img"), keras.Input((5,), name="extra")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(img)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    both = keras.layers.Concatenate(name="cat")([x, keras.layers.Dense(6, activation="tanh", name="side")(extra)])
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(both)
    return keras.Model([img, extra], [classes, keras.layers.Dense(1, name="value")(both)], name="two_heads")


def masked_recurrent():
    """Embedding mask through LSTM, bidirectional GRU, attention and pooling; open length."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    e = keras.layers.Embedding(100, 16, mask_zero=True, name="emb")(tokens)
    seq, h, c = keras.layers.LSTM(8, return_sequences=True, return_state=True, name="lstm")(e)
    g = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True), name="bigru")(seq)
    att = keras.layers.MultiHeadAttention(2, 4, name="mha")(g, g, g)
    att = keras.layers.Add(name="res")([att, g])
    per_step = keras.layers.Dense(3, name="per_step")(att)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(per_step)
    both = keras.layers.Concatenate(name="cat")([pooled, h, c])
    return keras.Model(tokens, [both, keras.layers.Dense(1, name="score")(both)])


def inputs_for(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    values = []
    for tensor in model.inputs:
        shape = [batch, *(7 if d is None else d for d in tensor.shape[1:])]
        if "int" in str(tensor.dtype):
            ids = rng.integers(1, 10, size=shape)
            ids[0, -3:] = 0  # padding: the Embedding's mask must reach the RNNs
            values.append(ids.astype(str(tensor.dtype)))
        else:
            values.append(rng.normal(size=shape).astype("float32"))
    return values


def with_random_statistics(model):
    """Non-trivial BatchNormalization statistics, so inference mode is tested."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.3, beta.shape),
                    rng.normal(0, 0.3, mean.shape),
                    rng.uniform(0.1, 2.0, variance.shape),
                ]
            )
    return model


@pytest.mark.parametrize(
    "build",
    [lambda: with_random_statistics(conv_two_heads()), shared_and_nested, masked_recurrent],
    ids=["conv_bn_two_heads", "siamese", "masked_recurrent"],
)
def test_onnx_runs_in_onnxruntime_like_the_model(build, tmp_path, onnxruntime):
    original = build()
    path = tmp_path / "model.onnx"
    export_onnx(graph_with_weights(original), path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [t.name for t in original.inputs]
    assert [o.name for o in session.get_outputs()] == list(original.output_names)
    for batch in (2, 3):  # the batch dimension stays open
        inputs = inputs_for(original, batch)
        got = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), inputs, strict=True)})
        expected = keras.tree.flatten(original(inputs if len(inputs) > 1 else inputs[0], training=False))
        assert len(got) == len(expected)
        for value, reference in zip(got, expected, strict=True):
            np.testing.assert_allclose(value, np.asarray(reference), atol=1e-4, rtol=0)


def test_the_callers_model_is_the_one_written(tmp_path, onnxruntime):
    original = with_random_statistics(conv_two_heads())
    graph = graph_with_weights(original)
    assert export_onnx(graph, tmp_path / "m.onnx", model=original) is original


def test_a_layer_onnx_cannot_express_is_named_and_the_old_file_kept(tmp_path, onnxruntime):
    image = keras.Input((8, 8, 4), name="image")
    grouped = keras.Model(image, keras.layers.Conv2D(8, 3, groups=4, name="grouped")(image))
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous export")
    with pytest.raises(OnnxExportError, match="'grouped'"):
        export_onnx(graph_with_weights(grouped), path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_an_export_computing_something_else_is_refused(tmp_path, onnxruntime, monkeypatch):
    run = onnxruntime.InferenceSession.run
    monkeypatch.setattr(
        onnxruntime.InferenceSession, "run", lambda self, *a, **k: [v + 1e-3 for v in run(self, *a, **k)]
    )
    path = tmp_path / "model.onnx"
    with pytest.raises(OnnxExportError, match="'head' of the ONNX model differs from Keras by 0.001"):
        export_onnx(graph_with_weights(shared_and_nested()), path)
    assert not path.exists()


def test_missing_converter_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    with pytest.raises(OnnxUnavailable, match=r"pip install .*tf2onnx.*onnxruntime"):
        export_onnx(graph_with_weights(shared_and_nested()), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
