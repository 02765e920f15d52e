"""Draw a project's diagram to PNG or SVG with the canvas's own painting code, without a window."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from builder_app.core.atomic import write_atomically
from builder_app.core.project import Project
from builder_app.ui import collector

#: Bounds of a rendered PNG (pixels per side, and in all); bigger diagrams are scaled
#: down to fit. 32,000 is under QPainter's coordinate limit; 64 Mpx is 256 MB of image.
MAX_PNG_SIDE = 32_000
MAX_PNG_PIXELS = 64_000_000


class RenderError(Exception):
    """The diagram could not be written; the message says where and why."""


def ensure_application() -> QtWidgets.QApplication:
    """The running QApplication, or a new offscreen one (no display needed)."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QtWidgets.QApplication(["builder-app"])
    collector.install(app)
    return app  # type: ignore[return-value]


def render_scene(scene, path: str | os.PathLike[str], scale: float = 1.0, fmt: str | None = None) -> QtCore.QSize:
    """Writes ``scene``'s diagram to ``path``.

    ``fmt`` is ``"svg"`` or an image format Qt writes (``"png"``...); by default
    the suffix of ``path`` says which (PNG when there is none).
    """
    target = Path(path)
    nodes = list(scene.items_by_id.values())
    cache = nodes[0].cacheMode() if nodes else None
    for item in nodes:  # painted afresh at the output's scale, as vectors for SVG
        item.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.NoCache)
    try:
        return _render(scene, target, scale, (fmt or target.suffix[1:] or "png").lower())
    finally:
        for item in nodes:
            item.setCacheMode(cache)


def _render(scene, target: Path, scale: float, fmt: str) -> QtCore.QSize:
    rect = scene.diagram_rect()
    if rect.isEmpty():
        rect = QtCore.QRectF(0, 0, 320, 200)
    scene.clearSelection()
    if fmt == "svg":
        from PySide6 import QtSvg

        size = QtCore.QSize(int(rect.width()), int(rect.height()))
        buffer = QtCore.QBuffer()
        buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
        generator = QtSvg.QSvgGenerator()
        generator.setOutputDevice(buffer)
        generator.setSize(size)
        generator.setViewBox(QtCore.QRect(0, 0, size.width(), size.height()))
        generator.setTitle(scene.graph.name)
        painter = QtGui.QPainter(generator)
        scene.render(painter, QtCore.QRectF(0, 0, size.width(), size.height()), rect)
        painter.end()
        data = bytes(buffer.data())
        _write(target, data)
        return size
    longest = max(rect.width(), rect.height()) * scale
    if longest > MAX_PNG_SIDE:
        scale *= MAX_PNG_SIDE / longest
    pixels = rect.width() * rect.height() * scale * scale
    if pixels > MAX_PNG_PIXELS:
        scale *= (MAX_PNG_PIXELS / pixels) ** 0.5
    size = QtCore.QSize(max(1, round(rect.width() * scale)), max(1, round(rect.height() * scale)))
    image = QtGui.QImage(size, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(scene.colors.background)
    painter = QtGui.QPainter(image)
    painter.setRenderHints(QtGui.QPainter.RenderHint.Antialiasing | QtGui.QPainter.RenderHint.TextAntialiasing)
    scene.render(painter, QtCore.QRectF(0, 0, size.width(), size.height()), rect)
    painter.end()
    fmt = fmt.upper()
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, fmt):
        raise RenderError(f"{target}: Qt cannot write {fmt} images; use .png or .svg")
    _write(target, bytes(buffer.data()))
    return size


def _write(target: Path, data: bytes) -> None:
    try:
        write_atomically(target, lambda handle: handle.write(data))
    except OSError as exc:
        raise RenderError(f"{target}: cannot write: {exc.strerror or exc}") from None


def render_project(
    project: Project, path: str | os.PathLike[str], *, dark: bool = False, scale: float = 1.0, fmt: str | None = None
) -> QtCore.QSize:
    """Draws ``project`` as the canvas shows it (shapes included) into ``path``."""
    ensure_application()
    from builder_app.core.quiet import import_keras_quietly
    from builder_app.ui.editor.canvas import GraphScene
    from builder_app.ui.editor.document import Document

    import_keras_quietly()
    document = Document(project)  # lays out a project that has no positions
    document.attach_engine(background=False)  # here, at any size: no worker thread outlives us
    scene = GraphScene(document, dark=dark)
    scene.refresh_all()
    try:
        return render_scene(scene, path, scale, fmt)
    finally:
        scene.close()
        document.close()
