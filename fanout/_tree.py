"""Files and trees as lists of entries: what push and fetch compare, send and check.

Runs on the master and on the hosts (imported on demand), so it keeps to
Python 3.9 and the standard library, and imports nothing of fanout. An entry
is a plain tuple, so lists of them travel as marshal to a child and as
literals from one:

    (relpath, kind, mode, mtime_ns, size, sha256, target)

``relpath`` is '/'-separated below the root ("" for the root itself), ``kind``
is "file", "dir" or "link", ``mode`` the permission bits (0 for a link),
``size`` and ``sha256`` a file's (0 and "" otherwise), ``target`` a link's
("" otherwise).
"""

import hashlib
import os
import stat

# Bytes per read when hashing a file, and the default piece of chunks() (a push's own is fanout._push.CHUNK).
CHUNK = 256 * 1024
MAX_ENTRIES = 1_000_000  # entries in one tree: a larger one is refused, not half-copied
MAX_PATH = 4096  # characters in a relative path or a link's target (Linux's PATH_MAX)
MAX_NAME = 255  # bytes in one path component (Linux's NAME_MAX)
MAX_MODE = 0o7777
MAX_SIZE = 1 << 62  # bytes in one file: a bound for checking what a host says, not a real limit

FILE, DIR, LINK = "file", "dir", "link"
KINDS = (FILE, DIR, LINK)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_HEX = frozenset("0123456789abcdef")


class TooManyEntries(ValueError):
    """A tree with more entries than the stated limit."""


def file_sha256(path, *, follow=True):
    """``(hexdigest, size)`` of the file at ``path``, read in CHUNK pieces; ``follow=False`` refuses a link."""
    flags = os.O_RDONLY | _BINARY | (0 if follow else _NOFOLLOW)
    fd = os.open(path, flags)
    digest = hashlib.sha256()
    size = 0
    with open(fd, "rb", buffering=0) as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _kind_of(mode):
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return LINK
    return None


def _what(mode):
    for test, name in ((stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device")):
        if test(mode):
            return name
    return "a block device" if stat.S_ISBLK(mode) else "not a file"


def _entry(path, relpath, info, hashes, follow):
    kind = _kind_of(info.st_mode)
    if kind is None:
        raise ValueError("%s is %s: only files, directories and links are copied" % (path, _what(info.st_mode)))
    if kind == LINK:
        return (relpath, LINK, 0, info.st_mtime_ns, 0, "", os.readlink(path))
    if kind == DIR:
        return (relpath, DIR, stat.S_IMODE(info.st_mode), info.st_mtime_ns, 0, "", "")
    if hashes:
        digest, size = file_sha256(path, follow=follow)
    else:
        digest, size = "", info.st_size
    return (relpath, FILE, stat.S_IMODE(info.st_mode), info.st_mtime_ns, size, digest, "")


def walk(root, *, hashes=True, limit=MAX_ENTRIES):
    """The entries of a file or a tree at ``root``: sorted, each directory before what it holds.

    ``root`` itself is followed if it is a link (it was named); nothing below
    it is: a link is an entry with its target. ``hashes=False`` leaves sha256
    empty. More than ``limit`` entries raise :class:`TooManyEntries`.
    """
    root = os.fspath(root)
    info = os.stat(root)
    entries = [_entry(root, "", info, hashes, True)]
    if entries[0][1] != DIR:
        return entries
    pending = [("", root)]
    while pending:
        relative, directory = pending.pop()
        with os.scandir(directory) as listing:
            found = sorted(listing, key=lambda e: e.name)
        for item in found:
            if len(entries) >= limit:
                raise TooManyEntries("%s holds more than %d entries (the limit)" % (root, limit))
            relpath = item.name if not relative else relative + "/" + item.name
            entry = _entry(item.path, relpath, item.stat(follow_symlinks=False), hashes, False)
            entries.append(entry)
            if entry[1] == DIR:
                pending.append((relpath, item.path))
    entries.sort(key=sort_key)
    return entries


def sort_key(entry):
    """Entries in this order put every directory before what it holds."""
    return entry[0].split("/") if entry[0] else []


def check_relpath(rel):
    """``rel`` if it is a safe relative path below a root ("" is the root); ValueError otherwise.

    Refused: what is not a string, absolute paths, empty, '.' or '..'
    components, NUL, newlines, backslashes (a separator on Windows), and paths or
    components longer than Linux allows.
    """
    if type(rel) is not str:
        raise ValueError("a path must be a string, not %s" % type(rel).__name__)
    if rel == "":
        return rel
    if len(rel) > MAX_PATH:
        raise ValueError("a path of %d characters is over the limit of %d" % (len(rel), MAX_PATH))
    for bad, name in (("\x00", "NUL"), ("\n", "a newline"), ("\r", "a carriage return"), ("\\", "a backslash")):
        if bad in rel:
            raise ValueError("path %r holds %s" % (rel[:200], name))
    if rel.startswith("/"):
        raise ValueError("path %r is absolute" % rel[:200])
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            raise ValueError("path %r has a %r component" % (rel[:200], part))
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME:
            raise ValueError("path %r has a component over %d bytes" % (rel[:200], MAX_NAME))
    return rel


def check_entry(entry):
    """``entry`` as a tuple if it is well formed (types, bounds, a safe relpath); ValueError otherwise.

    For entries that come from an untrusted side: a link's target is checked for
    type and length only (where it may point is for the caller to judge).
    """
    if type(entry) not in (tuple, list) or len(entry) != 7:
        raise ValueError("an entry must be a 7-tuple")
    relpath, kind, mode, mtime_ns, size, sha256, target = entry
    check_relpath(relpath)
    if kind not in KINDS:
        raise ValueError("entry %r: kind %r is not one of %s" % (relpath[:200], kind, ", ".join(KINDS)))
    for name, value, low, high in (("mode", mode, 0, MAX_MODE), ("size", size, 0, MAX_SIZE)):
        if type(value) is not int or not low <= value <= high:
            raise ValueError("entry %r: %s %r is out of range" % (relpath[:200], name, value))
    if type(mtime_ns) is not int or not -(1 << 63) <= mtime_ns < (1 << 63):
        raise ValueError("entry %r: mtime_ns %r is out of range" % (relpath[:200], mtime_ns))
    if type(sha256) is not str or type(target) is not str:
        raise ValueError("entry %r: sha256 and target must be strings" % relpath[:200])
    if kind == FILE:
        if len(sha256) != 64 or not _HEX.issuperset(sha256):
            raise ValueError("entry %r: sha256 is not 64 lowercase hex digits" % relpath[:200])
    elif sha256 or size:
        raise ValueError("entry %r: a %s has no size or sha256" % (relpath[:200], kind))
    if kind == LINK:
        if not target or len(target) > MAX_PATH or "\x00" in target:
            raise ValueError("entry %r: a link's target must be 1 to %d characters, no NUL" % (relpath[:200], MAX_PATH))
    elif target:
        raise ValueError("entry %r: a %s has no target" % (relpath[:200], kind))
    return (relpath, kind, mode, mtime_ns, size, sha256, target)


def chunks(size, chunk=CHUNK):
    """How many pieces of ``chunk`` bytes a file of ``size`` bytes is sent in (an empty file: none)."""
    return (size + chunk - 1) // chunk
