"""Read Ansible inventories (INI, YAML, directories, ``h1,h2,`` host lists) the way ansible-core reads them.

::

    inv = Inventory.load("inventory/hosts")
    for name in inv.hosts("webservers:&staging:!phoenix"):
        ctx = fanout.connect(**inv.connect_options(name))

Variables are merged with ansible-core's default precedence (``all`` group < other groups by depth,
``ansible_group_priority`` and name < ``group_vars/all`` < ``group_vars/<group>`` < inline host variables <
``host_vars/<host>``). Values are not templated: ``{{ ... }}`` stays a plain string.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import ipaddress
import os
import re
import shlex
import string
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Group", "Inventory", "InventoryError"]


IMPLICIT_LOCALHOSTS = ("localhost", "127.0.0.1", "::1")
_PROXY_JUMP = re.compile(r"""(?:-J\s*|ProxyJump\s*[= ]\s*)["']?([^\s"']+)""", re.IGNORECASE)


def _proxy_jump(ssh_args: str) -> str | None:
    """ProxyJump from Ansible's ``ansible_ssh_common_args``, given as ``-J hop`` or ``-o ProxyJump=hop``."""
    match = _PROXY_JUMP.search(ssh_args)
    return match.group(1) if match else None


class InventoryError(ValueError):
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


# Extensions a directory inventory skips (ansible-core's INVENTORY_IGNORE_EXTS default since 2.19, which reads
# ".ini" files: ansible/ansible#84001), and always-skipped names.
_IGNORED_EXTS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
_IGNORED_NAMES = ("group_vars", "host_vars", "vars_plugins")
_YAML_EXTS = (".yml", ".yaml", ".json")
_VARS_EXTS = ("", ".yml", ".yaml", ".json")

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_RANGE = re.compile(r"\[([^\]]*)\]")
# host:port, where the host part has no colon outside [...] range brackets; or [ipv6]:port.
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])+):([^:\[\]]*)$")
_IPV6_PORT = re.compile(r"^\[([0-9a-fA-F:.%]+)\]:(\d+)$")
_PATTERN_WITH_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_PATTERN_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


# --------------------------------------------------------------------------------------------- values and host names


def _parse_value(text: str) -> Any:
    """An INI value: a Python literal when it is one (ints, floats, True/False, None, lists, dicts), else the string."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is Ellipsis or isinstance(value, complex):
        return str(value) if value is not Ellipsis else "..."
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _expand_range(name: str) -> list[str]:
    """Expand the first ``[begin:end(:step)]`` in ``name`` (then the rest, recursively); raise ValueError if bad."""
    m = _RANGE.search(name)
    if m is None or ":" not in m.group(1):
        return [name]
    head, tail = name[: m.start()], name[m.end() :]
    bounds = m.group(1).split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{m.group(1)}] must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError(f"host range [{m.group(1)}] must specify an end value")
    try:
        step = int(step_text)
    except ValueError:
        raise ValueError(f"host range [{m.group(1)}] has a step that is not a number: {step_text!r}") from None
    if step <= 0:
        raise ValueError(f"host range [{m.group(1)}] must have a positive step")
    if beg in string.ascii_letters and end in string.ascii_letters and len(beg) == len(end) == 1:
        i_beg, i_end = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i_beg > i_end:
            raise ValueError(f"host range [{m.group(1)}] must have begin <= end")
        seq = list(string.ascii_letters[i_beg : i_end + 1 : step])
    elif beg.isdigit() and end.isdigit() and beg.isascii() and end.isascii():
        if int(beg) > int(end):
            raise ValueError(f"host range [{m.group(1)}] must have begin <= end")
        if beg[0] == "0" and len(beg) > 1:
            if len(beg) != len(end):
                raise ValueError(f"host range [{m.group(1)}] must have equal-length begin and end when zero-padded")
            seq = [str(i).zfill(len(beg)) for i in range(int(beg), int(end) + 1, step)]
        else:
            seq = [str(i) for i in range(int(beg), int(end) + 1, step)]
    else:
        raise ValueError(f"host range [{m.group(1)}] must be two numbers or two single letters")
    out: list[str] = []
    for item in seq:
        out.extend(_expand_range(head + item + tail))
    return out


def _split_port(token: str) -> tuple[str, int | None]:
    """``web1:2222`` -> ``("web1", 2222)``; ``[::1]:22`` -> ``("::1", 22)``; bare IPv6 addresses keep their colons."""
    m = _IPV6_PORT.match(token)
    if m:
        return m.group(1), int(m.group(2))
    m = _HOST_PORT.match(token)
    if m:
        if not m.group(2).isdigit() or not m.group(2).isascii():
            raise ValueError(f"host {token!r}: the part after ':' must be a port number")
        return m.group(1), int(m.group(2))
    return token, None


def _expand_host(token: str) -> tuple[list[str], int | None]:
    if token.startswith("[") and not _IPV6_PORT.match(token):
        raise ValueError(f"{token!r} is not a host name (an unterminated or malformed [section] header?)")
    name, port = _split_port(token)
    if not name:
        raise ValueError(f"empty host name in {token!r}")
    names = _expand_range(name)
    for n in names:
        if n.strip() == "---":
            raise ValueError(f"invalid host name {token!r}: '---' is normally a sign this is a YAML file")
    return names, port


@functools.cache
def _yaml_loader() -> type:
    """yaml.SafeLoader that also reads Ansible's ``!unsafe`` tag (a value never to be templated) as the plain value:
    fanout templates nothing, and without it such an inventory would not load at all."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_constructor("!unsafe", unsafe)
    return Loader


def _yaml_load(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader: plain data, no Python objects


def _is_yaml_inventory(data: str) -> bool:
    """Whether ansible-core's yaml plugin, which tries a file without an extension before the ini plugin, takes it."""
    import yaml

    try:
        doc = _yaml_load(data)
    except yaml.YAMLError:
        return False
    return isinstance(doc, dict) and bool(doc) and not doc.get("plugin")


def _dir_vars_files(d: Path) -> list[Path]:
    """A ``group_vars/<name>/`` directory's files, sorted, recursively, as ansible-core picks them: no hidden files or
    ``~`` backups, only files without an extension or with a YAML/JSON one, only subdirectories without one."""
    found: list[Path] = []
    for entry in sorted(os.listdir(d)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full, ext = d / entry, os.path.splitext(entry)[1]
        if full.is_dir():
            if not ext:
                found.extend(_dir_vars_files(full))
        elif ext in _VARS_EXTS:
            found.append(full)
    return found


# --------------------------------------------------------------------------------------------------------- inventory


class Inventory:
    """Hosts, groups and variables read from one or more Ansible inventory sources."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self._hosts: dict[str, dict[str, Any]] = {}  # host name -> inline host vars, in order of first appearance
        self._host_groups: dict[str, list[str]] = {}  # host name -> direct groups
        self._file_group_vars: dict[str, dict[str, Any]] = {}  # group_vars/ files
        self._file_host_vars: dict[str, dict[str, Any]] = {}  # host_vars/ files
        self._vars_dirs: list[Path] = []
        self._add_group("all")
        self._add_group("ungrouped")
        self._add_child("all", "ungrouped")

    # ---------------------------------------------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | os.PathLike) -> Inventory:
        """Read an inventory file, a directory of them, or a comma-separated host list such as ``"h1,h2,"``."""
        inv = cls()
        p = Path(path)
        if not p.exists():
            text = os.fspath(path)
            if "," in text:
                inv._parse_host_list(text)
                inv._reconcile()
                return inv
            raise InventoryError("no such inventory file or directory", path)
        if p.is_dir():
            inv._load_dir(p)
            inv._vars_dirs.append(p)
        else:
            inv._load_file(p)
            inv._vars_dirs.append(p.parent)
        inv._reconcile()
        for d in inv._vars_dirs:
            inv._load_vars_dirs(d)
        return inv

    def _load_dir(self, d: Path) -> None:
        for entry in sorted(os.listdir(d)):
            if entry.startswith(".") or entry in _IGNORED_NAMES or entry.endswith(_IGNORED_EXTS):
                continue
            full = d / entry
            if full.is_dir():
                self._load_dir(full)
            else:
                self._load_file(full)

    def _load_file(self, p: Path) -> None:
        try:
            data = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InventoryError(f"cannot read inventory: {e}", p) from None
        if p.suffix.lower() in _YAML_EXTS or (not p.suffix and _is_yaml_inventory(data)):
            self._parse_yaml(data, p)
        else:
            self._parse_ini(data, p)

    def _parse_host_list(self, text: str) -> None:
        for raw in text.split(","):
            raw = raw.strip()
            if not raw:
                continue
            try:
                name, port = _split_port(raw)
            except ValueError as e:
                raise InventoryError(str(e), "<host list>") from None
            self._add_host(name, "ungrouped", port)

    # ------------------------------------------------------------------------------------------------------- INI

    def _parse_ini(self, data: str, path: Path) -> None:
        pending: dict[str, dict[str, Any]] = {}
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
                if groupname not in self.groups:
                    if state == "vars" and groupname not in pending:
                        pending[groupname] = {"line": lineno, "state": "vars", "parents": []}
                    self._add_group(groupname)
                if groupname in pending and state != "vars":
                    if pending[groupname]["state"] == "children":
                        self._add_pending_children(groupname, pending, path)
                    else:
                        del pending[groupname]
                continue
            if line.startswith("[") and line.endswith("]"):
                raise InventoryError(
                    f"invalid section header {line!r}: no spaces or other invalid characters allowed", path, lineno
                )
            try:
                if state == "hosts":
                    self._ini_host_line(line, groupname)
                elif state == "vars":
                    if "=" not in line:
                        raise ValueError(f"expected key=value, got {line!r}")
                    key, value = (part.strip() for part in line.split("=", 1))
                    if not key:
                        raise ValueError(f"expected key=value, got {line!r} (empty key)")
                    self._set_group_var(groupname, key, _parse_value(value))
                else:  # children
                    gm = _GROUP_NAME.match(line)
                    if gm is None:
                        raise ValueError(f"expected a group name in [{groupname}:children], got {line!r}")
                    child = gm.group(1)
                    if child in self.groups:
                        self._add_child(groupname, child)
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

    def _add_pending_children(self, group: str, pending: dict[str, dict[str, Any]], path: Path) -> None:
        decl = pending.pop(group)
        for parent in decl["parents"]:
            try:
                self._add_child(parent, group)
            except ValueError as e:
                raise InventoryError(str(e), path, decl["line"]) from None
            if parent in pending and pending[parent]["state"] == "children":
                self._add_pending_children(parent, pending, path)

    def _ini_host_line(self, line: str, group: str) -> None:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as e:
            raise ValueError(f"cannot parse host definition {line!r}: {e}") from None
        if not tokens:
            return
        names, port = _expand_host(tokens[0])
        if tokens[0].endswith(":"):
            raise ValueError(f"invalid host {tokens[0]!r}: a trailing ':' must be followed by a port")
        variables: dict[str, Any] = {}
        for tok in tokens[1:]:
            if "=" not in tok or tok.startswith("="):
                raise ValueError(f"expected key=value host variable assignment, got {tok!r}")
            key, value = tok.split("=", 1)
            variables[key] = _parse_value(value)
        for name in names:
            self._add_host(name, group, port)
            for key, value in variables.items():
                self._hosts[name][key] = value

    # ------------------------------------------------------------------------------------------------------ YAML

    def _parse_yaml(self, data: str, path: Path) -> None:
        import yaml

        try:
            doc = _yaml_load(data)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(e, "problem", None) or str(e)
            raise InventoryError(f"invalid YAML: {problem}", path, line) from None
        if not doc:
            raise InventoryError("empty YAML inventory", path)
        if not isinstance(doc, dict):
            raise InventoryError(f"YAML inventory must be a mapping of groups, got {type(doc).__name__}", path)
        for name, body in doc.items():
            self._yaml_group(str(name), body, path)

    def _yaml_group(self, name: str, body: Any, path: Path) -> str:
        if not isinstance(body, (dict, type(None))):
            msg = f"group {name!r} must be a mapping (hosts/children/vars), got {type(body).__name__}"
            raise InventoryError(msg, path)
        self._add_group(name)
        if body is None:
            return name
        for key, section in body.items():
            if key not in ("hosts", "children", "vars"):
                raise InventoryError(f"unexpected key {key!r} in group {name!r}: only hosts, children and vars", path)
            if isinstance(section, str):
                section = {section: None}
            if section is None:
                continue
            if not isinstance(section, dict):
                raise InventoryError(f"{key!r} of group {name!r} must be a mapping, got {type(section).__name__}", path)
            if key == "vars":
                for var, value in section.items():
                    try:
                        self._set_group_var(name, str(var), value)
                    except ValueError as e:
                        raise InventoryError(str(e), path) from None
            elif key == "children":
                for child, child_body in section.items():
                    child = self._yaml_group(str(child), child_body, path)
                    try:
                        self._add_child(name, child)
                    except ValueError as e:
                        raise InventoryError(str(e), path) from None
            else:
                for pattern, host_vars in section.items():
                    if not isinstance(host_vars, (dict, type(None))):
                        raise InventoryError(
                            f"variables of host {pattern!r} in group {name!r} must be a mapping,"
                            f" got {type(host_vars).__name__}",
                            path,
                        )
                    try:
                        names, port = _expand_host(str(pattern))
                    except ValueError as e:
                        raise InventoryError(str(e), path) from None
                    for host in names:
                        self._add_host(host, name, port)
                        for var, value in (host_vars or {}).items():
                            self._hosts[host][str(var)] = value
        return name

    # ------------------------------------------------------------------------------------------ group_vars/host_vars

    def _load_vars_dirs(self, base: Path) -> None:
        for kind, names, store in (
            ("group_vars", list(self.groups), self._file_group_vars),
            ("host_vars", list(self._hosts), self._file_host_vars),
        ):
            d = base / kind
            if not d.is_dir():
                continue
            for name in names:
                for f in self._vars_files(d, name):
                    data = self._read_vars_file(f)
                    merged = store.setdefault(name, {})
                    merged.update(data)

    @staticmethod
    def _vars_files(d: Path, name: str) -> list[Path]:
        """As ansible-core: only the first of ``name``, ``name.yml``, ``name.yaml``, ``name.json`` that exists."""
        for ext in _VARS_EXTS:
            path = d / (name + ext)
            if path.is_dir():
                return _dir_vars_files(path)
            if path.exists():
                return [path]
        return []

    @staticmethod
    def _read_vars_file(f: Path) -> dict[str, Any]:
        import yaml

        try:
            data = _yaml_load(f.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            raise InventoryError(f"invalid YAML: {problem}", f, mark.line + 1 if mark is not None else None) from None
        except (OSError, UnicodeDecodeError) as e:
            raise InventoryError(f"cannot read variables: {e}", f) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise InventoryError(f"variables file must be a mapping, got {type(data).__name__}", f, 1)
        return {str(k): v for k, v in data.items()}

    # -------------------------------------------------------------------------------------------- building blocks

    def _add_group(self, name: str) -> None:
        if name not in self.groups:
            self.groups[name] = Group(name)

    def _add_host(self, name: str, group: str, port: int | None = None) -> None:
        """Add ``name`` to ``group``; as in ansible-core, a ``host:port`` sets the port only where the host first
        appears (later ``host:port`` lines are ignored: set ``ansible_port`` to change it)."""
        if name not in self._hosts:
            self._hosts[name] = {} if port is None else {"ansible_port": port}
            self._host_groups[name] = []
        self._add_group(group)
        if name not in self.groups[group].hosts:
            self.groups[group].hosts.append(name)
            self._host_groups[name].append(group)

    def _set_group_var(self, group: str, key: str, value: Any) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                msg = f"ansible_group_priority of group {group!r} must be an integer, got {value!r}"
                raise ValueError(msg) from None
        else:
            # ansible-core's default hash_behaviour=replace: a mapping set again replaces, never merges
            self.groups[group].vars[key] = value

    def _add_child(self, parent: str, child: str) -> None:
        if parent == child:
            raise ValueError(f"cannot add group {child!r} to itself")
        if parent in self._descendants(child):
            raise ValueError(f"adding group {child!r} as a child of {parent!r} creates a dependency loop")
        self._add_group(parent)
        self._add_group(child)
        p, c = self.groups[parent], self.groups[child]
        if child not in p.children:
            p.children.append(child)
            c.parents.append(parent)
            self._deepen(child, p.depth + 1)

    def _deepen(self, name: str, depth: int) -> None:
        g = self.groups[name]
        if depth > g.depth:
            g.depth = depth
            for kid in g.children:
                self._deepen(kid, depth + 1)

    def _descendants(self, name: str) -> list[str]:
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
        todo = list(self._host_groups.get(name, []))
        while todo:
            g = todo.pop()
            if g not in out:
                out.add(g)
                todo.extend(self.groups[g].parents)
        return out

    def _reconcile(self) -> None:
        """Like ansible-core: parentless groups go under ``all``; hosts in no group but all go to ``ungrouped``."""
        for name, g in list(self.groups.items()):
            if name != "all" and not g.parents:
                self._add_child("all", name)
        ungrouped = self.groups["ungrouped"]
        for host, groups in self._host_groups.items():
            if set(groups) - {"all", "ungrouped"}:
                if host in ungrouped.hosts:
                    ungrouped.hosts.remove(host)
                    groups.remove("ungrouped")
            elif host not in ungrouped.hosts:
                ungrouped.hosts.append(host)
                groups.append("ungrouped")

    # ------------------------------------------------------------------------------------------------- queries

    def group_hosts(self, name: str) -> list[str]:
        """All hosts of group ``name`` and its descendants, in Ansible's order."""
        out: list[str] = []
        seen: set[str] = set()
        for g in self._descendants(name):
            for h in self.groups[g].hosts:
                if h not in seen:
                    seen.add(h)
                    out.append(h)
        return out

    def host_groups(self, name: str) -> list[str]:
        """Every group ``name`` belongs to (directly or through child groups), in variable-precedence order."""
        if name not in self._hosts:
            raise KeyError(name)
        groups = self._ancestors(name) | {"all"}
        return sorted(groups, key=lambda g: (self.groups[g].depth, self.groups[g].priority, g))

    def host_vars(self, name: str) -> dict[str, Any]:
        """The host's variables, merged with ansible-core's default precedence (later wins, whole top-level keys)."""
        groups = [g for g in self.host_groups(name) if g != "all"]
        merged: dict[str, Any] = dict(self.groups["all"].vars)
        for g in groups:
            merged.update(self.groups[g].vars)
        merged.update(self._file_group_vars.get("all", {}))
        for g in groups:
            merged.update(self._file_group_vars.get(g, {}))
        merged.update(self._hosts[name])
        merged.update(self._file_host_vars.get(name, {}))
        return merged

    def connect_options(self, name: str) -> dict[str, Any]:
        """Keyword arguments for :func:`fanout.connect` from the host's connection variables (``host`` included)."""
        hv = self.host_vars(name)

        def pick(*keys: str) -> Any:
            for k in keys:
                if hv.get(k) is not None:
                    return hv[k]
            return None

        opts: dict[str, Any] = {"host": str(pick("fanout_host", "ansible_host", "ansible_ssh_host") or name)}

        def number(option: str, kind: type, what: str, *keys: str) -> None:
            value = pick(*keys)
            if value is not None:
                try:
                    opts[option] = kind(value)
                except (TypeError, ValueError):
                    raise InventoryError(f"host {name!r}: {what}, got {value!r}") from None

        number("port", int, "port must be an integer", "fanout_port", "ansible_port", "ansible_ssh_port")
        for key, names in (
            ("user", ("fanout_user", "ansible_user", "ansible_ssh_user")),
            ("identity_file", ("fanout_identity_file", "ansible_ssh_private_key_file", "ansible_private_key_file")),
            ("password", ("fanout_password", "ansible_password", "ansible_ssh_pass", "ansible_ssh_password")),
            ("known_hosts", ("fanout_known_hosts",)),
            ("host_key_policy", ("fanout_host_key_policy",)),
            ("jump_identity_file", ("fanout_jump_identity_file",)),
        ):
            value = pick(*names)
            if value is not None:
                opts[key] = str(value)
        python = pick("fanout_python", "ansible_python_interpreter")
        # Ansible's "auto", "auto_silent", "auto_legacy"... mean interpreter discovery: leave fanout's default.
        if python is not None and not (hv.get("fanout_python") is None and str(python).startswith("auto")):
            opts["python"] = str(python)
        number(
            "connect_timeout",
            float,
            "timeout must be a number of seconds",
            "fanout_timeout",
            "ansible_timeout",
            "ansible_ssh_timeout",
        )
        jump = pick("fanout_jump") or _proxy_jump(
            " ".join(str(hv.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
        )
        if jump:
            opts["jump"] = str(jump)
        connection = str(pick("fanout_connection", "ansible_connection") or "ssh")
        if connection != "ssh" and connection not in ("smart", "paramiko", "paramiko_ssh"):
            opts["connection"] = connection
        return opts

    def fleet_hosts(self, pattern: str = "all") -> dict[str, dict[str, Any]]:
        """Connection options of the hosts ``pattern`` selects; an absent ``localhost`` is implicit, as in Ansible."""
        names = self.hosts(pattern)
        if not names and pattern.strip() in IMPLICIT_LOCALHOSTS:
            return {pattern.strip(): {"connection": "local"}}
        return {name: self.connect_options(name) for name in names}

    # ------------------------------------------------------------------------------------------------- patterns

    def hosts(self, pattern: str = "all") -> list[str]:
        """Host names matching an Ansible host pattern, in Ansible's order; an empty list if nothing matches."""
        terms = _split_pattern(pattern)
        regular = [t for t in terms if t[0] not in "&!"]
        intersect = [t for t in terms if t[0] == "&"]
        exclude = [t for t in terms if t[0] == "!"]
        result: list[str] = []
        for term in (regular or ["all"]) + intersect + exclude:
            if term in self._hosts:
                result.append(term)
                continue
            matched = self._match_term(term[1:] if term[0] in "&!" else term)
            if term[0] == "!":
                drop = set(matched)
                result = [h for h in result if h not in drop]
            elif term[0] == "&":
                keep = set(matched)
                result = [h for h in result if h in keep]
            else:
                have = set(result)
                result.extend(h for h in matched if h not in have)
        return list(dict.fromkeys(result))

    def _match_term(self, term: str) -> list[str]:
        if not term:
            return []
        expr, sub = _split_subscript(term)
        groups = _match_list(self.groups, expr)
        found: list[str] = []
        for g in groups:
            found.extend(self.group_hosts(g))
        if not groups or expr[0] == "~" or any(c in expr for c in ".?*["):
            found.extend(_match_list(self._hosts, expr))
        if sub is None:
            return found
        start, end = sub
        if not found:  # as in ansible-core, a subscript of nothing is nothing (not an error)
            return found
        if end:  # as in ansible-core, an end of 0 makes [x:0] the single index [x]
            if end == -1:
                end = len(found) - 1
            return found[start : end + 1]
        try:
            return [found[start]]
        except IndexError:
            raise InventoryError(f"no hosts matched the subscripted pattern {term!r}") from None


def _split_pattern(pattern: str) -> list[str]:
    if not isinstance(pattern, str):
        raise InventoryError(f"host pattern must be a string, got {type(pattern).__name__}")
    if "," in pattern:
        parts = pattern.split(",")
    elif re.fullmatch(r"[^\s:\[\]]+:\d+", pattern.strip()) or _is_ipv6(pattern.strip()):
        parts = [pattern]  # host:port or an IPv6 address, as ansible-core keeps them whole
    else:
        parts = _PATTERN_TERMS.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _split_subscript(term: str) -> tuple[str, tuple[int, int | None] | None]:
    if term[0] == "~":
        return term, None
    m = _PATTERN_WITH_SUBSCRIPT.match(term)
    if m is None:
        return term, None
    expr, idx, start, _sep, end = m.groups()
    if idx is not None:
        return expr, (int(idx), None)
    return expr, (int(start), int(end) if end else -1)


def _match_list(items: Mapping[str, Any], pattern: str) -> list[str]:
    try:
        rx = re.compile(pattern[1:]) if pattern[0] == "~" else re.compile(fnmatch.translate(pattern))
    except (re.error, RecursionError, OverflowError) as e:
        raise InventoryError(f"invalid host pattern {pattern!r}: {e}") from None
    return [item for item in items if rx.match(item)]
