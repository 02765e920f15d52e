"""Reading Keras's docstrings: a class's one-line summary and its ``Args:`` entries.

The catalog describes every layer and parameter from the installed Keras's own
docstrings (Google style), so the palette and the inspector need no curated text.
"""

from __future__ import annotations

import inspect
import re

_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|a\.k\.a|et al|etc|vs)\.$")


def first_sentence(text: str) -> str:
    paragraph = " ".join(text.strip().split("\n\n")[0].split()).replace("`", "")
    sentence = paragraph
    for match in re.finditer(r"[.!?](?=\s|$)", paragraph):
        candidate = paragraph[: match.end()]
        if not _ABBREVIATIONS.search(candidate):
            sentence = candidate
            break
    sentence = re.sub(r"\.{2,}$", ".", sentence.strip())
    return sentence


def arg_docs(doc: str) -> dict[str, str]:
    """One line per argument from a Google-style ``Args:`` section."""
    lines = inspect.cleandoc(doc or "").splitlines()
    found: dict[str, list[str]] = {}
    section_indent = None
    entry_indent = None
    current = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if section_indent is None:
            if stripped in ("Args:", "Arguments:"):
                section_indent = indent
            continue
        if not stripped:
            continue
        if indent <= section_indent:
            break
        match = re.match(r"(\*{0,2}\w+)\s*(\([^)]*\))?:(\s+(.*))?$", stripped)
        # Tolerate an entry indented a space off (Keras has a few).
        if match and (entry_indent is None or abs(indent - entry_indent) <= 1):
            entry_indent = entry_indent if entry_indent is not None else indent
            current = match.group(1).lstrip("*")
            found[current] = [match.group(4) or ""]
        elif current is not None:
            found[current].append(stripped)
    return {name: summary(" ".join(parts)) for name, parts in found.items()}


def summary(text: str) -> str:
    """The first sentence; two when the first only names a type ("Boolean.")."""
    text = " ".join(text.split()).replace("`", "")
    first = first_sentence(text)
    if len(first.split()) < 6:
        rest = text[len(first):].strip()
        second = first_sentence(rest) if rest else ""
        return f"{first} {second}".strip()
    return first
