"""Files pushed to a child: compared by digest first, written whole or not at all.

Runs on the hosts, so it keeps to what Python 3.9 reads. A temporary file
still being written when the child ends is deleted with it (stage 1 runs the
hooks in ``fanout_stage1.AT_EXIT`` before it exits).
"""

import contextlib
import hashlib
import os
import stat
import sys

_writing = set()  # temporaries this child has begun and not yet moved into place or deleted


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ids(owner, group):
    """The uid and gid of ``owner`` and ``group`` (names or numbers) here; -1 for one not given."""
    uid = gid = -1
    if owner is not None:
        import pwd

        uid = owner if isinstance(owner, int) else pwd.getpwnam(owner).pw_uid
    if group is not None:
        import grp

        gid = group if isinstance(group, int) else grp.getgrnam(group).gr_gid
    return uid, gid


def compare(path, sha256, mode, owner=None, group=None):
    """What a push must do: "same", "mode" (only permissions or ownership differ) or "content"."""
    uid, gid = _ids(owner, group)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "content"
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError("%s is a directory: give the file's full path" % path)
    if not stat.S_ISREG(info.st_mode) or _digest(path) != sha256:
        return "content"
    owned = uid in (-1, info.st_uid) and gid in (-1, info.st_gid)
    return "same" if stat.S_IMODE(info.st_mode) == mode and owned else "mode"


def set_mode(path, mode, owner=None, group=None):
    uid, gid = _ids(owner, group)
    if (uid, gid) != (-1, -1):
        os.chown(path, uid, gid)
    os.chmod(path, mode)


def _temporary(path, token):
    """The push's temporary name, with this child's pid: hosts sharing a filesystem (NFS, two
    names for one machine) each write their own."""
    directory, name = os.path.split(path)
    return os.path.join(directory, ".%s.fanout-%s-%d.tmp" % (name, token, os.getpid()))


def _discard(temporary):
    """Delete a temporary this child began, and forget it."""
    _writing.discard(temporary)
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _discard_unfinished():
    """As the child ends (the master dropped it mid-push, say): leave no partial file behind."""
    for temporary in list(_writing):
        _discard(temporary)


def _discard_with_the_child():
    """Have stage 1 run _discard_unfinished as the child ends; nothing to do on the master."""
    hooks = getattr(sys.modules.get("fanout_stage1"), "AT_EXIT", None)
    if hooks is not None and _discard_unfinished not in hooks:
        hooks.append(_discard_unfinished)


_discard_with_the_child()


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write(path, data, offset, last, mode, sha256, token, owner=None, group=None):
    """One piece of the file, at ``offset``; the last one checks the digest and moves it into place.

    The temporary file is made afresh (never through a link someone planted),
    readable by its owner only until it is complete.
    """
    temporary = _temporary(path, token)
    opened = False
    try:
        if offset:
            fd = os.open(temporary, os.O_WRONLY | _NOFOLLOW)
        else:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        opened = True
        _writing.add(temporary)
        with os.fdopen(fd, "wb") as f:
            f.seek(offset)
            f.write(data)
        if last:
            if _digest(temporary) != sha256:
                raise OSError("%s arrived damaged: its digest does not match the master's" % path)
            uid, gid = _ids(owner, group)
            if (uid, gid) != (-1, -1):
                os.chown(temporary, uid, gid)
            os.chmod(temporary, mode)
            os.replace(temporary, path)
            _writing.discard(temporary)
    except BaseException:
        if opened or temporary in _writing:  # not a file found there (O_EXCL): not this child's
            _discard(temporary)
        raise
