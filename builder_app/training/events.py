"""What a training run tells its watchers: one typed dict per event, its kind an enum.

The runner's child process puts these on a queue; the GUI's dashboard and the
``builder-app train`` command read them. They stay plain JSON-able dicts (they
cross a process boundary, and what a run leaves is saved in the project), typed
as one :class:`~typing.TypedDict` per kind. Their ``"kind"`` is an
:class:`EventKind`, a :class:`~enum.StrEnum`: it equals, hashes and serializes as
the same string as before (``"started"``, ``"batch"``...), so a dict whose kind
is a plain string (read back from JSON, written by hand) matches just the same.

Make events with the functions named after their kind (:func:`started`,
:func:`batch`...), read them with ``match event["kind"]`` (or :func:`kind_of`
for events that may carry an unknown kind).

``started``
    ``device`` ("CPU" or "GPU: <name>", "2 GPUs: ..." under MirroredStrategy),
    ``epochs``, ``steps_per_epoch``, ``batch_size``, ``samples`` (training
    samples), ``validation_samples``, ``metrics`` (the Keras log names the epochs
    will carry, e.g. ``["loss", "accuracy", "val_loss", "val_accuracy"]``).
``batch``
    ``epoch`` (from 0), ``step`` (from 0 within the epoch), ``global_step``,
    ``loss`` (the mean loss of the batches since the previous batch event),
    ``running_loss`` (Keras's batch log: the epoch's mean so far),
    ``learning_rate``, ``samples_per_second`` (over the last batches),
    ``seconds`` (since the start).
``epoch``
    ``epoch`` (from 0), ``logs`` (Keras's epoch logs: ``loss``, ``val_loss``,
    ``accuracy``, ...), ``learning_rate``, ``seconds`` (the epoch's duration),
    ``samples_per_second``.
``paused`` / ``resumed``
    No fields.
``finished``
    ``status``, a :class:`FinishStatus`: ``"completed"``, ``"stopped"`` (the user
    stopped it), ``"early_stopped"`` (a callback stopped it) or ``"nan"``
    (TerminateOnNaN); ``history`` (Keras's ``History.history``), ``seconds`` (None
    when the run was ended from outside), ``weights`` (path of the trained weights
    file the child wrote, or None).
``failed``
    ``message`` (one line: what went wrong), ``hint`` (what to do, or "").

Nothing here imports Qt, TensorFlow or Keras.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal, TypedDict


class EventKind(StrEnum):
    """What an event reports; its value is the ``"kind"`` string on the wire."""

    STARTED = "started"
    BATCH = "batch"
    EPOCH = "epoch"
    PAUSED = "paused"
    RESUMED = "resumed"
    FINISHED = "finished"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """Whether the run sends nothing more after an event of this kind."""
        return self in FINAL


class FinishStatus(StrEnum):
    """How a run that did not fail ended (a ``finished`` event's ``status``)."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    EARLY_STOPPED = "early_stopped"
    NAN = "nan"


#: Kinds after which the run sends nothing more.
FINAL = frozenset({EventKind.FINISHED, EventKind.FAILED})


class Started(TypedDict):
    kind: Literal[EventKind.STARTED]
    device: str
    epochs: int
    steps_per_epoch: int
    batch_size: int
    samples: int
    validation_samples: int
    metrics: list[str]


class Batch(TypedDict):
    kind: Literal[EventKind.BATCH]
    epoch: int
    step: int
    global_step: int
    loss: float
    running_loss: float
    learning_rate: float
    samples_per_second: float
    seconds: float


class Epoch(TypedDict):
    kind: Literal[EventKind.EPOCH]
    epoch: int
    logs: dict[str, float]
    learning_rate: float
    seconds: float
    samples_per_second: float


class Paused(TypedDict):
    kind: Literal[EventKind.PAUSED]


class Resumed(TypedDict):
    kind: Literal[EventKind.RESUMED]


class Finished(TypedDict):
    kind: Literal[EventKind.FINISHED]
    status: FinishStatus
    history: dict[str, list[float]]
    seconds: float | None
    weights: str | None


class Failed(TypedDict):
    kind: Literal[EventKind.FAILED]
    message: str
    hint: str


#: Any event a run sends.
Event = Started | Batch | Epoch | Paused | Resumed | Finished | Failed
#: The last event of a run.
FinalEvent = Finished | Failed


def started(
    *,
    device: str,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    samples: int,
    validation_samples: int,
    metrics: list[str],
) -> Started:
    return {
        "kind": EventKind.STARTED,
        "device": device,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "samples": samples,
        "validation_samples": validation_samples,
        "metrics": list(metrics),
    }


def batch(
    *,
    epoch: int,
    step: int,
    global_step: int,
    loss: float,
    running_loss: float,
    learning_rate: float,
    samples_per_second: float,
    seconds: float,
) -> Batch:
    return {
        "kind": EventKind.BATCH,
        "epoch": epoch,
        "step": step,
        "global_step": global_step,
        "loss": loss,
        "running_loss": running_loss,
        "learning_rate": learning_rate,
        "samples_per_second": samples_per_second,
        "seconds": seconds,
    }


def epoch(
    *,
    epoch: int,
    logs: dict[str, float],
    learning_rate: float,
    seconds: float,
    samples_per_second: float,
) -> Epoch:
    return {
        "kind": EventKind.EPOCH,
        "epoch": epoch,
        "logs": dict(logs),
        "learning_rate": learning_rate,
        "seconds": seconds,
        "samples_per_second": samples_per_second,
    }


def paused() -> Paused:
    return {"kind": EventKind.PAUSED}


def resumed() -> Resumed:
    return {"kind": EventKind.RESUMED}


def finished(
    *,
    status: FinishStatus,
    history: dict[str, list[float]],
    seconds: float | None,
    weights: str | None,
) -> Finished:
    return {
        "kind": EventKind.FINISHED,
        "status": FinishStatus(status),
        "history": dict(history),
        "seconds": seconds,
        "weights": weights,
    }


def failed(*, message: str, hint: str = "") -> Failed:
    return {"kind": EventKind.FAILED, "message": message, "hint": hint}


def kind_of(event: Mapping[str, Any]) -> EventKind | None:
    """The kind of an event as an :class:`EventKind`; None when it has none we know.

    Events from elsewhere (a plain ``{"kind": "batch", ...}``, a newer runner) may
    carry a plain string or a kind this version does not know: watchers skip those.
    """
    try:
        return EventKind(event.get("kind"))
    except (TypeError, ValueError):
        return None
