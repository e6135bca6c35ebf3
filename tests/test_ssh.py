"""fanout.connect against real sshd: host keys, ~/.ssh/config, failures told apart, no orphans."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import fanout
from tests.fleet.hosts import FleetHost
from tests.fleet.plain_ssh import run, ssh_client
from tests.fleet.suites import fleet_suites
from tests.fleet.waiting import WAIT_TIMEOUT, wait_until


def connect(host: FleetHost, **options) -> fanout.Context:
    return fanout.connect(host.address, **{**host.connect_options(), **options})


def process_alive(host: FleetHost, pid: int) -> bool:
    """Ask the host over a separate, plain SSH session whether ``pid`` still exists."""
    client = ssh_client(host)
    try:
        _status, out, _ = run(client, f"test -d /proc/{pid} && echo alive || echo gone")
    finally:
        client.close()
    return out.strip() == "alive"


def wrong_key_line(host: FleetHost) -> str:
    impostor = ed25519.Ed25519PrivateKey.generate().public_key()
    key = impostor.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{host.known_hosts_name} {key}\n"


@pytest.fixture
def host(fleet, fleet_host_name) -> FleetHost:
    return next(h for h in fleet.hosts if h.name == fleet_host_name)


def pytest_generate_tests(metafunc):
    if "host" in metafunc.fixturenames:
        metafunc.parametrize("fleet_host_name", [f"{suite}-2" for suite in fleet_suites()])


def test_close_leaves_no_remote_process(host) -> None:
    context = connect(host)
    pid = context.pid
    assert process_alive(host, pid)
    context.close()
    wait_until(lambda: not process_alive(host, pid), what=f"the remote child {pid} to exit after close()")


def test_killing_the_remote_python_mid_call_raises_connection_lost(host) -> None:
    context = connect(host)
    try:
        pending = [context.call_async(time.sleep, 60) for _ in range(2)]
        client = ssh_client(host)
        try:
            assert run(client, f"kill -9 {context.pid}")[0] == 0
        finally:
            client.close()
        for future in pending:
            with pytest.raises(fanout.ConnectionLost) as info:
                future.result(timeout=2)
            assert "killed by signal 9, SIGKILL" in str(info.value)
        with pytest.raises(fanout.ConnectionLost):
            context.call(abs, 1)
    finally:
        context.close()


def test_strict_checking_refuses_a_changed_host_key(host, tmp_path) -> None:
    changed = tmp_path / "known_hosts"
    changed.write_text(wrong_key_line(host))
    with pytest.raises(fanout.HostKeyError, match="does not match known_hosts"):
        connect(host, known_hosts=changed)


def test_strict_checking_refuses_an_unknown_host(host, tmp_path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(fanout.HostKeyError, match="not in known_hosts"):
        connect(host, known_hosts=empty)


def test_accept_new_records_the_key_and_still_refuses_a_changed_one(host, tmp_path) -> None:
    recorded = tmp_path / "known_hosts"
    with connect(host, known_hosts=recorded, host_key_policy="accept-new") as context:
        assert context.call(abs, -3) == 3
    assert host.host_key in recorded.read_text()
    recorded.write_text(wrong_key_line(host))
    with pytest.raises(fanout.HostKeyError):
        connect(host, known_hosts=recorded, host_key_policy="accept-new")


def test_ignore_policy_connects_to_an_unknown_host(host, tmp_path) -> None:
    with connect(host, known_hosts=None, host_key_policy="ignore") as context:
        assert context.call(abs, -5) == 5


def test_wrong_key_is_authentication_failed(host, tmp_path) -> None:
    other = tmp_path / "other_key"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    with pytest.raises(fanout.AuthenticationFailed, match="tester"):
        connect(host, identity_file=other)


def test_ssh_config_alias_supplies_hostname_port_user_and_key(host, tmp_path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        textwrap.dedent(
            f"""
            Host web-alias
                HostName {host.address}
                Port {host.port}
                User {host.user}
                IdentityFile {host.key_path}
            """
        )
    )
    with fanout.connect("web-alias", known_hosts=host.known_hosts, ssh_config=config) as context:
        assert context.name == "web-alias"
        assert context.call(os.getuid) == 1000  # logged in as the config's user, "tester"


def test_ssh_config_proxy_command(host, tmp_path) -> None:
    relay = tmp_path / "relay.py"
    relay.write_text(
        textwrap.dedent(
            """
            import socket, sys, threading
            sock = socket.create_connection((sys.argv[1], int(sys.argv[2])))
            def up():
                while data := sys.stdin.buffer.read1(65536):
                    sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            threading.Thread(target=up, daemon=True).start()
            while data := sock.recv(65536):
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            """
        )
    )
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host via-proxy\n    HostName {host.address}\n    Port {host.port}\n"
        f"    ProxyCommand {sys.executable} {relay} %h %p\n"
    )
    with fanout.connect(
        "via-proxy",
        user=host.user,
        identity_file=host.key_path,
        known_hosts=host.known_hosts,
        ssh_config=config,
    ) as context:
        assert context.call(abs, -7) == 7


def test_missing_python_is_reported_with_the_hosts_own_words(host) -> None:
    context = connect(host, python="/usr/bin/python-does-not-exist")
    try:
        with pytest.raises(fanout.ConnectionLost) as info:
            context.call(abs, 1)
        assert "python-does-not-exist" in str(info.value)
        assert "not found" in str(info.value) or "No such file" in str(info.value)
    finally:
        context.close()


def test_bad_arguments_are_refused_before_connecting(host) -> None:
    with pytest.raises(ValueError, match="host_key_policy"):
        connect(host, host_key_policy="yolo")
    with pytest.raises(ValueError, match="out of range"):
        connect(host, port=70000)
    with pytest.raises(ValueError, match="host must be"):
        fanout.connect("")
    with pytest.raises(FileNotFoundError, match="known_hosts"):
        connect(host, known_hosts="/nonexistent/known_hosts")


def test_refused_port_is_unreachable(tmp_path) -> None:
    from tests.fleet.hosts import free_ports

    (port,) = free_ports(1)
    with pytest.raises(fanout.Unreachable, match="refused"):
        fanout.connect("127.0.0.1", port=port, known_hosts=None, host_key_policy="ignore", ssh_config=False)


def test_unresolvable_name_is_unreachable() -> None:
    with pytest.raises(fanout.Unreachable, match="cannot resolve"):
        fanout.connect("no-such-host.invalid", ssh_config=False, host_key_policy="ignore", connect_timeout=5)


def test_local_child_killed_mid_call_raises_connection_lost() -> None:
    with fanout.local() as context:
        future = context.call_async(time.sleep, 60)
        os.kill(context.pid, signal.SIGKILL)
        with pytest.raises(fanout.ConnectionLost, match="killed by signal 9"):
            future.result(timeout=2)


@pytest.mark.fleet  # starts processes: out of the fast subset
def test_local_child_exits_when_the_master_dies(tmp_path) -> None:
    script = "import fanout, sys; c = fanout.local(); print(c.pid, flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as master:
        child_pid = int(master.stdout.readline())
        os.kill(master.pid, signal.SIGKILL)
    wait_until(lambda: not _running(child_pid), what=f"the local child {child_pid} to exit after its master died")


def _running(pid: int) -> bool:
    """Whether local process ``pid`` exists and is not a zombie (an exited child its parent has not reaped)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, its status was read
        return False


def _run_master(script: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)


def _home_with_ssh_dir(tmp_path: Path, host: FleetHost, *, with_key: bool) -> dict:
    home = tmp_path / "home"
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700)
    (ssh_dir / "known_hosts").write_text(host.known_hosts.read_text())
    if with_key:
        (ssh_dir / "id_ed25519").write_bytes(host.key_path.read_bytes())
        (ssh_dir / "id_ed25519").chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["HOME"] = str(home)
    return env


def test_default_key_file_and_known_hosts_work_as_for_ssh(host, tmp_path) -> None:
    env = _home_with_ssh_dir(tmp_path, host, with_key=True)
    script = f"import fanout, os; c = fanout.connect('{host.address}', port={host.port}, user='{host.user}'); "
    script += "print(c.call(os.getuid)); c.close()"
    done = _run_master(script, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1000"


def test_keys_from_the_agent_work(host, tmp_path) -> None:
    env = _home_with_ssh_dir(tmp_path, host, with_key=False)
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True, env=env)
    for line in agent.stdout.split(";"):
        name, _, value = line.strip().partition("=")
        if name in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
            env[name] = value
    try:
        subprocess.run(["ssh-add", str(host.key_path)], env=env, check=True, capture_output=True)
        script = f"import fanout, os; c = fanout.connect('{host.address}', port={host.port}, user='{host.user}'); "
        script += "print(c.call(os.getuid)); c.close()"
        done = _run_master(script, env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1000"
    finally:
        subprocess.run(["kill", env["SSH_AGENT_PID"]], check=False)


def test_remote_child_exits_when_the_master_dies(host) -> None:
    script = (
        "import fanout, sys\n"
        f"c = fanout.connect('{host.address}', port={host.port}, user='{host.user}', "
        f"identity_file='{host.key_path}', known_hosts='{host.known_hosts}', ssh_config=False)\n"
        "print(c.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as master:
        try:
            remote_pid = int(master.stdout.readline())
            assert process_alive(host, remote_pid)
        finally:
            master.kill()
    wait_until(
        lambda: not process_alive(host, remote_pid), what=f"the remote child {remote_pid} to exit after its master died"
    )


def test_the_masters_copy_wins_over_one_installed_on_the_host(host, user_modules) -> None:
    """docs/design.rst, "The master's modules win": a user module the host also has (older, say) runs as the
    master has it."""
    s = user_modules({"shadowed_{s}.py": "WHO = 'master'\n\ndef who():\n    return WHO\n"})
    plain = ssh_client(host)
    try:
        # The remote shell's directory is the user's home, and `python3 -c` puts it on sys.path.
        status, _, err = run(plain, f"printf 'WHO = \"host\"\\ndef who():\\n    return WHO\\n' > shadowed_{s}.py")
        assert status == 0, err
        status, out, _ = run(plain, f"python3 -c 'import shadowed_{s}; print(shadowed_{s}.who())'")
        assert out.strip() == "host"  # the host really has its own copy
        who = importlib.import_module(f"shadowed_{s}").who
        with connect(host) as context:
            assert context.call(who) == "master"
    finally:
        run(plain, f"rm -f shadowed_{s}.py")
        plain.close()


def test_pipelined_auth_survives_a_service_accept_that_overtakes_it(fleet, monkeypatch, caplog) -> None:
    """The accept may arrive before the thread that sent the request runs on: it must still be skipped."""
    import logging
    import threading

    from paramiko.auth_handler import AuthHandler

    from fanout import _paramiko_compat

    accept_handled = threading.Event()
    send_request = AuthHandler._request_auth
    handle_accept = _paramiko_compat._PipelinedAuthHandler._parse_service_accept

    def handle_accept_and_tell(self, m) -> None:
        handle_accept(self, m)
        accept_handled.set()

    def hold_until_the_accept_is_handled(self) -> None:
        send_request(self)
        # The overtaking itself: paramiko's thread handles SERVICE_ACCEPT before this one sends the userauth request.
        assert accept_handled.wait(WAIT_TIMEOUT), "SERVICE_ACCEPT never came back"

    monkeypatch.setattr(_paramiko_compat._PipelinedAuthHandler, "_parse_service_accept", handle_accept_and_tell)
    monkeypatch.setattr(AuthHandler, "_request_auth", hold_until_the_accept_is_handled)
    caplog.set_level(logging.WARNING, logger="paramiko")
    with connect(fleet.hosts[0]) as context:
        assert context.call(os.getpid) > 0
    assert accept_handled.is_set()
    assert not [r for r in caplog.records if "unimplemented" in r.getMessage()]


def test_connections_probe_a_silent_host_so_a_vanished_one_is_found_out(host) -> None:
    """A host that vanishes without a FIN would otherwise hold its calls for TCP's 15 minutes."""
    import socket

    from fanout import _ssh

    with connect(host) as context:
        sock = context._transport.channel.get_transport().sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == _ssh.KEEPALIVE_IDLE
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == _ssh.KEEPALIVE_COUNT
        assert context.call(abs, -1) == 1
