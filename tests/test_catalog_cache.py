"""The layer catalog's JSON cache: exact round trips, keys, corrupt files, and an editor before TensorFlow."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from builder_app.core import catalog, catalog_cache

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "python -m builder_app.core.catalog_cache"


def exact(a, b, where="") -> None:
    """``a == b`` with the types too (True is not 1, 1 is not 1.0, a tuple is not a list); NaN equals NaN."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if is_dataclass(a):
        for f in fields(a):
            if f.compare:
                exact(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for key in a:
            exact(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            exact(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"
        if isinstance(a, float):
            assert math.copysign(1, a) == math.copysign(1, b), where  # -0.0 stays -0.0


@pytest.fixture(scope="module")
def live():
    """The catalog derived from the installed Keras in this process (imports it)."""
    from builder_app.core.quiet import import_keras_quietly

    import_keras_quietly()
    return catalog.derive()


@pytest.fixture
def no_shipped(monkeypatch, tmp_path):
    """A user cache of this test only and no shipped catalog; the catalog in use is forgotten."""
    monkeypatch.setenv(catalog_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(catalog_cache, "SHIPPED_DIR", tmp_path / "nothing-shipped")
    catalog._forget()
    yield tmp_path / "cache"
    catalog._forget()  # the next reader loads the real one again


def public_answers() -> dict:
    """What the editor reads before Keras, for every class, from the catalog in use."""
    names = list(catalog.catalog())
    return {
        "catalog": catalog.catalog(),
        "categories": catalog.categories(),
        "layer_spec": {n: catalog.layer_spec(n) for n in [*names, *catalog.ALIASES]},
        "default_config": {n: catalog.default_config(n) for n in [*names, "InputLayer"]},
        "input_spec": catalog.input_spec(),
        "nested": [catalog.initializer_classes(), catalog.regularizer_classes(), catalog.constraint_classes()],
        "identifiers": {k: catalog.known_identifiers(k) for k in ("activation", "initializer", "regularizer", "constraint")},
        "activations": catalog.activation_names(),
        "dtypes": catalog.dtype_names(),
        "checks": {n: catalog.check_config(n, {**catalog.default_config(n), "bogus": 1}) for n in names},
    }


# --------------------------------------------------------------------------- #
# Values
# --------------------------------------------------------------------------- #


def test_values_json_cannot_hold_round_trip_exactly():
    values = [
        None, True, False, 0, -7, 2**70, 0.1, -0.0, 1e-300, 5e-324, 1.7976931348623157e308,
        math.inf, -math.inf, math.nan, "", "é ✓", [], (), (1,), (None, 2.5, "x"), [(1, 2), [3, (4,)]],
        {"a": (1, 2)}, {1: "int key", (2, 3): "tuple key", None: 0}, {"__tuple__": [1]},
        {"__float__": "inf", "other": 1}, frozenset({"b", "a"}), frozenset(),
        {"module": "keras.layers", "class_name": "LSTM", "config": {"units": 32, "dropout": 0.0,
         "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}}},
         "registered_name": None},
    ]
    for value in values:
        text = json.dumps(catalog_cache.encode_value(value), allow_nan=False)
        exact(catalog_cache.decode_value(json.loads(text)), value, repr(value))
        exact(json.loads(text, object_hook=catalog_cache._untag), value, repr(value))
    with pytest.raises(TypeError, match="cannot be cached"):
        catalog_cache.encode_value(object())


# --------------------------------------------------------------------------- #
# Live Keras against the JSON
# --------------------------------------------------------------------------- #


def test_live_derivation_round_trips_exactly_through_json(live, monkeypatch):
    key = catalog_cache.cache_key()
    loaded = catalog_cache.loads(catalog_cache.dumps(live, key), key)
    exact(loaded, live, "catalog")
    assert set(live.specs) >= set(catalog.catalog()) | {"InputLayer", "LSTMCell"}
    # Everything the editor reads before Keras answers the same from either.
    monkeypatch.setattr(catalog, "_loaded", live)
    from_live = public_answers()
    monkeypatch.setattr(catalog, "_loaded", loaded)
    exact(public_answers(), from_live, "answers")


def test_the_shipped_catalog_is_what_this_keras_derives(live):
    """Fails after an edit of the deriving code or a new pinned Keras: run ``python -m builder_app.core.catalog_cache``."""
    key = catalog_cache.cache_key()
    path = catalog_cache.shipped_path(key["keras"])
    assert path.exists(), f"no catalog shipped for Keras {key['keras']}: run {REGENERATE}"
    shipped = catalog_cache.loads(path.read_bytes())
    assert catalog_cache.key_matches(json.loads(path.read_bytes())["key"], key), f"{path.name} is stale: run {REGENERATE}"
    # Keras draws some values anew on every construction (RandomCrop's seed).
    configs = {
        name: {k: v for k, v in (config or {}).items() if (name, k) not in catalog._VOLATILE}
        for name, config in live.default_configs.items()
    }
    shipped_configs = {
        name: {k: v for k, v in (config or {}).items() if (name, k) not in catalog._VOLATILE}
        for name, config in shipped.default_configs.items()
    }
    exact(shipped_configs, configs, "default_configs")
    for name in live.specs:
        exact(
            [p for p in shipped.specs[name].params if (name, p.name) not in catalog._VOLATILE],
            [p for p in live.specs[name].params if (name, p.name) not in catalog._VOLATILE],
            name,
        )
    for field in ("input_spec", "aliases", "accepted", "nested", "identifiers", "dtype_names",
                  "dtype_policy_classes", "quantizer_classes", "keras_version"):
        exact(getattr(shipped, field), getattr(live, field), field)


def test_package_data_ships_the_catalog():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["builder_app"]
    shipped = catalog_cache.shipped_path(catalog_cache.keras_version())
    relative = shipped.relative_to(ROOT / "builder_app")
    assert any(relative.match(pattern) for pattern in patterns), patterns


# --------------------------------------------------------------------------- #
# The cache file: written once, reused, re-derived for another key, corrupt ignored
# --------------------------------------------------------------------------- #


def test_first_derivation_writes_the_cache_and_the_next_start_reads_it(live, no_shipped):
    key = catalog_cache.cache_key()
    path = catalog_cache.user_path(key)
    assert str(path).startswith(str(no_shipped)) and not path.exists()
    assert not catalog.load_cached()  # nothing fits: the editor waits for Keras
    catalog.prepare()  # what the Keras loader does: derives, and caches
    assert catalog.source() == "derived" and path.exists()
    written = path.stat().st_mtime_ns
    catalog._forget()
    assert catalog.load_cached() and catalog.source() == "cache"
    assert path.stat().st_mtime_ns == written  # read, not written again
    catalog.prepare()
    assert catalog.source() == "cache" and path.stat().st_mtime_ns == written
    exact({k: v for k, v in catalog._data().accepted.items()}, live.accepted, "accepted")


def test_a_cache_of_another_keras_or_app_is_derived_again(live, no_shipped, monkeypatch):
    key = catalog_cache.cache_key()
    path = catalog_cache.user_path(key)
    for other in ({**key, "keras": "3.14.0"}, {**key, "app": "0.0.1"}, {**key, "format": key["format"] + 1},
                  {**key, "code": "0" * 16}, {**key, "settings": {**key["settings"], "image_data_format": "channels_first"}}):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(catalog_cache.dumps(live, other), encoding="utf-8")
        catalog._forget()
        assert not catalog.load_cached(), other
        catalog.prepare()
        assert catalog.source() == "derived"
        assert json.loads(path.read_bytes())["key"] == key  # rewritten for this Keras
    # The key is read without Keras: another version or backend is another key.
    assert catalog_cache.cache_key("3.14.0")["keras"] == "3.14.0"
    assert catalog_cache.user_path(catalog_cache.cache_key("3.14.0")) != path
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert catalog_cache.cache_key()["settings"]["backend"] == "jax"
    assert catalog_cache.user_path(catalog_cache.cache_key()) != path


def test_a_corrupt_cache_is_ignored_never_a_crash(live, no_shipped):
    key = catalog_cache.cache_key()
    path = catalog_cache.user_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    good = catalog_cache.encode(live, key)
    wrong_kind = json.loads(json.dumps(good))
    wrong_kind["specs"]["Dense"]["params"][0]["kind"] = "lambda"
    missing = json.loads(json.dumps(good))
    del missing["specs"]["Dense"]["ports"]
    bad_tag = json.loads(json.dumps(good))
    bad_tag["specs"]["Dense"]["params"][0]["choices"] = {"__float__": "1e400x"}
    no_dense_config = json.loads(json.dumps(good))
    del no_dense_config["default_configs"]["Dense"]
    corrupt = [
        b"", b"\x00\xff garbage", catalog_cache.dumps(live, key).encode()[:5000], b"[1, 2]", b'{"key": 1}',
        json.dumps(wrong_kind).encode(), json.dumps(missing).encode(), json.dumps(bad_tag).encode(),
        json.dumps(no_dense_config).encode(), b"[" * 100_000,
    ]
    for text in corrupt:
        path.write_bytes(text)
        assert catalog_cache.load() is None
        catalog._forget()
        assert not catalog.load_cached()
    catalog.prepare()  # derived again, and the file mended
    assert catalog.source() == "derived"
    assert catalog_cache.load()[1] == "cache"
    # Unwritable: the catalog is still derived and used, only not cached.
    path.unlink()
    path.parent.chmod(0o500)
    try:
        catalog._forget()
        catalog.prepare()
        assert catalog.source() == "derived" and (os.geteuid() == 0 or not path.exists())
    finally:
        path.parent.chmod(0o700)


# --------------------------------------------------------------------------- #
# The editor before TensorFlow, in a fresh Python
# --------------------------------------------------------------------------- #

_EDITOR_BEFORE_KERAS = textwrap.dedent(
    """
    import json, sys
    from PySide6 import QtCore, QtGui, QtTest, QtWidgets
    app = QtWidgets.QApplication([])
    from builder_app.core import catalog
    from builder_app.ui.editor.document import KerasLoader
    from builder_app.ui.editor.window import MainWindow

    window = MainWindow(loader=KerasLoader())  # a loader never started: Keras stays out
    window.ask_unsaved = lambda: QtWidgets.QMessageBox.StandardButton.Discard
    window.resize(1600, 1000)
    window.show()
    app.processEvents()
    out = {"populated": window.palette.is_populated(), "quick_add": window.quick_add.is_populated()}
    window.palette.search_box.setText("Conv2D")
    out["first_hit"] = window.palette.visible_payloads()[:1]
    # A drop of the palette's Dense item on the canvas, as a drag ends.
    view = window.current_view()
    window.palette.search_box.setText("Dense")
    mime = window.palette.mime_data_for(window.palette.item_for("Dense"))
    point = QtCore.QPointF(view.viewport().rect().center())
    drop = QtGui.QDropEvent(point, QtCore.Qt.DropAction.CopyAction, mime,
                            QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    view.dropEvent(drop)
    out["dropped"] = sorted(window.graph.layer_of(n).class_name for n in window.graph.nodes)
    # Tab on the canvas: quick-add, typed, Enter.
    window.current_scene().clearSelection()
    view.request_quick_add()
    QtTest.QTest.keyClicks(window.quick_add.search_box, "maxpool2d")
    out["quick_first"] = window.quick_add.payloads()[:1]
    QtTest.QTest.keyClick(window.quick_add.search_box, QtCore.Qt.Key.Key_Return)
    out["quick_added"] = sorted(window.graph.layer_of(n).class_name for n in window.graph.nodes)
    window.current_scene().clearSelection()
    before = set(window.graph.nodes)
    window._insert_at_centre("Conv2D")  # the palette's Enter / double-click: the controller's insert
    added = [n for n in window.graph.nodes if n not in before]
    out["added"] = [window.graph.layer_of(n).class_name for n in added]
    window.current_scene().select_nodes(added)
    app.processEvents()
    inspector = window.inspector
    out["params"] = inspector.param_names()
    out["filters_enabled"] = inspector.editor("filters").isEnabled()
    out["initializer_enabled"] = inspector.editor("kernel_initializer").isEnabled()
    out["shape"] = inspector.shape_label.text()
    layer = window.graph.layer_of(added[0]).name
    out["set"] = bool(window.controller.set_param(window.graph, layer, "filters", 7))
    out["filters"] = window.graph.layers[layer].config["filters"]
    refused = window.controller.set_param(window.graph, layer, "activation", "os.system")
    out["refused"] = getattr(refused, "message", "")
    window.grab().save(sys.argv[1])
    out["modules"] = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
    print("RESULT " + json.dumps(out))
    window.close()
    """
)


@pytest.mark.gui  # it starts the editor window, in a subprocess
def test_a_fresh_editor_lists_finds_adds_and_edits_layers_before_tensorflow(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "BUILDER_APP_CACHE_DIR": str(tmp_path / "cache"),
           "BUILDER_APP_RECOVERY_DIR": str(tmp_path / "recovery"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    shot = tmp_path / "editor.png"
    run = subprocess.run(
        [sys.executable, "-c", _EDITOR_BEFORE_KERAS, str(shot)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=240,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["modules"] == [], out  # neither TensorFlow nor Keras was imported
    assert out["populated"] and out["quick_add"]
    assert out["first_hit"] == ["Conv2D"]
    assert out["dropped"] == ["Dense"]  # a drop on the canvas
    assert out["quick_first"] == ["MaxPooling2D"] and out["quick_added"] == ["Dense", "MaxPooling2D"]  # Tab
    assert out["added"] == ["Conv2D"]
    assert "filters" in out["params"] and "kernel_initializer" in out["params"]
    assert out["filters_enabled"] and not out["initializer_enabled"]  # Keras writes initializers
    assert out["shape"] == "Output: known once Keras has loaded"
    assert out["set"] and out["filters"] == 7
    assert "'os.system' is not a Keras activation" in out["refused"]  # the config check, from the cache
    assert shot.stat().st_size > 0


def test_a_seed_keras_draws_for_every_layer_is_drawn_each_session(monkeypatch, tmp_path):
    monkeypatch.setenv(catalog_cache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    path = catalog_cache.shipped_path(catalog_cache.keras_version())
    stored = json.loads(path.read_bytes())["default_configs"]["RandomCrop"]["seed"]
    seeds = []
    try:
        for _ in range(2):
            catalog._forget()
            assert catalog.load_cached() and catalog.source() == "shipped"
            seeds.append(catalog.default_config("RandomCrop")["seed"])
            assert catalog.default_config("RandomCrop")["seed"] == seeds[-1]  # one a session, as live Keras
    finally:
        catalog._forget()
    assert len({stored, *seeds}) == 3 and all(type(s) is int for s in seeds)
