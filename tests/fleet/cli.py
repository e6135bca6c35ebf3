"""The installed ``fanout`` command, run as users run it: piped, or on a pseudo-terminal of its own."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.fleet.hosts import FleetHost
from tests.fleet.waiting import WAIT_TIMEOUT

COMMAND_TIMEOUT = WAIT_TIMEOUT  # seconds: only stops a hung command, never times a working one
_READ_SIZE = 65536
_SELECT_SECONDS = 1  # how often a terminal read looks at its limit again


def fanout_exe() -> str:
    """The console script installed beside this Python (the venv's)."""
    exe = shutil.which("fanout", path=str(Path(sys.executable).parent))
    assert exe, "the fanout console script is not installed beside this python"
    return exe


def fanout_cmd(*args: str, cwd: Path | None = None, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    """The command with pipes for stdout and stderr; its status and text output."""
    return subprocess.run([fanout_exe(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def inventory_line(name: str, host: FleetHost, user: str, variables: str = "") -> str:
    """An INI inventory line reaching ``host`` as ``user``, with this run's key and known_hosts."""
    return (
        f"{name} ansible_host={host.address} ansible_port={host.port} ansible_user={user}"
        f" ansible_ssh_private_key_file={host.key_path} fanout_known_hosts={host.known_hosts} {variables}"
    )


def _read_terminal(leader: int, answers: dict[bytes, bytes], timeout: float) -> bytes:
    """All the command writes to the terminal until it closes it, typing each answer once when its prompt appears."""
    output, answered = b"", set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], _SELECT_SECONDS)
        if not ready:
            continue
        try:
            chunk = os.read(leader, _READ_SIZE)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        output += chunk
        for prompt, answer in answers.items():
            if prompt in output and prompt not in answered:
                answered.add(prompt)
                os.write(leader, answer + b"\n")
    return output


def _take_the_terminal() -> None:
    """In the child, after setsid: the terminal on stdin becomes its controlling terminal (getpass opens /dev/tty)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_on_a_terminal(
    args: list[str], answers: dict[bytes, bytes], timeout: float = COMMAND_TIMEOUT
) -> tuple[int, bytes]:
    """Run the command on a pseudo-terminal of its own (stdin too: its controlling terminal), typing each answer
    once when its prompt appears; its status and all it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [fanout_exe(), *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
        preexec_fn=_take_the_terminal,
    )
    os.close(follower)
    try:
        output = _read_terminal(leader, answers, timeout)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    return process.wait(timeout=timeout), output


def run_showing_a_terminal(args: list[str], timeout: float = COMMAND_TIMEOUT, columns: int = 80) -> tuple[int, bytes]:
    """Run the command with a pseudo-terminal ``columns`` wide as stdout and stderr (stdin empty), as where progress
    bars show; its status and all it wrote."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen([fanout_exe(), *args], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    try:
        output = _read_terminal(leader, {}, timeout)
    finally:
        os.close(leader)
    return process.wait(timeout=timeout), output
