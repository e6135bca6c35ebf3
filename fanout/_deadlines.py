"""Deadlines for many connections on one thread: a timer per host would cost a thread per host."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

_LONGEST_WAIT = 3600.0  # seconds one wait may last: a far deadline is reached by waiting again, never overflows
_log = logging.getLogger("fanout")


class Deadlines:
    """Run a callback at a monotonic time unless it is cancelled first; one daemon thread for all.

    Callbacks run on that thread: they must be short and never wait on a host.
    One that raises is logged, and every later deadline still fires.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._pending: set[int] = set()
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` at ``when`` (``time.monotonic()``'s clock); returns a handle for :meth:`cancel`."""
        if not math.isfinite(when):
            raise ValueError(f"a deadline must be a finite time, not {when!r}")
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

    def _next_due(self) -> Callable[[], None] | None:
        """Wait for the earliest deadline; its callback, or None when it was cancelled."""
        with self._wake:
            while not self._heap or self._heap[0][0] > time.monotonic():
                wait = self._heap[0][0] - time.monotonic() if self._heap else _LONGEST_WAIT
                self._wake.wait(min(max(wait, 0.0), _LONGEST_WAIT))
            _, handle, callback = heapq.heappop(self._heap)
            if handle not in self._pending:
                return None
            self._pending.discard(handle)
            return callback

    def _run(self) -> None:
        while True:
            try:
                callback = self._next_due()
                if callback is not None:
                    callback()
            except BaseException:  # a failing callback (or anything else) must not stop every later deadline
                _log.exception("a deadline callback failed")


DEADLINES = Deadlines()


class StallWatch:
    """Finds writes to a host that made no progress for a while, with one check a second for every connection.

    A writer calls :meth:`started` before each piece it writes and :meth:`done`
    after; a piece still unwritten after ``timeout`` seconds calls the writer's
    ``on_stall``. Costs the write path two attribute stores, no thread wake-up.
    """

    INTERVAL = 1.0  # seconds between checks

    def __init__(self) -> None:
        self._writers: dict[int, StallTimer] = {}
        self._lock = threading.Lock()
        self._armed = False

    def register(self, timer: StallTimer) -> None:
        with self._lock:
            self._writers[id(timer)] = timer
            arm = not self._armed
            self._armed = True
        if arm:
            DEADLINES.at(time.monotonic() + self.INTERVAL, self._check)

    def unregister(self, timer: StallTimer) -> None:
        with self._lock:
            self._writers.pop(id(timer), None)

    def _check(self) -> None:
        now = time.monotonic()
        with self._lock:
            stalled = [t for t in self._writers.values() if t.since is not None and now - t.since > t.timeout]
            self._armed = bool(self._writers)
        for timer in stalled:
            timer.fire()
        if self._armed:
            DEADLINES.at(time.monotonic() + self.INTERVAL, self._check)


class StallTimer:
    """One connection's write progress, as :class:`StallWatch` reads it."""

    __slots__ = ("_fired", "on_stall", "since", "timeout")

    def __init__(self, timeout: float, on_stall: Callable[[float], None]) -> None:
        self.timeout = timeout
        self.on_stall = on_stall
        self.since: float | None = None
        self._fired = False

    def started(self) -> None:
        self.since = time.monotonic()

    def done(self) -> None:
        self.since = None

    def fire(self) -> None:
        """Tell the owner once; on the deadline thread, so ``on_stall`` must not wait."""
        if not self._fired:
            self._fired = True
            self.on_stall(self.timeout)


STALLS = StallWatch()
