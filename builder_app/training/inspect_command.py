"""``builder-app inspect``: a node's output on one sample, from the command line (the logic; cli.py parses).

    builder-app inspect PROJECT --node LAYER [--node LAYER ...] [--sample N | --random SEED]
                        [--training] [--png F.png] [--json]

``LAYER`` is a layer's name (its first call's output 0) or ``LAYER:N``, its
output N (a node with several outputs: an LSTM's states, a split).
Prints one line per node (its shape and statistics), or with ``--json`` one JSON
object per node, one a line: ``layer``, ``output_shape``, ``mean``, ``std``, ``min``,
``max``, ``zero_fraction``, ``nan_count`` (and ``inf_count``, ``node``,
``class_name``, ``training``, ``differs_in_training``, ``display``, ``port``,
``outputs``, ``sample``).
The sample is the project's training data sample N (``--sample``, by default 0 when
the project names data) or a seeded random input (``--random``). ``--training``
runs the layers as in training (Dropout drops, BatchNormalization uses the batch's
statistics). Exit 0, or 2 for bad arguments or a project that cannot be inspected
(:class:`~builder_app.training.activations.InspectError`, one line). No Qt: ``--png``
is drawn by cli.py through ``ui/inspect``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from builder_app.training.activations import (
    ActivationProbe,
    InspectError,
    NodeActivation,
    Sample,
    data_sample,
    find_target,
    load_project_data,
    random_inputs,
)

__all__ = ["InspectError", "checked_nodes", "run"]


def checked_nodes(project, names: list[str]) -> list[tuple[str, int]]:
    """The (node id, output) each ``--node`` names, checked without Keras (the output's range is checked once built).

    Raises:
        InspectError: A name is not a layer of the model (the message names it).
    """
    return [find_target(project.graph, name) for name in names]


def choose_sample(project, probe: ActivationProbe, *, index: int | None, seed: int | None) -> Sample:
    """The sample ``--sample`` / ``--random`` name (by default: data sample 0, or random seed 0 without data).

    Raises:
        InspectError: The data cannot be read, or has no such sample.
    """
    if seed is not None:
        return random_inputs(probe.model, seed)
    if index is None and (project.training or {}).get("data") is None:
        return random_inputs(probe.model, 0)
    return data_sample(load_project_data(project, probe.model), index or 0)


def run(project, args: Any) -> tuple[int, list[NodeActivation], Sample]:
    """Inspects what ``args`` asks; prints the result; returns (exit code, activations, sample).

    Raises:
        InspectError: A bad argument or a project that cannot be inspected.
    """
    checked_nodes(project, args.node)
    probe = ActivationProbe(project.graph, seed=int((project.training or {}).get("seed", 0) or 0))
    nodes = [probe.target_for(name) for name in args.node]
    sample = choose_sample(project, probe, index=args.sample, seed=args.random)
    activations = probe.run(nodes, sample, training=args.training)
    if args.json:
        for activation in activations:
            print(json.dumps({**_plain(activation.to_dict()), "sample": sample.description}))
    else:
        mode = "training=True" if args.training else "training=False (inference)"
        print(f"{sample.description}, {mode}")
        for activation in activations:
            print(_line(activation))
            if args.training:
                differing = probe.differing_layers(activation.node)
                if differing:
                    print(f"  computes differently when training, up to here: {', '.join(differing)}")
    return 0, activations, sample


def _line(activation: NodeActivation) -> str:
    stats = activation.stats
    shape = "(" + ", ".join("None" if d is None else str(d) for d in activation.output_shape) + ")"

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    return (
        f"{activation.layer} ({activation.class_name}) {shape}: mean {number(stats.mean)}  std {number(stats.std)}  "
        f"min {number(stats.min)}  max {number(stats.max)}  zeros {stats.zero_fraction:.1%}  "
        f"nan {stats.nan_count}  inf {stats.inf_count}"
    )


def _plain(value: Any) -> Any:
    """JSON-plain: a float that is not finite becomes None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
