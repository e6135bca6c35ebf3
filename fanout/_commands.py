"""A shell command as a call: its arguments checked, and its answer read as a result, for Fleet.run and Context.run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fanout._timeouts import MAX_TIMEOUT, check_timeout
from fanout.errors import CommandFailed

# Seconds the master waits past a command's timeout for the child's answer (the child kills the command at its
# timeout) before it ends the child, in Context.run; Fleet.run waits its connect_timeout, of the same default.
ANSWER_GRACE = 10.0


@dataclass(frozen=True)
class CommandResult:
    """How a shell command ended on one host: ``rc`` is None when it was killed at its timeout."""

    rc: int | None
    stdout: str
    stderr: str


def shell_args(
    command: str, timeout: float | None, echo: bool, cwd: str | None, env: Mapping[str, str] | None
) -> tuple[Any, ...]:
    """The arguments of ``fanout._shell.run`` for ``command``; ValueError for what is no command or timeout."""
    if not isinstance(command, str) or not command.strip():
        raise ValueError(f"command must be a non-empty string, not {command!r}")
    check_timeout("timeout", timeout, allow_none=True)
    return (command, timeout, echo, cwd, dict(env) if env else None)


def answer_wait(timeout: float | None) -> float | None:
    """How long Context.run waits for the child's answer to a command of ``timeout`` seconds."""
    return None if timeout is None else min(timeout + ANSWER_GRACE, MAX_TIMEOUT)


def outcome(host: str, answer: tuple, check: bool) -> tuple[CommandResult, CommandFailed | None]:
    """``_shell.run``'s answer as its CommandResult, and the error it means: a status other than 0 (with
    ``check``), or the command killed at its timeout (whatever ``check``)."""
    rc, stdout, stderr, _timed_out = answer
    value = CommandResult(rc, stdout, stderr)
    if rc is None or (check and rc != 0):
        return value, CommandFailed(host, rc, stderr, value)
    return value, None
