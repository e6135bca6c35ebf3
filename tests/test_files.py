"""fanout._files.write in local children: temporaries of their own, and none left behind."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

import fanout
from fanout import _files

WRITING = "sorted(__import__('fanout._files', fromlist=['_writing'])._writing)"


@pytest.fixture
def children():
    """Local children, closed after the test."""
    opened: list = []

    def factory():
        opened.append(fanout.local())
        return opened[-1]

    yield factory
    for child in opened:
        child.close()


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_two_children_pushing_to_one_filesystem_do_not_collide(children, tmp_path) -> None:
    """Two inventory names for one machine: the same push, the same path, two children."""
    path, data = str(tmp_path / "f"), b"0123456789" * 1000
    digest, token = hashlib.sha256(data).hexdigest(), "0123abcd"
    first, second = children(), children()
    for child in (first, second):
        child.call(_files.write, path, data[:5000], 0, False, 0o644, digest, token)
    for child in (first, second):
        child.call(_files.write, path, data[5000:], 5000, True, 0o644, digest, token)
    assert Path(path).read_bytes() == data
    assert temporaries(tmp_path) == []
    assert first.call(eval, WRITING) == second.call(eval, WRITING) == []


def test_a_temporary_found_in_place_is_not_deleted(children, tmp_path) -> None:
    child = children()
    path = str(tmp_path / "f")
    temporary = Path(child.call(_files._temporary, path, "feed"))
    temporary.write_bytes(b"someone else's")
    with pytest.raises(fanout.RemoteError) as info:
        child.call(_files.write, path, b"data", 0, True, 0o644, hashlib.sha256(b"data").hexdigest(), "feed")
    assert info.value.type_name == "FileExistsError"
    assert temporary.read_bytes() == b"someone else's"


def test_a_damaged_push_leaves_no_temporary(children, tmp_path) -> None:
    child = children()
    with pytest.raises(fanout.RemoteError):
        child.call(_files.write, str(tmp_path / "f"), b"data", 0, True, 0o644, "0" * 64, "feed")
    assert temporaries(tmp_path) == []
    assert child.call(eval, WRITING) == []


def test_a_child_ended_mid_push_deletes_its_temporary(children, tmp_path) -> None:
    child = children()
    path = str(tmp_path / "f")
    child.call(_files.write, path, b"first half", 0, False, 0o644, "0" * 64, "feed")
    assert len(temporaries(tmp_path)) == 1
    child.close()
    deadline = time.monotonic() + 5
    while temporaries(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert temporaries(tmp_path) == []
    assert not Path(path).exists()
