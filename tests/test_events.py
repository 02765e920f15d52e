"""Training events: typed dicts whose kind is a StrEnum, plain on the wire and in JSON."""

from __future__ import annotations

import json
import pickle
import typing

import pytest

from builder_app.training import events as ev
from builder_app.training.events import EventKind, FinishStatus, kind_of

ONE_OF_EACH = {
    EventKind.STARTED: ev.started(
        device="CPU",
        epochs=2,
        steps_per_epoch=4,
        batch_size=32,
        samples=128,
        validation_samples=32,
        metrics=["loss", "val_loss"],
    ),
    EventKind.BATCH: ev.batch(
        epoch=0,
        step=1,
        global_step=1,
        loss=0.5,
        running_loss=0.6,
        learning_rate=1e-3,
        samples_per_second=640.0,
        seconds=0.1,
    ),
    EventKind.EPOCH: ev.epoch(
        epoch=0, logs={"loss": 0.5}, learning_rate=1e-3, seconds=0.4, samples_per_second=320.0
    ),
    EventKind.PAUSED: ev.paused(),
    EventKind.RESUMED: ev.resumed(),
    EventKind.FINISHED: ev.finished(
        status=FinishStatus.COMPLETED, history={"loss": [0.5]}, seconds=1.0, weights=None
    ),
    EventKind.FAILED: ev.failed(
        message="out of memory while training", hint="try a smaller batch size"
    ),
}
SHAPES = {
    EventKind.STARTED: ev.Started,
    EventKind.BATCH: ev.Batch,
    EventKind.EPOCH: ev.Epoch,
    EventKind.PAUSED: ev.Paused,
    EventKind.RESUMED: ev.Resumed,
    EventKind.FINISHED: ev.Finished,
    EventKind.FAILED: ev.Failed,
}


def test_the_kinds_keep_their_strings():
    assert [k.value for k in EventKind] == [
        "started",
        "batch",
        "epoch",
        "paused",
        "resumed",
        "finished",
        "failed",
    ]
    assert [s.value for s in FinishStatus] == ["completed", "stopped", "early_stopped", "nan"]
    assert EventKind.BATCH == "batch" and hash(EventKind.BATCH) == hash("batch")
    assert {k for k in EventKind if k.final} == ev.FINAL == {EventKind.FINISHED, EventKind.FAILED}


@pytest.mark.parametrize("kind", list(EventKind))
def test_each_event_has_exactly_the_fields_of_its_type(kind):
    event = ONE_OF_EACH[kind]
    shape = SHAPES[kind]
    assert event["kind"] is kind
    assert set(event) == set(shape.__required_keys__) == set(typing.get_type_hints(shape))
    assert typing.get_args(typing.get_type_hints(shape)["kind"]) == (kind,)
    assert set(typing.get_args(ev.Event)) == set(SHAPES.values())


@pytest.mark.parametrize("kind", list(EventKind))
def test_events_are_plain_json_and_match_after_a_round_trip(kind):
    event = ONE_OF_EACH[kind]
    text = json.dumps(event)
    assert f'"kind": "{kind.value}"' in text
    back = json.loads(text)
    assert type(back["kind"]) is str and back == event
    assert kind_of(back) is kind
    match back["kind"]:  # a plain string matches the enum's member
        case EventKind.STARTED | EventKind.BATCH | EventKind.EPOCH:
            matched = "progress"
        case EventKind.PAUSED | EventKind.RESUMED:
            matched = "pause"
        case EventKind.FINISHED | EventKind.FAILED:
            matched = "final"
    paused = kind in (EventKind.PAUSED, EventKind.RESUMED)
    assert matched == ("pause" if paused else "final" if kind.final else "progress")


@pytest.mark.parametrize("kind", list(EventKind))
def test_events_cross_a_process_boundary(kind):
    event = ONE_OF_EACH[kind]
    back = pickle.loads(pickle.dumps(event))
    assert back == event and back["kind"] is kind


def test_finished_takes_a_status_string_as_well():
    event = ev.finished(status="early_stopped", history={}, seconds=None, weights=None)
    assert event["status"] is FinishStatus.EARLY_STOPPED
    with pytest.raises(ValueError):
        ev.finished(status="exploded", history={}, seconds=None, weights=None)


def test_unknown_or_missing_kinds_are_none():
    assert kind_of({"kind": "no such kind"}) is None
    assert kind_of({}) is None
    assert kind_of({"kind": ["batch"]}) is None
    assert kind_of({"kind": "epoch"}) is EventKind.EPOCH
