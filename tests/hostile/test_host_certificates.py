"""Host certificates a hostile host may send: truncated, oversized, garbage, lengths pointing past the end, huge
principal lists, patterns made to backtrack, keys made to be slow. Each is refused with CertificateError (through
HostKeyCheck: HostKeyRefused), never another exception, within memory bounded by its size and time bounded by it."""

from __future__ import annotations

import io
import random
import struct
import time
import tracemalloc

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.message import Message
from paramiko.pkey import PublicBlob

from fanout import _host_certificates as certificates
from fanout._host_certificates import FOREVER, MAX_CERTIFICATE_BYTES, MAX_PRINCIPALS, CertificateError
from fanout._known_hosts import HostKeyCheck, HostKeyRefused, KnownHosts

CERT_TYPE = "ssh-ed25519-cert-v01@openssh.com"
SMALL = 4 * 1024 * 1024  # bytes a refusal may allocate at its peak: a few times the largest certificate
QUICK = 2.0  # CPU seconds a refusal may take, on the slowest machine that runs the suite


def ed25519() -> paramiko.Ed25519Key:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))


CA, HOST = ed25519(), ed25519()


def packed(*items: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(item)) + item for item in items)


def build(
    principals: list[bytes] | None = None,
    *,
    critical: bytes = b"",
    ca_blob: bytes | None = None,
    signature: bytes | None = None,
    cert_type: int = certificates.HOST_CERTIFICATE,
) -> bytes:
    """A host certificate of HOST signed by CA (unless ``signature`` is given), as a host could send one."""
    point = Message(HOST.asbytes())
    point.get_text()
    m = Message()
    m.add_string(CERT_TYPE)
    m.add_string(b"\x01" * 32)
    m.add_string(point.get_binary())
    m.add_int64(7)
    m.add_int(cert_type)
    m.add_string(b"hostile")
    m.add_string(packed(*(principals if principals is not None else [b"127.0.0.1"])))
    m.add_int64(0)
    m.add_int64(FOREVER)
    m.add_string(critical)
    m.add_string(b"")
    m.add_string(b"")
    m.add_string(ca_blob if ca_blob is not None else CA.asbytes())
    body = m.asbytes()
    return body + packed(signature if signature is not None else CA.sign_ssh_data(body).asbytes())


def judged(blob: bytes, hostname: str = "127.0.0.1") -> str | None:
    """The reason ``blob`` is refused for ``hostname`` by a CA trusting every host, or None if it is accepted."""
    cert = None
    try:
        cert = certificates.parse(blob)
        certificates.verify(cert)
        certificates.check_host(cert, hostname)
    except CertificateError as exc:
        return exc.reason
    assert cert.ca.asbytes() == CA.asbytes()
    return None


def bounded(work, *args):
    """``work(*args)``, asserting the memory and CPU time it took are small; its result."""
    tracemalloc.start()
    started = time.process_time()
    try:
        result = work(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    took = time.process_time() - started
    assert peak < SMALL, f"{peak:,} bytes allocated"
    assert took < QUICK, f"{took:.2f} s of CPU"
    return result


def test_a_good_certificate_is_accepted_so_the_refusals_below_are_of_what_changed() -> None:
    assert judged(build()) is None


def test_every_truncation_is_refused_as_malformed() -> None:
    blob = build()

    def all_prefixes() -> set[str | None]:
        return {judged(blob[:end]) for end in range(len(blob))}

    assert bounded(all_prefixes) == {certificates.MALFORMED}


def test_an_oversized_certificate_is_refused_before_it_is_read() -> None:
    blob = build([b"p" * 100] * 200)
    blob += b"\0" * (MAX_CERTIFICATE_BYTES + 1 - len(blob))
    with pytest.raises(CertificateError, match=f"over {MAX_CERTIFICATE_BYTES} bytes") as caught:
        bounded(certificates.parse, blob)
    assert caught.value.reason == certificates.MALFORMED


def test_every_length_pointing_past_the_end_is_refused() -> None:
    blob = build([b"a.example", b"127.0.0.1"])

    def every_offset() -> set[str | None]:
        reasons = set()
        for at in range(len(blob) - 3):
            for length in (0xFFFFFFFF, 0x7FFFFFFF, len(blob) - at - 3):
                changed = blob[:at] + struct.pack(">I", length) + blob[at + 4 :]
                if changed != blob:
                    reasons.add(judged(changed))
        return reasons

    reasons = bounded(every_offset)
    assert None not in reasons  # each change is refused: a forged byte anywhere breaks the signature at least
    assert reasons <= {
        certificates.MALFORMED,
        certificates.BAD_SIGNATURE,
        certificates.UNSUPPORTED,
        certificates.NOT_A_HOST_CERTIFICATE,  # the type field is signed too: only its number is checked first
    }


def test_garbage_and_flipped_bytes_are_refused() -> None:
    blob = build()
    rng = random.Random(12)

    def garbage() -> set[str | None]:
        reasons = {judged(rng.randbytes(rng.randrange(0, 2000))) for _ in range(2000)}
        reasons |= {judged(bytes(rng.randrange(256) for _ in range(len(blob)))) for _ in range(200)}
        for at in range(len(blob)):
            flipped = bytearray(blob)
            flipped[at] ^= 1 << rng.randrange(8)
            reasons.add(judged(bytes(flipped)))
        return reasons

    reasons = bounded(garbage)
    assert None not in reasons and reasons <= {certificates.MALFORMED, certificates.BAD_SIGNATURE, "unsupported"}


def test_a_huge_principal_list_is_refused_and_a_long_one_is_matched_quickly() -> None:
    assert bounded(judged, build([b"p"] * (MAX_PRINCIPALS + 1))) == certificates.MALFORMED
    with pytest.raises(CertificateError, match=f"more than {MAX_PRINCIPALS} principals"):
        certificates.parse(build([b"p"] * (MAX_PRINCIPALS + 1)))
    # Patterns made to backtrack, against the longest names: each checked in time linear in its size.
    backtracking = [b"*a?" * 120 + b"*b*", b"*aa" * 84 + b"*b*", b"*?" * 126 + b"*b*", b"a*" * 125 + b"*b*"]
    evil = build(backtracking * 50)  # each piece is found, but the last
    assert MAX_CERTIFICATE_BYTES - 12000 < len(evil) < MAX_CERTIFICATE_BYTES
    assert bounded(judged, evil, "a" * 253) == certificates.WRONG_PRINCIPAL
    assert bounded(judged, build([b"*" * 60000]), "a" * 253) is None  # a star matches anything: accepted
    assert bounded(judged, build([b"?" * 30000, b"*" + b"?" * 30000]), "a" * 253) == certificates.WRONG_PRINCIPAL


def test_a_nul_in_a_principal_and_any_critical_option_are_refused() -> None:
    assert judged(build([b"127.0.0.1\0evil.example"])) == certificates.MALFORMED
    assert judged(build(critical=packed(b"force-command", packed(b"/bin/true")))) == certificates.CRITICAL_OPTIONS
    assert judged(build(critical=packed(b"force-command"))) == certificates.MALFORMED  # a name without its value
    many = b"".join(packed(b"o%d" % i, b"") for i in range(certificates.MAX_OPTIONS + 1))
    with pytest.raises(CertificateError, match=f"more than {certificates.MAX_OPTIONS} critical options"):
        bounded(certificates.parse, build(critical=many))
    assert judged(build(cert_type=certificates.USER_CERTIFICATE)) == certificates.NOT_A_HOST_CERTIFICATE
    assert judged(build(cert_type=0xFFFFFFFF)) == certificates.NOT_A_HOST_CERTIFICATE


def test_a_ca_key_that_is_a_certificate_or_unknown_or_slow_is_refused() -> None:
    assert judged(build(ca_blob=build())) == certificates.MALFORMED  # no certificate inside a certificate
    assert judged(build(ca_blob=packed(b"sk-ssh-ed25519@openssh.com", b"k" * 32, b"ssh:"))) == "unsupported"
    assert judged(build(ca_blob=packed(b"ssh-ed25519", b"short"))) == certificates.MALFORMED
    assert judged(build(ca_blob=packed(b"ssh-ed25519", b"k" * 32, b"trailing"))) == certificates.MALFORMED
    assert judged(build(ca_blob=packed(b"ecdsa-sha2-nistp256", b"nistp384", b"\x04" * 65))) == certificates.MALFORMED
    assert judged(build(ca_blob=packed(b"ecdsa-sha2-nistp256", b"nistp256", b"\x04" * 65))) == certificates.MALFORMED
    huge = packed(b"ssh-rsa", b"\x01\x00\x01", b"\x7f" + b"\xff" * 4096)  # 32768 bits: refused before arithmetic
    assert bounded(judged, build(ca_blob=huge)) == certificates.MALFORMED
    # A public exponent as large as the modulus makes verifying a private-key operation: still bounded.
    modulus = b"\x00\xc5" + random.Random(3).randbytes(382) + b"\x01"  # 3072 bits, odd
    exponent = b"\x00\xc3" + random.Random(4).randbytes(382) + b"\x01"  # odd, below the modulus
    slow = packed(b"ssh-rsa", exponent, modulus)
    assert bounded(judged, build(ca_blob=slow, signature=packed(b"rsa-sha2-512", b"\x01" * 384))) in (
        certificates.BAD_SIGNATURE,
        certificates.MALFORMED,
    )


def test_signatures_that_do_not_decode_are_bad_signatures() -> None:
    for signature in (
        b"",
        packed(b"ssh-ed25519"),
        packed(b"ssh-ed25519", b"\0" * 64, b"trailing"),
        packed(b"ssh-ed25519", b"\0" * 63),
        packed(b"rsa-sha2-512", b"\0" * 64),
        packed(b"ssh-ed25519", b"\0" * 100000),
        packed(b"\xff\xfe" * 10, b"\0" * 64),
    ):
        assert bounded(judged, build(signature=signature)) in (certificates.BAD_SIGNATURE, certificates.MALFORMED)


def test_host_key_check_refuses_a_hostile_certificate_even_where_the_plain_key_is_known(tmp_path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"* {HOST.get_name()} {HOST.get_base64()}\n@cert-authority * {CA.get_name()} {CA.get_base64()}\n")
    known = KnownHosts()
    known.read(path)
    check = HostKeyCheck(known, paramiko.RejectPolicy())
    good = build()
    for blob in (good[:100], good + b"x", build(signature=packed(b"ssh-ed25519", b"\0" * 64)), b"\xff" * 70000):
        key = paramiko.Ed25519Key(data=HOST.asbytes())
        key.public_blob = PublicBlob(CERT_TYPE, blob)
        with pytest.raises(HostKeyRefused) as caught:
            bounded(check.missing_host_key, paramiko.SSHClient(), "127.0.0.1", key)
        assert caught.value.reason in (certificates.MALFORMED, certificates.BAD_SIGNATURE)
        assert str(caught.value).startswith("the host certificate of 127.0.0.1 is refused: ")
    key = paramiko.Ed25519Key(data=HOST.asbytes())
    key.public_blob = PublicBlob(CERT_TYPE, good)
    check.missing_host_key(paramiko.SSHClient(), "127.0.0.1", key)  # the good one, for contrast
