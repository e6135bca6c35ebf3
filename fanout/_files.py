"""Files pushed to a child: compared by digest first, written whole or not at all.

Runs on the hosts, so it keeps to what Python 3.9 reads.
"""

import contextlib
import hashlib
import os
import stat


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compare(path, sha256, mode):
    """What a push must do: "same", "mode" (only the permissions differ) or "content"."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "content"
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError("%s is a directory: give the file's full path" % path)
    if not stat.S_ISREG(info.st_mode) or _digest(path) != sha256:
        return "content"
    return "same" if stat.S_IMODE(info.st_mode) == mode else "mode"


def set_mode(path, mode):
    os.chmod(path, mode)


def _temporary(path):
    directory, name = os.path.split(path)
    return os.path.join(directory, ".%s.fanout-%d.tmp" % (name, os.getpid()))


def write(path, data, offset, last, mode, sha256):
    """One piece of the file, at ``offset``; the last one checks the digest and moves it into place."""
    temporary = _temporary(path)
    try:
        with open(temporary, "r+b" if offset else "wb") as f:
            f.seek(offset)
            f.write(data)
        if last:
            if _digest(temporary) != sha256:
                raise OSError("%s arrived damaged: its digest does not match the master's" % path)
            os.chmod(temporary, mode)
            os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
