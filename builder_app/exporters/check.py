"""``export --check``: load what was exported the way a user would and compare.

The artifact is loaded in a fresh Python (never this process, which has the
app's own objects around): a ``.keras`` file with ``keras.saving.load_model(...,
safe_mode=True)``, a SavedModel with ``tf.saved_model.load``, an ONNX file in
onnxruntime, a ``.tflite`` file in the LiteRT interpreter (``ai_edge_litert``, else
TensorFlow's ``tf.lite.Interpreter``), exported code by running it and calling ``build_model()`` (weights
copied from the app's model by layer name). It is fed the same random inputs as
the in-app model, and the largest difference per output comes back. Open
dimensions other than the batch get a length (3) unlike the batch (2), so an
export that mixes them up shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from builder_app.core.graph import ModelGraph
from builder_app.core.keras_model import BuildError, build_keras_model, refuse_if_it_cannot_run_here

#: Outputs that differ by more than this fail the check.
TOLERANCE = 1e-4

_CHILD = r"""
import sys
import numpy as np

kind, artifact, inputs_path, outputs_path, weights_path, input_names, structure_path = sys.argv[1:8]
data = np.load(inputs_path)
inputs = [data[k] for k in sorted(data.files, key=lambda k: int(k[1:]))]
import json
with open(structure_path, encoding="utf-8") as handle:
    structure = json.load(handle)
# Dict inputs by name, as the export takes them; outputs back in the app's order.
feed = dict(zip(structure["inputs"], inputs)) if structure["inputs_dict"] else inputs if len(inputs) > 1 else inputs[0]


def ordered(outputs):
    if isinstance(outputs, dict) and structure["outputs"]:
        return [outputs[key] for key in structure["outputs"]]
    return outputs

if kind == "onnx":
    import onnxruntime
    session = onnxruntime.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outputs = session.run(None, dict(zip(names, inputs)))
elif kind == "litert":
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf
        Interpreter = tf.lite.Interpreter
    runner = Interpreter(model_path=artifact).get_signature_runner()
    got = runner(**dict(zip(input_names.split(","), inputs)))
    outputs = [got[k] for k in sorted(got, key=lambda k: int(k.rsplit("_", 1)[-1]))]
elif kind == "savedmodel":
    import tensorflow as tf
    served = tf.saved_model.load(artifact)
    outputs = tf.nest.flatten(ordered(served.serve(feed)))
else:
    import keras
    if kind == "keras":
        exec(CUSTOM_LOADER)
        model = keras.saving.load_model(artifact, safe_mode=True)
    else:
        import runpy
        model = runpy.run_path(artifact)["build_model"]()
        model.load_weights(weights_path)
    outputs = keras.tree.flatten(ordered(model(feed, training=False)))
np.savez(outputs_path, *[np.asarray(o) for o in outputs])
"""


class CheckError(RuntimeError):
    """The exported artifact could not be loaded or run; the message says why."""


def check_export(
    graph: ModelGraph, kind: str, artifact: str | Path, *, model=None, seed: int = 0
) -> list[float]:
    """Largest absolute difference per output between the app's model and the export.

    Args:
        graph: The project's graph (with its weights).
        kind: ``"keras"``, ``"savedmodel"``, ``"onnx"``, ``"litert"`` or ``"python"``.
        artifact: The exported file or directory.
        model: The Keras model the export was written from. Without it, one is
            built from the graph, which matches only when the project holds
            weights for every layer (otherwise initial weights are random).
        seed: Seed of the random inputs.

    Raises:
        CheckError: The artifact did not load or run in a fresh Python, or the
            model cannot run on this machine.
    """
    model = model or build_keras_model(graph)
    try:
        refuse_if_it_cannot_run_here(model)  # here, and in the fresh Python on this machine
    except BuildError as exc:
        raise CheckError(str(exc)) from None
    inputs = _random_inputs(model, seed, graph)
    expected = [np.asarray(o) for o in _flatten(model(inputs if len(inputs) > 1 else inputs[0], training=False))]
    with tempfile.TemporaryDirectory(prefix="builder-app-check-") as scratch:
        folder = Path(scratch)
        np.savez(folder / "inputs.npz", **{f"x{i}": x for i, x in enumerate(inputs)})
        weights = folder / "app.weights.h5"
        import json

        from builder_app.exporters.io_structure import feed_names

        (folder / "structure.json").write_text(json.dumps(feed_names(graph, model)), encoding="utf-8")
        if kind == "python":
            model.save_weights(weights)
        from builder_app.core import custom_code

        code = custom_code.files_for(graph)  # the .keras file is loaded where its classes are defined
        for file in code:
            (folder / file.name).write_text(file.text, encoding="utf-8")
        env = {**os.environ, "BUILDER_APP_CUSTOM_MODULES": ",".join(f.module for f in code)}
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD.replace("CUSTOM_LOADER", repr(custom_code.LOADER)),
                kind,
                str(Path(artifact).resolve()),
                str(folder / "inputs.npz"),
                str(folder / "outputs.npz"),
                str(weights),
                ",".join(t.name.split(":")[0] for t in model.inputs),
                str(folder / "structure.json"),
            ],
            capture_output=True,
            text=True,
            cwd=folder,  # away from any checkout, so only installed packages are found
            env=env,
        )
        if done.returncode != 0:
            from builder_app.core.messages import clean_message

            last = clean_message(Exception((done.stderr.strip().splitlines() or ["(no message)"])[-1]))
            raise CheckError(f"the exported {kind} did not run in a fresh Python: {last}")
        got = np.load(folder / "outputs.npz")
        produced = [got[f"arr_{i}"] for i in range(len(got.files))]
    if len(produced) != len(expected):
        raise CheckError(f"the export has {len(produced)} outputs, the app's model {len(expected)}")
    for i, (a, b) in enumerate(zip(expected, produced, strict=True)):
        if a.shape != b.shape:
            raise CheckError(
                f"output {i} has shape {b.shape} in the export but {a.shape} in the app's model "
                f"(inputs {', '.join(str(x.shape) for x in inputs)})"
            )
    return [
        float(np.max(np.abs(a.astype("float64") - b.astype("float64")))) if a.size else 0.0
        for a, b in zip(expected, produced, strict=True)
    ]


def _random_inputs(model, seed: int, graph: ModelGraph | None = None) -> list[np.ndarray]:
    from builder_app.exporters.io_structure import input_vocabularies

    rng = np.random.default_rng(seed)
    vocabularies = input_vocabularies(graph, model) if graph is not None else [None] * len(model.inputs)
    batch = []
    for tensor, vocabulary in zip(model.inputs, vocabularies, strict=True):
        shape = [(2 if i == 0 else 3) if d is None else d for i, d in enumerate(tensor.shape)]
        dtype = str(tensor.dtype)
        if vocabulary:
            # Tokens the lookup knows and one it does not: both paths are compared.
            pool = np.array([*vocabulary[:20], *([0] if "int" in dtype else ["an unknown token"])])
            batch.append(rng.choice(pool, size=shape).astype(dtype if "int" in dtype else str))
        elif dtype == "string":
            batch.append(rng.choice(np.array(["a", "b", "a b"]), size=shape))
        elif "int" in dtype:
            # Small ids: valid for any vocabulary of two or more entries.
            batch.append(rng.integers(0, 2, size=shape).astype(dtype))
        elif dtype == "bool":
            batch.append(rng.integers(0, 2, size=shape).astype(bool))
        else:
            batch.append(rng.normal(size=shape).astype(dtype))
    return batch


def _flatten(outputs):
    import keras

    return keras.tree.flatten(outputs)
