"""The shared input loop (``fanout/_input_loop.py``) reads every connection's small packets on one thread: what one
host sends there must not hold up another, and whatever a host does (floods, bad packets, a huge packet, a key
exchange, its end) must end as it would with paramiko's own thread, on that connection alone.

Hosts here are paramiko's own SSH server over a socket pair, after a real AES-GCM handshake; the hostile bytes are
written under it, on its socket. Every wait is on an event, with a bound only a hung loop reaches.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import paramiko
import paramiko.common
import pytest

from fanout import _paramiko_compat as compat
from fanout._input_loop import SharedInput, share_input
from fanout._pipelined_auth import PipelinedTransport
from fanout._read_ahead import ReadAheadSocket
from tests.fleet.waiting import wait_until

WAIT = 30.0  # seconds: far beyond any machine's need; a hung loop fails, it does not hang the suite


class _Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "none"

    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        return True


GCM = "aes128-gcm@openssh.com"
# paramiko 3.2, the lowest fanout supports, has no AES-GCM: its connections never lend their input (CI runs these
# tests on the highest paramiko, and the one below on both).
needs_gcm = pytest.mark.skipif(
    GCM not in paramiko.Transport._preferred_ciphers, reason="this paramiko has no AES-GCM: the loop is not used"
)


class Connection:
    """One host: paramiko's server on one end of a socket pair, fanout's client with a shared input on the other."""

    def __init__(self, cipher: str = GCM) -> None:
        ours, self.raw = socket.socketpair()
        self.served = paramiko.Transport(self.raw)
        self.served.add_server_key(paramiko.ECDSAKey.generate())
        self.served.start_server(event=threading.Event(), server=_Server())
        self.client = PipelinedTransport(ReadAheadSocket(ours))
        self.client.get_security_options().ciphers = (cipher,)
        self.client.start_client(timeout=WAIT)
        self.client.auth_none("me")
        assert self.client.remote_cipher == cipher
        self.shared: SharedInput = share_input(self.client)
        self.channel = channel = self.client.open_session(timeout=WAIT)  # paramiko holds its channels weakly
        self.received = bytearray()
        self.arrived = threading.Condition()
        self.ended = threading.Event()
        compat.start_channel_input(channel, self._on_data, self.ended.set)
        compat.exec_command(channel, "serve")
        self.peer = self.served.accept(WAIT)

    def _on_data(self, data: bytes) -> None:
        with self.arrived:
            self.received += data
            self.arrived.notify_all()

    def wait_for(self, size: int) -> bytes:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= size, WAIT), (len(self.received), size)
            return bytes(self.received)

    def idle(self) -> Connection:
        """Wait until paramiko's thread, with nothing to read, has lent the input to the loop."""
        wait_until(lambda: self.shared.lent, what="paramiko's thread to lend the input once idle")
        return self

    def close(self) -> None:
        self.client.close()
        self.served.close()


@pytest.fixture
def connections():
    made: list[Connection] = []
    yield lambda: made.append(Connection()) or made[-1]
    for connection in made:
        connection.close()


@needs_gcm
def test_small_packets_come_through_the_loop_and_bulk_through_paramikos_thread(connections) -> None:
    host = connections().idle()
    small = [os.urandom(n) for n in range(1, 300)]
    for piece in small:
        host.peer.sendall(piece)
    bulk = os.urandom(3 * 1024 * 1024)
    host.peer.sendall(bulk)
    assert host.wait_for(sum(map(len, small)) + len(bulk)) == b"".join(small) + bulk
    assert host.shared.packets >= len(small)  # the small ones went through the loop


@needs_gcm
def test_a_host_that_floods_does_not_hold_up_another(connections) -> None:
    flooding, quiet = connections().idle(), connections().idle()
    stop = threading.Event()

    def flood() -> None:
        try:
            while not stop.is_set():
                flooding.peer.sendall(b"f" * 200)  # small packets, endlessly: all of them the loop's
        except (OSError, EOFError, paramiko.SSHException):
            pass  # closed at the end of the test

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        flooding.wait_for(1_000_000)  # the flood is well under way, through the loop
        quiet.peer.sendall(b"reply")
        assert quiet.wait_for(5) == b"reply"  # served while the flood goes on
        assert flooder.is_alive()
    finally:
        stop.set()
        flooder.join(WAIT)


@needs_gcm
def test_a_packet_that_fails_its_tag_ends_that_connection_alone(connections) -> None:
    bad, good = connections(), connections()
    bad.peer.sendall(b"first")
    bad.wait_for(5)
    bad.idle()
    good.idle()
    bad.raw.sendall(struct.pack(">I", 32) + os.urandom(32 + 16))  # whole, small, and forged: its tag fails
    bad.client.join(WAIT)
    assert not bad.client.is_alive() and bad.ended.wait(WAIT)
    good.peer.sendall(b"still here")
    assert good.wait_for(10) == b"still here"
    assert good.shared.packets >= 1


@needs_gcm
def test_a_huge_packet_announced_to_the_loop_is_refused_by_paramikos_thread(connections) -> None:
    host = connections()
    host.peer.sendall(b"first")
    host.wait_for(5)
    host.idle().raw.sendall(struct.pack(">I", 2**31) + bytes(12))
    host.client.join(WAIT)
    assert type(host.client.saved_exception).__name__ == "PacketTooLarge"


@needs_gcm
def test_a_large_frame_under_way_keeps_the_input_on_paramikos_thread(connections) -> None:
    host = connections()
    host.peer.sendall(b"a")
    host.wait_for(1)
    host.idle()
    before = host.shared.packets
    host.shared.busy = lambda: True  # as a Context says while a frame of over 64 KiB comes in
    for _ in range(50):
        host.peer.sendall(b"b" * 100)
    assert host.wait_for(1 + 5000) == b"a" + b"b" * 5000
    assert host.shared.packets - before <= 1  # the loop gave the input back at the first packet it saw


@needs_gcm
def test_a_key_exchange_the_host_starts_is_done_by_paramikos_thread_and_the_loop_goes_on(connections) -> None:
    host = connections()
    host.peer.sendall(b"before")
    host.wait_for(6)
    host.served.renegotiate_keys()  # waits until the exchange is done: the client took part on its own thread
    host.peer.sendall(b"after")
    assert host.wait_for(11) == b"beforeafter"
    host.idle()  # again, after the exchange
    before = host.shared.packets
    host.peer.sendall(b"again")
    host.wait_for(16)
    assert host.shared.packets > before  # the input went back to the loop


@needs_gcm
def test_the_hosts_end_and_a_close_end_paramikos_thread(connections) -> None:
    gone, closed = connections(), connections()
    gone.peer.sendall(b"x")
    closed.peer.sendall(b"y")
    gone.wait_for(1)
    closed.wait_for(1)
    gone.idle()
    closed.idle()
    gone.raw.close()  # the host's end, while the loop holds the input
    gone.client.join(WAIT)
    assert not gone.client.is_alive()
    closed.client.close()  # the master's close, likewise
    closed.client.join(WAIT)
    assert not closed.client.is_alive()


@needs_gcm
def test_a_key_exchange_the_masters_own_sending_asks_for_is_started_though_the_host_is_silent(connections) -> None:
    """paramiko asks for new keys after so many bytes sent; its parked thread looks now and then, and starts it."""
    host = connections().idle()
    host.client.packetizer.REKEY_BYTES = 4096  # instead of 512 MiB
    host.channel.sendall(b"z" * 20_000)
    assert host.client.packetizer.need_rekey()
    wait_until(lambda: not host.client.packetizer.need_rekey(), what="the key exchange the sending asked for")
    host.peer.sendall(b"after")
    assert host.wait_for(5) == b"after"


@needs_gcm
def test_extended_data_other_than_stderr_is_left_to_paramikos_thread(connections, caplog) -> None:
    """paramiko logs it as an error: a logging handler must never run on the loop, which serves every host."""
    host = connections().idle()
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_CHANNEL_EXTENDED_DATA)
    message.add_int(host.peer.remote_chanid)
    message.add_int(2)  # not stderr (1)
    message.add_string(b"odd")
    host.served._send_user_message(message)  # the hostile server's own message
    host.peer.sendall(b"then data")
    assert host.wait_for(9) == b"then data"
    logged = [record for record in caplog.records if "extended_data type" in record.getMessage()]
    assert logged and all(record.threadName != "fanout-input" for record in logged)


@needs_gcm
def test_ignore_messages_are_dropped_by_the_loop_without_a_hand_over(connections) -> None:
    host = connections().idle()
    before = host.shared.packets
    for _ in range(20):
        host.served.send_ignore()
    host.peer.sendall(b"data")
    assert host.wait_for(4) == b"data"
    assert host.shared.packets - before == 21 and host.shared.lent


@needs_gcm
def test_a_socket_is_out_of_the_loops_epoll_before_it_is_closed(connections) -> None:
    """Closed first, a descriptor still held by a forked process stays in epoll, and the loop spins on it."""
    host = connections().idle()
    loop = host.shared._loop
    assert any(key.data is host.shared for key in loop._selector.get_map().values())
    seen_open = []
    host.shared.sock.on_close.insert(0, lambda: seen_open.append(host.shared.sock.raw.fileno() >= 0))
    host.client.close()
    host.client.join(WAIT)
    assert not any(key.data is host.shared for key in loop._selector.get_map().values())
    assert seen_open == [True]  # the hooks, the loop's forgetting among them, ran while the socket was open


@needs_gcm
def test_a_connection_on_a_descriptor_over_1024_uses_the_loop(connections) -> None:
    """select.select cannot watch such a descriptor: the check for pending bytes must not use it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    fillers = []
    try:
        while True:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
            if fillers[-1] >= 1100:
                break
        host = connections()
        assert host.client.sock.fileno() > 1024
        host.idle()
        host.peer.sendall(b"high")
        assert host.wait_for(4) == b"high"
        assert host.shared.packets >= 1
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


FORKS = """
import os
from tests.hostile.test_input_loop import Connection

warm = Connection()  # the parent's loop is running
warm.close()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        child = Connection().idle()
        child.peer.sendall(b"child")
        code = 0 if child.wait_for(5) == b"child" and child.shared.packets >= 1 else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


@needs_gcm
@pytest.mark.fleet  # starts a process (a fork is safe only in one of its own): out of the fast subset
def test_a_forked_child_has_a_loop_of_its_own() -> None:
    """Only the forking thread survives a fork: a child that connects must not lend its input to a loop thread
    that exists only in its parent."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", FORKS], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["child", "0"], done.stderr


def test_a_cipher_without_its_length_in_clear_keeps_paramikos_thread_reading() -> None:
    """Under AES-CTR with its MAC after, a packet's length is encrypted: the loop could not tell a whole packet."""
    host = Connection(cipher="aes128-ctr")
    try:
        host.peer.sendall(b"small")
        host.peer.sendall(os.urandom(100_000))
        assert len(host.wait_for(100_005)) == 100_005
        assert host.shared.packets == 0 and not host.shared.lent
    finally:
        host.close()
