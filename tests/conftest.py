"""The test fleet as pytest fixtures: real OpenSSH hosts in Docker, one set per session.

Environment:
  FANOUT_TEST_FLEET       ``docker`` (default: containers started and removed by this run)
                          or ``compose`` (use the hosts of ``docker compose up``)
  FANOUT_FLEET_SUITES     comma-separated Debian suites (default bullseye,bookworm,trixie)
  FANOUT_FLEET_PER_SUITE  hosts per suite (default 4)
  CI                      when true, a fleet that cannot start fails the run, never skips
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet import engine, hosts, images
from tests.fleet.agent import start_agent
from tests.fleet.suites import fleet_host_names, fleet_per_suite, fleet_suites, in_ci

_FLEET_SUMMARY = pytest.StashKey[str]()

# Pushes remember digests across runs (fanout/_digest_cache.py), in ~/.cache on the master and the hosts: the
# tests count reads, so they run without it, here and in the command lines they start; the cache's own tests
# turn it on, with its files in their temporary directories.
os.environ["FANOUT_DIGEST_CACHE"] = "off"


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # pytest unwinds fixtures on KeyboardInterrupt only: make SIGTERM and SIGHUP
    # (a CI timeout, a closed terminal) unwind the same way, so containers go.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


# Tests that start processes (children, the fanout command, ansible-core) without the Docker fleet:
# real, but seconds each, so they are out of the fast subset with the fleet's.
_PROCESS_FIXTURES = frozenset(
    {"fleet", "fleet_host", "target", "open_child", "child", "hostile_child", "healthy_children", "openssh_client"}
)
_PROCESS_MODULES = frozenset(
    {
        "test_cli.py",
        "test_cli_edges.py",
        "test_fleet_local.py",
        "test_fleet_unavailable.py",
        "test_inventory_vs_ansible.py",
        "test_project.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``fleet`` what needs the Docker fleet or starts processes: ``-m "not fleet"`` is the fast subset."""
    for item in items:
        if _PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in _PROCESS_MODULES:
            item.add_marker(pytest.mark.fleet)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fleet_host" in metafunc.fixturenames:
        metafunc.parametrize("fleet_host_name", fleet_host_names())


def _write(config: pytest.Config, line: str) -> None:
    """Show a fleet progress line now, past pytest's output capture (bring-up can take minutes)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, flush=True)


@pytest.fixture(scope="session")
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> hosts.Fleet:
    """A running fleet of sshd hosts of every configured suite; removed at session end."""
    config = request.config
    log = lambda line: _write(config, line)  # noqa: E731
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("fleet")
    try:
        client = engine.docker_engine(log)
        if os.environ.get("FANOUT_TEST_FLEET", "docker") == "compose":
            built = False
            the_fleet = hosts.attach_compose_fleet(client, workdir)
        else:
            reaped = hosts.reap_orphans(client)
            if reaped:
                log(f"fleet: removed {reaped} container(s) left by dead runs")
            built = images.ensure_images(client, fleet_suites(), log)
            the_fleet = hosts.start_fleet(client, fleet_suites(), fleet_per_suite(), workdir)
    except engine.FleetUnavailable as exc:
        if in_ci():
            pytest.fail(f"test fleet could not start (CI never skips it): {exc}", pytrace=False)
        pytest.skip(f"test fleet unavailable: {exc}")
    atexit.register(the_fleet.close)
    the_fleet.bringup_seconds = time.monotonic() - started
    the_fleet.images_built = built
    by_suite = ", ".join(f"{s} x{sum(h.suite == s for h in the_fleet.hosts)}" for s in fleet_suites())
    summary = (
        f"fleet bring-up: {len(the_fleet.hosts)} hosts ({by_suite}) in {the_fleet.bringup_seconds:.1f} s, "
        f"images {'built' if built else 'cached'}"
    )
    config.stash[_FLEET_SUMMARY] = summary
    log(summary)
    try:
        yield the_fleet
    finally:
        the_fleet.close()


@dataclass
class CertHosts:
    """This session's certificate authorities (private key paths, ``.pub`` beside each) and the hosts of
    hosts.CERT_HOSTS, by name: each presents a certificate of its host key signed by ``host_ca``, and its sshd
    accepts the user certificates ``user_ca`` signs."""

    host_ca: Path
    user_ca: Path
    hosts: dict[str, hosts.FleetHost]


def _new_ca(path: Path) -> Path:
    """An Ed25519 CA key pair made by ssh-keygen, as an administrator would make one."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def _start_extra_host(fleet: hosts.Fleet, name: str, suite: str, environment: dict[str, str]) -> hosts.FleetHost:
    """One more host of ``fleet``'s run, its entrypoint given ``environment`` too: removed with the fleet."""
    key_path = fleet.hosts[0].key_path
    public_key = (key_path.parent / "id_ed25519.pub").read_text().strip()
    for attempt in range(2):
        (port,) = hosts.free_ports(1)
        container = fleet.client.containers.run(
            images.image_tag(suite),
            name=f"fanout-fleet-{fleet.run_id}-{name}" + (f"-r{attempt}" if attempt else ""),
            detach=True,
            network_mode="host",
            environment={"SSH_PORT": str(port), "LISTEN_ADDRESS": hosts.ADDRESS, "AUTHORIZED_KEY": public_key}
            | environment,
            labels={
                hosts.RUN_LABEL: fleet.run_id,
                hosts.OWNER_LABEL: hosts._owner(),
                hosts.SUITE_LABEL: suite,
                hosts.PORT_LABEL: str(port),
            },
        )
        try:
            hosts._wait_for_sshd(fleet.client, container.id, port)
        except engine.FleetUnavailable:
            container.remove(force=True)
            if attempt:
                raise
            continue
        return hosts._describe(container, name, suite, port, key_path, fleet.workdir)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def cert_hosts(fleet: hosts.Fleet, tmp_path_factory: pytest.TempPathFactory, openssh_client: str) -> CertHosts:
    """Hosts with host certificates (hosts.CERT_HOSTS) and sshds trusting a user CA, on the fleet's first suite;
    the CAs are made per session with ssh-keygen, as the client key is."""
    if not fleet.owned:
        pytest.skip("certificate hosts are started by the test run, not taken from FANOUT_TEST_FLEET=compose")
    workdir = tmp_path_factory.mktemp("cert-fleet")
    host_ca, user_ca = _new_ca(workdir / "host_ca"), _new_ca(workdir / "user_ca")
    common = {
        hosts.HOST_CA_KEY_ENV: host_ca.read_text(),
        hosts.TRUSTED_USER_CA_ENV: user_ca.with_suffix(".pub").read_text().strip(),
    }
    suite = fleet.hosts[0].suite
    with ThreadPoolExecutor(max_workers=len(hosts.CERT_HOSTS)) as pool:
        futures = {
            name: pool.submit(
                _start_extra_host,
                fleet,
                name,
                suite,
                common | {hosts.HOST_CERT_PRINCIPALS_ENV: principals, hosts.HOST_CERT_VALIDITY_ENV: validity},
            )
            for name, (principals, validity) in hosts.CERT_HOSTS.items()
        }
        started = {name: future.result() for name, future in futures.items()}
    return CertHosts(host_ca=host_ca, user_ca=user_ca, hosts=started)


@pytest.fixture(scope="session")
def password_host(fleet: hosts.Fleet) -> hosts.FleetHost:
    """A host of the fleet's first suite whose sshd also accepts passwords (the fleet's others take keys only)."""
    if not fleet.owned:
        pytest.skip("the password host is started by the test run, not taken from FANOUT_TEST_FLEET=compose")
    return _start_extra_host(fleet, "password-host", fleet.hosts[0].suite, {hosts.PASSWORD_AUTH_ENV: "yes"})


@pytest.fixture
def fleet_host(fleet: hosts.Fleet, fleet_host_name: str) -> hosts.FleetHost:
    """One host of the fleet, by its collection-time name (tests run once per host)."""
    for host in fleet.hosts:
        if host.name == fleet_host_name:
            return host
    raise LookupError(f"no fleet host named {fleet_host_name!r} (have {[h.name for h in fleet.hosts]})")


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    summary = config.stash.get(_FLEET_SUMMARY, None)
    if summary:
        terminalreporter.write_sep("-", summary)


@pytest.fixture(scope="session")
def openssh_client() -> str:
    """OpenSSH's client tools (ssh, ssh-keygen, ssh-agent, ssh-add), which tests compare with and make keys with;
    installed on CI when missing, never skipped. Returns the path of ssh."""
    path = shutil.which("ssh")
    if path is None and in_ci() and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300)
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-client"], check=True, timeout=300)
        path = shutil.which("ssh")
    if path is None:
        pytest.fail("these tests need the OpenSSH client: install it (apt-get install openssh-client)")
    return path


# ------------------------------------------------------------------------------------- the command line and ssh-agent


@pytest.fixture
def prompts(monkeypatch) -> list[str]:
    """getpass.getpass answered "typed-pw"; the prompts it was given."""
    asked: list[str] = []

    def answer(prompt: str = "Password: ", stream=None) -> str:
        asked.append(prompt)
        return "typed-pw"

    from fanout import cli

    monkeypatch.setattr(cli.getpass, "getpass", answer)
    return asked


@pytest.fixture
def fanned_out(monkeypatch) -> list[dict]:
    """The hosts the command would have run on, instead of running."""
    seen: list[dict] = []

    def fan_out(args, hosts, task, interrupts) -> int:
        seen.append(hosts)
        return 0

    from fanout import cli

    monkeypatch.setattr(cli, "_fan_out", fan_out)
    return seen


@pytest.fixture
def ssh_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openssh_client: str):
    """A real ssh-agent of the test's own, $SSH_AUTH_SOCK pointing at it; its socket path."""
    sock = tmp_path / "agent.sock"
    process = start_agent(sock)
    try:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()


@pytest.fixture(params=["local", *fleet_suites()])
def target(request: pytest.FixtureRequest) -> str:
    """Where a core test runs: a local child, and one fleet host of each Debian suite."""
    return request.param


@pytest.fixture
def open_child(target: str, request: pytest.FixtureRequest):
    """A factory of contexts on ``target``; every context it made is closed after the test."""
    import fanout

    opened: list = []

    def factory(**options):
        if target == "local":
            context = fanout.local(**options)
        else:
            the_fleet = request.getfixturevalue("fleet")
            host = next(h for h in the_fleet.hosts if h.suite == target)
            context = fanout.connect(host.address, **{**host.connect_options(), **options})
        opened.append(context)
        return context

    yield factory
    for context in opened:
        context.close()


@pytest.fixture
def child(open_child):
    """One open context on the test's target."""
    return open_child()


@pytest.fixture
def user_modules(tmp_path, monkeypatch, request):
    """Write modules (name -> source, "pkg/mod.py" style paths) importable on the master only."""
    import textwrap
    import uuid

    root = tmp_path / "user_src"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    suffix = uuid.uuid4().hex[:8]

    def write(files: dict[str, str]) -> str:
        """Write the files, with ``{s}`` in paths and sources replaced by a unique suffix; return it."""
        for relative, source in files.items():
            path = root / relative.format(s=suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source).replace("{s}", suffix))
        return suffix

    yield write
    for name in [n for n in sys.modules if suffix in n]:
        del sys.modules[name]
