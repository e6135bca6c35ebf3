"""The ``fanout`` command line.

For now it names the hosts a pattern would reach; running calls on them arrives
with the core. With no inventory, ``localhost`` is implicit and means a local
child process, as in Ansible.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence

from fanout import __version__

IMPLICIT_HOST = "localhost"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fanout",
        description="Run Python across a fleet of hosts over SSH.",
    )
    parser.add_argument("--version", action="version", version=f"fanout {__version__}")
    parser.add_argument("pattern", metavar="PATTERN", help="which hosts (without an inventory: localhost)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fanout`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.pattern.strip() != IMPLICIT_HOST:
        print(
            f"fanout: no host matches {args.pattern!r}: without an inventory only the implicit "
            f"{IMPLICIT_HOST!r} exists",
            file=sys.stderr,
        )
        return 1
    print(f"fanout {__version__}")
    print(f"would reach 1 host matching {args.pattern!r}:")
    print(f"  {IMPLICIT_HOST}  local child: {sys.executable} (Python {platform.python_version()})")
    return 0
