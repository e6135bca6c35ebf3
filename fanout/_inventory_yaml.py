"""YAML inventories, and the bounded YAML reading group_vars/host_vars files share with them.

A YAML document is composed, measured, and only then built: an alias bomb (a few hundred bytes standing for a
billion nodes) is an :class:`InventoryError` naming the file and line before anything is expanded.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fanout._inventory_model import InventoryError, InventoryModel
from fanout._inventory_values import expand_host

MAX_YAML_ALIAS_NODES = 1_000_000  # nodes YAML aliases may add to an inventory's files, each alias counted in full


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


def _yaml_load(text: str, path: Path, allowance: int) -> tuple[Any, int]:
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


class YamlReader:
    """Reads the YAML files of one inventory within one allowance of alias-added nodes for them all: a bomb split
    over many files is still a bomb."""

    def __init__(self) -> None:
        self.alias_nodes = 0  # nodes the YAML read so far adds through its aliases, each counted in full

    def load(self, text: str, path: Path) -> Any:
        """The document in ``text``, within what is left of :data:`MAX_YAML_ALIAS_NODES`; syntax errors raise
        ``yaml.YAMLError`` (a file without an extension may be INI instead)."""
        doc, added = _yaml_load(text, path, MAX_YAML_ALIAS_NODES - self.alias_nodes)
        self.alias_nodes += added
        return doc

    def load_checked(self, text: str, path: Path) -> Any:
        """:meth:`load`, with a syntax error an :class:`InventoryError` naming the file and line."""
        import yaml

        try:
            return self.load(text, path)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            line = mark.line + 1 if mark is not None else None
            raise InventoryError(f"invalid YAML: {problem}", path, line) from None


def is_yaml_inventory(doc: Any) -> bool:
    """Whether ansible-core's yaml plugin, which tries a file without an extension before the ini plugin, takes it."""
    return isinstance(doc, dict) and bool(doc) and not doc.get("plugin")


def add_document(model: InventoryModel, doc: Any, path: Path) -> None:
    """Add a YAML inventory's groups (``{group: {hosts:, children:, vars:}}``) to ``model``."""
    if not doc:
        raise InventoryError("empty YAML inventory", path)
    if not isinstance(doc, dict):
        raise InventoryError(f"YAML inventory must be a mapping of groups, got {type(doc).__name__}", path)
    for name, body in doc.items():
        _add_group(model, str(name), body, path)


def _add_group(model: InventoryModel, name: str, body: Any, path: Path) -> str:
    if not isinstance(body, (dict, type(None))):
        msg = f"group {name!r} must be a mapping (hosts/children/vars), got {type(body).__name__}"
        raise InventoryError(msg, path)
    model.add_group(name)
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
                    model.set_group_var(name, str(var), value)
                except ValueError as e:
                    raise InventoryError(str(e), path) from None
        elif key == "children":
            for child, child_body in section.items():
                child = _add_group(model, str(child), child_body, path)
                try:
                    model.add_child(name, child)
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
                    names, port = expand_host(str(pattern))
                    model.add_hosts(names, name, port)
                except ValueError as e:
                    raise InventoryError(str(e), path) from None
                model.set_host_vars(names, {str(var): value for var, value in (host_vars or {}).items()})
    return name
