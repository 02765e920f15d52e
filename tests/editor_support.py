"""What the editor window's tests share: Keras loaded once, an isolated user profile, a window.

Its fixtures reach every test module (``tests/conftest.py`` loads this module as a plugin):
``loader``, and ``isolated`` for modules that mark themselves
``pytestmark = pytest.mark.usefixtures("isolated")``. Open windows with :func:`open_window`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtCore, QtWidgets

from builder_app.core.project import Project
from builder_app.ui import collector
from builder_app.ui.editor.document import KerasLoader
from builder_app.ui.editor.window import MainWindow

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread():
    """Garbage of a test is collected here, on the GUI thread, not on a later test's worker thread."""
    yield
    app = QtWidgets.QApplication.instance()
    if app is not None:
        collector.install(app).check()


@pytest.fixture(scope="module")
def loader():
    """Keras, loaded once for the module (synchronously: the window finds it ready)."""
    ready = KerasLoader()
    ready._load()
    assert ready.is_ready, ready.error
    return ready


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Recovery files and settings of this test only."""
    monkeypatch.setenv("BUILDER_APP_RECOVERY_DIR", str(tmp_path / "recovery"))
    monkeypatch.setenv("BUILDER_APP_CACHE_DIR", str(tmp_path / "cache"))  # the catalog's cache
    QtCore.QSettings.setPath(QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Scope.UserScope, str(tmp_path / "settings"))


def open_window(qtbot, loader, project: Project | None = None, *, settled: bool = True) -> MainWindow:
    """A shown editor window over ``project`` whose shapes are computed."""
    window = MainWindow(project, loader=loader)
    # Closing at teardown must not wait on a modal "save changes?" box.
    window.ask_unsaved = lambda: QtWidgets.QMessageBox.StandardButton.Discard
    # Grouping takes the proposed sub-model name instead of asking in a modal dialog.
    window.ask_submodel_name = lambda graph, ids, default: default
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.document.engine is not None, timeout=10_000)
    if settled:
        settle(qtbot, window)
    return window


def settle(qtbot, window: MainWindow) -> None:
    """Lets the document compute shapes and parameter counts, and the panels catch up."""
    window.document.update_shapes()
    window.document._update_builds()
    qtbot.wait(20)
