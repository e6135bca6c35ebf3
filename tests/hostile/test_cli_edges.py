"""The command at its edges (issue 9, class 5): every bad input is one line and exit 1 (argparse's usage errors
exit 2), never a traceback; Ctrl-C exits 130 with the results already in, wherever it comes.

All on ``localhost`` (a local child) or inventories of local hosts: no Docker. Ctrl-C is a real SIGINT sent to
the command once an event shows where it is (a line it printed, a FIFO it opened); never after a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fanout.cli import MAX_ARGS_DEPTH, MAX_FORKS

TRACEBACK = "Traceback (most recent call last)"


def fanout_exe() -> str:
    exe = shutil.which("fanout", path=str(Path(sys.executable).parent))
    assert exe, "the fanout console script is not installed beside this python"
    return exe


def fanout_cmd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([fanout_exe(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert TRACEBACK not in done.stderr and TRACEBACK not in done.stdout
    return done


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ------------------------------------------------------------------------------------------------- bad input: one line


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["-a", nested(3000)], f"-a is nested more than {MAX_ARGS_DEPTH} levels deep"),
        (["-a", nested(MAX_ARGS_DEPTH + 1)], f"-a is nested more than {MAX_ARGS_DEPTH} levels deep"),
        (["-a", '{"a": ' * 150 + "1" + "}" * 150], f"-a is nested more than {MAX_ARGS_DEPTH} levels deep"),
        (["-a", f"[{'9' * 5000}]"], "-a cannot be read: Exceeds the limit"),
        (["-T", "inf"], "--timeout must be a finite number of seconds above 0, not inf"),
        (["-T", "nan"], "--timeout must be a finite number of seconds above 0, not nan"),
        (["-T", "-1"], "--timeout must be a finite number of seconds above 0, not -1"),
        (["-T", "0"], "--timeout must be a finite number of seconds above 0, not 0"),
        (["-T", "1e308"], "--timeout of 1e+308 s is over the maximum"),
        (["--task-timeout", "1e308"], "--task-timeout of 1e+308 s is over the maximum"),
        (["--task-timeout=-inf"], "--task-timeout must be a finite number of seconds above 0"),
        (["--task-timeout", "0"], "--task-timeout must be a finite number of seconds above 0"),
        (["-f", "0"], f"--forks must be at least 1 and at most {MAX_FORKS:,}, not 0"),
        (["-f", "-5"], f"--forks must be at least 1 and at most {MAX_FORKS:,}, not -5"),
        (["-f", str(MAX_FORKS + 1)], f"--forks must be at least 1 and at most {MAX_FORKS:,}"),
        (["-f", "9" * 40], f"--forks must be at least 1 and at most {MAX_FORKS:,}"),
        (["-u", ""], "-u needs a user name"),
        (["--private-key", "/no/such/key"], "--private-key /no/such/key: no such file"),
        (["-l", "@/no/such/file"], "--limit @/no/such/file: cannot read"),
        (["-l", "~("], "invalid host pattern '~('"),
        (["-l", "nobody"], "no host matches 'localhost' within --limit 'nobody'"),
        (["-i", "/no/such/inventory"], "/no/such/inventory: no such inventory file or directory"),
        (["-m", "os..path"], "-m wants MODULE.FUNCTION"),
        (["--shell", "  "], "--shell needs a command"),
    ],
)
def test_bad_values_are_one_line_and_exit_1(args: list[str], complaint: str) -> None:
    done = fanout_cmd("localhost", *args)
    assert (done.returncode, done.stdout) == (1, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith("fanout: ") and complaint in line


def test_files_that_are_not_what_they_should_be(tmp_path: Path) -> None:
    binary = tmp_path / "names"
    binary.write_bytes(b"\xff\xfe\x00web\n")
    done = fanout_cmd("localhost", "-l", f"@{binary}")
    assert done.returncode == 1 and "is not UTF-8 text" in done.stderr
    done = fanout_cmd("-i", str(binary), "all")
    assert done.returncode == 1 and done.stderr.startswith(f"fanout: {binary}: cannot read inventory")
    (tmp_path / "empty").mkdir()
    done = fanout_cmd("-i", str(tmp_path / "empty"), "all")  # an inventory with no hosts
    assert done.returncode == 1 and "no host matches 'all'" in done.stderr


def test_an_inventory_timeout_no_fleet_could_keep_is_refused(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("a ansible_connection=local ansible_timeout=inf\n")
    done = fanout_cmd("-i", str(tmp_path / "hosts"), "all")
    assert done.returncode == 1
    assert done.stderr == "fanout: host 'a': timeout must be a finite number of seconds above 0, not inf\n"


def test_an_error_message_cannot_span_lines(tmp_path: Path) -> None:
    """Messages can quote what the user gave (a module that breaks on import, here): still one line."""
    (tmp_path / "breaks_on_import.py").write_text("raise RuntimeError('first line\\nfanout: forged second line')\n")
    done = fanout_cmd("localhost", "-m", "breaks_on_import.f", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "fanout: importing breaks_on_import failed: RuntimeError: first line\\nfanout: forged second line"
    ]


def test_a_module_that_exits_on_import_is_a_bad_request(tmp_path: Path) -> None:
    (tmp_path / "exits_on_import.py").write_text("raise SystemExit(7)\n")
    done = fanout_cmd("localhost", "-m", "exits_on_import.f", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == "fanout: importing exits_on_import failed: SystemExit: 7\n"


@pytest.mark.parametrize(
    "args",
    [["localhost", "-f", "many"], ["localhost", "-T", "soon"], ["localhost", "--shell", "true", "-a", "[]"], ["-x"]],
)
def test_usage_errors_are_argparses(args: list[str]) -> None:
    done = fanout_cmd(*args)
    assert done.returncode == 2 and done.stderr.startswith("usage: fanout")


def test_a_timeout_argument_goes_to_the_function(tmp_path: Path) -> None:
    """-a's ``timeout`` is the function's own; --task-timeout is the fleet's."""
    (tmp_path / "takes_timeout.py").write_text("def f(timeout):\n    return timeout\n")
    args = ["-m", "takes_timeout.f", "-a", '{"timeout": 7}', "--task-timeout", "60"]
    done = fanout_cmd("localhost", *args, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "localhost | ok | 7\n")


def test_json_of_a_value_json_cannot_hold(tmp_path: Path) -> None:
    (tmp_path / "tuple_keys.py").write_text("def f():\n    return {(1, 2): 3}\n")
    done = fanout_cmd("localhost", "-m", "tuple_keys.f", "--json", cwd=tmp_path)
    assert done.returncode == 0
    assert json.loads(done.stdout)["value"] == "{(1, 2): 3}"


def test_user_options_where_no_host_uses_ssh_are_a_visible_warning() -> None:
    done = fanout_cmd("localhost", "-u", "deploy")
    assert done.returncode == 0
    assert done.stderr == "fanout: warning: -u applies to SSH hosts only, and none is selected\n"


def test_a_closed_output_ends_the_printing_quietly(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("a ansible_connection=local\nb ansible_connection=local\n")
    reader, writer = os.pipe()
    os.close(reader)  # as `fanout ... | head -0`
    try:
        done = subprocess.run(
            [fanout_exe(), "-i", str(tmp_path / "hosts"), "all"], stdout=writer, stderr=subprocess.PIPE, timeout=120
        )
    finally:
        os.close(writer)
    assert done.returncode == 0
    assert TRACEBACK.encode() not in done.stderr and b"BrokenPipe" not in done.stderr


# ------------------------------------------------------------------------------------------------------------ Ctrl-C


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    """The command, started as a shell starts one in the foreground: SIGINT at its default even when these tests
    run as a background job, which ignores it (and the command then rightly ignores it too)."""
    return subprocess.Popen(
        [fanout_exe(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        bufsize=1,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_line(stream, wanted: str) -> list[str]:
    """Lines read from ``stream`` up to the one holding ``wanted`` (the event to act on), included."""
    lines = []
    for line in stream:
        lines.append(line)
        if wanted in line:
            return lines
    raise AssertionError(f"the command ended without printing {wanted!r}: {lines}")


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    assert TRACEBACK not in err and TRACEBACK not in out
    return process.returncode, out, err


def test_ctrl_c_while_a_command_runs() -> None:
    process = start("localhost", "--shell", "echo started; sleep 600")
    seen = wait_for_line(process.stdout, "[localhost] started")
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    assert status == 130
    assert seen + out.splitlines(keepends=True) == ["[localhost] started\n"]
    assert err == "fanout: interrupted; 0 of 1 hosts finished\n"


def test_ctrl_c_prints_the_results_already_in(tmp_path: Path) -> None:
    """A host that ended at once (its connection kind is not one fanout makes) is printed; the one still running
    is counted out."""
    (tmp_path / "hosts").write_text("done-at-once ansible_connection=winrm\nrunning ansible_connection=local\n")
    process = start("-i", str(tmp_path / "hosts"), "all", "--shell", "echo started; sleep 600")
    wait_for_line(process.stdout, "[running] started")
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    assert status == 130
    (line,) = out.splitlines()
    assert line.startswith("done-at-once | UNREACHABLE | ")
    assert err == "fanout: interrupted; 1 of 2 hosts finished\n"


def test_ctrl_c_while_a_function_runs(tmp_path: Path) -> None:
    (tmp_path / "waits.py").write_text("import time\n\ndef f():\n    print('started')\n    time.sleep(600)\n")
    process = start("localhost", "-m", "waits.f", cwd=tmp_path)
    wait_for_line(process.stdout, "[localhost] started")
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    assert (status, out, err) == (130, "", "fanout: interrupted; 0 of 1 hosts finished\n")


@pytest.fixture
def slow_python(tmp_path: Path):
    """A ``python`` for a local host that never starts (nor reads its input): it says so through a FIFO, then
    sleeps. Its pid comes through the FIFO too, so that it can be ended after the test."""
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    script = tmp_path / "never-starts"
    script.write_text(f"#!/bin/sh\necho $$ > {fifo}\nexec sleep 600\n")
    script.chmod(0o755)
    (tmp_path / "hosts").write_text(f"slow ansible_connection=local fanout_python={script}\n")
    pids: list[int] = []

    def started() -> None:
        with open(fifo) as f:
            pids.append(int(f.read()))

    yield started
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_while_connecting_and_again_while_closing(tmp_path: Path, slow_python) -> None:
    """The host never becomes ready; the first Ctrl-C stops the waiting, and the fleet closes (it waits a few
    seconds for a child that does not end); a second Ctrl-C leaves at once, also without a traceback."""
    process = start("-i", str(tmp_path / "hosts"), "all", "-T", "600")
    slow_python()
    process.send_signal(signal.SIGINT)
    assert process.stderr.readline() == "fanout: interrupted; 0 of 1 hosts finished\n"
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    assert (status, out) == (130, "")
    assert err == "fanout: interrupted again; leaving without waiting for the hosts to close\n"


@pytest.mark.parametrize("command", [["all"], ["inventory", "--list"]])
def test_ctrl_c_while_the_inventory_loads(tmp_path: Path, command: list[str]) -> None:
    """The inventory is a FIFO nobody writes to: once our end is open, the command is reading it."""
    fifo = tmp_path / "hosts"
    os.mkfifo(fifo)
    process = start("-i", str(fifo), *command) if command == ["all"] else start(command[0], "-i", str(fifo), command[1])
    with open(fifo, "w"):
        process.send_signal(signal.SIGINT)
        status, out, err = finish(process)
    prefix = "fanout inventory" if command[0] == "inventory" else "fanout"
    assert (status, out, err) == (130, "", f"{prefix}: interrupted\n")


def test_an_inventory_of_local_hosts_runs_whole(tmp_path: Path) -> None:
    """The results of an uninterrupted run come in host order, then the tally."""
    (tmp_path / "hosts").write_text(
        textwrap.dedent(
            """\
            b ansible_connection=local
            a ansible_connection=local
            """
        )
    )
    done = fanout_cmd("-i", str(tmp_path / "hosts"), "all", "--shell", "echo hi")
    assert done.returncode == 0
    assert done.stdout.splitlines()[-2:] == ["b | ok | rc=0", "a | ok | rc=0"]
    assert done.stderr.splitlines()[-1] == "ok=2"
