"""A loopback TCP proxy that adds a fixed one-way delay in each direction, and counts bytes.

Why: the bootstrap's cost on a real network is counted in round trips, and on
loopback a round trip is too cheap to see. Putting this proxy between the
master and sshd makes every round trip cost ``2 * delay``, so wall time divided
by that is the number of round trips, and the byte counters show what each side
really put on the wire (SSH framing, padding and MACs included).

Each chunk read from one side is stamped with ``arrival + delay`` and written
to the other side at that time, in order. Delays are absolute deadlines, not
per-chunk sleeps, so they never accumulate: throughput is that of loopback,
only shifted in time. The delay is applied at the application level, so TCP's
own handshake and congestion control are not slowed down; only the bytes are.

Stdlib only; threads (one listener, and a reader and a writer per direction of
each connection). Everything stops on :meth:`DelayProxy.close`.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
_CHUNK = 65536
_POLL = 0.1  # how often blocked threads look at the stop flag
_WINDOW = 8 * 1024 * 1024  # bytes in flight per direction before reading pauses, like a TCP window
_EOF = b""


@dataclass
class ConnectionStats:
    """Bytes one proxied connection carried: ``up`` is client to server, ``down`` server to client."""

    number: int
    up: int = 0
    down: int = 0
    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None


class _Direction:
    """One direction of one connection: a reader stamps chunks, a writer delivers them when due."""

    def __init__(self, conn: _Connection, source: socket.socket, sink: socket.socket, up: bool) -> None:
        self.conn = conn
        self.source = source
        self.sink = sink
        self.up = up
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.in_flight = 0
        self.ready = threading.Condition()
        self.done = threading.Event()
        name = f"delay-proxy-{conn.stats.number}-{'up' if up else 'down'}"
        self.threads = [
            threading.Thread(target=self._read, name=name + "-read", daemon=True),
            threading.Thread(target=self._write, name=name + "-write", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _push(self, chunk: bytes) -> None:
        with self.ready:
            self.queue.append((time.monotonic() + self.conn.proxy.delay, chunk))
            self.in_flight += len(chunk)
            self.ready.notify_all()

    def _wait_for_window(self) -> None:
        """Bound memory: stop reading while a window's worth of bytes waits for delivery."""
        with self.ready:
            while self.in_flight >= _WINDOW and not self.conn.stop.is_set():
                self.ready.wait(_POLL)

    def _read(self) -> None:
        """Read until EOF, an error or stop; count each chunk as it arrives."""
        stop = self.conn.stop
        try:
            while not stop.is_set():
                self._wait_for_window()
                readable, _, _ = select.select([self.source], [], [], _POLL)
                if not readable:
                    continue
                chunk = self.source.recv(_CHUNK)
                if not chunk:
                    break
                self.conn.proxy._count(self.conn.stats, self.up, len(chunk))
                self._push(chunk)
        except (OSError, ValueError):
            pass  # reset by the peer, or closed under us (ValueError: fd -1): same as EOF for a proxy
        self._push(_EOF)

    def _write(self) -> None:
        """Deliver chunks at their due time; pass EOF on as a half-close."""
        stop = self.conn.stop
        try:
            while not stop.is_set():
                with self.ready:
                    while not self.queue and not stop.is_set():
                        self.ready.wait(_POLL)
                    if stop.is_set():
                        break
                    due, chunk = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
                if not chunk:  # EOF
                    self.sink.shutdown(socket.SHUT_WR)
                    break
                self.sink.sendall(chunk)
                with self.ready:
                    self.queue.popleft()
                    self.in_flight -= len(chunk)
                    self.ready.notify_all()
        except OSError:
            self.conn.abort()  # the receiving side is gone: nothing more can be delivered either way
        finally:
            self.done.set()
            self.conn.direction_done()


class _Connection:
    """A client socket and its upstream socket, with a direction each way."""

    def __init__(self, proxy: DelayProxy, client: socket.socket, server: socket.socket, number: int) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.stats = ConnectionStats(number)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self.directions = [_Direction(self, client, server, up=True), _Direction(self, server, client, up=False)]

    def start(self) -> None:
        for direction in self.directions:
            direction.start()

    def direction_done(self) -> None:
        """Once both directions have delivered their EOF, the connection is over."""
        if all(d.done.is_set() for d in self.directions):
            self.abort()

    def abort(self) -> None:
        """Stop both directions and close both sockets (idempotent)."""
        self.stop.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.proxy._finished(self)

    def running(self) -> bool:
        return any(t.is_alive() for d in self.directions for t in d.threads)

    def join(self, timeout: float) -> None:
        for direction in self.directions:
            for thread in direction.threads:
                if thread is not threading.current_thread():
                    thread.join(timeout)


class DelayProxy:
    """Forward ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>``, ``delay`` seconds late each way.

    Use as a context manager; :attr:`port` is where clients connect. Byte
    counters are totals over all connections since the last
    :meth:`reset_counters`; :attr:`connections` has one record per connection.
    """

    def __init__(
        self, target_port: int, delay: float = 0.025, *, target_host: str = LOOPBACK, trace: bool = False
    ) -> None:
        if target_host != LOOPBACK:
            raise ValueError("the delay proxy only forwards to 127.0.0.1")
        if delay < 0:
            raise ValueError("delay must not be negative")
        self.target = (target_host, target_port)
        self.delay = delay
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections: list[ConnectionStats] = []
        # With trace=True: (arrival time, connection number, "up" or "down", bytes) per chunk, to see
        # where the round trips go. Times are time.monotonic(), as in ConnectionStats.
        self.trace: list[tuple[float, int, str, int]] | None = [] if trace else None
        self._live: set[_Connection] = set()
        self._all: list[_Connection] = []  # joined on close, so no thread outlives the proxy
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._numbered = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"delay-proxy-{self.port}", daemon=True)
        self._acceptor.start()

    # -- counters ------------------------------------------------------------------------

    @property
    def round_trip(self) -> float:
        """The round trip this proxy adds: one delay each way."""
        return 2 * self.delay

    def reset_counters(self) -> None:
        """Zero the totals and forget past connections (open ones keep counting from zero)."""
        with self._lock:
            self.bytes_up = self.bytes_down = 0
            self.connections = []
            if self.trace is not None:
                self.trace = []
            for conn in self._live:
                conn.stats.up = conn.stats.down = 0
                self.connections.append(conn.stats)

    def _count(self, stats: ConnectionStats, up: bool, size: int) -> None:
        with self._lock:
            if up:
                stats.up += size
                self.bytes_up += size
            else:
                stats.down += size
                self.bytes_down += size
            if self.trace is not None:
                self.trace.append((time.monotonic(), stats.number, "up" if up else "down", size))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no connection is open (so the counters are final); True if that happened."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._live:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    # -- serving -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener], [], [], _POLL)
            if not readable:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stop.is_set():
                    client.close()
                    server.close()
                    break
                self._numbered += 1
                conn = _Connection(self, client, server, self._numbered)
                self._live.add(conn)
                self._all = [c for c in self._all if c in self._live or c.running()]
                self._all.append(conn)
                self.connections.append(conn.stats)
            conn.start()

    def _finished(self, conn: _Connection) -> None:
        with self._lock:
            conn.stats.closed = time.monotonic()
            self._live.discard(conn)
            self._lock.notify_all()

    def close(self) -> None:
        """Stop accepting, cut every open connection, and wait for all threads to end."""
        self._stop.set()
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            conns = list(self._all)
        for conn in conns:
            conn.abort()
        for conn in conns:
            conn.join(timeout=2 * _POLL + self.delay + 1)

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DelayProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]} delay={self.delay * 1000:g} ms>"
