"""A connection to one child: calls, their futures, and the thread that reads the child's frames.

The I/O shell around :class:`~fanout._protocol.MasterProtocol`. The transport
hands over bytes on its own receiving thread (paramiko's, for SSH), where they
are decoded and results delivered at once: no extra thread hop per call.
Module requests and end-of-stream handling go to a small shared pool, so a
slow lookup (or an import on the master) never stalls receiving.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from typing import Any

from fanout import _functions
from fanout._deadlines import DEADLINES
from fanout._modules import PINNED, ModuleSender
from fanout._protocol import (
    CallFailed,
    CallSucceeded,
    Hello,
    MasterProtocol,
    ModuleRequested,
    Output,
    ServiceRequested,
)
from fanout._transport import LocalTransport, Transport
from fanout.errors import ConnectionLost, ConnectTimeout, ProtocolError, RemoteError

# Work that must not run on a transport's receiving thread: module lookups (they may import on
# the master), and finding out how a child ended (it may wait for the exit status).
_BACKGROUND = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fanout-background")
_HELLO_TIMEOUT = 60.0
_LONGEST_LINE = 16 * 1024 * 1024  # characters of a line held back while its pieces arrive


class _Waiter:
    """What :meth:`Context.call` waits on: the part of a Future it needs, on one bare lock."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = _thread.allocate_lock()
        self._done.acquire()
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

    def result(self) -> Any:
        self._done.acquire()
        if self._error is not None:
            raise self._error
        return self._value


class Context:
    """A running child on one host: call functions in it, then close it.

    Made by :func:`fanout.connect` (SSH) or :func:`fanout.local` (a subprocess here).
    ``name`` is the host name it was made for; it names the logger ``fanout.remote.<name>``.
    """

    def __init__(self, transport: Transport, name: str) -> None:
        self.name = name
        self._transport = transport
        self._protocol = MasterProtocol(name)
        self._modules = ModuleSender(name)
        self._modules.roots.update(PINNED)
        self._futures: dict[int, Future] = {}
        self._state_lock = threading.Lock()  # protocol state and futures
        self._send_lock = threading.Lock()  # order of frames on the wire
        self._hello_seen = threading.Event()
        self._lost: tuple[str, BaseException | None] | None = None
        self._closed = False
        self._bytes_sent = self._bytes_received = self._module_requests = 0
        self._log = logging.getLogger(f"fanout.remote.{name}")
        self._ready_deadline: int | None = None
        #: Called as ``on_output(stream, line, call_id)`` for each line the child prints, instead of
        #: logging it; ``call_id`` is the printing call's (see ``Future.call_id``), 0 if none printed it.
        self.on_output: Callable[[str, str, int], None] | None = None
        self._partial_lines: dict[tuple[str, int], list[str]] = {}  # a long line's pieces, by stream and call
        config = {"name": name, "roots": sorted(PINNED), "log_level": self._log.getEffectiveLevel()}
        self._ended_event = threading.Event()
        self._transport.start(self._on_data, self._on_end)
        with contextlib.suppress(ConnectionLost):  # a child that died at once: its calls will say how
            self._send(self._protocol.bootstrap(config))

    # -- public API ----------------------------------------------------------------------

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in the child and return its result (or raise its error)."""
        return self._start(fn, args, kwargs, _Waiter()).result()

    def call_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Start ``fn(*args, **kwargs)`` in the child; the future holds its result or error."""
        return self._start(fn, args, kwargs, Future())

    def _start(self, fn: Callable[..., Any], args: tuple, kwargs: dict, future: Any) -> Any:
        encoded = _functions.encode_call(fn, args, kwargs)
        if encoded.by_value:
            _functions.check_by_value(fn, self.name, self._wait_hello().python)
        with self._send_lock:
            records, roots = self._modules.preload(encoded.modules)
            with self._state_lock:
                self._raise_if_lost()
                call_id, frame = self._protocol.call(encoded.payload)
                self._futures[call_id] = future
                if isinstance(future, Future):
                    future.call_id = call_id  # type: ignore[attr-defined]  # ties printed lines to the call
            ahead = self._protocol.modules(0, records, roots) if records or roots else b""
            self._write(ahead + frame)
        return future

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
        try:
            return self.call(_service_calls.invoke, "master", name, method, kwargs)
        except RemoteError as exc:
            if exc.type_name == "fanout.service.CallRefused":
                raise service_module.CallRefused(f"{exc.message} (on {self.name})") from exc
            raise

    def expect_ready_by(self, deadline: float, timeout: float) -> None:
        """Fail every call with :class:`ConnectTimeout` as the cause if the child has not started by ``deadline``."""
        if not self._hello_seen.is_set():
            self._ready_deadline = DEADLINES.at(deadline, lambda: self._not_ready(timeout))

    def _not_ready(self, timeout: float) -> None:
        if self._hello_seen.is_set():
            return
        reason = f"the child was not ready within the connect timeout of {timeout:g} s"
        self._fail_all(reason, ConnectTimeout(f"{self.name}: {reason}"))
        _BACKGROUND.submit(self._transport.close)

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

    def _write(self, data: bytes) -> None:
        try:
            self._transport.send(data)
            self._bytes_sent += len(data)
        except Exception as exc:
            # The child may have just ended (a missing python, say): its own account of how is
            # worth a short wait, except on the pool that produces that account.
            if not threading.current_thread().name.startswith("fanout-background"):
                self._ended_event.wait(2)
            self._fail_all(f"sending failed: {type(exc).__name__}: {exc}", exc)
            self._raise_if_lost()

    # -- receiving -----------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        """Bytes from the child, on the transport's receiving thread: decode and act at once."""
        if self._lost is not None:
            return
        self._bytes_received += len(data)
        try:
            with self._state_lock:
                events = self._protocol.receive(data)
            for event in events:
                self._handle(event)
        except ProtocolError as exc:
            self._fail_all(f"it sent an invalid message ({exc}); the connection was dropped", exc)
            _BACKGROUND.submit(self._transport.close)
        except Exception as exc:
            self._fail_all(f"{type(exc).__name__}: {exc}", exc)
            _BACKGROUND.submit(self._transport.close)

    def _on_end(self) -> None:
        """The child's stream ended. Finding out how can wait on the transport, so not on its thread."""
        _BACKGROUND.submit(self._ended)

    def _ended(self) -> None:
        try:
            with self._state_lock:
                self._protocol.end_of_stream()
        except ProtocolError as exc:
            self._fail_all(f"it sent an invalid message ({exc}); the connection was dropped", exc)
        reason = "the connection closed" if self._closed else self._transport.describe_end()
        self._fail_all(reason, None)
        self._ended_event.set()

    def _handle(self, event: object) -> None:
        if isinstance(event, (CallSucceeded, CallFailed)):
            with self._state_lock:
                future = self._futures.pop(event.call_id, None)
            if future is not None:
                try:
                    if isinstance(event, CallSucceeded):
                        future.set_result(event.value)
                    else:
                        future.set_exception(event.error)
                except InvalidStateError:
                    pass  # the caller cancelled it
        elif isinstance(event, ModuleRequested):
            self._module_requests += 1
            _BACKGROUND.submit(self._answer_module, event)
        elif isinstance(event, ServiceRequested):
            self._serve(event)
        elif isinstance(event, Output):
            text = self._whole_line(event)
            if text is None:
                return
            if self.on_output is not None and event.stream != "log":
                try:
                    self.on_output(event.stream, text, event.call_id)
                except Exception:  # the user's callback failing is no reason to drop the connection
                    self._log.exception("on_output failed for a line from %s", self.name)
                return
            self._log.log(event.level, "%s", text, extra={"fanout_stream": event.stream, "fanout_logger": event.logger})
        elif isinstance(event, Hello):
            self._modules.child_python = event.python
            self._hello_seen.set()
            if self._ready_deadline is not None:
                DEADLINES.cancel(self._ready_deadline)

    def _whole_line(self, event: Output) -> str | None:
        """A line sent in pieces (over 64 KiB) is delivered once, whole; None while pieces are pending.

        Pieces are matched by stream and printing call, so another writer's line cannot land inside
        them; one that grows past ``_LONGEST_LINE`` is delivered as it stands.
        """
        key = (event.stream, event.call_id)
        if event.continued:
            pending = self._partial_lines.setdefault(key, [])
            pending.append(event.text)
            if sum(map(len, pending)) < _LONGEST_LINE:
                return None
        pending = self._partial_lines.pop(key, None)
        if not pending:
            return event.text
        return "".join(pending) if event.continued else "".join(pending) + event.text

    def _serve(self, event: ServiceRequested) -> None:
        """A child calls a service here: run it in the children's pool, reply when it is done."""
        from fanout import service

        pool = service.children_pool()
        if pool is None:
            future: Future = Future()
            future.set_exception(service.CallRefused("the master serves no services (see Pool.serve_children)"))
        else:
            caller = service.Caller(self.name, is_parent=False)
            future = pool.invoke(event.service, event.method, event.kwargs, caller)
        # Replies go out from the background pool: the future may already be done here,
        # on the transport's receiving thread, which must never wait to send.
        future.add_done_callback(lambda done: _BACKGROUND.submit(self._reply, event.request_id, done))

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
                self._write(self._protocol.service_reply(request_id, outcome))
        except ConnectionLost:
            pass
        except Exception:
            self._log.exception("replying to %s's service call failed", self.name)

    def _answer_module(self, event: ModuleRequested) -> None:
        try:
            with self._send_lock:
                records, roots = self._modules.answer(event.name)
                self._write(self._protocol.modules(event.request_id, records, roots))
        except ConnectionLost:
            pass
        except Exception:
            self._log.exception("answering the child's request for module %s failed", event.name)

    # -- failure -------------------------------------------------------------------------

    def _fail_all(self, reason: str, cause: BaseException | None) -> None:
        with self._state_lock:
            if self._lost is None:
                self._lost = (reason, cause)
            futures, self._futures = list(self._futures.values()), {}
        self._hello_seen.set()
        for future in futures:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(self._lost_error())

    def _lost_error(self) -> ConnectionLost:
        reason, cause = self._lost or ("unknown", None)
        error = ConnectionLost(self.name, reason)
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


def local(python: str = sys.executable, *, name: str = "localhost") -> Context:
    """A child on this machine (a ``python`` subprocess), running the same bootstrap and protocol."""
    return Context(LocalTransport(python, name), name)
