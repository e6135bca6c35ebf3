"""``fanout inventory -i INVENTORY --list | --graph | --host NAME``, shaped as ``ansible-inventory``'s output."""

from __future__ import annotations

import argparse
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
    """The ``--list`` document: ``_meta.hostvars``, then each group's direct hosts and children."""
    document: dict[str, Any] = {"_meta": {"hostvars": {}}}
    for host in inventory.hosts("all"):
        variables = inventory.host_vars(host)
        if variables:
            document["_meta"]["hostvars"][host] = variables
    for name, group in inventory.groups.items():
        entry: dict[str, Any] = {}
        if group.hosts:
            entry["hosts"] = list(group.hosts)
        if group.children:
            entry["children"] = list(group.children)
        if entry or name == "all":
            document[name] = entry
    return document


def graph(inventory: Inventory, name: str) -> str:
    """The ``--graph`` tree, drawn as ``ansible-inventory --graph`` draws it."""
    lines: list[str] = []

    def draw(group: str, depth: int) -> None:
        indent = "  |" * depth
        lines.append(f"{indent}--@{group}:" if depth else f"@{group}:")
        entry = inventory.groups[group]
        for child in sorted(entry.children):
            draw(child, depth + 1)
        for host in sorted(entry.hosts):
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
            print(json.dumps(listing(inventory), indent=4, sort_keys=True, default=str))
        elif args.host is not None:
            if args.host not in inventory.hosts("all"):
                raise InventoryError(f"no host named {args.host!r} in the inventory")
            print(json.dumps(inventory.host_vars(args.host), indent=4, sort_keys=True, default=str))
        else:
            print(graph(inventory, args.graph))
    except InventoryError as exc:
        print(f"fanout inventory: {exc}", file=sys.stderr)
        return 1
    return 0
