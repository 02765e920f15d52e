"""Keras model files (``.keras``, legacy ``.h5``, model-config ``.json``) -> projects.

Nothing in the file is executed, imported or followed. Keras's own ``safe_mode``
has been bypassed again and again (module gadgets in ``config.json``, a config
that switches unsafe deserialization on, ``.h5`` files ignoring safe_mode,
vocabulary paths reading local files, HDF5 and zip bombs), so the config never
reaches Keras deserialization:

* ``config.json`` (or the ``.h5`` file's ``model_config``) is parsed as plain
  JSON, within size and depth limits, and mapped onto the graph by
  :func:`~builder_app.importers.keras_config.graph_from_model_config`. Every class
  is then looked up in the catalog; a class nobody knows, a Lambda, a vocabulary
  naming a file all stay visible, inert nodes that shape inference reports.
* The weights file is walked with h5py before anything reads it: hard links
  only, plain numbers stored contiguously in the file, no dataset declaring more
  than the file holds (:mod:`builder_app.core.safe_io`). Only then are the
  weights loaded, into a model rebuilt from the graph through the catalog
  (:func:`~builder_app.core.keras_model.build_keras_model`), by Keras's own
  per-layer loading code, and copied into the graph's layers by name.

Weights need a model that builds: when the imported config has errors (which is
allowed: ``validate`` then shows where), the import keeps the graph and says
that the weights were left out.

What the config declares is bounded before anything acts on it:

* Sizes. Rebuilding the model allocates every variable its config declares, and
  a few-KB file can declare a 940 GB layer. So the shape engine counts each
  layer's weights first (recording ``add_weight`` shapes, creating nothing), and
  each is compared with what the weights file holds at that layer's path. A model
  whose layers declare more than the file holds for them, by more than
  :data:`MAX_UNBACKED_WEIGHTS_BYTES` in all, is never rebuilt: where the file
  holds weights for the largest such layer, the file contradicts its own config
  and is refused in one line naming the layer; where it holds none (a model saved
  unbuilt, a config edited by hand), the graph is imported without weights, with
  a warning naming the layer, since there was nothing to import for it.
* Depth. A model is imported only if its project can be saved and reopened:
  ``project.json`` nests at most :data:`builder_app.core.project.MAX_JSON_DEPTH`
  levels, and each sub-model level adds three (see :func:`max_submodel_levels`).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from builder_app.core import display, safe_io
from builder_app.core.graph import INPUT_CLASS, Layer, ModelGraph
from builder_app.core.project import Project
from builder_app.core.safe_io import GIB, MIB, Refused, size_text
from builder_app.core.text import one_line
from builder_app.importers.keras_config import ConfigError, graph_from_model_config

# Limits on what importing accepts (read at call time, so tests can lower them).
#: Size of the model file.
MAX_FILE_BYTES = 16 * GIB
#: Members of a .keras archive (assets included).
MAX_MEMBERS = 10_000
#: Size of the zip central directory.
MAX_CENTRAL_DIRECTORY_BYTES = 4 * MIB
#: Size of the model config (config.json, the .h5 model_config, a .json file).
MAX_CONFIG_BYTES = 64 * MIB
#: Nesting of the model config.
MAX_CONFIG_DEPTH = 200
#: Size of the weights file.
MAX_WEIGHTS_BYTES = 8 * GIB
#: Groups and datasets in the weights file.
MAX_H5_OBJECTS = 1_000_000
#: What rebuilding the model for its weights may allocate (counted as float32) for
#: layers whose weights the file does not hold: a layer missing from a file is
#: tolerated (it keeps its initializers), a few-KB file declaring gigabytes is not.
MAX_UNBACKED_WEIGHTS_BYTES = 1 * GIB

#: JSON levels one sub-model adds to project.json: the graph's "layers", the layer,
#: and its "submodel" graph.
_LEVELS_PER_SUBMODEL = 3
#: JSON levels of project.json around and inside the innermost graph, for layers
#: as Keras writes them: the document, the graph, "layers", a layer, its "config",
#: an initializer, its "config", one nested value (a list in it).
_LEVELS_AROUND_SUBMODELS = 8
#: Bytes of one weight as the limits count it.
_FLOAT32_BYTES = 4

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_CONFIG_MEMBER = "config.json"
_METADATA_MEMBER = "metadata.json"
_WEIGHTS_MEMBER = "model.weights.h5"
_MODEL_CLASSES = ("Functional", "Model", "Sequential")


class ModelImportError(Exception):
    """The file cannot be imported; the one-line message names it and says why."""


@dataclass
class ImportResult:
    """An imported model.

    Attributes:
        project: The new project: the graph (laid out), with the weights the file held.
        warnings: One line for each thing the import left out or could not keep.
    """

    project: Project
    warnings: list[str] = field(default_factory=list)


def import_model(path: str | os.PathLike[str], on_graph: Callable[[ModelGraph], None] | None = None) -> ImportResult:
    """Imports a ``.keras`` file, a legacy ``.h5`` model or a model-config JSON.

    The format is told by the file's first bytes, not its name.

    Args:
        path: The model file.
        on_graph: For a file with weights, called (on the importing thread) with the
            model's graph as soon as the config is mapped, before the weights are read:
            an editor can show the model meanwhile. The graph is the import's own: the
            callback may copy it, never change it.

    Raises:
        ModelImportError: The file is unreadable, not a Keras model, or unsafe.
            Nothing else is raised (KeyboardInterrupt aside).
    """
    path = Path(path)
    name = path.name or str(path)
    try:
        return _import(path, on_graph)
    except Refused as exc:
        problem = str(exc)
    except ConfigError as exc:
        problem = f"not a model Keras can describe: {exc}"
    except zipfile.BadZipFile as exc:
        problem = f"not a .keras model (damaged zip archive: {exc})"
    except RecursionError:
        problem = "the model is nested too deeply"
    except MemoryError:
        problem = "not enough memory to read it"
    except Exception as exc:  # the contract: one error type, one line
        problem = f"cannot be read ({type(exc).__name__}: {exc})"
    raise ModelImportError(f"{name}: {one_line(problem)}") from None


def _import(path: Path, on_graph: Callable[[ModelGraph], None] | None = None) -> ImportResult:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise Refused(f"cannot open the file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise Refused("not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise Refused(f"the file takes {size_text(info.st_size)}; the limit is {size_text(MAX_FILE_BYTES)}")
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise Refused(f"cannot open the file ({exc.strerror or exc})") from None
    with handle:
        head = handle.read(8)
        handle.seek(0)
        if head.startswith(b"PK"):
            return _import_keras_archive(handle, info.st_size, on_graph)
        if head == _HDF5_SIGNATURE:
            return _import_h5(path, on_graph)
        if head.lstrip()[:1] in (b"{", b"") and info.st_size:
            return _import_json(handle, info.st_size)
    raise Refused("not a Keras model: expected a .keras archive, an HDF5 .h5 model or a model-config JSON")


# ==================================================================== JSON
def _import_json(handle: IO[bytes], size: int) -> ImportResult:
    if size > MAX_CONFIG_BYTES:
        raise Refused(f"the file takes {size_text(size)}; a model config takes at most {size_text(MAX_CONFIG_BYTES)}")
    data = _parse_config(handle.read(), "the file")
    warnings: list[str] = []
    graph = _graph(data, warnings)
    return _finish(graph, [*warnings, "a model config holds no weights; the layers start from their initializers"])


def _parse_config(data: bytes | str, where: str) -> Any:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Refused(f"{where} is not UTF-8 text (byte {exc.start})") from None
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError as exc:
        raise Refused(f"{where} is not JSON: line {exc.lineno}: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise Refused(f"{where} is nested too deeply") from None
    except ValueError as exc:  # numbers with too many digits
        raise Refused(f"{where}: {exc}") from None
    if safe_io.json_depth(parsed, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH:
        raise Refused(f"{where} is nested more than {MAX_CONFIG_DEPTH} levels deep")
    return parsed


def _graph(data: Any, warnings: list[str], renamed: dict[str, str] | None = None) -> ModelGraph:
    renamed = {} if renamed is None else renamed
    if isinstance(data, dict) and "class_name" in data and data.get("class_name") not in _MODEL_CLASSES:
        if "config" in data and isinstance(data["config"], dict) and "layers" in data["config"]:
            # A subclass of Functional saved with its config: its layers are plain.
            data = {"class_name": "Functional", "config": data["config"]}
    graph = graph_from_model_config(data, renamed)
    _check_depth(graph)
    if renamed:
        old, new = next(iter(renamed.items()))
        more = f" (and {len(renamed) - 1} more)" if len(renamed) > 1 else ""
        warnings.append(f"Keras 3 layer names cannot hold '/': renamed '{old}' to '{new}'{more}")
    return graph


def max_submodel_levels() -> int:
    """How deep sub-models may nest in an imported model: as deep as a project can save.

    ``project.json`` nests at most :data:`builder_app.core.project.MAX_JSON_DEPTH`
    levels (read at call time, as the project reads it); each sub-model adds
    three, and the innermost layers' own configs take a few more.
    """
    from builder_app.core import project

    return (project.MAX_JSON_DEPTH - _LEVELS_AROUND_SUBMODELS) // _LEVELS_PER_SUBMODEL


def _submodel_levels(graph: ModelGraph) -> int:
    """How many sub-models deep ``graph`` nests (0: none), without recursion."""
    deepest = 0
    stack = [(graph, 0)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((layer.submodel, level + 1) for layer in current.layers.values() if layer.submodel is not None)
    return deepest


def _check_depth(graph: ModelGraph) -> None:
    """Refuses a model whose project could not be saved and reopened for its nesting."""
    from builder_app.core import project

    levels, limit = _submodel_levels(graph), max_submodel_levels()
    if levels > limit:
        raise Refused(f"sub-models are nested {levels} deep; a project holds at most {limit} sub-model levels")
    graph_dict = graph.to_dict()
    problem = project.nodes_problem(graph_dict, "the model")
    if problem is not None:
        raise Refused(problem)
    # The levels fit; a layer's own config may still nest too deeply to be saved.
    most = project.MAX_JSON_DEPTH
    if safe_io.json_depth({"graph": graph_dict}, most) > most:
        deepest = max(_all_layers(graph), key=lambda item: safe_io.json_depth(item[1].config, most))
        raise Refused(
            f"the config of layer '{deepest[0]}' nests too deeply: a project nests at most {most} levels"
        )


def _all_layers(graph: ModelGraph, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """Every layer, sub-models' included, labelled ``sub-model/layer``."""
    for layer in graph.layers.values():
        yield f"{prefix}{layer.name}", layer
        if layer.submodel is not None:
            yield from _all_layers(layer.submodel, f"{prefix}{layer.name}/")


# ================================================================== .keras
def _import_keras_archive(handle: IO[bytes], size: int, on_graph: Callable[[ModelGraph], None] | None = None) -> ImportResult:
    safe_io.check_zip_directory(
        handle,
        size,
        kind=".keras model",
        max_members=MAX_MEMBERS,
        max_directory_bytes=MAX_CENTRAL_DIRECTORY_BYTES,
    )
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (ValueError, EOFError) as exc:
        raise Refused(f"not a .keras model (damaged zip archive: {exc})") from None
    warnings: list[str] = []
    with archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            if safe_io.is_unsafe_member_name(info.filename):
                raise Refused(f"the archive holds a member with an unsafe name {info.filename[:80]!r}")
            if info.filename in members:
                raise Refused(f"the archive holds {info.filename[:80]} twice")
            members[info.filename] = info
        if _CONFIG_MEMBER not in members:
            raise Refused(f"not a .keras model (the archive has no {_CONFIG_MEMBER})")
        config = _read_member(archive, members[_CONFIG_MEMBER], MAX_CONFIG_BYTES)
        parsed = _parse_config(config, _CONFIG_MEMBER)
        graph = _graph(parsed, warnings)
        if any(name.startswith("assets/") and not name.endswith("/") for name in members):
            from builder_app.importers.keras_assets import read_archive_assets

            # Before the preview: a lookup's vocabulary decides its output's shape.
            read_archive_assets(archive, members, graph, warnings)
        if on_graph is not None and _WEIGHTS_MEMBER in members:
            on_graph(graph)
        others = sorted(
            name
            for name in members
            if name not in (_CONFIG_MEMBER, _METADATA_MEMBER, _WEIGHTS_MEMBER) and not name.startswith("assets/")
        )
        if others:
            warnings.append(f"ignored {len(others)} unknown archive member(s), e.g. {others[0][:80]!r}")
        if _WEIGHTS_MEMBER in members:
            safe_io.check_member(members[_WEIGHTS_MEMBER])
            with tempfile.TemporaryDirectory(prefix="builder-app-import-") as scratch:
                weights_path = Path(scratch) / _WEIGHTS_MEMBER
                with open(weights_path, "wb") as out:
                    safe_io.copy_member(
                        archive, members[_WEIGHTS_MEMBER], MAX_WEIGHTS_BYTES, out.write, kind=".keras model"
                    )
                _load_keras_weights(graph, weights_path, warnings, parsed)
        else:
            warnings.append("the file holds no weights; the layers start from their initializers")
    return _finish(graph, warnings)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    safe_io.check_member(info)
    buffer = bytearray()
    safe_io.copy_member(archive, info, limit, buffer.extend, kind=".keras model")
    return bytes(buffer)


def _check_h5_file(h5: h5py.File, label: str, size: int) -> dict[str, int]:
    """Walks every group and dataset of an untrusted HDF5 file, reading no data.

    After this, whatever reads the file reads plain numbers stored in it, never
    more than the file's size, and follows no link out of it.

    Returns:
        The elements of the datasets under each group, by the group's path
        (``"layers/dense/vars"``, ``"layers/dense"``, ...; the root is ``""``).
    """
    budget = safe_io.H5Budget(label, bytes_left=size, objects_left=MAX_H5_OBJECTS)
    held: dict[str, int] = {}
    stack: list[h5py.Group] = [h5]
    while stack:
        group = stack.pop()
        for key in sorted(safe_io.h5_children(group, budget)):
            kind = group.get(key, getclass=True)
            if kind is h5py.Group:
                stack.append(group[key])
            else:
                dataset = safe_io.check_h5_dataset(group, key, f"'{group.name.rstrip('/')}/{key}'", budget)
                count = int(dataset.size)
                path = group.name.strip("/")
                while True:
                    held[path] = held.get(path, 0) + count
                    if not path:
                        break
                    path = path.rpartition("/")[0]
    return held


def _load_keras_weights(graph: ModelGraph, weights_path: Path, warnings: list[str], parsed: Any = None) -> None:
    """Keras 3 weights (``model.weights.h5``) -> the graph's layers."""
    label = _WEIGHTS_MEMBER
    try:
        with h5py.File(weights_path, "r") as h5:
            held = _check_h5_file(h5, label, weights_path.stat().st_size)
    except OSError as exc:
        raise Refused(f"{label} is not a readable HDF5 file ({exc})") from None
    model = _rebuilt(graph, warnings, lambda engine: _keras3_declared(graph, engine, held))
    if model is None:
        _load_without_code(graph, weights_path, warnings, held, parsed)
        return
    from builder_app.core import keras_compat

    with keras_compat.weights_store(weights_path) as store:
        for layer, obj, path in _saved_paths(graph, model, "layers"):
            exc = keras_compat.load_saved_state(obj, store, path)
            if exc is not None:
                warnings.append(f"layer '{layer.name}': its weights were not imported ({one_line(exc, 200)})")
            elif obj.weights:
                layer.weights = [np.array(w) for w in obj.get_weights()]


def _load_without_code(graph: ModelGraph, weights_path: Path, warnings: list[str], held, parsed) -> None:
    """The model lacks some custom layer's code: every other layer keeps its weights."""
    from builder_app.core import custom_code
    from builder_app.importers import partial_weights

    lacking = custom_code.needs_code(graph)
    if not lacking or parsed is None:
        return
    used: dict[str, int] = {}
    paths = {}
    for layer in graph.layers.values():
        if _is_operation(layer):
            continue
        if layer.submodel is not None:
            base = "sequential" if layer.class_name == "Sequential" else "functional"
        else:
            try:
                base = _snake_case(catalog_class_name(layer.class_name))
            except KeyError:
                base = _snake_case(custom_code.bare_name(layer.class_name))
        paths[layer.name] = f"layers/{_unique(base, used)}"
    loaded, missed = partial_weights.load_layer_by_layer(
        graph, weights_path, paths, held, partial_weights.build_configs(parsed)
    )
    names = sorted({graph.layers[graph.nodes[n].layer].name for n, _ in lacking})
    # The usual "not imported" warning would say the opposite of what happened now.
    warnings[:] = [w for w in warnings if not w.startswith("the weights were not imported: ")]
    warnings.append(
        f"the weights of {len(loaded)} layer(s) were imported layer by layer; "
        f"{len(names)} layer(s) need their code ({', '.join(repr(n) for n in names[:5])}): "
        "their weights stay in the file until it is imported with their code trusted "
        "(--custom-layers F.py --trust; a Lambda holds its code: --trust)"
    )
    lacking_names = set(names)
    warnings.extend(m for m in missed if m.partition("'")[2].partition("'")[0] not in lacking_names)


def catalog_class_name(class_name: str) -> str:
    """The Python name of a catalog class (KeyError outside the catalog)."""
    from builder_app.core import catalog

    return catalog.keras_class(class_name).__name__


#: (label of a layer, the weights it declares, the weights the file holds for it).
Declared = tuple[str, int, int]


def _rebuilt(graph: ModelGraph, warnings: list[str], declared: Callable[[Any], Iterator[Declared]]):
    """The Keras model the weights are loaded into, or None (with a warning).

    The shape engine checks the graph first, creating no variable: a model with
    errors is not built (its message names the node), and ``declared(engine)``
    is weighed against the file (see :func:`_check_declared`) before anything is
    allocated.

    Raises:
        Refused: The file holds weights for a layer that declares far more.
    """
    from builder_app.core.keras_model import BuildError, build_keras_model
    from builder_app.core.messages import problems_message
    from builder_app.core.shapes import ShapeEngine

    engine = ShapeEngine(graph)
    try:
        problems = engine.errors()
        if problems:
            warnings.append(f"the weights were not imported: {problems_message(graph, problems)}")
            return None
        if not _check_declared(list(declared(engine)), warnings):
            return None
    finally:
        engine.close()
    try:
        # The engine has validated the graph: building again would cost half as much again.
        return build_keras_model(graph, with_weights=False, validate=False)
    except BuildError as exc:
        warnings.append(f"the weights were not imported: {exc}")
        return None


def _check_declared(declared: list[Declared], warnings: list[str]) -> bool:
    """Whether the model may be rebuilt for weights the file holds; a warning if not.

    Layers declaring more weights than the file holds for them get none from it;
    rebuilding them would allocate what they declare. Up to
    :data:`MAX_UNBACKED_WEIGHTS_BYTES` of that is allowed (such a layer keeps its
    initializers, with Keras's own warning); beyond it, the largest is named.

    Raises:
        Refused: The file holds weights for that layer, just far fewer than it declares.
    """
    unbacked = [(label, wanted, held) for label, wanted, held in declared if wanted > held]
    excess = sum(wanted for _, wanted, _ in unbacked) * _FLOAT32_BYTES
    if excess <= MAX_UNBACKED_WEIGHTS_BYTES:
        return True
    label, wanted, held = max(unbacked, key=lambda item: item[1])
    what = f"layer '{label}' declares {wanted:,} weights ({size_text(wanted * _FLOAT32_BYTES)} as float32)"
    if held:
        raise Refused(f"{what}; the weights file holds {held:,} for it")
    more = f" (with {len(unbacked) - 1} more layer(s) the file lacks)" if len(unbacked) > 1 else ""
    warnings.append(
        f"the weights were not imported: {what} and the file holds none for it{more}; "
        f"the model is not rebuilt for more than {size_text(MAX_UNBACKED_WEIGHTS_BYTES)} of weights the file lacks"
    )
    return False


def _declared_weights(engine, graph: ModelGraph, name: str) -> int:
    """The weights layer ``name`` of ``graph`` declares, by the shape engine's count (0 if unknown)."""
    calls = graph.nodes_of_layer(name)
    sub = engine.engine_for(graph)
    result = sub.peek(calls[0]) if sub is not None and calls else None
    return (result.params or 0) if result is not None else 0


def _keras3_declared(graph: ModelGraph, engine, held: dict[str, int], prefix: str = "layers") -> Iterator[Declared]:
    """What each weighted layer declares and what a Keras 3 weights file holds at its path.

    The paths are :func:`_saved_paths`'s, found from the catalog's classes rather
    than from built Keras objects.
    """
    from builder_app.core import catalog

    used: dict[str, int] = {}
    for layer in graph.layers.values():
        if _is_operation(layer):
            continue
        if layer.submodel is not None:
            base = "sequential" if layer.class_name == "Sequential" else "functional"
        else:
            try:
                base = _snake_case(catalog.keras_class(layer.class_name).__name__)
            except KeyError:  # a class from outside keras.layers: Keras names it by its own name
                base = _snake_case(layer.class_name.rpartition(">")[2].rpartition(".")[2])
        path = f"{prefix}/{_unique(base, used)}"
        if layer.submodel is not None:
            yield from _keras3_declared(layer.submodel, engine, held, f"{path}/layers")
        elif layer.class_name != INPUT_CLASS:
            yield layer.name, _declared_weights(engine, graph, layer.name), held.get(path, 0)


def _saved_paths(graph: ModelGraph, model, prefix: str) -> Iterator[tuple[Layer, Any, str]]:
    """(layer, its Keras object, its path in a Keras 3 weights file), for every layer.

    Keras names a layer's group after its class, snake-cased and counted in the
    order of the model's ``layers``, which is the config's order; a sub-model's
    layers sit under its own group.
    """
    used: dict[str, int] = {}
    objects = {obj.name: obj for obj in model.layers}  # get_layer() searches the list each time
    for layer in graph.layers.values():
        if _is_operation(layer):
            continue  # keras.ops calls are not layers: Keras gives them no group
        obj = objects[layer.name]
        if layer.submodel is not None:
            base = "sequential" if layer.class_name == "Sequential" else "functional"
        else:
            base = _snake_case(type(obj).__name__)
        path = f"{prefix}/{_unique(base, used)}"
        if layer.submodel is not None:
            yield from _saved_paths(layer.submodel, obj, f"{path}/layers")
        elif layer.class_name != INPUT_CLASS:
            yield layer, obj, path


def _unique(name: str, used: dict[str, int]) -> str:
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _snake_case(name: str) -> str:
    from builder_app.core import keras_compat

    return keras_compat.to_snake_case(name)


def _is_operation(layer: Layer) -> bool:
    from builder_app.core.keras_build import is_operation

    return is_operation(layer.class_name)


# ===================================================================== .h5
def _import_h5(path: Path, on_graph: Callable[[ModelGraph], None] | None = None) -> ImportResult:
    warnings: list[str] = []
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise Refused(f"not a readable HDF5 file ({exc})") from None
    with h5:
        held = _check_h5_file(h5, "the file", path.stat().st_size)
        config = _h5_text_attribute(h5, "model_config")
        if config is None:
            if "layer_names" in h5.attrs or "model_weights" in h5:
                raise Refused("this .h5 file holds only weights; import the model it belongs to")
            raise Refused("not a Keras model (the HDF5 file has no model_config)")
        renamed: dict[str, str] = {}
        graph = _graph(_parse_config(config, "the model_config"), warnings, renamed)
        if on_graph is not None and "model_weights" in h5:
            on_graph(graph)
        if "model_weights" in h5:
            _load_legacy_weights(graph, h5["model_weights"], warnings, renamed, held)
        else:
            warnings.append("the file holds no weights; the layers start from their initializers")
    return _finish(graph, warnings)


def _h5_text_attribute(node: h5py.Group, name: str) -> str | None:
    if name not in node.attrs:
        return None
    attr = h5py.h5a.open(node.id, name.encode())
    if attr.get_storage_size() > MAX_CONFIG_BYTES:
        raise Refused(f"the {name} attribute takes more than {size_text(MAX_CONFIG_BYTES)}")
    value = node.attrs[name]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        raise Refused(f"the {name} attribute is not text")
    if len(value) > MAX_CONFIG_BYTES:
        raise Refused(f"the {name} attribute takes more than {size_text(MAX_CONFIG_BYTES)}")
    return value


def _h5_names(node: h5py.Group, name: str) -> list[str]:
    """A list-of-names attribute (``layer_names``, ``weight_names``); Keras may chunk it."""
    if name in node.attrs:
        chunks = [node.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in node.attrs:
            chunks.append(node.attrs[f"{name}{len(chunks)}"])
    names: list[str] = []
    for chunk in chunks:
        values = np.asarray(chunk).reshape(-1)
        if values.size > MAX_H5_OBJECTS:
            raise Refused(f"the {name} attribute lists too many names")
        for value in values:
            if isinstance(value, bytes):
                value = value.decode("utf-8", errors="replace")
            if not isinstance(value, str):
                raise Refused(f"the {name} attribute is not a list of names")
            names.append(value)
    return names


def _load_legacy_weights(
    graph: ModelGraph, group: h5py.Group, warnings: list[str], renamed: dict[str, str], held: dict[str, int]
) -> None:
    """Legacy HDF5 weights (``model_weights/<layer>/<weight path>``) -> the graph, by layer name."""
    if not isinstance(group, h5py.Group):
        raise Refused("'model_weights' is not a group")
    stored = {new: old for old, new in renamed.items()}

    def declared(engine) -> Iterator[Declared]:
        # Legacy files group a sub-model's weights under its own top-level name.
        for layer in graph.layers.values():
            if not _is_operation(layer) and layer.class_name != INPUT_CLASS:
                key = f"model_weights/{stored.get(layer.name, layer.name)}"
                yield layer.name, _declared_weights(engine, graph, layer.name), held.get(key, 0)

    model = _rebuilt(graph, warnings, declared)
    if model is None:
        return
    objects = dict(_legacy_objects(graph, model))
    for layer_name in _h5_names(group, "layer_names"):
        found = objects.get(renamed.get(layer_name, layer_name))
        layer_group = group.get(layer_name) if layer_name in group else None
        if not isinstance(layer_group, h5py.Group):
            raise Refused(f"the weights of layer '{layer_name[:80]}' are missing from 'model_weights'")
        weight_names = _h5_names(layer_group, "weight_names")
        if not weight_names:
            continue
        if found is None:
            warnings.append(f"the file holds weights for a layer '{layer_name[:80]}' that the model lacks")
            continue
        graph_layers, obj = found
        variables = list(obj.trainable_weights) + list(obj.non_trainable_weights)
        if len(variables) != len(weight_names):
            warnings.append(
                f"layer '{layer_name}': its weights were not imported (the file holds "
                f"{len(weight_names)} arrays, the layer has {len(variables)} variables)"
            )
            continue
        values = []
        for variable, weight_name in zip(variables, weight_names, strict=True):
            dataset = _legacy_dataset(layer_group, weight_name)
            if tuple(dataset.shape) != tuple(variable.shape):
                values = None
                warnings.append(
                    f"layer '{layer_name}': its weights were not imported ('{weight_name[:80]}' has "
                    f"shape {tuple(dataset.shape)}, the layer expects {tuple(variable.shape)})"
                )
                break
            values.append(np.asarray(dataset[()]))
        if values is None:
            continue
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        for inner_layer, inner_obj in graph_layers:
            if inner_obj.weights:
                inner_layer.weights = [np.array(w) for w in inner_obj.get_weights()]


def _legacy_objects(graph: ModelGraph, model) -> Iterator[tuple[str, tuple[list[tuple[Layer, Any]], Any]]]:
    """Top-level layer name -> (the graph layers it holds with their Keras objects, its Keras object)."""
    objects = {obj.name: obj for obj in model.layers}
    for layer in graph.layers.values():
        if _is_operation(layer) or layer.class_name == INPUT_CLASS:
            continue
        obj = objects[layer.name]
        yield layer.name, (list(_leaf_layers(layer, obj)), obj)


def _leaf_layers(layer: Layer, obj) -> Iterator[tuple[Layer, Any]]:
    if layer.submodel is None:
        yield layer, obj
        return
    for inner in layer.submodel.layers.values():
        if not _is_operation(inner) and inner.class_name != INPUT_CLASS:
            yield from _leaf_layers(inner, obj.get_layer(inner.name))


def _legacy_dataset(group: h5py.Group, weight_name: str) -> h5py.Dataset:
    """``group[weight_name]`` (the whole file was checked: hard links, plain data)."""
    parts = [part for part in weight_name.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise Refused(f"the weight name {weight_name[:80]!r} is not a path inside the file")
    node: Any = group
    for part in parts:
        if not isinstance(node, h5py.Group) or part not in node:
            raise Refused(f"the weight '{weight_name[:80]}' is missing from the file")
        node = node[part]
    if not isinstance(node, h5py.Dataset):
        raise Refused(f"the weight '{weight_name[:80]}' is not a dataset")
    return node


# ================================================================== common
def _finish(graph: ModelGraph, warnings: list[str]) -> ImportResult:
    # Display blocks from the layer names (collapsed for a big model) and a layout,
    # sub-models included: an imported model opens readable.
    display.prepare_imported(graph)
    return ImportResult(Project(graph), warnings)
