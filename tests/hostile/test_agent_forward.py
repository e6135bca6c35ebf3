"""A host given the agent (forward_agent=True) that floods it: each agent connection it opens costs the master a
thread, so at most MAX_CHANNELS are served at once, the rest are closed at once, and closing frees them."""

from __future__ import annotations

import shlex
import subprocess
import threading

import pytest

import fanout
from fanout import _agent_forward
from tests.fleet.waiting import wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.usefixtures("openssh_client")]
FLOOD = 3 * _agent_forward.MAX_CHANNELS
NAME = "flooder"


# The host's side: a script run by the host's own python3 (code sent by value runs only on the master's version).
FLOOD_SCRIPT = """
import os, socket, sys
count, timeout = int(sys.argv[1]), float(sys.argv[2])
held, outcomes = [], []
for _ in range(count):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(os.environ["SSH_AUTH_SOCK"])
    try:  # a refused connection may already be closed when the request goes out (EPIPE), or on the answer
        sock.sendall(b"\\x00\\x00\\x00\\x01\\x0b")  # SSH_AGENTC_REQUEST_IDENTITIES
        answer = sock.recv(5)
    except OSError:
        answer = b""
    outcomes.append("answered" if len(answer) == 5 and answer[4] == 12 else "closed")
    held.append(sock)  # kept open: each served one holds a master thread while the flood goes on
print(" ".join(outcomes))
"""


def flood(context, count: int) -> list[str]:
    """Open ``count`` agent connections on the host at once, each asking for the agent's keys; how each went."""
    command = f"python3 -c {shlex.quote(FLOOD_SCRIPT)} {count} 60"
    output = context.call(subprocess.getoutput, command)
    outcomes = output.split()
    assert set(outcomes) <= {"answered", "closed"}, f"the flooding script failed on the host:\n{output}"
    return outcomes


def _agent_threads() -> list[threading.Thread]:
    """The flooding host's agent threads (other tests' connections may still be ending theirs)."""
    return [t for t in threading.enumerate() if t.name == f"fanout-agent-{NAME}"]


def test_a_host_flooding_the_forwarded_agent_gets_a_bounded_share(fleet, ssh_agent) -> None:
    host = fleet.hosts[0]
    options = {**host.connect_options(), "forward_agent": True}
    with fanout.connect(host.address, name=NAME, **options) as context:
        outcomes = flood(context, FLOOD)
        assert outcomes.count("answered") == _agent_forward.MAX_CHANNELS
        assert outcomes[: _agent_forward.MAX_CHANNELS] == ["answered"] * _agent_forward.MAX_CHANNELS
        assert outcomes.count("closed") == FLOOD - _agent_forward.MAX_CHANNELS
        assert len(_agent_threads()) <= _agent_forward.MAX_CHANNELS
        # closing them gives the slots back: once the copying threads have seen the ends, the host is served again
        wait_until(lambda: not _agent_threads(), what="the end of every agent thread of the flooding host")
        outcomes = flood(context, _agent_forward.MAX_CHANNELS)
        assert outcomes == ["answered"] * _agent_forward.MAX_CHANNELS
