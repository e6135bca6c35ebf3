"""The temporaries a push writes: its own, never someone else's, and none left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fanout
from fanout import _files, _push, _push_remote, _tree

WRITING = "sorted(__import__('fanout._files', fromlist=['_writing'])._writing)"


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.fleet
def test_two_children_pushing_to_one_filesystem_do_not_collide(tmp_path) -> None:
    """Two inventory names for one machine: the same push, the same path, two children writing at once."""
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * _push.CHUNK + 5))
    target = tmp_path / "dest" / "f.bin"
    target.parent.mkdir()
    hosts = {"one": {"connection": "local"}, "two": {"connection": "local"}}
    with fanout.Fleet(hosts, echo=False) as fleet:
        results = fleet.put(source, str(target))
        assert {name: result.ok for name, result in results.items()} == {"one": True, "two": True}, results
        assert {name: result.value for name, result in fleet.call(eval, WRITING).items()} == {"one": [], "two": []}
    assert target.read_bytes() == source.read_bytes()
    assert temporaries(target.parent) == []


def test_a_temporary_found_in_place_is_not_deleted(tmp_path) -> None:
    path = str(tmp_path / "f")
    entry = ("", _tree.FILE, 0o644, 0, 4, "", "")
    planted = Path(_files._temporary(path, "feed"))
    planted.write_bytes(b"someone else's")
    incoming = _push_remote._Incoming(0, entry, path, str(planted), _push.CHUNK)
    with pytest.raises(FileExistsError):
        incoming.open()
    incoming.discard()
    assert planted.read_bytes() == b"someone else's" and str(planted) not in _files._writing


def test_a_temporary_begun_is_deleted_when_given_up(tmp_path) -> None:
    path = str(tmp_path / "f")
    incoming = _push_remote._Incoming(0, ("", _tree.FILE, 0o644, 0, 4, "", ""), path, _files._temporary(path, "ab"), 4)
    os.write(incoming.open(), b"ha")
    assert temporaries(tmp_path) == [Path(incoming.temporary).name]
    incoming.discard()
    assert temporaries(tmp_path) == [] and incoming.temporary not in _files._writing
