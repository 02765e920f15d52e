"""The test tiers (tests/conftest.py): markers registered, applied, and naming real tests."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GUI_MODULES, SLOW, TRAINING, tier_markers

TESTS = Path(__file__).resolve().parent


def functions_in(module: str) -> set[str]:
    tree = ast.parse((TESTS / module).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_the_tier_markers_are_registered(pytestconfig):
    registered = {line.split(":")[0].strip() for line in pytestconfig.getini("markers")}
    assert {"slow", "gui", "training"} <= registered
    assert pytestconfig.getoption("strict_markers")  # a misspelt marker is an error, not a new tier


def test_every_listed_test_exists():
    """A renamed or deleted test must leave the lists too, or its tier would be lost silently."""
    assert all((TESTS / module).is_file() for module in GUI_MODULES)
    for listing in (TRAINING, SLOW):
        for module, names in listing.items():
            assert (TESTS / module).is_file(), module
            missing = {name.split("[")[0] for name in names or ()} - functions_in(module)
            assert not missing, (module, missing)


@pytest.mark.slow
def test_every_listed_parametrization_is_collected():
    """A ``name[id]`` entry names a parametrization pytest collects (ids may come from data files)."""
    wanted = {(module, name) for module, names in SLOW.items() for name in names if "[" in name}
    modules = sorted({module for module, _ in wanted})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *(str(TESTS / m) for m in modules)],
        cwd=TESTS.parent, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = {(Path(line.split("::")[0]).name, line.split("::")[-1]) for line in done.stdout.splitlines() if "::" in line}
    assert wanted and wanted <= collected, wanted - collected


def test_markers_follow_fixtures_modules_and_lists():
    assert tier_markers("test_palette.py", "test_search_ranks_and_filters", ["qtbot", "entries"]) == {"gui"}
    assert tier_markers("test_shapes.py", "test_dense", ["tmp_path"]) == set()
    assert tier_markers("test_editor.py", "test_render_command_draws_the_canvas", ["tmp_path"]) == {"gui", "slow"}
    assert "training" in tier_markers("test_training.py", "test_pause_and_resume", [])
    assert "training" in tier_markers("test_training_window.py", "test_train_watch_and_keep_the_weights", ["qtbot"])
    assert "training" not in tier_markers("test_training_window.py", "test_settings_dialog_writes_what_training_settings_accepts", ["qtbot"])
    assert "slow" in tier_markers("test_import.py", "test_keras_file_round_trip[DenseNet121]", [])
    assert "slow" not in tier_markers("test_import.py", "test_keras_file_round_trip[conv_zoo]", [])
    assert "slow" in tier_markers("test_train_script.py", "test_digits_script_trains_and_saves[mirrored]", [])


def test_a_qt_test_is_marked_gui(qtbot, request):
    assert request.node.get_closest_marker("gui") is not None


def test_a_plain_test_is_not_marked(request):
    assert [m.name for m in request.node.iter_markers() if m.name in ("gui", "training", "slow")] == []


@pytest.mark.parametrize("case", [1, 2])
def test_parametrized_tests_are_marked_by_their_name(case, qapp, request):
    assert request.node.get_closest_marker("gui") is not None
