"""How Fleet.call reaches its hosts (fanout._fleet_send): on the caller's thread where a write cannot wait, else
from a sending thread, so a host that stopped reading holds up only its own call."""

from __future__ import annotations

import os
import signal
import threading

import pytest

import fanout
from fanout import _fleet_send
from fanout.fleet import OK, Fleet

pytestmark = pytest.mark.fleet
BEYOND_THE_WINDOW = 4 * 1024 * 1024  # bytes: more than sshd's channel window (2 MiB) and a socket's buffers


def test_a_stopped_host_holds_up_only_its_own_call(fleet) -> None:
    host = fleet.hosts[0]
    options = {"host": host.address, **host.connect_options(), "host_key_policy": "strict"}
    with (
        Fleet({"stopped": options, "first": options, "second": options}, progress=False) as the_fleet,
        fanout.connect(host.address, **host.connect_options()) as helper,
    ):
        assert all(result.ok for result in the_fleet.call(os.getpid).values())  # warm: modules sent, calls inline
        stopped = the_fleet.contexts["stopped"]
        pid = stopped.call(os.getpid)
        helper.call(os.kill, pid, signal.SIGSTOP)
        try:
            # A write far beyond the window: it waits on the stopped child, holding its connection's send lock.
            big = threading.Thread(target=stopped.call_async, args=(len, os.urandom(BEYOND_THE_WINDOW)), daemon=True)
            big.start()
            results = the_fleet.as_completed(abs, -5)
            # "stopped" comes first in host order; the others' answers come while it is still stopped.
            arrived = {next(results)[0], next(results)[0]}
            assert arrived == {"first", "second"}
        finally:
            helper.call(os.kill, pid, signal.SIGCONT)
        host_name, result = next(results)
        assert host_name == "stopped" and result.status == OK and result.value == 5
        big.join()


def test_a_call_to_a_warm_idle_host_is_written_on_the_callers_thread(fleet) -> None:
    host = fleet.hosts[0]
    with fanout.connect(host.address, **host.connect_options()) as context:
        context.call(abs, -1)  # its modules (none) settled: the next call of abs is on the warm path
        encoded = fanout._functions.encode_call(abs, (-3,), {})
        room = _fleet_send.with_room([context._send_socket()])
        future = context._call_now(abs, encoded, room)
        assert future is not None and future.result() == 3
        # Without room in the socket (not in ``room``) the caller's thread must not write.
        assert context._call_now(abs, encoded, set()) is None
        # Nor while another write holds the connection.
        with context._send_lock:
            assert context._call_now(abs, encoded, room) is None
        assert context.call(abs, -4) == 4  # nothing was half sent
