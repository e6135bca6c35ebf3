"""The exceptions fanout raises: each says which host, and what happened there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fanout._terminal import escape
from fanout._wire import ProtocolError

if TYPE_CHECKING:
    from fanout._fetch import Fetched
    from fanout._push import Transfer

__all__ = [
    "AuthenticationFailed",
    "BecomeFailed",
    "CallTimeout",
    "CommandFailed",
    "ConnectTimeout",
    "ConnectionLost",
    "FanoutError",
    "FetchError",
    "HostKeyError",
    "ProtocolError",
    "PushFailed",
    "RemoteError",
    "SerializationError",
    "Unreachable",
    "UnsafeMessage",
    "UnsupportedPython",
]


class FanoutError(Exception):
    """Base of fanout's own errors."""

    cli_text: str | None = None  # the message with its advice spelled for the command line (see advise)


def advise(error: FanoutError, *, api: str, cli: str) -> FanoutError:
    """Add advice to ``error``: in the API's spelling to ``str(error)``, in the CLI's to ``error.cli_text``."""
    text = str(error)
    error.args = (f"{text}; {api}",)
    error.cli_text = f"{text}; {cli}"
    return error


def _shown(text: str) -> str:
    """A host's text as an error shows it: control characters escaped, lines after the first indented, so what
    a host wrote can neither act on a terminal nor pass for a line of its own (the raw text stays an attribute)."""
    return "\n  ".join(escape(line) for line in text.split("\n"))


class RemoteError(FanoutError):
    """The called code raised on the remote host; carries its type name, message and traceback."""

    def __init__(self, host: str, type_name: str, message: str, traceback: str) -> None:
        super().__init__(host, type_name, message, traceback)
        self.host = host
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        text = f"{escape(self.type_name)}: {_shown(self.message)} (on host {self.host})"
        if self.traceback:
            text += "\n\nRemote traceback:\n  " + _shown(self.traceback.rstrip("\n"))
        return text


class ConnectionLost(FanoutError):
    """The connection to a host ended while calls were waiting, or before a call was made."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(host, reason)
        self.host = host
        self.reason = reason

    def __str__(self) -> str:
        return f"connection to {self.host} lost: {_shown(self.reason)}"


class Unreachable(FanoutError):
    """The host could not be reached: name resolution, refused connection, network error."""


class ConnectTimeout(Unreachable):
    """The host did not become ready within the connect timeout."""


class UnsupportedPython(Unreachable):
    """The host's Python is older than fanout's children need, or discovery found none: choose another one.

    ``version`` and ``executable`` are as the host reported them (bounded, escaped when shown); both are
    None when no interpreter was found, and ``looked_for`` then says where discovery looked.
    """

    def __init__(
        self, host: str, minimum: str, version: str | None, executable: str | None, looked_for: tuple[str, ...] = ()
    ) -> None:
        super().__init__(host, minimum, version, executable, looked_for)
        self.host = host
        self.minimum = minimum
        self.version = version
        self.executable = executable
        self.looked_for = looked_for

    def __str__(self) -> str:
        needs = f"fanout needs Python {self.minimum} or newer on hosts"
        choose = "choose another interpreter with python= or ansible_python_interpreter"
        if self.version is None:
            return f"{self.host} has no python3 (looked for {', '.join(self.looked_for)}); {needs} ({choose})"
        where = f" ({escape(self.executable)})" if self.executable else ""
        return f"{self.host} runs Python {escape(self.version)}{where}; {needs} ({choose})"


class AuthenticationFailed(FanoutError):
    """The host was reached but refused every credential offered."""


class BecomeFailed(FanoutError):
    """A child as another user (sudo, su, doas) could not be started: not allowed, not installed, no terminal."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(host, reason)
        self.host = host
        self.reason = reason

    def __str__(self) -> str:
        return f"become failed on {self.host}: {_shown(self.reason)}"


class HostKeyError(FanoutError):
    """The host's key is unknown (strict checking) or differs from known_hosts."""


class SerializationError(FanoutError, TypeError):
    """A function or its arguments cannot be sent to the host as they are; the message says what to do."""


class UnsafeMessage(ProtocolError):
    """A child's message named a class or function outside the allow-list, or was malformed."""


class CallTimeout(FanoutError):
    """A fleet call got no answer from a host within its timeout; the host's connection was closed."""


class CommandFailed(FanoutError):
    """A shell command exited with a non-zero status (or was killed at its timeout)."""

    def __init__(self, host: str, rc: int | None, stderr: str) -> None:
        super().__init__(host, rc, stderr)
        self.host = host
        self.rc = rc
        self.stderr = stderr

    def __str__(self) -> str:
        what = "timed out and was killed" if self.rc is None else f"exited with status {self.rc}"
        tail = self.stderr.rstrip("\n").splitlines()[-3:]
        return f"the command {what} on {self.host}" + (": " + " / ".join(escape(t) for t in tail) if tail else "")


class PushFailed(FanoutError):
    """Entries of a push failed on a host (or it answered nonsense); ``transfer`` says what was done there."""

    def __init__(self, host: str, messages: tuple[str, ...], count: int, transfer: Transfer | None = None) -> None:
        super().__init__(host, messages, count)
        self.host = host
        self.messages = messages  # the host's own words, the first few: escaped when shown
        self.count = count
        self.transfer = transfer

    def __str__(self) -> str:
        shown = "; ".join(escape(message) for message in self.messages[:3])
        more = f" (and {self.count - 3} more)" if self.count > 3 else ""
        return f"the push failed on {self.host} for {self.count} path{'s' * (self.count != 1)}: {shown}{more}"


class FetchError(FanoutError):
    """A fetch from one host failed or was incomplete: ``reason`` says why, ``fetched`` what was done anyway."""

    def __init__(self, host: str, reason: str, fetched: Fetched | None = None) -> None:
        super().__init__(host, reason)
        self.host = host
        self.reason = reason
        self.fetched = fetched

    def __str__(self) -> str:
        return f"fetch from {escape(self.host)}: {escape(self.reason)}"
