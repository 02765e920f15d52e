"""Importing Keras without TensorFlow's start-up chatter on stderr (command line, training child)."""

from __future__ import annotations

import os
import sys


def import_keras_quietly() -> None:
    """Imports Keras (and TensorFlow) with the C++ start-up chatter kept off stderr.

    TensorFlow 2.21 logs through Abseil before Abseil's log level applies, so
    TF_CPP_MIN_LOG_LEVEL cannot hide those lines; stderr is pointed at /dev/null
    for the import alone. An import that fails still raises, and is reported.
    """
    if "keras" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                import keras  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
