"""The ``builder-app`` command line.

Every failure a user can cause (a missing or corrupt file, an invalid model) ends
in one line on stderr and a documented exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from builder_app import __version__

#: Exit codes of ``validate``.
EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="builder-app",
        description="Build Keras models visually, with Keras-exact live shapes.",
    )
    parser.add_argument("--version", action="version", version=f"builder-app {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a project's shapes; exit 0 valid, 1 invalid, 2 unreadable",
        description="Check every tensor shape of a project the way Keras computes it.",
    )
    validate.add_argument("project", type=Path, metavar="PROJECT")
    validate.add_argument("--json", action="store_true", help="print one JSON object")

    summary = commands.add_parser(
        "summary",
        help="print a project's layers, shapes and parameter counts",
        description="Print a model.summary()-style table of a project, with its problems.",
    )
    summary.add_argument("project", type=Path, metavar="PROJECT")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"validate", "summary"}
    if argv and not argv[0].startswith("-") and argv[0] not in commands:
        # `builder-app PROJECT` opens the project. Until the editor window lands,
        # it shows the project the way the editor's summary panel will.
        print(
            "builder-app: the graphical editor is not in this version yet; "
            "here is the project's summary",
            file=sys.stderr,
        )
        argv = ["summary", *argv]
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if args.command == "validate":
            return _validate(args.project, as_json=args.json)
        if args.command == "summary":
            return _summary(args.project)
    except KeyboardInterrupt:
        print("builder-app: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        print(f"builder-app: internal error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_UNREADABLE  # pragma: no cover - argparse rejects unknown commands


def _load(path: Path):
    from builder_app.core.project import ProjectLoadError, load_project

    try:
        return load_project(path)
    except ProjectLoadError as exc:
        print(f"builder-app: {exc}", file=sys.stderr)
        return None


def _validate(path: Path, *, as_json: bool) -> int:
    project = _load(path)
    if project is None:
        return EXIT_UNREADABLE
    from builder_app.core.report import validation_report

    report = validation_report(project.graph)
    if as_json:
        print(json.dumps(report))
    else:
        if report["valid"]:
            print(f"{path}: valid, {report['total_params']:,} parameters")
        for error in report["errors"]:
            where = f"node {error['node']}" if error["node"] else "model"
            print(f"{path}: {where}: {error['message']}")
    return EXIT_VALID if report["valid"] else EXIT_INVALID


def _summary(path: Path) -> int:
    project = _load(path)
    if project is None:
        return EXIT_UNREADABLE
    from builder_app.core.report import format_summary
    from builder_app.core.shapes import ShapeEngine

    engine = ShapeEngine(project.graph)
    print(format_summary(project.graph, engine))
    return EXIT_VALID if engine.is_valid() else EXIT_INVALID


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
