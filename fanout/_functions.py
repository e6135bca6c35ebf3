"""How a function travels: by reference when importable, by value (cloudpickle) otherwise.

By reference, ``(module, qualname)`` plus the module's source through the
importer, works across Python minor versions. By value needs the child to run
the master's minor version, because pickled code objects are version-specific.
"""

from __future__ import annotations

import functools
import importlib
import marshal
import pickle
import pickletools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fanout._codec import MARSHAL_VERSION, PICKLE_PROTOCOL, is_plain
from fanout._wire import MARSHAL, PICKLE
from fanout.errors import SerializationError


@dataclass(slots=True)
class EncodedCall:
    """A call ready to send: its payload, the modules to send ahead, and whether it went by value."""

    payload: bytes
    modules: list[str]
    by_value: bool


@functools.lru_cache(maxsize=4096)
def _by_reference(fn: Callable) -> tuple[str, str] | None:
    """``(module, qualname)`` when importing the module and walking the qualname gives ``fn`` back (cached)."""
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module_name or not qualname or module_name == "__main__" or "<" in qualname:
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return (module_name, qualname) if obj is fn else None


def describe(fn: Callable) -> str:
    """A short name for ``fn`` in error messages."""
    qualname = getattr(fn, "__qualname__", None) or repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_GET_OPS = frozenset({"BINGET", "LONG_BINGET", "GET"})
_SCAN_LIMIT = 1024 * 1024
_STACK_GLOBAL = pickle.STACK_GLOBAL


def referenced_modules(payload: bytes) -> set[str] | None:
    """Modules whose globals a pickle refers to (None when it is too large to scan cheaply)."""
    if _STACK_GLOBAL not in payload:
        return set()  # no class or function named anywhere: the common case, decided without a scan
    if len(payload) > _SCAN_LIMIT:
        return None
    modules: set[str] = set()
    stack: list[str | None] = []  # recent pushes that matter: strings, or None for anything else
    memo: dict[int, str | None] = {}
    importing = False  # just after cloudpickle's subimport: the next string names a module the code uses
    for opcode, arg, _ in pickletools.genops(payload):
        name = opcode.name
        if name in _STRING_OPS or name in _GET_OPS:
            pushed = arg if name in _STRING_OPS else memo.get(arg)
            stack.append(pushed)
            if importing and isinstance(pushed, str):
                modules.add(pushed)
                importing = False
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name == "STACK_GLOBAL":
            if len(stack) >= 2 and isinstance(stack[-2], str):
                modules.add(stack[-2])
                importing = stack[-1] == "subimport" and stack[-2].startswith("cloudpickle")
            stack.append(None)
        elif name == "GLOBAL":
            modules.add(arg.split(" ", 1)[0])
        else:
            stack.append(None)
        del stack[:-4]
    return modules


def encode_call(fn: Callable, args: tuple, kwargs: dict) -> EncodedCall:
    """Pickle a call: plain pickle when everything goes by reference, cloudpickle when something must not."""
    if not callable(fn):
        raise TypeError(f"call() needs a callable, not {type(fn).__name__}")
    try:
        reference = _by_reference(fn)
    except TypeError:  # unhashable callable: look it up uncached
        reference = _by_reference.__wrapped__(fn)
    spec: tuple = ("ref", *reference) if reference else ("value", fn)
    own_module = {reference[0]} if reference else set()
    if reference is not None and ((not args and not kwargs) or is_plain((args, kwargs))):  # marshal, no pickle
        payload = MARSHAL + marshal.dumps((spec, args, kwargs), MARSHAL_VERSION)
        return EncodedCall(payload, sorted(own_module), by_value=False)
    if getattr(fn, "__module__", None) != "__main__":
        try:
            payload = PICKLE + pickle.dumps((spec, args, kwargs), protocol=PICKLE_PROTOCOL)
        except Exception:
            payload = None  # a lambda or closure somewhere: cloudpickle below
        if payload is not None:
            modules = referenced_modules(payload[1:])
            if modules is None and b"__main__" not in payload:
                return EncodedCall(payload, sorted(own_module), by_value=False)
            if modules is not None and "__main__" not in modules:
                return EncodedCall(payload, sorted(modules | own_module), by_value=False)
    import cloudpickle

    try:
        payload = PICKLE + cloudpickle.dumps((spec, args, kwargs), protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        raise SerializationError(f"cannot send a call of {describe(fn)}: {type(exc).__name__}: {exc}") from exc
    modules = (referenced_modules(payload[1:]) or set()) | own_module | {"cloudpickle"}
    return EncodedCall(payload, sorted(modules), by_value=True)


def check_by_value(fn: Callable, host: str, child_python: tuple[int, ...]) -> None:
    """Refuse, clearly, a by-value call to a child whose Python minor version differs from ours."""
    mine, theirs = sys.version_info[:2], tuple(child_python[:2])
    if mine != theirs:
        raise SerializationError(
            f"{describe(fn)} must be sent by value (it is a lambda, a closure, defined in __main__, "
            f"or takes such an argument), and pickled code only runs on the Python version that made it: "
            f"the master runs Python {mine[0]}.{mine[1]}, host {host} runs {theirs[0]}.{theirs[1]}. "
            f"Move the function into an importable module so it is sent by reference."
        )
