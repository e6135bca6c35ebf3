"""The read-ahead socket paramiko reads a host through (``fanout._read_ahead``): a host's bytes reach paramiko
exactly as sent, in the pieces paramiko asks for, whatever the host's pace; what the master holds for it is
bounded by one read; the socket's timeout and end reach paramiko as they would without it.

The peer is the other end of a real socket pair, written to by the test: it floods, trickles, stops and closes.
"""

from __future__ import annotations

import os
import socket
import struct
import threading

import paramiko
import pytest

from fanout._read_ahead import MAX_PACKET_ASK, READ_AHEAD, AskLimit, PacketTooLarge, ReadAheadSocket

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
        got += sock.recv(min(40_000, len(flood) - len(got)))  # as paramiko asks: the rest of a packet
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


def test_an_ask_beyond_one_ssh_packet_is_refused_before_anything_is_allocated(pair) -> None:
    """paramiko asks for a whole packet at once, of the length the host announced: 4 GiB is refused, not allocated."""
    sock, _ = pair
    with pytest.raises(PacketTooLarge, match="SSH packet of 4294967295 bytes"):
        sock.recv(2**32 - 1)
    assert len(sock._held) == 0
    channel_side, peer = socket.socketpair()
    try:
        limited = AskLimit(channel_side)  # what a host behind a jump host is read through
        with pytest.raises(PacketTooLarge):
            limited.recv(MAX_PACKET_ASK + 1)
        peer.sendall(b"x" * 10)
        assert limited.recv(MAX_PACKET_ASK) == b"x" * 10  # the largest legitimate ask passes
    finally:
        channel_side.close()
        peer.close()


def test_a_host_announcing_a_huge_packet_loses_its_connection_at_once() -> None:
    """A real paramiko server, after a real handshake, writes a packet head announcing 2 GiB (its length is in
    clear with an EtM MAC, as under AES-GCM): the master's transport ends with the reason, holding nothing of it."""
    from fanout._pipelined_auth import PipelinedTransport

    host_key = paramiko.ECDSAKey.generate()
    ours, theirs = socket.socketpair()
    served = paramiko.Transport(theirs)
    served.add_server_key(host_key)
    served.start_server(event=threading.Event(), server=paramiko.ServerInterface())
    client = PipelinedTransport(ReadAheadSocket(ours))
    # The MAC after encryption (EtM) leaves the length in clear, as AES-GCM does; every paramiko fanout supports
    # has it (3.2 has no AES-GCM).
    client.get_security_options().ciphers = ("aes128-ctr",)
    client.get_security_options().digests = ("hmac-sha2-256-etm@openssh.com",)
    try:
        client.start_client(timeout=WAIT)
        assert client.remote_mac == "hmac-sha2-256-etm@openssh.com"
        theirs.sendall(struct.pack(">I", 2**31) + bytes(12))  # a packet's first block; its body never comes
        client.join(WAIT)  # paramiko's receiving thread ends: it does not wait for 2 GiB
        assert not client.is_alive()
        assert isinstance(client.saved_exception, PacketTooLarge)
    finally:
        client.close()
        served.close()


@pytest.mark.parametrize("timeout", [WAIT, None])
def test_the_input_loops_read_never_waits_and_tells_nothing_from_the_end(timeout) -> None:
    """The shared input loop reads when woken; a wake for nothing must not hold it (it serves every host)."""
    ours, peer = socket.socketpair()
    ours.settimeout(timeout)  # paramiko's sockets have a timeout; a blocking one must not block the loop either
    sock = ReadAheadSocket(ours)
    try:
        assert sock.read_more() is None  # nothing there: no wait
        peer.sendall(b"head")
        assert sock.read_more() == 4
        peer.sendall(b"+tail")
        assert sock.read_more() == 5 and bytes(sock.unread()) == b"head+tail"
        assert sock.recv(4) == b"head" and bytes(sock.unread()) == b"+tail"
        peer.close()
        assert sock.read_more() == 0  # the host's end
    finally:
        ours.close()


def test_a_large_packet_sent_in_tiny_pieces_is_gathered_with_each_byte_copied_once(pair) -> None:
    """paramiko joins a packet's pieces with ``bytes +=``: 16-byte pieces of 256 KiB cost it 148 ms with the GIL
    held. The large ask is answered once, whole, and a timeout on the way keeps what came."""
    sock, peer = pair
    packet = os.urandom(MAX_PACKET_ASK)
    sock.settimeout(0.01)
    peer.sendall(packet[:1000])
    with pytest.raises(TimeoutError):
        sock.recv(len(packet))  # what came is kept; paramiko asks again for the same bytes
    sock.settimeout(WAIT)
    sender = threading.Thread(
        target=lambda: [peer.sendall(packet[at : at + 16]) for at in range(1000, len(packet), 16)], daemon=True
    )
    sender.start()
    whole = sock.recv(len(packet))  # one answer, however many pieces
    sender.join(WAIT)
    assert whole == packet
    peer.sendall(b"next")
    assert sock.recv(16) == b"next"  # the packet after it, as usual
