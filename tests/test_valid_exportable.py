"""What `validate` calls valid, `export` can build (issue 16, item 13).

Each case once passed validation and then failed in `export` with an internal
error: a shared Input layer, a sub-model called on inputs of other shapes than its
Inputs, initializer arguments of the wrong type, and absurd sizes. Now each is a
node error, the same sentence on the canvas (the engine's errors), in `validate`
and in `validate --json`; and the nearby cases that Keras accepts still validate
and export.
"""

import json
import runpy

import pytest

from builder_app.cli import main
from builder_app.core.graph import ModelGraph, Node, PortRef
from builder_app.core.keras_build import MAX_ELEMENTS
from builder_app.core.keras_model import build_keras_model
from builder_app.core.ops import (
    AddNode,
    Connect,
    RemoveNode,
    SetParam,
    add_layer,
    group_as_submodel,
)
from builder_app.core.project import Project, save_project
from builder_app.core.shapes import ShapeEngine
from builder_app.exporters.python_code import python_source


def chain(name: str, specs: list[tuple[str, dict]]) -> tuple[ModelGraph, list[str]]:
    """A graph of layers wired one after the other; returns it and the node ids."""
    graph = ModelGraph(name)
    ids: list[str] = []
    for class_name, config in specs:
        op = add_layer(graph, class_name, config)
        graph.apply(op)
        if ids:
            graph.apply(Connect(ids[-1], 0, op.node.id, 0))
        ids.append(op.node.id)
    return graph, ids


def refused(graph: ModelGraph, tmp_path, capsys, node_id: str, *words: str) -> str:
    """Validates through the command line: invalid, with the error on ``node_id``.

    The JSON report, the text output and the engine (what the canvas paints) must
    say the same sentence, and it names the node.
    """
    path = tmp_path / f"{graph.name}.kproj"
    save_project(Project(graph=graph), path)
    assert main(["validate", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    messages = [e["message"] for e in report["errors"] if e["node"] == node_id]
    assert messages, report["errors"]
    message = messages[0]
    assert graph.label(node_id) in message
    for word in words:
        assert word in message
    assert main(["validate", str(path)]) == 1
    assert message in capsys.readouterr().out
    engine = ShapeEngine(graph)
    assert (node_id, message) in engine.errors()
    engine.close()
    return message


# --------------------------------------------------------------- shared Input
def test_an_input_layer_with_two_nodes_is_a_node_error(tmp_path, capsys):
    graph, ids = chain(
        "shared_input", [("InputLayer", {"batch_shape": [None, 4]}), ("Dense", {"units": 3})]
    )
    again = AddNode(Node(graph.new_node_id(), graph.node(ids[0]).layer, (0.0, 100.0)))
    graph.apply(again)
    dense = add_layer(graph, "Dense", {"units": 2})
    graph.apply(dense)
    graph.apply(Connect(again.node.id, 0, dense.node.id, 0))
    message = refused(graph, tmp_path, capsys, again.node.id, "'input_layer' has 2 nodes")
    assert message.startswith("Input 'input_layer (call 2)'")
    assert "\n" not in message


def test_the_shared_input_error_comes_and_goes_with_the_second_node():
    graph, ids = chain(
        "shared_input", [("InputLayer", {"batch_shape": [None, 4]}), ("Dense", {"units": 3})]
    )
    engine = ShapeEngine(graph)
    assert engine.is_valid()
    again = AddNode(Node(graph.new_node_id(), graph.node(ids[0]).layer, (0.0, 100.0)))
    graph.apply(again)
    assert {node for node, _ in engine.errors()} == {ids[0], again.node.id}
    assert engine.result(ids[1]).blocked_by == [ids[0]]
    graph.apply(RemoveNode(again.node.id))
    assert engine.is_valid()
    assert engine.result(ids[1]).output_shapes == [(None, 3)]
    engine.close()


# ------------------------------------------------ sub-model on other shapes
def submodel_project(outer_shape: list[int | None]) -> tuple[ModelGraph, str]:
    """A sub-model with an Input of (None, 8), called on an Input of ``outer_shape``."""
    graph, ids = chain(
        "sub",
        [
            ("InputLayer", {"batch_shape": [None, 8]}),
            ("Dense", {"units": 4}),
            ("Dense", {"units": 2}),
        ],
    )
    graph.apply(
        group_as_submodel(
            graph, ids[1:], {PortRef(ids[0], 0): ([None, 8], "float32")}, name="block"
        )
    )
    graph.apply(SetParam(graph.node(ids[0]).layer, "batch_shape", outer_shape))
    return graph, graph.nodes_of_layer("block")[0]


def test_a_submodel_called_on_a_higher_rank_than_its_input_is_a_node_error(tmp_path, capsys):
    # Its Dense layers alone accept (None, 5, 8); Keras's model call does not.
    graph, call = submodel_project([None, 5, 8])
    refused(
        graph, tmp_path, capsys, call, "sub-model 'block' cannot take these inputs", "(None, 8)"
    )


def test_a_submodel_whose_layers_check_nothing_still_checks_its_inputs(tmp_path, capsys):
    graph, ids = chain("sub", [("InputLayer", {"batch_shape": [None, 8]}), ("ReLU", {})])
    graph.apply(
        group_as_submodel(
            graph, ids[1:], {PortRef(ids[0], 0): ([None, 8], "float32")}, name="block"
        )
    )
    graph.apply(SetParam(graph.node(ids[0]).layer, "batch_shape", [None, 6]))
    call = graph.nodes_of_layer("block")[0]
    refused(graph, tmp_path, capsys, call, "sub-model 'block' cannot take these inputs")


def test_a_submodel_takes_what_keras_takes_and_exports(tmp_path):
    """Its own shape, and another batch size (Keras's input check ignores it), stay valid."""
    for outer, output in [([None, 8], (None, 2)), ([3, 8], (3, 2))]:
        graph, call = submodel_project(outer)
        engine = ShapeEngine(graph)
        assert engine.errors() == []
        assert engine.result(call).output_shapes == [output]
        engine.close()
        model = build_keras_model(graph)
        assert tuple(model.outputs[0].shape) == output


# ------------------------------------------------ initializer arguments
@pytest.mark.parametrize(
    ("config", "weight", "words"),
    [
        (
            {"kernel_initializer": {"class_name": "RandomNormal", "config": {"mean": "zero"}}},
            "kernel",
            "'zero'",
        ),
        (
            {"kernel_initializer": {"class_name": "RandomNormal", "config": {"stddev": [1, 2]}}},
            "kernel",
            "[4,3]",
        ),
        (
            {"bias_initializer": {"class_name": "Constant", "config": {"value": "abc"}}},
            "bias",
            "string",
        ),
        (
            {"kernel_initializer": {"class_name": "Constant", "config": {"value": [1.0, 2.0]}}},
            "kernel",
            "[4,3]",
        ),
    ],
    ids=["mean_string", "stddev_list", "constant_string", "constant_list_of_other_shape"],
)
def test_an_initializer_argument_of_the_wrong_type_is_a_node_error(
    tmp_path, capsys, config, weight, words
):
    graph, ids = chain(
        "init", [("InputLayer", {"batch_shape": [None, 4]}), ("Dense", {"units": 3, **config})]
    )
    message = refused(
        graph, tmp_path, capsys, ids[1], f"the initializer of its weight '{weight}' fails", words
    )
    assert "function_node" not in message and "[Op:" not in message


def test_initializers_keras_accepts_stay_valid_and_build():
    config = {
        "units": 3,
        # A list that broadcasts over the kernel (4, 3), as Keras allows.
        "kernel_initializer": {"class_name": "Constant", "config": {"value": [1.0, 2.0, 3.0]}},
        "bias_initializer": {
            "class_name": "RandomNormal",
            "config": {"mean": 1, "stddev": 0.5, "seed": 7},
        },
    }
    graph, ids = chain("init", [("InputLayer", {"batch_shape": [None, 4]}), ("Dense", config)])
    engine = ShapeEngine(graph)
    assert engine.errors() == []
    assert engine.result(ids[1]).params == 15
    engine.close()
    kernel = build_keras_model(graph).get_layer("dense").kernel.numpy()
    assert kernel.tolist() == [[1.0, 2.0, 3.0]] * 4


def test_objects_written_without_their_module_export_to_python(tmp_path):
    """A config written by hand names no module; Keras finds the class by the argument."""
    config = {
        "units": 3,
        "kernel_initializer": {"class_name": "Constant", "config": {"value": [1.0, 2.0, 3.0]}},
        "bias_initializer": {"class_name": "RandomNormal", "config": {"mean": 1.0, "seed": 7}},
        "kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.5}},
        "kernel_constraint": {"class_name": "MaxNorm", "config": {"max_value": 2.0}},
    }
    graph, _ = chain("by_hand", [("InputLayer", {"batch_shape": [None, 4]}), ("Dense", config)])
    path = tmp_path / "model.py"
    path.write_text(python_source(graph))
    rebuilt = runpy.run_path(str(path))["build_model"]().get_layer("dense")
    original = build_keras_model(graph).get_layer("dense")
    assert rebuilt.get_config() == original.get_config()
    assert rebuilt.kernel.numpy().tolist() == [[1.0, 2.0, 3.0]] * 4


# ------------------------------------------------------------ absurd sizes
@pytest.mark.parametrize(
    ("specs", "words"),
    [
        (
            [("InputLayer", {"batch_shape": [None, 4]}), ("Dense", {"units": 10**12})],
            "'kernel' of shape (4, 1000000000000)",
        ),
        (
            [("InputLayer", {"batch_shape": [None, 1000]}), ("Dense", {"units": 10**7})],
            "10,000,000,000 elements",
        ),
        (
            [
                ("InputLayer", {"batch_shape": [None, 5], "dtype": "int32"}),
                ("Embedding", {"input_dim": 10**12, "output_dim": 4}),
            ],
            "'embeddings' of shape (1000000000000, 4)",
        ),
    ],
    ids=["dense", "dense_10_billion", "embedding"],
)
def test_a_weight_of_more_than_2_31_elements_is_a_node_error(tmp_path, capsys, specs, words):
    graph, ids = chain("huge", specs)
    message = refused(graph, tmp_path, capsys, ids[1], words, f"{MAX_ELEMENTS:,}")
    assert MAX_ELEMENTS == 2**31 - 1 and "(2**31 - 1)" in message


def test_an_output_of_more_than_2_31_elements_a_sample_is_a_node_error(tmp_path, capsys):
    # An Input of 10**12 features, and a layer without weights that makes a huge tensor.
    graph, ids = chain(
        "huge", [("InputLayer", {"batch_shape": [None, 10**12]}), ("Dense", {"units": 2})]
    )
    refused(graph, tmp_path, capsys, ids[0], "(None, 1000000000000)", "a sample")
    graph, ids = chain(
        "huge_repeat",
        [
            ("InputLayer", {"batch_shape": [None, 4]}),
            ("RepeatVector", {"n": 10**12}),
            ("Flatten", {}),
        ],
    )
    refused(
        graph,
        tmp_path,
        capsys,
        ids[1],
        "(None, 1000000000000, 4)",
        "4,000,000,000,000 elements a sample",
    )
    engine = ShapeEngine(graph)
    assert engine.result(ids[2]).blocked_by == [ids[1]]
    engine.close()


def test_the_largest_weight_allowed_still_validates():
    # 2**31 - 1 is prime: a (1, 2**31 - 1) kernel is exactly at the limit, one more unit is past it.
    graph, ids = chain(
        "edge",
        [
            ("InputLayer", {"batch_shape": [None, 1]}),
            ("Dense", {"units": MAX_ELEMENTS, "use_bias": False}),
        ],
    )
    engine = ShapeEngine(graph)
    assert engine.result(ids[1]).errors == [] and engine.result(ids[1]).params == MAX_ELEMENTS
    graph.apply(SetParam(graph.node(ids[1]).layer, "units", MAX_ELEMENTS + 1))
    assert "would have 2,147,483,648 elements" in engine.result(ids[1]).errors[0]
    engine.close()
