"""One thread reads the small packets of every connection, where paramiko has a thread per connection wake for each.

A warm fan-out gets one small reply packet from each host at about the same
time. With paramiko alone, each wakes its connection's thread, which then
waits its turn for the GIL: three or more context switches per reply, and
dozens of threads contending. Here one thread, ``fanout-input``, waits on all
the sockets at once and reads what is ready, one host after another.

paramiko's thread keeps its connection, and everything but the common case:
the handshake and key exchanges, every message other than channel data and
window adjustments, and bulk packets (longer than ``READ_AHEAD``), which it
reads from the socket without a copy. When it is about to wait for a packet
with nothing to read, it parks and lends the connection's input to the loop.
The loop reads only whole packets (their length is in clear under AES-GCM,
the cipher fanout prefers), each read being one ``recv`` of at most
``READ_AHEAD`` bytes of that host, then gives the input back, with the
message if it is not one the loop handles, the error if reading failed, or
at the host's end. Closing the socket lets the parked thread go.

The loop never waits on a host and never runs user code: it decrypts, and
hands channel data to the connection's protocol as paramiko's thread did.
Sockets are added to and taken from its epoll by the threads that lend and
close them, under a lock; a socket is taken out before it is closed, and
never while the loop is reading it (``SharedInput._reading``), so a reused
descriptor is never read for another. A parked thread looks every
``PARK_CHECK`` seconds whether paramiko needs it (a key exchange its own
sending asked for, a transport stopped without its socket closing) and then
takes the input back.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import struct
import threading
from collections.abc import Callable
from typing import Any

import paramiko

from fanout._paramiko_compat import NeedRekey, dispatch_shared, read_message_through, tag_length, wants_rekey
from fanout._read_ahead import READ_AHEAD, ReadAheadSocket

_LENGTH = struct.Struct(">I")
PARK_CHECK = 1.0  # seconds between a parked thread's looks at whether paramiko needs it back
_REKEY = object()  # handed back: paramiko's thread starts a key exchange
_YOURS = object()  # handed back: paramiko's thread reads the next packet itself (a bulk one, or the host's end)


class InputLoop:
    """The ``fanout-input`` thread and the epoll of the sockets lent to it."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()  # register and unregister, from the lending and closing threads
        self._thread = threading.Thread(target=self._run, name="fanout-input", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            # epoll (kqueue elsewhere) reports sockets added while it waits, so the wait needs no waking up.
            for key, _ in self._selector.select():
                lent: SharedInput = key.data
                try:
                    lent.pump()
                except BaseException as exc:  # whatever went wrong is that connection's, never the loop's
                    lent.give_back(exc)

    def watch(self, lent: SharedInput) -> bool:
        """Add ``lent``'s socket; False if it cannot be (closed meanwhile)."""
        with self._lock:
            try:
                self._selector.register(lent.sock.raw, selectors.EVENT_READ, lent)
            except (ValueError, KeyError, OSError):
                return False
        return True

    def forget(self, lent: SharedInput) -> None:
        with self._lock, contextlib.suppress(ValueError, KeyError, OSError):  # not watched
            self._selector.unregister(lent.sock.raw)


_loop: InputLoop | None = None
_loop_lock = threading.Lock()


def _the_loop() -> InputLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = InputLoop()
        return _loop


def _forget_the_loop_in_a_child() -> None:
    """A forked child has no loop thread (only the forking thread survives a fork): it starts its own."""
    global _loop, _loop_lock
    _loop, _loop_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_the_loop_in_a_child)


class SharedInput:
    """One connection's input, read by paramiko's thread or lent to the loop; never by both at once."""

    def __init__(self, transport: paramiko.Transport, sock: ReadAheadSocket) -> None:
        self.transport = transport
        self.sock = sock
        self._loop = _the_loop()
        self._lock = threading.Lock()
        self._back = threading.Condition(self._lock)
        # Held by the loop while it reads this connection, and by whoever takes the socket from it: so a socket
        # is never closed, nor its input taken back, in the middle of a read. Reentrant: a read may end in a close.
        self._reading = threading.RLock()
        self._lent = False
        self._handed: Any = None
        self._closed = False
        self.packets = 0  # read and handled by the loop
        #: Whether the connection is taking in a large frame: its input then stays with paramiko's thread, so the
        #: frame's decode, once whole, does not hold up the other hosts. Set by the connection's Context.
        self.busy: Callable[[], bool] = lambda: False
        self._read_own = read_message_through(transport, self._read_message)
        sock.on_close.append(self._on_close)

    @property
    def lent(self) -> bool:
        """Whether the loop holds the input now (paramiko's thread waits for it back)."""
        return self._lent

    def _read_message(self) -> tuple[int, paramiko.Message]:
        """paramiko's thread asks for its next message: lend the input while there is nothing to read."""
        while True:
            with self._lock:
                while self._lent and not self._closed:
                    if not self._back.wait(PARK_CHECK) and self._lent and self._needed():
                        self._lock.release()
                        try:
                            self._take_back(_REKEY if wants_rekey(self.transport) else _YOURS)
                        finally:
                            self._lock.acquire()
                handed, self._handed = self._handed, None
                closed = self._closed
            if handed is _REKEY:
                raise NeedRekey()
            if isinstance(handed, BaseException):
                raise handed
            if handed is not None and handed is not _YOURS:
                return handed
            if closed:  # the socket is closed: paramiko's thread only ends
                raise EOFError("the connection was closed")
            if handed is _YOURS or self._pending() or self.busy() or tag_length(self.transport) is None:
                return self._read_own()
            with self._lock:
                self._lent = True
            if not self._loop.watch(self):  # closed meanwhile: paramiko's thread finds out
                with self._lock:
                    self._lent = False
                return self._read_own()

    def _needed(self) -> bool:
        """Whether paramiko's thread must act though nothing came: a key exchange, or a transport stopped."""
        return wants_rekey(self.transport) or not self.transport.active

    def _take_back(self, handed: Any) -> None:
        """From paramiko's thread: the input back from the loop, between two of its reads."""
        with self._reading:
            if self._lent:
                self.give_back(handed)

    def _pending(self) -> bool:
        """Whether there is something to read now (bulk keeps coming): then paramiko's thread reads it itself."""
        if len(self.sock.unread()):
            return True
        try:
            poll = select.poll()
            poll.register(self.sock.raw, select.POLLIN)
            return bool(poll.poll(0))
        except (OSError, ValueError):  # closed: paramiko's thread finds out
            return True

    def give_back(self, handed: Any) -> None:
        """Stop watching, and wake paramiko's thread with ``handed``."""
        self._loop.forget(self)
        with self._lock:
            self._handed = handed
            self._lent = False
            self._back.notify()

    def _on_close(self) -> None:
        """Whoever closes the socket, before it closes: out of the loop's epoll, after any read under way."""
        with self._reading:
            self._loop.forget(self)
            with self._lock:
                self._closed = True
                self._back.notify()

    def pump(self) -> None:
        """The loop's thread, the socket readable: one read, then every whole small packet it completes."""
        with self._reading:
            if not self._lent or self._closed:
                return  # taken back, or closed, between the wake and now
            self._pump()

    def _pump(self) -> None:
        try:
            got = self.sock.read_more()
            if got is None:
                return  # woken for nothing after all
            if not got:
                self.give_back(_YOURS)  # the host's end: paramiko's thread finds it and ends as it always did
                return
        except OSError as exc:
            self.give_back(exc)
            return
        while True:
            unread = self.sock.unread()
            if len(unread) < _LENGTH.size:
                return  # all read: back to waiting at once, since the caller just woken wants the GIL
            tag = tag_length(self.transport)
            if tag is None or self.busy():
                self.give_back(_YOURS)
                return
            whole = _LENGTH.size + _LENGTH.unpack_from(unread)[0] + tag
            if whole > READ_AHEAD:
                self.give_back(_YOURS)  # bulk: paramiko's thread reads it straight from the socket
                return
            if len(unread) < whole:
                return  # the rest is still on its way
            try:
                ptype, message = self._read_own()
                if not dispatch_shared(self.transport, ptype, message):
                    self.give_back((ptype, message))
                    return
                self.packets += 1
            except Exception as exc:  # a bad packet (its tag does not match): paramiko's thread raises it
                self.give_back(exc)
                return
            if wants_rekey(self.transport):
                self.give_back(_REKEY)
                return


def share_input(transport: paramiko.Transport) -> SharedInput | None:
    """Let the loop read ``transport``'s small packets when its thread has nothing to read (a TCP or ProxyCommand
    connection; one through a jump host keeps its thread)."""
    if isinstance(transport.sock, ReadAheadSocket):
        return SharedInput(transport, transport.sock)
    return None
