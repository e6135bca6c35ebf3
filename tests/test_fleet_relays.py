"""Fleets reached through relays: ``Fleet(relays=N | "auto")`` and an inventory's ``fanout_via``, on the real fleet.

The relays authenticate onward with the fleet's key held by an agent forwarded to them, as an operator's desktop
agent would be.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time

import pytest

import fanout
from fanout.errors import Unreachable
from tests.fleet import hosts
from tests.fleet.agent import add_to_agent
from tests.fleet.cli import fanout_cmd
from tests.fleet.inventories import known_hosts_of, write_inventory

pytestmark = pytest.mark.fleet


@pytest.fixture
def agent_with_key(ssh_agent, fleet):
    add_to_agent(ssh_agent, fleet.hosts[0].key_path)
    return ssh_agent


def fleet_hosts(fleet: hosts.Fleet) -> dict[str, dict]:
    return {host.name: {"host": host.address, **host.connect_options()} for host in fleet.hosts}


def versions(fleet: hosts.Fleet) -> dict[str, str]:
    return {host.name: "%d.%d.%d" % host.python_version for host in fleet.hosts}


def test_relays_picked_among_the_fleet_carry_the_rest(fleet, agent_with_key) -> None:
    count = 2 if len(fleet.hosts) >= 4 else 1
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet(fleet_hosts(fleet), relays=count, echo=False)
    with relayed:
        relays = set(relayed.routes.values())
        assert len(relays) == count
        assert set(relayed.routes) | relays == {host.name for host in fleet.hosts}
        assert not relays & set(relayed.routes)  # a picked relay is reached directly
        results = relayed.call(platform.python_version)
        assert {name: result.value for name, result in results.items()} == versions(fleet)


def test_auto_takes_about_the_square_root(fleet, agent_with_key) -> None:
    many = {f"{name}-{i}": options for name, options in fleet_hosts(fleet).items() for i in range(3)}
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet(many, relays="auto", echo=False)
    expected = round(len(many) ** 0.5)
    assert len(set(relayed.routes.values())) == expected
    with relayed:
        results = relayed.call(os.getuid)
        assert [name for name, result in results.items() if not result.ok] == []


def test_a_relay_that_fails_fails_its_own_hosts_only(fleet, agent_with_key) -> None:
    options = fleet_hosts(fleet)
    first = fleet.hosts[0].name
    options[first]["port"] = hosts.free_ports(1)[0]  # the relay cannot be reached
    others = [host.name for host in fleet.hosts[1:]]
    behind, direct = others[: len(others) // 2 + 1], others[len(others) // 2 + 1 :]
    for name in behind:
        options[name]["via"] = first
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet(options, echo=False)
    with relayed:
        results = relayed.call(os.getuid)
    assert results[first].status == "unreachable"
    for name in behind:
        assert results[name].status == "unreachable"
        assert isinstance(results[name].error, Unreachable)
        assert f"its relay {first} failed" in str(results[name].error)
    for name in direct:
        assert results[name].ok, results[name]


def test_an_inventory_relay_outside_the_pattern_is_connected_but_not_called(fleet, agent_with_key, tmp_path) -> None:
    bastion, target = fleet.hosts[0], fleet.hosts[-1]
    if bastion is target:
        pytest.skip("needs two hosts")
    lines = [
        "[bastions]",
        f"bastion ansible_host={bastion.address} ansible_port={bastion.port}",
        "[targets]",
        f"db ansible_host={target.address} ansible_port={target.port} fanout_via=bastion",
        "[all:vars]",
        f"ansible_user={target.user}",
        f"fanout_known_hosts={known_hosts_of(fleet, tmp_path)}",
        f"ansible_ssh_private_key_file={bastion.key_path}",
    ]
    inventory = tmp_path / "hosts"
    inventory.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet.from_inventory(inventory, "targets", echo=False)
    with relayed:
        results = relayed.call(platform.python_version)
        assert list(results) == ["db"]
        assert results["db"].value == "%d.%d.%d" % target.python_version
        assert relayed.routes == {"db": "bastion"}


def test_a_loop_of_relays_is_refused_before_anything_connects(fleet) -> None:
    options = fleet_hosts(fleet)
    names = list(options)
    options[names[0]]["via"] = names[-1]
    options[names[-1]]["via"] = names[0]
    with pytest.raises(ValueError, match="loop"):
        fanout.Fleet(options)


def test_the_cli_inventory_reaches_hosts_behind_a_relay(fleet, agent_with_key, tmp_path) -> None:
    inventory = write_inventory(fleet, tmp_path, broken=False)
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet.from_inventory(inventory, "docker", relays=1, echo=False)
    with relayed:
        results = relayed.call(platform.python_version)
    assert {name: result.value for name, result in results.items()} == versions(fleet)


def test_many_hosts_behind_one_relay_log_in_through_its_forwarded_agent(fleet, agent_with_key) -> None:
    entries = {f"{name}-{i}": dict(options) for name, options in fleet_hosts(fleet).items() for i in range(30)}
    relay = next(iter(entries))
    for name, options in entries.items():
        if name != relay:
            options["via"] = relay  # far more logins than the agent connections a host may hold at once
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet(entries, echo=False, connect_timeout=300)  # they take turns: none may time out
    with relayed:
        results = relayed.call(os.getuid)
    assert {name: result.status for name, result in results.items() if not result.ok} == {}


def test_the_command_line_reaches_the_fleet_through_relays(fleet, agent_with_key, tmp_path) -> None:
    inventory = write_inventory(fleet, tmp_path, broken=False)
    done = fanout_cmd("-i", str(inventory), "docker", "--relays", "1", "-m", "platform.python_version")
    assert done.returncode == 0, done.stderr
    for host in fleet.hosts:
        assert f"{host.name} | ok | '{'%d.%d.%d' % host.python_version}'" in done.stdout
    # The relayed hosts' key file is not used beyond the relay: said once, as the command line's own warning.
    assert done.stderr.count("fanout: warning:") == 1, done.stderr
    assert "identity files" in done.stderr and "Traceback" not in done.stderr


def one_relay_before_the_rest(fleet: hosts.Fleet) -> tuple[dict[str, dict], str]:
    """Each fleet host once (a push's hosts must not share a filesystem: they would write the same paths at once),
    the first the relay of all the others; at least two behind it, or keeping for them could not be told apart."""
    if len(fleet.hosts) < 3:
        pytest.skip("needs a relay and at least two hosts behind it (the CI fleet has 12)")
    entries = fleet_hosts(fleet)
    relay = next(iter(entries))
    for name, options in entries.items():
        if name != relay:
            options["via"] = relay
    return entries, relay


def test_a_push_crosses_the_master_link_once_per_relay(fleet, agent_with_key, tmp_path) -> None:
    entries, relay = one_relay_before_the_rest(fleet)
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(4 * 1024 * 1024))  # 8 chunks that do not compress
    dest = f"/tmp/relayed-push-{os.getpid()}-{time.monotonic_ns()}"
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet(entries, echo=False, connect_timeout=120)
    with relayed:
        assert all(result.ok for result in relayed.call(os.getuid).values())
        before = relayed.contexts[relay].stats["bytes_sent"]  # the connection's: the relay's and all beyond it
        pushed = relayed.put(str(source), dest)
        sent = relayed.contexts[relay].stats["bytes_sent"] - before
        assert {name: result.status for name, result in pushed.items() if not result.ok} == {}
        digests = relayed.run(f"sha256sum {dest}")  # entries share containers: remove the file after all read it
        relayed.run(f"rm -f {dest}")
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    got = {name: result.value.stdout.split()[0] for name, result in digests.items() if result.ok}
    assert got == dict.fromkeys(entries, expected), digests
    # Each of the hosts got the file; the link carried it about twice: once for the relay's own copy, once for all
    # the hosts beyond it (one copy each would be len(entries) times).
    size = source.stat().st_size
    assert 2 * size <= sent < 2.5 * size, f"{sent} bytes crossed the link for {len(entries)} hosts of {size} bytes"


def test_small_files_of_a_push_cross_the_master_link_once_per_relay(fleet, agent_with_key, tmp_path) -> None:
    entries, relay = one_relay_before_the_rest(fleet)
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(300):  # 600 KiB of small files: they travel in batches, one request for many
        (tree / f"f{i:03d}").write_bytes(os.urandom(2048))
    size = 300 * 2048
    dest = f"/tmp/relayed-tree-{os.getpid()}-{time.monotonic_ns()}"
    with pytest.warns(UserWarning, match="identity files"):
        relayed = fanout.Fleet(entries, echo=False, connect_timeout=120)
    with relayed:
        assert all(result.ok for result in relayed.call(os.getuid).values())
        before = relayed.contexts[relay].stats["bytes_sent"]
        pushed = relayed.put(f"{tree}/", dest)
        sent = relayed.contexts[relay].stats["bytes_sent"] - before
        assert {name: result.status for name, result in pushed.items() if not result.ok} == {}
        listed = relayed.run(f"cat {dest}/* | sha256sum")
        relayed.run(f"rm -rf {dest}")
    expected = hashlib.sha256(b"".join((tree / f"f{i:03d}").read_bytes() for i in range(300))).hexdigest()
    assert {name: result.value.stdout.split()[0] for name, result in listed.items()} == dict.fromkeys(entries, expected)
    # Once for the relay's own copy, once for all the hosts beyond it; each of those still costs its file list and
    # the batch under 128 KiB at the end (16% of the files here), where one copy each would cost over 100%.
    beyond = len(entries) - 1
    assert sent < (2 + 0.35 * beyond) * size, f"{sent} bytes crossed the link for {len(entries)} hosts of {size} bytes"
