"""Bring up a fleet of real OpenSSH hosts in Docker, and take it down again.

Each host is a container with host networking whose sshd listens on a
``127.0.0.1`` port picked free at run time, with a host key of its own and an
``authorized_keys`` holding this run's test key for every login user.

Accounts for become (sudo, su, doas), as the Dockerfile makes them; sshd takes keys only, never passwords:

=======  =====  ===============  ==========================================  ============================
user     login  password         sudo (/etc/sudoers.d/fanout-fleet)          doas (/etc/doas.conf, 0400)
=======  =====  ===============  ==========================================  ============================
tester   key    TESTER_PASSWORD  any user, with password; lecture=always     root and app, with password
nopass   key    none             any user, NOPASSWD                          root and app, nopass
nosudo   key    NOSUDO_PASSWORD  no rule                                     no rule
ttyuser  key    none             any user, NOPASSWD; requiretty              no rule
app      no     APP_PASSWORD     no rule (a become target; ``su app``)       no rule
root     no     ROOT_PASSWORD    (for ``su``)                                -
=======  =====  ===============  ==========================================  ============================

sudo keeps Debian's defaults otherwise (``use_pty`` on bookworm and trixie, credentials cached per terminal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .engine import FleetUnavailable
from .images import image_tag

SMALL_DISK = "/mnt/small"  # a small tmpfs in every host, for tests of a full disk
SMALL_DISK_BYTES = 4 * 1024 * 1024
USER = "tester"  # the default login user: sudo and doas with TESTER_PASSWORD
TESTER_PASSWORD = "tester-pw-1"
NOPASS_USER = "nopass"  # NOPASSWD sudo to any user; doas nopass as root and app
NOSUDO_USER = "nosudo"  # in no sudoers or doas rule; has a password, so sudo gets as far as its sudoers check
NOSUDO_PASSWORD = "nosudo-pw-1"
TTY_USER = "ttyuser"  # NOPASSWD sudo, but Defaults:ttyuser requiretty
LOGIN_USERS = (USER, NOPASS_USER, NOSUDO_USER, TTY_USER)  # log in by this run's key; as the entrypoint lists them
APP_USER = "app"  # no login; shell /bin/sh and a home: a become target
APP_PASSWORD = "app-pw-1"  # for `su app`
ROOT_PASSWORD = "root-pw-1"  # for `su`; sshd still refuses root logins
# The package that brings doas, per suite: a suite missing here has none, and doas tests skip there.
DOAS_PACKAGES = {"bullseye": "doas", "bookworm": "opendoas", "trixie": "opendoas"}
DOAS_SUITES = frozenset(DOAS_PACKAGES)
ADDRESS = "127.0.0.1"
RUN_LABEL = "fanout.test-fleet.run"
OWNER_LABEL = "fanout.test-fleet.owner"
SUITE_LABEL = "fanout.test-fleet.suite"
PORT_LABEL = "fanout.test-fleet.port"
COMPOSE_LABEL = "fanout.test-fleet.compose"
EXPECTED_PYTHON = {"bullseye": (3, 9), "bookworm": (3, 11), "trixie": (3, 13)}
# Certificates (tests/test_host_certificates.py): entrypoint.sh signs a host's fresh key with the CA private key in
# HOST_CA_KEY_ENV, for the principals in HOST_CERT_PRINCIPALS_ENV, valid for HOST_CERT_VALIDITY_ENV (ssh-keygen -V),
# and sshd accepts the user certificates of the CA whose public key line is in TRUSTED_USER_CA_ENV.
HOST_CA_KEY_ENV = "HOST_CA_KEY"
HOST_CERT_PRINCIPALS_ENV = "HOST_CERT_PRINCIPALS"
HOST_CERT_VALIDITY_ENV = "HOST_CERT_VALIDITY"
TRUSTED_USER_CA_ENV = "TRUSTED_USER_CA_KEY"
# The certificate hosts of tests/conftest.py's cert_hosts, by name: (principals, validity); "" leaves one out.
# Fleet hosts are reached as 127.0.0.1 (ADDRESS): the principal a certificate must list to be accepted.
CERT_HOSTS = {
    "cert-valid": (f"{ADDRESS},cert.fleet.test", ""),
    "cert-expired": (ADDRESS, "-2d:-1d"),
    "cert-not-yet-valid": (ADDRESS, "+1d:+2d"),
    "cert-wrong-principal": ("other.fleet.test", ""),
    "cert-no-principals": ("", ""),
}
PASSWORD_AUTH_ENV = "PASSWORD_AUTH"  # "yes": entrypoint.sh lets sshd take passwords (tests/conftest.py's password_host)
_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class FleetHost:
    """What a test needs to reach one host: where, as whom, with which keys."""

    name: str
    suite: str
    address: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    host_key: str  # "ssh-ed25519 AAAA..." as the container made it
    python_version: tuple[int, int, int]
    container: str

    def connect_options(self, user: str | None = None) -> dict:
        """Keyword arguments for ``fanout.connect(host.address, ...)``: this host, strictly checked, as ``user``."""
        if user is not None and user not in LOGIN_USERS:
            raise ValueError(f"{user!r} cannot log in to a fleet host; login users: {', '.join(LOGIN_USERS)}")
        return {
            "port": self.port,
            "user": user or self.user,
            "identity_file": self.key_path,
            "known_hosts": self.known_hosts,
            "ssh_config": False,
        }

    def as_user(self, user: str) -> FleetHost:
        """This host reached as another of LOGIN_USERS (for helpers that read ``host.user``)."""
        return dataclasses.replace(self, user=self.connect_options(user)["user"])

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH and paramiko name this host in known_hosts."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass
class Fleet:
    """The running hosts, and what is needed to remove them."""

    run_id: str
    hosts: list[FleetHost]
    workdir: Path
    client: docker.DockerClient
    bringup_seconds: float = 0.0
    images_built: bool = False
    owned: bool = True  # False for a compose fleet the user runs: leave it up
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Remove this run's containers (idempotent; safe from a signal handler's unwind)."""
        if self._closed:
            return
        self._closed = True
        if self.owned:
            remove_run(self.client, self.run_id)
        else:
            for host in self.hosts:
                _revoke_key(self.client, host)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def remove_run(client: docker.DockerClient, run_id: str) -> None:
    """Force-remove every container of one run."""
    for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def reap_orphans(client: docker.DockerClient) -> int:
    """Remove containers left by runs on this machine whose process is gone (a kill -9, a power cut)."""
    removed = 0
    here = socket.gethostname()
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        host, _, pid = container.labels.get(OWNER_LABEL, "").rpartition(":")
        if host == here and pid.isdigit() and not _alive(int(pid)):
            container.remove(force=True)
            removed += 1
    return removed


def make_test_key(directory: Path) -> tuple[Path, str]:
    """Write a fresh Ed25519 key pair for this run; return the private key path and public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path = directory / "id_ed25519"
    path.write_bytes(private)
    path.chmod(0o600)
    line = public.decode() + " fanout-test-fleet"
    (directory / "id_ed25519.pub").write_text(line + "\n")
    return path, line


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now, all distinct (held open together while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((ADDRESS, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


_EXEC_ATTEMPTS = 5  # docker exec can return status 0 and no output on a loaded machine: the attach lost the race


def _exec(container, cmd: list[str], *, prints: bool = True) -> str:
    """A command's output; one that ``prints`` (and changes nothing) is retried while docker hands back none."""
    for _ in range(_EXEC_ATTEMPTS if prints else 1):
        code, output = container.exec_run(cmd)
        text = output.decode(errors="replace").strip()
        if code != 0:
            raise FleetUnavailable(f"{container.name}: {' '.join(cmd)} exited {code}: {text}")
        if text or not prints:
            return text
    raise FleetUnavailable(f"{container.name}: {' '.join(cmd)} printed nothing, {_EXEC_ATTEMPTS} times")


def _wait_for_sshd(client: docker.DockerClient, container_id: str, port: int) -> None:
    """Return once sshd on ``port`` sends its banner; fail with the container's log if it died."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        try:
            with socket.create_connection((ADDRESS, port), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            pass
        container = client.containers.get(container_id)
        if container.status not in ("created", "running"):
            logs = container.logs().decode(errors="replace")[-1500:]
            raise FleetUnavailable(f"{container.name} stopped ({container.status}) before sshd was ready:\n{logs}")
        if time.monotonic() > deadline:
            raise FleetUnavailable(f"{container.name}: sshd on port {port} not ready after {_READY_TIMEOUT:.0f} s")
        time.sleep(0.05)


def _describe(container, name: str, suite: str, port: int, key_path: Path, workdir: Path) -> FleetHost:
    """Read the host's real host key and python3 version, and write its known_hosts file."""
    host_key = " ".join(_exec(container, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).split()[:2])
    version = _exec(container, ["python3", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
    python_version = tuple(int(part) for part in version.split("."))
    known_hosts = workdir / f"known_hosts.{name}"
    host = FleetHost(
        name=name,
        suite=suite,
        address=ADDRESS,
        port=port,
        user=USER,
        key_path=key_path,
        known_hosts=known_hosts,
        host_key=host_key,
        python_version=python_version,  # type: ignore[arg-type]
        container=container.name,
    )
    known_hosts.write_text(f"{host.known_hosts_name} {host_key}\n")
    return host


def _start_host(client, run_id: str, name: str, suite: str, key_path: Path, public_key: str, workdir: Path):
    """Start one container and wait for its sshd; retry once with a new port if the port was taken."""
    for attempt in range(2):
        (port,) = free_ports(1)
        container = client.containers.run(
            image_tag(suite),
            name=f"fanout-fleet-{run_id}-{name}" + (f"-r{attempt}" if attempt else ""),
            detach=True,
            network_mode="host",
            environment={"SSH_PORT": str(port), "LISTEN_ADDRESS": ADDRESS, "AUTHORIZED_KEY": public_key},
            tmpfs={SMALL_DISK: f"size={SMALL_DISK_BYTES},mode=1777"},  # a disk that fills: push's disk-full test
            labels={RUN_LABEL: run_id, OWNER_LABEL: _owner(), SUITE_LABEL: suite, PORT_LABEL: str(port)},
        )
        try:
            _wait_for_sshd(client, container.id, port)
        except FleetUnavailable:
            container.remove(force=True)
            if attempt:
                raise
            continue
        return _describe(container, name, suite, port, key_path, workdir)
    raise AssertionError("unreachable")


def start_fleet(client: docker.DockerClient, suites: list[str], per_suite: int, workdir: Path) -> Fleet:
    """Start ``per_suite`` hosts of every suite in parallel; on any failure remove them all."""
    run_id = uuid.uuid4().hex[:8]
    workdir.mkdir(parents=True, exist_ok=True)
    key_path, public_key = make_test_key(workdir)
    names = [(f"{suite}-{index}", suite) for suite in suites for index in range(1, per_suite + 1)]
    fleet = Fleet(run_id=run_id, hosts=[], workdir=workdir, client=client)
    try:
        with ThreadPoolExecutor(max_workers=min(len(names), 8) or 1) as pool:
            futures = [
                pool.submit(_start_host, client, run_id, name, suite, key_path, public_key, workdir)
                for name, suite in names
            ]
            fleet.hosts = [future.result() for future in futures]
    except BaseException:
        fleet.close()
        raise
    _write_combined_known_hosts(fleet)
    return fleet


def _write_combined_known_hosts(fleet: Fleet) -> None:
    lines = "".join(host.known_hosts.read_text() for host in fleet.hosts)
    (fleet.workdir / "known_hosts").write_text(lines)


def _revoke_key(client: docker.DockerClient, host: FleetHost) -> None:
    """Take this run's key out of a compose host's authorized_keys, for every login user."""
    public = (host.key_path.parent / "id_ed25519.pub").read_text().split()[1]
    container = client.containers.get(host.container)
    for user in LOGIN_USERS:
        container.exec_run(["sed", "-i", f"\\#{public}#d", f"/home/{user}/.ssh/authorized_keys"])


def attach_compose_fleet(client: docker.DockerClient, workdir: Path) -> Fleet:
    """Use the hosts of ``docker compose up`` instead of starting our own; authorize this run's key."""
    workdir.mkdir(parents=True, exist_ok=True)
    key_path, public_key = make_test_key(workdir)
    containers = client.containers.list(filters={"label": COMPOSE_LABEL})
    if not containers:
        raise FleetUnavailable(
            "FANOUT_TEST_FLEET=compose, but no running container has the fleet label: "
            "run `docker compose up -d --build` first"
        )
    fleet = Fleet(run_id="compose", hosts=[], workdir=workdir, client=client, owned=False)
    for container in sorted(containers, key=lambda c: c.name):
        suite = container.labels[SUITE_LABEL]
        port = int(container.labels[PORT_LABEL])
        for user in LOGIN_USERS:
            authorized = f"/home/{user}/.ssh/authorized_keys"
            _exec(container, ["sh", "-c", f"printf '%s\\n' '{public_key}' >> {authorized}"], prints=False)
        _wait_for_sshd(client, container.id, port)
        name = container.name.removeprefix("fanout-fleet-")
        fleet.hosts.append(_describe(container, name, suite, port, key_path, workdir))
    _write_combined_known_hosts(fleet)
    return fleet
