"""A fresh editor's Layers palette: listed and searchable before TensorFlow is imported.

Target (issue 14, item 1): in a fresh process the palette is populated and its search
finds ``Conv2D`` within 1 s of start, measured against ``python -c "import tensorflow"``
in the same run (fresh subprocesses both, wall time from spawn until the answer).

The editor is started as ``builder-app`` starts it (``run_app``: the real Keras loader,
which imports TensorFlow on its thread after the first paint), with a user cache,
settings and recovery folder of its own; the catalog comes from the copy shipped for
the pinned Keras. A timer queued before the event loop runs checks the palette on the
loop's first turn, types ``Conv2D`` into its search box and reports, then the child
exits at once (TensorFlow still loading).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "start"

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import os, sys, time
start = time.perf_counter()
from PySide6 import QtCore, QtWidgets
app = QtWidgets.QApplication(["builder-app"])
qt_s = time.perf_counter() - start
import builder_app.ui.editor.window
import_s = time.perf_counter() - start - qt_s
from builder_app.core import catalog
t = time.perf_counter()
catalog.load_cached()  # what the palette does first (here, so that it can be timed)
catalog_s = time.perf_counter() - t

def probe():
    from builder_app.ui.editor.window import MainWindow
    window = next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))
    palette = window.palette
    populated = palette.is_populated()
    palette.search_box.setText("Conv2D")
    hit = palette.payload_of(palette.first_hit())
    modules = [m for m in ("tensorflow", "keras") if m in sys.modules and getattr(sys.modules[m], "__spec__", None) is not None and not getattr(sys.modules[m].__spec__, "_initializing", False)]
    print(f"READY populated={populated} hit={hit} qt={qt_s:.3f} import={import_s:.3f} catalog={catalog_s:.3f} "
          f"source={catalog.source()} imported={','.join(modules) or '-'}", flush=True)
    os._exit(0)

QtCore.QTimer.singleShot(0, probe)
from builder_app.ui.editor.window import run_app
run_app(None)
"""


def _env(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "BUILDER_APP_CACHE_DIR": str(folder / "cache"),
        "BUILDER_APP_RECOVERY_DIR": str(folder / "recovery"),
        "XDG_CONFIG_HOME": str(folder / "config"),
    }


def _editor_start(folder: Path) -> tuple[float, str]:
    """Seconds from spawn until the palette answered a search, and what it said."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], cwd=ROOT, env=_env(folder),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = ""
    for line in child.stdout:  # noqa: B007 - the READY line ends the loop
        if line.startswith("READY"):
            break
    elapsed = time.perf_counter() - start
    child.wait(timeout=120)
    return elapsed, line.strip()


def _import_tensorflow() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, env=_env(Path(tempfile.gettempdir())),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(repeats: int = 2) -> list[tuple[str, str]]:
    """Runs the benchmark; returns (measure, value) rows."""
    with tempfile.TemporaryDirectory() as tmp:
        starts = []
        said = ""
        for i in range(repeats):
            elapsed, said = _editor_start(Path(tmp) / str(i))
            if "populated=True hit=Conv2D" not in said:
                raise RuntimeError(f"the palette did not answer: {said!r}")
            starts.append(elapsed)
    tensorflow_s = _import_tensorflow()
    palette_s = min(starts)
    parts = dict(part.split("=", 1) for part in said.split()[1:])
    return [
        ("palette searchable, fresh process (s)", f"{palette_s:.2f} (of {', '.join(f'{s:.2f}' for s in starts)})"),
        ("python -c 'import tensorflow' (s)", f"{tensorflow_s:.2f}"),
        ("palette / import tensorflow", f"{palette_s / tensorflow_s:.3f}"),
        ("palette within 1 s of start", "yes" if palette_s <= 1.0 else "no"),
        ("of it: QApplication (s)", parts.get("qt", "?")),
        ("of it: importing the editor's modules (s)", parts.get("import", "?")),
        (f"of it: reading the catalog, {parts.get('source', '?')} (s)", parts.get("catalog", "?")),
        ("TensorFlow imported when it answered", said.rpartition("imported=")[2] or "-"),
    ]


if __name__ == "__main__":
    for measure, value in run():
        print(f"{measure:<40} {value}")
