"""fanout: run Python across a fleet of hosts over SSH, with nothing installed on them but sshd and python3."""

from typing import TYPE_CHECKING, Any

from fanout.errors import (
    AuthenticationFailed,
    BecomeFailed,
    CallTimeout,
    CommandFailed,
    ConnectionLost,
    ConnectTimeout,
    FanoutError,
    FetchError,
    HostKeyError,
    ProtocolError,
    PushFailed,
    RemoteError,
    SerializationError,
    Unreachable,
    UnsafeMessage,
    UnsupportedPython,
)

if TYPE_CHECKING:
    from fanout._codec import register_type
    from fanout._connect_options import ConnectOptions
    from fanout._context import Context, local
    from fanout._parent import parent
    from fanout._ssh import connect
    from fanout.fleet import Fleet, Result, Results
    from fanout.inventory import Inventory

# The master's machinery loads on first use: paramiko (with what it imports) costs
# ~90 ms, importlib.metadata ~50 ms, and children, which import fanout.service from
# the master on demand (on Python 3.9 and up), need none of it. fanout.errors is
# plain and small, so it loads at once.
_LAZY = {
    "Context": "fanout._context",
    "local": "fanout._context",
    "connect": "fanout._ssh",
    "ConnectOptions": "fanout._connect_options",
    "register_type": "fanout._codec",
    "parent": "fanout._parent",
    "Fleet": "fanout.fleet",
    "Result": "fanout.fleet",
    "Results": "fanout.fleet",
    "Inventory": "fanout.inventory",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
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
    "BecomeFailed",
    "CallTimeout",
    "CommandFailed",
    "ConnectOptions",
    "ConnectTimeout",
    "ConnectionLost",
    "Context",
    "FanoutError",
    "FetchError",
    "Fleet",
    "HostKeyError",
    "Inventory",
    "ProtocolError",
    "PushFailed",
    "RemoteError",
    "Result",
    "Results",
    "SerializationError",
    "Unreachable",
    "UnsafeMessage",
    "UnsupportedPython",
    "__version__",
    "connect",
    "local",
    "parent",
    "register_type",
]
