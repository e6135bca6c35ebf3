"""Stage 1's leader/follower threads: reading goes on whichever call ends first (docs/protocol.rst, "Threads in
the child")."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import fanout

pytestmark = pytest.mark.fleet  # starts a child process
WAIT = 60.0  # seconds a gate is waited for: far beyond what any machine needs; the test fails, it does not hang


def _wait_for_file(path: str, seconds: float) -> bool:
    """On the child: until ``path`` exists (True), or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0001)
    return True


def _start_then_wait(started: str, gate: str, seconds: float) -> bool:
    """On the child: say it started, then wait for ``gate``."""
    Path(started).touch()
    return _wait_for_file(gate, seconds)


def test_a_call_that_ends_after_losing_the_reading_leaves_the_new_reader_watched(tmp_path) -> None:
    """A call loses the reading (the watchdog passes it on), and ends while the new reader runs a call of its own:
    that call is still watched, so when it waits for a later call, the later call is read and runs."""
    started, gate = str(tmp_path / "second-started"), str(tmp_path / "gate")
    with fanout.local() as child:
        child.call(_wait_for_file, started, 0)  # this module is in the child: no import below hands the reading on
        first = child.call_async(_wait_for_file, started, WAIT)  # runs long enough to lose the reading
        second = child.call_async(_start_then_wait, started, gate, WAIT)  # read by the next reader, who runs it
        assert first.result(WAIT + 30) is True  # ends just after the second started: its reader is still in it
        assert child.call(Path.touch, Path(gate), timeout=WAIT) is None  # read only if the second's reader is watched
        assert second.result(WAIT + 30) is True


def _print_part_then_wait(started: str, gate: str, seconds: float) -> bool:
    """On the child: start a line, say so, wait for ``gate``, then end the line."""
    print("part", end="")
    Path(started).touch()
    waited = _wait_for_file(gate, seconds)
    print("-rest")
    return waited


def test_a_call_ending_never_ends_another_calls_unfinished_line(tmp_path) -> None:
    started, gate = str(tmp_path / "started"), str(tmp_path / "gate")
    lines: list[tuple[str, str, int]] = []
    with fanout.local() as child:
        child.on_output = lambda stream, line, call_id: lines.append((stream, line, call_id))
        child.call(_wait_for_file, started, 0)  # this module is in the child before the calls below
        printing = child.call_async(_print_part_then_wait, started, gate, WAIT)
        assert child.call(_wait_for_file, started, WAIT) is True  # its line is begun, not ended
        other = child.call_async(abs, -1)
        assert other.result(WAIT) == 1  # this call's end flushed stdout: only its own line, if it had one
        Path(gate).touch()
        assert printing.result(WAIT + 30) is True
    assert ("stdout", "part-rest", printing.call_id) in lines
    assert [line for line in lines if line[1] == "part"] == []
