"""Deadlines for many connections on one thread: a timer per host would cost a thread per host."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Deadlines:
    """Run a callback at a monotonic time unless it is cancelled first; one daemon thread for all."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._pending: set[int] = set()
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` at ``when`` (``time.monotonic()``'s clock); returns a handle for :meth:`cancel`."""
        with self._wake:
            handle = next(self._order)
            heapq.heappush(self._heap, (when, handle, callback))
            self._pending.add(handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fanout-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()
        return handle

    def cancel(self, handle: int) -> None:
        """The callback will not be called (unless it already runs)."""
        with self._wake:
            self._pending.discard(handle)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, handle, callback = heapq.heappop(self._heap)
                if handle not in self._pending:
                    continue
                self._pending.discard(handle)
            try:
                callback()
            except Exception:  # a failing callback must not stop every later deadline
                import logging

                logging.getLogger("fanout").exception("a deadline callback failed")


DEADLINES = Deadlines()
