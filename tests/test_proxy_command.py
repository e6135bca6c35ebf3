"""ssh_config's ProxyCommand as fanout runs it (``fanout._proxy_command``): through the shell as ssh runs it, a
real socket to paramiko (the proxy's end is the connection's end), and reaped when closed. The proxies here are
local commands; a connection through one to a real sshd is in tests/test_fleet_ssh.py."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

import fanout
from fanout import _proxy_command
from fanout._proxy_command import ProxyCommandSocket
from fanout.errors import Unreachable

pytestmark = pytest.mark.fleet  # starts processes (the proxies): out of the fast subset
WAIT = 30.0  # seconds a read may block here: far beyond any machine's need; a bug fails, it does not hang


def _proxy(command: str) -> ProxyCommandSocket:
    sock = ProxyCommandSocket(command, "web1")
    sock.settimeout(WAIT)
    return sock


def _read_to_end(sock: ProxyCommandSocket) -> bytes:
    out = bytearray()
    while data := sock.recv(65536):
        out += data
    return bytes(out)


def test_bytes_go_both_ways_through_the_proxy() -> None:
    sock = _proxy("cat")
    try:
        assert sock.send(b"SSH-2.0-hello\r\n") == 15
        assert sock.recv(64) == b"SSH-2.0-hello\r\n"
    finally:
        sock.close()


def test_the_command_runs_in_the_users_shell_as_ssh_runs_it(monkeypatch) -> None:
    monkeypatch.setenv("PROXY_WORD", "expanded")
    sock = _proxy("printf '%s' \"$PROXY_WORD\"")
    try:
        assert _read_to_end(sock) == b"expanded"
    finally:
        sock.close()


def test_a_proxy_that_exits_is_the_connections_end_at_once() -> None:
    """paramiko's own ProxyCommand read its pipe in a loop that never saw EOF: a dead proxy went unnoticed."""
    sock = _proxy("printf 'SSH-2.0-x\\r\\n'")
    try:
        assert _read_to_end(sock) == b"SSH-2.0-x\r\n"  # then b"": EOF, not a timeout
    finally:
        sock.close()
    assert sock.process.returncode == 0


def test_closing_ends_and_reaps_the_proxy() -> None:
    sock = _proxy("sleep 600")
    pid = sock.process.pid
    sock.close()
    assert sock.process.returncode == -signal.SIGTERM
    assert not Path(f"/proc/{pid}").exists()  # reaped: not left a zombie
    sock.close()  # a second close (paramiko's thread and the user's may both close) does nothing more


def test_a_proxy_that_ignores_sigterm_is_killed(monkeypatch) -> None:
    monkeypatch.setattr(_proxy_command, "PROXY_EXIT_WAIT", 0.05)
    sock = _proxy("""sh -c 'trap "" TERM; echo ready; while :; do sleep 1; done'""")
    assert sock.recv(64) == b"ready\n"  # the trap is set
    sock.close()
    assert sock.process.returncode == -signal.SIGKILL


def test_what_the_proxy_says_on_stderr_is_logged_and_kept(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="fanout.proxy")
    sock = _proxy("printf 'channel 0: open failed\\nno route to host\\033[2J\\n' >&2")
    try:
        assert _read_to_end(sock) == b""
    finally:
        sock.close()
    assert sock.stderr_tail(WAIT) == "channel 0: open failed / no route to host?[2J"
    assert [r.name for r in caplog.records] == ["fanout.proxy.web1", "fanout.proxy.web1"]


def _ssh_config(tmp_path: Path, command: str) -> Path:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host web1\n    HostName 192.0.2.1\n    ProxyCommand {command}\n")
    return config


def test_a_proxy_that_fails_is_quoted_in_the_error(tmp_path) -> None:
    config = _ssh_config(tmp_path, "sh -c 'echo \"ssh: connect to host %h port %p: No route to host\" >&2; exit 255'")
    with pytest.raises(Unreachable) as failure:
        fanout.connect("web1", ssh_config=config, host_key_policy="off", connect_timeout=WAIT)
    assert str(failure.value).startswith("web1 (192.0.2.1:22): ")
    said = "the ProxyCommand said: ssh: connect to host 192.0.2.1 port 22: No route to host"
    assert str(failure.value).endswith(said)


def test_a_proxy_that_cannot_start_is_unreachable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SHELL", str(tmp_path / "no-such-shell"))
    with pytest.raises(Unreachable, match=r"^web1 \(192\.0\.2\.1:22\): ProxyCommand 'nc 192\.0\.2\.1 22' failed: "):
        fanout.connect("web1", ssh_config=_ssh_config(tmp_path, "nc %h %p"), host_key_policy="off")


def test_no_proxy_is_left_running_after_a_failed_handshake(tmp_path) -> None:
    """A proxy that answers with garbage: the handshake fails, and the proxy is ended and reaped."""
    pid_file = tmp_path / "pid"
    config = _ssh_config(tmp_path, f"sh -c 'echo $$ > {pid_file}; echo not-ssh; exec sleep 600'")
    with pytest.raises(Unreachable):
        fanout.connect("web1", ssh_config=config, host_key_policy="off", connect_timeout=WAIT)
    assert not Path(f"/proc/{int(pid_file.read_text())}").exists()
    assert os.path.exists(pid_file)
