"""The sha256 of each file a push serves, computed from the same reads that serve it: one pass over the source.

A file's digest is streamed from the first read of each of its chunks, in
order (a chunk read ahead of its turn waits in memory, within
:data:`PENDING_BYTES`). A host asking for a digest before the file was served
(to compare its own copy) gets it from one whole read of the file, which the
pull that may follow then does not repeat for hashing. Each chunk read again
(a host far behind the others) is checked against its first read (crc32), and
the file's size and mtime against the walk's once its digest is known: a file
that changed while being pushed is reported, never silently half-sent.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from fanout import _tree
from fanout._digest_cache import DigestCache

PENDING_BYTES = 8 * 1024 * 1024  # chunks of one file read ahead of its hashing, held; past this it is hashed again
EMPTY = hashlib.sha256().hexdigest()


class Changed(Exception):
    """The file changed while it was being pushed (its size, mtime, or the bytes of a chunk read twice)."""


class _File:
    """One file's digest in the making."""

    __slots__ = (
        "chunks",
        "crcs",
        "digest",
        "hasher",
        "lock",
        "next",
        "pending",
        "pending_bytes",
        "problem",
        "started",
        "whole",
    )

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.digest: str | None = EMPTY if chunks == 0 else None
        self.hasher: Any = hashlib.sha256() if chunks else None  # None once done, or given up on
        self.next = 0  # the chunk the hasher takes next
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.problem: str | None = None
        self.crcs: dict[int, int] = {}  # of each chunk's first read (files of more than one chunk)
        self.started = 0  # time.time_ns() of the first read
        self.lock = threading.Lock()
        self.whole = threading.Lock()  # one whole read at a time


class Digests:
    """The digests of one push's files (``path_of(file)`` is where each is read); ``on_whole_read(file, size)``,
    if set, is told of each file read whole to hash it."""

    def __init__(
        self, entries: list, chunk: int, path_of: Callable[[int], str], cache: DigestCache | None = None
    ) -> None:
        self.on_whole_read: Callable[[int, int], None] | None = None
        self.cache = cache  # digests remembered from earlier pushes (see fanout._digest_cache)
        self._entries = entries
        self._chunk = chunk
        self._path_of = path_of
        self._files: dict[int, _File] = {}
        self._lock = threading.Lock()

    def _file(self, file: int) -> _File:
        with self._lock:
            state = self._files.get(file)
            if state is None:
                state = self._files[file] = _File(_tree.chunks(self._entries[file][4], self._chunk))
            return state

    def known(self, file: int) -> str | None:
        """The digest if it is known and the file did not change; None otherwise."""
        with self._lock:
            state = self._files.get(file)
        if state is None:
            return EMPTY if self._entries[file][4] == 0 else None
        return state.digest if state.problem is None else None

    def seen(self, file: int, index: int, data: bytes) -> None:
        """Chunk ``index`` of ``file`` was read from disk: hash it in its turn, or check it against its first read."""
        state = self._file(file)
        finished = False
        with state.lock:
            if not state.started:
                state.started = time.time_ns()
            if state.chunks > 1:
                crc = zlib.crc32(data)
                first = state.crcs.setdefault(index, crc)
                if first != crc:
                    state.problem = "a chunk read twice differed"
                    return
            elif state.digest is not None:  # read again, whole: compare it with the digest
                if hashlib.sha256(data).hexdigest() != state.digest:
                    state.problem = "it was read twice and differed"
                return
            if state.hasher is None or index < state.next:
                return
            if index > state.next:
                if index not in state.pending:
                    state.pending[index] = data
                    state.pending_bytes += len(data)
                    if state.pending_bytes > PENDING_BYTES:  # far out of order: hashed whole when asked
                        state.hasher, state.pending, state.pending_bytes = None, {}, 0
                return
            state.hasher.update(data)
            state.next += 1
            while state.next in state.pending:
                piece = state.pending.pop(state.next)
                state.pending_bytes -= len(piece)
                state.hasher.update(piece)
                state.next += 1
            if state.next == state.chunks:
                digest, state.hasher = state.hasher.hexdigest(), None
                finished = True
        if finished:
            self._settle(file, state, digest, state.started)

    def get(self, file: int) -> str:
        """The file's digest: streamed already, or read whole now; :class:`Changed` if the file changed."""
        state = self._file(file)
        with state.whole:
            with state.lock:
                if state.problem is None and state.digest is not None:
                    return state.digest
                if state.problem is not None:
                    raise Changed(state.problem)
            if not self._remembered(file, state):
                self._read_whole(file, state)
        with state.lock:
            if state.problem is not None:
                raise Changed(state.problem)
            return state.digest  # type: ignore[return-value]

    def _read_whole(self, file: int, state: _File) -> None:
        started = time.time_ns()
        try:
            digest, size = _tree.file_sha256(self._path_of(file), follow=file == 0)
        except OSError as exc:
            raise Changed(f"it could not be read again: {exc.strerror or exc}") from None
        if self.on_whole_read is not None:
            self.on_whole_read(file, size)
        if size != self._entries[file][4]:
            self._problem(state, f"its size went from {self._entries[file][4]} to {size} bytes")
        else:
            self._settle(file, state, digest, started)

    def _remembered(self, file: int, state: _File) -> bool:
        """Whether the cache knew the file's digest (the file as walked): then it is the digest, unread."""
        if self.cache is None:
            return False
        entry = self._entries[file]
        try:
            info = os.stat(self._path_of(file), follow_symlinks=file == 0)
        except OSError:
            return False
        digest = self.cache.get(info) if (info.st_size, info.st_mtime_ns) == (entry[4], entry[3]) else None
        if digest is None:
            return False
        with state.lock:
            if state.digest is None:
                state.digest = digest
            elif state.digest != digest:
                state.problem = state.problem or "two reads of it differed"
        return True

    def remembered_entries(self) -> list:
        """The entries, with the sha256 of each file whose digest the cache remembers (the others have "")."""
        if self.cache is None:
            return self._entries
        entries = list(self._entries)
        for file, entry in enumerate(entries):
            if entry[1] == _tree.FILE and entry[4] and self._remembered(file, self._file(file)):
                digest = self.known(file)
                if digest is not None:
                    entries[file] = (*entry[:5], digest, entry[6])
        return entries

    def save(self) -> None:
        """Keep what this push hashed for the next (a cache that cannot be written is no error)."""
        if self.cache is not None:
            self.cache.save()

    def _settle(self, file: int, state: _File, digest: str, started: int) -> None:
        """A digest was computed: the file must still be as walked, and agree with any other digest of it."""
        entry = self._entries[file]
        try:
            info = os.stat(self._path_of(file), follow_symlinks=file == 0)
            moved = (info.st_size, info.st_mtime_ns) != (entry[4], entry[3])
        except OSError:
            moved = True
        with state.lock:
            if moved:
                state.problem = state.problem or "its size or modification time changed"
            elif state.digest is None:
                state.digest = digest
            elif state.digest != digest:
                state.problem = state.problem or "two reads of it differed"
            keep = state.problem is None and self.cache is not None
        if keep:
            self.cache.remember(info, digest, started)  # type: ignore[union-attr]

    @staticmethod
    def _problem(state: _File, problem: str) -> None:
        with state.lock:
            state.problem = state.problem or problem
