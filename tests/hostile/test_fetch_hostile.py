"""Hostile hosts answering a fetch: nothing written outside dest_dir/<host>/, no more than max_bytes stored, the
error names the host, and the healthy hosts of the same fetch are untouched.

Each hostile child answers the fetch's calls (scan, page, read) with what the attack says; the master is the
real one, in a fleet with healthy local children fetching a real tree.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

import pytest

import fanout
from fanout import _fetch
from fanout._fetch import FetchError
from fanout.fleet import FAILED, OK, TIMED_OUT
from tests.fleet.waiting import wait_until

ATTACK = r"""
import marshal, pickle
LISTING = {listing!r}
COUNT = {count!r}
CONTENT = {content!r}


def read_one(rel, offset, size):
    return {read}


def answer(name, args):
    if name == "scan":
        return {scan}
    if name == "page":
        return {page}
    if name == "read_many":
        return {read_many}
    return None


hello()
for kind, rid, body in frames():
    if kind == SHUTDOWN:
        os._exit(0)
    if kind == CALL:
        spec, args, kwargs = marshal.loads(body[1:])
        send(encode_frame(RESULT, rid, b"p" + pickle.dumps(answer(spec[2], args), 4)))
"""

MTIME = 1_600_000_000_000_000_000


def attack(listing, *, count=None, content=None, scan="(COUNT, LISTING)", page=None, read=None, read_many=None) -> str:
    """A child that lists ``listing`` and answers each piece read from ``content`` (relpath -> bytes), unless
    told otherwise (``read``: an expression of rel, offset, size)."""
    return ATTACK.format(
        listing=listing,
        count=len(listing) if count is None else count,
        content=content or {},
        scan=scan,
        page=page or "LISTING[args[1] : args[1] + 1000]",
        read=read or "CONTENT.get(rel, b'')[offset : offset + size]",
        read_many=read_many or "[read_one(*piece) for piece in args[1]]",
    )


def root() -> tuple:
    return ("", "dir", 0o755, MTIME, 0, "", "")


def file(rel: str, data: bytes, sha: str | None = None) -> tuple:
    return (rel, "file", 0o644, MTIME, len(data), sha or hashlib.sha256(data).hexdigest(), "")


def link(rel: str, target: str) -> tuple:
    return (rel, "link", 0, MTIME, 0, "", target)


class GivenFleet(fanout.Fleet):
    """A fleet of children already started: hostile ones and healthy ones."""

    def __init__(self, contexts: dict[str, fanout.Context], **options) -> None:
        super().__init__({name: {"connection": "local"} for name in contexts}, echo=False, **options)
        self._given = contexts

    def _open(self, name: str) -> str:
        with self._lock:
            self._logins[name] = self._given[name]
        return self._opened(name, self._given[name])


def snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    """Every path below ``root`` but ``skip``, with what it is: links not followed."""
    seen: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if path == skip:
                continue
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                seen[str(path)] = ("file", path.read_bytes())
            else:
                seen[str(path)] = ("dir",)
    return seen


@pytest.fixture
def scene(tmp_path):
    """A real tree to fetch, a directory outside that must stay empty, and where the copies go."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_bytes(b"alpha")
    (src / "sub" / "b").write_bytes(b"beta")
    (tmp_path / "outside").mkdir()
    return src, tmp_path / "dest"


def climb_to_outside(tmp_path: Path, src: Path) -> str:
    """A relative path from the copy of ``src`` in dest/evil/ up to tmp_path/outside."""
    local = tmp_path / "dest" / "evil" / str(src).lstrip("/")
    return "../" * len(local.relative_to(tmp_path).parts) + "outside"


def fetch_with(hostile_child, healthy_children, tmp_path, evil: str, **fetch_options):
    """Fetch the scene's tree from the evil child and two healthy ones; check that nothing left dest/evil/."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    before = snapshot(tmp_path, dest)
    good = healthy_children(2)
    contexts = {"evil": hostile_child(evil), "good1": good[0], "good2": good[1]}
    with GivenFleet(contexts) as fleet:
        results = fleet.fetch(str(src), dest, **fetch_options)
    assert snapshot(tmp_path, dest) == before  # nothing outside dest/ changed
    assert set(os.listdir(dest)) <= {"evil", "good1", "good2"}
    for path in (dest / "evil").rglob("*"):
        assert ".fanout-fetch-" not in path.name  # no temporary left
        if path.is_symlink():
            assert Path(os.path.realpath(path)).is_relative_to(dest / "evil")
    for name in ("good1", "good2"):
        assert results[name].status == OK, results[name]
        copy = dest / name / str(src).lstrip("/")
        assert (copy / "a").read_bytes() == b"alpha" and (copy / "sub" / "b").read_bytes() == b"beta"
    evil_result = results["evil"]
    assert evil_result.status == FAILED
    assert "evil" in str(evil_result.error)
    return evil_result


@pytest.mark.parametrize(
    ("name", "listing", "reason"),
    [
        ("dot-dot", lambda out: [root(), file(out + "/x", b"x")], "'..' component"),
        ("absolute", lambda out: [root(), file("/etc/x", b"x")], "is absolute"),
        ("nul", lambda out: [root(), file("a\x00b", b"x")], "holds NUL"),
        ("link then file", lambda out: [root(), link("l", out), file("l/x", b"x")], "did not list as a directory"),
        ("dir link then file", lambda out: [root(), link("l", "."), file("l/x", b"x")], "did not list as a directory"),
        ("duplicate", lambda out: [root(), file("x", b"x"), file("x", b"y")], "names 'x' twice"),
        ("no root", lambda out: [file("x", b"x")], "does not start with the source"),
        ("bad sha", lambda out: [root(), file("x", b"x", sha="../../etc")], "sha256"),
        ("huge size", lambda out: [root(), (*file("x", b"x")[:4], 1 << 40, *file("x", b"x")[5:])], "max_bytes"),
    ],
)
def test_a_listing_no_honest_host_sends_fails_that_host_alone(
    hostile_child, healthy_children, tmp_path, scene, name, listing, reason
) -> None:
    out = climb_to_outside(tmp_path, scene[0])
    result = fetch_with(hostile_child, healthy_children, tmp_path, attack(listing(out)))
    assert isinstance(result.error, FetchError) and reason in str(result.error), result.error
    assert not (tmp_path / "dest" / "evil").exists() or not [
        p for p in (tmp_path / "dest" / "evil").rglob("*") if not p.is_dir()
    ]  # the listing is refused before anything is written


def test_names_and_links_not_written_here_are_refused_and_the_rest_fetched(
    hostile_child, healthy_children, tmp_path, scene
) -> None:
    out = climb_to_outside(tmp_path, scene[0])
    to_base = "../" * len(scene[0].parts[1:])  # from the copy's root up to dest/evil/
    listing = [
        root(),
        file("a\nb", b"newline"),
        link("up", out),
        link("abs", str(tmp_path / "outside")),
        link("base", to_base),  # within dest/evil/: made
        link("sneaky", "base/../outside"),  # through the link above: dest/outside, were it made
        link("fine", "ok"),
        file("ok", b"fine"),
    ]
    evil = attack(listing, content={"a\nb": b"newline", "ok": b"fine"})
    result = fetch_with(hostile_child, healthy_children, tmp_path, evil)
    copy = tmp_path / "dest" / "evil" / str(scene[0]).lstrip("/")
    assert (copy / "ok").read_bytes() == b"fine" and os.readlink(copy / "fine") == "ok"
    assert sorted(p.name for p in copy.iterdir()) == ["base", "fine", "ok"]
    assert os.path.realpath(copy / "base") == str(tmp_path / "dest" / "evil")
    refused = {Path(path).name: reason for path, reason in result.value.errors}
    assert set(refused) == {"a\nb", "up", "abs", "sneaky"}
    assert "4 of 8 entries not fetched" in str(result.error)


@pytest.mark.parametrize(
    ("name", "options", "reason"),
    [
        ("longer chunk", {"read": "CONTENT['x'][offset : offset + size] + b'!'"}, "sent 6 bytes for a read of 5"),
        ("far longer chunk", {"read": "b'!' * (8 << 20)"}, f"sent {8 << 20} bytes for a read of 5"),
        ("not bytes", {"read": "12345"}, "int, not bytes"),
        ("pieces missing", {"read_many": "[]"}, "answered a read of 1 pieces with something else"),
        ("not a list", {"read_many": "b'12345'"}, "answered a read of 1 pieces with something else"),
        ("malformed scan", {"scan": "'nonsense'"}, "not (count, entries)"),
        ("huge count", {"scan": "(10 ** 9, LISTING)"}, "announces 1000000000 entries"),
        ("more than announced", {"count": 1}, "more entries than the 1 it announced"),
        ("empty page", {"scan": "(3, LISTING[:1])", "page": "[]"}, "a page must be a list of 1"),
    ],
)
def test_answers_no_honest_host_gives_fail_that_host_alone(
    hostile_child, healthy_children, tmp_path, scene, name, options, reason
) -> None:
    listing = [root(), file("x", b"12345")]
    result = fetch_with(hostile_child, healthy_children, tmp_path, attack(listing, content={"x": b"12345"}, **options))
    assert reason in str(result.error), result.error
    copy = tmp_path / "dest" / "evil" / str(scene[0]).lstrip("/")
    assert not (copy / "x").exists()


def test_endless_wrong_content_stops_at_the_announced_size(hostile_child, healthy_children, tmp_path, scene) -> None:
    size = 3 * _fetch.READ_SIZE + 1
    listing = [root(), (*file("big", b"")[:4], size, "0" * 64, "")]
    evil = attack(listing, read="b'\\xff' * size")  # every read answered in full, for ever
    result = fetch_with(hostile_child, healthy_children, tmp_path, evil)
    assert result.value.bytes_received == size  # what it announced, not a byte more
    assert "it changed while being read" in str(result.error)
    assert not (tmp_path / "dest" / "evil" / str(scene[0]).lstrip("/") / "big").exists()


def test_more_than_max_bytes_in_total_is_refused_before_any_read(
    hostile_child, healthy_children, tmp_path, scene
) -> None:
    listing = [root(), *(file(f"f{i}", b"x" * 400) for i in range(5))]
    evil = attack(listing, read="os._exit(9)")  # a read would end it: none may be made
    result = fetch_with(hostile_child, healthy_children, tmp_path, evil, max_bytes=1000)
    assert "it would store 2000 bytes, over max_bytes=1000" in str(result.error)


def test_a_host_cannot_reach_outside_through_links_planted_here(healthy_children, tmp_path, scene) -> None:
    src, dest = scene
    outside = tmp_path / "outside"
    (dest / "first").mkdir(parents=True)
    (dest / "first" / src.parts[1]).symlink_to(outside)  # dest/first/tmp -> outside
    (dest / "second").symlink_to(outside)  # dest/second -> outside
    contexts = dict(zip(("first", "second", "third"), healthy_children(3), strict=True))
    with GivenFleet(contexts) as fleet:
        results = fleet.fetch(str(src), dest)
    assert list(outside.iterdir()) == []
    assert results["first"].status == FAILED and "is in the way" in str(results["first"].error)
    assert "first" in str(results["first"].error)
    assert results["second"].status == FAILED and "links are never followed" in str(results["second"].error)
    assert results["third"].status == OK
    assert (dest / "third" / str(src).lstrip("/") / "a").read_bytes() == b"alpha"


def test_a_hostile_context_fetch_raises_with_what_was_done(hostile_child, tmp_path, scene) -> None:
    listing = [root(), file("ok", b"fine"), link("up", "../" * 40 + "etc")]
    context = hostile_child(attack(listing, content={"ok": b"fine"}), name="evil")
    with pytest.raises(FetchError) as info:
        context.fetch(str(scene[0]), tmp_path / "dest")
    assert info.value.host == "evil" and info.value.fetched.bytes_received == 4
    assert [Path(p).name for p in info.value.fetched.changed] == ["src", "ok"]


def temporaries(dest: Path) -> list[Path]:
    return [p for p in dest.rglob("*") if ".fanout-fetch-" in p.name]


def stalls_after_the_first_piece(size: int, action: str) -> str:
    """A child that lists one file of ``size`` bytes, answers its first piece, then does ``action``."""
    data = b"x" * size
    read = f"CONTENT['big'][offset : offset + size] if offset == 0 else ({action})"
    return attack([root(), file("big", data)], content={"big": data}, read=read)


@pytest.fixture
def default_ctrl_c():
    """Ctrl-C raising KeyboardInterrupt, as Python's default handler does, whatever an earlier test left."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_mid_fetch_leaves_no_partial_file(hostile_child, tmp_path, scene, default_ctrl_c) -> None:
    src, dest = scene
    evil = hostile_child(stalls_after_the_first_piece(3 * _fetch.READ_SIZE, "time.sleep(3600)"))
    interrupted, missed = threading.Event(), []

    def interrupt_once_a_temporary_exists() -> None:
        try:
            wait_until(lambda: temporaries(dest), what="a temporary file of the fetch")
        except AssertionError as exc:  # interrupted all the same, or the fetch would wait for ever
            missed.append(exc)
        interrupted.set()
        os.kill(os.getpid(), signal.SIGINT)

    with GivenFleet({"evil": evil}) as fleet:
        threading.Thread(target=interrupt_once_a_temporary_exists, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            fleet.fetch(str(src), dest)
        assert interrupted.is_set() and not missed, missed
        evil._transport.process.kill()  # asleep: it would not read the fleet's goodbye
    assert temporaries(dest) == []
    assert not (dest / "evil" / str(src).lstrip("/") / "big").exists()


def test_a_connection_lost_mid_fetch_leaves_no_partial_file(hostile_child, healthy_children, tmp_path, scene) -> None:
    src, dest = scene
    evil = hostile_child(stalls_after_the_first_piece(3 * _fetch.READ_SIZE, "os._exit(3)"), name="evil")
    with GivenFleet({"evil": evil, "good": healthy_children()[0]}) as fleet:
        results = fleet.fetch(str(src), dest)
    assert results["evil"].status == FAILED and results["evil"].error.exit_status == 3  # reached: its child died
    assert results["good"].status == OK
    assert temporaries(dest) == []
    assert not (dest / "evil" / str(src).lstrip("/") / "big").exists()


def test_a_host_past_its_timeout_is_dropped_and_leaves_no_partial_file(
    hostile_child, healthy_children, tmp_path, scene
) -> None:
    src, dest = scene
    evil = hostile_child(stalls_after_the_first_piece(3 * _fetch.READ_SIZE, "time.sleep(3600)"), name="evil")
    with GivenFleet({"evil": evil, "good": healthy_children()[0]}) as fleet:
        results = fleet.fetch(str(src), dest, timeout=1)
        assert "evil" not in fleet.contexts  # dropped, as any call past its timeout
        evil._transport.process.kill()  # asleep: it would not read the fleet's goodbye
    assert results["evil"].status == TIMED_OUT and "evil" in str(results["evil"].error)
    assert results["good"].status == OK
    assert temporaries(dest) == []
