"""The ``fanout`` command, run as users run it: an installed console script in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fanout


def fanout_cmd(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("fanout", path=str(Path(sys.executable).parent))
    assert exe, "the fanout console script is not installed beside this python"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def test_version() -> None:
    done = fanout_cmd("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"fanout {fanout.__version__}"
    assert fanout.__version__ != "0.0.0+unknown"


def test_localhost_is_implicit_without_an_inventory() -> None:
    done = fanout_cmd("localhost")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"fanout {fanout.__version__}"
    assert "1 host matching 'localhost'" in lines[1]
    assert "local child" in lines[2] and sys.executable in lines[2]


@pytest.mark.parametrize("pattern", ["web", "all", "localhost:web", ""])
def test_other_patterns_match_nothing_without_an_inventory(pattern: str) -> None:
    done = fanout_cmd(pattern)
    assert done.returncode == 1
    assert done.stdout == ""
    assert f"no host matches {pattern!r}" in done.stderr


@pytest.mark.parametrize("args", [[], ["--bogus", "localhost"], ["localhost", "extra"]])
def test_bad_usage_is_refused_with_usage(args: list[str]) -> None:
    done = fanout_cmd(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: fanout")


def test_python_dash_m_is_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "fanout", "--version"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"fanout {fanout.__version__}"
