"""The frame codec, without I/O: round trips, any split of the stream, and every kind of bad input; the limits
both ends of the wire share; the name stage 1 runs under."""

from __future__ import annotations

import ast
import os
import sys
import threading
import types
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout import _codec, _files, _shell, _stage, _wire
from fanout._parent import at_child_exit
from fanout._protocol import CallFailed, MasterProtocol
from fanout._wire import STAGE1_MODULE, FrameDecoder, ProtocolError, encode_frame
from fanout.errors import RemoteError, UnsafeMessage

frames = st.lists(
    st.tuples(st.sampled_from(sorted(_wire.TO_MASTER)), st.integers(0, 2**32 - 1), st.binary(max_size=2000)),
    max_size=8,
)


@given(frames, st.booleans(), st.data())
def test_any_split_of_the_stream_gives_back_the_same_frames(sent, compress, data) -> None:
    stream = b"".join(encode_frame(kind, rid, body, compress) for kind, rid, body in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder(_wire.TO_MASTER)
    received = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        received += decoder.feed(stream[start:end])
    decoder.end_of_stream()
    assert received == sent
    assert decoder.buffered == 0


@settings(max_examples=100)
@given(st.binary(max_size=4096))
def test_garbage_never_crashes_nor_hangs_the_decoder(garbage) -> None:
    decoder = FrameDecoder(_wire.TO_MASTER, max_body=1 << 20)
    try:
        for kind, _, body in decoder.feed(garbage):
            assert kind in _wire.TO_MASTER and len(body) <= 1 << 20
        decoder.end_of_stream()
    except ProtocolError:
        with pytest.raises(ProtocolError, match="already failed"):
            decoder.feed(b"")


@given(st.integers(1 << 20 + 1, 2**32 - 1))
def test_a_huge_length_is_refused_before_any_body_arrives(length) -> None:
    decoder = FrameDecoder(_wire.TO_MASTER, max_body=1 << 20)
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        decoder.feed(_wire.HEADER.pack(length, _wire.RESULT, 0, 1))


@given(st.integers(0, 255).filter(lambda k: k not in _wire.TO_MASTER))
def test_a_kind_meant_for_the_other_direction_or_unknown_is_refused(kind) -> None:
    with pytest.raises(ProtocolError, match=f"unexpected frame kind {kind}"):
        FrameDecoder(_wire.TO_MASTER).feed(encode_frame(kind, 1, b"x"))


@given(st.integers(2, 255))
def test_unknown_flags_are_refused(flags) -> None:
    with pytest.raises(ProtocolError, match="unknown frame flags"):
        FrameDecoder(_wire.TO_MASTER).feed(_wire.HEADER.pack(0, _wire.LOG, flags, 0))


@given(st.binary(min_size=1, max_size=100), st.integers(1, 9))
def test_truncated_frame_is_reported_at_end_of_stream(body, cut) -> None:
    frame = encode_frame(_wire.RESULT, 3, body)
    decoder = FrameDecoder(_wire.TO_MASTER)
    assert decoder.feed(frame[: -min(cut, len(frame) - 1)]) == []
    with pytest.raises(ProtocolError, match="ended inside a frame"):
        decoder.end_of_stream()


def test_compressed_body_that_inflates_past_the_maximum_is_refused() -> None:
    bomb = zlib.compress(b"\0" * 5000)
    frame = _wire.HEADER.pack(len(bomb), _wire.RESULT, _wire.FLAG_ZLIB, 1) + bomb
    with pytest.raises(ProtocolError, match="inflates past the maximum of 4096"):
        FrameDecoder(_wire.TO_MASTER, max_body=4096).feed(frame)


def test_corrupt_and_truncated_compressed_bodies_are_refused() -> None:
    good = zlib.compress(b"hello" * 100)
    for body, complaint in ((b"\x78\x9cgarbage", "corrupt"), (good[:-6], "truncated")):
        frame = _wire.HEADER.pack(len(body), _wire.RESULT, _wire.FLAG_ZLIB, 1) + body
        with pytest.raises(ProtocolError, match=complaint):
            FrameDecoder(_wire.TO_MASTER).feed(frame)


def test_compression_is_used_only_when_it_helps() -> None:
    assert encode_frame(_wire.LOG, 0, b"x" * 1000, compress=True)[5] == _wire.FLAG_ZLIB
    random_body = os.urandom(600)
    assert encode_frame(_wire.LOG, 0, random_body, compress=True)[5] == 0
    assert encode_frame(_wire.LOG, 0, b"short", compress=True)[5] == 0


def test_an_oversized_body_cannot_be_encoded(monkeypatch) -> None:
    monkeypatch.setattr(_wire, "MAX_BODY", 10)
    with pytest.raises(ValueError, match="exceeds the maximum"):
        encode_frame(_wire.CALL, 1, b"x" * 11)


# -- the literal limits: what a child sends, the master reads -------------------------------------------------

WORST = "\U000e0001"  # a character repr() spells in 10 bytes, the most it spells any in


def stage1(*names: str, **stubs: Any) -> dict[str, Any]:
    """Stage 1's own definitions of ``names`` (from ``bootstrap/stage1.py``), with the wire's names they use and
    ``stubs`` for the rest: what children really send, without starting one."""
    tree = ast.parse((_stage._bootstrap_dir() / "stage1.py").read_text())
    nodes = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in names)
        or (isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in names)
    ]
    assert len(nodes) == len(names)
    namespace = dict(vars(_wire)) | stubs
    exec(compile(ast.Module(body=nodes, type_ignores=[]), "stage1.py", "exec"), namespace)
    return namespace


CHILD = stage1("_BIG", "_pickle", "pickler", "_plain", "dump", "_type_name", "_error")


def test_the_literal_limits_derive_from_one_bound() -> None:
    assert _wire.RESULT_LITERAL_MAX <= _wire.LITERAL_MAX
    # A LOG piece at its worst fits: PIECE characters of 10 bytes, a logger name, the other fields.
    assert 10 * (_wire.PIECE + _wire.NAME_MAX) + 100 <= _wire.LITERAL_MAX
    assert _codec.LITERAL_MAX is _wire.LITERAL_MAX  # the master's check is the wire's bound itself


def test_a_literal_just_at_the_limit_is_read_and_one_byte_more_is_refused_clearly() -> None:
    at_limit = _wire.literal("x" * (_wire.LITERAL_MAX - 2))  # two quotes
    assert len(at_limit) == 1 + _wire.LITERAL_MAX
    assert _codec.loads_from_child(at_limit) == "x" * (_wire.LITERAL_MAX - 2)
    over = _wire.literal("x" * (_wire.LITERAL_MAX - 1))
    with pytest.raises(UnsafeMessage, match=rf"literal of {_wire.LITERAL_MAX + 1} bytes, over the limit .*LITERAL_MAX"):
        _codec.loads_from_child(over)
    # Where a literal is the only encoding allowed (HELLO, LOG, ERROR, GONE), one too long ends the connection.
    with pytest.raises(ProtocolError, match="LITERAL_MAX"):
        MasterProtocol("h").receive(
            encode_frame(_wire.LOG, 0, _wire.literal(("stdout", "", 20, "x" * _wire.LITERAL_MAX)))
        )


@pytest.mark.parametrize("extra", [0, 1])
def test_a_child_spells_results_up_to_its_limit_and_pickles_longer_ones(extra) -> None:
    value = "y" * (_wire.RESULT_LITERAL_MAX - 2 + extra)
    body = CHILD["dump"](value)
    assert body[:1] == (_wire.PICKLE if extra else _wire.LITERAL)
    assert _codec.loads_from_child(body) == value


@pytest.mark.parametrize("extra", [0, 1])
def test_a_child_spells_ints_up_to_the_masters_digits_and_pickles_longer_ones(extra) -> None:
    for value in (10**_wire.MAX_INT_DIGITS - 1 + extra, -(10**_wire.MAX_INT_DIGITS) + 1 - extra):
        body = CHILD["dump"](value)
        assert body[:1] == (_wire.PICKLE if extra else _wire.LITERAL)
        assert _codec.loads_from_child(body) == value


@pytest.mark.parametrize("text", ["e" * 150_000, "e" * 1_500_000, WORST * 150_000, WORST * 1_500_000])
def test_a_childs_error_fits_the_master_whatever_its_text(text) -> None:
    protocol = MasterProtocol("h")
    call_id, _ = protocol.call(b"")
    kind = type("E" + "x" * 300_000, (Exception,), {})  # a type name too may be long
    try:
        raise kind(text)
    except Exception as exc:
        body = CHILD["_error"](exc)
    assert len(body) <= 1 + _wire.LITERAL_MAX
    [failed] = protocol.receive(encode_frame(_wire.ERROR, call_id, body))
    assert isinstance(failed, CallFailed) and isinstance(failed.error, RemoteError)
    kept = failed.error.message
    if len(text) <= _wire.ERROR_TEXT_MAX and text.isascii():
        assert kept == text  # an ordinary long message is kept whole
    else:
        assert kept.startswith(text[:1000]) and kept.endswith(" characters cut]")


def test_a_childs_long_line_at_its_worst_arrives_whole() -> None:
    written: list[bytes] = []
    child = stage1("_log", _calling=threading.local(), _write=written.append)
    line = WORST * (2 * _wire.PIECE + 5)
    child["_log"]("stdout", line, 20, "L" * 100_000)
    [data] = written
    protocol = MasterProtocol("h")
    assert [(e.text, e.logger) for e in protocol.receive(data)] == [(line, "L" * _wire.NAME_MAX)]
    frames = FrameDecoder(_wire.TO_MASTER).feed(data)
    assert len(frames) == 3 and all(len(body) <= 1 + _wire.LITERAL_MAX for _, _, body in frames)


# -- the stage 1 module: how code in a child reaches stage 1 --------------------------------------------------


def test_at_child_exit_registers_a_hook_once_and_only_in_a_child(monkeypatch) -> None:
    def cleanup() -> None:
        """A hook."""

    assert STAGE1_MODULE not in sys.modules  # this is the master
    assert at_child_exit(cleanup) is False
    stage1_module = types.ModuleType(_wire.STAGE1_MODULE)
    hooks: list = []
    stage1_module.AT_EXIT = hooks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, _wire.STAGE1_MODULE, stage1_module)
    assert at_child_exit(cleanup) and at_child_exit(cleanup)
    assert hooks == [cleanup]
    # The modules that clean up after themselves register with it as a child imports them.
    for module, hook in ((_shell, "_end_groups"), (_files, "_discard_unfinished")):
        namespace: dict[str, Any] = {"__name__": f"{module.__name__}_as_a_child_imports_it"}
        exec(compile(Path(module.__file__).read_text(), module.__file__, "exec"), namespace)
        assert namespace[hook] in hooks


def test_stage_1_runs_as_the_module_the_wire_names() -> None:
    assert f'"__name__":"{_wire.STAGE1_MODULE}"' in _stage.stage0_code()
    assert "STAGE1_MODULE" in _stage.stage1_source()  # stage 1 registers itself by the wire's name, not its own
