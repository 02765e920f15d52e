"""Builds the bundled example projects through the same operations the editor uses.

Run from the repository root: ``python resources/examples/make_examples.py``.
Each example is a project a newcomer can open, read and train.
"""

from __future__ import annotations

from pathlib import Path

from builder_app.core import catalog
from builder_app.core.display import layout_ops
from builder_app.core.graph import ModelGraph, PortRef
from builder_app.core.ops import (
    Connect,
    SetModelIO,
    add_layer,
    call_again,
    group_as_submodel,
)
from builder_app.core.project import Project, save_project
from builder_app.core.shapes import ShapeEngine

HERE = Path(__file__).resolve().parent


class Sketch:
    """A tiny helper to write examples as a chain of layer calls."""

    def __init__(self, name: str):
        self.graph = ModelGraph(name)

    def input(self, shape: list[int | None], name: str, dtype: str = "float32") -> str:
        op = add_layer(self.graph, "InputLayer", {"batch_shape": [None, *shape], "dtype": dtype}, name=name)
        self.graph.apply(op)
        return op.node.id

    def layer(self, class_name: str, *inputs: str, name: str | None = None, **params) -> str:
        config = {**catalog.default_config(class_name), **params}
        op = add_layer(self.graph, class_name, config, name=name)
        self.graph.apply(op)
        for port, src in enumerate(inputs):
            self.graph.apply(Connect(src, 0, op.node.id, port))
        return op.node.id

    def tidy(self) -> ModelGraph:
        laid_out(self.graph)
        return self.graph


def laid_out(graph: ModelGraph) -> ModelGraph:
    """Lays out ``graph`` and its sub-models, top to bottom, as Ctrl+L in the editor does."""
    for layer in graph.layers.values():
        if layer.submodel is not None:
            laid_out(layer.submodel)
    batch = layout_ops(graph)
    if batch is not None:
        graph.apply(batch)
    return graph


def iris_mlp() -> ModelGraph:
    s = Sketch("iris_mlp")
    x = s.input([4], "measurements")
    h = s.layer("Dense", x, name="hidden_1", units=16, activation="relu")
    h = s.layer("Dense", h, name="hidden_2", units=16, activation="relu")
    h = s.layer("Dropout", h, name="dropout", rate=0.1)
    s.layer("Dense", h, name="species", units=3, activation="softmax")
    return s.tidy()


def dropout_sweep() -> ModelGraph:
    """The iris classifier of the dropout tutorial: how much dropout? Model → Sweep… answers."""
    s = Sketch("dropout_sweep")
    x = s.input([4], "measurements")
    h = s.layer("Dense", x, name="hidden", units=32, activation="relu")
    h = s.layer("Dropout", h, name="dropout", rate=0.2)
    s.layer("Dense", h, name="species", units=3, activation="softmax")
    return s.tidy()


def digits_cnn() -> ModelGraph:
    s = Sketch("digits_cnn")
    x = s.input([8, 8, 1], "image")
    h = s.layer("Conv2D", x, name="conv_1", filters=16, kernel_size=[3, 3], padding="same", activation="relu")
    h = s.layer("BatchNormalization", h, name="batch_norm_1")
    h = s.layer("MaxPooling2D", h, name="pool_1", pool_size=[2, 2], strides=[2, 2])
    h = s.layer("Conv2D", h, name="conv_2", filters=32, kernel_size=[3, 3], padding="same", activation="relu")
    h = s.layer("GlobalAveragePooling2D", h, name="global_pool")
    h = s.layer("Dropout", h, name="dropout", rate=0.2)
    s.layer("Dense", h, name="digit", units=10, activation="softmax")
    return s.tidy()


def unet_groupnorm() -> ModelGraph:
    """A two-level U-Net: GroupNormalization, a residual add, Conv2DTranspose back up."""
    s = Sketch("small_unet")
    x = s.input([32, 32, 3], "image")
    e1 = s.layer("Conv2D", x, name="enc1_conv", filters=16, kernel_size=[3, 3], padding="same")
    e1 = s.layer("GroupNormalization", e1, name="enc1_norm", groups=4)
    e1 = s.layer("Activation", e1, name="enc1_relu", activation="relu")
    d = s.layer("MaxPooling2D", e1, name="down", pool_size=[2, 2], strides=[2, 2])
    b = s.layer("Conv2D", d, name="bottleneck_conv", filters=32, kernel_size=[3, 3], padding="same")
    b = s.layer("GroupNormalization", b, name="bottleneck_norm", groups=8)
    b = s.layer("Activation", b, name="bottleneck_relu", activation="relu")
    r = s.layer("Conv2D", b, name="residual_conv", filters=32, kernel_size=[3, 3], padding="same")
    b = s.layer("Add", b, r, name="residual_add")
    u = s.layer(
        "Conv2DTranspose", b, name="up", filters=16, kernel_size=[2, 2], strides=[2, 2], padding="same"
    )
    u = s.layer("Concatenate", u, e1, name="skip")
    u = s.layer("Conv2D", u, name="dec1_conv", filters=16, kernel_size=[3, 3], padding="same")
    u = s.layer("GroupNormalization", u, name="dec1_norm", groups=4)
    u = s.layer("Activation", u, name="dec1_relu", activation="relu")
    s.layer("Conv2D", u, name="mask", filters=1, kernel_size=[1, 1], activation="sigmoid")
    return s.tidy()


def siamese() -> ModelGraph:
    """Two digits in, one "same digit?" out; one tower (a sub-model) sees both."""
    s = Sketch("siamese_digits")
    left = s.input([8, 8, 1], "left")
    right = s.input([8, 8, 1], "right")
    h = s.layer("Conv2D", left, name="tower_conv", filters=16, kernel_size=[3, 3], padding="same", activation="relu")
    h = s.layer("GlobalAveragePooling2D", h, name="tower_pool")
    h = s.layer("Dense", h, name="tower_embedding", units=32)
    tower_nodes = list(s.graph.nodes)[2:]
    sim = s.layer("Dot", h, name="cosine", axes=1, normalize=True)
    s.layer("Dense", sim, name="same_digit", units=1, activation="sigmoid")
    engine = ShapeEngine(s.graph)
    engine.update()
    group = group_as_submodel(
        s.graph,
        tower_nodes,
        {PortRef(left, 0): ([None, 8, 8, 1], "float32")},
        name="tower",
    )
    s.graph.apply(group)
    tower_call = next(n for n in s.graph.nodes if s.graph.layer_of(n).name == "tower")
    again = call_again(s.graph, tower_call)
    s.graph.apply(again)
    s.graph.apply(Connect(right, 0, again.node.id, 0))
    cosine = next(n for n in s.graph.nodes if s.graph.layer_of(n).name == "cosine")
    s.graph.apply(Connect(again.node.id, 0, cosine, 1))
    s.graph.apply(SetModelIO([left, right], []))
    engine.close()
    return s.tidy()


EXAMPLES = {
    "iris_mlp.kproj": iris_mlp,
    "digits_cnn.kproj": digits_cnn,
    "unet_groupnorm.kproj": unet_groupnorm,
    "siamese_digits.kproj": siamese,
    "dropout_sweep.kproj": dropout_sweep,
}

#: Training settings of the examples that train on a built-in dataset.
TRAINING = {
    # `builder-app sweep resources/examples/dropout_sweep.kproj --param dropout.rate=0.0,0.1,0.2,0.3,0.4,0.5
    # --sampler grid` (README, "Hyperparameter sweeps").
    "dropout_sweep.kproj": {
        "data": {"source": "builtin", "name": "iris"},
        "epochs": 20,
        "batch_size": 16,
        "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
    },
    "digits_cnn.kproj": {"data": {"source": "builtin", "name": "digits"}, "epochs": 10, "batch_size": 32},
    "iris_mlp.kproj": {
        "data": {"source": "builtin", "name": "iris"},
        "epochs": 100,
        "batch_size": 16,
        "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
    },
}


def main(only: list[str] | None = None) -> None:
    for file_name, build in EXAMPLES.items():
        if only and file_name not in only:
            continue
        graph = laid_out(build())
        engine = ShapeEngine(graph)
        problems = engine.errors()
        if problems:
            raise SystemExit(f"{file_name}: {problems}")
        save_project(Project(graph=graph, training=TRAINING.get(file_name, {})), HERE / file_name)
        print(f"{file_name}: {len(graph)} nodes, {engine.total_params():,} params")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])  # file names: only those (python resources/examples/make_examples.py dropout_sweep.kproj)
