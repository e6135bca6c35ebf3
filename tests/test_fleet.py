"""The test fleet is real: real sshd, real host keys, real and bare Pythons.

These use plain paramiko and no project code, so every later test of the
product stands on hosts we have shown to be what they claim.
"""

from __future__ import annotations

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.fleet.hosts import EXPECTED_PYTHON, FleetHost
from tests.fleet.plain_ssh import run, ssh_client
from tests.fleet.sshd import wait_until_sshd_let_go

ABANDONED_LOGINS = (
    30  # with PerSourcePenalties on, a second's penalty each: past its 15 s minimum, the source is refused
)


def test_host_answers_with_its_suites_python(fleet_host: FleetHost) -> None:
    client = ssh_client(fleet_host)
    try:
        status, out, err = run(client, "python3 -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'")
    finally:
        client.close()
    assert status == 0, err
    answered = tuple(int(part) for part in out.strip().split("."))
    assert answered == fleet_host.python_version
    assert answered[:2] == EXPECTED_PYTHON[fleet_host.suite]


@pytest.mark.parametrize("module", ["fanout", "paramiko", "cloudpickle"])
def test_host_lacks_the_projects_modules(fleet_host: FleetHost, module: str) -> None:
    client = ssh_client(fleet_host)
    try:
        status, _, err = run(client, f"python3 -c 'import {module}'")
    finally:
        client.close()
    assert status == 1
    assert f"No module named '{module}'" in err


def test_every_host_has_its_own_host_key(fleet) -> None:
    keys = [host.host_key for host in fleet.hosts]
    assert len(set(keys)) == len(keys)
    assert len({(host.address, host.port) for host in fleet.hosts}) == len(fleet.hosts)
    assert all(host.address == "127.0.0.1" for host in fleet.hosts)


def test_combined_known_hosts_verifies_every_host(fleet) -> None:
    for host in fleet.hosts:
        client = ssh_client(host, known_hosts=str(fleet.workdir / "known_hosts"))
        try:
            assert run(client, "true")[0] == 0
        finally:
            client.close()


def test_strict_checking_refuses_a_wrong_host_key(fleet_host: FleetHost, tmp_path) -> None:
    impostor = ed25519.Ed25519PrivateKey.generate().public_key()
    line = impostor.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{fleet_host.known_hosts_name} {line}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_client(fleet_host, known_hosts=str(wrong))


def test_strict_checking_refuses_an_unknown_host(fleet_host: FleetHost, tmp_path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        ssh_client(fleet_host, known_hosts=str(empty))


def test_only_the_run_key_logs_in(fleet_host: FleetHost, tmp_path) -> None:
    other = tmp_path / "other_key"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    client = paramiko.SSHClient()
    client.load_host_keys(str(fleet_host.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(
            fleet_host.address,
            port=fleet_host.port,
            username=fleet_host.user,
            key_filename=str(other),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    client.close()


def test_failed_logins_never_lock_the_suite_out(fleet, tmp_path) -> None:
    """OpenSSH 9.8+ refuses a source for a while after logins it failed or that were abandoned
    (PerSourcePenalties); every test connects from 127.0.0.1, and many give up on purpose.

    Each abandoned connection is let go by sshd before the next is made: MaxStartups would otherwise drop
    connections at random on a loaded machine, where sshd's processes end late, and fail the test for that."""
    host = next((h for h in fleet.hosts if h.suite == "trixie"), fleet.hosts[-1])  # trixie's sshd is 10.0
    line = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{host.known_hosts_name} {line.decode()}\n")
    wait_until_sshd_let_go(fleet, host)  # what earlier tests left
    try:
        for _ in range(ABANDONED_LOGINS):  # each refused host key leaves sshd a connection abandoned before login
            with pytest.raises(paramiko.BadHostKeyException):
                ssh_client(host, known_hosts=str(wrong))  # closed as it fails: sshd sees the end at once
            wait_until_sshd_let_go(fleet, host)
        client = ssh_client(host)
    except paramiko.SSHException as exc:
        log = fleet.client.containers.get(host.container).logs().decode()
        dropped = [line for line in log.splitlines() if "drop connection" in line]
        pytest.fail(f"{exc}; sshd says: {dropped[-3:]}")
    try:
        assert run(client, "echo still-welcome")[1] == "still-welcome\n"
    finally:
        client.close()
