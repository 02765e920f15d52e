"""Shape inference agrees with Keras: shapes, dtypes, parameter counts and validity."""

import warnings

import keras
import pytest

from builder_app.core import catalog
from builder_app.core.graph import ModelGraph
from builder_app.core.ops import Connect, RemoveNode, SetParam, add_layer, call_again
from builder_app.core.shapes import ShapeEngine
from tests.keras_compare import compare_with_keras, graph_of

# Inputs tried on every catalog layer: each is either accepted by both Keras and
# the app (and then every shape and count must match) or refused by both.
SINGLE_INPUTS = [
    [((None, 16), "float32")],
    [((None, 10, 8), "float32")],
    [((None, 12, 12, 3), "float32")],
    [((None, 6, 6, 6, 2), "float32")],
    [((None, 10), "int32")],
    [((None, 4), "string")],
    [((None, 5, 4), "int32")],
    [((None, 400, 1), "float32")],
    [((None, 3, 6, 6, 6, 2), "float32")],
]
PAIR_INPUTS = [
    [((None, 16), "float32"), ((None, 16), "float32")],
    [((None, 10, 8), "float32"), ((None, 10, 8), "float32")],
    [((None, 10, 8), "float32"), ((None, 6, 8), "float32")],
    [((None, 16), "float32"), ((None, 8), "float32")],
    [((None, 10), "int32"), ((None, 10), "int32")],
]
# Layers whose palette defaults need an input Keras would never see without help.
SETUP = {
    "StringLookup": {"vocabulary": ["a", "b", "c"]},
    "IntegerLookup": {"vocabulary": [1, 2, 3]},
    "TextVectorization": {"vocabulary": ["a", "b"]},
    "Normalization": {"mean": 0.0, "variance": 1.0},
    "Discretization": {"bin_boundaries": [0.0, 1.0]},
    "GroupNormalization": {"groups": 2},
}
# Equalization's compute_output_spec returns its input tensor itself, so Keras
# refuses any model ending in it ("part of a cycle"): a Keras quirk, not a shape
# rule.
QUIRKS = {"Equalization"}


def keras_model(class_name, config, inputs):
    tensors = [keras.Input(batch_shape=shape, dtype=dtype) for shape, dtype in inputs]
    layer = catalog.keras_class(class_name).from_config({**config, "name": "probe"})
    spec = catalog.layer_spec(class_name).ports
    if spec.style == "list":
        out = layer(tensors)
    elif spec.style == "positional":
        out = layer(*tensors)
    else:
        (x,) = tensors
        out = layer(x)
    return keras.Model(tensors, out)


def shared_model(class_name, config, inputs):
    """The same layer called twice, on two inputs of one type (a shared layer)."""
    first = [keras.Input(batch_shape=shape, dtype=dtype) for shape, dtype in inputs]
    second = [keras.Input(batch_shape=shape, dtype=dtype) for shape, dtype in inputs]
    layer = catalog.keras_class(class_name).from_config({**config, "name": "probe"})
    style = catalog.layer_spec(class_name).ports.style
    outputs = []
    for tensors in (first, second):
        if style == "list":
            outputs.append(layer(tensors))
        elif style == "positional":
            outputs.append(layer(*tensors))
        else:
            outputs.append(layer(tensors[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.Model(first + second, outputs)


def app_graph(class_name, config, inputs):
    graph = ModelGraph("probe_model")
    node = add_layer(graph, class_name, config, name="probe")
    graph.apply(node)
    for port, (shape, dtype) in enumerate(inputs):
        x = add_layer(graph, "InputLayer", {"batch_shape": list(shape), "dtype": dtype})
        graph.apply(x)
        graph.apply(Connect(x.node.id, 0, node.node.id, port))
    return graph, node.node.id


def candidate_inputs(class_name):
    spec = catalog.layer_spec(class_name).ports
    if spec.style in ("list", "positional"):
        return PAIR_INPUTS
    return SINGLE_INPUTS


@pytest.mark.parametrize("class_name", sorted(set(catalog.catalog()) - QUIRKS))
def test_every_catalog_layer_agrees_with_keras(class_name):
    config = {**catalog.default_config(class_name), **SETUP.get(class_name, {})}
    accepted = 0
    for inputs in candidate_inputs(class_name):
        graph, node_id = app_graph(class_name, config, inputs)
        engine = ShapeEngine(graph)
        app_errors = engine.result(node_id).errors
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = keras_model(class_name, config, inputs)
        except Exception as exc:  # noqa: BLE001 - Keras refusing is a valid outcome
            assert app_errors, f"{class_name} on {inputs}: Keras refuses ({exc}) but the app accepts"
            continue
        assert not app_errors, f"{class_name} on {inputs}: Keras accepts but the app says {app_errors}"
        assert compare_with_keras(model) == []
        assert compare_with_keras(shared_model(class_name, config, inputs)) == []
        accepted += 1
    assert accepted, f"no candidate input suits {class_name}; add one"


def conv_zoo(cf_data_format="channels_first"):
    x = keras.Input((16, 16, 4), name="img")
    a = keras.layers.Conv2D(8, 3, strides=2, padding="same", dilation_rate=1, name="c1")(x)
    b = keras.layers.Conv2D(8, 3, dilation_rate=2, groups=4, name="c2")(x)
    c = keras.layers.SeparableConv2D(6, 3, depth_multiplier=2, name="sep")(x)
    d = keras.layers.DepthwiseConv2D(3, depth_multiplier=3, padding="same", name="dw")(x)
    t1 = keras.layers.Conv2DTranspose(5, 3, strides=2, output_padding=1, name="t1")(a)
    t2 = keras.layers.Conv2DTranspose(5, 4, strides=3, padding="same", name="t2")(a)
    t3 = keras.layers.Conv2DTranspose(5, 3, strides=2, dilation_rate=1, padding="valid", name="t3")(b)
    up = keras.layers.UpSampling2D((2, 3), interpolation="bilinear", name="up")(c)
    cf = keras.layers.Conv2D(4, 3, data_format=cf_data_format, name="cf")(x)
    gn = keras.layers.GroupNormalization(groups=-1, name="instance_norm")(d)
    bn = keras.layers.BatchNormalization(momentum=0.9, name="bn")(gn)
    pools = [keras.layers.GlobalAveragePooling2D(name=f"g{i}")(t) for i, t in enumerate([t1, t2, t3, up, cf, bn])]
    out = keras.layers.Concatenate(name="cat")(pools)
    seq = keras.Input((20, 3), name="seq")
    c1 = keras.layers.Conv1DTranspose(4, 5, strides=3, output_padding=2, name="t1d")(seq)
    c1 = keras.layers.Conv1D(4, 3, padding="causal", name="causal")(c1)
    vol = keras.Input((6, 8, 8, 2), name="vol")
    c3 = keras.layers.Conv3DTranspose(3, 2, strides=(1, 2, 2), name="t3d")(vol)
    return keras.Model([x, seq, vol], [out, c1, c3])


def conv_zoo_to_run():
    """conv_zoo as this machine can run it.

    Where TensorFlow has no channels_first convolution (no GPU, and a CPU build
    without one, as on AMD processors), the app must say so on the 'cf' node and
    refuse to run the model; checked here, the zoo is then run with 'cf'
    convolving channels_last, so every other layer's outputs are still compared.
    """
    from builder_app.core import keras_compat
    from builder_app.core.keras_model import (
        BuildError,
        build_keras_model,
        refuse_if_it_cannot_run_here,
    )

    model = conv_zoo()
    if keras_compat.channels_first_runs("conv", 2):
        return model
    graph = graph_of(model)
    engine = ShapeEngine(graph)
    [cf] = graph.nodes_of_layer("cf")
    assert engine.result(cf).warnings == [keras_compat.CHANNELS_FIRST_ON_CPU]
    assert engine.is_valid()  # the shapes are right: only running it here fails
    with pytest.raises(BuildError) as refused:
        refuse_if_it_cannot_run_here(build_keras_model(graph))
    assert str(refused.value) == f"layer 'cf' cannot run here: {keras_compat.CHANNELS_FIRST_ON_CPU}"
    return conv_zoo("channels_last")


def shared_and_nested():
    tower_in = keras.Input((12,), name="tower_in")
    h = keras.layers.Dense(16, activation="relu", name="t_dense")(tower_in)
    h = keras.layers.LayerNormalization(name="t_norm")(h)
    tower = keras.Model(tower_in, h, name="tower")
    left, right = keras.Input((12,), name="left"), keras.Input((12,), name="right")
    shared = keras.layers.Dense(12, name="shared_proj")
    a, b = tower(shared(left)), tower(shared(right))
    diff = keras.layers.Subtract(name="diff")([a, b])
    inner = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4, name="s1"), keras.layers.Dense(2, name="s2")], name="head")
    out1 = inner(diff)
    out2 = keras.layers.Dot(axes=1, normalize=True, name="cos")([a, b])
    return keras.Model([left, right], [out1, out2], name="siamese")


def recurrent_and_attention():
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    e = keras.layers.Embedding(100, 16, mask_zero=True, name="emb")(tokens)
    seq, h, c = keras.layers.LSTM(8, return_sequences=True, return_state=True, name="lstm")(e)
    g = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True), name="bigru")(seq)
    att = keras.layers.MultiHeadAttention(2, 4, name="mha")(g, g, g)
    att = keras.layers.Add(name="res")([att, g])
    td = keras.layers.TimeDistributed(keras.layers.Dense(3), name="td")(att)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(td)
    both = keras.layers.Concatenate(name="cat")([pooled, h, c])
    return keras.Model(tokens, [both, keras.layers.Dense(1, name="score")(both)])


@pytest.mark.parametrize("build", [conv_zoo, shared_and_nested, recurrent_and_attention])
def test_hand_built_models_agree_with_keras(build):
    assert compare_with_keras(build()) == []


@pytest.mark.parametrize(
    "app",
    [
        lambda: keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3)),
        lambda: keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3)),
        lambda: keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3)),
        lambda: keras.applications.DenseNet121(weights=None, input_shape=(64, 64, 3)),
        lambda: keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3)),
    ],
    ids=["MobileNetV2", "ResNet50", "EfficientNetB0", "DenseNet121", "MobileNetV3Small"],
)
def test_applications_agree_with_keras(app):
    assert compare_with_keras(app()) == []


def test_a_layer_keras_ships_outside_keras_layers_is_known():
    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3))
    graph = graph_of(model)
    engine = ShapeEngine(graph)
    scale = graph.nodes_of_layer("convnext_tiny_stage_0_block_0_layer_scale")[0]
    assert engine.result(scale).errors == []
    assert engine.errors() == []
    assert engine.total_params() == model.count_params()


# ----------------------------------------------------------------- errors
def two_branches(units_a=8, units_b=16):
    graph = ModelGraph()
    ids = {}
    for key, class_name, config, name in [
        ("x", "InputLayer", {"batch_shape": [None, 4]}, "x"),
        ("a", "Dense", {"units": units_a}, "branch_a"),
        ("b", "Dense", {"units": units_b}, "branch_b"),
        ("add", "Add", {}, "add"),
    ]:
        op = add_layer(graph, class_name, config, name=name)
        graph.apply(op)
        ids[key] = op.node.id
    graph.apply(Connect(ids["x"], 0, ids["a"], 0))
    graph.apply(Connect(ids["x"], 0, ids["b"], 0))
    graph.apply(Connect(ids["a"], 0, ids["add"], 0))
    graph.apply(Connect(ids["b"], 0, ids["add"], 1))
    return graph, ids


def test_merge_error_names_both_branches():
    graph, ids = two_branches()
    engine = ShapeEngine(graph)
    assert engine.result(ids["add"]).errors == [
        "Add needs inputs of one shape: (None, 8) from 'branch_a' vs (None, 16) from 'branch_b'"
    ]
    assert not engine.is_valid()
    graph.apply(SetParam("branch_b", "units", 8))
    assert engine.result(ids["add"]).errors == []
    assert engine.result(ids["add"]).output_shapes == [(None, 8)]


def single(class_name, config, shape, dtype="float32"):
    graph, node_id = app_graph(class_name, config, [(shape, dtype)])
    return ShapeEngine(graph).result(node_id)


def test_bad_parameters_are_node_errors():
    assert "filters" in single("Conv2D", {"filters": -3, "kernel_size": 3}, (None, 8, 8, 1)).errors[0]
    assert "os.system" in single("Dense", {"units": 2, "activation": "os.system"}, (None, 4)).errors[0]
    kernel = single("Conv2D", {"filters": 2, "kernel_size": 9}, (None, 5, 5, 1)).errors[0]
    assert "negative" in kernel and "(None, 5, 5, 1)" in kernel
    rank = single("Conv2D", {"filters": 2, "kernel_size": 3}, (None, 8)).errors[0]
    assert "ndim" in rank


def test_missing_and_extra_inputs():
    graph = ModelGraph()
    add = add_layer(graph, "Add", {}, name="merge")
    graph.apply(add)
    engine = ShapeEngine(graph)
    assert engine.result(add.node.id).errors == ["Add 'merge' needs at least 2 inputs; none is connected"]
    graph, ids = two_branches(8, 8)
    extra = add_layer(graph, "Dense", {"units": 1}, name="head")
    graph.apply(extra)
    graph.apply(Connect(ids["a"], 0, extra.node.id, 0))
    graph.apply(Connect(ids["b"], 0, extra.node.id, 1))
    assert ShapeEngine(graph).result(extra.node.id).errors == [
        "Dense 'head' takes 1 input, but input 1 is connected to 'branch_b'"
    ]


def test_float_into_embedding_is_a_warning_as_keras_casts_it():
    result = single("Embedding", {"input_dim": 10, "output_dim": 3}, (None, 5))
    assert result.errors == []
    assert result.output_shapes == [(None, 5, 3)]
    assert "int32" in result.warnings[0]


def test_downstream_of_an_error_waits_without_its_own_error():
    graph, ids = two_branches()
    head = add_layer(graph, "Dense", {"units": 1})
    graph.apply(head)
    graph.apply(Connect(ids["add"], 0, head.node.id, 0))
    result = ShapeEngine(graph).result(head.node.id)
    assert result.errors == [] and result.outputs is None
    assert result.blocked_by == [ids["add"]]


def test_shared_layer_second_call_checks_against_the_first_build():
    graph, ids = two_branches(4, 4)
    again = call_again(graph, ids["a"])
    graph.apply(again)
    graph.apply(Connect(ids["add"], 0, again.node.id, 0))
    engine = ShapeEngine(graph)
    assert engine.result(again.node.id).output_shapes == [(None, 4)]
    assert engine.result(again.node.id).params == 20
    assert engine.total_params() == 20 + 20
    # Keras builds a shared layer at its first call: a second call on another
    # width is refused, as Keras refuses it.
    graph.apply(SetParam("branch_b", "units", 5))
    graph.apply(RemoveNode(ids["add"]))
    graph.apply(Connect(ids["b"], 0, again.node.id, 0))
    error = engine.result(again.node.id).errors[0]
    assert "incompatible" in error and "'branch_b'" in error


def test_only_affected_nodes_recompute(monkeypatch):
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    graph = graph_of(model)
    engine = ShapeEngine(graph)
    engine.update()
    calls = []
    original = engine._compute
    monkeypatch.setattr(engine, "_compute", lambda n, i: calls.append(n) or original(n, i))
    # The classifier at the end: only it recomputes.
    graph.apply(SetParam("predictions", "units", 10))
    engine.update()
    assert calls == graph.nodes_of_layer("predictions")
    assert engine.total_params() == model.count_params() - 990 * 1281
    # A new activation keeps shapes: the edited node recomputes, and propagation
    # stops at once because its outputs are unchanged.
    calls.clear()
    graph.apply(SetParam("Conv1", "activation", "relu"))
    engine.update()
    assert calls == graph.nodes_of_layer("Conv1")
    # Fewer stem filters change shapes until the next convolution fixes them again.
    calls.clear()
    graph.apply(SetParam("Conv1", "filters", 16))
    changed = engine.update()
    assert 3 <= len(calls) < 15 and changed <= set(calls)
    assert ShapeEngine(graph).results() == engine.results()


@pytest.mark.parametrize("class_name", ["Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"])
def test_transposed_convolution_sizes_match_keras(class_name):
    """The classic confusion: every stride/padding/output_padding/dilation combination
    gives Keras's size, and what Keras refuses the app refuses."""
    rank = int(class_name[4])
    shape = (None, *([7] * rank), 2)
    checked = 0
    for strides in (1, 2, 3):
        for padding in ("valid", "same"):
            for output_padding in (None, 0, 1, 2):
                for dilation in (1, 2):
                    config = {
                        **catalog.default_config(class_name),
                        "filters": 3,
                        "kernel_size": [3] * rank,
                        "strides": [strides] * rank,
                        "padding": padding,
                        "output_padding": None if output_padding is None else [output_padding] * rank,
                        "dilation_rate": [dilation] * rank,
                    }
                    graph, node_id = app_graph(class_name, config, [(shape, "float32")])
                    result = ShapeEngine(graph).result(node_id)
                    try:
                        model = keras_model(class_name, config, [(shape, "float32")])
                    except Exception:  # noqa: BLE001
                        assert result.errors, (config, "Keras refuses, the app accepts")
                        continue
                    assert result.errors == [], (config, result.errors)
                    assert result.output_shapes == [tuple(model.outputs[0].shape)], config
                    checked += 1
    assert checked > 10


def test_submodel_called_on_other_shapes_follows_keras():
    """A sub-model built for one width, called on tensors of another length."""
    inner_in = keras.Input((None, 4), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Conv1D(3, 2, name="conv")(inner_in), name="block")
    a, b = keras.Input((10, 4), name="a"), keras.Input((6, 4), name="b")
    model = keras.Model([a, b], [inner(a), inner(b)])
    assert compare_with_keras(model) == []


# ------------------------------------------------ the live engine equals a fresh one
def live_and_fresh(engine, graph):
    """Every field of every node and the model's answers, live and from a cold pass."""

    def facts(e):
        nodes = {
            n: (r.outputs, r.params, r.trainable_params, r.errors, r.warnings, r.blocked_by)
            for n, r in e.results().items()
        }
        return nodes, e.errors(), e.total_params(), e.trainable_params(), e.is_valid()

    cold = ShapeEngine(ModelGraph.from_dict(graph.to_dict()))
    try:
        return facts(engine), facts(cold)
    finally:
        cold.close()


def test_shared_layer_follows_which_call_comes_first_after_an_unrelated_rewire():
    from builder_app.core.ops import Disconnect

    graph = ModelGraph()
    ops = {"x": add_layer(graph, "InputLayer", {"batch_shape": [None, 8]}, name="x")}
    graph.apply(ops["x"])
    ops["a"] = add_layer(graph, "Dense", {"units": 3}, name="shared")
    graph.apply(ops["a"])
    ops["b"] = call_again(graph, ops["a"].node.id)
    graph.apply(ops["b"])
    ops["c"] = add_layer(graph, "Dense", {"units": 4}, name="c")
    graph.apply(ops["c"])
    ops["e"] = add_layer(graph, "Dense", {"units": 6}, name="e")
    graph.apply(ops["e"])
    ids = {k: op.node.id for k, op in ops.items()}
    for src, dst in [("x", "c"), ("c", "a"), ("x", "e"), ("e", "b")]:
        graph.apply(Connect(ids[src], 0, ids[dst], 0))
    engine = ShapeEngine(graph)
    assert engine.result(ids["a"]).params == 4 * 3 + 3  # call 1 comes first and builds
    assert engine.result(ids["b"]).errors
    # Feeding c from e puts call 2 first in topological order: it builds the layer now.
    graph.apply(Disconnect(ids["c"], 0))
    graph.apply(Connect(ids["e"], 0, ids["c"], 0))
    engine.update_shapes()
    live, fresh = live_and_fresh(engine, graph)
    assert live == fresh
    assert engine.result(ids["b"]).params == 6 * 3 + 3
    assert engine.result(ids["b"]).errors == [] and engine.result(ids["a"]).errors


def test_model_output_port_that_does_not_exist_is_invalid_at_once():
    from builder_app.core.graph import GraphError, PortRef
    from builder_app.core.ops import SetModelIO

    graph = ModelGraph()
    made = []
    for class_name, config in [
        ("InputLayer", {"batch_shape": [None, 8]}),
        ("InputLayer", {"batch_shape": [None, 5, 8]}),
        ("LSTM", {"units": 4}),
        ("Dense", {"units": 2}),
    ]:
        made.append(add_layer(graph, class_name, config))
        graph.apply(made[-1])
    x, lstm_in, lstm, dense = made
    graph.apply(Connect(x.node.id, 0, dense.node.id, 0))
    graph.apply(Connect(lstm_in.node.id, 0, lstm.node.id, 0))
    engine = ShapeEngine(graph)
    assert engine.is_valid()
    # An LSTM may have 3 outputs (return_state), this one has 1; a Dense has 1.
    for ref in (PortRef(lstm.node.id, 2), PortRef(dense.node.id, 1)):
        try:
            graph.apply(SetModelIO([], [ref]))
        except GraphError:
            continue  # refused by the op: nothing changed, nothing to disagree on
        live, fresh = live_and_fresh(engine, graph)
        assert live == fresh
        assert not engine.is_valid()
        graph.apply(SetModelIO([], []))
        assert engine.is_valid()


def test_a_rename_reaches_every_message_that_names_the_node():
    from builder_app.core.ops import RenameLayer

    graph, ids = two_branches()
    head = add_layer(graph, "Dense", {"units": 1}, name="head")
    graph.apply(head)
    graph.apply(Connect(ids["a"], 0, head.node.id, 0))
    graph.apply(Connect(ids["b"], 0, head.node.id, 1))
    engine = ShapeEngine(graph)
    assert "'branch_b'" in engine.result(ids["add"]).errors[0]
    graph.apply(RenameLayer("branch_b", "wide"))
    engine.update_shapes()
    assert engine.result(ids["add"]).errors == [
        "Add needs inputs of one shape: (None, 8) from 'branch_a' vs (None, 16) from 'wide'"
    ]
    assert engine.result(head.node.id).errors == ["Dense 'head' takes 1 input, but input 1 is connected to 'wide'"]
    # A second call relabels the first ("wide (call 1)") in its consumers' messages too.
    graph.apply(call_again(graph, ids["b"]))
    live, fresh = live_and_fresh(engine, graph)
    assert live == fresh
    assert "'wide (call 1)'" in engine.result(ids["add"]).errors[0]


def test_blocked_by_follows_where_the_error_moves():
    graph, ids = two_branches()
    head = add_layer(graph, "Dense", {"units": 1})
    graph.apply(head)
    tail = add_layer(graph, "Dense", {"units": 1})
    graph.apply(tail)
    graph.apply(Connect(ids["add"], 0, head.node.id, 0))
    graph.apply(Connect(head.node.id, 0, tail.node.id, 0))
    engine = ShapeEngine(graph)
    assert engine.result(tail.node.id).blocked_by == [ids["add"]]
    # The add is fixed, the head breaks: the tail waits on the head now.
    graph.apply(SetParam("branch_b", "units", 8))
    graph.apply(SetParam(head.node.layer, "units", -1))
    live, fresh = live_and_fresh(engine, graph)
    assert live == fresh
    assert engine.result(tail.node.id).blocked_by == [head.node.id]
