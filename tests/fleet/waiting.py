"""The one way tests wait for something to happen: poll a condition, with a limit that only stops a hung test.

A test must not fail because the machine is busy, so the limit is generous and its passing is a failure that
names the event that never came, never a measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WAIT_TIMEOUT = 120.0  # seconds: far above any wait on an idle machine, so only a hang reaches it under load
POLL_INTERVAL = 0.02  # seconds between looks: short, so a test waits hardly longer than the event takes


def wait_until(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float = WAIT_TIMEOUT,
    state: Callable[[], object] | None = None,
) -> T:
    """Return ``condition()``'s first true value; fail naming ``what`` (and ``state()``, if given) when none came
    within ``timeout`` seconds. The condition is asked once more at the limit, so a slow look never fails alone."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            value = condition()
            if value:
                return value
            shown = f"; {state()}" if state is not None else ""
            raise AssertionError(f"waited {timeout:g} s for {what}, which never happened{shown}")
        time.sleep(POLL_INTERVAL)
