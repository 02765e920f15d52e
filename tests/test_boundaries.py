"""Crafted input is refused at the boundary in one line, never a crash or a hang (issue 16,
items 1, 2 and 12): non-finite positions, huge port indices, call templates whose ports
are not port numbers, and malformed clipboard payloads, at the loader, at paste and in
the operations."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import time
import zipfile

import pytest

from builder_app.core.clipboard import copy_nodes, paste_ops
from builder_app.core.graph import (
    MAX_PORTS,
    GraphError,
    ModelGraph,
    Node,
    PortError,
    PortRef,
    PositionError,
)
from builder_app.core.ops import AddNode, Connect, MoveNode, SetCall, SetModelIO, add_layer
from builder_app.core.ports import input_ports, max_input_port, max_output_port
from builder_app.core.project import FORMAT_VERSION, Project, ProjectLoadError, load_project

NON_FINITE = [float("nan"), float("inf"), float("-inf")]
HUGE = [10**9, 2**70]


def small_graph() -> tuple[ModelGraph, str, str]:
    graph = ModelGraph("tiny")
    x = graph.apply(add_layer(graph, "InputLayer", {"batch_shape": [None, 2], "dtype": "float32"})).node_id
    d = graph.apply(add_layer(graph, "Dense", {"units": 2}, position=(100.0, 0.0))).node_id
    graph.apply(Connect(x, 0, d, 0))
    return graph, x, d


def graph_dict() -> dict:
    return small_graph()[0].to_dict()


def project_bytes(graph: dict) -> bytes:
    doc = {
        "format": "builder-app-project",
        "format_version": FORMAT_VERSION,
        "app_version": "0.1.0",
        "graph": graph,
        "training": {},
        "runs": [],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("project.json", json.dumps(doc))  # NaN and Infinity as Python writes them
    return buffer.getvalue()


def load_refusal(graph: dict, tmp_path, name: str = "crafted.kproj") -> str:
    path = tmp_path / name
    path.write_bytes(project_bytes(graph))
    start = time.monotonic()
    with pytest.raises(ProjectLoadError) as info:
        load_project(path)
    assert time.monotonic() - start < 5, "refusing must be immediate"
    message = str(info.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    return message


def payload() -> dict:
    graph, x, d = small_graph()
    return copy_nodes(graph, [x, d])


def paste_refusal(data: dict) -> str:
    target = ModelGraph("target")
    before = target.to_dict()
    with pytest.raises(GraphError) as info:
        batch, _ = paste_ops(target, data)
        batch.apply(target)
    assert target.to_dict() == before
    message = str(info.value)
    assert message and "\n" not in message
    return message


# ------------------------------------------------------ 1. non-finite positions
@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
def test_a_project_with_a_non_finite_position_is_refused_naming_the_node(tmp_path, value):
    data = graph_dict()
    data["nodes"][1]["position"] = [0.0, value]
    message = load_refusal(data, tmp_path)
    assert "'n2'" in message and "position" in message


def test_a_non_finite_position_inside_a_submodel_is_refused(tmp_path):
    outer = ModelGraph("outer")
    inner = small_graph()[0]
    outer.apply(add_layer(outer, "Functional", {}, name="block", submodel=inner))
    data = outer.to_dict()
    data["layers"][0]["submodel"]["nodes"][0]["position"] = [float("nan"), 1.0]
    assert "position" in load_refusal(data, tmp_path)


@pytest.mark.parametrize("value", [10**400, "1", True, None])
def test_a_position_that_is_no_float_is_refused(tmp_path, value):
    data = graph_dict()
    data["nodes"][1]["position"] = [value, 0.0]
    assert "'n2'" in load_refusal(data, tmp_path)


@pytest.mark.parametrize("value", NON_FINITE, ids=["nan", "inf", "-inf"])
def test_paste_of_a_non_finite_position_is_refused(value):
    data = payload()
    data["nodes"][1]["position"] = [value, 0.0]
    assert "position" in paste_refusal(data)


@pytest.mark.parametrize(
    "position", [(float("nan"), 0.0), (0.0, float("inf")), (float("-inf"), 1.0), (10**400, 0.0), ("a", 0.0), (1.0,)]
)
def test_move_node_to_a_non_finite_position_is_a_position_error(position):
    graph, _, d = small_graph()
    before = graph.to_dict()
    with pytest.raises(PositionError):
        MoveNode(d, position).apply(graph)
    assert issubclass(PositionError, GraphError)
    assert graph.to_dict() == before


def test_add_node_at_a_non_finite_position_is_refused():
    graph, _, _ = small_graph()
    step = add_layer(graph, "Dense", {"units": 1}, position=(float("nan"), 0.0))
    with pytest.raises(PositionError):
        step.apply(graph)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "builder_app", *args], capture_output=True, text=True, env=env, timeout=300
    )


def crafted_file(tmp_path, kind: str):
    data = graph_dict()
    if kind == "nan":
        data["nodes"][1]["position"] = [float("nan"), 0.0]
    else:
        data["edges"][0][3] = 10**9
    path = tmp_path / f"{kind}.kproj"
    path.write_bytes(project_bytes(data))
    return path


def assert_one_line_refusal(done: subprocess.CompletedProcess, path) -> None:
    # A crash would be a negative exit code (SIGSEGV -11), a hang the timeout.
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and path.name in lines[0], done.stderr


def test_render_of_a_non_finite_position_exits_2_in_one_line(tmp_path):
    path = crafted_file(tmp_path, "nan")
    assert_one_line_refusal(run_cli("render", str(path), "--png", str(tmp_path / "out.png")), path)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nan", "port"])
@pytest.mark.parametrize("command", ["validate", "render"])
def test_cli_refuses_crafted_files_in_one_line(tmp_path, kind, command):
    path = crafted_file(tmp_path, kind)
    extra = ["--png", str(tmp_path / "out.png")] if command == "render" else []
    assert_one_line_refusal(run_cli(command, str(path), *extra), path)


# ------------------------------------------------------------ 2. huge ports
@pytest.mark.parametrize("port", HUGE)
@pytest.mark.parametrize("end", [1, 3], ids=["output", "input"])
def test_a_project_with_a_huge_edge_port_is_refused(tmp_path, port, end):
    data = graph_dict()
    data["edges"][0][end] = port
    message = load_refusal(data, tmp_path)
    assert "port" in message or "input" in message or "output" in message
    with pytest.raises(PortError):
        ModelGraph.from_dict(data)


@pytest.mark.parametrize("port", HUGE)
def test_a_project_with_a_huge_model_output_port_is_refused(tmp_path, port):
    data = graph_dict()
    data["outputs"] = [["n2", port]]
    load_refusal(data, tmp_path)
    with pytest.raises(PortError):
        ModelGraph.from_dict(data)


@pytest.mark.parametrize("port", HUGE)
def test_a_project_with_a_huge_call_template_port_is_refused(tmp_path, port):
    data = graph_dict()
    data["nodes"][1]["call"] = {"args": [{"port": port}], "kwargs": {}}
    assert "'n2'" in load_refusal(data, tmp_path)
    with pytest.raises(PortError):
        ModelGraph.from_dict(data)


def test_ports_up_to_the_cap_still_load_and_are_shown():
    data = graph_dict()
    data["edges"][0][3] = MAX_PORTS - 1
    graph = ModelGraph.from_dict(data)
    assert len(input_ports(graph, "n2")) == MAX_PORTS
    assert max_input_port(graph, "n2") == MAX_PORTS - 1
    assert max_output_port(graph, "n1") == MAX_PORTS - 1
    data["edges"][0][3] = MAX_PORTS
    with pytest.raises(PortError):
        ModelGraph.from_dict(data)


def test_a_submodel_with_more_inputs_than_the_cap_takes_them_all():
    count = MAX_PORTS + 2
    inner_dict = {
        "name": "wide",
        "layers": [
            {"name": f"in_{i}", "class_name": "InputLayer", "config": {"batch_shape": [None, 1]}} for i in range(count)
        ],
        "nodes": [{"id": f"i{i}", "layer": f"in_{i}", "position": [0.0, float(i)]} for i in range(count)],
    }
    outer = {
        "name": "outer",
        "layers": [
            {"name": "x", "class_name": "InputLayer", "config": {"batch_shape": [None, 1]}},
            {"name": "wide", "class_name": "Functional", "config": {}, "submodel": inner_dict},
        ],
        "nodes": [{"id": "x", "layer": "x"}, {"id": "s", "layer": "wide"}],
        "edges": [["x", 0, "s", count - 1]],
    }
    graph = ModelGraph.from_dict(outer)
    assert max_input_port(graph, "s") == count - 1
    outer["edges"] = [["x", 0, "s", count]]
    with pytest.raises(PortError):
        ModelGraph.from_dict(outer)


@pytest.mark.parametrize("port", HUGE)
def test_connect_to_or_from_a_huge_port_is_a_port_error(port):
    graph, x, _ = small_graph()
    add = add_layer(graph, "Concatenate", {})
    graph.apply(add)
    before = graph.to_dict()
    start = time.monotonic()
    with pytest.raises(PortError):
        Connect(x, 0, add.node.id, port).apply(graph)
    with pytest.raises(PortError):
        Connect(x, port, add.node.id, 0).apply(graph)
    assert time.monotonic() - start < 2
    assert graph.to_dict() == before
    Connect(x, 0, add.node.id, MAX_PORTS - 1).apply(graph)  # the cap itself is a port


@pytest.mark.parametrize("port", HUGE)
def test_set_model_io_with_a_huge_output_port_is_a_port_error(port):
    graph, _, d = small_graph()
    with pytest.raises(PortError):
        SetModelIO([], [PortRef(d, port)]).apply(graph)
    assert graph.explicit_outputs() == []


@pytest.mark.parametrize("port", HUGE)
def test_set_call_with_a_huge_port_is_a_port_error(port):
    graph, _, d = small_graph()
    with pytest.raises(PortError):
        SetCall(d, {"args": [{"port": port}], "kwargs": {}}).apply(graph)
    assert graph.node(d).call is None


@pytest.mark.parametrize("where", ["src", "dst"])
@pytest.mark.parametrize("port", HUGE)
def test_paste_of_a_huge_edge_port_is_refused(port, where):
    data = payload()
    data["edges"][0][1 if where == "src" else 3] = port
    paste_refusal(data)


def test_paste_of_a_huge_call_template_port_is_refused():
    data = payload()
    data["nodes"][1]["call"] = {"args": [{"port": 10**9}], "kwargs": {}}
    paste_refusal(data)


# --------------------------------------------- 12. call templates, loose types
BAD_TEMPLATE_PORTS = ["x", True, 1.0, -1, None, [0]]


@pytest.mark.parametrize("port", BAD_TEMPLATE_PORTS, ids=repr)
def test_a_project_with_a_call_port_that_is_no_port_number_is_refused(tmp_path, port):
    data = graph_dict()
    data["nodes"][1]["call"] = {"args": [{"port": port}], "kwargs": {}}
    assert "'n2'" in load_refusal(data, tmp_path)


@pytest.mark.parametrize("port", BAD_TEMPLATE_PORTS, ids=repr)
def test_paste_of_a_call_port_that_is_no_port_number_is_refused(port):
    data = payload()
    data["nodes"][1]["call"] = {"args": [{"port": 0}], "kwargs": {"mask": {"port": port}}}
    paste_refusal(data)


@pytest.mark.parametrize("port", BAD_TEMPLATE_PORTS, ids=repr)
def test_set_call_with_a_port_that_is_no_port_number_is_a_port_error(port):
    graph, _, d = small_graph()
    with pytest.raises(PortError):
        SetCall(d, {"args": [[{"port": port}]]}).apply(graph)
    assert graph.node(d).call is None
    with pytest.raises(PortError):
        AddNode(Node("n9", "dense", (0.0, 0.0), {"args": [{"port": port}]})).apply(graph)
    assert "n9" not in graph.nodes


@pytest.mark.parametrize(
    "call", [{"args": "abc"}, {"args": {"port": 0}}, {"kwargs": [1, 2]}, {"args": [], "kwargs": "x"}], ids=repr
)
def test_a_call_whose_args_or_kwargs_have_the_wrong_type_is_refused(tmp_path, call):
    data = graph_dict()
    data["nodes"][1]["call"] = call
    load_refusal(data, tmp_path)
    graph, _, d = small_graph()
    with pytest.raises(GraphError):
        SetCall(d, call).apply(graph)


def test_a_valid_call_template_still_loads_and_sets():
    graph, _, d = small_graph()
    call = {"args": [{"port": 0}], "kwargs": {"training": False, "mask": None}}
    SetCall(d, call).apply(graph)
    assert ModelGraph.from_dict(graph.to_dict()).node(d).call == call


@pytest.mark.parametrize("kind", ["kernel_initializer", "kernel_regularizer", "bias_constraint"])
def test_an_initializer_whose_class_name_is_a_list_is_a_config_problem(kind):
    from builder_app.core.config_check import check_config

    problems = check_config("Dense", {"units": 2, kind: {"class_name": ["GlorotUniform"], "config": {}}})
    assert problems and "class_name" in problems[0]


def test_the_inspector_reads_an_initializer_whose_class_name_is_a_list_as_no_class():
    from builder_app.core.values import object_class

    assert object_class("initializer", {"class_name": ["GlorotUniform"], "config": {}}) is None


def test_the_inspector_shows_a_layer_whose_initializer_class_name_is_a_list(qtbot):
    from builder_app.core.catalog import default_config
    from builder_app.ui.editor.document import Document
    from builder_app.ui.editor.inspector import Inspector

    graph = ModelGraph("crafted")
    source = add_layer(graph, "InputLayer", {"batch_shape": [None, 4], "dtype": "float32"})
    graph.apply(source)
    config = {**default_config("Dense"), "kernel_initializer": {"class_name": ["GlorotUniform"], "config": {}}}
    dense = add_layer(graph, "Dense", config)
    graph.apply(dense)
    document = Document(Project(graph))
    document.attach_engine(background=False)  # the inspector shows parameters once Keras is there
    widget = Inspector(document)
    qtbot.addWidget(widget)
    widget.show_node(graph, dense.node.id)  # raised TypeError (unhashable list) before
    editor = widget.editor("kernel_initializer")
    assert editor is not None and editor.combo.currentText() != "GlorotUniform"
    document.undo_stack.clear()
    document.close()


BAD_EDGES = [
    [["n1", 0, "n2"]],
    [["n1", 0, "n2", 0, 5]],
    ["abcd"],
    [1],
    [None],
    [["n1", "0", "n2", 0]],
    [["n1", 0, "n2", True]],
    [["n1", 0.0, "n2", 0]],
    [[0, 0, "n2", 0]],
    {"n1": "n2"},
    "n1n2",
    None,
]


@pytest.mark.parametrize("edges", BAD_EDGES, ids=repr)
def test_paste_refuses_edges_that_are_not_four_item_wires(edges):
    data = payload()
    data["edges"] = copy.deepcopy(edges)
    assert "wire" in paste_refusal(data) or "edge" in paste_refusal(data)


@pytest.mark.parametrize(
    "change",
    [
        {"layers": "x"},
        {"layers": ["x"]},
        {"layers": [{"name": ["a"], "class_name": "Dense"}]},
        {"nodes": {"a": 1}},
        {"nodes": [None]},
        {"nodes": [{"id": "n1", "layer": "dense", "position": [0, 0], "call": "x"}]},
    ],
    ids=repr,
)
def test_paste_refuses_malformed_layers_and_nodes_in_one_line(change):
    data = payload()
    data.update(copy.deepcopy(change))
    paste_refusal(data)


def test_a_good_payload_still_pastes():
    data = payload()
    target = ModelGraph("target")
    batch, ids = paste_ops(target, data)
    batch.apply(target)
    assert len(ids) == 2 and len(target.edges()) == 1


# ------------------------------------------------------ also checked: a payload from a newer version
def test_a_paste_from_a_newer_version_is_refused_in_one_line():
    from builder_app.core.clipboard import CLIPBOARD_VERSION

    data = payload()
    data["version"] = CLIPBOARD_VERSION + 1
    data["nodes"][0]["shiny_new_field"] = {"anything": [1, 2, 3]}
    message = paste_refusal(data)
    assert "another version" in message
