"""Push: a file or a tree to hosts, read once for the whole fleet; unit tests here, then on every suite."""

from __future__ import annotations

import hashlib
import os
import threading
import types
import uuid
from concurrent.futures import Future
from pathlib import Path

import pytest

import fanout
from fanout import _push, _push_remote, _tree, service
from fanout._push import FileChunks, PushFailed, Transfer
from fanout.errors import RemoteError
from fanout.fleet import FAILED, OK
from tests.fleet import hosts
from tests.fleet.suites import fleet_suites
from tests.fleet.trees import MTIME, listing, make_tree, remote_dir, remove
from tests.fleet.waiting import WAIT_TIMEOUT, wait_until

CHUNK = _push.CHUNK
BIG_FILE = 200 * 1000 * 1000  # bytes of the large file pushed to every suite, as the issue asks


# -- where the source lands, and bad arguments: no processes ------------------------------------------


@pytest.mark.parametrize(
    ("src", "dest", "is_dir", "root"),
    [
        ("site/", "/srv/site", True, "/srv/site"),  # contents into dest
        ("site/", "/srv/site/", True, "/srv/site"),
        ("site", "/srv/", True, "/srv/site"),  # the directory itself, inside dest
        ("site", "/srv", True, "/srv/site"),
        ("/a/b/site", "/srv", True, "/srv/site"),
        ("app.conf", "/etc/app.conf", False, "/etc/app.conf"),  # a file: its full path
        ("conf/app.conf", "/etc/", False, "/etc/app.conf"),  # ... or the directory it goes into
        ("app.conf", "/", False, "/app.conf"),
        ("app.conf", "/etc//app.conf", False, "/etc/app.conf"),
    ],
)
def test_where_the_source_lands_follows_rsync(src, dest, is_dir, root) -> None:
    assert _push.remote_root(src, dest, is_dir) == root


def test_bad_arguments_fail_before_anything_connects(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"f")
    unreachable = fanout.Fleet({"nowhere": {"host": "192.0.2.1", "connect_timeout": 0.5}}, echo=False)
    with pytest.raises(FileNotFoundError, match="no such file or directory to put") as info:
        unreachable.put(tmp_path / "missing", "/tmp/x")
    assert "\n" not in str(info.value)
    for bad, match in [
        ({"dest": "relative/path"}, "absolute"),
        ({"dest": "/tmp/a\x00b"}, "NUL"),
        ({"mode": 0o10000}, "mode"),
        ({"mode": "644"}, "mode"),
        ({"mode": True}, "mode"),
        ({"owner": ""}, "owner"),
        ({"group": 1.5}, "group"),
        ({"delete": "yes"}, "delete"),
        ({"delete": True}, "is a file"),
    ]:
        options = {"dest": "/tmp/x", **bad}
        with pytest.raises(ValueError, match=match):
            unreachable.put(tmp_path / "f", **options)
    with pytest.raises(ValueError, match="empty the host"):
        unreachable.put(str(tmp_path) + "/", "/", delete=True)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="is a fifo"):
        unreachable.put(tmp_path, "/tmp/x")
    assert unreachable.contexts == {} and unreachable.failures == {}  # nothing was tried


def test_a_plan_is_the_walked_source(tmp_path) -> None:
    make_tree(tmp_path / "site")
    plan = _push.prepare(str(tmp_path / "site") + "/", "/srv/site", mode=0o600, owner="www", group=33)
    assert plan.dest == "/srv/site" and plan.entries == _tree.walk(tmp_path / "site", hashes=False)  # hashed later
    assert plan.size == sum(e[4] for e in plan.entries) and (plan.mode, plan.owner, plan.group) == (0o600, "www", 33)
    index = next(i for i, e in enumerate(plan.entries) if e[0] == "sub/three-chunks.bin")
    data = (tmp_path / "site" / "sub" / "three-chunks.bin").read_bytes()
    assert b"".join(plan.read(index, n) for n in range(_tree.chunks(len(data), CHUNK))) == data


# -- the chunk service, in this process ------------------------------------------------------------


class FakeContext:
    """What the service knows of a context: its name, and its calls in flight."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._protocol = types.SimpleNamespace(_services_in_flight={})


@pytest.fixture
def served(tmp_path):
    """A FileChunks service on a pool of its own, offering a three-chunk file to hosts "h1" to "h5"."""
    path = tmp_path / "f"
    path.write_bytes(os.urandom(3 * CHUNK - 10))
    plan = _push.prepare(path, "/tmp/f")
    with service.Pool(8) as pool:
        chunks = pool.add(FileChunks())
        contexts = {f"host{i}": FakeContext(f"h{i}") for i in range(1, 6)}  # a call names its context: h1 ...
        with chunks.offer(plan, contexts) as offer:
            yield pool, chunks, offer, path.read_bytes()


def ask(pool: service.Pool, caller: str, method: str = "read", **kwargs) -> Future:
    return pool.invoke(_push.SERVICE_NAME, method, kwargs, service.Caller(caller, is_parent=False))


def test_chunks_are_served_to_the_push_s_hosts_only(served) -> None:
    pool, chunks, offer, data = served
    assert ask(pool, "h1", token=offer.token, file=0, index=2).result() == data[2 * CHUNK :]
    refused = [
        ask(pool, "h1", token="0" * 32, file=0, index=0),  # no such push
        ask(pool, "stranger", token=offer.token, file=0, index=0),  # not one of its hosts
        ask(pool, "h1", token=offer.token, file=0, index=3),  # past the end
        ask(pool, "h1", token=offer.token, file=0, index=-1),
        ask(pool, "h1", token=offer.token, file=1, index=0),  # no such entry
        ask(pool, "h1", token=offer.token, file=0, index=True),  # a bool is no index
        ask(pool, "h1", token=offer.token, file=0, index=1 << 80),
        ask(pool, "h1", token=offer.token, file=0, index=0, extra=1),
        ask(pool, "h1", token=offer.token, file=0),
        ask(pool, "h1", token=[offer.token], file=0, index=0),
        ask(pool, "h1", "entries", token=offer.token, page=0),  # the first page travels with the call
        ask(pool, "h1", "entries", token=offer.token, page=1),  # one page in all
        ask(pool, "h1", "_admit", token=offer.token, file=0, index=0),
        ask(pool, "h1", "offer", token=offer.token, file=0, index=0),
        ask(pool, "h1", "digests", token=offer.token, files=[]),
        ask(pool, "h1", "digests", token=offer.token, files=[0, 0]),
        ask(pool, "h1", "digests", token=offer.token, files=[1]),
        ask(pool, "h1", "digests", token=offer.token, files=[True]),
        ask(pool, "h1", "digests", token=offer.token, files=(0,)),
        ask(pool, "h1", "digests", token=offer.token, files=[0] * (_push_remote.MAX_DIGESTS + 1)),
        ask(pool, "stranger", "digests", token=offer.token, files=[0]),
    ]
    for future in refused:
        with pytest.raises(service.CallRefused):
            future.result()
    assert chunks.reads == 1 and offer.sent == {f"host{i}": (CHUNK - 10 if i == 1 else 0) for i in range(1, 6)}


def test_small_files_are_asked_for_together(tmp_path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    sizes = {"a": 10, "b": 20, "big": CHUNK, "empty": 0, "half": CHUNK // 2, "half2": CHUNK // 2 + 1}
    for name, size in sizes.items():
        (site / name).write_bytes(os.urandom(size))
    plan = _push.prepare(str(site) + "/", "/tmp/site")
    index = {e[0]: i for i, e in enumerate(plan.entries)}
    with service.Pool(4) as pool:
        chunks = pool.add(FileChunks())
        with chunks.offer(plan, {"host1": FakeContext("h1"), "host2": FakeContext("h2")}) as offer:
            pieces = ask(pool, "h1", "read_batch", token=offer.token, files=[index["a"], index["b"]]).result()
            a, b = (site / "a").read_bytes(), (site / "b").read_bytes()
            digests = hashlib.sha256(a).digest() + hashlib.sha256(b).digest()
            assert pieces == digests + a + b  # each file's sha256, then the files end to end: one bytes
            assert offer.sent == {"host1": 30, "host2": 0}
            (site / "half").write_bytes(b"shorter")  # changed since it was hashed: the host asks for each alone
            with pytest.raises(ValueError, match="changed size"):
                ask(pool, "h2", "read_batch", token=offer.token, files=[index["b"], index["half"]]).result()
            for files in (
                [index["a"], index["a"]],  # twice
                [index["half"], index["half2"]],  # over a chunk together
                [index["big"], index["a"]],
                [0],  # the root: a directory
                [],
                [len(plan.entries)],
                [True],
                (index["a"],),
                [index["a"]] * (_push_remote.MAX_BATCH_FILES + 1),
            ):
                with pytest.raises(service.CallRefused):
                    ask(pool, "h1", "read_batch", token=offer.token, files=files).result()
            assert chunks.reads == 3


def test_a_host_with_too_many_calls_in_flight_is_refused_reads(served) -> None:
    """A host that asks without reading the replies would make the master hold a chunk for each."""
    pool, _, offer, _ = served
    flooding = offer.callers["h2"][1]._protocol._services_in_flight
    flooding.update(dict.fromkeys(range(_push.MAX_CALLS_IN_FLIGHT), 100))
    assert ask(pool, "h2", token=offer.token, file=0, index=0).result()  # at the limit: served
    flooding[-1] = 100
    with pytest.raises(service.CallRefused, match="calls in flight"):
        ask(pool, "h2", token=offer.token, file=0, index=0).result()
    assert ask(pool, "h1", token=offer.token, file=0, index=0).result()  # others are not held up


def test_identical_requests_from_many_hosts_are_one_read(served) -> None:
    pool, chunks, offer, data = served
    reading, release = threading.Event(), threading.Event()
    plain_read = offer.plan.read

    def slow_read(file: int, index: int) -> bytes:
        reading.set()
        release.wait()
        return plain_read(file, index)

    object.__setattr__(offer.plan, "read", slow_read)  # a frozen dataclass: patched on the instance
    first = ask(pool, "h1", token=offer.token, file=0, index=1)
    assert reading.wait(10)
    others = [ask(pool, f"h{i}", token=offer.token, file=0, index=1) for i in range(2, 6)]
    release.set()
    assert {future.result() for future in [first, *others]} == {data[CHUNK : 2 * CHUNK]}
    assert chunks.cache.get((offer.token, 0, 1)) is None  # every host of the push took it: gone from the cache
    ask(pool, "h3", token=offer.token, file=0, index=2).result()
    later = ask(pool, "h4", token=offer.token, file=0, index=2).result()  # after: from the cache
    assert later == data[2 * CHUNK :]
    assert chunks.reads == 2 and chunks.bytes_read == CHUNK + len(data) - 2 * CHUNK
    tail = len(data) - 2 * CHUNK
    assert offer.sent == {"host1": CHUNK, "host2": CHUNK, "host3": CHUNK + tail, "host4": CHUNK + tail, "host5": CHUNK}


def test_the_cache_is_bounded_and_dropped_with_its_push(tmp_path) -> None:
    cache = _push._Cache(3 * 10)
    for index in range(5):
        cache.put(("t", 0, index), bytes(10))
    assert cache.size == 30 and cache.get(("t", 0, 0)) is None and cache.get(("t", 0, 4)) is not None
    cache.get(("t", 0, 2))  # used: kept over 3
    cache.put(("t", 0, 5), bytes(10))
    assert cache.get(("t", 0, 2)) is not None and cache.get(("t", 0, 3)) is None
    cache.put(("u", 0, 0), bytes(10))
    cache.drop("t")
    assert cache.size == 10 and cache.peak == 30
    cache.put(("big", 0, 0), bytes(31))  # larger than the whole cache: not kept
    assert cache.get(("big", 0, 0)) is None
    cache.taken(("u", 0, 0), 2)
    assert cache.get(("u", 0, 0)) is not None
    cache.taken(("u", 0, 0), 2)  # every host has it: nobody will ask again
    assert cache.get(("u", 0, 0)) is None and cache.size == 0


def test_a_push_starts_a_pool_when_none_serves_children_and_closes_it_after() -> None:
    assert service.children_pool() is None
    with _push.serving(8) as outer:
        pool = service.children_pool()
        assert pool is not None and pool.get_service(_push.SERVICE_NAME) is outer
        with _push.serving(8) as inner:  # a second push meanwhile shares it
            assert inner is outer and service.children_pool() is pool
        assert service.children_pool() is pool
    assert service.children_pool() is None
    with service.Pool(4).serve_children() as mine:
        with _push.serving(8) as chunks:
            assert mine.get_service(_push.SERVICE_NAME) is chunks
        with _push.serving(8) as again:
            assert again is chunks  # added once, kept: the pool is the user's
        assert service.children_pool() is mine


def test_a_summary_becomes_a_transfer(served) -> None:
    pool, _, offer, data = served
    summary = {"status": "c", "errors": [], "error_count": 0, "deleted": [], "deleted_count": 0}
    assert offer.outcome("host1", summary)[0].sha256 == ""  # no host has asked for the file's digest yet
    assert ask(pool, "h1", "digests", token=offer.token, files=[0]).result() == [hashlib.sha256(data).hexdigest()]
    transfer, error = offer.outcome("host1", summary)
    assert error is None and transfer.changed and transfer.changed_paths == ("",)
    assert (transfer.size, transfer.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    unchanged, error = offer.outcome("host2", {**summary, "status": "u"})
    assert error is None and not unchanged.changed and unchanged.unchanged_paths == ("",)
    failed, error = offer.outcome(
        "host3", {**summary, "status": "f", "errors": [(0, "/tmp/f: disk full")], "error_count": 1}
    )
    assert isinstance(error, PushFailed) and error.transfer is failed and failed.failed_paths == ("",)
    assert str(error) == "the push failed on host3 for 1 path: /tmp/f: disk full"
    bad, error = offer.outcome("host4", {**summary, "status": "cc"})
    assert isinstance(error, PushFailed) and "not valid" in str(error) and not bad.changed
    assert repr(transfer) == "<Transfer /tmp/f: 1 changed, 0 unchanged, 0 deleted, 0 failed, 0 bytes sent>"


# -- on a local child and one host of each suite ------------------------------------------------------


def names_in(context: fanout.Context, directory: str) -> list[str]:
    return sorted(context.call(os.listdir, directory))


def test_a_tree_arrives_whole_then_only_what_changed_travels(open_child, tmp_path) -> None:
    context = open_child()
    site = make_tree(tmp_path / "site")
    dest = remote_dir(context)
    try:
        first = context.put(str(site) + "/", dest)
        want = listing(_tree.walk(site))
        assert listing(context.call(_tree.walk, dest)) == want
        content = sum(e[3] for e in want.values())
        assert first.changed and first.bytes_sent == first.size == content
        assert set(first.changed_paths) == set(want) and first.unchanged_paths == ("",)  # "": dest, left as it is

        again = context.put(str(site) + "/", dest)
        assert not again.changed and again.bytes_sent == 0 and again.changed_paths == ()

        (site / "a.txt").write_bytes(b"ALPHA\n")  # same size, other content
        os.utime(site / "run.sh", ns=(MTIME + 10**9, MTIME + 10**9))  # only its time: no content travels
        (site / "sub" / "deeper" / "x").chmod(0o400)
        third = context.put(str(site) + "/", dest)
        assert third.changed_paths == ("a.txt", "sub/deeper/x") and third.bytes_sent == len(b"ALPHA\n")
        assert listing(context.call(_tree.walk, dest)) == listing(_tree.walk(site))
        assert [n for n in names_in(context, dest) if n.endswith(".tmp")] == []
    finally:
        remove(context, dest)


def test_the_directory_itself_or_its_contents(open_child, tmp_path) -> None:
    context = open_child()
    site = make_tree(tmp_path / "site")
    dest = remote_dir(context)
    try:
        itself = context.put(site, dest)  # no trailing slash: dest/site
        assert itself.path == f"{dest}/site" and names_in(context, dest) == ["site"]
        assert context.call(os.stat, f"{dest}/site").st_mode & 0o7777 == site.stat().st_mode & 0o7777
        context.call(os.chmod, dest, 0o711)
        contents = context.put(str(site) + "/", dest)  # the contents, into a directory that is the user's
        assert "" not in contents.changed_paths and context.call(os.stat, dest).st_mode & 0o7777 == 0o711
        created = context.put(str(site) + "/", f"{dest}/new")  # ... or made for them, as the source
        assert context.call(os.stat, f"{dest}/new").st_mode & 0o7777 == site.stat().st_mode & 0o7777
        assert "" in created.changed_paths
        one = context.put(site / "a.txt", f"{dest}/site/sub/")  # a file, into a directory
        assert one.path == f"{dest}/site/sub/a.txt" and one.changed_paths == ("",)
        assert context.call(_tree.file_sha256, one.path)[0] == hashlib.sha256(b"alpha\n").hexdigest()
        renamed = context.put(site / "a.txt", f"{dest}/b.conf", mode=0o600)
        assert context.call(os.stat, f"{dest}/b.conf").st_mode & 0o7777 == 0o600 and renamed.changed
        mode_only = context.put(site / "a.txt", f"{dest}/b.conf", mode=0o644)
        assert mode_only.changed and mode_only.bytes_sent == 0
    finally:
        remove(context, dest)


def test_a_long_list_of_entries_travels_in_pages(open_child, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_push, "PAGE_ENTRIES", 3)  # the first page with the call, the others asked for
    context = open_child()
    site = make_tree(tmp_path / "site")
    dest = remote_dir(context)
    try:
        sent = context.put(str(site) + "/", dest)
        assert listing(context.call(_tree.walk, dest)) == listing(_tree.walk(site)) and len(_tree.walk(site)) > 9
        assert set(sent.changed_paths) == set(listing(_tree.walk(site)))
    finally:
        remove(context, dest)


def test_many_small_files_travel_together(open_child, tmp_path, own_pool) -> None:
    context = open_child()
    site = tmp_path / "site"
    for d in range(3):
        (site / f"d{d}").mkdir(parents=True)
        for i in range(100):
            (site / f"d{d}" / f"f{i:03}").write_bytes(os.urandom(i))  # one empty: no request for it
    dest = remote_dir(context)
    try:
        sent = context.put(str(site) + "/", dest)
        assert listing(context.call(_tree.walk, dest)) == listing(_tree.walk(site))
        assert sent.bytes_sent == sum(e[4] for e in _tree.walk(site))
        requests = own_pool._pool.invoker(_push.SERVICE_NAME).executions
        assert requests == 2  # 297 files with content: 256, then 41
    finally:
        remove(context, dest)


def test_delete_removes_what_the_source_lacks_and_follows_no_link(open_child, tmp_path) -> None:
    context = open_child()
    site = make_tree(tmp_path / "site")
    dest = remote_dir(context)
    outside = remote_dir(context)
    try:
        context.put(str(site) + "/", dest)
        context.call(Path.write_bytes, Path(f"{outside}/precious"), b"keep me")
        context.call(os.makedirs, f"{dest}/old/deeper")
        context.call(Path.write_bytes, Path(f"{dest}/old/deeper/f"), b"old")
        context.call(Path.write_bytes, Path(f"{dest}/stale.txt"), b"stale")
        context.call(os.symlink, outside, f"{dest}/sub/to-outside")
        kept = context.put(str(site) + "/", dest)  # without delete: extra files stay
        assert kept.deleted_paths == () and "stale.txt" in names_in(context, dest)
        pruned = context.put(str(site) + "/", dest, delete=True)
        assert sorted(pruned.deleted_paths) == ["old", "stale.txt", "sub/to-outside"] and pruned.deleted_count == 3
        assert pruned.changed and pruned.bytes_sent == 0
        assert listing(context.call(_tree.walk, dest)) == listing(_tree.walk(site))
        assert names_in(context, outside) == ["precious"]  # the link went, not what it pointed to
    finally:
        remove(context, dest)
        remove(context, outside)


def test_what_is_in_the_way(open_child, tmp_path) -> None:
    context = open_child()
    site = make_tree(tmp_path / "site")
    dest = remote_dir(context)
    try:
        context.call(os.makedirs, f"{dest}/a.txt/inside")  # a directory where a file goes
        context.call(Path.write_bytes, Path(f"{dest}/sub"), b"a file where a directory goes")
        with pytest.raises(PushFailed, match="a directory is in the way") as info:
            context.put(str(site) + "/", dest)
        assert info.value.transfer.failed_paths == ("a.txt",) and "sub" in info.value.transfer.changed_paths
        replaced = context.put(str(site) + "/", dest, delete=True)
        assert "a.txt" in replaced.changed_paths
        assert listing(context.call(_tree.walk, dest)) == listing(_tree.walk(site))
        with pytest.raises(RemoteError, match="is a directory"):
            context.put(site / "a.txt", dest)  # a file's dest is its full path
        with pytest.raises(RemoteError, match=f"does not exist.*{dest}/no/such"):
            context.put(site / "a.txt", f"{dest}/no/such/file")
        with pytest.raises(RemoteError, match=f"{dest}/no"):
            context.put(site, f"{dest}/no/such/dir")
        with pytest.raises(RemoteError, match="not a directory"):
            context.put(str(site) + "/", f"{dest}/a.txt")
    finally:
        remove(context, dest)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """BIG_FILE random bytes, made once for every target, and removed after."""
    big = tmp_path_factory.mktemp("big") / "big.bin"
    with big.open("wb") as f:
        for _ in range(BIG_FILE // (1 << 20) + 1):
            f.write(os.urandom(1 << 20))
        f.truncate(BIG_FILE)
    yield big
    big.unlink()


def test_a_large_file(open_child, big_file) -> None:
    context = open_child()
    big = big_file
    dest = remote_dir(context)
    try:
        sent = context.put(big, dest + "/", fsync=True)
        assert sent.bytes_sent == BIG_FILE and sent.sha256 == _tree.file_sha256(big)[0]
        assert context.call(_tree.file_sha256, f"{dest}/big.bin") == _tree.file_sha256(big)
    finally:
        remove(context, dest)


@pytest.fixture
def own_pool():
    """A pool serving children, with FileChunks in it: what pushes use, so tests can read its counters and hook."""
    with service.Pool(16).serve_children() as pool:
        yield pool.add(FileChunks())


def test_a_file_that_changes_while_being_read_is_never_half_sent(open_child, tmp_path, own_pool) -> None:
    context = open_child()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "steady.txt").write_bytes(b"steady")
    path = tmp_path / "site" / "changing.bin"
    path.write_bytes(b"a" * (8 * CHUNK))
    rewritten = threading.Lock()
    done: list[bool] = []

    def rewrite(token: str, file: int, index: int, size: int) -> None:
        with rewritten:  # every read waits for the rewrite: chunks asked for after it see the new bytes
            if not done:
                path.write_bytes(b"b" * (8 * CHUNK))
                done.append(True)

    own_pool.on_read = rewrite
    dest = remote_dir(context)
    try:
        context.call(Path.write_bytes, Path(f"{dest}/changing.bin"), b"the old content")
        with pytest.raises(PushFailed, match="changed while it was being read") as info:
            context.put(str(tmp_path / "site") + "/", dest)
        assert info.value.transfer.failed_paths == ("changing.bin",)
        assert set(info.value.transfer.changed_paths) - {""} == {"steady.txt"}  # "": the root's mode
        assert context.call(Path.read_bytes, Path(f"{dest}/changing.bin")) == b"the old content"
        assert names_in(context, dest) == ["changing.bin", "steady.txt"]
        done.clear()
        path.write_bytes(b"c" * (8 * CHUNK))
        with pytest.raises(RemoteError, match="changed while it was being read") as single:
            context.put(path, f"{dest}/changing.bin")  # a single file: the host fails with the error itself
        assert single.value.type_name == "fanout._push_remote.SourceChanged"
        assert context.call(Path.read_bytes, Path(f"{dest}/changing.bin")) == b"the old content"
    finally:
        own_pool.on_read = None
        remove(context, dest)


def running(observer: fanout.Context, pid: int) -> bool:
    """Whether process ``pid`` runs on the observer's host (a zombie has ended)."""
    try:
        line = observer.call(Path.read_text, Path(f"/proc/{pid}/stat"))
    except RemoteError:
        return False
    return line.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("new", [b"C" * 100, b"c" * 50], ids=["same size", "shorter"])
def test_a_small_file_that_changes_is_told_apart_from_its_batch(open_child, tmp_path, own_pool, new) -> None:
    context = open_child()
    site = tmp_path / "site"
    site.mkdir()
    for name in "abcd":
        (site / name).write_bytes(name.encode() * 100)
    changed: list[bool] = []

    def change_c(token: str, file: int, index: int, size: int) -> None:
        if not changed:
            (site / "c").write_bytes(new)  # after the walk hashed it: its digest (or the batch's size) is off
            changed.append(True)

    own_pool.on_read = change_c
    dest = remote_dir(context)
    try:
        with pytest.raises(PushFailed, match="changed while it was being read") as info:
            context.put(str(site) + "/", dest)
        assert info.value.transfer.failed_paths == ("c",)
        assert sorted(info.value.transfer.changed_paths) == ["a", "b", "d"]
        assert names_in(context, dest) == ["a", "b", "d"]
    finally:
        own_pool.on_read = None
        remove(context, dest)


def test_a_child_ended_mid_push_leaves_no_temporary(open_child, tmp_path, own_pool) -> None:
    context, observer = open_child(), open_child()
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(4 * CHUNK))
    reading, release = threading.Event(), threading.Event()

    def hold(token: str, file: int, index: int, size: int) -> None:
        reading.set()
        release.wait(WAIT_TIMEOUT)

    own_pool.on_read = hold
    dest = remote_dir(observer)
    outcome: list[BaseException] = []

    def push() -> None:
        try:
            context.put(path, dest + "/")
        except BaseException as exc:
            outcome.append(exc)

    pushing = threading.Thread(target=push)
    pushing.start()
    try:
        assert reading.wait(WAIT_TIMEOUT)
        assert [n for n in names_in(observer, dest) if n.endswith(".tmp")] != []  # being written
        pid = context.pid
        context.close()
        pushing.join(WAIT_TIMEOUT)
        assert outcome and isinstance(outcome[0], fanout.ConnectionLost)
        # close() does not wait for the child's end
        wait_until(lambda: not running(observer, pid), what=f"the end of the child {pid} on its host")
        assert names_in(observer, dest) == []  # the child deleted its temporary as it ended
    finally:
        release.set()
        own_pool.on_read = None
        pushing.join(WAIT_TIMEOUT)
        remove(observer, dest)


def test_a_push_abandoned_by_the_master_stops_and_leaves_no_temporary(
    open_child, tmp_path, own_pool, monkeypatch
) -> None:
    """Ctrl-C or a timeout on the master: the host's next chunk is refused, and it stops there."""
    context = open_child()
    site = tmp_path / "site"
    site.mkdir()
    for i in range(20):
        (site / f"f{i:02}").write_bytes(os.urandom(2 * CHUNK))
    reading, release = threading.Event(), threading.Event()

    def hold(token: str, file: int, index: int, size: int) -> None:
        reading.set()
        release.wait(WAIT_TIMEOUT)

    own_pool.on_read = hold
    calls: list[Future] = []
    start = _push.Offer.start
    monkeypatch.setattr(_push.Offer, "start", lambda offer, context: calls.append(start(offer, context)) or calls[-1])
    dest = remote_dir(context)
    try:
        with pytest.raises(fanout.CallTimeout):
            context.put(str(site) + "/", dest, timeout=1)
        assert reading.is_set()
        release.set()  # the reads held are answered; the next ones are refused: the push has ended
        summary = calls[0].result(timeout=30)  # the host's call, which the master no longer waits for
        assert summary["error_count"] >= 1 and "no push in progress" in summary["errors"][0][1]
        names = names_in(context, dest)
        assert len(names) < 20 and not [n for n in names if n.endswith(".tmp")]
        for name in names:  # the files done before the end are whole
            assert context.call(_tree.file_sha256, f"{dest}/{name}") == _tree.file_sha256(site / name)
        assert own_pool.reads <= 2 * _push_remote.WORKERS  # it stopped at the first refusal
    finally:
        release.set()
        own_pool.on_read = None
        remove(context, dest)


# -- on the test fleet: several hosts, become, a full disk ----------------------------------------------


@pytest.fixture(params=fleet_suites())
def host(request, fleet) -> hosts.FleetHost:
    """The first fleet host of one suite."""
    return next(h for h in fleet.hosts if h.suite == request.param)


def fleet_options(fleet_hosts: list, user: str | None = None) -> dict:
    return {h.name: {**h.connect_options(user), "host": h.address} for h in fleet_hosts}


def test_a_full_disk_fails_the_host_and_leaves_nothing(host, tmp_path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(hosts.SMALL_DISK_BYTES + CHUNK))
    small = make_tree(tmp_path / "small")
    with fanout.Fleet(fleet_options([host]), echo=False) as the_fleet:
        if not the_fleet.call(os.path.ismount, hosts.SMALL_DISK)[host.name].value:
            pytest.skip(f"{hosts.SMALL_DISK} is not a small disk on this fleet (compose?)")
        dest = f"{hosts.SMALL_DISK}/{uuid.uuid4().hex}"
        the_fleet.call(os.mkdir, dest)
        try:
            one = the_fleet.put(big, dest + "/")[host.name]
            assert one.status == FAILED and one.error.type_name == "OSError"
            assert "No space left on device" in str(one.error) and f"{dest}/big.bin" in str(one.error)
            assert the_fleet.call(os.listdir, dest)[host.name].value == []  # no partial file, no temporary
            os.replace(big, small / "sub" / "big.bin")
            tree = the_fleet.put(str(small) + "/", dest)[host.name]
            assert tree.status == FAILED and isinstance(tree.error, PushFailed)
            assert "No space left on device" in str(tree.error) and "sub/big.bin" in tree.error.transfer.failed_paths
            assert ".tmp" not in the_fleet.run(f"find {dest}")[host.name].value.stdout
            os.unlink(small / "sub" / "big.bin")
            fits = the_fleet.put(str(small) + "/", dest)[host.name]  # room again: a tree that fits
            assert fits.ok, fits
        finally:
            the_fleet.run(f"rm -rf {dest}")


def test_owner_and_group_as_root(host, tmp_path) -> None:
    site = make_tree(tmp_path / "site")
    dest = f"/tmp/fanout-push-{uuid.uuid4().hex}"
    with fanout.Fleet(fleet_options([host], hosts.NOPASS_USER), echo=False) as the_fleet:
        root = the_fleet.become("root")
        try:
            result = root.put(str(site) + "/", dest, owner=hosts.APP_USER, group="root")[host.name]
            assert result.ok, result
            owners = root.run(f"find {dest} -printf '%u:%g %p\\n'")[host.name].value.stdout.splitlines()
            assert len(owners) == len(_tree.walk(site)) and {o.split()[0] for o in owners} == {f"{hosts.APP_USER}:root"}
            again = root.put(str(site) + "/", dest, owner=hosts.APP_USER, group="root")[host.name]
            assert again.ok and not again.value.changed
            regrouped = root.put(str(site) + "/", dest, group=hosts.APP_USER)[host.name]
            assert regrouped.ok and regrouped.value.bytes_sent == 0
            assert set(regrouped.value.changed_paths) == {e[0] for e in _tree.walk(site)} - {""}  # dest: as it was
            (site / "a.txt").write_bytes(b"new content")
            denied = the_fleet.put(str(site) + "/", dest)[host.name]  # the login user cannot write there
            assert denied.status == FAILED and "Permission denied" in str(denied.error)
        finally:
            root.run(f"rm -rf {dest}")


def test_the_master_reads_the_source_once_for_the_whole_fleet(fleet, tmp_path, own_pool) -> None:
    """Every host gets every byte; the master reads each chunk once, and hashes what it read (the tree fits in
    the cache)."""
    site = make_tree(tmp_path / "site")
    with (site / "sub" / "big.bin").open("wb") as f:
        f.write(os.urandom(_push.CACHE_BYTES // 2))
    content = sum(e[4] for e in _tree.walk(site))
    assert content < _push.CACHE_BYTES
    dest = f"/tmp/fanout-push-{uuid.uuid4().hex}"
    with fanout.Fleet({**fleet_options(fleet.hosts), "local": {"connection": "local"}}, echo=False) as the_fleet:
        try:
            results = the_fleet.put(str(site) + "/", dest)
            assert len(results) >= 4 and all(r.status == OK for r in results.values()), results
            assert {r.value.bytes_sent for r in results.values()} == {content}
            assert own_pool.bytes_read == content and own_pool.reads == sum(
                _tree.chunks(e[4], CHUNK) for e in _tree.walk(site)
            )
            again = the_fleet.put(str(site) + "/", dest)
            assert {r.value.bytes_sent for r in again.values()} == {0}
            assert own_pool.bytes_read == 2 * content  # the second put read each file once, to hash it
        finally:
            the_fleet.run(f"rm -rf {dest}")
    assert own_pool.cache.size == 0 and own_pool.cache.peak <= _push.CACHE_BYTES


def vm_hwm() -> int:
    """This process's peak resident memory, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


MEMORY_FILE = 48 * 1024 * 1024  # larger than the bound: a push that held a file whole would exceed it
MEMORY_BOUND = 32 * 1024 * 1024  # the master's growth allowed while pushing it to every host


def test_the_master_s_memory_stays_bounded(fleet, tmp_path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for _ in range(MEMORY_FILE // (1 << 20)):
            f.write(os.urandom(1 << 20))
    dest = f"/tmp/fanout-push-{uuid.uuid4().hex}"
    with fanout.Fleet(fleet_options(fleet.hosts), echo=False) as the_fleet:
        the_fleet.call(os.getpid)  # connections up, modules imported: their memory is not the push's
        try:
            Path("/proc/self/clear_refs").write_text("5")  # the peak from now on
        except OSError:
            pytest.skip("this kernel cannot reset the peak resident memory")
        before = vm_hwm()
        try:
            results = the_fleet.put(big, dest)
            assert all(r.ok for r in results.values()), results
            grown = vm_hwm() - before
        finally:
            the_fleet.run(f"rm -f {dest}")
    assert grown < MEMORY_BOUND, f"the master grew by {grown >> 20} MiB"


def test_transfer_keeps_its_single_file_shape() -> None:
    transfer = Transfer("/etc/x", True, 3, "0" * 64)
    assert (transfer.path, transfer.changed, transfer.size, transfer.sha256) == ("/etc/x", True, 3, "0" * 64)
    assert fanout.fleet.Transfer is Transfer and fanout.fleet.PushFailed is PushFailed
    assert _push_remote.WORKERS * 2 <= _push.pool_threads(1) <= _push.MAX_POOL_THREADS
