"""An inventory's values and host names as ansible-core reads them: INI literals, ``host:port``, and host ranges.

A host range is measured before it is expanded: ``web[0:99999999]`` is a typo, refused at once, never 7 GB.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import string
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fanout._inventory_model import MAX_HOSTS

MAX_RANGE_HOSTS = MAX_HOSTS  # names one host range (web[000000:999999]) may expand to: no more than an inventory holds
MAX_RANGE_CHARS = 64 * MAX_RANGE_HOSTS  # characters of the names one host range may expand to

_RANGE = re.compile(r"\[([^\]]*)\]")
# host:port, where the host part has no colon outside [...] range brackets; or [ipv6]:port.
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])+):([^:\[\]]*)$")
_IPV6_PORT = re.compile(r"^\[([0-9a-fA-F:.%]+)\]:(\d+)$")


def shorten(text: str, keep: int = 80) -> str:
    """``text`` cut to ``keep`` characters for a message: a hostile name must not make the error itself huge."""
    return text if len(text) <= keep else text[:keep] + "..."


def parse_value(text: str) -> Any:
    """An INI value: a Python literal when it is one (ints, floats, True/False, None, lists, dicts), else the string."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is Ellipsis or isinstance(value, complex):
        return str(value) if value is not Ellipsis else "..."
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _range_items(spec: str) -> Sequence[str]:
    """The names one ``[begin:end(:step)]`` stands for, as a lazy sequence (its length costs nothing to know)."""
    shown = shorten(spec)
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{shown}] must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError(f"host range [{shown}] must specify an end value")
    try:
        step = int(step_text)
    except ValueError:
        raise ValueError(f"host range [{shown}] has a step that is not a number: {shorten(step_text)!r}") from None
    if step <= 0:
        raise ValueError(f"host range [{shown}] must have a positive step")
    if beg in string.ascii_letters and end in string.ascii_letters and len(beg) == len(end) == 1:
        i_beg, i_end = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i_beg > i_end:
            raise ValueError(f"host range [{shown}] must have begin <= end")
        return string.ascii_letters[i_beg : i_end + 1 : step]
    if beg.isdigit() and end.isdigit() and beg.isascii() and end.isascii():
        try:
            first, last = int(beg), int(end)
        except ValueError:  # past Python's 4300 digits
            raise ValueError(f"host range [{shown}] has numbers too long") from None
        if first > last:
            raise ValueError(f"host range [{shown}] must have begin <= end")
        width = 0
        if beg[0] == "0" and len(beg) > 1:
            if len(beg) != len(end):
                raise ValueError(f"host range [{shown}] must have equal-length begin and end when zero-padded")
            width = len(beg)
        return _Numbers(range(first, last + 1, step), width)
    raise ValueError(f"host range [{shown}] must be two numbers or two single letters")


@dataclass(frozen=True)
class _Numbers(Sequence):
    """The numbers of a host range as names, zero-padded to ``width``, made one at a time."""

    numbers: range
    width: int

    def __len__(self) -> int:
        return len(self.numbers)  # only ever asked of a range within MAX_RANGE_HOSTS: _count() is for any range

    @property
    def count(self) -> int:
        """How many numbers, however many that is (``len`` stops at the largest C integer)."""
        r = self.numbers
        return max(0, (r.stop - r.start + r.step - 1) // r.step)

    def __getitem__(self, index):  # type: ignore[override]
        return str(self.numbers[index]).zfill(self.width)


def _count(items: Sequence[str]) -> int:
    return items.count if isinstance(items, _Numbers) else len(items)


def expand_range(name: str, what: str = "host range") -> list[str]:
    """Every name ``name`` stands for, its ranges (``web[01:20]``, ``db-[a:f]``, several multiply) expanded as
    ansible-core expands them: each ``[begin:end(:step)]`` from the first, up to one with no colon.

    The count and length of the names are known before any is made, and refused (ValueError) past
    :data:`MAX_RANGE_HOSTS` names or :data:`MAX_RANGE_CHARS` characters: ``web[0:99999999]`` is a typo, not 7 GB.
    """
    literals: list[str] = []
    ranges: list[Sequence[str]] = []
    pos = 0
    while (m := _RANGE.search(name, pos)) is not None and ":" in m.group(1):
        literals.append(name[pos : m.start()])
        ranges.append(_range_items(m.group(1)))
        pos = m.end()
    if not ranges:
        return [name]
    literals.append(name[pos:])
    count = math.prod(_count(items) for items in ranges)
    if count > MAX_RANGE_HOSTS:
        raise ValueError(f"{what} {shorten(name)!r} expands to {count:,} hosts: the limit is {MAX_RANGE_HOSTS:,}")
    longest = sum(map(len, literals)) + sum(max(len(items[0]), len(items[-1])) for items in ranges)
    if count * longest > MAX_RANGE_CHARS:
        raise ValueError(
            f"{what} {shorten(name)!r} expands to {count:,} names of up to {longest:,} characters:"
            f" the limit is {MAX_RANGE_CHARS:,} characters"
        )
    out: list[str] = []
    for combination in itertools.product(*ranges):
        parts = [literals[0]]
        for item, literal in zip(combination, literals[1:], strict=True):
            parts += (item, literal)
        out.append("".join(parts))
    return out


def split_port(token: str) -> tuple[str, int | None]:
    """``web1:2222`` -> ``("web1", 2222)``; ``[::1]:22`` -> ``("::1", 22)``; bare IPv6 addresses keep their colons."""
    m = _IPV6_PORT.match(token)
    if m:
        return m.group(1), int(m.group(2))
    m = _HOST_PORT.match(token)
    if m:
        if not m.group(2).isdigit() or not m.group(2).isascii():
            raise ValueError(f"host {token!r}: the part after ':' must be a port number")
        return m.group(1), int(m.group(2))
    return token, None


def expand_host(token: str) -> tuple[list[str], int | None]:
    """The host names one inventory entry (``web[01:20]:2222``) stands for, and its port; ValueError if malformed."""
    if token.startswith("[") and not _IPV6_PORT.match(token):
        raise ValueError(f"{token!r} is not a host name (an unterminated or malformed [section] header?)")
    name, port = split_port(token)
    if not name:
        raise ValueError(f"empty host name in {token!r}")
    names = expand_range(name)
    for n in names:
        if n.strip() == "---":
            raise ValueError(f"invalid host name {token!r}: '---' is normally a sign this is a YAML file")
    return names, port
