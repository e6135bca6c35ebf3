"""Hosts reached through relays (``via=``): a relay's own OpenSSH client connects onward, on the real fleet.

The relay authenticates with the fleet's key through an agent forwarded to it (or, in one test, a key of its
own); the target's host key is checked by the relay's ssh against the lines the master knows.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import platform
import signal
import time
import zlib

import pytest

import fanout
from fanout import service
from fanout.errors import AuthenticationFailed, ConnectionLost, HostKeyError, Unreachable, UnsupportedPython
from tests.fleet import hosts
from tests.fleet.agent import add_to_agent
from tests.fleet.services import Echo, echo_asker
from tests.fleet.suites import fleet_suites
from tests.fleet.waiting import wait_until

pytestmark = pytest.mark.fleet

_SUITES = fleet_suites()
# A relay of each suite in front of a host of each other suite (3.9 before 3.13, and the reverse).
SUITE_PAIRS = [(a, b) for a, b in itertools.permutations(_SUITES, 2)] or [(_SUITES[0], _SUITES[0])]


@pytest.fixture
def agent_with_key(ssh_agent, fleet):
    """$SSH_AUTH_SOCK: an agent holding the fleet's key, as an operator's desktop has it."""
    add_to_agent(ssh_agent, fleet.hosts[0].key_path)
    return ssh_agent


@pytest.fixture
def opened():
    """Contexts to close after the test, last opened first."""
    contexts: list[fanout.Context] = []
    yield contexts
    for context in reversed(contexts):
        context.close()


def host_of(fleet: hosts.Fleet, suite: str, index: int = 0) -> hosts.FleetHost:
    return [h for h in fleet.hosts if h.suite == suite][index]


def other_host(fleet: hosts.Fleet, *not_these: hosts.FleetHost) -> hosts.FleetHost:
    return next(h for h in fleet.hosts if h not in not_these)


def relay_to(host: hosts.FleetHost, opened: list, **options) -> fanout.Context:
    """A direct connection to ``host``, its agent forwarded: a relay."""
    context = fanout.connect(host.address, **{**host.connect_options(), "forward_agent": True, **options})
    opened.append(context)
    return context


def through(relay: fanout.Context, host: hosts.FleetHost, opened: list, **options) -> fanout.Context:
    """``host`` reached through ``relay``: its address, port, user and known_hosts, no key file of the master's."""
    given = {key: value for key, value in host.connect_options().items() if key != "identity_file"}
    context = fanout.connect(host.address, via=relay, **{**given, **options})
    opened.append(context)
    return context


def processes(host: hosts.FleetHost, fleet: hosts.Fleet) -> dict[int, str]:
    """The host's processes now, pid -> command line, read from its /proc by docker (not through fanout)."""
    container = fleet.client.containers.get(host.container)
    script = 'for p in /proc/[0-9]*; do printf "%s " "${p#/proc/}"; tr "\\0" " " <"$p/cmdline"; echo; done'
    output = container.exec_run(["sh", "-c", script]).output.decode("utf-8", "replace")
    found = {}
    for line in output.splitlines():
        pid, _, command = line.partition(" ")
        if pid.isdigit() and command.strip():
            found[int(pid)] = command
    return found


STDLIB_ORIGIN = """
def stdlib_origin():
    import json
    import sys
    return json.__file__, tuple(sys.version_info[:2])
"""


@pytest.mark.parametrize(("relay_suite", "target_suite"), SUITE_PAIRS, ids=lambda s: s)
def test_a_host_of_one_python_through_a_relay_of_another(
    fleet: hosts.Fleet, agent_with_key, opened, user_modules, relay_suite: str, target_suite: str
) -> None:
    relay_host, target_host = host_of(fleet, relay_suite), host_of(fleet, target_suite)
    if relay_host is target_host:
        target_host = other_host(fleet, relay_host)
    relay = relay_to(relay_host, opened)
    target = through(relay, target_host, opened)
    assert target.python_version == target_host.python_version
    assert relay.python_version == relay_host.python_version
    suffix = user_modules({"via_probe_{s}.py": STDLIB_ORIGIN})
    probe = __import__(f"via_probe_{suffix}")
    origin, version = target.call(probe.stdlib_origin)
    # The standard library is the target's own, whatever the relay runs; the probe came from the master.
    assert version == target_host.python_version[:2]
    assert origin.startswith("/usr/lib/python%d.%d/" % version), origin
    assert target.stats["modules_sent"] >= 1
    assert "python" in processes(target_host, fleet).get(target.pid, ""), "the child is not on the target host"


def test_a_chain_of_two_relays(fleet, agent_with_key, opened) -> None:
    first, second, last = fleet.hosts[0], other_host(fleet, fleet.hosts[0]), fleet.hosts[-1]
    relay = relay_to(first, opened)
    middle = through(relay, second, opened, forward_agent=True)  # the agent goes on, for the second hop's ssh
    end = through(middle, last, opened)
    assert end.python_version == last.python_version
    assert end.call(platform.python_version) == "%d.%d.%d" % last.python_version
    assert [end.call(pow, 2, n) for n in range(3)] == [1, 2, 4]


def test_closing_leaves_no_process_on_the_relay_or_the_host(fleet, agent_with_key, opened) -> None:
    relay_host, target_host = fleet.hosts[0], other_host(fleet, fleet.hosts[0])
    relay = relay_to(relay_host, opened)
    target = through(relay, target_host, opened)
    target_pid = target.pid
    on_relay = [pid for pid, command in processes(relay_host, fleet).items() if f"-p {target_host.port} " in command]
    assert on_relay, "the relay's sh and ssh for the target were not found"
    assert target_pid in processes(target_host, fleet)
    target.close()
    relay.close()
    wait_until(
        lambda: not set(on_relay) & set(processes(relay_host, fleet)),
        what="the relay's ssh to the target to end",
    )
    wait_until(lambda: target_pid not in processes(target_host, fleet), what="the target's child to end")


def test_a_relay_killed_mid_call_fails_its_subtree_only(fleet, agent_with_key, opened) -> None:
    hosts_ = fleet.hosts
    doomed_relay, doomed_target = relay_to(hosts_[0], opened), None
    doomed_target = through(doomed_relay, other_host(fleet, hosts_[0]), opened)
    other_relay = relay_to(other_host(fleet, hosts_[0]), opened)
    other_target = through(other_relay, hosts_[0], opened)
    sleeping = doomed_target.call_async(time.sleep, 600)
    doomed_relay.call_async(os.kill, doomed_relay.pid, signal.SIGKILL)
    with pytest.raises(ConnectionLost) as lost:
        sleeping.result(timeout=60)
    assert f"its relay {doomed_relay.name} ended" in str(lost.value)
    assert other_target.call(pow, 3, 2) == 9
    assert other_relay.call(pow, 2, 3) == 8
    with pytest.raises(ConnectionLost):
        doomed_target.call(os.getpid)


def test_a_host_key_the_master_does_not_know_is_refused_before_anything_starts(
    fleet, agent_with_key, opened, tmp_path
) -> None:
    relay = relay_to(fleet.hosts[0], opened)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="no host key"):
        through(relay, other_host(fleet, fleet.hosts[0]), opened, known_hosts=empty)
    assert relay.call(pow, 2, 2) == 4


def test_a_changed_host_key_is_refused_by_the_relay(fleet, agent_with_key, opened, tmp_path) -> None:
    relay_host = fleet.hosts[0]
    target_host = other_host(fleet, relay_host)
    relay = relay_to(relay_host, opened)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{target_host.known_hosts_name} {relay_host.host_key}\n")  # another host's key under its name
    target = through(relay, target_host, opened, known_hosts=wrong)
    with pytest.raises(HostKeyError, match="refused the host key"):
        target.call(os.getpid)


def test_a_relay_without_an_agent_or_key_says_how_it_could_log_in(fleet, opened, monkeypatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    relay = relay_to(fleet.hosts[0], opened, forward_agent=False)
    target = through(relay, other_host(fleet, fleet.hosts[0]), opened)
    with pytest.raises(AuthenticationFailed, match="forward_agent=True"):
        target.call(os.getpid)


def test_a_key_of_the_relay_own_is_used(fleet, opened, monkeypatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    relay_host = fleet.hosts[0]
    relay = relay_to(relay_host, opened, forward_agent=False, user=hosts.NOPASS_USER)
    relay.run("mkdir -p -m 700 .ssh")
    relay.put(str(relay_host.key_path), f"/home/{hosts.NOPASS_USER}/.ssh/id_ed25519", mode=0o600)
    try:
        target = through(relay, other_host(fleet, relay_host), opened)
        assert target.call(pow, 5, 2) == 25
    finally:
        relay.run("rm -f .ssh/id_ed25519")


def test_an_old_python_behind_a_relay_is_named(fleet, agent_with_key, opened) -> None:
    old = [h for h in fleet.hosts if h.suite == "bullseye"]
    if not old:
        pytest.skip("only bullseye hosts have python2.7")
    relay = relay_to(other_host(fleet, old[0]) if len(fleet.hosts) > 1 else old[0], opened)
    target = through(relay, old[0], opened, python="python2.7")
    with pytest.raises(UnsupportedPython) as refused:
        target.call(os.getpid)
    assert refused.value.version.startswith("2.7")


def test_a_closed_port_is_unreachable_through_the_relay(fleet, agent_with_key, opened) -> None:
    relay = relay_to(fleet.hosts[0], opened)
    target_host = other_host(fleet, fleet.hosts[0])
    port = hosts.free_ports(1)[0]
    target = through(relay, target_host, opened, port=port, host_key_policy="off")
    with pytest.raises(Unreachable, match="through") as refused:
        target.call(os.getpid)
    assert relay.name in str(refused.value)


def test_a_host_beyond_two_relays_calls_a_service_on_the_master(fleet, agent_with_key, opened, user_modules) -> None:
    first, second, last = fleet.hosts[0], other_host(fleet, fleet.hosts[0]), fleet.hosts[-1]
    relay = relay_to(first, opened)
    end = through(through(relay, second, opened, forward_agent=True), last, opened)
    ask = echo_asker(user_modules)
    with service.Pool(2, services=[Echo()]).serve_children():
        assert end.call(ask, "through two relays") == "through two relays"
        assert relay.call(ask, "from the relay") == "from the relay"


def test_a_host_beyond_a_relay_runs_commands_and_takes_files(fleet, agent_with_key, opened, tmp_path) -> None:
    relay = relay_to(fleet.hosts[0], opened)
    target_host = other_host(fleet, fleet.hosts[0])
    target = through(relay, target_host, opened)
    source = tmp_path / "payload.txt"
    source.write_bytes(b"through a relay\n" * 1000)
    dest = f"/tmp/via-{os.getpid()}-{time.monotonic_ns()}.txt"
    target.put(str(source), dest)
    try:
        digest = target.run(f"sha256sum {dest}").stdout.split()[0]
        assert digest == hashlib.sha256(source.read_bytes()).hexdigest()
    finally:
        target.run(f"rm -f {dest}")


def test_a_package_crosses_the_master_link_once_per_relay(fleet, agent_with_key, opened, user_modules) -> None:
    relay_host = fleet.hosts[0]
    same_python = [h for h in fleet.hosts if h is not relay_host and h.suite == relay_host.suite]
    targets_hosts = [relay_host, *same_python][:2] if len(same_python) < 2 else same_python[:2]
    relay = relay_to(relay_host, opened)
    targets = [through(relay, host, opened, name=f"behind-{i}") for i, host in enumerate(targets_hosts)]
    blob = os.urandom(60_000).hex()  # 120 KB of source, which compresses to about half
    source = f"BLOB = {blob!r}\n\ndef size():\n    return len(BLOB)\n"
    once = len(zlib.compress(source.encode(), 6))  # the package, compressed, as it crosses the link
    suffix = user_modules({"via_big_{s}.py": source})
    big = __import__(f"via_big_{suffix}")
    assert relay.call(pow, 2, 2) == 4  # every target started: what follows is the package's traffic alone
    for target in targets:
        assert target.call(pow, 2, 3) == 8
    before = relay.stats["bytes_sent"]  # the connection's: what left the master for the relay and all beyond it
    assert [target.call(big.size) for target in targets] == [len(blob)] * len(targets)
    sent = relay.stats["bytes_sent"] - before
    assert once < sent < 1.5 * once, f"{sent} bytes crossed the link for {len(targets)} hosts, {once} each"


def test_become_on_a_host_beyond_a_relay(fleet, agent_with_key, opened) -> None:
    relay = relay_to(fleet.hosts[0], opened)
    target_host = other_host(fleet, fleet.hosts[0])
    target = through(relay, target_host, opened, user=hosts.NOPASS_USER)
    root = target.become("root")
    assert root.call(os.getuid) == 0
    assert target.call(os.getuid) != 0
    assert "python" in processes(target_host, fleet).get(root.pid, "")  # on the target, not on the relay
