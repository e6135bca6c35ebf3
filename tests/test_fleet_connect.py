"""How a fleet connects: one timeout to a ready child, jump hosts, the per-sshd handshake cap, the file limit."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
import threading

import paramiko

from fanout import _ssh
from fanout.errors import ConnectTimeout
from fanout.fleet import AUTH_FAILED, OK, TIMED_OUT, UNREACHABLE, Fleet
from tests.fleet.hosts import free_ports
from tests.fleet.inventories import known_hosts_of, write_wrong_key


def host_options(host, known_hosts, **extra) -> dict:
    return {"host": host.address, **host.connect_options(), "known_hosts": known_hosts, **extra}


def test_the_connect_timeout_runs_until_the_child_is_ready(fleet, tmp_path) -> None:
    host = fleet.hosts[0]
    container = fleet.client.containers.get(host.container)
    script = "/tmp/slow-python"
    container.exec_run(["sh", "-c", f"printf '#!/bin/sh\\nsleep 30\\nexec python3 \"$@\"\\n' > {script}"])
    container.exec_run(["chmod", "755", script])
    known_hosts = known_hosts_of(fleet, tmp_path)
    hosts = {
        "slow": host_options(host, known_hosts, python=script),
        "quick": host_options(host, known_hosts),
    }
    with Fleet(hosts, connect_timeout=3, echo=False) as the_fleet:
        results = the_fleet.call(os.getpid, timeout=60)
    assert results["quick"].status == OK
    assert results["slow"].status == TIMED_OUT
    assert isinstance(results["slow"].error.__cause__, ConnectTimeout)
    assert "not ready within the connect timeout of 3 s" in str(results["slow"].error)


def test_jump_hosts_from_ansible_ssh_common_args(fleet, tmp_path) -> None:
    """The target's name resolves only on the jump host, so only a real jump reaches it."""
    jump, target = fleet.hosts[0], fleet.hosts[-1]
    fleet.client.containers.get(jump.container).exec_run(["sh", "-c", "echo '127.0.0.1 only-via-jump' >> /etc/hosts"])
    known_hosts = known_hosts_of(fleet, tmp_path)
    with known_hosts.open("a") as f:
        f.write(f"[only-via-jump]:{target.port} {target.host_key}\n")
    (closed,) = free_ports(1)
    wrong_key = write_wrong_key(tmp_path)
    hop = f"{jump.user}@{jump.address}:{jump.port}"
    inventory = tmp_path / "hosts"
    inventory.write_text(
        textwrap.dedent(f"""\
        [hidden]
        direct
        jumped ansible_ssh_common_args='-o ProxyJump={hop}'
        jumped-twice fanout_jump={hop},{hop}
        dead-jump ansible_ssh_common_args='-J {jump.user}@127.0.0.1:{closed}'
        refused-jump fanout_jump={hop} fanout_jump_identity_file={wrong_key}

        [hidden:vars]
        ansible_host=only-via-jump
        ansible_port={target.port}
        ansible_user={target.user}
        ansible_ssh_private_key_file={target.key_path}
        fanout_known_hosts={known_hosts}
        """)
    )
    with Fleet.from_inventory(inventory, echo=False, connect_timeout=20) as the_fleet:
        results = the_fleet.call(platform.python_version)
    expected = "%d.%d.%d" % target.python_version
    assert results["jumped"].status == OK and results["jumped"].value == expected
    assert results["jumped-twice"].value == expected
    assert results["direct"].status == UNREACHABLE and "cannot resolve only-via-jump" in str(results["direct"].error)
    assert results["dead-jump"].status == UNREACHABLE and "jump host" in str(results["dead-jump"].error)
    assert results["refused-jump"].status == AUTH_FAILED and "jump host" in str(results["refused-jump"].error)


def test_many_names_for_one_sshd_all_connect(fleet, tmp_path) -> None:
    """Thirty handshakes at once would meet sshd's MaxStartups 10:30:100 and lose some; the cap queues them."""
    host = fleet.hosts[1]
    known_hosts = known_hosts_of(fleet, tmp_path)
    hosts = {f"alias-{i}": host_options(host, known_hosts) for i in range(30)}
    with Fleet(hosts, forks=30, echo=False, connect_timeout=60) as the_fleet:
        results = the_fleet.call(os.getpid)
    assert results.summary() == "ok=30", {n: str(r.error) for n, r in results.items() if not r.ok}
    assert len({r.value for r in results.values()}) == 30
    assert _ssh.MAX_HANDSHAKES_PER_SSHD < 10


def _with_file_limit(soft: int, hard: int, code: str) -> subprocess.CompletedProcess:
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_a_refused_login_leaves_no_connection_open(fleet, tmp_path) -> None:
    """A host that refuses the key: its connection is closed with the fleet, not left to sshd's LoginGraceTime
    (2 minutes, each one counted against MaxStartups meanwhile)."""
    host = fleet.hosts[0]
    wrong = host_options(host, known_hosts_of(fleet, tmp_path), identity_file=str(write_wrong_key(tmp_path)))
    with Fleet({"wrong-key": wrong}, echo=False) as the_fleet:
        assert the_fleet.call(abs, 1)["wrong-key"].status == AUTH_FAILED
    waiting = [
        t
        for t in threading.enumerate()
        if isinstance(t, paramiko.Transport) and t.is_active() and not t.is_authenticated()
    ]
    assert waiting == [], "unauthenticated SSH connections left open"


def test_the_open_file_limit_is_raised_or_reported_before_connecting() -> None:
    hosts = "{f'h{i}': {'connection': 'ssh', 'host': '127.0.0.1', 'port': 1} for i in range(400)}"
    raised = _with_file_limit(
        256,
        4096,
        f"""
        import resource
        from fanout.fleet import Fleet
        Fleet({hosts}).connect().close()
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        """,
    )
    assert raised.returncode == 0, raised.stderr
    assert int(raised.stdout) >= 400 * 3
    refused = _with_file_limit(
        256,
        256,
        f"""
        from fanout.fleet import Fleet
        Fleet({hosts}).connect()
        """,
    )
    assert refused.returncode == 1
    assert "400 hosts need about 1264 open files" in refused.stderr and "ulimit" in refused.stderr
