"""Saved models: ``.keras`` (plain Keras loads it) and TensorFlow SavedModel.

Keras writes straight into the target path, so a failed export would leave half a
file where the user's previous export was. Both exporters write beside the target
first and rename at the end: the previous export survives any failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from builder_app.core.atomic import write_atomically
from builder_app.core.graph import ModelGraph
from builder_app.core.keras_model import build_keras_model


def export_keras(graph: ModelGraph, path: str | os.PathLike[str], *, model=None):
    """Writes a ``.keras`` file, weights included.

    ``keras.saving.load_model(path, safe_mode=True)`` loads it in a Python that
    has never imported this app.

    Returns:
        The Keras model written (``model`` when given: the caller's build).
    """
    from builder_app.core import keras_compat
    from builder_app.exporters.io_structure import structured_model

    model = model or build_keras_model(graph)
    written = structured_model(graph, model)  # dict inputs stay dicts
    # Keras writes a .keras archive to an open file too: the atomic writer's.
    write_atomically(path, lambda handle: keras_compat.save_model(written, handle))
    return model


def export_savedmodel(graph: ModelGraph, directory: str | os.PathLike[str], *, model=None):
    """Writes a TensorFlow SavedModel for serving (``model.export``); returns the model."""
    from builder_app.exporters.io_structure import structured_model

    model = model or build_keras_model(graph)
    target = Path(directory)
    staging = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        structured_model(graph, model).export(str(staging), format="tf_saved_model", verbose=False)
        _replace_directory(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return model


def _replace_directory(new: Path, target: Path) -> None:
    """Puts ``new`` where ``target`` is; the old one is removed only once it is."""
    if not target.exists():
        os.replace(new, target)
        return
    if not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory")
    old = target.parent / f".{target.name}.{secrets.token_hex(6)}.old"
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
