"""What children send is decoded through an allow-list: values pass, code never runs."""

from __future__ import annotations

import collections
import contextlib
import datetime
import decimal
import marshal
import os
import pickle
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout import _codec
from fanout.errors import UnsafeMessage


class Registered:
    def __init__(self, value):
        self.value = value


class NotRegistered:
    pass


class CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children) | st.tuples(children, children),
    max_leaves=30,
)


@given(values)
def test_plain_values_round_trip(value) -> None:
    for protocol in (4, 5):  # what children send (4); 5 adds nothing that needs a class
        assert _codec.loads_untrusted(pickle.dumps(value, protocol=protocol)) == value


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        frozenset({3}),
        1 + 2j,
        bytearray(b"ab"),
        range(3),
        collections.OrderedDict(a=1),
        datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc),
        datetime.timedelta(seconds=3),
        decimal.Decimal("1.5"),
        uuid.UUID(int=5),
        os.stat_result(range(10)),
    ],
    ids=lambda v: type(v).__name__,
)
def test_allowed_stdlib_types(value) -> None:
    assert _codec.loads_untrusted(pickle.dumps(value, protocol=4)) == value


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_pickle_that_calls_a_function_is_refused(protocol) -> None:
    with pytest.raises(UnsafeMessage, match=r"refused to load (posix|os)\.system"):
        _codec.loads_untrusted(pickle.dumps(CallsSystem(), protocol=protocol))


def test_an_unregistered_class_is_refused_then_allowed_once_registered() -> None:
    data = pickle.dumps(Registered(3), protocol=4)
    with pytest.raises(UnsafeMessage, match=r"fanout\.register_type"):
        _codec.loads_untrusted(data)
    assert _codec.register_type(Registered) is Registered
    assert _codec.loads_untrusted(data).value == 3
    with pytest.raises(UnsafeMessage, match="NotRegistered"):
        _codec.loads_untrusted(pickle.dumps(NotRegistered(), protocol=4))


def test_register_type_takes_classes_only() -> None:
    with pytest.raises(TypeError, match="takes a class"):
        _codec.register_type(os.system)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x80\x04\x95", pickle.dumps([1, 2, 3])[:-3], b"\x80\x04P\x00."],
    ids=["empty", "garbage", "truncated-header", "truncated-list", "persistent-id"],
)
def test_malformed_pickles_are_an_unsafe_message_not_a_crash(data) -> None:
    with pytest.raises(UnsafeMessage):
        _codec.loads_untrusted(data)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_another_exception(data) -> None:
    with contextlib.suppress(UnsafeMessage):
        _codec.loads_untrusted(data)


@given(values)
def test_plain_values_go_to_children_as_marshal(value) -> None:
    payload = _codec.dumps(value)
    assert payload[:1] == b"m"
    assert marshal.loads(payload[1:]) == value


def test_other_values_go_to_children_as_pickles() -> None:
    payload = _codec.dumps(Registered(1))
    assert payload[:1] == b"p" and pickle.loads(payload[1:]).value == 1
    assert _codec.dumps(True)[:1] == b"m"
    assert _codec.dumps(collections.OrderedDict())[:1] == b"p"  # a dict subclass is not plain


literal_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children) | st.tuples(children, children),
    max_leaves=30,
)  # what a child sends as a literal: infinities and NaN go as pickles


@given(literal_values)
def test_literals_from_children_decode_to_the_same_value(value) -> None:
    assert _codec.loads_from_child(b"r" + repr(value).encode()) == value


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "(lambda: 1)()",
        "[x for x in range(3)]",
        "1 if True else 2",
        "a.b",
        "[" * 1000 + "]" * 1000,
        "9" * 5000,
        "\xff",
    ],
)
def test_literals_that_are_not_values_are_refused(text) -> None:
    with pytest.raises(UnsafeMessage, match="malformed literal"):
        _codec.loads_from_child(b"r" + text.encode("latin-1"))


def test_oversized_literals_and_unknown_tags_are_refused() -> None:
    with pytest.raises(UnsafeMessage, match="over the limit"):
        _codec.loads_from_child(b"r" + b"1" * (_codec.LITERAL_MAX + 1))
    with pytest.raises(UnsafeMessage, match="unknown encoding"):
        _codec.loads_from_child(b"z123")
    with pytest.raises(UnsafeMessage, match="unknown encoding"):
        _codec.loads_from_child(b"")
