"""`builder-app validate` and the bundled examples, through the command line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builder_app.cli import main
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, add_layer
from builder_app.core.project import Project, load_project, save_project

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "resources" / "examples").glob("*.kproj"))


def test_there_are_the_promised_examples():
    names = [p.name for p in EXAMPLES]
    assert len(names) >= 4
    assert any("digits" in n for n in names)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_validates(path, capsys):
    assert main(["validate", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["errors"] == []
    assert report["total_params"] > 0


def test_example_contents():
    unet = load_project(ROOT / "resources/examples/unet_groupnorm.kproj").graph
    classes = {layer.class_name for layer in unet.layers.values()}
    assert {"Conv2DTranspose", "GroupNormalization"} <= classes
    siamese = load_project(ROOT / "resources/examples/siamese_digits.kproj").graph
    shared = [name for name in siamese.layers if len(siamese.nodes_of_layer(name)) > 1]
    assert shared == ["tower"] and siamese.layers["tower"].submodel is not None


def broken_project(tmp_path):
    graph = ModelGraph("broken")
    ops = [
        add_layer(graph, "InputLayer", {"batch_shape": [None, 4]}, name="x"),
    ]
    graph.apply(ops[0])
    nodes = {"x": ops[0].node.id}
    for name, units in [("branch_a", 8), ("branch_b", 16)]:
        op = add_layer(graph, "Dense", {"units": units}, name=name)
        graph.apply(op)
        graph.apply(Connect(nodes["x"], 0, op.node.id, 0))
        nodes[name] = op.node.id
    add = add_layer(graph, "Add", {}, name="merge")
    graph.apply(add)
    graph.apply(Connect(nodes["branch_a"], 0, add.node.id, 0))
    graph.apply(Connect(nodes["branch_b"], 0, add.node.id, 1))
    path = tmp_path / "broken.kproj"
    save_project(Project(graph=graph), path)
    return path, add.node.id


def test_invalid_project_json_contract(tmp_path, capsys):
    path, add_id = broken_project(tmp_path)
    assert main(["validate", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {
        "valid", "total_params", "total_flops", "total_activation_bytes", "nodes", "errors"
    }
    assert report["valid"] is False
    assert report["total_params"] == 40 + 80
    for node in report["nodes"]:
        assert set(node) == {
            "id", "layer", "class_name", "output_shapes", "params", "errors",
            "flops", "activation_bytes",
        }
    by_layer = {n["layer"]: n for n in report["nodes"]}
    assert by_layer["branch_a"]["output_shapes"] == [[None, 8]]
    assert by_layer["branch_a"]["params"] == 40
    assert by_layer["branch_a"]["flops"] == 4 * 8
    assert by_layer["branch_a"]["activation_bytes"] == 8 * 4
    assert by_layer["merge"]["flops"] is None  # its shapes are unknown
    assert by_layer["x"]["class_name"] == "InputLayer"
    message = "Add needs inputs of one shape: (None, 8) from 'branch_a' vs (None, 16) from 'branch_b'"
    assert report["errors"] == [{"node": add_id, "message": message}]
    assert by_layer["merge"]["errors"] == [message]


def test_human_output_names_the_node(tmp_path, capsys):
    path, add_id = broken_project(tmp_path)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "layer 'merge': Add needs inputs of one shape" in out
    assert f"node {add_id}" not in out  # the internal id only in --json


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip at all", b"PK\x03\x04truncated"],
    ids=["empty", "text", "truncated-zip"],
)
def test_unreadable_file_exits_2_with_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.kproj"
    path.write_bytes(content)
    assert main(["validate", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.kproj" in err and "Traceback" not in err


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.kproj")]) == 2
    assert "nope.kproj" in capsys.readouterr().err


def test_installed_entry_point_runs(tmp_path):
    """The real command, in a fresh interpreter: exit codes and nothing on stderr."""
    example = ROOT / "resources/examples/iris_mlp.kproj"
    done = subprocess.run(
        [sys.executable, "-m", "builder_app", "validate", str(example), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True
    version = subprocess.run(
        [sys.executable, "-m", "builder_app", "--version"], capture_output=True, text=True
    )
    assert version.stdout.startswith("builder-app ")


def test_export_keras_and_savedmodel_with_check(tmp_path, capsys):
    example = ROOT / "resources/examples/siamese_digits.kproj"
    code = main(
        ["export", str(example), "--keras", str(tmp_path / "m.keras"),
         "--savedmodel", str(tmp_path / "served"), "--check"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("(ok)") == 2 and "DIFFERS" not in out
    assert (tmp_path / "m.keras").is_file() and (tmp_path / "served" / "saved_model.pb").is_file()


def test_export_refuses_an_invalid_project(tmp_path, capsys):
    path, _ = broken_project(tmp_path)
    target = tmp_path / "m.keras"
    assert main(["export", str(path), "--keras", str(target)]) == 1
    err = capsys.readouterr().err
    assert "Add needs inputs of one shape" in err and err.count("\n") == 1
    assert not target.exists()


def test_export_without_a_target(capsys):
    example = str(ROOT / "resources/examples/iris_mlp.kproj")
    assert main(["export", example]) == 2
    assert "say what to export: --python, --keras, --savedmodel, --onnx, --litert or --train-script" in capsys.readouterr().err


def test_every_export_at_once_with_check(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    example = str(ROOT / "resources/examples/siamese_digits.kproj")
    targets = {
        "--python": tmp_path / "m.py",
        "--keras": tmp_path / "m.keras",
        "--savedmodel": tmp_path / "served",
        "--onnx": tmp_path / "m.onnx",
        "--train-script": tmp_path / "train.py",
    }
    argv = ["export", example, "--check"] + [str(a) for pair in targets.items() for a in pair]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert all(path.exists() for path in targets.values())
    # One output checked per model export; the training script is not a model.
    assert out.count("(ok)") == 4 and "DIFFERS" not in out
