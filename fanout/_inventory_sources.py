"""Where an inventory comes from: a file (INI or YAML, told apart as ansible-core tells them), a directory of
them, an ``h1,h2,`` host list, and the ``group_vars/`` and ``host_vars/`` beside them.

Every file is read in a bounded way (:data:`MAX_FILE_BYTES`): a device such as ``/dev/zero`` never ends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fanout import _inventory_yaml
from fanout._inventory_ini import add_ini
from fanout._inventory_model import InventoryError, InventoryModel
from fanout._inventory_values import split_port

MAX_FILE_BYTES = 64 * 1024 * 1024  # one inventory or variables file (or what a device such as /dev/zero gives)

# Extensions a directory inventory skips (ansible-core's INVENTORY_IGNORE_EXTS default since 2.19, which reads
# ".ini" files: ansible/ansible#84001), and always-skipped names.
_IGNORED_EXTS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
_IGNORED_NAMES = ("group_vars", "host_vars", "vars_plugins")
_YAML_EXTS = (".yml", ".yaml", ".json")
_VARS_EXTS = ("", ".yml", ".yaml", ".json")


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


def _read_file(path: Path, what: str) -> str:
    """A file's text, refused past :data:`MAX_FILE_BYTES` (read in a bounded way: a device may never end)."""
    try:
        data = read_bounded(path, MAX_FILE_BYTES)
        if data is None:
            raise InventoryError(f"{what} is larger than {MAX_FILE_BYTES:,} bytes", path)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InventoryError(f"cannot read {what}: {e}", path) from None


def load(path: str | os.PathLike) -> InventoryModel:
    """The inventory at ``path`` (a file, a directory of them, or a comma-separated host list such as ``"h1,h2,"``),
    reconciled as ansible-core does, with the variables of the ``group_vars/`` and ``host_vars/`` beside it."""
    model, reader = InventoryModel(), _inventory_yaml.YamlReader()
    p = Path(path)
    if not p.exists():
        text = os.fspath(path)
        if "," in text:
            _add_host_list(model, text)
            model.reconcile()
            return model
        raise InventoryError("no such inventory file or directory", path)
    if p.is_dir():
        _load_dir(model, reader, p)
        vars_dir = p
    else:
        _load_file(model, reader, p)
        vars_dir = p.parent
    model.reconcile()
    _load_vars_dirs(model, reader, vars_dir)
    return model


def _add_host_list(model: InventoryModel, text: str) -> None:
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        try:
            name, port = split_port(raw)
            model.add_hosts([name], "ungrouped", port)
        except ValueError as e:
            raise InventoryError(str(e), "<host list>") from None


def _load_dir(model: InventoryModel, reader: _inventory_yaml.YamlReader, d: Path) -> None:
    for entry in sorted(os.listdir(d)):
        if entry.startswith(".") or entry in _IGNORED_NAMES or entry.endswith(_IGNORED_EXTS):
            continue
        full = d / entry
        if full.is_dir():
            _load_dir(model, reader, full)
        else:
            _load_file(model, reader, full)


def _load_file(model: InventoryModel, reader: _inventory_yaml.YamlReader, p: Path) -> None:
    """One inventory file: YAML by its extension; without one, YAML if it reads as a YAML inventory, else INI."""
    import yaml

    data = _read_file(p, "inventory")
    if p.suffix.lower() in _YAML_EXTS:
        _inventory_yaml.add_document(model, reader.load_checked(data, p), p)
        return
    if not p.suffix:
        try:
            doc = reader.load(data, p)
        except yaml.YAMLError:
            doc = None  # not YAML: INI, then
        if _inventory_yaml.is_yaml_inventory(doc):
            _inventory_yaml.add_document(model, doc, p)
            return
    add_ini(model, data, p)


# ----------------------------------------------------------------------------------------- group_vars/host_vars


def _load_vars_dirs(model: InventoryModel, reader: _inventory_yaml.YamlReader, base: Path) -> None:
    """``base/group_vars/<group>`` for each group and ``base/host_vars/<host>`` for each host, into ``model``."""
    for kind, names, store in (
        ("group_vars", list(model.groups), model.file_group_vars),
        ("host_vars", list(model.hosts), model.file_host_vars),
    ):
        d = base / kind
        if not d.is_dir():
            continue
        for name in names:
            for f in _vars_files(d, name):
                store.setdefault(name, {}).update(_read_vars_file(reader, f))


def _vars_files(d: Path, name: str) -> list[Path]:
    """As ansible-core: only the first of ``name``, ``name.yml``, ``name.yaml``, ``name.json`` that exists."""
    for ext in _VARS_EXTS:
        path = d / (name + ext)
        if path.is_dir():
            return _dir_vars_files(path)
        if path.exists():
            return [path]
    return []


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


def _read_vars_file(reader: _inventory_yaml.YamlReader, f: Path) -> dict[str, Any]:
    data = reader.load_checked(_read_file(f, "variables"), f)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError(f"variables file must be a mapping, got {type(data).__name__}", f, 1)
    return {str(k): v for k, v in data.items()}
