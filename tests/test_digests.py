"""The master hashes each pushed file from the reads that serve it: once, whatever order the chunks go in."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from fanout import _digests, _tree
from fanout._digests import Changed, Digests

CHUNK = 1024


def digests_of(tmp_path, data: bytes) -> tuple[Digests, list[int], list[bytes]]:
    """Digests for one file holding ``data``, the whole reads it makes (as sizes), and its chunks."""
    path = tmp_path / "f"
    path.write_bytes(data)
    entries = _tree.walk(path, hashes=False)
    whole: list[int] = []
    digests = Digests(entries, CHUNK, lambda file: str(path))
    digests.on_whole_read = lambda file, size: whole.append(size)
    return digests, whole, [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def test_chunks_read_in_order_give_the_digest_without_another_read(tmp_path) -> None:
    data = os.urandom(5 * CHUNK - 7)
    digests, whole, chunks = digests_of(tmp_path, data)
    assert digests.known(0) is None
    for index, chunk in enumerate(chunks):
        digests.seen(0, index, chunk)
    assert digests.known(0) == digests.get(0) == hashlib.sha256(data).hexdigest() and whole == []


def test_chunks_read_out_of_order_wait_for_their_turn(tmp_path) -> None:
    data = os.urandom(4 * CHUNK)
    digests, whole, chunks = digests_of(tmp_path, data)
    for index in (2, 1, 3, 2, 0):  # 2 again: a host far behind read it twice, the same bytes
        digests.seen(0, index, chunks[index])
    assert digests.get(0) == hashlib.sha256(data).hexdigest() and whole == []


def test_too_much_read_ahead_is_let_go_and_the_file_read_whole_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(_digests, "PENDING_BYTES", 2 * CHUNK)
    data = os.urandom(6 * CHUNK)
    digests, whole, chunks = digests_of(tmp_path, data)
    for index in (1, 2, 3, 4, 5, 0):
        digests.seen(0, index, chunks[index])
    assert digests.known(0) is None  # given up: not held in memory
    assert digests.get(0) == digests.get(0) == hashlib.sha256(data).hexdigest() and whole == [len(data)]


def test_a_chunk_read_again_with_other_bytes_is_a_change(tmp_path) -> None:
    data = os.urandom(3 * CHUNK)
    digests, _, chunks = digests_of(tmp_path, data)
    for index, chunk in enumerate(chunks):
        digests.seen(0, index, chunk)
    digests.seen(0, 1, b"x" * CHUNK)  # the file changed under a host that fell behind
    assert digests.known(0) is None
    with pytest.raises(Changed, match="read twice differed"):
        digests.get(0)


def test_a_file_modified_since_the_walk_is_a_change(tmp_path) -> None:
    data = os.urandom(2 * CHUNK)
    digests, _, chunks = digests_of(tmp_path, data)
    digests.seen(0, 0, chunks[0])
    os.utime(tmp_path / "f", ns=(0, 10**18))  # rewritten, same size: its mtime tells
    digests.seen(0, 1, chunks[1])
    with pytest.raises(Changed, match="modification time"):
        digests.get(0)


def test_a_whole_read_and_the_stream_must_agree(tmp_path) -> None:
    data = os.urandom(2 * CHUNK)
    digests, whole, chunks = digests_of(tmp_path, data)
    assert digests.get(0) == hashlib.sha256(data).hexdigest() and whole == [len(data)]  # asked before served
    digests.seen(0, 0, chunks[0])
    digests.seen(0, 1, chunks[1])
    assert digests.get(0) == hashlib.sha256(data).hexdigest() and whole == [len(data)]
    (tmp_path / "small").mkdir()
    small, _, _ = digests_of(tmp_path / "small", b"small")
    assert small.get(0) == hashlib.sha256(b"small").hexdigest()
    small.seen(0, 0, b"SMALL")  # served after it was hashed, with other bytes
    with pytest.raises(Changed, match="read twice"):
        small.get(0)


def test_an_empty_file_is_never_read(tmp_path) -> None:
    digests, whole, _ = digests_of(tmp_path, b"")
    assert digests.known(0) == digests.get(0) == hashlib.sha256(b"").hexdigest() and whole == []


def test_hosts_asking_at_once_cause_one_whole_read(tmp_path) -> None:
    data = os.urandom(64 * CHUNK)
    digests, whole, _ = digests_of(tmp_path, data)
    start = threading.Barrier(8)
    answers: list[str] = []

    def ask() -> None:
        start.wait()
        answers.append(digests.get(0))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [hashlib.sha256(data).hexdigest()] * 8 and whole == [len(data)]


def test_a_file_gone_before_it_was_hashed_is_a_change(tmp_path) -> None:
    digests, _, _ = digests_of(tmp_path, b"soon gone")
    (tmp_path / "f").unlink()
    with pytest.raises(Changed, match="could not be read again"):
        digests.get(0)
