"""known_hosts read and matched as OpenSSH reads and matches it, so a host fanout accepts is one ssh accepts.

paramiko's HostKeys matches names exactly (no ``*``, ``?`` or ``!``), keeps one
key per name and type, and stops reading at the first line it cannot decode.
Here each line stands alone (one that cannot be used is skipped with a warning
naming the file and the line), and :class:`HostKeyCheck` decides as ssh's
check_host_key does (OpenSSH 10.3: sshconnect.c, hostfile.c, match.c):

- a line names hosts by a comma-separated list of patterns (``*``, ``?``; a
  leading ``!`` excludes), matched without regard to case, or by one hashed
  name (``|1|salt|hash``); a host on a port other than 22 is ``[host]:port``,
  and when no line names it so, the lines naming the bare ``host`` are tried;
- a plain key is accepted when a line naming the host holds it; a host that
  lines name, none with this key, has changed its key (BadHostKeyException);
- a host certificate is accepted when it verifies and an ``@cert-authority``
  line naming the host holds its CA (``fanout/_host_certificates.py``); when it
  is refused for anything but forgery, garbling or a revoked CA, the host's
  plain key is judged instead, as ssh does;
- a key on an ``@revoked`` line is refused, as a host key or as a CA, whatever
  names the line has (ssh heeds only the lines naming the host: stricter here);
- a host no line names is left to the next policy: refusal, or accept-new.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path

import paramiko

from fanout import _host_certificates as certificates
from fanout._host_certificates import CERTIFICATE_KEY_TYPES, CertificateError, fingerprint, match_pattern

MAX_FILE_BYTES = 64 * 1024 * 1024  # a known_hosts file larger than this is refused, not read
MAX_PATTERN = 1022  # OpenSSH's match_pattern_list: a longer pattern makes its whole list match nothing
DEFAULT_PORT = 22  # the port known_hosts leaves unwritten
_HASH_SALT_BYTES = 20  # |1|: HMAC-SHA1, keyed with a salt of this size
CERTIFICATE_AUTHORITY, REVOKED_MARKER = "@cert-authority", "@revoked"
# HostKeyRefused.reason besides the certificate reasons of fanout/_host_certificates.py.
REVOKED, UNKNOWN = "revoked", "unknown"
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")  # what a known ssh-rsa key is offered as


class HostKeyRefused(paramiko.SSHException):
    """A host key or certificate refused: ``reason`` is REVOKED, UNKNOWN or a certificate's reason."""

    def __init__(self, hostname: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.hostname = hostname
        self.reason = reason


@dataclass(frozen=True)
class KnownHostLine:
    """One usable line: where it is, its marker ("" for a plain key), the hosts it names, its key."""

    path: Path
    number: int
    marker: str
    names: str
    key: paramiko.PKey
    blob: bytes  # the key as SSH encodes it: what keys are compared by
    salt: bytes | None  # a hashed name's salt; None for a pattern list

    def matches(self, host: bytes) -> bool:
        """Whether the line names ``host`` (lowercase, ``[host]:port`` off port 22)."""
        if self.salt is not None:
            return self.names == _hashed(host, self.salt)
        return _match_list(host, self.names.encode("utf-8", "surrogateescape")) == 1


class KnownHosts:
    """The usable lines of some known_hosts files: ``read`` each file, then check hosts with HostKeyCheck."""

    def __init__(self) -> None:
        self.lines: list[KnownHostLine] = []
        self.revoked: set[bytes] = set()  # key blobs marked @revoked: never accepted, whatever else says

    def read(self, path: str | os.PathLike) -> None:
        """Take the usable lines of ``path``; OSError if it cannot be read."""
        path = Path(path)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise OSError(f"{path} is over {MAX_FILE_BYTES} bytes: not a known_hosts file fanout reads")
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                try:
                    self._take(_parse(path, number, line))
                except _Unusable as why:
                    _skip(path, number, str(why))

    def add(self, names: str, key: paramiko.PKey, path: Path) -> None:
        """Know ``key`` for ``names`` from now on (a line just appended to ``path``)."""
        self._take(_line(path, 0, "", names, key))

    def _take(self, line: KnownHostLine) -> None:
        self.lines.append(line)
        if line.marker == REVOKED_MARKER:
            self.revoked.add(line.blob)

    def matching(self, name: str, marker: str = "") -> list[KnownHostLine]:
        """The lines with ``marker`` naming ``name`` (``host``, or ``[host]:port`` off port 22), in file order."""
        host = name.encode("utf-8", "surrogateescape").lower()
        return [line for line in self.lines if line.marker == marker and line.matches(host)]

    def for_host(self, hostname: str, port: int, marker: str = "") -> list[KnownHostLine]:
        """The lines naming ``[hostname]:port``; off port 22 those naming ``hostname`` when there are none."""
        found = self.matching(_name(hostname, port), marker)
        if not found and port != DEFAULT_PORT:
            found = self.matching(hostname, marker)
        return found

    def certificate_key_types(self, hostname: str, port: int) -> tuple[str, ...]:
        """The certificate algorithms to offer first to this host: all, when a CA line names it; else none."""
        return CERTIFICATE_KEY_TYPES if self.for_host(hostname, port, CERTIFICATE_AUTHORITY) else ()

    def preferred_key_types(self, hostname: str, port: int, offered: Sequence[str]) -> tuple[str, ...]:
        """``offered`` (plain host key algorithms) in ssh's order for this host: certificates when a CA line names
        it, then the algorithms of its known keys, then the rest; unchanged for a host no line names."""
        offered = tuple(offered)
        first = [t for t in self.certificate_key_types(hostname, port) if t.split("-cert-")[0] in offered]
        known: set[str] = set()
        for line in self.for_host(hostname, port):
            name = line.key.get_name()
            known.update(_RSA_ALGORITHMS if name == "ssh-rsa" else (name,))
        first += [t for t in offered if t in known and t not in first]
        return (*first, *(t for t in offered if t not in first))

    def transport_factory(
        self, hostname: str, port: int, base: Callable[..., paramiko.Transport] = paramiko.Transport
    ) -> Callable[..., paramiko.Transport]:
        """A ``transport_factory`` for SSHClient.connect: ``base``'s transports, offering preferred_key_types."""

        def make(sock, **kwargs) -> paramiko.Transport:
            transport = base(sock, **kwargs)
            options = transport.get_security_options()
            options.key_types = self.preferred_key_types(hostname, port, options.key_types)
            return transport

        return make

    def check_certificate(self, key: paramiko.PKey, hostname: str, port: int) -> None:
        """Accept the certificate ``key`` carries for ``hostname``:``port``, or raise CertificateError saying why."""
        cert = certificates.parse(key.public_blob.key_blob)
        if cert.key.asbytes() != key.asbytes():
            raise CertificateError(certificates.MALFORMED, "it certifies another key than the one the host signed with")
        unverified = None
        try:
            certificates.verify(cert)
        except CertificateError as exc:
            if exc.fatal:
                raise
            unverified = exc
        ca_blob = cert.ca.asbytes() if cert.ca is not None else cert.ca_blob
        if ca_blob in self.revoked:
            shown = fingerprint(cert.ca) if cert.ca is not None else "of a type fanout cannot read"
            raise CertificateError(certificates.REVOKED_CA, f"its CA ({shown}) is marked @revoked in known_hosts")
        if unverified is not None:
            raise unverified
        trusted = self.matching(_name(hostname, port), CERTIFICATE_AUTHORITY)
        if port != DEFAULT_PORT and not any(line.blob == ca_blob for line in trusted):
            trusted += self.matching(hostname, CERTIFICATE_AUTHORITY)
        if not any(line.blob == ca_blob for line in trusted):
            theirs = ", ".join(sorted({fingerprint(line.key) for line in trusted}))
            raise CertificateError(
                certificates.UNKNOWN_CA,
                f"its CA ({fingerprint(cert.ca)}) is on no @cert-authority line naming {_name(hostname, port)}"
                + (f" (those name {theirs})" if theirs else ""),
            )
        certificates.check_host(cert, hostname)

    def plain_status(self, key: paramiko.PKey, hostname: str, port: int) -> tuple[bool, paramiko.PKey | None]:
        """(True, None) when a line naming the host holds ``key``; (False, a key it holds instead) when it has
        changed; (False, None) when no line names it."""
        blob = key.asbytes()
        lines = self.matching(_name(hostname, port))
        if any(line.blob == blob for line in lines):
            return True, None
        if lines:
            return False, lines[0].key
        if port != DEFAULT_PORT and any(line.blob == blob for line in self.matching(hostname)):
            return True, None
        return False, None

    def into(self, host_keys: paramiko.HostKeys) -> None:
        """For a client without HostKeyCheck: add the plain keys paramiko can match itself (literal and hashed
        names, no revoked key). With HostKeyCheck leave ``host_keys`` empty: paramiko compares a key it finds
        there itself, with one key per name and type, and never asks the policy."""
        for line in self.lines:
            literal = line.salt is not None or not any(c in line.names for c in "*?!")
            if line.marker == "" and literal and line.blob not in self.revoked:
                for name in [line.names] if line.salt is not None else line.names.split(","):
                    host_keys.add(name, line.key.get_name(), line.key)


class HostKeyCheck(paramiko.MissingHostKeyPolicy):
    """Called by paramiko for every host key when its HostKeys is left empty: accepts a key or certificate
    known_hosts vouches for, as ssh would; otherwise defers to ``then`` (AcceptNew or paramiko.RejectPolicy()).
    Raises HostKeyRefused, or paramiko.BadHostKeyException when the host's key has changed."""

    def __init__(self, known: KnownHosts, then: paramiko.MissingHostKeyPolicy) -> None:
        self.known = known
        self.then = then

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        host, port = _split(hostname)
        if key.asbytes() in self.known.revoked:
            raise HostKeyRefused(
                hostname, REVOKED, f"the host key of {hostname} ({fingerprint(key)}) is marked @revoked in known_hosts"
            )
        refused = None
        negotiated = getattr(client.get_transport(), "host_key_type", None) or ""
        sent_certificate = getattr(key, "public_blob", None) is not None
        try:
            if negotiated and sent_certificate != ("-cert-" in negotiated):
                raise CertificateError(certificates.MALFORMED, f"it sent a key unlike the agreed type, {negotiated}")
            if sent_certificate:
                self.known.check_certificate(key, host, port)
                return
        except CertificateError as exc:
            if exc.fatal:
                raise _refused(hostname, exc, None) from exc
            refused = exc
        accepted, expected = self.known.plain_status(key, host, port)
        if accepted:
            return
        if expected is not None:
            if refused is not None:
                raise _refused(hostname, refused, f"its plain key ({fingerprint(key)}) does not match known_hosts")
            raise paramiko.BadHostKeyException(hostname, key, expected)
        try:
            self.then.missing_host_key(client, hostname, key)
        except HostKeyRefused:
            raise
        except paramiko.SSHException as exc:
            if refused is not None:
                raise _refused(hostname, refused, f"its plain key ({fingerprint(key)}) is not in known_hosts") from exc
            raise HostKeyRefused(
                hostname, UNKNOWN, f"Server {hostname!r} not found in known_hosts{self._why(host, port)}"
            ) from exc

    def _why(self, host: str, port: int) -> str:
        """What the @cert-authority lines have to do with an unknown host."""
        if self.known.certificate_key_types(host, port):
            return "; an @cert-authority line names it, but it sent no certificate"
        if any(line.marker == CERTIFICATE_AUTHORITY for line in self.known.lines):
            return "; the @cert-authority lines there name other hosts"
        return ""


def _refused(hostname: str, error: CertificateError, plain_key: str | None) -> HostKeyRefused:
    text = f"the host certificate of {hostname} is refused: {error}"
    return HostKeyRefused(hostname, error.reason, text + (f"; and {plain_key}" if plain_key else ""))


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """accept-new: a host not in known_hosts is added to it (appended, one line, as OpenSSH writes it: hashed with
    ``hash_names``, ssh_config's HashKnownHosts), unless its key is revoked."""

    def __init__(self, path: str | os.PathLike, known: KnownHosts, hash_names: bool = False) -> None:
        self.path = Path(path)
        self.known = known
        self.hash_names = hash_names

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if key.asbytes() in self.known.revoked:
            raise HostKeyRefused(hostname, REVOKED, f"the host key of {hostname} is marked @revoked in known_hosts")
        name = hostname.encode("utf-8", "surrogateescape").lower()
        written = _hashed(name, os.urandom(_HASH_SALT_BYTES)) if self.hash_names else name.decode("utf-8", "replace")
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known.add(written, key, self.path)
        line = f"{written} {key.get_name()} {base64.b64encode(key.asbytes()).decode()}\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            if size and os.pread(f.fileno(), 1, size - 1) != b"\n":
                line = "\n" + line  # the file's last line had no end
            f.write(line.encode())


class _Unusable(ValueError):
    """Why a line is skipped."""


def _parse(path: Path, number: int, line: str) -> KnownHostLine:
    marker = ""
    if line.startswith("@"):
        marker, _, line = line.replace("\t", " ").partition(" ")
        if marker not in (CERTIFICATE_AUTHORITY, REVOKED_MARKER):
            raise _Unusable(f"unknown marker {marker[:40]!r}")
    fields = line.split()
    if len(fields) < 3:
        raise _Unusable("it is not a host key line (too few fields)")
    names, key_type, encoded = fields[:3]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Unusable(f"it is not a host key line (its key is not base64: {exc})") from None
    if key_type not in certificates.SIGNATURE_ALGORITHMS or certificates.blob_type(blob) != key_type:
        raise _Unusable(f"its key type {key_type[:40]!r} is not one fanout reads, or not the key's own")
    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except Exception as exc:  # paramiko and the crypto libraries raise several kinds
        raise _Unusable(f"its key cannot be read ({type(exc).__name__})") from None
    return _line(path, number, marker, names, key)


def _line(path: Path, number: int, marker: str, names: str, key: paramiko.PKey) -> KnownHostLine:
    salt = None
    if names.startswith("|"):
        magic, _, rest = names.partition("|1|")
        encoded_salt, bar, _ = rest.partition("|")
        try:
            salt = base64.b64decode(encoded_salt, validate=True)
        except (binascii.Error, ValueError):
            salt = b""
        if magic or not bar or len(salt) != _HASH_SALT_BYTES:
            raise _Unusable("its hashed name is not |1|salt|hash")
    return KnownHostLine(path, number, marker, names, key, key.asbytes(), salt)


def _hashed(host: bytes, salt: bytes) -> str:
    """A host name hashed as ssh writes it with HashKnownHosts: ``|1|`` base64 salt ``|`` base64 HMAC-SHA1."""
    digest = hmac.new(salt, host, sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _match_list(host: bytes, patterns: bytes) -> int:
    """OpenSSH's match_pattern_list for host names: -1 if an excluding ``!pattern`` matches, 1 if another does."""
    positive = 0
    for pattern in patterns.split(b","):
        negated = pattern.startswith(b"!")
        pattern = pattern[1:] if negated else pattern
        if len(pattern) > MAX_PATTERN:
            return 0
        if match_pattern(host, pattern.lower()):
            if negated:
                return -1
            positive = 1
    return positive


def _name(hostname: str, port: int) -> str:
    """How known_hosts names a host: ``host`` on port 22, ``[host]:port`` elsewhere."""
    return hostname if port == DEFAULT_PORT else f"[{hostname}]:{port}"


def _split(name: str) -> tuple[str, int]:
    """The host and port of a known_hosts name as paramiko makes it."""
    if name.startswith("["):
        host, bar, port = name[1:].rpartition("]:")
        if bar and port.isdigit():
            return host, int(port)
    return name, DEFAULT_PORT


def _skip(path: Path, number: int, why: str) -> None:
    warnings.warn(f"{path}, line {number}: skipped: {why}", UserWarning, stacklevel=3)
