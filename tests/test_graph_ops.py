"""The model graph and its operations, without Keras."""

import subprocess
import sys
from pathlib import Path

import pytest

from builder_app.core.graph import GraphError, ModelGraph, PortRef
from builder_app.core.ops import (
    Batch,
    Connect,
    Disconnect,
    MoveNode,
    RemoveNode,
    RenameLayer,
    SetModelIO,
    SetNodeLayer,
    SetParam,
    add_layer,
    call_again,
    group_as_submodel,
    ungroup,
    unshare,
)

ROOT = Path(__file__).resolve().parent.parent


def build_chain():
    graph = ModelGraph("chain")
    ids = {}
    for key, class_name, config in [
        ("x", "InputLayer", {"batch_shape": [None, 8], "dtype": "float32"}),
        ("a", "Dense", {"units": 8}),
        ("b", "Dense", {"units": 8}),
        ("c", "Add", {}),
        ("d", "Dense", {"units": 2}),
    ]:
        op = add_layer(graph, class_name, config)
        graph.apply(op)
        ids[key] = op.node.id
    for src, dst, port in [("x", "a", 0), ("a", "b", 0), ("a", "c", 0), ("b", "c", 1), ("c", "d", 0)]:
        graph.apply(Connect(ids[src], 0, ids[dst], port))
    return graph, ids


def apply_and_undo(graph, op):
    before = graph.to_dict()
    inverse = graph.apply(op)
    after = graph.to_dict()
    again = graph.apply(inverse)
    assert graph.to_dict() == before
    graph.apply(again)
    assert graph.to_dict() == after
    return inverse


def test_keras_style_unique_names():
    graph, _ = build_chain()
    assert sorted(graph.layers) == ["add", "dense", "dense_1", "dense_2", "input_layer"]


@pytest.mark.parametrize(
    "make",
    [
        lambda g, i: RemoveNode(i["c"]),
        lambda g, i: RemoveNode(i["x"]),
        lambda g, i: Disconnect(i["c"], 1),
        lambda g, i: SetParam("dense", "units", 3),
        lambda g, i: SetParam("dense", "activation", "relu"),
        lambda g, i: RenameLayer("dense", "encoder"),
        lambda g, i: MoveNode(i["a"], (10.0, 20.0)),
        lambda g, i: call_again(g, i["b"]),
        lambda g, i: SetModelIO([i["x"]], [PortRef(i["c"], 0), PortRef(i["d"], 0)]),
        lambda g, i: group_as_submodel(g, [i["a"], i["b"], i["c"]], {PortRef(i["x"], 0): ([None, 8], "float32")}),
        lambda g, i: Batch([SetParam("dense", "units", 5), RenameLayer("dense", "first")]),
    ],
)
def test_every_operation_has_an_exact_inverse(make):
    graph, ids = build_chain()
    apply_and_undo(graph, make(graph, ids))


def test_cycle_refused_with_the_path():
    graph, ids = build_chain()
    graph.apply(Disconnect(ids["a"], 0))
    with pytest.raises(GraphError, match="cycle"):
        graph.apply(Connect(ids["d"], 0, ids["a"], 0))


def test_refusals_leave_the_graph_unchanged():
    graph, ids = build_chain()
    before = graph.to_dict()
    refused = [
        Connect(ids["x"], 0, ids["c"], 0),  # port taken
        Connect(ids["a"], 0, ids["x"], 0),  # into an Input
        Connect(ids["a"], 0, ids["a"], 0),
        Connect("nope", 0, ids["a"], 0),
        RenameLayer("dense", "dense_1"),
        RenameLayer("dense", "a/b"),
        RenameLayer("dense", ""),
        SetParam("dense", "units", object()),
        SetParam("missing", "units", 1),
        Disconnect(ids["d"], 3),
        RemoveNode("n99"),
        # The Batch fails on its second step; the first must be rolled back.
        Batch([SetParam("dense", "units", 2), Connect(ids["d"], 0, ids["a"], 0)]),
    ]
    for op in refused:
        with pytest.raises(GraphError):
            graph.apply(op)
        assert graph.to_dict() == before


def test_shared_layer_is_one_layer_with_two_calls():
    graph, ids = build_chain()
    op = call_again(graph, ids["d"])
    graph.apply(op)
    assert graph.nodes_of_layer("dense_2") == [ids["d"], op.node.id]
    graph.apply(SetParam("dense_2", "units", 4))
    assert graph.layer_of(op.node.id).config["units"] == 4
    apply_and_undo(graph, unshare(graph, op.node.id))  # leaves it applied
    assert graph.layer_of(op.node.id).name == "dense_2_1"
    assert graph.layer_of(op.node.id).config["units"] == 4


def test_share_requires_the_same_class():
    graph, ids = build_chain()
    with pytest.raises(GraphError, match="cannot share"):
        graph.apply(SetNodeLayer(ids["c"], "dense"))
    apply_and_undo(graph, SetNodeLayer(ids["d"], "dense"))


def test_group_and_ungroup_round_trip():
    graph, ids = build_chain()
    original = graph.to_dict()
    group = group_as_submodel(
        graph, [ids["a"], ids["b"], ids["c"]], {PortRef(ids["x"], 0): ([None, 8], "float32")}, name="block"
    )
    graph.apply(group)
    block = graph.layers["block"]
    assert block.submodel is not None
    assert sorted(block.submodel.layers) == ["add", "dense", "dense_1", "input_layer_in"]
    call = graph.nodes_of_layer("block")[0]
    assert graph.inputs_of(call) == {0: PortRef(ids["x"], 0)}
    assert graph.inputs_of(ids["d"]) == {0: PortRef(call, 0)}
    graph.apply(ungroup(graph, call))
    flat = graph.to_dict()
    assert sorted(layer["name"] for layer in flat["layers"]) == sorted(
        layer["name"] for layer in original["layers"]
    )
    assert len(flat["edges"]) == len(original["edges"])


def test_group_refuses_a_selection_with_a_hole():
    graph, ids = build_chain()
    with pytest.raises(GraphError, match="not contiguous"):
        group_as_submodel(graph, [ids["a"], ids["c"]], {PortRef(ids["x"], 0): ([None, 8], "float32")})


def test_group_refuses_half_of_a_shared_layer():
    graph, ids = build_chain()
    graph.apply(call_again(graph, ids["d"]))
    with pytest.raises(GraphError, match="also called outside"):
        group_as_submodel(graph, [ids["d"]], {PortRef(ids["c"], 0): ([None, 8], "float32")})


def test_dict_round_trip_and_malformed_input():
    graph, ids = build_chain()
    graph.apply(call_again(graph, ids["b"]))
    assert ModelGraph.from_dict(graph.to_dict()).to_dict() == graph.to_dict()
    data = graph.to_dict()
    data["edges"].append([ids["d"], 0, ids["a"], 1])
    with pytest.raises(GraphError, match="cycle"):
        ModelGraph.from_dict(data)
    data = graph.to_dict()
    data["nodes"][1]["layer"] = "ghost"
    with pytest.raises(GraphError, match="unknown layer 'ghost'"):
        ModelGraph.from_dict(data)


def test_events_announce_changes():
    graph, ids = build_chain()
    seen = []
    graph.changed.connect(seen.append)
    graph.apply(SetParam("dense", "units", 2))
    graph.apply(Disconnect(ids["d"], 0))
    assert [c.kind for c in seen] == ["set_param", "disconnect"]
    assert seen[0].nodes == {ids["a"]}


def test_core_imports_neither_qt_nor_tensorflow():
    code = (
        "import sys, builder_app.core.graph, builder_app.core.ops, builder_app.core.shapes, "
        "builder_app.core.report, builder_app.core.layout, builder_app.core.project; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'tensorflow', 'keras', 'pyqtgraph')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
