"""One host cannot stall another, and user code never runs where a host's bytes are received (class 3).

Each test pits a hostile child against healthy ones and checks what a user of
the healthy ones relies on: their calls, imports and service replies go on
while the hostile host is stuck, and the hostile host ends with a reason.
"""

from __future__ import annotations

import os
import threading

import pytest

import fanout
from fanout import _context, _protocol, _wire, service
from tests.fleet.services import Echo, echo_asker
from tests.fleet.waiting import wait_until

FLOOD_MODULES = """
hello()
names = [b"email", b"json", b"argparse", b"typing", b"unittest", b"xml.dom", b"http.client", b"asyncio"]
rid = 0
for name in names * 30:  # many answers, never read: the master's writes to this child fill the pipe
    rid += 1
    send(encode_frame(GET_MODULE, rid, name))
    if rid == 200:
        break
time.sleep(3600)
"""


def test_a_child_that_stops_reading_stalls_nobody_else(hostile_child, healthy_children, user_modules) -> None:
    suffix = user_modules({"iso_{s}/__init__.py": "", "iso_{s}/work.py": "def twice(x):\n    return 2 * x\n"})
    stuck = hostile_child(FLOOD_MODULES)
    healthy = healthy_children(3)
    work = __import__(f"iso_{suffix}.work", fromlist=["twice"])
    # The hostile child's answers are stuck behind its full pipe; every other host imports and calls.
    for round_ in range(20):
        assert [h.call(work.twice, round_) for h in healthy] == [2 * round_] * 3
    assert all(h.stats["modules_sent"] for h in healthy)
    assert repr(stuck).endswith("open>")


def test_a_stalled_host_is_dropped_with_its_reason(hostile_child, monkeypatch) -> None:
    monkeypatch.setattr(_context, "SEND_STALL_TIMEOUT", 1.0)
    stuck = hostile_child("hello()\ntime.sleep(3600)\n")  # reads nothing at all
    with pytest.raises(fanout.ConnectionLost, match="stopped reading: a write made no progress for 1 s"):
        stuck.call(len, os.urandom(4 * 1024 * 1024))  # far more than a pipe holds, and incompressible


def test_a_done_callback_may_call_the_same_context(healthy_children) -> None:
    (child,) = healthy_children(1)
    answered = threading.Event()
    seen: dict = {}

    def again(future) -> None:
        seen["first"] = future.result()
        seen["second"] = child.call(abs, -7)  # deadlocked for good when callbacks ran on the receiving thread
        seen["thread"] = threading.current_thread().name
        answered.set()

    child.call_async(abs, -3).add_done_callback(again)
    assert answered.wait(30)
    assert seen["first"] == 3 and seen["second"] == 7
    assert seen["thread"].startswith("fanout-deliver-")


def test_on_output_runs_off_the_receiving_thread_and_may_call_the_context(healthy_children) -> None:
    (child,) = healthy_children(1)
    got = threading.Event()
    seen: dict = {}

    def on_output(stream: str, line: str, call_id: int) -> None:
        if line == "ping":
            seen["call"] = child.call(abs, -5)
            seen["thread"] = threading.current_thread().name
            got.set()

    child.on_output = on_output
    child.call(print, "ping")
    assert got.wait(30)
    assert seen == {"call": 5, "thread": seen["thread"]} and seen["thread"].startswith("fanout-deliver-")


def test_a_flood_of_module_requests_drops_only_that_host(hostile_child, healthy_children) -> None:
    cap = _protocol.MAX_MODULE_REQUESTS_IN_FLIGHT
    # In one write, so the master reads the requests together and counts them before answering any.
    flood = f"hello()\nsend(b''.join(encode_frame(GET_MODULE, rid, b'json') for rid in range(1, {cap + 50})))\n"
    flood += "time.sleep(3600)\n"
    flooding = hostile_child(flood)
    (healthy,) = healthy_children(1)
    with pytest.raises(fanout.ConnectionLost, match=f"over {cap} module requests without waiting"):
        flooding.call_async(abs, 1).result(timeout=60)
    assert healthy.call(abs, -2) == 2


class Gate(service.Service):
    """A service whose calls wait until the test opens the gate."""

    opened = threading.Event()

    @service.expose(service.AllowAny())
    def wait(self, n: int) -> int:
        self.opened.wait(60)
        return n


SERVICE_FLOOD = """
import marshal, pickle
hello()
total = {total}
for rid in range(1, total + 1):
    send(encode_frame(SERVICE_CALL, rid, literal(("{name}", "wait", {{"n": rid}}))))
send(log("sent-all"))  # handled by the master after every call above: their fate is decided by then
replies, call_rid = {{}}, None
for kind, rid, body in frames():
    if kind == SERVICE_REPLY:
        replies[rid] = marshal.loads(body[1:]) if body[:1] == b"m" else pickle.loads(body[1:])
    elif kind == CALL:
        call_rid = rid
    if call_rid is not None and len(replies) == total:
        break
ok = [r for r, v in replies.items() if v[0] == "ok"]
refused = [r for r, v in replies.items() if v[0] == "error"]
reasons = sorted({{v[2] for v in replies.values() if v[0] == "error"}})
send(encode_frame(RESULT, call_rid, literal((len(ok), len(refused), reasons))))
time.sleep(3600)
"""


def test_service_calls_past_the_cap_are_refused_and_the_rest_run(hostile_child) -> None:
    cap = _protocol.MAX_SERVICE_CALLS_IN_FLIGHT
    total = cap + 40
    Gate.opened.clear()
    sent_all = threading.Event()
    with service.Pool(4, services=[Gate()]).serve_children():
        child = hostile_child(SERVICE_FLOOD.format(total=total, name=Gate.canonical_name()))
        child.on_output = lambda stream, line, call_id: line == "sent-all" and sent_all.set()
        assert sent_all.wait(60)
        waiting = child.call_async(abs, 1)
        Gate.opened.set()  # the first `cap` are in flight (4 running, the rest queued); the 40 beyond were refused
        ok, refused, reasons = waiting.result(timeout=60)
    assert (ok, refused) == (cap, 40)
    assert reasons == [f"{child.name} has {cap} service calls in flight already"]


def test_a_host_flooding_the_masters_pool_leaves_threads_for_the_others(
    hostile_child, healthy_children, user_modules
) -> None:
    ask = echo_asker(user_modules)
    Gate.opened.clear()
    sent_all = threading.Event()
    try:
        with service.Pool(4, services=[Gate(), Echo()]).serve_children():
            flooding = hostile_child(SERVICE_FLOOD.format(total=200, name=Gate.canonical_name()))
            flooding.on_output = lambda stream, line, call_id: line == "sent-all" and sent_all.set()
            assert sent_all.wait(60)
            (healthy,) = healthy_children(1)
            # 200 calls that wait on the gate: the flooding host holds at most half of the 4 threads.
            assert healthy.call(ask, "still served") == "still served"
            Gate.opened.set()
            assert flooding.call(abs, 1)[:2] == (200, 0)
    finally:
        Gate.opened.set()


def test_lines_tagged_with_calls_never_made_cost_no_buffer_per_id(hostile_child) -> None:
    flood = "hello()\nfor rid in calls():\n"
    flood += "    send(b''.join(log('x' * 100, 10**6 + i, continued=True) for i in range(5000)))\n"
    flood += "    send(encode_frame(RESULT, rid, literal(1)))\n"
    child = hostile_child(flood)
    lines: list[tuple[str, int]] = []
    done = threading.Event()
    child.on_output = lambda stream, line, call_id: (lines.append((line, call_id)), done.set())
    assert child.call(abs, 1) == 1
    # 5000 pieces under 5000 made-up ids are one line in pieces, of nobody's call: held once, bounded.
    assert len(child._protocol._lines._pending) == 1 and child._protocol.unfinished_output == 500_000
    assert not lines


def test_output_nobody_handles_in_time_is_dropped_with_a_count(hostile_child) -> None:
    flood = "hello()\nfor rid in calls():\n    for i in range(3000):\n        send(log('y' * 20000))\n"
    flood += "    send(encode_frame(RESULT, rid, literal(1)))\n"
    child = hostile_child(flood)
    release = threading.Event()
    first = threading.Event()
    lines: list[str] = []

    def slow(stream: str, line: str, call_id: int) -> None:
        first.set()
        release.wait(60)
        lines.append(line)

    child.on_output = slow
    future = child.call_async(abs, 1)
    assert first.wait(30)
    wait_until(lambda: child._protocol.calls_in_flight == 0, what="the result, after 60 MB of lines")
    assert child._undelivered.size <= _context.MAX_UNDELIVERED_OUTPUT
    assert not future.done()  # the result waits for the lines the call printed before it
    release.set()
    assert future.result(timeout=60) == 1
    markers = [line for line in lines if line.startswith("[fanout: ")]
    assert len(markers) == 1 and "lines" in markers[0] and "dropped" in markers[0]
    dropped = int(markers[0].split()[1])
    assert dropped + len(lines) - 1 == 3000  # every line is delivered or counted, once


def test_a_crashed_child_raises_connection_lost_while_another_is_stuck(hostile_child) -> None:
    stuck = hostile_child(FLOOD_MODULES)
    crashing = hostile_child("hello()\nfor rid in calls():\n    os._exit(3)\n")
    with pytest.raises(fanout.ConnectionLost, match="exited with status 3"):
        crashing.call_async(abs, 1).result(timeout=60)
    assert repr(stuck).endswith("open>")


def test_closing_frees_what_the_host_held(hostile_child) -> None:
    piece_then_result = "log('z' * 1000, continued=True) + encode_frame(RESULT, rid, literal(1))"
    child = hostile_child(f"hello()\nfor rid in calls():\n    send({piece_then_result})\n")
    assert child.call(abs, 1) == 1
    assert child._protocol.unfinished_output == 1000
    child.close()
    assert child._protocol.unfinished_output == 0


def test_service_calls_in_flight_hold_a_bounded_number_of_bytes() -> None:
    protocol = _protocol.MasterProtocol("piling")
    blob = b"p" + __import__("pickle").dumps(("m.Service", "method", {"blob": "x" * (8 << 20)}), 4)
    per_call = len(blob)
    fit = _protocol.MAX_SERVICE_BYTES_IN_FLIGHT // per_call
    frames = b"".join(_wire.encode_frame(_wire.SERVICE_CALL, rid, blob) for rid in range(1, fit + 1))
    events = protocol.receive(frames)
    assert [type(e).__name__ for e in events] == ["ServiceRequested"] * fit
    # Past the budget a call is refused undecoded: even one that would not decode costs nothing more.
    (refused,) = protocol.receive(_wire.encode_frame(_wire.SERVICE_CALL, fit + 1, b"p" + b"\xff" * per_call))
    assert isinstance(refused, _protocol.ServiceRefused) and "MiB of arguments" in refused.reason
    protocol.service_reply(1, ("ok", None))  # an answer frees its share
    (accepted,) = protocol.receive(_wire.encode_frame(_wire.SERVICE_CALL, fit + 2, blob))
    assert isinstance(accepted, _protocol.ServiceRequested)


def test_deduplication_keeps_a_digest_of_large_arguments_not_the_arguments() -> None:
    big = "x" * (32 << 20)  # what a host can send in 32 KB on the wire
    key = service.DeduplicatingInvoker.key("build", {"target": big})
    assert key[0] == "build" and isinstance(key[1], bytes) and len(key[1]) == 32
    assert service.DeduplicatingInvoker.key("build", {"target": "x" * (32 << 20)}) == key  # equal requests: one run
    assert service.DeduplicatingInvoker.key("build", {"target": big + "y"}) != key
    assert service.DeduplicatingInvoker.key("build", {"target": "app"}) == ("build", (("target", "app"),))


def test_what_grows_with_a_payload_is_never_done_holding_the_lock_the_receiving_thread_takes(
    healthy_children, user_modules, monkeypatch
) -> None:
    """The receiving thread takes a context's state lock for every frame, and one receiving thread serves every
    host (fanout/_input_loop.py): compressing a call's arguments, a module's sources or a service's reply while
    holding that lock would stall every host for as long. Each is checked where it is done."""
    held_while: dict[str, list[bool]] = {"call": [], "modules": [], "service reply": []}
    (context,) = healthy_children(1)
    lock = context._state_lock

    def watched(name, real):
        def run(*args, **kwargs):
            held_while[name].append(lock.locked())
            return real(*args, **kwargs)

        return run

    monkeypatch.setattr(_wire, "pack_body", watched("call", _wire.pack_body))
    monkeypatch.setattr(
        _protocol.MasterProtocol,
        "modules_frame",
        staticmethod(watched("modules", _protocol.MasterProtocol.modules_frame)),
    )
    monkeypatch.setattr(
        _protocol.MasterProtocol,
        "service_reply_frame",
        staticmethod(watched("service reply", _protocol.MasterProtocol.service_reply_frame)),
    )
    ask = echo_asker(user_modules)  # a module only the master has: the child asks for it
    with service.Pool(2, services=[Echo()]).serve_children():
        assert context.call(ask, "x" * 100_000) == "x" * 100_000
    assert all(held_while.values()), held_while  # each was done at least once
    assert not any(any(flags) for flags in held_while.values()), held_while


SLOW_LARGE_RESULT = """
hello()
for rid in calls():
    frame = encode_frame(RESULT, rid, literal("x" * 100_000))
    send(frame[:40_000])  # a large frame, its first part
    for kind, _, _ in frames():  # then nothing more until the master's next call, whatever it is
        break
    send(frame[40_000:])
"""


def test_a_large_frame_under_way_is_known_to_the_connection(hostile_child) -> None:
    """What the shared input loop asks before each packet (fanout/_input_loop.py): while a frame of over
    SHARED_FRAME_MAX bytes comes in, the connection's own thread takes its input, so its decode, once the frame
    is whole, holds up no other host."""
    child = hostile_child(SLOW_LARGE_RESULT)
    first = child.call_async(abs, 1)
    wait_until(child._decoding_a_large_frame, what="the master to see 40,000 bytes of an unfinished frame")
    second = child.call_async(abs, 2)  # the child then sends the rest
    assert first.result(timeout=60) == "x" * 100_000
    assert not child._decoding_a_large_frame()
    second.cancel()
