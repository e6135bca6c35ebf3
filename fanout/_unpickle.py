"""Reading a child's pickle within limits: a pure-Python pickle machine that builds values and nothing else.

Children pickle what a literal cannot spell with ``_pickle.dumps(value, 4)``. The
C unpickler cannot be bounded from outside: it hashes dict keys as deep as they
nest (a crash), shares references without counting them (a 600-byte value that
takes forever to hash or print), and calls allow-listed constructors with any
arguments (``bytearray(2**30)``). This machine runs the opcodes a protocol 2-5
pickler emits for acyclic data, and refuses the rest (DUP, POP, POP_MARK,
persistent ids, the extension registry, protocol 0-1 opcodes, out-of-band
buffers) with :class:`UnsafeMessage`.

Every value on the stack and in the memo carries its node count and depth, a
shared reference counting as a full copy of what it refers to, and both are
checked before a container or object is built, and before anything is hashed:

- depth at most ``MAX_DEPTH`` (100) containers;
- nodes at most ``MAX_NODES`` (1,000,000), or ``NODES_PER_BYTE`` (2) per byte of a
  larger message, so no value without shared references is ever refused. A str
  or bytes counts one node per ``CHARS_PER_NODE`` (16) characters, an int one per
  32 bits: printing, comparing or hashing a decoded value costs time linear in
  that count;
- the nodes of every dict key and set member hashed while decoding add up to at
  most the same budget, and at most ``MAX_SAME_HASH`` (16) keys of one container
  share a hash value (ints, floats and tuples hash predictably);
- ints at most ``MAX_PICKLED_INT_BYTES`` (128 KiB, ~315,000 digits) in binary, which is
  linear to read, hash and compare; ints written as text (Decimal, Fraction on
  Python 3.9 and 3.10) and ints a constructor divides or takes the gcd of
  (Fraction, range) at most ``MAX_INT_DIGITS`` (4300) decimal digits, since
  those are quadratic.

A container may change only while it is being built: once it is an element of
another value, or fetched from the memo, it is sealed, and a pickle that adds
to it afterwards (a cycle, or sharing before it was complete) is refused. So
values are acyclic and the counts exact.

Classes come from an allow-list of standard-library value types, each with a
check of its constructor's arguments so that nothing allocates or computes
beyond its input (``ALLOWED``), and from classes the user registered with
:func:`fanout.register_type`, built as pickle builds them (REDUCE calls the
class, NEWOBJ its ``__new__``, BUILD ``__setstate__`` or the instance dict and
slots) from arguments already decoded within the limits.
"""

from __future__ import annotations

import importlib
import pickle
import re
import struct
import sys
from collections.abc import Callable, Mapping
from typing import Any

from fanout._literal import MAX_DEPTH, MAX_INT_DIGITS, check_hashes
from fanout.errors import UnsafeMessage

MAX_NODES = 1_000_000  # nodes in a decoded value, shared references counted in full (or NODES_PER_BYTE a byte)
NODES_PER_BYTE = 2  # a message of N bytes may hold up to 2N nodes: values without sharing never reach it
CHARS_PER_NODE = 16  # a str or bytes of N characters counts as 1 + N // 16 nodes
MAX_PATH_PARTS = 1024  # arguments of a pathlib path
MAX_PATH_CHARS = 65536  # characters of a pathlib path, all parts together
MAX_ADDRESS_CHARS = 200  # characters of an ipaddress address or network written as text
MAX_NAME_CHARS = 1000  # a class's module and qualified name together, as a pickle names it
MAX_DECIMAL_EXPONENT = 4300  # the exponent a Decimal is written with; its digits are limited by MAX_INT_DIGITS

# A pickled int travels in binary, so building, hashing and comparing it are linear: it may be far
# longer than a literal's (10**5000 is a fine result). Python itself refuses to print one past 4300
# digits in decimal; what prints results handles that.
MAX_PICKLED_INT_BYTES = 128 * 1024
_INT_LIMIT = 10**MAX_INT_DIGITS  # ints of at most MAX_INT_DIGITS digits are below it

# What a stack or memo entry that is not a plain atom holds: [value, nodes, depth, state, spec, hash counts].
# Atoms (None, bool, int, float, str, bytes) sit on the stack as themselves: they are never lists.
_FIXED = 0  # complete when made (a tuple, a datetime) or once its state is set: no opcode changes it
_CLASS = 1  # a class resolved by STACK_GLOBAL or GLOBAL (spec: its _Allowed, or None when registered)
_SEALED = 2  # a container used as an element or fetched from the memo: nothing may change it any more
_LIST = 3  # the open states, from here on: APPENDS may add to it
_DICT = 4  # SETITEMS may add to it
_SET = 5  # ADDITEMS may add to it
_OBJECT = 6  # built by REDUCE or NEWOBJ: what its spec allows (a registered class: as pickle does)

_OPCODE_NAMES = {
    code[0]: name
    for name, code in vars(pickle).items()
    if name.isupper() and isinstance(code, bytes) and len(code) == 1
}
_SIZED = {  # opcodes followed by a length, then that many bytes: (the length's struct format, its width)
    0x58: ("<I", 4),  # BINUNICODE
    0x8D: ("<Q", 8),  # BINUNICODE8
    0x43: ("<B", 1),  # SHORT_BINBYTES
    0x42: ("<I", 4),  # BINBYTES
    0x8E: ("<Q", 8),  # BINBYTES8
    0x96: ("<Q", 8),  # BYTEARRAY8
}
# A run of opcodes that each push one small number (BININT1, BININT2, BININT, BINFLOAT) or None, True,
# False: no memo, no container, no class, and each value one node at depth 0. The C unpickler reads such
# a run exactly as the machine would, and fifty times faster.
_NUMBERS = re.compile(rb"(?:K.|M..|J....|G.{8}|N|\x88|\x89)+", re.S)


_UNIT_KINDS = frozenset({float, int, bool})  # with ints below _SMALL, one node each (CHARS_PER_NODE aside)
_SMALL = 1 << 31


def _numbers_at_c_speed(run: bytes) -> tuple[Any, ...]:
    return pickle.loads(b"\x80\x04(" + run + b"t.")


_REFUSED = {
    **dict.fromkeys(b"012", "only a self-referencing value needs it, and fanout refuses cycles"),
    **dict.fromkeys(b"PQ", "persistent ids name objects outside the message"),
    **dict.fromkeys(b"\x82\x83\x84", "the extension registry names objects outside the message"),
    **dict.fromkeys(b"\x97\x98", "out-of-band buffers are not sent by children"),
    **dict.fromkeys(b"ioILFSTUVdlgp", "it belongs to pickle protocols 0 and 1; children use protocol 4"),
}


def _refuse(reason: str) -> UnsafeMessage:
    return UnsafeMessage(f"a child sent a pickle that {reason}")


def _truncated() -> UnsafeMessage:
    return UnsafeMessage("a child sent a malformed message: the pickle is truncated")


class _Allowed:
    """How one allow-listed class is built: each builder checks its arguments, then constructs."""

    __slots__ = ("_cls", "build", "hashes_args", "items", "module", "name", "newobj", "reduce")

    def __init__(
        self,
        module: str,
        name: str,
        reduce: Callable[[type, tuple[Any, ...]], Any] | None = None,
        newobj: Callable[[type, tuple[Any, ...]], Any] | None = None,
        build: Callable[[Any, Any], None] | None = None,
        items: str = "",
        hashes_args: bool = False,
    ) -> None:
        self.module, self.name = module, name
        self.reduce, self.newobj, self.build = reduce, newobj, build  # build: the object is incomplete until BUILD
        self.items = items  # "list": APPENDS may follow REDUCE (deque); "dict": SETITEMS may (OrderedDict)
        self.hashes_args = hashes_args  # its constructor hashes its arguments (set, frozenset)
        self._cls: type | None = None

    def cls(self) -> type:
        if self._cls is None:
            self._cls = getattr(importlib.import_module(self.module), self.name)
        return self._cls


def _bad(cls: type, reason: str) -> UnsafeMessage:
    return UnsafeMessage(f"a child sent a malformed {cls.__module__}.{cls.__qualname__}: {reason}")


def _arity(cls: type, args: tuple[Any, ...], most: int, *types: type) -> None:
    if len(args) > most:
        raise _bad(cls, f"{len(args)} arguments, at most {most} allowed")
    for arg in args:
        if type(arg) not in types:
            allowed = ", ".join(kind.__name__ for kind in types) or "none"
            raise _bad(cls, f"an argument of type {type(arg).__name__}, where it takes {allowed}")


def _call(cls: type, args: tuple[Any, ...]) -> Any:
    return cls(*args)


def _new(cls: type, args: tuple[Any, ...]) -> Any:
    return cls.__new__(cls, *args)


def _numbers(most: int, *types: type) -> Callable[[type, tuple[Any, ...]], Any]:
    def check(cls: type, args: tuple[Any, ...]) -> Any:
        _arity(cls, args, most, *types)
        return cls(*args)

    return check


def _small_ints(cls: type, args: tuple[Any, ...]) -> None:
    """Ints a constructor divides or takes the gcd of, in quadratic time: at most MAX_INT_DIGITS digits."""
    for arg in args:
        if type(arg) is int and not -_INT_LIMIT < arg < _INT_LIMIT:
            raise _bad(cls, f"an int of more than {MAX_INT_DIGITS} digits, over the limit (MAX_INT_DIGITS)")


def _range(cls: type, args: tuple[Any, ...]) -> Any:
    _arity(cls, args, 3, int)
    _small_ints(cls, args)  # its length is (stop - start) // step
    return cls(*args)


def _bytearray(cls: type, args: tuple[Any, ...]) -> Any:
    _arity(cls, args, 1, bytes)  # never a size or an iterable: those allocate beyond the message
    return cls(*args)


def _set(cls: type, args: tuple[Any, ...]) -> Any:
    _arity(cls, args, 1, list, tuple)  # members already decoded; never a range or another lazy iterable
    if args:
        check_hashes(args[0], {}, cls.__name__)
    return cls(*args)


def _slice(cls: type, args: tuple[Any, ...]) -> Any:
    if len(args) > 3:
        raise _bad(cls, f"{len(args)} arguments, at most 3 allowed")
    return cls(*args)


def _ordered_dict(cls: type, args: tuple[Any, ...]) -> Any:
    _arity(cls, args, 0)  # its items follow with SETITEMS
    return cls()


def _deque(cls: type, args: tuple[Any, ...]) -> Any:
    if len(args) > 2 or (args and type(args[0]) not in (list, tuple)):
        raise _bad(cls, "wants an already decoded list and a maximum length")
    if len(args) == 2 and args[1] is not None and type(args[1]) is not int:
        raise _bad(cls, "its maximum length is not an int")
    return cls(*args)


def _datetime_types() -> tuple[type, ...]:
    import datetime

    return (int, bytes, type(None), datetime.timezone)


def _datetime(cls: type, args: tuple[Any, ...]) -> Any:
    _arity(cls, args, 8, *_datetime_types())  # packed state with its time zone, or the fields; the class checks them
    return cls(*args)


def _timezone(cls: type, args: tuple[Any, ...]) -> Any:
    import datetime

    named = len(args) == 2 and type(args[1]) is str
    if not (len(args) == 1 or named) or type(args[0]) is not datetime.timedelta:
        raise _bad(cls, "wants a timedelta and perhaps a name")
    return cls(*args)


_DECIMAL = re.compile(r"[+-]?(?:(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?|Infinity|Inf|s?NaN(\d*))", re.I | re.A)
_FRACTION = re.compile(r"[+-]?(\d+)(?:/(\d+))?", re.A)


def _decimal(cls: type, args: tuple[Any, ...]) -> Any:
    _arity(cls, args, 1, str)  # as a Decimal pickles itself; converting an int would take quadratic time
    if args:
        if len(args[0]) > MAX_INT_DIGITS + 16:  # digits, a sign, a point, an exponent
            raise _bad(cls, f"{len(args[0])} characters, over the limit of {MAX_INT_DIGITS} digits (MAX_INT_DIGITS)")
        match = _DECIMAL.fullmatch(args[0])
        if not match:
            raise _bad(cls, "not a number as str() writes a Decimal")
        whole, fraction, exponent, payload = match.groups()
        digits = len(whole or "") + len(fraction or "") + len(payload or "")
        if digits > MAX_INT_DIGITS:
            raise _bad(cls, f"{digits} digits, over the limit of {MAX_INT_DIGITS} (MAX_INT_DIGITS)")
        if exponent and (len(exponent) > 8 or abs(int(exponent)) > MAX_DECIMAL_EXPONENT):
            shown = exponent if len(exponent) <= 12 else f"of {len(exponent)} digits"
            raise _bad(cls, f"exponent {shown}, over the limit of {MAX_DECIMAL_EXPONENT} (MAX_DECIMAL_EXPONENT)")
    return cls(*args)


def _fraction(cls: type, args: tuple[Any, ...]) -> Any:
    if len(args) == 1 and type(args[0]) is str:  # Python 3.9 and 3.10 write 'n/d'
        match = _FRACTION.fullmatch(args[0]) if len(args[0]) <= 2 * MAX_INT_DIGITS + 2 else None
        if not match or any(len(part or "") > MAX_INT_DIGITS for part in match.groups()):
            raise _bad(cls, f"wants 'numerator/denominator' of at most {MAX_INT_DIGITS} digits each (MAX_INT_DIGITS)")
    else:  # later ones, the two ints; never a float, a Decimal or '1e20000000'
        _arity(cls, args, 2, int)
        _small_ints(cls, args)  # their gcd is quadratic
    return cls(*args)


def _uuid_state(obj: Any, state: Any) -> None:
    if type(state) is not dict or type(state.get("int")) is not int or not 0 <= state["int"] < 1 << 128:
        raise _bad(type(obj), "its state is not {'int': a 128-bit int}")
    if not set(state) <= {"int", "is_safe"} or state.get("is_safe") not in (None, 0, -1):
        raise _bad(type(obj), "its state holds more than the int and whether it was made safely")
    obj.__setstate__(state)


def _path(cls: type, args: tuple[Any, ...]) -> Any:
    if len(args) > MAX_PATH_PARTS:
        raise _bad(cls, f"{len(args)} parts, over the limit of {MAX_PATH_PARTS} (MAX_PATH_PARTS)")
    _arity(cls, args, MAX_PATH_PARTS, str)
    if sum(map(len, args)) > MAX_PATH_CHARS:
        raise _bad(cls, f"over the limit of {MAX_PATH_CHARS} characters (MAX_PATH_CHARS)")
    return cls(*args)


def _address_part(cls: type, value: Any) -> None:
    if type(value) is str and len(value) > MAX_ADDRESS_CHARS:
        raise _bad(cls, f"over the limit of {MAX_ADDRESS_CHARS} characters (MAX_ADDRESS_CHARS)")
    if type(value) not in (int, str, bytes):
        raise _bad(cls, f"an argument of type {type(value).__name__}")


def _address(cls: type, args: tuple[Any, ...]) -> Any:
    if len(args) != 1:
        raise _bad(cls, "wants one int, str or bytes")
    _address_part(cls, args[0])
    return cls(*args)


def _network(cls: type, args: tuple[Any, ...]) -> Any:
    if not 1 <= len(args) <= 2 or (len(args) == 2 and type(args[1]) is not bool):
        raise _bad(cls, "wants an address, and perhaps whether it is strict")
    parts = args[0] if type(args[0]) is tuple and len(args[0]) == 2 else (args[0],)
    for part in parts:
        _address_part(cls, part)
    return cls(*args)


def _struct_sequence(cls: type, args: tuple[Any, ...]) -> Any:
    if not 1 <= len(args) <= 2 or type(args[0]) is not tuple or (len(args) == 2 and type(args[1]) is not dict):
        raise _bad(cls, "wants a tuple of fields and a dict of the others")
    if len(args) == 2 and not all(type(key) is str for key in args[1]):
        raise _bad(cls, "a field name that is not a str")
    return cls(*args)


def _uname(build: Callable[[type, tuple[Any, ...]], Any]) -> Callable[[type, tuple[Any, ...]], Any]:
    def check(cls: type, args: tuple[Any, ...]) -> Any:
        if len(args) != 5 or not all(type(arg) is str for arg in args):
            raise _bad(cls, "wants five str")
        return build(cls, args)

    return check


_COMPLETED_FIELDS = frozenset({"args", "returncode", "stdout", "stderr"})


def _no_arguments(cls: type, args: tuple[Any, ...]) -> Any:
    _arity(cls, args, 0)
    return cls.__new__(cls)


def _completed_state(obj: Any, state: Any) -> None:
    if type(state) is not dict or not {"args", "returncode"} <= set(state) <= _COMPLETED_FIELDS:
        raise _bad(type(obj), "its state is not args, returncode, stdout and stderr")
    obj.__dict__.update({"stdout": None, "stderr": None, **state})


def _types() -> dict[tuple[str, str], _Allowed]:
    complex_ = _numbers(2, int, float)
    kinds = [
        _Allowed("builtins", "complex", reduce=complex_, newobj=complex_),
        _Allowed("builtins", "bytearray", reduce=_bytearray),
        _Allowed("builtins", "frozenset", reduce=_set, hashes_args=True),
        _Allowed("builtins", "set", reduce=_set, hashes_args=True),
        _Allowed("builtins", "range", reduce=_range),
        _Allowed("builtins", "slice", reduce=_slice),
        _Allowed("collections", "OrderedDict", reduce=_ordered_dict, items="dict"),
        _Allowed("collections", "deque", reduce=_deque, items="list"),
        _Allowed("datetime", "date", reduce=_datetime),
        _Allowed("datetime", "datetime", reduce=_datetime),
        _Allowed("datetime", "time", reduce=_datetime),
        _Allowed("datetime", "timedelta", reduce=_numbers(3, int, float)),
        _Allowed("datetime", "timezone", reduce=_timezone),
        _Allowed("decimal", "Decimal", reduce=_decimal),
        _Allowed("fractions", "Fraction", reduce=_fraction),
        _Allowed("uuid", "UUID", newobj=_no_arguments, build=_uuid_state),
        _Allowed("pathlib", "PurePosixPath", reduce=_path),
        _Allowed("pathlib", "PosixPath", reduce=_path),
        _Allowed("ipaddress", "IPv4Address", reduce=_address),
        _Allowed("ipaddress", "IPv6Address", reduce=_address),
        _Allowed("ipaddress", "IPv4Network", reduce=_network),
        _Allowed("ipaddress", "IPv6Network", reduce=_network),
        _Allowed("platform", "uname_result", reduce=_uname(_call), newobj=_uname(_new)),
        _Allowed("subprocess", "CompletedProcess", newobj=_no_arguments, build=_completed_state),
    ]
    # Structured results of common stdlib calls (os.uname(), os.stat(), ...), pickled as (fields, other fields).
    for module, name in [
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
        ("pwd", "struct_passwd"),
        ("grp", "struct_group"),
        ("resource", "struct_rusage"),
    ]:
        kinds.append(_Allowed(module, name, reduce=_struct_sequence))
    return {(kind.module, kind.name): kind for kind in kinds}


# Value types from the standard library that are safe to construct from data, with the check of each.
ALLOWED: dict[tuple[str, str], _Allowed] = _types()

# Where a newer child Python names a type differently from the master's Python.
ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    ("pathlib._local", "PurePosixPath"): ("pathlib", "PurePosixPath"),  # Python 3.13
    ("pathlib._local", "PosixPath"): ("pathlib", "PosixPath"),
}


def _resolve(module: str, name: str, registered: Mapping[tuple[str, str], type]) -> list[Any]:
    if len(module) + len(name) > MAX_NAME_CHARS:
        raise UnsafeMessage(
            f"a child sent a class name of {len(module) + len(name)} characters, over the limit of {MAX_NAME_CHARS} "
            f"(MAX_NAME_CHARS): {module[:40]!r}..."
        )
    cls = registered.get((module, name))
    if cls is not None:
        return [cls, 1, 0, _CLASS, None, None]
    module, name = ALIASES.get((module, name), (module, name))
    kind = ALLOWED.get((module, name))
    if kind is None:
        raise UnsafeMessage(
            f"refused to load {module}.{name} from a child: it is not an allowed value type "
            "(if it is your own class, allow it with fanout.register_type)"
        )
    try:
        cls = kind.cls()
    except (ImportError, AttributeError):  # posix, pwd, grp, resource where the master lacks them
        raise UnsafeMessage(f"refused to load {module}.{name} from a child: this Python has no such type") from None
    return [cls, 1, 0, _CLASS, kind, None]


def _weigh(value: Any) -> int:
    """The nodes an atom counts as."""
    kind = type(value)
    if kind is str or kind is bytes:
        return 1 + len(value) // CHARS_PER_NODE
    if kind is int:
        return 1 + (value.bit_length() >> 5)
    return 1


def _what(entry: list[Any]) -> str:
    return type(entry[0]).__name__


class _Machine:
    """One decoding: the stack, the memo, the marks and the budgets."""

    def __init__(self, data: bytes, registered: Mapping[tuple[str, str], type]) -> None:
        self.data = data
        self.registered = registered
        self.budget = max(MAX_NODES, NODES_PER_BYTE * len(data))
        self.hashed = 0  # nodes hashed so far, as dict keys and set members

    # -- limits -------------------------------------------------------------------------------------------------

    def over_nodes(self) -> UnsafeMessage:
        return UnsafeMessage(
            f"a child sent a value of more than {self.budget} nodes, shared references counted in full: over the "
            f"limit of {self.budget} (MAX_NODES={MAX_NODES}, or NODES_PER_BYTE={NODES_PER_BYTE} a byte of the message)"
        )

    def check(self, nodes: int, depth: int) -> None:
        if nodes > self.budget:
            raise self.over_nodes()
        if depth > MAX_DEPTH:
            raise UnsafeMessage(f"a child sent a value nested deeper than {MAX_DEPTH} levels, the limit (MAX_DEPTH)")

    def charge_hashing(self, nodes: int) -> None:
        self.hashed += nodes
        if self.hashed > self.budget:
            raise UnsafeMessage(
                f"a child sent dict keys and set members of more than {self.budget} nodes in all to hash, "
                f"over the limit of {self.budget} (MAX_NODES={MAX_NODES}, or NODES_PER_BYTE={NODES_PER_BYTE} a byte)"
            )

    # -- values ---------------------------------------------------------------------------------------------------

    @staticmethod
    def seal(entry: list[Any]) -> None:
        """``entry`` is used: from now on nothing may change it."""
        if entry[3] >= _LIST:
            spec = entry[4]
            if entry[3] == _OBJECT and spec is not None and spec.build is not None:
                raise _refuse(f"uses a {_what(entry)} before its state is set")
            entry[3] = _SEALED
            entry[5] = None

    def tally(self, items: list[Any]) -> tuple[list[Any], int, int]:
        """The values of stack items, their nodes and their depth; open containers among them are sealed."""
        if len(items) > 16:  # many numbers: one node each, counted at C speed
            kinds = set(map(type, items))
            if kinds <= _UNIT_KINDS and (int not in kinds or (min(items) > -_SMALL and max(items) < _SMALL)):
                return items, len(items), 0
        values: list[Any] = []
        append = values.append
        nodes = depth = 0
        for item in items:
            kind = type(item)
            if kind is list:
                if item[3] >= _LIST:
                    self.seal(item)
                append(item[0])
                nodes += item[1]
                if item[2] > depth:
                    depth = item[2]
            else:
                append(item)
                if kind is str or kind is bytes:
                    nodes += 1 + len(item) // CHARS_PER_NODE
                elif kind is int:
                    nodes += 1 + (item.bit_length() >> 5)
                else:
                    nodes += 1
        return values, nodes, depth

    def grow(self, target: Any, items: list[Any], what: str) -> tuple[list[Any], list[Any]]:
        """Check that ``target`` may take ``items`` (APPENDS, SETITEMS, ADDITEMS, BUILD), and count them in."""
        if type(target) is not list or target[3] < _SEALED:
            kind = type(target[0] if type(target) is list else target).__name__
            raise UnsafeMessage(f"a child sent a malformed message: {what} on a {kind}")
        if target[3] == _SEALED:
            raise _refuse(
                f"changes a {_what(target)} after using it ({what}): a cycle, or sharing before it was complete"
            )
        values, nodes, depth = self.tally(items)
        nodes += target[1]
        depth = max(target[2], depth + 1)
        self.check(nodes, depth)
        target[1], target[2] = nodes, depth
        return target, values

    def hash_keys(self, target: list[Any], key_items: list[Any], what: str) -> None:
        """Charge the hashing of keys to the budget, and count their hash values (before they are hashed in)."""
        # A str or bytes hashes once (the hash is kept) and its hash is salted: neither costs nor collides.
        others = [item for item in key_items if type(item) is not str and type(item) is not bytes]
        if not others:
            return
        keys, nodes, _ = self.tally(others)
        self.charge_hashing(nodes)
        if target[5] is None:
            target[5] = {}
        try:
            check_hashes(keys, target[5], what)
        except TypeError as exc:
            raise _refuse(f"has an unhashable {what} key: {exc}") from None

    # -- opcodes that change containers ------------------------------------------------------------------------------

    def appends(self, target: Any, items: list[Any]) -> None:
        target, values = self.grow(target, items, "APPENDS")
        state, obj, spec = target[3], target[0], target[4]
        if state == _LIST:
            obj.extend(values)
        elif state == _OBJECT and (spec is None or spec.items == "list"):
            extend = getattr(obj, "extend", None)
            if extend is not None:
                extend(values)
            else:
                for value in values:
                    obj.append(value)
        else:
            raise _refuse(f"appends items to a {_what(target)}")

    def setitems(self, target: Any, items: list[Any]) -> None:
        if len(items) & 1:
            raise UnsafeMessage("a child sent a malformed message: SETITEMS with an odd number of items")
        target, values = self.grow(target, items, "SETITEMS")
        state, obj, spec = target[3], target[0], target[4]
        if state != _DICT and not (state == _OBJECT and (spec is None or spec.items == "dict")):
            raise _refuse(f"sets items of a {_what(target)}")
        # Any mapping hashes its keys, a registered one that is no dict (a UserDict) as well: always charged.
        self.hash_keys(target, items[0::2], "dict")
        if type(obj) is dict:
            obj.update(zip(values[0::2], values[1::2], strict=True))
        else:  # as pickle does it, for an OrderedDict or a registered mapping
            for i in range(0, len(values), 2):
                obj[values[i]] = values[i + 1]

    def additems(self, target: Any, items: list[Any]) -> None:
        target, values = self.grow(target, items, "ADDITEMS")
        state, obj = target[3], target[0]
        if state != _SET and not (state == _OBJECT and target[4] is None):
            raise _refuse(f"adds members to a {_what(target)}")
        self.hash_keys(target, items, "set")  # a registered class's add() may hash too: always charged
        if state == _SET:
            obj.update(values)
        else:
            for value in values:
                obj.add(value)

    def build(self, target: Any, state_item: Any) -> None:
        target, (state,) = self.grow(target, [state_item], "BUILD")
        obj, spec = target[0], target[4]
        if target[3] != _OBJECT or (spec is not None and spec.build is None):
            raise _refuse(f"sets the state of a {_what(target)}")
        if spec is not None:
            spec.build(obj, state)
        else:
            _set_state(obj, state)
        target[3], target[5] = _FIXED, None  # complete: a pickler sends BUILD last

    # -- opcodes that make objects -----------------------------------------------------------------------------------

    def construct(self, callable_: Any, args: Any, kwargs: Any, how: str) -> list[Any]:
        if type(callable_) is not list or callable_[3] != _CLASS:
            raise _refuse(f"calls something that is not an allowed class ({how})")
        if type(args) is not list or type(args[0]) is not tuple or (kwargs is not None and type(kwargs[0]) is not dict):
            raise UnsafeMessage(f"a child sent a malformed message: {how} without a tuple of arguments")
        items = [args] if kwargs is None else [args, kwargs]
        values, nodes, depth = self.tally(items)
        nodes, depth = nodes + 1, depth + 1
        self.check(nodes, depth)
        cls, spec = callable_[0], callable_[4]
        if spec is None:  # a registered class: built as pickle builds it
            if how == "REDUCE":
                value = cls(*values[0])
            else:
                if not isinstance(cls, type):
                    raise _refuse(f"calls __new__ of {cls!r}, which is not a class")
                kw = values[1] if kwargs is not None else {}
                if not all(type(key) is str for key in kw):
                    raise UnsafeMessage("a child sent a malformed message: NEWOBJ_EX with a keyword that is not a str")
                value = cls.__new__(cls, *values[0], **kw)
            return [value, nodes, depth, _OBJECT, None, None]
        builder = spec.reduce if how == "REDUCE" else spec.newobj if kwargs is None else None
        if builder is None:
            raise _refuse(f"builds a {spec.module}.{spec.name} with {how}, which its pickling never uses")
        if spec.hashes_args:
            self.charge_hashing(nodes)
        value = builder(cls, values[0])
        state = _OBJECT if spec.items or spec.build else _FIXED
        return [value, nodes, depth, state, spec, None]

    # -- the machine -------------------------------------------------------------------------------------------------

    def run(self) -> Any:  # one loop, the commonest opcodes first: the fast way in Python
        data = self.data
        end = len(data)
        view = memoryview(data)
        unpack_from = struct.unpack_from
        stack: list[Any] = []
        marks: list[int] = []
        fence = 0  # the stack below the innermost mark is out of reach, as in the C unpickler
        memo: list[Any] = []  # picklers number memo entries in order: an index past the end is refused
        pos = 0
        while pos < end:
            op = data[pos]
            pos += 1
            if op == 0x8C:  # SHORT_BINUNICODE
                if pos >= end:
                    raise _truncated()
                size = data[pos]
                pos += 1 + size
                if pos > end:
                    raise _truncated()
                stack.append(data[pos - size : pos].decode("utf-8", "surrogatepass"))
            elif op == 0x94:  # MEMOIZE
                if len(stack) <= fence:
                    raise _underflow()
                memo.append(stack[-1])
            elif op == 0x4B:  # BININT1
                if pos >= end:
                    raise _truncated()
                stack.append(data[pos])
                pos += 1
            elif op == 0x28:  # MARK
                fence = len(stack)
                marks.append(fence)
                run = _NUMBERS.match(data, pos)  # the items of a list or tuple of numbers, at C speed
                if run is not None and run.end() - pos >= 32:
                    stack.extend(_numbers_at_c_speed(data[pos : run.end()]))
                    pos = run.end()
            elif op == 0x68 or op == 0x6A:  # BINGET, LONG_BINGET
                width = 1 if op == 0x68 else 4
                if pos + width > end:
                    raise _truncated()
                index = data[pos] if width == 1 else unpack_from("<I", data, pos)[0]
                pos += width
                if index >= len(memo):
                    raise UnsafeMessage(f"a child sent a malformed message: memo entry {index} is not defined")
                item = memo[index]
                if type(item) is list and item[3] >= _LIST:
                    self.seal(item)
                stack.append(item)
            elif op == 0x65 or op == 0x75 or op == 0x90:  # APPENDS, SETITEMS, ADDITEMS
                if not marks:
                    raise _no_mark()
                mark = marks.pop()
                fence = marks[-1] if marks else 0
                if mark - 1 < fence:
                    raise _underflow()
                items = stack[mark:]
                del stack[mark:]
                if op == 0x65:
                    self.appends(stack[-1], items)
                elif op == 0x75:
                    self.setitems(stack[-1], items)
                else:
                    self.additems(stack[-1], items)
            elif 0x85 <= op <= 0x87 or op == 0x74 or op == 0x91:  # TUPLE1, TUPLE2, TUPLE3, TUPLE, FROZENSET
                if op >= 0x85 and op <= 0x87:
                    start = len(stack) - (op - 0x84)
                    if start < fence:
                        raise _underflow()
                else:
                    if not marks:
                        raise _no_mark()
                    start = marks.pop()
                    fence = marks[-1] if marks else 0
                items = stack[start:]
                del stack[start:]
                stack.append(self.sequence(items, op == 0x91))
            elif op == 0x5D or op == 0x7D or op == 0x8F:  # EMPTY_LIST, EMPTY_DICT, EMPTY_SET
                if op == 0x5D:
                    stack.append([[], 1, 1, _LIST, None, None])
                elif op == 0x7D:
                    stack.append([{}, 1, 1, _DICT, None, None])
                else:
                    stack.append([set(), 1, 1, _SET, None, None])
            elif op == 0x4A:  # BININT
                if pos + 4 > end:
                    raise _truncated()
                stack.append(unpack_from("<i", data, pos)[0])
                pos += 4
            elif op == 0x47:  # BINFLOAT
                if pos + 8 > end:
                    raise _truncated()
                stack.append(unpack_from(">d", data, pos)[0])
                pos += 8
            elif op == 0x4E:  # NONE
                stack.append(None)
            elif op == 0x88 or op == 0x89:  # NEWTRUE, NEWFALSE
                stack.append(op == 0x88)
            elif op == 0x29:  # EMPTY_TUPLE
                stack.append([(), 1, 1, _FIXED, None, None])
            elif op == 0x61 or op == 0x73:  # APPEND, SETITEM
                take = 1 if op == 0x61 else 2
                if len(stack) - take - 1 < fence:
                    raise _underflow()
                items = stack[-take:]
                del stack[-take:]
                if op == 0x61:
                    self.appends(stack[-1], items)
                else:
                    self.setitems(stack[-1], items)
            elif op == 0x4D:  # BININT2
                if pos + 2 > end:
                    raise _truncated()
                stack.append(data[pos] | data[pos + 1] << 8)
                pos += 2
            elif op in _SIZED:  # BINUNICODE, BINUNICODE8, SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
                fmt, width = _SIZED[op]
                if pos + width > end:
                    raise _truncated()
                size = unpack_from(fmt, data, pos)[0]
                pos += width
                if size > end - pos:
                    raise _truncated()
                if op == 0x58 or op == 0x8D:  # from a memoryview: faster for long strings
                    stack.append(str(view[pos : pos + size], "utf-8", "surrogatepass"))
                elif op == 0x96:
                    chunk = data[pos : pos + size]
                    stack.append([bytearray(chunk), _weigh(chunk), 0, _FIXED, None, None])
                else:
                    stack.append(data[pos : pos + size])
                pos += size
            elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
                pos = self.long(stack, pos, 1 if op == 0x8A else 4)
            elif op == 0x71 or op == 0x72:  # BINPUT, LONG_BINPUT
                width = 1 if op == 0x71 else 4
                if pos + width > end:
                    raise _truncated()
                index = data[pos] if width == 1 else unpack_from("<I", data, pos)[0]
                pos += width
                if len(stack) <= fence:
                    raise _underflow()
                if index == len(memo):
                    memo.append(stack[-1])
                elif index < len(memo):
                    memo[index] = stack[-1]
                else:
                    raise UnsafeMessage(f"a child sent a malformed message: memo entry {index} skips ahead")
            elif op == 0x93 or op == 0x63:  # STACK_GLOBAL, GLOBAL
                if op == 0x93:
                    if len(stack) - 2 < fence:
                        raise _underflow()
                    module, name = stack[-2], stack[-1]
                    del stack[-2:]
                    if type(module) is not str or type(name) is not str:
                        raise UnsafeMessage("a child sent a malformed message: STACK_GLOBAL wants two str")
                else:
                    first = data.find(b"\n", pos)
                    second = data.find(b"\n", first + 1) if first >= 0 else -1
                    if second < 0:
                        raise _truncated()
                    module = data[pos:first].decode("utf-8")
                    name = data[first + 1 : second].decode("utf-8")
                    pos = second + 1
                stack.append(_resolve(module, name, self.registered))
            elif op == 0x52 or op == 0x81 or op == 0x92:  # REDUCE, NEWOBJ, NEWOBJ_EX
                take = 3 if op == 0x92 else 2
                if len(stack) - take < fence:
                    raise _underflow()
                how = "REDUCE" if op == 0x52 else "NEWOBJ" if op == 0x81 else "NEWOBJ_EX"
                made = self.construct(stack[-take], stack[1 - take], stack[-1] if take == 3 else None, how)
                del stack[-take:]
                stack.append(made)
            elif op == 0x62:  # BUILD
                if len(stack) - 2 < fence:
                    raise _underflow()
                state_item = stack.pop()
                self.build(stack[-1], state_item)
            elif op == 0x95:  # FRAME: a hint for buffered readers; the whole message is here
                if pos + 8 > end or unpack_from("<Q", data, pos)[0] > end - pos - 8:
                    raise _truncated()
                pos += 8
            elif op == 0x80:  # PROTO
                if pos >= end:
                    raise _truncated()
                if not 2 <= data[pos] <= 5:
                    raise UnsafeMessage(f"a child sent a pickle of protocol {data[pos]}; fanout reads 2 to 5")
                pos += 1
            elif op == 0x2E:  # STOP
                return self.stop(stack, marks, pos)
            else:
                name = _OPCODE_NAMES.get(op)
                if name is None:
                    raise UnsafeMessage(f"a child sent a malformed message: unknown pickle opcode {op:#04x}")
                raise _refuse(f"uses opcode {name}, which fanout refuses: {_REFUSED[op]}")
        raise _truncated()

    def sequence(self, items: list[Any], frozen: bool) -> list[Any]:
        """TUPLE* and FROZENSET: an immutable container of ``items``, once its size and hashing are allowed."""
        values, nodes, depth = self.tally(items)
        self.check(nodes + 1, depth + 1)
        if not frozen:
            return [tuple(values), nodes + 1, depth + 1, _FIXED, None, None]
        self.charge_hashing(nodes)
        try:
            check_hashes(values, {}, "frozenset")
        except TypeError as exc:
            raise _refuse(f"has an unhashable frozenset member: {exc}") from None
        return [frozenset(values), nodes + 1, depth + 1, _FIXED, None, None]

    def long(self, stack: list[Any], pos: int, width: int) -> int:
        """LONG1 and LONG4: an int of at most MAX_PICKLED_INT_BYTES bytes."""
        data = self.data
        if pos + width > len(data):
            raise _truncated()
        size = data[pos] if width == 1 else struct.unpack_from("<i", data, pos)[0]
        pos += width
        if size < 0:
            raise UnsafeMessage("a child sent a malformed message: LONG4 with a negative length")
        if size > MAX_PICKLED_INT_BYTES:
            raise _long(size)
        if pos + size > len(data):
            raise _truncated()
        stack.append(int.from_bytes(data[pos : pos + size], "little", signed=True))
        return pos + size

    def stop(self, stack: list[Any], marks: list[int], pos: int) -> Any:
        """STOP: the one value left, complete, at the very end of the message."""
        if marks or len(stack) != 1:
            raise UnsafeMessage("a child sent a malformed message: the pickle stops with more than one value")
        if pos != len(self.data):
            raise UnsafeMessage("a child sent a malformed message: bytes after the end of the pickle")
        top = stack[0]
        if type(top) is list:
            self.seal(top)
            return top[0]
        return top


def _underflow() -> UnsafeMessage:
    return UnsafeMessage("a child sent a malformed message: the pickle takes more from its stack than it holds")


def _no_mark() -> UnsafeMessage:
    return UnsafeMessage("a child sent a malformed message: the pickle closes a MARK it never opened")


def _long(size: int) -> UnsafeMessage:
    return UnsafeMessage(
        f"a child sent an int of {size} bytes, over the limit of {MAX_PICKLED_INT_BYTES} (MAX_PICKLED_INT_BYTES)"
    )


def _set_state(obj: Any, state: Any) -> None:
    """BUILD for a registered class, as the C unpickler does it."""
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slots = None
    if type(state) is tuple and len(state) == 2:
        state, slots = state
    if state:
        if type(state) is not dict or not all(type(key) is str for key in state):
            raise UnsafeMessage("a child sent a malformed message: an instance's state is not a dict of str keys")
        instance_dict = obj.__dict__
        for key, value in state.items():
            instance_dict[sys.intern(key)] = value
    if slots:
        if type(slots) is not dict or not all(type(key) is str for key in slots):
            raise UnsafeMessage("a child sent a malformed message: an instance's slots are not a dict of str keys")
        for key, value in slots.items():
            setattr(obj, key, value)


def loads(data: bytes, registered: Mapping[tuple[str, str], type]) -> Any:
    """Decode a child's pickle through the allow-list and ``registered`` within the limits, or raise UnsafeMessage."""
    try:
        return _Machine(data, registered).run()
    except UnsafeMessage:
        raise
    except Exception as exc:  # a constructor refusing its (already checked) arguments, a bad UTF-8 string, ...
        raise UnsafeMessage(f"a child sent a malformed message: {type(exc).__name__}: {_clip(exc)}") from None


def _clip(exc: Exception) -> str:
    """An exception's text, short: it may quote what the child sent (or come from a registered class)."""
    try:
        text = str(exc)
    except Exception:
        return "(its text cannot be read)"
    return text if len(text) <= 300 else text[:300] + f"... ({len(text)} characters)"
