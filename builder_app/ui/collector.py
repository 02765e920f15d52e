"""Python's cyclic garbage collection, on the GUI thread only.

The collector runs in whichever thread happens to allocate past its threshold. The
app's worker threads (Keras's import, a big model's shape pass, an import, the
autosave writer) allocate a lot, so without this a collection could start on one
of them and destroy a Qt object there, which crashes the process (it did once in a
full test run: a widget of an earlier test collected on the shape pass's thread).

So automatic collection is turned off and :class:`GuiCollector` collects on a timer
of the GUI thread, generation by generation with Python's own thresholds: the
approach of pyqtgraph's ``GarbageCollector`` (importing pyqtgraph for it would cost
the editor's start a third of a second).
"""

from __future__ import annotations

import gc

from PySide6 import QtCore

#: How often the GUI thread looks whether a collection is due.
INTERVAL_MS = 1000


class GuiCollector(QtCore.QObject):
    """Turns automatic collection off and collects on the GUI thread instead."""

    def __init__(self, parent: QtCore.QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        gc.disable()
        self._timer = QtCore.QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> int:
        """Collects the generations whose thresholds are passed, as Python would; returns what it freed."""
        count0, count1, count2 = gc.get_count()
        freed = 0
        if count0 > self.threshold[0]:
            freed += gc.collect(0)
            if count1 > self.threshold[1]:
                freed += gc.collect(1)
                if count2 > self.threshold[2]:
                    freed += gc.collect(2)
        return freed


def install(app: QtCore.QCoreApplication) -> GuiCollector:
    """The application's collector (one per application; installing it again returns it)."""
    existing = app.findChild(GuiCollector)
    return existing if existing is not None else GuiCollector(app)
