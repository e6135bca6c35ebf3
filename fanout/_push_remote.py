"""The host's side of a push: compare the master's entries with what is here, pull what differs, replace atomically.

Runs on the hosts (Python 3.9+, the standard library, imported on demand). The
master calls :func:`apply` once per host; files this host lacks are pulled in
chunks from the master's ``fanout._push.FileChunks`` service, by a few threads,
each holding one chunk at a time. Every file is written to a temporary beside
its target (deleted if the child ends first: see :mod:`fanout._files`), its
sha256 checked, then renamed into place. What is not a file (a directory, a
link) is never followed below the destination's root.
"""

import errno
import os
import shutil
import stat
import sys
import threading
import time

from fanout import _digest_cache, _files, _tree

WORKERS = 4  # chunks in flight per host at most (a push of many hosts asks for fewer: see _push.IN_FLIGHT_BYTES)
MAX_BATCH_FILES = 256  # small files asked for in one request (together at most a chunk): a round trip each no more
MAX_DIGESTS = 1024  # the master's digests asked for in one request (files here of the size it has)
DIGEST_SIZE = 32  # bytes of a sha256, as read_batch sends each file's
MAX_ERRORS = 100  # failures listed in the summary (all are counted)
MAX_MESSAGE = 1000  # characters of one failure's message
MAX_DELETED_LISTED = 10_000  # deleted paths listed in the summary (all are counted)
MAX_DELETED_CHARS = 1 << 20  # characters of the deleted paths listed, together
# Errors after which no other file can be written either: the push stops there.
FATAL_ERRNOS = frozenset(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EIO") if hasattr(errno, name))

UNCHANGED, CONTENT, METADATA, FAILED, SKIPPED = "u", "c", "m", "f", "s"
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # of no bytes at all
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _refused(error):
    """Whether ``error`` is the master's CallRefused, by type: one exists only once fanout.service is imported,
    so a failure of another kind does not import it (from the master) just to be told apart."""
    service = sys.modules.get("fanout.service")
    return service is not None and isinstance(error, service.CallRefused)


class SourceChanged(Exception):
    """The master's file changed while it was being read: what arrived is not what was hashed."""


def apply(plan):
    """Make ``plan["dest"]`` hold what the master's entries describe; a summary of plain values.

    ``plan``: ``service`` and ``token`` (where chunks come from), ``dest`` (the
    root), ``entries`` (the first page), ``count`` and ``page`` (how many entries,
    and how many a page holds), ``chunk`` (bytes per piece), ``mode``, ``owner``,
    ``group``, ``delete``, ``fsync``, and ``contents`` (a directory's contents
    go into ``dest``, which is left as it is if it exists). The summary:
    ``status`` (a character per entry: u unchanged, c written, m mode or owner
    fixed, f failed, s skipped), ``errors`` (the first
    failures, as (entry index or -1, message)), ``error_count``, ``deleted``
    (the first paths deleted) and ``deleted_count``.
    """
    return _Push(plan).run()


def _now_ns():
    return time.time_ns()


class _Incoming:
    """A file being pulled: its temporary, and how many of its pieces are still to settle."""

    def __init__(self, index, entry, path, temporary, chunk):
        self.index = index
        self.entry = entry
        self.path = path
        self.temporary = temporary
        self.fd = None
        self.created = False
        self.left = max(_tree.chunks(entry[4], chunk), 1)  # an empty file still has one step: its creation
        self.error = None
        self.lock = threading.Lock()

    def open(self):
        with self.lock:
            if self.fd is None:
                flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW
                self.fd = os.open(self.temporary, flags, 0o600)  # never through a link someone planted
                self.created = True
                _files._writing.add(self.temporary)
            return self.fd

    def settle(self, error):
        """One piece done (or failed); True for the caller that settled the last one."""
        with self.lock:
            if error is not None and self.error is None:
                self.error = error
            self.left -= 1
            return self.left == 0

    def discard(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.created:  # not a temporary found in place (O_EXCL): that one is not this child's
            _files._discard(self.temporary)


class _Push:
    def __init__(self, plan):
        from fanout._parent import parent

        self.plan = plan
        self.parent = parent()
        self.root = plan["dest"]
        self.token = plan["token"]
        self.chunk = plan["chunk"]
        if type(self.chunk) is not int or self.chunk < 1:
            raise ValueError("a push's pieces must be at least a byte, not %r" % (self.chunk,))
        self.root_error = None  # a single file's failure: raised, so the host fails with its own error
        self.uid, self.gid = _files._ids(plan["owner"], plan["group"])
        self.lock = threading.Lock()
        self.entries = self._all_entries()
        self.status = [SKIPPED] * len(self.entries)
        self.errors = []
        self.error_count = 0
        self.aborted = False
        self.failed_dirs = set()
        self.dirs = []
        self.needed = []
        self.candidates = []  # files here of the master's size: the same only if the sha256 is too
        self.found = {}  # entry index -> the stat of the candidate found here
        racy = plan.get("digest_cache")  # None: no cache; else how recent a change keeps a digest out of it
        self.cache = _digest_cache.shared(racy) if type(racy) is int and racy >= 0 else None
        self.theirs = {}  # entry index -> the master's sha256 (hex), as it told
        self.deleted = []
        self.deleted_chars = 0
        self.deleted_count = 0

    def _all_entries(self):
        entries = list(self.plan["entries"])
        count, page = self.plan["count"], self.plan["page"]
        for number in range(1, (count + page - 1) // page):
            entries.extend(self.parent.call_service(self.plan["service"], "entries", token=self.token, page=number))
        if len(entries) != count:
            raise ValueError("the master's list of entries has %d entries, not %d" % (len(entries), count))
        return entries

    # -- bookkeeping -------------------------------------------------------------------

    def path(self, relpath):
        return os.path.join(self.root, relpath) if relpath else self.root

    def fail(self, index, error, path=None):
        """Count a failure (of entry ``index``, or -1: a deletion); list the first ones, naming the path."""
        if path is None:
            path = self.path(self.entries[index][0]) if index >= 0 else self.root
        message = "%s: %s" % (path, _describe(error, path))
        if index == 0 and self.entries[0][1] != _tree.DIR:
            self.root_error = _named(error, path, message)
        with self.lock:
            if index >= 0:
                self.status[index] = FAILED
                if self.entries[index][1] == _tree.DIR:
                    self.failed_dirs.add(self.entries[index][0])
            self.error_count += 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append((index, message[:MAX_MESSAGE]))
            if (isinstance(error, OSError) and error.errno in FATAL_ERRNOS) or _refused(error):
                self.aborted = True  # the disk is full, or the push has ended on the master (Ctrl-C, a timeout)

    def owner_differs(self, info):
        return (self.uid != -1 and info.st_uid != self.uid) or (self.gid != -1 and info.st_gid != self.gid)

    def file_mode(self, entry):
        return entry[2] if self.plan["mode"] is None else self.plan["mode"]

    # -- the steps -----------------------------------------------------------------------

    def run(self):
        for index, entry in enumerate(self.entries):
            relpath = entry[0]
            if self.aborted or (relpath and relpath.rpartition("/")[0] in self.failed_dirs):
                if entry[1] == _tree.DIR:
                    self.failed_dirs.add(relpath)
                continue  # skipped: the failure that stopped it is listed
            try:
                if entry[1] == _tree.DIR:
                    self.directory(index, entry)
                elif entry[1] == _tree.LINK:
                    self.link(index, entry)
                else:
                    self.file(index, entry)
            except Exception as exc:
                if index == 0:
                    raise  # the destination itself: the host fails, naming it
                self.fail(index, exc)
        if self.candidates and not self.aborted:
            self.compare()
        if self.needed and not self.aborted:
            self.pull()
        if self.plan["delete"] and not self.error_count:
            self.delete()
        for index in reversed(self.dirs):  # after what they hold was written: modes may forbid writing, times move
            if self.status[index] != FAILED:
                try:
                    self.finish_directory(index, self.entries[index])
                except Exception as exc:
                    self.fail(index, exc)
        if self.cache is not None:
            self.cache.save()
        if self.root_error is not None:
            raise self.root_error
        return {
            "status": "".join(self.status),
            "errors": self.errors,
            "error_count": self.error_count,
            "deleted": self.deleted,
            "deleted_count": self.deleted_count,
        }

    def in_the_way(self, path):
        """A directory where something else goes: removed with ``delete``, else this entry fails."""
        if not self.plan["delete"]:
            raise IsADirectoryError(errno.EISDIR, "a directory is in the way (delete=True replaces it)", path)
        shutil.rmtree(path)

    def directory(self, index, entry):
        path = self.path(entry[0])
        try:
            info = os.stat(path) if index == 0 else os.lstat(path)  # the root was named: it may be a link
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISDIR(info.st_mode):
            if index == 0:
                raise NotADirectoryError(errno.ENOTDIR, "the destination exists and is not a directory", path)
            os.unlink(path)  # a file or a link where a directory goes
            info = None
        if info is None:
            os.mkdir(path, 0o700)  # its mode comes once what it holds is written
            self.status[index] = CONTENT
        else:
            self.status[index] = UNCHANGED
            if index == 0 and self.plan["contents"]:
                return  # the directory the contents went into (/tmp, say) is the user's: left as it is
        self.dirs.append(index)

    def finish_directory(self, index, entry):
        path = self.path(entry[0])
        fd = os.open(path, os.O_RDONLY | _DIRECTORY | (0 if index == 0 else _NOFOLLOW))
        try:
            changed = self.fix(fd, os.fstat(fd), entry[2], entry[3])
        finally:
            os.close(fd)
        if changed and self.status[index] == UNCHANGED:
            self.status[index] = METADATA

    def differs(self, info, mode, mtime_ns):
        """Whether owner, mode or time differ from what ``info`` (a stat) says."""
        return self.owner_differs(info) or stat.S_IMODE(info.st_mode) != mode or info.st_mtime_ns != mtime_ns

    def fix(self, fd, info, mode, mtime_ns):
        """Set owner, mode and time where they differ; True if the owner or the mode did."""
        owner = self.owner_differs(info)
        if owner:
            os.fchown(fd, self.uid, self.gid)
        if owner or stat.S_IMODE(info.st_mode) != mode:  # a chown may clear set-id bits: set the mode again
            os.fchmod(fd, mode)
        if info.st_mtime_ns != mtime_ns:
            os.utime(fd, ns=(info.st_atime_ns, mtime_ns))
        return owner or stat.S_IMODE(info.st_mode) != mode

    def link(self, index, entry):
        path, target = self.path(entry[0]), entry[6]
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode) and os.readlink(path) == target:
            changed = self.owner_differs(info)
            if changed:
                os.lchown(path, self.uid, self.gid)
            if info.st_mtime_ns != entry[3]:
                self.link_time(path, info.st_atime_ns, entry[3])
            self.status[index] = METADATA if changed else UNCHANGED
            return
        if info is not None and stat.S_ISDIR(info.st_mode):
            self.in_the_way(path)
        temporary = _files._temporary(path, self.token)
        os.symlink(target, temporary)  # fails if the name is taken: then it is not this child's to delete
        _files._writing.add(temporary)
        try:
            if (self.uid, self.gid) != (-1, -1):
                os.lchown(temporary, self.uid, self.gid)
            self.link_time(temporary, _now_ns(), entry[3])
            os.replace(temporary, path)
            _files._writing.discard(temporary)
        except BaseException:
            _files._discard(temporary)
            raise
        self.status[index] = CONTENT

    @staticmethod
    def link_time(path, atime_ns, mtime_ns):
        if os.utime in os.supports_follow_symlinks:
            os.utime(path, ns=(atime_ns, mtime_ns), follow_symlinks=False)

    def file(self, index, entry):
        path, size = self.path(entry[0]), entry[4]
        if index == 0:
            parent = os.path.dirname(path) or "."
            if not os.path.isdir(parent):
                raise FileNotFoundError(errno.ENOENT, "the destination's directory does not exist", parent)
        try:
            info = os.stat(path) if index == 0 else os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            if index == 0:
                raise IsADirectoryError(
                    errno.EISDIR, "the destination is a directory: give the file's full path, or end it with /", path
                )
            self.in_the_way(path)
            info = None
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_size == size:
            self.candidates.append(index)
            self.found[index] = info
            return
        self.needed.append(index)

    def compare(self):
        """Files here of the master's size: kept if their sha256 is the master's too (hashed here while the
        master is asked), pulled otherwise."""
        hashed = [index for index in self.candidates if self.entries[index][4]]  # an empty file is the same
        answers = {index: self.entries[index][5] for index in hashed if self.entries[index][5]}  # told already
        asked = [index for index in hashed if index not in answers]
        asker = threading.Thread(target=self._ask_digests, args=(asked, answers), daemon=True)
        asker.start()
        ours = {}  # index -> (sha256, stat), or what went wrong
        for index in hashed:
            remembered = self.cache.get(self.found[index]) if self.cache is not None else None
            if remembered is not None:
                ours[index] = (remembered, self.found[index])
                continue
            try:
                fd = os.open(self.path(self.entries[index][0]), os.O_RDONLY | (0 if index == 0 else _NOFOLLOW))
                try:
                    started = time.time_ns()
                    ours[index] = (_digest(fd), os.fstat(fd))
                    if self.cache is not None:
                        self.cache.remember(ours[index][1], ours[index][0], started)
                finally:
                    os.close(fd)
            except Exception as exc:
                ours[index] = exc
        asker.join()
        for index in self.candidates:
            entry = self.entries[index]
            try:
                info = None
                if entry[4]:
                    for value in (ours[index], answers.get(index)):
                        if isinstance(value, Exception):
                            raise value
                    digest, info = ours[index]
                    if digest != self.master_digest(index, answers.get(index)):
                        self.needed.append(index)
                        continue
                changed = False
                mode = self.file_mode(entry)
                if info is None or self.differs(info, mode, entry[3]):  # opened again only to fix something
                    fd = os.open(self.path(entry[0]), os.O_RDONLY | (0 if index == 0 else _NOFOLLOW))
                    try:
                        changed = self.fix(fd, os.fstat(fd), mode, entry[3])
                        if self.cache is not None and info is not None:  # its new times, the same bytes
                            self.cache.remember(os.fstat(fd), digest, time.time_ns(), written=True)
                    finally:
                        os.close(fd)
                self.status[index] = METADATA if changed else UNCHANGED
            except Exception as exc:
                if index == 0:
                    raise
                self.fail(index, exc)
        self.needed.sort()

    def _ask_digests(self, asked, answers):
        for start in range(0, len(asked), MAX_DIGESTS):
            files = asked[start : start + MAX_DIGESTS]
            try:
                found = self.parent.call_service(self.plan["service"], "digests", token=self.token, files=files)
                if type(found) is not list or len(found) != len(files):
                    raise ValueError("the master's digests are not a list of %d" % len(files))
            except Exception as exc:
                found = [exc] * len(files)
            for number, file in enumerate(files):
                answers[file] = found[number]

    def master_digest(self, index, told=None):
        """The master's sha256 of entry ``index`` (asked for now if it was not told); SourceChanged if the
        master says the file changed while being pushed."""
        if told is None:
            told = self.theirs.get(index) or self.entries[index][5] or None
        if told is None and not self.entries[index][4]:
            told = _EMPTY_SHA256
        if told is None:
            found = self.parent.call_service(self.plan["service"], "digests", token=self.token, files=[index])
            told = found[0] if type(found) is list and len(found) == 1 else None
        if type(told) is not str:
            raise ValueError("the master's digest of this file is not a string")
        if len(told) != 64 or told.strip("0123456789abcdef"):
            raise SourceChanged(told[:MAX_MESSAGE])
        self.theirs[index] = told
        return told

    # -- pulling files -----------------------------------------------------------------

    def pull(self):
        self.jobs = self._jobs()
        self.open_files = set()
        asked = self.plan.get("workers")
        count = min(asked if type(asked) is int and asked >= 1 else WORKERS, WORKERS, len(self.needed))
        workers = [threading.Thread(target=self._work, daemon=True) for _ in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        for incoming in self.open_files:  # stopped half-way (the disk filled): nothing of them stays
            incoming.discard()

    def _jobs(self):
        """What the workers do, in order: a file's pieces, or small files (a chunk or less) together."""
        batch, batched = [], 0
        for index in self.needed:
            entry = self.entries[index]
            path = self.path(entry[0])
            incoming = _Incoming(index, entry, path, _files._temporary(path, self.token), self.chunk)
            self.open_files.add(incoming)
            if 0 < entry[4] < self.chunk:
                if batch and (batched + entry[4] > self.chunk or len(batch) == MAX_BATCH_FILES):
                    yield batch, None
                    batch, batched = [], 0
                batch.append(incoming)
                batched += entry[4]
                continue
            for piece in range(incoming.left):
                yield incoming, piece
        if batch:
            yield batch, None

    def _work(self):
        while True:
            with self.lock:
                job = None if self.aborted else next(self.jobs, None)
            if job is None:
                return
            if job[1] is None:
                self.batch(job[0])
                continue
            incoming, piece = job
            error = None
            if incoming.error is None:
                try:
                    self.piece(incoming, piece)
                except Exception as exc:
                    error = exc
            if incoming.settle(error):
                self.complete(incoming)

    def batch(self, incomings):
        """Small files, each one piece, asked for in one request."""
        errors = {}
        for incoming in incomings:
            try:
                incoming.open()
            except Exception as exc:
                errors[incoming] = exc
        wanted = [incoming for incoming in incomings if incoming not in errors]
        data = None
        if len(wanted) > 1:
            files = [incoming.index for incoming in wanted]
            try:
                data = self.parent.call_service(self.plan["service"], "read_batch", token=self.token, files=files)
            except Exception as exc:
                if _refused(exc):  # the push has ended: nothing more will come
                    for incoming in wanted:
                        errors[incoming] = exc
                    wanted = []
            if data is not None:
                head = DIGEST_SIZE * len(wanted)
                if type(data) is not bytes or len(data) != head + sum(i.entry[4] for i in wanted):
                    data = None
                else:
                    for number, incoming in enumerate(wanted):
                        self.theirs[incoming.index] = data[number * DIGEST_SIZE : (number + 1) * DIGEST_SIZE].hex()
                    data = memoryview(data)[head:]
        offset = 0
        for incoming in wanted:
            start, offset = offset, offset + incoming.entry[4]
            try:
                if data is None:  # one alone, or a batch that failed: each file asked for alone says which
                    self.piece(incoming, 0)
                else:
                    self.write(incoming, data[start:offset], 0)
            except Exception as exc:
                errors[incoming] = exc
        for incoming in incomings:
            if incoming.settle(errors.get(incoming)):
                self.complete(incoming)

    def piece(self, incoming, number):
        incoming.open()
        if not incoming.entry[4]:
            return
        data = self.parent.call_service(
            self.plan["service"], "read", token=self.token, file=incoming.index, index=number
        )
        self.write(incoming, data, number)

    def write(self, incoming, data, number):
        """Piece ``number`` of a file, as the master sent it, at its place in the temporary."""
        offset = number * self.chunk
        if type(data) not in (bytes, memoryview) or len(data) != min(self.chunk, incoming.entry[4] - offset):
            raise SourceChanged("the master's copy changed while it was being read (its size differs)")
        view = memoryview(data)
        while view:
            written = os.pwrite(incoming.fd, view, offset)
            view, offset = view[written:], offset + written

    def complete(self, incoming):
        """Every piece is in: check the digest, set mode, owner and time, rename into place."""
        index, entry = incoming.index, incoming.entry
        try:
            if incoming.error is not None:
                raise incoming.error
            fd = incoming.fd
            if self.plan["fsync"]:
                os.fsync(fd)
            if _digest(fd) != self.master_digest(index):
                raise SourceChanged("the master's copy changed while it was being read (its sha256 differs)")
            if (self.uid, self.gid) != (-1, -1):
                os.fchown(fd, self.uid, self.gid)
            os.fchmod(fd, self.file_mode(entry))
            os.utime(fd, ns=(_now_ns(), entry[3]))
            os.close(fd)
            incoming.fd = None
            os.replace(incoming.temporary, incoming.path)
            _files._writing.discard(incoming.temporary)
            if self.cache is not None:
                self.cache.remember(os.lstat(incoming.path), self.theirs[index], time.time_ns(), written=True)
            incoming.created = False
            self.status[index] = CONTENT
        except Exception as exc:
            incoming.discard()
            self.fail(index, exc)
        self.open_files.discard(incoming)

    # -- deleting ------------------------------------------------------------------------

    def delete(self):
        """Remove what the destination holds and the source lacks; never below a link, never outside the root."""
        keep = {entry[0] for entry in self.entries}
        pending = [("", self.root)]
        while pending:
            relative, directory = pending.pop()
            try:
                with os.scandir(directory) as listing:
                    found = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                self.fail(-1, exc, directory)
                continue
            for item in found:
                relpath = item.name if not relative else relative + "/" + item.name
                is_dir = item.is_dir(follow_symlinks=False)
                if relpath in keep:
                    if is_dir:
                        pending.append((relpath, item.path))
                    continue
                if _is_temporary(item.name):
                    continue  # another push's, still being written
                try:
                    if is_dir:
                        shutil.rmtree(item.path)
                    else:
                        os.unlink(item.path)
                except OSError as exc:
                    self.fail(-1, exc, item.path)
                    continue
                self.deleted_count += 1
                if len(self.deleted) < MAX_DELETED_LISTED and self.deleted_chars + len(relpath) <= MAX_DELETED_CHARS:
                    self.deleted.append(relpath)
                    self.deleted_chars += len(relpath)


def _describe(error, path):
    """An error's text for a message that already names ``path``."""
    if isinstance(error, SourceChanged):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        other = error.filename if error.filename not in (None, path) else None
        if other is not None and _is_temporary(os.path.basename(str(other))):
            other = None  # its temporary: the path named is what the user knows
        return error.strerror if other is None else "%s (%s)" % (error.strerror, other)
    return "%s: %s" % (type(error).__name__, error)


def _named(error, path, message):
    """``error`` as the host's failure: its own type where that takes the path, else SourceChanged or OSError."""
    if isinstance(error, OSError) and error.errno is not None:
        return type(error)(error.errno, _describe(error, path), path)
    return SourceChanged(message) if isinstance(error, SourceChanged) else OSError(message)


def _is_temporary(name):
    return name.startswith(".") and name.endswith(".tmp") and ".fanout-" in name


def _digest(fd):
    """The sha256 of the file open at ``fd``, read from its start in CHUNK pieces."""
    import hashlib

    digest = hashlib.sha256()
    offset = 0
    while True:
        block = os.pread(fd, _tree.CHUNK, offset)
        if not block:
            return digest.hexdigest()
        digest.update(block)
        offset += len(block)
