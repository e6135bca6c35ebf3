"""Which fleet this run asks for, read from the environment (docs/testing.rst lists the variables)."""

from __future__ import annotations

import os

import pytest

from tests.fleet.hosts import EXPECTED_PYTHON

DEFAULT_SUITES = "bullseye,bookworm,trixie"
DEFAULT_PER_SUITE = "4"


def in_ci() -> bool:
    """CI runs must fail, not skip, when the fleet is missing."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def fleet_suites() -> list[str]:
    """The Debian suites this run's fleet spans."""
    raw = os.environ.get("FANOUT_FLEET_SUITES", DEFAULT_SUITES)
    suites = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = set(suites) - set(EXPECTED_PYTHON)
    if unknown:
        raise pytest.UsageError(f"FANOUT_FLEET_SUITES: unknown suite(s) {sorted(unknown)}")
    return suites


def fleet_per_suite() -> int:
    """How many hosts of each suite to start."""
    raw = os.environ.get("FANOUT_FLEET_PER_SUITE", DEFAULT_PER_SUITE)
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"FANOUT_FLEET_PER_SUITE must be a positive integer, not {raw!r}")
    return int(raw)


def fleet_host_names() -> list[str]:
    """Host names known at collection time, so per-host tests are reported per host."""
    return [f"{suite}-{i}" for suite in fleet_suites() for i in range(1, fleet_per_suite() + 1)]
