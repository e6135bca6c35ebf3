"""OpenSSH host certificates, read and checked as ssh checks them: a certificate is bytes the host chose.

A host whose name matches an ``@cert-authority`` line of known_hosts may prove
its key with a certificate signed by that CA (``PROTOCOL.certkeys``). paramiko
hands the certificate over unread (``key.public_blob``) and its own reader pads
what is missing with zeros, so the certificate is read here: every length is
checked against what is left before anything is sliced, the whole is at most
MAX_CERTIFICATE_BYTES, keys are built only from fields of the right size. What
the checks refuse, they refuse with a :class:`CertificateError` whose
``reason`` names the check. The checks are OpenSSH 10.3's (``sshkey.c``
cert_parse, sshkey_cert_check_host): a host certificate without principals is
refused (earlier releases took it for any host name, the fail-open that
CVE-2024-7594 exploited), principals may be ``*``/``?`` patterns, any critical
option is refused, and so is a CA signature made with SHA-1 (``ssh-rsa``, out
of OpenSSH's default CASignatureAlgorithms since 8.2).
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import paramiko
from paramiko.message import Message

MAX_CERTIFICATE_BYTES = 64 * 1024  # a real one is a few KiB; room for MAX_PRINCIPALS long names
MAX_PRINCIPALS = 256  # OpenSSH's SSHKEY_CERT_MAX_PRINCIPALS: a longer list is malformed
MAX_OPTIONS = 256  # critical options, and extensions: a real certificate has a handful
MAX_RSA_BITS = 16384  # OpenSSH's SSHBUF_MAX_BIGNUM: larger RSA keys are refused before any arithmetic
MIN_RSA_BITS = 1024  # OpenSSH's RequiredRSASize default
_MAX_MPINT_BYTES = MAX_RSA_BITS // 8 + 1  # the sign byte an mpint may lead with
_SHOWN_BYTES = 64  # of a host's string quoted in an error

HOST_CERTIFICATE, USER_CERTIFICATE = 2, 1
FOREVER = 2**64 - 1  # valid_before of a certificate that never expires

# Why a certificate was refused: CertificateError.reason.
MALFORMED = "malformed"
UNSUPPORTED = "unsupported"
BAD_SIGNATURE = "bad signature"
SIGNATURE_ALGORITHM = "signature algorithm"
REVOKED_CA = "revoked CA"
UNKNOWN_CA = "unknown CA"
NOT_A_HOST_CERTIFICATE = "not a host certificate"
NOT_YET_VALID = "not yet valid"
EXPIRED = "expired"
NO_PRINCIPALS = "no principals"
WRONG_PRINCIPAL = "wrong principal"
CRITICAL_OPTIONS = "critical options"
# A forged, garbled or revoked certificate ends the connection whatever else known_hosts says (OpenSSH fails
# the key exchange on the first two); after any other refusal the host's plain key is checked instead.
FATAL = frozenset({MALFORMED, BAD_SIGNATURE, REVOKED_CA})

# Certificate types paramiko can take a host key of: the type in the blob -> the certified key's type.
CERTIFICATE_TYPES = {
    "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
    "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
}
# The host key algorithms that yield them, in OpenSSH's order of preference.
CERTIFICATE_KEY_TYPES = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
)
# A CA key type -> the signature algorithms accepted from it (OpenSSH's default CASignatureAlgorithms).
SIGNATURE_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}
_ED25519_BYTES = 32
_ECDSA_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}  # uncompressed: 04 || x || y


class CertificateError(Exception):
    """A certificate refused: ``reason`` is one of the reason constants above, the message says more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason

    @property
    def fatal(self) -> bool:
        """Whether the host is refused outright, rather than judged by its plain key instead."""
        return self.reason in FATAL


@dataclass(frozen=True)
class Certificate:
    """A certificate read from a host: its fields, and what its CA signed."""

    key: paramiko.PKey  # the certified key, as a plain key
    serial: int
    cert_type: int
    key_id: str  # shown escaped, cut to _SHOWN_BYTES
    principals: tuple[bytes, ...]
    valid_after: int
    valid_before: int
    critical_options: tuple[bytes, ...]  # names only
    ca_blob: bytes  # the signing key as sent
    ca: paramiko.PKey | None  # None for a CA key type paramiko cannot verify
    signed: bytes  # what the CA signed: everything up to the signature
    signature: bytes


class _Reader:
    """SSH wire fields of one bounded blob: a length is checked against what is left before it is sliced."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _take(self, size: int, what: str) -> bytes:
        if size > len(self.data) - self.at:
            raise CertificateError(MALFORMED, f"malformed certificate: {what} runs past the end")
        start, self.at = self.at, self.at + size
        return self.data[start : self.at]

    def uint32(self, what: str) -> int:
        return struct.unpack(">I", self._take(4, what))[0]

    def uint64(self, what: str) -> int:
        return struct.unpack(">Q", self._take(8, what))[0]

    def string(self, what: str) -> bytes:
        return self._take(self.uint32(what), what)

    def name(self, what: str) -> str:
        raw = self.string(what)
        if len(raw) > _SHOWN_BYTES or not raw.isascii() or not raw.decode().isprintable():
            raise CertificateError(MALFORMED, f"malformed certificate: {what} is not a type name")
        return raw.decode()

    def end(self, what: str) -> None:
        if self.at != len(self.data):
            raise CertificateError(MALFORMED, f"malformed certificate: {len(self.data) - self.at} bytes after {what}")


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _key_fields(reader: _Reader, key_type: str, what: str) -> bytes:
    """The public fields of a ``key_type`` key, re-encoded, each checked for its size before use."""
    if key_type == "ssh-ed25519":
        point = reader.string(what)
        if len(point) != _ED25519_BYTES:
            raise CertificateError(MALFORMED, f"malformed certificate: {what} is not an Ed25519 key")
        return _string(point)
    if key_type == "ssh-rsa":
        e, n = reader.string(what), reader.string(what)
        if len(e) > _MAX_MPINT_BYTES or len(n) > _MAX_MPINT_BYTES:
            raise CertificateError(MALFORMED, f"malformed certificate: {what} is an RSA key over {MAX_RSA_BITS} bits")
        return _string(e) + _string(n)
    curve = key_type.rpartition("-")[2]
    if reader.string(what) != curve.encode():
        raise CertificateError(MALFORMED, f"malformed certificate: {what} names another curve than {curve}")
    point = reader.string(what)
    if len(point) != _ECDSA_POINT_BYTES[curve]:
        raise CertificateError(MALFORMED, f"malformed certificate: {what} is not an uncompressed {curve} point")
    return _string(curve.encode()) + _string(point)


def _public_key(key_type: str, fields: bytes, what: str) -> paramiko.PKey:
    try:
        key = paramiko.PKey.from_type_string(key_type, _string(key_type.encode()) + fields)
    except Exception as exc:  # the crypto libraries refuse bad points and numbers each their own way
        raise CertificateError(MALFORMED, f"malformed certificate: {what} is not a valid key ({exc})") from exc
    if key_type == "ssh-rsa" and not MIN_RSA_BITS <= key.get_bits() <= MAX_RSA_BITS:
        raise CertificateError(MALFORMED, f"malformed certificate: {what} is a {key.get_bits()}-bit RSA key")
    return key


def _list(data: bytes, what: str, pairs: bool, limit: int) -> list[bytes]:
    """The strings of a packed list (names of name/value pairs when ``pairs``); none may hold a NUL."""
    reader, found = _Reader(data), []
    while reader.at < len(data):
        if len(found) >= limit:
            raise CertificateError(MALFORMED, f"malformed certificate: more than {limit} {what}")
        item = reader.string(what)
        if pairs:
            reader.string(what)
        if b"\0" in item:
            raise CertificateError(MALFORMED, f"malformed certificate: one of its {what} holds a NUL byte")
        found.append(item)
    return found


def shown(data: bytes) -> str:
    """A host's bytes quoted for an error message: escaped, and cut short."""
    text = repr(data[:_SHOWN_BYTES].decode("utf-8", "replace"))
    return text + ("..." if len(data) > _SHOWN_BYTES else "")


def parse(blob: bytes) -> Certificate:
    """Read a certificate; CertificateError (MALFORMED, or UNSUPPORTED for a type paramiko lacks) if it is not one."""
    if len(blob) > MAX_CERTIFICATE_BYTES:
        raise CertificateError(MALFORMED, f"malformed certificate: over {MAX_CERTIFICATE_BYTES} bytes")
    reader = _Reader(blob)
    cert_type_name = reader.name("its type")
    key_type = CERTIFICATE_TYPES.get(cert_type_name)
    if key_type is None:
        raise CertificateError(UNSUPPORTED, f"certificate type {cert_type_name!r} is not one fanout can verify")
    reader.string("its nonce")
    fields = _key_fields(reader, key_type, "its key")
    serial, cert_type = reader.uint64("its serial"), reader.uint32("its type")
    key_id = reader.string("its key id")
    principals = _list(reader.string("its principals"), "principals", pairs=False, limit=MAX_PRINCIPALS)
    valid_after, valid_before = reader.uint64("its validity"), reader.uint64("its validity")
    critical = _list(reader.string("its critical options"), "critical options", pairs=True, limit=MAX_OPTIONS)
    _list(reader.string("its extensions"), "extensions", pairs=True, limit=MAX_OPTIONS)
    reader.string("its reserved field")
    ca_blob = reader.string("its CA key")
    signed = blob[: reader.at]
    signature = reader.string("its signature")
    reader.end("its signature")
    return Certificate(
        key=_public_key(key_type, fields, "its key"),
        serial=serial,
        cert_type=cert_type,
        key_id=shown(key_id),
        principals=tuple(principals),
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=tuple(critical),
        ca_blob=ca_blob,
        ca=_ca_key(ca_blob),
        signed=signed,
        signature=signature,
    )


def _ca_key(blob: bytes) -> paramiko.PKey | None:
    reader = _Reader(blob)
    ca_type = reader.name("its CA key type")
    if ca_type.endswith("-cert-v01@openssh.com"):
        raise CertificateError(MALFORMED, "malformed certificate: its CA key is itself a certificate")
    if ca_type not in SIGNATURE_ALGORITHMS:
        return None  # a security-key or DSA CA: refused as UNSUPPORTED by verify, after revocation is checked
    fields = _key_fields(reader, ca_type, "its CA key")
    reader.end("its CA key")
    return _public_key(ca_type, fields, "its CA key")


def verify(cert: Certificate) -> None:
    """Check the CA's signature over the certificate: BAD_SIGNATURE, SIGNATURE_ALGORITHM or UNSUPPORTED if not."""
    if cert.ca is None:
        raise CertificateError(
            UNSUPPORTED, f"its CA key is of a type fanout cannot verify ({blob_type(cert.ca_blob) or 'unreadable'})"
        )
    reader = _Reader(cert.signature)
    algorithm = reader.name("its signature type")
    reader.string("its signature")
    reader.end("its signature")
    if algorithm == "ssh-rsa" and cert.ca.get_name() == "ssh-rsa":
        raise CertificateError(SIGNATURE_ALGORITHM, "its CA signed it with ssh-rsa (SHA-1), which OpenSSH refuses")
    if algorithm not in SIGNATURE_ALGORITHMS[cert.ca.get_name()]:
        raise CertificateError(
            BAD_SIGNATURE, f"its signature is {algorithm}, which a {cert.ca.get_name()} CA cannot make"
        )
    try:
        good = cert.ca.verify_ssh_sig(cert.signed, Message(cert.signature))
    except Exception:  # a signature that does not even decode is as bad as a wrong one
        good = False
    if not good:
        raise CertificateError(BAD_SIGNATURE, f"the signature of its CA ({fingerprint(cert.ca)}) does not verify")


def check_host(cert: Certificate, hostname: str, now: float | None = None) -> None:
    """The checks ssh makes of a host certificate from a CA it trusts for ``hostname`` (the name, without port)."""
    if cert.cert_type != HOST_CERTIFICATE:
        kind = "a user certificate" if cert.cert_type == USER_CERTIFICATE else f"of type {cert.cert_type}"
        raise CertificateError(NOT_A_HOST_CERTIFICATE, f"it is {kind}, not a host certificate")
    now = int(time.time() if now is None else now)
    if now < cert.valid_after:
        raise CertificateError(NOT_YET_VALID, f"it is not valid before {_when(cert.valid_after)}")
    if now >= cert.valid_before:
        raise CertificateError(EXPIRED, f"it expired at {_when(cert.valid_before)}")
    if not cert.principals:
        raise CertificateError(NO_PRINCIPALS, "it lists no principals (OpenSSH 10.3 and later refuse that too)")
    name = hostname.encode("utf-8", "surrogateescape").lower()
    if not any(match_pattern(name, principal) for principal in cert.principals):
        listed = ", ".join(shown(p) for p in cert.principals[:5]) + (", ..." if len(cert.principals) > 5 else "")
        raise CertificateError(WRONG_PRINCIPAL, f"{hostname!r} is not one of its principals ({listed})")
    if cert.critical_options:
        names = ", ".join(shown(o) for o in cert.critical_options[:5])
        raise CertificateError(CRITICAL_OPTIONS, f"it has critical options, which no host certificate may: {names}")


def match_pattern(string: bytes, pattern: bytes) -> bool:
    """OpenSSH's match_pattern: ``*`` is any run of bytes, ``?`` any one byte, the rest is literal.

    Never backtracking: the fixed pieces between stars are placed leftmost in
    turn, each found by a C-speed search, after a length check that refuses
    pieces longer together than ``string``.
    """
    parts = pattern.split(b"*")
    if len(parts) == 1:
        return _fits(string, pattern)
    head, *middle, tail = parts
    if sum(map(len, parts)) > len(string):
        return False
    if not (_fits(string[: len(head)], head) and _fits(string[len(string) - len(tail) :], tail)):
        return False
    at, end = len(head), len(string) - len(tail)
    for part in middle:
        if part:
            found = _find(string, part, at, end)
            if found < 0:
                return False
            at = found + len(part)
    return True


def _fits(data: bytes, piece: bytes) -> bool:
    if b"?" not in piece:
        return data == piece
    return len(data) == len(piece) and all(p == 0x3F or p == d for p, d in zip(piece, data, strict=True))


def _find(data: bytes, piece: bytes, start: int, end: int) -> int:
    if b"?" not in piece:
        return data.find(piece, start, end)
    found = re.compile(b".".join(map(re.escape, piece.split(b"?"))), re.DOTALL).search(data, start, end)
    return -1 if found is None else found.start()


def _when(seconds: int) -> str:
    if seconds == FOREVER:
        return "forever"
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} seconds after 1970"


def blob_type(blob: bytes) -> str:
    """The type name a key or certificate blob starts with; "" when it has none."""
    try:
        return _Reader(blob).name("its type")
    except CertificateError:
        return ""


def fingerprint(key: paramiko.PKey) -> str:
    """How an error names a key: its type and SHA256 fingerprint, as ssh shows them."""
    return f"{key.get_name()} {key.fingerprint}"
