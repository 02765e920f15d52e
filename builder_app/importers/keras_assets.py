"""A ``.keras`` file's assets (adapted vocabularies) -> the graph's layers.

Keras keeps a layer's asset files under ``assets/<the layer's weights path>/``
(``assets/layers/integer_lookup/vocabulary.txt``). Each layer's own files are read
as bytes, under the limits of :mod:`builder_app.core.assets`, kept on the layer
(:attr:`~builder_app.core.graph.Layer.assets`) and handed at once to Keras's own
``layer.load_assets(dir)`` (:func:`builder_app.core.keras_build.make_keras_layer`):
files Keras cannot load are left out with a warning naming the layer, which then
shows a node error. Nothing is extracted next to anything else, nothing executed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any

from builder_app.core import assets as _assets
from builder_app.core import safe_io
from builder_app.core.graph import INPUT_CLASS, Layer, ModelGraph
from builder_app.core.safe_io import Refused, size_text
from builder_app.core.text import one_line

_PREFIX = "assets/"
#: Files a .keras archive may hold under assets/ (a TextVectorization writes its
#: vocabulary twice: its own and its inner lookup's).
_ARCHIVE_FILES_PER_KEPT = 4


def read_archive_assets(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], graph: ModelGraph, warnings: list[str]
) -> None:
    """Gives each layer the asset files the archive holds for it (see the module doc)."""
    files = {name: info for name, info in members.items() if name.startswith(_PREFIX) and not name.endswith("/")}
    limit = _assets.MAX_ASSET_FILES * _ARCHIVE_FILES_PER_KEPT
    if len(files) > limit:
        raise Refused(f"the archive holds {len(files)} asset files; a model may hold at most {limit}")
    declared = sum(info.file_size for info in files.values())
    if declared > 2 * _assets.MAX_ALL_ASSETS_BYTES:
        raise Refused(
            f"the archive's assets take {size_text(declared)}; the limit is {size_text(2 * _assets.MAX_ALL_ASSETS_BYTES)}"
        )
    folders: dict[str, dict[str, zipfile.ZipInfo]] = {}
    for name, info in files.items():
        folder, _, file_name = name[len(_PREFIX):].rpartition("/")
        folders.setdefault(folder, {})[file_name] = info
    used: list[str] = []
    for label, layer, path in layer_paths(graph):
        own = folders.get(path)
        if not own:
            continue
        used.append(path)
        kept: dict[str, bytes] = {}
        for file_name, info in sorted(own.items()):
            _assets.check_file_name(file_name, label)
            _assets.check_size(info.file_size, f"the asset '{file_name}' of layer '{label}'")
            safe_io.check_member(info)
            buffer = bytearray()
            safe_io.copy_member(archive, info, _assets.MAX_ASSET_BYTES, buffer.extend, kind=".keras model")
            kept[file_name] = bytes(buffer)
        layer.assets = kept
        problem = _loading_problem(layer)
        if problem is not None:
            layer.assets = None
            warnings.append(f"layer '{label}': its vocabulary was not imported ({one_line(problem, 200)})")
    _assets.checked_assets(graph)  # the project must hold them: refused in one line if not
    unused = sorted(f for f in folders if not any(f == p or f.startswith(p + "/") for p in used))
    if unused:
        more = f" (and {len(unused) - 1} more)" if len(unused) > 1 else ""
        warnings.append(f"ignored the assets in 'assets/{unused[0][:80]}', which no layer of the model owns{more}")


def _loading_problem(layer: Layer) -> str | None:
    """Why Keras's own ``load_assets`` refuses the layer's files (None: it loads them)."""
    from builder_app.core.keras_build import LayerError, make_keras_layer

    try:
        make_keras_layer(layer)
    except LayerError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - anything else Keras raises, in its words
        from builder_app.core.messages import clean_message

        return clean_message(exc)
    return None


def layer_paths(graph: ModelGraph, prefix: str = "layers", label_prefix: str = "") -> Iterator[tuple[str, Layer, str]]:
    """(label, layer, its path in a Keras 3 file), as Keras names a layer's weights and assets.

    Keras names a layer's entry after its class, snake-cased and counted in the
    order of the model's ``layers`` (the config's order); a sub-model's layers sit
    under its own entry.
    """
    from builder_app.core import catalog, keras_compat
    from builder_app.core.keras_build import is_operation

    used: dict[str, int] = {}
    for layer in graph.layers.values():
        if is_operation(layer.class_name):
            continue
        if layer.submodel is not None:
            base = "sequential" if layer.class_name == "Sequential" else "functional"
        else:
            try:
                base = keras_compat.to_snake_case(catalog.keras_class(layer.class_name).__name__)
            except KeyError:
                base = keras_compat.to_snake_case(layer.class_name.rpartition(">")[2].rpartition(".")[2])
        path = f"{prefix}/{_unique(base, used)}"
        label = f"{label_prefix}{layer.name}"
        if layer.submodel is not None:
            yield from layer_paths(layer.submodel, f"{path}/layers", f"{label}/")
        elif layer.class_name != INPUT_CLASS:
            yield label, layer, path


def _unique(name: str, used: dict[str, Any]) -> str:
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name
