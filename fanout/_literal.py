"""Reading a child's Python literal within limits, without :mod:`ast` and without recursion.

Children send plain results, log lines, errors and HELLO as ``repr()`` of
values built of None, booleans, ints, finite floats, str, bytes, tuples, lists
and dicts (``_plain`` and ``dump`` in ``bootstrap/stage1.py``). This parser reads
exactly that grammar with a regular-expression tokenizer and an explicit stack,
so a hostile child cannot make it recurse, build an AST a hundred times the
text's size, or construct anything else: names, calls, operators, sets and
string prefixes other than ``b`` are refused.

A literal has no shared references, so its node count and the cost of hashing
its dict keys are bounded by its length; the limits that remain are nesting
depth, the size of ints, and how many dict keys may share one hash value (the
hash of ints, floats and tuples is not salted, so equal hashes are cheap to
forge and make a dict quadratic to build). :mod:`fanout._unpickle` applies the
same three limits to pickles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fanout._wire import MAX_INT_DIGITS  # the child's bound too: it pickles a longer int
from fanout.errors import UnsafeMessage

MAX_DEPTH = 100  # containers nested in one value; hashing, comparing and printing recurse in C this deep
MAX_SAME_HASH = 16  # keys of one dict (or members of one set) sharing a hash value; real data has 1 or 2

_ESCAPE = r"\\(?:[\\'\"abfnrtv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})"  # no \N{...}, octal or newline
_BYTES_ESCAPE = r"\\(?:[\\'\"abfnrtv]|x[0-9a-fA-F]{2})"
_BLANK = r"[ \t\r\n]*"
_TOKEN = re.compile(  # a separator, then the start of a value or a closing bracket
    rf"""{_BLANK}(?:([,:]){_BLANK})?(?:
      (-?[0-9]+(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+))  # 2 float, as repr() writes it
    | (-?(?:0|[1-9][0-9]*))                                         # 3 int
    | '([^'\\\r\n]*(?:{_ESCAPE}[^'\\\r\n]*)*)'                      # 4 str
    | "([^"\\\r\n]*(?:{_ESCAPE}[^"\\\r\n]*)*)"                      # 5 str
    | b'([\x20-\x26\x28-\x5b\x5d-\x7e]*(?:{_BYTES_ESCAPE}[\x20-\x26\x28-\x5b\x5d-\x7e]*)*)'  # 6 bytes
    | b"([\x20\x21\x23-\x5b\x5d-\x7e]*(?:{_BYTES_ESCAPE}[\x20\x21\x23-\x5b\x5d-\x7e]*)*)"    # 7 bytes
    | ([\[({{])                                                     # 8 opening bracket
    | ([\])}}])                                                     # 9 closing bracket
    | (None|True|False)                                             # 10
    | ([^ \t\r\n])                                                   # 11 anything else: refused
    )""",
    re.VERBOSE,
)
_CLOSER = {"[": "]", "(": ")", "{": "}"}
_KEYWORDS = {"None": None, "True": True, "False": False}


def malformed(reason: str) -> UnsafeMessage:
    """The error for a literal that is not one, or is over a limit (tests and callers match this wording)."""
    return UnsafeMessage(f"a child sent a malformed literal: {reason}")


def check_hashes(keys: Iterable[Any], counts: dict[int, int], what: str) -> None:
    """Refuse more than MAX_SAME_HASH keys with one hash among ``keys`` (counts carry over between calls).

    str and bytes hashes are salted per process, so only other keys are counted. An
    unhashable key raises TypeError here, before the container is touched.
    """
    for key in keys:
        kind = type(key)
        if kind is not str and kind is not bytes:
            value = hash(key)
            seen = counts.get(value, 0) + 1
            if seen > MAX_SAME_HASH:
                raise UnsafeMessage(
                    f"a child sent a {what} with more than {MAX_SAME_HASH} keys of one hash value, "
                    f"over the limit of {MAX_SAME_HASH} (MAX_SAME_HASH): a hash-flooding attempt"
                )
            counts[value] = seen


def _string(body: str) -> str:
    if "\\" not in body:
        return body
    # Every backslash starts an escape the tokenizer checked; characters past latin-1 become \u escapes first.
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _bytes(body: str) -> bytes:
    if "\\" not in body:
        return body.encode("ascii")
    return body.encode("ascii").decode("unicode_escape").encode("latin-1")


def _close(opener: str, items: list[Any], trailing_comma: bool) -> Any:
    if opener == "[":
        return items
    if opener == "(":
        return items[0] if len(items) == 1 and not trailing_comma else tuple(items)
    keys = items[0::2]
    try:
        if len(keys) > MAX_SAME_HASH:
            check_hashes(keys, {}, "dict")
        return dict(zip(keys, items[1::2], strict=True))
    except TypeError as exc:  # an unhashable key
        raise malformed(f"a dict key is {exc}") from None


def _unexpected(match: re.Match[str], kind: int) -> UnsafeMessage:
    token, where = match.group(kind), match.start(kind)
    if token in "'\"":
        return malformed(f"a string at character {where} is not closed, or holds an escape repr() does not write")
    shown = repr(token) if len(token) <= 40 else f"{token[:40]!r}... ({len(token)} characters)"
    return malformed(f"unexpected {shown} at character {where}")


def loads(text: str) -> Any:
    """The value ``text`` spells, or :class:`UnsafeMessage` saying why it is not a plain literal."""
    if "\x00" in text:  # repr never writes one, and Python's own parser refuses it
        raise malformed("a NUL character")
    try:
        return _parse(text)
    except UnsafeMessage:
        raise
    except (ValueError, OverflowError) as exc:  # an escape past U+10FFFF; an int over sys.get_int_max_str_digits()
        raise malformed(f"{type(exc).__name__}: {str(exc)[:300]}") from None


def _parse(text: str) -> Any:
    frames: list[tuple[str, list[Any]]] = []  # the open containers: (opening bracket, items so far)
    items: list[Any] | None = None  # the innermost open container's items
    pairs = False  # whether that container is a dict
    result: Any = None
    done = False
    for match in _TOKEN.finditer(text):
        kind = match.lastindex
        separator = match.group(1)
        if kind == 9:  # a closing bracket: after the last value (with or without a comma), or an opening one
            if items is None or separator == ":" or (pairs and len(items) & 1) or (separator and not items):
                raise _unexpected(match, 1 if separator else 9)
            opener, _ = frames.pop()
            if _CLOSER[opener] != match.group(9):
                raise malformed(f"{opener!r} closed by {match.group(9)!r} at character {match.start(9)}")
            value = _close(opener, items, separator is not None)
            items, pairs = (frames[-1][1], frames[-1][0] == "{") if frames else (None, False)
        else:
            # a value comes first, or after a comma, or after a dict key and a colon
            wanted = ((":" if len(items) & 1 else ",") if pairs else ",") if items else None
            if separator != wanted or done:
                raise _unexpected(match, 1 if separator else kind)
            if kind == 4 or kind == 5:
                value = _string(match.group(kind))
            elif kind == 3:
                digits = match.group(3)
                count = len(digits) - (digits[0] == "-")
                if count > MAX_INT_DIGITS:
                    raise malformed(f"an int of {count} digits, over the limit of {MAX_INT_DIGITS} (MAX_INT_DIGITS)")
                value = int(digits)
            elif kind == 8:
                if len(frames) >= MAX_DEPTH:
                    raise malformed(f"nested deeper than {MAX_DEPTH} levels, the limit (MAX_DEPTH)")
                opener = match.group(8)
                items, pairs = [], opener == "{"
                frames.append((opener, items))
                continue
            elif kind == 10:
                value = _KEYWORDS[match.group(10)]
            elif kind == 2:
                value = float(match.group(2))
            elif kind == 6 or kind == 7:
                value = _bytes(match.group(kind))
            else:
                raise _unexpected(match, kind)
        if items is not None:
            items.append(value)
        else:
            result, done = value, True
    if not done:
        raise malformed("it ends before the value does" if text.strip(" \t\r\n") else "it is empty")
    return result
