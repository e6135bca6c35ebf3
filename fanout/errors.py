"""The exceptions fanout raises: each says which host, and what happened there.

Every one is a :class:`FanoutError`: ``except fanout.FanoutError`` catches all that fanout raises, and is told
apart by type, never by a type's name. Misuse (a bad argument) raises Python's own ``ValueError`` or
``TypeError``, as anywhere. The tree::

    FanoutError                      (fanout._wire: the child's stage 1 has ProtocolError too)
    ├── RemoteError                  the called code raised on the host: its type's name, message, traceback
    ├── ConnectionLost               the child died (exit_status), or its connection ended
    ├── Unreachable                  never reached: name resolution, refused, network, bad connect options
    │   ├── ConnectTimeout           no ready child within the connect timeout
    │   └── UnsupportedPython        the host's Python is too old, or none was found
    ├── AuthenticationFailed         the host refused every credential (or become's password)
    ├── HostKeyError                 the host key is unknown, or differs from known_hosts
    ├── BecomeFailed                 no child as another user: not allowed, not installed, no terminal
    ├── ProtocolError                the connection carried bytes that are not frames: it was dropped
    ├── UnsafeMessage                one result was refused (a class outside the allow-list): that call only
    ├── SerializationError           also a TypeError: a function or argument cannot be sent as it is
    ├── CallTimeout                  no answer within a call's timeout
    ├── CommandFailed                a shell command exited non-zero, or was killed at its timeout
    ├── PushFailed                   entries of a push failed on a host
    ├── FetchError                   a fetch from a host failed or was incomplete
    ├── CallRefused                  (fanout.service) a service call refused before anything ran
    ├── PoolClosed                   (fanout.service) the pool closed before the call ran
    ├── InventoryError               (fanout.inventory) also a ValueError: an inventory cannot be read
    └── SSHConfigError               (fanout._ssh_config) also a ValueError: an ssh_config or ssh argument is wrong
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from fanout._terminal import escape
from fanout._wire import FanoutError, ProtocolError

if TYPE_CHECKING:
    from fanout._commands import CommandResult
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

    def raised(self, kind: type[BaseException]) -> bool:
        """Whether the remote code raised a ``kind`` (or a subclass): told by type, as ``except`` would.

        The host sends a type's name only; it names a type here when it is a built-in exception or one of
        fanout's own errors (both ends run the same fanout), found among the classes loaded here: the name
        of anything else matches nothing, and a host cannot make the master import a module by naming it.
        """
        found = _known_error_types().get(self.type_name)
        return found is not None and issubclass(found, kind)


def _known_error_types() -> dict[str, type[BaseException]]:
    """The exception types a remote error's name can stand for: built-ins, and FanoutError's loaded subclasses."""
    known: dict[str, type[BaseException]] = {
        name: value
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    pending: list[type[BaseException]] = [FanoutError]
    while pending:
        kind = pending.pop()
        known[f"{kind.__module__}.{kind.__qualname__}"] = kind
        pending.extend(kind.__subclasses__())
    return known


class ConnectionLost(FanoutError):
    """The connection to a host ended while calls were waiting, or before a call was made.

    ``started`` is whether the child had started (calls could run there): a host whose child died during a
    call was reached, and a fleet counts it failed, not unreachable. ``exit_status`` is the child's status when
    it ended on its own and its host told it: as subprocess gives it for a local child (``-9``: killed by
    SIGKILL), as the remote shell or sshd does over SSH (``137``: 128 + 9), else None (a connection cut).
    """

    def __init__(self, host: str, reason: str, *, exit_status: int | None = None, started: bool = False) -> None:
        super().__init__(host, reason)
        self.host = host
        self.reason = reason
        self.exit_status = exit_status
        self.started = started

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


class UnsafeMessage(FanoutError):
    """A child's message named a class or function outside the allow-list, or was malformed.

    As a call's result, it fails that call only; the connection stays (unlike a :class:`ProtocolError`).
    """


class CallTimeout(FanoutError):
    """A call got no answer from a host within its timeout: the child was ended (see ``Context.call``)."""


class CommandFailed(FanoutError):
    """A shell command exited with a non-zero status (or was killed at its timeout); ``result`` is how it ended."""

    def __init__(self, host: str, rc: int | None, stderr: str, result: CommandResult | None = None) -> None:
        super().__init__(host, rc, stderr)
        self.host = host
        self.rc = rc
        self.stderr = stderr
        self.result = result

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
