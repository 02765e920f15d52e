"""What a training run tells its watchers: plain dicts, one per event.

The runner's child process puts these on a queue; the GUI's dashboard and the
``builder-app train`` command read them. They are plain JSON-able dicts (they
cross a process boundary, and a run's history is saved in the project), each
with a ``"kind"``:

``started``
    ``device`` ("CPU" or "GPU: <name>", "2 GPUs: ..." under MirroredStrategy),
    ``epochs``, ``steps_per_epoch``, ``batch_size``, ``samples`` (training
    samples), ``validation_samples``, ``metrics`` (the Keras log names the epochs
    will carry, e.g. ``["loss", "accuracy", "val_loss", "val_accuracy"]``).
``batch``
    ``epoch`` (from 0), ``step`` (from 0 within the epoch), ``global_step``,
    ``loss`` (the mean loss of the batches since the previous batch event),
    ``running_loss`` (Keras's batch log: the epoch's mean so far), ``learning_rate``, ``samples_per_second`` (over the last batches),
    ``seconds`` (since the start).
``epoch``
    ``epoch`` (from 0), ``logs`` (Keras's epoch logs: ``loss``, ``val_loss``,
    ``accuracy``, ...), ``learning_rate``, ``seconds`` (the epoch's duration),
    ``samples_per_second``.
``paused`` / ``resumed``
    No fields.
``finished``
    ``status``: ``"completed"``, ``"stopped"`` (the user stopped it),
    ``"early_stopped"`` (a callback stopped it) or ``"nan"`` (TerminateOnNaN);
    ``history`` (Keras's ``History.history``), ``seconds``, ``weights`` (path of
    the trained weights file the child wrote, or None).
``failed``
    ``message`` (one line: what went wrong), ``hint`` (what to do, or "").
"""

from __future__ import annotations

from typing import Any

STARTED = "started"
BATCH = "batch"
EPOCH = "epoch"
PAUSED = "paused"
RESUMED = "resumed"
FINISHED = "finished"
FAILED = "failed"

#: Kinds after which the run sends nothing more.
FINAL = frozenset({FINISHED, FAILED})

Event = dict[str, Any]


def event(kind: str, **fields: Any) -> Event:
    """One event: ``{"kind": kind, **fields}``."""
    return {"kind": kind, **fields}
