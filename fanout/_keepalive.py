"""ServerAliveInterval as OpenSSH has it: an SSH-level keepalive, so a host that vanishes is found out even
through jump hosts, where TCP keepalive sees only the first hop.

Every ``interval`` seconds each connection is sent a ``keepalive@openssh.com``
global request that wants a reply; sshd answers every such request. When
``count_max`` intervals pass with no reply, the connection is closed and its
calls fail with :class:`~fanout.errors.ConnectionLost`, naming the keepalive.

Threads: one ``fanout-keepalive`` thread, started with the first connection,
only looks at counters and posts work; each send and each close runs on the
connection's own runner, since either may wait on that host (a rekey, a full
TCP buffer). A host that does not read stalls its runner, not the others.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable

import paramiko

from fanout._paramiko_compat import send_keepalive
from fanout._serial import SerialRunner

DEFAULT_INTERVAL = 30.0  # seconds, when neither connect() nor ssh_config's ServerAliveInterval says
DEFAULT_COUNT_MAX = 3  # OpenSSH's ServerAliveCountMax default


class _Watch:
    def __init__(self, transport, interval: float, count_max: int, on_dead: Callable[[str], None], name: str) -> None:
        self.transport = transport
        self.interval = interval
        self.count_max = count_max
        self.on_dead = on_dead
        self.runner = SerialRunner(f"fanout-keepalive-{name}", limit=1)
        self.replies_seen = transport.global_replies
        self.missed = 0
        self.stopped = False

    def tick(self) -> bool:
        """One interval passed; False once the watch is over."""
        if self.stopped or not self.transport.is_active():
            return False
        replies = self.transport.global_replies
        if replies != self.replies_seen:
            self.replies_seen, self.missed = replies, 0
        else:
            self.missed += 1
        if self.missed > self.count_max:
            self.stopped = True
            silent = self.interval * self.count_max
            self.runner.post(
                lambda: self.on_dead(
                    f"no answer to {self.count_max} keepalives in {silent:g} s (ServerAliveInterval "
                    f"{self.interval:g}, ServerAliveCountMax {self.count_max}): the host or the way to it is gone"
                ),
                force=True,
            )
            return False
        self.runner.post(self._send)
        return True

    def _send(self) -> None:
        with contextlib.suppress(Exception):  # the connection is going: the next tick sees it
            send_keepalive(self.transport)


class _Scheduler:
    """The one thread that counts every connection's intervals."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def remove(self, watch: _Watch) -> None:
        """End ``watch`` now; the thread ends with the last watch, not at that watch's next interval."""
        with self._lock:
            watch.stopped = True
            self._due = [entry for entry in self._due if entry[2] is not watch]
            heapq.heapify(self._due)
            self._lock.notify()

    def add(self, watch: _Watch) -> None:
        with self._lock:
            heapq.heappush(self._due, (time.monotonic() + watch.interval, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fanout-keepalive", daemon=True)
                self._thread.start()
            self._lock.notify()

    def _run(self) -> None:
        with self._lock:
            while True:
                if not self._due:
                    self._thread = None
                    return
                due, _, watch = self._due[0]  # the soonest
                wait = due - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._due)
                if watch.tick():
                    heapq.heappush(self._due, (due + watch.interval, next(self._order), watch))


_scheduler = _Scheduler()


def watch(
    transport: paramiko.Transport,
    interval: float,
    count_max: int,
    on_dead: Callable[[str], None],
    name: str,
) -> Callable[[], None]:
    """Keep ``transport`` (a PipelinedTransport) alive-checked; ``on_dead(reason)`` runs when it stops answering.
    Returns a function that ends the watch."""
    entry = _Watch(transport, interval, count_max, on_dead, name)
    _scheduler.add(entry)

    return lambda: _scheduler.remove(entry)
