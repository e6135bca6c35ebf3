"""The temporaries of files a push writes on a host, and the ids it sets: whole files or nothing.

Runs on the hosts, so it keeps to what Python 3.9 reads. A temporary file
still being written when the child ends is deleted with it
(:func:`fanout._parent.at_child_exit`).
"""

import contextlib
import os

from fanout._parent import at_child_exit

_writing = set()  # temporaries this child has begun and not yet moved into place or deleted


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


at_child_exit(_discard_unfinished)
