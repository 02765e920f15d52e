"""Wire routing: bend points that take a wire around the nodes between its two ends.

In a layered drawing, a long skip connection (a ResNet residual, a U-Net skip, a
DenseNet concatenation) would run straight through the nodes of the rows it
skips. :class:`Router` gives such a wire a few bend points in the channels between
rows, so that the poly-line start, bends, end keeps ``clearance`` away from every
other node.

How (top to bottom; left to right is the same with x and y swapped):

- The node boxes, inflated by ``clearance``, are merged into *bands*: maximal
  y-intervals covered by some box. Between two bands is a *channel*, a horizontal
  strip that no box touches, where a wire may move sideways freely. This is the
  spatial index: a wire only looks at the bands its y-range overlaps, and within a
  band at the boxes its x-range overlaps (boxes sorted by x, found by bisection).
- A wire whose straight line is clear gets no bends (most wires of a layered
  layout: they join neighbouring rows).
- A forward wire (end below start) crosses every band in between vertically, in a
  free x-interval of that band (a gap between two boxes or beside them); the
  interval for each band is chosen by dynamic programming to keep the wire close
  to its straight line with few sideways moves. It turns at channel mid-lines, so
  every bend lies between ``start.y`` and ``end.y``. The poly-line is then pulled
  tight: a bend is skipped when the segment past it is still clear.
- A backward wire (end above start, or in the same band) leaves downwards into the
  channel below its start, runs up a lane beside every box of the rows in between
  (its own two nodes included), and comes down into its end from the channel above
  it: four bends.

The work per wire is bounded by the bands it spans (at most two bends per band),
never loops, and always returns a poly-line; only where a port lies inside another
node (overlapping nodes) can the stubs next to the ports cross that node.

Pure Python: this module never imports Qt or Keras.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Box = tuple[float, float, float, float]
"""A node's box: x, y, width, height (top-left origin, y grows down)."""

Point = tuple[float, float]
Direction = Literal["TB", "LR"]

#: How many free intervals of one band, nearest the straight line, routing weighs.
CANDIDATES_PER_BAND = 4
#: Cost of one sideways move, in canvas units: fewer, longer straight runs read better.
BEND_COST = 40.0
_EPS = 1e-9


@dataclass(frozen=True)
class _Rect:
    """An axis-aligned rectangle by its edges, and the node it belongs to."""

    left: float
    top: float
    right: float
    bottom: float
    name: str


@dataclass
class _Band:
    """A maximal y-interval covered by inflated boxes; the boxes sorted by left edge."""

    top: float
    bottom: float
    rects: list[_Rect]
    lefts: list[float]
    widest: float


def _crosses(p: Point, q: Point, r: _Rect) -> bool:
    """Whether segment p-q enters the open interior of ``r`` (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = p, q
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for step, low, high in ((dx, r.left - x0, r.right - x0), (dy, r.top - y0, r.bottom - y0)):
        if abs(step) < _EPS:
            if low >= -_EPS or high <= _EPS:  # parallel and outside or on an edge
                return False
            continue
        a, b = low / step, high / step
        if a > b:
            a, b = b, a
        t0, t1 = max(t0, a), min(t1, b)
        if t1 - t0 <= _EPS:
            return False
    return True


def _validate_box(name: str, box: Box) -> Box:
    if len(box) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in box):
        raise ValueError(f"routing: box '{name}' must be four finite numbers, not {box!r}")
    if box[2] < 0 or box[3] < 0:
        raise ValueError(f"routing: box '{name}' has a negative size {box[2]} x {box[3]}")
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _validate_point(point: Sequence[float], what: str) -> Point:
    if len(point) != 2 or not all(isinstance(v, int | float) and math.isfinite(v) for v in point):
        raise ValueError(f"routing: the {what} must be two finite numbers, not {point!r}")
    return (float(point[0]), float(point[1]))


class Router:
    """Routes many wires over one set of node boxes.

    Build it once per layout (the index costs O(n log n) for n boxes) and call
    :meth:`route` for every wire; boxes that change need a new router.

    Args:
        boxes: Node id -> its box.
        direction: ``"TB"``: wires leave their start downwards and enter their end
            from above; ``"LR"``: they leave rightwards and enter from the left.
        clearance: How far a wire keeps from every node but its own two.
    """

    def __init__(
        self, boxes: Mapping[str, Box], direction: Direction = "TB", clearance: float = 12.0
    ) -> None:
        if direction not in ("TB", "LR"):
            raise ValueError(f"routing: direction must be 'TB' or 'LR', not {direction!r}")
        if not (isinstance(clearance, int | float) and math.isfinite(clearance) and clearance >= 0):
            raise ValueError(f"routing: clearance must be a finite number >= 0, not {clearance!r}")
        self.direction: Direction = direction
        self.clearance = float(clearance)
        self._raw: dict[str, _Rect] = {}
        inflated: list[_Rect] = []
        c = self.clearance
        for name in sorted(boxes):
            x, y, w, h = self._flip_box(_validate_box(name, boxes[name]))
            self._raw[name] = _Rect(x, y, x + w, y + h, name)
            inflated.append(_Rect(x - c, y - c, x + w + c, y + h + c, name))
        inflated.sort(key=lambda r: (r.top, r.left, r.name))
        self._bands: list[_Band] = []
        for rect in inflated:
            if self._bands and rect.top < self._bands[-1].bottom:
                band = self._bands[-1]
                band.bottom = max(band.bottom, rect.bottom)
                band.rects.append(rect)
            else:
                self._bands.append(_Band(rect.top, rect.bottom, [rect], [], 0.0))
        for band in self._bands:
            band.rects.sort(key=lambda r: (r.left, r.name))
            band.lefts = [r.left for r in band.rects]
            band.widest = max(r.right - r.left for r in band.rects)
        self._tops = [b.top for b in self._bands]
        self._bottoms = [b.bottom for b in self._bands]

    # ------------------------------------------------------------ public
    def route(self, start: Point, end: Point, ignore: Iterable[str] = ()) -> list[Point]:
        """Bend points (excluding start and end) for a wire that passes no other node.

        Args:
            start: The output port the wire leaves.
            end: The input port it enters.
            ignore: The wire's own two nodes. They are kept out of the way of the
                wire's middle, but not by ``clearance``: its ends touch them.

        Returns:
            The bend points, ``[]`` when the straight wire is clear.
        """
        p = self._flip(_validate_point(start, "start"))
        q = self._flip(_validate_point(end, "end"))
        own = frozenset(ignore)
        if self._clear(p, q, own):
            return []
        if self._forward(p, q):
            bends = self._pull_tight([p, *self._forward_bends(p, q, own), q], own)[1:-1]
        else:
            bends = self._backward_bends(p, q, own)
        return [self._flip(b) for b in _without_repeats(bends, p, q)]

    # ------------------------------------------------------- orientation
    def _flip(self, point: Point) -> Point:
        return point if self.direction == "TB" else (point[1], point[0])

    def _flip_box(self, box: Box) -> Box:
        x, y, w, h = box
        return box if self.direction == "TB" else (y, x, h, w)

    # ------------------------------------------------------------ bands
    def _band_at(self, y: float) -> int | None:
        """The band whose open interval holds y, if any."""
        i = bisect.bisect_right(self._tops, y) - 1
        if i >= 0 and y < self._bottoms[i]:
            return i
        return None

    def _gap_at(self, y: float) -> int:
        """The channel index at or below y: gap g lies between band g-1 and band g."""
        return bisect.bisect_right(self._tops, y)

    def _gap_level(self, gap: int, low: float, high: float) -> float:
        """A y in channel ``gap``, midway between its edges clipped to [low, high]."""
        top = self._bottoms[gap - 1] if gap > 0 else -math.inf
        bottom = self._tops[gap] if gap < len(self._bands) else math.inf
        top, bottom = max(top, low), min(bottom, high)
        if math.isinf(top) and math.isinf(bottom):
            return (low + high) / 2 if math.isfinite(low + high) else 0.0
        if math.isinf(top):
            return bottom - self.clearance
        if math.isinf(bottom):
            return top + self.clearance
        return (top + bottom) / 2

    def _levels(self, p: Point, q: Point) -> tuple[int, int]:
        """Where p and q lie: band i is level 2i+1, channel g is level 2g."""

        def level(y: float) -> int:
            band = self._band_at(y)
            return 2 * band + 1 if band is not None else 2 * self._gap_at(y)

        return level(p[1]), level(q[1])

    def _forward(self, p: Point, q: Point) -> bool:
        """Whether a channel, or the same channel, lies between p and q going down."""
        if q[1] <= p[1]:
            return False
        lp, lq = self._levels(p, q)
        return lq > lp or (lp == lq and lp % 2 == 0)

    def _candidates(self, rects: Iterable[_Rect], ideal: float) -> list[float]:
        """Where a wire may cross these boxes vertically: one x per free interval.

        The x is the straight line's ``ideal`` when it is free, kept a clearance
        away from the boxes; a narrow gap is crossed in its middle. The intervals
        nearest ``ideal`` come first.
        """
        intervals: list[tuple[float, float]] = []
        reach = -math.inf
        for r in sorted(rects, key=lambda r: (r.left, r.right)):
            if r.left > reach:
                intervals.append((reach, r.left))
            reach = max(reach, r.right)
        intervals.append((reach, math.inf))
        xs = []
        c = self.clearance
        for lo, hi in intervals:
            if hi - lo <= _EPS:
                continue
            if hi - lo < 4 * c:
                x = (lo + hi) / 2
            else:
                x = min(max(ideal, lo + c), hi - c)
            xs.append(x)
        xs.sort(key=lambda x: (abs(x - ideal), x))
        return xs[:CANDIDATES_PER_BAND]

    def _band_rects(self, band: _Band, own: frozenset[str]) -> list[_Rect]:
        return [r for r in band.rects if r.name not in own]

    # ------------------------------------------------------------ checks
    def _clear(self, p: Point, q: Point, own: frozenset[str]) -> bool:
        """Whether segment p-q passes outside every inflated box and every own raw box."""
        top, bottom = min(p[1], q[1]), max(p[1], q[1])
        # bands are disjoint and sorted, so their bottoms are sorted too
        first = bisect.bisect_right(self._bottoms, top)
        for i in range(first, len(self._bands)):
            band = self._bands[i]
            if band.top >= bottom:
                break
            lo_y, hi_y = max(band.top, top), min(band.bottom, bottom)
            if abs(q[1] - p[1]) < _EPS:
                xa, xb = min(p[0], q[0]), max(p[0], q[0])
            else:
                ta = (lo_y - p[1]) / (q[1] - p[1])
                tb = (hi_y - p[1]) / (q[1] - p[1])
                xa = p[0] + ta * (q[0] - p[0])
                xb = p[0] + tb * (q[0] - p[0])
                xa, xb = min(xa, xb), max(xa, xb)
            lo = bisect.bisect_left(band.lefts, xa - band.widest)
            hi = bisect.bisect_right(band.lefts, xb)
            for r in band.rects[lo:hi]:
                rect = self._raw[r.name] if r.name in own else r
                if _crosses(p, q, rect):
                    return False
        return True

    # ----------------------------------------------------------- forward
    def _forward_bends(self, p: Point, q: Point, own: frozenset[str]) -> list[Point]:
        """Bends down through every band between p and q, at channel mid-lines."""
        lp, lq = self._levels(p, q)
        first = (lp + 1) // 2  # the first band wholly below p
        last = lq // 2 - 1  # the last band wholly above q
        low, high = p[1], q[1]
        bends: list[Point] = []
        if lp % 2 == 1:  # p inside a band: straight down out of it
            bends.append((p[0], self._gap_level(lp // 2 + 1, low, high)))
        crossing = self._choose_crossings(p, q, range(first, last + 1), own)
        for band, x in zip(range(first, last + 1), crossing, strict=True):
            bends.append((x, self._gap_level(band, low, high)))
            bends.append((x, self._gap_level(band + 1, low, high)))
        if lq % 2 == 1:  # q inside a band: straight down into it
            bends.append((q[0], self._gap_level(lq // 2, low, high)))
        return bends

    def _choose_crossings(
        self, p: Point, q: Point, bands: range, own: frozenset[str]
    ) -> list[float]:
        """One x per band, least sideways travel plus a cost per move (dynamic programming)."""
        if not bands:
            return []
        options: list[list[float]] = []
        for i in bands:
            band = self._bands[i]
            mid = (band.top + band.bottom) / 2
            t = (mid - p[1]) / (q[1] - p[1])
            ideal = p[0] + min(max(t, 0.0), 1.0) * (q[0] - p[0])
            options.append(self._candidates(self._band_rects(band, own), ideal))

        def move(a: float, b: float) -> float:
            return abs(a - b) + (BEND_COST if abs(a - b) > _EPS else 0.0)

        cost = [move(p[0], x) for x in options[0]]
        back: list[list[int]] = []
        for prev, here in zip(options, options[1:], strict=False):
            row_cost, row_back = [], []
            for x in here:
                best = min(range(len(prev)), key=lambda k: (cost[k] + move(prev[k], x), k))
                row_cost.append(cost[best] + move(prev[best], x))
                row_back.append(best)
            cost = row_cost
            back.append(row_back)
        end = min(range(len(cost)), key=lambda k: (cost[k] + move(options[-1][k], q[0]), k))
        picks = [end]
        for row_back in reversed(back):
            picks.append(row_back[picks[-1]])
        picks.reverse()
        return [options[i][k] for i, k in enumerate(picks)]

    def _pull_tight(self, points: list[Point], own: frozenset[str]) -> list[Point]:
        """Skip every bend the segment past it can do without (one pass, linear)."""
        kept = [points[0]]
        i = 0
        while i < len(points) - 1:
            j = i + 1
            while j + 1 < len(points) and self._clear(points[i], points[j + 1], own):
                j += 1
            kept.append(points[j])
            i = j
        return kept

    # ---------------------------------------------------------- backward
    def _backward_bends(self, p: Point, q: Point, own: frozenset[str]) -> list[Point]:
        """Down out of p, along a lane beside every box in between, down into q."""
        lp, lq = self._levels(p, q)
        below = lp // 2 + 1 if lp % 2 == 1 else lp // 2  # channel under p
        above = lq // 2  # channel over q (band c has channel c above it)
        y_out = self._gap_level(below, p[1], math.inf)
        y_in = self._gap_level(above, -math.inf, q[1])
        # the lane passes every band between the two channels, own nodes included
        span = range(min(above, below), max(above, below))
        rects = [r for i in span for r in self._bands[i].rects]
        lanes = self._candidates(rects, (p[0] + q[0]) / 2)
        lane = min(lanes, key=lambda x: (abs(x - p[0]) + abs(x - q[0]), x))
        return [(p[0], y_out), (lane, y_out), (lane, y_in), (q[0], y_in)]


def _without_repeats(bends: list[Point], start: Point, end: Point) -> list[Point]:
    """Bends without repeated points, and without points midway on a straight run."""
    points = [start]
    for b in [*bends, end]:
        if abs(b[0] - points[-1][0]) > _EPS or abs(b[1] - points[-1][1]) > _EPS:
            points.append(b)
    kept = [points[0]]
    for k in range(1, len(points) - 1):
        (ax, ay), (bx, by), (cx, cy) = kept[-1], points[k], points[k + 1]
        cross = (bx - ax) * (cy - by) - (by - ay) * (cx - bx)
        along = (bx - ax) * (cx - bx) + (by - ay) * (cy - by)
        if (
            abs(cross) > 1e-9 * math.hypot(bx - ax, by - ay) * math.hypot(cx - bx, cy - by)
            or along <= 0
        ):
            kept.append(points[k])
    return kept[1:]


def route(
    start: Point,
    end: Point,
    obstacles: Sequence[Box],
    direction: Direction = "TB",
    clearance: float = 12.0,
) -> list[Point]:
    """Bend points (excluding start and end) for a wire that passes no obstacle.

    ``[]`` when the straight wire is clear. TB: the wire leaves start downwards and
    enters end from above; LR: leaves rightwards, enters from the left. The
    obstacles are the other nodes (leave out the wire's own two); for many wires
    over one layout, build a :class:`Router` once instead.
    """
    boxes = {f"#{i}": box for i, box in enumerate(obstacles)}
    return Router(boxes, direction, clearance).route(start, end)
