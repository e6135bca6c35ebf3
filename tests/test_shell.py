"""fanout._shell.run in a child: background processes, huge output, echo, and commands that outlive the child."""

from __future__ import annotations

import time
import uuid

import pytest

from fanout import _shell


def processes_matching(checker, marker: str) -> list[str]:
    """The /proc entries of live processes whose command line holds ``marker``, as ``checker`` sees them."""
    pattern = marker[:-1] + "[" + marker[-1] + "]"  # a pattern that does not match the grep itself
    _, out, _, _ = checker.call(_shell.run, f"grep -la '{pattern}' /proc/[0-9]*/cmdline 2>/dev/null", None, False)
    return out.split()


def test_a_background_process_holding_the_pipes_does_not_hold_up_run(child) -> None:
    child.call(_shell.run, "true", None, False)  # the module is imported: only the run is timed
    started = time.monotonic()
    assert child.call(_shell.run, "sleep 5 & echo started", None, False) == (0, "started\n", "", False)
    assert time.monotonic() - started < 2


def test_on_the_master_run_needs_no_stage1() -> None:
    started = time.monotonic()
    assert _shell.run("sleep 5 & echo started; echo oops >&2; exit 3", echo=False) == (3, "started\n", "oops\n", False)
    assert time.monotonic() - started < 2


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


def test_output_after_run_returned_is_neither_kept_nor_echoed(child) -> None:
    received = []
    child.on_output = lambda stream, text, call_id: received.append(text)
    assert child.call(_shell.run, "(sleep 1; echo late) & echo early", None, True) == (0, "early\n", "", False)
    time.sleep(1.5)
    assert child.call(abs, -1) == 1
    assert received == ["early"]


def test_a_timeout_kills_the_command_and_what_it_started(child) -> None:
    started = time.monotonic()
    assert child.call(_shell.run, "sleep 30 & echo begun; sleep 30", 1, False) == (None, "begun\n", "", True)
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("ignores_term", [False, True], ids=["terminated", "killed"])
def test_commands_still_running_end_with_their_child(open_child, ignores_term) -> None:
    """Closing the child ends the process groups of its commands: SIGTERM, then SIGKILL for the stubborn."""
    marker = f"fanout-test-{uuid.uuid4().hex}"
    child, checker = open_child(), open_child()
    trap = "trap '' TERM; " if ignores_term else ""
    running = [child.call_async(_shell.run, f"{trap}sleep 60; : {marker} {n}", None, False) for n in range(2)]
    deadline = time.monotonic() + 10
    while len(processes_matching(checker, marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes_matching(checker, marker)) == 2
    child.close()
    deadline = time.monotonic() + 5
    while processes_matching(checker, marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_matching(checker, marker) == []
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
