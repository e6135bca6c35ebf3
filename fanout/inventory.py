"""Read Ansible inventories (INI, YAML, directories, ``h1,h2,`` host lists) the way ansible-core reads them.

::

    inv = Inventory.load("inventory/hosts")
    with fanout.Fleet(inv.fleet_hosts("webservers:&staging:!phoenix")) as fleet:
        fleet.run("uptime")                     # as root where the inventory says ansible_become=true

    options = inv.connect_options("web1")      # one host: its become options are not fanout.connect's
    become = options.pop("become", {})
    ctx = fanout.connect(**options)
    if become.get("enabled"):
        ctx = ctx.become(**{k: v for k, v in become.items() if k != "enabled"})

Variables are merged with ansible-core's default precedence (``all`` group < other groups by depth,
``ansible_group_priority`` and name < ``group_vars/all`` < ``group_vars/<group>`` < inline host variables <
``host_vars/<host>``). Values are not templated: ``{{ ... }}`` stays a plain string (in a become variable it is
refused, rather than typed as a password). Become variables are read as ansible-core's become plugins read them;
one fanout cannot honour (``ansible_become_method=runas``, the old ``ansible_sudo``) is an error, never ignored.

What an inventory may stand for is bounded (``MAX_*``, each beside the code that checks it), and checked before
anything is built: a host range over a million hosts or a YAML alias bomb is an :class:`InventoryError` naming the
file and line, never gigabytes.

This module is the entry point; the work is done in ``_inventory_model`` (groups, hosts, variables),
``_inventory_sources`` (files, directories, host lists, group_vars/host_vars), ``_inventory_ini`` and
``_inventory_yaml`` (the two formats), ``_inventory_values`` (values, ``host:port``, host ranges),
``_host_patterns`` (host patterns) and ``_ansible_vars`` (a host's variables as connect and become options).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

# Besides its own names, this module offers the ones callers have always imported from it (``read_bounded``,
# the limits ``MAX_*``...). Each is defined, and a limit enforced, beside the code that uses it: patch it there.
from fanout import _ansible_vars, _host_patterns, _inventory_sources
from fanout._ansible_vars import UNSUPPORTED_CONNECTION_VARS as UNSUPPORTED_CONNECTION_VARS
from fanout._ansible_vars import BecomeOptions
from fanout._inventory_model import MAX_HOST_ENTRIES as MAX_HOST_ENTRIES
from fanout._inventory_model import MAX_HOSTS as MAX_HOSTS
from fanout._inventory_model import Group, InventoryError, InventoryModel
from fanout._inventory_sources import MAX_FILE_BYTES as MAX_FILE_BYTES
from fanout._inventory_sources import read_bounded as read_bounded
from fanout._inventory_values import MAX_RANGE_CHARS as MAX_RANGE_CHARS
from fanout._inventory_values import MAX_RANGE_HOSTS as MAX_RANGE_HOSTS
from fanout._inventory_yaml import MAX_YAML_ALIAS_NODES as MAX_YAML_ALIAS_NODES

__all__ = ["BecomeOptions", "Group", "Inventory", "InventoryError"]

IMPLICIT_LOCALHOSTS = ("localhost", "127.0.0.1", "::1")


class Inventory:
    """Hosts, groups and variables read from one or more Ansible inventory sources."""

    def __init__(self, model: InventoryModel | None = None) -> None:
        self._model = InventoryModel() if model is None else model

    @classmethod
    def load(cls, path: str | os.PathLike) -> Inventory:
        """Read an inventory file, a directory of them, or a comma-separated host list such as ``"h1,h2,"``."""
        return cls(_inventory_sources.load(path))

    @property
    def groups(self) -> dict[str, Group]:
        """Every group by name, ``all`` and ``ungrouped`` included, in the order first seen."""
        return self._model.groups

    def hosts(self, pattern: str = "all") -> list[str]:
        """Host names matching an Ansible host pattern, in Ansible's order; an empty list if nothing matches."""
        return _host_patterns.match_hosts(self._model, pattern)

    def group_hosts(self, name: str) -> list[str]:
        """All hosts of group ``name`` and its descendants, in Ansible's order."""
        return self._model.group_hosts(name)

    def host_groups(self, name: str) -> list[str]:
        """Every group ``name`` belongs to (directly or through child groups), in variable-precedence order."""
        return self._model.host_groups(name)

    def host_vars(self, name: str) -> dict[str, Any]:
        """The host's variables, merged with ansible-core's default precedence (later wins, whole top-level keys)."""
        return self._model.host_vars(name)

    def connect_options(self, name: str) -> dict[str, Any]:
        """Keyword arguments for :func:`fanout.connect` from the host's connection variables (``host`` included);
        with ``become`` (a :class:`~fanout.inventory.BecomeOptions`) when the host sets any become variable,
        which :class:`~fanout.Fleet` takes off before it connects."""
        return _ansible_vars.connect_options(name, self.host_vars(name))

    def relays_for(self, hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Connection options of the hosts ``hosts`` reach through (``fanout_via``, and theirs) that are not among
        them: a fleet connects those as relays only (docs/relays.rst)."""
        relays: dict[str, dict[str, Any]] = {}
        wanted = [o["via"] for o in hosts.values() if isinstance(o.get("via"), str)]
        known = set(self.hosts("all"))
        while wanted:
            name = wanted.pop()
            if name in hosts or name in relays or name not in known:
                continue  # one the inventory lacks is named by the fleet's own check
            relays[name] = self.connect_options(name)
            if isinstance(relays[name].get("via"), str):
                wanted.append(relays[name]["via"])
        return relays

    def become_enabled(self, name: str) -> bool | None:
        """The host's ``fanout_become`` or ``ansible_become``, as a bool; None when neither is set (then the command
        line's ``-b`` decides, as in Ansible). A host not in the inventory (the implicit ``localhost``) takes the
        ``all`` group's."""
        variables = self.host_vars(name) if name in self._model.hosts else self._model.all_vars()
        return _ansible_vars.become_enabled(name, variables)

    def fleet_hosts(self, pattern: str = "all") -> dict[str, dict[str, Any]]:
        """Connection options of the hosts ``pattern`` selects; an absent ``localhost`` is implicit, as in Ansible.

        The implicit ``localhost`` takes only the module policy (``fanout_allow_modules``, ``fanout_deny_modules``)
        and the become variables of the ``all`` group: as in Ansible it is in no group, but a policy set for every
        host must hold there too, and ansible-core runs it through the ``all`` group's ``ansible_become``.
        """
        names = self.hosts(pattern)
        if not names and pattern.strip() in IMPLICIT_LOCALHOSTS:
            name = pattern.strip()
            return {name: _ansible_vars.local_options(name, self._model.all_vars())}
        return {name: self.connect_options(name) for name in names}
