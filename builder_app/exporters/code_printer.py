"""Python source from a small expression tree, laid out as ``ruff format`` lays it out.

The exporters build their code as a tree of calls, brackets and keyword arguments
(:class:`Call`, :class:`Seq`, :class:`Kw`, :class:`Pair`, :class:`Index`, and plain
strings for names and literals) and this module prints it. The output is what
``ruff format`` (and Black) would make of it, so an exported file passes
``ruff format --check`` without ruff being installed: a statement that fits stays
on one line; one that does not is split at its last bracket whose opening line
fits, trailing calls kept on the closing line (``)(x)``) while they fit; the
contents of a split bracket go on one indented line when they fit (calls) or
one item a line with a trailing comma; list, tuple and dict literals that are
split always have one item a line; a right-hand side that cannot be split at
its own brackets (a name, ``f()``), or whose first line would still be too long,
is wrapped in parentheses.

Literals are written as ruff normalises them: double quotes unless the text
holds more double quotes than single ones, exponents without ``+``.

Only this small subset of Python is covered, and it is tested against ruff
itself (``tests/test_code_printer.py``). Nothing here imports Keras.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: ``ruff format``'s line length in this project (``pyproject.toml``).
LINE_LENGTH = 100
INDENT = "    "


@dataclass
class Call:
    """``func(args)``; ``func`` may itself be a call (``layers.Dense(3)(x)``)."""

    func: Expr
    args: list[Expr]


@dataclass
class Seq:
    """A list, tuple or dict display: ``open`` is ``[``, ``(`` or ``{``."""

    open: str
    items: list[Expr]
    close: str


@dataclass
class Kw:
    """``name=value`` inside a call."""

    name: str
    value: Expr


@dataclass
class Pair:
    """``key: value`` inside a dict."""

    key: Expr
    value: Expr


@dataclass
class Index:
    """``value[items]``: a subscript whose items are written as given (``:``, ``0``, ``...``)."""

    value: Expr
    items: list[str]


Expr = str | Call | Seq | Kw | Pair | Index


# --------------------------------------------------------------------------- #
# Literals
# --------------------------------------------------------------------------- #


def string(text: str) -> str:
    """A string literal as ruff writes it: double quotes unless single ones need fewer escapes."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == quote:
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif 32 <= code < 127:
            out.append(char)
        elif code < 256:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return quote + "".join(out) + quote


def number(value: int | float) -> str:
    """An int or float literal as ruff writes it (``1e20``, not ``1e+20``); inf and nan as calls."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    return repr(value).replace("e+", "e")


def literal(value: Any, *, as_tuple: bool = False) -> Expr:
    """Plain data (None, booleans, numbers, strings, lists, tuples, dicts) as an expression.

    Lists are written as tuples when ``as_tuple`` is set (shapes, kernel sizes).

    Raises:
        TypeError: The value is not plain data.
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, list | tuple):
        items = [literal(v, as_tuple=as_tuple) for v in value]
        return (
            Seq("(", items, ")") if as_tuple or isinstance(value, tuple) else Seq("[", items, "]")
        )
    if isinstance(value, Mapping):
        return Seq(
            "{",
            [Pair(string(str(k)), literal(v, as_tuple=as_tuple)) for k, v in value.items()],
            "}",
        )
    raise TypeError(f"cannot write {type(value).__name__} values")


# --------------------------------------------------------------------------- #
# One line
# --------------------------------------------------------------------------- #


def flat(expr: Expr) -> str:
    """The expression on one line."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, Kw):
        return f"{expr.name}={flat(expr.value)}"
    if isinstance(expr, Pair):
        return f"{flat(expr.key)}: {flat(expr.value)}"
    head, trailers = _chain(expr)
    return head + "".join(_flat_trailer(t) for t in trailers)


@dataclass
class _Trailer:
    """One bracket pair of a chain: a call's arguments, a subscript, or a display."""

    open: str
    items: list[Any]
    close: str
    kind: str  # "call", "index" or "seq"

    @property
    def one_tuple(self) -> bool:
        return self.kind == "seq" and self.open == "(" and len(self.items) == 1


def _chain(expr: Expr) -> tuple[str, list[_Trailer]]:
    """``layers.Dense(3)(x)`` as its head ``layers.Dense`` and its brackets ``(3)``, ``(x)``."""
    if isinstance(expr, Call):
        head, trailers = _chain(expr.func)
        return head, [*trailers, _Trailer("(", expr.args, ")", "call")]
    if isinstance(expr, Index):
        head, trailers = _chain(expr.value)
        return head, [*trailers, _Trailer("[", expr.items, "]", "index")]
    if isinstance(expr, Seq):
        return "", [_Trailer(expr.open, expr.items, expr.close, "seq")]
    return flat(expr), []


def _flat_trailer(trailer: _Trailer) -> str:
    inner = ", ".join(flat(i) for i in trailer.items)
    return f"{trailer.open}{inner}{',' if trailer.one_tuple else ''}{trailer.close}"


# --------------------------------------------------------------------------- #
# Several lines
# --------------------------------------------------------------------------- #


def statement(
    target: str | Sequence[str] | None, expr: Expr, depth: int = 1, width: int = LINE_LENGTH
) -> list[str]:
    """The lines of ``target = expr`` (``target`` "return": ``return expr``; None: ``expr``).

    ``target`` may be several names (``a, b = expr``); ``depth`` is the indentation level.
    """
    pad = INDENT * depth
    if target is None:
        return _layout(expr, depth, "", "", width, rhs=False)
    if target == "return":
        return _layout(expr, depth, "return ", "", width, rhs=True)
    if isinstance(target, str):
        return _layout(expr, depth, f"{target} = ", "", width, rhs=True)
    prefix = f"{', '.join(target)} = "
    lines = _layout(expr, depth, prefix, "", width, rhs=False)
    if len(lines[0]) <= width:
        return lines
    if len(pad + prefix) + 1 <= width:
        return _parenthesized(expr, depth, prefix, "", width)
    # Not even ``a, b = (`` fits: the names get a bracket of their own.
    names = [pad + INDENT + name + "," for name in target]
    return [pad + "(", *names, *_layout(expr, depth, ") = ", "", width, rhs=False)]


def _layout(expr: Expr, depth: int, prefix: str, suffix: str, width: int, rhs: bool) -> list[str]:
    """``prefix + expr + suffix`` at ``depth``, split as ruff splits it when it is too long.

    ``rhs``: the expression is the value of an assignment or ``return`` (ruff's
    "best fit" parentheses): it is split at its own brackets when the line up to
    the first of them fits; otherwise it is wrapped in parentheses when every line
    of its fully split form fits there.
    """
    pad = INDENT * depth
    one = pad + prefix + flat(expr) + suffix
    if len(one) <= width:
        return [one]
    if isinstance(expr, Kw):
        return _layout(expr.value, depth, f"{prefix}{expr.name}=", suffix, width, rhs=False)
    if isinstance(expr, Pair):
        return _layout(expr.value, depth, f"{prefix}{flat(expr.key)}: ", suffix, width, rhs=False)
    head, trailers = _chain(expr)
    own = _split_chain(head, trailers, depth, prefix, suffix, width)
    if not rhs:
        return own
    opening = "(" if len(pad + prefix) + 1 <= width else None
    if not trailers or not trailers[-1].items:
        # A name or ``f()``: in parentheses when that makes it fit, else as it is.
        inner = pad + INDENT + flat(expr)
        return (
            [pad + prefix + "(", inner, pad + ")" + suffix]
            if opening and len(inner) <= width
            else own
        )
    first = next(i for i, t in enumerate(trailers) if t.items)
    first_line = (
        pad
        + prefix
        + head
        + "".join(_flat_trailer(t) for t in trailers[:first])
        + trailers[first].open
    )
    if len(first_line) <= width or not opening:
        return own
    exploded = [pad + prefix + "(", *_exploded(expr, depth + 1, "", ""), pad + ")" + suffix]
    return (
        _parenthesized(expr, depth, prefix, suffix, width)
        if all(len(x) <= width for x in exploded)
        else own
    )


def _parenthesized(expr: Expr, depth: int, prefix: str, suffix: str, width: int) -> list[str]:
    pad = INDENT * depth
    return [
        pad + prefix + "(",
        *_layout(expr, depth + 1, "", "", width, rhs=False),
        pad + ")" + suffix,
    ]


def _exploded(expr: Expr, depth: int, prefix: str, suffix: str) -> list[str]:
    """The expression with every bracket split, one item a line (what ruff measures)."""
    pad = INDENT * depth
    if isinstance(expr, Kw):
        return _exploded(expr.value, depth, f"{prefix}{expr.name}=", suffix)
    if isinstance(expr, Pair):
        return _exploded(expr.value, depth, f"{prefix}{flat(expr.key)}: ", suffix)
    head, trailers = _chain(expr)
    lines: list[str] = []
    current = pad + prefix + head
    for trailer in trailers:
        if not trailer.items:
            current += _flat_trailer(trailer)
            continue
        lines.append(current + trailer.open)
        if trailer.kind == "index":
            lines.append(pad + INDENT + ", ".join(trailer.items))
        elif len(trailer.items) == 1:
            lines += _exploded(trailer.items[0], depth + 1, "", "," if trailer.one_tuple else "")
        else:
            for item in trailer.items:
                lines += _exploded(item, depth + 1, "", ",")
        current = pad + trailer.close
    return [*lines, current + suffix]


def _split_chain(
    head: str, trailers: list[_Trailer], depth: int, prefix: str, suffix: str, width: int
) -> list[str]:
    """``head(...)(...)`` split bracket by bracket, from the left.

    A bracket stays on the line when the line up to the next bracket's opening
    (or the end) then fits; otherwise it is split, and the line goes on after its
    closing bracket (``)(x)``).
    """
    pad = INDENT * depth
    lines: list[str] = []
    current = pad + prefix + head
    for i, trailer in enumerate(trailers):
        if trailer.items:
            rest = ""
            for after in trailers[i + 1 :]:
                if after.items:
                    rest += after.open
                    break
                rest += _flat_trailer(after)
            else:
                rest += suffix
            if len(current) + len(_flat_trailer(trailer)) + len(rest) > width:
                lines.append(current + trailer.open)
                lines += _body(trailer, depth + 1, width)
                current = pad + trailer.close
                continue
        current += _flat_trailer(trailer)
    return [*lines, current + suffix]


def _body(trailer: _Trailer, depth: int, width: int) -> list[str]:
    """The contents of a split bracket."""
    pad = INDENT * depth
    if trailer.kind == "index":
        return [pad + ", ".join(trailer.items)]
    items = trailer.items
    one_line = pad + ", ".join(flat(i) for i in items) + ("," if trailer.one_tuple else "")
    # A display (list, tuple, dict) split at its own bracket has one item a line.
    if not (trailer.kind == "seq" and len(items) > 1) and len(one_line) <= width:
        return [one_line]
    if len(items) == 1:
        return _layout(items[0], depth, "", "," if trailer.one_tuple else "", width, rhs=False)
    lines: list[str] = []
    for item in items:
        lines += _layout(item, depth, "", ",", width, rhs=False)
    return lines


# --------------------------------------------------------------------------- #
# Modules
# --------------------------------------------------------------------------- #


def docstring(text: str, depth: int = 0) -> str:
    """A one-line docstring (its text must hold no quotes, backslashes or line breaks)."""
    if any(c in text for c in '"\\\n\r') or not text.isprintable():
        raise ValueError(f"not a one-line docstring: {text!r}")
    return f'{INDENT * depth}"""{text}"""'


def module(doc: str, imports: Sequence[str], blocks: Sequence[str]) -> str:
    """A module: its docstring, imports (as given: sorted, grouped), and top-level blocks.

    Blocks are separated by two blank lines, as ruff separates top-level definitions.
    """
    head = f"{doc}\n\n" + "\n".join(imports)
    return "\n\n\n".join([head, *(b.strip("\n") for b in blocks)]) + "\n"
