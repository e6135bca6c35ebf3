"""INI inventories as ansible-core's ini plugin reads them: ``[group]``, ``[group:vars]``, ``[group:children]``.

A ``[parent:children]`` section may name a group defined further down the file; one never defined is an error
naming the line that named it, as is ``[group:vars]`` for a group that never appears.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from fanout._inventory_model import InventoryError, InventoryModel
from fanout._inventory_values import expand_host, parse_value

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def add_ini(model: InventoryModel, data: str, path: Path) -> None:
    """Add the groups, hosts and variables of the INI inventory ``data`` (read from ``path``) to ``model``."""
    pending: dict[str, dict[str, Any]] = {}  # groups named before they are defined: their line, parents, section
    groupname, state = "ungrouped", "hosts"
    for lineno, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            groupname, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise InventoryError(f"section [{groupname}:{state}] has unknown type {state!r}", path, lineno)
            if groupname not in model.groups:
                if state == "vars" and groupname not in pending:
                    pending[groupname] = {"line": lineno, "state": "vars", "parents": []}
                model.add_group(groupname)
            if groupname in pending and state != "vars":
                if pending[groupname]["state"] == "children":
                    _add_pending_children(model, groupname, pending, path)
                else:
                    del pending[groupname]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(
                f"invalid section header {line!r}: no spaces or other invalid characters allowed", path, lineno
            )
        try:
            if state == "hosts":
                _add_host_line(model, line, groupname)
            elif state == "vars":
                if "=" not in line:
                    raise ValueError(f"expected key=value, got {line!r}")
                key, value = (part.strip() for part in line.split("=", 1))
                if not key:
                    raise ValueError(f"expected key=value, got {line!r} (empty key)")
                model.set_group_var(groupname, key, parse_value(value))
            else:  # children
                gm = _GROUP_NAME.match(line)
                if gm is None:
                    raise ValueError(f"expected a group name in [{groupname}:children], got {line!r}")
                child = gm.group(1)
                if child in model.groups:
                    model.add_child(groupname, child)
                elif child in pending:
                    pending[child]["parents"].append(groupname)
                else:
                    pending[child] = {"line": lineno, "state": "children", "parents": [groupname]}
        except ValueError as e:
            if isinstance(e, InventoryError):
                raise
            raise InventoryError(str(e), path, lineno) from None
    for name, decl in pending.items():
        if decl["state"] == "vars":
            msg = f"section [{name}:vars] is not valid for undefined group {name!r}"
            raise InventoryError(msg, path, decl["line"])
        raise InventoryError(
            f"section [{decl['parents'][-1]}:children] includes undefined group {name!r}", path, decl["line"]
        )


def _add_pending_children(model: InventoryModel, group: str, pending: dict[str, dict[str, Any]], path: Path) -> None:
    decl = pending.pop(group)
    for parent in decl["parents"]:
        try:
            model.add_child(parent, group)
        except ValueError as e:
            raise InventoryError(str(e), path, decl["line"]) from None
        if parent in pending and pending[parent]["state"] == "children":
            _add_pending_children(model, parent, pending, path)


def _add_host_line(model: InventoryModel, line: str, group: str) -> None:
    """One line of a hosts section: ``web[01:20]:2222 ansible_user=deploy``."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as e:
        raise ValueError(f"cannot parse host definition {line!r}: {e}") from None
    if not tokens:
        return
    names, port = expand_host(tokens[0])
    if tokens[0].endswith(":"):
        raise ValueError(f"invalid host {tokens[0]!r}: a trailing ':' must be followed by a port")
    variables: dict[str, Any] = {}
    for tok in tokens[1:]:
        if "=" not in tok or tok.startswith("="):
            raise ValueError(f"expected key=value host variable assignment, got {tok!r}")
        key, value = tok.split("=", 1)
        variables[key] = parse_value(value)
    model.add_hosts(names, group, port)
    model.set_host_vars(names, variables)
