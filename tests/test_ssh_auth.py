"""Which keys fanout offers a server, in what order, and what it says about keys it cannot offer.

Keys are made by OpenSSH's ssh-keygen and held by a real ssh-agent started here: the same files and agent a user
has. What a real sshd then does with them is tested in tests/test_fleet_ssh.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paramiko
import pytest

from fanout import _ssh_auth
from fanout._ssh_auth import Credentials, KeysAndAgent, public_blob
from tests.fleet.agent import add_to_agent

pytestmark = pytest.mark.usefixtures("openssh_client")  # ssh-keygen, ssh-agent, ssh-add: installed on CI if missing
PASSPHRASE = "correct horse"


def _keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    # One KDF round: an encrypted key then decrypts in milliseconds, not the quarter second of the default 16;
    # and RSA at 1024 bits, ssh-keygen's least: a 3072-bit key takes a second to make and a quarter to load.
    size = ["-b", "1024"] if kind == "rsa" else []
    command = ["ssh-keygen", "-q", "-t", kind, *size, "-a", "1", "-N", passphrase, "-f", str(path)]
    subprocess.run(command, check=True)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("keys")
    return {
        "plain": _keygen(where / "plain"),
        "encrypted": _keygen(where / "encrypted", passphrase=PASSPHRASE),
        "ecdsa": _keygen(where / "ecdsa", "ecdsa"),
        "rsa": _keygen(where / "rsa", "rsa"),
    }


def _sources(credentials: Credentials) -> list:
    strategy = KeysAndAgent("tester", credentials)
    try:
        return list(strategy.get_sources())
    finally:
        strategy.close()


def _blob(path: Path) -> bytes:
    return public_blob(str(path))[1]


def test_public_blob_of_an_encrypted_key_comes_from_its_clear_header(keys, tmp_path):
    encrypted = keys["encrypted"]
    moved = tmp_path / "no_pub"
    moved.write_bytes(encrypted.read_bytes())  # no .pub beside it: the header is all there is
    expected = paramiko.PKey.from_path(str(encrypted), PASSPHRASE.encode()).asbytes()
    assert public_blob(str(moved)) == ("ssh-ed25519", expected)
    assert public_blob(str(encrypted))[1] == expected


def test_public_blob_of_garbage_is_none(tmp_path):
    for text in (b"", b"not a key", b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n", os.urandom(300)):
        path = tmp_path / "garbage"
        path.write_bytes(text)
        assert public_blob(str(path)) is None


def test_an_explicit_encrypted_key_the_agent_holds_is_used_through_the_agent(keys, ssh_agent):
    add_to_agent(ssh_agent, keys["encrypted"], PASSPHRASE)
    sources = _sources(Credentials(identity_files=(str(keys["encrypted"]),), identities_given=True))
    assert [type(s).__name__ for s in sources] == ["InMemoryPrivateKey"]
    assert isinstance(sources[0].pkey, paramiko.AgentKey)
    assert sources[0].pkey.asbytes() == _blob(keys["encrypted"])


def test_identities_only_keeps_the_agents_other_keys_out(keys, ssh_agent):
    add_to_agent(ssh_agent, keys["plain"])
    add_to_agent(ssh_agent, keys["ecdsa"])
    only = _sources(Credentials(identity_files=(str(keys["plain"]),), identities_given=True, identities_only=True))
    assert [s.pkey.asbytes() for s in only] == [_blob(keys["plain"])]
    every = _sources(Credentials(identity_files=(str(keys["plain"]),), identities_given=True))
    assert [s.pkey.asbytes() for s in every] == [_blob(keys["plain"]), _blob(keys["ecdsa"])]  # identity first


def test_an_encrypted_key_with_no_agent_and_no_passphrase_says_what_to_do(keys, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (source,) = _sources(Credentials(identity_files=(str(keys["encrypted"]),), identities_given=True))
    with pytest.raises(_ssh_auth.KeyUnusable, match=r"encrypted.*ssh-add.*passphrase"):
        source.authenticate(None)


@pytest.mark.parametrize("given", [PASSPHRASE, "mapping"])
def test_a_passphrase_decrypts_the_key(keys, monkeypatch, given):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    path = str(keys["encrypted"])
    passphrase = {path: PASSPHRASE} if given == "mapping" else given
    (source,) = _sources(Credentials(identity_files=(path,), identities_given=True, passphrase=passphrase))
    assert type(source).__name__ == "OnDiskPrivateKey"
    assert source.pkey.asbytes() == _blob(keys["encrypted"])


def test_a_wrong_passphrase_is_a_clear_failure(keys, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    creds = Credentials(identity_files=(str(keys["encrypted"]),), identities_given=True, passphrase="wrong")
    (source,) = _sources(creds)
    with pytest.raises(_ssh_auth.KeyUnusable, match="cannot load the key"):
        source.authenticate(None)


@pytest.mark.parametrize("kind", ["plain", "ecdsa", "rsa"])
def test_every_key_type_loads(keys, monkeypatch, kind):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (source,) = _sources(Credentials(identity_files=(str(keys[kind]),), identities_given=True))
    assert source.pkey.asbytes() == _blob(keys[kind])


def test_a_security_key_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    key = tmp_path / "id_ed25519_sk"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n")
    Path(f"{key}.pub").write_text("sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t me\n")
    (source,) = _sources(Credentials(identity_files=(str(key),), identities_given=True))
    with pytest.raises(_ssh_auth.KeyUnusable, match=r"security key.*not support"):
        source.authenticate(None)


def test_a_missing_named_identity_is_reported_and_a_missing_default_is_not(tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    missing = str(tmp_path / "nope")
    (source,) = _sources(Credentials(identity_files=(missing,), identities_given=True))
    with pytest.raises(_ssh_auth.KeyUnusable, match="no such identity file"):
        source.authenticate(None)
    assert _sources(Credentials(identity_files=(missing,), identities_given=False)) == []


def test_the_password_comes_last(keys, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    sources = _sources(Credentials(identity_files=(str(keys["plain"]),), identities_given=True, password="pw"))
    assert [type(s).__name__ for s in sources] == ["OnDiskPrivateKey", "Password"]


def test_identity_agent_none_uses_no_agent(keys, ssh_agent):
    add_to_agent(ssh_agent, keys["plain"])
    assert _sources(Credentials(identity_agent="none")) == []
    assert len(_sources(Credentials())) == 1


def test_an_identity_agent_that_is_not_there_warns(tmp_path):
    with pytest.warns(UserWarning, match="IdentityAgent .*cannot connect"):
        assert _sources(Credentials(identity_agent=str(tmp_path / "no.sock"))) == []


def test_a_certificate_beside_the_key_is_loaded(keys, tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ca = _keygen(tmp_path / "ca")
    key = _keygen(tmp_path / "user")
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "someone", "-n", "tester", f"{key}.pub"], check=True)
    (source,) = _sources(Credentials(identity_files=(str(key),), identities_given=True))
    assert source.pkey.public_blob is not None
    assert source.pkey.public_blob.key_type == "ssh-ed25519-cert-v01@openssh.com"


def test_keys_needing_passphrase_lists_only_encrypted_keys_no_agent_holds(keys, ssh_agent):
    creds = Credentials(identity_files=(str(keys["plain"]), str(keys["encrypted"])), identities_given=True)
    assert _ssh_auth.keys_needing_passphrase(creds) == [str(keys["encrypted"])]
    add_to_agent(ssh_agent, keys["encrypted"], PASSPHRASE)
    assert _ssh_auth.keys_needing_passphrase(creds) == []
