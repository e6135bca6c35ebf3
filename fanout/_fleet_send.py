"""How a fleet's call reaches its hosts: written on the caller's own thread where the write cannot wait on the
host, else from the fleet's sending threads, so a host that stops reading holds up only its own.

The warm path (a small call, its modules sent before, the connection idle, its
window open and its socket with room) costs no thread hop: the call is encoded
once for every host, the sockets are polled once for all of them, and each
host's future is the context's own. Anything else (the first call to a host, a
large one, a host behind a jump, a host still writing or not reading) goes the
way it always went: a sending thread, and a future the caller holds that takes
the call's outcome.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fanout import _functions

_POLL_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL


def with_room(sockets: Iterable[socket.socket]) -> set[socket.socket]:
    """Those of ``sockets`` with room for a small write now: one poll for all of them, never one per host."""
    poll = select.poll()
    by_fd: dict[int, socket.socket] = {}
    for sock in sockets:
        fd = sock.fileno()
        if fd >= 0 and fd not in by_fd:
            by_fd[fd] = sock
            poll.register(fd, select.POLLOUT)
    if not by_fd:
        return set()
    return {by_fd[fd] for fd, events in poll.poll(0) if events & select.POLLOUT and not events & _POLL_BAD}


class CallSender:
    """Starts one call on many contexts; ``forks`` sending threads (made when first needed) for those that
    cannot take it at once."""

    def __init__(self, forks: int) -> None:
        self.forks = forks
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(
        self,
        contexts: Mapping[str, Any],
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        each: Mapping[str, tuple[tuple, dict]] | None = None,
    ) -> dict[str, Future]:
        """Each context's future for ``fn(*args, **kwargs)``, or with ``each`` host's own arguments; without
        ``each`` the call is encoded once for all of them."""
        room = with_room({s for c in contexts.values() if (s := c._send_socket()) is not None})
        shared: _functions.EncodedCall | None = None
        if each is None and room:
            try:
                shared = _functions.encode_call(fn, args, kwargs)
            except Exception:
                shared = None  # each host's sending thread meets the same error, and reports it as that host's
        futures: dict[str, Future] = {}
        for name, context in contexts.items():
            host_args, host_kwargs = (args, kwargs) if each is None else each[name]
            future = None
            if room:
                try:
                    encoded = shared if each is None else _functions.encode_call(fn, host_args, host_kwargs)
                    future = None if encoded is None else context._call_now(fn, encoded, room)
                except Exception as exc:
                    future = failed_future(exc)
            if future is None:
                future = Future()
                self._threads().submit(_send_call, context, fn, host_args, host_kwargs, future)
            futures[name] = future
        return futures

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.forks, thread_name_prefix="fanout-fleet-send")
            return self._pool

    def shutdown(self) -> None:
        """Wait for the sending threads to finish what they hold, and end them."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def on_done(future: Future, callback: Callable[[Future], object]) -> None:
    """Run ``callback`` where ``future``'s outcome is set: a context's future would otherwise hop to its delivery
    thread, and fanout's own short callbacks need no hop."""
    getattr(future, "_add_internal_callback", future.add_done_callback)(callback)


def failed_future(error: BaseException) -> Future:
    """A future that already holds ``error``."""
    future: Future = Future()
    future.set_exception(error)
    return future


def _send_call(context: Any, fn: Callable[..., Any], args: tuple, kwargs: dict, proxy: Future) -> None:
    """On a sending thread: start the call, and pass its outcome on to the future the caller holds."""
    try:
        future = context._call_async(fn, args, kwargs)  # a "timeout" in kwargs is fn's (see Fleet.call_each)
    except Exception as exc:
        proxy.set_exception(exc)
        return
    proxy.call_id = future.call_id  # type: ignore[attr-defined]  # before the outcome: Fleet._result reads it
    future._add_internal_callback(lambda done: _copy_outcome(done, proxy))


def _copy_outcome(done: Future, proxy: Future) -> None:
    error = done.exception()
    if error is None:
        proxy.set_result(done.result())
    else:
        proxy.set_exception(error)
