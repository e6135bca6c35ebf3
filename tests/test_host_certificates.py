"""Host certificates checked as OpenSSH checks them: certificates made by ssh-keygen, accepted, and refused for
each reason ssh has, with that reason; on the fleet, hosts presenting them, and an sshd taking a user certificate
whose key it has never seen."""

from __future__ import annotations

import base64
import functools
import random
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import paramiko
import pytest
from paramiko.pkey import PublicBlob

import fanout
from fanout import _host_certificates as certificates
from fanout._host_certificates import CERTIFICATE_KEY_TYPES, CERTIFICATE_TYPES, blob_type
from fanout._known_hosts import AcceptNew, HostKeyCheck, HostKeyRefused, KnownHosts
from fanout._pipelined_auth import PipelinedTransport

pytestmark = pytest.mark.usefixtures("openssh_client")  # ssh-keygen makes the certificates: installed on CI if missing

KINDS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}
_KEY_CLASSES = {
    "ssh-ed25519": paramiko.Ed25519Key,
    "ssh-rsa": paramiko.RSAKey,
    "ecdsa-sha2-nistp256": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp384": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp521": paramiko.ECDSAKey,
}


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """A key pair made by ssh-keygen: ``path`` and ``path.pub``."""
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", path.name, *KINDS[kind], "-f", str(path)], check=True)
    return path


def public_line(key: Path) -> str:
    """``type base64`` of a key pair's public key."""
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


def certify(ca: Path, key: Path, *options: str) -> bytes:
    """``key``'s public key signed by ``ca`` with ssh-keygen -s and ``options``: the certificate's blob."""
    copy = key.parent / f"{key.name}-{uuid.uuid4().hex[:8]}"
    Path(f"{copy}.pub").write_text(Path(f"{key}.pub").read_text())
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "test-id", *options, f"{copy}.pub"], check=True)
    return base64.b64decode(Path(f"{copy}-cert.pub").read_text().split()[1])


def host_key(blob: bytes) -> paramiko.PKey:
    """The key paramiko's key exchange makes of a host key blob: a plain key, carrying a certificate's blob."""
    plain = CERTIFICATE_TYPES.get(blob_type(blob), blob_type(blob))
    return _KEY_CLASSES[plain](data=blob)


class Reject(paramiko.MissingHostKeyPolicy):
    """paramiko.RejectPolicy, without its log line (which needs a connected client)."""

    def missing_host_key(self, client, hostname, key) -> None:
        raise paramiko.SSHException(f"Server {hostname!r} not found in known_hosts")


def check(tmp_path: Path, lines: list[str], key: paramiko.PKey, hostname: str = "127.0.0.1", then=None) -> Path:
    """HostKeyCheck of ``key`` for ``hostname`` with ``lines`` as known_hosts; the file."""
    path = tmp_path / f"known_hosts-{uuid.uuid4().hex[:8]}"
    path.write_text("".join(f"{line}\n" for line in lines))
    known = KnownHosts()
    known.read(path)
    policy = HostKeyCheck(known, then(path, known) if then else Reject())
    policy.missing_host_key(paramiko.SSHClient(), hostname, key)
    return path


def refused(tmp_path: Path, lines: list[str], key: paramiko.PKey, reason: str, hostname: str = "127.0.0.1") -> str:
    """The message of the HostKeyRefused that checking ``key`` raises, after asserting its reason."""
    with pytest.raises(HostKeyRefused) as caught:
        check(tmp_path, lines, key, hostname)
    assert caught.value.reason == reason, str(caught.value)
    return str(caught.value)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """One key pair of each kind, made once; "ca" and "other_ca" are Ed25519 CAs."""
    directory = tmp_path_factory.mktemp("keys")
    made = {kind: keygen(directory / kind, kind) for kind in KINDS}
    made["ca"], made["other_ca"] = keygen(directory / "ca"), keygen(directory / "other_ca")
    return made


def ca_line(keys: dict[str, Path], pattern: str = "127.0.0.1", ca: str = "ca") -> str:
    return f"@cert-authority {pattern} {public_line(keys[ca])}"


# ------------------------------------------------------------------------------------------------ accepted


@pytest.mark.parametrize("ca_kind", KINDS)
@pytest.mark.parametrize("key_kind", KINDS)
def test_a_certificate_of_every_key_type_by_every_ca_type_is_read_and_accepted(tmp_path, keys, ca_kind, key_kind):
    blob = certify(keys[ca_kind], keys[key_kind], "-h", "-n", "127.0.0.1,web.example", "-z", "42")
    cert = certificates.parse(blob)
    certificates.verify(cert)
    plain = paramiko.PKey.from_path(keys[key_kind])
    assert (
        cert.key.asbytes() == plain.asbytes() and cert.ca.asbytes() == paramiko.PKey.from_path(keys[ca_kind]).asbytes()
    )
    assert (cert.principals, cert.serial, cert.key_id, cert.cert_type) == (
        (b"127.0.0.1", b"web.example"),
        42,
        "'test-id'",
        2,
    )
    assert (cert.valid_after, cert.valid_before) == (0, certificates.FOREVER)
    check(tmp_path, [f"@cert-authority 127.0.0.1 {public_line(keys[ca_kind])}"], host_key(blob))


def test_principals_are_patterns_matched_against_the_lowercased_name(tmp_path, keys) -> None:
    key = host_key(certify(keys["ca"], keys["ed25519"], "-h", "-n", "*.example,web?.test"))
    for hostname in ("web.example", "WEB.Example", "a.b.example", "web1.test"):
        check(tmp_path, [ca_line(keys, "*")], key, hostname)
    for hostname in ("example", "web.example.org", "web12.test", "web.test"):
        assert "is not one of its principals ('*.example', 'web?.test')" in refused(
            tmp_path, [ca_line(keys, "*")], key, certificates.WRONG_PRINCIPAL, hostname
        )


def test_patterns_match_as_a_plain_backtracking_matcher_would() -> None:
    @functools.cache
    def reference(string: bytes, pattern: bytes) -> bool:
        if not pattern:
            return not string
        if pattern[0] == ord("*"):
            return reference(string, pattern[1:]) or (bool(string) and reference(string[1:], pattern))
        fits = bool(string) and pattern[0] in (ord("?"), string[0])
        return fits and reference(string[1:], pattern[1:])

    rng = random.Random(7)
    for _ in range(20000):
        pattern = bytes(rng.choice(b"ab*?") for _ in range(rng.randrange(9)))
        string = bytes(rng.choice(b"ab") for _ in range(rng.randrange(9)))
        assert certificates.match_pattern(string, pattern) == reference(string, pattern), (string, pattern)


def test_a_ca_line_for_the_bare_name_serves_every_port_as_ssh_does(tmp_path, keys) -> None:
    key = host_key(certify(keys["ca"], keys["ed25519"], "-h", "-n", "web.example"))
    for pattern in ("web.example", "[web.example]:2200", "[web.example]:22??", "*"):
        check(tmp_path, [ca_line(keys, pattern)], key, "[web.example]:2200")
    refused(tmp_path, [ca_line(keys, "[web.example]:2201")], key, certificates.UNKNOWN_CA, "[web.example]:2200")


# ------------------------------------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("options", "reason", "says"),
    [
        (["-h", "-n", "127.0.0.1", "-V", "20200101:20200102"], certificates.EXPIRED, "it expired at 2020-01-0"),
        (["-h", "-n", "127.0.0.1", "-V", "+1d:+2d"], certificates.NOT_YET_VALID, "it is not valid before 20"),
        (["-h", "-n", "other.example"], certificates.WRONG_PRINCIPAL, "'127.0.0.1' is not one of its principals"),
        (["-h"], certificates.NO_PRINCIPALS, "it lists no principals"),
        (["-n", "127.0.0.1"], certificates.NOT_A_HOST_CERTIFICATE, "it is a user certificate"),
        (["-h", "-n", "127.0.0.1", "-O", "critical:foo=bar"], certificates.CRITICAL_OPTIONS, "it has critical options"),
    ],
    ids=["expired", "not-yet-valid", "wrong-principal", "no-principals", "user-certificate", "critical-option"],
)
def test_each_refusal_names_its_reason(tmp_path, keys, options, reason, says) -> None:
    key = host_key(certify(keys["ca"], keys["ed25519"], *options))
    message = refused(tmp_path, [ca_line(keys)], key, reason)
    assert message.startswith(f"the host certificate of 127.0.0.1 is refused: {says}"), message
    assert message.endswith(f"and its plain key (ssh-ed25519 {key.fingerprint}) is not in known_hosts"), message


def test_a_ca_signature_made_with_sha1_is_refused_as_openssh_refuses_it(tmp_path, keys) -> None:
    key = host_key(certify(keys["rsa"], keys["ed25519"], "-t", "ssh-rsa", "-h", "-n", "127.0.0.1"))
    rsa_ca = f"@cert-authority * {public_line(keys['rsa'])}"
    assert "ssh-rsa (SHA-1)" in refused(tmp_path, [rsa_ca], key, certificates.SIGNATURE_ALGORITHM)


def test_a_ca_must_be_on_a_ca_line_naming_the_host(tmp_path, keys) -> None:
    key = host_key(certify(keys["ca"], keys["ed25519"], "-h", "-n", "127.0.0.1"))
    for pattern in ("*.example", "!127.0.0.1,*", "127.0.0.2"):
        assert "is on no @cert-authority line naming 127.0.0.1" in refused(
            tmp_path, [ca_line(keys, pattern)], key, certificates.UNKNOWN_CA
        )
    other = refused(tmp_path, [ca_line(keys, ca="other_ca")], key, certificates.UNKNOWN_CA)
    assert f"(those name {paramiko.PKey.from_path(keys['other_ca']).fingerprint}" in other.replace("ssh-ed25519 ", "")
    plain_line = f"127.0.0.1 {public_line(keys['ecdsa256'])}"
    assert "does not match known_hosts" in refused(tmp_path, [plain_line], key, certificates.UNKNOWN_CA)


def test_a_revoked_ca_or_key_is_refused_even_where_the_plain_key_is_known(tmp_path, keys) -> None:
    key = host_key(certify(keys["ca"], keys["ed25519"], "-h", "-n", "127.0.0.1"))
    plain = f"127.0.0.1 {public_line(keys['ed25519'])}"
    message = refused(tmp_path, [plain, ca_line(keys), f"@revoked * {public_line(keys['ca'])}"], key, "revoked CA")
    assert "its CA (ssh-ed25519 SHA256:" in message and "is marked @revoked in known_hosts" in message
    assert "marked @revoked" in refused(
        tmp_path, [ca_line(keys), f"@revoked elsewhere.example {public_line(keys['ed25519'])}"], key, "revoked"
    )


def test_a_refused_certificate_leaves_the_plain_key_to_decide_as_ssh_does(tmp_path, keys) -> None:
    key = host_key(certify(keys["ca"], keys["ed25519"], "-h", "-n", "127.0.0.1", "-V", "20200101:20200102"))
    check(tmp_path, [ca_line(keys), f"127.0.0.1 {public_line(keys['ed25519'])}"], key)  # expired, but known
    path = check(tmp_path, [ca_line(keys)], key, "[127.0.0.1]:2200", then=AcceptNew)  # accept-new learns it
    assert path.read_text().splitlines()[-1] == f"[127.0.0.1]:2200 {public_line(keys['ed25519'])}"


def test_a_forged_or_mismatched_certificate_is_refused_even_where_the_plain_key_is_known(tmp_path, keys) -> None:
    blob = certify(keys["ca"], keys["ed25519"], "-h", "-n", "127.0.0.1")
    lines = [ca_line(keys), f"127.0.0.1 {public_line(keys['ed25519'])}"]
    nonce_at = 4 + len(blob_type(blob)) + 4
    for at in (nonce_at, len(blob) - 1):  # what the CA signed, and the signature itself
        forged = bytearray(blob)
        forged[at] ^= 0x01
        assert "does not verify" in refused(tmp_path, lines, host_key(bytes(forged)), certificates.BAD_SIGNATURE)
    other = host_key(certify(keys["ca"], keys["ecdsa256"], "-h", "-n", "127.0.0.1"))
    swapped = host_key(blob)
    swapped.public_blob = PublicBlob(other.public_blob.key_type, other.public_blob.key_blob)
    assert "certifies another key" in refused(tmp_path, lines, swapped, certificates.MALFORMED)


def test_a_certificate_sent_for_a_plain_algorithm_is_refused(tmp_path, keys) -> None:
    key = host_key(certify(keys["ca"], keys["ed25519"], "-h", "-n", "127.0.0.1"))
    known = KnownHosts()
    client = paramiko.SSHClient()
    client.get_transport = lambda: SimpleNamespace(host_key_type="ssh-ed25519")
    with pytest.raises(HostKeyRefused, match="unlike the agreed type, ssh-ed25519") as caught:
        HostKeyCheck(known, Reject()).missing_host_key(client, "127.0.0.1", key)
    assert caught.value.reason == certificates.MALFORMED


# ------------------------------------------------------------------------------------------------ negotiation


def test_certificate_algorithms_are_offered_first_only_to_hosts_a_ca_line_names(tmp_path, keys) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"{ca_line(keys, '*.example')}\nrsa.example,rsa.test {public_line(keys['rsa'])}\n")
    known = KnownHosts()
    known.read(path)
    left, right = socket.socketpair()
    transport = PipelinedTransport(left)
    try:
        offered = transport.get_security_options().key_types
        assert known.certificate_key_types("web.example", 22) == CERTIFICATE_KEY_TYPES
        assert known.certificate_key_types("[web.example]:2200", 22) == ()
        assert known.certificate_key_types("web.test", 22) == ()
        assert known.preferred_key_types("web.test", 22, offered) == offered  # as today
        assert known.preferred_key_types("web.example", 2200, offered) == CERTIFICATE_KEY_TYPES + offered
        rsa_first = ("rsa-sha2-512", "rsa-sha2-256")
        assert known.preferred_key_types("rsa.test", 22, offered)[:2] == rsa_first
        assert known.preferred_key_types("rsa.example", 22, offered)[:8] == CERTIFICATE_KEY_TYPES + rsa_first
    finally:
        transport.close()
        left.close()
        right.close()
    left, right = socket.socketpair()
    made = known.transport_factory("web.example", 22, PipelinedTransport)(left)
    try:
        assert isinstance(made, PipelinedTransport)
        assert made.get_security_options().key_types == CERTIFICATE_KEY_TYPES + offered
    finally:
        made.close()
        left.close()
        right.close()


# ------------------------------------------------------------------------------------------------ the fleet


def open_client(
    host, known_hosts: Path, *, accept_new: bool = False, key: Path | None = None, pkey=None, client=None
) -> paramiko.SSHClient:
    """Connect as fanout/_ssh.py's _client and _authenticate do: HostKeyCheck (then strict or accept-new),
    paramiko's HostKeys left empty, the host key algorithms ordered for this host by the transport factory. An sshd
    shedding load (MaxStartups) before its banner is tried again, as fanout/_ssh.py tries it."""
    known = KnownHosts()
    known.read(known_hosts)
    then = AcceptNew(known_hosts, known) if accept_new else paramiko.RejectPolicy()
    for attempt in range(1, BANNER_ATTEMPTS + 1):
        made = client or paramiko.SSHClient()
        made.set_missing_host_key_policy(HostKeyCheck(known, then))
        try:
            made.connect(
                host.address,
                port=host.port,
                username=host.user,
                key_filename=None if pkey else str(key or host.key_path),
                pkey=pkey,
                look_for_keys=False,
                allow_agent=False,
                timeout=20,
                banner_timeout=20,
                auth_timeout=20,
                transport_factory=known.transport_factory(host.address, host.port, PipelinedTransport),
            )
        except BaseException as exc:
            if client is None or "protocol banner" in str(exc):  # the caller's own client is the caller's to close
                made.close()  # else its connection waits on sshd, unauthenticated, until LoginGraceTime
            if not isinstance(exc, paramiko.SSHException) or "protocol banner" not in str(exc):
                raise
            if attempt == BANNER_ATTEMPTS:
                raise
            continue
        return made
    raise AssertionError("not reached")


BANNER_ATTEMPTS = 5


def run(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, _ = client.exec_command(command, timeout=20)
    return stdout.read().decode().strip()


@pytest.fixture
def ca_known_hosts(cert_hosts, tmp_path) -> Callable[..., Path]:
    """A factory of known_hosts files holding ``lines``, ``{ca}`` standing for the host CA's public key."""
    ca = " ".join(cert_hosts.host_ca.with_suffix(".pub").read_text().split()[:2])

    def write(*lines: str) -> Path:
        path = tmp_path / f"known_hosts-{uuid.uuid4().hex[:8]}"
        path.write_text("".join(line.format(ca=ca) + "\n" for line in lines))
        return path

    return write


@pytest.mark.fleet
@pytest.mark.parametrize("pattern", ["127.0.0.1", "[127.0.0.1]:{port}", "[127.0.0.1]:*", "*"])
def test_a_certificate_host_is_reached_with_only_a_ca_line(cert_hosts, ca_known_hosts, pattern) -> None:
    host = cert_hosts.hosts["cert-valid"]
    client = open_client(host, ca_known_hosts(f"@cert-authority {pattern.format(port=host.port)} {{ca}}"))
    try:
        transport = client.get_transport()
        assert transport.host_key_type == "ssh-ed25519-cert-v01@openssh.com"
        assert transport.get_remote_server_key().public_blob is not None
        assert run(client, "echo certified") == "certified"
    finally:
        client.close()


@pytest.mark.fleet
def test_a_ca_line_for_other_names_leaves_a_certificate_host_unknown(cert_hosts, ca_known_hosts) -> None:
    host = cert_hosts.hosts["cert-valid"]
    client = paramiko.SSHClient()
    try:
        with pytest.raises(HostKeyRefused) as caught:
            open_client(host, ca_known_hosts("@cert-authority *.example,!127.0.0.1 {ca}"), client=client)
        assert client.get_transport().host_key_type == "ssh-ed25519"  # no certificate asked for, none sent
    finally:
        client.close()
    assert caught.value.reason == "unknown"
    assert str(caught.value) == (
        f"Server '[127.0.0.1]:{host.port}' not found in known_hosts; the @cert-authority lines there name other hosts"
    )


@pytest.mark.fleet
@pytest.mark.parametrize(
    ("name", "reason", "says"),
    [
        ("cert-expired", certificates.EXPIRED, "it expired at "),
        ("cert-not-yet-valid", certificates.NOT_YET_VALID, "it is not valid before "),
        ("cert-wrong-principal", certificates.WRONG_PRINCIPAL, "'127.0.0.1' is not one of its principals"),
        ("cert-no-principals", certificates.NO_PRINCIPALS, "it lists no principals"),
    ],
)
def test_a_certificate_host_refused_says_why(cert_hosts, ca_known_hosts, name, reason, says) -> None:
    host = cert_hosts.hosts[name]
    with pytest.raises(HostKeyRefused) as caught:
        open_client(host, ca_known_hosts("@cert-authority * {ca}")).close()
    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"the host certificate of [127.0.0.1]:{host.port} is refused: {says}")
    assert str(caught.value).endswith("is not in known_hosts")


@pytest.mark.fleet
def test_a_revoked_ca_or_an_unknown_one_is_refused(cert_hosts, ca_known_hosts, tmp_path) -> None:
    host = cert_hosts.hosts["cert-valid"]
    revoked = ca_known_hosts("@cert-authority * {ca}", f"127.0.0.1 {host.host_key}", "@revoked * {ca}")
    with pytest.raises(HostKeyRefused, match=r"its CA \(ssh-ed25519 SHA256:.*\) is marked @revoked") as caught:
        open_client(host, revoked).close()
    assert caught.value.reason == certificates.REVOKED_CA
    other = keygen(tmp_path / "other_ca")
    with pytest.raises(HostKeyRefused, match="is on no @cert-authority line naming") as caught:
        open_client(host, ca_known_hosts(f"@cert-authority * {public_line(other)}")).close()
    assert caught.value.reason == certificates.UNKNOWN_CA


@pytest.mark.fleet
def test_accept_new_learns_the_plain_key_of_a_host_whose_certificate_expired(cert_hosts, ca_known_hosts) -> None:
    host = cert_hosts.hosts["cert-expired"]
    path = ca_known_hosts("@cert-authority * {ca}")
    open_client(host, path, accept_new=True).close()  # as ssh with StrictHostKeyChecking=accept-new
    assert path.read_text().splitlines()[-1] == f"[127.0.0.1]:{host.port} {host.host_key}"
    client = open_client(host, path)
    try:
        assert run(client, "echo known") == "known"
    finally:
        client.close()


@pytest.mark.fleet
def test_a_plain_host_negotiates_its_plain_key_as_before(fleet) -> None:
    host = fleet.hosts[0]
    client = open_client(host, host.known_hosts)
    try:
        assert client.get_transport().host_key_type == "ssh-ed25519"
    finally:
        client.close()


@pytest.mark.fleet
@pytest.mark.parametrize("kind", ["ed25519", "ecdsa256", "rsa"])
def test_a_user_certificate_logs_in_where_sshd_trusts_its_ca_and_nowhere_else(
    fleet, cert_hosts, ca_known_hosts, tmp_path, kind
) -> None:
    key = keygen(tmp_path / f"id_{kind}", kind)  # in no authorized_keys anywhere
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(cert_hosts.user_ca), "-I", "fanout-test", "-n", "tester", f"{key}.pub"],
        check=True,
    )
    host = cert_hosts.hosts["cert-valid"]
    known_hosts = ca_known_hosts("@cert-authority * {ca}")
    # Through fanout.connect, as users connect: the certificate beside the key is offered with it.
    options = {**host.connect_options(), "identity_file": key, "known_hosts": known_hosts}
    with fanout.connect(host.address, **options) as context:
        assert context.call(subprocess.getoutput, "id -un") == "tester"
    plain = fleet.hosts[0]  # an sshd that does not trust the user CA
    with pytest.raises(fanout.AuthenticationFailed, match=f"{key} .*: refused"):
        fanout.connect(plain.address, **{**plain.connect_options(), "identity_file": key})
    Path(f"{key}-cert.pub").unlink()  # the bare key: in no authorized_keys anywhere
    with pytest.raises(fanout.AuthenticationFailed, match=f"{key} .*: refused"):
        fanout.connect(host.address, **options)
