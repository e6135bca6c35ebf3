"""Digests remembered across pushes: an unchanged tree is not read again, and a change is never hidden."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import fanout
from fanout import _digest_cache, _push, service
from fanout._digest_cache import DigestCache
from fanout._push import FileChunks
from tests.fleet.trees import listing, make_tree, remote_dir, remove

SECOND = 1_000_000_000


def a_file(tmp_path: Path, data: bytes = b"content") -> tuple[Path, os.stat_result, str]:
    path = tmp_path / "f"
    path.write_bytes(data)
    return path, path.stat(), hashlib.sha256(data).hexdigest()


def test_a_digest_is_kept_and_found_by_the_file_s_stat(tmp_path) -> None:
    path, info, digest = a_file(tmp_path)
    cache = DigestCache(str(tmp_path / "cache" / "sha256"))
    cache.remember(info, digest, info.st_ctime_ns + SECOND)
    assert cache.save() and DigestCache(cache.path).get(path.stat()) == digest  # read back from its file
    os.chmod(path, 0o600)  # its ctime moves: the key is another
    assert DigestCache(cache.path).get(path.stat()) is None
    assert oct(os.stat(cache.path).st_mode & 0o777) == oct(0o600)


def test_a_file_changed_within_a_tick_of_its_hashing_is_not_remembered(tmp_path) -> None:
    _, info, digest = a_file(tmp_path)
    cache = DigestCache(str(tmp_path / "cache"))
    cache.remember(info, digest, info.st_mtime_ns + _digest_cache.RACY_NS)  # a write may follow, unseen
    assert cache.get(info) is None
    later = info.st_mtime_ns + 2 * _digest_cache.RACY_NS
    cache.remember(info, digest, max(later, info.st_ctime_ns + _digest_cache.RACY_NS))
    written = DigestCache(str(tmp_path / "other"))
    written.remember(info, digest, info.st_mtime_ns + 2 * _digest_cache.RACY_NS, written=True)  # ctime: ours
    assert written.get(info) == digest


def test_a_malformed_or_huge_cache_file_is_a_miss_and_is_rewritten(tmp_path, monkeypatch) -> None:
    _, info, digest = a_file(tmp_path)
    key = _digest_cache.key_of(info)
    store = tmp_path / "cache"
    store.write_bytes(
        b"garbage\n\xff\xfe\x00\n1 2 3\n"
        + f"{key} {'z' * 64}\n{key} {digest[:63]}\n{key} {digest.upper()}\n".encode()
        + f"x 2 3 4 5 {digest}\n{key} {digest}\n".encode()
    )
    assert DigestCache(str(store)).get(info) == digest  # the one good line
    kept = DigestCache(str(store))
    kept.remember(info, digest, info.st_ctime_ns + SECOND)
    assert kept.save() and store.read_text() == f"{key} {digest}\n"  # the bad lines are not written back
    store.write_bytes(b"junk\n" + f"{key} {digest}\n".encode())
    monkeypatch.setattr(_digest_cache, "MAX_FILE_BYTES", 10)
    assert DigestCache(str(store)).get(info) is None  # too big to read
    cache = DigestCache(str(store))
    cache.remember(info, digest, info.st_ctime_ns + SECOND)
    assert cache.save() and store.read_text() == f"{key} {digest}\n"


def test_the_file_keeps_the_latest_push_s_entries_first_within_its_bound(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_digest_cache, "MAX_ENTRIES", 3)
    store = str(tmp_path / "cache")
    infos = []
    for name in "abcde":
        path = tmp_path / name
        path.write_text(name)
        infos.append(path.stat())
    first = DigestCache(store)
    for info in infos[:3]:
        first.remember(info, "a" * 64, info.st_ctime_ns + SECOND)
    first.save()
    second = DigestCache(store)
    for info in infos[3:]:
        second.remember(info, "b" * 64, info.st_ctime_ns + SECOND)
    second.save()
    lines = Path(store).read_text().splitlines()
    assert len(lines) == 3 and [line[-64:] for line in lines] == ["b" * 64, "b" * 64, "a" * 64]


def test_a_cache_that_cannot_be_written_changes_nothing(tmp_path) -> None:
    _, info, digest = a_file(tmp_path)
    cache = DigestCache(str(tmp_path / "f" / "under-a-file"))
    cache.remember(info, digest, info.st_ctime_ns + SECOND)
    assert cache.save() is False and cache.get(info) == digest


def test_a_bad_setting_is_refused_before_connecting(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(_push.CACHE_SETTING, "sometimes")
    (tmp_path / "f").write_text("x")
    unreachable = fanout.Fleet({"web1": {"host": "192.0.2.1"}}, echo=False)
    with pytest.raises(ValueError, match="FANOUT_DIGEST_CACHE='sometimes': it takes on or off"):
        unreachable.put(tmp_path / "f", "/tmp/f")
    assert unreachable.contexts == {} and unreachable.failures == {}


@pytest.fixture
def cache_on(tmp_path, monkeypatch):
    """Pushes remember digests, the master's in the test's directory; any change is remembered at once."""
    monkeypatch.setenv(_push.CACHE_SETTING, "on")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "master-cache"))
    monkeypatch.setattr(_digest_cache, "RACY_NS", 0)
    _digest_cache._shared.clear()
    yield
    _digest_cache._shared.clear()


@pytest.fixture
def own_pool():
    with service.Pool(16).serve_children() as pool:
        yield pool.add(FileChunks())


@pytest.mark.fleet
@pytest.mark.parametrize("target", ["local", "bookworm"])
def test_an_unchanged_tree_is_not_read_again_and_a_hidden_change_still_travels(
    target, request, cache_on, own_pool, tmp_path
) -> None:
    open_child = request.getfixturevalue("open_child") if target == "local" else None
    context = open_child() if open_child else _fleet_child(request)
    site = make_tree(tmp_path / "site")
    dest = remote_dir(context)

    def set_cache_home(path: str) -> None:  # by value: the tests package is not the hosts'
        os.environ["XDG_CACHE_HOME"] = path

    context.call(set_cache_home, f"{dest}.cache")  # the host's cache: the test's too
    try:
        first = context.put(str(site) + "/", dest)
        content = sum(e[4] for e in first_entries(site))
        assert first.bytes_sent == content and own_pool.bytes_read == content
        again = context.put(str(site) + "/", dest)
        assert again.bytes_sent == 0 and own_pool.bytes_read == content  # the master read nothing again
        remembered = context.call(Path.read_text, Path(f"{dest}.cache/fanout/{_digest_cache.NAME}"))
        assert len(remembered.splitlines()) == sum(1 for e in first_entries(site) if e[1] == "file")
        # The same size and mtime, other bytes: on the host, then on the master. Each write moves the ctime.
        target_file = f"{dest}/sub/three-chunks.bin"
        old = context.call(os.stat, target_file)
        context.call(Path.write_bytes, Path(target_file), b"X" * old.st_size)
        context.call(os.utime, target_file, ns=(old.st_atime_ns, old.st_mtime_ns))
        fixed = context.put(str(site) + "/", dest)
        assert fixed.changed_paths == ("sub/three-chunks.bin",) and fixed.bytes_sent == old.st_size
        source = site / "a.txt"
        kept = source.stat()
        source.write_bytes(b"ALPHA\n")
        os.utime(source, ns=(kept.st_atime_ns, kept.st_mtime_ns))
        changed = context.put(str(site) + "/", dest)
        assert changed.changed_paths == ("a.txt",)
        assert context.call(Path.read_bytes, Path(f"{dest}/a.txt")) == b"ALPHA\n"
        assert listing(context.call(_push._tree.walk, dest)) == listing(first_entries(site))
    finally:
        remove(context, dest)
        remove(context, f"{dest}.cache")


def first_entries(site: Path) -> list:
    return _push._tree.walk(site)


def _fleet_child(request) -> fanout.Context:
    the_fleet = request.getfixturevalue("fleet")
    host = next(h for h in the_fleet.hosts if h.suite == "bookworm")
    context = fanout.connect(host.address, **host.connect_options())
    request.addfinalizer(context.close)
    return context
