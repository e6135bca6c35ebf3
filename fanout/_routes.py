"""Which host of a fleet goes through which relay: the hosts' own ``via``, and the relays ``Fleet(relays=)`` picks.

Pure planning, no connections: a route names a relay host of the same fleet (or one the inventory brings only
as a relay), chains are allowed, cycles and local hosts are not. The fleet opens hosts in waves, relays before
the hosts behind them (:func:`waves`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

AUTO = "auto"
AUTO_MIN_HOSTS = 4  # "auto" picks no relay for fewer hosts: a relay would carry less than it costs
MAX_CHAIN = 8  # relays in a row before a host: more is a loop in the making, or a mistake


def plan(hosts: Mapping[str, Mapping[str, Any]], relays: int | str = 0) -> dict[str, str]:
    """Each host reached through a relay -> that relay's name; hosts absent go direct.

    A host's own ``via`` (a host name) is kept. ``relays`` (a number, or ``"auto"``: about the square root of the
    hosts) picks that many relays among the hosts that have no route and are reached over SSH: the first host of
    each of that many runs of hosts in the fleet's order (an inventory's order keeps its groups together), and
    the rest of each run goes through it.
    """
    routes: dict[str, str] = {}
    for name, options in hosts.items():
        via = options.get("via")
        if via is None:
            continue
        if not isinstance(via, str) or not via:
            raise ValueError(f"{name}: via must name a host of the fleet, not {via!r}")
        if via not in hosts:
            raise ValueError(f"{name}: its relay {via!r} is not a host of the fleet or the inventory")
        routes[name] = via
    for name, via in routes.items():
        if hosts[via].get("connection", "ssh") != "ssh" or hosts[name].get("connection", "ssh") != "ssh":
            raise ValueError(f"{name}: a relay and the hosts behind it are reached over SSH; {via} or {name} is not")
    for name in routes:
        _depth(name, routes)
    count = _relay_count(relays, hosts, routes)
    free = [n for n, o in hosts.items() if n not in routes and o.get("connection", "ssh") == "ssh"]
    if count > len(free):
        warnings.warn(
            f"relays={relays!r}, but {len(free)} hosts could be relays (reached over SSH, with no relay of their own):"
            f" {min(count, len(free))} relays",
            UserWarning,
            stacklevel=3,
        )
        count = len(free)
    if count:
        for start, end in _runs(len(free), count):
            relay = free[start]
            for name in free[start + 1 : end]:
                routes[name] = relay
    return routes


def _relay_count(relays: int | str, hosts: Mapping[str, Any], routes: Mapping[str, str]) -> int:
    if relays == AUTO:
        free = sum(1 for n, o in hosts.items() if n not in routes and o.get("connection", "ssh") == "ssh")
        return round(math.sqrt(free)) if free >= AUTO_MIN_HOSTS else 0
    if not isinstance(relays, int) or isinstance(relays, bool) or relays < 0:
        raise ValueError(f"relays must be a whole number of relays, 0 for none, or {AUTO!r}; not {relays!r}")
    return relays


def _runs(total: int, count: int) -> list[tuple[int, int]]:
    """``count`` runs of near-equal length covering ``range(total)``."""
    bounds = [round(i * total / count) for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(count) if bounds[i] < bounds[i + 1]]


def _depth(name: str, routes: Mapping[str, str]) -> int:
    """How many relays stand before ``name``; ValueError for a loop or a chain over MAX_CHAIN."""
    depth, seen, at = 0, [name], name
    while at in routes:
        at = routes[at]
        depth += 1
        if at in seen:
            raise ValueError(f"relays go round in a loop: {' -> '.join([*seen, at])}")
        if depth > MAX_CHAIN:
            raise ValueError(f"{name}: over {MAX_CHAIN} relays in a row")
        seen.append(at)
    return depth


def waves(names: list[str], routes: Mapping[str, str]) -> list[list[str]]:
    """``names`` in the order to open them: the hosts with no relay first, then those behind them, and so on."""
    by_depth: dict[int, list[str]] = {}
    for name in names:
        by_depth.setdefault(_depth(name, routes), []).append(name)
    return [by_depth[d] for d in sorted(by_depth)]


def relays_of(routes: Mapping[str, str]) -> set[str]:
    """The hosts some other host goes through."""
    return set(routes.values())
