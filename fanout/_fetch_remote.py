"""A fetch, on the host: list a file or a tree with digests, then hand out pieces the master asks for.

Runs on the hosts (imported on demand), so it keeps to Python 3.9 and the
standard library, with :mod:`fanout._tree`. Nothing here writes: the master
checks and stores what it gets, trusting none of it.
"""

import _thread
import os

from fanout import _tree

PAGE = 1000  # entries per answer: well within a literal's limits on the master
READ_MAX = 1 << 20  # bytes one read may ask for
BATCH_MAX = 256  # pieces one read_many may ask for
_KEPT_SCANS = 8  # listings kept for their next pages: a master that never comes back costs at most these

_scans = {}  # token -> the entries of a listing not yet paged out in full
_scans_lock = _thread.allocate_lock()  # fetches of several masters' threads may run here at once


def scan(src, token, limit):
    """``(count, first_page)`` of the entries at ``src`` (see :func:`fanout._tree.walk`).

    ``src`` itself is followed if it is a link; nothing below it is. A larger
    listing is kept under ``token`` for :func:`page`, until its last page.
    """
    entries = _tree.walk(src, hashes=True, limit=limit)
    if len(entries) > PAGE:
        with _scans_lock:
            while len(_scans) >= _KEPT_SCANS:
                _scans.pop(next(iter(_scans)))
            _scans[token] = entries
    return len(entries), [tuple(entry) for entry in entries[:PAGE]]


def page(token, start):
    """The entries of a kept listing from ``start``: at most PAGE; the listing is forgotten after its last."""
    with _scans_lock:
        entries = _scans.get(token)
        if entries is None:
            raise LookupError("no listing %s kept here (more than %d fetches at once?)" % (token, _KEPT_SCANS))
        if start + PAGE >= len(entries):
            del _scans[token]
    return [tuple(entry) for entry in entries[start : start + PAGE]]


def forget(token):
    """Drop a kept listing: its fetch ended before its last page."""
    with _scans_lock:
        _scans.pop(token, None)


def read(src, relpath, offset, size):
    """Up to ``size`` bytes of a listed file at ``offset``: fewer only at its end.

    ``relpath`` "" is ``src`` itself (followed if it is a link, as the listing
    did); below it, a link is not followed.
    """
    if size > READ_MAX:
        raise ValueError("a read of %d bytes is over the limit of %d" % (size, READ_MAX))
    path = os.path.join(src, _tree.check_relpath(relpath)) if relpath else src
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | (getattr(os, "O_NOFOLLOW", 0) if relpath else 0)
    fd = os.open(path, flags)
    try:
        pieces = []
        while size > 0:
            piece = os.pread(fd, size, offset)
            if not piece:
                break
            pieces.append(piece)
            offset += len(piece)
            size -= len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
    finally:
        os.close(fd)


def read_many(src, pieces):
    """Several ``(relpath, offset, size)`` pieces in one call (small files): for each, its bytes as
    :func:`read` gives them, or why it could not be read (a str); the others are read all the same."""
    if len(pieces) > BATCH_MAX or sum(size for _, _, size in pieces) > READ_MAX:
        raise ValueError(
            "a read of %d pieces is over the limits (%d pieces, %d bytes)" % (len(pieces), BATCH_MAX, READ_MAX)
        )
    answers = []
    for relpath, offset, size in pieces:
        try:
            answers.append(read(src, relpath, offset, size))
        except (OSError, ValueError) as exc:
            answers.append("%s: %s" % (type(exc).__name__, exc))
    return answers
