"""A hostile host in a push: what it asks the chunk service for, and the summary it answers with, are checked and
bounded; it gets nothing outside its push, fails alone, and costs the master no more than it sent."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout import _push, _push_remote, _tree, service
from fanout._push import FileChunks, PushFailed

GOOD = {"status": "uu", "errors": [], "error_count": 0, "deleted": [], "deleted_count": 0}


@pytest.mark.parametrize(
    "bad",
    [
        "not a dict",
        {**GOOD, "extra": 1},
        {k: v for k, v in GOOD.items() if k != "deleted"},
        {**GOOD, "status": "u"},  # one entry short
        {**GOOD, "status": "ux"},
        {**GOOD, "status": ["u", "u"]},
        {**GOOD, "errors": [(0, "x")] * (_push_remote.MAX_ERRORS + 1), "error_count": 200},
        {**GOOD, "errors": [(2, "past the entries")], "error_count": 1},
        {**GOOD, "errors": [(-2, "x")], "error_count": 1},
        {**GOOD, "errors": [(True, "x")], "error_count": 1},
        {**GOOD, "errors": [(0, "x" * 100_000)], "error_count": 1},
        {**GOOD, "errors": [(0, b"bytes")], "error_count": 1},
        {**GOOD, "errors": [(0,)], "error_count": 1},
        {**GOOD, "errors": [(0, "x")], "error_count": 0},  # fewer counted than listed
        {**GOOD, "deleted": ["../../etc/passwd"], "deleted_count": 1},
        {**GOOD, "deleted": ["/etc/passwd"], "deleted_count": 1},
        {**GOOD, "deleted": ["a\x00b"], "deleted_count": 1},
        {**GOOD, "deleted": ["a\nfake line"], "deleted_count": 1},
        {**GOOD, "deleted": [""], "deleted_count": 1},
        {**GOOD, "deleted": ["a"] * (_push_remote.MAX_DELETED_LISTED + 1), "deleted_count": 20_000},
        {**GOOD, "deleted": ["x" * 200 + "/" + "y" * 200] * 3000, "deleted_count": 3000},  # over the characters
        {**GOOD, "deleted": ["a"], "deleted_count": 0},
        {**GOOD, "deleted_count": -1},
        {**GOOD, "deleted_count": 1 << 80},
        {**GOOD, "error_count": 1.0},
    ],
)
def test_a_bad_summary_fails_its_host_and_nothing_else(tmp_path, bad) -> None:
    (tmp_path / "a").write_bytes(b"a")
    plan = _push.prepare(str(tmp_path) + "/", "/srv/x")
    with pytest.raises(ValueError):
        _push.check_summary(bad, len(plan.entries))
    offer = _push.Offer(plan, {})
    transfer, error = offer.outcome("evil", bad)
    assert isinstance(error, PushFailed) and "not valid" in str(error)
    assert transfer.changed_paths == transfer.deleted_paths == () and not transfer.changed


summaries = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=14), inner, max_size=6),
    max_leaves=20,
)


@given(summaries)
def test_any_summary_is_checked_or_refused(summary) -> None:
    try:
        status, errors, error_count, deleted, deleted_count = _push.check_summary(summary, 2)
    except ValueError:
        return
    assert len(status) == 2 and set(status) <= set("ucmfs")
    assert error_count >= len(errors) and deleted_count >= len(deleted)
    for path in deleted:
        assert _tree.check_relpath(path) and not os.path.isabs(path)


# -- a hostile child, end to end ------------------------------------------------------------------------

# Every hostile child below begins so: hello, then the push's one call, whose plan it takes apart.
TAKE_THE_PUSH = r"""
import marshal
hello()
for kind, call, body in frames():
    if kind == CALL:
        break
spec, args, kwargs = marshal.loads(body[1:])
plan = args[0]
"""

PROBE = (
    TAKE_THE_PUSH
    + r"""
token, name = plan["token"], plan["service"]
requests = [
    ("read", {"token": token, "file": 0, "index": 10 ** 6}),
    ("read", {"token": token, "file": -1, "index": 0}),
    ("read", {"token": token, "file": 0, "index": True}),
    ("read", {"token": "f" * 32, "file": 0, "index": 0}),
    ("read", {"token": token, "file": 0}),
    ("read", {"token": token, "file": 0, "index": 0, "path": "/etc/shadow"}),
    ("entries", {"token": token, "page": 0}),
    ("_admit", {"token": token, "file": 0, "index": 0}),
    ("__init__", {"token": token}),
    ("offer", {"token": token, "file": 0, "index": 0}),
    ("read_batch", {"token": token, "files": [0]}),  # a file larger than a chunk
    ("read_batch", {"token": token, "files": list(range(300))}),
    ("read_batch", {"token": token, "files": "0"}),
    ("read", {"token": token, "file": 0, "index": 0}),  # the one fair request, last
]
for rid, (method, arguments) in enumerate(requests, 1):
    send(encode_frame(SERVICE_CALL, rid, literal((name, method, arguments))))
replies = {}
for kind, rid, reply in frames():
    if kind == SERVICE_REPLY:
        replies[rid] = marshal.loads(reply[1:])
        if len(replies) == len(requests):
            break
unfair = [replies[i] for i in range(1, len(requests))]
refused = all(reply[0] == "error" and reply[1] == "fanout.service.CallRefused" for reply in unfair)
served = replies[len(requests)][0] == "ok"
summary = {"status": "u" * plan["count"], "errors": [], "error_count": 0, "deleted": [], "deleted_count": 0}
send(encode_frame(RESULT, call, literal(summary if refused and served else "something was served")))
for _ in frames():
    pass
"""
)

FLOOD = (
    TAKE_THE_PUSH
    + r"""
read = literal((plan["service"], "read", {"token": plan["token"], "file": 0, "index": 0}))


def replies(count):
    outcomes = []
    for kind, rid, reply in frames():
        if kind == SERVICE_REPLY:
            outcome = marshal.loads(reply[1:])
            outcomes.append("ok" if outcome[0] == "ok" else "in flight" if "in flight" in outcome[2] else outcome[2])
            if len(outcomes) == count:
                return outcomes


for rid in range(1, COUNT + 1):  # all at once, reading no reply: each would hold a chunk on the master
    send(encode_frame(SERVICE_CALL, rid, read))
flood = replies(COUNT)
send(encode_frame(SERVICE_CALL, COUNT + 1, read))  # replies read: a fair request again
[after] = replies(1)
bounded = flood.count("ok") <= LIMIT + 1 and flood.count("in flight") == COUNT - flood.count("ok")
summary = {"status": "u" * plan["count"], "errors": [], "error_count": 0, "deleted": [], "deleted_count": 0}
send(encode_frame(RESULT, call, literal(summary if bounded and after == "ok" else [after, flood])))
for _ in frames():
    pass
"""
)


@pytest.fixture
def own_pool():
    with service.Pool(16).serve_children() as pool:
        yield pool.add(FileChunks())


def test_a_hostile_host_gets_nothing_outside_its_push(hostile_child, healthy_children, own_pool, tmp_path) -> None:
    source = tmp_path / "f"
    source.write_bytes(os.urandom(2 * _push.CHUNK))
    probe = hostile_child(PROBE)
    dest = tmp_path / "dest"
    transfer = probe.put(source, str(dest))  # it answers "all unchanged" only if every unfair request was refused
    assert transfer.bytes_sent == _push.CHUNK and not transfer.changed
    assert own_pool.reads == 1  # the one fair request; refusals read nothing
    [healthy] = healthy_children()
    assert healthy.put(source, str(dest)).bytes_sent == source.stat().st_size  # the service is unharmed
    assert dest.read_bytes() == source.read_bytes()


def test_a_host_asking_without_reading_is_refused_past_its_share(hostile_child, own_pool, tmp_path) -> None:
    source = tmp_path / "f"
    source.write_bytes(os.urandom(_push.CHUNK))
    count = 4 * _push.MAX_CALLS_IN_FLIGHT
    flooding = hostile_child(FLOOD.replace("COUNT", str(count)).replace("LIMIT", str(_push.MAX_CALLS_IN_FLIGHT)))
    transfer = flooding.put(source, str(tmp_path / "dest"))  # "all unchanged" only if the flood was bounded
    assert transfer.bytes_sent <= (_push.MAX_CALLS_IN_FLIGHT + 2) * _push.CHUNK
    assert own_pool.bytes_read <= transfer.bytes_sent  # refusals read nothing


DIGESTS = (
    TAKE_THE_PUSH
    + r"""
token, name = plan["token"], plan["service"]
files = [index for index, entry in enumerate(plan["entries"]) if entry[1] == "file"]
unfair = [
    {"token": token, "files": []},
    {"token": token, "files": files + files[:1]},  # a file twice
    {"token": token, "files": [0]},  # the root: a directory
    {"token": token, "files": [10 ** 6]},
    {"token": token, "files": [True]},
    {"token": token, "files": "1"},
    {"token": token, "files": list(range(2000))},  # over MAX_DIGESTS
    {"token": token, "files": files, "extra": 1},
    {"token": "f" * 32, "files": files},
]


def ask(arguments, count):
    for rid in range(1, count + 1):
        send(encode_frame(SERVICE_CALL, rid, literal((name, "digests", arguments))))
    replies = []
    for kind, rid, reply in frames():
        if kind == SERVICE_REPLY:
            replies.append(marshal.loads(reply[1:]))
            if len(replies) == count:
                return replies


refused = all(ask(arguments, 1)[0][1] == "fanout.service.CallRefused" for arguments in unfair)
answers = []
for _ in range(5):  # 40 requests for every digest, 8 at a time
    answers += ask({"token": token, "files": files}, 8)
same = all(answer == answers[0] for answer in answers) and answers[0][0] == "ok"
summary = {"status": "u" * plan["count"], "errors": [], "error_count": 0, "deleted": [], "deleted_count": 0}
send(encode_frame(RESULT, call, literal(summary if refused and same else [refused, answers[:2]])))
for _ in frames():
    pass
"""
)


def test_a_host_asking_for_digests_over_and_over_costs_one_read_of_each_file(hostile_child, own_pool, tmp_path) -> None:
    """The digests method hashes a file the push has not served by reading it whole: once for the push."""
    site = tmp_path / "site"
    site.mkdir()
    for name in "abc":
        (site / name).write_bytes(os.urandom(100_000))
    asking = hostile_child(DIGESTS)
    transfer = asking.put(str(site) + "/", str(tmp_path / "dest"))  # "all unchanged" only if refused and same
    assert not transfer.changed and transfer.bytes_sent == 0
    assert own_pool.bytes_read == 3 * 100_000 and own_pool.reads == 3  # 40 requests: each file read once
