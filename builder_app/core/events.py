"""Typed change events of a model graph, and the small mechanism that delivers them.

The graph announces what changed; views (the canvas, the shape engine, the
inspector) subscribe. Every :class:`Change` names the graph it concerns (the
root model or one sub-model's graph) and its :class:`ChangeKind`, so a listener
that follows several graphs never has to guess. No Qt here: the UI bridges these
callbacks to Qt signals itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder_app.core.graph import ModelGraph


class ChangeKind(StrEnum):
    """What kind of primitive change a graph went through (one per primitive)."""

    ADD_NODE = "add_node"
    REMOVE_NODE = "remove_node"
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    SET_PARAM = "set_param"
    RENAME = "rename"
    SET_NODE_LAYER = "set_node_layer"
    MOVE = "move"
    SET_IO = "set_io"
    SET_CALL = "set_call"
    SET_CANVAS = "set_canvas"

    @property
    def changes_shapes(self) -> bool:
        """False for changes no shape, count or error can depend on (positions, drawing)."""
        return self not in (ChangeKind.MOVE, ChangeKind.SET_CANVAS)

    @property
    def changes_structure(self) -> bool:
        """True when nodes or the layers they call came or went (tabs, sub-models)."""
        return self in (ChangeKind.ADD_NODE, ChangeKind.REMOVE_NODE, ChangeKind.SET_NODE_LAYER)


@dataclass(frozen=True)
class Change:
    """What one primitive change of a graph touched.

    Attributes:
        kind: The kind of change.
        nodes: Ids of nodes whose inputs, layer or existence changed.
        layers: Names of layers whose configuration or existence changed.
        detail: Kind-specific facts for views: ``"layer"`` (the layer a node
            added or removed calls), ``"edge"`` (the wire connected or
            disconnected), ``"node"`` (the node moved), ``"key"`` (the
            parameter set), ``"old"``/``"new"`` (a rename).
        graph: The graph that changed (set by the graph when it emits).
    """

    kind: ChangeKind
    nodes: frozenset[str] = frozenset()
    layers: frozenset[str] = frozenset()
    detail: dict[str, Any] = field(default_factory=dict)
    graph: ModelGraph | None = field(default=None, compare=False, repr=False)


class Emitter:
    """A list of callbacks, called in order of subscription."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Change], None]] = []

    def connect(self, callback: Callable[[Change], None]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[[Change], None]) -> None:
        self._callbacks = [cb for cb in self._callbacks if cb != callback]

    def emit(self, change: Change) -> None:
        for callback in list(self._callbacks):
            callback(change)
