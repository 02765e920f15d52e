"""Saved models: .keras loads in plain Keras (safe mode, fresh Python); SavedModel serves."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from builder_app.core.keras_model import BuildError
from builder_app.exporters.saved_model import export_keras, export_savedmodel
from tests.keras_compare import graph_of
from tests.test_keras_model import random_inputs
from tests.test_shapes import shared_and_nested, two_branches


def graph_with_weights(model):
    graph = graph_of(model)
    for layer in model.layers:
        target = graph.layers[layer.name]
        if target.submodel is not None:
            for inner in layer.layers:
                if inner.weights:
                    target.submodel.layers[inner.name].weights = inner.get_weights()
        elif layer.weights:
            target.weights = layer.get_weights()
    return graph


CHILD = """
import sys, numpy as np, keras
assert "builder_app" not in sys.modules
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
data = np.load(sys.argv[2])
inputs = [data[k] for k in sorted(data.files)]
outputs = keras.tree.flatten(model(inputs if len(inputs) > 1 else inputs[0]))
np.savez(sys.argv[3], *[np.asarray(o) for o in outputs])
assert "builder_app" not in sys.modules
"""


def test_keras_file_loads_in_a_fresh_python_with_the_weights(tmp_path):
    original = shared_and_nested()
    path = tmp_path / "siamese.keras"
    export_keras(graph_with_weights(original), path)
    inputs = random_inputs(original)
    np.savez(tmp_path / "in.npz", **{f"x{i}": x for i, x in enumerate(inputs)})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the repository: builder_app must not be importable by accident
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = np.load(tmp_path / "out.npz")
    expected = keras.tree.flatten(original(inputs))
    for i, value in enumerate(expected):
        np.testing.assert_allclose(got[f"arr_{i}"], np.asarray(value), atol=1e-5)


def test_failed_export_leaves_the_previous_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"previous export")
    graph, _ = two_branches(8, 16)  # invalid: Add of two widths
    with pytest.raises(BuildError):
        export_keras(graph, path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_savedmodel_serves_the_same_outputs(tmp_path):
    import tensorflow as tf

    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    original = keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))
    target = tmp_path / "served"
    target.mkdir()
    (target / "stale.txt").write_text("replaced")
    export_savedmodel(graph_with_weights(original), target)
    assert not (target / "stale.txt").exists()
    served = tf.saved_model.load(str(target))
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    np.testing.assert_allclose(served.serve(x).numpy(), original(x).numpy(), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


def test_check_reports_an_export_of_other_shapes_in_one_line(tmp_path):
    """An export whose outputs differ in shape (a wrong trace, say) fails the check, no crash."""
    from builder_app.exporters.check import CheckError, check_export

    seq = keras.Input((None, 4), name="seq")
    pooled = keras.Model(seq, keras.layers.Dense(3, name="d")(keras.layers.GlobalAveragePooling1D(name="p")(seq)))
    export_keras(graph_of(pooled), tmp_path / "other.keras")
    per_step = keras.Model(seq, keras.layers.Dense(3, name="d")(seq))
    with pytest.raises(CheckError) as caught:
        check_export(graph_of(per_step), "keras", tmp_path / "other.keras", model=per_step)
    # Open non-batch dimensions get their own length (3), unlike the batch (2).
    assert str(caught.value) == (
        "output 0 has shape (2, 3) in the export but (2, 3, 3) in the app's model (inputs (2, 3, 4))"
    )
