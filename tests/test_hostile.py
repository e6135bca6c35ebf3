"""A compromised host cannot run code on the master, nor crash or hang it (docs/design.rst, "The master trusts no
child").

Each test replaces stage 1 with a hostile program that speaks just enough of
the protocol to attack, on a local child and on every fleet suite.
"""

from __future__ import annotations

import os
import pickle
import zlib
from pathlib import Path

import pytest

import fanout
from fanout import _stage, _wire
from tests.fleet.hostile_stage1 import HELPERS

# The hostile helpers of tests/hostile/conftest.py (send, hello, frames, calls...), and one more.
RECEIVE_LOOP = (
    HELPERS
    + """
import pickle

def on_each_call(reply):
    for rid in calls():
        reply(rid)
"""
)


class _RunsACommand:
    """Unpickling this runs ``os.system`` — what a crafted pickle from a hostile host would do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def hostile(monkeypatch):
    """Make the next child run ``attack`` (Python, after the wire code and RECEIVE_LOOP) as its stage 1."""

    def install(attack: str) -> None:
        source = Path(_wire.__file__).read_text() + RECEIVE_LOOP + attack
        blob = zlib.compress(source.encode())
        monkeypatch.setattr(_stage, "stage1_blob", lambda: blob)

    return install


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


def evil_pickle(marker: Path) -> bytes:
    """A payload tagged as a pickle, whose unpickling would run ``touch marker``."""
    return b"p" + pickle.dumps(_RunsACommand(f"touch {marker}"), protocol=4)


def test_crafted_result_pickle_runs_nothing(hostile, marker, open_child) -> None:
    hostile(f"hello()\non_each_call(lambda rid: send(encode_frame(RESULT, rid, {evil_pickle(marker)!r})))\n")
    child = open_child()
    with pytest.raises(fanout.UnsafeMessage, match=r"refused to load (posix|os)\.system"):
        child.call(abs, 1)
    assert not marker.exists()


def test_crafted_error_pickle_runs_nothing(hostile, marker, open_child) -> None:
    hostile(f"hello()\non_each_call(lambda rid: send(encode_frame(ERROR, rid, {evil_pickle(marker)!r})))\n")
    with pytest.raises(fanout.ConnectionLost, match="where a literal belongs"):
        open_child().call(abs, 1)
    assert not marker.exists()


def test_a_literal_that_is_not_one_runs_nothing(hostile, marker, open_child) -> None:
    code = f"__import__('os').system('touch {marker}')"
    hostile(f"hello()\non_each_call(lambda rid: send(encode_frame(RESULT, rid, b'r' + {code.encode()!r})))\n")
    with pytest.raises(fanout.UnsafeMessage, match="malformed literal"):
        open_child().call(abs, 1)
    assert not marker.exists()


def test_crafted_hello_drops_the_connection(hostile, marker, open_child) -> None:
    hostile(f"send(encode_frame(HELLO, 0, {evil_pickle(marker)!r}))\non_each_call(lambda rid: None)\n")
    with pytest.raises(fanout.ConnectionLost, match="where a literal belongs") as info:
        open_child().call(abs, 1)
    assert isinstance(info.value.__cause__, fanout.ProtocolError)
    assert not marker.exists()


@pytest.mark.parametrize(
    "frame, complaint",
    [
        ("b'\\x00\\x00\\x00\\x05' + bytes([99, 0]) + b'\\x00\\x00\\x00\\x01hello'", "unexpected frame kind 99"),
        ("b'\\xff\\xff\\xff\\xff' + bytes([RESULT, 0]) + b'\\x00\\x00\\x00\\x01'", "exceeds the maximum"),
        ("bytes(range(256)) * 4", "unexpected frame kind|exceeds the maximum|unknown frame flags|a compressed frame"),
        ("encode_frame(RESULT, 4242, pickle.dumps(1))", "RESULT for call 4242, never made"),
        ("encode_frame(RESULT, 1, pickle.dumps(1))[:-1]", "ended inside a frame"),
        ("encode_frame(GET_MODULE, 7, b'os; import evil')", "bad module name"),
        ("HEADER.pack(20, RESULT, FLAG_ZLIB, 1) + b'not zlib at all, no!'", "a compressed frame: children send none"),
    ],
    ids=["unknown-kind", "huge-length", "garbage", "unknown-call", "truncated", "bad-module-name", "bad-zlib"],
)
def test_bad_frames_drop_the_connection_without_hanging(hostile, open_child, frame, complaint) -> None:
    hostile(f"hello()\non_each_call(lambda rid: (send({frame}), os._exit(0)))\n")
    child = open_child()
    future = child.call_async(abs, 1)
    with pytest.raises(fanout.ConnectionLost) as info:
        future.result(timeout=10)
    assert __import__("re").search(complaint, str(info.value)), str(info.value)
    with pytest.raises(fanout.ConnectionLost):
        child.call(abs, 1)


def test_zlib_bomb_is_refused_before_it_inflates(hostile, open_child) -> None:
    bomb = zlib.compress(b"\0" * (_wire.MAX_BODY + 1024), 9)
    hostile(f"hello()\non_each_call(lambda rid: send(HEADER.pack({len(bomb)}, RESULT, FLAG_ZLIB, rid) + {bomb!r}))\n")
    with pytest.raises(fanout.ConnectionLost, match="a compressed frame: children send none"):
        open_child().call_async(abs, 1).result(timeout=30)
