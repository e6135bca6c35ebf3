"""Fleets of local children: what must hold whatever the hosts do (stop reading, print badly, misconfigure)."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading

import pytest

import fanout
from fanout.errors import CallTimeout
from fanout.fleet import FAILED, OK, TIMED_OUT, UNREACHABLE, Fleet
from tests.fleet.waiting import wait_until


def local_hosts(*names: str, **extra) -> dict:
    return {name: {"connection": "local", **extra} for name in names}


def finishes(fn, seconds: float = 60):
    """Run ``fn`` on a thread; its result, or a failure if it is still running after ``seconds``."""
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    return box["value"]


def test_lines_the_terminal_cannot_take_neither_kill_the_host_nor_get_lost(monkeypatch) -> None:
    strict = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", strict)
    with Fleet(local_hosts("a")) as fleet:
        results = fleet.call(print, "caf\udce9 and caf\u00e9")
        assert results["a"].status == OK
        assert results["a"].stdout == "caf\udce9 and caf\u00e9\n"
        assert fleet.call(os.getpid)["a"].status == OK  # still connected
    strict.flush()
    assert strict.buffer.getvalue() == b"[a] caf\\udce9 and caf\\xe9\n"


def test_a_failing_output_callback_does_not_drop_the_connection(caplog) -> None:
    with fanout.local() as child:
        child.on_output = lambda stream, line, call_id: 1 / 0
        assert child.call(print, "hello") is None
        assert child.call(abs, -3) == 3
    assert any("on_output failed" in r.getMessage() for r in caplog.records)


def test_a_host_that_stops_reading_holds_up_only_itself(tmp_path) -> None:
    with Fleet(local_hosts("stuck", "healthy"), echo=False) as fleet:
        stopped = fleet.contexts["stuck"].pid
        os.kill(stopped, signal.SIGSTOP)
        try:
            results = finishes(lambda: fleet.call(len, b"x" * (4 << 20), timeout=3))
            assert results["healthy"].value == 4 << 20
            assert results["stuck"].status == TIMED_OUT and isinstance(results["stuck"].error, CallTimeout)
            source = tmp_path / "file"
            source.write_bytes(os.urandom(1 << 20))
            target = tmp_path / "copy"
            pushed = finishes(lambda: fleet.put(source, str(target), timeout=5))
            assert pushed["healthy"].status == OK and target.read_bytes() == source.read_bytes()
            assert pushed["stuck"].status == TIMED_OUT
        finally:
            os.kill(stopped, signal.SIGCONT)


def test_bad_options_make_one_host_unreachable_and_the_fleet_outlives_close() -> None:
    hosts = {**local_hosts("good"), "typo": {"host": "127.0.0.1", "prot": 22}}
    fleet = Fleet(hosts, echo=False)
    with fleet:
        results = fleet.call(os.getpid)
    assert results["good"].status == OK
    assert results["typo"].status == UNREACHABLE and "prot" in str(results["typo"].error)
    assert fleet.call(abs, -1)["good"].value == 1  # after close, a call connects again
    fleet.close()
    with pytest.raises(ValueError, match="timeout"):
        fleet.call(os.getpid, timeout=0)
    with pytest.raises(ValueError, match="absolute path"):
        fleet.put(__file__, "relative/path")


ABANDONED_STREAM_TIMEOUT = 10  # seconds: the fast host is answered and the stream closed well before, loaded or not


def test_an_abandoned_stream_still_times_out_its_late_hosts(user_modules) -> None:
    s = user_modules(
        {"naps_{s}.py": "import os, time\n\ndef nap(fast):\n    time.sleep(0 if os.getpid() == fast else 3600)\n"}
    )
    nap = __import__(f"naps_{s}").nap
    with Fleet(local_hosts("fast", "slow"), echo=False) as fleet:
        fast = fleet.contexts["fast"].pid
        stream = fleet.as_completed(nap, fast, timeout=ABANDONED_STREAM_TIMEOUT)
        assert next(stream)[0] == "fast"
        stream.close()  # abandoned before the deadline, with "slow" still running
        assert "slow" in fleet.contexts
        later = fleet.call(nap, fast)  # no timeout of its own: "slow" naps until dropped at the stream's deadline
        assert later["fast"].status == OK
        assert later["slow"].status == TIMED_OUT and isinstance(later["slow"].error.__cause__, CallTimeout)
        assert later.failed == {"slow": later["slow"]} and not later.unreachable  # the host was reached
        assert list(fleet.failures) == ["slow"] and isinstance(fleet.failures["slow"], CallTimeout)


def test_the_progress_bar_takes_brackets_literally(capsys) -> None:
    with Fleet(local_hosts(*"abcde"), echo=False, progress=True) as fleet:
        results = fleet.run("echo '[/a-z]' | grep -c '^[[]/a-z]$'")
    assert {r.status for r in results.values()} == {OK}
    assert {r.value.stdout for r in results.values()} == {"1\n"}  # rich once read the command as markup, and raised


def test_a_command_failure_is_failed_not_unreachable() -> None:
    with Fleet(local_hosts("a"), echo=False) as fleet:
        assert fleet.run("exit 5")["a"].status == FAILED


def test_each_result_holds_the_lines_its_own_call_printed(user_modules, tmp_path) -> None:
    s = user_modules(
        {
            "talk_{s}.py": """
            import os, time

            def talk(word, started=None, gate=None):
                print(word, 0)
                if started:  # say the first line is out, then hold the rest until the gate opens
                    open(started, "w").close()
                    deadline = time.monotonic() + 60
                    while not os.path.exists(gate) and time.monotonic() < deadline:
                        time.sleep(0.001)
                for i in (1, 2):
                    print(word, i)
                return word
            """
        }
    )
    talk = __import__(f"talk_{s}").talk
    started, gate = tmp_path / "started", tmp_path / "gate"
    with Fleet(local_hosts("a"), echo=False) as fleet:
        slow = fleet.as_completed(talk, "slow", str(started), str(gate))  # a generator: it starts on next()
        box: list = []
        first = threading.Thread(target=lambda: box.append(list(slow)))
        first.start()
        wait_until(started.exists, what="the slow call's first line")
        quick = fleet.call(talk, "quick")  # runs while "slow" is still printing on the same host
        gate.touch()
        first.join(60)
    assert quick["a"].stdout == "quick 0\nquick 1\nquick 2\n"
    ((_, slow_result),) = box[0]
    assert slow_result.stdout == "slow 0\nslow 1\nslow 2\n"


def test_put_times_each_host_from_its_own_start(tmp_path) -> None:
    """With one fork, a stopped first host uses up its whole timeout; the hosts queued behind it get theirs."""
    source = tmp_path / "source"
    source.write_text("setting = 1\n")
    with Fleet(local_hosts("stuck", "b", "c"), forks=1, echo=False) as fleet:
        stopped = fleet.contexts["stuck"].pid
        os.kill(stopped, signal.SIGSTOP)
        try:
            results = finishes(lambda: fleet.put(source, str(tmp_path / "copy"), timeout=2))
        finally:
            os.kill(stopped, signal.SIGCONT)
    assert results["stuck"].status == TIMED_OUT
    assert results["b"].status == OK and results["c"].status == OK
