"""Timeouts given by users, checked once at the edge: a non-finite or absurd one would break the deadline machinery."""

from __future__ import annotations

import math

MAX_TIMEOUT = 30 * 24 * 3600.0  # seconds; past a month a timeout is a typo, and ``inf`` overflows thread waits


def check_timeout(name: str, value: object, *, allow_none: bool = False) -> float | None:
    """``value`` as seconds, or :class:`ValueError` naming ``name`` when it is not a usable timeout."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds{' (or None)' if allow_none else ''}, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a finite number of seconds above 0, not {value!r}")
    if seconds > MAX_TIMEOUT:
        raise ValueError(f"{name} of {seconds:g} s is over the maximum of {MAX_TIMEOUT:g} s (30 days)")
    return seconds
