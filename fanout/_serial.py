"""One host's jobs, run in order on a thread of that host's own, so they never run on (or stall) a receiving thread.

Each :class:`~fanout.Context` has two: one that answers the child (module
sources, service replies: work that may wait for the host to read), and one
that runs user code (future callbacks, ``on_output``, logging handlers). A
host that stops reading, or a callback that blocks, holds up that host's
runner and nothing else. The thread exists only while jobs wait, and for
:data:`LINGER` after: a burst (replies to a host pulling file chunks) then
costs one thread start, not one per job.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

_log = logging.getLogger("fanout")
LINGER = 0.05  # seconds a runner's thread waits for another job before it ends


class SerialRunner:
    """A FIFO of jobs with at most ``limit`` waiting (None: no cap), run one at a time on a thread started on demand."""

    def __init__(self, name: str, limit: int | None = None) -> None:
        self.name = name
        self._limit = limit
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._lock = threading.Lock()
        self._running = False
        self._wake = threading.Condition(self._lock)
        self._current: threading.Thread | None = None

    def post(self, job: Callable[[], None], *, force: bool = False) -> bool:
        """Queue ``job`` without ever blocking; False, and nothing queued, when ``limit`` jobs wait already.

        ``force`` queues past the limit: for jobs whose number the caller bounds otherwise.
        """
        with self._lock:
            if not force and self._limit is not None and len(self._jobs) >= self._limit:
                return False
            self._jobs.append(job)
            if self._running:
                self._wake.notify()
                return True
            self._running = True
            thread = self._current = threading.Thread(target=self._drain, name=self.name, daemon=True)
        thread.start()
        return True

    def on_runner(self) -> bool:
        """Whether the calling thread is this runner's."""
        return threading.current_thread() is self._current

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._wake.wait(LINGER)
                    if not self._jobs:
                        self._running = False
                        return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # one failing job must not stop the ones behind it
                _log.exception("a job on %s failed", self.name)
