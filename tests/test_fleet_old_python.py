"""A host's Python too old for fanout fails in one line naming it; python="auto" finds a new enough one.

bullseye hosts have Debian's python2.7 beside python3 (tests/fleet/Dockerfile): a real old interpreter,
not one made to report an old version (the unit tests in tests/test_stage.py do that, locally).
"""

from __future__ import annotations

import logging
import os

import pytest

import fanout
from fanout.errors import UnsupportedPython
from fanout.fleet import UNREACHABLE, Fleet

NEEDS = (
    "fanout needs Python 3.9 or newer on hosts (choose another interpreter with python= or ansible_python_interpreter)"
)


def one_per_suite(fleet) -> list:
    hosts: dict[str, object] = {}
    for host in fleet.hosts:
        hosts.setdefault(host.suite, host)
    return list(hosts.values())


def test_python_2_7_fails_in_one_line_naming_the_host(fleet) -> None:
    bullseye = [host for host in fleet.hosts if host.suite == "bullseye"]
    if not bullseye:
        pytest.skip("no bullseye host in this fleet (FANOUT_FLEET_SUITES): only it has python2.7")
    host = bullseye[0]
    expected = "web1 runs Python 2.7.18 (/usr/bin/python2.7); " + NEEDS
    with fanout.connect(host.address, **host.connect_options(), python="python2.7", name="web1") as context:
        for _ in range(2):  # every call says the same
            with pytest.raises(UnsupportedPython) as raised:
                context.call(os.getpid)
            assert str(raised.value) == expected
    hosts = {
        "web1": {"host": host.address, **host.connect_options(), "python": "/usr/bin/python2.7"},
        "web2": {"host": host.address, **host.connect_options()},
    }
    with Fleet(hosts, echo=False) as the_fleet:
        results = the_fleet.call(os.getpid)
    assert results["web2"].ok
    assert results["web1"].status == UNREACHABLE and str(results["web1"].error) == expected


@pytest.mark.parametrize("mode", ["auto", "auto_silent"])
def test_auto_finds_a_new_enough_python_on_every_suite(fleet, mode: str, caplog) -> None:
    for host in one_per_suite(fleet):
        caplog.clear()
        options = {**host.connect_options(), "python": mode, "name": host.name}
        with caplog.at_level(logging.WARNING, "fanout.remote"), fanout.connect(host.address, **options) as context:
            assert context.call(os.getpid) == context.pid
            assert context.python_version == host.python_version
            chosen = context._wait_hello().executable
        major, minor, _ = host.python_version
        assert chosen == f"/usr/bin/python{major}.{minor}", host.suite  # python3.N comes first in Ansible's order
        said = [r.getMessage() for r in caplog.records if r.name.startswith("fanout.remote")]
        assert said == ([] if mode == "auto_silent" else [f"fanout: using the discovered Python interpreter {chosen}"])
