"""Import and export of an EfficientNetB7-sized ``.keras`` file, against Keras doing the same.

Baselines are measured in the same run (the machines are noisy): results are
printed as ratios, with absolute seconds for context. Issue "Benchmark: import
time of an EfficientNetB7-sized .keras file vs keras.saving.load_model of the
same file in the same run; export times":

* import (``importers.keras_file.import_model``) vs
  ``keras.saving.load_model(path, safe_mode=True, compile=False)``, medians of a
  few alternating runs;
* export to Python code (no baseline), to ``.keras`` vs ``model.save`` and to a
  SavedModel vs ``model.export``;
* the project file: ``save_project`` and ``load_project`` next to ``load_model``.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAME = "import"


def _progress(message: str) -> None:
    print(f"  import: {message}", file=sys.stderr, flush=True)


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Seconds ``fn(*args, **kwargs)`` takes after a garbage collection, and its result."""
    gc.collect()
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.0f} MB"


def _ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}x ({'slower' if ours > baseline else 'faster'} than Keras)"


def run(repeats: int = 3, export_repeats: int = 1) -> list[tuple[str, str]]:
    """Runs the benchmark; returns (measure, value) rows."""
    import keras

    from builder_app.core import catalog
    from builder_app.core.keras_model import build_keras_model
    from builder_app.core.project import load_project, save_project
    from builder_app.exporters.python_code import python_source
    from builder_app.exporters.saved_model import export_keras, export_savedmodel
    from builder_app.importers.keras_file import import_model

    catalog.catalog()  # once per process (the editor does it while TensorFlow loads)

    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        tmp = Path(scratch)
        source = tmp / "model.keras"

        _progress("building EfficientNetB7")
        model = keras.applications.EfficientNetB7(weights=None)
        n_layers, n_params = len(model.layers), model.count_params()
        first_save_s, _ = _timed(model.save, source)
        del model
        gc.collect()
        _progress(f"saved {_mb(_size(source))} in {first_save_s:.1f} s")

        # ---- import vs load_model, alternating which goes first.
        import_times: list[float] = []
        load_times: list[float] = []
        result = loaded = None

        def do_import() -> None:
            nonlocal result
            result = None
            seconds, result = _timed(import_model, source)
            assert result.warnings == [], result.warnings
            import_times.append(seconds)
            _progress(f"import_model {seconds:.1f} s")

        def do_load() -> None:
            nonlocal loaded
            loaded = None
            seconds, loaded = _timed(keras.saving.load_model, source, safe_mode=True, compile=False)
            load_times.append(seconds)
            _progress(f"load_model {seconds:.1f} s")

        for i in range(repeats):
            for step in (do_import, do_load) if i % 2 == 0 else (do_load, do_import):
                step()
        import_s, load_s = statistics.median(import_times), statistics.median(load_times)
        project, graph = result.project, result.project.graph
        assert loaded.count_params() == n_params, "load_model disagrees with the saved model"

        # ---- exports: ours (graph -> Keras -> file) vs Keras saving the model it loaded.
        code_times: list[float] = []
        build_times: list[float] = []
        keras_times: list[float] = []
        save_times: list[float] = []
        sm_times: list[float] = []
        export_times: list[float] = []
        for i in range(export_repeats):
            seconds, code = _timed(python_source, graph)
            code_times.append(seconds)
            _progress(f"python_source {seconds:.1f} s ({len(code.splitlines())} lines)")

            seconds, built = _timed(build_keras_model, graph)
            build_times.append(seconds)
            assert built.count_params() == n_params, "the imported graph disagrees with Keras"
            del built
            _progress(f"build_keras_model {seconds:.1f} s")

            ours_path, theirs_path = tmp / f"ours{i}.keras", tmp / f"theirs{i}.keras"
            seconds, _ = _timed(export_keras, graph, ours_path)
            keras_times.append(seconds)
            _progress(f"export_keras {seconds:.1f} s")
            seconds, _ = _timed(loaded.save, theirs_path)
            save_times.append(seconds)
            _progress(f"model.save {seconds:.1f} s")
            keras_sizes = (_size(ours_path), _size(theirs_path))
            ours_path.unlink()
            theirs_path.unlink()

            ours_dir, theirs_dir = tmp / f"ours{i}_sm", tmp / f"theirs{i}_sm"
            seconds, _ = _timed(export_savedmodel, graph, ours_dir)
            sm_times.append(seconds)
            _progress(f"export_savedmodel {seconds:.1f} s")
            seconds, _ = _timed(
                loaded.export, str(theirs_dir), format="tf_saved_model", verbose=False
            )
            export_times.append(seconds)
            _progress(f"model.export {seconds:.1f} s")
            sm_sizes = (_size(ours_dir), _size(theirs_dir))

        # ---- project file round trip.
        project_path = tmp / "model.kproj"
        save_s, _ = _timed(save_project, project, project_path)
        _progress(f"save_project {save_s:.1f} s")
        load_project_s, reloaded = _timed(load_project, project_path)
        _progress(f"load_project {load_project_s:.1f} s")
        assert len(reloaded.graph.layers) == len(graph.layers)
        project_size = _size(project_path)

        def median(values: list[float]) -> float:
            return statistics.median(values)

        code_s, build_s = median(code_times), median(build_times)
        keras_s, save_model_s = median(keras_times), median(save_times)
        sm_s, export_s = median(sm_times), median(export_times)
        rows = [
            (
                "model",
                f"EfficientNetB7, {n_layers} layers, {n_params:,} params, {_mb(_size(source))} .keras",
            ),
            (
                "import .keras s",
                f"{import_s:.2f} s (median of {repeats}: {', '.join(f'{t:.2f}' for t in import_times)})",
            ),
            (
                "keras load_model s (baseline)",
                f"{load_s:.2f} s (median of {repeats}: {', '.join(f'{t:.2f}' for t in load_times)})",
            ),
            ("import / load_model", _ratio(import_s, load_s)),
            ("export python_source s", f"{code_s:.2f} s ({code_s / load_s:.2f}x load_model)"),
            ("build_keras_model s (part of both exports)", f"{build_s:.2f} s"),
            ("export_keras s", f"{keras_s:.2f} s ({_mb(keras_sizes[0])})"),
            ("keras model.save s (baseline)", f"{save_model_s:.2f} s ({_mb(keras_sizes[1])})"),
            ("export_keras / model.save", _ratio(keras_s, save_model_s)),
            ("export_savedmodel s", f"{sm_s:.2f} s ({_mb(sm_sizes[0])})"),
            ("keras model.export s (baseline)", f"{export_s:.2f} s ({_mb(sm_sizes[1])})"),
            ("export_savedmodel / model.export", _ratio(sm_s, export_s)),
            (
                "save_project s",
                f"{save_s:.2f} s ({_mb(project_size)}; {save_s / load_s:.2f}x load_model)",
            ),
            (
                "load_project s",
                f"{load_project_s:.2f} s ({load_project_s / load_s:.2f}x load_model)",
            ),
        ]
    return rows
