"""The open-file limit, raised (or found wanting) before a large fan-out rather than halfway through it."""

from __future__ import annotations

from fanout.errors import FanoutError

FILES_PER_HOST = 3  # a socket, or a local child's three pipes; jump hosts add one socket each
FILES_SPARE = 64  # the interpreter's own, logging, the inventory, the user's files


def needed_for(hosts: int) -> int:
    return hosts * FILES_PER_HOST + FILES_SPARE


def ensure_open_files(hosts: int) -> None:
    """Raise the soft limit up to the hard one if ``hosts`` connections need it; say so plainly if they cannot fit."""
    try:
        import resource
    except ImportError:  # not on this platform: nothing to raise, nothing to check
        return
    need = needed_for(hosts)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise FanoutError(
            f"{hosts} hosts need about {need} open files, but this process may open at most {hard} "
            f"(ulimit -Hn): raise the hard limit (ulimit -n {need} as root, or LimitNOFILE= for a service), "
            "or split the fleet"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
