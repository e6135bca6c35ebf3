"""Ansible inventories describing the test fleet, for the fleet API and command-line tests."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.fleet.hosts import Fleet, free_ports


def known_hosts_of(fleet: Fleet, directory: Path) -> Path:
    """One known_hosts file holding every fleet host's real key."""
    path = directory / "known_hosts"
    path.write_text("".join(host.known_hosts.read_text() for host in fleet.hosts))
    return path


def write_wrong_key(directory: Path) -> Path:
    """A private key that no fleet host authorizes."""
    path = directory / "wrong_key"
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return path


def write_inventory(fleet: Fleet, directory: Path, *, broken: bool = True, extra: str = "") -> Path:
    """An INI inventory: group ``docker`` is the whole fleet; ``broken`` adds an unreachable
    address (``nobody-home``) and a host offering a key it does not know (``wrong-key``)."""
    first = fleet.hosts[0]
    lines = ["[docker]"]
    lines += [f"{host.name} ansible_host={host.address} ansible_port={host.port}" for host in fleet.hosts]
    if broken:
        (closed_port,) = free_ports(1)
        lines += [
            "",
            "[broken]",
            f"nobody-home ansible_host=127.0.0.1 ansible_port={closed_port}",
            f"wrong-key ansible_host={first.address} ansible_port={first.port} "
            f"ansible_ssh_private_key_file={write_wrong_key(directory)}",
        ]
    lines += [
        "",
        "[all:vars]",
        f"ansible_user={first.user}",
        f"ansible_ssh_private_key_file={first.key_path}",
        f"fanout_known_hosts={known_hosts_of(fleet, directory)}",
        "",
        extra,
    ]
    path = directory / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return path
