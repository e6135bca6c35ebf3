"""The master's side of import on demand: find a module's source, decide whether a child may have it.

Whose copy wins (docs/design.rst, "The master's modules win"): for ``fanout``,
``cloudpickle`` and the user's own modules (anything outside the standard
library and site-packages) the master's copy is authoritative, and those are
sent ahead with the modules they import statically. Third-party modules are sent only when a host lacks them. The
standard library is served only to a child of the same Python minor version,
since a module of one version's stdlib may not run on another's.

Looking a module up never imports or runs anything on the master: specs come from
the finders in ``sys.meta_path`` (a parent package's search path from its spec, or
from ``sys.modules`` when the master has imported it already), never from
``importlib.import_module`` or ``importlib.util.find_spec``, and sources are read
only through source-file loaders. A finder known to import code while it looks
(setuptools' ``_distutils_hack``) is not asked.

What a child may receive (the module policy), decided in this order:

1. A name under a ``deny`` prefix is refused, even if a rule below would allow it,
   and is never sent ahead either: if the called function's own module is denied,
   the call fails in the child with an ImportError that names the deny prefix
   (or the host uses its own copy, if it has one).
2. Allowed: a module under a root the master chose to send for the calls it made
   (``ModuleSender.chosen``: ``fanout``, ``cloudpickle``, and the top-level
   package or module of each fanout or user module sent ahead of a call, the called
   function's and those of its static import closure), and any name imported
   statically, anywhere (in a function, a class, ``if TYPE_CHECKING``), by a
   fanout or user module this connection was sent, with its parent packages. Such
   an import only permits an answer; it is not sent ahead.
3. Allowed: a module found in site-packages (a third-party distribution) or in the
   standard library; the standard library only to a child of the master's Python
   minor version.
4. Allowed: a name under an ``allow`` prefix, and the parent packages of an allow
   prefix itself (allowing ``a.b`` lets the host import ``a``'s ``__init__``, to
   reach ``a.b``, but not ``a``'s other submodules).
5. Everything else is refused; the refusal, which the child raises as
   ModuleNotFoundError, says why and how to allow it.

A prefix ``a.b`` matches ``a.b`` and ``a.b.c``, never ``a.bc``. Whatever is allowed
must still be sendable: C extensions, built-in and frozen modules, and modules
without source are refused with their reason. A refusal for a name the master does
not have says so: a child can learn whether a module name exists on the master,
never what a refused module holds.

Memory: the process-wide :data:`INDEX` keeps only modules that exist and whose
source was read because a child could have them: fanout's and the user's for good,
third-party and standard library ones up to SHARED_CACHE_CHARS of source, least
recently used first out. A connection's sender records only what it sent and what
that permits. Refused and unknown names are stored nowhere, and a request makes the
master read and parse at most what that child may have.
"""

from __future__ import annotations

import ast
import functools
import importlib.abc
import importlib.machinery
import os
import site
import sys
import sysconfig
import threading
import types
import zipimport
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fanout._codec import AST_LOCK
from fanout._wire import NAME_MAX

# Third-party packages whose master copy must win, because master and child
# must agree on them (cloudpickle: the by-value pickler and unpickler).
PINNED = frozenset({"fanout", "cloudpickle"})

FANOUT, USER, THIRD_PARTY, STDLIB, UNAVAILABLE = "fanout", "user", "third-party", "stdlib", "unavailable"
AUTHORITATIVE = frozenset({FANOUT, USER})
SHARED = frozenset({THIRD_PARTY, STDLIB})  # servable to any child by the policy's own rule

# A module name a child may ask for, and a policy prefix: at most this many characters
# (the protocol refuses longer requests before they get here).
MAX_SCAN_CHARS = 100_000  # characters of a shared module scanned for the submodules to send along (~20 ms to parse)
MAX_MODULE_NAME = NAME_MAX

# Source characters of third-party and standard library modules the index keeps, for all hosts
# together (any child may ask for any of them); past it the least recently used are dropped.
SHARED_CACHE_CHARS = 16 * 2**20

# Directories whose place (site-packages, stdlib, the user's) is remembered, to spare a realpath per lookup.
PLACE_CACHE_DIRECTORIES = 1024

# Finders in sys.meta_path that import or change modules from inside find_spec:
# setuptools' distutils shim imports setuptools._distutils, and clears
# sys.modules when asked for "pip".
UNSAFE_FINDERS = frozenset({"_distutils_hack.DistutilsMetaFinder"})

# Loaders that read a module's source from a file (or a zip) and run nothing to do so.
SOURCE_LOADERS = (importlib.abc.SourceLoader, zipimport.zipimporter)
_NAMESPACE_LOADER = getattr(importlib.machinery, "NamespaceLoader", None)

NOT_READ = "its source was not read"  # the reason on a lookup whose kind did not warrant reading it

Record = tuple  # (name, is_pkg, source | None, filename | None, reason | None), as stage 1 reads it


def is_module_name(name: object) -> bool:
    """Whether ``name`` is a dotted Python identifier of at most MAX_MODULE_NAME characters."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_MODULE_NAME
        and all(part.isidentifier() for part in name.split("."))
    )


def _matching(name: str, prefixes: Iterable[str]) -> str | None:
    """The first prefix that ``name`` is, or is under."""
    for prefix in prefixes:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None


def _prefixes(value: Iterable[str] | None, option: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{option} takes a list of module prefixes, not a single string: write [{value!r}]")
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{option} takes a list of module prefixes, not {type(value).__name__}") from None
    out: list[str] = []
    for item in items:
        if not is_module_name(item):
            raise ValueError(
                f"{option}: {item!r} is not a module prefix: give dotted Python names such as 'mypkg' or "
                f"'mypkg.settings', of at most {MAX_MODULE_NAME} characters"
            )
        if item not in out:
            out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class ModulePolicy:
    """The user's say over what a child may import from the master: ``allow`` widens, ``deny`` narrows.

    Both are module prefixes (``a.b`` covers ``a.b`` and ``a.b.*``); deny wins over
    everything. Raises ValueError for anything but an iterable of dotted names.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def __init__(self, allow: Iterable[str] | None = (), deny: Iterable[str] | None = ()) -> None:
        object.__setattr__(self, "allow", _prefixes(allow, "allow_modules"))
        object.__setattr__(self, "deny", _prefixes(deny, "deny_modules"))

    def denied(self, name: str) -> str | None:
        """The deny prefix ``name`` falls under, if any."""
        return _matching(name, self.deny)

    def allows(self, name: str) -> bool:
        """Whether an allow prefix covers ``name``, or ``name`` is a package on the way to one."""
        return _matching(name, self.allow) is not None or any(p.startswith(name + ".") for p in self.allow)


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


def _real(path: str) -> str:
    return os.path.realpath(path)


def _site_dirs() -> list[str]:
    dirs = [*list(site.getsitepackages()), site.getusersitepackages()]
    paths = sysconfig.get_paths()
    dirs += [paths["purelib"], paths["platlib"]]
    return sorted({_real(d) for d in dirs if d}, key=len, reverse=True)


def _stdlib_dirs() -> list[str]:
    dirs = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")]
    zipped = "python%d%d.zip" % sys.version_info[:2]  # a zipped standard library, as embedded Pythons have
    dirs += [entry for entry in sys.path if os.path.basename(entry) == zipped]
    return sorted({_real(d) for d in dirs if d}, key=len, reverse=True)


_SITE_DIRS = _site_dirs()
_STDLIB_DIRS = _stdlib_dirs()


def _under(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


def _place(path: str) -> str:
    """Whose a file or directory is by where it really lies: site-packages, the standard library, or the user's.

    The file itself is resolved first: a link in site-packages to a file of the user's is the user's.
    """
    return _place_of_directory(os.path.dirname(os.path.realpath(path)))


@functools.lru_cache(maxsize=PLACE_CACHE_DIRECTORIES)
def _place_of_directory(path: str) -> str:
    real = _real(path)
    if _under(real, _SITE_DIRS):  # first: site-packages may lie inside the stdlib directory
        return THIRD_PARTY
    if _under(real, _STDLIB_DIRS):
        return STDLIB
    return USER


def classify(name: str, filename: str | None) -> str:
    """Who owns a module: fanout, the user, a third party, or the standard library.

    A file outside the standard library's directories is the user's even under a
    standard library name (a ``secrets.py`` beside a script shadows the stdlib's).
    """
    root = name.partition(".")[0]
    if root in PINNED:
        return FANOUT
    if filename is None:
        return STDLIB if root in sys.stdlib_module_names else USER
    return _place(filename)


def _is_namespace(spec: importlib.machinery.ModuleSpec) -> bool:
    if spec.submodule_search_locations is None:
        return False
    if spec.origin in (None, "namespace"):
        return True
    return _NAMESPACE_LOADER is not None and isinstance(spec.loader, _NAMESPACE_LOADER)


def kind_of(name: str, spec: importlib.machinery.ModuleSpec) -> str:
    """Who owns the module ``spec`` describes, without reading or running it."""
    if name.partition(".")[0] in PINNED:
        return FANOUT
    if spec.origin in ("built-in", "frozen"):
        return STDLIB
    if _is_namespace(spec):  # a portion anywhere in site-packages makes it a distribution's
        places = {_place(location) for location in spec.submodule_search_locations or ()}
        return THIRD_PARTY if THIRD_PARTY in places else STDLIB if places == {STDLIB} else USER
    return classify(name, spec.origin)


def _entry_finder(entry: str):
    """The path entry finder for one ``sys.path``-style entry, made and cached as the import system does."""
    if entry == "":
        try:
            entry = os.getcwd()
        except OSError:
            return None
    try:
        return sys.path_importer_cache[entry]
    except KeyError:
        pass
    finder = None
    for hook in list(sys.path_hooks):
        try:
            finder = hook(entry)
            break
        except ImportError:
            continue
    sys.path_importer_cache[entry] = finder
    return finder


def _path_find(name: str, path: list[str] | None) -> importlib.machinery.ModuleSpec | None:
    """``PathFinder.find_spec`` without its ``_NamespacePath``, which needs the parent package imported.

    A namespace package comes back with its portions as a plain list.
    """
    portions: list[str] = []
    for entry in list(sys.path if path is None else path):
        if not isinstance(entry, str):
            continue
        find = getattr(_entry_finder(entry), "find_spec", None)
        spec = find(name) if find is not None else None
        if spec is None:
            continue
        if spec.loader is not None:
            return spec
        portions += spec.submodule_search_locations or []
    if not portions:
        return None
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = portions
    return spec


def _finders() -> list[Callable]:
    found: list[Callable] = []
    for finder in list(sys.meta_path):
        cls = finder if isinstance(finder, type) else type(finder)
        if f"{cls.__module__}.{cls.__qualname__}" in UNSAFE_FINDERS:
            continue
        if finder is importlib.machinery.PathFinder:
            found.append(_path_find)
            continue
        find = getattr(finder, "find_spec", None)
        if find is not None:
            found.append(find)
    return found


def _imported(name: str) -> types.ModuleType | None:
    """The master's own module ``name``, if it imported one: a plain module only, whose attributes run nothing."""
    module = sys.modules.get(name)
    return module if type(module) is types.ModuleType else None


def locate(name: str) -> tuple[importlib.machinery.ModuleSpec | None, str | None]:
    """``name``'s spec as the master's import system would find it, with nothing imported or run.

    Returns ``(spec, None)``, or ``(None, why)`` when there is no such module. Packages
    on the way are resolved top down, each from ``sys.modules`` when the master has it
    (its ``__path__``) or from the finders; the walk stops at the first missing level,
    so a lookup costs at most one finder search per level of the name. A finder's
    error propagates.
    """
    parts = name.split(".")
    path: list[str] | None = None
    spec = None
    for depth in range(1, len(parts) + 1):
        here = ".".join(parts[:depth])
        module = _imported(here)
        known = module.__dict__.get("__spec__") if module is not None else None
        if isinstance(known, importlib.machinery.ModuleSpec) and known.name == here:
            spec = known  # the master imported it already (os.path included, which no finder finds)
            continue
        if depth > 1:
            parent = ".".join(parts[: depth - 1])
            module = _imported(parent)
            locations = module.__dict__.get("__path__") if module is not None else spec.submodule_search_locations
            if locations is None:
                return None, f"{parent!r} is a module, not a package"
            path = list(locations)
        spec = next((s for s in (find(here, path) for find in _finders()) if s is not None), None)
        if spec is None:
            return None, (f"it has no package {here!r}" if depth < len(parts) else None)
    return spec, None


def source_of(name: str, spec: importlib.machinery.ModuleSpec) -> ModuleSource:
    """What the master can send of the module ``spec`` describes: its source, or why not."""
    kind = kind_of(name, spec)
    is_pkg = spec.submodule_search_locations is not None
    loader = spec.loader
    if spec.origin in ("built-in", "frozen"):
        return ModuleSource(name, kind, reason=f"it is {spec.origin} in the master's Python, so it cannot be sent")
    if isinstance(loader, importlib.machinery.ExtensionFileLoader):
        return ModuleSource(
            name,
            kind,
            reason=f"it is a C extension ({os.path.basename(spec.origin or '')}); "
            "extension modules cannot be sent, install it on the host",
        )
    if _is_namespace(spec):
        return ModuleSource(name, kind, is_pkg=True, source="", filename=None)
    if isinstance(loader, importlib.machinery.SourcelessFileLoader):
        return ModuleSource(name, kind, reason="the master has no source for it (bytecode only)")
    if not isinstance(loader, SOURCE_LOADERS):
        return ModuleSource(
            name, kind, reason=f"the master loads it with {type(loader).__name__}, not from a source file it can send"
        )
    try:
        source = loader.get_source(name)
    except Exception as exc:
        return ModuleSource(name, UNAVAILABLE, reason=f"the master cannot read its source: {exc}")
    if source is None:
        return ModuleSource(name, kind, reason="the master has no source for it (bytecode only)")
    return ModuleSource(name, kind, is_pkg=is_pkg, source=source, filename=spec.origin)


def _missing(why: str | None) -> str:
    return "the master does not have it either" + (f" ({why})" if why else "")


def find_source(name: str) -> ModuleSource:
    """Look a module up on the master, the way its import system would find it, but running nothing."""
    if not is_module_name(name):
        return ModuleSource(name, UNAVAILABLE, reason="it is not a module name")
    try:
        spec, why = locate(name)
    except Exception as exc:  # a finder failed
        return ModuleSource(name, UNAVAILABLE, reason=f"the master cannot find it: {type(exc).__name__}: {exc}")
    if spec is None:
        return ModuleSource(name, UNAVAILABLE, reason=_missing(why))
    return source_of(name, spec)


def _refusal(name: str, reason: str) -> Record:
    """Stage 1's record of a refusal: the child raises ModuleNotFoundError with ``reason``."""
    return (name, False, None, None, reason)


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


def _imported_names(nodes: Iterable[ast.AST], module: ModuleSource) -> list[str]:
    """The modules the import statements among ``nodes`` name, relative ones resolved."""
    package = module.name if module.is_pkg else module.name.rpartition(".")[0]
    found: list[str] = []
    for node in nodes:
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


def _parse(module: ModuleSource) -> ast.Module | None:
    if not module.source:
        return None
    try:
        with AST_LOCK:
            return ast.parse(module.source)
    except (SyntaxError, ValueError):
        return None


def static_imports(module: ModuleSource) -> list[str]:
    """Names a module imports when it is executed, resolved (relative imports included)."""
    tree = _parse(module)
    return [] if tree is None else _imported_names(_module_level(tree.body), module)


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def all_imports(module: ModuleSource) -> frozenset[str]:
    """Every name a module's import statements mention, anywhere in it, with their parent packages."""
    tree = _parse(module)
    if tree is None:
        return frozenset()
    names = {name for name in _imported_names(ast.walk(tree), module) if is_module_name(name)}
    return frozenset(names.union(*(_parents(name) for name in names)))


def _anything(kind: str) -> bool:
    return True


class ModuleIndex:
    """Process-wide cache of modules some child could have, and of their import scans.

    Only lookups that found a module and read its source are kept (modules do not
    change under us); a refused or unknown name leaves no trace here. Fanout's and
    the user's modules are kept for good (the master's own code); third-party and
    standard library ones, which any child may ask for, up to ``shared_chars``
    characters of source, the least recently used going first.
    """

    def __init__(self, shared_chars: int = SHARED_CACHE_CHARS) -> None:
        self._sources: dict[str, ModuleSource] = {}
        self._shared: OrderedDict[str, ModuleSource] = OrderedDict()
        self._shared_chars = 0
        self._shared_limit = shared_chars
        self._imports: dict[str, list[str]] = {}
        self._all_imports: dict[str, frozenset[str]] = {}
        self._scanning: dict[tuple[int, str], threading.Lock] = {}  # scans in progress, one per module
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Entries held: modules and import scans."""
        with self._lock:
            return len(self._sources) + len(self._shared) + len(self._imports) + len(self._all_imports)

    def _cached(self, name: str) -> ModuleSource | None:
        found = self._sources.get(name)
        if found is None:
            found = self._shared.get(name)
            if found is not None:
                self._shared.move_to_end(name)
        return found

    def _keep(self, module: ModuleSource) -> ModuleSource:
        with self._lock:
            known = self._cached(module.name)
            if known is not None:
                return known
            if module.kind in AUTHORITATIVE:
                self._sources[module.name] = module
                return module
            size = len(module.source or "")
            if size > self._shared_limit:
                return module
            self._shared[module.name] = module
            self._shared_chars += size
            while self._shared_chars > self._shared_limit:
                name, old = self._shared.popitem(last=False)
                self._shared_chars -= len(old.source or "")
                self._imports.pop(name, None)
                self._all_imports.pop(name, None)
            return module

    def find(self, name: str, wanted: Callable[[str], bool] = _anything) -> ModuleSource:
        """``name`` as the master has it; its source is read only if ``wanted(kind)``.

        When not wanted, ``source`` is None and ``reason`` is :data:`NOT_READ`: only the
        spec was looked up. Nothing found, or nothing readable, is not cached.
        """
        with self._lock:
            found = self._cached(name)
        if found is not None:
            return found if wanted(found.kind) else ModuleSource(name, found.kind, reason=NOT_READ)
        if not is_module_name(name):
            return find_source(name)
        try:
            spec, why = locate(name)
        except Exception:  # a finder failed: find_source says how
            return find_source(name)
        if spec is None:
            return ModuleSource(name, UNAVAILABLE, reason=_missing(why))
        kind = kind_of(name, spec)
        if not wanted(kind):
            return ModuleSource(name, kind, reason=NOT_READ)
        found = source_of(name, spec)
        return self._keep(found) if found.source is not None else found

    def get(self, name: str) -> ModuleSource:
        """``name`` with its source, or why the master cannot send it."""
        return self.find(name)

    def imports(self, module: ModuleSource) -> list[str]:
        """What ``module`` imports at module level."""
        return self._scan(self._imports, module, static_imports)

    def all_imports(self, module: ModuleSource) -> frozenset[str]:
        """What ``module`` imports anywhere, with parent packages."""
        return self._scan(self._all_imports, module, all_imports)

    def _scan(self, cache: dict, module: ModuleSource, scan: Callable) -> Any:
        """``scan(module)``, once: children asking for the same module at once (a fleet's first call) wait for
        the first scan instead of each parsing it again while holding the GIL."""
        with self._lock:
            names = cache.get(module.name)
            known = self._cached(module.name) is module
            if names is not None and known:
                return names
            scanning = self._scanning.setdefault((id(cache), module.name), threading.Lock()) if known else None
        if scanning is None:  # a made-up ModuleSource: not kept, so scanned each time
            return scan(module)
        with scanning:
            with self._lock:
                names = cache.get(module.name)
            if names is None:
                names = scan(module)
                with self._lock:
                    if self._cached(module.name) is module:
                        cache[module.name] = names
                    self._scanning.pop((id(cache), module.name), None)
        return names


INDEX = ModuleIndex()


class ModuleSender:
    """What one connection has been sent, and what its child may still have; each module crosses once."""

    def __init__(self, host: str, index: ModuleIndex = INDEX, policy: ModulePolicy = ModulePolicy()) -> None:
        if not isinstance(policy, ModulePolicy):
            raise TypeError(f"policy must be a ModulePolicy, not {type(policy).__name__}")
        self.host = host
        self.index = index
        self.policy = policy
        self.child_python: tuple[int, ...] | None = None
        self.sent: set[str] = set()  # modules sent: refusals are not recorded anywhere
        self.roots: set[str] = set()  # top-level names whose master copy wins on the child (it is told)
        self.chosen: set[str] = set(PINNED)  # roots sent for calls: the child may have anything under them
        self.granted: set[str] = set()  # names imported anywhere by fanout/user modules sent, and their parents
        self._settled: set[str] = set()  # preloaded names whose closure was already sent or needs nothing
        self._lock = threading.Lock()

    def footprint(self) -> int:
        """How many names this sender holds (they grow with what it sent, never with what it refused)."""
        with self._lock:
            return len(self.sent) + len(self.roots) + len(self.chosen) + len(self.granted) + len(self._settled)

    # -- the policy -------------------------------------------------------------------

    def _permitted_by_name(self, name: str, grants: set[str] | frozenset[str] = frozenset()) -> bool:
        return (
            name.partition(".")[0] in self.chosen or name in self.granted or name in grants or self.policy.allows(name)
        )

    def _permitted(self, name: str, kind: str, grants: set[str] | frozenset[str] = frozenset()) -> bool:
        return kind in SHARED or self._permitted_by_name(name, grants)

    def _policy_refusal(self, name: str) -> str:
        return (
            "the master does not send it: it is not in the packages fanout sent for your calls nor imported by "
            "their modules, and not in site-packages or the standard library; if this host may have it, allow it "
            f"with allow_modules=[{name!r}]"
        )

    def _version_refusal(self) -> str | None:
        """Why this child may not have the master's standard library, or None when it may."""
        mine = sys.version_info[:2]
        theirs = tuple(self.child_python[:2]) if self.child_python else None
        if theirs == mine:
            return None
        where = "%d.%d" % theirs if theirs else "an unknown version"
        return (
            f"it is in the standard library of the master's Python {mine[0]}.{mine[1]}, and this host "
            f"runs Python {where}, whose own standard library lacks it"
        )

    # -- sending ----------------------------------------------------------------------

    def _closure(
        self, names: Iterable[str], grants: set[str], also_roots: frozenset[str] = frozenset()
    ) -> list[ModuleSource]:
        """Permitted fanout/user modules (or under ``also_roots``) among ``names``, their parents and imports, unsent.

        ``grants`` holds names the caller vouches for; it gains what each fanout or user
        module taken imports anywhere, so its module-level imports are permitted in turn.
        """
        out: list[ModuleSource] = []
        queue = deque(names)
        seen: set[str] = set()
        while queue:
            name = queue.popleft()
            if name in seen or name in self.sent:
                continue
            seen.add(name)
            if self.policy.denied(name):
                continue
            root = name.partition(".")[0]

            def wanted(kind: str, name: str = name, root: str = root) -> bool:
                return (kind in AUTHORITATIVE or root in also_roots) and self._permitted(name, kind, grants)

            module = self.index.find(name, wanted)
            if module.source is None:
                continue
            queue.extendleft(reversed([p for p in _parents(name) if p not in seen]))
            out.append(module)
            if module.kind in AUTHORITATIVE:
                grants.update(self.index.all_imports(module))
            queue.extend(self.index.imports(module))
        return out

    def _take(self, modules: list[ModuleSource], chosen: bool) -> tuple[list[Record], list[str]]:
        mine = [m for m in modules if m.kind in AUTHORITATIVE]
        new_roots = sorted({m.root for m in mine} - self.roots)
        self.roots.update(new_roots)
        if chosen:
            self.chosen.update(m.root for m in mine)
        for module in mine:
            self.granted.update(self.index.all_imports(module))
        self.sent.update(m.name for m in modules)
        # Parents first, so a package's __init__ exists before its submodules.
        ordered = sorted(modules, key=lambda m: m.name.count("."))
        return [m.record() for m in ordered], new_roots

    def settled(self, names: list[str]) -> bool:
        """Whether a call importing ``names`` needs no module sent ahead of it (the warm path)."""
        with self._lock:
            return self._settled.issuperset(names)

    def preload(self, names: list[str]) -> tuple[list[Record], list[str]]:
        """Modules to send ahead of a call that will import ``names``: (records, new roots).

        ``names`` are the master's own choice (the called function's module and what
        the call's pickle names), so their fanout and user modules are sent with their
        static closure, and their roots become chosen; denied names are skipped.
        """
        with self._lock:
            if self._settled.issuperset(names):
                return [], []  # the warm path: these were dealt with before
            vouched = {n for n in names if is_module_name(n)}
            vouched.update(*(_parents(n) for n in list(vouched)))
            taken = self._take(self._closure(names, vouched), chosen=True)
            self._settled.update(names)
            return taken

    def answer(self, name: str) -> tuple[list[Record], list[str]]:
        """The reply to a child's request for ``name``: it, or why not, plus what it imports."""
        with self._lock:
            if not is_module_name(name):
                return [_refusal(name, "it is not a module name")], []
            prefix = self.policy.denied(name)
            if prefix is not None:
                return [_refusal(name, f"deny_modules has {prefix!r}, so the master never sends it")], []
            by_name = self._permitted_by_name(name)
            stdlib_refusal = self._version_refusal()

            def wanted(kind: str) -> bool:  # read its source only if it is this child's to have
                return not (kind == STDLIB and stdlib_refusal) and (by_name or kind in SHARED)

            module = self.index.find(name, wanted)
            if module.source is None:
                if module.reason != NOT_READ:
                    reason = module.reason or "the master has no source for it"
                elif module.kind == STDLIB and stdlib_refusal:
                    reason = stdlib_refusal
                else:
                    reason = self._policy_refusal(name)
                return [_refusal(name, reason)], []
            # A third-party package asked for comes with its own submodules, not one request each.
            also = frozenset({module.root}) if module.kind == THIRD_PARTY else frozenset()
            grants = set(self.index.all_imports(module)) if module.kind in AUTHORITATIVE else set()
            self.sent.add(module.name)  # not again in its own closure
            # Scanning a shared module's imports parses it while holding the GIL: a request answered with
            # the standard library (whose imports are never sent along) or with a large file is not scanned.
            scan = module.kind in AUTHORITATIVE or (module.kind == THIRD_PARTY and len(module.source) <= MAX_SCAN_CHARS)
            imports = self.index.imports(module) if scan else []
            return self._take([module, *self._closure(imports, grants, also)], chosen=False)
