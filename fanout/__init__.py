"""fanout: run Python across a fleet of hosts over SSH, with nothing installed on them but sshd and python3."""

from typing import TYPE_CHECKING, Any

from fanout._codec import register_type
from fanout._context import Context, local
from fanout.errors import (
    AuthenticationFailed,
    ConnectionLost,
    ConnectTimeout,
    FanoutError,
    HostKeyError,
    ProtocolError,
    RemoteError,
    SerializationError,
    Unreachable,
    UnsafeMessage,
)

if TYPE_CHECKING:
    from fanout._ssh import connect

# paramiko (with what it imports) and importlib.metadata cost ~150 ms at start; a local
# child or the command line should not pay that, so both load on first use.


def __getattr__(name: str) -> Any:
    if name == "connect":
        from fanout._ssh import connect

        globals()["connect"] = connect
        return connect
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("fanout")
        except PackageNotFoundError:  # a source tree that was never installed
            found = "0.0.0+unknown"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module 'fanout' has no attribute {name!r}")


__all__ = [
    "AuthenticationFailed",
    "ConnectTimeout",
    "ConnectionLost",
    "Context",
    "FanoutError",
    "HostKeyError",
    "ProtocolError",
    "RemoteError",
    "SerializationError",
    "Unreachable",
    "UnsafeMessage",
    "__version__",
    "connect",
    "local",
    "register_type",
]
