"""fanout's uses of paramiko beyond its public API: checked at import, and each with a public fallback that works.

A paramiko that renamed a private part is simulated in a subprocess: the part is taken off its class, where
fanout's import-time check looks, and served to paramiko's own instances through ``__getattr__``, as a
renamed paramiko would still call its own code. The fallbacks then run over a real SSH connection: paramiko's
own server over a socketpair, and sshd on the test fleet.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

import paramiko
import paramiko.agent
import pytest

from fanout import _paramiko_compat
from tests.fleet.hosts import FleetHost

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run before fanout is imported: every private part with a fallback disappears from its class.
HIDE = textwrap.dedent(
    """
    import paramiko, paramiko.auth_handler

    def hide(cls, *names):
        hidden = {name: cls.__dict__[name] for name in names}
        for name in names:
            delattr(cls, name)

        def __getattr__(self, attr):
            if attr in hidden:
                return hidden[attr].__get__(self, type(self))
            raise AttributeError(attr)

        cls.__getattr__ = __getattr__

    def rewrap_init(cls):  # the attributes __init__ sets are then no longer seen in its code
        original = cls.__init__
        cls.__init__ = lambda self, *args, **kwargs: original(self, *args, **kwargs)

    hide(paramiko.Transport, "_send_user_message", "_parse_request_success", "_parse_request_failure")
    hide(paramiko.Channel, "_check_add_window")
    hide(paramiko.auth_handler.AuthHandler, "_request_auth", "_parse_service_accept")
    rewrap_init(paramiko.Channel)
    rewrap_init(paramiko.Transport)
    """
)

# Two sessions over paramiko's own server on a socketpair, through every path _paramiko_compat offers.
OVER_A_SOCKETPAIR = textwrap.dedent(
    """
    import logging, socket, sys, threading
    import paramiko
    from fanout import _paramiko_compat as compat
    from fanout._input_loop import share_input
    from fanout._pipelined_auth import PipelinedTransport
    from fanout._read_ahead import ReadAheadSocket

    logging.basicConfig(stream=sys.stderr, format="%(message)s")
    BIG = 5 * 1024 * 1024  # past paramiko's 2 MiB receive window: the window must be returned

    class Server(paramiko.ServerInterface):
        def __init__(self, client_key):
            self.client_key, self.commands, self.auths = client_key, [], []

        def get_allowed_auths(self, username):
            return "publickey"

        def check_auth_publickey(self, username, key):
            self.auths.append(key.get_name())
            return paramiko.AUTH_SUCCESSFUL if key == self.client_key else paramiko.AUTH_FAILED

        def check_channel_request(self, kind, chanid):
            return paramiko.OPEN_SUCCEEDED

        def check_channel_exec_request(self, channel, command):
            self.commands.append(command.decode())
            return True

    client_key, host_key = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    here, there = socket.socketpair()
    server = Server(client_key)
    served = paramiko.Transport(there)
    served.add_server_key(host_key)
    served.start_server(event=threading.Event(), server=server)  # returns at once: the client runs below
    client = PipelinedTransport(ReadAheadSocket(here))
    client.start_client(timeout=30)
    assert client.auth_publickey("me", client_key) == [], "authentication failed"
    assert server.auths == ["ecdsa-sha2-nistp256"], server.auths
    shared = share_input(client)  # small packets then come through the shared input loop, bulk through paramiko's

    for session in range(2):
        channel = client.open_session(timeout=30)
        received, ended = [], threading.Event()
        compat.start_channel_input(channel, received.append, ended.set)
        compat.exec_command(channel, f"session {session}")
        # Its window open and no key exchange under way: a small write goes out at once (never said without paramiko)
        assert compat.sends_at_once(channel, 100) is not bool(compat.LACKING["writing a fleet's call at once"])
        peer = served.accept(30)
        for small in range(200):
            peer.sendall(b"s" * small)
        peer.sendall(b"x" * BIG)
        peer.send_exit_status(3)
        peer.close()
        assert ended.wait(30), "the channel's end was never reported"
        assert b"".join(received) == b"".join(b"s" * small for small in range(200)) + b"x" * BIG
        assert compat.wait_exit_status(channel, 30) == 3
    assert server.commands == ["session 0", "session 1"], server.commands
    lends = not compat.LACKING["shared packet input"] and client.remote_cipher.endswith("-gcm@openssh.com")
    assert shared.packets >= (200 if lends else 0), shared.packets  # paramiko 3.2 has no AES-GCM: it never lends

    compat.send_keepalive(client)
    for thread in threading.enumerate():
        if thread.name == "fanout-keepalive-ask":
            thread.join()
    if not compat.LACKING["counted keepalive replies"]:
        client.global_request("flush@fanout.test", wait=True)  # answered in order: the keepalive's came first
    assert client.global_replies >= 1, client.global_replies
    client.close()
    served.close()
    print("ok", sorted(path for path, lacking in compat.LACKING.items() if lacking))
    """
)


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_paramiko_installed_has_every_private_part_fanout_uses() -> None:
    # CI runs this on the lowest and the highest paramiko pyproject.toml allows: both take every fast path.
    assert {path: lacking for path, lacking in _paramiko_compat.LACKING.items() if lacking} == {}


def test_a_paramiko_without_the_part_that_has_no_fallback_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.delattr(paramiko.agent.AgentSSH, "_connect")
    with pytest.raises(ImportError, match=r"AgentSSH\._connect \(an agent at IdentityAgent's path\)"):
        importlib.reload(_paramiko_compat)
    monkeypatch.undo()
    importlib.reload(_paramiko_compat)  # and back as it was


@pytest.mark.fleet
def test_every_fast_path_works_over_paramikos_own_server() -> None:
    done = _run(OVER_A_SOCKETPAIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "ok []"
    assert "falls back" not in done.stderr


@pytest.mark.fleet
def test_every_fallback_works_over_paramikos_own_server_and_says_so_once() -> None:
    done = _run(HIDE + OVER_A_SOCKETPAIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "ok " + str(sorted(_paramiko_compat.LACKING))
    for path, cost in _paramiko_compat.FALLBACK_COST.items():
        assert done.stderr.count(f"falls back to {cost}") == 1, (path, done.stderr)


@pytest.mark.fleet
def test_the_fallbacks_reach_a_fleet_host(fleet) -> None:
    host: FleetHost = fleet.hosts[0]
    options = {
        key: os.fspath(value) if isinstance(value, os.PathLike) else value
        for key, value in host.connect_options().items()
    }
    script = HIDE + textwrap.dedent(
        f"""
        import logging, os, sys
        import fanout
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
        context = fanout.connect({host.address!r}, **{options!r})
        assert context.call(os.getpid) == context.pid
        assert len(context.call(os.urandom, 5 * 1024 * 1024)) == 5 * 1024 * 1024  # windows returned by recv
        context.close()
        print("ok")
        """
    )
    done = _run(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "falls back to Channel.exec_command" in done.stderr
    assert "falls back to Channel.recv on a thread" in done.stderr
