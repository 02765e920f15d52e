"""The layer catalog kept as JSON, so the editor has it before TensorFlow is imported.

:func:`builder_app.core.catalog.derive` reads everything from Keras (seconds, after
a TensorFlow import of many more); the result is one
:class:`~builder_app.core.catalog.CatalogData`. It is stored once per Keras in the
user's cache directory (:func:`cache_dir`; ``BUILDER_APP_CACHE_DIR`` overrides it),
and a copy for the pinned Keras ships in the package (``core/catalogs/``, made by
``python -m builder_app.core.catalog_cache``). Which file fits is decided by a
:func:`cache_key` read without importing Keras: the Keras version (from the
package metadata), the Keras settings that change configs (backend, floatx,
image data format, from ``keras.json`` and ``KERAS_BACKEND``), the app version,
the file format and a digest of the code that derives the catalog. A file of
another key, or one that cannot be read (corrupt, truncated, of another shape),
is ignored: the catalog is derived again and the user's file rewritten.

Values the JSON itself cannot hold exactly are tagged (:func:`encode_value`):
a tuple is ``{"__tuple__": [...]}``, a frozenset ``{"__frozenset__": [...]}``,
a float that is not finite ``{"__float__": "inf"}``, a dict whose keys are not
plain strings (or look like a tag) ``{"__dict__": [[key, value], ...]}``. Ints,
finite floats (``repr`` round-trips), bools, None, strings and lists are JSON's own.
No Qt, no Keras.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from builder_app import __version__
from builder_app.core.atomic import write_atomically
from builder_app.core.catalog import KINDS, CatalogData, LayerSpec, ParamSpec, PortsSpec

#: The layout of the JSON file; a change of encoding or of CatalogData bumps it.
FORMAT = 1
#: Overrides the user's cache directory (tests isolate it).
CACHE_DIR_ENV = "BUILDER_APP_CACHE_DIR"
#: Where the shipped catalogs live, one file a Keras version.
SHIPPED_DIR = Path(__file__).resolve().parent / "catalogs"
#: The modules whose code decides what the catalog holds (their digest is in the key).
DERIVING_MODULES = ("catalog.py", "config_check.py", "docstrings.py")

_APP = "builder-app"
_TAGS = ("__tuple__", "__frozenset__", "__float__", "__dict__")


class CacheError(ValueError):
    """A cache file that cannot be used: not JSON, another key, or not of the expected shape."""


# --------------------------------------------------------------------------- #
# Where, and for what
# --------------------------------------------------------------------------- #


def cache_dir() -> Path:
    """The user's cache directory of the app, as platformdirs places it.

    ``BUILDER_APP_CACHE_DIR`` overrides it; else ``%LOCALAPPDATA%/builder-app/Cache``
    on Windows, ``~/Library/Caches/builder-app`` on macOS, and
    ``$XDG_CACHE_HOME/builder-app`` (``~/.cache/builder-app``) elsewhere.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / _APP / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / _APP
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / _APP


def keras_version() -> str | None:
    """The installed Keras's version, from its package metadata (Keras is not imported)."""
    try:
        return importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        return None


def keras_settings() -> dict[str, str]:
    """The Keras settings that change what the catalog holds, read as Keras reads them.

    ``backend`` (``KERAS_BACKEND`` first), ``floatx`` (the dtype of default policies)
    and ``image_data_format`` (the ``data_format`` of default configs), from
    ``$KERAS_HOME/keras.json`` or ``~/.keras/keras.json``.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    config: dict[str, Any] = {}
    try:
        with open(os.path.join(os.path.expanduser(home), "keras.json"), encoding="utf-8") as file:
            loaded = json.load(file)
        config = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    settings = {
        "backend": config.get("backend", "tensorflow"),
        "floatx": config.get("floatx", "float32"),
        "image_data_format": config.get("image_data_format", "channels_last"),
    }
    if os.environ.get("KERAS_BACKEND"):
        settings["backend"] = os.environ["KERAS_BACKEND"]
    return {k: str(v) for k, v in settings.items()}


def source_digest() -> str | None:
    """A digest of the code deriving the catalog; None where it is not on disk (a frozen bundle)."""
    digest = hashlib.sha256()
    here = Path(__file__).resolve().parent
    try:
        for name in DERIVING_MODULES:
            # Line endings as git normalizes them: a Windows checkout is the same code.
            code = (here / name).read_bytes().replace(b"\r\n", b"\n")
            digest.update(name.encode() + b"\0" + code + b"\0")
    except OSError:
        return None
    return digest.hexdigest()[:16]


def cache_key(version: str | None = None) -> dict[str, Any] | None:
    """What a catalog file must have been made for to be used here; None without Keras.

    Args:
        version: The Keras version (default: the installed one).
    """
    version = version or keras_version()
    if version is None:
        return None
    return {
        "format": FORMAT,
        "app": __version__,
        "keras": version,
        "settings": keras_settings(),
        "code": source_digest(),
    }


def user_path(key: dict[str, Any]) -> Path:
    """The user's cache file of a key: one a Keras version and its settings."""
    settings = json.dumps(key["settings"], sort_keys=True).encode()
    return cache_dir() / f"catalog-keras-{key['keras']}-{hashlib.sha256(settings).hexdigest()[:8]}.json"


def shipped_path(version: str) -> Path:
    """The catalog shipped in the package for a Keras version (it may not exist)."""
    return SHIPPED_DIR / f"keras-{version}.json"


# --------------------------------------------------------------------------- #
# Values: JSON plus tags for what JSON cannot hold exactly
# --------------------------------------------------------------------------- #


def encode_value(value: Any) -> Any:
    """``value`` as plain JSON data that :func:`decode_value` turns back into an equal value.

    Raises:
        TypeError: A value of another type (an object Keras left in a config).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(v) for v in value]}
    if isinstance(value, frozenset):
        items = sorted(value, key=lambda v: (type(v).__name__, repr(v)))
        return {"__frozenset__": [encode_value(v) for v in items]}
    if isinstance(value, dict):
        plain = all(isinstance(k, str) for k in value) and not (
            len(value) == 1 and next(iter(value)) in _TAGS
        )
        if plain:
            return {k: encode_value(v) for k, v in value.items()}
        return {"__dict__": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    raise TypeError(f"a {type(value).__name__} cannot be cached: {value!r}")


def decode_value(value: Any) -> Any:
    """The value :func:`encode_value` encoded.

    Raises:
        CacheError: A tag holding something it cannot hold.
    """
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        return _untag({k: decode_value(v) for k, v in value.items()})
    return value


def _untag(obj: dict[str, Any]) -> Any:
    """A JSON object whose values are decoded already: the tagged value, or itself.

    It is the ``object_hook`` of :func:`loads`, so a file is decoded as it is parsed.
    """
    if len(obj) == 1:
        tag, inner = next(iter(obj.items()))
        if tag in _TAGS:
            return _decode_tagged(tag, inner)
    return obj


def _decode_tagged(tag: str, items: Any) -> Any:
    if tag == "__float__":
        if items not in ("inf", "-inf", "nan"):
            raise CacheError(f"{items!r} is not a non-finite float")
        return float(items)
    if not isinstance(items, list):
        raise CacheError(f"{tag} holds {type(items).__name__}, not a list")
    if tag == "__tuple__":
        return tuple(items)
    try:
        if tag == "__frozenset__":
            return frozenset(items)
        return {k: v for k, v in items}  # __dict__: [key, value] pairs
    except (TypeError, ValueError) as exc:
        raise CacheError(f"{tag} holds {exc}") from None


# --------------------------------------------------------------------------- #
# The catalog's data
# --------------------------------------------------------------------------- #

# How each field of a spec is checked when read back: a file that parses but holds
# something else is refused whole (it is derived again), never half-used.
_STR = (str,)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise CacheError(what)


def _spec_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.init)


def _encode_spec(spec: LayerSpec) -> dict[str, Any]:
    out = {
        name: encode_value(getattr(spec, name))
        for name in _spec_fields(LayerSpec)
        if name not in ("params", "ports")
    }
    out["params"] = [_encode_param(p) for p in spec.params]
    out["ports"] = {name: encode_value(getattr(spec.ports, name)) for name in _spec_fields(PortsSpec)}
    return out


def _encode_param(param: ParamSpec) -> dict[str, Any]:
    return {name: encode_value(getattr(param, name)) for name in _spec_fields(ParamSpec)}


def _record(raw: Any, cls: type, where: str) -> dict[str, Any]:
    names = _spec_fields(cls)
    _expect(isinstance(raw, dict) and set(raw) == set(names), f"{where} is not a {cls.__name__}")
    return raw


def _decode_param(raw: Any, where: str) -> ParamSpec:
    raw = _record(raw, ParamSpec, where)
    _expect(isinstance(raw["name"], str) and raw["kind"] in KINDS, f"{where}: bad name or kind")
    _expect(isinstance(raw["required"], bool) and isinstance(raw["nullable"], bool), f"{where}: bad flags")
    _expect(raw["choices"] is None or isinstance(raw["choices"], tuple), f"{where}: bad choices")
    _expect(isinstance(raw["doc"], str), f"{where}: bad doc")
    return ParamSpec(**raw)


def _decode_spec(raw: Any, where: str) -> LayerSpec:
    raw = dict(_record(raw, LayerSpec, where))
    params = raw.pop("params")
    ports = _record(raw.pop("ports"), PortsSpec, f"{where}.ports")
    values = raw
    for name in ("class_name", "category", "description", "module", "doc"):
        _expect(isinstance(values[name], _STR), f"{where}.{name} is not a string")
    _expect(isinstance(params, list), f"{where}.params is not a list")
    _expect(
        isinstance(ports["style"], str)
        and isinstance(ports["names"], tuple)
        and all(isinstance(n, str) for n in ports["names"])
        and type(ports["min_inputs"]) is int
        and (ports["max_inputs"] is None or type(ports["max_inputs"]) is int),
        f"{where}.ports is malformed",
    )
    return LayerSpec(
        **values,
        params=tuple(_decode_param(p, f"{where}.params[{i}]") for i, p in enumerate(params)),
        ports=PortsSpec(**ports),
    )


def _str_set(value: Any, where: str) -> frozenset[str]:
    _expect(isinstance(value, frozenset) and all(isinstance(v, str) for v in value), f"{where} is not a set of names")
    return value


def _mapping(raw: Any, where: str) -> dict[str, Any]:
    _expect(isinstance(raw, dict) and all(isinstance(k, str) for k in raw), f"{where} is not an object")
    return raw


def encode(data: CatalogData, key: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a catalog made for ``key``."""
    return {
        "key": key,
        "keras_version": data.keras_version,
        "specs": {name: _encode_spec(spec) for name, spec in data.specs.items()},
        "input_spec": _encode_spec(data.input_spec),
        "default_configs": {name: encode_value(c) for name, c in data.default_configs.items()},
        "aliases": dict(data.aliases),
        "accepted": {name: encode_value(names) for name, names in data.accepted.items()},
        "nested": {
            kind: {name: [_encode_param(p) for p in params] for name, params in classes.items()}
            for kind, classes in data.nested.items()
        },
        "identifiers": {kind: encode_value(names) for kind, names in data.identifiers.items()},
        "dtype_names": list(data.dtype_names),
        "dtype_policy_classes": encode_value(data.dtype_policy_classes),
        "quantizer_classes": encode_value(data.quantizer_classes),
    }


def decode(document: Any, key: dict[str, Any] | None = None) -> CatalogData:
    """The catalog in a JSON document, checked whole.

    Args:
        document: What :func:`encode` wrote, parsed and decoded (:func:`decode_value`).
        key: The key it must have been made for (None: any).

    Raises:
        CacheError: Another key, or not of the expected shape.
    """
    document = _mapping(document, "the file")
    expected = {"key", *(f.name for f in fields(CatalogData) if f.init)}
    _expect(set(document) == expected, "the file's fields are not a catalog's")
    if key is not None:
        _expect(key_matches(document["key"], key), "the file was made for another Keras or app")
    specs = _mapping(document["specs"], "specs")
    configs = _mapping(document["default_configs"], "default_configs")
    _expect(all(c is None or isinstance(c, dict) for c in configs.values()), "a default config is not an object")
    aliases = _mapping(document["aliases"], "aliases")
    _expect(all(isinstance(v, str) for v in aliases.values()), "an alias is not a name")
    dtype_names = document["dtype_names"]
    _expect(isinstance(dtype_names, list) and all(isinstance(n, str) for n in dtype_names), "dtype_names")
    nested: dict[str, dict[str, tuple[ParamSpec, ...]]] = {}
    for kind, classes in _mapping(document["nested"], "nested").items():
        nested[kind] = {}
        for name, params in _mapping(classes, kind).items():
            _expect(isinstance(params, list), f"{kind}.{name} is not a list")
            nested[kind][name] = tuple(_decode_param(p, f"{kind}.{name}[{i}]") for i, p in enumerate(params))
    version = document["keras_version"]
    _expect(isinstance(version, str), "keras_version is not a string")
    data = CatalogData(
        keras_version=version,
        specs={name: _decode_spec(raw, name) for name, raw in specs.items()},
        input_spec=_decode_spec(document["input_spec"], "input_spec"),
        default_configs=dict(configs),
        aliases=dict(aliases),
        accepted={
            name: _str_set(v, f"accepted.{name}")
            for name, v in _mapping(document["accepted"], "accepted").items()
        },
        nested=nested,
        identifiers={
            kind: _str_set(v, f"identifiers.{kind}")
            for kind, v in _mapping(document["identifiers"], "identifiers").items()
        },
        dtype_names=tuple(dtype_names),
        dtype_policy_classes=_str_set(document["dtype_policy_classes"], "dtype_policy_classes"),
        quantizer_classes=_str_set(document["quantizer_classes"], "quantizer_classes"),
    )
    # What the catalog looks up by name must be there for every class it lists.
    _expect(set(data.default_configs) == set(data.specs) == set(data.accepted), "the classes disagree")
    _expect("InputLayer" in data.specs and data.ordered, "no layers")
    return data


def dumps(data: CatalogData, key: dict[str, Any]) -> str:
    """The catalog as JSON text (NaN and infinities are tagged, never JSON's extensions)."""
    return json.dumps(encode(data, key), allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes, key: dict[str, Any] | None = None) -> CatalogData:
    """The catalog in JSON text made for ``key``.

    Raises:
        CacheError: Not JSON, another key, or not a catalog.
    """
    try:
        document = json.loads(text, object_hook=_untag)
    except CacheError:
        raise
    except (ValueError, RecursionError, TypeError) as exc:
        raise CacheError(f"not JSON: {exc}") from None
    try:
        return decode(document, key)
    except CacheError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        raise CacheError(f"not a catalog: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- #
# Reading and writing
# --------------------------------------------------------------------------- #


def key_matches(stored: Any, key: dict[str, Any]) -> bool:
    """Whether a file made for ``stored`` serves ``key``.

    Where the deriving code is not on disk (a frozen bundle: ``key["code"]`` is
    None) it cannot have changed since the files were made, so any code digest fits.
    """
    if not isinstance(stored, dict):
        return False
    if key["code"] is None:
        return {**stored, "code": None} == key
    return stored == key


def _read(path: Path, key: dict[str, Any]) -> CatalogData | None:
    try:
        text = path.read_bytes()
    except OSError:
        return None
    try:
        return loads(text, key)
    except CacheError:
        return None


def load(version: str | None = None) -> tuple[CatalogData, str] | None:
    """The cached catalog of the installed Keras and where it was: ``"cache"`` or ``"shipped"``.

    The user's file first, then the one shipped in the package; None when
    neither was made for this Keras, app and settings (or neither can be read).
    Never imports Keras, never raises for a bad file.
    """
    key = cache_key(version)
    if key is None:
        return None
    data = _read(user_path(key), key)
    if data is not None:
        return data, "cache"
    data = _read(shipped_path(key["keras"]), key)
    if data is not None:
        return data, "shipped"
    return None


def store(data: CatalogData) -> Path | None:
    """Writes a derived catalog to the user's cache; None when it cannot (a read-only home).

    The key is the installed Keras's, which must be the one ``data`` came from.
    """
    key = cache_key()
    if key is None or key["keras"] != data.keras_version:
        return None
    path = user_path(key)
    try:
        text = dumps(data, key).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda handle: handle.write(text))
    except (OSError, TypeError, ValueError):
        return None
    return path


def write_shipped(data: CatalogData) -> Path:
    """Writes the catalog that ships in the package for ``data``'s Keras (the script's job)."""
    key = cache_key(data.keras_version)
    assert key is not None
    path = shipped_path(data.keras_version)
    text = json.dumps(encode(data, key), allow_nan=False, ensure_ascii=False, indent=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8") + b"\n"))
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m builder_app.core.catalog_cache``: derives the catalog, writes the shipped copy."""
    from builder_app.core import catalog
    from builder_app.core.quiet import import_keras_quietly

    import_keras_quietly()
    data = catalog.derive()
    path = write_shipped(data)
    print(f"{path}: {len(data.specs)} classes, Keras {data.keras_version}, {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
