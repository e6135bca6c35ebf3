"""Byte pipes to a child: a local subprocess, or an SSH exec channel (in :mod:`fanout._ssh`).

A transport only moves bytes and reports how the child ended; the protocol
lives elsewhere. Each keeps the last lines the child wrote to its real stderr
before stage 1 took it over (``python3: not found``, a crash), for error messages.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import subprocess
import threading
from collections.abc import Callable
from typing import Protocol

from fanout import _output, _stage, _terminal

_STDERR_LINES = 20
_STDERR_LINE = 64 * 1024  # bytes of one raw stderr line kept; the rest is counted, not held


class Transport(Protocol):
    """What a :class:`~fanout.Context` needs from the way it reaches a child."""

    def start(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None: ...
    def send(self, data: bytes | memoryview) -> None: ...
    def close(self) -> None: ...
    def describe_end(self) -> str: ...  # how the child ended, for ConnectionLost (and its exit_status, if known)


class StderrTail:
    """Collects a child's raw stderr lines, logging each and keeping the last few."""

    def __init__(self, host: str, logger: str = "fanout.remote") -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._log = logging.getLogger(f"{logger}.{host}")

    def pump(self, read: Callable[[], bytes]) -> None:
        """Read to EOF, line by line, in time linear in what arrives: an endless line is cut, not gathered."""
        rest = bytearray()
        cut = 0
        while True:
            chunk = read()
            if not chunk:
                break
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                self._add(bytes(rest) + chunk[start:end] if rest else chunk[start:end], cut)
                rest.clear()
                cut = 0
                start = end + 1
            room = _STDERR_LINE - len(rest)
            tail = chunk[start:]
            rest += tail[:room]
            cut += max(len(tail) - room, 0)
        if rest or cut:
            self._add(bytes(rest), cut)

    def _add(self, raw: bytes, cut: int = 0) -> None:
        line = raw.decode("utf-8", "backslashreplace")
        if cut:
            line += _output.cut_marker(cut).replace("characters", "bytes")
        self.lines.append(line)  # as the host wrote it: ConnectionLost escapes what it shows
        self._log.warning("%s", _terminal.escape(line), extra={"fanout_stream": "stderr"})

    def text(self) -> str:
        return "\n".join(self.lines)


class LocalTransport:
    """A child on this machine: ``python -c <stage 0>`` with pipes."""

    def __init__(self, python: str, host: str) -> None:
        self.process = subprocess.Popen(
            [python, "-c", _stage.stage0_code()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # a terminal's Ctrl-C reaches the master alone, which decides what ends
        )
        self.stderr = StderrTail(host)
        self.exit_status: int | None = None  # the child's, once describe_end has learnt it (-N: killed by signal N)
        self._stderr_thread = threading.Thread(
            target=self.stderr.pump, args=(lambda: self.process.stderr.read(65536),), daemon=True
        )
        self._stderr_thread.start()

    def send(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[self.process.stdin.write(view) :]

    def start(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Deliver the child's output to ``on_data`` from a reader thread; ``on_end`` at EOF."""

        def read() -> None:
            try:
                while data := self.process.stdout.read(65536):
                    on_data(data)
            except (OSError, ValueError):
                pass  # closed under us: that is an end too
            on_end()

        threading.Thread(target=read, name="fanout-local-reader", daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self._stderr_thread.join(timeout=1)
        self.process.stderr.close()

    def describe_end(self) -> str:
        code = self.process.poll()
        if code is None:
            try:
                code = self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                return "the child closed its output but is still running"
        self.exit_status = code
        self._stderr_thread.join(timeout=1)
        what = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        tail = self.stderr.text()
        return f"the child {what}" + (f"; its stderr said:\n{tail}" if tail else "")
