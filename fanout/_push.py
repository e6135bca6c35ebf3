"""Push, the master's side: the source walked and hashed once, its chunks served to the whole fleet.

:func:`prepare` checks the arguments and walks the source before anything
connects. Each host then runs :func:`fanout._push_remote.apply` once, and pulls
the chunks of the files it lacks from :class:`FileChunks`, a service on the
master's children pool: identical requests from many hosts collapse into one
read (its invoker deduplicates them), and a bounded cache serves hosts that
follow a little behind, so the master reads each chunk about once, however
many hosts receive it. What a host sends (its chunk requests, its summary) is
checked against the push it belongs to, and bounded.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import hashlib
import mmap
import os
import posixpath
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from fanout import _digest_cache, _digests, _push_remote, _relay_chunks, _tree, service
from fanout._digest_cache import DigestCache
from fanout._timeouts import check_timeout
from fanout.errors import CallTimeout, PushFailed

CACHE_BYTES = 8 * 1024 * 1024  # chunks kept for hosts a little behind the first: the master's memory per push
PAGE_ENTRIES = 4096  # entries per page of the list a host pulls (the first page travels with the call)
MAX_POOL_THREADS = 32  # threads of the pool a push starts when no pool serves children
# Service calls a host may have in flight (sent, reply not yet written) for a read to be served: its push pulls
# with WORKERS at a time. A host asking many without reading the replies would otherwise hold a chunk per reply.
MAX_CALLS_IN_FLIGHT = 4 * _push_remote.WORKERS
# Bytes of chunks a push lets its hosts have in flight, all together: each pulls with as many threads (1 to
# WORKERS) as keep the sum within it. Hosts that fall apart (one slower than the others) each hold chunks of
# their own, and it is these, more than the cache, that make the master's memory grow with the hosts.
IN_FLIGHT_BYTES = 16 * 1024 * 1024
MAX_MODE = 0o7777
MAPPED_CHUNK = 128 * 1024  # chunks from this size up are read into a mapping of their own (see Plan.read)
MAX_CHUNK = 16 * 1024 * 1024  # bytes per piece at most: a reply stays well under a frame's 64 MiB
SERVICE_NAME = "fanout._push.FileChunks"
# Bytes per piece a host pulls, unless a push says otherwise. The master's CPU goes mostly to handling each
# request (paramiko's packet, decoding, deduplicating, framing): 256 KiB pieces cost it 14-18 s of CPU for a
# 256 MiB push to 8 hosts, 1 MiB pieces 9-11 s; but the chunks hosts hold in flight are the master's memory:
# 512 KiB keeps 32 hosts within the 32 MiB the push may add (benchmarks/files.py, docs/files.rst).
CHUNK = 512 * 1024

__all__ = ["CACHE_BYTES", "FileChunks", "PushFailed", "Transfer", "prepare", "put", "remote_root", "serving"]


@dataclass(frozen=True, repr=False)
class Transfer:
    """What a push did on one host. ``changed`` is False when everything was there already, byte for byte.

    ``path`` is the destination's root on the host; the ``*_paths`` are relative
    to it ("" is ``path`` itself): written or with mode or owner fixed,
    already right, deleted (``delete=True``; the first 10,000 of
    ``deleted_count``), and
    failed or skipped. ``size`` is the source's bytes of file content, ``sha256``
    a single file's digest ("" for a tree), ``bytes_sent`` the content this host
    pulled.
    """

    path: str
    changed: bool
    size: int
    sha256: str
    changed_paths: tuple[str, ...] = ()
    unchanged_paths: tuple[str, ...] = ()
    deleted_paths: tuple[str, ...] = ()
    failed_paths: tuple[str, ...] = ()
    deleted_count: int = 0
    bytes_sent: int = 0

    def __repr__(self) -> str:
        return (
            f"<Transfer {self.path}: {len(self.changed_paths)} changed, {len(self.unchanged_paths)} unchanged, "
            f"{self.deleted_count} deleted, {len(self.failed_paths)} failed, {self.bytes_sent} bytes sent>"
        )


# -- the digest cache ------------------------------------------------------------------------

CACHE_SETTING = "FANOUT_DIGEST_CACHE"  # "off" keeps pushes from remembering digests, here and on the hosts
_ON, _OFF = ("", "1", "on", "yes", "true"), ("0", "off", "no", "false")


def digest_cache() -> DigestCache | None:
    """This process's cache of digests (see fanout/_digest_cache.py), or None if FANOUT_DIGEST_CACHE is off."""
    setting = os.environ.get(CACHE_SETTING, "").strip().lower()
    if setting in _OFF:
        return None
    if setting not in _ON:
        raise ValueError(f"{CACHE_SETTING}={setting!r}: it takes on or off")
    return _digest_cache.shared(_digest_cache.RACY_NS)


# -- the arguments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A push, checked and walked: the same for every host."""

    local: str  # the source, as named (a link named is followed)
    dest: str  # the root on the hosts
    entries: list
    mode: int | None
    owner: str | int | None
    group: str | int | None
    delete: bool
    fsync: bool
    chunk: int = CHUNK  # bytes per piece a host pulls
    contents: bool = False  # a directory's contents, into dest (which is left as it is if it exists)
    name: str = field(default_factory=lambda: secrets.token_hex(8))  # its chunks' names (fanout._relay_chunks)

    @property
    def size(self) -> int:
        return sum(entry[4] for entry in self.entries)

    def path(self, file: int) -> str:
        relpath = self.entries[file][0]
        return os.path.join(self.local, relpath) if relpath else self.local

    def read(self, file: int, index: int) -> bytes | memoryview:
        """Chunk ``index`` of entry ``file``; short if the file shrank since it was walked (the host sees it).

        A large chunk is read into an anonymous mapping of its own, returned as a read-only view: its memory
        goes back to the system as soon as the last host's reply is written. Read as bytes, it went to
        malloc's arenas (a thread's each), which kept it: a push to 32 hosts grew the master by 20 to 34 MiB
        from one run to the next, instead of the chunks it held.
        """
        size = self.entries[file][4]
        path = self.path(file)
        offset = index * self.chunk
        length = min(self.chunk, size - offset)
        fd = os.open(path, os.O_RDONLY | (0 if file == 0 else getattr(os, "O_NOFOLLOW", 0)))
        try:
            if length < MAPPED_CHUNK:
                return os.pread(fd, length, offset)
            buffer = mmap.mmap(-1, length)
            got = os.preadv(fd, [buffer], offset)
            if got != length:
                return bytes(buffer[:got])
            _relay_chunks.name(buffer, f"{self.name}:{file}:{index}")  # a relay may keep it for hosts beyond it
            return memoryview(buffer).toreadonly()
        finally:
            os.close(fd)


def remote_root(src: str, dest: str, is_dir: bool) -> str:
    """Where ``src`` lands under ``dest``, as rsync places it.

    A directory: ``"site/"`` (a trailing slash) puts its contents in ``dest``;
    ``"site"`` puts the directory itself there, as ``dest/site``. A file: ``dest``
    is its full path, or, ending in "/", the directory it goes into.
    """
    if is_dir:
        if src.endswith(("/", os.sep)):
            root = dest
        else:
            name = os.path.basename(os.path.normpath(os.path.abspath(src)))
            root = posixpath.join(dest, name) if name else dest
    else:
        root = posixpath.join(dest, os.path.basename(src)) if dest.endswith("/") else dest
    return posixpath.normpath(root)


def check_options(mode: Any, owner: Any, group: Any, delete: Any) -> None:
    for what, value in (("owner", owner), ("group", group)):
        if value is not None and not (isinstance(value, str) and value) and type(value) is not int:
            raise ValueError(f"{what} must be a name or a numeric id, not {value!r}")
    if mode is not None and (type(mode) is not int or not 0 <= mode <= MAX_MODE):
        raise ValueError(f"mode must be a permission mode from 0 to 0o7777, not {mode!r}")
    if type(delete) is not bool:
        raise ValueError(f"delete must be True or False, not {delete!r}")


def prepare(
    src: str | os.PathLike,
    dest: str,
    *,
    mode: int | None = None,
    owner: str | int | None = None,
    group: str | int | None = None,
    delete: bool = False,
    fsync: bool = False,
    chunk: int = CHUNK,
) -> Plan:
    """Check a push's arguments and walk its source: all before anything connects (files are hashed as they
    are served, see :mod:`fanout._digests`)."""
    check_options(mode, owner, group, delete)
    digest_cache()  # a bad FANOUT_DIGEST_CACHE is an error before connecting
    if type(chunk) is not int or not 0 < chunk <= MAX_CHUNK:
        raise ValueError(f"chunk must be a number of bytes from 1 to {MAX_CHUNK}, not {chunk!r}")
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise ValueError(f"the destination must be an absolute path, not {dest!r}")
    if "\x00" in dest:
        raise ValueError("the destination holds a NUL character")
    local = os.fsdecode(os.fspath(src))
    if not os.path.exists(local):
        raise FileNotFoundError(errno.ENOENT, "no such file or directory to put", local)
    try:
        entries = _tree.walk(local, hashes=False)
    except _tree.TooManyEntries as exc:  # a source over the limit is a bad argument: Python's own ValueError
        raise ValueError(str(exc)) from None
    is_dir = entries[0][1] == _tree.DIR
    root = remote_root(local, dest, is_dir)
    if delete and not is_dir:
        raise ValueError(f"delete=True is for a directory, and {local} is a file")
    if delete and root == "/":
        raise ValueError("delete=True with / as the destination would empty the host: refused")
    contents = is_dir and root == posixpath.normpath(dest)  # "site/": dest is where the contents go
    return Plan(local, root, entries, mode, owner, group, delete, bool(fsync), chunk, contents)


# -- the service -----------------------------------------------------------------------------


class _Cache:
    """Chunks read, within ``limit`` bytes: one every host has taken goes at once, the rest least recently used
    first. So the cache holds what lies between the slowest host and the fastest, and a host that falls further
    behind than ``limit`` reads its chunks again (from the page cache, most likely)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.peak = 0
        self._chunks: collections.OrderedDict[tuple, list] = collections.OrderedDict()  # key -> [data, takers]
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            kept = self._chunks.get(key)
            if kept is None:
                return None
            self._chunks.move_to_end(key)
            return kept[0]

    def put(self, key: tuple, data: bytes) -> None:
        with self._lock:
            if key in self._chunks or len(data) > self.limit:
                return
            while self.size + len(data) > self.limit:
                self.size -= len(self._chunks.popitem(last=False)[1][0])
            self._chunks[key] = [data, 0]
            self.size += len(data)
            self.peak = max(self.peak, self.size)

    def taken(self, key: tuple, hosts: int) -> None:
        """A host got the chunk: once ``hosts`` have, nobody will ask for it again (but to retry)."""
        with self._lock:
            kept = self._chunks.get(key)
            if kept is not None:
                kept[1] += 1
                if kept[1] >= hosts:
                    self.size -= len(self._chunks.pop(key)[0])

    def drop(self, token: str) -> None:
        with self._lock:
            for key in [k for k in self._chunks if k[0] == token]:
                self.size -= len(self._chunks.pop(key)[0])


class _ChunkInvoker(service.DeduplicatingInvoker):
    """Identical requests collapse into one read; a request is checked against its push first.

    Unlike the plain DeduplicatingInvoker, results are not kept for the
    invoker's life (that would be every chunk ever pushed): the service's own
    bounded cache keeps the recent ones.
    """

    def invoke(self, method_name: str, kwargs: dict[str, Any], caller: service.Caller) -> Future:
        chunks: FileChunks = self.service  # type: ignore[assignment]
        offer, reason = chunks._admit(method_name, kwargs, caller)
        if offer is None:
            refused: Future = Future()
            refused.set_exception(service.CallRefused(reason))
            return refused
        future = super().invoke(method_name, kwargs, caller)
        if method_name == "read":
            keys = [(kwargs["token"], kwargs["file"], kwargs["index"])]
        elif method_name == "read_batch":
            keys = [(kwargs["token"], file, 0) for file in kwargs["files"]]
        elif method_name == "digests":
            return future
        else:
            return future
        digests = _push_remote.DIGEST_SIZE * len(keys) if method_name == "read_batch" else 0  # not content
        future.add_done_callback(lambda done: offer._served(caller.name, done, chunks.cache, keys, digests))
        return future

    def _execute(self, key: Any, method: Callable, kwargs: dict[str, Any]) -> None:
        super()._execute(key, method, kwargs)
        with self._lock:
            self._results.pop(key, None)


class FileChunks(service.Service):
    """The chunks of the files being pushed, for the hosts receiving them (one instance per pool).

    ``reads`` and ``bytes_read`` count what was read from disk, all pushes
    together; ``on_read(token, file, index, size)``, if set, is called after each
    read (from a pool thread).
    """

    name = SERVICE_NAME
    invoker_class = _ChunkInvoker

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self._offers: dict[str, Offer] = {}
        self._lock = threading.Lock()
        self.cache = _Cache(cache_bytes)
        self.reads = 0
        self.bytes_read = 0
        self.on_read: Callable[[str, int, int, int], None] | None = None

    @contextlib.contextmanager
    def offer(self, plan: Plan, contexts: Mapping[str, Any]) -> Iterator[Offer]:
        """Serve ``plan`` to ``contexts`` (host name -> its context) while the block runs."""
        offer = Offer(plan, dict(contexts))
        offer.digests.on_whole_read = lambda file, size: self._count(offer, file, -1, size)
        with self._lock:
            self._offers[offer.token] = offer
        try:
            yield offer
        finally:
            with self._lock:
                del self._offers[offer.token]
            self.cache.drop(offer.token)
            offer.digests.save()

    def _admit(self, method: str, kwargs: dict[str, Any], caller: service.Caller) -> tuple[Offer | None, str]:
        """The push a request belongs to, if the caller takes part in it and asks for what it holds."""
        token = kwargs.get("token")
        with self._lock:
            offer = self._offers.get(token) if type(token) is str else None
        if offer is None or caller.name not in offer.callers:
            return None, f"no push in progress for {caller.name} with that token"
        if _calls_in_flight(offer.callers[caller.name][1]) > MAX_CALLS_IN_FLIGHT:
            return None, f"{caller.name} has over {MAX_CALLS_IN_FLIGHT} service calls in flight: a push makes fewer"
        wanted = {
            "read": ("token", "file", "index"),
            "entries": ("token", "page"),
            "read_batch": ("token", "files"),
            "digests": ("token", "files"),
        }
        names = wanted.get(method)
        if names is None or sorted(kwargs) != sorted(names):
            return None, f"{SERVICE_NAME} has no method {method[:64]!r} with these arguments"
        entries = offer.plan.entries
        if method == "read_batch":
            return (offer, "") if _small_files(kwargs["files"], entries, offer.plan.chunk) else (None, "no such batch")
        if method == "digests":
            return (offer, "") if _some_files(kwargs["files"], entries) else (None, "no such files to hash")
        if any(type(kwargs[name]) is not int for name in names[1:]):
            return None, "chunks are asked for by whole numbers"
        if method == "entries":
            return (offer, "") if 1 <= kwargs["page"] < offer.pages else (None, "no such page of entries")
        file, index = kwargs["file"], kwargs["index"]
        if not 0 <= file < len(entries) or entries[file][1] != _tree.FILE:
            return None, "no such file in this push"
        if not 0 <= index < _tree.chunks(entries[file][4], offer.plan.chunk):
            return None, "no such chunk of this file"
        return offer, ""

    @service.expose(service.AllowAny())  # who may ask is checked against each push, in _admit
    @service.arg_spec({"token": str, "file": int, "index": int})
    def read(self, token: str, file: int, index: int) -> bytes:
        """Chunk ``index`` of file ``file`` of the push ``token``: from the cache, or read now (and cached)."""
        key = (token, file, index)
        data = self.cache.get(key)
        if data is not None:
            return data
        with self._lock:
            offer = self._offers.get(token)
        if offer is None:
            raise service.CallRefused("the push has ended")
        data = offer.plan.read(file, index)
        offer.digests.seen(file, index, data)
        self.cache.put(key, data)
        self._count(offer, file, index, len(data))
        return data

    @service.expose(service.AllowAny())
    @service.arg_spec({"token": str, "files": list})
    def read_batch(self, token: str, files: list) -> bytes | memoryview:
        """Small files of the push, whole (each under a chunk, together a chunk at most): one request for many,
        one bytes (which the protocol sends as it is): each file's sha256 (32 bytes), then the files end to end."""
        with self._lock:
            offer = self._offers.get(token)
        if offer is None:
            raise service.CallRefused("the push has ended")
        pieces = [self.read(token, file, 0) for file in files]
        if any(len(piece) != offer.plan.entries[file][4] for piece, file in zip(pieces, files, strict=True)):
            raise ValueError("a file of the batch changed size while it was being read: ask for each alone")
        try:
            digests = [bytes.fromhex(offer.digests.get(file)) for file in files]
        except _digests.Changed:
            raise ValueError("a file of the batch changed while it was being read: ask for each alone") from None
        batch = b"".join(digests + pieces)
        if len(batch) < MAPPED_CHUNK:
            return batch
        # A mapping of its own, named by the push and the files: a relay may keep it for the hosts beyond it.
        mapped = mmap.mmap(-1, len(batch))
        mapped[:] = batch
        which = hashlib.sha256(repr(files).encode()).hexdigest()[:32]
        _relay_chunks.name(mapped, f"{offer.plan.name}:batch:{which}")
        return memoryview(mapped).toreadonly()

    @service.expose(service.AllowAny())
    @service.arg_spec({"token": str, "files": list})
    def digests(self, token: str, files: list) -> list:
        """The sha256 of each of ``files``, as hex; for a file that changed while being pushed, why (not 64
        characters). A file not served yet is read whole for it (once for the whole fleet)."""
        with self._lock:
            offer = self._offers.get(token)
        if offer is None:
            raise service.CallRefused("the push has ended")
        answers = []
        for file in files:
            try:
                answers.append(offer.digests.get(file))
            except _digests.Changed as exc:
                answers.append(f"the master's copy changed while it was being read: {exc}")
        return answers

    def _count(self, offer: Offer, file: int, index: int, size: int) -> None:
        """A read from disk: a chunk, or a whole file to hash it (``index`` -1)."""
        with self._lock:
            self.reads += 1
            self.bytes_read += size
            offer.bytes_read += size
        hook = self.on_read
        if hook is not None:
            hook(offer.token, file, index, size)

    @service.expose(service.AllowAny())
    @service.arg_spec({"token": str, "page": int})
    def entries(self, token: str, page: int) -> list:
        """Page ``page`` of the push's entries (page 0 travels with the call)."""
        with self._lock:
            offer = self._offers.get(token)
        if offer is None:
            raise service.CallRefused("the push has ended")
        return offer.entries[page * PAGE_ENTRIES : (page + 1) * PAGE_ENTRIES]


def _small_files(files: Any, entries: list, chunk: int) -> bool:
    """Whether ``files`` names distinct small files of the push, together a chunk at most."""
    if type(files) is not list or not 0 < len(files) <= _push_remote.MAX_BATCH_FILES:
        return False
    total = 0
    for file in files:
        if type(file) is not int or not 0 <= file < len(entries) or entries[file][1] != _tree.FILE:
            return False
        total += entries[file][4]
    return len(set(files)) == len(files) and total <= chunk


def _some_files(files: Any, entries: list) -> bool:
    """Whether ``files`` names distinct files of the push, at most MAX_DIGESTS of them."""
    if type(files) is not list or not 0 < len(files) <= _push_remote.MAX_DIGESTS:
        return False
    if any(type(file) is not int or not 0 <= file < len(entries) or entries[file][1] != _tree.FILE for file in files):
        return False
    return len(set(files)) == len(files)


def workers_for(hosts: int, chunk: int) -> int:
    """Threads each of ``hosts`` pulls with: within IN_FLIGHT_BYTES together, 1 to WORKERS each."""
    return max(1, min(_push_remote.WORKERS, IN_FLIGHT_BYTES // max(1, hosts * chunk)))


def _calls_in_flight(context: Any) -> int:
    """Service calls ``context``'s child has sent whose replies are not written yet (its protocol counts them)."""
    protocol = getattr(context, "_protocol", None)
    return len(getattr(protocol, "_services_in_flight", ()))


class Offer:
    """One push being served: its token (known to its hosts only), and what each host pulled."""

    def __init__(self, plan: Plan, contexts: dict[str, Any]) -> None:
        self.token = secrets.token_hex(16)
        self.plan = plan
        # A service call names the context that made it: the host's own, or its become context (web1/root).
        self.callers = {context.name: (host, context) for host, context in contexts.items()}
        self.pages = max(1, -(-len(plan.entries) // PAGE_ENTRIES))
        cache = digest_cache()
        self.digests = _digests.Digests(plan.entries, plan.chunk, plan.path, cache)
        # What the hosts get: the walk's entries, with the sha256 of each file the cache remembers (a host
        # then compares without asking).
        self.entries = self.digests.remembered_entries()
        self.sent = dict.fromkeys(contexts, 0)
        self.bytes_read = 0
        self._lock = threading.Lock()
        self.call = {
            "service": SERVICE_NAME,
            "token": self.token,
            "dest": plan.dest,
            "entries": self.entries[:PAGE_ENTRIES],
            "count": len(plan.entries),
            "page": PAGE_ENTRIES,
            "mode": plan.mode,
            "owner": plan.owner,
            "group": plan.group,
            "delete": plan.delete,
            "fsync": plan.fsync,
            "chunk": plan.chunk,
            "contents": plan.contents,
            "digest_cache": None if cache is None else cache.racy_ns,
            "workers": workers_for(len(contexts), plan.chunk),
        }

    def sent_total(self) -> int:
        """Bytes of content the hosts have pulled so far, all together (a progress bar reads it)."""
        with self._lock:
            return sum(self.sent.values())

    def start(self, context: Any) -> Future:
        """The host's one call: compare, pull, replace."""
        return context.call_async(_push_remote.apply, self.call)

    def _served(self, caller: str, done: Future, cache: _Cache, keys: list[tuple], overhead: int) -> None:
        if done.exception() is None:
            value = done.result()
            host = self.callers[caller][0]
            with self._lock:
                self.sent[host] += len(value) - overhead
            for key in keys:
                cache.taken(key, len(self.callers))

    def _digest(self) -> str:
        """A single file's sha256, as served: known once a host compared or pulled it ("" before, or if the
        file changed while being pushed)."""
        return self.digests.known(0) or ""

    def outcome(self, host: str, summary: Any) -> tuple[Transfer, PushFailed | None]:
        """The host's summary, checked, as a Transfer; and a PushFailed if anything failed there."""
        with self._lock:
            sent = self.sent.get(host, 0)
        try:
            status, errors, error_count, deleted, deleted_count = check_summary(summary, len(self.plan.entries))
        except ValueError as exc:
            nothing = Transfer(self.plan.dest, False, self.plan.size, "", bytes_sent=sent)
            return nothing, PushFailed(host, (f"its summary of the push is not valid: {exc}",), 1, nothing)
        changed: list[str] = []
        unchanged: list[str] = []
        failed: list[str] = []
        for entry, code in zip(self.plan.entries, status, strict=True):
            (changed if code in "cm" else unchanged if code == "u" else failed).append(entry[0])
        single = self.plan.entries[0][1] == _tree.FILE
        transfer = Transfer(
            self.plan.dest,
            bool(changed or deleted_count),
            self.plan.size,
            self._digest() if single else "",
            changed_paths=tuple(changed),
            unchanged_paths=tuple(unchanged),
            deleted_paths=tuple(deleted),
            failed_paths=tuple(failed),
            deleted_count=deleted_count,
            bytes_sent=sent,
        )
        if not error_count and not failed:
            return transfer, None
        messages = tuple(message for _, message in errors) or ("entries were skipped",)
        return transfer, PushFailed(host, messages, max(error_count, 1), transfer)


def check_summary(summary: Any, count: int) -> tuple[str, list, int, list, int]:
    """A host's summary (see :func:`fanout._push_remote.apply`), each part checked; ValueError otherwise."""
    keys = ("status", "errors", "error_count", "deleted", "deleted_count")
    if type(summary) is not dict or sorted(summary) != sorted(keys):
        raise ValueError(f"it must be a dict of {', '.join(keys)}")
    status, errors, error_count, deleted, deleted_count = (summary[key] for key in keys)
    if type(status) is not str or len(status) != count or not set(status) <= set("ucmfs"):
        raise ValueError(f"its status must be {count} characters of u, c, m, f and s")
    if type(errors) is not list or len(errors) > _push_remote.MAX_ERRORS:
        raise ValueError(f"its errors must be a list of at most {_push_remote.MAX_ERRORS}")
    for error in errors:
        if (
            type(error) not in (tuple, list)
            or len(error) != 2
            or type(error[0]) is not int
            or not -1 <= error[0] < count
            or type(error[1]) is not str
            or len(error[1]) > _push_remote.MAX_MESSAGE + _tree.MAX_PATH * 2
        ):
            raise ValueError("each error must be (an entry's index or -1, a message of bounded length)")
    if type(deleted) is not list or len(deleted) > _push_remote.MAX_DELETED_LISTED:
        raise ValueError(f"its deleted paths must be a list of at most {_push_remote.MAX_DELETED_LISTED}")
    for path in deleted:
        _tree.check_relpath(path)
        if path == "":
            raise ValueError("the root cannot be among the deleted")
    if sum(len(path) for path in deleted) > _push_remote.MAX_DELETED_CHARS:
        raise ValueError(f"its deleted paths hold over {_push_remote.MAX_DELETED_CHARS} characters")
    for name, value, low in (("error_count", error_count, len(errors)), ("deleted_count", deleted_count, len(deleted))):
        if type(value) is not int or not low <= value <= _tree.MAX_SIZE:
            raise ValueError(f"its {name} must be a whole number of at least {low}")
    return status, errors, error_count, deleted, deleted_count


# -- the pool --------------------------------------------------------------------------------

_lease_lock = threading.Lock()
_own_pool: service.Pool | None = None  # the pool pushes started, while any runs
_own_users = 0


def pool_threads(hosts: int) -> int:
    """Threads for a pool a push starts: enough for each host's share (half the pool) to cover its workers."""
    return min(MAX_POOL_THREADS, max(2 * _push_remote.WORKERS, hosts))


@contextlib.contextmanager
def serving(threads: int) -> Iterator[FileChunks]:
    """The FileChunks service of the pool serving children, while the block runs.

    If no pool serves children, one of ``threads`` threads is started, and
    closed when the last push using it ends. A pool of the user's own gets the
    service added (once), and stays theirs.
    """
    global _own_pool, _own_users
    with _lease_lock:
        pool = service.children_pool()
        if pool is None:
            pool = _own_pool = service.Pool(threads).serve_children()
            _own_users = 0
        own = pool is _own_pool
        if own:
            _own_users += 1
        try:
            chunks = pool.get_service(SERVICE_NAME)
            if chunks is None:
                chunks = pool.add(FileChunks())
            if not isinstance(chunks, FileChunks):
                raise TypeError(f"the children's pool serves another service named {SERVICE_NAME}")
        except BaseException:
            if own:
                _release()
            raise
    try:
        yield chunks
    finally:
        if own:
            with _lease_lock:
                _release()


def _release() -> None:
    global _own_pool, _own_users
    _own_users -= 1
    if _own_users == 0 and _own_pool is not None:
        pool, _own_pool = _own_pool, None
        pool.close()


# -- one context -----------------------------------------------------------------------------


def put(
    context: Any,
    src: str | os.PathLike,
    dest: str,
    *,
    mode: int | None = None,
    owner: str | int | None = None,
    group: str | int | None = None,
    delete: bool = False,
    fsync: bool = False,
    timeout: float | None = None,
) -> Transfer:
    """:meth:`fanout.Context.put`: push to one context; a :class:`Transfer`, or :class:`PushFailed` raised."""
    plan = prepare(src, dest, mode=mode, owner=owner, group=group, delete=delete, fsync=fsync)
    seconds = check_timeout("timeout", timeout, allow_none=True)
    with serving(pool_threads(1)) as chunks, chunks.offer(plan, {context.name: context}) as offer:
        future = offer.start(context)
        try:
            summary = future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            raise CallTimeout(f"{context.name}: the push did not finish within {seconds:g} s") from None
    transfer, error = offer.outcome(context.name, summary)
    if error is not None:
        raise error
    return transfer
