"""The frame codec, without I/O: round trips, any split of the stream, and every kind of bad input."""

from __future__ import annotations

import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout import _wire
from fanout._wire import FrameDecoder, ProtocolError, encode_frame

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


@settings(max_examples=300)
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
