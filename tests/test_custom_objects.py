"""Custom objects other than layers: a regularizer, an initializer, an activation function.

Defined in the project's trusted custom code, they are accepted as a custom layer is:
import keeps them (and the weights), the Python export writes the code and uses the
objects (``kernel_regularizer=MyReg(strength=0.02)``), the ``.keras`` export loads in a
fresh Python beside the code. Without the code (or untrusted) the node says which
object needs it, and nothing runs (the code writes a marker file when it is run).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from builder_app.cli import main
from builder_app.core import custom_code, trust
from builder_app.core.catalog import check_config
from builder_app.core.custom_code import CodeFile
from builder_app.core.keras_model import build_keras_model
from builder_app.core.project import load_project, save_project
from builder_app.importers.keras_file import import_model
from tests.test_keras_model import random_inputs, same_function

OBJECTS_CODE = """
import os
import pathlib

import keras
from keras import ops

if "BUILDER_APP_TEST_MARKER" in os.environ:
    pathlib.Path(os.environ["BUILDER_APP_TEST_MARKER"]).write_text("ran")


@keras.saving.register_keras_serializable(package="objs")
class MyReg(keras.regularizers.Regularizer):
    def __init__(self, strength=0.01):
        self.strength = strength

    def __call__(self, x):
        return self.strength * ops.sum(ops.abs(x))

    def get_config(self):
        return {"strength": self.strength}


class MyInit(keras.initializers.Initializer):
    def __init__(self, value=0.5):
        self.value = value

    def __call__(self, shape, dtype=None):
        return ops.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class Clip(keras.constraints.Constraint):
    def __init__(self, limit=1.0):
        self.limit = limit

    def __call__(self, w):
        return ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


@keras.saving.register_keras_serializable(package="objs")
def twice_relu(x):
    return ops.relu(x) * 2.0
"""


@pytest.fixture(autouse=True)
def settings(tmp_path, monkeypatch):
    """A fresh settings directory (nothing trusted), and no code left active afterwards."""
    monkeypatch.setenv(trust.CONFIG_DIR_ENV, str(tmp_path / "settings"))
    monkeypatch.delenv("BUILDER_APP_TEST_MARKER", raising=False)
    custom_code.deactivate_all()
    yield tmp_path / "settings"
    custom_code.deactivate_all()


def objects_model(tmp_path: Path) -> keras.Model:
    """A model using the code's regularizer, initializer and activation, saved as model.keras.

    The code file is written beside it as objs.py; nothing stays active afterwards.
    """
    (tmp_path / "objs.py").write_text(OBJECTS_CODE)
    custom_code.activate([CodeFile("objs.py", OBJECTS_CODE)])
    objs = __import__("objs")
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(
        3,
        kernel_regularizer=objs.MyReg(0.02),
        kernel_initializer=objs.MyInit(0.3),
        activation=objs.twice_relu,
        bias_constraint=objs.Clip(0.5),
        name="custom",
    )(x)
    model = keras.Model(x, keras.layers.Dense(2, name="out")(h), name="objects")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "model.keras")
    custom_code.deactivate_all()
    return model


def test_without_the_code_the_node_names_each_object_and_nothing_runs(
    tmp_path, monkeypatch, capsys
):
    model = objects_model(tmp_path)
    marker = tmp_path / "marker"
    monkeypatch.setenv("BUILDER_APP_TEST_MARKER", str(marker))
    result = import_model(tmp_path / "model.keras")
    graph = result.project.graph
    assert graph.layers["custom"].weights is None
    for got, want in zip(
        graph.layers["out"].weights, model.get_layer("out").get_weights(), strict=True
    ):
        np.testing.assert_array_equal(got, want)  # every other layer keeps its weights
    assert any("need their code ('custom')" in w for w in result.warnings)
    save_project(result.project, tmp_path / "p.kproj")
    assert main(["validate", str(tmp_path / "p.kproj")]) == 1
    out = capsys.readouterr().out
    for kind, name in [
        ("regularizer", "objs>MyReg"),
        ("initializer", "objs>MyInit"),
        ("activation", "objs>twice_relu"),
        ("constraint", "objs>Clip"),
    ]:
        assert f"custom {kind} '{name}' needs its code (--custom-layers F.py --trust)" in out
    # The code given but not trusted: kept in the project, still not run.
    assert (
        main(
            [
                "import",
                str(tmp_path / "model.keras"),
                "-o",
                str(tmp_path / "q.kproj"),
                "--custom-layers",
                str(tmp_path / "objs.py"),
            ]
        )
        == 0
    )
    assert main(["validate", str(tmp_path / "q.kproj")]) == 1
    assert "not trusted: objs.py" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.slow  # 17 s: two exports checked in a fresh Python
def test_with_the_code_trusted_the_objects_round_trip(tmp_path, monkeypatch, capsys):
    model = objects_model(tmp_path)
    marker = tmp_path / "marker"
    monkeypatch.setenv("BUILDER_APP_TEST_MARKER", str(marker))
    project = tmp_path / "p.kproj"
    assert (
        main(
            [
                "import",
                str(tmp_path / "model.keras"),
                "-o",
                str(project),
                "--custom-layers",
                str(tmp_path / "objs.py"),
                "--trust",
            ]
        )
        == 0
    )
    assert "weights" not in capsys.readouterr().err
    assert marker.read_text() == "ran"  # trusted: the code ran
    custom_code.deactivate_all()
    assert main(["validate", str(project)]) == 0  # trusted before: the hash is remembered
    rebuilt = build_keras_model(load_project(project).graph)
    inputs = random_inputs(model)
    same_function(model, rebuilt, inputs)  # the weights came in, the activation is the code's
    model(inputs), rebuilt(inputs)
    np.testing.assert_allclose(  # the regularizer is the code's, with its strength
        [float(v) for v in rebuilt.losses], [float(v) for v in model.losses], rtol=1e-6
    )
    out = tmp_path / "out"
    assert main(["export", str(project), "--python", f"{out}.py", "--check"]) == 0
    assert main(["export", str(project), "--keras", f"{out}.keras", "--check"]) == 0
    assert capsys.readouterr().out.count("(ok)") == 2
    source = Path(f"{out}.py").read_text()
    assert "class MyReg(keras.regularizers.Regularizer)" in source and "builder_app" not in source
    for usage in (
        "kernel_regularizer=MyReg(strength=0.02)",
        "kernel_initializer=MyInit(value=0.3)",
        "activation=twice_relu",
        "bias_constraint=Clip(limit=0.5)",
        'register_keras_serializable(package="objs")(MyInit)',
    ):
        assert usage in source


def test_an_object_is_accepted_only_as_its_own_kind_and_only_from_active_code(tmp_path):
    config = {
        "units": 3,
        "kernel_regularizer": {
            "module": "objs",
            "class_name": "MyReg",
            "config": {"strength": 0.1},
            "registered_name": "objs>MyReg",
        },
    }
    assert check_config("Dense", config) == [
        "kernel_regularizer: custom regularizer 'objs>MyReg' needs its code (--custom-layers F.py --trust)"
    ]
    custom_code.activate([CodeFile("objs.py", OBJECTS_CODE)])
    assert check_config("Dense", config) == []
    misused = {"units": 3, "kernel_initializer": config["kernel_regularizer"]}
    assert check_config("Dense", misused) == [
        "kernel_initializer: 'objs>MyReg' is a custom regularizer, not an initializer"
    ]
    # Registered by the code under another package: never looked up by a module the config names.
    elsewhere = {
        "module": "myproject",
        "class_name": "MyInit",
        "config": {},
        "registered_name": "MyInit",
    }
    assert check_config("Dense", {"units": 3, "kernel_initializer": elsewhere}) == [
        "kernel_initializer: custom initializer 'myproject>MyInit' needs its code (--custom-layers F.py --trust)"
    ]
    # A function the code does not define is still refused, whatever it names.
    for activation in (
        {
            "module": "builtins",
            "class_name": "function",
            "config": "os>system",
            "registered_name": "function",
        },
        {"module": "os", "class_name": "function", "config": "system", "registered_name": None},
    ):
        problems = check_config("Dense", {"units": 3, "activation": activation})
        assert len(problems) == 1 and "activation" in problems[0], problems
