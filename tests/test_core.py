"""The core on every kind of child: a local subprocess and fleet hosts of Python 3.9, 3.11 and 3.13."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import fanout
from fanout._protocol import MasterProtocol
from fanout.fleet import FAILED, TIMED_OUT, UNREACHABLE, CommandResult, status_of
from tests.fleet.gates import HostGate
from tests.fleet.waiting import WAIT_TIMEOUT, wait_until


def test_call_a_stdlib_function(child, target) -> None:
    node = child.call(platform.node)
    assert isinstance(node, str) and node
    assert child.call(os.getpid) == child.pid
    if target == "local":
        assert child.call(os.getpid) != os.getpid()
    major, minor, _ = child.python_version
    assert child.call(platform.python_version).startswith(f"{major}.{minor}.")


def test_user_module_importable_on_the_master_only(child, user_modules, target) -> None:
    s = user_modules(
        {
            "work_{s}.py": """
            import platform

            def work(n, *, key):
                return {"n": n * 2, "key": key, "python": platform.python_version(), "module": __name__}
            """
        }
    )
    work = importlib.import_module(f"work_{s}").work
    result = child.call(work, 21, key="x")
    assert result["n"] == 42 and result["key"] == "x" and result["module"] == f"work_{s}"
    assert result["python"].startswith("%d.%d." % child.python_version[:2])


def test_package_module_importing_a_sibling_costs_no_request(child, user_modules) -> None:
    s = user_modules(
        {
            "pkg_{s}/__init__.py": "VERSION = 7\n",
            "pkg_{s}/helpers.py": "def double(x):\n    return 2 * x\n",
            "pkg_{s}/api.py": """
            from . import helpers
            from pkg_{s} import VERSION

            def run(x):
                return helpers.double(x) + VERSION
            """,
        }
    )
    api = importlib.import_module(f"pkg_{s}.api")
    assert child.call(api.run, 10) == 27
    # The package, its __init__ and the sibling went ahead of the call: no request came back.
    assert child.stats["module_requests"] == 0
    sent = child.stats["modules_sent"]
    assert child.call(api.run, 1) == 9
    assert child.stats["modules_sent"] == sent  # each module crosses a connection once


def test_lazy_import_inside_a_function_is_fetched_on_demand(child, user_modules) -> None:
    s = user_modules(
        {
            "lazy_{s}.py": "def go():\n    import lazydep_{s}\n    return lazydep_{s}.VALUE\n",
            "lazydep_{s}.py": "VALUE = 'from the master'\n",
        }
    )
    go = importlib.import_module(f"lazy_{s}").go
    assert child.call(go) == "from the master"
    assert child.stats["module_requests"] == 1


def test_lambda_and_closure_by_value(child) -> None:
    factor = 3

    def closure(x):
        return x * factor

    same_minor = tuple(child.python_version[:2]) == sys.version_info[:2]
    if same_minor:
        assert child.call(lambda x: x + 1, 1) == 2
        assert child.call(closure, 5) == 15
    else:
        with pytest.raises(fanout.SerializationError, match="Move the function into an importable module"):
            child.call(closure, 5)
        with pytest.raises(fanout.SerializationError, match=r"master runs Python \d+\.\d+, host .* runs"):
            child.call(lambda x: x + 1, 1)
        assert child.call(abs, -4) == 4  # the connection is still fine


def test_remote_exception_keeps_type_message_traceback_and_host(child, user_modules) -> None:
    s = user_modules(
        {
            "boom_{s}.py": """
            class Boom(Exception):
                pass

            def explode(what):
                raise Boom(f"it went {what}")
            """
        }
    )
    explode = importlib.import_module(f"boom_{s}").explode
    with pytest.raises(fanout.RemoteError) as info:
        child.call(explode, "bang")
    error = info.value
    assert error.type_name == f"boom_{s}.Boom"
    assert error.message == "it went bang"
    assert error.host == child.name
    assert 'raise Boom(f"it went {what}")' in error.traceback  # the source line, from the master's copy
    assert f"boom_{s}.py" in error.traceback
    text = str(error)
    assert all(part in text for part in (error.type_name, error.message, child.name, "Remote traceback"))


def test_builtin_exception_type_name(child) -> None:
    with pytest.raises(fanout.RemoteError) as info:
        child.call(int, "not a number")
    assert info.value.type_name == "ValueError"
    assert "invalid literal" in info.value.message


def test_c_extension_is_refused_with_module_and_host(child, user_modules, target) -> None:
    s = user_modules({"needs_ext_{s}.py": "def go():\n    import markupsafe._speedups\n    return 1\n"})
    go = importlib.import_module(f"needs_ext_{s}").go
    if target == "local":
        assert child.call(go) == 1  # the local child has the extension installed
        return
    with pytest.raises(fanout.RemoteError) as info:
        child.call(go)
    assert info.value.type_name == "ModuleNotFoundError"
    assert "markupsafe._speedups" in info.value.message
    assert "C extension" in info.value.message
    assert child.name in info.value.message


def test_unknown_module_says_why(child) -> None:
    with pytest.raises(fanout.RemoteError) as info:
        child.call(importlib.import_module, "no_such_module_anywhere")
    assert info.value.type_name == "ModuleNotFoundError"
    assert "the master does not have it either" in info.value.message


def test_print_and_logging_reach_the_master(open_child, user_modules, caplog) -> None:
    caplog.set_level(logging.INFO, logger="fanout.remote")
    child = open_child()
    s = user_modules(
        {
            "chatty_{s}.py": """
            import logging, subprocess, sys

            def chat():
                print("printed line")
                print("to stderr", file=sys.stderr)
                logging.getLogger("app.part").warning("logged %d", 42)
                logging.getLogger("app.part").debug("not at debug")
                return "done"
            """
        }
    )
    chat = importlib.import_module(f"chatty_{s}").chat
    assert child.call(chat) == "done"
    records = [r for r in caplog.records if r.name == f"fanout.remote.{child.name}"]
    by_text = {r.getMessage(): r for r in records}
    assert by_text["printed line"].fanout_stream == "stdout"
    assert by_text["to stderr"].fanout_stream == "stderr"
    logged = by_text["logged 42"]
    assert (logged.levelno, logged.fanout_stream, logged.fanout_logger) == (logging.WARNING, "log", "app.part")
    assert "not at debug" not in by_text


def runs(observer: fanout.Context, pid: int) -> bool:
    """Whether process ``pid`` runs on the observer's host."""
    try:
        observer.call(os.kill, pid, 0)
    except fanout.RemoteError as exc:
        assert exc.raised(ProcessLookupError), exc
        return False
    return True


HELD_CALLS = f"""
import threading

_RELEASED, _SPINNING = threading.Event(), threading.Event()
_TOGETHER = threading.Barrier(4)


def meet():
    return _TOGETHER.wait({WAIT_TIMEOUT})


def hold():
    return _RELEASED.wait({WAIT_TIMEOUT})


def spin():
    _SPINNING.set()
    n = 0
    while not _RELEASED.is_set():  # holds the GIL but at each switch interval
        n += 1
    return n > 0


def spinning():
    return _SPINNING.wait({WAIT_TIMEOUT})


def release():
    _RELEASED.set()
"""


def held_calls(user_modules):
    """A module only the master has: calls that run until a later call releases them (or until four meet), in the
    child that ran it."""
    return importlib.import_module("held_{s}".format(s=user_modules({"held_{s}.py": HELD_CALLS})))


def test_subprocess_output_is_forwarded_not_mixed_into_the_protocol(child, caplog) -> None:
    caplog.set_level(logging.INFO, logger="fanout.remote")
    import subprocess

    done = child.call(subprocess.run, ["sh", "-c", "echo from-a-subprocess; cat; echo err-line >&2"])
    assert done.returncode == 0  # `cat` read an empty stdin: the protocol's input is not shared
    wanted = {"from-a-subprocess", "err-line"}
    wait_until(
        lambda: wanted <= {r.getMessage() for r in caplog.records},
        what=f"the log lines {sorted(wanted)}",
        state=lambda: [r.getMessage() for r in caplog.records],
    )
    assert child.call(abs, -1) == 1


def test_calls_run_concurrently(child, user_modules) -> None:
    """Four calls that each wait for all four to be running: queued one after another, they never would."""
    meet = held_calls(user_modules).meet
    futures = [child.call_async(meet) for _ in range(4)]
    assert sorted(future.result(timeout=2 * WAIT_TIMEOUT) for future in futures) == [0, 1, 2, 3]
    assert child.call(abs, -2) == 2


def test_unpicklable_result_is_a_clear_error(child) -> None:
    with pytest.raises(fanout.RemoteError) as info:
        child.call(threading.Lock)
    assert info.value.type_name == "TypeError"
    assert "cannot be pickled" in info.value.message


def test_result_of_an_unregistered_class_is_refused(child, user_modules) -> None:
    s = user_modules({"shapes_{s}.py": "class Point:\n    def __init__(self, x):\n        self.x = x\n"})
    point_cls = importlib.import_module(f"shapes_{s}").Point
    with pytest.raises(fanout.UnsafeMessage, match=f"shapes_{s}.Point"):
        child.call(point_cls, 1)
    fanout.register_type(point_cls)
    assert child.call(point_cls, 5).x == 5


def test_common_stdlib_results_are_allowed(child) -> None:
    import datetime
    import pathlib

    assert child.call(os.uname).sysname == "Linux"
    assert child.call(os.stat, "/").st_mode
    assert isinstance(child.call(datetime.datetime.now), datetime.datetime)
    assert child.call(pathlib.PurePosixPath, "/etc") == pathlib.PurePosixPath("/etc")
    assert child.call(frozenset, [1, 2]) == frozenset({1, 2})


def test_close_ends_the_child_and_fails_later_calls(open_child) -> None:
    child = open_child()
    assert child.call(abs, -1) == 1
    child.close()
    with pytest.raises(fanout.ConnectionLost, match="closed"):
        child.call(abs, -1)
    child.close()  # idempotent


def test_a_call_past_its_timeout_raises_call_timeout_and_ends_the_child(open_child) -> None:
    child, witness = open_child(), open_child()
    pid = child.pid
    waiting = child.call_async(time.sleep, 60)
    with pytest.raises(fanout.CallTimeout, match="no answer within the timeout of 1 s; its child was ended"):
        child.call(time.sleep, 60, timeout=1)
    with pytest.raises(fanout.ConnectionLost) as later:
        child.call(abs, -1)
    for lost in (waiting.exception(timeout=10), later.value):  # the other calls, waiting and later: caused by it
        assert isinstance(lost, fanout.ConnectionLost) and isinstance(lost.__cause__, fanout.CallTimeout)
        assert status_of(lost) == TIMED_OUT
    wait_until(lambda: not runs(witness, pid), what=f"the end of the child {pid} after its call's timeout")


def test_timeout_is_fanouts_own_keyword_and_call_async_takes_it_too(open_child) -> None:
    child = open_child()
    given = functools.partial(subprocess.check_output, ["echo", "x"], timeout=30)  # the function's own timeout
    assert child.call(given, timeout=30) == b"x\n"
    assert child.call_async(abs, -2, timeout=30).result(timeout=30) == 2
    with pytest.raises(ValueError, match="timeout"):
        child.call(abs, -1, timeout=0)
    future = child.call_async(time.sleep, 60, timeout=0.5)
    with pytest.raises(fanout.CallTimeout):
        future.result(timeout=30)
    with pytest.raises(fanout.ConnectionLost, match="call's timeout"):
        child.call(abs, -1)


def test_run_and_put_on_one_host_as_a_fleet_does_on_each(child, tmp_path) -> None:
    lines: list = []
    child.on_output = lambda stream, line, call_id: lines.append((stream, line))
    assert child.run("echo out; echo err >&2") == CommandResult(0, "out\n", "err\n")
    assert ("stdout", "out") in lines and ("stderr", "err") in lines  # streamed as they came
    assert child.run("exit 3", check=False) == CommandResult(3, "", "")
    with pytest.raises(fanout.CommandFailed, match="exited with status 3") as failed:
        child.run("echo why >&2; exit 3")
    assert failed.value.rc == 3 and failed.value.result == CommandResult(3, "", "why\n")
    with pytest.raises(fanout.CommandFailed, match="timed out and was killed") as killed:
        child.run("sleep 60", timeout=0.5, check=False)
    assert killed.value.rc is None and status_of(killed.value) == TIMED_OUT
    assert child.run('pwd; echo "$WORD"', cwd="/tmp", env={"WORD": "w"}).stdout == "/tmp\nw\n"
    with pytest.raises(ValueError, match="command"):
        child.run(" ")
    (tmp_path / "f").write_text("put on one host\n")
    dest = f"/tmp/fanout-put-{uuid.uuid4().hex}"
    assert child.put(tmp_path / "f", dest).changed
    assert child.run(f"cat {dest}; rm {dest}").stdout == "put on one host\n"


def test_a_child_that_dies_during_a_call_says_how_and_counts_failed(open_child, target) -> None:
    with pytest.raises(fanout.ConnectionLost, match="status 7") as exited:
        open_child().call(os._exit, 7)
    assert exited.value.exit_status == 7 and exited.value.started
    assert status_of(exited.value) == FAILED
    killed = open_child()
    with pytest.raises(fanout.ConnectionLost, match="signal 9") as info:
        killed.call(os.kill, killed.pid, signal.SIGKILL)
    assert info.value.exit_status == (-9 if target == "local" else 128 + 9) and status_of(info.value) == FAILED


@pytest.mark.fleet  # starts a process
def test_a_child_that_never_started_is_unreachable() -> None:
    with fanout.local(python="/bin/false") as never, pytest.raises(fanout.ConnectionLost) as info:
        never.call(abs, -1)
    assert info.value.exit_status == 1 and not info.value.started
    assert status_of(info.value) == UNREACHABLE


ROUND_TRIP_VALUES = [
    None,
    True,
    0,
    -(10**30),
    10**5000,  # too long for a literal the master parses: must fall back to a pickle
    1.5,
    float("inf"),
    "text with ünïcödé, quotes ' \" and a \udc80 surrogate",
    b"\x00\xff bytes",
    (1, (2, [3, {"k": (4,)}])),
    [],
    {},
    {1: "int key", (2, 3): "tuple key", b"b": None},
    {1, 2},
    frozenset({"x"}),
    1 + 2j,
    bytearray(b"ba"),
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=lambda v: type(v).__name__)
def test_values_cross_both_ways_exactly(child, value) -> None:
    import copy

    back = child.call(copy.copy, value)
    assert type(back) is type(value)
    assert back == value


def test_nan_and_subclasses_of_plain_types_keep_their_identity(child) -> None:
    import collections
    import math

    assert math.isnan(child.call(float, "nan"))
    assert type(child.call(bool, 1)) is bool
    assert type(child.call(os.uname)).__name__ == "uname_result"  # not flattened to a tuple
    counter = child.call(collections.OrderedDict, [("a", 1)])
    assert type(counter) is collections.OrderedDict


def test_a_long_call_does_not_hold_up_a_quick_one(child, user_modules) -> None:
    s = user_modules(
        {
            "lazy2_{s}.py": "def go():\n    import lazydep2_{s}\n    return lazydep2_{s}.V\n",
            "lazydep2_{s}.py": "V = 5\n",
        }
    )
    go = importlib.import_module(f"lazy2_{s}").go
    held = held_calls(user_modules)
    long_call = child.call_async(held.hold)  # runs until released: only calls answered meanwhile can release it
    assert child.call_async(abs, -1).result(timeout=WAIT_TIMEOUT) == 1
    assert child.call_async(go).result(timeout=WAIT_TIMEOUT) == 5  # an import on demand, while the long call runs
    assert not long_call.done()
    child.call(held.release)
    assert long_call.result(timeout=WAIT_TIMEOUT) is True


def test_a_busy_call_holding_the_gil_does_not_hold_up_a_quick_one(child, user_modules) -> None:
    """The spin runs until a later call releases it: answered at all, the quick calls were answered while it ran."""
    held = held_calls(user_modules)
    busy = child.call_async(held.spin)
    assert child.call(held.spinning, timeout=WAIT_TIMEOUT) is True  # the spin is under way, on the thread that read it
    assert child.call_async(abs, -7).result(timeout=WAIT_TIMEOUT) == 7
    assert not busy.done()
    child.call(held.release)
    assert busy.result(timeout=WAIT_TIMEOUT) is True


def test_children_import_the_service_framework_from_the_master(child, user_modules) -> None:
    """fanout.service reaches every child by import on demand, Python 3.9 included, and runs there."""
    s = user_modules(
        {
            "uses_services_{s}.py": """
            import sys

            def run_a_pool():
                from fanout import service

                class Greeter(service.Service):
                    @service.expose(service.AllowAny())
                    def hello(self, who):
                        return "hello " + who

                with service.Pool(2) as pool:
                    pool.add(Greeter())
                    caller = service.Caller("master", is_parent=True)
                    answer = pool.invoke(Greeter.canonical_name(), "hello", {"who": "there"}, caller).result(120)
                heavy = sorted(m for m in ("fanout._context", "fanout._ssh", "paramiko") if m in sys.modules)
                return answer, service.__file__, heavy
            """
        }
    )
    run_a_pool = importlib.import_module(f"uses_services_{s}").run_a_pool
    answer, origin, heavy = child.call(run_a_pool)
    assert answer == "hello there"
    assert origin == str(Path(fanout.__file__).parent / "service.py")  # the master's copy
    assert heavy == []  # the master's machinery stays on the master


def test_a_huge_printed_line_is_logged_whole_and_the_connection_survives(open_child, caplog) -> None:
    caplog.set_level(logging.INFO, logger="fanout.remote")
    child = open_child()
    child.call(print, "x" * 1_500_000)
    lines = [r.getMessage() for r in caplog.records if r.name == f"fanout.remote.{child.name}"]
    assert lines == ["x" * 1_500_000]  # sent in pieces of 64 Ki characters, joined again on the master
    assert child.call(abs, -2) == 2


@pytest.fixture
def output_events(monkeypatch) -> list:
    """Every LOG frame the master decodes, a long line's pieces as they come (before the protocol joins them)."""
    events: list = []
    decode = MasterProtocol._output

    def recording(value, call_id=0):
        piece = decode(value, call_id)
        events.append(piece)
        return piece

    monkeypatch.setattr(MasterProtocol, "_output", staticmethod(recording))
    return events


def whole_lines(events: list, stream: str) -> list[str]:
    """The lines of ``stream``: pieces joined while they say they continue."""
    lines, pieces = [], []
    for event in events:
        if event.stream == stream:
            pieces.append(event.text)
            if not event.continued:
                lines.append("".join(pieces))
                pieces = []
    return lines


def test_a_long_printed_line_comes_in_pieces_marked_continued(child, output_events) -> None:
    received = []
    child.on_output = lambda stream, text, call_id: received.append((stream, text))
    line = "x" * 150_000
    child.call(print, line)
    child.call(print, "short")
    assert [(len(e.text), e.continued) for e in output_events] == [
        (65536, True),
        (65536, True),
        (18928, False),
        (5, False),
    ]
    assert whole_lines(output_events, "stdout") == [line, "short"]
    assert "".join(text for _, text in received) == line + "short"  # what Context hands on, whole or in pieces
    assert {stream for stream, _ in received} == {"stdout"}


def test_a_long_line_from_a_subprocess_comes_in_pieces_marked_continued(child, output_events) -> None:
    """Through the child's fd 1, read in 64 KiB chunks: no piece ends the line early, nor cuts a character."""
    import subprocess

    line = "\u20ac" * 100_000  # 3 bytes each in UTF-8: chunk boundaries fall inside characters
    command = "yes '\u20ac' | head -n 100000 | tr -d '\\n'; echo; echo after"
    assert child.call(subprocess.run, ["sh", "-c", command]).returncode == 0
    wait_until(
        lambda: whole_lines(output_events, "stdout")[-1:] == ["after"],
        what="the line 'after'",
        state=lambda: f"lines so far: {[line[:20] for line in whole_lines(output_events, 'stdout')]}",
    )
    assert whole_lines(output_events, "stdout") == [line, "after"]
    assert all(len(e.text) <= 65536 for e in output_events)


def test_a_result_too_big_for_a_frame_fails_only_its_call(child) -> None:
    with pytest.raises(fanout.RemoteError) as info:
        child.call(bytes, 70 * 2**20)
    assert info.value.type_name == "ValueError"
    assert re.fullmatch(
        r"the result is \d+ bytes, over the limit of 64 MiB: return less, or write it to a file", info.value.message
    )
    assert child.call(abs, -1) == 1


def test_a_huge_error_message_is_clipped_not_fatal(child) -> None:
    import operator

    with pytest.raises(fanout.RemoteError) as info:
        child.call(operator.getitem, {}, "k" * 1_500_000)  # KeyError's message is the key's repr
    assert info.value.type_name == "KeyError"
    assert "characters cut" in info.value.message
    assert child.call(abs, -3) == 3


def arrives_before(future, events: list, stream: str, expected: str) -> bool:
    """Whether ``expected`` is among the lines of ``stream`` (or starts one still coming) while ``future`` runs:
    the call waits at a gate the test opens only after this."""
    wait_until(
        lambda: "".join(e.text for e in events if e.stream == stream).startswith(expected) or future.done(),
        what=f"{expected[:20]!r}... on {stream}",
    )
    return not future.done()


def test_an_endless_line_from_run_is_echoed_in_pieces_as_it_comes(open_child, output_events) -> None:
    """_shell holds at most 64 KiB of an unfinished line, and sys.stdout passes longer ones on in pieces."""
    from fanout import _shell

    child, gatekeeper = open_child(), open_child()
    with HostGate(gatekeeper) as gate:
        command = f"head -c 200000 /dev/zero | tr '\\0' x; {gate.shell_wait}"
        future = child.call_async(_shell.run, command, None, True)
        assert arrives_before(future, output_events, "stdout", "x" * 65536)
        gate.open()
        assert future.result()[1] == "x" * 200_000
    assert whole_lines(output_events, "stdout") == ["x" * 200_000]


def test_an_unfinished_printed_line_goes_on_in_pieces(open_child, output_events) -> None:
    child, gatekeeper = open_child(), open_child()
    with HostGate(gatekeeper) as gate:
        future = child.call_async(exec, f"import sys\nsys.stdout.write('x' * 100000)\n{gate.python_wait}\nprint('y')")
        assert arrives_before(future, output_events, "stdout", "x" * 65536)
        gate.open()
        future.result()
    assert whole_lines(output_events, "stdout") == ["x" * 100_000 + "y"]


def test_a_subprocess_prompt_without_newline_comes_after_a_pause(open_child, output_events) -> None:
    import subprocess

    child, gatekeeper = open_child(), open_child()
    with HostGate(gatekeeper) as gate:
        future = child.call_async(subprocess.run, ["sh", "-c", f"printf 'Password: '; {gate.shell_wait}"])
        assert arrives_before(future, output_events, "stdout", "Password: ")
        gate.open()
        assert future.result().returncode == 0
    assert whole_lines(output_events, "stdout") == ["Password: "]


def test_the_tail_of_a_long_subprocess_line_without_newline_is_not_lost(open_child, output_events) -> None:
    """Its first piece went out marked continued; the rest must end the line though no newline nor EOF comes."""
    import subprocess

    child, gatekeeper = open_child(), open_child()
    with HostGate(gatekeeper) as gate:
        future = child.call_async(
            subprocess.run, ["sh", "-c", f"head -c 70000 /dev/zero | tr '\\0' x; {gate.shell_wait}"]
        )
        assert arrives_before(future, output_events, "stdout", "x" * 70_000)
        assert whole_lines(output_events, "stdout") == ["x" * 70_000]
        gate.open()
        assert future.result().returncode == 0
