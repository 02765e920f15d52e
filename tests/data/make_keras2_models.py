"""Writes the Keras 2 (tf.keras) model files the import tests read.

Real users hold .h5 files written by Keras 2, which Keras 3 itself often cannot load.
These are made with tf_keras, the Keras 2 package (not a dependency of the project):

    pip install --target /tmp/tfk tf_keras==2.21.0 --no-deps
    PYTHONPATH=/tmp/tfk python tests/data/make_keras2_models.py

Each model gets random weights (BatchNorm statistics included) and an .npz of
inputs and the outputs tf.keras computed for them.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as k

HERE = Path(__file__).resolve().parent
L = k.layers


def functional():
    """Shared layer, nested model called twice, masked Embedding into an LSTM, two outputs."""
    x = k.Input((8,), name="x")
    tokens = k.Input((6,), dtype="int32", name="tokens")
    shared = L.Dense(8, activation="relu", name="shared")
    a = shared(x)
    b = shared(a)
    inner_in = k.Input((8,), name="inner_in")
    inner_out = L.Dense(4, name="inner_dense")(L.BatchNormalization(name="inner_bn")(inner_in))
    inner = k.Model(inner_in, inner_out, name="inner")
    merged = L.Add(name="merge")([inner(a), inner(b)])
    embedded = L.Embedding(20, 4, mask_zero=True, name="emb")(tokens)
    recurrent = L.Bidirectional(L.LSTM(5), name="bilstm")(embedded)
    both = L.Concatenate(name="cat")([merged, recurrent])
    out1 = L.Dense(3, activation="softmax", name="probs")(both)
    out2 = L.Conv1D(2, 3, padding="same", name="conv")(L.Reshape((4, 1), name="rs")(merged))
    return k.Model([x, tokens], [out1, out2], name="keras2_functional")


def tf_ops_and_slashes():
    """TensorFlow functions on tensors (TFOpLambda), '/' in names, layers whose arguments changed."""
    image = k.Input((8, 8, 3), name="image")
    h = L.Conv2D(8, 3, padding="same", name="stem/conv")(image)
    h = L.BatchNormalization(name="stem/bn")(h)
    h = h * tf.nn.relu6(h + 3.0) / 6.0  # hard swish, as Keras 2 MobileNetV3 wrote it
    h = L.SeparableConv2D(8, 3, padding="same", name="sep")(h)
    h = L.Conv2DTranspose(4, 3, strides=2, padding="same", name="up")(h)
    h = L.DepthwiseConv2D(3, name="dw")(h)
    h = L.ThresholdedReLU(theta=0.1, name="thresh")(h)
    h = L.Reshape((-1, 4), name="tokens")(h)
    h = L.MultiHeadAttention(2, 4, name="att")(h, h)
    h = L.SpatialDropout1D(0.1, name="drop")(h)
    h = L.GRU(6, name="gru")(h)
    out = L.Dense(2, activation="sigmoid", name="head/out")(h)
    return k.Model(image, out, name="keras2_tf_ops")


def sequential():
    return k.Sequential(
        [
            L.Conv2D(4, 3, input_shape=(8, 8, 1), activation="relu", name="c"),
            L.MaxPooling2D(name="p"),
            L.Flatten(name="f"),
            L.Dense(2, name="d"),
        ],
        name="keras2_sequential",
    )


def main():
    rng = np.random.default_rng(0)
    for build in (functional, tf_ops_and_slashes, sequential):
        model = build()
        for w in model.weights:
            value = rng.uniform(0.5, 1.5, w.shape) if "variance" in w.name else rng.normal(0, 0.3, w.shape)
            w.assign(value.astype(w.dtype.as_numpy_dtype))
        inputs = []
        for t in model.inputs:
            shape = (3, *t.shape[1:])
            if t.dtype.is_integer:
                inputs.append(rng.integers(1, 20, size=shape).astype(t.dtype.as_numpy_dtype))
            else:
                inputs.append(rng.normal(size=shape).astype("float32"))
        outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        model.save(HERE / f"{model.name}.h5")
        arrays = {f"x{i}": x for i, x in enumerate(inputs)} | {f"y{i}": np.asarray(y) for i, y in enumerate(outputs)}
        np.savez(HERE / f"{model.name}.npz", **arrays)
        print(model.name, (HERE / f"{model.name}.h5").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
