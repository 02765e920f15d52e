"""``builder-app sweep``: a hyperparameter sweep from the command line (the logic; cli.py parses).

    builder-app sweep PROJECT --param LAYER.ARG=SPEC [--param ...] [--trials N] [--sampler grid|random|tpe]
                      [--parallel N] [--storage URL] [--epochs N] [--data SPEC] [--out results.csv] [--apply-best]

Prints one line per trial as it ends, then the best trial. The trials become
runs in the project's history and the project is saved (atomically) at the end;
``--apply-best`` also sets the best trial's values on the project. Exit 0 when
the study has a complete trial, 1 when no trial succeeded, 2 for bad arguments
or a bad project (:class:`~builder_app.training.sweep.SweepError`, one line). No Qt.
"""

from __future__ import annotations

import sys
from typing import Any

from builder_app.training import sweep as sweep_module
from builder_app.training.sweep import Sweep, SweepError, SweepSettings, TrialUpdate

EXIT_DONE, EXIT_NO_TRIAL, EXIT_BAD = 0, 1, 2


def prepare(project, args: Any) -> Sweep:
    """The sweep ``args`` describe, its names and values checked and its study open, without Keras.

    Raises:
        SweepError: One line naming the argument.
    """
    from builder_app.core import catalog

    catalog.load_cached()  # the shipped catalog: the parameters' kinds without importing Keras
    dims = sweep_module.search_space(project.graph, args.param)
    settings = SweepSettings(
        trials=args.trials,
        sampler=args.sampler or sweep_module.default_sampler(dims),
        parallel=args.parallel,
        storage=args.storage,
        epochs=args.epochs,
        data=args.data,
    )
    sweep = Sweep(project, dims, settings, on_update=_print_update)
    sweep.open_study()
    return sweep


def run(sweep: Sweep, args: Any, project_path) -> int:
    """Runs a sweep made by :func:`prepare`; returns the exit code.

    Keras (imported by now) first makes each layer with each searched value.

    Raises:
        SweepError: A value Keras refuses (the caller prints it and exits 2).
    """
    from builder_app.core import catalog

    catalog.prepare()
    project, dims, settings = sweep.project, sweep.dims, sweep.settings
    sweep_module.search_space(project.graph, args.param, construct=True)
    planned = sweep.remaining()
    print(
        f"sweep {sweep.study.study_name}: {planned} trial{'s' if planned != 1 else ''} "
        f"({settings.sampler}, {settings.parallel} at a time), study in {settings.storage}",
        flush=True,
    )
    from builder_app.training.interrupts import stop_on_ctrl_c

    with stop_on_ctrl_c(sweep.stop, "stopping the sweep... (Ctrl-C again to end at once)") as interrupted:
        rows = sweep.run()
    if args.out is not None:
        sweep_module.write_csv(args.out, dims, rows)
        print(f"wrote {args.out}")
    best = sweep.best()
    if best is not None:
        shown = ", ".join(f"{k}={v!r}" for k, v in best.params.items())
        print(f"best: trial {best.number}, {settings.monitor} {best.value:.6g} ({shown})")
        if args.apply_best:
            changed = sweep_module.apply_best(project, dims, best.params)
            print(f"applied {', '.join(changed)}")
    if sweep.run_ids or (args.apply_best and best is not None):
        from builder_app.core.project import save_project

        save_project(project, project_path)
        print(f"updated {project_path} ({len(sweep.run_ids)} runs added)")
    if interrupted:
        return 130
    if best is None:
        print(f"builder-app: {project_path}: no trial succeeded", file=sys.stderr)
        return EXIT_NO_TRIAL
    return EXIT_DONE


def _print_update(update: TrialUpdate) -> None:
    if update.kind != "ended":
        return
    shown = ", ".join(f"{k}={v!r}" for k, v in update.params.items())
    value = f" {update.value:.6g}" if update.value is not None else ""
    why = f" ({update.message})" if update.message else ""
    print(f"trial {update.number} {update.state.lower()}{value}: {shown}{why}", flush=True)


__all__ = ["EXIT_BAD", "EXIT_DONE", "EXIT_NO_TRIAL", "SweepError", "run"]
