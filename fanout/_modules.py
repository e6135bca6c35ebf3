"""The master's side of import on demand: find a module's source, decide whether a child may have it.

Whose copy wins (decision 6): for ``fanout``, ``cloudpickle`` and the user's own
modules (anything outside the standard library and site-packages) the master's
copy is authoritative, and those are sent ahead with the modules they import
statically. Third-party modules are sent only when a host lacks them. The
standard library is served only to a child of the same Python minor version,
since a module of one version's stdlib may not run on another's.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import os
import site
import sys
import sysconfig
import threading
from dataclasses import dataclass

from fanout._codec import AST_LOCK

# Third-party packages whose master copy must win, because master and child
# must agree on them (cloudpickle: the by-value pickler and unpickler).
PINNED = frozenset({"fanout", "cloudpickle"})

FANOUT, USER, THIRD_PARTY, STDLIB, UNAVAILABLE = "fanout", "user", "third-party", "stdlib", "unavailable"
AUTHORITATIVE = frozenset({FANOUT, USER})

Record = tuple  # (name, is_pkg, source | None, filename | None, reason | None), as stage 1 reads it


@dataclass(frozen=True)
class ModuleSource:
    """One module as the master can offer it, or why it cannot."""

    name: str
    kind: str
    is_pkg: bool = False
    source: str | None = None
    filename: str | None = None
    reason: str | None = None

    @property
    def root(self) -> str:
        return self.name.partition(".")[0]

    def record(self) -> Record:
        return (self.name, self.is_pkg, self.source, self.filename, self.reason)

    def refused(self, reason: str) -> Record:
        return (self.name, False, None, None, reason)


def _real(path: str) -> str:
    return os.path.realpath(path)


def _site_dirs() -> list[str]:
    dirs = [*list(site.getsitepackages()), site.getusersitepackages()]
    paths = sysconfig.get_paths()
    dirs += [paths["purelib"], paths["platlib"]]
    return sorted({_real(d) for d in dirs if d}, key=len, reverse=True)


_SITE_DIRS = _site_dirs()
_STDLIB_DIRS = sorted({_real(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}, key=len, reverse=True)


def _under(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


def classify(name: str, filename: str | None) -> str:
    """Who owns a module: fanout, the user, a third party, or the standard library."""
    root = name.partition(".")[0]
    if root in PINNED:
        return FANOUT
    if root in sys.stdlib_module_names:
        return STDLIB
    if filename is None:
        return USER
    path = _real(filename)
    if _under(path, _SITE_DIRS):
        return THIRD_PARTY
    if _under(path, _STDLIB_DIRS):
        return STDLIB
    return USER


def find_source(name: str) -> ModuleSource:
    """Look a module up on the master, the way its import system would find it."""
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # the parent package failed to import, a bad name, ...
        return ModuleSource(name, UNAVAILABLE, reason=f"the master cannot find it: {type(exc).__name__}: {exc}")
    if spec is None:
        return ModuleSource(name, UNAVAILABLE, reason="the master does not have it either")
    is_pkg = spec.submodule_search_locations is not None
    if spec.origin in ("built-in", "frozen"):
        return ModuleSource(name, STDLIB, reason=f"it is {spec.origin} in the master's Python, so it cannot be sent")
    if isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        return ModuleSource(
            name,
            classify(name, spec.origin),
            reason=f"it is a C extension ({os.path.basename(spec.origin or '')}); "
            "extension modules cannot be sent, install it on the host",
        )
    if spec.origin is None and is_pkg:  # a namespace package
        return ModuleSource(name, classify(name, None), is_pkg=True, source="", filename=None)
    try:
        source = spec.loader.get_source(name) if hasattr(spec.loader, "get_source") else None
    except Exception as exc:
        return ModuleSource(name, UNAVAILABLE, reason=f"the master cannot read its source: {exc}")
    if source is None:
        return ModuleSource(name, classify(name, spec.origin), reason="the master has no source for it (bytecode only)")
    return ModuleSource(name, classify(name, spec.origin), is_pkg=is_pkg, source=source, filename=spec.origin)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]):
    """Statements that run at import: not inside functions, classes or ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _module_level(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody"):
            yield from _module_level(getattr(node, field, None) or [])
        for handler in getattr(node, "handlers", None) or []:
            yield from _module_level(handler.body)


def static_imports(module: ModuleSource) -> list[str]:
    """Names a module imports when it is executed, resolved (relative imports included)."""
    if not module.source:
        return []
    try:
        with AST_LOCK:
            tree = ast.parse(module.source)
    except SyntaxError:
        return []
    package = module.name if module.is_pkg else module.name.rpartition(".")[0]
    found: list[str] = []
    for node in _module_level(tree.body):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level > len(parts):  # beyond the top-level package: fails on import anyway
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module and base else (node.module or base)
            else:
                base = node.module or ""
            if not base:
                continue
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return found


class ModuleIndex:
    """Process-wide cache of lookups and static-import scans (modules do not change under us)."""

    def __init__(self) -> None:
        self._sources: dict[str, ModuleSource] = {}
        self._imports: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> ModuleSource:
        with self._lock:
            found = self._sources.get(name)
        if found is None:
            found = find_source(name)
            with self._lock:
                self._sources.setdefault(name, found)
        return found

    def imports(self, module: ModuleSource) -> list[str]:
        with self._lock:
            names = self._imports.get(module.name)
        if names is None:
            names = static_imports(module)
            with self._lock:
                self._imports[module.name] = names
        return names


INDEX = ModuleIndex()


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class ModuleSender:
    """What one connection has been sent; each module crosses it at most once."""

    def __init__(self, host: str, index: ModuleIndex = INDEX) -> None:
        self.host = host
        self.index = index
        self.child_python: tuple[int, ...] | None = None
        self.sent: set[str] = set()
        self.roots: set[str] = set()
        self._settled: set[str] = set()  # preloaded names whose closure was already sent or needs nothing
        self._lock = threading.Lock()

    def _closure(self, names: list[str], also_roots: frozenset[str] = frozenset()) -> list[ModuleSource]:
        """Authoritative modules (or under ``also_roots``) among ``names``, their parents and imports, unsent."""
        out: list[ModuleSource] = []
        queue = list(names)
        seen: set[str] = set()
        while queue:
            name = queue.pop(0)
            if name in seen or name in self.sent:
                continue
            seen.add(name)
            module = self.index.get(name)
            if module.source is None or (module.kind not in AUTHORITATIVE and module.root not in also_roots):
                continue
            queue[:0] = [p for p in _parents(name) if p not in seen]
            out.append(module)
            queue += self.index.imports(module)
        return out

    def _take(self, modules: list[ModuleSource]) -> tuple[list[Record], list[str]]:
        new_roots = sorted({m.root for m in modules if m.kind in AUTHORITATIVE} - self.roots)
        self.roots.update(new_roots)
        self.sent.update(m.name for m in modules)
        # Parents first, so a package's __init__ exists before its submodules.
        ordered = sorted(modules, key=lambda m: m.name.count("."))
        return [m.record() for m in ordered], new_roots

    def preload(self, names: list[str]) -> tuple[list[Record], list[str]]:
        """Modules to send ahead of a call that will import ``names``: (records, new roots)."""
        with self._lock:
            if self._settled.issuperset(names):
                return [], []  # the warm path: these were dealt with before
            taken = self._take(self._closure(names))
            self._settled.update(names)
            return taken

    def answer(self, name: str) -> tuple[list[Record], list[str]]:
        """The reply to a child's request for ``name``: it, or why not, plus what it imports."""
        with self._lock:
            module = self.index.get(name)
            verdict = self._verdict(module)
            if verdict is not None:
                self.sent.add(name)
                return [module.refused(verdict)], []
            # A third-party package asked for comes with its own submodules, not one request each.
            also = frozenset({module.root}) if module.kind == THIRD_PARTY else frozenset()
            self.sent.add(name)
            return self._take([module, *self._closure(self.index.imports(module), also)])

    def _verdict(self, module: ModuleSource) -> str | None:
        """Why ``module`` may not be sent to this child, or None when it may."""
        if module.source is None:
            return module.reason or "the master has no source for it"
        if module.kind == STDLIB:
            mine = sys.version_info[:2]
            theirs = tuple(self.child_python[:2]) if self.child_python else None
            if theirs != mine:
                where = "%d.%d" % theirs if theirs else "an unknown version"
                return (
                    f"it is in the standard library of the master's Python {mine[0]}.{mine[1]}, and this host "
                    f"runs Python {where}, whose own standard library lacks it"
                )
        return None
