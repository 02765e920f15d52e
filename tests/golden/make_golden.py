"""Writes the golden project file of the current format version and what it must load as.

Run from the repository root when FORMAT_VERSION changes::

    python tests/golden/make_golden.py

It writes ``project_v<N>.kproj`` and ``project_v<N>.expected.json`` beside this script.
``project_v<N>.kproj`` files are frozen once committed: they stand for files users
already have, so the script refuses to overwrite one unless given ``--force``.
``project_v<N>.expected.json`` is what the *current* code must load that file as
(tests/test_project.py checks every version, old ones through the migrations); if a
new format changes how a loaded project looks, update the old versions' expected
files by hand, never their ``.kproj``. The output is deterministic (fixed zip
timestamps, deterministic HDF5), so regenerating an unchanged version with the
same h5py gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from builder_app.core.graph import ModelGraph, PortRef  # noqa: E402
from builder_app.core.ops import Connect, SetModelIO, add_layer, call_again, group_as_submodel  # noqa: E402
from builder_app.core.project import FORMAT_VERSION, Project, project_to_bytes  # noqa: E402
from builder_app.core.runs import record_run  # noqa: E402


def golden_project() -> Project:
    """An MLP: a Dense layer called twice (shared), a Dropout, and a sub-model head."""
    graph = ModelGraph("golden_mlp")
    x = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 4], "dtype": "float32"})).node_id
    hidden = graph.apply(add_layer(graph, "Dense", {"units": 4, "activation": "relu"}, name="hidden", position=(200.0, 0.0))).node_id
    graph.apply(Connect(x, 0, hidden, 0))
    again = graph.apply(call_again(graph, hidden)).node_id
    graph.apply(Connect(hidden, 0, again, 0))
    drop = graph.apply(add_layer(graph, "Dropout", {"rate": 0.25}, position=(400.0, 40.0))).node_id
    graph.apply(Connect(again, 0, drop, 0))
    proj = graph.apply(add_layer(graph, "Dense", {"units": 3}, name="proj", position=(600.0, 40.0))).node_id
    graph.apply(Connect(drop, 0, proj, 0))
    out = graph.apply(add_layer(graph, "Dense", {"units": 2, "activation": "softmax"}, name="out", position=(800.0, 40.0))).node_id
    graph.apply(Connect(proj, 0, out, 0))
    graph.apply(SetModelIO([x], [PortRef(out, 0)]))

    graph.layers["hidden"].weights = [
        (np.arange(16, dtype=np.float32).reshape(4, 4) - 8) / 4,
        np.array([0.5, -0.5, 0.25, 0.0], dtype=np.float32),
    ]
    graph.layers["proj"].weights = [np.arange(12, dtype=np.float16).reshape(4, 3) / 2, np.zeros(3, np.float16)]
    graph.layers["out"].weights = [np.ones((3, 2), np.float64), np.array([1, -1], np.int32)]
    graph.layers["input_layer"].weights = []
    graph.apply(group_as_submodel(graph, [proj, out], {PortRef(drop, 0): ([None, 4], "float32")}, name="head"))
    training = {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}}, "loss": "categorical_crossentropy", "epochs": 5, "batch_size": 32}
    runs = [{"id": "run-1", "epochs": 5, "history": {"loss": [1.5, 0.75, 0.5], "accuracy": [0.25, 0.5, 0.75]}}]
    project = Project(graph, training, runs)
    if FORMAT_VERSION >= 3:  # drawn top to bottom, the shared trunk in a collapsed display block
        from builder_app.core.graph import CanvasBlock, CanvasState
        from builder_app.core.ops import SetCanvas

        graph.apply(SetCanvas(CanvasState("TB", (CanvasBlock("trunk", (hidden, again, drop), collapsed=True),))))
    if FORMAT_VERSION >= 4:  # an adapted lookup: its vocabulary is an asset file, a second input and output
        ids = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 1], "dtype": "int64"}, name="ids", position=(0.0, 200.0))).node_id
        lookup = graph.apply(add_layer(graph, "IntegerLookup", {"output_mode": "one_hot"}, name="lookup", position=(200.0, 200.0))).node_id
        graph.apply(Connect(ids, 0, lookup, 0))
        graph.apply(SetModelIO([*graph.explicit_inputs(), ids], [*graph.explicit_outputs(), PortRef(lookup, 0)]))
        graph.layers["lookup"].assets = {"vocabulary.txt": b"-1\n3\n5\n7"}
    if FORMAT_VERSION >= 2:  # a second run, which kept its weights (the first did not)
        trained = graph.clone()
        trained.layers["hidden"].weights = [w * 2 for w in graph.layers["hidden"].weights]
        trained.layers["head"].submodel.layers["out"].weights[0] = np.full((3, 2), 0.5)
        record_run(project, {"id": "run-2", "epochs": 1, "history": {"loss": [0.25]}}, trained)
    return project


def expected(project: Project) -> dict:
    """What loading the golden file must give, as JSON."""
    weights = {}

    def walk(graph: ModelGraph, prefix: str) -> None:
        for layer in graph.layers.values():
            if layer.weights is not None:
                weights[prefix + layer.name] = [
                    {"dtype": str(w.dtype), "shape": list(w.shape), "values": w.ravel().tolist()} for w in layer.weights
                ]
            if layer.submodel is not None:
                walk(layer.submodel, f"{prefix}{layer.name}/")

    walk(project.graph, "")
    return {
        "format_version": FORMAT_VERSION,
        "graph": project.graph.to_dict(),
        "training": project.training,
        "runs": project.runs,
        "weights": weights,
        "assets": {
            label: {name: data.decode("utf-8") for name, data in sorted(layer.assets.items())}
            for label, layer in _walk(project.graph, "")
            if layer.assets
        },
        "run_weights": {
            run_id: {
                label: [{"dtype": str(w.dtype), "shape": list(w.shape), "values": w.ravel().tolist()} for w in arrays]
                for label, arrays in kept.arrays().items()
            }
            for run_id, kept in project.run_weights.items()
        },
    }


def _walk(graph: ModelGraph, prefix: str):
    for layer in graph.layers.values():
        yield prefix + layer.name, layer
        if layer.submodel is not None:
            yield from _walk(layer.submodel, f"{prefix}{layer.name}/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite an existing golden file")
    args = parser.parse_args()
    kproj = HERE / f"project_v{FORMAT_VERSION}.kproj"
    expected_json = HERE / f"project_v{FORMAT_VERSION}.expected.json"
    if kproj.exists() and not args.force:
        sys.exit(f"{kproj.name} exists; golden files of a released format are frozen (use --force)")
    project = golden_project()
    kproj.write_bytes(project_to_bytes(project))
    expected_json.write_text(json.dumps(expected(project), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {kproj.name} ({kproj.stat().st_size} bytes) and {expected_json.name}")


if __name__ == "__main__":
    main()
