"""A fleet that cannot start fails a CI run with its reason, and is skipped (with the reason) elsewhere."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.fleet.probe_session import REPO_ROOT, probe_command


def probe_without_a_fleet(ci: str | None) -> subprocess.CompletedProcess:
    """Run the probe session pointed at a compose fleet that is not running."""
    env = dict(os.environ, FANOUT_TEST_FLEET="compose", PROBE_MODE="fail")
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        probe_command("-q", "-rs"),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("ci", ["true", "1"])
def test_ci_fails_with_the_reason(ci: str) -> None:
    done = probe_without_a_fleet(ci)
    assert done.returncode == 1, done.stdout
    assert "test fleet could not start (CI never skips it)" in done.stdout
    assert "docker compose up" in done.stdout
    assert "1 error" in done.stdout and "skipped" not in done.stdout


def test_outside_ci_it_is_skipped_with_the_reason() -> None:
    done = probe_without_a_fleet(None)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "test fleet unavailable" in done.stdout and "docker compose up" in done.stdout
