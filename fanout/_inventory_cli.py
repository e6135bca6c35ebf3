"""``fanout inventory -i INVENTORY --list | --graph | --host NAME``, shaped as ``ansible-inventory``'s output."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from typing import Any

from fanout import _terminal
from fanout.inventory import Inventory, InventoryError

DESCRIPTION = "Show an inventory as Ansible reads it."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``-i`` and one of ``--list``, ``--graph [GROUP]``, ``--host NAME``: ``fanout inventory``'s arguments."""
    parser.add_argument("-i", "--inventory", required=True, help="an inventory file, directory or 'h1,h2,' list")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="every group and host, with host variables (JSON)")
    action.add_argument("--graph", nargs="?", const="all", metavar="GROUP", help="the group tree (default: all)")
    action.add_argument("--host", metavar="NAME", help="one host's variables (JSON)")


def listing(inventory: Inventory) -> dict[str, Any]:
    """The ``--list`` document: ``_meta.hostvars``, then each group's direct hosts and children.

    As ``ansible-inventory --list``, ``all`` shows only its children: a host listed directly under ``all`` is in
    ``ungrouped`` too, and appears there.
    """
    document: dict[str, Any] = {"_meta": {"hostvars": {}}}
    for host in inventory.hosts("all"):
        variables = inventory.host_vars(host)
        if variables:
            document["_meta"]["hostvars"][host] = variables
    for name, group in inventory.groups.items():
        entry: dict[str, Any] = {}
        if group.hosts and name != "all":
            entry["hosts"] = list(group.hosts)
        if group.children:
            entry["children"] = list(group.children)
        if entry or name == "all":
            document[name] = entry
    return document


def _json_default(value: Any) -> Any:
    """YAML values JSON lacks, printed as ansible-inventory prints them: dates in ISO 8601, sets as lists."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def dumps(document: Any) -> str:
    """JSON as ansible-inventory prints it, keys sorted; keys are first made strings as JSON makes them (``1``,
    ``null``, ``true``), so a YAML mapping with keys of several types sorts instead of raising TypeError."""
    plain = json.loads(json.dumps(document, default=_json_default))
    return json.dumps(plain, indent=4, sort_keys=True)


MAX_GRAPH_REPEATS = 1_000_000  # lines --graph may draw beyond one per group and host entry: a group with several
# parents is drawn under each, and shared groups under shared groups multiply


def graph(inventory: Inventory, name: str) -> str:
    """The ``--graph`` tree as ``ansible-inventory --graph`` draws it: groups and hosts in the order they came.

    Its size is known before it is drawn, and refused past :data:`MAX_GRAPH_REPEATS` lines drawn again: a few
    dozen lines of INI, where each level's two groups share the two of the next, would otherwise draw 2**30 lines.
    """
    if name not in inventory.groups:
        raise InventoryError(f"no group named {name!r} in the inventory")
    drawn, once = _graph_size(inventory, name)
    if drawn > once + MAX_GRAPH_REPEATS:
        raise InventoryError(
            f"the graph of {name!r} would take {drawn:,} lines, as groups shared by several parents are drawn under"
            f" each (at most {MAX_GRAPH_REPEATS:,} lines drawn again): draw a smaller group"
        )
    lines: list[str] = []
    todo = [(name, 0)]  # not recursive: a long chain of child groups must not overflow the stack
    while todo:
        group, depth = todo.pop()
        if depth < 0:  # a host: drawn after the groups above it, as the recursive drawing did
            lines.append(f"{'  |' * -depth}--{group}")
            continue
        lines.append(f"{'  |' * depth}--@{group}:" if depth else f"@{group}:")
        entry = inventory.groups[group]
        hosts = [] if group == "all" else entry.hosts  # as ansible-inventory: all's hosts are drawn under ungrouped
        todo.extend((host, -(depth + 1)) for host in reversed(hosts))
        todo.extend((child, depth + 1) for child in reversed(entry.children))
    return "\n".join(lines)


def _graph_size(inventory: Inventory, name: str) -> tuple[int, int]:
    """Lines the graph of ``name`` takes, and lines it would take if each group were drawn once; each group is
    measured once (its size remembered): linear time."""
    sizes: dict[str, int] = {}
    once = 0
    todo = [(name, False)]
    while todo:
        group, measured = todo.pop()
        entry = inventory.groups[group]
        if measured:
            own = 1 + (0 if group == "all" else len(entry.hosts))
            once += own
            sizes[group] = own + sum(sizes[child] for child in entry.children)
        elif group not in sizes:
            todo.append((group, True))
            todo.extend((child, False) for child in entry.children if child not in sizes)
    return sizes[name], once


def main(argv: Sequence[str]) -> int:
    """``fanout inventory``'s arguments alone parsed and run (the ``fanout`` command parses them as a subcommand)."""
    parser = argparse.ArgumentParser(prog="fanout inventory", allow_abbrev=False, description=DESCRIPTION)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Show the inventory as asked; exit status 1 with the reason on bad input, 130 on Ctrl-C."""
    try:
        inventory = Inventory.load(args.inventory)
        if args.list:
            text = dumps(listing(inventory))
        elif args.host is not None:
            if args.host not in inventory.hosts("all"):
                raise InventoryError(f"no host named {args.host!r} in the inventory")
            text = dumps(inventory.host_vars(args.host))
        else:
            text = graph(inventory, args.graph)
        _terminal.write(sys.stdout, text + "\n")  # False when the reader went away (| head): nothing left to do
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except (InventoryError, OSError) as exc:
        _say(str(exc))
        return 1
    return 0


def _say(message: str) -> None:
    _terminal.write(sys.stderr, f"fanout inventory: {_terminal.escape(message)}\n")
