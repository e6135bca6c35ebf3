"""A child pytest session of its own (probe_fleet_session.py), for tests of how a session brings up and removes
its fleet: the main session's own fleet is no use to them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PROBE = "tests/fleet/probe_fleet_session.py"


def probe_command(*pytest_options: str) -> list[str]:
    """The command line of a child pytest running only the probe session, with ``pytest_options``; run it in
    REPO_ROOT."""
    return [
        sys.executable,
        "-m",
        "pytest",
        *pytest_options,
        "-p",
        "no:cacheprovider",
        "-o",
        "python_files=probe_*.py",
        PROBE,
    ]


def start_probe(env: dict[str, str]) -> subprocess.Popen:
    """The probe session started with ``env``, its output (stdout and stderr) on a text pipe."""
    return subprocess.Popen(
        probe_command("-s", "-q"), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
