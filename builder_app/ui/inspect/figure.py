"""Drawings of node outputs: feature-map grids, heat maps, bars and images, as QImages.

``builder-app inspect --png`` draws its figure here, without a window, and the
inspector window uses the same colour scale (:func:`lookup_table`) and image
conversion (:func:`colour_image`) for its pyqtgraph views.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui

from builder_app.core.atomic import write_atomically
from builder_app.training.activations import NodeActivation, channel_maps, feature_grid

#: The colour scale of every map (perceptually uniform, readable in grey).
COLOUR_MAP = "viridis"
#: Width of the figure's drawing area, in pixels.
WIDTH = 900
#: Most bars a vector is drawn with; longer vectors become a histogram.
MAX_BARS = 256
#: Most channels a grid shows (the first ones).
MAX_CHANNELS = 256
#: Largest on-screen size of one value of a feature map, in pixels.
MAX_PIXEL = 24


class FigureError(Exception):
    """The figure could not be written; the message names the file."""


def lookup_table() -> np.ndarray:
    """The colour scale as 256 RGB rows (uint8)."""
    import pyqtgraph as pg

    return pg.colormap.get(COLOUR_MAP).getLookupTable(nPts=256)


def colour_image(values: np.ndarray, low: float, high: float, *, background: QtGui.QColor | None = None) -> QtGui.QImage:
    """A 2-D array through the colour scale (``low`` to ``high``); NaN pixels take ``background``."""
    values = np.asarray(values, dtype=np.float64)
    span = high - low if high > low else 1.0
    index = np.clip(np.nan_to_num((values - low) / span * 255, nan=0.0), 0, 255).astype(np.uint8)
    rgb = lookup_table()[index]
    rgba = np.empty((*values.shape, 4), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    if background is not None:
        missing = ~np.isfinite(values)
        rgba[missing] = (background.red(), background.green(), background.blue(), 255)
    return _image(rgba)


def grey_or_rgb_image(array: np.ndarray) -> QtGui.QImage:
    """An image input (H, W, 1|3|4) as the picture it is, scaled to its own range."""
    array = np.asarray(array, dtype=np.float64)
    finite = array[np.isfinite(array)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(array) - low) / ((high - low) or 1.0) * 255, 0, 255).astype(np.uint8)
    channels = scaled.shape[-1]
    rgba = np.empty((*scaled.shape[:2], 4), dtype=np.uint8)
    rgba[..., :3] = scaled[..., :3] if channels >= 3 else scaled[..., :1]
    rgba[..., 3] = scaled[..., 3] if channels == 4 else 255
    return _image(rgba)


def _image(rgba: np.ndarray) -> QtGui.QImage:
    rgba = np.ascontiguousarray(rgba)
    height, width = rgba.shape[:2]
    image = QtGui.QImage(rgba.data, width, height, width * 4, QtGui.QImage.Format.Format_RGBA8888)
    return image.copy()  # owns its pixels: the array may go


def render(activations: Sequence[NodeActivation], title: str) -> QtGui.QImage:
    """One figure: a panel per node (its drawing, shape and statistics), under ``title``."""
    font = QtGui.QFont()
    font.setPointSize(10)
    metrics = QtGui.QFontMetrics(font)
    line = metrics.height() + 4
    panels = [_panel_height(a) for a in activations]
    height = 16 + line + sum(h + 3 * line + 16 for h in panels)
    image = QtGui.QImage(WIDTH + 32, height, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    painter.setRenderHints(QtGui.QPainter.RenderHint.Antialiasing | QtGui.QPainter.RenderHint.TextAntialiasing)
    painter.setFont(font)
    y = 16
    bold = QtGui.QFont(font)
    bold.setBold(True)
    painter.setFont(bold)
    painter.drawText(16, y + metrics.ascent(), title)
    y += line
    for activation, panel in zip(activations, panels, strict=True):
        painter.setFont(bold)
        shape = "(" + ", ".join("None" if d is None else str(d) for d in activation.output_shape) + ")"
        mode = "training" if activation.training else "inference"
        painter.drawText(16, y + metrics.ascent(), f"{activation.layer} · {activation.class_name} · {shape} · {mode}")
        y += line
        painter.setFont(font)
        draw(painter, QtCore.QRectF(16, y, WIDTH, panel), activation)
        y += panel + 4
        painter.drawText(16, y + metrics.ascent(), stats_text(activation))
        y += 2 * line
    painter.end()
    return image


def stats_text(activation: NodeActivation) -> str:
    s = activation.stats

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    return (
        f"mean {number(s.mean)}   std {number(s.std)}   min {number(s.min)}   max {number(s.max)}   "
        f"zeros {s.zero_fraction:.1%}   NaN {s.nan_count}   Inf {s.inf_count}"
    )


def _panel_height(activation: NodeActivation) -> int:
    if activation.display in ("feature_maps", "volume"):
        grid = _grid(activation)
        scale = min(min(WIDTH - 90, 700) / grid.shape[1], 700 / grid.shape[0], MAX_PIXEL)
        return max(40, int(grid.shape[0] * scale))
    if activation.display == "image":
        return 200
    if activation.display == "sequence":
        return 220
    if activation.display == "scalar":
        return 24
    return 160


def _grid(activation: NodeActivation) -> np.ndarray:
    channels_first = False
    maps = channel_maps(activation, channels_first=channels_first)[:MAX_CHANNELS]
    return feature_grid(maps)


def draw(painter: QtGui.QPainter, rect: QtCore.QRectF, activation: NodeActivation) -> None:
    """Draws ``activation`` into ``rect`` as its kind is best seen."""
    kind = activation.display
    stats = activation.stats
    low = stats.min if stats.min is not None else 0.0
    high = stats.max if stats.max is not None else 1.0
    if kind in ("feature_maps", "volume", "sequence"):
        values = _grid(activation) if kind != "sequence" else np.asarray(activation.array, dtype=np.float64).T
        image = colour_image(values, low, high, background=QtGui.QColor("white"))
        bar = QtCore.QRectF(rect.right() - 60, rect.top(), 14, rect.height())
        area = QtCore.QRectF(rect.left(), rect.top(), rect.width() - 80, rect.height() - (18 if kind == "sequence" else 0))
        if kind != "sequence":  # square pixels
            scale = min(area.width() / image.width(), area.height() / image.height())
            area.setSize(QtCore.QSizeF(image.width() * scale, image.height() * scale))
        painter.drawImage(area, image)
        if kind == "sequence":
            painter.drawText(QtCore.QPointF(area.left(), rect.bottom() - 3), "time →  (rows: features)")
        _colour_bar(painter, bar, low, high)
    elif kind == "image":
        image = grey_or_rgb_image(activation.array)
        scale = rect.height() / image.height()
        target = QtCore.QRectF(rect.left(), rect.top(), image.width() * scale, rect.height())
        painter.drawImage(target, image)
    elif kind == "scalar":
        painter.drawText(rect, QtCore.Qt.AlignmentFlag.AlignLeft, f"value {float(np.ravel(activation.array)[0]):.6g}")
    else:
        _bars(painter, rect, np.ravel(activation.array).astype(np.float64))


def _colour_bar(painter: QtGui.QPainter, rect: QtCore.QRectF, low: float, high: float) -> None:
    ramp = np.linspace(high, low, 256)[:, None]
    painter.drawImage(rect, colour_image(ramp, low, high))
    painter.setPen(QtGui.QColor("black"))
    painter.drawRect(rect)
    painter.drawText(QtCore.QPointF(rect.right() + 4, rect.top() + 10), f"{high:.3g}")
    painter.drawText(QtCore.QPointF(rect.right() + 4, rect.bottom()), f"{low:.3g}")


def _bars(painter: QtGui.QPainter, rect: QtCore.QRectF, values: np.ndarray) -> None:
    """Bars, one per value; a histogram of the values when there are too many."""
    finite = values[np.isfinite(values)]
    if values.size > MAX_BARS:
        counts, _ = np.histogram(finite, bins=60) if finite.size else (np.zeros(60), None)
        heights = counts.astype(np.float64)
        caption = f"histogram of {values.size} values ({finite.min():.3g} to {finite.max():.3g})" if finite.size else ""
        baseline_at_zero = False
    else:
        heights = np.nan_to_num(values)
        caption = f"{values.size} values"
        baseline_at_zero = True
    top = max(float(heights.max()), 0.0) if heights.size else 1.0
    bottom = min(float(heights.min()), 0.0) if baseline_at_zero and heights.size else 0.0
    span = (top - bottom) or 1.0
    plot = QtCore.QRectF(rect.left() + 50, rect.top(), rect.width() - 60, rect.height() - 18)
    zero_y = plot.bottom() - (0 - bottom) / span * plot.height()
    width = plot.width() / max(1, len(heights))
    painter.setPen(QtCore.Qt.PenStyle.NoPen)
    painter.setBrush(QtGui.QColor("#3b6ea8"))
    for i, h in enumerate(heights):
        y = plot.bottom() - (h - bottom) / span * plot.height()
        painter.drawRect(QtCore.QRectF(plot.left() + i * width, min(y, zero_y), max(1.0, width * 0.85), abs(zero_y - y)))
    painter.setPen(QtGui.QColor("black"))
    painter.drawLine(QtCore.QPointF(plot.left(), zero_y), QtCore.QPointF(plot.right(), zero_y))
    painter.drawText(QtCore.QPointF(rect.left(), plot.top() + 10), f"{top:.3g}")
    painter.drawText(QtCore.QPointF(rect.left(), plot.bottom()), f"{bottom:.3g}")
    painter.drawText(QtCore.QPointF(plot.left(), rect.bottom()), caption)


def write_png(activations: Sequence[NodeActivation], title: str, path: str | os.PathLike[str]) -> tuple[int, int]:
    """Draws the figure into the PNG file ``path`` (atomically); returns its (width, height).

    Raises:
        FigureError: It cannot be written.
    """
    from builder_app.ui.render import ensure_application

    ensure_application()
    image = render(activations, title)
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise FigureError(f"{Path(path)}: Qt cannot write PNG images")
    data = bytes(buffer.data())
    try:
        write_atomically(Path(path), lambda handle: handle.write(data))
    except OSError as exc:
        raise FigureError(f"{Path(path)}: cannot write: {exc.strerror or exc}") from None
    return image.width(), image.height()
