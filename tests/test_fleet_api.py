"""Fleet.from_inventory over the Docker fleet: every outcome told apart, one host never failing another."""

from __future__ import annotations

import importlib
import os

import pytest

from fanout import fleet as fleet_module
from fanout.fleet import AUTH_FAILED, FAILED, OK, UNREACHABLE, Fleet
from tests.fleet.hosts import free_ports


@pytest.fixture
def inventory(fleet, tmp_path) -> str:
    """An INI inventory of the whole Docker fleet, one unreachable address and one host offering a wrong key."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(host.known_hosts.read_text() for host in fleet.hosts))
    wrong_key = tmp_path / "wrong_key"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    wrong_key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    (closed_port,) = free_ports(1)
    lines = ["[docker]"]
    for host in fleet.hosts:
        lines.append(f"{host.name} ansible_host={host.address} ansible_port={host.port}")
    first = fleet.hosts[0]
    lines += [
        "",
        "[broken]",
        f"nobody-home ansible_host=127.0.0.1 ansible_port={closed_port}",
        f"wrong-key ansible_host={first.address} ansible_port={first.port} ansible_ssh_private_key_file={wrong_key}",
        "",
        "[all:vars]",
        f"ansible_user={first.user}",
        f"ansible_ssh_private_key_file={first.key_path}",
        f"fanout_known_hosts={known_hosts}",
    ]
    path = tmp_path / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_every_host_ends_with_its_own_outcome(fleet, inventory, user_modules) -> None:
    s = user_modules({"where_{s}.py": "import platform\n\ndef where():\n    return platform.python_version()\n"})
    where = importlib.import_module(f"where_{s}").where
    with Fleet.from_inventory(inventory, forks=8) as the_fleet:
        results = the_fleet.call(where)
    assert list(results) == [h.name for h in fleet.hosts] + ["nobody-home", "wrong-key"]
    for host in fleet.hosts:
        assert results[host.name].status == OK
        assert results[host.name].value == "%d.%d.%d" % host.python_version
    assert results["nobody-home"].status == UNREACHABLE and "refused" in str(results["nobody-home"].error)
    assert results["wrong-key"].status == AUTH_FAILED
    assert set(results.unreachable) == {"nobody-home", "wrong-key"}
    assert len(results.ok) == len(fleet.hosts)
    assert results.summary() == f"auth-failed=1, ok={len(fleet.hosts)}, unreachable=1"


def test_remote_failures_and_streaming(fleet, inventory) -> None:
    with Fleet.from_inventory(inventory, "docker:&~bull.*", forks=4) as the_fleet:
        seen = dict(the_fleet.as_completed(os.listdir, "/no/such/dir", timeout=60))
    assert sorted(seen) == sorted(h.name for h in fleet.hosts if h.suite == "bullseye")
    assert all(r.status == FAILED and r.error.type_name == "FileNotFoundError" for r in seen.values())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="forks"):
        Fleet({}, forks=0)
    assert fleet_module.Results({}).summary() == "no hosts"
