"""Run a shell command in a child: output streamed line by line as it comes, and kept for the result.

Runs on the hosts, so it keeps to what Python 3.9 reads. Each command runs in
a process group of its own; groups still alive when the child ends are ended
with it (:func:`fanout._parent.at_child_exit`).
"""

import codecs
import os
import signal
import subprocess
import sys
import threading
import time

from fanout._parent import at_child_exit
from fanout._wire import PIECE  # characters of an unfinished line held for the echo: stage 1's own piece size

KEEP = 8 * 1024 * 1024  # bytes kept of a stream's start, and of its end: a result must fit in a frame
GRACE = 0.5  # seconds the readers get, once the shell has ended, for what is already written
MAX_DRAIN = 60.0  # seconds they may go on past it while they still make progress (a slow echo)
END_GRACE = 1.0  # seconds between SIGTERM and SIGKILL for the groups left when the child ends
_groups = set()  # process group ids of commands run() started that may still be running


class _Stream:
    """One pipe of a command, read to its end on a daemon thread: kept (the first and last
    KEEP bytes past 2 * KEEP) and echoed line by line, until run() takes it; the rest is
    then read and dropped, so a background process never blocks on a full pipe."""

    def __init__(self, pipe, echo_to):
        self.head, self.tail, self.left_out = bytearray(), bytearray(), 0
        self.echo_to, self.unfinished, self.held = echo_to, [], 0  # the unfinished line's pieces, their length
        self.midline = False  # part of the unfinished line went out already: the final echo must end it
        self.decode = codecs.getincrementaldecoder("utf-8")("backslashreplace").decode  # no character cut in two
        self.lock, self.open, self.active = threading.Lock(), True, 0.0  # active: when it last made progress
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        """Read what is there as it comes (not by lines: a line can be longer than memory should hold)."""
        with pipe:
            for data in iter(lambda: pipe.read1(65536), b""):
                self.active = time.monotonic()
                with self.lock:
                    if self.open:
                        self._keep(data)
                        self._echo(data)
                self.active = time.monotonic()

    def _keep(self, data):
        """Keep the first KEEP bytes and the last KEEP, counting what falls between."""
        room = KEEP - len(self.head)
        self.head += data[:room]
        self.tail += data[room:]
        excess = len(self.tail) - KEEP
        if excess > 0:
            del self.tail[:excess]  # cheap: a bytearray drops its start without moving the rest
            self.left_out += excess

    def busy(self):
        """True while the reader handles what it read: an echo to a slow master can take a while."""
        return self.thread.is_alive() and self.lock.locked()

    def _echo(self, data, final=False):
        """Write the lines ``data`` completes, each whole up to PIECE characters (a longer one goes
        on in pieces, unflushed: stage 1 marks them continued); ``final`` completes a last line."""
        if self.echo_to is None:
            return
        text = self.decode(data, final)
        if final and (text or self.unfinished or self.midline) and not text.endswith("\n"):
            text += "\n"
        cut = text.rfind("\n") + 1
        if cut:
            self.echo_to.write("".join(self.unfinished) + text[:cut])
            self.echo_to.flush()
            self.unfinished, self.held, self.midline = [], 0, False
        if cut < len(text):
            self.unfinished.append(text[cut:])
            self.held += len(text) - cut
            if self.held > PIECE:  # memory stays bounded on a line with no end
                self.echo_to.write("".join(self.unfinished))
                self.unfinished, self.held, self.midline = [], 0, True

    def take(self):
        """What was kept, as text; what comes later is neither kept nor echoed."""
        with self.lock:
            self.open = False
            _in_a_thread(self._echo, b"", True)
            if not self.left_out:
                return (self.head + self.tail).decode("utf-8", "backslashreplace")
            gap = b"" if self.head.endswith(b"\n") else b"\n"
            gap += b"[... %d bytes left out ...]\n" % self.left_out
            return (self.head + gap + self.tail).decode("utf-8", "backslashreplace")


def _in_a_thread(function, *args):
    """Run ``function`` in a thread of no call, as the readers' echo is: stage 1 tags what is
    printed with the printing call, and the pieces of one line must all carry the same."""
    thread = threading.Thread(target=function, args=args)
    thread.start()
    thread.join()


def _signal_group(pgid, sig):
    """Send ``sig`` to a process group; False when no process of it is left to receive it."""
    try:
        os.killpg(pgid, sig)
    except OSError:  # ProcessLookupError: gone; PermissionError: none left that is ours
        return False
    return True


def _end_groups():
    """As the child ends: SIGTERM the groups still running, SIGKILL those left after END_GRACE."""
    living = [pgid for pgid in list(_groups) if _signal_group(pgid, signal.SIGTERM)]
    deadline = time.monotonic() + END_GRACE
    while living and time.monotonic() < deadline:
        time.sleep(0.02)
        living = [pgid for pgid in living if _signal_group(pgid, 0)]
    for pgid in living:
        _signal_group(pgid, signal.SIGKILL)


def _forget_ended_groups():
    """Drop groups that are gone, so a number the system hands out again is never signalled."""
    for pgid in list(_groups):
        if not _signal_group(pgid, 0):
            _groups.discard(pgid)


at_child_exit(_end_groups)


def run(command, timeout=None, echo=True, cwd=None, env=None):
    """``command`` through ``/bin/sh -c``; returns (rc, stdout, stderr, timed_out); rc is None when timed out.

    Returns once the shell has ended (or was killed at ``timeout``) and the
    readers had the rest (see _drain): background processes it started may
    hold its pipes open for much longer.
    """
    environment = None
    if env:
        environment = dict(os.environ)
        environment.update(env)
    _forget_ended_groups()
    process = subprocess.Popen(
        command,
        shell=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=environment,
        start_new_session=True,  # its own process group: a timeout ends everything it started
    )
    _groups.add(process.pid)
    streams = [
        _Stream(process.stdout, sys.stdout if echo else None),
        _Stream(process.stderr, sys.stderr if echo else None),
    ]
    timed_out = False
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    _drain(streams)
    out, err = (stream.take() for stream in streams)
    if not _signal_group(process.pid, 0):
        _groups.discard(process.pid)  # gone: its number may be handed out again
    return (None if timed_out else process.returncode, out, err, timed_out)


def _drain(streams):
    """Wait for the readers until they have made no progress (read, or echoed to a slow master) for
    GRACE seconds, MAX_DRAIN at most: a background process holding a pipe idle holds run up GRACE only."""
    start = time.monotonic()
    while time.monotonic() < start + MAX_DRAIN:
        quiet = time.monotonic() - max([start] + [stream.active for stream in streams])
        if quiet >= GRACE and not any(stream.busy() for stream in streams):
            return
        deadline = time.monotonic() + max(GRACE - quiet, 0.05)
        for stream in streams:
            stream.thread.join(max(0, deadline - time.monotonic()))
        if not any(stream.thread.is_alive() for stream in streams):
            return
