"""Random edit sequences, valid and not: core never raises past a refusal, errors land
on nodes, incremental shapes equal a cold recompute, and undo restores everything."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder_app.core.graph import GraphError, ModelGraph, PortRef
from builder_app.core.ops import (
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
from builder_app.core.shapes import ShapeEngine

LAYERS = [
    ("Dense", {"units": 8}),
    ("Dense", {"units": 4, "activation": "relu"}),
    ("Add", {}),
    ("Concatenate", {"axis": -1}),
    ("Dropout", {"rate": 0.5}),
    ("LayerNormalization", {}),
    ("Reshape", {"target_shape": [2, 4]}),
    ("Flatten", {}),
    ("Conv1D", {"filters": 4, "kernel_size": 3}),
    ("LSTM", {"units": 4, "return_state": True}),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 4}),
    ("Embedding", {"input_dim": 10, "output_dim": 4}),
    ("NotAKerasLayer", {}),
]
PARAMS = st.sampled_from(
    [
        ("units", 3),
        ("units", -2),
        ("units", "many"),
        ("activation", "gelu"),
        ("activation", "os.system"),
        ("rate", 1.5),
        ("axis", 5),
        ("filters", 0),
        ("kernel_size", 50),
        ("target_shape", [4, 2]),
        ("kernel_initializer", {"module": "os", "class_name": "system", "config": {}}),
        ("bogus_argument", 1),
    ]
)
NAMES = st.sampled_from(["dense", "renamed", "a/b", "", "input_layer", " x", "block"])


def start_graph(shape):
    graph = ModelGraph("random")
    x = add_layer(graph, "InputLayer", {"batch_shape": [None, *shape], "dtype": "float32"})
    graph.apply(x)
    d = add_layer(graph, "Dense", {"units": shape[-1]})
    graph.apply(d)
    graph.apply(Connect(x.node.id, 0, d.node.id, 0))
    return graph


def draw_op(data, graph, engine):
    nodes = list(graph.nodes) + ["n404"]
    node = lambda: data.draw(st.sampled_from(nodes))  # noqa: E731
    layer_names = list(graph.layers) + ["ghost"]
    kind = data.draw(
        st.sampled_from(
            ["add", "add", "connect", "connect", "disconnect", "remove", "param", "rename",
             "again", "unshare", "share", "group", "ungroup", "io", "move"]
        )
    )
    if kind == "add":
        class_name, config = data.draw(st.sampled_from(LAYERS))
        return add_layer(graph, class_name, config)
    if kind == "connect":
        return Connect(node(), data.draw(st.integers(0, 2)), node(), data.draw(st.integers(0, 2)))
    if kind == "disconnect":
        return Disconnect(node(), data.draw(st.integers(0, 2)))
    if kind == "remove":
        return RemoveNode(node())
    if kind == "param":
        key, value = data.draw(PARAMS)
        return SetParam(data.draw(st.sampled_from(layer_names)), key, value)
    if kind == "rename":
        return RenameLayer(data.draw(st.sampled_from(layer_names)), data.draw(NAMES))
    if kind == "again":
        return call_again(graph, node())
    if kind == "unshare":
        return unshare(graph, node())
    if kind == "share":
        return SetNodeLayer(node(), data.draw(st.sampled_from(layer_names)))
    if kind == "group":
        chosen = data.draw(st.lists(st.sampled_from(nodes), max_size=3))
        types = {}
        for node_id in graph.nodes:
            result = engine.result(node_id)
            for port, t in enumerate(result.outputs or []):
                types[PortRef(node_id, port)] = (list(t.shape), t.dtype)
        return group_as_submodel(graph, chosen, types)
    if kind == "ungroup":
        return ungroup(graph, node())
    if kind == "io":
        outputs = [PortRef(n, 0) for n in data.draw(st.lists(st.sampled_from(nodes), max_size=2))]
        return SetModelIO([], outputs)
    return MoveNode(node(), (1.0, 2.0))


def snapshot(engine):
    return {
        node_id: (r.output_shapes, r.params, r.errors)
        for node_id, r in engine.results().items()
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.sampled_from([[8], [6, 8]]), data=st.data())
def test_random_edit_sequences(shape, data):
    graph = start_graph(shape)
    original = graph.to_dict()
    engine = ShapeEngine(graph)
    engine.update()
    undo = []
    for _ in range(data.draw(st.integers(1, 12))):
        before = graph.to_dict()
        try:
            op = draw_op(data, graph, engine)
            undo.append(graph.apply(op))
        except GraphError as refusal:
            assert str(refusal)
            assert graph.to_dict() == before
        engine.update()  # must never raise
        results = engine.results()
        assert set(results) == set(graph.nodes)
        for node_id, message in engine.errors():
            assert isinstance(message, str) and message
            assert node_id is None or node_id in graph.nodes
    # The incremental engine agrees with one that starts cold.
    cold = ShapeEngine(graph)
    assert snapshot(engine) == snapshot(cold)
    cold.close()
    for inverse in reversed(undo):
        inverse.apply(graph)
    assert graph.to_dict() == original
    fresh = ShapeEngine(graph)
    assert snapshot(engine) == snapshot(fresh)
