"""Opening ResNet50's ``.keras`` file in the editor window, with Keras already loaded.

Targets (issue 11, item 8), measured in one run against Keras's own loading of the file:

* a readable overview of the imported model is painted within 2 s of asking for it
  (``window.import_path``: File -> Import and ``builder-app MODEL.keras`` go there);
* no gap between painted frames longer than 100 ms while it opens, from the request
  until its shapes, parameter counts and checks are done.

Frames are counted with an application event filter on Paint events of the window's
widgets, while a 16 ms timer asks the canvas to repaint (what panning or an animation
would do): a gap between two painted frames is a time the event loop was not running.
"Readable" is the canvas painted with the imported model at a zoom where node text is
drawn (at least 0.6, ``GraphView.show_start``'s smallest). The baseline is
``keras.saving.load_model`` of the same file, timed after one warm-up of each.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

NAME = "open"
#: The zoom from which the canvas draws node text (GraphView.show_start's ``smallest``).
READABLE = 0.6


def _progress(message: str) -> None:
    print(f"  open: {message}", file=sys.stderr, flush=True)


def _frames(window, path: Path, settle_s: float = 1.5) -> dict[str, float]:
    """Opens ``path`` in ``window`` and times the painted frames until it has settled."""
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance()
    painted: list[float] = []
    cpu: dict[float, float] = {}  # the process's CPU time at each painted frame
    readable: list[float] = []
    old = window.document

    class Frames(QtCore.QObject):
        def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
            if event.type() == QtCore.QEvent.Type.Paint and isinstance(watched, QtWidgets.QWidget):
                if watched.window() is window:
                    now = time.perf_counter()
                    painted.append(now)
                    cpu[now] = time.process_time()
                    view = window.current_view()
                    if (
                        not readable
                        and window.document is not old
                        and view is not None
                        and watched is view.viewport()
                        and view.zoom() >= READABLE
                    ):
                        readable.append(now)
            return False

    frames = Frames()
    app.installEventFilter(frames)
    ticker = QtCore.QTimer(interval=16)

    def tick() -> None:
        view = window.current_view()
        if view is not None:
            view.viewport().update()

    ticker.timeout.connect(tick)
    ticker.start()
    loop = QtCore.QEventLoop()
    marks: dict[str, float] = {}

    def check() -> None:
        # The event loop runs as in the app (no polling loop waking the GUI thread).
        now = time.perf_counter()
        if "imported" not in marks and not window.is_importing():
            marks["imported"] = now
        document = window.document
        if "settled" not in marks and "imported" in marks and document is not old:
            if document.engine is not None and not document.is_computing:
                marks["settled"] = now
        if now - marks.get("settled", now) > settle_s or now - start > 120:
            loop.quit()

    checker = QtCore.QTimer(interval=20)
    checker.timeout.connect(check)
    start = time.perf_counter()
    window.import_path(path)
    checker.start()
    loop.exec()
    checker.stop()
    end = time.perf_counter()
    ticker.stop()
    app.removeEventFilter(frames)
    seen = [start] + [t for t in painted if start <= t <= end] + [end]
    imported_at = marks.get("imported", end)
    settled_at = marks.get("settled")
    gaps = [(b - a, b) for a, b in pairwise(seen)]
    # The CPU time this process had during its longest gap between frames: far below the
    # gap's length, the process was waiting for a core (other work on the machine), not
    # running a worker that kept the GUI thread from the interpreter.
    pairs = [(a, b) for a, b in pairwise(painted) if start <= a and b <= end]
    longest = max(pairs, key=lambda p: p[1] - p[0], default=None)
    gap_cpu = cpu[longest[1]] - cpu[longest[0]] if longest else float("nan")
    return {
        "readable": (readable[0] - start) if readable else float("nan"),
        "imported": imported_at - start,
        "gap": max(g for g, _ in gaps),
        "gap_cpu": gap_cpu,
        "gap_importing": max(g for g, b in gaps if b <= imported_at),
        "gap_after": max((g for g, b in gaps if b > imported_at), default=0.0),
        "frames": len(seen) - 2,
        "settled": (settled_at or end) - start,
    }


def run() -> list[tuple[str, str]]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from builder_app.importers.keras_file import import_model
    from builder_app.ui.editor.document import KerasLoader
    from builder_app.ui.editor.window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    loader = KerasLoader()
    loader.start()
    while not loader.is_ready:  # Keras already loaded, as the target says
        if loader.error:
            raise RuntimeError(loader.error)
        app.processEvents()
        time.sleep(0.01)
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.keras"
        _progress("saving ResNet50(weights=None)")
        keras.applications.ResNet50(weights=None).save(path)
        gc.collect()
        _progress("warming up (keras load_model, import_model)")
        keras.saving.load_model(path)
        import_model(path)
        t0 = time.perf_counter()
        keras.saving.load_model(path)
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        import_model(path)
        importing = time.perf_counter() - t0
        # The warm-up's models are garbage the app opening a file would not have: a full
        # collection scanning and freeing them on the window's collector timer stalled
        # the open for 0.2-0.36 s (the app's own start freezes Keras's objects and has no others).
        gc.collect()
        window = MainWindow(loader=loader)
        window.ask_unsaved = lambda: QtWidgets.QMessageBox.StandardButton.Discard
        window.resize(1400, 900)
        window.show()
        app.processEvents()
        _progress("opening it in the window")
        measured = _frames(window, path)
        window.close()
    return [
        ("keras.saving.load_model(ResNet50)", f"{baseline:.2f} s"),
        ("import_model(ResNet50) alone", f"{importing:.2f} s ({importing / baseline:.2f}x load_model)"),
        (
            "readable overview painted",
            f"{measured['readable']:.2f} s ({measured['readable'] / baseline:.2f}x load_model; target 2 s)",
        ),
        (
            "longest gap between painted frames",
            f"{measured['gap'] * 1000:.0f} ms (target 100 ms; the process's CPU time in it: "
            f"{measured['gap_cpu'] * 1000:.0f} ms, load average {os.getloadavg()[0]:.1f})",
        ),
        ("  while the worker imports", f"{measured['gap_importing'] * 1000:.0f} ms (done at {measured['imported']:.2f} s)"),
        ("  after: window takes the model, shapes", f"{measured['gap_after'] * 1000:.0f} ms"),
        ("frames painted while opening", f"{measured['frames']} in {measured['settled']:.2f} s"),
    ]


if __name__ == "__main__":
    for measure, value in run():
        print(f"{measure:<40} {value}")
