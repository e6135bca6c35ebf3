"""A connection to one child: calls, their futures, and who runs what for it.

The I/O shell around :class:`~fanout._protocol.MasterProtocol`. Threads and
what each runs (docs/design.rst, "Threads have owners"), per connection:

* the transport's **receiving thread** (paramiko's, for SSH) decodes frames and
  hands events on: it completes a blocking :meth:`Context.call` at once (no
  thread hop on the warm path), files output, and queues everything else. It
  never runs user code and never waits on a host or a lock a host can hold;
* the **answering runner** looks modules up and writes their sources, and runs
  the children's service calls into the master's pool and writes the replies:
  a child that stops reading stalls only its own runner, and a write that makes
  no progress for :data:`SEND_STALL_TIMEOUT` seconds drops that host;
* the **delivery runner** runs user code: callbacks added to a
  :meth:`Context.call_async` future, ``on_output``, the logging handlers of
  ``fanout.remote.<host>``. A callback may call the same context;
* the caller's own thread writes its calls (it may wait for its own host only).
  A fleet's caller writes one call to many hosts only where the write cannot
  wait (:meth:`Context._call_now`, see :mod:`fanout._fleet_send`); the fleet's
  sending threads write the others.

The runners are threads of that connection alone, alive only while they have
work (:mod:`fanout._serial`); nothing is shared between hosts but the deadline
thread, whose callbacks never wait.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import copy
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

from fanout import _become, _codec, _functions, _output, _relay_chunks, _stage, _terminal, _wire
from fanout._deadlines import DEADLINES, STALLS, StallTimer
from fanout._modules import PINNED, ModulePolicy, ModuleSender
from fanout._protocol import (
    CallFailed,
    CallSucceeded,
    ChildGone,
    Hello,
    MasterProtocol,
    ModuleRequested,
    Output,
    Relayed,
    ServiceRefused,
    ServiceRequested,
)
from fanout._relay import Kept, RelayTransport, Tree, module_key
from fanout._serial import SerialRunner
from fanout._timeouts import check_timeout
from fanout._transport import LocalTransport, Transport
from fanout.errors import (
    AuthenticationFailed,
    BecomeFailed,
    CallTimeout,
    ConnectionLost,
    ConnectTimeout,
    FanoutError,
    HostKeyError,
    ProtocolError,
    RemoteError,
    Unreachable,
)

if TYPE_CHECKING:
    from fanout._commands import CommandResult
    from fanout._push import Transfer

_HELLO_TIMEOUT = 60.0
BECOME_TIMEOUT = 30.0  # seconds a become child may take to start: sudo's password check and Python's start
SEND_STALL_TIMEOUT = 30.0  # seconds a write to a host may make no progress before the host is dropped
END_ACCOUNT_WAIT = 10.0  # seconds a failed write waits for the child's own account of its end (it takes <= 3 s)
WRITE_PIECE = 256 * 1024  # bytes written at a time, so progress on a large send is seen
INLINE_MAX = 4 * 1024  # bytes of a call a fleet may write on the caller's thread: less than a polled socket's room
HEAD_MERGE = 32 * 1024  # a frame's header is sent joined to this much of what follows (one SSH packet)
MAX_UNDELIVERED_OUTPUT = 16 * 1024 * 1024  # bytes (by _output.weight) of lines waiting for on_output/logging, per host
# Bytes of an unfinished frame past which a connection's input stays with its own thread, not the shared input loop
# (fanout/_input_loop.py): decoding a frame of that much, as hostile as its literal or pickle can be, holds the loop,
# and so every other host, ~10 ms at most (64 KiB of nested empty containers measured 45 ms).
SHARED_FRAME_MAX = 16 * 1024
MAX_ANSWERS_WAITING = 2 * 256 + 16  # module requests and service calls queued for answering, per host


def _pieces(data: bytes | tuple[bytes | memoryview, ...]) -> Iterator[bytes | memoryview]:
    """``data`` in pieces of WRITE_PIECE bytes at most, views where they are large; a small leading part
    (a frame's header) travels with the start of the next, so it costs no SSH packet of its own."""
    parts = [data] if isinstance(data, bytes) else list(data)
    if len(parts) > 1 and len(parts[0]) < HEAD_MERGE:
        head, rest = parts[0], memoryview(parts[1])
        parts[:2] = [head + rest[: HEAD_MERGE - len(head)].tobytes(), rest[HEAD_MERGE - len(head) :]]
    for part in parts:
        if len(part) <= WRITE_PIECE:
            if len(part):
                yield part
            continue
        view = memoryview(part)
        for start in range(0, len(view), WRITE_PIECE):
            yield view[start : start + WRITE_PIECE]


class CallFuture(Future):
    """A call's outcome. Callbacks run on the context's delivery thread, never on the thread receiving from the host.

    ``call_id`` ties the lines the call printed to it (see ``Context.on_output``).
    """

    def __init__(self, deliver: Callable[[Callable[[], None]], None]) -> None:
        super().__init__()
        self.call_id = 0
        self.from_delivery = False  # made by a callback on the delivery thread: settled without it
        self._deliver = deliver

    def add_done_callback(self, fn: Callable[[Future], object]) -> None:
        if self.done():
            super().add_done_callback(fn)  # runs now, on the caller's own thread, as Future's do
            return
        super().add_done_callback(lambda future: self._deliver(lambda: _run_callback(fn, future)))

    def _add_internal_callback(self, fn: Callable[[Future], object]) -> None:
        """For fanout's own short, non-blocking callbacks: run wherever the outcome is set."""
        super().add_done_callback(fn)


def _settle(future: Any, event: CallSucceeded | CallFailed) -> None:
    try:
        if isinstance(event, CallSucceeded):
            future.set_result(event.value)
        else:
            future.set_exception(event.error)
    except InvalidStateError:
        pass  # the caller cancelled it


def _run_callback(fn: Callable[[Future], object], future: Future) -> None:
    try:
        fn(future)
    except Exception:
        logging.getLogger("fanout").exception("a callback of %r raised", future)


class _Waiter:
    """What :meth:`Context.call` waits on: the part of a Future it needs, on one bare lock."""

    __slots__ = ("_done", "_error", "_seen", "_value", "call_id", "from_delivery")

    def __init__(self) -> None:
        self.from_delivery = False
        self.call_id = 0
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._seen = False  # wait() took the outcome's signal: result() must not wait for it again
        self._value: Any = None
        self._error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        self._value = value
        self._release()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._release()

    def _release(self) -> None:
        try:
            self._done.release()
        except RuntimeError:  # already answered (a late ConnectionLost after the result)
            raise InvalidStateError("already done") from None

    def wait(self, timeout: float) -> bool:
        """Whether the outcome came within ``timeout`` seconds; once it has, :meth:`result` returns at once."""
        self._seen = self._done.acquire(timeout=timeout)
        return self._seen

    def result(self) -> Any:
        if not self._seen:
            self._done.acquire()
        if self._error is not None:
            raise self._error
        return self._value


class Context:
    """A running child on one host: call functions in it, then close it.

    Made by :func:`fanout.connect` (SSH) or :func:`fanout.local` (a subprocess here).
    ``name`` is the host name it was made for; it names the logger ``fanout.remote.<name>``.
    """

    def __init__(
        self,
        transport: Transport,
        name: str,
        *,
        allow_modules: Iterable[str] = (),
        deny_modules: Iterable[str] = (),
        user: str | None = None,
        parent: Context | None = None,
        other_host: bool = False,
    ) -> None:
        self.name = name
        #: The user the child runs as (the login user, or the one it became), when known.
        self.user = user
        self._transport = transport
        self._parent = parent
        self._root: Context = parent._root if parent is not None else self
        # The context of this one's host: the connection's child, or one reached through it on another host (via=).
        # Its modules and its share of the master's service pool are the host's, whichever context asks.
        self._host: Context = self if parent is None or other_host else parent._host
        self._protocol = MasterProtocol(name, relays=parent is None)
        if parent is None:
            self._tree = Tree()
        if self._host is self:
            self._modules = ModuleSender(name, policy=ModulePolicy(allow_modules, deny_modules))
            self._modules.roots.update(PINNED)
        else:  # a module crosses the connection once, whichever context of the host asked first
            self._modules = self._host._modules
        self._kept = Kept()  # what its child holds for the children it opened (become, via=)
        self._futures: dict[int, Future] = {}
        self._state_lock = threading.Lock()  # protocol state and futures
        # Order of frames on the wire: one lock per connection, which the contexts reached through it share.
        self._send_lock: threading.Lock = self._root._send_lock if parent is not None else threading.Lock()
        self._hello_seen = threading.Event()
        self._lost: tuple[str, BaseException | None] | None = None
        self._lost_status: int | None = None  # the child's exit status, when _lost is its own end
        self._closed = False
        self._bytes_sent = self._bytes_received = self._module_requests = 0
        self._unfinished = 0  # bytes of a frame not yet whole, at the last decode
        self._unfinished_below = 0  # on the root: the sum of its tree's, kept by its receiving thread alone
        self._log = logging.getLogger(f"fanout.remote.{name}")
        self._ready_deadline: int | None = None
        #: Called as ``on_output(stream, line, call_id)`` for each line the child prints, instead of
        #: logging it; ``call_id`` is the printing call's (see ``CallFuture.call_id``), 0 if none printed it.
        #: It runs on this context's delivery thread, in the order the lines came.
        self.on_output: Callable[[str, str, int], None] | None = None
        self._capture: Callable[[str, str, int], None] | None = None  # fanout's own, inline: see Fleet
        self._undelivered = _output.TailBuffer(MAX_UNDELIVERED_OUTPUT)
        self._undelivered_lock = threading.Lock()
        self._output_busy = False  # lines wait for, or are in, delivery: results then follow them
        self._answers = SerialRunner(f"fanout-answer-{name}", MAX_ANSWERS_WAITING)
        self._service_lock = threading.Lock()
        self._services_in_pool = 0  # this host's calls in the master's pool now
        # Waiting for the pool: (the context that asked, its call). Kept on the host's context alone, so the
        # share is the host's, however many become contexts it has.
        self._services_waiting: collections.deque[tuple[Context, ServiceRequested]] = collections.deque()
        self._deliveries = SerialRunner(f"fanout-deliver-{name}")
        self._stall = StallTimer(SEND_STALL_TIMEOUT, self._stalled)
        config = {"name": name, "roots": sorted(self._modules.roots), "log_level": self._log.getEffectiveLevel()}
        self._ended_event = threading.Event()
        self._opened: list[Context] = []  # the contexts this one opened (become): closed with it
        self._end_thread: threading.Thread | None = None
        STALLS.register(self._stall)
        try:
            self._transport.start(self._on_data, self._on_end)
            shared = getattr(self._transport, "shared_input", None)
            if shared is not None:  # the shared input loop leaves a large frame's decode to this host's own thread
                shared.busy = self._decoding_a_large_frame
        except BaseException:  # a become whose login is already lost: nothing of it may stay registered
            STALLS.unregister(self._stall)
            raise
        with contextlib.suppress(FanoutError):  # a child that died at once (or could not start): its calls say how
            bootstrap = self._protocol.bootstrap(config)
            self._send(
                bootstrap if getattr(transport, "sends_stage1", True) else bootstrap[len(_stage.stage1_blob()) :]
            )

    # -- public API ----------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in the child and return its result (or raise its error).

        With no answer after ``timeout`` seconds, it raises :class:`~fanout.CallTimeout` and the child is
        ended, as a fleet drops a host at a call's timeout: nothing else stops a call there. The context's other
        calls then raise :class:`~fanout.ConnectionLost`, caused by that timeout. To wait without ending the
        child, use ``call_async(...).result(timeout)``; to pass ``timeout`` to ``fn``, :func:`functools.partial`.
        """
        seconds = check_timeout("timeout", timeout, allow_none=True)
        waiter = self._start(fn, args, kwargs, _Waiter())
        if seconds is not None and not waiter.wait(seconds) and self._abandon(waiter):
            raise self._time_out(seconds)
        return waiter.result()

    def call_async(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> CallFuture:
        """Start ``fn(*args, **kwargs)`` in the child; the future holds its result or error.

        Its done-callbacks run on this context's delivery thread (never on the
        thread that receives from the host), so they may call the context.
        ``timeout`` is as :meth:`call`'s: the future fails with :class:`~fanout.CallTimeout`.
        """
        return self._call_async(fn, args, kwargs, check_timeout("timeout", timeout, allow_none=True))

    def _call_async(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict, seconds: float | None = None
    ) -> CallFuture:
        """:meth:`call_async` with the arguments as they are: a ``timeout`` among ``kwargs`` is ``fn``'s."""
        future = self._start(fn, args, kwargs, CallFuture(self._deliveries.post))
        if seconds is not None and not future.done():
            handle = DEADLINES.at(time.monotonic() + seconds, lambda: self._overran_soon(future, seconds))
            future._add_internal_callback(lambda _: DEADLINES.cancel(handle))
        return future

    def _abandon(self, future: Any) -> bool:
        """Forget a call whose outcome has not come: True then (none will be taken), False if it is on its way."""
        with self._state_lock:
            if self._futures.get(future.call_id) is not future:
                return False
            del self._futures[future.call_id]
            return True

    def _overran_soon(self, future: CallFuture, seconds: float) -> None:
        """On the deadline thread, which never waits: a thread of this host's ends the call and the child."""

        def overran() -> None:
            if self._abandon(future):
                error = self._time_out(seconds)
                with contextlib.suppress(InvalidStateError):  # the caller cancelled it
                    future.set_exception(error)

        threading.Thread(target=overran, name=f"fanout-timeout-{self.name}", daemon=True).start()

    def _time_out(self, seconds: float) -> CallTimeout:
        """A call had no answer within ``seconds``: end the child (the protocol cannot stop one call), and fail
        its other calls, and later ones, with ConnectionLost caused by the timeout (see fanout.fleet.status_of)."""
        error = CallTimeout(f"{self.name}: no answer within the timeout of {seconds:g} s; its child was ended")
        self._fail_all(f"ended at a call's timeout ({error})", error)
        self._close_transport_soon()
        return error

    def _start(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict, future: Any, also_modules: tuple[str, ...] = ()
    ) -> Any:
        encoded = _functions.encode_call(fn, args, kwargs)
        if encoded.by_value:
            _functions.check_by_value(fn, self.name, self._wait_hello().python)
        with self._send_lock:
            return self._start_locked(encoded, future, also_modules)

    def _start_locked(self, encoded: _functions.EncodedCall, future: Any, also_modules: tuple[str, ...] = ()) -> Any:
        records, roots = self._modules.preload([*encoded.modules, *also_modules])
        packed = _wire.pack_body(encoded.payload, True)  # compressed before the lock the receiving thread takes
        with self._state_lock:
            self._raise_if_lost()
            call_id, frame = self._protocol.call(encoded.payload, packed)
            self._futures[call_id] = future
            future.from_delivery = self._deliveries.on_runner()
            future.call_id = call_id
        ahead = b""
        if self._host is not self and (records or roots):
            # Sources go to the host's first child, which keeps them for every context on its host.
            self._host._send_modules(0, records, roots)
            ahead = self._protocol.modules(0, [], roots) if roots else b""
        elif self._parent is not None and (records or roots):  # a host beyond a relay: through what the relay keeps
            self._send_modules(0, records, roots)
        elif records or roots:
            ahead = self._protocol.modules(0, records, roots)
        self._write(ahead + frame)
        return future

    def _call_now(self, fn: Callable[..., Any], encoded: _functions.EncodedCall, writable: Container[Any]) -> Any:
        """Start an encoded call on the caller's own thread if its write cannot wait on the host; else None, with
        nothing sent or changed (a fleet then sends it from a thread of its own: see fanout.fleet).

        It cannot wait when no other write holds the connection, the call's modules went before, and the
        transport takes the frame at once (:meth:`can_send_now`, its socket among ``writable``).
        """
        if encoded.by_value:
            if not self._hello_seen.is_set():
                return None
            _functions.check_by_value(fn, self.name, self._wait_hello().python)
        if len(encoded.payload) > INLINE_MAX or not self._send_lock.acquire(blocking=False):
            return None
        try:
            if not self._modules.settled(encoded.modules):
                return None
            if not self._can_send_now(len(encoded.payload) + _wire.HEADER.size, writable):
                return None
            return self._start_locked(encoded, CallFuture(self._deliveries.post))
        finally:
            self._send_lock.release()

    def _can_send_now(self, size: int, writable: Container[Any]) -> bool:
        """Whether a frame of ``size`` bytes goes out at once, nobody else writing (see Transport.can_send_now)."""
        if self._parent is not None:  # relayed: it travels inside a frame of the connection's own
            return self._root._can_send_now(size + _wire.HEADER.size, writable)
        can_send_now = getattr(self._transport, "can_send_now", None)
        return can_send_now is not None and can_send_now(size, writable)

    def _send_socket(self) -> Any:
        """The socket this context's frames leave by, when it is one the fleet can poll (else None)."""
        return getattr(self._root._transport, "socket", None)

    def call_service(self, service: type | str, method: str, /, **kwargs: Any) -> Any:
        """Call ``method`` of a service in the child (a class, or its ``module.ClassName``).

        The child builds its pool on the first service call and activates the
        service by importing it, from the master if need be. A refusal raises
        :class:`fanout.service.CallRefused`; the method's own error raises
        :class:`~fanout.RemoteError`.
        """
        from fanout import _service_calls
        from fanout import service as service_module

        if not isinstance(service, str) and service.__module__ == "__main__":
            raise service_module.CallRefused(
                f"{service.__qualname__} is defined in __main__, which {self.name} cannot import to activate "
                "it: move it into a module (or import this script by its module name)"
            )
        name = service if isinstance(service, str) else service.canonical_name()
        # The child activates the service by importing its module: the master chose to send it, as for a function.
        module = (name.rpartition(".")[0],) if "." in name else ()
        try:
            waiter = self._start(_service_calls.invoke, ("master", name, method, kwargs), {}, _Waiter(), module)
            return waiter.result()
        except RemoteError as exc:
            if exc.raised(service_module.CallRefused):
                raise service_module.CallRefused(f"{exc.message} (on {self.name})") from exc
            raise

    def become(
        self,
        user: str = "root",
        *,
        method: str = "sudo",
        password: str | None = None,
        exe: str | None = None,
        flags: str | Sequence[str] | None = None,
        timeout: float = BECOME_TIMEOUT,
    ) -> Context:
        """A child of this child, on the same host, running as ``user`` (through sudo, su or doas).

        It opens at once, without waiting: its first calls travel with the request to start it,
        and fail with :class:`~fanout.AuthenticationFailed` (a wrong or missing password) or
        :class:`~fanout.BecomeFailed` (not allowed, not installed) if it cannot start. ``exe``
        replaces the program (``/usr/local/bin/sudo``), ``flags`` its default flags (sudo: ``-H``).
        Closing this context closes it. The password is typed at the prompt: never in arguments,
        environment, logs or reprs.
        """
        check_timeout("timeout", timeout)
        plan = _become.plan(method, user, password=password, exe=exe, flags=flags)
        self._raise_if_lost()
        child = Context(
            RelayTransport(self, plan),
            f"{self.name}/{user}",
            user=user,
            parent=self,
        )
        self._adopt(child)
        child.expect_ready_by(time.monotonic() + timeout, timeout)
        return child

    def _adopt(self, child: Context) -> None:
        """``child`` was opened through this context: it closes with it."""
        with self._state_lock:
            self._opened.append(child)

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        check: bool = True,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run a shell command on the host, as :meth:`fanout.Fleet.run` does on each: its
        :class:`~fanout.fleet.CommandResult`.

        With ``check`` (the default), a non-zero exit status raises :class:`~fanout.CommandFailed`, whose
        ``result`` is the CommandResult. A command still running at ``timeout`` is killed with everything it
        started, and raises CommandFailed with ``rc`` None whatever ``check``; a child with no answer 10 s
        later (``ANSWER_GRACE``) is ended, as at :meth:`call`'s timeout. The lines the command writes reach
        ``on_output`` (or the ``fanout.remote.<host>`` logger) as they come.
        """
        from fanout import _commands, _shell

        args = _commands.shell_args(command, timeout, True, cwd, env)
        answer = self.call(_shell.run, *args, timeout=_commands.answer_wait(timeout))
        value, error = _commands.outcome(self.name, answer, check)
        if error is not None:
            raise error
        return value

    def put(
        self,
        src: str | os.PathLike,
        dest: str,
        *,
        mode: int | None = None,
        owner: str | int | None = None,
        group: str | int | None = None,
        delete: bool = False,
        fsync: bool = False,
        timeout: float | None = None,
    ) -> Transfer:
        """Push a file or a tree to ``dest`` on the host; as :meth:`fanout.Fleet.put` (see docs/files.rst).

        Returns a :class:`~fanout.fleet.Transfer`; raises :class:`~fanout.fleet.PushFailed`
        (with ``transfer``) if any entry failed.
        """
        from fanout import _push

        options = {"mode": mode, "owner": owner, "group": group, "delete": delete, "fsync": fsync, "timeout": timeout}
        return _push.put(self, src, dest, **options)

    def fetch(
        self,
        src: str,
        dest: str | os.PathLike,
        *,
        flat: bool = False,
        max_bytes: int | None = None,
        max_entries: int | None = None,
        timeout: float | None = None,
    ) -> Any:  # a fanout._fetch.Fetched
        """Copy a file or tree from the host into ``dest/<host>/<src>`` (``flat``: at ``dest`` itself).

        Returns a ``Fetched``; raises ``FetchError`` (with ``fetched``) if any entry
        was not fetched. As :meth:`fanout.Fleet.fetch`; see docs/files.rst.
        """
        from fanout import _fetch

        return _fetch.fetch(self, src, dest, flat=flat, max_bytes=max_bytes, max_entries=max_entries, timeout=timeout)

    def _path(self) -> list[Context]:
        """The contexts from the connection's child down to this one."""
        return [self] if self._parent is None else [*self._parent._path(), self]

    def _relay_id(self) -> int:
        return 0 if self._parent is None else self._transport.id

    def _addressed(self, frame: bytes) -> bytes:
        """What to write on the connection for ``frame`` to reach this context."""
        return frame if self._parent is None else self._root._protocol.to_context(self._transport.id, frame)

    def expect_ready_by(self, deadline: float, timeout: float) -> None:
        """Fail every call with :class:`ConnectTimeout` as the cause if the child has not started by ``deadline``."""
        check_timeout("connect_timeout", timeout)
        if not self._hello_seen.is_set():
            self._ready_deadline = DEADLINES.at(deadline, lambda: self._not_ready(timeout))

    def _not_ready(self, timeout: float) -> None:
        """On the deadline thread: hand the drop to a thread of this host's (its locks may be busy decoding)."""
        if self._hello_seen.is_set():
            return
        reason = f"the child was not ready within the connect timeout of {timeout:g} s"
        self._drop_soon(reason, ConnectTimeout(f"{self.name}: {reason}"))

    @property
    def python_version(self) -> tuple[int, int, int]:
        """The child's Python version (waits for the child to start, once)."""
        return self._wait_hello().python

    @property
    def pid(self) -> int:
        """The child's process id on its host."""
        return self._wait_hello().pid

    @property
    def stats(self) -> dict[str, int]:
        """Traffic so far: bytes each way, modules sent, and module requests the child had to make."""
        return {
            "bytes_sent": self._bytes_sent,
            "bytes_received": self._bytes_received,
            "modules_sent": len(self._modules.sent),
            "module_requests": self._module_requests,
        }

    def close(self) -> None:
        """End the child and the connection; calls still waiting raise :class:`ConnectionLost`."""
        if self._closed:
            return
        self._closed = True
        with self._state_lock:
            opened, self._opened = self._opened, []
        for child in opened:
            child.close()
        # A send stuck on a host that stopped reading holds the lock: then closing the transport
        # (which fails that send) is the way to end the child.
        if self._send_lock.acquire(timeout=1):
            try:
                with contextlib.suppress(Exception):  # already gone: closing is all that is left to do
                    self._write(self._protocol.shutdown())
            finally:
                self._send_lock.release()
        self._transport.close()
        self._ended_event.wait(timeout=5)
        self._fail_all("the context was closed", None)
        STALLS.unregister(self._stall)

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "lost" if self._lost else "open"
        return f"<fanout.Context {self.name!r} {state}>"

    # -- sending -------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            self._write(data)

    def _write(self, data: bytes | tuple[bytes | memoryview, ...]) -> None:
        """Write under ``_send_lock``, in pieces, each watched for progress (see :data:`SEND_STALL_TIMEOUT`).

        ``data`` may be a frame's parts (a header, then a file chunk shared by every host it goes to): they
        are sent as views, never joined into a copy per host.
        """
        small = type(data) is bytes and 0 < len(data) <= WRITE_PIECE  # a call's frame: no pieces to cut
        try:
            for piece in (data,) if small else _pieces(data):
                self._stall.started()
                self._transport.send(piece)
                self._bytes_sent += len(piece)
        except Exception as exc:
            # The child may have just ended (a missing python, say): its own account of how is
            # worth a short wait, except on the thread that produces that account.
            if threading.current_thread() is not self._end_thread:
                self._ended_event.wait(END_ACCOUNT_WAIT)
            self._fail_all(f"sending failed: {type(exc).__name__}: {exc}", exc)
            self._raise_if_lost()
        finally:
            self._stall.done()

    def _stalled(self, timeout: float) -> None:
        """On the deadline thread: a write made no progress for ``timeout`` seconds; the host is dropped."""
        reason = f"it stopped reading: a write made no progress for {timeout:g} s"
        self._drop_soon(reason, ConnectionLost(self.name, reason))

    def _drop_soon(self, reason: str, cause: BaseException) -> None:
        """Fail every call and close, on a thread of this host's: the deadline thread never waits for a host."""

        def drop() -> None:
            self._fail_all(reason, cause)
            self._transport.close()

        threading.Thread(target=drop, name=f"fanout-drop-{self.name}", daemon=True).start()

    def _close_transport_soon(self) -> None:
        """Close the transport from a thread of its own: closing may wait, and callers must not."""
        threading.Thread(target=self._transport.close, name=f"fanout-close-{self.name}", daemon=True).start()

    # -- receiving -----------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        """Bytes from the child, on the transport's receiving thread: decode and act at once."""
        if self._lost is not None:
            return
        self._bytes_received += len(data)
        try:
            with self._state_lock:
                events = self._protocol.receive(data)
            unfinished = self._protocol.unfinished_frame
            self._root._unfinished_below += unfinished - self._unfinished
            self._unfinished = unfinished
            for event in events:
                self._handle(event)
        except ProtocolError as exc:
            self._fail_all(f"it sent an invalid message ({exc}); the connection was dropped", exc)
            self._close_transport_soon()
        except Exception as exc:
            self._fail_all(f"{type(exc).__name__}: {exc}", exc)
            self._close_transport_soon()

    def _decoding_a_large_frame(self) -> bool:
        """Whether a frame of over SHARED_FRAME_MAX bytes is coming in, on this connection or one relayed through
        it: its decode, once whole, is then left to the connection's own thread, not the shared input loop."""
        return self._unfinished_below > SHARED_FRAME_MAX

    def _on_end(self) -> None:
        """The child's stream ended. Finding out how can wait on the transport, so not on its thread."""
        self._end_thread = threading.Thread(target=self._ended, name=f"fanout-end-{self.name}", daemon=True)
        self._end_thread.start()

    def _ended(self) -> None:
        try:
            with self._state_lock:
                self._protocol.end_of_stream()
        except ProtocolError as exc:
            self._fail_all(f"it sent an invalid message ({exc}); the connection was dropped", exc)
        reason = "the connection closed" if self._closed else self._transport.describe_end()
        status = None if self._closed else getattr(self._transport, "exit_status", None)
        cause = getattr(self._transport, "end_error", None)
        if cause is None and not self._closed and self._protocol.hello is None:  # its Python too old, or none found
            cause = _stage.unsupported_python(self.name, getattr(self._transport, "stderr", None))
        self._fail_all(reason, cause, exit_status=status)
        for transport in list(self._root._tree.transports.values()):  # those below it cannot outlive it
            if transport.parent is self:
                what = "relay" if transport.plan.other_host else "parent"  # a host reached through it, or a become
                transport.ended(f"its {what} {self.name} ended")
        self._ended_event.set()

    def _handle(self, event: object) -> None:
        """On the receiving thread: complete, file or queue; never run user code or wait."""
        if isinstance(event, (CallSucceeded, CallFailed)):
            with self._state_lock:
                future = self._futures.pop(event.call_id, None)
            if future is not None:
                with self._undelivered_lock:
                    behind = self._output_busy
                # What the call printed reaches on_output and logging before its result, unless the call was
                # made from there (a callback calling the context): that thread waits for it, so it cannot deliver.
                if behind and not future.from_delivery:
                    self._deliveries.post(lambda: _settle(future, event))
                else:
                    _settle(future, event)
        elif isinstance(event, ModuleRequested):
            self._module_requests += 1
            self._answer(lambda: self._answer_module(event))
        elif isinstance(event, (ServiceRequested, ServiceRefused)):
            self._answer(lambda: self._serve(event))
        elif isinstance(event, Output):  # a whole line: the protocol joined its pieces
            if self._capture is not None and event.stream != "log":
                self._capture(event.stream, event.text, event.call_id)
            self._queue_delivery(event, event.text)
        elif isinstance(event, Relayed):
            transport = self._tree.transports.get(event.context)
            if transport is not None:
                transport.deliver(event.data)
        elif isinstance(event, ChildGone):
            transport = self._root._tree.transports.get(event.context)
            if transport is not None:
                transport.gone(event)
        elif isinstance(event, Hello):
            if isinstance(self._transport, RelayTransport):
                self._transport.ready()
            self._modules.child_python = event.python
            self._hello_seen.set()
            if self._ready_deadline is not None:
                DEADLINES.cancel(self._ready_deadline)

    def _answer(self, job: Callable[[], None]) -> None:
        if not self._answers.post(job):  # the protocol caps requests in flight, so this is a child gone wild
            raise ProtocolError(f"over {MAX_ANSWERS_WAITING} requests wait for answers")

    # -- user code: on the delivery runner ----------------------------------------------

    def _queue_delivery(self, event: Output, text: str) -> None:
        """File a line for on_output or logging; past the cap the oldest lines go, and a marker says so."""
        with self._undelivered_lock:
            self._undelivered.append((event, text), _output.weight(text) + 64)
            start = not self._output_busy
            self._output_busy = True
        if start:
            self._deliveries.post(self._deliver_output)

    def _deliver_output(self) -> None:
        while True:
            with self._undelivered_lock:
                lines, dropped, size = self._undelivered.take()
                if not lines and not dropped:
                    self._output_busy = False
                    return
            if dropped:
                marker = _output.dropped_marker(dropped, size, "they came faster than they were handled")
                self._emit("stderr", marker, logging.WARNING, "fanout", 0)
            for event, text in lines:
                self._emit(event.stream, text, event.level, event.logger, event.call_id)

    def _emit(self, stream: str, text: str, level: int, logger: str, call_id: int) -> None:
        if self.on_output is not None and stream != "log":
            try:
                self.on_output(stream, text, call_id)
            except Exception:  # the user's callback failing is no reason to drop the connection
                self._log.exception("on_output failed for a line from %s", self.name)
            return
        # A host's text reaches log handlers (a terminal, a file) escaped; a record's own lines are indented,
        # so none can pass for a record of its own.
        safe = "\n    ".join(_terminal.escape(part) for part in text.split("\n"))
        self._log.log(level, "%s", safe, extra={"fanout_stream": stream, "fanout_logger": logger})

    # -- answering the child: on the answering runner ------------------------------------

    def _serve(self, event: ServiceRequested | ServiceRefused) -> None:
        """A child calls a service here: run it in the children's pool, reply when it is done.

        A host has at most half the pool's threads' worth of calls in the pool at once (at least one);
        its others wait here, in its own queue. So however many calls one host makes, every other
        host's next call finds a thread within one call's time.
        """
        from fanout import service

        pool = service.children_pool()
        if isinstance(event, ServiceRefused) or pool is None:
            reason = event.reason if isinstance(event, ServiceRefused) else "the master serves no services"
            refused: Future = Future()
            refused.set_exception(service.CallRefused(reason + ("" if pool else " (see Pool.serve_children)")))
            self._when_done(event.request_id, refused)
            return
        host = self._host
        with host._service_lock:
            if host._services_in_pool >= max(1, pool.size // 2):
                host._services_waiting.append((self, event))
                return
            host._services_in_pool += 1
        self._invoke(pool, event)

    def _invoke(self, pool: Any, event: ServiceRequested) -> None:
        from fanout import service

        try:
            future = pool.invoke(event.service, event.method, event.kwargs, service.Caller(self.name, is_parent=False))
        except Exception as exc:  # the pool closed meanwhile, a policy that raised: the child still gets an answer
            future = Future()
            future.set_exception(exc)
        self._when_done(event.request_id, future)
        future.add_done_callback(lambda _: self._next_service(pool))

    def _next_service(self, pool: Any) -> None:
        host = self._host
        with host._service_lock:
            if not host._services_waiting:
                host._services_in_pool -= 1
                return
            context, event = host._services_waiting.popleft()
        context._answers.post(lambda: context._invoke(pool, event), force=True)  # bounded by the in-flight cap

    def _when_done(self, request_id: int, future: Future) -> None:
        """The reply is written by this host's answering runner, whichever thread finishes the call."""
        # Replies are bounded by the protocol's cap on calls in flight, so they may pass the runner's limit.
        future.add_done_callback(lambda done: self._answers.post(lambda: self._reply(request_id, done), force=True))

    def _reply(self, request_id: int, done: Future) -> None:
        error = done.exception()
        if error is None:
            outcome: tuple = ("ok", done.result())
        else:
            kind = type(error)
            name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
            text = "".join(traceback.format_exception(kind, error, error.__traceback__))
            outcome = ("error", name, str(error), text)
        try:
            with self._send_lock:
                frame = self._protocol.service_reply_frame(request_id, outcome)  # encoded outside the state lock
                with self._state_lock:
                    self._protocol.service_answered(request_id)
                name = _relay_chunks.name_of(frame[1]) if type(frame) is tuple else None
                if name is not None and self._parent is not None and self._host is self:
                    self._reply_through_relay(frame, name)
                else:
                    self._write(frame)
        except ConnectionLost:
            pass
        except Exception:
            self._log.exception("replying to %s's service call failed", self.name)

    def _reply_through_relay(self, frame: tuple[bytes, Any], name: str) -> None:
        """A reply of named bytes (a file chunk) to a host beyond a relay: the bytes go to the relay once, which
        keeps them (see fanout._relay.Kept.reply) for the next hosts behind it that ask."""
        head, data = frame
        relay = self._parent
        send, forget = relay._kept.reply(name, len(data))
        keep = bytes(data) if send else None  # a view of a mapping: copied once per relay, to marshal
        body = _codec.dumps((name, keep, forget, head))
        self._root._write(relay._addressed(_wire.encode_frame(_wire.RELAY_REPLY, self._transport.id, body)))

    def _answer_module(self, event: ModuleRequested) -> None:
        try:
            with self._send_lock:
                records, roots = self._modules.answer(event.name)
                self._send_modules(event.request_id, records, roots)
        except ConnectionLost:
            pass
        except Exception:
            self._log.exception("answering the child's request for module %s failed", event.name)

    def _send_modules(self, request_id: int, records: list[tuple], roots: list[str]) -> None:
        """Give this host's first child modules: a reply, or sent ahead of a call (0). With the send lock held.

        A host beyond a relay gets them through what the relay keeps (RELAY_MODULES): each source goes to the relay
        once per key (the host's Python version and module policy, which decide what the master sends), and the
        relay copies it to each host of that key the master names it for. Refusals go as they are.
        """
        if self._parent is None or self._host is not self:
            frame = self._protocol.modules_frame(request_id, records, roots)  # compressed outside the state lock
            with self._state_lock:
                self._protocol.modules_sent(request_id)
            self._write(frame)
            return
        with self._state_lock:
            self._protocol.modules_sent(request_id)
        relay = self._parent
        key = module_key(self._modules)
        keep, names, refusals = relay._kept.modules(key, records)
        body = _codec.dumps((key, keep, names, refusals, roots, request_id))
        frame = _wire.encode_frame(_wire.RELAY_MODULES, self._transport.id, body, compress=bool(keep))
        self._root._write(relay._addressed(frame))

    # -- failure -------------------------------------------------------------------------

    def _fail_all(self, reason: str, cause: BaseException | None, *, exit_status: int | None = None) -> None:
        """Fail every call in flight, and every later one, with the first account of the loss; ``exit_status`` is
        the child's, when the account is its own end."""
        with self._state_lock:
            if self._lost is None:
                self._lost = (reason, cause)
                self._lost_status = exit_status
            futures, self._futures = list(self._futures.values()), {}
        self._hello_seen.set()
        for future in futures:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(self._lost_error())

    def _lost_error(self) -> Exception:
        reason, cause = self._lost or ("unknown", None)
        # A child that could not start (a become refused, a host beyond a relay not reached): as connect() raises it.
        could_not_start = (AuthenticationFailed, BecomeFailed, HostKeyError, Unreachable)
        if isinstance(cause, could_not_start) and not isinstance(cause, ConnectTimeout):
            error = copy.copy(cause)  # one per waiting call, each with its own traceback; attributes kept
            error.__traceback__ = None
            return error
        started = self._protocol.hello is not None  # calls could run: the host was reached
        error = ConnectionLost(self.name, reason, exit_status=self._lost_status, started=started)
        error.__cause__ = cause
        return error

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise self._lost_error()

    def _wait_hello(self) -> Hello:
        if not self._hello_seen.wait(_HELLO_TIMEOUT):
            raise ConnectionLost(self.name, f"the child did not start within {_HELLO_TIMEOUT:.0f} s")
        hello = self._protocol.hello
        if hello is None:
            self._raise_if_lost()
            raise ConnectionLost(self.name, "the child ended before it started")
        return hello


def local(
    python: str = sys.executable,
    *,
    name: str = "localhost",
    allow_modules: Iterable[str] = (),
    deny_modules: Iterable[str] = (),
) -> Context:
    """A child on this machine (a ``python`` subprocess), running the same bootstrap and protocol.

    ``allow_modules`` and ``deny_modules`` widen and narrow what the child may
    import from the master (module name prefixes; see docs/security.rst).
    """
    policy = ModulePolicy(allow_modules, deny_modules)  # bad prefixes fail before a process starts
    import getpass

    return Context(
        LocalTransport(python, name), name, allow_modules=policy.allow, deny_modules=policy.deny, user=getpass.getuser()
    )
