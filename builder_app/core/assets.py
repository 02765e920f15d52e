"""Layer assets: the files Keras's ``layer.save_assets(dir)`` writes, kept with the layer.

An adapted ``IntegerLookup``, ``StringLookup`` or ``TextVectorization`` keeps its
vocabulary not in its config nor in its weights but in an asset file
(``vocabulary.txt``), which a ``.keras`` file holds under ``assets/<layer path>/``.
The graph keeps such files on the layer (:attr:`builder_app.core.graph.Layer.assets`,
file name -> bytes), the project file keeps them as members
``assets/<layer path>/<file>`` (format 4), and every way of building the model
hands them back to Keras's own ``layer.load_assets(dir)``.

Everything here is plain data: names are checked, sizes bounded, nothing read is
executed. This module never imports Keras nor Qt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from builder_app.core.graph import Layer, ModelGraph
from builder_app.core.safe_io import MIB as _MIB
from builder_app.core.safe_io import Refused
from builder_app.core.safe_io import size_text as _size

# Limits (read at call time, so tests can lower them).
#: Asset files in one project (all layers together).
MAX_ASSET_FILES = 32
#: Bytes of one asset file.
MAX_ASSET_BYTES = 256 * _MIB
#: Bytes of all asset files together.
MAX_ALL_ASSETS_BYTES = 512 * _MIB

#: The folder of the project file (and of a ``.keras`` file) that holds assets.
ASSETS_DIR = "assets"
#: A file name Keras writes for an asset: no folders, no leading dot.
ASSET_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
#: A layer path as the weights use it: layer names joined by '/'.
_LAYER_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


def walk_assets(graph: ModelGraph, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """Every layer holding assets (sub-models' layers included), with its path."""
    for layer in graph.layers.values():
        label = f"{prefix}{layer.name}"
        if layer.assets:
            yield label, layer
        if layer.submodel is not None:
            yield from walk_assets(layer.submodel, f"{label}/")


def member_name(layer_path: str, file_name: str) -> str:
    """The project-file member holding one asset file."""
    return f"{ASSETS_DIR}/{layer_path}/{file_name}"


def is_layer_path(path: str) -> bool:
    return bool(path) and all(_LAYER_PART.fullmatch(part) for part in path.split("/"))


def find_layer(graph: ModelGraph, path: str) -> Layer | None:
    """The layer a path like ``outer/inner`` names, or None."""
    layer: Layer | None = None
    current: ModelGraph | None = graph
    for part in path.split("/"):
        if current is None:
            return None
        layer = current.layers.get(part)
        if layer is None:
            return None
        current = layer.submodel
    return layer


def checked_assets(graph: ModelGraph) -> dict[str, dict[str, bytes]]:
    """Layer path -> {file: bytes}, checked as loading checks them (raises Refused)."""
    found: dict[str, dict[str, bytes]] = {}
    files = 0
    total = 0
    for label, layer in walk_assets(graph):
        assets = layer.assets
        if not isinstance(assets, dict):
            raise Refused(f"the assets of layer '{label}' are a {type(assets).__name__}, not a dict")
        if not is_layer_path(label):
            raise Refused(f"layer '{label[:80]}' cannot keep assets: its name is not a plain file name")
        for file_name, data in assets.items():
            check_file_name(file_name, label)
            if not isinstance(data, bytes | bytearray):
                raise Refused(f"the asset '{file_name}' of layer '{label}' is a {type(data).__name__}, not bytes")
            check_size(len(data), f"the asset '{file_name}' of layer '{label}'")
            files += 1
            total += len(data)
        found[label] = {name: bytes(data) for name, data in assets.items()}
    check_totals(files, total)
    return found


def check_file_name(file_name: Any, label: str) -> None:
    if not isinstance(file_name, str) or not ASSET_FILE.fullmatch(file_name):
        raise Refused(f"layer '{label}' has an asset named {str(file_name)[:80]!r}, not a plain file name")


def check_size(nbytes: int, what: str) -> None:
    if nbytes > MAX_ASSET_BYTES:
        raise Refused(f"{what} takes {_size(nbytes)}; an asset file takes at most {_size(MAX_ASSET_BYTES)}")


def check_totals(files: int, nbytes: int) -> None:
    if files > MAX_ASSET_FILES:
        raise Refused(f"the layers hold {files} asset files; a project holds at most {MAX_ASSET_FILES}")
    if nbytes > MAX_ALL_ASSETS_BYTES:
        raise Refused(f"the layers' assets take {_size(nbytes)}; a project holds at most {_size(MAX_ALL_ASSETS_BYTES)}")


def check_entry(entry: Any, where: str) -> dict[str, list[str]]:
    """project.json's ``"assets"``: layer path -> list of file names (raises Refused)."""
    if not isinstance(entry, dict):
        raise Refused(f"{where} should be an object")
    files = 0
    for path, names in entry.items():
        if not is_layer_path(path):
            raise Refused(f"{where} names a layer {path[:80]!r}, which is not a layer path")
        if not isinstance(names, list) or not names:
            raise Refused(f"{where}: layer '{path}' should have a list of file names")
        for name in names:
            check_file_name(name, path)
        if len(set(names)) != len(names):
            raise Refused(f"{where}: layer '{path}' names a file twice")
        files += len(names)
    if files > MAX_ASSET_FILES:
        raise Refused(f"{where} names {files} asset files; a project holds at most {MAX_ASSET_FILES}")
    return entry
