"""fanout: run Python across a fleet of hosts over SSH, with nothing installed on them but sshd and python3."""

from importlib.metadata import PackageNotFoundError, version

from fanout._codec import register_type
from fanout._context import Context, local
from fanout._ssh import connect
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

try:
    __version__ = version("fanout")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
