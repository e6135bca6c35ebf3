"""The ``fanout`` command line.

``fanout PATTERN -m module.function [-a JSON]`` calls a function on the hosts
the pattern selects. Without an inventory only ``localhost`` exists, reached
through a local child process (as Ansible's implicit localhost), so the
command works on a machine with no SSH at all. Inventories arrive with fleets.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

import fanout
from fanout._context import local
from fanout.errors import FanoutError

IMPLICIT_HOST = "localhost"
_DEFAULT_FUNCTION = "platform.node"


class UsageError(Exception):
    """The command line asks for something that cannot be done; the message says why."""


class _Version(argparse.Action):
    """--version, looked up only when asked for (reading package metadata costs start-up time)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"fanout {fanout.__version__}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fanout", description="Run Python across a fleet of hosts over SSH.")
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    parser.add_argument("pattern", metavar="PATTERN", help="which hosts (without an inventory: localhost)")
    parser.add_argument(
        "-m",
        "--function",
        metavar="MODULE.FUNCTION",
        default=_DEFAULT_FUNCTION,
        help=f"the function to call (default {_DEFAULT_FUNCTION})",
    )
    parser.add_argument(
        "-a", "--args", metavar="JSON", help="arguments: a JSON list (positional) or object (keywords), e.g. '[\"/\"]'"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    return parser


def resolve_function(dotted: str) -> Any:
    """``package.module.function`` (or ``module.Class.method``) to the callable it names."""
    parts = dotted.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise UsageError(f"-m wants MODULE.FUNCTION, such as platform.node, not {dotted!r}")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no {'.'.join(parts[split:])!r}") from None
        if not callable(obj):
            raise UsageError(f"{dotted} is not callable")
        return obj
    raise UsageError(f"cannot import any module of {dotted!r} on this machine")


def parse_arguments(text: str | None) -> tuple[list, dict]:
    """``-a`` as positional and keyword arguments."""
    if text is None:
        return [], {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"-a is not valid JSON: {exc}") from None
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], value
    raise UsageError("-a must be a JSON list (positional arguments) or object (keyword arguments)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fanout`` command; returns the exit status (Ansible's: 2 failed, 4 unreachable)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inventory"]:
        from fanout import _inventory_cli

        return _inventory_cli.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.pattern.strip() != IMPLICIT_HOST:
            raise UsageError(
                f"no host matches {args.pattern!r}: without an inventory only the implicit {IMPLICIT_HOST!r} exists"
            )
        function = resolve_function(args.function)
        positional, keywords = parse_arguments(args.args)
    except UsageError as exc:
        print(f"fanout: {exc}", file=sys.stderr)
        return 1
    try:
        with local(name=IMPLICIT_HOST) as child:
            value = child.call(function, *positional, **keywords)
    except FanoutError as exc:
        _report(args, IMPLICIT_HOST, ok=False, text=str(exc))
        return 4 if not hasattr(exc, "type_name") else 2
    _report(args, IMPLICIT_HOST, ok=True, value=value)
    return 0


def _report(args: argparse.Namespace, host: str, *, ok: bool, value: Any = None, text: str = "") -> None:
    if args.json:
        record = {"host": host, "ok": ok, **({"value": value} if ok else {"error": text})}
        print(json.dumps(record, default=repr))
    elif ok:
        print(f"{host} | ok | {value!r}")
    else:
        print(f"{host} | FAILED | {text}")
