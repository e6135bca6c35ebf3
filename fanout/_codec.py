"""Payload encodings, and decoding what children send so a compromised host cannot run code here.

A payload is a tag byte and data. Towards a child: ``m`` (marshal) for plain
values, ``p`` (full pickle) for the rest; the parent already has a shell on
the child. From a child: ``r``, a Python literal read with
:func:`ast.literal_eval`, which builds values and nothing else, or ``p``, a
pickle read by an unpickler that resolves only the classes listed here or
registered by the user. Plain values are the common case, and keep the
child from importing pickle at all.
"""

from __future__ import annotations

import ast
import io
import marshal
import pickle
import threading
from typing import Any

from fanout.errors import UnsafeMessage

PICKLE_PROTOCOL = 4  # every child Python (3.9+) reads it
MARSHAL_VERSION = 4  # likewise
LITERAL_MAX = 1024 * 1024  # children send larger values as pickles; a bigger literal is refused
_PLAIN_BUDGET = 100_000  # elements checked before a payload is deemed too big to bother

# Value types from the standard library that are safe to construct from data.
_SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("builtins", "frozenset"),
        ("builtins", "set"),
        ("builtins", "range"),
        ("builtins", "slice"),
        ("collections", "OrderedDict"),
        ("collections", "deque"),
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("uuid", "UUID"),
        ("pathlib", "PurePosixPath"),
        ("pathlib", "PosixPath"),
        ("ipaddress", "IPv4Address"),
        ("ipaddress", "IPv6Address"),
        ("ipaddress", "IPv4Network"),
        ("ipaddress", "IPv6Network"),
        # Structured results of common stdlib calls (os.uname(), os.stat(), ...).
        ("posix", "uname_result"),
        ("os", "uname_result"),
        ("posix", "stat_result"),
        ("os", "stat_result"),
        ("posix", "statvfs_result"),
        ("os", "statvfs_result"),
        ("posix", "times_result"),
        ("os", "times_result"),
        ("os", "terminal_size"),
        ("time", "struct_time"),
        ("platform", "uname_result"),
        ("pwd", "struct_passwd"),
        ("grp", "struct_group"),
        ("resource", "struct_rusage"),
        ("subprocess", "CompletedProcess"),
    ]
)

# Where a newer child Python names a type differently from the master's Python.
_ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    ("pathlib._local", "PurePosixPath"): ("pathlib", "PurePosixPath"),  # Python 3.13
    ("pathlib._local", "PosixPath"): ("pathlib", "PosixPath"),
}

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


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        registered = _registered.get((module, name))
        if registered is not None:
            return registered
        module, name = _ALIASES.get((module, name), (module, name))
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeMessage(
            f"refused to load {module}.{name} from a child: it is not an allowed value type "
            "(if it is your own class, allow it with fanout.register_type)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeMessage("refused a persistent id in a child's message")


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
        return _plain(value, [_PLAIN_BUDGET])
    except RecursionError:
        return False


def dumps(value: Any) -> bytes:
    """A payload for a child: marshal when the value is plain, full pickle otherwise."""
    if is_plain(value):
        return b"m" + marshal.dumps(value, MARSHAL_VERSION)
    return b"p" + pickle.dumps(value, protocol=PICKLE_PROTOCOL)


_KEYWORDS = {b"None": None, b"True": True, b"False": False}

# CPython before 3.12 keeps the AST constructor's recursion depth in global state:
# two threads building ASTs at once can fail with "SystemError: AST constructor
# recursion depth mismatch". Results arrive on many threads (one per host), and
# the module server parses sources on others, so fanout's own parsing takes turns.
AST_LOCK = threading.Lock()


def loads_literal(data: bytes) -> Any:
    """A child's ``r`` payload: a Python literal, parsed without evaluating anything."""
    if data in _KEYWORDS:  # the commonest results, without the parser
        return _KEYWORDS[data]
    if 0 < len(data) < 20 and data.isdigit():
        return int(data)
    if len(data) > LITERAL_MAX:
        raise UnsafeMessage(f"a child sent a literal of {len(data)} bytes, over the limit of {LITERAL_MAX}")
    try:
        text = data.decode("utf-8")
        with AST_LOCK:
            return ast.literal_eval(text)
    except Exception as exc:  # bad syntax, too deep, too many digits, bad UTF-8
        raise UnsafeMessage(f"a child sent a malformed literal: {type(exc).__name__}: {exc}") from None


def loads_from_child(body: bytes) -> Any:
    """Decode a child's payload: a literal, or a pickle through the allow-list."""
    tag, data = body[:1], body[1:]
    if tag == b"r":
        return loads_literal(data)
    if tag == b"p":
        return loads_untrusted(data)
    raise UnsafeMessage(f"a child sent a payload of unknown encoding {tag!r}")


def loads_untrusted(data: bytes) -> Any:
    """Unpickle a child's message with the allow-list; :class:`UnsafeMessage` if it names anything else."""
    try:
        return _AllowListUnpickler(io.BytesIO(data)).load()
    except UnsafeMessage:
        raise
    except Exception as exc:  # a malformed pickle can raise almost anything
        raise UnsafeMessage(f"a child sent a malformed message: {type(exc).__name__}: {exc}") from None
