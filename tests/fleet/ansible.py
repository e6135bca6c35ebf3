"""Running the real ansible-core beside fanout, so tests can hold fanout's answers to ansible-core's own.

ansible-core is a test dependency (the ``test`` extra): a test that needs it fails, never skips, without it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def executable(name: str) -> str:
    """``name`` beside this interpreter (a venv's bin/), else on PATH; fail loudly: ansible-core is required."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(
            f"{name} not found beside {sys.executable} nor on PATH: ansible-core is a test dependency,"
            " install it with: pip install -e '.[test]'",
            pytrace=False,
        )
    return found


def interpreter_of(script: str) -> str:
    """The Python that runs an installed console script (its ``#!`` line), to import that ansible-core."""
    with open(script, "rb") as f:
        first = f.readline().decode("utf-8", "replace")
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    return sys.executable


def clean_env(root: Path) -> dict[str, str]:
    """No ANSIBLE_* from the caller, no ~/.ansible.cfg or /etc/ansible/ansible.cfg: only ansible-core's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    (root / "home").mkdir()
    (root / "ansible.cfg").write_text("# empty: ansible-core's defaults\n")
    env.update(
        HOME=str(root / "home"),
        ANSIBLE_CONFIG=str(root / "ansible.cfg"),
        ANSIBLE_HOME=str(root / "home" / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(root / "home" / "tmp"),
        # a source no plugin can read is an error, not an empty inventory that would "agree" with nothing
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true",
        # ansible-core 2.19's default, which reads ".ini" files in an inventory directory (ansible/ansible#84001),
        # as fanout does; older releases (all that Python 3.10 can install) skip them unless told this.
        ANSIBLE_INVENTORY_IGNORE=".pyc,.pyo,.swp,.bak,~,.rpm,.md,.txt,.rst,.orig,.cfg,.retry",
        ANSIBLE_NOCOLOR="true",
        ANSIBLE_HOST_PATTERN_MISMATCH="ignore",
        LC_ALL="C.UTF-8",
    )
    return env
