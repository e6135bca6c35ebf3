"""Hostile relays and hostile become children: routing by context keeps each context's damage to itself.

A host's child relays the frames of the contexts it opened (become). When that child is hostile (its stage 1
replaced, see ``conftest.hostile_child``), the master opens a become context on it, and the child answers as
an evil relay would: frames for contexts it never opened, garbage inside a real context's frames, GONE for
strangers, floods, silence. What a user relies on: other hosts never notice; a bad frame inside a context's
own stream fails that context alone; a bad frame of the relay's own drops that host (its contexts with it),
with a reason naming it; and costs stay bounded.

The last tests turn it around: the relay is the real stage 1, and the become child is hostile (a stand-in for
sudo that runs a program of ours). The relay must keep it to its own context.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

import fanout
from fanout import _context, _wire, service
from fanout._relay import RelayTransport
from fanout.errors import BecomeFailed, ConnectionLost, ConnectTimeout, ProtocolError
from tests.fleet.services import Echo, echo_asker
from tests.fleet.waiting import WAIT_TIMEOUT, wait_until

# What a hostile child can do as a relay, on top of tests/fleet/hostile_stage1.HELPERS.
RELAY = r"""
def relayed(cid, data):
    return encode_frame(FROM_CONTEXT, cid, data)

def as_relay():
    '''What the master sends: (0, kind, rid, body) for this child, (cid, kind, rid, body) for context cid.'''
    inner = {}
    for kind, rid, body in frames():
        if kind == TO_CONTEXT:
            for frame in inner.setdefault(rid, FrameDecoder(TO_CHILD)).feed(body):
                yield (rid,) + frame
        else:
            yield (0, kind, rid, body)

def own(cid, kind, rid):
    '''This child's own part: its calls answered "login ok", SHUTDOWN ends it, CLOSE of a context is logged.'''
    if cid == 0 and kind == CALL:
        send(encode_frame(RESULT, rid, literal("login ok")))
    elif cid == 0 and kind == SHUTDOWN:
        os._exit(0)
    elif cid == 0 and kind == CLOSE:
        send(log("closed %d" % rid))

def hello_frame():
    v = sys.version_info
    return encode_frame(HELLO, 0, literal({"python": (v[0], v[1], v[2]), "pid": os.getpid(), "executable": "x"}))

hello()
"""

GONE_OK = "literal(('ended', '', 0, False))"


def relay(loop_body: str) -> str:
    """An attack: ``loop_body`` runs for each frame the master sends (cid, kind, rid, body), then ``own``."""
    body = "\n".join("    " + line for line in loop_body.strip("\n").splitlines())
    return RELAY + f"for cid, kind, rid, body in as_relay():\n{body}\n    own(cid, kind, rid)\n"


def lines_of(context: fanout.Context) -> tuple[list[str], threading.Condition]:
    """Collect what ``context``'s child prints; wait on the condition for a line to come."""
    seen: list[str] = []
    changed = threading.Condition()

    def on_output(stream: str, line: str, call_id: int) -> None:
        with changed:
            seen.append(line)
            changed.notify_all()

    context.on_output = on_output
    return seen, changed


def wait_for_line(seen: list[str], changed: threading.Condition, line: str) -> bool:
    with changed:
        return changed.wait_for(lambda: line in seen, timeout=WAIT_TIMEOUT)


def assert_healthy(children: list[fanout.Context]) -> None:
    assert [child.call(abs, -i) for i, child in enumerate(children)] == list(range(len(children)))


def become(context: fanout.Context, **options) -> fanout.Context:
    """A become context on a child that is not going to start sudo: the hostile child gets the OPEN frame."""
    return context.become("root", exe="/bin/true", **options)


# -- frames of the relay's own ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("forged", [99, 0, 2**32 - 1])
def test_a_frame_relayed_from_a_context_never_opened_drops_that_host_alone(
    forged, hostile_child, healthy_children
) -> None:
    evil = hostile_child(
        relay(f"if cid == 0 and kind == CALL:\n    send(relayed({forged}, log('forged')))"), name="evil-relay"
    )
    healthy = healthy_children(2)
    assert_healthy(healthy)
    with pytest.raises(
        ConnectionLost, match=f"evil-relay lost: .*relayed from context {forged}, which the master never"
    ) as lost:
        evil.call(abs, 1)
    assert isinstance(lost.value.__cause__, ProtocolError)
    assert_healthy(healthy)


def test_a_host_dropped_for_its_own_frame_ends_its_become_contexts_too(hostile_child, healthy_children) -> None:
    evil = hostile_child(
        relay("if cid == 0 and kind == CALL:\n    send(relayed(99, log('forged')))"), name="evil-relay"
    )
    (healthy,) = healthy_children(1)
    root = become(evil)
    waiting = root.call_async(abs, 1)  # written before the login's call: pending when the forged frame comes
    with pytest.raises(ConnectionLost) as lost:
        evil.call(abs, 1)
    assert isinstance(lost.value.__cause__, ProtocolError)
    with pytest.raises(ConnectionLost, match="its parent evil-relay ended"):
        waiting.result(timeout=30)
    with pytest.raises(ConnectionLost):
        root.call(abs, 2)
    assert_healthy([healthy])


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        (f"encode_frame(GONE, 7, {GONE_OK})", "GONE for context 7, not a child it opened"),
        (f"encode_frame(GONE, 0, {GONE_OK})", "GONE for context 0, not a child it opened"),
        (f"encode_frame(GONE, 1, {GONE_OK}) * 2", "GONE for context 1, not a child it opened"),
        ("encode_frame(GONE, 1, literal(('ended', 'x' * (1 << 20), 0, False)))", "over the limit"),
        ("encode_frame(GONE, 1, literal(('ended', 'x' * 8193, 0, False)))", "malformed GONE: its text"),
        (
            "encode_frame(GONE, 1, b'p' + __import__('pickle').dumps(('ended', '', 0, False), 4))",
            "payload encoding b'p' where a literal belongs",
        ),
        ("encode_frame(GONE, 1, literal(('ended', '', 0)))", "malformed GONE"),
        ("encode_frame(GONE, 1, literal(('ended', '', 999, False)))", "malformed GONE: status"),
        ("encode_frame(GONE, 1, literal(('crashed', '', 0, False)))", "malformed GONE: how it ended"),
    ],
    ids=["stranger", "itself", "twice", "1-MiB-text", "long-text", "pickle", "short", "status", "how"],
)
def test_a_bad_gone_drops_that_host_with_its_contexts(attack, reason, hostile_child, healthy_children) -> None:
    evil = hostile_child(relay(f"if cid == 0 and kind == CALL:\n    send({attack})"), name="evil-relay")
    healthy = healthy_children(2)
    root = become(evil)
    waiting = root.call_async(abs, 1)
    with pytest.raises(ConnectionLost, match=f"evil-relay lost: it sent an invalid message \\(.*{reason}") as lost:
        evil.call(abs, 1)
    assert isinstance(lost.value.__cause__, ProtocolError)
    with pytest.raises(ConnectionLost, match="evil-relay/root lost"):
        waiting.result(timeout=30)
    assert_healthy(healthy)


# -- frames inside a context's own stream ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "reason"),
    [
        ("b'\\x00\\x00\\x00\\x05\\xfe' * 13", "unexpected frame kind 254"),
        ("b'\\xff' * 64", "a compressed frame"),
        ("encode_frame(RESULT, rid, literal('z' * 5000), True)", "a compressed frame"),
        ("HEADER.pack(MAX_BODY + 1, RESULT, 0, rid)", "exceeds the maximum"),
        ("HEADER.pack(2**32 - 1, LOG, 0, 0)", "exceeds the maximum"),
        ("encode_frame(RESULT, rid + 1000, literal(1))", "RESULT for call \\d+, never made"),
        ("encode_frame(ERROR, rid, literal(('E', 'm')))", "malformed ERROR"),
        ("hello_frame()", "second HELLO"),
        ("relayed(1, hello_frame())", f"unexpected frame kind {_wire.FROM_CONTEXT}"),
        (f"encode_frame(GONE, 1, {GONE_OK})", "GONE for context 1, not a child it opened"),
        (f"encode_frame(GONE, 0, {GONE_OK})", "GONE for context 0, not a child it opened"),
        ("encode_frame(CALL, 1, b'')", "unexpected frame kind 2"),
    ],
    ids=[
        "garbage",
        "garbage-flags",
        "compressed",
        "oversize",
        "huge-header",
        "result-never-asked",
        "bad-error",
        "second-hello",
        "relays-itself",
        "own-gone",
        "parents-gone",
        "master-kind",
    ],
)
def test_a_bad_frame_inside_a_become_context_fails_that_context_alone(
    inner, reason, hostile_child, healthy_children
) -> None:
    """The relay's frame is well formed; what it carries is the become context's: that context fails, the login
    context goes on, and the master asks the relay to close the child."""
    evil = hostile_child(
        relay(f"if cid == 1 and kind == CALL:\n    send(relayed(1, hello_frame()) + relayed(1, {inner}))"),
        name="evil-relay",
    )
    seen, changed = lines_of(evil)
    healthy = healthy_children(2)
    root = become(evil)
    with pytest.raises(ConnectionLost, match=f"evil-relay/root lost: it sent an invalid message .*{reason}") as lost:
        root.call(abs, 1)
    assert isinstance(lost.value.__cause__, ProtocolError)
    assert wait_for_line(seen, changed, "closed 1")  # the relay was told to end that child
    assert evil.call(abs, 1) == "login ok"
    assert repr(evil).endswith("open>")
    with pytest.raises(ConnectionLost, match="evil-relay/root lost"):
        root.call(abs, 2)  # a context that failed stays failed
    assert_healthy(healthy)


def test_a_flood_of_relayed_lines_holds_a_bounded_buffer_and_keeps_the_results_order(hostile_child) -> None:
    lines = 1500  # 30 MB of lines for the become context: past its cap, held within it
    flood = f"""
if cid == 1 and kind == CALL:
    send(relayed(1, hello_frame()))
    for i in range({lines}):
        send(relayed(1, log('y' * 20000)))
    send(relayed(1, encode_frame(RESULT, rid, literal('root ok'))))
"""
    evil = hostile_child(relay(flood), name="evil-relay")
    root = become(evil)
    release, first = threading.Event(), threading.Event()
    got: list[str] = []

    def slow(stream: str, line: str, call_id: int) -> None:
        first.set()
        release.wait(60)
        got.append(line)

    root.on_output = slow
    try:
        future = root.call_async(abs, 1)
        assert first.wait(30)
        wait_until(lambda: root._protocol.calls_in_flight == 0, what="the result, after every line")
        assert root._undelivered.size <= _context.MAX_UNDELIVERED_OUTPUT
        assert evil._undelivered.size == 0  # nothing of the become context is filed under the login context
        assert root._protocol.unfinished_output == 0  # whole lines only: no piece of one is held
        assert evil.call(abs, 1) == "login ok"  # the login context answers while the become context's lines wait
        assert not future.done()  # its result waits for the lines it printed
    finally:
        release.set()
    assert future.result(timeout=60) == "root ok"
    markers = [line for line in got if line.startswith("[fanout: ")]
    assert len(markers) == 1 and "dropped" in markers[0]
    assert int(markers[0].split()[1]) + len(got) - 1 == lines  # every line delivered or counted, once


def test_late_frames_of_a_context_that_ended_are_dropped_and_the_host_goes_on(hostile_child) -> None:
    late = f"""
if cid == 1 and kind == CALL:
    after = b''.join(relayed(1, log('late')) for i in range(1000)) + relayed(1, hello_frame())
    send(encode_frame(GONE, 1, {GONE_OK}) + after + relayed(1, encode_frame(RESULT, rid, literal('after its end'))))
"""
    evil = hostile_child(relay(late), name="evil-relay")
    root = become(evil)
    with pytest.raises(ConnectionLost, match="evil-relay/root lost: the child ended with status 0"):
        root.call(abs, 1)
    assert evil.call(abs, 1) == "login ok"  # after the late frames: they cost a lookup each, and no error
    assert root._protocol.hello is None and root._bytes_received == 0


# -- silence -------------------------------------------------------------------------------------------------------


def test_a_relay_that_never_starts_the_child_fails_its_calls_at_the_become_timeout(
    hostile_child, healthy_children
) -> None:
    evil = hostile_child(relay("pass"), name="evil-relay")  # no HELLO for it, no GONE, ever
    seen, changed = lines_of(evil)
    (healthy,) = healthy_children(1)
    root = become(evil, timeout=0.5)
    with pytest.raises(ConnectionLost, match=r"not ready within the connect timeout of 0\.5 s") as lost:
        root.call(abs, 1)
    assert isinstance(lost.value.__cause__, ConnectTimeout)
    assert wait_for_line(seen, changed, "closed 1")  # the relay is asked to end what did not start
    assert evil.call(abs, 1) == "login ok"
    assert_healthy([healthy])
    evil.close()  # returns, though the relay never reports the child ended
    assert repr(evil).endswith("closed>") and repr(root).endswith("closed>")
    assert_healthy([healthy])


# -- a relay that mixes its own frames with its child's -----------------------------------------------------------


def test_a_hello_for_the_become_context_sent_unwrapped_is_the_logins_second_hello(
    hostile_child, healthy_children
) -> None:
    mixed = "if cid == 1 and kind == CALL:\n    send(hello_frame() + encode_frame(RESULT, rid, literal('forged')))"
    evil = hostile_child(relay(mixed), name="evil-relay")
    (healthy,) = healthy_children(1)
    root = become(evil)
    with pytest.raises(ConnectionLost, match="evil-relay/root lost: its parent evil-relay ended"):
        root.call(abs, 1)
    assert root._protocol.hello is None  # never taken for the become context's
    with pytest.raises(ConnectionLost, match="evil-relay lost: it sent an invalid message \\(second HELLO\\)"):
        evil.call(abs, 1)
    assert_healthy([healthy])


def test_an_unwrapped_result_answers_the_login_context_never_the_become_context(hostile_child) -> None:
    # Both contexts number their calls from 1: the relay answers call 1 of the become context, unwrapped.
    mixed = "if cid == 1 and kind == CALL:\n    send(encode_frame(RESULT, rid, literal('forged')))\n"
    mixed += "if cid == 0:\n    continue"  # its own calls it leaves unanswered
    evil = hostile_child(relay(mixed), name="evil-relay")
    login_call = evil.call_async(abs, 1)  # call 1 of the login context; this relay never answers it itself
    root = become(evil)
    root_call = root.call_async(abs, 1)
    assert login_call.result(timeout=30) == "forged"  # the host's own word on its own call, as ever
    assert root._protocol.calls_in_flight == 1 and not root_call.done()
    evil._transport.process.kill()
    with pytest.raises(ConnectionLost, match="its parent evil-relay ended"):
        root_call.result(timeout=30)


# -- what a relay may claim about its child -------------------------------------------------------------------------


TTY = "literal(('ended', 'sudo: sorry, you must have a tty to run sudo', 1, False))"


def test_a_relay_that_claims_sudo_needs_a_terminal_gets_one_retry_then_the_become_fails(hostile_child) -> None:
    claims = f"""
if cid == 0 and kind == OPEN:
    send(log('open %d pty=%s' % (rid, __import__('marshal').loads(body[1:])[2])))
    send(encode_frame(GONE, rid, {TTY}))
"""
    evil = hostile_child(relay(claims), name="evil-relay")
    seen, changed = lines_of(evil)
    root = become(evil)
    with pytest.raises(BecomeFailed, match="sudo needs a terminal and refused one"):
        root.call(abs, 1)
    assert wait_for_line(seen, changed, "open 1 pty=True")
    assert evil.call(abs, 1) == "login ok"  # after any further OPEN the master would have sent
    assert seen == ["open 1 pty=False", "open 1 pty=True"]  # once more on a terminal, then no more


def test_a_retry_on_a_terminal_sends_again_what_the_child_was_sent(hostile_child) -> None:
    # It claims sudo wants a terminal once the call has come: the call is among what must be sent again.
    claims = f"""
if cid == 0 and kind == OPEN:
    opens = globals().get('opens', 0) + 1
if cid == 1 and kind == CALL and opens == 1:
    send(encode_frame(GONE, 1, {TTY}))
if cid == 1 and kind == CALL and opens == 2:
    send(relayed(1, hello_frame()) + relayed(1, encode_frame(RESULT, rid, literal('again'))))
"""
    evil = hostile_child(relay(claims), name="evil-relay")
    root = become(evil)
    assert root.call(abs, 1) == "again"


# -- per-host shares of the master's service pool --------------------------------------------------------------------


class Gate(service.Service):
    """A service whose calls wait until the test opens the gate; it counts those waiting in it."""

    opened = threading.Event()
    lock = threading.Lock()
    running = 0

    @service.expose(service.AllowAny())
    def wait(self, n: int) -> int:
        with Gate.lock:
            Gate.running += 1
        try:
            self.opened.wait(60)
        finally:
            with Gate.lock:
                Gate.running -= 1
        return n


def test_a_host_flooding_the_pool_through_its_become_contexts_leaves_threads_for_the_others(
    hostile_child, healthy_children, user_modules
) -> None:
    ask = echo_asker(user_modules)
    calls = (
        f"b''.join(encode_frame(SERVICE_CALL, n, literal(('{Gate.canonical_name()}', 'wait', {{'n': n}}))) "
        "for n in range(1, 41))"
    )
    flood = f"if cid == 1 and kind == CALL:\n    send(relayed(1, hello_frame() + {calls}) + {calls} + log('sent-all'))"
    Gate.opened.clear()
    pool = service.Pool(4, services=[Gate(), Echo()]).serve_children()
    try:
        evil = hostile_child(relay(flood), name="evil-relay")
        seen, changed = lines_of(evil)
        root = become(evil)
        root.call_async(abs, 1)
        assert wait_for_line(seen, changed, "sent-all")
        # Both contexts have calls waiting their turn: each has taken what it may of the pool, and those run.
        # (The host's share is kept on its connection's context: the queue holds (context, call) pairs.)
        wait_until(
            lambda: {context for context, _ in evil._services_waiting} == {evil, root},
            what="service calls of both evil and root waiting",
        )
        wait_until(lambda: Gate.running == evil._services_in_pool, what="every pool thread evil holds running the gate")
        assert Gate.running <= max(1, pool.size // 2)  # one host's share, whatever its number of contexts
        (healthy,) = healthy_children(1)
        assert healthy.call_async(ask, "still served").result(timeout=30) == "still served"
    finally:
        Gate.opened.set()
        pool.close()


# -- the real relay, a hostile become child ----------------------------------------------------------------------------

BECOME_CHILD = r"""
import os, sys

def send(data):
    while data:
        data = data[os.write(1, data):]

def literal(value):
    return b"r" + repr(value).encode()

def hello_frame():
    v = sys.version_info
    return encode_frame(HELLO, 0, literal({"python": (v[0], v[1], v[2]), "pid": os.getpid(), "executable": "x"}))

def frames():
    # The frames its relay sends it, after stage 1 (which it does not run); it ends at the end of its input.
    skip, decoder = BLOB_SIZE, FrameDecoder(TO_CHILD)
    while True:
        data = os.read(0, 65536)
        if not data:
            os._exit(0)
        cut = min(skip, len(data))
        skip -= cut
        for frame in decoder.feed(data[cut:]):
            yield frame

send(b"\0fanout-ready\0")  # what stage 0 says first (fanout._wire.READY_MARK): from here on, frames
"""


@pytest.fixture
def hostile_sudo(tmp_path):
    """``hostile_sudo(attack)`` -> a program to pass as become ``exe``: a stand-in for sudo that runs ``attack`` (with
    the helpers above) as the become child, then reads its input to the end (the relay closes it as the child ends)."""
    made = iter(range(1_000_000))

    def make(attack: str) -> str:
        program = tmp_path / f"become_child_{next(made)}.py"
        # The relay's stage 0 for it names the size of the stage 1 it is sent (``while len(b)<N``).
        size = 'import re, sys\nBLOB_SIZE = int(re.search(r"len\\(b\\)<(\\d+)", sys.argv[-1]).group(1))\n'

        tail = "\nfor _ in frames():\n    pass\n"
        program.write_text(Path(_wire.__file__).read_text() + size + BECOME_CHILD + attack + tail)
        exe = program.with_suffix(".sh")
        exe.write_text(f'#!/bin/sh\nexec {sys.executable} {program} "$@"\n')
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        return str(exe)

    return make


def test_the_stand_in_for_sudo_gives_a_real_relayed_context(hostile_sudo, healthy_children) -> None:
    """The cases below test the real relay (stage 1 of a healthy login child): this child is answered through it."""
    (login,) = healthy_children(1)
    answers = "for kind, rid, body in frames():\n    if kind == CALL:\n"
    answers += "        send(encode_frame(RESULT, rid, literal('through the relay')))\n"
    root = login.become("root", exe=hostile_sudo("send(hello_frame())\n" + answers))
    assert isinstance(root._transport, RelayTransport)
    assert root.call(abs, 1) == "through the relay"
    assert root.pid != login.pid


@pytest.mark.parametrize("claimed", [1, 0, 2, 7])
def test_a_become_child_cannot_relay_frames_from_a_context_not_behind_it(
    claimed, hostile_sudo, healthy_children
) -> None:
    login, other = healthy_children(2)
    exe = hostile_sudo(f"send(hello_frame() + encode_frame(FROM_CONTEXT, {claimed}, hello_frame()))\n")
    root = login.become("root", exe=exe)
    reason = f"context 1 relayed a frame from {claimed}, which is not behind it"
    with pytest.raises(ConnectionLost, match=f"/root lost: it sent its parent an invalid message \\({reason}\\)"):
        root.call(abs, 1)
    assert login.call(os.getpid) == login.pid
    assert_healthy([other])


def test_a_become_childs_result_never_answers_its_parents_call(hostile_sudo, healthy_children) -> None:
    (login,) = healthy_children(1)
    assert [login.call(abs, -1), login.call(abs, -2)] == [1, 2]
    pending = login.call_async(time.sleep, 60)  # call 3 of the login context, running in the login child
    exe = hostile_sudo("send(hello_frame() + encode_frame(RESULT, 3, literal('forged')))\n")
    root = login.become("root", exe=exe)
    with pytest.raises(ConnectionLost, match="/root lost: it sent an invalid message \\(RESULT for call 3, never made"):
        root.call(abs, 1)
    assert not pending.done()
    assert login.call(abs, -4) == 4
    login.close()
    with pytest.raises(ConnectionLost, match="closed"):
        pending.result(timeout=30)  # never "forged"


BAD_MODULE_REQUEST = """
answered, calls = False, []
send(hello_frame() + encode_frame(GET_MODULE, 1, {name!r}))
for kind, rid, body in frames():
    if kind == MODULES and rid == 1:
        answered = True
    if kind == CALL:
        calls.append(rid)
    if answered and calls:
        send(b''.join(encode_frame(RESULT, r, literal('root ok')) for r in calls))
        calls = []
"""


@pytest.mark.parametrize(
    "name", [b"not a module", b"\xff\xfe", b"a" * 600, b""], ids=["spaces", "bytes", "long", "empty"]
)
def test_a_become_childs_bad_module_request_costs_its_login_context_nothing(
    name, hostile_sudo, healthy_children
) -> None:
    login, other = healthy_children(2)
    # It asks, and answers its calls once it has its answer: whether its relay answers it or ends it, that is its own.
    root = login.become("root", exe=hostile_sudo(BAD_MODULE_REQUEST.format(name=name)))
    outcome = root.call_async(abs, 1).exception(timeout=30)
    assert outcome is None or "it sent its parent an invalid message (" in str(outcome)  # its own end, not its host's
    assert login.call(abs, -3) == 3
    assert_healthy([other])


MODULE_FLOOD = """
send(hello_frame() + b''.join(encode_frame(GET_MODULE, n, b'no_such_module_%d' % n) for n in range(1, 201)))
for kind, rid, body in frames():
    pass
"""


def test_a_become_child_asking_for_modules_without_waiting_is_ended_alone(hostile_sudo, healthy_children) -> None:
    login, other = healthy_children(2)
    root = login.become("root", exe=hostile_sudo(MODULE_FLOOD))
    outcome = root.call_async(abs, 1).exception(timeout=30)
    assert isinstance(outcome, ConnectionLost) and "over 64 module requests at once" in str(outcome)
    assert login.stats["module_requests"] <= 64  # what reached the master before the relay ended it
    assert login.call(abs, -3) == 3
    assert_healthy([other])
