"""What an inventory holds once read, whatever its format: groups, hosts, their variables and the group graph.

The INI and YAML parsers (``_inventory_ini``, ``_inventory_yaml``) and the group_vars/host_vars reader
(``_inventory_sources``) fill an :class:`InventoryModel`; host patterns (``_host_patterns``) and
:class:`fanout.inventory.Inventory` read it. Its merge of variables is ansible-core's default precedence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from fanout.errors import FanoutError

# Limits, checked as hosts are added: a typo or a hostile file is an error, not gigabytes.
MAX_HOSTS = 1_000_000  # hosts in one inventory
MAX_HOST_ENTRIES = 10 * MAX_HOSTS  # host names listed in all, ranges expanded: a host in three groups counts three


class InventoryError(FanoutError, ValueError):
    """An inventory (or a host pattern) could not be read; the message names the file and line."""

    def __init__(self, message: str, path: str | os.PathLike | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{os.fspath(path)}:{line}: " if line is not None else f"{os.fspath(path)}: "
        super().__init__(where + message)
        self.path = None if path is None else os.fspath(path)
        self.line = line


@dataclass
class Group:
    """One inventory group: its direct ``hosts``, the names of its ``children``, and its own ``vars``."""

    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list, repr=False)
    depth: int = field(default=0, repr=False)
    priority: int = field(default=1, repr=False)


class InventoryModel:
    """Groups and hosts as the parsers add them, with ``all`` and ``ungrouped`` from the start.

    The building methods raise ValueError (a loop of groups, a limit passed): the parser calling them knows the
    file and line, and makes it an :class:`InventoryError` there.
    """

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.hosts: dict[str, dict[str, Any]] = {}  # host name -> inline host vars, in order of first appearance
        self.direct_groups: dict[str, list[str]] = {}  # host name -> the groups that list it
        self.file_group_vars: dict[str, dict[str, Any]] = {}  # group_vars/ files
        self.file_host_vars: dict[str, dict[str, Any]] = {}  # host_vars/ files
        self._entries = 0  # host names listed so far, ranges expanded
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped")

    # -------------------------------------------------------------------------------------------- building

    def add_group(self, name: str) -> None:
        if name not in self.groups:
            self.groups[name] = Group(name)

    def add_hosts(self, names: list[str], group: str, port: int | None = None) -> None:
        """Add each of ``names`` to ``group``, within :data:`MAX_HOST_ENTRIES` and :data:`MAX_HOSTS`."""
        self._entries += len(names)
        if self._entries > MAX_HOST_ENTRIES:
            raise ValueError(f"the inventory lists more than {MAX_HOST_ENTRIES:,} host names (ranges expanded)")
        for name in names:
            self._add_host(name, group, port)

    def _add_host(self, name: str, group: str, port: int | None = None) -> None:
        """Add ``name`` to ``group``; as in ansible-core, a ``host:port`` sets the port only where the host first
        appears (later ``host:port`` lines are ignored: set ``ansible_port`` to change it)."""
        if name not in self.hosts:
            if len(self.hosts) >= MAX_HOSTS:
                raise ValueError(f"the inventory has more than {MAX_HOSTS:,} hosts")
            self.hosts[name] = {} if port is None else {"ansible_port": port}
            self.direct_groups[name] = []
        self.add_group(group)
        if group not in self.direct_groups[name]:  # the same as name in group.hosts, without a scan of the group
            self.groups[group].hosts.append(name)
            self.direct_groups[name].append(group)

    def set_host_vars(self, names: list[str], variables: dict[str, Any]) -> None:
        """Set inline variables on each of ``names`` (already added), later values over earlier ones."""
        for name in names:
            self.hosts[name].update(variables)

    def set_group_var(self, group: str, key: str, value: Any) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                msg = f"ansible_group_priority of group {group!r} must be an integer, got {value!r}"
                raise ValueError(msg) from None
        else:
            # ansible-core's default hash_behaviour=replace: a mapping set again replaces, never merges
            self.groups[group].vars[key] = value

    def add_child(self, parent: str, child: str) -> None:
        if parent == child:
            raise ValueError(f"cannot add group {child!r} to itself")
        if parent in self.descendants(child):
            raise ValueError(f"adding group {child!r} as a child of {parent!r} creates a dependency loop")
        self.add_group(parent)
        self.add_group(child)
        p, c = self.groups[parent], self.groups[child]
        if child not in p.children:
            p.children.append(child)
            c.parents.append(parent)
            self._deepen(child, p.depth + 1)

    def _deepen(self, name: str, depth: int) -> None:
        todo = [(name, depth)]  # not recursive: a long chain of child groups must not overflow the stack
        while todo:
            name, depth = todo.pop()
            g = self.groups[name]
            if depth > g.depth:
                g.depth = depth
                todo.extend((kid, depth + 1) for kid in g.children)

    def reconcile(self) -> None:
        """Like ansible-core: parentless groups go under ``all``; hosts in no group but all go to ``ungrouped``."""
        for name, g in list(self.groups.items()):
            if name != "all" and not g.parents:
                self.add_child("all", name)
        ungrouped = self.groups["ungrouped"]
        moved: set[str] = set()
        for host, groups in self.direct_groups.items():
            if set(groups) - {"all", "ungrouped"}:
                if "ungrouped" in groups:
                    moved.add(host)
                    groups.remove("ungrouped")
            elif "ungrouped" not in groups:
                ungrouped.hosts.append(host)
                groups.append("ungrouped")
        if moved:  # one pass over the group, not one per host: an inventory of many hosts stays linear
            ungrouped.hosts[:] = [host for host in ungrouped.hosts if host not in moved]

    # --------------------------------------------------------------------------------------------- queries

    def descendants(self, name: str) -> list[str]:
        """``name`` and every group below it, breadth first, children in the order they were added."""
        ordered, seen, level = [name], {name}, [name]
        while level:
            nxt = []
            for g in level:
                for kid in self.groups[g].children:
                    if kid not in seen:
                        seen.add(kid)
                        ordered.append(kid)
                        nxt.append(kid)
            level = nxt
        return ordered

    def _ancestors(self, name: str) -> set[str]:
        out: set[str] = set()
        todo = list(self.direct_groups.get(name, []))
        while todo:
            g = todo.pop()
            if g not in out:
                out.add(g)
                todo.extend(self.groups[g].parents)
        return out

    def group_hosts(self, name: str) -> list[str]:
        """All hosts of group ``name`` and its descendants, in Ansible's order."""
        out: list[str] = []
        seen: set[str] = set()
        for g in self.descendants(name):
            for h in self.groups[g].hosts:
                if h not in seen:
                    seen.add(h)
                    out.append(h)
        return out

    def host_groups(self, name: str) -> list[str]:
        """Every group ``name`` belongs to (directly or through child groups), in variable-precedence order."""
        if name not in self.hosts:
            raise KeyError(name)
        groups = self._ancestors(name) | {"all"}
        return sorted(groups, key=lambda g: (self.groups[g].depth, self.groups[g].priority, g))

    def host_vars(self, name: str) -> dict[str, Any]:
        """The host's variables, merged with ansible-core's default precedence (later wins, whole top-level keys):
        ``all``, other groups by depth, priority and name, ``group_vars/all``, ``group_vars/<group>``, inline host
        variables, ``host_vars/<host>``."""
        groups = [g for g in self.host_groups(name) if g != "all"]
        merged: dict[str, Any] = dict(self.groups["all"].vars)
        for g in groups:
            merged.update(self.groups[g].vars)
        merged.update(self.file_group_vars.get("all", {}))
        for g in groups:
            merged.update(self.file_group_vars.get(g, {}))
        merged.update(self.hosts[name])
        merged.update(self.file_host_vars.get(name, {}))
        return merged

    def all_vars(self) -> dict[str, Any]:
        """The variables every host has: the ``all`` group's, and ``group_vars/all``."""
        return {**self.groups["all"].vars, **self.file_group_vars.get("all", {})}
