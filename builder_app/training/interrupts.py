"""Ctrl-C on the command line: the first stops at the next batch, a second ends at once.

No Qt here.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_ctrl_c(stop: Callable[[], None], saying: str) -> Iterator[list[bool]]:
    """While inside, the first SIGINT prints ``saying`` and calls ``stop``; a second raises KeyboardInterrupt.

    Yields a list that holds ``True`` once Ctrl-C was pressed. Off the main thread
    (where Python cannot set a handler) nothing is installed.
    """
    interrupted: list[bool] = []

    def on_interrupt(signum, frame) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        print(saying, file=sys.stderr, flush=True)
        stop()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if in_main_thread else None
    try:
        yield interrupted
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
