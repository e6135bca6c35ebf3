"""``fanout inventory -i INVENTORY --list | --graph | --host NAME``, shaped as ``ansible-inventory``'s output."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from typing import Any

from fanout.inventory import Inventory, InventoryError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fanout inventory", description="Show an inventory as Ansible reads it.")
    parser.add_argument("-i", "--inventory", required=True, help="an inventory file, directory or 'h1,h2,' list")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="every group and host, with host variables (JSON)")
    action.add_argument("--graph", nargs="?", const="all", metavar="GROUP", help="the group tree (default: all)")
    action.add_argument("--host", metavar="NAME", help="one host's variables (JSON)")
    return parser


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


def graph(inventory: Inventory, name: str) -> str:
    """The ``--graph`` tree as ``ansible-inventory --graph`` draws it: groups and hosts in the order they came."""
    lines: list[str] = []

    def draw(group: str, depth: int) -> None:
        indent = "  |" * depth
        lines.append(f"{indent}--@{group}:" if depth else f"@{group}:")
        entry = inventory.groups[group]
        for child in entry.children:
            draw(child, depth + 1)
        if group == "all":
            return  # as ansible-inventory: the hosts of all are drawn under ungrouped
        for host in entry.hosts:
            lines.append(f"{'  |' * (depth + 1)}--{host}")

    if name not in inventory.groups:
        raise InventoryError(f"no group named {name!r} in the inventory")
    draw(name, 0)
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """Entry point of ``fanout inventory``; exit status 1 with the reason on bad input."""
    args = _parser().parse_args(argv)
    try:
        inventory = Inventory.load(args.inventory)
        if args.list:
            print(dumps(listing(inventory)))
        elif args.host is not None:
            if args.host not in inventory.hosts("all"):
                raise InventoryError(f"no host named {args.host!r} in the inventory")
            print(dumps(inventory.host_vars(args.host)))
        else:
            print(graph(inventory, args.graph))
    except InventoryError as exc:
        print(f"fanout inventory: {exc}", file=sys.stderr)
        return 1
    return 0
