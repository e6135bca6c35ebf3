"""Which keys to offer a server, and in what order, as OpenSSH's client chooses them.

Identity files come first, each through the agent when the agent holds its key
(so a passphrase-protected key that is loaded in ssh-agent needs no
passphrase), else read from disk, decrypted with ``passphrase`` when given, with
its certificate when there is one. Then, unless ``IdentitiesOnly``, the agent's
other keys; then the password, if any. A key that cannot be offered (encrypted
with no passphrase, a security key, unreadable) is recorded with the reason and
shown if authentication fails, never dropped without a word.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.auth_strategy import AuthSource, AuthStrategy, InMemoryPrivateKey, OnDiskPrivateKey, Password

from fanout._paramiko_compat import agent_connected_to

MAX_KEY_FILE_BYTES = 1024 * 1024  # a private or public key file larger than this is not a key file
MAX_AGENT_KEYS = 64  # keys taken from an agent: sshd's MaxAuthTries is 6 by default, so more never help
SECURITY_KEY_TYPES = ("sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


class KeyUnusable(paramiko.AuthenticationException):
    """An identity that could not even be offered; its text says why and what to do."""


@dataclass
class Credentials:
    """What may authenticate one connection (from ssh_config, connect()'s arguments and the inventory)."""

    identity_files: tuple[str, ...] = ()
    identities_given: bool = False  # the files were named (config, argument), not OpenSSH's defaults
    identities_only: bool = False
    identity_agent: str | None = None  # a socket path, "none", or None for $SSH_AUTH_SOCK
    certificate_files: tuple[str, ...] = ()
    passphrase: str | Mapping[str, str] | None = None
    password: str | None = field(default=None, repr=False)

    def passphrase_for(self, path: str) -> str | None:
        if isinstance(self.passphrase, Mapping):
            return self.passphrase.get(path) or self.passphrase.get(os.path.expanduser(path))
        return self.passphrase


class _Unusable(AuthSource):
    """A key that cannot be offered: "authenticating" with it raises why, which the failure report then shows."""

    def __init__(self, username: str, path: str, why: str) -> None:
        super().__init__(username)
        self.path, self.why = path, why

    def __repr__(self) -> str:
        return f"{self.path}: {self.why}"

    def authenticate(self, transport: paramiko.Transport) -> list[str]:
        raise KeyUnusable(f"{self.path}: {self.why}")


def public_blob(path: str) -> tuple[str, bytes] | None:
    """The (type, blob) of the key in ``path`` without decrypting it: from ``path.pub``, or from the clear header of
    an OpenSSH-format private key. None when neither says."""
    pub = Path(path + ".pub")
    try:
        if pub.is_file() and pub.stat().st_size <= MAX_KEY_FILE_BYTES:
            fields = pub.read_text(errors="replace").split()
            if len(fields) >= 2:
                return fields[0], base64.b64decode(fields[1], validate=True)
    except (OSError, ValueError):
        pass
    return _openssh_header_blob(path)


def _openssh_header_blob(path: str) -> tuple[str, bytes] | None:
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_KEY_FILE_BYTES)
        body = b"".join(line for line in text.splitlines() if line and not line.startswith(b"-----"))
        data = base64.b64decode(body)
    except (OSError, ValueError):
        return None
    if not data.startswith(_OPENSSH_MAGIC):
        return None
    offset = len(_OPENSSH_MAGIC)
    try:
        for _ in range(3):  # cipher name, kdf name, kdf options
            (length,) = struct.unpack_from(">I", data, offset)
            offset += 4 + length
        (count,) = struct.unpack_from(">I", data, offset)
        (length,) = struct.unpack_from(">I", data, offset + 4)
        blob = data[offset + 8 : offset + 8 + length]
        (name_length,) = struct.unpack_from(">I", blob, 0)
    except struct.error:
        return None
    if count < 1 or len(blob) != length or name_length + 4 > len(blob):
        return None
    return blob[4 : 4 + name_length].decode("ascii", "replace"), blob


def _is_encrypted(error: Exception) -> bool:
    """Whether loading a key failed for want of its passphrase (paramiko says so for PEM keys; the cryptography
    library, which reads OpenSSH-format keys, raises a TypeError saying the key is password-protected)."""
    return isinstance(error, paramiko.PasswordRequiredException) or "password" in str(error).lower()


def open_agent(where: str | None) -> paramiko.Agent | None:
    """The agent at ``where`` (IdentityAgent), else $SSH_AUTH_SOCK's; None when there is none or it is "none"."""
    if where == "none":
        return None
    path = where or os.environ.get("SSH_AUTH_SOCK")
    if not path:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.path.expanduser(path))
    except OSError:
        sock.close()
        if where:  # named in ssh_config: saying nothing would hide why its keys are not used
            warnings.warn(f"IdentityAgent {where}: cannot connect to the agent there", UserWarning, stacklevel=2)
        return None
    return agent_connected_to(sock)


def _agent_keys(agent: paramiko.Agent | None) -> list[paramiko.AgentKey]:
    if agent is None:
        return []
    try:
        return list(agent.get_keys())[:MAX_AGENT_KEYS]
    except (paramiko.SSHException, OSError):
        return []


class KeysAndAgent(AuthStrategy):
    """fanout's authentication: the sources above, each tried once, in OpenSSH's order."""

    def __init__(self, username: str, credentials: Credentials) -> None:
        super().__init__(ssh_config=None)
        self.username = username
        self.credentials = credentials
        self.agent: paramiko.Agent | None = None

    def get_sources(self) -> Iterator[AuthSource]:
        creds = self.credentials
        self.agent = open_agent(creds.identity_agent)
        agent_keys = _agent_keys(self.agent)
        by_blob = {key.asbytes(): key for key in agent_keys}
        offered: set[bytes] = set()
        for path in creds.identity_files:
            source = self._identity(path, by_blob)
            if source is None:
                continue
            blob = getattr(getattr(source, "pkey", None), "asbytes", lambda: None)()
            if blob in offered:
                continue
            if blob is not None:
                offered.add(blob)
            yield source
        if not creds.identities_only:
            for key in agent_keys:
                if key.asbytes() not in offered and key.get_name() not in SECURITY_KEY_TYPES:
                    yield InMemoryPrivateKey(self.username, key)
        if creds.password is not None:
            password = creds.password
            yield Password(self.username, lambda: password)

    def _identity(self, path: str, by_blob: Mapping[bytes, paramiko.AgentKey]) -> AuthSource | None:
        """One identity file as an auth source; None for an absent default file (OpenSSH skips those silently)."""
        if not os.path.exists(path):
            if self.credentials.identities_given:
                return _Unusable(self.username, path, "no such identity file")
            return None
        described = public_blob(path)
        if described is not None and described[0] in SECURITY_KEY_TYPES:
            return _Unusable(
                self.username,
                path,
                f"{described[0]} is a security key (FIDO), which fanout does not support; "
                "use an ed25519, ecdsa or rsa key",
            )
        if described is not None and described[1] in by_blob:
            key = by_blob[described[1]]
            self._attach_certificate(key, path)
            return InMemoryPrivateKey(self.username, key)
        try:
            if os.path.getsize(path) > MAX_KEY_FILE_BYTES:
                return _Unusable(self.username, path, f"over {MAX_KEY_FILE_BYTES} bytes: not a key file")
            passphrase = self.credentials.passphrase_for(path)
            key = paramiko.PKey.from_path(path, None if passphrase is None else passphrase.encode())
        except (paramiko.PasswordRequiredException, TypeError) as exc:
            if not _is_encrypted(exc):
                return _Unusable(self.username, path, f"cannot load the key: {exc}")
            return _Unusable(
                self.username,
                path,
                "the key is encrypted and neither ssh-agent holds it nor was a passphrase given "
                "(add it with ssh-add, or give its passphrase)",
            )
        except (paramiko.SSHException, OSError, ValueError) as exc:
            return _Unusable(self.username, path, f"cannot load the key: {exc}")
        self._attach_certificate(key, path)
        return OnDiskPrivateKey(
            self.username, "ssh-config" if self.credentials.identities_given else "implicit-home", path, key
        )

    def _attach_certificate(self, key: paramiko.PKey, path: str) -> None:
        """Load the key's certificate (CertificateFile, else ``<key>-cert.pub``), when there is one that fits."""
        if getattr(key, "public_blob", None) is not None:
            return
        for candidate in (*self.credentials.certificate_files, path + "-cert.pub"):
            if not os.path.isfile(candidate):
                continue
            try:
                key.load_certificate(candidate)
                return
            except (ValueError, paramiko.SSHException, OSError, AttributeError):
                continue  # a certificate for another key: OpenSSH tries the next one too

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()


def keys_needing_passphrase(credentials: Credentials) -> list[str]:
    """The identity files that are encrypted, held by no agent, and have no passphrase given: what to ask for.
    The agent is asked only when some key is encrypted (a fleet of many hosts then opens it rarely)."""
    encrypted = []
    for path in credentials.identity_files:
        if not os.path.isfile(path) or credentials.passphrase_for(path) is not None:
            continue
        described = public_blob(path)
        if described is not None and described[0] in SECURITY_KEY_TYPES:
            continue  # refused when connecting, with the reason: no passphrase would help
        try:
            paramiko.PKey.from_path(path)
        except (paramiko.PasswordRequiredException, TypeError) as exc:
            if _is_encrypted(exc):
                encrypted.append((path, described))
        except (paramiko.SSHException, OSError, ValueError):
            continue  # unusable for another reason: connecting says which
    if not encrypted:
        return []
    agent = open_agent(credentials.identity_agent)
    try:
        held = {key.asbytes() for key in _agent_keys(agent)}
    finally:
        if agent is not None:
            agent.close()
    return [path for path, described in encrypted if described is None or described[1] not in held]
