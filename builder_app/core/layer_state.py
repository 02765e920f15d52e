"""A layer's state beyond its weights: asset files, handed to Keras's own per-layer loading.

An adapted ``IntegerLookup``, ``StringLookup`` or ``TextVectorization`` keeps its
vocabulary in an asset file (see :mod:`builder_app.core.assets`). Every Keras
object made for such a layer (:func:`builder_app.core.keras_build.make_keras_layer`,
so shape inference, ``.keras`` and SavedModel exports alike) gets its files through
``layer.load_assets(dir)``; the Python export writes the vocabulary as a literal
(:func:`vocabulary_literal`). A lookup with no vocabulary at all cannot be called
("Table not initialized"), so it is a node error, not a model that fails later.

Keras is imported lazily; no Qt here.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from builder_app.core.messages import clean_message

#: The asset file Keras's lookup layers write.
VOCABULARY_FILE = "vocabulary.txt"


def give_assets(obj: Any, layer: Any) -> str | None:
    """Loads ``layer.assets`` into the Keras object ``obj``; a problem sentence, or None."""
    assets = getattr(layer, "assets", None)
    loads = hasattr(obj, "load_assets")
    if assets:
        if not loads:
            return f"it holds asset files ({', '.join(sorted(assets))}) that its class does not load"
        if _config_of(obj).get("output_mode") == "tf_idf" and _config_of(obj).get("idf_weights") is None:
            return (
                "an adapted TF-IDF lookup keeps its IDF weights apart from its vocabulary, and this "
                "version does not carry them: set 'vocabulary' and 'idf_weights'"
            )
        with tempfile.TemporaryDirectory(prefix="builder-app-assets-") as folder:
            for name, data in assets.items():
                with open(os.path.join(folder, name), "wb") as out:
                    out.write(data)
            try:
                obj.load_assets(folder)
            except Exception as exc:  # noqa: BLE001 - the layer's own refusal, in its words
                return f"its vocabulary (asset files) could not be loaded: {clean_message(exc)}"
        return None
    if loads and _needs_vocabulary(obj):
        return (
            "it has no vocabulary, so Keras cannot call it: set 'vocabulary', or import the .keras "
            "file of the model it was adapted in (its vocabulary comes with it)"
        )
    return None


def _needs_vocabulary(obj: Any) -> bool:
    config = _config_of(obj)
    return "vocabulary" in config and config.get("vocabulary") is None


def _config_of(obj: Any) -> dict[str, Any]:
    try:
        config = obj.get_config()
    except Exception:  # noqa: BLE001 - a layer that cannot say is not judged
        return {}
    return config if isinstance(config, dict) else {}


def held_assets(obj: Any) -> dict[str, bytes] | None:
    """The files Keras's ``obj.save_assets(dir)`` writes (None: it writes none)."""
    if not hasattr(obj, "save_assets"):
        return None
    with tempfile.TemporaryDirectory(prefix="builder-app-assets-") as folder:
        obj.save_assets(folder)
        found: dict[str, bytes] = {}
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    found[name] = handle.read()
    return found or None


def vocabulary_literal(layer: Any) -> list[Any] | None:
    """The vocabulary an asset file holds, as Keras's ``load_assets`` reads it (None: none)."""
    data = (getattr(layer, "assets", None) or {}).get(VOCABULARY_FILE)
    if data is None:
        return None
    lines = data.decode("utf-8").splitlines()
    while lines and lines[-1] == "":
        lines.pop()
    config = getattr(layer, "config", {}) or {}
    dtype = str(config.get("vocabulary_dtype") or ("int64" if layer.class_name == "IntegerLookup" else "string"))
    if dtype.startswith(("int", "uint")):
        return [int(line) for line in lines]
    return list(lines)
