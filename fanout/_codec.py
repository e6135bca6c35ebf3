"""Decode what children send with an allow-list, so a compromised host cannot run code here.

Parent-to-child payloads use full pickling (the parent already has a shell on
the child). Child-to-master payloads go through :func:`loads_untrusted`, whose
unpickler resolves only the classes listed here or registered by the user:
plain values (numbers, strings, bytes, lists, tuples, dicts, sets) need no
class at all, and anything else that names a class or function is refused.
"""

from __future__ import annotations

import io
import pickle
import threading
from typing import Any

from fanout.errors import UnsafeMessage

PICKLE_PROTOCOL = 4  # every child Python (3.9+) reads it

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


def dumps(value: Any) -> bytes:
    """Pickle a value for a child (full pickling: children trust their parent)."""
    return pickle.dumps(value, protocol=PICKLE_PROTOCOL)


def loads_untrusted(data: bytes) -> Any:
    """Unpickle a child's message with the allow-list; :class:`UnsafeMessage` if it names anything else."""
    try:
        return _AllowListUnpickler(io.BytesIO(data)).load()
    except UnsafeMessage:
        raise
    except Exception as exc:  # a malformed pickle can raise almost anything
        raise UnsafeMessage(f"a child sent a malformed message: {type(exc).__name__}: {exc}") from None
