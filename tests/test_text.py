"""core.text: the one way messages, shapes and plain JSON values are written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from builder_app.core.text import format_shape, json_plain, one_line


@pytest.mark.parametrize(
    ("shape", "text"),
    [
        ((), "()"),  # rank 0: a scalar
        ((None,), "(None,)"),  # rank 1 prints as a Python tuple, as Keras does
        ([5], "(5,)"),
        ((None, 28, 28, 1), "(None, 28, 28, 1)"),
        ([None, None, 3], "(None, None, 3)"),  # unknown dimensions
        ((np.int64(2), 3), "(2, 3)"),
    ],
)
def test_format_shape_writes_a_python_tuple(shape, text):
    assert format_shape(shape) == text


def test_format_shape_matches_keras():
    import keras

    for shape in [(None,), (None, 8), (None, 28, 28, 1)]:
        assert format_shape(shape) == str(keras.KerasTensor(shape).shape)


def test_one_line_joins_lines_and_cuts_long_text():
    assert one_line("bad\n  value\tfor\r\nunits ") == "bad value for units"
    assert one_line("x" * 10, limit=10) == "x" * 10
    cut = one_line("y" * 11, limit=10)
    assert cut == "yyyyyyy..." and len(cut) == 10
    assert len(one_line("z " * 500)) == 300  # the default limit


def test_one_line_names_an_exception_without_a_message():
    assert one_line(ValueError("line one\nline two")) == "line one line two"
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert one_line("") == ""  # a message is not an exception


def test_json_plain_gives_what_a_json_file_holds():
    value = {
        "kernel_size": (3, 3),
        1: [np.float32(0.5), np.int64(7), np.bool_(True)],
        "nested": {"array": np.arange(3), "one": np.array([4]), "scalar": np.array(2.5)},
        "none": None,
    }
    plain = json_plain(value)
    assert plain == {
        "kernel_size": [3, 3],
        "1": [0.5, 7, True],
        "nested": {"array": [0, 1, 2], "one": [4], "scalar": 2.5},
        "none": None,
    }
    assert json.loads(json.dumps(plain)) == plain
    assert type(plain["1"][1]) is int and type(plain["1"][2]) is bool


def test_json_plain_keeps_or_replaces_other_objects():
    marker = object()
    assert json_plain({"a": (marker,)}) == {"a": [marker]}
    assert json_plain({"a": (marker,)}, other=repr) == {"a": [repr(marker)]}
