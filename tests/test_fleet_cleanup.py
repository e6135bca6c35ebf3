"""Containers go away at the end of a session: when tests fail, and when the run is interrupted."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.fleet import hosts, probe_session


def start_probe(mode: str) -> tuple[subprocess.Popen, str]:
    """Start a one-host fleet session in a child pytest; return it and its fleet's run id."""
    env = dict(os.environ, PROBE_MODE=mode, FANOUT_FLEET_SUITES="bookworm", FANOUT_FLEET_PER_SUITE="1")
    child = probe_session.start_probe(env)
    seen = []
    for line in child.stdout:
        seen.append(line)
        if line.startswith("FLEET-UP run="):
            return child, line.split("=", 1)[1].strip()
    child.wait()
    raise AssertionError("probe session never brought its fleet up:\n" + "".join(seen))


def run_containers(client, run_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"{hosts.RUN_LABEL}={run_id}"})


def test_containers_removed_when_tests_fail(fleet) -> None:
    child, run_id = start_probe("fail")
    rest = child.stdout.read()
    assert child.wait(timeout=120) == 1, rest
    assert "1 failed" in rest
    assert run_containers(fleet.client, run_id) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_containers_removed_when_interrupted(fleet, sig: signal.Signals) -> None:
    child, run_id = start_probe("hang")
    assert len(run_containers(fleet.client, run_id)) == 1
    child.send_signal(sig)
    child.stdout.read()
    child.wait(timeout=120)
    assert run_containers(fleet.client, run_id) == []


def test_containers_of_a_killed_run_are_reaped_by_the_next(fleet) -> None:
    child, run_id = start_probe("hang")
    child.kill()
    child.wait(timeout=30)
    assert len(run_containers(fleet.client, run_id)) == 1  # SIGKILL: nobody could clean up
    hosts.reap_orphans(fleet.client)
    assert run_containers(fleet.client, run_id) == []
