"""Routing by context without I/O: a relay's table, the size bounds of wrapped frames, and what the master accepts.

A frame for a context below the connection's child travels down in ``TO_CONTEXT`` and comes up in
``FROM_CONTEXT``, stamped by each relay with the context it came from. A child may address only its parent
and its own children: a relay refuses a frame a child could not have sent, and the master refuses frames
from contexts it never opened, ``GONE`` for children it did not open, and every malformed ``GONE``.
"""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout import _wire
from fanout._protocol import ChildGone, Hello, MasterProtocol, Relayed
from fanout._wire import FrameDecoder, ProtocolError, Routes, encode_frame
from fanout.errors import UnsafeMessage

OPEN_ARGS = (["sudo", "-n", "--", "\0argv"], None, False, "[prompt] ")


def literal(value) -> bytes:
    return b"r" + repr(value).encode()


def gone(context: int, value) -> bytes:
    """A GONE frame, as a child reports one of its children ended."""
    return encode_frame(_wire.GONE, context, value if isinstance(value, bytes) else literal(value))


def opened(*children: int) -> MasterProtocol:
    """A login context's protocol that asked its child to open ``children`` (become)."""
    protocol = MasterProtocol("web1")
    for child in children:
        protocol.open_child(child, OPEN_ARGS)
        protocol.below[child] = True  # as the relay transport registers it
    return protocol


def hello() -> bytes:
    return encode_frame(_wire.HELLO, 0, literal({"python": (3, 11, 2), "pid": 7, "executable": "/usr/bin/python3"}))


# -- Routes: a relay's table ---------------------------------------------------------------------------------------


def chain() -> Routes:
    """The login child's table with child 1 (become), 2 behind 1 (nested become), and a second child 3."""
    routes = Routes()
    routes.add(1, 1)
    routes.add(2, 1)
    routes.add(3, 3)
    return routes


def test_down_to_a_direct_child_unwraps_the_frame() -> None:
    inner = encode_frame(_wire.CALL, 5, b"payload")
    assert chain().down(1, inner) == (1, inner)
    assert chain().down(3, inner) == (3, inner)


def test_down_to_a_deeper_context_forwards_it_wrapped_to_the_child_it_lies_behind() -> None:
    inner = encode_frame(_wire.CALL, 5, b"payload")
    via, data = chain().down(2, inner)
    assert via == 1
    assert FrameDecoder(_wire.TO_CHILD).feed(data) == [(_wire.TO_CONTEXT, 2, inner)]
    # Child 1's own table knows 2 as its direct child: there the frame is unwrapped for 2's input.
    below = Routes()
    below.add(2, 2)
    assert below.down(2, data[_wire.HEADER.size :]) == (2, inner)


def test_down_to_an_unknown_context_goes_nowhere() -> None:
    assert chain().down(9, b"anything") is None
    assert Routes().down(0, b"anything") is None


def test_up_wraps_a_childs_own_frames_with_its_id() -> None:
    body = literal(("stdout", "", 20, "hi", False))
    data = chain().up(1, _wire.LOG, 4, body)
    [(kind, context, inner)] = FrameDecoder(_wire.TO_MASTER).feed(data)
    assert (kind, context) == (_wire.FROM_CONTEXT, 1)
    assert FrameDecoder(_wire.TO_MASTER).feed(inner) == [(_wire.LOG, 4, body)]


def test_up_passes_on_a_frame_relayed_from_a_context_behind_that_child() -> None:
    inner = encode_frame(_wire.RESULT, 1, literal(42))
    data = chain().up(1, _wire.FROM_CONTEXT, 2, inner)
    assert FrameDecoder(_wire.TO_MASTER).feed(data) == [(_wire.FROM_CONTEXT, 2, inner)]


@pytest.mark.parametrize(
    ("child", "claimed", "why"),
    [
        (1, 1, "its own id: its own frames are stamped by the relay, never by itself"),
        (1, 3, "a sibling"),
        (3, 2, "a context behind a sibling"),
        (1, 9, "a context nobody opened"),
        (1, 0, "the relay itself"),
        (2, 2, "not a direct child of this relay at all"),
    ],
)
def test_up_refuses_a_frame_a_child_relays_from_a_context_not_behind_it(child, claimed, why) -> None:
    with pytest.raises(ProtocolError, match=f"context {child} relayed a frame from {claimed}, which is not behind it"):
        chain().up(child, _wire.FROM_CONTEXT, claimed, encode_frame(_wire.HELLO, 0, b"r{}"))


def test_drop_forgets_a_child_and_everything_behind_it_only() -> None:
    routes = chain()
    routes.drop(1)
    assert routes.via == {3: 3}
    assert routes.down(1, b"x") is None and routes.down(2, b"x") is None
    with pytest.raises(ProtocolError):
        routes.up(1, _wire.FROM_CONTEXT, 2, b"")


@settings(max_examples=100)
@given(
    st.dictionaries(st.integers(1, 8), st.integers(1, 8), max_size=8),
    st.integers(0, 9),
    st.sampled_from(sorted(_wire.TO_MASTER)),
    st.integers(0, 2**32 - 1) | st.integers(0, 9),
    st.binary(max_size=64),
)
def test_nothing_a_child_sends_comes_out_stamped_with_a_context_not_at_or_behind_it(
    table, child, kind, request_id, body
) -> None:
    routes = Routes()
    for context, via in table.items():
        routes.add(context, via)
    try:
        data = routes.up(child, kind, request_id, body)
    except ProtocolError:
        assert kind == _wire.FROM_CONTEXT
        assert request_id == child or table.get(request_id) != child
        return
    [(out_kind, source, inner)] = FrameDecoder(_wire.TO_MASTER).feed(data)
    assert out_kind == _wire.FROM_CONTEXT
    if kind == _wire.FROM_CONTEXT:
        assert source != child and table[source] == child and inner == body
    else:
        assert source == child and FrameDecoder(_wire.TO_MASTER).feed(inner) == [(kind, request_id, body)]


# -- size bounds: a wrapped frame may be one header over MAX_BODY, no more ------------------------------------------


@pytest.mark.parametrize("kind", sorted(_wire.RELAYED))
def test_a_relayed_frame_may_carry_a_whole_frame_of_the_largest_size_and_no_more(kind, monkeypatch) -> None:
    monkeypatch.setattr(_wire, "MAX_BODY", 1000)  # encode_frame reads it at each call: no 64 MiB bodies here
    inner = encode_frame(_wire.RESULT, 1, b"v" * 1000)
    assert len(encode_frame(kind, 2, inner)) == 2 * _wire.HEADER.size + 1000
    with pytest.raises(ValueError, match="exceeds the maximum of 1000"):
        encode_frame(kind, 2, inner + b"x")
    with pytest.raises(ValueError, match="exceeds the maximum of 1000"):
        encode_frame(_wire.RESULT, 2, b"v" * 1001)  # kinds that carry no frame get no allowance


@pytest.mark.parametrize(
    ("kind", "accept"), [(_wire.TO_CONTEXT, _wire.TO_CHILD), (_wire.FROM_CONTEXT, _wire.TO_MASTER)]
)
def test_the_decoder_allows_a_relayed_body_one_header_over_the_maximum(kind, accept) -> None:
    limit = 1000
    whole = encode_frame(kind, 2, b"w" * (limit + _wire.HEADER.size))
    assert FrameDecoder(accept, max_body=limit).feed(whole) == [(kind, 2, b"w" * (limit + _wire.HEADER.size))]
    with pytest.raises(ProtocolError, match=f"exceeds the maximum of {limit}"):  # refused at the header alone
        FrameDecoder(accept, max_body=limit).feed(_wire.HEADER.pack(limit + _wire.HEADER.size + 1, kind, 0, 2))


def test_at_the_real_maximum_a_relayed_header_passes_and_one_byte_more_does_not() -> None:
    fits = _wire.HEADER.pack(_wire.MAX_BODY + _wire.HEADER.size, _wire.FROM_CONTEXT, 0, 1)
    assert MasterProtocol("web1").receive(fits) == []  # waits for the body: nothing allocated for it yet
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        MasterProtocol("web1").receive(
            _wire.HEADER.pack(_wire.MAX_BODY + _wire.HEADER.size + 1, _wire.FROM_CONTEXT, 0, 1)
        )
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        MasterProtocol("web1").receive(_wire.HEADER.pack(_wire.MAX_BODY + 1, _wire.GONE, 0, 1))


# -- MasterProtocol: FROM_CONTEXT ----------------------------------------------------------------------------------


def test_a_frame_from_an_open_context_below_is_handed_on_as_it_came() -> None:
    protocol = opened(1)
    inner = hello() + encode_frame(_wire.RESULT, 1, literal(2))
    assert protocol.receive(encode_frame(_wire.FROM_CONTEXT, 1, inner)) == [Relayed(1, inner)]


@pytest.mark.parametrize("context", [0, 2, 99, 2**32 - 1])
def test_a_frame_from_a_context_the_master_never_opened_is_a_protocol_error(context) -> None:
    protocol = opened(1)
    with pytest.raises(ProtocolError, match=f"relayed from context {context}, which the master never opened"):
        protocol.receive(encode_frame(_wire.FROM_CONTEXT, context, hello()))


def test_late_words_of_a_context_that_ended_are_dropped_without_an_event() -> None:
    protocol = opened(1)
    protocol.below[1] = False  # as RelayTransport.ended leaves it
    assert protocol.receive(encode_frame(_wire.FROM_CONTEXT, 1, b"anything at all")) == []
    assert protocol.receive(hello()) == [Hello((3, 11, 2), 7, "/usr/bin/python3")]  # and the stream goes on


def test_a_context_opened_through_a_relay_refuses_from_context_at_the_frame_header() -> None:
    below = MasterProtocol("web1/root", relays=False)
    header = _wire.HEADER.pack(1 << 20, _wire.FROM_CONTEXT, 0, 1)  # no body sent: refused on its header alone
    with pytest.raises(ProtocolError, match=f"unexpected frame kind {_wire.FROM_CONTEXT}"):
        below.receive(header)
    # Every other kind a child sends it still takes.
    assert MasterProtocol("web1/root", relays=False).receive(hello()) == [Hello((3, 11, 2), 7, "/usr/bin/python3")]


# -- MasterProtocol: GONE -------------------------------------------------------------------------------------------


def test_gone_for_a_child_it_opened_is_reported_once() -> None:
    protocol = opened(1, 2)
    assert protocol.receive(gone(1, ("refused", "Sorry, try again.", 1, True))) == [
        ChildGone(1, "refused", "Sorry, try again.", 1, True)
    ]
    assert protocol.children == {2}
    with pytest.raises(ProtocolError, match="GONE for context 1, not a child it opened"):
        protocol.receive(gone(1, ("ended", "", 0, False)))


@pytest.mark.parametrize("context", [0, 3, 2**32 - 1])
def test_gone_for_a_context_that_is_not_one_of_its_children_is_a_protocol_error(context) -> None:
    protocol = opened(1, 2)
    with pytest.raises(ProtocolError, match=f"GONE for context {context}, not a child it opened"):
        protocol.receive(gone(context, ("ended", "", 0, False)))


def test_gone_for_a_context_deeper_below_is_not_this_childs_to_report() -> None:
    protocol = opened(1)
    protocol.below[2] = True  # 2 is behind 1: only 1 may say it ended, in its own frames
    with pytest.raises(ProtocolError, match="GONE for context 2, not a child it opened"):
        protocol.receive(gone(2, ("ended", "", 0, False)))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (literal(("ended", "", 0)), "malformed GONE"),
        (literal(("ended", "", 0, False, "more")), "malformed GONE"),
        (literal(["ended", "", 0, False]), "malformed GONE"),
        (literal({"how": "ended"}), "malformed GONE"),
        (literal("ended"), "malformed GONE"),
        (literal(None), "malformed GONE"),
        (literal(("killed", "", 0, False)), "how it ended"),
        (literal((b"ended", "", 0, False)), "how it ended"),
        (literal(("ended", "x" * 8193, 0, False)), "its text"),
        (literal(("ended", b"bytes", 0, False)), "its text"),
        (literal(("ended", None, 0, False)), "its text"),
        (literal(("ended", "", 257, False)), "status"),
        (literal(("ended", "", -257, False)), "status"),
        (literal(("ended", "", 10**100, False)), "status"),
        (literal(("ended", "", "0", False)), "status"),
        (literal(("ended", "", 0.0, False)), "status"),
        (literal(("ended", "", 0, 1)), "answered"),
        (literal(("ended", "", 0, None)), "answered"),
        (b"p" + pickle.dumps(("ended", "", 0, False), 4), "where a literal belongs"),
        (b"m" + b"\x00", "where a literal belongs"),
        (b"", "where a literal belongs"),
        (b"r(", "malformed literal"),
        (b"r" + repr(("ended", "x" * (1 << 20), 0, False)).encode(), "over the limit"),
    ],
)
def test_a_malformed_gone_is_a_protocol_error(body, match) -> None:
    with pytest.raises(ProtocolError, match=match):
        opened(1).receive(gone(1, body))


def test_gone_at_its_limits_is_accepted() -> None:
    for status in (None, -256, 256, 0):
        text = "é" * 8192  # characters, whatever they weigh in UTF-8
        [event] = opened(1).receive(gone(1, ("needs password", text, status, False)))
        assert event == ChildGone(1, "needs password", text, status, False)


literals = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5).map(tuple) | st.lists(inner, max_size=5),
    max_leaves=12,
)
gone_values = st.tuples(
    st.sampled_from(["ended", "refused", "needs password", "protocol", "other", ""]) | st.text(max_size=20),
    st.text(max_size=9000) | literals,
    st.none() | st.integers(-300, 300) | literals,
    st.booleans() | literals,
)
gone_bodies = (
    gone_values.map(literal)
    | literals.map(literal)
    | st.binary(max_size=200).map(lambda data: b"r" + data)
    | st.binary(max_size=200)
    | gone_values.map(lambda value: b"p" + pickle.dumps(value, 4))
)


@settings(max_examples=100, deadline=None)
@given(gone_bodies)
def test_any_gone_body_gives_a_child_gone_that_holds_its_limits_or_a_protocol_error(body) -> None:
    protocol = opened(5)
    try:
        events = protocol.receive(gone(5, body))
    except (ProtocolError, UnsafeMessage):
        return
    [event] = events
    assert isinstance(event, ChildGone) and event.context == 5
    assert event.how in ("ended", "refused", "needs password", "protocol")
    assert isinstance(event.text, str) and len(event.text) <= 8192
    assert event.status is None or (isinstance(event.status, int) and -256 <= event.status <= 256)
    assert isinstance(event.answered, bool)
    assert protocol.children == set()
