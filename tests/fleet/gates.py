"""Gates on a context's host: a command or call that waits at one goes on when the test opens it, so a test
orders what happens by events it controls, never by sleeping and hoping the machine kept up."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile

import fanout
from tests.fleet.waiting import WAIT_TIMEOUT


class HostGate:
    """A FIFO on the context's host: reading it waits until :meth:`open`; removed on leaving the ``with``.

    Give it a context of its own on the waiter's host, not the waiter's: every call's end flushes its child's
    sys.stdout, which would end the waiter's unfinished line early."""

    def __init__(self, context: fanout.Context) -> None:
        self.context = context
        self.directory = context.call(tempfile.mkdtemp, prefix="fanout-test-gate-")
        self.path = f"{self.directory}/gate"
        context.call(os.mkfifo, self.path)

    @property
    def shell_wait(self) -> str:
        """A shell command that returns once the gate opens."""
        return f"cat {self.path} >/dev/null"

    @property
    def python_wait(self) -> str:
        """A Python statement that returns once the gate opens."""
        return f"open({self.path!r}).read()"

    def open(self) -> None:
        """Let every waiter on, or the next one to come: a writer opens the FIFO (waiting for its reader) and
        closes it, and the reader sees its end."""
        let_on = functools.partial(subprocess.run, ["sh", "-c", f": > {self.path}"], check=True, timeout=WAIT_TIMEOUT)
        self.context.call(let_on)

    def __enter__(self) -> HostGate:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.context.call(shutil.rmtree, self.directory, True)
