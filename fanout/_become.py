"""Become: how to start a child as another user on the same host (sudo, su, doas), and what its failures mean.

Master side only. A plan is the command line the parent child runs, with the
places where it puts the Python command (``\\0argv``: as arguments, ``\\0sh``:
as one shell word), whether the password conversation needs a terminal, and
the prompt to answer. The password travels in the OPEN frame only: never in a
process's arguments or environment, a log line, a ``repr`` or a traceback.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from fanout import _secret
from fanout.errors import AuthenticationFailed, BecomeFailed

METHODS = ("sudo", "su", "doas")
PYTHON_ARGS = "\0argv"  # the relay puts [python, "-c", stage 0] here
PYTHON_SHELL = "\0sh"  # ... or that command as one shell word (su runs it through the user's shell)
MAX_USER = 256  # characters of a user name: sudo and su take far less; more is a mistake
NON_INTERACTIVE = ("-n", "--non-interactive")  # dropped from given flags when there is a password to type
DEFAULT_FLAGS = {"sudo": ("-H",), "su": (), "doas": ()}  # sudo -H: HOME is the target user's, as Ansible's default


@dataclass(frozen=True)
class Plan:
    """How one child is started as ``user``."""

    method: str
    user: str
    argv: tuple[str, ...]
    use_pty: bool
    prompt: str | None  # the exact prompt (sudo, which is told it); None: a line ending in a colon
    password: str | None = field(default=None, repr=False)
    other_host = False  # the child runs on its parent's host, with its parent's Python (fanout._relay)

    def needs_pty_retry(self, text: str) -> bool:
        return needs_pty_retry(self, text)

    def failure(self, how: str, text: str, status: int | None, host: str, login_user: str) -> Exception | None:
        return failure(self, how, text, status, host, login_user)

    def open_args(self, use_pty: bool | None = None) -> tuple:
        """The OPEN frame's payload."""
        password = None if self.password is None else str(self.password)  # marshal takes no str subclass
        return (list(self.argv), password, self.use_pty if use_pty is None else use_pty, self.prompt)


def _flags(method: str, flags: str | Sequence[str] | None) -> tuple[str, ...]:
    if flags is None:
        return DEFAULT_FLAGS[method]
    if isinstance(flags, str):
        try:
            return tuple(shlex.split(flags))
        except ValueError as exc:
            raise ValueError(f"become flags {flags!r} are not valid shell words: {exc}") from None
    if not all(isinstance(f, str) for f in flags):
        raise TypeError(f"become flags must be a string or a sequence of strings, not {flags!r}")
    return tuple(flags)


def plan(
    method: str = "sudo",
    user: str = "root",
    *,
    password: str | None = None,
    exe: str | None = None,
    flags: str | Sequence[str] | None = None,
) -> Plan:
    """The plan for ``method`` (sudo, su or doas); a ValueError names what is wrong, before anything starts."""
    if method not in METHODS:
        raise ValueError(f"become method {method!r} is not supported: use one of {', '.join(METHODS)}")
    if not isinstance(user, str) or not user or len(user) > MAX_USER or user.startswith("-"):
        raise ValueError(f"become user must be a user name, not {user!r}")
    if any(c.isspace() or c in "\0:/" for c in user):
        raise ValueError(f"become user {user!r} is not a valid user name")
    if password is not None and not isinstance(password, str):
        raise TypeError("the become password must be a string")
    if password is not None and ("\n" in password or "\r" in password or "\0" in password):
        raise ValueError("the become password cannot hold a line break or NUL: it is typed at a prompt")
    if exe is not None and (not isinstance(exe, str) or not exe or "\0" in exe):
        raise ValueError(f"become exe must be a program name or path, not {exe!r}")
    program = exe or method
    extra = _flags(method, flags)
    if password is not None and method in ("sudo", "doas"):  # Ansible's '-H -S -n' with a password: -n would refuse it
        extra = tuple(f for f in extra if f not in NON_INTERACTIVE)
    if method == "sudo":
        prompt = f"[fanout-sudo-{secrets.token_hex(8)}] "
        auth = ("-S",) if password is not None else ("-n",)
        argv = (program, *extra, *auth, "-p", prompt, "-u", user, "--", PYTHON_ARGS)
        return Plan(method, user, argv, False, prompt, _secret.hide(password))
    if method == "su":
        argv = (program, *extra, user, "-c", PYTHON_SHELL)
        return Plan(method, user, argv, True, None, _secret.hide(password))
    argv = (program, *extra, *(() if password is not None else ("-n",)), "-u", user, PYTHON_ARGS)
    return Plan(method, user, argv, True, None, _secret.hide(password))


def _on_host(error: AuthenticationFailed) -> AuthenticationFailed:
    """Mark a become refusal: the host was reached, unlike an SSH login refused (``error.on_host`` is True)."""
    error.on_host = True  # type: ignore[attr-defined]
    return error


def needs_pty_retry(plan_: Plan, text: str) -> bool:
    """sudo with ``requiretty`` refused to run without a terminal: worth one more try on a pty."""
    return plan_.method == "sudo" and "tty" in text.lower() and "must have" in text.lower()


def failure(plan_: Plan, how: str, text: str, status: int | None, host: str, login_user: str) -> Exception | None:
    """The error a child that ended before it was ready stands for; None when it was ready (an ordinary end)."""
    whose = plan_.user if plan_.method == "su" else login_user
    said = " ".join(text.split())[-300:]
    lower = text.lower()
    said_no = "incorrect password" in lower or "authentication fail" in lower
    if how == "refused" or (how == "ended" and plan_.password is not None and said_no):
        return _on_host(AuthenticationFailed(f"{plan_.method} refused the password for {whose} on {host}"))
    if how == "needs password" or "password is required" in lower:
        asks = f"{plan_.method} on {host} asks for the password of {whose}, and none was given (pass password=)"
        return _on_host(AuthenticationFailed(asks))
    if how != "ended" or not (text or status):
        return None
    if f"cannot run {plan_.argv[0]}" in text:
        return BecomeFailed(host, f"{plan_.argv[0]} is not installed there, or cannot be run ({said})")
    if "sudoers" in lower or "not allowed" in lower or "not permitted" in lower:
        return BecomeFailed(host, f"{login_user} may not become {plan_.user} with {plan_.method} ({said})")
    if "tty" in lower:
        return BecomeFailed(host, f"{plan_.method} needs a terminal and refused one ({said})")
    return BecomeFailed(
        host, f"{plan_.method} to {plan_.user} ended before the child started (status {status}): {said or 'no output'}"
    )
