"""MasterProtocol without I/O: what a child's frames turn into, and what is refused."""

from __future__ import annotations

import marshal
import os
import pickle
import zlib

import pytest

from fanout import _codec, _output, _wire
from fanout._protocol import CallFailed, CallSucceeded, Hello, MasterProtocol, ModuleRequested, Output
from fanout._stage import stage1_blob
from fanout.errors import ProtocolError, RemoteError, UnsafeMessage


class _RunsTrue:
    def __reduce__(self):
        return (os.system, ("true",))


def frame(kind: int, rid: int, value, encoding: str = "r") -> bytes:
    """A frame as a child sends it: the value as a Python literal (``r``) or a pickle (``p``)."""
    if isinstance(value, bytes):
        body = value
    elif encoding == "r":
        body = b"r" + repr(value).encode()
    else:
        body = b"p" + pickle.dumps(value, protocol=4)
    return _wire.encode_frame(kind, rid, body)


def load(body: bytes):
    """Decode a payload as the child does."""
    return marshal.loads(body[1:]) if body[:1] == b"m" else pickle.loads(body[1:])


def child_side(data: bytes) -> list[tuple[int, int, bytes]]:
    return _wire.FrameDecoder(_wire.TO_CHILD).feed(data)


def test_bootstrap_is_stage1_then_config() -> None:
    data = MasterProtocol("h").bootstrap({"name": "h"})
    blob = stage1_blob()
    assert data.startswith(blob)
    assert zlib.decompress(blob).decode().startswith("import struct")
    [(kind, rid, body)] = child_side(data[len(blob) :])
    assert (kind, rid, body[:1], load(body)) == (_wire.CONFIG, 0, b"m", {"name": "h"})


def test_call_then_result() -> None:
    protocol = MasterProtocol("h")
    call_id, data = protocol.call(b"payload")
    assert child_side(data) == [(_wire.CALL, call_id, b"payload")]
    [event] = protocol.receive(frame(_wire.RESULT, call_id, {"answer": 42}))
    assert event == CallSucceeded(call_id, {"answer": 42})
    second, _ = protocol.call(b"payload")
    [event] = protocol.receive(frame(_wire.RESULT, second, {"answer", 43}, encoding="p"))
    assert event == CallSucceeded(second, {"answer", 43})


def test_error_becomes_remote_error_with_host() -> None:
    protocol = MasterProtocol("web1")
    call_id, _ = protocol.call(b"")
    [event] = protocol.receive(frame(_wire.ERROR, call_id, ("KeyError", "'x'", "Traceback ...")))
    assert isinstance(event, CallFailed) and isinstance(event.error, RemoteError)
    assert (event.error.host, event.error.type_name, event.error.message) == ("web1", "KeyError", "'x'")


def test_each_call_is_answered_once() -> None:
    protocol = MasterProtocol("h")
    call_id, _ = protocol.call(b"")
    protocol.receive(frame(_wire.RESULT, call_id, 1))
    with pytest.raises(ProtocolError, match="never made"):
        protocol.receive(frame(_wire.RESULT, call_id, 1))


def test_unsafe_result_fails_only_that_call() -> None:
    protocol = MasterProtocol("h")
    first, _ = protocol.call(b"")
    second, _ = protocol.call(b"")
    evil = b"p" + pickle.dumps(_RunsTrue(), protocol=4)
    [event] = protocol.receive(frame(_wire.RESULT, first, evil))
    assert isinstance(event, CallFailed) and isinstance(event.error, UnsafeMessage)
    assert "refused to load" in str(event.error) and "call 1" in str(event.error)
    assert protocol.receive(frame(_wire.RESULT, second, 2)) == [CallSucceeded(second, 2)]


def test_module_request_and_reply() -> None:
    protocol = MasterProtocol("h")
    assert protocol.receive(frame(_wire.GET_MODULE, 5, b"pkg.mod")) == [ModuleRequested(5, "pkg.mod")]
    with pytest.raises(ProtocolError, match="used twice"):
        protocol.receive(frame(_wire.GET_MODULE, 5, b"pkg.mod"))
    [(kind, rid, body)] = child_side(protocol.modules(5, [("pkg.mod", False, "x = 1", "/m.py", None)], ["pkg"]))
    assert (kind, rid, load(body)) == (
        _wire.MODULES,
        5,
        ([("pkg.mod", False, "x = 1", "/m.py", None)], ["pkg"]),
    )


@pytest.mark.parametrize("name", [b"", b"a..b", b"os;rm", b"\xff", b"a" * 600, b"1abc"])
def test_bad_module_names_are_protocol_errors(name) -> None:
    with pytest.raises(ProtocolError):
        MasterProtocol("h").receive(frame(_wire.GET_MODULE, 1, name))


def test_a_module_name_at_the_wires_limit_is_asked_for_and_one_longer_is_refused() -> None:
    name = ".".join(["a" * 99] * 6)[: _wire.NAME_MAX - 1] + "b"
    assert len(name) == _wire.NAME_MAX
    [event] = MasterProtocol("h").receive(frame(_wire.GET_MODULE, 1, name.encode()))
    assert event == ModuleRequested(1, name)
    with pytest.raises(ProtocolError, match="bad module name"):
        MasterProtocol("h").receive(frame(_wire.GET_MODULE, 1, name.encode() + b"c"))


def test_hello_once_and_well_formed() -> None:
    protocol = MasterProtocol("h")
    [hello] = protocol.receive(frame(_wire.HELLO, 0, {"python": (3, 9, 2), "pid": 7, "executable": "/usr/bin/python3"}))
    assert hello == Hello((3, 9, 2), 7, "/usr/bin/python3") == protocol.hello
    with pytest.raises(ProtocolError, match="second HELLO"):
        protocol.receive(frame(_wire.HELLO, 0, {"python": (3, 9, 2), "pid": 7, "executable": "x"}))


@pytest.mark.parametrize(
    "payload",
    [[], {"python": "3.9"}, {"python": (3, 9), "pid": 1, "executable": "x"}, {"python": (3, 9, 1), "pid": "1"}],
)
def test_malformed_hello_is_a_protocol_error(payload) -> None:
    with pytest.raises(ProtocolError, match="malformed HELLO"):
        MasterProtocol("h").receive(frame(_wire.HELLO, 0, payload))


def test_log_lines_and_their_validation() -> None:
    protocol = MasterProtocol("h")
    assert protocol.receive(frame(_wire.LOG, 0, ("stdout", "", 20, "hi"))) == [Output("stdout", "", 20, "hi")]
    for bad in [("stdin", "", 20, "x"), ("log", "", 1000, "x"), ("log", 1, 20, "x"), ("log", "", 20)]:
        with pytest.raises(ProtocolError, match="malformed LOG"):
            MasterProtocol("h").receive(frame(_wire.LOG, 0, bad))


def test_log_pieces_of_a_long_line_are_joined_into_one_line() -> None:
    protocol = MasterProtocol("h")
    data = frame(_wire.LOG, 0, ("stdout", "", 20, "a" * 5, True)) + frame(_wire.LOG, 0, ("stdout", "", 20, "b", False))
    assert protocol.receive(data) == [Output("stdout", "", 20, "aaaaab")]
    assert protocol.receive(frame(_wire.LOG, 0, ("stdout", "", 20, "c", True))) == []  # held until its last piece
    assert protocol.unfinished_output == 1
    [line] = protocol.receive(frame(_wire.LOG, 0, ("stdout", "", 20, "d", False)))
    assert line == Output("stdout", "", 20, "cd") and protocol.unfinished_output == 0
    [older] = protocol.receive(frame(_wire.LOG, 0, ("log", "app", 30, "four fields")))  # a child of before
    assert older == Output("log", "app", 30, "four fields") and older.continued is False


def test_long_line_pieces_are_joined_by_stream_and_call() -> None:
    """A call's print between two pieces of a subprocess's line is its own line; so is stderr's."""
    protocol = MasterProtocol("h")
    call_id, _ = protocol.call(b"")
    pieces = [
        ("stdout", 0, "AAA", True),  # a subprocess's long line, its first piece
        ("stdout", call_id, "hello", False),  # the call's print in between
        ("stderr", 0, "err", False),
        ("stdout", 0, "BBB", False),
    ]
    data = b"".join(frame(_wire.LOG, rid, (stream, "", 20, text, more)) for stream, rid, text, more in pieces)
    assert [(e.stream, e.text, e.call_id) for e in protocol.receive(data)] == [
        ("stdout", "hello", call_id),
        ("stderr", "err", 0),
        ("stdout", "AAABBB", 0),
    ]


def test_a_line_in_pieces_of_the_childs_size_is_joined_whole() -> None:
    protocol = MasterProtocol("h")
    line = "x" * (2 * _wire.PIECE + 7)
    pieces = [line[i : i + _wire.PIECE] for i in range(0, len(line), _wire.PIECE)]
    data = b"".join(
        frame(_wire.LOG, 0, ("stdout", "", 20, piece, n < len(pieces) - 1)) for n, piece in enumerate(pieces)
    )
    for cut in (1, _wire.PIECE, len(data) - 1):  # however the stream is split
        protocol = MasterProtocol("h")
        assert protocol.receive(data[:cut]) == []
        assert protocol.receive(data[cut:]) == [Output("stdout", "", 20, line)]


def test_a_line_past_the_cap_is_cut_with_a_marker_and_pieces_never_outlive_the_stream() -> None:
    protocol = MasterProtocol("h")
    piece = "y" * _wire.PIECE
    endless = frame(_wire.LOG, 0, ("stdout", "", 20, piece, True))
    for _ in range(_output.MAX_LINE // _wire.PIECE + 3):
        assert protocol.receive(endless) == []
    assert protocol.unfinished_output == _output.MAX_LINE  # the head is kept; the rest only counted
    [line] = protocol.receive(frame(_wire.LOG, 0, ("stdout", "", 20, "end", False)))
    assert line.text == "y" * _output.MAX_LINE + _output.cut_marker(3 * _wire.PIECE + 3)
    protocol.receive(endless)
    protocol.end_of_stream()
    assert protocol.unfinished_output == 0


def test_unfinished_lines_are_dropped_even_when_the_stream_ends_inside_a_frame() -> None:
    protocol = MasterProtocol("h")
    data = frame(_wire.LOG, 0, ("stdout", "", 20, "z" * 100, True))
    protocol.receive(data + data[:3])
    with pytest.raises(ProtocolError, match="ended inside a frame"):
        protocol.end_of_stream()
    assert protocol.unfinished_output == 0


@pytest.mark.parametrize(
    "bad",
    [
        ("stdout", "", 20, "x", 1),
        ("stdout", "", 20, "x", "yes"),
        ("stdout", "", 20, "x", None),
        ("stdout", "", 20, "x", True, 0),
    ],
    ids=["int", "text", "none", "six-fields"],
)
def test_a_continued_flag_that_is_not_a_bool_is_a_protocol_error(bad) -> None:
    with pytest.raises(ProtocolError, match="malformed LOG"):
        MasterProtocol("h").receive(frame(_wire.LOG, 0, bad))


def test_malformed_error_payload_is_a_protocol_error() -> None:
    protocol = MasterProtocol("h")
    call_id, _ = protocol.call(b"")
    with pytest.raises(ProtocolError, match="malformed ERROR"):
        protocol.receive(frame(_wire.ERROR, call_id, ("only", "two")))


@pytest.mark.parametrize("kind", [_wire.HELLO, _wire.LOG, _wire.ERROR])
def test_pickles_are_refused_where_literals_belong(kind) -> None:
    protocol = MasterProtocol("h")
    call_id, _ = protocol.call(b"")
    with pytest.raises(ProtocolError, match="where a literal belongs"):
        protocol.receive(frame(kind, call_id, ("a", "b", "c"), encoding="p"))


@pytest.mark.parametrize(
    "body, complaint",
    [
        (b"r__import__('os')", "malformed literal"),
        (b"r" + b"[" * 5000, "malformed literal"),
        (b"x1", "unknown encoding"),
    ],
    ids=["a-call", "too-deep", "unknown-tag"],
)
def test_results_that_are_not_values_fail_their_call(body, complaint) -> None:
    protocol = MasterProtocol("h")
    call_id, _ = protocol.call(b"")
    [event] = protocol.receive(frame(_wire.RESULT, call_id, body))
    assert isinstance(event, CallFailed) and complaint in str(event.error)


def test_frames_meant_for_the_child_are_refused() -> None:
    with pytest.raises(ProtocolError, match="unexpected frame kind"):
        MasterProtocol("h").receive(_wire.encode_frame(_wire.CALL, 1, _codec.dumps(1)))


def test_service_calls_are_decoded_and_checked() -> None:
    from fanout._protocol import ServiceRequested

    protocol = MasterProtocol("h")
    [event] = protocol.receive(frame(_wire.SERVICE_CALL, 3, ("pkg.Svc", "m", {"a": 1})))
    assert event == ServiceRequested(3, "pkg.Svc", "m", {"a": 1})
    with pytest.raises(ProtocolError, match="used twice"):
        protocol.receive(frame(_wire.SERVICE_CALL, 3, ("pkg.Svc", "m", {})))
    [(kind, rid, body)] = child_side(protocol.service_reply(3, ("ok", [1, 2])))
    assert (kind, rid, load(body)) == (_wire.SERVICE_REPLY, 3, ("ok", [1, 2]))


@pytest.mark.parametrize(
    "payload",
    [("only", "two"), (1, "m", {}), ("s", "m", {1: "x"}), ("s", "m", []), b"p" + pickle.dumps(_RunsTrue())],
    ids=["short", "bad-name", "bad-arg-name", "bad-kwargs", "evil-pickle"],
)
def test_malformed_service_calls_are_protocol_errors(payload) -> None:
    with pytest.raises(ProtocolError, match=r"SERVICE_CALL|service call"):
        MasterProtocol("h").receive(frame(_wire.SERVICE_CALL, 1, payload))


def test_gone_text_at_the_wires_limit_is_read_and_one_character_more_is_refused() -> None:
    for extra in (0, 1):
        protocol = MasterProtocol("h")
        protocol.open_child(1, (["sudo"], None, False, None))
        data = frame(_wire.GONE, 1, ("ended", "\u00e9" * (_wire.GONE_TEXT_MAX + extra), 0, False))
        if extra:
            with pytest.raises(ProtocolError, match="malformed GONE: its text"):
                protocol.receive(data)
        else:
            [gone] = protocol.receive(data)
            assert len(gone.text) == _wire.GONE_TEXT_MAX
