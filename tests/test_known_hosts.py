"""known_hosts read and matched as OpenSSH reads and matches it: one line that cannot be used never breaks the
others, and a name matches the lines `ssh-keygen -F` finds for it."""

from __future__ import annotations

import base64
import subprocess
import warnings
from pathlib import Path

import paramiko
import pytest

from fanout import _known_hosts
from fanout._known_hosts import AcceptNew, HostKeyCheck, HostKeyRefused, KnownHosts

needs_ssh_keygen = pytest.mark.usefixtures("openssh_client")  # installed on CI when missing, never skipped


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {base64.b64encode(key.asbytes()).decode()}"


@pytest.fixture(scope="module")
def keys() -> list[paramiko.PKey]:
    return [paramiko.Ed25519Key.from_private_key(_ed25519()) for _ in range(3)]


@pytest.fixture(scope="module")
def many_keys() -> list[paramiko.PKey]:
    """A key per line of the matching tests: which lines matched is told by which keys."""
    return [paramiko.Ed25519Key.from_private_key(_ed25519()) for _ in range(20 + len(NAMES))]


def _ed25519():
    import io

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return io.StringIO(pem.decode())


def test_an_unusable_line_is_skipped_with_a_warning_and_the_rest_is_read(tmp_path, keys) -> None:
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
        f"|1|c2FsdA==|bm90IGEgaGFzaA== {key_line(db)}\n"
        f"web.example ssh-rsa {key_line(web).split()[1]}\n"
        f"web.example\t \t{key_line(web)} a comment\n"
    )
    known = KnownHosts()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        known.read(path)
    lines = sorted(str(w.message).split(", line ")[1].split(":")[0] for w in caught)
    assert lines == ["10", "5", "6", "7", "9"] and all(str(path) in str(w.message) for w in caught)
    assert [line.number for line in known.lines] == [3, 4, 8, 11]
    assert [line.marker for line in known.lines] == ["@cert-authority", "", "", ""]
    host_keys = paramiko.HostKeys()
    known.into(host_keys)
    assert host_keys.lookup("web.example")["ssh-ed25519"] == web
    assert host_keys.lookup("[web.example]:2200")["ssh-ed25519"] == web
    assert host_keys.lookup("db.example")["ssh-ed25519"] == db  # a hashed name
    assert host_keys.lookup("other.example") is None
    wild = KnownHosts()
    wild.add("*.example", web, path)
    wild.add("db.example,!db.example", db, path)
    wild.into(empty := paramiko.HostKeys())
    assert not empty.keys()  # paramiko would take patterns for names: only HostKeyCheck matches them


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
    with pytest.raises(HostKeyRefused, match="marked @revoked") as caught:
        AcceptNew(path, known).missing_host_key(client, "new.example", web)
    assert caught.value.reason == "revoked"
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


# Host patterns as ssh writes them, each on a line of its own key; NAMES are looked up in a file of all of them.
PATTERNS = [
    "web.example",
    "*.example,!bad.example",
    "!*.example,*.org",
    "[web.example]:2200",
    "[web.example]:22*",
    "WEB.Example",
    "h?st,*.h?st",
    "10.0.0.*,!10.0.0.1",
    "[10.0.0.1]:*",
    "a*b*c",
    "*a?*?b",
    ",lead,,empty,",
    "!only.negated",
    "x" * 1023 + ",long.example",
    "y" * 1022 + ",short.example",
    "*",
]
MARKED = ["@cert-authority *.org", "@revoked [web.example]:22??"]
NAMES = [
    "web.example",
    "bad.example",
    "x.org",
    "bad.org.example",
    "[web.example]:2200",
    "[web.example]:22",
    "[web.example]:2",
    "host",
    "hoost",
    "a.host",
    "10.0.0.5",
    "10.0.0.1",
    "[10.0.0.1]:2222",
    "abc",
    "axbycz",
    "ab",
    "xayyb",
    "lead",
    "empty",
    "only.negated",
    "long.example",
    "short.example",
    "nothing.here",
]


def write_patterns(path: Path, keys: list[paramiko.PKey], hashed_too: bool = False) -> Path:
    lines = [f"{pattern} {key_line(key)}" for pattern, key in zip(PATTERNS, keys, strict=False)]
    lines += [f"{marker} {key_line(key)}" for marker, key in zip(MARKED, keys[len(PATTERNS) :], strict=False)]
    if hashed_too:  # a single name each, as ssh-keygen -H writes them
        lines += [f"{name} {key_line(key)}" for name, key in zip(NAMES, keys[20:], strict=False)]
    path.write_text("\n".join(lines) + "\n")
    return path


def ssh_keygen_finds(path: Path, name: str) -> set[str]:
    """The base64 keys of the lines ``ssh-keygen -F name`` prints."""
    done = subprocess.run(["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True, text=True)
    return {line.split()[-1] for line in done.stdout.splitlines() if line and not line.startswith("#")}


def fanout_finds(path: Path, name: str) -> set[str]:
    known = KnownHosts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        known.read(path)
    markers = ("", "@cert-authority", "@revoked")
    return {key_line(line.key).split()[1] for marker in markers for line in known.matching(name, marker)}


@needs_ssh_keygen
def test_names_match_the_lines_ssh_keygen_finds_for_them(tmp_path, many_keys) -> None:
    path = write_patterns(tmp_path / "known_hosts", many_keys)
    for name in NAMES:
        assert fanout_finds(path, name) == ssh_keygen_finds(path, name), name
    assert fanout_finds(path, "WEB.EXAMPLE") == ssh_keygen_finds(path, "web.example")  # as ssh lowercases it


@needs_ssh_keygen
def test_hashed_names_match_as_ssh_keygen_hashes_them(tmp_path, many_keys) -> None:
    path = write_patterns(tmp_path / "known_hosts", many_keys, hashed_too=True)
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    assert sum(line.startswith("|1|") for line in path.read_text().splitlines()) >= len(NAMES)
    for name, own in zip(NAMES, many_keys[20:], strict=True):
        found = fanout_finds(path, name)
        assert found == ssh_keygen_finds(path, name) and key_line(own).split()[1] in found, name


def test_host_key_check_decides_plain_keys_as_ssh_does(tmp_path, keys) -> None:
    web, other, new = keys
    path = tmp_path / "known_hosts"
    path.write_text(
        f"*.example,!bad.example {key_line(web)}\n"
        f"web.example {key_line(other)}\n"  # a second key of the same type: either is the host's
        f"plain.example {key_line(web)}\n"
        f"[ported.test]:2200 {key_line(other)}\n"
    )
    known = KnownHosts()
    known.read(path)
    check = HostKeyCheck(known, Reject())
    client = paramiko.SSHClient()
    for hostname, key in [
        ("web.example", web),
        ("web.example", other),
        ("db.example", web),
        ("[db.example]:2200", web),  # no line for [db.example]:2200: those for the bare name serve
        ("[plain.example]:2222", web),
        ("[ported.test]:2200", other),
    ]:
        check.missing_host_key(client, hostname, key)
    with pytest.raises(paramiko.BadHostKeyException):
        check.missing_host_key(client, "db.example", new)
    with pytest.raises(paramiko.BadHostKeyException):
        check.missing_host_key(client, "[ported.test]:2200", web)  # known there with another key
    for hostname in ("bad.example", "[bad.example]:2200", "ported.test", "[ported.test]:2201"):
        with pytest.raises(HostKeyRefused) as caught:
            check.missing_host_key(client, hostname, web)
        assert (caught.value.reason, str(caught.value)) == ("unknown", f"Server {hostname!r} not found in known_hosts")


class Reject(paramiko.MissingHostKeyPolicy):
    """paramiko.RejectPolicy, without its log line (which needs a connected client)."""

    def missing_host_key(self, client, hostname, key) -> None:
        raise paramiko.SSHException(f"Server {hostname!r} not found in known_hosts")


@needs_ssh_keygen
def test_accept_new_hashes_names_as_ssh_does_with_hash_known_hosts(tmp_path, keys) -> None:
    path = tmp_path / "known_hosts"
    known = KnownHosts()
    AcceptNew(path, known, hash_names=True).missing_host_key(paramiko.SSHClient(), "[New.Example]:2200", keys[0])
    (line,) = path.read_text().splitlines()
    assert line.startswith("|1|") and line.endswith(key_line(keys[0])) and "example" not in line.lower()
    assert ssh_keygen_finds(path, "[new.example]:2200") == {key_line(keys[0]).split()[1]}
    assert known.matching("[new.example]:2200") and not known.matching("new.example")
    again = KnownHosts()
    again.read(path)
    HostKeyCheck(again, Reject()).missing_host_key(paramiko.SSHClient(), "[new.example]:2200", keys[0])


@pytest.mark.fleet
def test_hosts_connect_with_unusable_lines_around_their_keys_and_accept_new_records_them(fleet, tmp_path, keys) -> None:
    import os

    import fanout

    host = fleet.hosts[0]
    noisy = tmp_path / "known_hosts"
    noisy.write_text(
        f"@cert-authority {key_line(keys[2])}\nnot a key line\n"
        + Path(host.known_hosts).read_text()
        + f"@revoked unrelated.example {key_line(keys[0])}\n"
    )
    options = {**host.connect_options(), "known_hosts": str(noisy)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fanout.connect(host.address, **options) as context:
            assert context.call(os.getpid) > 0
    said = [str(w.message) for w in caught if w.category is UserWarning]  # not what the GC says of other tests
    assert sorted(message.split(": skipped")[0][-6:] for message in said) == ["line 1", "line 2"]
    fresh = tmp_path / "fresh_known_hosts"
    fresh.write_text("garbage\n")
    accepting = {**options, "known_hosts": str(fresh), "host_key_policy": "accept-new"}
    with pytest.warns(UserWarning, match="line 1: skipped"), fanout.connect(host.address, **accepting):
        pass
    assert len(fresh.read_text().splitlines()) == 2  # the garbage kept, the host's key appended
    with pytest.warns(UserWarning), fanout.connect(host.address, **{**options, "known_hosts": str(fresh)}) as again:
        assert again.call(os.getpid) > 0  # strict now finds it
