"""The ``fanout`` command line, shaped as Ansible's ad-hoc ``ansible`` command.

``fanout [-i INVENTORY] PATTERN -m module.function [-a JSON]`` calls a function,
``--shell CMD`` runs a command, on the hosts the pattern selects. Without an
inventory only ``localhost`` exists, reached through a local child process (as
Ansible's implicit localhost), so the command works with no SSH at all.
Exit status as Ansible's: 4 when a host was unreachable, else 2 when one failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fanout
from fanout.errors import FanoutError
from fanout.fleet import CommandResult

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
    parser = argparse.ArgumentParser(
        prog="fanout",
        description="Run Python functions or shell commands across a fleet of hosts over SSH.",
        epilog="Also: fanout inventory -i INVENTORY --list | --graph [GROUP] | --host NAME",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    parser.add_argument("pattern", metavar="PATTERN", help="which hosts, as an Ansible host pattern")
    parser.add_argument(
        "-i", "--inventory", metavar="INVENTORY", help="an Ansible inventory: file, directory or 'h1,h2,' list"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "-m",
        "--function",
        metavar="MODULE.FUNCTION",
        help=f"the function to call (default {_DEFAULT_FUNCTION})",
    )
    what.add_argument("--shell", metavar="CMD", help="run a shell command instead (through /bin/sh -c)")
    parser.add_argument(
        "-a", "--args", metavar="JSON", help="arguments: a JSON list (positional) or object (keywords), e.g. '[\"/\"]'"
    )
    parser.add_argument("-f", "--forks", type=int, default=50, help="connections opened at once (default 50)")
    parser.add_argument(
        "-T", "--timeout", type=float, default=10.0, help="connect timeout in seconds, to a ready child (default 10)"
    )
    parser.add_argument(
        "--task-timeout", type=float, metavar="SECONDS", help="give up on a host's call or command after this long"
    )
    parser.add_argument("-l", "--limit", metavar="SUBSET", help="further limit the hosts: a pattern, or @FILE of names")
    parser.add_argument("-u", "--user", help="remote user, where the inventory sets none")
    parser.add_argument("--private-key", metavar="FILE", help="SSH key, where the inventory sets none")
    parser.add_argument("--json", action="store_true", help="print one JSON object per host, and nothing live")
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
        except ModuleNotFoundError as exc:
            if exc.name is not None and not (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise UsageError(f"importing {module_name} failed: {exc}") from None  # a missing dependency
            continue
        except Exception as exc:  # the module exists but breaks on import: say so, not "no such thing"
            raise UsageError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
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
    """Entry point of the ``fanout`` command; returns the exit status (Ansible's: 4 unreachable, 2 failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inventory"]:
        from fanout import _inventory_cli

        return _inventory_cli.main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.shell is not None:
            if args.args is not None:
                parser.error("-a gives a function's arguments; with --shell, put them in the command")
            if not args.shell.strip():
                raise UsageError("--shell needs a command")
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # as ``python -m``: the project one stands in is importable
            function = resolve_function(args.function or _DEFAULT_FUNCTION)
            positional, keywords = parse_arguments(args.args)
        if args.forks < 1:
            raise UsageError(f"--forks must be at least 1, not {args.forks}")
        for option, value in (("--timeout", args.timeout), ("--task-timeout", args.task_timeout)):
            if value is not None and not value > 0:
                raise UsageError(f"{option} must be above 0 seconds, not {value:g}")
        hosts = select_hosts(args)
    except (UsageError, FanoutError, ValueError, OSError) as exc:  # InventoryError is a ValueError
        print(f"fanout: {exc}", file=sys.stderr)
        return 1
    fleet = fanout.Fleet(hosts, forks=args.forks, connect_timeout=args.timeout, echo=not args.json)
    try:
        with fleet:
            if args.shell is not None:
                results = fleet.run(args.shell, timeout=args.task_timeout)
            else:
                results = fleet.call(function, *positional, timeout=args.task_timeout, **keywords)
    except FanoutError as exc:  # the fleet as a whole cannot start: the open-file limit
        print(f"fanout: {exc}", file=sys.stderr)
        return 1
    for result in results.values():
        print(json.dumps(_record(result), default=repr) if args.json else _line(result))
    if not args.json and len(results) > 1:
        print(results.summary(), file=sys.stderr)
    return exit_status(results)


def select_hosts(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Connection options of the hosts PATTERN (and --limit) select; an empty selection is an error."""
    from fanout.inventory import IMPLICIT_LOCALHOSTS, Inventory

    if args.inventory is None:
        if args.pattern.strip() not in IMPLICIT_LOCALHOSTS:
            raise UsageError(
                f"no host matches {args.pattern!r}: without an inventory (-i) only the implicit "
                f"{IMPLICIT_HOST!r} exists"
            )
        hosts = {args.pattern.strip(): {"connection": "local"}}
    else:
        inventory = Inventory.load(args.inventory)
        hosts = inventory.fleet_hosts(args.pattern)
        if args.limit:
            allowed = set(_limit_names(inventory, args.limit))
            hosts = {name: options for name, options in hosts.items() if name in allowed}
        if not hosts:
            limited = f" within --limit {args.limit!r}" if args.limit else ""
            raise UsageError(f"no host matches {args.pattern!r}{limited} in {args.inventory}")
    for options in hosts.values():
        if options.get("connection", "ssh") == "ssh":
            if args.user:
                options.setdefault("user", args.user)
            if args.private_key:
                options.setdefault("identity_file", args.private_key)
    return hosts


def _limit_names(inventory: Any, limit: str) -> list[str]:
    if limit.startswith("@"):
        path = Path(limit[1:])
        try:
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise UsageError(f"--limit {limit}: cannot read {path}: {exc.strerror or exc}") from None
    return inventory.hosts(limit)


def exit_status(results: fanout.Results) -> int:
    """Ansible's: 4 when any host was never reached, else 2 when any failed, else 0."""
    if results.unreachable:
        return 4
    return 2 if results.failed else 0


_LABELS = {
    "ok": "ok",
    "failed": "FAILED",
    "unreachable": "UNREACHABLE",
    "auth-failed": "AUTH FAILED",
    "timed-out": "TIMED OUT",
}


def _line(result: fanout.Result) -> str:
    """One readable line per host (the remote traceback follows on the next lines)."""
    label = _LABELS.get(result.status, result.status.upper())
    value = result.value
    if isinstance(value, CommandResult):
        detail = "killed at its timeout" if value.rc is None else f"rc={value.rc}"
        if result.error is not None and value.stderr.strip():
            detail += ": " + value.stderr.rstrip("\n").splitlines()[-1]
    elif result.ok:
        detail = repr(value)
    else:
        detail = str(result.error)
    return f"{result.host} | {label} | {detail}"


def _record(result: fanout.Result) -> dict[str, Any]:
    """The JSON object for one host."""
    record: dict[str, Any] = {"host": result.host, "ok": result.ok, "status": result.status}
    value = result.value
    if isinstance(value, CommandResult):
        record.update(rc=value.rc, stdout=value.stdout, stderr=value.stderr)
    elif result.ok:
        record.update(value=value, stdout=result.stdout, stderr=result.stderr)
    if result.error is not None:
        record["error"] = str(result.error)
        record["error_type"] = getattr(result.error, "type_name", type(result.error).__name__)
    return record
