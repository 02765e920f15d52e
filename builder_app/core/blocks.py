"""Composite blocks: small sub-graphs the palette drops in as ordinary layers.

A block is not a layer type of its own. Building one gives a single
:class:`~builder_app.core.ops.Batch` of ``AddNode`` and ``Connect`` operations, so
the result is a handful of plain, editable Keras layers and one undo step; the
batch's inverse removes them all again.

Configs start from :func:`builder_app.core.catalog.default_config`, which imports
Keras: call :meth:`Block.build` only once Keras may be loaded. Importing this
module is instant. This module never imports Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from builder_app.core import catalog
from builder_app.core.graph import Layer, ModelGraph, Node, PortRef, snake_case
from builder_app.core.layout import COLUMN_WIDTH
from builder_app.core.ops import AddNode, Batch, Connect, Op

#: Horizontal distance between the nodes of a block on the canvas.
SPACING = COLUMN_WIDTH


@dataclass(frozen=True)
class Part:
    """One layer of a block.

    Attributes:
        key: The part's name within the block, for wiring.
        class_name: The Keras class.
        overrides: Config entries that differ from the catalog's defaults.
        inputs: The keys of the parts feeding input ports 0, 1, ... in order.
    """

    key: str
    class_name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    """A named recipe for a few wired layers.

    Attributes:
        name: What the palette shows, e.g. ``"Residual block"``.
        description: One line for the palette's tooltip.
        options: The block's settings and their defaults (e.g. ``{"filters": 64}``).
        parts: Makes the block's parts from the settings; the first part is the
            entry (it takes the block's input), the last is the exit.
    """

    name: str
    description: str
    options: Mapping[str, Any]
    parts: Callable[[Mapping[str, Any]], list[Part]]

    def build(
        self,
        graph: ModelGraph,
        position: tuple[float, float],
        source: PortRef | None = None,
        **options: Any,
    ) -> Batch:
        """The operations that add this block to ``graph``.

        Args:
            graph: The graph the block will be added to (ids and names are
                chosen to be free in it); it is not changed.
            position: Canvas position of the entry; the other parts follow to
                the right, ``SPACING`` apart.
            source: A tensor to wire into the entry, if any.
            **options: Settings overriding :attr:`options`.

        Returns:
            One batch: every ``AddNode`` (entry first, exit last), then the wires.

        Raises:
            KeyError: An option the block does not have.
        """
        unknown = set(options) - set(self.options)
        if unknown:
            raise KeyError(f"{self.name} has no option {sorted(unknown)[0]!r}")
        parts = self.parts({**self.options, **options})
        x, y = position
        ids: dict[str, str] = {}
        names: list[str] = []
        adds: list[Op] = []
        wires: list[Op] = []
        for i, part in enumerate(parts):
            node_id = graph.new_node_id(taken=ids.values())
            name = graph.unique_layer_name(snake_case(part.class_name), taken=names)
            ids[part.key] = node_id
            names.append(name)
            config = catalog.default_config(part.class_name)
            config.update(part.overrides)
            adds.append(
                AddNode(Node(node_id, name, (x + i * SPACING, y)), Layer(name, part.class_name, config))
            )
            wires.extend(
                Connect(ids[src], 0, node_id, port) for port, src in enumerate(part.inputs)
            )
        if source is not None:
            wires.insert(0, Connect(source.node, source.port, ids[parts[0].key], 0))
        return Batch([*adds, *wires], f"Add {self.name}")


def added_nodes(batch: Batch) -> list[str]:
    """The ids of the nodes a block's batch adds, entry first and exit last."""
    return [op.node.id for op in batch.ops if isinstance(op, AddNode)]


# ------------------------------------------------------------------- recipes
def _conv(filters: int) -> dict[str, Any]:
    return {"filters": filters, "kernel_size": [3, 3], "padding": "same"}


def _residual(o: Mapping[str, Any]) -> list[Part]:
    return [
        Part("entry", "Identity"),
        Part("conv_a", "Conv2D", _conv(o["filters"]), ("entry",)),
        Part("bn_a", "BatchNormalization", {}, ("conv_a",)),
        Part("relu_a", "ReLU", {}, ("bn_a",)),
        Part("conv_b", "Conv2D", _conv(o["filters"]), ("relu_a",)),
        Part("bn_b", "BatchNormalization", {}, ("conv_b",)),
        Part("add", "Add", {}, ("entry", "bn_b")),
        Part("relu_out", "ReLU", {}, ("add",)),
    ]


def _transformer(o: Mapping[str, Any]) -> list[Part]:
    attention = {"num_heads": o["num_heads"], "key_dim": o["key_dim"], "value_dim": o["key_dim"]}
    return [
        Part("entry", "Identity"),
        # MultiHeadAttention's ports are (query, value, key): self-attention.
        Part("attention", "MultiHeadAttention", attention, ("entry", "entry")),
        Part("drop_attention", "Dropout", {"rate": o["dropout"]}, ("attention",)),
        Part("add_attention", "Add", {}, ("entry", "drop_attention")),
        Part("norm_attention", "LayerNormalization", {}, ("add_attention",)),
        Part("ff_hidden", "Dense", {"units": o["ff_dim"], "activation": "relu"}, ("norm_attention",)),
        Part("ff_out", "Dense", {"units": o["width"]}, ("ff_hidden",)),
        Part("drop_ff", "Dropout", {"rate": o["dropout"]}, ("ff_out",)),
        Part("add_ff", "Add", {}, ("norm_attention", "drop_ff")),
        Part("norm_ff", "LayerNormalization", {}, ("add_ff",)),
    ]


def _conv_bn_relu(o: Mapping[str, Any]) -> list[Part]:
    return [
        Part("conv", "Conv2D", {**_conv(o["filters"]), "use_bias": False}),
        Part("bn", "BatchNormalization", {}, ("conv",)),
        Part("relu", "ReLU", {}, ("bn",)),
    ]


def _mlp(o: Mapping[str, Any]) -> list[Part]:
    return [
        Part("hidden", "Dense", {"units": o["hidden"], "activation": "relu"}),
        Part("dropout", "Dropout", {"rate": o["dropout"]}, ("hidden",)),
        Part("out", "Dense", {"units": o["units"], "activation": "relu"}, ("dropout",)),
    ]


#: Every block the palette offers, by name.
BLOCKS: dict[str, Block] = {
    block.name: block
    for block in (
        Block(
            "Residual block",
            "Two 3x3 convolutions with batch norm and a skip connection (ResNet); "
            "the filters must equal the input's channels.",
            {"filters": 64},
            _residual,
        ),
        Block(
            "Transformer encoder block",
            "Self-attention and a feed-forward network, each with a residual add and "
            "layer norm; the second Dense's units (64) must equal the input's last dimension.",
            {"num_heads": 4, "key_dim": 32, "ff_dim": 128, "width": 64, "dropout": 0.1},
            _transformer,
        ),
        Block(
            "Conv-BN-ReLU",
            "A 3x3 convolution without bias, batch normalization and ReLU.",
            {"filters": 64},
            _conv_bn_relu,
        ),
        Block(
            "MLP block",
            "Dense (ReLU), dropout, Dense (ReLU).",
            {"hidden": 128, "units": 64, "dropout": 0.1},
            _mlp,
        ),
    )
}
