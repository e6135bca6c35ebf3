"""Hostile children: stage 1 replaced by a program that speaks just enough of the protocol to attack.

``hostile_child(attack)`` starts a local child whose stage 1 is ``fanout/_wire.py``,
the helpers of ``tests/fleet/hostile_stage1.py``, then ``attack`` (Python). The master side is the real one:
what these tests check is what the master does with what the child sends.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

import fanout
from fanout import _stage, _wire
from tests.fleet.hostile_stage1 import HELPERS


@pytest.fixture
def hostile_child(monkeypatch):
    """A factory: ``hostile_child(attack, **local_options)`` -> a Context whose child runs ``attack``."""
    opened: list = []

    def start(attack: str, **options) -> fanout.Context:
        source = Path(_wire.__file__).read_text() + HELPERS + attack
        blob = zlib.compress(source.encode())
        with monkeypatch.context() as patch:
            patch.setattr(_stage, "stage1_blob", lambda: blob)
            context = fanout.local(**options)
        opened.append(context)
        return context

    yield start
    for context in opened:
        context._transport.process.kill()  # it may never read its end: no need to wait for it to notice
        context.close()


@pytest.fixture
def healthy_children():
    """A factory of ordinary local children, closed after the test."""
    opened: list = []

    def start(count: int = 1, **options) -> list[fanout.Context]:
        new = [fanout.local(**options) for _ in range(count)]
        opened.extend(new)
        return new

    yield start
    for context in opened:
        context.close()
