"""fanout: run Python across a fleet of hosts over SSH, with nothing installed on them but sshd and python3."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fanout")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
