"""Python's cycle collector runs on the GUI thread only, once the app has a window."""

from __future__ import annotations

import gc
import threading

from builder_app.ui import collector
from builder_app.ui.editor.document import Document


class Cycle:
    def __init__(self):
        self.me = self

    def __del__(self):
        record.append(threading.current_thread().name)


record: list[str] = []
kept: list[list] = []


def test_a_document_leaves_collection_to_the_gui_thread(qtbot):
    Document().close()
    assert not gc.isenabled()
    record.clear()

    def churn() -> None:  # a worker thread allocating far past every threshold
        for _ in range(50):
            Cycle()
        kept.append([[] for _ in range(20_000)])  # alive: the counts stay past the thresholds

    worker = threading.Thread(target=churn, name="worker")
    worker.start()
    worker.join()
    assert record == []  # nothing collected on the worker thread
    qtbot.waitUntil(lambda: len(record) == 50, timeout=5_000)  # the GUI thread's timer collects them
    assert set(record) == {threading.main_thread().name}
    kept.clear()


def test_the_collector_is_installed_once(qapp):
    assert collector.install(qapp) is collector.install(qapp)
