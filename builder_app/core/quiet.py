"""Importing Keras without TensorFlow's start-up chatter on stderr (command line, training child)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def import_keras_quietly() -> None:
    """Imports Keras (and TensorFlow) with the C++ start-up chatter kept off stderr.

    TensorFlow 2.21 logs through Abseil before Abseil's log level applies, so
    TF_CPP_MIN_LOG_LEVEL cannot hide those lines; stderr is pointed at /dev/null
    for the import alone. An import that fails still raises, and is reported.
    """
    if "keras" in sys.modules:
        return
    with native_stderr_silenced():
        import keras  # noqa: F401


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Points file descriptor 2 at /dev/null for the block (C++ logging included).

    For code that may import TensorFlow (Keras, a converter such as tf2onnx).
    Nothing is silenced when ``TF_CPP_MIN_LOG_LEVEL`` is ``0`` (someone wants the logs)
    or when TensorFlow is already imported (its start-up lines are behind us).
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
