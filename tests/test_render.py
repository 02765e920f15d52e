"""Headless shapes at any size: `builder-app render`, the window's diagram export, the document.

Models of ``BACKGROUND_NODES`` nodes or more get their first shape pass on a worker
thread in the window; every headless path computes them synchronously instead, and no
worker thread outlives the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from builder_app.core.project import save_project
from builder_app.ui.editor import document as document_module
from builder_app.ui.editor.document import BACKGROUND_NODES, Document

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "resources" / "examples"
CHAIN = 250
PNG = b"\x89PNG\r\n\x1a\n"


def relu_chain(length: int = CHAIN):
    """An imported functional model: an input and ``length - 1`` ReLU layers in a chain."""
    import keras

    inputs = keras.Input(shape=(8,), name="x")
    x = inputs
    for _ in range(length - 1):
        x = keras.layers.ReLU()(x)
    model = keras.Model(inputs, x, name="chain")
    return model


def chain_project(tmp_path: Path, length: int = CHAIN) -> Path:
    from builder_app.importers.keras_file import import_model

    source = tmp_path / "chain.json"
    source.write_text(relu_chain(length).to_json())
    project = import_model(source).project
    assert len(project.graph) == length >= BACKGROUND_NODES
    target = tmp_path / "chain.kproj"
    save_project(project, target)
    return target


def shape_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "shapes" and t.is_alive()]


def test_render_command_draws_a_model_too_big_for_the_quick_path(tmp_path):
    """250 nodes: the worker-thread size. Exit 0 and a PNG (a crash is a negative exit code)."""
    project = chain_project(tmp_path)
    target = tmp_path / "chain.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "builder_app", "render", str(project), "--png", str(target)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert "internal error" not in done.stderr
    assert target.read_bytes().startswith(PNG)
    assert done.stdout.startswith(f"{target}: ")


def test_render_project_computes_shapes_here_and_leaves_no_thread(qapp, tmp_path):
    from builder_app.core.project import load_project
    from builder_app.ui.render import render_project

    project = load_project(chain_project(tmp_path))
    svg = tmp_path / "chain.svg"
    render_project(project, svg)
    assert svg.read_text().count("(None, 8)") >= CHAIN  # every node's shape: computed before painting
    assert shape_threads() == []


def test_attach_engine_without_background_is_done_on_return(qtbot, monkeypatch):
    from builder_app.core.project import load_project

    monkeypatch.setattr(document_module, "BACKGROUND_NODES", 0)  # every model counts as big
    document = Document(load_project(EXAMPLES / "iris_mlp.kproj"))
    seen = []
    document.shapes_updated.connect(seen.append)
    document.attach_engine(background=False)
    assert document.engine is not None and not document.is_computing
    assert all(result.output_shapes for result in document.engine.results().values())
    assert document.engine.total_params() > 0
    assert seen  # the views heard about the results
    assert shape_threads() == []
    document.close()


def test_a_pass_already_on_the_worker_thread_is_waited_for_and_adopted_once(qtbot, monkeypatch):
    from builder_app.core.project import load_project

    monkeypatch.setattr(document_module, "BACKGROUND_NODES", 0)
    document = Document(load_project(EXAMPLES / "unet_groupnorm.kproj"))
    computing = []
    document.computing.connect(computing.append)
    document.attach_engine()
    assert document.is_computing and document.engine is None
    document.attach_engine(background=False)  # a headless caller: the shapes, now
    assert document.engine is not None and not document.is_computing
    assert document.engine.graph is document.graph
    assert shape_threads() == []
    engine = document.engine
    qtbot.wait(50)  # the worker's queued hand-over arrives: it must not replace or close the engine
    assert document.engine is engine and computing == [True, False]
    assert all(result.output_shapes for result in engine.results().values())
    document.close()


def test_a_command_exiting_mid_pass_waits_for_the_worker_thread(qtbot, monkeypatch):
    """A document closed while its pass runs: the process still exits cleanly (it aborted)."""
    from builder_app.core.project import load_project

    monkeypatch.setattr(document_module, "BACKGROUND_NODES", 0)
    document = Document(load_project(EXAMPLES / "unet_groupnorm.kproj"))
    document.attach_engine()
    assert document.is_computing
    document.close()
    # Interpreter exit joins it: TensorFlow is never torn down under a running pass.
    assert all(not thread.daemon for thread in shape_threads())
    qtbot.waitUntil(lambda: shape_threads() == [], timeout=60_000)
    qtbot.wait(20)  # its hand-over to the closed document is dropped
    assert document.engine is None and not document.is_computing
    script = textwrap.dedent(
        f"""
        from PySide6 import QtWidgets
        app = QtWidgets.QApplication([])
        from builder_app.core.quiet import import_keras_quietly
        import_keras_quietly()
        from builder_app.core.project import load_project
        from builder_app.ui.editor import document
        document.BACKGROUND_NODES = 0
        for _ in range(3):
            doc = document.Document(load_project({str(EXAMPLES / "unet_groupnorm.kproj")!r}))
            doc.attach_engine()
            doc.close()
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])


def test_window_exports_the_diagram_of_a_big_model_with_its_shapes(qtbot, loader, tmp_path, monkeypatch):
    from builder_app.core.project import load_project
    from tests.editor_support import open_window

    monkeypatch.setenv("BUILDER_APP_RECOVERY_DIR", str(tmp_path / "recovery"))
    window = open_window(qtbot, loader, settled=False)
    monkeypatch.setattr(document_module, "BACKGROUND_NODES", 0)
    window.set_document(Document(load_project(chain_project(tmp_path))))
    window.document.attach_engine()  # the window's own path: the worker thread
    assert window.document.is_computing
    svg = tmp_path / "diagram.svg"
    assert window.export_to("svg", svg)
    assert svg.read_text().count("(None, 8)") >= CHAIN  # waited for the shapes
    assert shape_threads() == [] and not window.document.is_computing
    png = tmp_path / "diagram.png"
    assert window.export_to("png", png)
    assert png.read_bytes().startswith(PNG)


@pytest.mark.slow
def test_render_efficientnet_b7_headless(tmp_path):
    """About 800 nodes, imported from Keras, drawn by the render command in a fresh Python."""
    import keras

    from builder_app.importers.keras_file import import_model

    model = keras.applications.EfficientNetB7(weights=None)
    source = tmp_path / "b7.json"
    source.write_text(model.to_json())
    del model
    result = import_model(source)
    assert len(result.project.graph) > 800
    project = tmp_path / "b7.kproj"
    save_project(result.project, project)
    target = tmp_path / "b7.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "builder_app", "render", str(project), "--png", str(target)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert target.read_bytes().startswith(PNG)
