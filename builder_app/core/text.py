"""How values are written down: messages on one line, shapes as Keras prints them, plain JSON data.

One function for each, used by the core, the importers, the exporters, training
and the UI alike, so a shape reads the same on a wire, in the inspector, in a
refusal and in ``validate``. Plain Python only: no Qt, no Keras, no numpy import
(numpy values are recognised by their ``item``/``tolist`` methods).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def one_line(value: object, limit: int = 300) -> str:
    """A message (or an exception) as one line of at most ``limit`` characters.

    Runs of whitespace, line breaks included, become one space; an exception
    without a message is named by its class; a longer text is cut and ends in
    ``...``.

    Args:
        value: The message, or an exception whose message is wanted.
        limit: The most characters the line may take (at least 3).

    Returns:
        The line.
    """
    text = " ".join(str(value).split())
    if not text and isinstance(value, BaseException):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_shape(shape: Iterable[int | None]) -> str:
    """A shape as Keras prints it: ``(None, 28, 28, 1)``, ``(None,)`` for rank 1, ``()`` for rank 0.

    Args:
        shape: The dimensions, None for an unknown one.

    Returns:
        The shape as a Python tuple is written.
    """
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def json_plain(value: Any, other: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as JSON holds it, recursively: a config comparable with one read from a file.

    Tuples become lists, dict keys strings, numpy scalars Python numbers and numpy
    arrays lists. A value of any other kind is kept as it is, or, given ``other``,
    replaced by ``other(value)`` (``repr``, say, so that it never equals a config
    value).

    Args:
        value: A config, or any part of one.
        other: What to make of a value that has no JSON form; None keeps it.

    Returns:
        The plain value.
    """
    if isinstance(value, dict):
        return {str(k): json_plain(v, other) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_plain(v, other) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    for method in ("tolist", "item"):  # numpy arrays and scalars (a scalar's tolist is its number)
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return json_plain(convert(), other)
            except (TypeError, ValueError):
                pass
    return value if other is None else other(value)
