"""Makes the README's canvas screenshots in resources/screenshots/, from the real app.

Run from the repository root (about a minute; it builds ResNet50 with ``weights=None``)::

    QT_QPA_PLATFORM=offscreen python docs/canvas_screenshots.py            # all three
    QT_QPA_PLATFORM=offscreen python docs/canvas_screenshots.py unet       # some of them

* ``resnet50_overview.png``: ResNet50 saved to ``.keras`` and imported through the window
  (File → Import), then View → Fit: its display blocks collapsed, readable.
* ``resnet50_block_expanded.png``: the same, ``conv3_block1`` expanded in place and its
  ``Add`` selected (the inspector shows its costs), the window taller to show the whole block.
* ``unet_example.png``: the U-Net example, fitted in a canvas tall enough to read it
  whole (its skip connection routed around the encoder), cropped to the drawing.

The window, the profile and the plumbing are docs/make_screenshots.py's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_screenshots as shots  # noqa: E402
from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402

SCREENSHOTS = shots.ROOT / "resources" / "screenshots"


def save(image: QtGui.QPixmap, name: str) -> Path:
    """Writes ``image`` as resources/screenshots/NAME, at its own size."""
    image = image.toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    path = SCREENSHOTS / name
    if not image.save(str(path), "PNG", 9):
        raise SystemExit(f"canvas_screenshots: cannot write {path}")
    print(
        f"{path.relative_to(shots.ROOT)}: {image.width()}x{image.height()}, {path.stat().st_size // 1024} KB"
    )
    return path


def _resnet50() -> Path:
    import keras

    path = shots.WORK / "resnet50.keras"
    if not path.exists():
        keras.applications.ResNet50(weights=None).save(path)
    return path


def _resnet_window():
    window = shots.open_window()
    shots.import_into(window, _resnet50())
    shots.fit(window)
    shots.settle(window)
    return window


def scene_overview() -> None:
    window = _resnet_window()
    shots.pump(150)
    save(window.grab(), "resnet50_overview.png")
    shots.close(window)


def scene_expanded() -> None:
    window = _resnet_window()
    window.resize(1600, 1250)  # the whole block at a size its names read at
    scene, view = window.current_scene(), window.current_view()
    if not scene.set_collapsed(["conv3_block1"], False):
        raise SystemExit("canvas_screenshots: conv3_block1 did not expand")
    shots.settle(window)
    view.reveal(shots.node_named(window.graph, "conv3_block1_add"))  # selects it: the inspector
    shots.settle(window)
    # The whole block in view, with the wire that comes in from above it.
    (block,) = [b for b in window.graph.canvas.blocks if b.name == "conv3_block1"]
    whole = QtCore.QRectF()
    for node_id in block.nodes:
        whole = whole.united(scene.items_by_id[node_id].sceneBoundingRect())
    whole.adjust(-40, -90, 40, 40)
    free = view.viewport().rect()
    view.set_zoom(min(free.width() / whole.width(), free.height() / whole.height(), 1.0))
    view.centerOn(whole.center())
    shots.settle(window)
    save(window.grab(), "resnet50_block_expanded.png")
    shots.close(window)


def scene_unet() -> None:
    window = shots.open_window(shots.load("unet_groupnorm.kproj"))
    window.resize(1600, 1900)  # a canvas tall enough to read the whole U-Net
    view = window.current_view()
    view.minimap.hide()
    shots.settle(window)
    shots.fit(window)
    shots.settle(window)
    canvas = view.viewport()
    drawn = view.mapFromScene(window.current_scene().diagram_rect()).boundingRect()
    drawn = drawn.adjusted(-60, -30, 60, 30).intersected(canvas.rect())
    crop = QtCore.QRect(canvas.mapTo(window, drawn.topLeft()), drawn.size())
    shots.pump(150)
    save(window.grab(crop), "unet_example.png")
    shots.close(window)


SCENES = {"overview": scene_overview, "expanded": scene_expanded, "unet": scene_unet}


def main(argv: list[str]) -> int:
    chosen = argv or list(SCENES)
    unknown = [name for name in chosen if name not in SCENES]
    if unknown:
        print(
            f"canvas_screenshots: unknown scene {', '.join(unknown)}; scenes: {', '.join(SCENES)}",
            file=sys.stderr,
        )
        return 2
    shots.app()
    shots.WORK.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        SCENES[name]()
    QtWidgets.QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
