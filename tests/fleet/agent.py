"""A real ssh-agent for tests that forward or use one: started, waited for, and given keys as a desktop would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.fleet.waiting import WAIT_TIMEOUT, wait_until


def start_agent(sock: Path) -> subprocess.Popen:
    """ssh-agent in the foreground, listening on ``sock``; returned once the socket exists (it listens then)."""
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        wait_until(
            lambda: sock.is_socket() or process.poll() is not None,
            what=f"ssh-agent to make its socket {sock}",
        )
    except BaseException:
        process.kill()
        process.wait()
        raise
    if process.poll() is not None:
        raise AssertionError(f"ssh-agent exited with status {process.returncode} before making its socket {sock}")
    return process


def add_to_agent(agent: Path, key: Path, passphrase: str = "") -> None:
    """ssh-add ``key``; an encrypted one's passphrase typed through SSH_ASKPASS, as a desktop would."""
    askpass = key.parent / f"askpass-{key.name}.sh"
    askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_AUTH_SOCK": str(agent), "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    subprocess.run(["ssh-add", "-q", str(key)], check=True, env=env, stdin=subprocess.DEVNULL, timeout=WAIT_TIMEOUT)
