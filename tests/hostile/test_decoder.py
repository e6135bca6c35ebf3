"""A hostile child's values cost the master time and memory linear in their size, or are refused (issue 9, class 1).

Each attack is a concrete payload as a compromised child would send it, decoded
as ``fanout._protocol`` decodes results and service calls; the decoder must raise
:class:`UnsafeMessage` naming the limit, before it builds or hashes anything big.
Nothing here times anything: a refusal *is* the bound. Hypothesis then generates
nested, shared and huge structures, random opcode streams and mangled literals:
the decoded value equals what was sent, or the decoder refuses it, and nothing
else ever escapes.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import dataclasses
import enum
import math
import os
import pathlib
import pickle
import shutil
import struct
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fanout
from fanout import _codec, _literal, _stage, _unpickle, _wire
from fanout.errors import UnsafeMessage

MAX_NODES = _unpickle.MAX_NODES

# -- a small pickle assembler: what a hostile child can write by hand ---------------------------------------------


def text(value: str) -> bytes:
    data = value.encode()
    if len(data) < 256:
        return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def glob(module: str, name: str) -> bytes:
    return text(module) + text(name) + pickle.STACK_GLOBAL


def get(index: int) -> bytes:
    return pickle.BINGET + bytes([index]) if index < 256 else pickle.LONG_BINGET + struct.pack("<I", index)


def integer(value: int) -> bytes:
    encoded = pickle.encode_long(value)
    if len(encoded) < 256:
        return pickle.LONG1 + bytes([len(encoded)]) + encoded
    return pickle.LONG4 + struct.pack("<i", len(encoded)) + encoded


def program(*parts: bytes) -> bytes:
    """A pickle payload as a child sends it: the ``p`` tag, protocol 4, the opcodes, STOP."""
    return b"p" + pickle.PROTO + b"\x04" + b"".join(parts) + pickle.STOP


def call(module: str, name: str, *args: bytes) -> bytes:
    return glob(module, name) + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def shared_list(value: bytes, copies: int) -> bytes:
    """A list holding ``value`` ``copies`` times, by reference: a few bytes a copy on the wire."""
    return pickle.EMPTY_LIST + pickle.MARK + value + pickle.MEMOIZE + get(0) * (copies - 1) + pickle.APPENDS


def nested(opener: bytes, closer: bytes, depth: int) -> bytes:
    return opener * depth + closer * depth


def doubling_tuple(levels: int) -> tuple[Any, ...]:
    """t0 = (), t(k+1) = (tk, tk): 2**(levels+1) - 1 nodes in a pickle of about 6 bytes a level."""
    value: tuple[Any, ...] = ()
    for _ in range(levels):
        value = (value, value)
    return value


def doubling_ops(levels: int) -> bytes:
    """The opcodes of doubling_tuple(levels), written by hand: building it here must not hash it."""
    doubling = b"".join(get(k) + pickle.TUPLE2 + pickle.MEMOIZE for k in range(levels))
    return pickle.EMPTY_TUPLE + pickle.MEMOIZE + doubling


def doubling_list(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value, value]
    return value


def decode(body: bytes) -> Any:
    return _codec.loads_from_child(body)


def refused(body: bytes, limit: str) -> str:
    with pytest.raises(UnsafeMessage, match=limit) as info:
        decode(body)
    return str(info.value)


# -- each attack of the issue, and its relatives ------------------------------------------------------------------

DEEP = 200_000

ATTACKS = {
    # A tuple nested 200,000 deep as a dict key or set member: hashing it recursed in C and crashed the master.
    "literal-deep-tuple-as-dict-key": (b"r{" + nested(b"(", b",)", DEEP) + b": 1}", "MAX_DEPTH"),
    "literal-deep-list": (b"r" + nested(b"[", b"]", DEEP), "MAX_DEPTH"),
    "pickle-deep-tuple-as-dict-key": (
        program(pickle.EMPTY_DICT, pickle.EMPTY_TUPLE, pickle.TUPLE1 * DEEP, pickle.NONE, pickle.SETITEM),
        "MAX_DEPTH",
    ),
    "pickle-deep-tuple-as-set-member": (
        program(pickle.EMPTY_SET, pickle.MARK, pickle.EMPTY_TUPLE, pickle.TUPLE1 * DEEP, pickle.ADDITEMS),
        "MAX_DEPTH",
    ),
    "pickle-deep-tuple-in-frozenset": (
        program(pickle.MARK, pickle.EMPTY_TUPLE, pickle.TUPLE1 * DEEP, pickle.FROZENSET),
        "MAX_DEPTH",
    ),
    "pickle-deep-list": (program(pickle.EMPTY_LIST * DEEP, pickle.APPEND * (DEEP - 1)), "MAX_DEPTH"),
    # A tuple DAG whose halves share references: 2**41 nodes from a few hundred bytes, hashed in a frozenset.
    "shared-tuple-dag-in-frozenset": (program(pickle.MARK, doubling_ops(40), pickle.FROZENSET), "MAX_NODES"),
    "shared-tuple-dag-as-set-member": (
        program(pickle.EMPTY_SET, pickle.MARK, doubling_ops(40), pickle.ADDITEMS),
        "MAX_NODES",
    ),
    "shared-tuple-dag-as-dict-key": (
        program(pickle.EMPTY_DICT, doubling_ops(40), pickle.NONE, pickle.SETITEM),
        "MAX_NODES",
    ),
    "shared-tuple-dag-as-service-kwargs": (
        b"p" + pickle.dumps(("svc", "method", {"key": doubling_tuple(40)}), 4),
        "MAX_NODES",
    ),
    # One list reused 40 levels deep: printing or JSON of it never ends.
    "list-reused-40-levels": (b"p" + pickle.dumps(doubling_list(40), 4), "MAX_NODES"),
    # Shared atoms are counted in full too: 300 references to 64 KiB, 3000 to a 4000-digit int.
    "shared-long-string": (program(shared_list(text("x" * 65536), 300)), "MAX_NODES"),
    "shared-long-bytes": (b"p" + pickle.dumps([b"y" * 65536] * 300, 4), "MAX_NODES"),
    "shared-big-int": (program(shared_list(integer(10**4000), 3000)), "MAX_NODES"),
    # Allow-listed constructors that allocate or compute far beyond the message.
    "bytearray-of-a-size": (program(call("builtins", "bytearray", integer(2**30))), "takes bytes"),
    "bytearray-of-an-iterable": (
        program(call("builtins", "bytearray", call("builtins", "range", integer(2**30)))),
        "takes bytes",
    ),
    "set-of-a-range": (program(call("builtins", "set", call("builtins", "range", integer(2**40)))), "takes list"),
    "frozenset-of-a-range": (
        program(call("builtins", "frozenset", call("builtins", "range", integer(2**40)))),
        "takes list",
    ),
    "deque-of-a-range": (
        program(call("collections", "deque", call("builtins", "range", integer(2**40)))),
        "already decoded list",
    ),
    "fraction-exponent": (program(call("fractions", "Fraction", text("1e20000000"))), "MAX_INT_DIGITS"),
    "fraction-of-a-float": (program(call("fractions", "Fraction", pickle.BINFLOAT + struct.pack(">d", 1e300))), "int"),
    "fraction-huge-numerator": (program(call("fractions", "Fraction", text("9" * 5000 + "/7"))), "MAX_INT_DIGITS"),
    "decimal-exponent": (program(call("decimal", "Decimal", text("1e999999999"))), "MAX_DECIMAL_EXPONENT"),
    "decimal-digits": (program(call("decimal", "Decimal", text("9" * 100_000))), "MAX_INT_DIGITS"),
    "decimal-digits-and-point": (program(call("decimal", "Decimal", text("1." + "9" * 4400))), "MAX_INT_DIGITS"),
    "pickle-long-int": (
        program(pickle.LONG4, struct.pack("<i", 200_000), b"\x01" * 200_000),
        "MAX_PICKLED_INT_BYTES",
    ),
    "pickle-int-just-over": (program(integer(1 << (8 * 128 * 1024))), "MAX_PICKLED_INT_BYTES"),
    # Ints a constructor would divide or take the gcd of, in quadratic time: fine in a list, not there.
    "fraction-of-huge-ints": (
        program(call("fractions", "Fraction", integer(3**20000), integer(2**60000 + 1))),
        "MAX_INT_DIGITS",
    ),
    "range-of-huge-ints": (
        program(call("builtins", "range", integer(0), integer(7**40000), integer(3**30000))),
        "MAX_INT_DIGITS",
    ),
    "decimal-of-an-int": (program(call("decimal", "Decimal", integer(10**5000))), "takes str"),
    "literal-long-int": (b"r" + b"9" * 5000, "MAX_INT_DIGITS"),
    "literal-long-negative-int": (b"r[-" + b"9" * 4301 + b"]", "MAX_INT_DIGITS"),
    "path-of-many-parts": (program(call("pathlib", "PurePosixPath", text("a") * 5000)), "MAX_PATH_PARTS"),
    "address-of-a-long-text": (program(call("ipaddress", "IPv6Address", text("1" * 100_000))), "MAX_ADDRESS_CHARS"),
    # A literal bigger than literals get.
    "huge-literal": (b"r[" + b"0," * (_codec.LITERAL_MAX // 2 + 1) + b"]", "LITERAL_MAX"),
    # Keys whose hashes are equal on purpose make a dict or set quadratic to build.
    "colliding-int-keys": (b"p" + pickle.dumps({i * (2**61 - 1): 0 for i in range(17)}, 4), "MAX_SAME_HASH"),
    "colliding-set-members": (b"p" + pickle.dumps({i * (2**61 - 1) for i in range(17)}, 4), "MAX_SAME_HASH"),
    "colliding-frozenset-members": (
        b"p" + pickle.dumps(frozenset(i * (2**61 - 1) for i in range(17)), 4),
        "MAX_SAME_HASH",
    ),
    "colliding-keys-in-batches": (
        program(
            pickle.EMPTY_DICT,
            *(pickle.MARK + integer(i * (2**61 - 1)) + pickle.NONE + pickle.SETITEMS for i in range(17)),
        ),
        "MAX_SAME_HASH",
    ),
    "colliding-literal-keys": (b"r" + repr({i * (2**61 - 1): 0 for i in range(17)}).encode(), "MAX_SAME_HASH"),
    "set-of-one-member-many-times": (program(shared_list(pickle.EMPTY_TUPLE, 1)[:-1] + pickle.POP), "POP"),
}


@pytest.mark.parametrize("body, limit", list(ATTACKS.values()), ids=list(ATTACKS))
def test_each_attack_is_refused_naming_its_limit(body: bytes, limit: str) -> None:
    assert len(body) < 3 * _codec.LITERAL_MAX  # every attack is small; most are a few hundred bytes
    refused(body, limit)


def test_the_attacks_are_small_messages() -> None:
    """The point of each attack: a message of a few hundred bytes, a cost of gigabytes or hours if decoded."""
    assert len(ATTACKS["list-reused-40-levels"][0]) < 400
    assert len(ATTACKS["shared-tuple-dag-in-frozenset"][0]) < 700
    assert len(ATTACKS["bytearray-of-a-size"][0]) < 200


def test_hashing_many_shared_keys_is_bounded_in_all() -> None:
    """Each key is within the node limit, but hashing it in dict after dict would not be: the total is bounded."""
    key = doubling_tuple(18)  # 524,287 nodes: one such key is allowed
    assert decode(b"p" + pickle.dumps({(key, 0): 0}, 4)) == {(key, 0): 0}
    message = refused(b"p" + pickle.dumps([{(key, i): 0} for i in range(3)], 4), "to hash")
    assert "MAX_NODES" in message


def test_every_limit_is_checked_before_the_value_is_built() -> None:
    """A refused message leaves nothing behind: the decoder raised before allocating what it would have cost."""
    body = program(call("builtins", "bytearray", integer(2**40)))  # a terabyte, if it were built
    refused(body, "bytearray")


@pytest.mark.parametrize(
    "name",
    sorted(
        set(_unpickle._OPCODE_NAMES.values())
        - {
            "PROTO",
            "STOP",
            "FRAME",
            "MARK",
            "NONE",
            "NEWTRUE",
            "NEWFALSE",
            "BININT",
            "BININT1",
            "BININT2",
            "LONG1",
            "LONG4",
            "BINFLOAT",
            "SHORT_BINUNICODE",
            "BINUNICODE",
            "BINUNICODE8",
            "SHORT_BINBYTES",
            "BINBYTES",
            "BINBYTES8",
            "BYTEARRAY8",
            "EMPTY_TUPLE",
            "TUPLE",
            "TUPLE1",
            "TUPLE2",
            "TUPLE3",
            "EMPTY_LIST",
            "APPEND",
            "APPENDS",
            "EMPTY_DICT",
            "SETITEM",
            "SETITEMS",
            "EMPTY_SET",
            "ADDITEMS",
            "FROZENSET",
            "MEMOIZE",
            "BINPUT",
            "LONG_BINPUT",
            "BINGET",
            "LONG_BINGET",
            "GLOBAL",
            "STACK_GLOBAL",
            "REDUCE",
            "NEWOBJ",
            "NEWOBJ_EX",
            "BUILD",
        }
    ),
)
def test_every_other_opcode_is_refused_by_name(name: str) -> None:
    refused(program(pickle.NONE, getattr(pickle, name)), f"opcode {name},")


def test_an_unknown_opcode_is_refused() -> None:
    refused(program(b"\xff"), "unknown pickle opcode 0xff")


CYCLES = {
    "list": lambda: (lambda a: (a.append(a), a)[1])([]),
    "dict": lambda: (lambda d: (d.update(me=d), d)[1])({}),
    "tuple-through-a-list": lambda: (lambda a: (a.append((a,)), (a,))[1])([]),
    "list-in-a-set-in-a-tuple": lambda: (lambda a: (a.append((a, 1)), a)[1])([]),
    "two-lists": lambda: (lambda a, b: (a.append(b), b.append(a), a)[2])([], []),
}


@pytest.mark.parametrize("make", list(CYCLES.values()), ids=list(CYCLES))
def test_cyclic_values_are_refused(make) -> None:
    refused(b"p" + pickle.dumps(make(), 4), "cycle")


class Node:
    """A registered class whose instances can point at each other."""

    def __init__(self, name: str, links: list[Any] | None = None) -> None:
        self.name = name
        self.links = links or []

    def __eq__(self, other: object) -> bool:
        return type(other) is Node and (self.name, self.links) == (other.name, other.links)

    __hash__ = None  # type: ignore[assignment]


@pytest.fixture
def registered_node(monkeypatch):
    monkeypatch.setitem(_codec._registered, (Node.__module__, Node.__qualname__), Node)


def test_a_registered_object_that_refers_to_itself_is_refused(registered_node) -> None:
    node = Node("loop")
    node.links.append(node)
    refused(b"p" + pickle.dumps(node, 4), "cycle")


def test_registered_objects_sharing_a_third_are_fine(registered_node) -> None:
    leaf = Node("leaf")
    value = [Node("a", [leaf]), Node("b", [leaf])]
    assert decode(b"p" + pickle.dumps(value, 4)) == value


CRAFTED = {
    # A container changed after it was used: sharing it before it was complete.
    "append-after-use": (
        program(pickle.EMPTY_LIST, pickle.MEMOIZE, get(0), pickle.TUPLE1, pickle.APPEND),
        "after using it",
    ),
    "setitem-after-use": (
        program(pickle.EMPTY_DICT, pickle.MEMOIZE, text("k"), get(0), pickle.TUPLE1, pickle.SETITEM, pickle.TUPLE1),
        "after using it",
    ),
    "build-after-use": (
        program(glob("uuid", "UUID"), pickle.EMPTY_TUPLE, pickle.NEWOBJ, pickle.MEMOIZE, get(0), pickle.TUPLE2),
        "before its state is set",
    ),
    "uuid-without-state": (program(glob("uuid", "UUID"), pickle.EMPTY_TUPLE, pickle.NEWOBJ), "before its state"),
    "uuid-state-too-big": (
        program(
            glob("uuid", "UUID"),
            pickle.EMPTY_TUPLE,
            pickle.NEWOBJ,
            pickle.EMPTY_DICT,
            text("int"),
            integer(2**200),
            pickle.SETITEM,
            pickle.BUILD,
        ),
        "128-bit",
    ),
    "build-on-a-datetime": (
        program(call("datetime", "timedelta", integer(1)), pickle.EMPTY_DICT, pickle.BUILD),
        "BUILD on a timedelta",
    ),
    "reduce-of-a-str": (program(text("os"), pickle.EMPTY_TUPLE, pickle.REDUCE), "not an allowed class"),
    "reduce-of-a-built-object": (
        program(call("datetime", "timedelta", integer(1)), pickle.EMPTY_TUPLE, pickle.REDUCE),
        "not an allowed class",
    ),
    "newobj-of-a-stdlib-type-built-by-reduce": (
        program(glob("datetime", "timedelta"), pickle.EMPTY_TUPLE, pickle.NEWOBJ),
        "never uses",
    ),
    "a-function": (program(call("posix", "system", text("true"))), r"refused to load posix\.system"),
    "a-function-by-global": (
        b"p" + pickle.PROTO + b"\x02" + pickle.GLOBAL + b"os\nsystem\n" + text("true") + pickle.TUPLE1 + b"R.",
        r"refused to load os\.system",
    ),
    "a-huge-class-name": (program(glob("x" * 100_000, "y"), pickle.EMPTY_TUPLE, pickle.REDUCE), "MAX_NAME_CHARS"),
    "builtins-eval": (program(call("builtins", "eval", text("1"))), r"refused to load builtins\.eval"),
    "protocol-6": (b"p" + pickle.PROTO + b"\x06" + pickle.NONE + pickle.STOP, "protocol 6"),
    "bytes-after-stop": (program(pickle.NONE) + b"junk", "after the end"),
    "two-values": (program(pickle.NONE, pickle.NONE), "more than one value"),
    "no-stop": (b"p" + pickle.PROTO + b"\x04" + pickle.NONE, "truncated"),
    "undefined-memo-entry": (program(get(7)), "memo entry 7"),
    "memo-entry-far-ahead": (program(pickle.NONE, pickle.LONG_BINPUT, struct.pack("<I", 2**32 - 1)), "skips ahead"),
    "append-across-a-mark": (program(pickle.EMPTY_LIST, pickle.MARK, pickle.NONE, pickle.APPEND), "stack"),
    "appends-without-mark": (program(pickle.EMPTY_LIST, pickle.APPENDS), "MARK"),
    "setitems-odd": (program(pickle.EMPTY_DICT, pickle.MARK, pickle.NONE, pickle.SETITEMS), "odd"),
    "unhashable-key": (program(pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.NONE, pickle.SETITEM), "unhashable"),
    "unhashable-member": (program(pickle.MARK, pickle.EMPTY_LIST, pickle.FROZENSET), "unhashable"),
    "string-past-the-end": (program(pickle.BINUNICODE8, struct.pack("<Q", 2**63)), "truncated"),
    "frame-past-the-end": (program(pickle.FRAME, struct.pack("<Q", 2**40)), "truncated"),
    "bad-utf8": (program(pickle.SHORT_BINUNICODE, b"\x01\xff"), "UnicodeDecodeError"),
    "negative-long4": (program(pickle.LONG4, struct.pack("<i", -5)), "negative"),
    "stack-global-of-ints": (program(pickle.BININT1, b"\x01", pickle.BININT1, b"\x02", pickle.STACK_GLOBAL), "two str"),
    "timedelta-overflow": (program(call("datetime", "timedelta", integer(10**4000))), "OverflowError"),
    "datetime-of-a-list": (program(call("datetime", "date", pickle.EMPTY_LIST)), "takes int"),
    "structseq-without-fields": (program(call("os", "stat_result", text("no"))), "tuple of fields"),
    "deque-with-a-str-maxlen": (
        program(call("collections", "deque", pickle.EMPTY_LIST, text("9"))),
        "maximum length is not an int",
    ),
}


@pytest.mark.parametrize("body, complaint", list(CRAFTED.values()), ids=list(CRAFTED))
def test_crafted_pickles_are_refused(body: bytes, complaint: str) -> None:
    refused(body, complaint)


# -- the limits are exact, and shared references count in full ---------------------------------------------------


def test_depth_is_allowed_up_to_the_limit_and_not_beyond() -> None:
    depth = _literal.MAX_DEPTH
    assert decode(b"r" + nested(b"[", b"]", depth)) == _nested_list(depth)
    refused(b"r" + nested(b"[", b"]", depth + 1), "MAX_DEPTH")
    assert decode(b"p" + pickle.dumps(_nested_list(depth), 4)) == _nested_list(depth)
    refused(b"p" + pickle.dumps(_nested_list(depth + 1), 4), "MAX_DEPTH")


def _nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nodes_are_counted_with_shared_references_in_full() -> None:
    """A list of 999 references to a 1000-node tuple, plus 999 empty tuples, is 1,000,000 nodes: the limit."""
    inner = tuple(() for _ in range(999))  # 1000 nodes, 999 of them one shared ()
    exactly = [inner] * 999 + [()] * 999
    body = b"p" + pickle.dumps(exactly, 4)
    assert len(body) < 10_000  # a small message: the limit is MAX_NODES itself
    assert decode(body) == exactly
    refused(b"p" + pickle.dumps([*exactly, ()], 4), "MAX_NODES")


@pytest.mark.parametrize(
    "number",
    [lambda i: i, lambda i: i * 0.5, lambda i: [None, True, 1 - 2**31, 2**31 - 1][i % 4]],
    ids=["ints", "floats", "mixed"],
)
def test_lists_of_numbers_count_one_node_each(number) -> None:
    """Lists of small numbers take a faster path; it counts exactly as the rest (one node a number)."""
    inner = [number(i) for i in range(999)]  # 1000 nodes
    exactly = [inner] * 999 + [number(i) for i in range(999)]
    assert decode(b"p" + pickle.dumps(exactly, 4)) == exactly
    refused(b"p" + pickle.dumps([*exactly, 0], 4), "MAX_NODES")
    wide = [2**31] * 20 + [0] * 20  # an int of 32 bits counts two nodes: 1 + bits // 32
    assert _unpickle._Machine(pickle.dumps(wide, 4), {}).tally(wide)[1] == 60


def test_doubling_sharing_is_allowed_until_the_count_passes_the_limit() -> None:
    levels = int(math.log2(MAX_NODES + 1)) - 1  # 2**(levels+1) - 1 nodes, just below the limit
    assert decode(b"p" + pickle.dumps(doubling_tuple(levels), 4)) == doubling_tuple(levels)
    refused(b"p" + pickle.dumps(doubling_tuple(levels + 1), 4), "MAX_NODES")


def test_a_large_value_without_sharing_is_never_refused_for_its_size() -> None:
    """The node budget grows with the message (NODES_PER_BYTE), so only sharing can exceed it."""
    value = [i & 0xFF for i in range(3 * MAX_NODES // 2)]
    assert decode(b"p" + pickle.dumps(value, 4)) == value


def test_the_largest_int_a_child_writes_as_a_literal_is_read() -> None:
    number = 10**_wire.MAX_INT_DIGITS - 1  # the child's _BIG bound, just below it
    assert decode(b"r" + str(number).encode()) == number
    assert decode(b"r" + str(-number).encode()) == -number
    assert decode(b"p" + pickle.dumps(10**4300 - 1, 4)) == 10**4300 - 1
    big = -(1 << (8 * _unpickle.MAX_PICKLED_INT_BYTES - 1))  # the longest a pickle may carry, in binary
    assert decode(b"p" + pickle.dumps([big, big + 1], 4)) == [big, big + 1]


# -- literals ---------------------------------------------------------------------------------------------------


def _child_functions() -> dict[str, Any]:
    """The child's own ``_plain`` and ``dump`` from stage 1, so the tests read what children really send."""
    tree = ast.parse((_stage._bootstrap_dir() / "stage1.py").read_text())
    wanted = {"_pickle", "_BIG", "pickler", "_plain", "dump"}
    nodes = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in wanted)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in wanted for t in node.targets))
    ]
    assert {getattr(n, "name", None) or n.targets[0].id for n in nodes} == wanted  # type: ignore[attr-defined]
    namespace: dict[str, Any] = dict(vars(_wire))  # the names stage 1 has from the wire (LITERAL_MAX, literal)
    exec(compile(ast.Module(body=nodes, type_ignores=[]), "stage1.py", "exec"), namespace)
    return namespace


CHILD = _child_functions()

plain_atoms = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**4000) + 1, max_value=10**4000 - 1)
    | st.floats()
    | st.text()
    | st.binary()
)
plain_keys = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
plain_values = st.recursive(
    plain_atoms,
    lambda children: (
        st.lists(children, max_size=6)
        | st.tuples(children, children)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(plain_keys | st.tuples(plain_keys, plain_keys), children, max_size=6)
    ),
    max_leaves=40,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down, with NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    return a == b


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_values)
def test_whatever_a_child_dumps_decodes_to_the_same_value(value) -> None:
    body = CHILD["dump"](value)
    assert body[:1] in (b"r", b"p")
    assert same(decode(body), value)


@given(plain_values.filter(lambda v: CHILD["_plain"](v, [10000])))
def test_the_literal_parser_agrees_with_ast(value) -> None:
    text_ = repr(value)
    assert same(_literal.loads(text_), ast.literal_eval(text_))


@st.composite
def mangled_literals(draw) -> str:
    """A child's literal with a few characters inserted, deleted or replaced by syntax and escape characters."""
    chars = list(repr(draw(plain_values)))
    escapes = ["\\x", "\\u00", "\\U0011", "\\N{", "é", "\x00"]
    alphabet = st.sampled_from([*"()[]{},:'\"\\bNTFex.+-_0123456789 \n\t", *escapes])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(chars)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        if action == "insert" or not chars:
            chars.insert(where, draw(alphabet))
        elif action == "delete":
            del chars[min(where, len(chars) - 1)]
        else:
            chars[min(where, len(chars) - 1)] = draw(alphabet)
    return "".join(chars)


@settings(max_examples=100, deadline=None)
@given(mangled_literals())
def test_a_mangled_literal_is_read_as_python_reads_it_or_refused(source: str) -> None:
    try:
        value = _literal.loads(source)
    except UnsafeMessage as exc:
        assert "malformed literal" in str(exc)
        return
    assert same(value, ast.literal_eval(source))  # never a value Python would not read, nor a different one


@given(st.text(max_size=40))
def test_any_text_is_a_value_or_refused(source: str) -> None:
    try:
        value = decode(b"r" + source.encode("utf-8", "surrogatepass"))
    except UnsafeMessage:
        return
    assert same(value, ast.literal_eval(source))


@pytest.mark.parametrize(
    "source",
    ["{1, 2}", "1 + 2j", "-(1)", "f'{x}'", "u'x'", "r'x'", "'a' 'b'", "x", "()()", "[*a]", "{**a}", "1 if 1 else 2"],
)
def test_only_plain_values_are_literals(source: str) -> None:
    refused(b"r" + source.encode(), "malformed literal")


@pytest.mark.parametrize(
    "source, complaint",
    [
        (r"'\U00110000'", "UnicodeDecodeError"),
        ("{" + ", ".join(f"{i}: 0" for i in range(17)) + ", [1]: 2}", "unhashable"),
        ("{([1],): 2}", "unhashable"),
        ("[" + "1" * 4301 + "]", "MAX_INT_DIGITS"),
    ],
    ids=["escape-past-unicode", "unhashable-key-among-many", "unhashable-key", "long-int"],
)
def test_literals_that_python_would_refuse_are_malformed(source: str, complaint: str) -> None:
    message = refused(b"r" + source.encode(), complaint)
    assert message.startswith("a child sent a malformed literal")


def test_refusals_quote_little_of_what_the_child_sent() -> None:
    """An error message is logged and printed: it must not carry a megabyte of the child's text."""
    message = refused(b"r[1 '" + b"x" * 500_000 + b"']", "unexpected")
    assert len(message) < 300
    message = refused(program(glob("x" * 100_000, "y")), "MAX_NAME_CHARS")
    assert len(message) < 300


def test_literal_escapes_read_as_python_reads_them() -> None:
    for value in ["\x00\t\n\r\\'\"", "\u00e9\u20ac\U0001f600", "\ud800", "é" * 3, "'", '"', "'\""]:
        assert decode(b"r" + repr(value).encode()) == value
    for value in [bytes(range(256)), b"'", b'"', b"'\""]:
        assert decode(b"r" + repr(value).encode()) == value


# -- pickles: allow-listed types, registered classes, shared and random structures -----------------------------------

# Every allow-listed type, built the same on every Python from 3.9 to 3.13 (also run by those Pythons below).
SAMPLES_SOURCE = """
import collections, datetime, decimal, fractions, grp, ipaddress, os, pathlib, platform, pwd, resource
import subprocess, time, uuid
utc = datetime.timezone.utc
samples = [
    1 + 2j, complex(0, -1.5),
    bytearray(b"ab"), bytearray(),
    frozenset({3, "x", (1, 2)}), frozenset(),
    {1, 2, "x"}, set(),
    range(3), range(1, 10, 3), range(-5, 5**40),
    slice(1, None, 2), slice(None), slice("a", ["b"], 3),
    collections.OrderedDict(a=1, b=[2, 3]), collections.OrderedDict(),
    collections.deque([1, 2]), collections.deque([1], maxlen=3), collections.deque(),
    datetime.date(2026, 11, 26),
    datetime.datetime(2026, 11, 26, 12, 0, 0, 5, tzinfo=utc), datetime.datetime(2020, 1, 1, fold=1),
    datetime.time(1, 2, 3, 4, fold=1), datetime.time(1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=-3))),
    datetime.timedelta(days=-2, seconds=3, microseconds=4),
    datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST"), utc,
    decimal.Decimal("1.5"), decimal.Decimal("-1E+30"), decimal.Decimal("Infinity"), decimal.Decimal(1.1),
    decimal.Decimal("-0"), decimal.Decimal("1E-4300"),
    fractions.Fraction(3, 4), fractions.Fraction(-7), fractions.Fraction(10**4000, 3),
    uuid.UUID(int=5), uuid.UUID(int=2**128 - 1, is_safe=uuid.SafeUUID.safe),
    pathlib.PurePosixPath("/a/b"), pathlib.PurePosixPath(), pathlib.PosixPath("rel/x"),
    ipaddress.IPv4Address("1.2.3.4"), ipaddress.IPv6Address("::1"),
    ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv6Network("2001:db8::/32"),
    os.uname_result(("Linux", "host", "6.1", "#1", "x86_64")),
    os.stat_result(range(10)),
    os.statvfs_result(range(10)),
    os.times_result((1.0, 2.0, 3.0, 4.0, 5.0)),
    os.terminal_size((80, 24)),
    time.struct_time((2020, 1, 2, 3, 4, 5, 6, 7, 0)),
    platform.uname_result("Linux", "host", "6.1", "#1", "x86_64"),
    pwd.struct_passwd(("root", "x", 0, 0, "root", "/root", "/bin/sh")),
    grp.struct_group(("wheel", "x", 10, ["root", "admin"])),
    resource.struct_rusage(tuple(range(16))),
    subprocess.CompletedProcess(["ls", "-l"], 0, b"out", b"err"), subprocess.CompletedProcess("true", 1),
    float("inf"), float("-inf"), 2**100, -(2**64), b"\\x00" * 300, "\\ud800",
    {"nested": [frozenset({1}), {2}, collections.deque([3]), (decimal.Decimal(4),)]},
]
"""


def _samples() -> list[Any]:
    namespace: dict[str, Any] = {}
    exec(SAMPLES_SOURCE, namespace)
    return namespace["samples"]


SAMPLES = _samples()


def equal(decoded: Any, expected: Any) -> bool:
    """Equality for the samples, where a type has none (CompletedProcess) or NaN-like values (Decimal NaN)."""
    if type(decoded) is not type(expected):
        return False
    if isinstance(expected, subprocess.CompletedProcess):
        return vars(decoded) == vars(expected)
    return decoded == expected


def test_the_samples_cover_every_allowed_type() -> None:
    covered: set[tuple[str, str]] = set()

    def walk(value: Any) -> None:
        cls = type(value)
        covered.add((cls.__module__, cls.__qualname__))
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple, set, frozenset, collections.deque)):
            for item in value:
                walk(item)

    for sample in SAMPLES:
        walk(sample)
    covered |= {(_unpickle.ALIASES.get(key, key)) for key in covered}
    # posix and os name the same structured results; pickles use either module name
    missing = {
        key
        for key in _unpickle.ALLOWED
        if key not in covered and (("os" if key[0] == "posix" else "posix"), key[1]) not in covered
    }
    assert not missing


def _round_trips() -> list[tuple[Any, int]]:
    """Every sample at protocols 2 to 5, but protocol 2's bytes (written through ``_codecs.encode``, which
    children never use: they pickle at protocol 4) are not asked of the decoder."""
    cases = []
    for value in SAMPLES:
        for protocol in (2, 3, 4, 5):
            if protocol < 3 and b"_codecs" in pickle.dumps(value, protocol, fix_imports=False):
                continue
            cases.append((value, protocol))
    return cases


@pytest.mark.parametrize(("value", "protocol"), _round_trips(), ids=lambda v: getattr(type(v), "__qualname__", v))
def test_every_allowed_type_round_trips(value: Any, protocol: int) -> None:
    data = pickle.dumps(value, protocol, fix_imports=False)
    assert equal(_codec.loads_untrusted(data), value)


def _python(minor: int) -> str | None:
    """A runnable Python 3.<minor>: on the PATH, or installed by pyenv (whose shims need a chosen version)."""
    root = pathlib.Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
    candidates = [shutil.which(f"python3.{minor}"), *sorted(map(str, root.glob(f"versions/3.{minor}.*/bin/python3")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
        if probe.returncode == 0 and probe.stdout.strip() == f"(3, {minor})".encode():
            return candidate
    return None


@pytest.mark.parametrize("minor", [m for m in range(9, 14) if (3, m) != sys.version_info[:2]], ids="3.{}".format)
def test_every_allowed_type_pickled_by_each_child_python_round_trips(minor: int) -> None:
    """What Python 3.9 to 3.13 really write (Fraction and IPv6Address changed, pathlib moved in 3.13)."""
    python = _python(minor)
    if python is None:
        pytest.skip(f"no Python 3.{minor} on this machine")
    script = SAMPLES_SOURCE + "import pickle\nimport sys\npickles = [pickle.dumps(s, 4) for s in samples]\n"
    script += "sys.stdout.buffer.write(pickle.dumps(pickles))\n"
    done = subprocess.run([python, "-c", script], capture_output=True, timeout=60, check=True)
    for data, expected in zip(pickle.loads(done.stdout), SAMPLES, strict=True):
        assert equal(_codec.loads_untrusted(data), expected), (python, expected)


@dataclasses.dataclass
class Point:
    x: int
    y: Any = None


@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str


class Pair(collections.namedtuple("Pair", "left right")):
    pass


class Colour(enum.Enum):
    RED = 1
    BLUE = "blue"


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b

    def __eq__(self, other: object) -> bool:
        return type(other) is Slotted and (self.a, self.b) == (other.a, other.b)

    __hash__ = None  # type: ignore[assignment]


class WithState:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __getstate__(self) -> Any:
        return {"v": self.value}

    def __setstate__(self, state: Any) -> None:
        self.value = state["v"]

    def __eq__(self, other: object) -> bool:
        return type(other) is WithState and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


class Keyword:
    def __new__(cls, *, size: int) -> Keyword:
        self = super().__new__(cls)
        self.size = size
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (), {"size": self.size}

    def __eq__(self, other: object) -> bool:
        return type(other) is Keyword and self.size == other.size

    __hash__ = None  # type: ignore[assignment]


class Bag(dict):
    pass


class Stack(list):
    pass


REGISTERED = [Point, Frozen, Pair, Colour, Slotted, WithState, Keyword, Bag, Stack, Node]


@pytest.fixture
def registered(monkeypatch):
    for cls in REGISTERED:
        monkeypatch.setitem(_codec._registered, (cls.__module__, cls.__qualname__), cls)


@pytest.mark.parametrize(
    "value",
    [
        Point(1, [2, 3]),
        Frozen("x"),
        Pair(1, (2, 3)),
        Colour.RED,
        Colour.BLUE,
        Slotted(1, {"k": 2}),
        WithState([1, 2]),
        Keyword(size=3),
        Bag(a=1, b=[2]),
        Stack([1, 2, 3]),
        [Point(1), Point(2, Point(3))],
        {"classes": Point, "colour": Colour.BLUE},
    ],
    ids=lambda v: type(v).__name__,
)
def test_registered_classes_are_built_as_pickle_builds_them(registered, value: Any) -> None:
    decoded = _codec.loads_untrusted(pickle.dumps(value, 4))
    assert decoded == value and type(decoded) is type(value)


def test_a_registered_class_takes_its_limits_from_its_arguments(registered) -> None:
    refused(b"p" + pickle.dumps(Point(doubling_tuple(40)), 4), "MAX_NODES")
    refused(b"p" + pickle.dumps(Stack([doubling_list(40)]), 4), "MAX_NODES")
    deep = program(glob(__name__, "Point"), pickle.EMPTY_TUPLE, pickle.TUPLE1 * DEEP, pickle.TUPLE1, pickle.REDUCE)
    refused(deep, "MAX_DEPTH")


def test_an_unregistered_class_is_refused_and_its_code_never_runs() -> None:
    refused(b"p" + pickle.dumps(Point(1), 4), "fanout.register_type")


@st.composite
def shared_structures(draw) -> tuple[Any, int, int]:
    """A value whose parts refer to earlier parts (so the pickle reuses them from its memo), its nodes and depth.

    Returns the value with its node count and depth as the decoder's rules define them: an atom (here a small
    int or a short str) is one node at depth 0, a container one node plus its items, one level above the deepest.
    """
    atoms = draw(st.lists(st.integers(0, 1000) | st.text(max_size=10), min_size=1, max_size=3))
    pool: list[tuple[Any, int, int]] = [(atom, 1, 0) for atom in atoms]
    for _ in range(draw(st.integers(8, 40))):
        if draw(st.booleans()):  # any earlier parts
            picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=0, max_size=3))
        else:  # the latest part, two or three times over: the value doubles or triples
            picks = [len(pool) - 1] * draw(st.integers(2, 3))
        items = [pool[i] for i in picks]
        nodes = 1 + sum(item[1] for item in items)
        depth = 1 + max((item[2] for item in items), default=0)
        kind = draw(st.sampled_from(["tuple", "list", "dict"]))
        if kind == "tuple":
            value: Any = tuple(item[0] for item in items)
        elif kind == "list":
            value = [item[0] for item in items]
        else:
            value = {str(i): item[0] for i, item in enumerate(items)}
            nodes += len(items)  # the str keys
        pool.append((value, nodes, depth))
    value, nodes, depth = pool[-1]
    for _ in range(draw(st.integers(0, 110))):  # and perhaps deep, around MAX_DEPTH
        value, nodes, depth = [value], nodes + 1, depth + 1
    return value, nodes, depth


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_structures())
def test_shared_structures_decode_equal_or_are_refused_exactly_at_the_limits(structure) -> None:
    value, nodes, depth = structure
    data = pickle.dumps(value, 4)
    small = 20_000  # the same rule with a smaller MAX_NODES, so values near the limit are quick to decode and compare
    budget = max(small, _unpickle.NODES_PER_BYTE * len(data))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_unpickle, "MAX_NODES", small)
        event("over the node limit" if nodes > budget else "too deep" if depth > _literal.MAX_DEPTH else "within")
        if nodes > budget or depth > _literal.MAX_DEPTH:
            with pytest.raises(UnsafeMessage, match=r"MAX_NODES|MAX_DEPTH"):
                _codec.loads_untrusted(data)
        else:
            assert _codec.loads_untrusted(data) == value  # comparing costs at most `nodes` steps: within limits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.lists(st.text(max_size=64) | st.binary(max_size=64) | st.integers(), max_size=40),
    st.integers(1, 60_000),
)
def test_huge_repetitions_decode_equal_or_are_refused(parts: list[Any], copies: int) -> None:
    """The same few objects repeated up to 100,000 times: within the budget they decode, past it they are refused."""
    value = parts * copies
    data = pickle.dumps(value, 4)
    try:
        decoded = _codec.loads_untrusted(data)
    except UnsafeMessage as exc:
        assert "MAX_NODES" in str(exc)
        return
    assert decoded == value


_OPCODES = [
    pickle.NONE,
    pickle.NEWTRUE,
    pickle.BININT1 + b"\x07",
    pickle.BININT + struct.pack("<i", -3),
    integer(2**70),
    pickle.BINFLOAT + struct.pack(">d", 0.5),
    text("a"),
    text("b"),
    pickle.SHORT_BINBYTES + b"\x01z",
    pickle.EMPTY_LIST,
    pickle.EMPTY_DICT,
    pickle.EMPTY_SET,
    pickle.EMPTY_TUPLE,
    pickle.MARK,
    pickle.MARK,
    pickle.TUPLE,
    pickle.TUPLE1,
    pickle.TUPLE2,
    pickle.TUPLE3,
    pickle.APPEND,
    pickle.APPENDS,
    pickle.SETITEM,
    pickle.SETITEMS,
    pickle.ADDITEMS,
    pickle.FROZENSET,
    pickle.MEMOIZE,
    pickle.MEMOIZE,
    get(0),
    get(1),
    get(2),
    get(3),
    pickle.BINPUT + b"\x00",
    pickle.BINPUT + b"\x01",
    pickle.REDUCE,
    pickle.NEWOBJ,
    pickle.BUILD,
    glob("builtins", "set"),
    glob("builtins", "frozenset"),
    glob("builtins", "complex"),
    glob("builtins", "slice"),
    glob("collections", "OrderedDict"),
    glob("collections", "deque"),
    glob("datetime", "timedelta"),
    glob("uuid", "UUID"),
    glob("builtins", "bytearray"),
    pickle.POP,
    pickle.DUP,
    pickle.STOP,
]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_OPCODES), max_size=60))
def test_random_opcode_streams_are_values_or_refused(ops: list[bytes]) -> None:
    """Whatever a stream of opcodes builds: a value the C unpickler also builds from it, or UnsafeMessage."""
    data = pickle.PROTO + b"\x04" + b"".join(ops) + pickle.STOP
    try:
        value = _codec.loads_untrusted(data)
    except UnsafeMessage:
        return
    expected = pickle.loads(data)
    assert type(value) is type(expected)
    assert repr(value) == repr(expected) or value == expected


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_values_or_refused(data: bytes) -> None:
    for body in (b"p" + data, b"p" + pickle.PROTO + b"\x04" + data, b"r" + data):
        with contextlib.suppress(UnsafeMessage):
            decode(body)


# -- through a real master and a local child whose stage 1 is an attacker -------------------------------------------

RESULTS = """
hello()
for rid in calls():
    send(encode_frame(RESULT, rid, PAYLOADS.pop(0)))
"""


def test_a_local_hostile_result_fails_its_call_and_the_connection_lives_on(hostile_child) -> None:
    dag = program(pickle.MARK, doubling_ops(40), pickle.FROZENSET)
    deep_key = b"r{" + nested(b"(", b",)", DEEP) + b": 1}"
    context = hostile_child(f"PAYLOADS = [{dag!r}, {deep_key!r}, b'r42']\n" + RESULTS)
    with pytest.raises(UnsafeMessage, match="MAX_NODES"):
        context.call(abs, 1)
    with pytest.raises(UnsafeMessage, match="MAX_DEPTH"):
        context.call(abs, 1)
    assert context.call(abs, 1) == 42


def test_a_local_hostile_service_call_drops_the_connection(hostile_child) -> None:
    kwargs = pickle.EMPTY_DICT + text("key") + pickle.EMPTY_DICT + pickle.EMPTY_TUPLE + pickle.TUPLE1 * DEEP
    call_ = program(text("svc"), text("method"), kwargs, pickle.NONE, pickle.SETITEM, pickle.SETITEM, pickle.TUPLE3)
    context = hostile_child(f"hello()\nfor rid in calls():\n    send(encode_frame(SERVICE_CALL, 1, {call_!r}))\n")
    with pytest.raises(fanout.ConnectionLost, match="MAX_DEPTH"):
        context.call(abs, 1)


@pytest.mark.parametrize("kind", ["HELLO", "LOG"])
def test_a_local_hostile_literal_frame_drops_the_connection(hostile_child, kind: str) -> None:
    deep = b"r" + nested(b"[", b"]", DEEP)
    first = "hello()\n" if kind == "LOG" else ""
    attack = f"{first}send(encode_frame({kind}, 0, {deep!r}))\nfor rid in calls():\n    pass\n"
    with pytest.raises(fanout.ConnectionLost, match="MAX_DEPTH"):
        hostile_child(attack).call(abs, 1)


class Settings(collections.UserDict):
    """A registered mapping that is no dict: its items go in one by one, each key hashed."""


def test_a_registered_mapping_that_is_no_dict_is_held_to_the_hash_collision_limit() -> None:
    fanout.register_type(Settings)
    colliding = b"".join(integer(k * (2**61 - 1)) + pickle.NONE for k in range(1, 40))  # all hash to 0
    body = program(call(Settings.__module__, "Settings"), pickle.MARK, colliding, pickle.SETITEMS)
    refused(body, "MAX_SAME_HASH")
    fine = program(call(Settings.__module__, "Settings"), pickle.MARK, text("a"), integer(1), pickle.SETITEMS)
    assert decode(fine) == Settings(a=1)


def test_leading_zeros_are_refused_as_python_refuses_them() -> None:
    for source in (b"r01", b"r00", b"r007", b"r[01]"):
        refused(source, "malformed literal")
    assert decode(b"r0") == 0 and decode(b"r10") == 10


def test_control_characters_outside_strings_are_refused_as_python_refuses_them() -> None:
    for source in ("0\x1f", "\x1c0", "[1,\x1e2]", "(\x0b1,)"):
        refused(b"r" + source.encode(), "malformed literal")
    assert decode(b"r'a\x1fb'") == "a\x1fb"  # inside a string, Python keeps them, and so do we
