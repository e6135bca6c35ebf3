"""What hosts print is held within caps, in linear time (class 4), whatever the pieces look like."""

from __future__ import annotations

from fanout import _output
from fanout._transport import StderrTail
from fanout.errors import ConnectionLost


def test_a_line_in_two_hundred_thousand_one_character_pieces_is_joined_once() -> None:
    lines = _output.LineAssembler()
    for _ in range(200_000):  # quadratic before: 200k pieces did not finish in 300 s
        assert lines.add(("stdout", 0), "x", True) is None
    assert lines.held == 200_000
    assert lines.add(("stdout", 0), "y", False) == "x" * 200_000 + "y"
    assert lines.held == 0


def test_a_line_past_the_cap_keeps_its_head_and_says_how_much_went() -> None:
    lines = _output.LineAssembler(max_line=1000, max_partial=10_000)
    for _ in range(30):
        lines.add("k", "a" * 100, True)
    assert lines.held == 1000
    line = lines.add("k", "b" * 100, False)
    assert line == "a" * 1000 + _output.cut_marker(2100)


def test_characters_outside_ascii_count_as_the_four_bytes_they_may_take() -> None:
    lines = _output.LineAssembler(max_line=4000, max_partial=10_000)
    line = lines.add("k", "\U0001f600" * 5000, False)
    assert line == "\U0001f600" * 1000 + _output.cut_marker(4000)
    lines.add("k", "\U0001f600" * 2000, True)
    assert lines.held == 4000  # a thousand characters: four bytes each


def test_pieces_of_every_stream_and_call_share_one_budget() -> None:
    lines = _output.LineAssembler(max_line=1000, max_partial=2500)
    for key in range(10):
        lines.add(key, "z" * 1000, True)
    assert lines.held == 2500  # not 10 x 1000
    assert lines.add(9, "", False) == _output.cut_marker(1000)


def test_a_tail_buffer_keeps_the_latest_and_counts_the_rest() -> None:
    kept = _output.TailBuffer(limit=100)
    for i in range(1000):
        kept.append(i, 10)
    items, dropped, size = kept.take()
    assert items == list(range(990, 1000)) and (dropped, size) == (990, 9900)
    assert kept.take() == ([], 0, 0)


def test_endless_stderr_without_a_newline_is_cut_not_gathered() -> None:
    tail = StderrTail("flooding")
    chunks = iter([b"start\n", *([b"e" * 65536] * 1600), b"\nend"])  # 100 MiB with no newline in it
    tail.pump(lambda: next(chunks, b""))
    assert tail.lines[0] == "start" and tail.lines[-1] == "end"
    long_line = tail.lines[1]
    assert long_line.startswith("e" * 65536) and long_line.endswith("bytes of this line dropped]")
    assert len(long_line) < 65536 + 100


def test_stderr_control_characters_are_escaped_once_where_shown(caplog) -> None:
    tail = StderrTail("painting")
    chunks = iter([b"\x1b]0;title\x07\rok\n"])
    with caplog.at_level("WARNING", logger="fanout.remote.painting"):
        tail.pump(lambda: next(chunks, b""))
    assert [r.getMessage() for r in caplog.records] == ["\\x1b]0;title\\x07\\rok"]  # logged escaped
    lost = ConnectionLost("painting", "its stderr said:\n" + tail.text())
    assert str(lost).endswith("\\x1b]0;title\\x07\\rok")  # kept raw, escaped once by the error that shows it
