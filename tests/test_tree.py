"""fanout._tree: entries of files and trees, their order, hashes and the checks of paths from an untrusted side."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout import _tree


def make_tree(root) -> None:
    (root / "b").mkdir()
    (root / "b" / "inner").mkdir()
    (root / "b" / "inner" / "deep.txt").write_bytes(b"deep")
    (root / "a.txt").write_bytes(b"a" * 10)
    (root / "empty").write_bytes(b"")
    (root / "é ü.txt").write_text("unicode")
    (root / "link").symlink_to("b/inner/deep.txt")
    (root / "dangling").symlink_to("/nowhere/at/all")
    (root / "b-after").mkdir()
    os.chmod(root / "a.txt", 0o640)


def test_a_tree_is_listed_sorted_with_each_directory_before_its_contents(tmp_path) -> None:
    make_tree(tmp_path)
    entries = _tree.walk(tmp_path)
    paths = [e[0] for e in entries]
    assert paths == ["", "a.txt", "b", "b/inner", "b/inner/deep.txt", "b-after", "dangling", "empty", "link", "é ü.txt"]
    by_path = {e[0]: e for e in entries}
    assert by_path[""][1] == "dir"
    assert by_path["a.txt"] == (
        "a.txt",
        "file",
        0o640,
        os.stat(tmp_path / "a.txt").st_mtime_ns,
        10,
        hashlib.sha256(b"a" * 10).hexdigest(),
        "",
    )
    assert by_path["empty"][4:6] == (0, hashlib.sha256(b"").hexdigest())
    assert by_path["link"][1:3] == ("link", 0) and by_path["link"][6] == "b/inner/deep.txt"
    assert by_path["dangling"][6] == "/nowhere/at/all"  # not followed: a link is its target
    assert by_path["b"][1] == "dir" and by_path["b"][4:] == (0, "", "")
    for entry in entries:
        assert _tree.check_entry(entry) == entry


def test_directories_come_before_their_contents_whatever_the_names(tmp_path) -> None:
    for name in ("a", "a-b", "a.b", "a b", "a0"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "z").write_bytes(b"")
    (tmp_path / "a" / "a-b").mkdir()
    seen: set[str] = set()
    for relpath, *_ in _tree.walk(tmp_path, hashes=False):
        parent = relpath.rpartition("/")[0]
        assert relpath == "" or parent in seen
        seen.add(relpath)


def test_a_single_file_is_one_entry_and_a_named_link_is_followed(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"x" * (_tree.CHUNK + 1))
    (tmp_path / "to-f").symlink_to("f")
    for root in ("f", "to-f"):
        [entry] = _tree.walk(tmp_path / root)
        assert entry[:2] == ("", "file") and entry[4] == _tree.CHUNK + 1
    assert _tree.file_sha256(tmp_path / "f") == (hashlib.sha256(b"x" * (_tree.CHUNK + 1)).hexdigest(), _tree.CHUNK + 1)
    with pytest.raises(OSError):
        _tree.file_sha256(tmp_path / "to-f", follow=False)


def test_without_hashes_sizes_come_from_stat(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    [_, entry] = _tree.walk(tmp_path, hashes=False)
    assert entry[4:6] == (5, "")


def test_too_many_entries_are_refused(tmp_path) -> None:
    for i in range(5):
        (tmp_path / str(i)).write_bytes(b"")
    assert len(_tree.walk(tmp_path, limit=6)) == 6
    with pytest.raises(_tree.TooManyEntries, match="more than 5 entries"):
        _tree.walk(tmp_path, limit=5)


def test_missing_roots_and_special_files_fail_clearly(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        _tree.walk(tmp_path / "missing")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match=r"fifo.*is a fifo"):
        _tree.walk(tmp_path)


def test_chunks() -> None:
    assert [_tree.chunks(n) for n in (0, 1, _tree.CHUNK, _tree.CHUNK + 1)] == [0, 1, 1, 2]


@pytest.mark.parametrize("good", ["", "a", "a/b/c", "é/ü", ".hidden", "a..b", "...", "a b", "x" * 255])
def test_safe_relative_paths_pass(good) -> None:
    assert _tree.check_relpath(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "/etc/passwd",
        "..",
        "../x",
        "a/../../x",
        "a/./b",
        ".",
        "a//b",
        "a/",
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\\..\\b",
        "x" * 256,
        "a/" * 2048 + "a",
        b"bytes",
        None,
        7,
        ["a"],
    ],
)
def test_unsafe_relative_paths_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        _tree.check_relpath(bad)


@given(st.text(max_size=60))
def test_any_accepted_path_stays_below_its_root(text) -> None:
    try:
        rel = _tree.check_relpath(text)
    except ValueError:
        return
    joined = os.path.normpath(os.path.join("/root/dir", rel))
    assert joined == "/root/dir" or joined.startswith("/root/dir/")
    assert "\x00" not in rel and "\n" not in rel


GOOD_FILE = ("a", "file", 0o644, 0, 3, "0" * 64, "")


@pytest.mark.parametrize(
    "bad",
    [
        ("a", "file", 0o644, 0, 3, "0" * 64),  # six fields
        ("../a", *GOOD_FILE[1:]),
        ("a", "fifo", 0o644, 0, 3, "0" * 64, ""),
        ("a", "file", 0o10000, 0, 3, "0" * 64, ""),
        ("a", "file", -1, 0, 3, "0" * 64, ""),
        ("a", "file", 0o644, 0, -3, "0" * 64, ""),
        ("a", "file", 0o644, 1 << 63, 3, "0" * 64, ""),
        ("a", "file", 0o644, 0, 3, "0" * 63, ""),
        ("a", "file", 0o644, 0, 3, "G" * 64, ""),
        ("a", "file", 0o644, 0, 3, "0" * 64, "target"),
        ("a", "file", 0o644, 0.5, 3, "0" * 64, ""),
        ("a", "dir", 0o755, 0, 3, "", ""),
        ("a", "link", 0, 0, 0, "", ""),
        ("a", "link", 0, 0, 0, "", "x\x00y"),
        ("a", "link", 0, 0, 0, "", "x" * 4097),
        "not a tuple",
    ],
)
def test_malformed_entries_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        _tree.check_entry(bad)


def test_well_formed_entries_pass() -> None:
    assert _tree.check_entry(list(GOOD_FILE)) == GOOD_FILE
    assert _tree.check_entry(("", "dir", 0o755, -5, 0, "", "")) == ("", "dir", 0o755, -5, 0, "", "")
    assert _tree.check_entry(("l", "link", 0, 0, 0, "", "../x")) == ("l", "link", 0, 0, 0, "", "../x")
