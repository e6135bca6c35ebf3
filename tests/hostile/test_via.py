"""Hostile hops beyond a relay (``via=``): what the relay's ``ssh`` prints is the target's alone to spoil.

The relay is a local child (``fanout.local()``), and the ``ssh`` on its PATH is a stand-in (``hops`` below): for
a target name the test gave a program, it runs that program with ssh's arguments; for any other name it runs
the remote command here, as a real ssh would run it there. The master, the relay (stage 1 and
bootstrap/relay.py) and the failure reports (fanout._via.Hop) are the real ones: what these tests check is what
they do with a hostile ssh, or a hostile host behind it, before and after it says it is ready.

What a user relies on: a target that misbehaves fails with an error that says how, in a bounded message; the
relay and the other targets through it go on; the relay's memory is not the flood's; nothing stays running.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import struct
import sys
import time
from pathlib import Path

import pytest

import fanout
from fanout import _via, _wire
from fanout._relay import RelayTransport
from fanout.errors import (
    AuthenticationFailed,
    ConnectionLost,
    ConnectTimeout,
    FanoutError,
    HostKeyError,
    ProtocolError,
    Unreachable,
    UnsupportedPython,
)
from tests.fleet.waiting import WAIT_TIMEOUT, wait_until

MAX_MESSAGE = 1000  # characters: what an error about a hostile target may take, whatever the target said
FLOOD = 40 * 1024 * 1024  # bytes a target's ssh prints before it is ready

# ssh on the relay's PATH: the target's own program when the test wrote one, else the command, run here.
DISPATCH = """#!/bin/sh
for host; do [ "$before" = -- ] && break; before=$host; done
[ -x "{programs}/$host" ] && exec "{programs}/$host" "$@"
for command; do :; done
exec sh -c "$command"
"""

# What a target's program (Python) has besides fanout/_wire.py. The relay's pipe is its output and errors both.
HELPERS = r"""
import os, sys

def send(data):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]

def drain():
    '''Read what the relay sends (stage 1, then frames) until it closes this input.'''
    while os.read(0, 65536):
        pass

def write_pid():
    with open(sys.argv[0] + ".pid", "w") as pid:
        pid.write(str(os.getpid()))

def literal(value):
    return b"r" + repr(value).encode()

def hello_frame():
    v = sys.version_info
    return encode_frame(HELLO, 0, literal({"python": (v[0], v[1], v[2]), "pid": os.getpid(), "executable": "x"}))

def log(text):
    return encode_frame(LOG, 0, literal(("stdout", "", 20, text, False)))

"""


class Hops:
    """A relay whose ``ssh`` is the stand-in, and the targets reached through it."""

    def __init__(self, directory: Path) -> None:
        self.programs = directory / "programs"
        self.programs.mkdir()
        self.relay = fanout.local(name="relay")
        self.targets: list[fanout.Context] = []

    def program(self, name: str, source: str, *, python: bool = True) -> str:
        """Make ``source`` the ssh of target ``name`` (Python with HELPERS, or sh); return ``name``."""
        path = self.programs / name
        if python:
            source = f"#!{sys.executable}\n" + Path(_wire.__file__).read_text() + HELPERS + source
        else:
            source = "#!/bin/sh\n" + source
        path.write_text(source)
        path.chmod(0o755)
        return name

    def pid_of(self, name: str) -> int:
        """The pid the program of ``name`` wrote (``write_pid()``), once it has."""
        pid_file = self.programs / f"{name}.pid"
        return int(wait_until(lambda: pid_file.is_file() and pid_file.read_text(), what=f"{name}'s ssh started"))

    def connect(self, name: str, **options) -> fanout.Context:
        options = {"host_key_policy": "off", "ssh_config": False, **options}
        target = fanout.connect(name, via=self.relay, **options)
        self.targets.append(target)
        return target

    def relay_peak_memory(self) -> int:
        """The relay's peak resident memory in bytes (Linux), read here: no call of the relay's."""
        for line in Path(f"/proc/{self.relay.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in the relay's /proc status")

    def close(self) -> None:
        for target in self.targets:
            target.close()
        self.relay.close()
        for pid_file in self.programs.glob("*.pid"):  # a program left running is a failure; none stays after it
            pid = int(pid_file.read_text())
            if running(pid):
                os.kill(pid, 9)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it runs nothing, and waits only to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def hops(tmp_path, monkeypatch):
    """The relay, started with the stand-in ``ssh`` first on its PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(DISPATCH.format(programs=tmp_path / "programs"))
    ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    made = Hops(tmp_path)
    yield made
    made.close()


def assert_healthy(*contexts: fanout.Context) -> None:
    assert [context.call(abs, -i) for i, context in enumerate(contexts)] == list(range(len(contexts)))


def failure_of(target: fanout.Context) -> BaseException:
    """What a call of the target's raised, now or later (within the waiting limit: a hang fails)."""
    try:
        outcome = target.call_async(abs, 1).exception(timeout=WAIT_TIMEOUT)
    except FanoutError as lost_already:
        return lost_already
    assert outcome is not None, f"{target.name}'s call succeeded"
    return outcome


# -- the stand-in itself -------------------------------------------------------------------------------------------


def test_the_stand_in_ssh_gives_working_contexts_through_the_relay_and_beyond(hops) -> None:
    target = hops.connect("127.0.0.1")
    assert isinstance(target._transport, RelayTransport)
    assert target.call(os.getpid) == target.pid != hops.relay.pid
    beyond = fanout.connect("127.0.0.1", via=target, host_key_policy="off", ssh_config=False)
    hops.targets.append(beyond)
    assert beyond.call(os.getpid) == beyond.pid not in (target.pid, hops.relay.pid)


# -- before it is ready: what ssh says --------------------------------------------------------------------------------


def test_a_flood_before_ready_is_a_short_unreachable_and_costs_the_relay_no_memory_of_its_size(hops) -> None:
    flood = f"""
chunk = (b"ssh chatter, no prompt \\xff\\xfe " * 3000)[:65536]
for _ in range({FLOOD} // len(chunk)):
    send(chunk)
send(b"\\nthe last words of the flood\\n")
sys.exit(255)
"""
    before = hops.relay_peak_memory()
    healthy = hops.connect("127.0.0.1")
    target = hops.connect(hops.program("flooder", flood))
    error = failure_of(target)
    assert type(error) is Unreachable, repr(error)
    message = str(error)
    assert "flooder (through relay): ssh ended with status 255" in message
    assert message.endswith("the last words of the flood")  # the tail of what it said, cut short
    assert len(message) < MAX_MESSAGE
    assert hops.relay_peak_memory() - before < FLOOD // 2  # the relay kept a tail, not the flood
    assert_healthy(hops.relay, healthy)


# The stand-in ssh of each target (sh), the error its calls raise, what the error says (a regex).
SSH_FAILURES = {
    "denied": (
        "echo 'Permission denied (publickey).' >&2; exit 255",
        AuthenticationFailed,
        r"denied \(through relay\): the host refused the relay's keys \(Permission denied \(publickey\)\.\).*"
        r"forward_agent=True",
    ),
    "host-key": (
        "echo 'Host key verification failed.' >&2; exit 255",
        HostKeyError,
        r"refused the host key \(Host key verification failed\.\)",
    ),
    "host-key-changed": (
        "echo '@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@' >&2; exit 255",
        HostKeyError,
        "refused the host key",
    ),
    "no-ssh": ("exit 127", Unreachable, r"the relay cannot run the OpenSSH client ssh \(no output\)"),
    "ssh-not-found": (
        "echo 'sh: 1: ssh: not found' >&2; exit 127",
        Unreachable,
        r"the relay cannot run the OpenSSH client ssh \(sh: 1: ssh: not found\)",
    ),
    "old-python": (
        "echo 'fanout:old-python 2.7.18 /usr/bin/python2.7'; exit 97",
        UnsupportedPython,
        r"old-python runs Python 2\.7\.18 \(/usr/bin/python2\.7\)",
    ),
    "old-python-huge": (  # within the relay's GONE_TEXT_MAX: whole in what the master gets
        f"echo 'fanout:old-python {'9' * 5000} /{'x' * 2000}'; exit 97",
        UnsupportedPython,
        r"old-python-huge runs Python 9+",
    ),
    "refused": (
        "echo 'ssh: connect to host refused port 22: Connection refused' >&2; exit 255",
        Unreachable,
        r"ssh ended with status 255 before the child started: ssh: connect to host refused port 22: Connection",
    ),
}


def test_ssh_ending_before_ready_raises_what_it_means_and_the_relay_goes_on(hops) -> None:
    targets = {
        hops.connect(hops.program(name, program, python=False)): (kind, says)
        for name, (program, kind, says) in SSH_FAILURES.items()
    }
    assert_failures(targets)
    assert_healthy(hops.relay)


def assert_failures(expected: dict[fanout.Context, tuple[type[BaseException], str]], cause: type | None = None) -> None:
    """Each target's calls raise its kind of error, exactly (caused by ``cause``, if given), whose message matches
    its pattern and is short; every target that does not is named."""
    wrong = []
    for target, (kind, pattern) in expected.items():
        error = failure_of(target)
        message = str(error)
        if type(error) is not kind or not re.search(pattern, message) or len(message) >= MAX_MESSAGE:
            wrong.append(f"{target.name}: {error!r}, not {kind.__name__} matching {pattern!r}")
        elif cause is not None and not isinstance(error.__cause__, cause):
            wrong.append(f"{target.name}: {error!r} caused by {error.__cause__!r}, not {cause.__name__}")
    assert not wrong, "\n".join(wrong)


def test_a_line_ending_in_a_colon_before_ready_is_no_password_prompt(hops) -> None:
    """ssh runs in batch mode: it never prompts, and the relay has no password to give. A login that prints "Last
    login:" with no newline (a shell's rc file) must still start; ssh that ends after such words fails with them.
    (A relay that took them for a prompt would close ssh's input, and report the end as an ordinary one.)"""
    chatty = hops.connect(
        hops.program("chatty", 'printf "Last login:"\nfor command; do :; done\nexec sh -c "$command"\n', python=False)
    )
    prompt = hops.connect(hops.program("prompt", "printf 'root@prompt password:'; exit 255", python=False))
    assert chatty.call(os.getpid) == chatty.pid
    assert_failures(
        {prompt: (Unreachable, r"ssh ended with status 255 before the child started: root@prompt password:")}
    )


# -- never ready -----------------------------------------------------------------------------------------------------


def test_an_ssh_that_never_gets_ready_fails_at_the_connect_timeout_and_leaves_nothing_running(hops) -> None:
    silent = "write_pid()\nwhile True:\n    os.read(0, 65536) or __import__('time').sleep(3600)\n"  # past its input
    endless = "write_pid()\nwhile True:\n    send(b'still connecting...\\n' * 4096)\n"
    healthy = hops.connect("127.0.0.1")
    stuck = [
        hops.connect(hops.program(name, source), connect_timeout=0.5)
        for name, source in [("silent", silent), ("endless", endless)]
    ]
    pids = {name: hops.pid_of(name) for name in ("silent", "endless")}
    for target in stuck:
        error = failure_of(target)
        assert isinstance(error, ConnectionLost), repr(error)
        assert isinstance(error.__cause__, ConnectTimeout)
        assert f"{target.name}: the child was not ready within the connect timeout of 0.5 s" in str(error.__cause__)
    assert_healthy(hops.relay, healthy)
    hops.relay.close()  # and its contexts with it
    left = lambda: {name: pid for name, pid in pids.items() if running(pid)}  # noqa: E731
    wait_until(lambda: not left(), what="every ssh of the relay ended after it closed", state=lambda: f"left: {left()}")


# -- after it is ready: frames ------------------------------------------------------------------------------------


READY = "send(READY_MARK)\n"
GONE_OK = "literal(('ended', '', 0, False))"


# What each target's ssh prints after READY_MARK: bytes that are no frames, which the relay's decoder refuses.
NOT_FRAMES = {
    "garbage": ("b'\\x00\\x00\\x00\\x05\\xfe' * 13", "unexpected frame kind 254"),
    "oversize": ("HEADER.pack(MAX_BODY + 1, HELLO, 0, 0)", "frame body of 67108865 bytes exceeds the maximum"),
    "garbage-after-hello": ("hello_frame() + b'\\x00' * 9 + b'garbage'", "unexpected frame kind 0"),
    "master-kind": ("hello_frame() + encode_frame(CALL, 1, b'')", "unexpected frame kind 2"),
}
# Well-formed frames, which the relay passes on, and the target's own protocol on the master refuses.
REFUSED_FRAMES = {
    # Context 1 is the healthy target's (the first the relay opened): this one cannot end it.
    "ends-its-sibling": (f"hello_frame() + encode_frame(GONE, 1, {GONE_OK})", "GONE for context 1, not a child"),
    "result-never-asked": ("hello_frame() + encode_frame(RESULT, 99, literal('x'))", "RESULT for call 99, never made"),
    "second-hello": ("hello_frame() + hello_frame()", "second HELLO"),
    "pickled-log": (
        "hello_frame() + encode_frame(LOG, 0, b'p' + __import__('pickle').dumps(1))",
        "payload encoding b'p' where a literal belongs",
    ),
}


def test_bad_frames_after_ready_fail_each_target_alone(hops) -> None:
    healthy = hops.connect("127.0.0.1")
    assert healthy._transport.id == 1
    garblers = {
        hops.connect(hops.program(name, READY + f"send({sent})\ndrain()\n")): (
            ConnectionLost,
            f"{name} lost: it sent its parent an invalid message \\({re.escape(reason)}",
        )
        for name, (sent, reason) in NOT_FRAMES.items()
    }
    liars = {
        hops.connect(hops.program(name, READY + f"send({sent})\ndrain()\n")): (
            ConnectionLost,
            f"{name} lost: it sent an invalid message \\(.*{re.escape(reason)}",
        )
        for name, (sent, reason) in REFUSED_FRAMES.items()
    }
    assert_failures(garblers)
    assert_failures(liars, cause=ProtocolError)
    assert_healthy(hops.relay, healthy)


def test_a_bad_frame_from_a_target_that_then_ignores_its_input_still_fails_it(hops) -> None:
    """The relay closes a target's input when it sent garbage; one that keeps running regardless is still
    reported gone: its calls must not wait for a process the relay cannot make end."""
    # Ready, then (once its relay sends it what the master sent: its first call among it) garbage, then deaf.
    # Its pid is written first: the relay may kill it as soon as the garbage arrives.
    stubborn = READY + "send(hello_frame())\nos.read(0, 65536)\nwrite_pid()\nsend(b'\\x00\\x00\\x00\\x05\\xfe' * 13)\n"
    stubborn += "while True:\n    os.read(0, 65536) or __import__('time').sleep(3600)\n"
    healthy = hops.connect("127.0.0.1")
    target = hops.connect(hops.program("stubborn", stubborn))
    hops.pid_of("stubborn")
    error = failure_of(target)
    assert isinstance(error, ConnectionLost), repr(error)
    assert "it sent its parent an invalid message (unexpected frame kind 254)" in str(error)
    assert_healthy(hops.relay, healthy)


def test_a_compressed_frame_is_refused_before_the_relay_inflates_it(hops) -> None:
    """A child never compresses what it sends (the master refuses it): some 300 KiB from a target must not become
    64 MiB in the relay's memory (three times over), nor 64 MiB on the relay's connection to the master."""
    bomb = "body = zlib.compress(b'r' + b' ' * (MAX_BODY - 1), 1)\n"  # 64 MiB of literal in ~300 KiB
    bomb += "send(hello_frame() + HEADER.pack(len(body), LOG, FLAG_ZLIB, 0) + body)\ndrain()\n"
    before = hops.relay_peak_memory()
    healthy = hops.connect("127.0.0.1")
    target = hops.connect(hops.program("bomber", READY + bomb))
    error = failure_of(target)
    assert isinstance(error, ConnectionLost), repr(error)
    assert hops.relay_peak_memory() - before < _wire.MAX_BODY // 4
    assert target._bytes_received < 1024 * 1024  # nor did the master receive it
    assert "compressed" in str(error)
    assert_healthy(hops.relay, healthy)


def test_a_target_cannot_relay_frames_from_a_context_not_behind_it(hops) -> None:
    """A FROM_CONTEXT frame from a target names a context; none lies behind it: the relay refuses it and reports
    the target gone. Had one passed, a pending call of the sibling's would have had its forged result."""
    sibling = hops.connect("127.0.0.1")
    assert sibling.call(abs, -1) == 1
    # The forgers are the next contexts of the relay's connection, in order; each forges its own call's result.
    claims = {"sibling": sibling._transport.id, "relay": 0, "itself": sibling._transport.id + 4, "stranger": 99}
    pending, expected = [], {}
    for n, (name, forged) in enumerate(claims.items(), 1):
        pending.append(sibling.call_async(time.sleep, 60))  # call n + 1 of the sibling, the forged frame's target
        inner = f"encode_frame(RESULT, {n + 1}, literal('forged'))"
        forger = READY + f"send(hello_frame() + encode_frame(FROM_CONTEXT, {forged}, {inner}))\ndrain()\n"
        target = hops.connect(hops.program(f"forger-{name}", forger))
        reason = f"context {target._transport.id} relayed a frame from {forged}, which is not behind it"
        expected[target] = (ConnectionLost, f"lost: it sent its parent an invalid message \\({reason}\\)")
    assert [target._transport.id for target in expected] == [sibling._transport.id + n for n in range(1, 5)]
    assert_failures(expected)
    assert not any(future.done() for future in pending)  # each forged frame came before its forger's GONE
    assert_healthy(hops.relay, sibling)
    sibling.close()
    for future in pending:
        with pytest.raises(ConnectionLost, match="closed"):
            future.result(timeout=WAIT_TIMEOUT)  # never "forged"


# -- the master's known_hosts ----------------------------------------------------------------------------------------


def _blob(*fields: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(field)) + field for field in fields)).decode()


def ed25519_line(names: str, marker: str = "") -> str:
    return f"{marker} {names} ssh-ed25519 {_blob(b'ssh-ed25519', secrets.token_bytes(32))}\n".lstrip()


def rsa4096_line(names: str) -> str:
    modulus = secrets.randbits(4096) | 1 << 4095 | 1
    blob = _blob(b"ssh-rsa", (65537).to_bytes(3, "big"), b"\0" + modulus.to_bytes(512, "big"))
    return f"{names} ssh-rsa {blob}\n"


@pytest.mark.parametrize(
    "line",
    [
        lambda: ed25519_line("target"),
        lambda: ed25519_line("target,other", "@cert-authority"),
        lambda: ed25519_line("elsewhere", "@revoked"),  # every @revoked key goes along, whichever host it names
    ],
    ids=["plain", "cert-authority", "revoked"],
)
def test_over_max_known_hosts_lines_for_a_target_is_a_value_error_before_anything_starts(line, hops, tmp_path) -> None:
    known_hosts = tmp_path / "known_hosts"
    lines = [ed25519_line("target")] + [line() for _ in range(_via.MAX_KNOWN_HOSTS_LINES)]
    known_hosts.write_text("".join(lines))
    with pytest.raises(ValueError, match=f"target: over {_via.MAX_KNOWN_HOSTS_LINES} known_hosts lines name it"):
        hops.connect("target", host_key_policy="strict", known_hosts=str(known_hosts))
    assert not hops.relay._kept.relay_loaded and not hops.relay._tree.transports  # no OPEN went to the relay
    assert_healthy(hops.relay)


def test_max_known_hosts_lines_for_a_target_reach_the_relays_ssh(hops, tmp_path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(ed25519_line("target") for _ in range(_via.MAX_KNOWN_HOSTS_LINES)))
    target = hops.connect(counting_ssh(hops), host_key_policy="strict", known_hosts=str(known_hosts))
    assert target.call(os.getpid) == target.pid
    assert int((hops.programs / "target.count").read_text()) == _via.MAX_KNOWN_HOSTS_LINES


def test_known_hosts_lines_too_long_for_one_argument_still_reach_the_relays_ssh(hops, tmp_path) -> None:
    """200 RSA keys for a host are far under MAX_KNOWN_HOSTS_LINES, but over the 128 KiB Linux lets one argument
    of a command take: the relay must still start ssh with them (or the master must refuse them plainly, with a
    ValueError, before anything starts), not fail as if the relay had no ssh."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(rsa4096_line("target") for _ in range(200)))
    try:
        target = hops.connect(counting_ssh(hops), host_key_policy="strict", known_hosts=str(known_hosts))
    except ValueError as refused:
        assert "known_hosts" in str(refused)
        return
    assert target.call(os.getpid) == target.pid
    assert int((hops.programs / "target.count").read_text()) == 200


def counting_ssh(hops: Hops) -> str:
    """Target "target", whose ssh counts the lines of the known_hosts file it is given (``-o
    UserKnownHostsFile=...``, its first option) into ``target.count``, then runs the command."""
    counted = hops.programs / "target.count"
    counter = f'wc -l < "${{2#UserKnownHostsFile=}}" > {counted}\nfor command; do :; done\nexec sh -c "$command"\n'
    return hops.program("target", counter, python=False)


def test_a_relay_can_keep_the_largest_chunk_a_push_sends() -> None:
    """What a relay keeps for the hosts beyond it is bounded by RELAY_KEPT_BYTES, and every chunk fits in it: the
    master never has to send a chunk the relay cannot keep (fanout._context.Context._reply_through_relay)."""
    from fanout import _push, _relay

    assert _push.MAX_CHUNK <= _relay.RELAY_KEPT_BYTES // 2
