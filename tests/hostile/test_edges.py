"""Edges of the API (class 5): absurd timeouts are refused at once, and the deadline thread survives anything."""

from __future__ import annotations

import math
import threading
import time

import pytest

import fanout
from fanout import _timeouts
from fanout._deadlines import DEADLINES, Deadlines

ABSURD = [math.inf, -math.inf, math.nan, 0, -1, 1e308, _timeouts.MAX_TIMEOUT * 2, True, "10", None]


@pytest.mark.parametrize("value", [v for v in ABSURD if v is not None], ids=repr)  # None: ssh_config's ConnectTimeout
def test_connect_refuses_an_absurd_connect_timeout_before_connecting(value) -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        fanout.connect("127.0.0.1", port=1, connect_timeout=value, ssh_config=False)  # loopback, were it to try


@pytest.mark.parametrize("value", ABSURD, ids=repr)
def test_a_fleet_refuses_an_absurd_connect_timeout(value) -> None:
    with pytest.raises(ValueError, match="connect_timeout"):
        fanout.Fleet({"h": {"connection": "local"}}, connect_timeout=value)


@pytest.mark.parametrize("value", [v for v in ABSURD if v is not None], ids=repr)
def test_fleet_calls_refuse_an_absurd_timeout_before_connecting(value) -> None:
    fleet = fanout.Fleet({"h": {"connection": "local"}})
    for attempt in (
        lambda: fleet.call(abs, 1, timeout=value),
        lambda: fleet.run("true", timeout=value),
        lambda: list(fleet.as_completed(abs, 1, timeout=value)),
    ):
        with pytest.raises(ValueError, match="timeout"):
            attempt()
    assert fleet.contexts == {}  # nothing was opened


def test_a_deadline_must_be_a_finite_time() -> None:
    for when in (math.inf, math.nan, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            DEADLINES.at(when, lambda: None)


def test_the_deadline_thread_survives_failing_callbacks() -> None:
    deadlines = Deadlines()
    fired = threading.Event()

    def fails() -> None:
        raise RuntimeError("a callback that fails")

    def exits() -> None:
        raise SystemExit(3)  # not even this stops the thread

    now = time.monotonic()
    deadlines.at(now, fails)
    deadlines.at(now, exits)
    deadlines.at(now + 0.01, fired.set)
    assert fired.wait(30)


def test_a_far_deadline_does_not_stop_nearer_ones() -> None:
    deadlines = Deadlines()
    fired = threading.Event()
    deadlines.at(time.monotonic() + _timeouts.MAX_TIMEOUT, lambda: None)  # waits are cut to an hour at most
    deadlines.at(time.monotonic() + 0.01, fired.set)
    assert fired.wait(30)
