"""ssh_config's ProxyCommand: a local command that carries the connection, run as OpenSSH runs it.

The command runs under ``$SHELL -c "exec COMMAND"`` (``/bin/sh`` when SHELL is
unset), as ssh runs it, with one end of a socket pair as its standard input and
output. paramiko then reads a real socket: its timeouts and EOF behave as for
TCP, so a proxy that exits ends the connection at once. (paramiko's own
``ProxyCommand`` reads a pipe in a loop that does not see EOF, and its
``close`` signals the process without reaping it.)

Closing ends the process and reaps it: the socket closes, then SIGTERM, then
SIGKILL after ``PROXY_EXIT_WAIT`` seconds. What the command writes on stderr is
logged at WARNING on ``fanout.proxy.<host>`` and its last lines kept, by one
reader thread per proxy, so a proxy that fails is quoted in the error.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading

from fanout._read_ahead import ReadAheadSocket
from fanout._transport import StderrTail

PROXY_EXIT_WAIT = 2.0  # seconds a proxy has to exit once its socket is closed and it is sent SIGTERM; then SIGKILL
_SHOWN_CHARS = 1000  # of a failed proxy's last stderr lines, quoted in the error


class ProxyCommandSocket(ReadAheadSocket):
    """A running ProxyCommand, seen as the socket paramiko reads; ``close`` also ends and reaps the process."""

    def __init__(self, command: str, label: str) -> None:
        ours, theirs = socket.socketpair()
        shell = os.environ.get("SHELL") or "/bin/sh"
        try:
            self.process = subprocess.Popen(
                [shell, "-c", f"exec {command}"], stdin=theirs, stdout=theirs, stderr=subprocess.PIPE
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the proxy holds its end: when it exits, ours reads EOF
        super().__init__(ours)
        try:
            self.stderr = StderrTail(label, logger="fanout.proxy")
            self._reader = threading.Thread(target=self._pump_stderr, name=f"fanout-proxy-{label}", daemon=True)
            self._reader.start()
        except BaseException:  # no thread to be had: the proxy is ended and reaped all the same
            self.close()
            raise

    def _pump_stderr(self) -> None:
        """The reader thread: the proxy's stderr, logged and its last lines kept, until it closes."""
        stream = self.process.stderr
        assert stream is not None
        try:
            self.stderr.pump(lambda: stream.read1(65536))
        except (OSError, ValueError):  # closed under us at interpreter exit
            pass
        finally:
            stream.close()

    def stderr_tail(self, wait: float = PROXY_EXIT_WAIT) -> str:
        """The proxy's last stderr lines, on one line ('' when it wrote none). Once the proxy has ended, its stderr
        is read to the end first, waiting up to ``wait`` seconds (a child of the proxy may hold it open)."""
        if self.process.poll() is not None:
            self._reader.join(wait)
        text = " / ".join(line.strip() for line in list(self.stderr.lines) if line.strip())
        text = "".join(ch if ch.isprintable() else "?" for ch in text)
        return text if len(text) <= _SHOWN_CHARS else "..." + text[-_SHOWN_CHARS:]

    def close(self) -> None:
        """Close the socket, then end the process (SIGTERM, SIGKILL if it lingers) and reap it."""
        with contextlib.suppress(OSError):
            self.raw.shutdown(socket.SHUT_RDWR)
        super().close()
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.terminate()
            try:
                self.process.wait(PROXY_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
