"""fanout's uses of paramiko's private API are checked at import: a paramiko without them is a clear ImportError."""

from __future__ import annotations

import importlib

import paramiko
import pytest

from fanout import _paramiko_internals


def test_the_paramiko_installed_has_every_private_part_fanout_uses() -> None:
    _paramiko_internals._check()  # what import ran; it would have raised


def test_a_paramiko_without_one_of_them_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.delattr(paramiko.Channel, "_check_add_window")
    with pytest.raises(ImportError, match=r"Channel\._check_add_window \(returning a channel's receive window\)"):
        importlib.reload(_paramiko_internals)
    monkeypatch.undo()
    importlib.reload(_paramiko_internals)  # and back as it was
