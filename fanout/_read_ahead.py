"""A TCP socket that reads ahead, for paramiko: one ``recv`` serves many of paramiko's small reads.

paramiko reads each SSH packet in two or more ``recv`` calls (its first block,
then the rest), and on a socket with a timeout each is a ``poll`` and a
``recv``, each releasing and taking back the GIL. A warm call's reply is one
small packet, so most of the receiving thread's system calls were for the same
few bytes. Passing paramiko this object instead of the socket (a "socket-like
object", which its Transport accepts) reads what is there at once, up to
``READ_AHEAD`` bytes, and hands it out in the pieces paramiko asks for. The
rest of a bulk packet (a large ask) is read straight into one buffer and
handed out whole, so its bytes are not copied once more.

What it holds is bounded by one read, or one packet being gathered; a small
ask never waits for more than the socket already has, and a timeout keeps
what came, so paramiko's timeouts, keepalives and EOF behave as before.

It also refuses what no SSH server sends: paramiko takes a packet's length from
the host and asks the socket for all of it at once, and Python's ``recv``
allocates what is asked before anything arrives. A host announcing a 4 GiB
packet would have the master allocate 4 GiB, then gather what comes in copies
that grow with the square of its size. An ask beyond ``MAX_PACKET_ASK``
(OpenSSH's own packet limit) is an error instead, which ends that connection.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import Any

READ_AHEAD = 4096  # bytes asked of the kernel for a small ask: a call's reply, or dozens; a bulk packet's head
# The most paramiko asks for at once of an SSH server that keeps the protocol: OpenSSH's largest packet
# (PACKET_MAX_SIZE, 256 KiB) with its length field and the largest MAC. sshd's channel data packets are at most
# the 32 KiB paramiko asks for; this is the protocol's bound, not a tuning.
MAX_PACKET_ASK = 256 * 1024 + 4 + 64


class PacketTooLarge(ConnectionAbortedError):
    """The host announced an SSH packet larger than the protocol allows; its connection is dropped."""


def check_ask(size: int) -> None:
    """Refuse a read of more than one SSH packet can hold: the host announced a packet no server sends."""
    if size > MAX_PACKET_ASK:
        said = f"the host announced an SSH packet of {size} bytes, over the protocol's {MAX_PACKET_ASK}"
        raise PacketTooLarge(errno.ECONNABORTED, said)  # (errno, text): how paramiko formats a socket error


class ReadAheadSocket:
    """``sock`` with a read-ahead buffer in front of ``recv``; everything else is the socket's own."""

    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        self._held = b""  # the last read's bytes; those from ``_at`` on are not yet handed out
        self._at = 0
        self._bulk = False  # the last ask was large: the next small one is a bulk packet's head, read exactly
        self.on_close: list[Callable[[], None]] = []
        self._gathering: bytearray | None = None  # a large ask's buffer, while its bytes come
        self._gathered = 0

    def recv(self, size: int) -> bytes | bytearray:
        """Up to ``size`` bytes: what an earlier read left, else one read of the socket (which may time out).

        Bulk data is read as paramiko asks for it: the small ask after a large one (the next packet's head,
        likely bulk too) goes straight to the socket, since reading a bulk packet ahead would only copy it once
        more. A large ask (the rest of a packet) is gathered whole, see :meth:`_gather`."""
        check_ask(size)
        if size >= READ_AHEAD:
            self._bulk = True
            return self._gather(size)
        if self._at < len(self._held):
            piece = self._held[self._at : self._at + size]
            self._at += len(piece)
            return piece
        if self._bulk:
            self._bulk = False
            return self.raw.recv(size)
        data = self.raw.recv(READ_AHEAD)
        if len(data) <= size:
            return data
        self._held, self._at = data, size
        return data[:size]

    def _gather(self, size: int) -> bytearray:
        """The ``size`` bytes of a large ask, read into one buffer and handed out only once all have come.

        paramiko joins the pieces of a packet with ``bytes +=``, copying all it has at each piece: a host that
        sent a 256 KiB packet in 16-byte pieces cost the master 148 ms of CPU, with the GIL held. Gathered here,
        each byte is copied once. A timeout keeps what came; paramiko then asks for the same bytes again."""
        if self._gathering is None:
            self._gathering = bytearray(size)
            held = self._held[self._at : self._at + size]
            self._at += len(held)
            self._gathering[: len(held)] = held
            self._gathered = len(held)
        elif len(self._gathering) != size:
            said = "paramiko asked for another size in the middle of a packet"
            raise ConnectionAbortedError(errno.ECONNABORTED, said)
        into = memoryview(self._gathering)
        while self._gathered < size:
            got = self.raw.recv_into(into[self._gathered :])  # a timeout leaves what came for the next ask
            if not got:  # the host's end: what came before it, then nothing
                partial, self._gathering = self._gathering[: self._gathered], None
                return partial
            self._gathered += got
        whole, self._gathering = self._gathering, None
        return whole

    def send(self, data: Any) -> int:
        return self.raw.send(data)

    # -- for the shared input loop (fanout/_input_loop.py), which reads while paramiko's thread waits --

    def unread(self) -> bytes | memoryview:
        """The bytes read ahead and not yet handed out."""
        return memoryview(self._held)[self._at :]

    def read_more(self) -> int | None:
        """One read of what the socket has, kept after the unread bytes; how many came (0: the host's end; None:
        nothing after all). Never waits; the caller keeps the unread part small.

        A socket with a timeout (paramiko's) is non-blocking underneath, and ``os.read`` on it skips the ``poll``
        Python's ``recv`` makes first; without one, ``MSG_DONTWAIT`` keeps the read from waiting."""
        try:
            if self.raw.gettimeout() is None:
                data = self.raw.recv(READ_AHEAD, socket.MSG_DONTWAIT)
            else:
                data = os.read(self.raw.fileno(), READ_AHEAD)
        except BlockingIOError:
            return None
        self._held = self._held[self._at :] + data if self._at < len(self._held) else data
        self._at = 0
        self._bulk = False
        return len(data)

    def close(self) -> None:
        """Tell whoever asked (the input loop stops watching the socket and lets paramiko's waiting thread go),
        then close the socket: never the other way round, or the loop could watch a closed descriptor."""
        try:
            while self.on_close:
                self.on_close.pop()()
        finally:
            self.raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)  # settimeout, fileno, shutdown, _closed, ...: the socket's own


class AskLimit:
    """A channel to a host through a jump host, as paramiko reads it: asks beyond one packet refused, as above."""

    def __init__(self, channel: Any) -> None:
        self.raw = channel

    def recv(self, size: int) -> bytes:
        check_ask(size)
        return self.raw.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)  # send, settimeout, close, closed, ...: the channel's own
