"""Training in a child process, streaming events back.

TensorFlow keeps GPU memory until its process exits, and a crash in a kernel
takes its process down: so every run gets a fresh child process, started with
the ``spawn`` method (forking a process that has loaded TensorFlow hangs or
breaks CUDA). The child rebuilds the model from the project's bytes through the
same safe path as everything else, loads the data, checks it against the model,
trains with ``model.fit`` and posts :mod:`~builder_app.training.events` on a
queue. Its callback only posts messages and reads two flags (stop, pause): Keras
may run callbacks on a thread pool, and the GUI's widgets are touched only by the
GUI thread, which polls :meth:`TrainingRun.poll`.

Stop ends the run at the next batch end (the weights trained so far come back);
if the child does not finish within :data:`STOP_GRACE_SECONDS`, it is ended.
The child ignores SIGINT (Ctrl-C is the parent's to answer, as a Stop), and ends
itself within :data:`PARENT_POLL_SECONDS` when its parent dies, however it died.
A run whose loss or weights became NaN or infinite ends as ``nan``, and its
weights never replace the model's (:func:`usable_weights`).

Starting TensorFlow takes a child most of its start-up (20-30 s on a loaded
machine). A :class:`WarmChild` is such a child started ahead of time: it imports
Keras, warms its training path up and waits for one job; a :class:`TrainingRun`
given one hands it the job instead of spawning, and starts cold when the warm
child has died. A warm child serves one run, as a cold one does: the next run
gets a fresh process.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue as queue_module
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder_app.core.portable_data import shuffled_order
from builder_app.core.project import Project, load_project, project_to_bytes
from builder_app.core.runs import record_run
from builder_app.core.text import one_line
from builder_app.training import events
from builder_app.training.events import Event, EventKind, FinalEvent, FinishStatus, Started

#: How long Stop waits for the child to finish its batch before ending it.
STOP_GRACE_SECONDS = 2.0
#: How much lower the child's scheduling priority is than the app's (POSIX nice).
CHILD_NICENESS = 10
#: Batch events are sent at most this often (each one costs the training loop a sync).
BATCH_EVENT_SECONDS = 0.05
#: How often the child checks that its parent is still there (it ends itself when not).
PARENT_POLL_SECONDS = 0.5
#: The exit status of a child that ended itself because its parent had died.
ORPHANED_EXIT_CODE = 3


@dataclass
class Overrides:
    """Command-line or dialog choices that replace the project's own settings for one run."""

    data: dict[str, Any] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    fix_data: bool = False
    #: "continue" from the project's weights or start from "fresh" ones (the layers'
    #: initializers); None keeps the project's setting (``initial_weights``).
    initial_weights: str | None = None
    #: Split the CPU into this many logical devices and train on them all with
    #: MirroredStrategy (TensorFlow backend) or DataParallel (JAX): the multi-device path, without GPUs.
    cpu_replicas: int = 0
    #: The Keras backend the child trains on ("tensorflow", "jax", "torch"); None: the
    #: default (``KERAS_BACKEND``, else TensorFlow). See :mod:`~builder_app.training.backends`.
    backend: str | None = None

    def apply(self, training: dict[str, Any]) -> dict[str, Any]:
        merged = dict(training)
        if self.data is not None:
            merged["data"] = self.data
        if self.epochs is not None:
            merged["epochs"] = self.epochs
        if self.batch_size is not None:
            merged["batch_size"] = self.batch_size
        if self.initial_weights is not None:
            merged["initial_weights"] = self.initial_weights
        if self.optimizer is not None or self.learning_rate is not None:
            optimizer = dict(merged.get("optimizer") or {"class_name": "Adam", "config": {}})
            config = dict(optimizer.get("config") or {})
            if self.optimizer is not None and self.optimizer != optimizer.get("class_name"):
                optimizer["class_name"] = _optimizer_class(self.optimizer)
                config = {k: v for k, v in config.items() if k == "learning_rate"}
            if self.learning_rate is not None:
                config["learning_rate"] = self.learning_rate
                merged["learning_rate_schedule"] = None  # a learning rate given now is constant
            optimizer["config"] = config
            merged["optimizer"] = optimizer
        return merged


def _optimizer_class(name: str) -> str:
    """``adam`` -> ``Adam``: the keras.optimizers class a short name means (checked later)."""
    import keras

    for candidate in dir(keras.optimizers):
        if candidate.lower() == name.lower().replace("_", ""):
            return candidate
    return name


@dataclass
class _Job:
    """Everything the child needs (picklable)."""

    project: bytes
    overrides: Overrides
    weights_out: str


@dataclass
class _Preview:
    """The job a warm child should expect: it prepares its model ahead (picklable)."""

    job: _Job


def _job_of(project: Project, overrides: Overrides, weights_out: str) -> _Job:
    # The child needs the model and its settings, not the history nor the
    # weights earlier runs kept (they can be large).
    # Custom code goes along only as the parent runs it: trusted and activated here.
    from builder_app.core.custom_code import files_for

    code = files_for(project.graph)
    return _Job(project_to_bytes(Project(project.graph, project.training, custom_code=code)), overrides, weights_out)


class WarmChild:
    """A training process started ahead of its run: Keras imported and warmed up, waiting for one job.

    Start one when a run is likely (the training window opens) and give it to a
    :class:`TrainingRun` (``TrainingRun(project, overrides, warm=child)``), which
    hands it the job; :meth:`close` ends it when no run came. It is spawned like
    a cold child, with the same safeguards (lower priority, SIGINT ignored, ended
    when its parent dies), and serves one run. It is started on one Keras backend
    (``backend``, None: the default) and serves only a run on that backend.
    """

    def __init__(self, backend: str | None = None) -> None:
        from builder_app.training.backends import BACKENDS, default_backend

        #: The Keras backend the child imports (a run on another starts cold).
        self.backend = backend if backend in BACKENDS else default_backend()
        context = multiprocessing.get_context("spawn")
        self.queue = context.Queue()
        self.stop = context.Event()
        self.pause = context.Event()
        #: Set by the child once Keras is imported and its training path warmed up.
        self.ready = context.Event()
        #: Set by the child when it has taken its job (a death before means: start cold).
        self.accepted = context.Event()
        #: Set by the child once the job it was told to expect is prepared (:meth:`expect`).
        self.prepared = context.Event()
        self._jobs = context.Queue()
        self.process = context.Process(
            target=_warm_main,
            args=(self._jobs, self.queue, self.stop, self.pause, self.ready, self.accepted, self.prepared),
            daemon=True,
            name="builder-app-training-warm",
        )
        self.handed = False

    def start(self) -> WarmChild:
        from builder_app.training.backends import child_environment

        with _environment(child_environment(self.backend)):
            self.process.start()
        return self

    @property
    def alive(self) -> bool:
        return self.process.pid is not None and self.process.is_alive()

    @property
    def is_ready(self) -> bool:
        """Whether Keras is imported and warmed up in the child."""
        return self.ready.is_set()

    def expect(self, project: Project, overrides: Overrides) -> None:
        """Tells the child which run to expect: it builds that model and traces its train step ahead.

        A run handed later with the same project and settings (the number of epochs
        aside) starts from that model; any other run is prepared from scratch.
        """
        if not self.handed and self.alive:
            self._jobs.put(_Preview(_job_of(project, overrides, "")))

    def hand(self, job: _Job) -> bool:
        """Gives the child its job; False when it cannot take one (dead, or served already)."""
        if self.handed or not self.alive:
            return False
        self._jobs.put(job)
        self.handed = True
        return True

    def close(self) -> None:
        """Ends the child now (no run, or the run is over)."""
        if self.process.pid is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self._jobs.cancel_join_thread()  # a job the child never read must not hold this process


@dataclass
class TrainingRun:
    """One training run in a child process.

    Call :meth:`start`, then read events with :meth:`poll` (non-blocking, for a
    GUI timer) or :meth:`events` (blocking, for the command line). When the run
    has finished, :meth:`trained_weights` gives the project back with the
    trained weights. Given a :class:`WarmChild` (``warm``), :meth:`start` hands
    it the job; it starts a child of its own (cold) when the warm one has died,
    even after the job was handed, as long as the warm child had not taken it.
    """

    project: Project
    overrides: Overrides = field(default_factory=Overrides)
    status: str = "new"
    result: FinalEvent | None = None
    _process: Any = None
    _queue: Any = None
    _stop: Any = None
    _pause: Any = None
    started_at: str = ""
    started_event: Started | None = None
    _stop_asked: float | None = None
    _workdir: tempfile.TemporaryDirectory | None = None
    #: A warm child to run in (taken by :meth:`start`), or None to start cold.
    warm: WarmChild | None = None
    #: Whether the run went to a warm child (False: a cold start, or a fallback to one).
    warm_started: bool = False
    _adopted: WarmChild | None = None
    _job: _Job | None = None
    _grace: float = STOP_GRACE_SECONDS

    def start(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="builder-app-run-")
        self._job = job = _job_of(self.project, self.overrides, os.path.join(self._workdir.name, "trained.kproj"))
        warm, self.warm = self.warm, None
        # Logical CPUs are configured before the backend's runtime starts: a warm child's has.
        # A warm child has imported one backend: it serves runs on that one only.
        if (
            warm is not None
            and job.overrides.cpu_replicas <= 1
            and warm.backend == run_backend(self.overrides)
            and warm.hand(job)
        ):
            self._adopted = warm
            self._queue, self._stop, self._pause, self._process = warm.queue, warm.stop, warm.pause, warm.process
            self.warm_started = True
        else:
            if warm is not None:
                warm.close()
            self._start_cold()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.status = "running"

    def _start_cold(self) -> None:
        from builder_app.training.backends import child_environment

        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue()
        self._stop = context.Event()
        self._pause = context.Event()
        self._process = context.Process(
            target=_child_main, args=(self._job, self._queue, self._stop, self._pause), daemon=True, name="builder-app-training"
        )
        # The child's Keras picks its backend when it is first imported: the environment is
        # the child's from its first line (a parent's main module re-imported by spawn included).
        with _environment(child_environment(run_backend(self.overrides), replicas=self.overrides.cpu_replicas)):
            self._process.start()
        self.warm_started = False

    # -- control ------------------------------------------------------ #
    def stop(self, grace: float | None = None) -> None:
        """Asks the run to stop at the next batch end; it is ended after ``grace`` seconds.

        Args:
            grace: How long the child may take to finish its batch (and its epoch's
                validation) and hand its weights back; :data:`STOP_GRACE_SECONDS` by default.
        """
        if self._stop is not None and not self._stop.is_set():
            self._stop.set()
            self._pause.clear()
            self._stop_asked = time.monotonic()
            self._grace = STOP_GRACE_SECONDS if grace is None else grace

    def terminate(self) -> None:
        """Ends the child at once, as a crash would (no weights come back)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)

    def discard(self) -> FinalEvent:
        """Ends the run now, keeping nothing: it finishes as stopped, without weights."""
        self.stop(grace=0)
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        if self.result is None:
            self._note(events.finished(status=FinishStatus.STOPPED, history={}, seconds=None, weights=None))
        return self.result

    def pause(self) -> None:
        if self._pause is not None:
            self._pause.set()

    def resume(self) -> None:
        if self._pause is not None:
            self._pause.clear()

    @property
    def finished(self) -> bool:
        return self.result is not None

    # -- events ------------------------------------------------------- #
    def poll(self, limit: int = 10_000) -> list[Event]:
        """The events that arrived since the last call, without waiting."""
        got: list[Event] = []
        while len(got) < limit and not self.finished:
            try:
                item = self._queue.get_nowait()
            except queue_module.Empty:
                got.extend(self._check_child())
                break
            got.append(self._note(item))
        return got

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Every event until the run ends (blocking)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            try:
                item = self._queue.get(timeout=0.1)
            except queue_module.Empty:
                yield from self._check_child()
                if deadline is not None and time.monotonic() > deadline:
                    self.stop()
                continue
            yield self._note(item)

    def _note(self, item: Event) -> Event:
        match item["kind"]:
            case EventKind.STARTED:
                self.started_event = item
            case EventKind.FINISHED:
                self._end(item, str(item["status"]))
            case EventKind.FAILED:
                self._end(item, str(EventKind.FAILED))
        return item

    def _end(self, item: FinalEvent, status: str) -> None:
        self.result = item
        self.status = status
        self._process.join(timeout=5)

    def _check_child(self) -> list[Event]:
        """Events the parent makes up: the child was ended, or died."""
        if self.finished or self._process is None:
            return []
        overdue = self._stop_asked is not None and time.monotonic() - self._stop_asked > self._grace
        if overdue and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
            return [self._note(events.finished(status=FinishStatus.STOPPED, history={}, seconds=None, weights=None))]
        if not self._process.is_alive():
            try:  # the last events may still be in the pipe
                item = self._queue.get(timeout=0.5)
                return [self._note(item)]
            except queue_module.Empty:
                pass
            warm = self._adopted
            if warm is not None and not warm.accepted.is_set():
                # The warm child died before it took the job (while importing TensorFlow):
                # the run starts again, cold, as if it had never been warm.
                warm.close()
                self._adopted = None
                self._start_cold()
                if self._stop_asked is not None:
                    self._stop.set()
                return []
            code = self._process.exitcode
            message = f"the training process ended unexpectedly (exit code {code})"
            hint = "it may have run out of memory: try a smaller batch size" if code in (-9, 137) else ""
            return [self._note(events.failed(message=message, hint=hint))]
        return []

    def trained_weights(self) -> Project | None:
        """The trained project (the child's graph with its weights), or None when none came back."""
        path = (self.result or {}).get("weights")
        if not path:
            return None
        return load_project(path)

    def close(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        for child in (self.warm, self._adopted):
            if child is not None:
                child.close()
        self.warm = self._adopted = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


_ENVIRONMENT_LOCK = threading.Lock()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` while a child process is started, then as it was.

    A spawned child copies the parent's environment when it starts; Keras reads
    ``KERAS_BACKEND`` (and JAX ``XLA_FLAGS``) on their first import, before any of
    the child's own code could set them.
    """
    with _ENVIRONMENT_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def run_backend(overrides: Overrides) -> str:
    """The backend a run with ``overrides`` trains on: the chosen one, else the default.

    Raises:
        BackendError: The chosen backend is unknown or not installed.
    """
    from builder_app.training.backends import check_backend

    return check_backend(overrides.backend)


def backend_problem(project: Project, overrides: Overrides) -> str | None:
    """Why this run cannot start on its backend (one line), or None; checked before any child starts.

    An unknown or missing backend, or a setting the backend lacks (TensorBoard's
    profiler off TensorFlow, several devices on PyTorch). Settings that do not
    resolve are left to the run, which reports them as it does on any backend.
    """
    from builder_app.core.training_settings import SettingsError, resolve
    from builder_app.training.backends import BackendError, refusal

    try:
        backend = run_backend(overrides)
    except BackendError as exc:
        return str(exc)
    try:
        settings = resolve(overrides.apply(project.training), project.graph)
    except SettingsError:
        return None
    return refusal(backend, settings, replicas=overrides.cpu_replicas)


def run_record(run: TrainingRun) -> dict[str, Any]:
    """What the project's run history keeps of a finished run."""
    from builder_app.core.training_settings import resolve

    result = run.result or {}
    started = run.started_event or {}
    return {
        "started_at": run.started_at,
        # Plain strings in the saved history: the finish status, or "failed".
        "status": run.status if run.result is not None else None,
        "message": result.get("message", ""),
        "device": started.get("device", ""),
        "seconds": result.get("seconds"),
        "settings": resolve(run.overrides.apply(run.project.training), run.project.graph),
        "history": result.get("history", {}),
    }


def weights_are_finite(graph) -> bool:
    """Whether every weight of ``graph`` (sub-models included) is a finite number."""
    import numpy as np

    from builder_app.core.weights_file import walk_layers

    for _, layer in walk_layers(graph):
        for value in layer.weights or ():
            array = np.asarray(value)
            if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
                return False
    return True


def usable_weights(run: TrainingRun) -> Project | None:
    """The trained project whose weights may replace the model's, or None.

    None when the run failed, left no weights, or ended in NaN: a run whose
    weights are not all finite numbers is marked ``nan`` here if the child did
    not say so, and never gives its weights to the model nor to the history.
    """
    result = run.result or {}
    if result.get("kind") != EventKind.FINISHED or result.get("status") == FinishStatus.NAN:
        return None
    trained = run.trained_weights()
    if trained is None:
        return None
    if not weights_are_finite(trained.graph):
        run.result = {**result, "status": FinishStatus.NAN}
        run.status = str(FinishStatus.NAN)
        return None
    return trained


def keep_run(project: Project, run: TrainingRun, trained: Project | None) -> list[str]:
    """Adds a finished run to the project's history, with the weights it left.

    Returns:
        The ids of runs whose weights were let go to stay within what a project
        file holds (see :func:`~builder_app.core.runs.record_run`).
    """
    return record_run(project, run_record(run), trained.graph if trained is not None else None)


def copy_trained_weights(target: Project, trained: Project) -> None:
    """Gives ``target``'s layers the trained weights, by layer name (sub-models too)."""

    def copy(into, source) -> None:
        for name, layer in into.layers.items():
            other = source.layers.get(name)
            if other is None:
                continue
            if layer.submodel is not None and other.submodel is not None:
                copy(layer.submodel, other.submodel)
            elif other.weights is not None:
                layer.weights = [w.copy() for w in other.weights]

    copy(target.graph, trained.graph)


# ====================================================================== child
def _child_main(job: _Job, queue, stop, pause) -> None:
    """The child process: train, posting events; never raises."""
    _child_setup()
    _run_job(job, queue, stop, pause)


def _warm_main(jobs, queue, stop, pause, ready, accepted, prepared_flag) -> None:
    """A warm child: import Keras and warm its training path up, then run the one job that comes.

    A :class:`_Preview` before the job prepares the model the job is expected to
    train (:func:`_traced`); the job uses it when it is the same job.
    """
    _child_setup()
    try:
        from builder_app.core.quiet import import_keras_quietly

        import_keras_quietly()
        _warm_up()
    except BaseException:  # noqa: BLE001, S110 - the job meets the same failure and reports it
        pass
    ready.set()
    prepared = None
    while True:
        message = jobs.get()  # the parent-watch thread ends this process if the parent goes first
        if isinstance(message, _Preview):
            prepared = _traced(message.job)
            if prepared is not None:
                prepared_flag.set()
            continue
        accepted.set()
        _run_job(message, queue, stop, pause, prepared)
        return


def _child_setup() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Ctrl-C reaches the whole process group: the parent answers it (a Stop), not
    # TensorFlow in the middle of a kernel.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent()
    if hasattr(os, "nice"):
        # The GUI comes first: training takes the processor time the window leaves.
        os.nice(CHILD_NICENESS)


def _run_job(job: _Job, queue, stop, pause, prepared: _Prepared | None = None) -> None:
    try:
        from builder_app.core.quiet import import_keras_quietly

        import_keras_quietly()
        _train(job, queue, stop, pause, prepared)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one event
        queue.put(events.failed(**_describe_failure(exc)))


def _warm_up() -> None:
    """What a first run pays once per process, paid before the job comes.

    The devices are configured (GPU memory growth must be set before TensorFlow's
    runtime starts), the modules a run imports are imported, and a tiny model is
    fitted for one step: the first trace of a train step and the first optimizer
    step carry one-time costs. ``clear_session`` then leaves Keras's global state
    (names, the seed generator) as a fresh process has it; the job seeds itself.
    """
    import keras
    import numpy as np

    import builder_app.core.keras_model  # noqa: F401 - what _train imports
    import builder_app.training.data  # noqa: F401

    with contextlib.suppress(ImportError):
        import sklearn.datasets  # noqa: F401 - the built-in datasets' reader
    _configure_devices(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.zeros((8, 4), "float32"), np.zeros(8, "int64"), batch_size=4, epochs=1, verbose=0)
    keras.backend.clear_session()


def _watch_parent() -> None:
    """Ends this process when its parent has gone (a SIGKILL, a crash), within a poll.

    A thread waits on the parent's sentinel (multiprocessing's pipe, closed when the
    parent dies) and checks that the parent pid is still ours; ``os._exit`` ends the
    process even while the main thread is inside a TensorFlow kernel.
    """
    parent = multiprocessing.parent_process()
    parent_pid = os.getppid()

    def watch() -> None:
        while True:
            if parent is not None:
                parent.join(PARENT_POLL_SECONDS)
            else:
                time.sleep(PARENT_POLL_SECONDS)
            if (parent is not None and not parent.is_alive()) or os.getppid() != parent_pid:
                os._exit(ORPHANED_EXIT_CODE)

    threading.Thread(target=watch, name="builder-app-parent-watch", daemon=True).start()


def _describe_failure(exc: BaseException) -> dict[str, str]:
    from builder_app.core.keras_model import BuildError
    from builder_app.core.training_settings import SettingsError
    from builder_app.training.data import DataError

    if isinstance(exc, (DataError, SettingsError, BuildError)):
        return {"message": one_line(str(exc), 400), "hint": getattr(exc, "hint", "")}
    name = type(exc).__name__
    text = one_line(str(exc), 400)
    if name == "ResourceExhaustedError" or "out of memory" in text.lower() or isinstance(exc, MemoryError):
        return {"message": f"out of memory while training ({name})", "hint": "try a smaller batch size"}
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (in {Path(last.filename).name}, line {last.lineno})"
    return {"message": f"training failed: {name}: {text}{where}", "hint": ""}


@dataclass
class _Prepared:
    """A job's model, built and compiled in the child, with what building it needed."""

    project: Project
    devices: dict[str, Any]
    shapes: list[tuple]
    loaded: Any
    model: Any
    #: What the model was made from (:func:`_job_key`), once its train step is traced.
    key: Any = None


def _job_key(job: _Job) -> tuple:
    """What a prepared model depends on: everything but the number of epochs and where the weights go."""
    from dataclasses import replace

    return job.project, replace(job.overrides, epochs=None)


def _prepare(job: _Job) -> _Prepared:
    """Seeds, loads the data, builds and compiles the model (the part of a run before ``fit``)."""
    import keras

    from builder_app.core.keras_model import build_keras_model, refuse_if_it_cannot_run_here
    from builder_app.core.project import project_from_bytes
    from builder_app.core.training_settings import resolve
    from builder_app.training import data as data_module

    project = project_from_bytes(job.project, "the project")
    if project.custom_code:  # the parent ran this code: it was trusted there (see _job_of)
        from builder_app.core.custom_code import activate

        activate(project.custom_code)
    settings = resolve(job.overrides.apply(project.training), project.graph)
    _check_backend_here(job, settings)
    devices = _configure_devices(job.overrides.cpu_replicas)
    _seed_everything(settings["seed"])
    if settings["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if settings["data"] is None:
        raise data_module.DataError("the project names no training data: choose a dataset (--data)")
    shapes = [
        tuple(project.graph.layer_of(node).config.get("batch_shape") or ()) for node in project.graph.model_inputs()
    ]
    loaded = data_module.load(settings["data"], seed=settings["seed"], input_shapes=shapes)
    strategy = _strategy(devices)
    with strategy.scope() if strategy else contextlib.nullcontext():
        # "fresh": the layers' initializers, seeded above, not the project's weights.
        model = build_keras_model(project.graph, with_weights=settings["initial_weights"] != "fresh")
        refuse_if_it_cannot_run_here(model)
        model.compile(
            optimizer=_optimizer(settings),
            loss=settings["loss"][0] if len(settings["loss"]) == 1 else settings["loss"],
            metrics=settings["metrics"][0] if len(settings["metrics"]) == 1 else settings["metrics"],
        )
    return _Prepared(project, devices, shapes, loaded, model)


def _traced(job: _Job) -> _Prepared | None:
    """``job`` prepared ahead of its run, its train step traced; None when it cannot be.

    A warm child does this for the job the window expects, while the user looks at
    the window: the first step of ``fit`` (tracing, graph optimisation) is most of
    the time to the first batch. The step runs on the data's first batch, then
    every variable (weights, seed states, optimizer slots) and the random
    generators get back the values they had, so the run trains exactly as a cold
    one (a test compares the weights). Runs on several devices, in mixed
    precision or with data fixes are not prepared.
    """
    import random

    import numpy as np

    from builder_app.core.training_settings import resolve
    from builder_app.training import data as data_module

    try:
        prepared = _prepare(job)
        settings = resolve(job.overrides.apply(prepared.project.training), prepared.project.graph)
        model = prepared.model
        if _strategy(prepared.devices) is not None or settings["mixed_precision"] or job.overrides.fix_data:
            return None
        if data_module.check_fit(prepared.loaded, model, settings["loss"]):
            return None  # the run reports it
        batch = settings["batch_size"]
        sample = prepared.loaded.take(np.arange(min(batch, len(prepared.loaded))))
        model.optimizer.build(model.trainable_variables)
        variables = [*model.variables, *model.optimizer.variables]
        values = [np.array(v) for v in variables]
        generators = random.getstate(), np.random.get_state()
        model.fit(_one_or_list(sample.x), _one_or_list(sample.y), batch_size=batch, epochs=1, shuffle=False, verbose=0)
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        model.reset_metrics()
        _seed_everything(settings["seed"])  # TensorFlow's and Keras's generators, as seeded
        random.setstate(generators[0])
        np.random.set_state(generators[1])
    except Exception:  # noqa: BLE001 - the run itself meets the same failure and reports it
        return None
    prepared.key = _job_key(job)
    return prepared


def _train(job: _Job, queue, stop, pause, prepared: _Prepared | None = None) -> None:
    from builder_app.core.keras_model import copy_weights_to_graph
    from builder_app.core.project import save_project
    from builder_app.core.training_settings import resolve
    from builder_app.training import data as data_module

    reused = prepared is not None and prepared.key == _job_key(job)
    if not reused:
        prepared = _prepare(job)
    project, devices, shapes, loaded, model = (
        prepared.project, prepared.devices, prepared.shapes, prepared.loaded, prepared.model,
    )
    settings = resolve(job.overrides.apply(project.training), project.graph)
    if reused:  # read now: the files may have changed since the model was prepared
        loaded = data_module.load(settings["data"], seed=settings["seed"], input_shapes=shapes)
    if stop.is_set():  # stopped before training began: nothing to keep
        queue.put(events.finished(status=FinishStatus.STOPPED, history={}, seconds=None, weights=None))
        return
    losses = settings["loss"]
    if job.overrides.fix_data:
        loaded, _ = data_module.apply_fixes(loaded, model, losses)
    problems = data_module.check_fit(loaded, model, losses)
    if problems:
        message, hint = data_module.problems_line(problems)
        error = data_module.DataError(message)
        error.hint = hint
        raise error
    if settings["validation"] is not None:
        train = loaded.take(shuffled_order(len(loaded), settings["shuffle"], settings["seed"]))
        validation = data_module.load(settings["validation"], seed=settings["seed"], input_shapes=shapes)
    else:
        train, validation = data_module.split(
            loaded, settings["validation_split"], shuffle=settings["shuffle"], seed=settings["seed"]
        )
    batch_size = settings["batch_size"]
    parts = devices.get("shards", 1)
    if parts > 1:  # DataParallel splits every batch, the last one too: each holds whole samples per device
        if batch_size % parts:
            from builder_app.core.training_settings import SettingsError

            raise SettingsError(f"batch_size {batch_size} must be a multiple of the {parts} devices it is split across")
        train = _evenly(train, parts)
        validation = _evenly(validation, parts) if validation is not None else None
    steps = math.ceil(len(train) / batch_size)
    metric_names = ["loss", *_metric_names(settings)]
    names = metric_names + ([f"val_{m}" for m in metric_names] if validation is not None else [])
    queue.put(
        events.started(
            device=devices["description"],
            epochs=settings["epochs"],
            steps_per_epoch=steps,
            batch_size=batch_size,
            samples=len(train),
            validation_samples=len(validation) if validation is not None else 0,
            metrics=names,
        )
    )
    reporter = _reporter(queue, stop, pause, batch_size, steps, len(train), _schedule(settings))
    callbacks = [reporter, *_callbacks(settings)]
    started = time.monotonic()
    history = model.fit(
        _one_or_list(train.x),
        _one_or_list(train.y),
        batch_size=batch_size,
        epochs=settings["epochs"],
        validation_data=(_one_or_list(validation.x), _one_or_list(validation.y)) if validation is not None else None,
        shuffle=settings["shuffle"],
        callbacks=callbacks,
        verbose=0,
    )
    status = FinishStatus.COMPLETED
    if stop.is_set():
        status = FinishStatus.STOPPED
    elif reporter.nan:
        status = FinishStatus.NAN
    elif model.stop_training:
        status = FinishStatus.EARLY_STOPPED
    copy_weights_to_graph(project.graph, model)
    if not weights_are_finite(project.graph):  # an infinite loss stops as NaN does
        status = FinishStatus.NAN
    save_project(project, job.weights_out)
    queue.put(
        events.finished(
            status=status,
            history={k: [float(v) for v in values] for k, values in history.history.items()},
            seconds=time.monotonic() - started,
            weights=job.weights_out,
        )
    )


def _evenly(arrays, parts: int):
    """``arrays`` without its last samples (fewer than ``parts``), so that every batch splits evenly."""
    import numpy as np

    return arrays.take(np.arange(len(arrays) - len(arrays) % parts))


def _check_backend_here(job: _Job, settings: dict[str, Any]) -> None:
    """Refuses a run whose backend this child's Keras is not on, or whose settings that backend lacks."""
    import keras

    from builder_app.core.training_settings import SettingsError
    from builder_app.training.backends import refusal

    wanted = run_backend(job.overrides)
    here = keras.backend.backend()
    if here != wanted:
        raise SettingsError(
            f"the training process runs Keras on {here}, not {wanted}: Keras was imported before KERAS_BACKEND was set"
        )
    problem = refusal(wanted, settings, replicas=job.overrides.cpu_replicas)
    if problem:
        raise SettingsError(problem)


def _seed_everything(seed: int) -> None:
    """``keras.utils.set_random_seed``: Python's, NumPy's, Keras's and (when installed) TensorFlow's generators.

    Keras seeds TensorFlow whenever it is installed, importing it on JAX and PyTorch
    too: its start-up lines are kept off stderr as the first import of Keras's are.
    """
    import keras

    from builder_app.core.quiet import native_stderr_silenced

    with native_stderr_silenced():
        keras.utils.set_random_seed(seed)


def _one_or_list(arrays: list) -> Any:
    return arrays[0] if len(arrays) == 1 else arrays


def _configure_devices(cpu_replicas: int = 0) -> dict[str, Any]:
    """GPUs with memory growth on (TensorFlow), data-parallel over several devices (JAX); what trains.

    On JAX, several GPUs, or ``cpu_replicas`` logical CPU devices (made by XLA's
    flag when the child started, see :func:`~builder_app.training.backends.child_environment`),
    train through Keras's own ``keras.distribution.DataParallel``: the variables
    are replicated, each batch is split between the devices.
    """
    import keras

    from builder_app.training.backends import describe

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        names = gpu_names()
        if cpu_replicas > 1:
            cpus = jax.devices("cpu")
            if len(cpus) < cpu_replicas:
                from builder_app.core.training_settings import SettingsError

                raise SettingsError(
                    f"JAX sees {len(cpus)} CPU devices, not {cpu_replicas}: it was started before XLA_FLAGS asked for them"
                )
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=cpus[:cpu_replicas]))
            description = describe(backend, f"{cpu_replicas} logical CPUs")
            return {"description": description, "gpus": 0, "cpus": cpu_replicas, "backend": backend, "shards": cpu_replicas}
        if len(names) > 1:
            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=gpus))
        description = describe(backend, describe_devices(names))
        return {"description": description, "gpus": len(names), "cpus": 0, "backend": backend, "shards": max(1, len(names))}
    if backend == "tensorflow":
        import tensorflow as tf

        if cpu_replicas > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
            return {"description": f"{cpu_replicas} logical CPUs", "gpus": 0, "cpus": cpu_replicas, "backend": backend}
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except (RuntimeError, ValueError):
                pass  # already initialised
    names = gpu_names()
    return {"description": describe(backend, describe_devices(names)), "gpus": len(names), "cpus": 0, "backend": backend}


def gpu_names() -> list[str]:
    """The names of the GPUs Keras's backend sees (TensorFlow, JAX or PyTorch), without configuring them."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        names = []
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
            except (RuntimeError, ValueError):
                names.append(gpu.name)
        return names
    if keras.backend.backend() == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    if keras.backend.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def describe_devices(names: list[str]) -> str:
    """"CPU", "GPU: <name>" or "<n> GPUs: <names>", as the runner and the editor say it."""
    if not names:
        return "CPU"
    return f"GPU: {names[0]}" if len(names) == 1 else f"{len(names)} GPUs: {', '.join(names)}"


def _strategy(devices: dict[str, Any]):
    """MirroredStrategy when several GPUs (or logical CPUs) are there (TensorFlow backend), else None."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if devices["gpus"] > 1:
        return tf.distribute.MirroredStrategy()
    if devices["cpus"] > 1:
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    return None


def _optimizer(settings: dict[str, Any]):
    import keras

    spec = settings["optimizer"]
    config = dict(spec["config"])
    schedule = settings["learning_rate_schedule"]
    if schedule is not None:
        config["learning_rate"] = getattr(keras.optimizers.schedules, schedule["class_name"])(**schedule["config"])
    return getattr(keras.optimizers, spec["class_name"])(**config)


def _schedule(settings: dict[str, Any]):
    """The run's learning-rate schedule (a fresh one, a function of the step), or None."""
    import keras

    schedule = settings["learning_rate_schedule"]
    if schedule is None:
        return None
    return getattr(keras.optimizers.schedules, schedule["class_name"])(**schedule["config"])


def _callbacks(settings: dict[str, Any]) -> list:
    import keras

    from builder_app.core.training_settings import CALLBACKS

    made = []
    for key, config in settings["callbacks"].items():
        if key == "backup_and_restore":
            # Two checkpoints: a crash while one is written leaves the other.
            config = {"double_checkpoint": True, **config}
        made.append(getattr(keras.callbacks, CALLBACKS[key])(**config))
    return made


def _metric_names(settings: dict[str, Any]) -> list[str]:
    names = []
    for metrics in settings["metrics"]:
        for metric in metrics:
            names.append({"acc": "accuracy", "ce": "crossentropy"}.get(metric, metric))
    return names if len(settings["metrics"]) == 1 else []


def _reporter(*args):
    """The callback that posts batch and epoch events and honours stop and pause.

    It touches nothing but the queue and the two flags. Defined here, in a
    function, because keras is imported only in the child.

    On JAX the model's variables live outside the model during an epoch, and
    every read of ``Callback.model`` puts them back (a copy of all of them, then
    the next step gathers them again): a batch event reads the model only where
    another backend needs it. On JAX its learning rate is the schedule's at the
    step (counted here) or the one read when the epoch began; the epoch event
    reads the model's own.

    Where the backend allows it (JAX, PyTorch), Keras runs a batch's end on a
    thread pool (``async_safe``), so that the training loop never waits for a
    step's loss to reach Python: the batch events are made there, in any order
    (a batch older than the last one sent is skipped), and pause and stop are
    answered at a batch's beginning, in the training loop itself.
    """
    import keras

    lazy_model = keras.backend.backend() == "jax"

    class Reporter(keras.callbacks.Callback):
        async_safe = True  # on_train_batch_end touches the queue and this object (under its lock) only

        def __init__(self, queue, stop, pause, batch_size, steps, samples, schedule=None):
            super().__init__()
            self.lock = threading.Lock()
            self.sent_batch = -1
            self.window_from = 0
            self.schedule = schedule
            self.epoch_rate = float("nan")
            self.epoch_iterations = 0
            self.queue, self.stop, self.pause = queue, stop, pause
            self.batch_size, self.steps, self.samples = batch_size, steps, samples
            # Keras's batch logs hold the epoch's running mean, weighted by batch size;
            # the loss of the batches since the last event is recovered from two of them.
            self.sent_mean = 0.0
            self.sent_samples = 0
            self.epoch = 0
            self.nan = False
            self.started = time.monotonic()
            self.last_sent = 0.0
            self.window_start = time.monotonic()
            self.epoch_started = time.monotonic()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            if lazy_model:  # the variables are in the model between epochs: reading them is free
                self.epoch_rate = _learning_rate(self.model)
                self.epoch_iterations = int(self.model.optimizer.iterations)
            with self.lock:
                self.epoch_started = time.monotonic()
                self.sent_mean, self.sent_samples = 0.0, 0
                self.sent_batch = -1
                # Throughput counts training batches only, not the validation between epochs.
                self.window_start = self.epoch_started
                self.window_from = 0

        def on_train_batch_begin(self, batch, logs=None):
            # In the training loop (a batch's end may run on Keras's thread pool): pause and stop here.
            if self.pause.is_set() and not self.stop.is_set():
                self.queue.put(events.paused())
                while self.pause.is_set() and not self.stop.is_set():
                    time.sleep(0.05)
                self.queue.put(events.resumed())
                with self.lock:
                    self.window_start = time.monotonic()
                    self.window_from = batch
            if self.stop.is_set():
                self.model.stop_training = True  # this batch is the last

        def on_train_batch_end(self, batch, logs=None):
            with self.lock:
                self._batch_end(batch, logs)

        def _batch_end(self, batch, logs):
            now = time.monotonic()
            last_of_epoch = batch == self.steps - 1
            if batch <= self.sent_batch:
                return  # a later batch's event is out already
            if now - self.last_sent >= BATCH_EVENT_SECONDS or last_of_epoch:
                running = float((logs or {}).get("loss", float("nan")))
                seen = min((batch + 1) * self.batch_size, self.samples) if self.samples else batch + 1
                fresh = seen - self.sent_samples
                loss = running
                if fresh > 0 and self.sent_samples and math.isfinite(running):
                    loss = (running * seen - self.sent_mean * self.sent_samples) / fresh
                self.sent_mean, self.sent_samples = running, seen
                elapsed = max(now - self.window_start, 1e-9)
                self.queue.put(
                    events.batch(
                        epoch=self.epoch,
                        step=batch,
                        global_step=self.epoch * self.steps + batch,
                        loss=loss,
                        running_loss=running,
                        learning_rate=self.batch_rate(batch),
                        samples_per_second=max(batch - self.window_from + 1, 0) * self.batch_size / elapsed,
                        seconds=now - self.started,
                    )
                )
                self.last_sent = now
                self.sent_batch = batch
                self.window_start = now
                self.window_from = batch + 1
                if not math.isfinite(running):
                    self.nan = True

        def batch_rate(self, batch: int) -> float:
            """The learning rate after ``batch``'s step."""
            if not lazy_model:
                return _learning_rate(self.model)
            if self.schedule is not None:
                try:
                    return float(self.schedule(self.epoch_iterations + batch + 1))
                except (TypeError, ValueError):
                    return self.epoch_rate
            return self.epoch_rate

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.monotonic() - self.epoch_started
            samples = self.steps * self.batch_size
            clean = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
            if any(not math.isfinite(v) for k, v in clean.items() if k.endswith("loss")):
                self.nan = True
            self.queue.put(
                events.epoch(
                    epoch=epoch,
                    logs=clean,
                    learning_rate=_learning_rate(self.model),
                    seconds=seconds,
                    samples_per_second=samples / max(seconds, 1e-9),
                )
            )

    return Reporter(*args)


def _learning_rate(model) -> float:
    try:
        return float(model.optimizer.learning_rate)
    except (TypeError, ValueError, AttributeError):
        return float("nan")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
