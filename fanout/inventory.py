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

What an inventory may stand for is bounded (``MAX_*`` below), and checked before anything is built: a host range
over a million hosts or a YAML alias bomb is an :class:`InventoryError` naming the file and line, never gigabytes.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import ipaddress
import itertools
import math
import os
import re
import shlex
import string
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fanout import _become as _become_plan
from fanout._ssh_config import parse_ssh_args
from fanout._timeouts import check_timeout
from fanout.errors import FanoutError

__all__ = ["BecomeOptions", "Group", "Inventory", "InventoryError"]


IMPLICIT_LOCALHOSTS = ("localhost", "127.0.0.1", "::1")

# Limits, checked before anything is built: a typo (web[0:99999999]) or a YAML alias bomb is an error, not 7 GB.
MAX_HOSTS = 1_000_000  # hosts in one inventory, and names one host range (web[000000:999999]) may expand to
MAX_HOST_ENTRIES = 10 * MAX_HOSTS  # host names listed in all, ranges expanded: a host in three groups counts three
MAX_RANGE_CHARS = 64 * MAX_HOSTS  # characters of the names one host range may expand to
MAX_YAML_ALIAS_NODES = 1_000_000  # nodes YAML aliases may add to an inventory's files, each alias counted in full
MAX_FILE_BYTES = 64 * 1024 * 1024  # one inventory or variables file (or what a device such as /dev/zero gives)
_SSH_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")  # ssh command-line options, in ssh's order
_HOST_KEY_CHECKING = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")
# Ansible ssh-connection variables fanout does not act on, and why: each is a visible warning, never a silent no-op.
UNSUPPORTED_CONNECTION_VARS = {
    "ansible_ssh_executable": "fanout speaks SSH itself (paramiko); it runs no ssh binary",
    "ansible_ssh_transfer_method": "fanout moves files over its own channel (Fleet.put/get)",
    "ansible_scp_extra_args": "fanout runs no scp",
    "ansible_sftp_extra_args": "fanout runs no sftp",
    "ansible_scp_if_ssh": "fanout runs no scp",
    "ansible_sftp_batch_mode": "fanout runs no sftp",
    "ansible_ssh_retries": "fanout does not retry a failed connection (it retries only an sshd shedding load)",
    "ansible_ssh_use_tty": "fanout's channel has no tty; become asks for one where it needs it",
    "ansible_ssh_password_mechanism": "fanout sends the password itself; it runs neither sshpass nor SSH_ASKPASS",
}
_warned_connection_vars: set[str] = set()


def _host_key_checking(host: str, variables: dict[str, Any]) -> bool | None:
    """``ansible_host_key_checking`` (or ANSIBLE_HOST_KEY_CHECKING), read as ansible-core reads a boolean; None when
    neither is set (then ssh_config's StrictHostKeyChecking decides)."""
    for key in _HOST_KEY_CHECKING:
        if variables.get(key) is not None:
            return _ansible_bool(host, key, variables[key])
    if os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "") != "":
        return _ansible_bool(host, "ANSIBLE_HOST_KEY_CHECKING", os.environ["ANSIBLE_HOST_KEY_CHECKING"])
    return None


def _warn_unsupported_connection_vars(host: str, variables: dict[str, Any]) -> None:
    for key, why in UNSUPPORTED_CONNECTION_VARS.items():
        if variables.get(key) is not None and key not in _warned_connection_vars:
            _warned_connection_vars.add(key)
            warnings.warn(f"host {host!r}: {key} is ignored: {why}", UserWarning, stacklevel=4)


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


def _range_items(spec: str) -> Sequence[str]:
    """The names one ``[begin:end(:step)]`` stands for, as a lazy sequence (its length costs nothing to know)."""
    shown = _shorten(spec)
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{shown}] must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError(f"host range [{shown}] must specify an end value")
    try:
        step = int(step_text)
    except ValueError:
        raise ValueError(f"host range [{shown}] has a step that is not a number: {_shorten(step_text)!r}") from None
    if step <= 0:
        raise ValueError(f"host range [{shown}] must have a positive step")
    if beg in string.ascii_letters and end in string.ascii_letters and len(beg) == len(end) == 1:
        i_beg, i_end = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i_beg > i_end:
            raise ValueError(f"host range [{shown}] must have begin <= end")
        return string.ascii_letters[i_beg : i_end + 1 : step]
    if beg.isdigit() and end.isdigit() and beg.isascii() and end.isascii():
        try:
            first, last = int(beg), int(end)
        except ValueError:  # past Python's 4300 digits
            raise ValueError(f"host range [{shown}] has numbers too long") from None
        if first > last:
            raise ValueError(f"host range [{shown}] must have begin <= end")
        width = 0
        if beg[0] == "0" and len(beg) > 1:
            if len(beg) != len(end):
                raise ValueError(f"host range [{shown}] must have equal-length begin and end when zero-padded")
            width = len(beg)
        return _Numbers(range(first, last + 1, step), width)
    raise ValueError(f"host range [{shown}] must be two numbers or two single letters")


@dataclass(frozen=True)
class _Numbers(Sequence):
    """The numbers of a host range as names, zero-padded to ``width``, made one at a time."""

    numbers: range
    width: int

    def __len__(self) -> int:
        return len(self.numbers)  # only ever asked of a range within MAX_HOSTS: _count() is for any range

    @property
    def count(self) -> int:
        """How many numbers, however many that is (``len`` stops at the largest C integer)."""
        r = self.numbers
        return max(0, (r.stop - r.start + r.step - 1) // r.step)

    def __getitem__(self, index):  # type: ignore[override]
        return str(self.numbers[index]).zfill(self.width)


def _count(items: Sequence[str]) -> int:
    return items.count if isinstance(items, _Numbers) else len(items)


def _expand_range(name: str, what: str = "host range") -> list[str]:
    """Every name ``name`` stands for, its ranges (``web[01:20]``, ``db-[a:f]``, several multiply) expanded as
    ansible-core expands them: each ``[begin:end(:step)]`` from the first, up to one with no colon.

    The count and length of the names are known before any is made, and refused (ValueError) past
    :data:`MAX_HOSTS` names or :data:`MAX_RANGE_CHARS` characters: ``web[0:99999999]`` is a typo, not 7 GB.
    """
    literals: list[str] = []
    ranges: list[Sequence[str]] = []
    pos = 0
    while (m := _RANGE.search(name, pos)) is not None and ":" in m.group(1):
        literals.append(name[pos : m.start()])
        ranges.append(_range_items(m.group(1)))
        pos = m.end()
    if not ranges:
        return [name]
    literals.append(name[pos:])
    count = math.prod(_count(items) for items in ranges)
    if count > MAX_HOSTS:
        raise ValueError(f"{what} {_shorten(name)!r} expands to {count:,} hosts: the limit is {MAX_HOSTS:,}")
    longest = sum(map(len, literals)) + sum(max(len(items[0]), len(items[-1])) for items in ranges)
    if count * longest > MAX_RANGE_CHARS:
        raise ValueError(
            f"{what} {_shorten(name)!r} expands to {count:,} names of up to {longest:,} characters:"
            f" the limit is {MAX_RANGE_CHARS:,} characters"
        )
    out: list[str] = []
    for combination in itertools.product(*ranges):
        parts = [literals[0]]
        for item, literal in zip(combination, literals[1:], strict=True):
            parts += (item, literal)
        out.append("".join(parts))
    return out


def _shorten(text: str, keep: int = 80) -> str:
    return text if len(text) <= keep else text[:keep] + "..."


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


def _yaml_load(text: str, path: Path, allowance: int = MAX_YAML_ALIAS_NODES) -> tuple[Any, int]:
    """The document in ``text`` (a SafeLoader: plain data, no Python objects), and the nodes its aliases add.

    The node graph is composed first (aliases are references there: linear in the text), then measured, and only
    then built: an alias bomb, or aliases adding more than ``allowance`` nodes in all, or an alias inside its own
    anchor, is an :class:`InventoryError` before anything is expanded. Syntax errors raise ``yaml.YAMLError``.
    """
    import yaml

    loader = _yaml_loader()(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise InventoryError("YAML nested too deeply", path, loader.line + 1) from None
        if node is None:
            return None, 0
        added = _alias_nodes(node, path, allowance)
        try:
            return loader.construct_document(node), added
        except (ValueError, OverflowError, RecursionError) as e:  # an integer past 4300 digits, a bad date...
            raise yaml.constructor.ConstructorError(None, None, f"a value cannot be read: {e}", None) from None
    finally:
        loader.dispose()


def _alias_nodes(root: Any, path: Path, allowance: int) -> int:
    """How many nodes the aliases under ``root`` add when expanded (each in full); refused past ``allowance``.

    Linear in the composed graph: each node is measured once and its size remembered, whatever refers to it.
    """
    import yaml

    def children(node: Any) -> list[Any]:
        if isinstance(node, yaml.SequenceNode):
            return node.value
        if isinstance(node, yaml.MappingNode):
            return [part for pair in node.value for part in pair]
        return []

    distinct, seen, todo = 0, set(), [root]
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen.add(id(node))
            distinct += 1
            todo.extend(children(node))
    limit = distinct + allowance
    sizes: dict[int, int] = {}  # expanded size of each node measured, by id (the graph keeps every node alive)
    open_nodes: set[int] = set()  # nodes being measured: the path from the root to where we are
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, measured = stack.pop()
        key = id(node)
        if measured:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in children(node))
            if size > limit:
                raise InventoryError(
                    f"YAML aliases here expand to more than {MAX_YAML_ALIAS_NODES:,} nodes beyond the text"
                    " (an alias bomb?)",
                    path,
                    node.start_mark.line + 1,
                )
            sizes[key] = size
        elif key in open_nodes:
            raise InventoryError("a YAML alias refers to a node that contains it", path, node.start_mark.line + 1)
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children(node))
    return sizes[id(root)] - distinct


def read_bounded(path: str | os.PathLike, limit: int) -> bytes | None:
    """The bytes of ``path``, or None past ``limit`` of them: read a piece at a time, so that neither a device that
    never ends (``/dev/zero``) nor the limit itself is ever allocated."""
    data = bytearray()
    with open(path, "rb") as f:
        while piece := f.read(min(1 << 20, limit + 1 - len(data))):
            data += piece
            if len(data) > limit:
                return None
    return bytes(data)


def _is_yaml_inventory(doc: Any) -> bool:
    """Whether ansible-core's yaml plugin, which tries a file without an extension before the ini plugin, takes it."""
    return isinstance(doc, dict) and bool(doc) and not doc.get("plugin")


def _read_file(path: Path, what: str) -> str:
    """A file's text, refused past :data:`MAX_FILE_BYTES` (read in a bounded way: a device may never end)."""
    try:
        data = read_bounded(path, MAX_FILE_BYTES)
        if data is None:
            raise InventoryError(f"{what} is larger than {MAX_FILE_BYTES:,} bytes", path)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InventoryError(f"cannot read {what}: {e}", path) from None


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
        self._entries = 0  # host names listed so far, ranges expanded
        self._alias_nodes = 0  # nodes the YAML read so far adds through its aliases, each counted in full
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
        import yaml

        data = _read_file(p, "inventory")
        if p.suffix.lower() in _YAML_EXTS:
            self._parse_yaml(data, p)
            return
        if not p.suffix:
            try:
                doc = self._yaml_load(data, p)
            except yaml.YAMLError:
                doc = None  # not YAML: INI, then
            if _is_yaml_inventory(doc):
                self._yaml_document(doc, p)
                return
        self._parse_ini(data, p)

    def _yaml_load(self, data: str, path: Path) -> Any:
        """``_yaml_load`` within what is left of the inventory's allowance of alias-added nodes."""
        doc, added = _yaml_load(data, path, MAX_YAML_ALIAS_NODES - self._alias_nodes)
        self._alias_nodes += added
        return doc

    def _parse_host_list(self, text: str) -> None:
        for raw in text.split(","):
            raw = raw.strip()
            if not raw:
                continue
            try:
                name, port = _split_port(raw)
                self._add_hosts([name], "ungrouped", port)
            except ValueError as e:
                raise InventoryError(str(e), "<host list>") from None

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
        self._add_hosts(names, group, port)
        for name in names:
            for key, value in variables.items():
                self._hosts[name][key] = value

    # ------------------------------------------------------------------------------------------------------ YAML

    def _parse_yaml(self, data: str, path: Path) -> None:
        import yaml

        try:
            doc = self._yaml_load(data, path)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(e, "problem", None) or str(e)
            raise InventoryError(f"invalid YAML: {problem}", path, line) from None
        self._yaml_document(doc, path)

    def _yaml_document(self, doc: Any, path: Path) -> None:
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
                        self._add_hosts(names, name, port)
                    except ValueError as e:
                        raise InventoryError(str(e), path) from None
                    for host in names:
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

    def _read_vars_file(self, f: Path) -> dict[str, Any]:
        import yaml

        text = _read_file(f, "variables")
        try:
            data = self._yaml_load(text, f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            raise InventoryError(f"invalid YAML: {problem}", f, mark.line + 1 if mark is not None else None) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise InventoryError(f"variables file must be a mapping, got {type(data).__name__}", f, 1)
        return {str(k): v for k, v in data.items()}

    # -------------------------------------------------------------------------------------------- building blocks

    def _add_group(self, name: str) -> None:
        if name not in self.groups:
            self.groups[name] = Group(name)

    def _add_hosts(self, names: list[str], group: str, port: int | None = None) -> None:
        """Add each of ``names`` to ``group``, within :data:`MAX_HOST_ENTRIES` and :data:`MAX_HOSTS`."""
        self._entries += len(names)
        if self._entries > MAX_HOST_ENTRIES:
            raise ValueError(f"the inventory lists more than {MAX_HOST_ENTRIES:,} host names (ranges expanded)")
        for name in names:
            self._add_host(name, group, port)

    def _add_host(self, name: str, group: str, port: int | None = None) -> None:
        """Add ``name`` to ``group``; as in ansible-core, a ``host:port`` sets the port only where the host first
        appears (later ``host:port`` lines are ignored: set ``ansible_port`` to change it)."""
        if name not in self._hosts:
            if len(self._hosts) >= MAX_HOSTS:
                raise ValueError(f"the inventory has more than {MAX_HOSTS:,} hosts")
            self._hosts[name] = {} if port is None else {"ansible_port": port}
            self._host_groups[name] = []
        self._add_group(group)
        if group not in self._host_groups[name]:  # the same as name in group.hosts, without a scan of the group
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
        todo = [(name, depth)]  # not recursive: a long chain of child groups must not overflow the stack
        while todo:
            name, depth = todo.pop()
            g = self.groups[name]
            if depth > g.depth:
                g.depth = depth
                todo.extend((kid, depth + 1) for kid in g.children)

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
        moved: set[str] = set()
        for host, groups in self._host_groups.items():
            if set(groups) - {"all", "ungrouped"}:
                if "ungrouped" in groups:
                    moved.add(host)
                    groups.remove("ungrouped")
            elif "ungrouped" not in groups:
                ungrouped.hosts.append(host)
                groups.append("ungrouped")
        if moved:  # one pass over the group, not one per host: an inventory of many hosts stays linear
            ungrouped.hosts[:] = [host for host in ungrouped.hosts if host not in moved]

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
        """Keyword arguments for :func:`fanout.connect` from the host's connection variables (``host`` included);
        with ``become`` (a :class:`~fanout.inventory.BecomeOptions`) when the host sets any become variable,
        which :class:`~fanout.Fleet` takes off before it connects."""
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
        if python is not None:  # Ansible's "auto", "auto_silent"... discover it on the host, as Ansible does
            opts["python"] = str(python)
        number(
            "connect_timeout",
            float,
            "timeout must be a number of seconds",
            "fanout_timeout",
            "ansible_timeout",
            "ansible_ssh_timeout",
        )
        if "connect_timeout" in opts:
            try:
                check_timeout("timeout", opts["connect_timeout"])
            except ValueError as e:
                raise InventoryError(f"host {name!r}: {e}") from None
        jump = pick("fanout_jump")
        if jump:
            opts["jump"] = str(jump)
        for key in _SSH_ARGS:
            if hv.get(key) not in (None, ""):
                try:
                    parse_ssh_args(str(hv[key]))
                except ValueError as exc:
                    raise InventoryError(f"host {name!r}: {key}: {exc}") from None
        ssh_args = " ".join(str(hv[k]) for k in _SSH_ARGS if hv.get(k) not in (None, ""))
        if ssh_args:
            opts["ssh_args"] = ssh_args
        if "host_key_policy" not in opts:
            checking = _host_key_checking(name, hv)
            if checking is False:  # Ansible's host_key_checking=False: any key, nothing written
                opts["host_key_policy"] = "off"
        _warn_unsupported_connection_vars(name, hv)
        connection = str(pick("fanout_connection", "ansible_connection") or "ssh")
        if connection != "ssh" and connection not in ("smart", "paramiko", "paramiko_ssh"):
            opts["connection"] = connection
        opts.update(_module_policy(name, hv))
        become = _become(name, hv)
        if become is not None:
            opts["become"] = become
        return opts

    def become_enabled(self, name: str) -> bool | None:
        """The host's ``fanout_become`` or ``ansible_become``, as a bool; None when neither is set (then the command
        line's ``-b`` decides, as in Ansible). A host not in the inventory (the implicit ``localhost``) takes the
        ``all`` group's."""
        variables = self.host_vars(name) if name in self._hosts else self._all_vars()
        return _become_enabled(name, variables)

    def _all_vars(self) -> dict[str, Any]:
        """The variables every host has: the ``all`` group's, and ``group_vars/all``."""
        return {**self.groups["all"].vars, **self._file_group_vars.get("all", {})}

    def fleet_hosts(self, pattern: str = "all") -> dict[str, dict[str, Any]]:
        """Connection options of the hosts ``pattern`` selects; an absent ``localhost`` is implicit, as in Ansible.

        The implicit ``localhost`` takes only the module policy (``fanout_allow_modules``, ``fanout_deny_modules``)
        and the become variables of the ``all`` group: as in Ansible it is in no group, but a policy set for every
        host must hold there too, and ansible-core runs it through the ``all`` group's ``ansible_become``.
        """
        names = self.hosts(pattern)
        if not names and pattern.strip() in IMPLICIT_LOCALHOSTS:
            name, every_host = pattern.strip(), self._all_vars()
            options: dict[str, Any] = {"connection": "local", **_module_policy(name, every_host)}
            become = _become(name, every_host)  # as in ansible-core: the all group's ansible_become holds there too
            if become is not None:
                options["become"] = become
            return {name: options}
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


_MODULE_POLICY = (("allow_modules", "fanout_allow_modules"), ("deny_modules", "fanout_deny_modules"))


def _module_policy(host: str, variables: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``allow_modules`` and ``deny_modules`` for :func:`fanout.connect`, from the ``fanout_allow_modules`` and
    ``fanout_deny_modules`` variables: module name prefixes, as a list or a comma-separated string."""
    options: dict[str, tuple[str, ...]] = {}
    for option, variable in _MODULE_POLICY:
        value = variables.get(variable)
        if value is None:
            continue
        if isinstance(value, str):
            items: list[Any] = [item.strip() for item in value.split(",") if item.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise InventoryError(
                f"host {host!r}: {variable} must be a list of module names or a comma-separated string,"
                f" got {type(value).__name__}"
            )
        for item in items:
            if not isinstance(item, str) or not all(part.isidentifier() for part in item.split(".")):
                raise InventoryError(
                    f"host {host!r}: {variable} holds {_shorten(repr(item))}, which is not a dotted module name"
                    " such as 'mypackage' or 'mypackage.tasks'"
                )
        options[option] = tuple(dict.fromkeys(items))
    return options


# ------------------------------------------------------------------------------------------------------------ become

# ansible-core's forms of a boolean (module_utils.parsing.convert_bool); strings are compared lower-cased and stripped.
_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f"})
_BECOME_SWITCH = ("fanout_become", "ansible_become")  # the first one set wins, as fanout_* does elsewhere
_BECOME_METHOD = ("fanout_become_method", "ansible_become_method")
_BECOME_OPTIONS = ("user", "password", "exe", "flags")
# su and doas in another language: fanout takes any prompt line ending in a colon for theirs, so these are met.
_BECOME_PROMPTS = ("ansible_su_prompt_l10n", "ansible_doas_prompt_l10n")
# Become variables refused, each with the reason (docs/design.rst, "Nothing is silently ignored": a switch read by
# nobody runs as the wrong user).
_BECOME_REFUSED = {
    "ansible_sudo": "Ansible no longer reads it either: use ansible_become=true (sudo is the default method)",
    "ansible_su": "Ansible no longer reads it either: use ansible_become=true and ansible_become_method=su",
    "ansible_sudo_chdir": "fanout does not change directory before sudo: leave it out, or cd in the command",
}
_BECOME_PREFIXES = ("ansible_become", "fanout_become", "ansible_sudo_", "ansible_su_", "ansible_doas_")
_TEMPLATE_MARKS = ("{{", "{%")


def _become_variables(option: str, method: str) -> tuple[str, ...]:
    """The variables of one become option, lowest precedence first, as ansible-core's become plugins read them: the
    last one set wins (its config manager's rule: ``ansible_become_pass`` over ``ansible_become_password``), and
    the method's own legacy name (``ansible_sudo_pass``, ``ansible_su_user``...) counts for that method only.
    ``fanout_become_*`` is above them all."""
    if option == "password":
        return ("ansible_become_password", "ansible_become_pass", f"ansible_{method}_pass", "fanout_become_password")
    return (f"ansible_become_{option}", f"ansible_{method}_{option}", f"fanout_become_{option}")


_KNOWN_BECOME = frozenset(
    {*_BECOME_SWITCH, *_BECOME_METHOD, *_BECOME_PROMPTS}
    | {
        name
        for method in _become_plan.METHODS
        for option in _BECOME_OPTIONS
        for name in _become_variables(option, method)
    }
)


class BecomeOptions(dict):
    """A host's become options, as :class:`~fanout.Fleet` reads them (``enabled``, and any of ``user``, ``method``,
    ``password``, ``exe``, ``flags``): a dict whose ``repr`` never shows the password."""

    def __repr__(self) -> str:
        shown = (f"{key!r}: {'<hidden>' if key == 'password' else repr(value)}" for key, value in self.items())
        return "{" + ", ".join(shown) + "}"

    def copy(self) -> BecomeOptions:
        return type(self)(self)


def _first_set(variables: Mapping[str, Any], names: Sequence[str]) -> tuple[str, Any] | None:
    for name in names:
        if variables.get(name) is not None:
            return name, variables[name]
    return None


def _become_enabled(host: str, variables: Mapping[str, Any]) -> bool | None:
    """``fanout_become`` or ``ansible_become`` as a bool, read as ansible-core reads a boolean; None when unset."""
    found = _first_set(variables, _BECOME_SWITCH)
    if found is None:
        return None
    return _ansible_bool(host, *found)


def _ansible_bool(host: str, name: str, value: Any) -> bool:
    """A variable as ansible-core reads a boolean; an InventoryError naming the host and variable otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InventoryError(
        f"host {host!r}: {name} must be a boolean (true or false, yes or no, on or off, 1 or 0),"
        f" got {_shorten(repr(value))}"
    )


def _become(host: str, variables: Mapping[str, Any]) -> BecomeOptions | None:
    """The host's become options from its variables, checked (None when it sets none). What fanout cannot do is an
    :class:`InventoryError` naming the host and the variable, and never holding the password."""
    for name, value in variables.items():
        if value is None or not isinstance(name, str):
            continue
        if name in _BECOME_REFUSED:
            raise InventoryError(f"host {host!r}: {name} is not supported: {_BECOME_REFUSED[name]}")
        if name.startswith(_BECOME_PREFIXES) and name not in _KNOWN_BECOME:
            raise InventoryError(
                f"host {host!r}: fanout does not know the become variable {_shorten(name)!r} (a typo?): it reads"
                " ansible_become, ansible_become_user, ansible_become_method, ansible_become_password (or _pass),"
                " ansible_become_exe and ansible_become_flags, their fanout_become* forms, and the method's own"
                " ansible_sudo_*, ansible_su_* or ansible_doas_* user, pass, exe and flags"
            )
    enabled = _become_enabled(host, variables)
    options = BecomeOptions()
    found = _first_set(variables, _BECOME_METHOD)
    if found is not None:
        name, method = found
        if method not in _become_plan.METHODS:
            raise InventoryError(
                f"host {host!r}: {name} is {_shorten(repr(method))}, a become method fanout does not have:"
                f" it becomes another user with {', '.join(_become_plan.METHODS)}"
            )
        options["method"] = method
    for option in _BECOME_OPTIONS:
        found = _first_set(variables, _become_variables(option, options.get("method", "sudo"))[::-1])
        if found is not None:
            options[option] = _become_value(host, option, *found)
    if enabled is None and not options:
        return None
    try:  # what sudo, su or doas would refuse (a user name with a space...) is refused now, naming the host
        _become_plan.plan(
            options.get("method", "sudo"),
            options.get("user", "root"),
            **{key: options[key] for key in ("password", "exe", "flags") if key in options},
        )
    except (ValueError, TypeError) as exc:  # the plan's messages never hold the password
        raise InventoryError(f"host {host!r}: {exc}") from None
    return BecomeOptions(enabled=bool(enabled), **options)


def _become_value(host: str, option: str, name: str, value: Any) -> Any:
    """One become variable's value as fanout passes it on: a string (flags: or a list of strings)."""
    secret = option == "password"
    if isinstance(value, str) and name.startswith("ansible_") and any(mark in value for mark in _TEMPLATE_MARKS):
        raise InventoryError(
            f"host {host!r}: {name} is a Jinja2 template, which fanout does not evaluate"
            f" (sent as it is, it would {'be typed as the password' if secret else 'name nothing real'}):"
            f" set the value itself, or fanout_become_{option} to send these characters as they are"
        )
    if option == "flags" and isinstance(value, (list, tuple)) and all(isinstance(flag, str) for flag in value):
        return tuple(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # INI reads 1234 as a number
        return str(value)
    shown = type(value).__name__ if secret else _shorten(repr(value))
    kind = "a string or a list of strings" if option == "flags" else "a string"
    raise InventoryError(f"host {host!r}: {name} must be {kind}, got {shown}")


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
    try:
        if idx is not None:
            return expr, (int(idx), None)
        return expr, (int(start), int(end) if end else -1)
    except ValueError:  # past Python's 4300 digits
        raise InventoryError(f"invalid subscript in host pattern {_shorten(term)!r}: a number is too long") from None


def _match_list(items: Mapping[str, Any], pattern: str) -> list[str]:
    try:
        rx = re.compile(pattern[1:]) if pattern[0] == "~" else re.compile(fnmatch.translate(pattern))
    except (re.error, RecursionError, OverflowError) as e:
        raise InventoryError(f"invalid host pattern {pattern!r}: {e}") from None
    return [item for item in items if rx.match(item)]
