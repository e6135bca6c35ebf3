"""The sha256s of files already hashed, remembered by what changes whenever a file's content does.

A push compares files by sha256, so pushing an unchanged tree again would read
it whole on every host and on the master each time. This cache keeps each
digest under the file's (device, inode, size, mtime_ns, ctime_ns). Writing a
file sets its mtime to the time of the write, and any change of its times or
inode sets its ctime, which nobody can set; so while the key is unchanged the
bytes are those that were hashed, with one exception that git's index knows
as "racy": timestamps come from a clock that ticks every few milliseconds, and
a write in the same tick as the stat leaves them as they were. So an entry is
kept only if its mtime is older than the moment it was hashed by RACY_NS, and
its ctime too, unless the file was just written by the push itself (its
content checked, then its mtime set to the source's: a later write would set
a new mtime).

Runs on the master and on the hosts (Python 3.9+, the standard library). The
file is ``$XDG_CACHE_HOME/fanout/sha256-v1`` (``~/.cache/...``), one line per
file, rewritten whole (a temporary, then a rename) at the end of a push; a
missing, unreadable or malformed file or line is a cache miss, nothing more.
"""

import os
import threading
import time

NAME = "sha256-v1"
RACY_NS = 100_000_000  # an mtime or ctime this close to the moment of hashing: not remembered (a tick is <= 10 ms)
MAX_ENTRIES = 250_000  # kept in the file, those of the latest push first: ~30 MB, read in ~0.2 s
MAX_FILE_BYTES = 160 * MAX_ENTRIES  # a larger file is not read (a line is about 125 bytes)
_HEX = frozenset("0123456789abcdef")


def default_path():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fanout", NAME)


def key_of(info):
    """A file's key, as its line in the file starts: "device inode size mtime_ns ctime_ns"."""
    return "%d %d %d %d %d" % (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _well_formed(key, digest):
    return (
        key.count(" ") == 4
        and key.replace(" ", "").replace("-", "").isdigit()
        and len(digest) == 64
        and _HEX.issuperset(digest)
    )


class DigestCache:
    """Digests by file key: ``get(stat)``, ``remember(stat, digest, hashed_ns)``, ``save()`` (thread-safe)."""

    def __init__(self, path=None, racy_ns=RACY_NS):
        self.path = path or default_path()
        self.racy_ns = racy_ns
        self._known = None  # read from the file on first use
        self._fresh = {}  # remembered or used in this push: kept first
        self._changed = False  # something was remembered that the file lacks
        self._lock = threading.Lock()

    def _load(self):
        """The file's lines as key -> digest (what follows the last space)."""
        known = {}
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES:
                    return known
                text = f.read().decode("ascii", "replace")
        except OSError:
            return known
        for line in text.splitlines():
            key, _, digest = line.rpartition(" ")
            known[key] = digest  # checked when looked up: a malformed line costs nothing until it matches
        return known

    def get(self, info):
        """The digest remembered for the file ``info`` (its stat) describes, or None."""
        key = key_of(info)
        with self._lock:
            if self._known is None:
                self._known = self._load()
            digest = self._fresh.get(key) or self._known.get(key)
            if digest is None or len(digest) != 64 or not _HEX.issuperset(digest):  # the key is key_of's
                return None
            self._fresh[key] = digest
            return digest

    def remember(self, info, digest, hashed_ns, written=False):
        """``digest`` is of the bytes of the file ``info`` describes, read from ``hashed_ns`` on (time.time_ns());
        ``written``: the push wrote and checked them, then set the times ``info`` shows."""
        if hashed_ns - info.st_mtime_ns <= self.racy_ns:
            return
        if not written and hashed_ns - info.st_ctime_ns <= self.racy_ns:
            return
        key = key_of(info)
        with self._lock:
            if (self._fresh.get(key) or (self._known or {}).get(key)) != digest:
                self._changed = True
            self._fresh[key] = digest

    def save(self):
        """Write the file: this push's entries, then the others, MAX_ENTRIES at most; False if it could not."""
        with self._lock:
            if not self._changed:  # all was known already: the file stays as it is
                return True
            self._changed = False
            known = self._known if self._known is not None else self._load()
            entries = dict(self._fresh)
            for key, digest in known.items():
                if len(entries) >= MAX_ENTRIES:
                    break
                if _well_formed(key, digest):  # a bad line is not written back
                    entries.setdefault(key, digest)
            self._known, self._fresh = entries, {}
        lines = ["%s %s\n" % (key, digest) for key, digest in entries.items()]
        directory = os.path.dirname(self.path)
        temporary = "%s.%d.%d.tmp" % (self.path, os.getpid(), time.monotonic_ns())
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                with open(fd, "w", encoding="ascii") as f:
                    f.writelines(lines)
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            return False
        return True


_shared = {}  # racy_ns -> this process's cache: pushes one after another, master or child, share it
_shared_lock = threading.Lock()


def shared(racy_ns=RACY_NS):
    """This process's DigestCache for ``racy_ns`` (made on first use)."""
    with _shared_lock:
        if racy_ns not in _shared:
            _shared[racy_ns] = DigestCache(racy_ns=racy_ns)
        return _shared[racy_ns]
