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

#: How often the GUI thread looks whether a collection is due. Short, so that each
#: collection has few young objects to scan and free: at 1 s, opening ResNet50 left
#: 36,000-60,000 objects (the import's Keras model among them) to the first collection
#: and 10,000-19,000 to a second-generation one, 30-80 ms each on the GUI thread
#: (``python -m benchmarks open``); a check that finds nothing due costs microseconds.
INTERVAL_MS = 200


class GuiCollector(QtCore.QObject):
    """Turns automatic collection off and collects on the GUI thread instead."""

    def __init__(self, parent: QtCore.QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        #: How many objects the oldest generation held after its last collection here.
        self._long_lived = len(gc.get_objects(generation=2))
        gc.disable()
        self._timer = QtCore.QTimer(self, interval=interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> int:
        """Collects the generations whose thresholds are passed, as Python would; returns what it freed.

        Like Python's own collector, the oldest generation is collected only once the
        objects that reached it since its last collection are a quarter of those it held
        then: a full collection scans every live object (0.05-0.3 s with a model and
        Keras's objects not frozen), which ``gc.collect(2)`` on each threshold would repeat.
        """
        count0, count1, count2 = gc.get_count()
        freed = 0
        if count0 > self.threshold[0]:
            freed += gc.collect(0)
            if count1 > self.threshold[1]:
                freed += gc.collect(1)
                if count2 > self.threshold[2] and self._full_due():
                    freed += gc.collect(2)
                    self._long_lived = len(gc.get_objects(generation=2))
        return freed

    def _full_due(self) -> bool:
        pending = len(gc.get_objects(generation=2)) - self._long_lived
        return pending > self._long_lived // 4


def install(app: QtCore.QCoreApplication) -> GuiCollector:
    """The application's collector (one per application; installing it again returns it)."""
    existing = app.findChild(GuiCollector)
    return existing if existing is not None else GuiCollector(app)
