"""Parameter values without Qt: what typed text means, which values are equal, Keras objects."""

from __future__ import annotations

import subprocess
import sys

import pytest

from builder_app.core import catalog
from builder_app.core.graph import MISSING
from builder_app.core.values import (
    INT_RANGE,
    InvalidValue,
    dtype_policy,
    float32,
    format_float,
    format_int_list,
    in_int_range,
    int_leaves,
    is_int,
    keras_object,
    object_class,
    parse_float,
    parse_int_list,
    parse_json,
    same,
    short_text,
)


def refusal(call, *args, **kwargs) -> InvalidValue:
    with pytest.raises(InvalidValue) as info:
        call(*args, **kwargs)
    return info.value


# ----------------------------------------------------------------------- floats


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.25", 0.25), (" 1e-5 ", 1e-5), ("-3", -3.0), ("2.", 2.0), (".5", 0.5)],
)
def test_a_float_is_any_finite_number(text, value):
    parsed = parse_float(text)
    assert parsed == value and isinstance(parsed, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "'abc' is not a number"),
        (" 1,5 ", "'1,5' is not a number"),
        ("inf", "the value must be a finite number"),
        ("nan", "the value must be a finite number"),
        ("", "enter a number"),
        ("   ", "enter a number"),
        ("None", "'None' is not a number"),
    ],
)
def test_a_float_refuses_what_is_not_a_finite_number(text, message):
    assert str(refusal(parse_float, text)) == message


@pytest.mark.parametrize("text", ["", "  ", "None", "none", "null", " NULL "])
def test_a_float_that_accepts_none_reads_empty_text_as_none(text):
    assert parse_float(text, nullable=True) is None


def test_a_float_that_accepts_none_still_refuses_words():
    assert str(refusal(parse_float, "nil", nullable=True)) == "'nil' is not a number"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (1e-05, "1e-05"),
        (float32(0.02), "0.02"),  # Keras keeps some factors as float32
        (float32(0.1), "0.1"),
        (3, "3"),
        (True, "true"),
        (None, "null"),
        (0.123456789012, "0.123456789012"),  # not a float32: written in full
    ],
)
def test_a_number_shows_as_the_user_would_type_it(value, text):
    assert format_float(value) == text


def test_float32_rounds_to_single_precision():
    assert float32(0.1) != 0.1 and float32(float32(0.1)) == float32(0.1)
    assert float32(0.5) == 0.5


# ------------------------------------------------------------------- int lists


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("None, 28, 28, 1", [None, 28, 28, 1]),
        ("(None, 8)", [None, 8]),
        ("[None]", [None]),
        ("null, 3", [None, 3]),
        ("4", [4]),
        ("2, 3,", [2, 3]),  # a trailing comma while typing
    ],
)
def test_a_shape_is_integers_or_none_separated_by_commas(text, value):
    assert parse_int_list(text, none_items=True, nullable=False, single_int=False) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("-1", -1), (" 2 ", 2), ("-1,", [-1]), ("(3)", 3), ("1, 2", [1, 2])],
)
def test_axes_that_were_one_int_stay_one_int_until_a_comma(text, value):
    assert parse_int_list(text, none_items=False, nullable=False, single_int=True) == value


def test_axes_that_were_a_list_stay_a_list():
    assert parse_int_list("-1", none_items=False, nullable=False, single_int=False) == [-1]


@pytest.mark.parametrize(
    ("text", "none_items", "message"),
    [
        ("None, 2", False, "'None' is not an integer; enter integers"),
        ("1, x", False, "'x' is not an integer; enter integers"),
        ("1.5", False, "'1.5' is not an integer; enter integers"),
        ("None, x", True, "'x' is not an integer; enter integers or None"),
        ("1,, 2", True, "'' is not an integer; enter integers or None"),
        ("", True, "enter integers separated by commas"),
        ("()", False, "enter integers separated by commas"),
    ],
)
def test_an_int_list_refuses_what_is_not_an_integer(text, none_items, message):
    error = refusal(parse_int_list, text, none_items=none_items, nullable=False, single_int=False)
    assert str(error) == message and not error.keep


@pytest.mark.parametrize("text", ["", "  ", "[]", "( )"])
def test_an_int_list_that_accepts_none_reads_empty_text_as_none(text):
    assert parse_int_list(text, none_items=True, nullable=True, single_int=False) is None


@pytest.mark.parametrize("value", [[None, 28, 28, 1], [1, 2], -1, None])
def test_an_int_list_reads_back_as_it_shows(value):
    text = format_int_list(value)
    single = isinstance(value, int)
    assert parse_int_list(text, none_items=True, nullable=True, single_int=single) == value


def test_an_int_list_shows_without_brackets():
    assert format_int_list([None, 28, 28, 1]) == "None, 28, 28, 1"
    assert format_int_list(-1) == "-1" and format_int_list(None) == ""


# ------------------------------------------------------------- ints and ranges


def test_a_bool_is_not_an_int():
    assert is_int(3) and is_int(-1) and not is_int(True) and not is_int(3.0)


def test_an_int_editor_holds_a_c_int_but_its_lowest_value():
    low, high = INT_RANGE
    assert (low, high) == (-(2**31) + 1, 2**31 - 1)
    assert in_int_range(low) and in_int_range(high) and in_int_range(0)
    assert not in_int_range(high + 1) and not in_int_range(low - 1)


@pytest.mark.parametrize(
    ("value", "leaves"),
    [
        ([3, 3], True),
        ([[1, 1], [2, 2]], True),
        ([1, [2, 3]], True),
        ([], False),
        ([1.0], False),
        ([True, 1], False),
        ([None, 2], False),
        ([[[1]]], False),  # nested deeper than pairs
        (3, False),
        (None, False),
    ],
)
def test_int_leaves_are_ints_or_pairs_of_ints(value, leaves):
    assert int_leaves(value) is leaves


# ------------------------------------------------------------------- JSON, same


def test_json_text_parses_to_any_value():
    assert parse_json('{"a": [1, null]}') == {"a": [1, None]}
    assert parse_json("2.5") == 2.5 and parse_json('"x"') == "x"


@pytest.mark.parametrize("text", ["{", "", "[1,]", "None"])
def test_invalid_json_is_refused_with_the_parser_s_reason(text):
    assert str(refusal(parse_json, text)).startswith("not valid JSON: ")


def test_values_are_the_same_when_equal_as_json():
    assert same({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1})
    assert same([1, 2], (1, 2))
    assert not same(1, 1.0) and not same(True, 1) and not same(None, 0)
    assert not same("1", 1)


def test_missing_is_only_the_same_as_itself():
    assert same(MISSING, MISSING)
    assert not same(MISSING, None) and not same(None, MISSING)


def test_values_json_cannot_write_are_compared_as_python_values():
    marker = object()
    assert same({marker}, {marker}) and not same({marker}, {object()})


def test_short_text_cuts_long_values_with_an_ellipsis():
    assert short_text("glorot_uniform") == "glorot_uniform"
    assert short_text({"a": 1}) == '{"a": 1}' and short_text(None) == "null"
    long = short_text("x" * 100)
    assert len(long) == 60 and long.endswith("…")
    assert short_text("x" * 60) == "x" * 60
    assert short_text([1, 2, 3], limit=5) == "[1, …"


# -------------------------------------------------------------- Keras objects


def l2_config(module: str | None = "keras.regularizers", **extra) -> dict:
    config = {"class_name": "L2", "config": {"l2": 0.01}, "registered_name": None}
    if module is not None:
        config["module"] = module
    return {**config, **extra}


def test_a_serialized_object_names_its_class():
    assert object_class(catalog.REGULARIZER, l2_config()) == "L2"
    assert object_class(catalog.REGULARIZER, l2_config(module=None)) == "L2"
    assert object_class(catalog.REGULARIZER, l2_config(registered_name="L2")) == "L2"


@pytest.mark.parametrize(
    "value",
    [
        "l2",  # a name string: kept as loaded
        None,
        l2_config(module="keras.initializers"),  # another kind's module
        l2_config(module="my_package"),
        l2_config(registered_name="Custom>L2"),  # a registered custom class
    ],
)
def test_other_forms_name_no_class(value):
    assert object_class(catalog.REGULARIZER, value) is None


def test_keras_objects_are_serialized_by_keras():
    import keras

    expected = keras.saving.serialize_keras_object(keras.regularizers.L2(0.01))
    assert keras_object(catalog.REGULARIZER, "L2", {"l2": 0.01}) == expected
    initializer = keras_object(catalog.INITIALIZER, "RandomNormal", {"stddev": 0.5, "seed": 3})
    assert initializer["class_name"] == "RandomNormal"
    assert initializer["config"]["stddev"] == 0.5 and initializer["config"]["seed"] == 3
    assert keras_object(catalog.CONSTRAINT, "NonNeg", {})["class_name"] == "NonNeg"


def test_arguments_keras_refuses_are_the_user_s_message():
    error = refusal(keras_object, catalog.REGULARIZER, "L2", {"bogus": 1})
    assert str(error).startswith("L2: ") and "bogus" in str(error)


def test_a_dtype_is_written_as_the_policy_keras_serializes():
    import keras

    expected = keras.saving.serialize_keras_object(keras.dtype_policies.DTypePolicy("float16"))
    assert dtype_policy("float16") == expected
    assert str(refusal(dtype_policy, "float7")).startswith("dtype float7: ")


def test_the_module_loads_neither_qt_nor_keras():
    code = (
        "import sys, builder_app.core.values\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'PySide6', 'keras', 'tensorflow'})\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
