"""Hyperparameter sweeps on Optuna: a search space over layer parameters and training settings.

A dimension is named ``LAYER.ARG`` (``dropout.rate``, ``conv_1.filters``: a
parameter of the layer of that Keras name) or, without a layer, a training
setting (:data:`TRAINING_SETTINGS`: ``learning_rate``, ``batch_size``,
``optimizer``, ``epochs``). Its values are a SPEC (:func:`parse_spec`): ``a,b,c``
(choices), ``lo:hi`` (an int or float range), ``lo:hi:step`` or ``log:lo:hi``.
Every name and value is checked before any trial runs, each refusal one line
(:class:`SweepError`).

Each trial is an ordinary training run (:class:`~builder_app.training.runner.TrainingRun`,
a child process): its parameters are set on a copy of the graph with the
editor's own :class:`~builder_app.core.ops.SetParam`, its training settings are
run overrides. The parent reports each epoch's validation value to Optuna, which
prunes on the validation curve (``MedianPruner``); the objective is the
monitored metric's final value (``val_loss`` by default). Trials become runs in
the project's history, their parameters under ``"sweep"``.

Trials run ``parallel`` at a time, on Optuna's own threads (``n_jobs``): each
thread only waits on its child, so the caller (a window's timer) stays free. A
training child is started ahead (:class:`~builder_app.training.runner.WarmChild`)
while a trial trains, so that the next trial does not wait for TensorFlow to import.

The study lives in an Optuna storage: by default an SQLite file beside the
project (:func:`default_storage`); any RDB URL is given to Optuna as it is,
which is Optuna's own way for several machines to work on one study.

Imports neither Qt nor, at module load, Keras or Optuna.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder_app.core.graph import ModelGraph
from builder_app.core.text import one_line

#: Training settings a sweep may search, named without a layer, and the kind of their values.
TRAINING_SETTINGS = {"learning_rate": "float", "batch_size": "int", "optimizer": "str", "epochs": "int"}
#: The samplers ``--sampler`` names.
SAMPLERS = ("grid", "random", "tpe")
#: Trials a random or TPE sweep runs when no number is given (a grid runs all its points).
DEFAULT_TRIALS = 10
#: The most points a grid may have (a range without a step is every whole number in it).
MAX_GRID = 10_000
#: The most values one ``a,b,c`` list may name.
MAX_CHOICES = 1_000
#: The metric whose final value a trial is judged by, unless another is asked for.
DEFAULT_MONITOR = "val_loss"
#: Metrics that are better higher (the study maximises them); any other is minimised.
_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "iou", "r2")


class SweepError(ValueError):
    """A sweep cannot be set up as asked; the one-line message names what and where."""


# =================================================================== SPECs
@dataclass(frozen=True)
class Spec:
    """The values one dimension takes: choices, a range (with a step or not) or a log range."""

    kind: str  # "choices", "range" or "log"
    choices: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    text: str = ""

    @property
    def is_int(self) -> bool:
        """Whether a range's bounds (and step) are whole numbers."""
        return self.kind != "choices" and all(
            isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None
        )


def _token(text: str) -> Any:
    """``3`` -> 3, ``0.5`` -> 0.5, ``true`` -> True, ``none`` -> None, ``'relu'`` / ``relu`` -> "relu"."""
    word = text.strip()
    lowered = word.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return int(word)
    except ValueError:
        pass
    try:
        value = float(word)
    except ValueError:
        if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
            return word[1:-1]
        return word
    if not math.isfinite(value):
        raise SweepError(f"{word!r} is not a finite number")
    return value


def _number(text: str, what: str) -> int | float:
    value = _token(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepError(f"{what} must be a number, not {text.strip()!r}")
    return value


def parse_spec(text: str) -> Spec:
    """A SPEC as a :class:`Spec`: ``a,b,c``, ``lo:hi``, ``lo:hi:step`` or ``log:lo:hi``.

    Raises:
        SweepError: Malformed (empty values, ``lo`` not below ``hi``, a step of 0 or less,
            a log range not above 0).
    """
    if not isinstance(text, str) or not text.strip():
        raise SweepError("an empty SPEC (give a,b,c or lo:hi or lo:hi:step or log:lo:hi)")
    text = text.strip()
    if text.lower().startswith("log:"):
        parts = text[4:].split(":")
        if len(parts) != 2:
            raise SweepError(f"{text!r}: a log range is log:lo:hi")
        low, high = (_number(p, "a log range's bound") for p in parts)
        if low <= 0:
            raise SweepError(f"{text!r}: a log range's bounds must be above 0")
        if low >= high:
            raise SweepError(f"{text!r}: lo must be below hi")
        return Spec("log", low=low, high=high, text=text)
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise SweepError(f"{text!r}: a range is lo:hi or lo:hi:step")
        low, high = _number(parts[0], "a range's lo"), _number(parts[1], "a range's hi")
        if low >= high:
            raise SweepError(f"{text!r}: lo must be below hi")
        step = None
        if len(parts) == 3:
            step = _number(parts[2], "a range's step")
            if step <= 0:
                raise SweepError(f"{text!r}: the step must be above 0")
        return Spec("range", low=low, high=high, step=step, text=text)
    words = text.split(",")
    if any(not w.strip() for w in words):
        raise SweepError(f"{text!r}: an empty choice (choices are a,b,c)")
    if len(words) > MAX_CHOICES:
        raise SweepError(f"{text[:40]!r}...: at most {MAX_CHOICES} choices")
    choices = tuple(_token(w) for w in words)
    if len(set(map(repr, choices))) != len(choices):
        raise SweepError(f"{text!r}: a choice is named twice")
    return Spec("choices", choices=choices, text=text)


# ============================================================== dimensions
@dataclass(frozen=True)
class Dimension:
    """One searched name: a layer's parameter (``layer`` set) or a training setting."""

    name: str
    layer: str | None
    key: str
    kind: str  # "int", "float", "bool", "str" or "any"
    spec: Spec

    def suggest(self, trial) -> Any:
        """The value Optuna's ``trial`` picks for this dimension."""
        spec = self.spec
        if spec.kind == "choices":
            return trial.suggest_categorical(self.name, list(spec.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.kind == "log"
            )
        if spec.kind == "log":
            return trial.suggest_float(self.name, float(spec.low), float(spec.high), log=True)
        return trial.suggest_float(
            self.name, float(spec.low), float(spec.high), step=None if spec.step is None else float(spec.step)
        )

    def grid_values(self) -> list[Any]:
        """Every value a grid tries.

        Raises:
            SweepError: A float range without a step, or a log range.
        """
        spec = self.spec
        if spec.kind == "choices":
            return list(spec.choices)
        if spec.kind == "log":
            raise SweepError(f"{self.name}={spec.text}: a grid takes choices or a stepped range (lo:hi:step), not a log range")
        if self.kind == "int":
            step = int(spec.step or 1)
            count = (int(spec.high) - int(spec.low)) // step + 1
            if count > MAX_GRID:
                raise SweepError(f"{self.name}={spec.text}: {count:,} points; a grid has at most {MAX_GRID:,}")
            return list(range(int(spec.low), int(spec.high) + 1, step))
        if spec.step is None:
            raise SweepError(f"{self.name}={spec.text}: a grid needs a step for a float range (lo:hi:step)")
        count = int(math.floor((spec.high - spec.low) / spec.step + 1e-9)) + 1
        if count > MAX_GRID:
            raise SweepError(f"{self.name}={spec.text}: {count:,} points; a grid has at most {MAX_GRID:,}")
        return [round(spec.low + i * spec.step, 12) for i in range(count)]


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "any"


def _param_kind(graph: ModelGraph, layer_name: str, key: str) -> tuple[str, tuple | None]:
    """The kind of a layer parameter (``int``, ``float``, ``bool``, ``str``, ``any``) and its choices."""
    from builder_app.core import catalog

    layer = graph.layers[layer_name]
    try:
        spec = catalog.layer_spec(layer.class_name)
    except KeyError:
        spec = None
    param = next((p for p in spec.params if p.name == key), None) if spec is not None else None
    if param is not None:
        kind = {"int": "int", "float": "float", "bool": "bool", "str": "str", "activation": "str", "choice": "str"}
        return kind.get(param.kind, "any"), param.choices
    return _kind_of(layer.config.get(key)), None


def _coerce(value: Any, kind: str, where: str) -> Any:
    """``value`` as a value of ``kind`` (0 -> 0.0 for a float), or a one-line refusal."""
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "any" or _kind_of(value) == kind or (kind == "str" and value is None):
        return value
    wanted = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a name"}[kind]
    raise SweepError(f"{where}: {value!r} is not {wanted}")


def parse_param(text: str) -> tuple[str, str]:
    """``dropout.rate=0.1,0.2`` -> (``dropout.rate``, ``0.1,0.2``).

    Raises:
        SweepError: No ``=``, or nothing before it.
    """
    name, sep, spec = str(text).partition("=")
    if not sep or not name.strip():
        raise SweepError(f"--param {text!r}: expected LAYER.ARG=SPEC or SETTING=SPEC (e.g. dropout.rate=0.0,0.25,0.5)")
    return name.strip(), spec.strip()


def dimension(graph: ModelGraph, name: str, spec_text: str, *, construct: bool = False) -> Dimension:
    """One checked dimension of ``graph``'s search space.

    The layer must exist and take the parameter; every value (each choice, a range's
    bounds) must pass the check a set parameter passes (:func:`~builder_app.core.ops.param_problems`)
    and be of the parameter's kind. With ``construct``, Keras makes the layer with
    each of those values too (it imports Keras), so that a value Keras refuses
    (``rate=1.5``) is refused before a trial runs.

    Raises:
        SweepError: One line naming the dimension and what is wrong.
    """
    try:
        spec = parse_spec(spec_text)
    except SweepError as exc:
        raise SweepError(f"{name}: {exc}") from None
    where = f"{name}={spec_text}"
    if "." not in name:
        kind = TRAINING_SETTINGS.get(name)
        if kind is None:
            settings = ", ".join(TRAINING_SETTINGS)
            raise SweepError(f"{where}: {name!r} is not a training setting ({settings}); name a layer's parameter as LAYER.ARG")
        dim = Dimension(name, None, name, kind, _coerced_spec(spec, kind, where))
        _check_setting(dim, where, construct)
        return dim
    layer_name, key = name.rsplit(".", 1)
    if layer_name not in graph.layers:
        from difflib import get_close_matches

        close = get_close_matches(layer_name, list(graph.layers), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SweepError(f"{where}: the model has no layer {layer_name!r}{hint}")
    layer = graph.layers[layer_name]
    if layer.submodel is not None:
        raise SweepError(f"{where}: {layer_name!r} is a sub-model; name a layer inside it is not supported")
    if not key or key == "name":
        raise SweepError(f"{where}: {key!r} cannot be searched")
    kind, choices = _param_kind(graph, layer_name, key)
    spec = _coerced_spec(spec, kind, where)
    values = list(spec.choices) if spec.kind == "choices" else [spec.low, spec.high]
    if spec.kind != "choices" and kind not in ("int", "float"):
        raise SweepError(f"{where}: {key} of {layer_name!r} is not a number; give choices (a,b,c)")
    from builder_app.core.ops import param_problems

    for value in values:
        if choices is not None and value not in choices:
            raise SweepError(f"{where}: {key} of {layer_name!r} is one of {', '.join(map(str, choices))}, not {value!r}")
        problems = param_problems(layer, key, value)
        if problems:
            raise SweepError(f"{where}: {'; '.join(problems)}")
    if construct:
        for value in values:
            _construct_layer(layer, key, value, where)
    return Dimension(name, layer_name, key, kind, spec)


def _coerced_spec(spec: Spec, kind: str, where: str) -> Spec:
    if spec.kind == "choices":
        return Spec("choices", choices=tuple(_coerce(v, kind, where) for v in spec.choices), text=spec.text)
    if kind == "int" and not spec.is_int:
        raise SweepError(f"{where}: a whole-number parameter takes a range of whole numbers")
    if kind == "float":
        return Spec(
            spec.kind,
            low=float(spec.low),
            high=float(spec.high),
            step=None if spec.step is None else float(spec.step),
            text=spec.text,
        )
    return spec


def _check_setting(dim: Dimension, where: str, construct: bool) -> None:
    spec = dim.spec
    values = list(spec.choices) if spec.kind == "choices" else [spec.low, spec.high]
    if dim.kind == "str" and spec.kind != "choices":
        raise SweepError(f"{where}: an optimizer is a choice of names (adam,sgd,rmsprop)")
    for value in values:
        if dim.kind == "float" and not value > 0:
            raise SweepError(f"{where}: {dim.name} must be above 0, not {value!r}")
        if dim.kind == "int" and value < 1:
            raise SweepError(f"{where}: {dim.name} must be at least 1, not {value!r}")
        if dim.kind == "str" and not (isinstance(value, str) and value.replace("_", "").isalnum()):
            raise SweepError(f"{where}: {value!r} is not an optimizer's name")
    if construct and dim.name == "optimizer":
        import keras

        from builder_app.training.runner import _optimizer_class  # noqa: PLC2701 - the runner's own name -> class

        for value in values:
            cls = getattr(keras.optimizers, _optimizer_class(value), None)
            if not (isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer)):
                raise SweepError(f"{where}: keras.optimizers has no optimizer {value!r}")


def _construct_layer(layer, key: str, value: Any, where: str) -> None:
    from builder_app.core import catalog

    try:
        cls = catalog.keras_class(layer.class_name)
    except KeyError:
        return  # not a catalog layer: the trial says what Keras thinks
    config = {k: v for k, v in layer.config.items()}
    config[key] = value
    try:
        cls.from_config({**config, "name": layer.name})
    except Exception as exc:  # noqa: BLE001 - whatever Keras says, in one line
        said = str(exc).rpartition("Exception encountered: ")[2]  # from_config wraps the layer's own words
        raise SweepError(f"{where}: Keras refuses {key}={value!r} for {layer.name!r}: {one_line(said, 200)}") from None


def search_space(graph: ModelGraph, params: Sequence[str], *, construct: bool = False) -> list[Dimension]:
    """The checked dimensions of ``--param`` arguments (``LAYER.ARG=SPEC`` each).

    Raises:
        SweepError: One line: the first argument that is wrong, and why.
    """
    if not params:
        raise SweepError("name at least one --param LAYER.ARG=SPEC")
    dims: list[Dimension] = []
    for text in params:
        name, spec = parse_param(text)
        if any(d.name == name for d in dims):
            raise SweepError(f"--param {name}: named twice")
        dims.append(dimension(graph, name, spec, construct=construct))
    return dims


def grid_space(dims: Sequence[Dimension]) -> dict[str, list[Any]]:
    """Every dimension's grid values (for Optuna's ``GridSampler``).

    Raises:
        SweepError: A dimension a grid cannot take, or too many points in all.
    """
    space = {d.name: d.grid_values() for d in dims}
    if math.prod(len(v) for v in space.values()) > MAX_GRID:
        raise SweepError(f"the grid has {math.prod(len(v) for v in space.values()):,} points; at most {MAX_GRID:,}")
    return space


def default_sampler(dims: Sequence[Dimension]) -> str:
    """``"grid"`` when every dimension has a finite set of values (choices, stepped ranges), else ``"tpe"``.

    Three dropout rates given as choices are three trials, each once, as a user who
    listed them expects; a continuous or log range needs a sampler that picks points.
    """
    try:
        grid_space(dims)
    except SweepError:
        return "tpe"
    return "grid"


# ================================================================= trials
def trial_project(project, dims: Sequence[Dimension], values: Mapping[str, Any]):
    """A copy of ``project`` with a trial's layer parameters set (the editor's SetParam); history left out."""
    from builder_app.core.ops import Batch, SetParam
    from builder_app.core.project import Project

    graph = project.graph.clone()
    steps = [SetParam(d.layer, d.key, values[d.name]) for d in dims if d.layer is not None and d.name in values]
    if steps:
        graph.apply(Batch(steps, "sweep trial"))
    return Project(graph, dict(project.training))


def trial_overrides(base, dims: Sequence[Dimension], values: Mapping[str, Any]):
    """The run overrides of a trial: ``base``'s, with its training settings."""
    from dataclasses import replace

    settings = {d.key: values[d.name] for d in dims if d.layer is None and d.name in values}
    return replace(base, **settings)


def direction_of(monitor: str) -> str:
    """``"maximize"`` for a metric that is better higher (accuracy...), else ``"minimize"``."""
    return "maximize" if any(word in monitor.lower() for word in _HIGHER_IS_BETTER) else "minimize"


def default_storage(project_path: str | Path) -> str:
    """``sqlite:///…/<project>.sweep.db``: the study's file beside the project."""
    path = Path(project_path).resolve()
    return f"sqlite:///{path.with_name(path.stem + '.sweep.db')}"


def study_name(graph: ModelGraph, dims: Sequence[Dimension], sampler: str, monitor: str) -> str:
    """The study's name: the model's name and a digest of what is searched (one study per search)."""
    digest = hashlib.sha256(
        repr([(d.name, d.spec.text) for d in dims] + [sampler, monitor]).encode()
    ).hexdigest()[:10]
    return f"{graph.name}-{digest}"


@dataclass
class TrialUpdate:
    """What a sweep tells its watcher about one trial (from a sweep thread)."""

    kind: str  # "started", "event" or "ended"
    number: int
    params: dict[str, Any]
    event: dict[str, Any] | None = None
    state: str = ""
    value: float | None = None
    run_id: str | None = None
    message: str = ""


@dataclass
class TrialRow:
    """One trial of the study, as the results table and ``--out`` show it."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str
    run_id: str | None = None


class _TrialFailed(Exception):
    """A trial's run failed (its message says why); Optuna marks the trial FAIL."""


@dataclass
class SweepSettings:
    """How a sweep runs (the command line's options, the window's choices)."""

    trials: int | None = None
    sampler: str = "tpe"
    parallel: int = 1
    storage: str | None = None
    epochs: int | None = None
    data: dict[str, Any] | None = None
    monitor: str = DEFAULT_MONITOR
    seed: int = 0
    #: Start the next trial's training process while a trial trains.
    prestart: bool = True
    #: Keep each trial's weights with its run in the history (a project keeps 64 at most).
    keep_weights: bool = False
    #: The study's name in the storage; None: one name per search (:func:`study_name`), so the
    #: same search run again continues its study.
    study: str | None = None


class Sweep:
    """One sweep of a project: its study, its trials (as runs in ``project.runs``).

    :meth:`run` blocks until the trials are done (call it on a thread from a
    window); :meth:`stop` asks it to end (running trials stop at their next batch).
    ``on_update`` is called from the sweep's threads with each :class:`TrialUpdate`.
    """

    def __init__(
        self,
        project,
        dims: Sequence[Dimension],
        settings: SweepSettings,
        on_update: Callable[[TrialUpdate], None] | None = None,
    ):
        if settings.sampler not in SAMPLERS:
            raise SweepError(f"--sampler {settings.sampler!r}: one of {', '.join(SAMPLERS)}")
        if settings.parallel < 1:
            raise SweepError("--parallel must be at least 1")
        self.project = project
        self.dims = list(dims)
        self.settings = settings
        self.on_update = on_update
        self.grid = grid_space(self.dims) if settings.sampler == "grid" else None
        if settings.storage is None and project.path is not None:
            settings.storage = default_storage(project.path)
        self.study = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._runs: dict[int, Any] = {}
        self._warm: list[Any] = []
        self._planned = 0
        self._started = 0
        #: The ids of the runs this sweep added to the history.
        self.run_ids: list[str] = []

    # -- the study ----------------------------------------------------- #
    def open_study(self):
        """Creates the study, or loads it from the storage when it is there already."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        s = self.settings
        if s.sampler == "grid":
            sampler = optuna.samplers.GridSampler(self.grid, seed=s.seed)
        elif s.sampler == "random":
            sampler = optuna.samplers.RandomSampler(seed=s.seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=s.seed)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
        try:
            self.study = optuna.create_study(
                storage=s.storage,
                study_name=s.study or study_name(self.project.graph, self.dims, s.sampler, s.monitor),
                sampler=sampler,
                pruner=pruner,
                direction=direction_of(s.monitor),
                load_if_exists=True,
            )
        except Exception as exc:  # noqa: BLE001 - a bad URL, a missing driver, an unreachable server
            raise SweepError(f"--storage {s.storage}: {one_line(exc, 240)}") from None
        return self.study

    def remaining(self) -> int:
        """How many trials this sweep will run (a grid: the points no finished trial has taken).

        A failed trial's point counts as taken, as Optuna's GridSampler counts it: a
        new study (another storage) tries it again.
        """
        s = self.settings
        if self.grid is None:
            return s.trials or DEFAULT_TRIALS
        study = self.study or self.open_study()
        done = {
            tuple(repr(t.params.get(name)) for name in self.grid)
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished()
        }
        points = math.prod(len(v) for v in self.grid.values())
        left = max(points - len(done), 0)
        return min(left, s.trials) if s.trials else left

    def run(self) -> list[TrialRow]:
        """Runs the trials (blocking) and returns every trial of the study."""
        study = self.study or self.open_study()
        self._planned = self.remaining()
        try:
            if self._planned and not self._stopping.is_set():
                study.optimize(
                    self._objective,
                    n_trials=self._planned,
                    n_jobs=self.settings.parallel,
                    catch=(_TrialFailed,),
                    callbacks=[self._after_trial],
                    gc_after_trial=False,
                )
        finally:
            for child in self._warm:
                child.close()
            self._warm.clear()
        return self.rows()

    def stop(self) -> None:
        """Ends the sweep: no trial starts any more, running ones stop at their next batch."""
        self._stopping.set()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _after_trial(self, study, trial) -> None:
        if self._stopping.is_set():
            study.stop()

    # -- one trial ----------------------------------------------------- #
    def _take_warm(self):
        with self._lock:
            self._started += 1
            warm = self._warm.pop(0) if self._warm else None
            more = self._planned - self._started
            start_one = self.settings.prestart and more > 0 and not self._warm
        if warm is not None and not warm.alive:
            warm.close()
            warm = None
        if start_one:
            from builder_app.training.runner import WarmChild

            child = WarmChild().start()
            with self._lock:
                self._warm.append(child)
        return warm

    def _objective(self, trial) -> float:
        import optuna

        from builder_app.training.events import EventKind, FinishStatus
        from builder_app.training.runner import Overrides, TrainingRun, run_record, usable_weights

        if self._stopping.is_set():
            raise _TrialFailed("the sweep was stopped")
        values = {d.name: d.suggest(trial) for d in self.dims}
        project = trial_project(self.project, self.dims, values)
        base = Overrides(data=self.settings.data, epochs=self.settings.epochs, initial_weights="fresh")
        overrides = trial_overrides(base, self.dims, values)
        run = TrainingRun(project, overrides, warm=self._take_warm())
        monitor = self.settings.monitor
        pruned = False
        run_id = None
        self._tell(TrialUpdate("started", trial.number, values))
        with self._lock:
            self._runs[trial.number] = run
        try:
            run.start()
            for event in run.events():
                self._tell(TrialUpdate("event", trial.number, values, event=event))
                if event["kind"] == EventKind.EPOCH and not pruned:
                    logs = event.get("logs") or {}
                    key = monitor if monitor in logs else monitor.removeprefix("val_")
                    value = logs.get(key)
                    if isinstance(value, (int, float)) and math.isfinite(value):
                        trial.report(float(value), int(event["epoch"]))
                        if trial.should_prune():
                            pruned = True
                            run.stop(grace=30.0)
            trained = usable_weights(run) if self.settings.keep_weights else None
            record = run_record(run)
            record["sweep"] = {
                "study": self.study.study_name,
                "trial": trial.number,
                "params": dict(values),
                "monitor": monitor,
            }
            with self._lock:
                from builder_app.core.runs import record_run

                record_run(self.project, record, trained.graph if trained is not None else None)
                run_id = record["id"]
                self.run_ids.append(run_id)
            trial.set_user_attr("run_id", run_id)
        finally:
            with self._lock:
                self._runs.pop(trial.number, None)
            run.close()
        result = run.result or {}
        history = result.get("history") or {}
        series = history.get(monitor) or history.get(monitor.removeprefix("val_")) or []
        if pruned:
            self._tell(TrialUpdate("ended", trial.number, values, state="PRUNED", run_id=run_id))
            raise optuna.TrialPruned()
        failed = result.get("kind") == EventKind.FAILED or result.get("status") == FinishStatus.NAN
        if failed or self._stopping.is_set() and result.get("status") == FinishStatus.STOPPED or not series:
            message = result.get("message") or (
                "the loss became NaN" if result.get("status") == FinishStatus.NAN
                else "stopped" if self._stopping.is_set()
                else f"no {monitor} in the run's history"
            )
            trial.set_user_attr("message", message)
            self._tell(TrialUpdate("ended", trial.number, values, state="FAIL", run_id=run_id, message=message))
            raise _TrialFailed(message)
        value = float(series[-1])
        self._tell(TrialUpdate("ended", trial.number, values, state="COMPLETE", value=value, run_id=run_id))
        return value

    def _tell(self, update: TrialUpdate) -> None:
        if self.on_update is not None:
            with contextlib.suppress(Exception):
                self.on_update(update)

    # -- results ------------------------------------------------------- #
    def rows(self) -> list[TrialRow]:
        """Every trial of the study, in trial order."""
        return study_rows(self.study)

    def best(self) -> TrialRow | None:
        """The best complete trial of the study, or None."""
        return best_row(self.study)


def study_rows(study) -> list[TrialRow]:
    """Every trial of ``study`` as a :class:`TrialRow`."""
    if study is None:
        return []
    return [
        TrialRow(t.number, dict(t.params), t.value if t.values else None, t.state.name, t.user_attrs.get("run_id"))
        for t in study.get_trials(deepcopy=False)
    ]


def best_row(study) -> TrialRow | None:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    best = pick(complete, key=lambda t: t.value)
    return TrialRow(best.number, dict(best.params), best.value, best.state.name, best.user_attrs.get("run_id"))


def sorted_rows(rows: Sequence[TrialRow], direction: str) -> list[TrialRow]:
    """Complete trials best first, then the rest (running, pruned, failed) by number."""
    done = [r for r in rows if r.value is not None and r.state == "COMPLETE"]
    done.sort(key=lambda r: r.value, reverse=direction == "maximize")
    return done + [r for r in rows if r not in done]


def best_changes(dims: Sequence[Dimension], params: Mapping[str, Any]):
    """What applying ``params`` changes: the layer parameters (SetParams) and the training settings.

    Returns:
        ``(set_params, training)``: a list of :class:`~builder_app.core.ops.SetParam`, and the
        project's training settings with the searched ones replaced (None when none was searched).
    """
    from builder_app.core.ops import SetParam

    steps = [SetParam(d.layer, d.key, params[d.name]) for d in dims if d.layer is not None and d.name in params]
    training = {d.name: params[d.name] for d in dims if d.layer is None and d.name in params}
    return steps, training or None


def training_with(training: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The project's training settings with searched ones set (as a run's overrides would)."""
    from builder_app.training.runner import Overrides

    return Overrides(**settings).apply(dict(training))


def apply_best(project, dims: Sequence[Dimension], params: Mapping[str, Any]) -> list[str]:
    """Sets ``params`` on ``project`` (one Batch of SetParams; training settings too); returns what changed."""
    from builder_app.core.ops import Batch

    steps, training = best_changes(dims, params)
    if steps:
        project.graph.apply(Batch(steps, "apply best trial"))
    if training:
        project.training = training_with(project.training, training)
    return [f"{d.name}={params[d.name]!r}" for d in dims if d.name in params]


def write_csv(path: str | Path, dims: Sequence[Dimension], rows: Sequence[TrialRow]) -> None:
    """``--out``: one row per trial: ``trial``, one column per parameter, ``value``, ``state``."""
    import io

    from builder_app.core.atomic import write_atomically

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["trial", *(d.name for d in dims), "value", "state"])
    for row in rows:
        writer.writerow(
            [row.number, *(row.params.get(d.name, "") for d in dims), "" if row.value is None else repr(row.value), row.state]
        )
    data = text.getvalue().encode()
    write_atomically(path, lambda handle: handle.write(data))


def importances(study) -> dict[str, float]:
    """Optuna's parameter importances (fANOVA), or {} while fewer than two trials are complete."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}

