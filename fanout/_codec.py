"""Payload encodings, and decoding what children send so a compromised host cannot run code here, nor crash,
freeze or exhaust the master.

A payload is a tag byte and data (the tags and the literal limits are in
:mod:`fanout._wire`). Towards a child: ``m`` (marshal) for plain values, ``p``
(full pickle) for the rest; the parent already has a shell on the child. From
a child: ``r``, a Python literal read by
:mod:`fanout._literal`, which builds values and nothing else, or ``p``, a
pickle read by :mod:`fanout._unpickle`, which resolves only the classes it
allows or the user registered. Both check their limits (depth, nodes with
shared references counted in full, int sizes, hash collisions) before they
build or hash anything, so decoding, hashing and printing a child's value cost
time and memory linear in its size. Plain values are the common case, and keep
the child from importing pickle at all.
"""

from __future__ import annotations

import marshal
import pickle
import threading
from typing import Any

from fanout import _literal, _unpickle
from fanout._wire import LITERAL, LITERAL_MAX, MARSHAL, MARSHAL_BUDGET, PICKLE
from fanout.errors import UnsafeMessage

PICKLE_PROTOCOL = 4  # every child Python (3.9+) reads it
MARSHAL_VERSION = 4  # likewise

# The allow-list of standard-library value types (each with a check of its arguments), and aliases for names
# that differ between Python versions: see fanout._unpickle.
_SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(_unpickle.ALLOWED)
_ALIASES: dict[tuple[str, str], tuple[str, str]] = _unpickle.ALIASES

_registered: dict[tuple[str, str], type] = {}
_registered_lock = threading.Lock()


def register_type(cls: type) -> type:
    """Allow instances of ``cls`` in what children send back (usable as a class decorator).

    Register only classes whose construction from data is harmless: the class
    and whatever its ``__reduce__`` names must be safe to call with
    attacker-chosen arguments.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_type() takes a class, not {cls!r}")
    with _registered_lock:
        _registered[(cls.__module__, cls.__qualname__)] = cls
    return cls


_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_SEQUENCES = frozenset({tuple, list, set, frozenset})


def _plain(value: Any, budget: list[int]) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind not in _SEQUENCES and kind is not dict:
        return False
    budget[0] -= 1 + len(value)
    if budget[0] < 0:
        return False
    if kind in _SEQUENCES:  # explicit loops: measurably faster than all() over a generator here
        for item in value:  # noqa: SIM110
            if type(item) not in _SCALARS and not _plain(item, budget):
                return False
        return True
    for key, item in value.items():
        if (type(key) not in _SCALARS and not _plain(key, budget)) or (
            type(item) not in _SCALARS and not _plain(item, budget)
        ):
            return False
    return True


def is_plain(value: Any) -> bool:
    """Built only of builtin value types (exact types, not subclasses), and not too big to check."""
    try:
        return _plain(value, [MARSHAL_BUDGET])
    except RecursionError:
        return False


def dumps(value: Any) -> bytes:
    """A payload for a child: marshal when the value is plain, full pickle otherwise."""
    if is_plain(value):
        return MARSHAL + marshal.dumps(value, MARSHAL_VERSION)
    return PICKLE + pickle.dumps(value, protocol=PICKLE_PROTOCOL)


def _ok_bytes_head() -> bytes:
    """What dumps(("ok", data)) puts before ``data``'s length and bytes; checked here, at import."""
    head = dumps(("ok", None))[:-1] + b"s"  # None is marshal's one byte "N"; "s" is a bytes object
    probe = b"\x00\x01probe"
    if marshal.loads(head[1:] + len(probe).to_bytes(4, "little") + probe) != ("ok", probe):
        raise ImportError("marshal's layout of a tuple holding bytes is not the one fanout expects")
    return head


def ok_bytes_parts(data: bytes | memoryview) -> tuple[bytes, bytes | memoryview]:
    """dumps(("ok", data)) as two parts, ``data`` itself the second: a file chunk is never copied to encode."""
    return _OK_BYTES_HEAD + len(data).to_bytes(4, "little"), data


_OK_BYTES_HEAD = _ok_bytes_head()

_KEYWORDS = {b"None": None, b"True": True, b"False": False}

# CPython before 3.12 keeps the AST constructor's recursion depth in global state:
# two threads building ASTs at once can fail with "SystemError: AST constructor
# recursion depth mismatch". The module server and the stage builder parse sources
# on several threads, so fanout's own uses of ast take turns. (Children's literals
# no longer go through ast: fanout._literal reads them.)
AST_LOCK = threading.Lock()


def loads_literal(data: bytes) -> Any:
    """A child's ``r`` payload: a Python literal, parsed without evaluating anything, within the limits."""
    if data in _KEYWORDS:  # the commonest results, without the parser
        return _KEYWORDS[data]
    if 0 < len(data) < 20 and data.isdigit() and (data[0] != 0x30 or len(data) == 1):  # no "01": Python refuses it
        return int(data)
    if len(data) > LITERAL_MAX:
        raise UnsafeMessage(
            f"a child sent a literal of {len(data)} bytes, over the limit of {LITERAL_MAX} (LITERAL_MAX)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _literal.malformed(f"{type(exc).__name__}: {exc}") from None
    return _literal.loads(text)


def loads_from_child(body: bytes) -> Any:
    """Decode a child's payload: a literal, or a pickle through the allow-list."""
    tag, data = body[:1], body[1:]
    if tag == LITERAL:
        return loads_literal(data)
    if tag == PICKLE:
        return loads_untrusted(data)
    raise UnsafeMessage(f"a child sent a payload of unknown encoding {tag!r}")


def loads_untrusted(data: bytes) -> Any:
    """Unpickle a child's message with the allow-list, within the limits; :class:`UnsafeMessage` otherwise."""
    return _unpickle.loads(data, _registered)
