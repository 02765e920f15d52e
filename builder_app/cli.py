"""The ``builder-app`` command line.

Every failure a user can cause (a missing or corrupt file, an invalid model) ends
in one line on stderr and a documented exit code, never a traceback. Files are
named by their full path.

TensorFlow takes seconds to import, so every answer that does not need it comes
first: usage errors, ``--help`` and ``--version``, missing or unreadable files,
output paths that cannot be written, a project that does not parse (the project
file is read without Keras). Only then does a command import Keras and do its work.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import stat
import sys
from pathlib import Path

from builder_app import __version__
from builder_app.training.events import Event, EventKind, FinishStatus

#: Exit codes of ``validate``.
EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2

#: The sub-commands; any other first word is a project to open, or a typo.
COMMANDS = ("validate", "summary", "export", "import", "train", "render", "gui", "sweep", "inspect")
#: What the editor opens (a project) or imports (a Keras model): a word ending so is a file.
_FILE_SUFFIXES = (".kproj", ".keras", ".h5", ".hdf5", ".json")


class _BadInput(Exception):
    """A bad input, refused before any work: the message is the one line to print (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line (and exit 2, as argparse has it)."""

    def error(self, message: str):
        self.exit(EXIT_UNREADABLE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _count(text: str) -> int:
    """A whole number of at least 1 (``--epochs``, ``--batch-size``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _positive(text: str) -> float:
    """A finite number above 0 (``--learning-rate``, ``--scale``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    _trust_option(validate)

    from builder_app.exporters.registry import EXPORTERS, help_sentence

    export = commands.add_parser(
        "export",
        help=f"write {help_sentence()}",
        description="Export a project. Every export is written atomically.",
    )
    export.add_argument("project", type=Path, metavar="PROJECT")
    for exporter in EXPORTERS.values():
        export.add_argument(exporter.flag, type=Path, metavar=exporter.metavar, help=exporter.help, dest=exporter.dest)
    export.add_argument(
        "--check",
        action="store_true",
        help="load each export in a fresh Python, compare its outputs with the app's model",
    )
    from builder_app.exporters.litert import QUANTIZE_MODES

    export.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        help="int8 weights (model.quantize) in the --keras and --litert exports; --check reports the difference",
    )
    _trust_option(export)

    import_ = commands.add_parser(
        "import",
        help="turn a .keras, .h5 or model-config .json file into a project",
        description=(
            "Import a Keras model. Nothing in the file is executed. Exit 0 imported (when some "
            "weights were left out, a last 'warning: WEIGHTS LEFT OUT' line says which layers kept "
            "theirs), 2 unreadable."
        ),
    )
    import_.add_argument("model", type=Path, metavar="MODEL")
    import_.add_argument("-o", "--output", type=Path, required=True, metavar="PROJECT")
    import_.add_argument(
        "--custom-layers", type=Path, action="append", default=[], metavar="F.py",
        help="a Python file defining the model's custom layer classes (repeat for more); kept in the project",
    )
    _trust_option(import_)

    train = commands.add_parser(
        "train",
        help="train a project's model in a child process, printing each epoch",
        description="Train the project's model as its training settings say; options override them.",
    )
    train.add_argument("project", type=Path, metavar="PROJECT")
    train.add_argument(
        "--data",
        metavar="SPEC",
        help="digits, iris, regression, spirals, mnist, fashion_mnist, cifar10, F.npz, X.npy,Y.npy, "
        "F.csv:TARGET or an image folder",
    )
    train.add_argument("--epochs", type=_count, metavar="N")
    _trust_option(train)
    train.add_argument("--batch-size", type=_count, metavar="N")
    train.add_argument("--optimizer", metavar="NAME", help="a keras.optimizers class, e.g. adam, sgd, adamw")
    train.add_argument("--learning-rate", type=_positive, metavar="X")
    train.add_argument("--metrics-out", type=Path, metavar="F.csv", help="one row per epoch, Keras's metric names")
    train.add_argument("--save", type=Path, metavar="F.keras", help="the trained model")
    train.add_argument("--fix-data", action="store_true", help="apply the obvious fixes (reshape, one-hot)")
    train.add_argument(
        "--update-project", action="store_true", help="keep the trained weights and the run in the project file"
    )
    train.add_argument("--gui", action="store_true", help="train in a window with the live dashboard")
    train.add_argument(
        "--backend",
        metavar="NAME",
        help="the Keras backend to train on: tensorflow (default), jax or torch, where installed",
    )

    render = commands.add_parser(
        "render",
        help="draw a project's diagram to a PNG or SVG file",
        description="Draw the diagram as the editor's canvas paints it, without a window.",
    )
    render.add_argument("project", type=Path, metavar="PROJECT")
    target = render.add_mutually_exclusive_group(required=True)
    target.add_argument("--png", type=Path, metavar="F.png", help="write a PNG image")
    target.add_argument("--svg", type=Path, metavar="F.svg", help="write an SVG drawing")
    render.add_argument("--scale", type=_positive, default=1.0, help="pixels per canvas unit (PNG; default 1)")
    render.add_argument("--dark", action="store_true", help="the dark canvas colours")
    gui = commands.add_parser("gui", help="open the editor (the default)", description="Open the editor window.")
    gui.add_argument("project", type=Path, nargs="?", metavar="PROJECT", help="a project, or a Keras model to import")
    summary = commands.add_parser(
        "summary",
        help="print a project's layers, shapes and parameter counts",
        description="Print a model.summary()-style table of a project, with its problems.",
    )
    summary.add_argument("project", type=Path, metavar="PROJECT")
    _sweep_parser(commands)
    _inspect_parser(commands)
    return parser


def _trust_option(command) -> None:
    command.add_argument(
        "--trust", action="store_true",
        help="trust and run the project's custom-layer code (remembered by content hash)",
    )


def _inspect_parser(commands) -> None:
    """``inspect``: its logic is builder_app/training/inspect_command.py."""
    inspect = commands.add_parser(
        "inspect",
        help="print (or draw) what nodes compute on one sample",
        description="Run one sample through the model up to the named layers; print their output shapes "
        "and statistics (mean, std, min, max, fraction of zeros, NaN and Inf counts).",
    )
    inspect.add_argument("project", type=Path, metavar="PROJECT")
    inspect.add_argument("--node", action="append", required=True, metavar="LAYER", help="a layer name, or LAYER:N for its output N (repeat for more)")
    sample = inspect.add_mutually_exclusive_group()
    sample.add_argument("--sample", type=_index, metavar="N", help="sample N of the project's training data (default 0)")
    sample.add_argument("--random", type=_index, metavar="SEED", help="a seeded random input instead")
    inspect.add_argument("--training", action="store_true", help="run the layers as in training (Dropout drops...)")
    inspect.add_argument("--png", type=Path, metavar="F.png", help="draw the feature maps, heat maps or bars")
    inspect.add_argument("--json", action="store_true", help="one JSON object per node, one a line")


def _index(text: str) -> int:
    """A whole number of at least 0 (``--sample``, ``--random``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return value


def _sweep_parser(commands) -> None:
    """``sweep``: its logic is builder_app/training/sweep_command.py."""
    sweep = commands.add_parser(
        "sweep",
        help="search hyperparameters with Optuna; each trial is a training run",
        description="Search layer parameters (LAYER.ARG) and training settings (learning_rate, batch_size, "
        "optimizer, epochs) with Optuna. SPEC: a,b,c (choices), lo:hi, lo:hi:step or log:lo:hi.",
    )
    sweep.add_argument("project", type=Path, metavar="PROJECT")
    sweep.add_argument("--param", action="append", required=True, metavar="LAYER.ARG=SPEC")
    sweep.add_argument("--trials", type=_count, metavar="N", help="trials to run (default: the whole grid, or 10)")
    sweep.add_argument(
        "--sampler",
        choices=("grid", "random", "tpe"),
        help="default: grid when every --param is choices or a stepped range, else tpe",
    )
    sweep.add_argument("--parallel", type=_count, default=1, metavar="N", help="trials at a time (default 1)")
    sweep.add_argument("--storage", metavar="URL", help="an Optuna storage URL (default: PROJECT.sweep.db beside it)")
    sweep.add_argument("--epochs", type=_count, metavar="N")
    sweep.add_argument("--data", metavar="SPEC", help="as train's --data")
    sweep.add_argument("--out", type=Path, metavar="results.csv", help="one row per trial")
    sweep.add_argument("--apply-best", action="store_true", help="set the best trial's values on the project")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code (``--help`` and usage errors included)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or (not argv[0].startswith("-") and argv[0] not in COMMANDS):
        if argv and not _names_a_file(argv[0]):
            print(f"builder-app: {_unknown_command(argv[0])}", file=sys.stderr)
            return EXIT_UNREADABLE
        argv = ["gui", *argv]  # `builder-app [PROJECT]` opens the editor
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has said in one line
        return exc.code if isinstance(exc.code, int) else EXIT_UNREADABLE if exc.code else 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    commands = {
        "gui": lambda: _gui(args.project),
        "validate": lambda: _validate(args.project, as_json=args.json, trust=args.trust),
        "summary": lambda: _summary(args.project),
        "export": lambda: _export(args),
        "import": lambda: _import(args.model, args.output, args.custom_layers, args.trust),
        "train": lambda: _train(args),
        "render": lambda: _render(args),
        "sweep": lambda: _sweep(args),
        "inspect": lambda: _inspect(args),
    }
    try:
        return commands[args.command]()
    except _BadInput as exc:
        print(f"builder-app: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        print("builder-app: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        from builder_app.core.messages import clean_message

        print(f"builder-app: internal error ({type(exc).__name__}): {clean_message(exc)}", file=sys.stderr)
        return EXIT_UNREADABLE


def _names_a_file(word: str) -> bool:
    """Whether ``builder-app WORD`` means a file to open rather than a mistyped command.

    A file that exists, a path (it has a separator) or a name with a project's or a
    Keras model's suffix is a file; any other word is a command.
    """
    separators = {os.sep, os.altsep} - {None}
    return (
        any(s in word for s in separators)
        or word.lower().endswith(_FILE_SUFFIXES)
        or os.path.lexists(word)
    )


def _unknown_command(word: str) -> str:
    """``unknown command 'exprt' (did you mean 'export'?)``."""
    close = difflib.get_close_matches(word, COMMANDS, n=1)
    if close:
        return f"unknown command {word!r} (did you mean {close[0]!r}?)"
    return f"unknown command {word!r} (the commands: {', '.join(COMMANDS)}; or give a project file)"


def _keras() -> None:
    """Imports Keras (seconds: TensorFlow) once the inputs are known to be usable."""
    from builder_app.core.quiet import import_keras_quietly

    import_keras_quietly()


def _full(path: Path) -> str:
    """The absolute, resolved path, for messages."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):  # a loop of links
        return os.path.abspath(path)


def _check_readable(path: Path, what: str) -> None:
    """Refuses a path that is not a file this process can read (before anything is imported).

    Raises:
        _BadInput: It is missing, a folder, not a regular file, or unreadable.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _BadInput(f"{_full(path)}: cannot open the file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise _BadInput(f"{_full(path)}: is a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise _BadInput(f"{_full(path)}: not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise _BadInput(f"{_full(path)}: cannot open the file ({exc.strerror or exc})") from None


def _check_writable(option: str, path: Path, *, directory: bool = False) -> None:
    """Refuses an output path that cannot be written (before anything is imported or computed).

    Raises:
        _BadInput: Names the option and the full path.
    """
    if directory:
        problem = (
            "is a file, not a folder" if path.exists() and not path.is_dir() else _unwritable_folder(path.parent)
        )
    else:
        problem = _unwritable(path)
    if problem:
        raise _BadInput(f"{option} {_full(path)}: {problem}")


def _named(message: str, path: Path) -> str:
    """A loader's ``NAME: problem`` message, naming the file by its full path instead."""
    name = path.name or str(path)
    if message.startswith(f"{name}: "):
        return f"{_full(path)}: {message[len(name) + 2:]}"
    return message


def _gui(path: Path | None) -> int:
    if path is not None:
        _check_readable(path, "project file")
    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    )
    if headless:  # Qt would abort with a core dump; say what to do instead
        print(
            "builder-app: no display to open the editor on (DISPLAY is not set); "
            "use `builder-app render PROJECT --png F.png` for a diagram, or set QT_QPA_PLATFORM",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    from builder_app.ui.editor.window import run_app

    return run_app(path)


def _render(args: argparse.Namespace) -> int:
    target = args.png or args.svg
    _check_readable(args.project, "project file")
    _check_writable("--png" if args.png else "--svg", target)
    project = _load(args.project)
    _keras()
    from builder_app.ui.render import RenderError, render_project

    try:
        size = render_project(project, target, dark=args.dark, scale=args.scale, fmt="png" if args.png else "svg")
    except RenderError as exc:
        print(f"builder-app: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    print(f"{target}: {size.width()}x{size.height()}")
    return 0


def _load(path: Path):
    """The project at ``path``, read without Keras.

    Raises:
        _BadInput: The file is missing, unreadable, or not a project this version reads.
    """
    _check_readable(path, "project file")
    from builder_app.core.project import ProjectLoadError, load_project

    try:
        return load_project(path)
    except ProjectLoadError as exc:
        raise _BadInput(_named(str(exc), path)) from None


def _custom_code(project, path: Path, trust: bool) -> None:
    """Runs the project's custom code if the user trusts it (``--trust`` trusts it now).

    Untrusted code is not run: the project is used as it is (its custom nodes say they
    need their code) and one line on stderr says so.

    Raises:
        _BadInput: Trusted code raises when run (one line naming the file).
    """
    from builder_app.core import custom_code
    from builder_app.core import trust as trusting

    files = getattr(project, "custom_code", None) or []
    lambdas = custom_code.lambda_code(project.graph) if project.graph is not None else []
    if not files and not lambdas:
        return
    if trust:
        trusting.trust([*files, *lambdas])
    missing = trusting.untrusted([*files, *lambdas])
    if missing:
        print(f"warning: {_full(path)}: {trusting.untrusted_message(missing)}", file=sys.stderr)
        return
    try:
        custom_code.activate(files)
    except custom_code.CustomCodeError as exc:
        raise _BadInput(f"{_full(path)}: the custom code raised: {exc}") from None
    custom_code.allow_lambdas(lambdas)


def _validate(path: Path, *, as_json: bool, trust: bool = False) -> int:
    project = _load(path)
    _keras()
    _custom_code(project, path, trust)
    from builder_app.core.report import validation_report
    from builder_app.core.shapes import ShapeEngine

    graph = project.graph
    engine = ShapeEngine(graph)
    report = validation_report(graph, engine)
    if as_json:
        print(json.dumps(report))
    else:
        if report["valid"]:
            print(f"{path}: valid, {report['total_params']:,} parameters")
        # Nodes by their layer's name; the internal ids are only in --json.
        for error in report["errors"]:
            where = f"layer '{graph.label(error['node'])}'" if error["node"] else "model"
            print(f"{path}: {where}: {error['message']}")
        for node_id in graph.topological_order():
            for message in engine.result(node_id).warnings:
                print(f"{path}: warning: layer '{graph.label(node_id)}': {message}")
    return EXIT_VALID if report["valid"] else EXIT_INVALID


def _summary(path: Path) -> int:
    project = _load(path)
    _keras()
    from builder_app.core.report import format_summary
    from builder_app.core.shapes import ShapeEngine

    engine = ShapeEngine(project.graph)
    print(format_summary(project.graph, engine))
    return EXIT_VALID if engine.is_valid() else EXIT_INVALID


def _export(args: argparse.Namespace) -> int:
    from builder_app.exporters.registry import EXPORTERS, flags_sentence

    targets = [(e, getattr(args, e.dest)) for e in EXPORTERS.values() if getattr(args, e.dest) is not None]
    if not targets:
        raise _BadInput(f"say what to export: {flags_sentence()}")
    _check_readable(args.project, "project file")
    for exporter, path in targets:
        _check_writable(exporter.flag, path, directory=exporter.is_directory)
    if args.quantize and not any(e.quantizable for e, _ in targets):
        kinds = " or ".join(e.flag for e in EXPORTERS.values() if e.quantizable)
        raise _BadInput(f"--quantize {args.quantize} applies to {kinds}, and none is asked for")
    project = _load(args.project)
    from builder_app.core.quiet import native_stderr_silenced

    for exporter, _ in targets:
        with native_stderr_silenced():  # a check may import the converter, and TensorFlow with it
            reason = exporter.unavailable()
        if reason:
            raise _BadInput(reason)
    _keras()
    _custom_code(project, args.project, args.trust)
    from builder_app.core.keras_model import BuildError, build_keras_model

    try:
        # One model for every export and check: layers the project holds no
        # weights for are initialised once, so all exports agree.
        model = build_keras_model(project.graph)
    except BuildError as exc:
        print(f"builder-app: {_full(args.project)}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    quantized = None
    if args.quantize:
        from builder_app.exporters.litert import quantized_copy

        try:
            quantized = quantized_copy(project.graph, model, args.quantize)  # the float model stays for the others
        except ValueError as exc:
            print(f"builder-app: {_full(args.project)}: {exc}", file=sys.stderr)
            return EXIT_INVALID
        from builder_app.exporters.litert import quantized_layers

        names = quantized_layers(quantized)
        print(f"{args.quantize} weights in {len(names)} layer{'s' if len(names) != 1 else ''}: {', '.join(names)}")
    failed = False
    for exporter, path in targets:
        written = quantized if quantized is not None and exporter.quantizable else model
        try:
            exporter.write(project, path, written)
        except OSError as exc:
            print(f"builder-app: cannot write {_full(path)}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        except ValueError as exc:  # CodegenError, SettingsError: one line naming the layer or setting
            print(f"builder-app: {_full(args.project)}: {exc}", file=sys.stderr)
            return EXIT_INVALID
        print(f"wrote {path}")
        if args.check and exporter.checkable:
            failed |= not _check(project.graph, model, exporter.kind, path, quantized=written is quantized)
    return EXIT_INVALID if failed else EXIT_VALID


def _check(graph, model, kind: str, path: Path, *, quantized: bool = False) -> bool:
    """Compares an export with the app's (float) model; a quantised export's difference is reported, not failed."""
    from builder_app.exporters.check import TOLERANCE, CheckError, check_export

    try:
        differences = check_export(graph, kind, path, model=model)
    except CheckError as exc:
        print(f"check failed: {path}: {exc}", file=sys.stderr)
        return False
    except Exception as exc:  # noqa: BLE001 - the app's own model refused: one line, never a traceback
        from builder_app.core.messages import clean_message

        print(f"check failed: {path}: {type(exc).__name__}: {clean_message(exc)}", file=sys.stderr)
        return False
    if quantized:
        for i, difference in enumerate(differences):
            print(f"check {path}: output {i}: largest difference {difference:.3g} against the float model (int8 weights)")
        return True
    for i, difference in enumerate(differences):
        verdict = "ok" if difference <= TOLERANCE else "DIFFERS"
        print(f"check {path}: output {i}: largest difference {difference:.3g} ({verdict})")
    return all(d <= TOLERANCE for d in differences)


def _import(model: Path, output: Path, custom_layers: list[Path] = (), trust: bool = False) -> int:
    _check_readable(model, "Keras model file")
    _check_writable("-o", output)
    from builder_app.core import custom_code

    files = []
    for path in custom_layers:
        _check_readable(path, "custom layers file")
        try:
            files.append(custom_code.read_file(path))
            custom_code.class_names(files[-1])
        except custom_code.CustomCodeError as exc:
            raise _BadInput(str(exc)) from None
    if len({f.name for f in files}) != len(files):
        raise _BadInput("two --custom-layers files have one name")
    _keras()
    from builder_app.core.project import Project, save_project
    from builder_app.importers.keras_file import ModelImportError, import_model

    _custom_code(Project(graph=None, custom_code=files), model, trust)  # type: ignore[arg-type]
    try:
        result = import_model(model)
    except ModelImportError as exc:
        print(f"builder-app: {_named(str(exc), model)}", file=sys.stderr)
        return EXIT_UNREADABLE
    result.project.custom_code = files
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        save_project(result.project, output)
    except OSError as exc:
        print(f"builder-app: cannot write {_full(output)}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    graph = result.project.graph
    print(f"imported {model} -> {output}: {len(graph)} nodes")
    from builder_app.importers.import_report import dropped_weights_line

    dropped = dropped_weights_line(result)
    if dropped is not None:  # written, but not the trained model: the last line says so
        print(f"warning: {dropped}", file=sys.stderr)
    return EXIT_VALID


def _train(args: argparse.Namespace) -> int:
    from builder_app.training.backends import BackendError, check_backend

    try:  # before anything is read: no backend, no run
        args.backend = check_backend(args.backend) if args.backend is not None else None
    except BackendError as exc:
        raise _BadInput(str(exc)) from None
    if args.gui:
        project = _load(args.project)
        _keras()
        _custom_code(project, args.project, args.trust)
        return _train_window(project, args)
    _check_readable(args.project, "project file")  # the cheapest check first
    from builder_app.training.data import DataError, parse_spec

    try:
        data = parse_spec(args.data) if args.data else None
    except DataError as exc:
        raise _BadInput(str(exc)) from None
    # Where the results go is checked now, not after the training it would lose.
    outputs = [("--metrics-out", args.metrics_out), ("--save", args.save)]
    if args.update_project:
        outputs.append(("--update-project", args.project))
    for option, path in outputs:
        if path is not None:
            _check_writable(option, path)
    project = _load(args.project)
    _keras()
    _custom_code(project, args.project, args.trust)
    from builder_app.training.runner import (
        Overrides,
        TrainingRun,
        copy_trained_weights,
        keep_run,
        usable_weights,
    )

    overrides = Overrides(
        data=data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        fix_data=args.fix_data,
        backend=args.backend,
    )
    from builder_app.training.runner import backend_problem

    problem = backend_problem(project, overrides)  # a setting the backend lacks: refused before the run
    if problem:
        raise _BadInput(f"{_full(args.project)}: {problem}")
    from builder_app.training.interrupts import stop_on_ctrl_c

    run = TrainingRun(project, overrides)
    rows: list[dict] = []
    # Ctrl-C stops at the next batch, as the window's Stop does; a second one ends the run now.
    with stop_on_ctrl_c(run.stop, "stopping at the next batch... (Ctrl-C again to end at once)") as interrupted:
        try:
            run.start()
            for event in run.events():
                _print_event(event, rows)
            result = run.result or {}
            if result.get("kind") == EventKind.FAILED:
                hint = f" ({result['hint']})" if result.get("hint") else ""
                print(f"builder-app: {_full(args.project)}: {result['message']}{hint}", file=sys.stderr)
                return EXIT_INVALID
            # None when the run left no weights or ended in NaN: those never replace the project's.
            trained = usable_weights(run)
            status = run.status
            if args.metrics_out is not None:
                _write_metrics(args.metrics_out, rows)
                print(f"wrote {args.metrics_out}")
            if trained is not None:
                copy_trained_weights(project, trained)
            if args.save is not None and trained is not None:
                from builder_app.exporters.saved_model import export_keras

                export_keras(project.graph, args.save)
                print(f"wrote {args.save}")
            if args.update_project:
                from builder_app.core.project import save_project

                keep_run(project, run, trained)  # the run, with the weights it left (none after NaN)
                save_project(project, args.project)
                print(f"updated {args.project}")
            if status == FinishStatus.NAN:
                skipped = f"; {args.save} not written" if args.save is not None else ""
                print(
                    f"builder-app: {_full(args.project)}: the loss became NaN or infinite (try a lower learning rate, "
                    f"or look for NaN in the data); the project's weights are unchanged{skipped}",
                    file=sys.stderr,
                )
        finally:
            run.close()
    if interrupted:
        return 130  # stopped by Ctrl-C: what --update-project promises is kept, and a script stops here
    kept_going = (FinishStatus.COMPLETED, FinishStatus.EARLY_STOPPED, FinishStatus.STOPPED)
    return EXIT_VALID if status in kept_going else EXIT_INVALID


def _sweep(args: argparse.Namespace) -> int:
    _check_readable(args.project, "project file")
    from builder_app.training.data import DataError, parse_spec

    try:
        args.data = parse_spec(args.data) if args.data else None
    except DataError as exc:
        raise _BadInput(str(exc)) from None
    for option, path in (("--out", args.out), ("the project", args.project)):
        if path is not None:
            _check_writable(option, path)
    project = _load(args.project)
    from builder_app.training import sweep_command

    try:
        sweep = sweep_command.prepare(project, args)  # names, values and storage checked without Keras
        _keras()
        return sweep_command.run(sweep, args, _full(args.project))
    except sweep_command.SweepError as exc:
        raise _BadInput(f"{_full(args.project)}: {exc}") from None


def _inspect(args: argparse.Namespace) -> int:
    _check_readable(args.project, "project file")
    if args.png is not None:
        _check_writable("--png", args.png)
    project = _load(args.project)
    from builder_app.training import inspect_command

    try:
        inspect_command.checked_nodes(project, args.node)  # a mistyped name is answered before Keras loads
        _keras()
        code, activations, sample = inspect_command.run(project, args)
    except inspect_command.InspectError as exc:
        raise _BadInput(f"{_full(args.project)}: {exc}") from None
    if args.png is not None:
        from builder_app.ui.inspect.figure import FigureError, write_png

        try:
            size = write_png(activations, sample.description, args.png)
        except FigureError as exc:
            raise _BadInput(str(exc)) from None
        print(f"{args.png}: {size[0]}x{size[1]}", file=sys.stderr if args.json else sys.stdout)
    return code


def _unwritable(path: Path) -> str | None:
    """Why a file cannot be written at ``path`` (checked before training), or None."""
    if path.is_dir():
        return "is a folder, not a file"
    problem = _unwritable_folder(path.parent)
    if problem:
        return problem
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    return None


def _unwritable_folder(folder: Path) -> str | None:
    """Why nothing can be written into ``folder``, or None."""
    if not folder.is_dir():
        return f"there is no folder {_full(folder)}" if not folder.exists() else f"{_full(folder)} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {_full(folder)} is not writable"
    return None


def _train_window(project, args: argparse.Namespace) -> int:
    from PySide6.QtWidgets import QApplication

    from builder_app.ui import collector, theme
    from builder_app.ui.training.window import TrainingWindow

    app = QApplication.instance() or QApplication([])
    app.setApplicationName("builder-app")
    app.setOrganizationName("builder-app")  # the editor's settings: the theme chosen there
    collector.install(app)
    theme.apply_style(app)
    window = TrainingWindow(project)
    if args.data:
        window.data.setCurrentText(args.data)
    if args.epochs:
        window.epochs.setValue(args.epochs)
    if args.batch_size:
        window.batch_size.setValue(args.batch_size)
    if args.optimizer:
        window.optimizer.setCurrentText(args.optimizer)
    if args.learning_rate:
        window.learning_rate.setValue(args.learning_rate)
    if args.backend:
        window.set_backend(args.backend)
    window.show()
    return app.exec()


def _print_event(event: Event, rows: list[dict]) -> None:
    match event["kind"]:
        case EventKind.STARTED:
            print(
                f"training on {event['device']}: {event['samples']} samples"
                f" ({event['validation_samples']} for validation), {event['epochs']} epochs"
                f" of {event['steps_per_epoch']} batches of {event['batch_size']}"
            )
        case EventKind.EPOCH:
            rows.append({"epoch": event["epoch"], **event["logs"]})
            metrics = "  ".join(f"{k} {v:.4g}" for k, v in event["logs"].items())
            print(f"epoch {event['epoch'] + 1}: {metrics}  ({event['seconds']:.1f} s, {event['samples_per_second']:.0f} samples/s)")
        case EventKind.FINISHED:
            seconds = f" in {event['seconds']:.1f} s" if event.get("seconds") is not None else ""
            print(f"training {event['status'].replace('_', ' ')}{seconds}")


def _write_metrics(path: Path, rows: list[dict]) -> None:
    """One row per epoch, as Keras's CSVLogger writes them: epoch, then the metrics sorted."""
    import csv
    import io

    from builder_app.core.atomic import write_atomically

    keys = sorted({k for row in rows for k in row if k != "epoch"})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for row in rows:
        writer.writerow([row["epoch"], *(row.get(k, "") for k in keys)])
    data = text.getvalue().encode()
    write_atomically(path, lambda handle: handle.write(data))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
