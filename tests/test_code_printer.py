"""The code printer lays code out exactly as ``ruff format`` does: random statements, ruff as the judge."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from builder_app.exporters.code_printer import (
    INDENT,
    Call,
    Index,
    Kw,
    Pair,
    Seq,
    literal,
    module,
    number,
    statement,
    string,
)

RUFF = Path(sys.executable).parent / "ruff"


def ruff_format(source: str, width: int) -> str:
    done = subprocess.run(
        [str(RUFF), "format", "--isolated", "--line-length", str(width), "-"],
        input=source, capture_output=True, text=True, check=True,
    )
    return done.stdout


class Trees:
    """Random statements of the shapes the exporters write, names of random lengths."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def name(self, lo: int = 1, hi: int = 40) -> str:
        return "n" + "".join(self.r.choice("abcdefghij_") for _ in range(self.r.randint(lo, hi) - 1))

    def value(self, depth: int = 0):
        r, c = self.r, self.r.random()
        if c < 0.25:
            return str(r.randint(0, 10 ** r.randint(1, 6)))
        if c < 0.4:
            return string(self.name(1, 50))
        if c < 0.5:
            return literal([r.randint(1, 9) for _ in range(r.randint(1, 4))], as_tuple=True)
        if c < 0.6:
            return Seq("[", [self.name() for _ in range(r.randint(1, 5))], "]")
        if c < 0.7 and depth < 3:
            return Call(f"keras.{self.name(3, 12)}.{self.name(3, 25)}", self.arguments(depth + 1))
        if c < 0.75 and depth < 2:
            pairs = [Pair(string(self.name(1, 15)), self.value(depth + 1)) for _ in range(r.randint(1, 3))]
            return Seq("{", pairs, "}")
        if c < 0.8:
            return Index(self.name(), r.choice([[":", "0"], ["...", "1:3"], ["0,"]]))
        if c < 0.83:
            return Seq("(", [self.value(depth + 1)], ")")
        if c < 0.86 and depth < 3:
            return Seq("[", [self.value(depth + 1) for _ in range(r.randint(1, 4))], "]")
        if c < 0.88:
            return number(r.choice([1e-5, -2.5e20, float("inf"), -float("inf"), 0.1, 3.0]))
        return self.name()

    def arguments(self, depth: int) -> list:
        r = self.r
        args = [self.value(depth) for _ in range(r.choice([0, 1, 1, 2, 3]))]
        return args + [Kw(self.name(2, 20), self.value(depth)) for _ in range(r.choice([0, 1, 2, 3, 4]))]

    def expression(self):
        r, c = self.r, self.r.random()
        if c < 0.55:
            inputs = r.choice([self.name(), Seq("[", [self.name() for _ in range(r.randint(1, 4))], "]")])
            return Call(Call(f"layers.{self.name(3, 30)}", self.arguments(0)), [inputs])
        if c < 0.7:
            return Call(f"keras.{self.name(2, 10)}", self.arguments(0))
        if c < 0.8:
            return Call(self.name(3, 50), [])
        if c < 0.85:
            return Index(self.name(10, 80), [":", "0"])
        if c < 0.9:
            return r.choice([self.name(20, 110), string(self.name(20, 110))])
        return Call(Call(self.name(3, 40), []), [self.name(1, 60)])

    def statement(self, width: int) -> tuple[int, list[str]]:
        r, c = self.r, self.r.random()
        depth = r.choice([0, 1, 2])
        if c < 0.15:
            target = "return"
        elif c < 0.35:
            target = [self.name(1, 25) for _ in range(r.randint(2, 6))]
        elif c < 0.4:
            target = None
        else:
            target = self.name(1, 60)
        return depth, statement(target, self.expression(), depth, width)


@pytest.mark.parametrize("width", [100, 88, 60])
@pytest.mark.parametrize("seed", range(4))
def test_random_statements_are_already_formatted(seed, width):
    trees = Trees(seed * 1000 + width)
    chunks = []
    for _ in range(300):
        depth, lines = trees.statement(width)
        chunks.append("\n".join([*(INDENT * d + "def f():" for d in range(depth)), *lines]))
    source = "\n\n\n".join(chunks) + "\n"
    formatted = ruff_format(source, width)
    if formatted != source:  # the first statement ruff lays out otherwise
        mine, ruffs = source.split("\n\n\n"), formatted.split("\n\n\n")
        first = next(i for i, (a, b) in enumerate(zip(mine, ruffs, strict=False)) if a != b)
        pytest.fail(f"ruff formats it otherwise:\n{mine[first]}\n--- ruff:\n{ruffs[first]}")


def test_literals_as_ruff_writes_them():
    values = ['a"b', "it's", "both ' and \"", "x\\y", "é\U0001f600", "tab\there\n", 1e-05, 1e20, -0.5, 7, True, None]
    source = "".join(f"x{i} = {literal(v)}\n" for i, v in enumerate(values))
    assert ruff_format(source, 100) == source
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 - the literals the printer wrote, read back
    assert [namespace[f"x{i}"] for i in range(len(values))] == values
    assert number(float("nan")) == 'float("nan")' and number(-float("inf")) == '-float("inf")'
    assert literal({"k": [1, (2, 3)]}) == Seq("{", [Pair('"k"', Seq("[", ["1", Seq("(", ["2", "3"], ")")], "]"))], "}")


def test_a_module_is_laid_out_as_ruff_wants():
    source = module('"""Doc."""', ["import keras", "from keras import layers"], ["x = 1", "def f():\n    return x"])
    assert ruff_format(source, 100) == source
