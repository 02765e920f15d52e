"""The model rules behind the editor's gestures, without Qt: typed refusals, rewiring, ports, gestures."""

from __future__ import annotations

import pytest

from builder_app.core import catalog, editing
from builder_app.core.events import ChangeKind
from builder_app.core.graph import (
    ConfigError,
    CycleError,
    Edge,
    GraphError,
    GroupingError,
    LayerNameError,
    ModelGraph,
    NotFoundError,
    PortError,
    SharingError,
)
from builder_app.core.ops import (
    Batch,
    Connect,
    MoveNode,
    Op,
    SetParam,
    add_layer,
    call_again,
    can_connect,
    rewire,
)
from builder_app.core.ports import first_free_input, input_ports
from builder_app.core.shapes import ShapeEngine


@pytest.fixture(scope="module", autouse=True)
def keras_catalog():
    catalog.catalog()  # the config check and the ports read it


def chain(*layers):
    graph = ModelGraph("chain")
    ids = []
    for class_name, config in [("InputLayer", {"batch_shape": [None, 8], "dtype": "float32"}), *layers]:
        op = add_layer(graph, class_name, config)
        graph.apply(op)
        if ids:
            graph.apply(Connect(ids[-1], 0, op.node.id, 0))
        ids.append(op.node.id)
    return graph, ids


def test_refusals_are_typed():
    graph, (x, a, b) = chain(("Dense", {"units": 4}), ("Dense", {"units": 2}))
    assert isinstance(can_connect(graph, b, 0, a, 0), PortError)  # a's input is taken
    assert isinstance(can_connect(graph, b, 0, b, 1), CycleError)  # its own output
    assert isinstance(can_connect(graph, "n99", 0, a, 0), NotFoundError)
    assert isinstance(can_connect(graph, a, 0, x, 0), PortError)  # an Input takes nothing
    assert isinstance(can_connect(graph, b, 0, a, 1), CycleError)  # a feeds b
    graph.apply(rewire(graph, None, Edge(a, 0, b, 0)))  # free b's input
    assert can_connect(graph, b, 0, a, 1) is None  # no path from a to b any more
    for op, kind in [
        (SetParam(graph.layer_of(a).name, "units", object()), ConfigError),
        (SetParam("nope", "units", 1), NotFoundError),
    ]:
        with pytest.raises(kind):
            graph.apply(op)
    with pytest.raises(SharingError):
        call_again(graph, x)
    with pytest.raises(LayerNameError):
        graph.apply(add_layer(graph, "Dense", {"units": 1}, name="dense"))


def test_a_set_param_is_checked_like_a_files_config_whoever_pushes_it():
    graph, (_, a) = chain(("Dense", {"units": 4}))
    layer = graph.layer_of(a).name
    with pytest.raises(ConfigError, match="activation"):
        graph.apply(SetParam(layer, "activation", "no_such_activation"))
    with pytest.raises(ConfigError, match="kernel_initializer"):
        graph.apply(SetParam(layer, "kernel_initializer", {"module": "os", "class_name": "system", "config": {}}))
    assert "activation" not in graph.layer(layer).config or graph.layer(layer).config["activation"] != "no_such_activation"
    # an undo is never refused: the inverse restores the old value unchecked
    inverse = graph.apply(SetParam(layer, "activation", "relu"))
    assert isinstance(inverse, SetParam) and inverse.checked is False
    graph.apply(inverse)


def test_undo_of_a_value_the_check_would_refuse_now_still_works():
    graph, (_, a) = chain(("Dense", {"units": 4, "activation": "made_up"}))  # e.g. from an old file
    layer = graph.layer_of(a).name
    inverse = graph.apply(SetParam(layer, "activation", "relu"))
    graph.apply(inverse)
    assert graph.layer(layer).config["activation"] == "made_up"
    # an edit of another field is not refused for a problem the config already had
    graph.apply(SetParam(layer, "units", 6))


class Boom(Op):
    def apply(self, graph):
        raise RuntimeError("a bug, not a refusal")


def test_a_batch_rolls_back_on_any_exception():
    graph, (_, a) = chain(("Dense", {"units": 4}))
    before = graph.to_dict()
    with pytest.raises(RuntimeError):
        graph.apply(Batch([MoveNode(a, (50.0, 50.0)), SetParam(graph.layer_of(a).name, "units", 9), Boom()]))
    assert graph.to_dict() == before


def test_changes_name_their_graph_and_kind():
    graph, (_, a) = chain(("Dense", {"units": 4}))
    heard = []
    graph.changed.connect(heard.append)
    graph.apply(SetParam(graph.layer_of(a).name, "units", 5))
    graph.apply(MoveNode(a, (10.0, 0.0)))
    assert [c.kind for c in heard] == [ChangeKind.SET_PARAM, ChangeKind.MOVE]
    assert all(c.graph is graph for c in heard)
    assert heard[0].kind.changes_shapes and not heard[1].kind.changes_shapes


def test_rewiring_a_picked_up_wire():
    graph, (x, a, b, c) = chain(("Dense", {"units": 4}), ("Dense", {"units": 4}), ("Dense", {"units": 2}))
    # a's input picked up and given b's output instead: a feeds b, a cycle
    assert isinstance(editing_problem(graph, Edge(b, 0, a, 0), Edge(x, 0, a, 0)), CycleError)
    # c's input picked up and given a's output: fine
    held = Edge(b, 0, c, 0)
    batch = rewire(graph, Edge(a, 0, c, 0), held)
    inverse = graph.apply(batch)
    assert graph.inputs_of(c)[0].node == a
    graph.apply(inverse)
    assert graph.inputs_of(c)[0].node == b
    # a path that runs through the picked-up wire closes no cycle once it is gone
    held = Edge(a, 0, b, 0)
    assert editing_problem(graph, Edge(b, 0, a, 0), held) is None
    assert rewire(graph, held, held) is None  # dropped back where it was: nothing to do


def editing_problem(graph, edge, detached):
    from builder_app.core.ops import rewire_problem

    return rewire_problem(graph, edge, detached)


def test_ports_of_a_node_come_from_one_place():
    graph, (x, a) = chain(("Dense", {"units": 8}))
    add = add_layer(graph, "Add", {})
    graph.apply(add)
    attention = add_layer(graph, "MultiHeadAttention", {"num_heads": 2, "key_dim": 4})
    graph.apply(attention)
    assert input_ports(graph, x) == ()
    assert input_ports(graph, a) == ("",)
    assert len(input_ports(graph, add.node.id)) == 2  # a list layer: two to start
    graph.apply(Connect(a, 0, add.node.id, 0))
    graph.apply(Connect(x, 0, add.node.id, 1))
    assert len(input_ports(graph, add.node.id)) == 3  # one free port to grow it
    assert first_free_input(graph, add.node.id) == 2
    assert input_ports(graph, attention.node.id)[:2] == ("query", "value")


def test_palette_payloads_and_gestures_build_operations():
    graph, (x, a) = chain(("Dense", {"units": 8}))
    op, text, new = editing.palette_ops(graph, "Dropout", (300.0, 0.0), source=a)
    assert text == "Add Dropout" and len(new) == 1
    graph.apply(op)
    assert graph.inputs_of(new[0])[0].node == a
    with pytest.raises(NotFoundError):
        editing.palette_ops(graph, "NoSuchLayer", (0.0, 0.0))
    with pytest.raises(NotFoundError):
        editing.palette_ops(graph, "block:no such block", (0.0, 0.0))
    engine = ShapeEngine(graph)
    try:
        engine.update()
        types = editing.group_input_types(graph, engine, [a, new[0]])
        assert list(types.values()) == [([None, 8], "float32")]
        with pytest.raises(GroupingError, match="unknown"):
            editing.group_input_types(graph, None, [a])
        model = editing.extracted_model(graph, engine, [a, new[0]], "part")
        assert model.name == "part" and len(model.model_inputs()) == 1
        assert len(graph) == 3  # extracting changes nothing
        out = editing.outputs_op(graph, engine, [a])
        assert [tuple(r) for r in out.outputs] == [(a, 0)]
    finally:
        engine.close()
    assert editing.delete_ops(graph, []) is None
    assert editing.move_ops(graph, {a: graph.node(a).position}) is None
    delete = editing.delete_ops(graph, [a])
    inverse = graph.apply(delete)
    assert a not in graph.nodes
    graph.apply(inverse)


def test_a_graph_without_positions_is_laid_out_once():
    graph, ids = chain(("Dense", {"units": 8}), ("Dense", {"units": 2}))
    for node_id in ids:
        graph.apply(MoveNode(node_id, (0.0, 0.0)))
    assert editing.needs_layout(graph)
    assert editing.place_if_unpositioned(graph)
    assert len({graph.node(n).position for n in ids}) == len(ids)
    assert not editing.place_if_unpositioned(graph)


def test_every_refusal_is_a_graph_error():
    for kind in (NotFoundError, PortError, CycleError, LayerNameError, ConfigError, SharingError, GroupingError):
        assert issubclass(kind, GraphError)
