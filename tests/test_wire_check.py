"""Keras's verdict on a wire before it is made (core.wire_check.check_wire)."""

from pathlib import Path

from builder_app.core import ops
from builder_app.core.catalog import default_config
from builder_app.core.graph import Edge, ModelGraph
from builder_app.core.project import load_project
from builder_app.core.shapes import ShapeEngine
from builder_app.core.wire_check import check_wire

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


def _unet():
    graph = load_project(EXAMPLES / "unet_groupnorm.kproj").graph
    engine = ShapeEngine(graph)
    engine.update()
    by_name = {graph.node(n).layer: n for n in graph.nodes}
    return graph, engine, by_name


def test_a_mismatched_merge_is_named_before_it_is_wired():
    graph, engine, n = _unet()
    add = next(x for x in graph.nodes if graph.layer_of(x).class_name == "Add")
    message = check_wire(graph, engine, Edge(n["image"], 0, add, 0))
    assert message == (
        "Add needs inputs of one shape: (None, 32, 32, 3) from 'image' "
        "vs (None, 16, 16, 32) from 'residual_conv'"
    )
    before = graph.to_dict()
    assert graph.to_dict() == before  # nothing was changed to find out


def test_a_fitting_wire_passes():
    graph, engine, n = _unet()
    concat = next(x for x in graph.nodes if graph.layer_of(x).class_name == "Concatenate")
    assert check_wire(graph, engine, Edge(n["image"], 0, concat, 0)) is None


def test_no_verdict_while_a_merge_still_lacks_inputs_and_a_moved_wire_leaves_its_port():
    graph = ModelGraph()
    source = ops.add_layer(graph, "InputLayer", {"batch_shape": [None, 8], "dtype": "float32", "sparse": False, "ragged": False})
    graph.apply(source)
    dense = ops.add_layer(graph, "Dense", default_config("Dense") | {"units": 4})
    graph.apply(dense)
    add = ops.add_layer(graph, "Add", default_config("Add"))
    graph.apply(add)
    graph.apply(ops.Connect(source.node.id, 0, dense.node.id, 0))
    engine = ShapeEngine(graph)
    engine.update()
    assert check_wire(graph, engine, Edge(dense.node.id, 0, add.node.id, 0)) is None  # one of two
    graph.apply(ops.Connect(dense.node.id, 0, add.node.id, 0))
    engine.update()
    message = check_wire(graph, engine, Edge(source.node.id, 0, add.node.id, 1))
    assert message is not None and "(None, 8)" in message and "(None, 4)" in message
    # the same wire, picked up from port 0 and dropped on port 1: Add is left with one input
    moving = Edge(dense.node.id, 0, add.node.id, 0)
    assert check_wire(graph, engine, Edge(dense.node.id, 0, add.node.id, 1), detached=moving) is None
