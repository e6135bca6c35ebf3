"""known_hosts read as OpenSSH reads it: one line that cannot be used never breaks the others."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path

import paramiko
import pytest

from fanout import _known_hosts
from fanout._known_hosts import AcceptNew, KnownHosts


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {base64.b64encode(key.asbytes()).decode()}"


@pytest.fixture(scope="module")
def keys() -> list[paramiko.PKey]:
    return [paramiko.Ed25519Key.from_private_key(_ed25519()) for _ in range(3)]


def _ed25519():
    import io

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return io.StringIO(pem.decode())


def test_a_cert_authority_or_garbage_line_is_skipped_with_a_warning_and_the_rest_is_read(tmp_path, keys) -> None:
    web, db, ca = keys
    hashed = paramiko.HostKeys.hash_host("db.example")
    path = tmp_path / "known_hosts"
    path.write_text(
        "# a comment\n\n"
        f"@cert-authority *.example {key_line(ca)}\n"
        f"web.example,[web.example]:2200 {key_line(web)}\n"
        "garbage line with AAAA!!notbase64\n"
        "ssh-ed25519\n"
        f"@weird web.example {key_line(web)}\n"
        f"{hashed} {key_line(db)}\n"
    )
    known = KnownHosts()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        known.read(path)
    lines = sorted(str(w.message).split(", line ")[1].split(":")[0] for w in caught)
    assert lines == ["3", "5", "6", "7"] and all(str(path) in str(w.message) for w in caught)
    host_keys = paramiko.HostKeys()
    known.into(host_keys)
    assert host_keys.lookup("web.example")["ssh-ed25519"] == web
    assert host_keys.lookup("[web.example]:2200")["ssh-ed25519"] == web
    assert host_keys.lookup("db.example")["ssh-ed25519"] == db  # a hashed name
    assert host_keys.lookup("other.example") is None


def test_a_revoked_key_is_never_accepted_even_where_it_is_also_listed(tmp_path, keys) -> None:
    web, other, _ = keys
    path = tmp_path / "known_hosts"
    path.write_text(f"web.example {key_line(web)}\nweb.example {key_line(other)}\n@revoked * {key_line(web)}\n")
    known = KnownHosts()
    known.read(path)
    host_keys = paramiko.HostKeys()
    known.into(host_keys)
    assert host_keys.lookup("web.example")["ssh-ed25519"] == other  # the revoked one is not there
    client = paramiko.SSHClient()
    with pytest.raises(paramiko.SSHException, match="revoked"):
        AcceptNew(path, known).missing_host_key(client, "new.example", web)
    AcceptNew(path, known).missing_host_key(client, "[new.example]:2200", other)
    assert path.read_text().endswith(f"[new.example]:2200 {key_line(other)}\n")


def test_accept_new_appends_on_a_line_of_its_own(tmp_path, keys) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"web.example {key_line(keys[0])}")  # no end of line
    AcceptNew(path, KnownHosts()).missing_host_key(paramiko.SSHClient(), "db.example", keys[1])
    assert path.read_text().splitlines() == [f"web.example {key_line(keys[0])}", f"db.example {key_line(keys[1])}"]


def test_a_huge_file_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_known_hosts, "MAX_FILE_BYTES", 10)
    path = tmp_path / "known_hosts"
    path.write_text("x" * 11)
    with pytest.raises(OSError, match="over 10 bytes"):
        KnownHosts().read(path)


@pytest.mark.fleet
def test_hosts_connect_with_unusable_lines_around_their_keys_and_accept_new_records_them(fleet, tmp_path, keys) -> None:
    import os

    import fanout

    host = fleet.hosts[0]
    noisy = tmp_path / "known_hosts"
    noisy.write_text(
        f"@cert-authority * {key_line(keys[2])}\nnot a key line\n"
        + Path(host.known_hosts).read_text()
        + f"@revoked unrelated.example {key_line(keys[0])}\n"
    )
    options = {**host.connect_options(), "known_hosts": str(noisy)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fanout.connect(host.address, **options) as context:
            assert context.call(os.getpid) > 0
    assert sorted(str(w.message).split(": skipped")[0][-6:] for w in caught) == ["line 1", "line 2"]
    fresh = tmp_path / "fresh_known_hosts"
    fresh.write_text("garbage\n")
    accepting = {**options, "known_hosts": str(fresh), "host_key_policy": "accept-new"}
    with pytest.warns(UserWarning, match="line 1: skipped"), fanout.connect(host.address, **accepting):
        pass
    assert len(fresh.read_text().splitlines()) == 2  # the garbage kept, the host's key appended
    with pytest.warns(UserWarning), fanout.connect(host.address, **{**options, "known_hosts": str(fresh)}) as again:
        assert again.call(os.getpid) > 0  # strict now finds it
