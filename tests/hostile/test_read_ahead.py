"""The read-ahead socket paramiko reads a host through (``fanout._read_ahead``): a host's bytes reach paramiko
exactly as sent, in the pieces paramiko asks for, whatever the host's pace; what the master holds for it is
bounded by one read; the socket's timeout and end reach paramiko as they would without it.

The peer is the other end of a real socket pair, written to by the test: it floods, trickles, stops and closes.
"""

from __future__ import annotations

import socket
import threading

import pytest

from fanout._read_ahead import READ_AHEAD, ReadAheadSocket

WAIT = 30.0  # seconds a blocking read may take here: far beyond any machine's need; a bug fails, it does not hang


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.settimeout(WAIT)
    yield ReadAheadSocket(ours), theirs
    ours.close()
    theirs.close()


def _read_exactly(sock: ReadAheadSocket, size: int, piece: int) -> bytes:
    """As paramiko's ``read_all``: ``recv`` of what is still missing, at most ``piece`` at a time."""
    out = bytearray()
    while len(out) < size:
        data = sock.recv(min(piece, size - len(out)))
        assert data, "the stream ended early"
        out += data
    return bytes(out)


def test_packets_sent_together_are_read_back_in_the_pieces_asked_for(pair) -> None:
    sock, peer = pair
    packets = [bytes([n]) * length for n, length in enumerate((16, 4, 1000, 16, 60, 16, 35_000, 16, 5, 16, 90))]
    peer.sendall(b"".join(packets))
    for packet in packets:
        assert _read_exactly(sock, len(packet), len(packet)) == packet  # a bulk packet's head, then the rest


def test_small_packets_sent_together_take_one_read(pair) -> None:
    """What the read-ahead is for: a packet's head and body, and the packets after it, from one read."""
    sock, peer = pair
    packets = [bytes([n]) * length for n, length in enumerate((16, 80, 16, 200, 16, 4))]
    peer.sendall(b"".join(packets))
    assert sock.recv(16) == packets[0]
    assert sock._held[sock._at :] == b"".join(packets[1:])  # the one read took them all: no more reads below
    sock.raw.close()
    assert [sock.recv(len(packet)) for packet in packets[1:]] == packets[1:]


def test_a_flood_is_held_one_read_at_a_time(pair) -> None:
    """A host that sends megabytes at once costs the master one read's buffer, not the flood's size."""
    sock, peer = pair
    flood = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    sender = threading.Thread(target=peer.sendall, args=(flood,), daemon=True)
    sender.start()
    got = bytearray()
    while len(got) < len(flood):
        got += sock.recv(16)
        assert len(sock._held) <= READ_AHEAD  # what it keeps for later is never more than one read
        got += sock.recv(40_000)
    sender.join(WAIT)
    assert bytes(got) == flood


def test_a_trickle_is_handed_on_as_it_comes(pair) -> None:
    """A host that sends a byte at a time: each read returns what is there, never waiting to fill the ask."""
    sock, peer = pair
    for byte in b"slow host":
        peer.sendall(bytes([byte]))
        assert sock.recv(1024) == bytes([byte])


def test_paramikos_timeout_and_the_hosts_end_come_through(pair) -> None:
    sock, peer = pair
    sock.settimeout(0.01)  # paramiko's transport sets its own: a silent host is a timeout, then its keepalive
    with pytest.raises(TimeoutError):
        sock.recv(16)
    peer.sendall(b"last words")
    peer.close()
    sock.settimeout(WAIT)
    assert _read_exactly(sock, 10, 3) == b"last words"
    assert sock.recv(16) == b""  # EOF, as paramiko expects it, once the held bytes are handed out


def test_everything_else_is_the_sockets_own(pair) -> None:
    sock, peer = pair
    assert sock.fileno() == sock.raw.fileno()
    assert sock.gettimeout() == WAIT
    assert sock.send(b"ping") == 4
    assert peer.recv(16) == b"ping"
    sock.close()
    assert sock.raw._closed  # paramiko's Transport looks at this attribute when it stops
