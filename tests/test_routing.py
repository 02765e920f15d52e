"""Wire routing (core.routing): bends that take wires around nodes, without Qt or Keras."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder_app.core.routing import Router, route

CLEARANCE = 12.0


def t_range(a: float, b: float, low: float, high: float) -> tuple[float, float]:
    """The parameters t in [0, 1] where a + t (b - a) lies strictly inside (low, high)."""
    if a == b:
        return (0.0, 1.0) if low < a < high else (1.0, 0.0)
    t1, t2 = (low - a) / (b - a), (high - a) / (b - a)
    return max(0.0, min(t1, t2)), min(1.0, max(t1, t2))


def enters(p, q, box, grow: float) -> bool:
    """Whether segment p-q passes through ``box`` grown by ``grow`` (less a hair, for rounding)."""
    x, y, w, h = box
    grow -= 1e-6
    ax, bx = t_range(p[0], q[0], x - grow, x + w + grow)
    ay, by = t_range(p[1], q[1], y - grow, y + h + grow)
    return min(bx, by) - max(ax, ay) > 1e-9


def inside(point, box, grow: float) -> bool:
    x, y, w, h = box
    grow -= 1e-6
    return x - grow < point[0] < x + w + grow and y - grow < point[1] < y + h + grow


def problems(boxes, a, b, start, end, bends, grow=CLEARANCE) -> list[str]:
    """How the poly-line start, bends, end runs into a node: ``[]`` when it does not.

    Other nodes must stay ``grow`` away; the wire's own two nodes must not be entered.
    """
    found = []
    points = [start, *bends, end]
    for s, e in zip(points, points[1:], strict=False):
        for name, box in boxes.items():
            if enters(s, e, box, 0.0 if name in (a, b) else grow):
                found.append(f"{s}->{e} enters {name} {box}")
    return found


def ports(boxes, a, b, direction="TB"):
    """The output port of node a and the input port of node b."""
    ax, ay, aw, ah = boxes[a]
    bx, by, bw, bh = boxes[b]
    if direction == "TB":
        return (ax + aw / 2, ay + ah), (bx + bw / 2, by)
    return (ax + aw, ay + ah / 2), (bx, by + bh / 2)


def transposed(boxes):
    return {name: (y, x, h, w) for name, (x, y, w, h) in boxes.items()}


# A layered drawing: rows of boxes of one height, left to right with gaps, rows apart.
row_strategy = st.lists(
    st.tuples(st.floats(40, 200), st.floats(4, 160)),  # (width, gap before it)
    min_size=1,
    max_size=5,
)
layers_strategy = st.tuples(
    st.lists(st.tuples(st.floats(-300, 100), row_strategy), min_size=2, max_size=9),
    st.floats(30, 60),  # node height
    st.floats(40, 140),  # gap between rows
)


def layered(layers) -> dict[str, tuple[float, float, float, float]]:
    rows, height, gap = layers
    boxes = {}
    for r, (x, row) in enumerate(rows):
        for k, (width, before) in enumerate(row):
            x += before
            boxes[f"r{r}n{k}"] = (x, r * (height + gap), width, height)
            x += width
    return boxes


@settings(max_examples=200, deadline=None)
@given(layers_strategy, st.data())
def test_a_wire_never_runs_into_a_node_and_bends_in_the_channels(layers, data):
    boxes = layered(layers)
    names = sorted(boxes)
    a = data.draw(st.sampled_from(names))
    b = data.draw(st.sampled_from([n for n in names if n != a]))
    start, end = ports(boxes, a, b)
    bends = Router(boxes, clearance=CLEARANCE).route(start, end, ignore=(a, b))
    assert problems(boxes, a, b, start, end, bends) == []
    # Bends lie in the channels between rows, a clearance away from every node.
    for bend in bends:
        assert not any(inside(bend, box, CLEARANCE) for box in boxes.values()), bend
    rows = abs(int(a[1 : a.index("n")]) - int(b[1 : b.index("n")])) + 1
    assert len(bends) <= 2 * rows + 2
    if end[1] > start[1]:  # forward: every bend between the two ends
        assert all(start[1] <= y <= end[1] for _, y in bends), bends


@settings(max_examples=100, deadline=None)
@given(layers_strategy, st.data())
def test_left_to_right_is_top_to_bottom_turned(layers, data):
    boxes = layered(layers)
    names = sorted(boxes)
    a = data.draw(st.sampled_from(names))
    b = data.draw(st.sampled_from([n for n in names if n != a]))
    start, end = ports(boxes, a, b)
    down = Router(boxes).route(start, end, ignore=(a, b))

    turned = transposed(boxes)
    start_lr, end_lr = ports(turned, a, b, "LR")
    across = Router(turned, direction="LR").route(start_lr, end_lr, ignore=(a, b))
    assert across == [(y, x) for x, y in down]
    assert problems(turned, a, b, start_lr, end_lr, across) == []


def test_routing_is_deterministic_whatever_the_order_of_the_boxes():
    boxes = layered(
        ([(0, [(100, 0), (100, 50)]), (40, [(120, 0)]), (0, [(100, 30), (80, 30)])], 40, 60)
    )
    start, end = ports(boxes, "r0n0", "r2n1")
    once = Router(boxes).route(start, end, ignore=("r0n0", "r2n1"))
    again = Router(dict(reversed(boxes.items()))).route(start, end, ignore=["r2n1", "r0n0"])
    assert once == again
    assert once  # r1n0 stands in the way


def test_a_clear_wire_has_no_bends():
    boxes = {"a": (0, 0, 100, 40), "b": (0, 100, 100, 40), "c": (300, 100, 100, 40)}
    router = Router(boxes)
    assert router.route((50, 40), (50, 100), ignore=("a", "b")) == []
    assert router.route((50, 40), (350, 100), ignore=("a", "c")) == []
    assert route((0, 0), (500, 500), []) == []


def test_a_skip_connection_goes_round_the_chain_beside_it():
    # a ResNet residual: input -> conv -> bn -> add, and input -> add
    boxes = {
        name: (0.0, 100.0 * i, 160.0, 40.0) for i, name in enumerate(["x", "conv", "bn", "add"])
    }
    start, end = ports(boxes, "x", "add")
    bends = Router(boxes).route(start, end, ignore=("x", "add"))
    assert problems(boxes, "x", "add", start, end, bends) == []
    assert len(bends) == 2
    (x1, y1), (x2, y2) = bends
    assert x1 == x2 and (x1 <= -2 * CLEARANCE or x1 >= 160 + 2 * CLEARANCE)  # beside the chain
    assert 40 < y1 < 100 and 240 < y2 < 300  # in the gaps after x and before add


def test_the_wire_goes_round_the_side_nearer_its_straight_line():
    boxes = {"a": (0, 0, 100, 40), "m": (20, 100, 200, 40), "b": (0, 200, 100, 40)}
    start, end = ports(boxes, "a", "b")  # x = 50: m's left edge is 30 away, its right 170
    bends = Router(boxes).route(start, end, ignore=("a", "b"))
    assert bends and all(x < 20 - CLEARANCE for x, _ in bends)
    mirrored = {n: (100 - x - w, y, w, h) for n, (x, y, w, h) in boxes.items()}
    bends = Router(mirrored).route(start, end, ignore=("a", "b"))
    assert bends and all(x > 80 + CLEARANCE for x, _ in bends)


def test_a_gap_between_two_nodes_is_used_when_wide_enough():
    def between(gap):
        half = gap / 2
        boxes = {
            "a": (-50, 0, 100, 40),
            "left": (-300 - half, 100, 300, 40),
            "right": (half, 100, 300, 40),
            "b": (-50, 200, 100, 40),
        }
        start, end = ports(boxes, "a", "b")
        bends = Router(boxes).route(start, end, ignore=("a", "b"))
        assert problems(boxes, "a", "b", start, end, bends) == []
        return bends

    assert between(3 * CLEARANCE) == []  # straight down the middle of the gap
    narrow = between(CLEARANCE)  # too narrow for the clearance on both sides: round the outside
    assert narrow and all(abs(x) > 300 for x, _ in narrow)


def test_a_wire_to_a_node_above_goes_round_and_enters_from_above():
    # the user dragged the consumer above its producer
    boxes = {"b": (0, 0, 100, 40), "m": (0, 100, 100, 40), "a": (0, 200, 100, 40)}
    start, end = ports(boxes, "a", "b")  # (50, 240) -> (50, 0)
    bends = Router(boxes).route(start, end, ignore=("a", "b"))
    assert problems(boxes, "a", "b", start, end, bends) == []
    assert len(bends) == 4
    assert bends[0][0] == 50 and bends[0][1] > 240  # leaves downwards
    assert bends[-1][0] == 50 and bends[-1][1] < 0  # enters from above
    assert bends[1][0] == bends[2][0] and not 0 - CLEARANCE < bends[1][0] < 100 + CLEARANCE


def test_a_wire_within_one_row_goes_round():
    boxes = {"a": (0, 0, 100, 40), "m": (150, 0, 100, 40), "b": (300, 0, 100, 40)}
    start, end = ports(boxes, "a", "b")  # from a's bottom to b's top
    bends = Router(boxes).route(start, end, ignore=("a", "b"))
    assert problems(boxes, "a", "b", start, end, bends) == []
    assert bends[0][1] > 40 and bends[-1][1] < 0


def test_route_takes_only_the_obstacles():
    obstacles = [(0, 100, 100, 40)]
    bends = route((50, 40), (50, 200), obstacles)
    assert bends and problems({"m": obstacles[0]}, "a", "b", (50, 40), (50, 200), bends) == []
    across = route((40, 50), (200, 50), [(100, 0, 40, 100)], direction="LR", clearance=5)
    assert (
        across
        and problems({"m": (100, 0, 40, 100)}, "a", "b", (40, 50), (200, 50), across, 5) == []
    )


@pytest.mark.parametrize(
    ("boxes", "kwargs", "message"),
    [
        ({"n1": (0, 0, float("nan"), 10)}, {}, "routing: box 'n1' must be four finite numbers"),
        ({"n1": (0, 0, -5, 10)}, {}, "routing: box 'n1' has a negative size"),
        ({}, {"direction": "BT"}, "routing: direction must be 'TB' or 'LR'"),
        ({}, {"clearance": -1}, "routing: clearance must be a finite number >= 0"),
    ],
)
def test_bad_input_is_refused_in_one_line(boxes, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        Router(boxes, **kwargs)
    assert "\n" not in str(error.value)


def test_a_bad_port_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"routing: the end must be two finite numbers"):
        Router({}).route((0, 0), (float("inf"), 3))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-400, 400), st.floats(-400, 400), st.floats(1, 150), st.floats(1, 80)),
        min_size=2,
        max_size=25,
    ),
    st.data(),
)
def test_any_arrangement_gives_a_bounded_answer_clear_between_its_stubs(raw, data):
    # Nodes anywhere, overlapping too: only the stubs next to the ports may cross a node
    # that covers a port; the rest of the wire is still clear.
    boxes = {f"n{i}": box for i, box in enumerate(raw)}
    a, b = data.draw(st.sampled_from(sorted(boxes))), data.draw(st.sampled_from(sorted(boxes)))
    start, end = ports(boxes, a, b)
    router = Router(boxes)
    bends = router.route(start, end, ignore=(a, b))
    assert bends == Router(boxes).route(start, end, ignore=(a, b))
    assert len(bends) <= 2 * len(boxes) + 4
    if len(bends) >= 2:
        assert problems(boxes, a, b, bends[0], bends[-1], bends[1:-1]) == []
