"""A TCP socket that reads ahead, for paramiko: one ``recv`` serves many of paramiko's small reads.

paramiko reads each SSH packet in two or more ``recv`` calls (its first block,
then the rest), and on a socket with a timeout each is a ``poll`` and a
``recv``, each releasing and taking back the GIL. A warm call's reply is one
small packet, so most of the receiving thread's system calls were for the same
few bytes. Passing paramiko this object instead of the socket (a "socket-like
object", which its Transport accepts) reads what is there at once, up to
``READ_AHEAD`` bytes, and hands it out in the pieces paramiko asks for. Bulk
packets are read as paramiko asks, so their bytes are not copied once more.

What it holds is bounded by one read; it never waits for more than the socket
already has, so paramiko's timeouts, keepalives and EOF behave as before.
"""

from __future__ import annotations

import socket
from typing import Any

READ_AHEAD = 4096  # bytes asked of the kernel for a small ask: a call's reply, or dozens; a bulk packet's head


class ReadAheadSocket:
    """``sock`` with a read-ahead buffer in front of ``recv``; everything else is the socket's own."""

    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        self._held = b""  # the last read's bytes; those from ``_at`` on are not yet handed out
        self._at = 0
        self._bulk = False  # the last ask was large: the next small one is a bulk packet's head, read exactly

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes: what an earlier read left, else one read of the socket (which may time out).

        Bulk data is read as paramiko asks for it: a large ask (the rest of a bulk packet), and the small one
        after it (the next packet's head, likely bulk too), go straight to the socket, since reading a bulk
        packet ahead would only copy it once more."""
        if self._at < len(self._held):
            piece = self._held[self._at : self._at + size]
            self._at += len(piece)
            return piece
        if size >= READ_AHEAD:
            self._bulk = True
            return self.raw.recv(size)
        if self._bulk:
            self._bulk = False
            return self.raw.recv(size)
        data = self.raw.recv(READ_AHEAD)
        if len(data) <= size:
            return data
        self._held, self._at = data, size
        return data[:size]

    def send(self, data: Any) -> int:
        return self.raw.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)  # settimeout, close, fileno, _closed, ...: the socket's own
