"""Fetch, on the master: a host's file or tree into ``dest_dir/<host>/<path>``, trusting nothing the host says.

The host lists the source with digests (:mod:`fanout._fetch_remote`); the
master checks every entry, skips files whose local copy matches, and pulls the
others in pieces into temporary files it then renames into place. Whatever a
host sends, nothing is written outside that host's directory, no link is
followed, and no more than ``max_bytes`` is stored (docs/files.rst, *Fetch*).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from fanout import _fetch_remote, _tree
from fanout.errors import CallTimeout, FetchError, RemoteError

MAX_BYTES = 1 << 30  # bytes one fetch may store per host, unless the caller says otherwise
MAX_ENTRIES = 100_000  # entries one fetch may list per host (each costs the master some 500 bytes meanwhile)
READ_SIZE = _fetch_remote.READ_MAX  # bytes asked for in one read (1 MiB): a reply is pickled, never a literal
IN_FLIGHT_BYTES = 4 << 20  # bytes asked for and not yet received, per host: the memory a fetch holds
IN_FLIGHT_CALLS = 4  # reads in flight per host: each answer may be a frame of up to 64 MiB until checked
BATCH_PIECES = _fetch_remote.BATCH_MAX  # pieces one read may ask for: small files travel many to a call
OPEN_DIRS = 8  # directory descriptors a fetch keeps open, besides its base
ERRORS_SHOWN = 5  # entries an error message names; the rest are counted (all are in Fetched.errors)

_NOFOLLOW = os.O_NOFOLLOW
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_UNSAFE_NAME = ("\n", "\r", "\\")  # possible in a host's names, refused here (check_relpath says why)


class _Refused(Exception):
    """One entry is not fetched; the others go on."""


class _Interrupted(Exception):
    """The caller gave up (Ctrl-C in the fleet's thread): stop, leaving no temporary behind."""


@dataclass
class Fetched:
    """What a fetch did on one host: local paths written or found up to date, and entries not fetched.

    Every entry of the host's listing ends in exactly one of ``changed``,
    ``unchanged`` and ``errors`` (``(local path, reason)``).
    """

    host: str
    dest: str  # where the source itself is stored: a file, or the root of its tree
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    bytes_received: int = 0

    def __repr__(self) -> str:
        return (
            f"<Fetched {self.host} -> {self.dest}: {len(self.changed)} changed, {len(self.unchanged)} unchanged, "
            f"{len(self.errors)} errors, {self.bytes_received} bytes received>"
        )


@dataclass(frozen=True)
class Request:
    """A fetch as asked, checked once for every host: the same source, limits and token."""

    src: str  # the host's path, normalized
    parts: tuple[str, ...]  # its components
    dest: str  # dest_dir, or (flat) the path the source is stored at
    flat: bool
    max_bytes: int
    max_entries: int
    token: str  # names this fetch's listing on the hosts and its temporary files here


def request(
    src: str, dest: str | os.PathLike, *, flat: bool, max_bytes: int | None, max_entries: int | None
) -> Request:
    """Check what the caller asked, before connecting: a ValueError says what is wrong."""
    if not isinstance(src, str) or not src.startswith("/"):
        raise ValueError(f"src must be an absolute path on the hosts, not {src!r}")
    parts = tuple(part for part in src.split("/") if part not in ("", "."))
    if ".." in parts:
        raise ValueError(f"src must not hold '..': {src!r}")
    _tree.check_relpath("/".join(parts))  # NUL, newlines, over-long names
    dest = os.fspath(dest)
    if not isinstance(dest, str) or not dest:
        raise ValueError(f"dest must be a local path, not {dest!r}")
    if flat:
        name = (parts[-1] if parts else "") if dest.endswith(("/", os.sep)) else os.path.basename(dest)
        if name in ("", ".", ".."):
            raise ValueError(
                f"flat: dest {dest!r} must name the file or directory to write, or end with '/' to use "
                "the source's name"
            )
        if dest.endswith(("/", os.sep)):
            dest = os.path.join(dest, name)
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    max_entries = MAX_ENTRIES if max_entries is None else max_entries
    if type(max_bytes) is not int or max_bytes < 0:
        raise ValueError(f"max_bytes must be a whole number of bytes, not {max_bytes!r}")
    if type(max_entries) is not int or not 1 <= max_entries <= _tree.MAX_ENTRIES:
        raise ValueError(f"max_entries must be a whole number from 1 to {_tree.MAX_ENTRIES}, not {max_entries!r}")
    return Request("/" + "/".join(parts), parts, dest, flat, max_bytes, max_entries, secrets.token_hex(8))


def check_host_name(host: str) -> str:
    """``host`` if it can be one directory's name below dest_dir; ValueError otherwise ("../x", "a/b", "")."""
    if not isinstance(host, str) or "/" in host or os.sep in host:
        raise ValueError(f"host name {host!r} cannot name a directory: it holds a path separator")
    try:
        _tree.check_relpath(host)
    except ValueError as exc:
        raise ValueError(f"host name {host!r} cannot name a directory: {exc}") from None
    if host == "":
        raise ValueError("an empty host name cannot name a directory")
    return host


# -- the listing ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    rel: str
    kind: str
    mode: int
    mtime_ns: int
    size: int
    sha256: str
    target: str
    parts: tuple[str, ...]  # local components below the base
    refused: str = ""  # why it is not fetched


class _Listing:
    """A host's entries, checked: a violation no honest host commits fails the host (FetchError); a name
    or link fanout will not write here refuses that entry alone."""

    def __init__(self, host: str, request: Request, prefix: tuple[str, ...], floor: int) -> None:
        self.host = host
        self.request = request
        self.prefix = prefix
        self.floor = floor  # components of the base a link may not climb above
        self.entries: list[_Entry] = []
        self.kinds: dict[str, str] = {}  # relpath -> kind, for duplicates and parents
        self.refused_dirs: set[str] = set()
        self.count = 0

    def fail(self, reason: str) -> FetchError:
        return FetchError(self.host, reason)

    def add_page(self, page: Any) -> None:
        if type(page) is not list or not page or len(page) > _fetch_remote.PAGE:
            raise self.fail(f"its listing is malformed: a page must be a list of 1 to {_fetch_remote.PAGE} entries")
        if len(self.entries) + len(page) > self.count:
            raise self.fail(f"its listing holds more entries than the {self.count} it announced")
        for raw in page:
            self.add(raw)

    def add(self, raw: Any) -> None:
        rel = raw[0] if type(raw) in (tuple, list) and raw else None
        unsafe = type(rel) is str and any(char in rel for char in _UNSAFE_NAME)
        try:
            checked = _tree.check_entry(raw if not unsafe else (_sanitized(rel), *raw[1:]))
        except ValueError as exc:
            raise self.fail(f"its listing is malformed: {exc}") from None
        _, kind, mode, mtime_ns, size, sha256, target = checked
        if self.entries and rel == "":
            raise self.fail("its listing names the root twice")
        if not self.entries:
            if rel != "" or kind == _tree.LINK:
                raise self.fail("its listing does not start with the source itself, a file or a directory")
            if kind == _tree.FILE and (self.count != 1 or not self.prefix):
                raise self.fail("its listing has entries below a file" if self.count != 1 else "/ is not a file")
        elif rel in self.kinds:
            raise self.fail(f"its listing names {rel[:200]!r} twice")
        else:
            parent = rel.rpartition("/")[0]
            if self.kinds.get(parent) != _tree.DIR:
                raise self.fail(f"its listing puts {rel[:200]!r} below something it did not list as a directory")
        self.kinds[rel] = kind
        if kind == _tree.FILE and size > self.request.max_bytes:
            raise self.fail(f"{rel or self.request.src!r} is {size} bytes, over max_bytes={self.request.max_bytes}")
        parts = self.prefix + (tuple(rel.split("/")) if rel else ())
        entry = _Entry(rel, kind, mode, mtime_ns, size, sha256, target, parts)
        entry.refused = self._refusal(entry, unsafe)
        if entry.refused and kind == _tree.DIR:
            self.refused_dirs.add(rel)
        self.entries.append(entry)

    def _refusal(self, entry: _Entry, unsafe: bool) -> str:
        if entry.rel and entry.rel.rpartition("/")[0] in self.refused_dirs:
            return "its directory is not fetched"
        if unsafe:
            try:
                _tree.check_relpath(entry.rel)
            except ValueError as exc:
                return f"not written here: {exc}"
        try:
            for part in entry.parts:
                os.fsencode(part)
        except UnicodeError:
            return "its name cannot be written on this machine"
        if entry.kind == _tree.LINK:
            return _link_refusal(entry.parts, entry.target, self.floor)
        return ""

    def done(self) -> bool:
        return len(self.entries) >= self.count


def _sanitized(rel: str) -> str:
    """``rel`` with the characters refused entry by entry replaced, to check the rest of it."""
    for char in _UNSAFE_NAME:
        rel = rel.replace(char, "_")
    return rel


def _link_refusal(parts: tuple[str, ...], target: str, floor: int) -> str:
    """Why a link at ``parts`` to ``target`` may not be made here, or "".

    Only a relative target that climbs first ('..' components) and then descends,
    never above ``floor`` components of the base, is made: then where it points
    does not depend on what the links it passes through point to.
    """
    if target.startswith("/"):
        return f"a link to an absolute path ({target[:200]!r}) is not made here"
    depth = len(parts) - 1  # the directory the link is in
    climbing = True
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not climbing:
                return f"a link whose target climbs after descending ({target[:200]!r}) is not made here"
            depth -= 1
            if depth < floor:
                return f"a link pointing outside the host's directory ({target[:200]!r}) is not made here"
        else:
            climbing = False
    try:
        os.fsencode(target)
    except UnicodeError:
        return "its target cannot be written on this machine"
    return ""


# -- the local side ------------------------------------------------------------------------------


class _Local:
    """Directories below one base, opened one component at a time, never through a link."""

    def __init__(self, base_fd: int, shown: str) -> None:
        self.base_fd = base_fd
        self.shown = shown  # the base as the user named it
        self.cache: collections.OrderedDict[tuple[str, ...], int] = collections.OrderedDict()

    def path(self, parts: tuple[str, ...]) -> str:
        return os.path.join(self.shown, *parts)

    def dir(self, parts: tuple[str, ...], create: bool) -> int | None:
        """The directory at ``parts`` (made if ``create``), or None when it is missing and not made.

        A link, a file or anything else in the way raises _Refused: it is never followed or replaced.
        """
        if not parts:
            return self.base_fd
        fd = self.cache.get(parts)
        if fd is not None:
            self.cache.move_to_end(parts)
            return fd
        known = len(parts) - 1
        while known and parts[:known] not in self.cache:
            known -= 1
        fd = self.cache[parts[:known]] if known else self.base_fd
        for end in range(known + 1, len(parts) + 1):
            name = parts[end - 1]
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                    fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _Refused(f"cannot make {self.path(parts[:end])}: {exc.strerror}") from None
            except OSError as exc:
                raise _Refused(
                    f"{self.path(parts[:end])} is in the way: a link, a file or something else, not a directory "
                    f"(links are never followed) [{exc.strerror}]"
                ) from None
            self._keep(parts[:end], fd)
        return fd

    def _keep(self, parts: tuple[str, ...], fd: int) -> None:
        self.cache[parts] = fd
        while len(self.cache) > OPEN_DIRS:
            _, old = self.cache.popitem(last=False)
            os.close(old)

    def close(self) -> None:
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()
        os.close(self.base_fd)


def _open_base(path: str, name: str | None) -> int:
    """``path`` (made if missing, the user's own: followed), then ``name`` below it, never through a link."""
    os.makedirs(path, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if name is None:
        return fd
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            os.mkdir(name, 0o777, dir_fd=fd)
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def file_mode(mode: int) -> int:
    """A fetched file's mode here: the host's permissions, never setuid, setgid or sticky; readable by its owner."""
    return (mode & 0o777) | 0o400


def dir_mode(mode: int) -> int:
    """A fetched directory's mode here: the host's, plus the owner's rwx (so a later fetch can write in it)."""
    return (mode & 0o777) | 0o700


def _same_file(fd: int, name: str, size: int, sha256: str) -> bool:
    """Whether the regular file ``name`` in ``fd`` has this size and digest (a link there never matches)."""
    try:
        file = os.open(name, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return False
    try:
        info = os.fstat(file)
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            return False
        digest = hashlib.sha256()
        while True:
            block = os.read(file, _tree.CHUNK)
            if not block:
                break
            digest.update(block)
        return digest.hexdigest() == sha256
    finally:
        os.close(file)


# -- one host ------------------------------------------------------------------------------------

Wait = Callable[[Future], Any]


class _Temporary:
    """A file being received: written beside its target under a name of this fetch's, moved into place whole."""

    def __init__(self, local: _Local, entry: _Entry, name: str) -> None:
        self.entry = entry
        self.name = name
        self.parent = os.dup(_parent(local, entry))
        self.fd: int | None = None
        try:
            self.fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.parent
            )
        except BaseException:
            os.close(self.parent)
            raise
        self.digest = hashlib.sha256()
        self.written = 0

    def write(self, data: bytes) -> None:
        assert self.fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.digest.update(data)
        self.written += len(data)

    def finish(self) -> None:
        """Check the digest, set mode and mtime, and rename into place (replacing a file or link, not a dir)."""
        assert self.fd is not None
        entry = self.entry
        if self.written != entry.size or self.digest.hexdigest() != entry.sha256:
            raise _Refused("it changed while being read: what arrived does not match the listing's sha256")
        os.fchmod(self.fd, file_mode(entry.mode))
        os.utime(self.fd, ns=(entry.mtime_ns, entry.mtime_ns))
        os.close(self.fd)
        self.fd = None
        try:
            os.rename(self.name, entry.parts[-1], src_dir_fd=self.parent, dst_dir_fd=self.parent)
        except OSError as exc:
            raise _Refused(f"cannot put it in place: {exc.strerror} (a directory in the way?)") from None
        self.name = ""

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.name:
            with contextlib.suppress(OSError):
                os.unlink(self.name, dir_fd=self.parent)
            self.name = ""
        if self.parent >= 0:
            os.close(self.parent)
            self.parent = -1


def _parent(local: _Local, entry: _Entry) -> int:
    """The directory ``entry`` goes in, which must be there by now."""
    fd = local.dir(entry.parts[:-1], create=False)
    if fd is None:
        raise _Refused(f"its directory {local.path(entry.parts[:-1])} is missing")
    return fd


class _HostFetch:
    """One host's fetch, start to end, on the caller's thread; every wait goes through ``wait``."""

    def __init__(
        self, context: Any, host: str, request: Request, wait: Wait, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        self.context = context
        self.host = host
        self.request = request
        self.wait = wait
        self.on_bytes = on_bytes  # told of each piece's bytes as it arrives (a progress bar)
        if request.flat:
            self.shown_base = os.path.dirname(request.dest)  # "" for a name in the working directory
            base, name = self.shown_base or ".", None
            prefix: tuple[str, ...] = (os.path.basename(request.dest),)
        else:
            base, name = request.dest, host
            prefix = request.parts
            self.shown_base = os.path.join(request.dest, name)
        self.base, self.base_name, self.prefix = base, name, prefix
        self.floor = len(prefix) if request.flat else 0
        self.fetched = Fetched(host, os.path.join(self.shown_base, *prefix))
        self.temporaries = 0

    def fail(self, reason: str) -> FetchError:
        return FetchError(self.host, reason, self.fetched)

    def run(self) -> Fetched:
        listing = self.list()
        try:
            fd = _open_base(self.base, self.base_name)
        except OSError as exc:
            raise self.fail(f"cannot open {self.shown_base} (links are never followed there): {exc}") from None
        local = _Local(fd, self.shown_base)
        try:
            self.store(listing, local)
        finally:
            local.close()
        errors = self.fetched.errors
        if errors:
            shown = "; ".join(f"{path}: {reason}" for path, reason in errors[:ERRORS_SHOWN])
            more = f" (and {len(errors) - ERRORS_SHOWN} more)" if len(errors) > ERRORS_SHOWN else ""
            raise self.fail(f"{len(errors)} of {len(listing.entries)} entries not fetched: {shown}{more}")
        return self.fetched

    def list(self) -> _Listing:
        """The host's entries, every one checked, within max_entries."""
        request = self.request
        listing = _Listing(self.host, request, self.prefix, self.floor)
        answer = self.wait(self.context.call_async(_fetch_remote.scan, request.src, request.token, request.max_entries))
        if type(answer) is not tuple or len(answer) != 2 or type(answer[0]) is not int:
            raise self.fail("its listing is malformed: not (count, entries)")
        count, page = answer
        if not 1 <= count <= request.max_entries:
            raise self.fail(f"it announces {count} entries: 1 to max_entries={request.max_entries} are taken")
        listing.count = count
        try:
            listing.add_page(page)
            while not listing.done():
                listing.add_page(
                    self.wait(self.context.call_async(_fetch_remote.page, request.token, len(listing.entries)))
                )
        except BaseException:
            if len(listing.entries) < count:  # the host may keep it for more pages: let it go
                with contextlib.suppress(Exception):
                    self.context.call_async(_fetch_remote.forget, request.token)
            raise
        return listing

    def store(self, listing: _Listing, local: _Local) -> None:
        """Compare, check the total against max_bytes, then directories, files, links, and directories' times."""
        fetched = self.fetched
        pull: list[_Entry] = []
        for entry in listing.entries:
            if entry.kind == _tree.FILE and not entry.refused and not self.matches(local, entry):
                pull.append(entry)
        total = sum(entry.size for entry in pull)
        if total > self.request.max_bytes:
            raise self.fail(f"it would store {total} bytes, over max_bytes={self.request.max_bytes}")
        failed_dirs: set[tuple[str, ...]] = set()
        pulled = {id(entry) for entry in pull}
        try:
            local.dir(self.prefix[:-1], create=True)
        except _Refused as exc:
            raise self.fail(str(exc)) from None
        for entry in listing.entries:
            if entry.refused:
                fetched.errors.append((local.path(entry.parts), entry.refused))
            elif entry.parts[:-1] in failed_dirs:
                fetched.errors.append((local.path(entry.parts), "its directory could not be made"))
                if entry.kind == _tree.DIR:
                    failed_dirs.add(entry.parts)
            elif entry.kind == _tree.DIR:
                if not self.one(local, entry, lambda entry=entry: self.make_dir(local, entry)):
                    failed_dirs.add(entry.parts)
            elif entry.kind == _tree.FILE and id(entry) not in pulled:
                self.one(local, entry, lambda entry=entry: self.touch(local, entry))
        self.pull([e for e in pull if e.parts[:-1] not in failed_dirs], local)
        for entry in listing.entries:
            if entry.kind == _tree.LINK and not entry.refused and entry.parts[:-1] not in failed_dirs:
                self.one(local, entry, lambda entry=entry: self.link(local, entry))
        for entry in reversed(listing.entries):
            if entry.kind == _tree.DIR and not entry.refused and entry.parts not in failed_dirs:
                with contextlib.suppress(_Refused, OSError):  # its failure is already counted, or it is gone
                    fd = local.dir(entry.parts, create=False)
                    if fd is not None:
                        os.fchmod(fd, dir_mode(entry.mode))
                        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def one(self, local: _Local, entry: _Entry, step: Callable[[], bool]) -> bool:
        """Run one entry's step, which says whether it changed anything; a refusal or an OSError is that
        entry's error (False)."""
        path = local.path(entry.parts)
        try:
            changed = step()
        except _Refused as exc:
            self.fetched.errors.append((path, str(exc)))
            return False
        except OSError as exc:
            self.fetched.errors.append((path, f"{type(exc).__name__}: {exc.strerror or exc}"))
            return False
        (self.fetched.changed if changed else self.fetched.unchanged).append(path)
        return True

    def matches(self, local: _Local, entry: _Entry) -> bool:
        try:
            fd = local.dir(entry.parts[:-1], create=False)
        except _Refused:
            return False
        return fd is not None and _same_file(fd, entry.parts[-1], entry.size, entry.sha256)

    def make_dir(self, local: _Local, entry: _Entry) -> bool:
        if not entry.parts:  # the host's / itself: the host's directory, there already
            return False
        parent = _parent(local, entry)
        try:
            os.stat(entry.parts[-1], dir_fd=parent, follow_symlinks=False)
            existed = True
        except FileNotFoundError:
            existed = False
        local.dir(entry.parts, create=True)
        return not existed

    def touch(self, local: _Local, entry: _Entry) -> bool:
        """A file already here, byte for byte: its mode and mtime set as the host's (not a change)."""
        parent = _parent(local, entry)
        fd = os.open(entry.parts[-1], os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _Refused("it changed here meanwhile")
            if stat.S_IMODE(info.st_mode) != file_mode(entry.mode):
                os.fchmod(fd, file_mode(entry.mode))
            if info.st_mtime_ns != entry.mtime_ns:
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)
        return False

    def link(self, local: _Local, entry: _Entry) -> bool:
        parent = _parent(local, entry)
        name = entry.parts[-1]
        try:
            same = os.readlink(name, dir_fd=parent) == entry.target
        except OSError:
            same = False
        if same:
            if os.stat(name, dir_fd=parent, follow_symlinks=False).st_mtime_ns != entry.mtime_ns:
                os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)
            return False
        temporary = self.temporary_name()
        os.symlink(entry.target, temporary, dir_fd=parent)
        try:
            os.utime(temporary, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)
            os.rename(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise _Refused(f"cannot put it in place: {exc.strerror} (a directory in the way?)") from None
        return True

    def temporary_name(self) -> str:
        self.temporaries += 1
        return f".fanout-fetch-{self.request.token}-{self.temporaries}.tmp"

    # -- pulling files ---------------------------------------------------------------------------

    def pull(self, entries: list[_Entry], local: _Local) -> None:
        """Read the files in pieces, several in flight; small files many to a call."""
        _Puller(self, local).run(entries)


Piece = tuple[_Entry, int, int]  # a file, an offset, a size


class _Puller:
    """One host's reads, in order: batches in flight within IN_FLIGHT_CALLS and IN_FLIGHT_BYTES, their
    answers written as they come, one file being written at a time."""

    def __init__(self, fetch: _HostFetch, local: _Local) -> None:
        self.fetch = fetch
        self.local = local
        self.pending: collections.deque[tuple[list[Piece], Future]] = collections.deque()
        self.failed: dict[int, str] = {}  # id(entry) -> why, until its error is filed
        self.in_flight = 0
        self.current: _Temporary | None = None

    def run(self, entries: list[_Entry]) -> None:
        batches = _batches(entries)
        try:
            self.fill(batches)
            while self.pending:
                batch, future = self.pending.popleft()
                self.in_flight -= sum(size for _, _, size in batch)
                for piece, data in zip(batch, self.answers(batch, future), strict=True):
                    self.take(piece, data)
                self.fill(batches)
        finally:
            if self.current is not None:
                self.current.discard()
        for entry in entries:  # failed before their last piece was asked for
            self.file_error(entry)

    def fill(self, batches: Iterator[list[Piece]]) -> None:
        while len(self.pending) < IN_FLIGHT_CALLS and self.in_flight < IN_FLIGHT_BYTES:
            batch = next(batches, None)
            if batch is None:
                return
            batch = [piece for piece in batch if id(piece[0]) not in self.failed]
            if not batch:
                continue
            asked = [(entry.rel, offset, size) for entry, offset, size in batch]
            future = self.fetch.context.call_async(_fetch_remote.read_many, self.fetch.request.src, asked)
            self.in_flight += sum(size for _, _, size in batch)
            self.pending.append((batch, future))

    def answers(self, batch: list[Piece], future: Future) -> list:
        """What the host sent for ``batch``: bytes, or why a piece could not be read; checked for shape."""
        try:
            answers = self.fetch.wait(future)
        except RemoteError as exc:  # the whole batch: none of its files can be written
            return [f"{exc.type_name}: {exc.message}"] * len(batch)
        if type(answers) is not list or len(answers) != len(batch):
            raise self.fetch.fail(f"it answered a read of {len(batch)} pieces with something else")
        for (_, _, size), data in zip(batch, answers, strict=True):
            if type(data) not in (bytes, str):
                raise self.fetch.fail(f"it answered a read with {type(data).__name__}, not bytes")
            if type(data) is bytes and len(data) > size:
                raise self.fetch.fail(f"it sent {len(data)} bytes for a read of {size}")
        return answers

    def take(self, piece: Piece, data: bytes | str) -> None:
        """Write one piece into its file's temporary; the last one checks and renames it."""
        entry, offset, size = piece
        fetched = self.fetch.fetched
        if type(data) is str:
            self.failed.setdefault(id(entry), f"cannot read it on the host: {data[:500]}")
            data = b""
        fetched.bytes_received += len(data)
        if self.fetch.on_bytes is not None:
            self.fetch.on_bytes(len(data))
        if fetched.bytes_received > self.fetch.request.max_bytes:  # cannot happen: reads stay within sizes
            raise self.fetch.fail(f"it sent more than max_bytes={self.fetch.request.max_bytes}")
        if id(entry) not in self.failed:
            if len(data) < size:
                self.failed[id(entry)] = "it changed while being read: shorter than listed"
            else:
                try:
                    if offset == 0:
                        self.current = _Temporary(self.local, entry, self.fetch.temporary_name())
                    assert self.current is not None and self.current.entry is entry
                    self.current.write(data)
                    if offset + size == entry.size:
                        self.current.finish()
                        self.current.discard()
                        self.current = None
                        fetched.changed.append(self.local.path(entry.parts))
                except (_Refused, OSError) as exc:
                    reason = str(exc) if isinstance(exc, _Refused) else f"{type(exc).__name__}: {exc}"
                    self.failed[id(entry)] = reason
        if id(entry) in self.failed:
            if self.current is not None and self.current.entry is entry:
                self.current.discard()
                self.current = None
            if offset + size == entry.size:
                self.file_error(entry)

    def file_error(self, entry: _Entry) -> None:
        reason = self.failed.pop(id(entry), None)
        if reason is not None:
            self.fetch.fetched.errors.append((self.local.path(entry.parts), reason))


def _pieces(entries: list[_Entry]) -> Iterator[Piece]:
    for entry in entries:
        if entry.size == 0:
            yield entry, 0, 0  # read all the same: the file must still be there
        for offset in range(0, entry.size, READ_SIZE):
            yield entry, offset, min(READ_SIZE, entry.size - offset)


def _batches(entries: list[_Entry]) -> Iterator[list[Piece]]:
    """Pieces grouped into calls of at most READ_SIZE bytes and BATCH_PIECES pieces, in order."""
    batch: list[Piece] = []
    total = 0
    for piece in _pieces(entries):
        if batch and (total + piece[2] > READ_SIZE or len(batch) >= BATCH_PIECES):
            yield batch
            batch, total = [], 0
        batch.append(piece)
        total += piece[2]
    if batch:
        yield batch


# -- entry points ----------------------------------------------------------------------------------


class Waiter:
    """Waits for one host's calls until ``deadline``; ``stop`` (a Future) set means the caller gave up."""

    def __init__(
        self, deadline: float | None, timed_out: Callable[[], BaseException], stop: Future | None = None
    ) -> None:
        self.deadline = deadline
        self.timed_out = timed_out
        self.stop = stop

    def __call__(self, future: Future) -> Any:
        left = None if self.deadline is None else max(self.deadline - time.monotonic(), 0)
        if self.stop is None:
            try:
                return future.result(timeout=left)
            except concurrent.futures.TimeoutError:
                raise self.timed_out() from None
        done, _ = concurrent.futures.wait(
            (future, self.stop), timeout=left, return_when=concurrent.futures.FIRST_COMPLETED
        )
        if future in done:
            return future.result()
        if self.stop.done():
            raise _Interrupted("the fetch was interrupted")
        raise self.timed_out()


def fetch_host(
    context: Any, host: str, request: Request, wait: Wait, on_bytes: Callable[[int], None] | None = None
) -> Fetched:
    """One host's fetch (a fleet's): raises FetchError, with what was done in ``fetched``, if it is incomplete.
    ``on_bytes(n)`` is told of each piece received (from the thread that writes it)."""
    if not request.flat:
        try:
            check_host_name(host)
        except ValueError as exc:
            raise FetchError(host, str(exc)) from None
    return _HostFetch(context, host, request, wait, on_bytes).run()


def fetch(
    context: Any,
    src: str,
    dest: str | os.PathLike,
    *,
    flat: bool = False,
    max_bytes: int | None = None,
    max_entries: int | None = None,
    timeout: float | None = None,
) -> Fetched:
    """:meth:`fanout.Context.fetch`: into ``dest/<host>/<path>``, or ``dest`` itself if ``flat``."""
    from fanout._timeouts import check_timeout

    seconds = check_timeout("timeout", timeout, allow_none=True)
    checked = request(src, dest, flat=flat, max_bytes=max_bytes, max_entries=max_entries)
    host = context._host.name  # a become context's files are still its host's
    deadline = None if seconds is None else time.monotonic() + seconds

    def timed_out() -> BaseException:
        return CallTimeout(f"{host}: the fetch of {checked.src} did not finish within {seconds:g} s")

    return fetch_host(context, host, checked, Waiter(deadline, timed_out))
