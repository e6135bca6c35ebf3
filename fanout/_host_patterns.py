"""Ansible host patterns (``web:&prod:!web3``, ``web*``, ``~web\\d+``, ``web[0]``, ``web[1:3]``) over an
inventory's model, selecting hosts in ansible-core's order.

A pattern never expands host ranges: ``web[0:99999999]`` here is a slice of the hosts ``web`` matches.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from fanout._inventory_model import InventoryError, InventoryModel
from fanout._inventory_values import shorten

_PATTERN_WITH_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_PATTERN_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


def match_hosts(model: InventoryModel, pattern: str = "all") -> list[str]:
    """Host names matching an Ansible host pattern, in Ansible's order; an empty list if nothing matches.

    Terms are taken as ansible-core takes them: the plain ones first (their union), then each ``&`` term
    (intersection), then each ``!`` term (exclusion), whatever order they are written in.
    """
    terms = _split_pattern(pattern)
    regular = [t for t in terms if t[0] not in "&!"]
    intersect = [t for t in terms if t[0] == "&"]
    exclude = [t for t in terms if t[0] == "!"]
    result: list[str] = []
    for term in (regular or ["all"]) + intersect + exclude:
        if term in model.hosts:
            result.append(term)
            continue
        matched = _match_term(model, term[1:] if term[0] in "&!" else term)
        if term[0] == "!":
            drop = set(matched)
            result = [h for h in result if h not in drop]
        elif term[0] == "&":
            keep = set(matched)
            result = [h for h in result if h in keep]
        else:
            have = set(result)
            result.extend(h for h in matched if h not in have)
    return list(dict.fromkeys(result))


def _match_term(model: InventoryModel, term: str) -> list[str]:
    """The hosts one term (no ``&`` or ``!``) stands for: its groups' hosts, then hosts it names, then subscripted."""
    if not term:
        return []
    expr, sub = _split_subscript(term)
    groups = _match_list(model.groups, expr)
    found: list[str] = []
    for g in groups:
        found.extend(model.group_hosts(g))
    if not groups or expr[0] == "~" or any(c in expr for c in ".?*["):
        found.extend(_match_list(model.hosts, expr))
    if sub is None:
        return found
    start, end = sub
    if not found:  # as in ansible-core, a subscript of nothing is nothing (not an error)
        return found
    if end:  # as in ansible-core, an end of 0 makes [x:0] the single index [x]
        if end == -1:
            end = len(found) - 1
        return found[start : end + 1]
    try:
        return [found[start]]
    except IndexError:
        raise InventoryError(f"no hosts matched the subscripted pattern {term!r}") from None


def _split_pattern(pattern: str) -> list[str]:
    if not isinstance(pattern, str):
        raise InventoryError(f"host pattern must be a string, got {type(pattern).__name__}")
    if "," in pattern:
        parts = pattern.split(",")
    elif re.fullmatch(r"[^\s:\[\]]+:\d+", pattern.strip()) or _is_ipv6(pattern.strip()):
        parts = [pattern]  # host:port or an IPv6 address, as ansible-core keeps them whole
    else:
        parts = _PATTERN_TERMS.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _split_subscript(term: str) -> tuple[str, tuple[int, int | None] | None]:
    if term[0] == "~":
        return term, None
    m = _PATTERN_WITH_SUBSCRIPT.match(term)
    if m is None:
        return term, None
    expr, idx, start, _sep, end = m.groups()
    try:
        if idx is not None:
            return expr, (int(idx), None)
        return expr, (int(start), int(end) if end else -1)
    except ValueError:  # past Python's 4300 digits
        raise InventoryError(f"invalid subscript in host pattern {shorten(term)!r}: a number is too long") from None


def _match_list(items: Mapping[str, Any], pattern: str) -> list[str]:
    try:
        rx = re.compile(pattern[1:]) if pattern[0] == "~" else re.compile(fnmatch.translate(pattern))
    except (re.error, RecursionError, OverflowError) as e:
        raise InventoryError(f"invalid host pattern {pattern!r}: {e}") from None
    return [item for item in items if rx.match(item)]
