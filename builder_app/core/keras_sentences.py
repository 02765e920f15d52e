"""Keras's backticked argument messages, as sentences a user can act on.

Keras words its refusals for the programmer who typed the call::

    Received an invalid value for `units`, expected a positive integer. Received: units=-1

The app shows them beside a parameter the user set in a form, so they are said
as the rule and the value: ``'units' must be a positive integer, not -1``. Only
the shapes of message Keras uses again and again are rewritten; any other keeps
its words, its backticks turned into quotes. No Keras, no Qt here.
"""

from __future__ import annotations

import re

_NAME = r"`(?P<name>[A-Za-z_][\w.]*)`"
_VALUE = r"(?P<value>.+?)"
_END = r"(?: \(of type \w+\))?\.?$"
#: (pattern, replacement) in the order tried; each must match the whole message.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.S), replacement)
    for pattern, replacement in (
        # "Received an invalid value for (argument) `units`, expected a positive integer. Received: units=-1"
        (
            rf"Received an invalid value for (?:argument )?{_NAME}, expected (?P<rule>[^.]+?)"
            rf"(?:\. Received: (?P=name)=|, got ){_VALUE}{_END}",
            r"'\g<name>' must be \g<rule>, not \g<value>",
        ),
        # "Invalid value received for argument `rate`. Expected a float value between 0 and 1. Received: rate=2.0"
        (
            rf"Invalid value (?:received )?for (?:argument )?{_NAME}\. Expected (?P<rule>[^.]+?)\. "
            rf"Received:? (?P=name)={_VALUE}{_END}",
            r"'\g<name>' must be \g<rule>, not \g<value>",
        ),
        # "`input_dim` must be a positive integer. Received: input_dim=0 (of type int)."
        (
            rf"(?:The )?{_NAME}(?: argument)? (?P<rule>(?:must|should) [^.]+?)\.? Received:? (?P=name)={_VALUE}{_END}",
            r"'\g<name>' \g<rule>, not \g<value>",
        ),
    )
)


def as_sentence(text: str) -> str:
    """``text`` with Keras's backticked argument phrasing turned into a plain sentence."""
    if "`" not in text:
        return text
    text = re.sub(r", including values \{[^}]*\} that do not satisfy `[^`]*`", "", text)
    for pattern, replacement in _RULES:
        match = pattern.fullmatch(text.strip())
        if match is not None:
            return _quoted(match.expand(replacement))
    text = re.sub(r"\. Received:? (\w+)=(.+?)\.?$", r" (it is \1=\2)", text)
    return _quoted(text)


def _quoted(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"'\1'", text)
