"""What a fleet host's sshd is doing, seen from outside: how many connections it holds before their login.

sshd drops new connections at random once 10 wait for their login (MaxStartups 10:30:100, the default the fleet
keeps), so tests that leave connections before logging in on purpose wait until sshd has let them go: an event
its listener shows in its process title ("[listener] 0 of 10-100 startups"), never a pause.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.fleet.hosts import Fleet, FleetHost, _exec
from tests.fleet.waiting import wait_until

_STARTUPS = re.compile(r"\[listener\] (\d+) of \d+-\d+ startups")
LOGIN_GRACE_TIME = 120  # seconds: sshd's default, after which it ends a connection that never logged in
LET_GO_TIMEOUT = LOGIN_GRACE_TIME + 60  # even a connection left open by a client is gone by then


def _listener_title(fleet: Fleet, host: FleetHost) -> str:
    """The process title of the host's sshd (PID 1 in its container): read from /proc here when the container
    runs on this machine, else with docker exec."""
    container = fleet.client.containers.get(host.container)
    pid = container.attrs.get("State", {}).get("Pid", 0)
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        title = ""
    if pid and f"Port={host.port} " in title and title.startswith("sshd:"):
        return title
    return _exec(container, ["cat", "/proc/1/cmdline"]).replace("\0", " ")


def unauthenticated_connections(fleet: Fleet, host: FleetHost) -> int:
    """How many connections the host's sshd holds before their login: what MaxStartups counts."""
    title = _listener_title(fleet, host)
    match = _STARTUPS.search(title)
    if match is None:
        raise AssertionError(f"{host.name}: sshd's process title shows no count of startups: {title!r}")
    return int(match.group(1))


def wait_until_sshd_let_go(fleet: Fleet, host: FleetHost) -> None:
    """Return once the host's sshd holds no connection before its login (each such connection's process ended)."""
    wait_until(
        lambda: unauthenticated_connections(fleet, host) == 0,
        what=f"sshd on {host.name} to let go of every connection that did not log in",
        timeout=LET_GO_TIMEOUT,
        state=lambda: f"it still holds {unauthenticated_connections(fleet, host)}",
    )
