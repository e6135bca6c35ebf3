"""Fetch: a host's file or tree into dest_dir/<host>/<path>; unit tests in this process, then on every suite."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import stat
import tempfile
import uuid
from concurrent.futures import Future
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fanout
from fanout import _fetch, _fetch_remote, _tree
from fanout._fetch import Fetched, FetchError
from fanout.errors import RemoteError
from fanout.fleet import FAILED, OK
from tests.fleet.suites import fleet_suites

TREE = '''
import os
import shutil

BIG = 3 * 1024 * 1024 + 7  # four pieces, the last short
MTIME = 1_600_000_000_123_456_789
NAME = "ünïcødé ✓.txt"
FILES = {
    "a.txt": (b"alpha\\n", 0o640),
    "empty": (b"", 0o644),
    "setuid": (b"#!/bin/sh\\n", 0o4755),
    NAME: ("unicode\\n".encode(), 0o600),
    "sub/big.bin": ((bytes(range(256)) * (BIG // 256 + 1))[:BIG], 0o644),
}
LINKS = {"sub/link": "../a.txt", "dirlink": "sub"}


def make_tree(root):
    """What a fetch must keep: nested and empty directories, empty and multi-piece files, links, modes, unicode."""
    os.makedirs(os.path.join(root, "sub", "deeper"))
    for rel, (data, mode) in FILES.items():
        path = os.path.join(root, rel)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        os.utime(path, ns=(MTIME, MTIME))
    for rel, target in LINKS.items():
        os.symlink(target, os.path.join(root, rel))
    os.chmod(os.path.join(root, "sub"), 0o750)
    os.utime(os.path.join(root, "sub"), ns=(MTIME, MTIME))
    return root


def rewrite(path, data):
    with open(path, "wb") as f:
        f.write(data)


def remove_tree(root):
    shutil.rmtree(root, ignore_errors=True)
'''


@pytest.fixture
def tree(user_modules):
    """The module above: it makes the same tree here and on hosts, and says what it holds."""
    return importlib.import_module(f"fetch_tree_{user_modules({'fetch_tree_{s}.py': TREE})}")


def check_tree(local: Path, tree) -> None:
    """``local`` holds the tree ``tree.make_tree`` makes, modes as fetch keeps them."""
    for rel, (data, mode) in tree.FILES.items():
        info = (local / rel).lstat()
        assert (local / rel).read_bytes() == data, rel
        assert stat.S_IMODE(info.st_mode) == _fetch.file_mode(mode), rel
        assert info.st_mtime_ns == tree.MTIME, rel
    assert stat.S_IMODE((local / "setuid").stat().st_mode) == 0o755  # never setuid here
    for rel, target in tree.LINKS.items():
        assert os.readlink(local / rel) == target
    assert (local / "sub" / "deeper").is_dir() and not any((local / "sub" / "deeper").iterdir())
    assert stat.S_IMODE((local / "sub").stat().st_mode) == 0o750
    assert (local / "sub").stat().st_mtime_ns == tree.MTIME
    assert not [p for p in local.rglob("*") if ".fanout-fetch-" in p.name]  # no temporary left


def below(dest: Path, host: str, path: str | Path) -> Path:
    """Where a non-flat fetch stores ``path`` of ``host``."""
    return dest / host / str(path).lstrip("/")


# -- in this process: the host's side called directly -----------------------------------------


class FakeContext:
    """Runs the host's side of a fetch here, as a child would, or as ``answer`` says: no process at all."""

    def __init__(self, name: str = "web1", answer=None) -> None:
        self.name = name
        self._host = self
        self.answer = answer or (lambda fn, args: fn(*args))
        self.calls: list[tuple[str, tuple]] = []

    def call_async(self, fn, *args) -> Future:
        self.calls.append((fn.__name__, args))
        future: Future = Future()
        try:
            future.set_result(self.answer(fn, args))
        except Exception as exc:
            future.set_exception(RemoteError(self.name, type(exc).__name__, str(exc), ""))
        return future

    def reads(self) -> int:
        return sum(name == "read_many" for name, _ in self.calls)


def test_a_tree_arrives_whole_and_a_second_fetch_sends_nothing(tree, tmp_path) -> None:
    src = tree.make_tree(str(tmp_path / "src"))
    dest = tmp_path / "dest"
    first = _fetch.fetch(FakeContext(), src, dest)
    local = below(dest, "web1", src)
    check_tree(local, tree)
    assert first.dest == str(local)
    assert first.bytes_received == sum(len(data) for data, _ in tree.FILES.values())
    assert len(first.changed) == 10 and first.unchanged == [] and first.errors == []  # 3 dirs, 5 files, 2 links
    again = FakeContext()
    second = _fetch.fetch(again, src, dest)
    assert second.bytes_received == 0 and again.reads() == 0
    assert second.changed == [] and sorted(second.unchanged) == sorted(first.changed)


def test_a_file_whose_local_copy_differs_is_sent_again_and_mode_and_mtime_follow(tree, tmp_path) -> None:
    src = tree.make_tree(str(tmp_path / "src"))
    dest = tmp_path / "dest"
    _fetch.fetch(FakeContext(), src, dest)
    local = below(dest, "web1", src)
    (local / "a.txt").write_bytes(b"edited here")
    os.chmod(local / "empty", 0o600)
    result = _fetch.fetch(FakeContext(), src, dest)
    assert result.changed == [str(local / "a.txt")]
    assert result.bytes_received == len(b"alpha\n")
    check_tree(local, tree)


def test_flat_stores_a_file_at_dest_or_under_its_name(tree, tmp_path, monkeypatch) -> None:
    src = tree.make_tree(str(tmp_path / "src"))
    monkeypatch.chdir(tmp_path)
    assert _fetch.fetch(FakeContext(), f"{src}/a.txt", "here.txt", flat=True).dest == "here.txt"
    assert (tmp_path / "here.txt").read_bytes() == b"alpha\n"
    fetched = _fetch.fetch(FakeContext(), f"{src}/a.txt", tmp_path / "out" / "a.web1", flat=True)
    assert fetched.dest == str(tmp_path / "out" / "a.web1")
    assert (tmp_path / "out" / "a.web1").read_bytes() == b"alpha\n"
    _fetch.fetch(FakeContext(), f"{src}/a.txt", f"{tmp_path}/dir/", flat=True)
    assert (tmp_path / "dir" / "a.txt").read_bytes() == b"alpha\n"
    _fetch.fetch(FakeContext(), f"{src}/", f"{tmp_path}/trees/", flat=True)
    check_tree(tmp_path / "trees" / "src", tree)


def test_a_file_changed_while_being_read_fails_alone(tree, tmp_path) -> None:
    src = tree.make_tree(str(tmp_path / "src"))

    def answer(fn, args):
        if fn is _fetch_remote.read_many and ("sub/big.bin", 2 * _fetch.READ_SIZE, _fetch.READ_SIZE) in args[1]:
            tree.rewrite(f"{src}/sub/big.bin", b"y" * tree.BIG)  # changed after the first two pieces
        return fn(*args)

    with pytest.raises(FetchError, match=r"1 of 10 entries not fetched: .*big.bin: it changed while being read"):
        _fetch.fetch(FakeContext(answer=answer), src, tmp_path / "dest")
    local = below(tmp_path / "dest", "web1", src)
    assert not (local / "sub" / "big.bin").exists()
    assert (local / "a.txt").read_bytes() == b"alpha\n"  # the others arrived
    assert not [p for p in local.rglob("*") if ".fanout-fetch-" in p.name]


def test_a_file_removed_after_the_listing_fails_alone_and_names_itself(tree, tmp_path) -> None:
    src = tree.make_tree(str(tmp_path / "src"))

    def answer(fn, args):
        if fn is _fetch_remote.read_many and any(rel == "a.txt" for rel, _, _ in args[1]):
            os.unlink(f"{src}/a.txt")
        return fn(*args)

    with pytest.raises(FetchError) as info:
        _fetch.fetch(FakeContext(answer=answer), src, tmp_path / "dest")
    local = below(tmp_path / "dest", "web1", src)
    assert info.value.fetched.errors == [(str(local / "a.txt"), info.value.fetched.errors[0][1])]
    assert "FileNotFoundError" in info.value.fetched.errors[0][1]
    assert (local / "empty").exists()


def test_missing_source_names_the_path(tmp_path) -> None:
    with pytest.raises(RemoteError, match=r"FileNotFoundError.*/no/such/file"):
        _fetch.fetch(FakeContext(), "/no/such/file", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_what_is_in_the_way_here_is_never_followed_nor_replaced(tree, tmp_path) -> None:
    src = tree.make_tree(str(tmp_path / "src"))
    local = below(tmp_path / "dest", "web1", src)
    outside = tmp_path / "outside"
    outside.mkdir()
    local.mkdir(parents=True)
    (local / "sub").symlink_to(outside)  # a link where a directory goes
    (local / "a.txt").mkdir()  # a directory where a file goes
    with pytest.raises(FetchError) as info:
        _fetch.fetch(FakeContext(), src, tmp_path / "dest")
    errors = dict(info.value.fetched.errors)
    assert "is in the way" in errors[str(local / "sub")]
    for rel in ("sub/deeper", "sub/big.bin", "sub/link"):
        assert errors[str(local / rel)] == "its directory could not be made"
    assert "a directory in the way" in errors[str(local / "a.txt")]
    assert list(outside.iterdir()) == []
    assert (local / "a.txt").is_dir() and os.readlink(local / "sub") == str(outside)
    assert (local / "empty").exists()
    assert not [p for p in local.rglob("*") if ".fanout-fetch-" in p.name]


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    local = below(tmp_path / "dest", "web1", tmp_path / "f")
    local.parent.mkdir(parents=True)
    local.symlink_to(outside)
    _fetch.fetch(FakeContext(), str(tmp_path / "f"), tmp_path / "dest")
    assert not local.is_symlink() and local.read_bytes() == b"data"
    assert outside.read_bytes() == b"keep"


def test_an_interrupted_fetch_leaves_no_temporary(tree, tmp_path) -> None:
    src = tree.make_tree(str(tmp_path / "src"))
    seen: list[int] = []

    def wait(future):
        seen.append(1)
        if len(seen) == 4:  # the listing, the small files, big.bin's first piece: interrupted inside big.bin
            assert [p for p in tmp_path.rglob("*") if ".fanout-fetch-" in p.name]  # one is being written
            raise KeyboardInterrupt
        return future.result()

    request = _fetch.request(src, tmp_path / "dest", flat=False, max_bytes=None, max_entries=None)
    with pytest.raises(KeyboardInterrupt):
        _fetch.fetch_host(FakeContext(), "web1", request, wait)
    local = below(tmp_path / "dest", "web1", src)
    assert not [p for p in local.rglob("*") if ".fanout-fetch-" in p.name]
    assert not (local / "sub" / "big.bin").exists()


def test_max_bytes_is_checked_before_anything_is_pulled(tree, tmp_path) -> None:
    src = tree.make_tree(str(tmp_path / "src"))
    context = FakeContext()
    with pytest.raises(FetchError, match=r"is 3145735 bytes, over max_bytes=1000"):
        _fetch.fetch(context, src, tmp_path / "dest", max_bytes=1000)
    assert context.reads() == 0
    with pytest.raises(FetchError, match=r"it would store \d+ bytes, over max_bytes=3145740"):
        _fetch.fetch(context, src, tmp_path / "dest", max_bytes=tree.BIG + 5)
    assert context.reads() == 0 and not [p for p in (tmp_path / "dest").rglob("*") if not p.is_dir()]
    with pytest.raises(RemoteError, match="TooManyEntries"):
        _fetch.fetch(context, src, tmp_path / "dest", max_entries=3)


def test_a_listing_of_many_pages_is_paged_and_forgotten(tmp_path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(_fetch_remote.PAGE + 5):
        (root / f"f{i}").write_text(str(i))
    context = FakeContext()
    fetched = _fetch.fetch(context, str(root), tmp_path / "dest")
    assert len(fetched.changed) == _fetch_remote.PAGE + 6
    assert [name for name, _ in context.calls].count("page") == 1
    assert _fetch_remote._scans == {}


# -- the checks, alone --------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["", ".", "..", "../x", "a/b", "a\x00b", "a\nb", "x" * 256])
def test_a_host_name_that_cannot_be_a_directory_is_refused(host) -> None:
    with pytest.raises(ValueError, match=r"host name|empty host"):
        _fetch.check_host_name(host)


def test_a_host_name_that_is_a_name_is_taken() -> None:
    for host in ("web1", "web1.example.com", "[::1]:2222", "ünï"):
        assert _fetch.check_host_name(host) == host


def test_a_fleet_host_named_like_a_path_fails_alone(tmp_path) -> None:
    request = _fetch.request("/etc/hosts", tmp_path, flat=False, max_bytes=None, max_entries=None)
    with pytest.raises(FetchError, match=r"fetch from \.\./x: host name '\.\./x' cannot name a directory"):
        _fetch.fetch_host(FakeContext("../x"), "../x", request, lambda f: f.result())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("src", "dest", "flat", "error"),
    [
        ("etc/hosts", "d", False, "absolute path"),
        ("/etc/../x", "d", False, "'..'"),
        ("/etc/a\x00b", "d", False, "NUL"),
        ("/etc/hosts", "", False, "local path"),
        ("/etc/hosts", ".", True, "must name"),
        ("/", "d/", True, "must name"),
    ],
)
def test_a_request_is_checked_before_connecting(src, dest, flat, error) -> None:
    with pytest.raises(ValueError, match=error):
        _fetch.request(src, dest, flat=flat, max_bytes=None, max_entries=None)


@pytest.mark.parametrize("limits", [{"max_bytes": -1}, {"max_bytes": 1.5}, {"max_entries": 0}, {"max_entries": True}])
def test_absurd_limits_are_refused(limits) -> None:
    with pytest.raises(ValueError, match="max_"):
        _fetch.request("/x", "d", flat=False, **{"max_bytes": None, "max_entries": None, **limits})


def test_requests_are_normalized() -> None:
    request = _fetch.request("//var/./log//app.log", "logs", flat=False, max_bytes=None, max_entries=None)
    assert request.src == "/var/log/app.log" and request.parts == ("var", "log", "app.log")
    assert request.max_bytes == _fetch.MAX_BYTES and request.max_entries == _fetch.MAX_ENTRIES


@pytest.mark.parametrize(
    ("parts", "points_to", "floor", "made"),
    [
        (("a", "l"), "b", 0, True),
        (("a", "l"), "../b", 0, True),
        (("a", "l"), "../../b", 0, False),  # above the host's directory
        (("a", "b", "l"), "../../x/y", 0, True),
        (("a", "l"), "/etc/passwd", 0, False),
        (("a", "l"), "x/../../b", 0, False),  # climbs after descending: refused whatever x is
        (("a", "b", "l"), "x/../y", 0, False),  # x -> ../.. would make it climb out
        (("a", "l"), "./../b", 0, True),
        (("d", "l"), "..", 1, False),  # flat: the tree's root is the floor
        (("d", "l"), "x", 1, True),
        (("d", "s", "l"), "../x", 1, True),
    ],
)
def test_links_are_made_only_within_the_hosts_directory(parts, points_to, floor, made) -> None:
    assert (_fetch._link_refusal(parts, points_to, floor) == "") is made


@given(
    st.lists(st.sampled_from(["a", "..", ".", "", "b"]), max_size=8).map("/".join),
    st.integers(0, 3),
    st.integers(0, 3),
)
def test_a_link_made_never_points_above_its_floor(points_to, depth, floor) -> None:
    parts = (*(f"d{i}" for i in range(depth + floor)), "l")
    if _fetch._link_refusal(parts, points_to, floor):
        return
    level = len(parts) - 1  # resolved as the filesystem would, through real directories only
    for part in points_to.split("/"):
        level += -1 if part == ".." else 0 if part in ("", ".") else 1
        assert level >= floor


def entry(rel, kind="file", size=0, target="", mode=0o644):
    sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" if kind == "file" else ""
    return (rel, kind, mode if kind != "link" else 0, 0, size, sha, target)


def listing_of(entries, count=None, prefix=("x",), max_bytes=100):
    request = _fetch.request("/x", "d", flat=False, max_bytes=max_bytes, max_entries=None)
    listing = _fetch._Listing("web1", request, prefix, 0)
    listing.count = len(entries) if count is None else count
    listing.add_page(list(entries))
    return listing


ROOT = entry("", "dir")


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([entry("a")], "does not start with the source"),
        ([ROOT, entry("../../etc/x")], "'..' component"),
        ([ROOT, entry("/abs")], "absolute"),
        ([ROOT, entry("a\x00b")], "NUL"),
        ([ROOT, entry("a//b")], "'' component"),
        ([ROOT, entry("./a")], "'.' component"),
        ([ROOT, entry("a"), entry("a")], "twice"),
        ([ROOT, entry("a"), entry("a/b")], "below something it did not list as a directory"),
        ([ROOT, entry("l", "link", target="d"), entry("l/b")], "below something"),
        ([ROOT, entry("d/b")], "below something"),
        ([ROOT, entry("", "dir")], "root twice"),
        ([ROOT, entry("a", "fifo")], "kind"),
        ([ROOT, entry("a", size=-1)], "size"),
        ([ROOT, entry("a", size=101)], "over max_bytes=100"),
        ([ROOT, entry("a", mode=0o17777)], "mode"),
        ([ROOT, ("a", "file", 0, 0, 0, "zz", "")], "sha256"),
        ([ROOT, ("a", "file", 0, 0, 0)], "7-tuple"),
        ([ROOT, "a"], "7-tuple"),
        ([ROOT, entry("x" * 256)], "over 255 bytes"),
        ([entry("", "file"), entry("b")], "below a file"),
        ([entry("", "link", target="x")], "does not start"),
    ],
)
def test_a_listing_no_honest_host_sends_fails_the_host(entries, error) -> None:
    with pytest.raises(FetchError, match=error) as info:
        listing_of(entries)
    assert info.value.host == "web1"


def test_a_page_must_hold_what_was_announced() -> None:
    with pytest.raises(FetchError, match="more entries than"):
        listing_of([ROOT, entry("a")], count=1)
    with pytest.raises(FetchError, match="a page must be"):
        listing_of([])
    with pytest.raises(FetchError, match="a page must be"):
        listing_of([ROOT] + [entry(f"f{i}") for i in range(_fetch_remote.PAGE)], count=5000)


def test_names_a_host_may_hold_but_that_are_not_written_here_are_refused_alone() -> None:
    listing = listing_of([ROOT, entry("a\nb", "dir"), entry("a\nb/c"), entry("c\rd"), entry("e\\f"), entry("ok")])
    refused = {e.rel: e.refused for e in listing.entries if e.refused}
    assert set(refused) == {"a\nb", "a\nb/c", "c\rd", "e\\f"}
    assert "newline" in refused["a\nb"] and refused["a\nb/c"] == "its directory is not fetched"


def test_a_link_pointing_outside_is_refused_alone() -> None:
    listing = listing_of([ROOT, entry("up", "link", target="../../../etc"), entry("abs", "link", target="/etc")])
    assert all("is not made here" in e.refused for e in listing.entries[1:])


def test_local_modes_never_keep_setuid_setgid_or_sticky() -> None:
    assert _fetch.file_mode(0o7777) == 0o777 and _fetch.file_mode(0o000) == 0o400
    assert _fetch.dir_mode(0o1755) == 0o755 and _fetch.dir_mode(0o000) == 0o700


def test_fetched_entries_all_come_from_the_shared_checks() -> None:
    assert _tree.check_entry(entry("a")) == entry("a")  # what the fake listings above are built of


# -- on every suite ------------------------------------------------------------------------------


@pytest.fixture(params=fleet_suites())
def host(request, fleet):
    """The first fleet host of one suite."""
    return next(h for h in fleet.hosts if h.suite == request.param)


def fleet_of(fleet, *extra_local: str) -> dict:
    """Fleet options for every host of the test fleet, and local children named ``extra_local``."""
    hosts = {h.name: {**h.connect_options(), "host": h.address} for h in fleet.hosts}
    return {**hosts, **{name: {"connection": "local"} for name in extra_local}}


def test_a_file_and_a_tree_from_one_host(open_child, tree, tmp_path) -> None:
    context = open_child()
    root = f"/tmp/fetch-{uuid.uuid4().hex}"
    context.call(tree.make_tree, root)
    try:
        dest = tmp_path / "dest"
        one = context.fetch(f"{root}/sub/big.bin", dest)
        assert one.changed == [str(below(dest, context.name, f"{root}/sub/big.bin"))]
        assert Path(one.changed[0]).read_bytes() == tree.FILES["sub/big.bin"][0]
        first = context.fetch(root, dest)
        check_tree(below(dest, context.name, root), tree)
        assert first.bytes_received == sum(len(data) for data, _ in tree.FILES.values()) - tree.BIG  # big.bin was there
        second = context.fetch(root + "/", dest)
        assert second.bytes_received == 0 and second.changed == [] and len(second.unchanged) == 10
        flat = context.fetch(f"{root}/", tmp_path / "flat", flat=True)
        assert flat.dest == str(tmp_path / "flat")
        check_tree(tmp_path / "flat", tree)
    finally:
        context.call(tree.remove_tree, root)


def test_several_hosts_each_into_their_own_directory(fleet, tree, tmp_path) -> None:
    root = f"/tmp/fetch-{uuid.uuid4().hex}"
    with fanout.Fleet(fleet_of(fleet, "local"), echo=False) as the_fleet:
        made = the_fleet.call(tree.make_tree, root)
        assert all(r.ok for r in made.values()), made
        try:
            the_fleet.run(f"echo {{}} > {root}/only-here-$(hostname)", check=True)
            results = the_fleet.fetch(root, tmp_path / "dest")
            again = the_fleet.fetch(root, tmp_path / "dest")
            missing = the_fleet.fetch(f"{root}/no-such-file", tmp_path / "dest")
        finally:
            the_fleet.call(tree.remove_tree, root)
    assert set(results) == {h.name for h in fleet.hosts} | {"local"}
    for name, result in results.items():
        assert result.status == OK, result
        local = below(tmp_path / "dest", name, root)
        check_tree(local, tree)
        assert len([p for p in local.iterdir() if p.name.startswith("only-here-")]) == 1  # its own, no other's
        assert again[name].value.bytes_received == 0 and again[name].value.changed == []
        assert missing[name].status == FAILED
        assert "FileNotFoundError" in str(missing[name].error) and f"{root}/no-such-file" in str(missing[name].error)


def test_flat_takes_one_host_and_is_checked_before_connecting(tmp_path) -> None:
    the_fleet = fanout.Fleet({"a": {"connection": "local"}, "b": {"connection": "local"}}, echo=False)
    with pytest.raises(ValueError, match="flat=True stores one host's copy"):
        the_fleet.fetch("/etc/hostname", tmp_path / "h", flat=True)
    with pytest.raises(ValueError, match="absolute path"):
        the_fleet.fetch("etc/hostname", tmp_path / "h")
    assert the_fleet.contexts == {} and list(tmp_path.iterdir()) == []


def test_flat_from_a_fleet_of_one(host, tmp_path) -> None:
    with fanout.Fleet({host.name: {**host.connect_options(), "host": host.address}}, echo=False) as one:
        result = one.fetch("/etc/hostname", tmp_path / "hostname.txt", flat=True)[host.name]
        assert result.ok, result
        assert isinstance(result.value, Fetched)
        assert (tmp_path / "hostname.txt").read_text().strip() == one.run("hostname")[host.name].value.stdout.strip()


def test_a_connection_lost_mid_fetch_leaves_no_partial_file(open_child, tmp_path) -> None:
    """The child is killed while a large file is arriving: the fetch fails, and nothing half-written stays."""
    context, observer = open_child(), open_child()
    remote = observer.call(tempfile.mkdtemp, prefix="fanout-fetch-")
    big = f"{remote}/big.bin"
    observer.call(Path.write_bytes, Path(big), os.urandom(16 << 20))
    dest = tmp_path / "dest"
    waits: list[int] = []

    def wait(future):
        waits.append(1)
        if len(waits) == 3:  # the listing, then the first pieces of big.bin: a temporary is being written
            assert [p for p in dest.rglob("*") if ".fanout-fetch-" in p.name]
            observer.call(os.kill, context.pid, signal.SIGKILL)
        return future.result(timeout=60)

    request = _fetch.request(big, dest, flat=False, max_bytes=None, max_entries=None)
    try:
        with pytest.raises(fanout.ConnectionLost):
            _fetch.fetch_host(context, "web1", request, wait)
        assert len(waits) >= 3
        assert [p for p in dest.rglob("*") if not p.is_dir()] == []  # no temporary, no partial big.bin
    finally:
        observer.call(shutil.rmtree, remote, True)
