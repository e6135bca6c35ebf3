"""The command at its edges (issues 9 and 13): every bad input is one line and exit 1 (argparse's usage errors
exit 2), never a traceback; Ctrl-C exits 130 with the results already in, wherever it comes; results stream as
hosts finish, in colour on a terminal only; --json carries every value or says it cannot.

All on ``localhost`` (a local child) or inventories of local hosts: no Docker. Ctrl-C is a real SIGINT sent to
the command once an event shows where it is (a line it printed, a FIFO it opened); never after a fixed sleep.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from fanout.cli import MAX_ARGS_DEPTH, MAX_FORKS
from tests.fleet import cli
from tests.fleet.cli import fanout_exe

TRACEBACK = "Traceback (most recent call last)"


def fanout_cmd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = cli.fanout_cmd(*args, cwd=cwd)
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


def test_json_marks_every_value_it_cannot_carry(tmp_path: Path) -> None:
    """Bytes as base64, the rest as their repr, each in an object that says so: never a string passed off as the
    value; a dict that looks like a mark is marked itself, so a mark is never ambiguous."""
    (tmp_path / "odd_values.py").write_text(
        "def f():\n"
        "    return {'tuple_keys': {(1, 2): 3}, 'int_keys': {1: 2}, 'bytes': b'\\x00\\xff', 'set': {7},"
        " 'nan': float('nan'), 'tuple': (1, 'a'), 'nested': [{'ok': None}], 'looks_marked': {'repr': 'x'}}\n"
    )
    done = fanout_cmd("localhost", "-m", "odd_values.f", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["value"] == {
        "tuple_keys": {"repr": "{(1, 2): 3}"},
        "int_keys": {"repr": "{1: 2}"},
        "bytes": {"base64": "AP8="},
        "set": {"repr": "{7}"},
        "nan": {"repr": "nan"},
        "tuple": [1, "a"],
        "nested": [{"ok": None}],
        "looks_marked": {"repr": "{'repr': 'x'}"},
    }


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
    assert seen + out.splitlines(keepends=True) == [
        "[localhost] started\n",
        "localhost | INTERRUPTED | still running at Ctrl-C\n",
    ]
    assert err == "fanout: interrupted; 0 of 1 hosts finished\n"


def test_ctrl_c_prints_the_results_already_in(tmp_path: Path) -> None:
    """A host that ended at once (its connection kind is not one fanout makes) is printed; the one still running
    is marked interrupted, and both are in the retry file."""
    (tmp_path / "hosts").write_text("done-at-once ansible_connection=winrm\nrunning ansible_connection=local\n")
    retry = tmp_path / "retry"
    process = start(
        "-i", str(tmp_path / "hosts"), "all", "--shell", "echo started; sleep 600", "--retry-file", str(retry)
    )
    seen = wait_for_line(process.stdout, "[running] started")
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    assert status == 130
    results = [line for line in seen + out.splitlines(keepends=True) if " | " in line]
    assert results[0].startswith("done-at-once | UNREACHABLE | ")
    assert results[1:] == ["running | INTERRUPTED | still running at Ctrl-C\n"]
    assert err == "interrupted=1, unreachable=1\nfanout: interrupted; 1 of 2 hosts finished\n"
    assert retry.read_text() == "done-at-once\nrunning\n"


def test_ctrl_c_while_a_function_runs(tmp_path: Path) -> None:
    (tmp_path / "waits.py").write_text(
        "import logging, time\n\ndef f():\n    logging.getLogger('waits').info('started')\n    time.sleep(600)\n"
    )
    process = start("localhost", "-m", "waits.f", "--json", "-v", cwd=tmp_path)  # -v: its stdout stays JSON
    wait_for_line(process.stderr, "[localhost] INFO waits: started")
    process.send_signal(signal.SIGINT)
    status, out, err = finish(process)
    assert (status, err) == (130, "fanout: interrupted; 0 of 1 hosts finished\n")
    assert json.loads(out) == {
        "host": "localhost",
        "ok": False,
        "status": "interrupted",
        "stdout": "",
        "stderr": "",
        "log": [{"level": "INFO", "logger": "waits", "message": "started"}],
        "error": "still running at Ctrl-C",
    }


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
    assert (status, out) == (130, "slow | INTERRUPTED | still running at Ctrl-C\n")
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


# ------------------------------------------------------------------------------------------- results as they come


def local_hosts(tmp_path: Path, *names: str) -> str:
    """An inventory of local hosts (children on this machine), by name; its path."""
    path = tmp_path / "hosts"
    path.write_text("".join(f"{name} ansible_connection=local\n" for name in names))
    return str(path)


def test_each_host_is_reported_as_it_finishes(tmp_path: Path) -> None:
    """The first host to run the command ends at once, the other waits on a FIFO: the first one's result line
    comes while the other is still waiting (it cannot end before the test writes), then the other's, then the tally."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    command = f"mkdir {tmp_path}/first 2>/dev/null && exit 0; read line < {fifo}; exit 3"
    process = start("-i", local_hosts(tmp_path, "a", "b"), "all", "--shell", command)
    first = process.stdout.readline()
    assert first in ("a | ok | rc=0\n", "b | ok | rc=0\n")
    with open(fifo, "w") as release:
        release.write("go\n")
    status, out, err = finish(process)
    other = "b" if first.startswith("a") else "a"
    assert (status, out, err) == (2, f"{other} | FAILED | rc=3\n", "failed=1, ok=1\n")


def test_one_line_tree_and_retry_file(tmp_path: Path) -> None:
    """-o puts a host's whole result on one line; --tree writes each host's JSON object; --retry-file lists the
    hosts that did not end ok, for --limit @FILE."""
    inventory = tmp_path / "hosts"
    inventory.write_text("a ansible_connection=local\nw ansible_connection=winrm\n")
    tree, retry = tmp_path / "tree", tmp_path / "retry"
    command = "printf 'one\\ttwo\\nthree\\n'; echo oops >&2; exit 3"
    done = fanout_cmd(
        "-i", str(inventory), "all", "--shell", command, "-o", "-t", str(tree), "--retry-file", str(retry)
    )
    assert done.returncode == 4
    assert sorted(done.stdout.splitlines()) == [
        "a | FAILED | rc=3 | (stdout) one\ttwo\\nthree (stderr) oops",
        "w | UNREACHABLE | w: connection 'winrm' is not one fanout makes (ssh, local)",
    ]
    assert done.stderr == "failed=1, unreachable=1\n"
    assert json.loads((tree / "a").read_text()) == {
        "host": "a",
        "ok": False,
        "status": "failed",
        "rc": 3,
        "stdout": "one\ttwo\nthree\n",
        "stderr": "oops\n",
        "log": [],
        "error": "the command exited with status 3 on a: oops",
        "error_type": "CommandFailed",
    }
    assert json.loads((tree / "w").read_text())["status"] == "unreachable"
    assert sorted(os.listdir(tree)) == ["a", "w"]  # no temporary left behind
    assert retry.read_text() == "a\nw\n"
    again = fanout_cmd("-i", str(inventory), "all", "--limit", f"@{retry}", "--list-hosts")
    assert again.stdout == "  hosts (2):\n    a\n    w\n"
    done = fanout_cmd("-i", str(inventory), "a", "--shell", "true", "--retry-file", str(retry))
    assert (done.returncode, retry.read_text()) == (0, "")  # this run's truth, never a stale list


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--tree", "{tmp}/file/sub"], "--tree {tmp}/file/sub: cannot make the directory"),
        (["--retry-file", "{tmp}/no/such/dir/retry"], "--retry-file {tmp}/no/such/dir/retry: no such directory"),
        (["--retry-file", "{tmp}"], "--retry-file {tmp}: is a directory"),
    ],
)
def test_output_files_that_cannot_be_written_are_refused_before_anything_runs(tmp_path, args, complaint) -> None:
    (tmp_path / "file").write_text("")
    args = [arg.format(tmp=tmp_path) for arg in args]
    done = fanout_cmd("localhost", "--shell", f"touch {tmp_path}/ran", *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("fanout: " + complaint.format(tmp=tmp_path))
    assert not (tmp_path / "ran").exists()


def test_a_host_name_that_cannot_be_a_file_name_is_refused_with_tree(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    ../escape:\n      ansible_connection: local\n")
    done = fanout_cmd("-i", str(tmp_path / "hosts.yml"), "all", "--tree", str(tmp_path / "tree"))
    assert (done.returncode, done.stderr) == (1, "fanout: --tree: the host name '../escape' cannot be a file name\n")


LOGS = """\
import logging, sys

def f():
    log = logging.getLogger("app")
    log.warning("disk almost full\\nsecond line")
    log.info("checked %d disks", 2)
    print("out")
    print("err", file=sys.stderr)
    return 1
"""


def test_log_records_and_stderr_prefixed_by_the_host_with_v(tmp_path: Path) -> None:
    """Warnings show by default, info with -v; in --json every record is in the host's object, and -v also shows
    them and the host's stderr live, on stderr, so that stdout stays JSON."""
    (tmp_path / "logs.py").write_text(LOGS)
    warning = ["[localhost] WARNING app: disk almost full", "[localhost]     second line"]
    done = fanout_cmd("localhost", "-m", "logs.f", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "[localhost] out\nlocalhost | ok | 1\n")
    assert done.stderr.splitlines() == [*warning, "[localhost] err"]
    done = fanout_cmd("localhost", "-m", "logs.f", "-v", cwd=tmp_path)
    assert done.stderr.splitlines() == [*warning, "[localhost] INFO app: checked 2 disks", "[localhost] err"]
    done = fanout_cmd("localhost", "-m", "logs.f", "--json", cwd=tmp_path)
    assert done.stderr == ""
    record = json.loads(done.stdout)
    assert (record["stdout"], record["stderr"]) == ("out\n", "err\n")
    assert record["log"] == [{"level": "WARNING", "logger": "app", "message": "disk almost full\nsecond line"}]
    done = fanout_cmd("localhost", "-m", "logs.f", "--json", "-v", cwd=tmp_path)
    assert done.stderr.splitlines() == [*warning, "[localhost] INFO app: checked 2 disks", "[localhost] err"]
    assert len(json.loads(done.stdout)["log"]) == 2


# ------------------------------------------------------------------------------------------------- on a terminal


def on_a_terminal(*args: str, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    """The command with a pseudo-terminal as stdout and stderr; its status and all it wrote, read to its end."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    environment = {key: value for key, value in os.environ.items() if key not in ("NO_COLOR", "TERM")}
    process = subprocess.Popen(
        [fanout_exe(), *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**environment, "TERM": "xterm-256color", **(env or {})},
    )
    os.close(follower)
    output = b""
    with contextlib.suppress(OSError):  # EIO once the command closed the terminal
        while chunk := os.read(leader, 65536):
            output += chunk
    os.close(leader)
    return process.wait(timeout=120), output


GREEN, RED, MAGENTA = b"\x1b[32m", b"\x1b[31m", b"\x1b[35m"


def test_colours_on_a_terminal_only_and_never_with_no_color(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts"
    inventory.write_text("a ansible_connection=local\nw ansible_connection=winrm\n")
    status, shown = on_a_terminal("-i", str(inventory), "all", "--shell", "exit 3")
    assert status == 4
    assert RED + b"a | FAILED | rc=3\x1b[0m" in shown
    assert MAGENTA + b"w | UNREACHABLE | " in shown
    status, shown = on_a_terminal("localhost", "-m", "ping")
    assert (status, shown) == (0, GREEN + b"localhost | ok | 'pong'\x1b[0m\r\n")
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        status, shown = on_a_terminal("localhost", "-m", "ping", env=env)
        assert (status, shown) == (0, b"localhost | ok | 'pong'\r\n")
    piped = fanout_cmd("-i", str(inventory), "all", "--shell", "exit 3")
    assert "\x1b" not in piped.stdout + piped.stderr


def test_the_progress_bar_counts_a_command_that_exits_non_zero_as_failed(tmp_path: Path) -> None:
    names = [f"h{i}" for i in range(5)]  # more than a few hosts: the bar is drawn
    status, shown = on_a_terminal("-i", local_hosts(tmp_path, *names), "all", "--shell", "exit 3")
    assert status == 2
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", shown).decode()  # colours and cursor moves gone
    frames = [frame for frame in re.split(r"[\r\n]", text) if frame.startswith("exit 3 ")]  # the command's bar
    assert frames and all("ok=" not in frame for frame in frames), text  # ("connecting" has its own, all ok)
    assert re.search(r" 5/5 +\d:\d\d:\d\d +failed=5", frames[-1]), text
    assert sorted(line for line in text.splitlines() if " | " in line) == [f"{n} | FAILED | rc=3" for n in names]
    assert text.splitlines()[-1] == "failed=5"


def test_copy_reports_each_host_once(tmp_path: Path) -> None:
    """A push's results are handed over as each host finishes, and returned by the fleet at the end: each host
    is still reported once."""
    source = tmp_path / "app.conf"
    source.write_text("setting = 1\n")
    inventory = local_hosts(tmp_path, "a", "b")
    done = fanout_cmd("-i", inventory, "all", "--copy", str(source), str(tmp_path / "copied.conf"), "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["host"] for r in records) == ["a", "b"] and all(r["status"] == "ok" for r in records)
    assert records[0]["value"]["repr"].startswith("<Transfer ")
    assert (tmp_path / "copied.conf").read_text() == "setting = 1\n"
