"""A minimal synchronous event mechanism for the model graph.

The graph announces what changed; views (the canvas, the shape engine) subscribe.
No Qt here: the UI bridges these callbacks to Qt signals itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Change:
    """What one graph operation touched.

    Attributes:
        kind: The operation's kind, e.g. ``"add_node"``, ``"connect"``, ``"set_param"``.
        nodes: Ids of nodes whose inputs, layer or existence changed.
        layers: Names of layers whose configuration or existence changed.
        detail: Extra, operation-specific information for views.
    """

    kind: str
    nodes: frozenset[str] = frozenset()
    layers: frozenset[str] = frozenset()
    detail: dict[str, Any] = field(default_factory=dict)


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
