"""The docs cannot go stale silently: their images exist, and their command lines parse.

Reads docs/user-guide.md and docs/tutorial-siamese.md (and CHANGELOG.md's links):
every image they show is in docs/images/ and is made by docs/make_screenshots.py,
every relative link points at a file, and every ``builder-app ...`` line of their
shell blocks is accepted by the real argument parser (:func:`builder_app.cli._parser`).
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
from PySide6 import QtGui, QtWidgets

from builder_app import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDES = [DOCS / "user-guide.md", DOCS / "tutorial-siamese.md"]
#: Screenshots are scaled or cropped to stay below this.
MAX_IMAGE_BYTES = 400 * 1024

_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
_LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)\s#]+)(?:#[^)]*)?\)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def images_of(text: str) -> list[str]:
    return _IMAGE.findall(text)


def links_of(text: str) -> list[str]:
    return [target for target in _LINK.findall(text) if "://" not in target]


def command_lines(text: str) -> list[str]:
    """The ``builder-app`` lines of a Markdown text's shell blocks, comments cut off."""
    found = []
    for language, body in _FENCE.findall(text):
        if language not in ("bash", "sh", "shell", "console", ""):
            continue
        for line in body.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("builder-app"):
                found.append(line)
    return found


def argv_of(line: str) -> list[str]:
    """A command line's arguments as ``main`` hands them to the parser (``builder-app X`` opens X)."""
    argv = shlex.split(line, comments=True)[1:]
    commands = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    if not argv or (not argv[0].startswith("-") and argv[0] not in commands):
        argv = ["gui", *argv]
    return argv


def test_the_guides_exist_and_show_images():
    for guide in GUIDES:
        assert guide.is_file(), guide
        assert images_of(guide.read_text(encoding="utf-8")), f"{guide.name} shows no screenshot"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_image_exists_small_and_made_by_the_script(guide):
    script = (DOCS / "make_screenshots.py").read_text(encoding="utf-8")
    for target in images_of(guide.read_text(encoding="utf-8")):
        path = (guide.parent / target).resolve()
        assert path.is_file(), f"{guide.name} shows {target}, which does not exist"
        assert path.stat().st_size < MAX_IMAGE_BYTES, f"{target} is {path.stat().st_size // 1024} KB"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{target} is not a PNG"
        assert f'"{path.name}"' in script, f"{target} is not made by docs/make_screenshots.py"


def test_every_screenshot_is_used():
    shown = {(g.parent / t).resolve() for g in GUIDES for t in images_of(g.read_text(encoding="utf-8"))}
    unused = sorted(p.name for p in (DOCS / "images").glob("*.png") if p.resolve() not in shown)
    assert not unused, f"images no page shows: {unused}"


@pytest.mark.parametrize("page", [*GUIDES, ROOT / "CHANGELOG.md"], ids=lambda p: p.name)
def test_relative_links_point_at_files(page):
    for target in links_of(page.read_text(encoding="utf-8")):
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_command_line_parses(guide):
    lines = command_lines(guide.read_text(encoding="utf-8"))
    assert lines, f"{guide.name} shows no builder-app command"
    parser = cli._parser()
    for line in lines:
        try:
            parser.parse_args(argv_of(line))
        except SystemExit as exit_:  # --help and --version exit 0; a usage error exits 2
            assert exit_.code == 0, f"{guide.name}: `{line}` does not parse"


def test_a_wrong_command_line_is_caught():
    """The check above can fail: a misspelt option is refused by the same parser."""
    parser = cli._parser()
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv_of("builder-app export model.kproj --pyhton model.py"))
    assert exit_.value.code == 2
    assert command_lines("```bash\nbuilder-app validate a.kproj  # note\n```\n") == ["builder-app validate a.kproj  # note"]
    assert argv_of("builder-app a.kproj") == ["gui", "a.kproj"]


def test_the_changelog_keeps_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog")
    assert "## [Unreleased]" in text
    assert re.search(r"^## \[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}$", text, re.M)


_MENU_PATH = re.compile(r"\*([A-Z][^*]*?→[^*]*?)\*(?:\s*\(([^()]*)\))?")
_KEYS = re.compile(r"(?:(?:Ctrl|Shift|Alt|Meta)\+)*(?:F\d{1,2}|[A-Z0-9\[\]]|Return|Delete|Tab)")


def menu_paths(text: str) -> list[tuple[list[str], str | None]]:
    """``*File → Export → Python Code…* (Ctrl+E)`` references: the path, and the shortcut given (or None)."""
    found = []
    for path, after in _MENU_PATH.findall(" ".join(text.split())):
        keys = after.split(",")[0].strip() if after else ""
        found.append(([part.strip() for part in path.split("→")], keys if _KEYS.fullmatch(keys) else None))
    return found


def _plain(text: str) -> str:
    return text.replace("&", "").removesuffix("…").removesuffix("...").strip()


def test_menu_paths_are_read():
    text = "Use *File → Export →\nPython Code…* (Ctrl+E, or not) and *Edit → Undo* (see below), palette → *Core* → *Input*."
    assert menu_paths(text) == [(["File", "Export", "Python Code…"], "Ctrl+E"), (["Edit", "Undo"], None)]


@pytest.mark.usefixtures("isolated")
def test_every_menu_entry_named_exists(qtbot):
    """Each *Menu → Entry* of the docs is in the editor's menus, with the shortcut the docs give."""
    from builder_app.ui.editor.document import KerasLoader
    from builder_app.ui.editor.window import MainWindow

    window = MainWindow(None, loader=KerasLoader())  # menus only: Keras is never started here
    window.ask_unsaved = lambda: QtWidgets.QMessageBox.StandardButton.Discard
    qtbot.addWidget(window)
    checked = 0
    for guide in GUIDES:
        for path, keys in menu_paths(guide.read_text(encoding="utf-8")):
            actions = window.menuBar().actions()
            action = None
            for depth, name in enumerate(path):
                action = next((a for a in actions if _plain(a.text()) == _plain(name)), None)
                assert action is not None, f"{guide.name}: no '{name}' in {' → '.join(path[:depth]) or 'the menu bar'}"
                actions = action.menu().actions() if action.menu() is not None else []
            if keys is not None:
                bound = [s.toString(QtGui.QKeySequence.SequenceFormat.PortableText) for s in action.shortcuts()]
                assert keys in bound, f"{guide.name}: {' → '.join(path)} is {bound}, not {keys}"
            checked += 1
    assert checked >= 10
