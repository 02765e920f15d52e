"""How soon the command line answers a mistake, against importing TensorFlow (issue 14, item 2).

Target: ``builder-app validate missing.kproj`` (a fresh process, to its one-line
answer) takes at most 1/5 of ``python -c "import tensorflow"``, both timed in
this run. A few more answers that need no TensorFlow are timed beside it: a
corrupt project (the project file's reader loads, Keras does not), ``export``
without an output flag, a mistyped sub-command and ``--version``.

Each command runs ``REPEATS`` times, interleaved with the baseline's runs so that a
change in the machine's load reaches both; the best time of each is kept (the
command's own cost, less the machine's noise).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "cli"
#: Runs of each command (the TensorFlow import takes about 10 s each on the 2-core machine).
REPEATS = 3
TARGET = 0.2
EXAMPLE = Path(__file__).resolve().parent.parent / "resources" / "examples" / "iris_mlp.kproj"


def _timed(argv: list[str], cwd: Path, expect: int) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != expect:
        raise RuntimeError(f"{argv}: exit {done.returncode}, expected {expect}: {done.stderr[-500:]}")
    return seconds


def run() -> list[tuple[str, str]]:
    """Runs the benchmark; returns (measure, value) rows."""
    entry = shutil.which("builder-app")
    command = [entry] if entry else [sys.executable, "-m", "builder_app"]
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        (cwd / "corrupt.kproj").write_bytes(b"PK\x03\x04truncated")
        cases = {
            "validate missing.kproj": (["validate", "missing.kproj"], 2),
            "validate corrupt.kproj": (["validate", "corrupt.kproj"], 2),
            "export PROJECT (no output flag)": (["export", str(EXAMPLE)], 2),
            "exprt x.kproj (a typo)": (["exprt", "x.kproj"], 2),
            "--version": (["--version"], 0),
        }
        baseline: list[float] = []
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(REPEATS):
            baseline.append(_timed([sys.executable, "-c", "import tensorflow"], cwd, 0))
            for name, (args, expect) in cases.items():
                times[name].append(_timed([*command, *args], cwd, expect))
    tensorflow_s = min(baseline)
    missing_s = min(times["validate missing.kproj"])
    ratio = missing_s / tensorflow_s
    rows = [
        ("command", " ".join(Path(command[0]).name if i == 0 else a for i, a in enumerate(command))),
        ('python -c "import tensorflow" (baseline)', f"{tensorflow_s:.2f} s (best of {REPEATS})"),
    ]
    for name, values in times.items():
        rows.append((name, f"{min(values):.2f} s = {min(values) / tensorflow_s:.3f} x the TensorFlow import"))
    verdict = "meets" if ratio <= TARGET else "misses"
    rows.append(("validate missing.kproj / import tensorflow", f"{ratio:.3f} ({verdict} the target <= {TARGET})"))
    return rows
