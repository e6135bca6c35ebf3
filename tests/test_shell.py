"""fanout._shell.run in a child: background processes, huge output, echo, and commands that outlive the child."""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from fanout import _shell
from tests.fleet.gates import HostGate
from tests.fleet.waiting import WAIT_TIMEOUT, wait_until

OUTLIVES_THE_TEST = "sleep 3600"  # a process still there when the test ends, whatever the machine's load


def processes_matching(checker, marker: str) -> list[str]:
    """The /proc entries of live processes whose command line holds ``marker``, as ``checker`` sees them."""
    pattern = marker[:-1] + "[" + marker[-1] + "]"  # a pattern that does not match the grep itself
    _, out, _, _ = checker.call(_shell.run, f"grep -la '{pattern}' /proc/[0-9]*/cmdline 2>/dev/null", None, False)
    return out.split()


def test_a_background_process_holding_the_pipes_does_not_hold_up_run(child) -> None:
    """The background sleep outlives any wait for the test: run returned at all, it did not wait for its end."""
    rc, out, err, timed_out = child.call(_shell.run, f"{OUTLIVES_THE_TEST} & echo $!", WAIT_TIMEOUT, False)
    assert (rc, err, timed_out) == (0, "", False)
    assert child.call(os.kill, int(out), signal.SIGTERM) is None  # still running: it held the pipes all along


def test_on_the_master_run_needs_no_stage1() -> None:
    command = f"{OUTLIVES_THE_TEST} & echo $!; echo oops >&2; exit 3"
    rc, out, err, timed_out = _shell.run(command, WAIT_TIMEOUT, echo=False)
    assert (rc, err, timed_out) == (3, "oops\n", False)
    os.kill(int(out), signal.SIGTERM)  # still running: it held the pipes all along


def test_output_past_16_mib_keeps_its_first_and_last_8_mib(child) -> None:
    size = 40_000_000
    command = f"printf START; head -c {size} /dev/zero | tr '\\0' a; printf END"
    rc, out, err, timed_out = child.call(_shell.run, command, None, False)
    left_out = size + len("STARTEND") - 2 * _shell.KEEP
    assert (rc, err, timed_out) == (0, "", False)
    assert out == (
        "START" + "a" * (_shell.KEEP - 5) + f"\n[... {left_out} bytes left out ...]\n" + "a" * (_shell.KEEP - 3) + "END"
    )


def test_echo_sends_whole_lines_and_output_under_the_cap_is_kept_whole(child) -> None:
    received = []
    child.on_output = lambda stream, text, call_id: received.append((stream, text))
    command = "printf 'one\\ntwo'; yes x | head -n 100000 | tr -d '\\n' >&2"
    assert child.call(_shell.run, command, None, True) == (0, "one\ntwo", "x" * 100_000, False)
    assert [text for stream, text in received if stream == "stdout"] == ["one", "two"]
    assert "".join(text for stream, text in received if stream == "stderr") == "x" * 100_000


def test_output_after_run_returned_is_neither_kept_nor_echoed(open_child) -> None:
    child, gatekeeper = open_child(), open_child()
    received = []
    child.on_output = lambda stream, text, call_id: received.append(text)
    with HostGate(gatekeeper) as gate:
        late = f"({gate.shell_wait}; echo late; echo > {gate.directory}/wrote-late) & echo early"
        assert child.call(_shell.run, late, None, True) == (0, "early\n", "", False)
        gate.open()  # only now, with run returned, does the background process write
        wait_until(lambda: child.call(os.path.exists, f"{gate.directory}/wrote-late"), what="the late line written")
    assert child.call(abs, -1) == 1
    assert received == ["early"]


def test_a_timeout_kills_the_command_and_what_it_started(open_child) -> None:
    marker = f"fanout-test-{uuid.uuid4().hex}"
    child, checker = open_child(), open_child()
    command = f"({OUTLIVES_THE_TEST}; : {marker}) & echo begun; {OUTLIVES_THE_TEST}"
    assert child.call(_shell.run, command, 1, False) == (None, "begun\n", "", True)
    wait_until(lambda: not processes_matching(checker, marker), what="the end of what the command started")


@pytest.mark.parametrize("ignores_term", [False, True], ids=["terminated", "killed"])
def test_commands_still_running_end_with_their_child(open_child, ignores_term) -> None:
    """Closing the child ends the process groups of its commands: SIGTERM, then SIGKILL for the stubborn."""
    marker = f"fanout-test-{uuid.uuid4().hex}"
    child, checker = open_child(), open_child()
    trap = "trap '' TERM; " if ignores_term else ""
    running = [child.call_async(_shell.run, f"{trap}sleep 60; : {marker} {n}", None, False) for n in range(2)]
    wait_until(lambda: len(processes_matching(checker, marker)) == 2, what="both commands running")
    child.close()
    wait_until(
        lambda: processes_matching(checker, marker) == [],
        what="the end of both commands with their child",
        state=lambda: f"still running: {processes_matching(checker, marker)}",
    )
    assert all(future.done() for future in running)  # failed with ConnectionLost, not left waiting


def test_output_between_8_and_16_mib_is_kept_whole(child) -> None:
    size = 10_000_000
    command = f"printf START; head -c {size} /dev/zero | tr '\\0' a; printf END"
    rc, out, err, timed_out = child.call(_shell.run, command, None, False)
    assert (rc, err, timed_out) == (0, "", False)
    assert out == "START" + "a" * size + "END"


def test_a_slow_echo_loses_no_output(child) -> None:
    """Each echo takes 0.6 s (a master slow to read): past the shell's end, run waits while the readers progress."""
    slow = "class Slow:\n    def write(self, text):\n        time.sleep(0.6)\n    def flush(self):\n        pass\n"
    child.call(exec, "import sys, time\n" + slow + "sys.stdout = Slow()")
    big_pipe = "python3 -c 'import fcntl; fcntl.fcntl(1, 1031, 1 << 20)'"  # F_SETPIPE_SZ: all fits, the shell ends
    rc, out, err, timed_out = child.call(_shell.run, big_pipe + "; seq 1 60000; echo last", None, True)
    assert (rc, err, timed_out) == (0, "", False)
    assert out.splitlines() == [str(n) for n in range(1, 60001)] + ["last"]


def test_a_finished_command_leaves_no_process_group_behind(child) -> None:
    """A group number the system may hand out again is never kept; one with background members is."""
    groups = "sorted(__import__('fanout._shell', fromlist=['_groups'])._groups)"
    assert child.call(_shell.run, "true", None, False)[0] == 0
    assert child.call(eval, groups) == []
    assert child.call(_shell.run, "sleep 3 & echo started", None, False)[0] == 0
    assert len(child.call(eval, groups)) == 1


@pytest.mark.parametrize("size", [131_072, 196_608, 300_000])
def test_a_long_line_without_newline_is_echoed_whole(child, size) -> None:
    """Pieces went out as it came; the last piece ends the line, even when none is left held back."""
    received = []
    child.on_output = lambda stream, text, call_id: received.append(text)
    assert child.call(_shell.run, f"head -c {size} /dev/zero | tr '\\0' x", None, True)[1] == "x" * size
    assert child.call(abs, -1) == 1
    assert received == ["x" * size]
