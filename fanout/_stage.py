"""Stage 0 (the command line) and stage 1 (the remote kernel), assembled from ``bootstrap/``.

Stage 1 is ``fanout/_wire.py`` then ``bootstrap/stage1.py``, with docstrings,
stage 1's own ``from fanout._wire import ...`` (the names are already defined
above it) and the wire's constants that neither stage 1 nor the relay reads
removed, compressed once per process. The relay (``bootstrap/relay.py``) is
sent apart, to the children that open children (:func:`relay_source`).

Stage 0 first checks the interpreter's version, in code any Python 2.7 or 3.x
compiles: one too old writes one marked line to stderr and exits with
:data:`UNSUPPORTED_STATUS`, and the master turns that line into
:class:`~fanout.UnsupportedPython` (:func:`unsupported_python`). ``python="auto"``
(Ansible's interpreter discovery) makes the command line itself try the
interpreters of :data:`DISCOVERY_ORDER`, in the same single exec.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
import zlib
from collections.abc import Iterable
from pathlib import Path

from fanout._codec import AST_LOCK
from fanout._wire import READY_MARK, STAGE1_MODULE
from fanout.errors import UnsupportedPython

_PACKAGE = Path(__file__).resolve().parent

MIN_PYTHON = (3, 9)  # the oldest Python a child runs on: stage 1 and fanout/_wire.py keep to 3.9 (docs/protocol.rst)
NEWEST_PYTHON = (3, 14)  # the newest versioned name (python3.14) discovery looks for
UNSUPPORTED_STATUS = 97  # stage 0's exit status when its Python is too old, or discovery found none
OLD_PYTHON_MARK = "fanout:old-python "  # stage 0's line on stderr: the mark, the version, the interpreter's path
NO_PYTHON_MARK = "fanout:no-python"  # discovery's line on stderr when no interpreter of DISCOVERY_ORDER exists
MAX_REPORTED_VERSION = 32  # characters of a reported version kept: a host may report anything
MAX_REPORTED_PATH = 256  # characters of a reported interpreter path kept
# python="auto" and the rest of Ansible's discovery modes (ansible-core 2.19: the legacy ones are deprecated
# aliases); True where discovery stays silent about what it chose.
AUTO_MODES = {"auto": False, "auto_silent": True, "auto_legacy": False, "auto_legacy_silent": True}
# Where discovery looks, in order: ansible-core 2.19's INTERPRETER_PYTHON_FALLBACK (python3.13 ... python3.8,
# /usr/bin/python3, python3) from NEWEST_PYTHON down to MIN_PYTHON, and RHEL 8's /usr/libexec/platform-python
# from ansible-core 2.16's, so a host with no other Python is told its version rather than that it has none.
DISCOVERY_ORDER = (
    *(f"python3.{minor}" for minor in range(NEWEST_PYTHON[1], MIN_PYTHON[1] - 1, -1)),
    "/usr/bin/python3",
    "/usr/libexec/platform-python",
    "python3",
)


def _bootstrap_dir() -> Path:
    """``fanout/_bootstrap`` in an installed wheel, ``bootstrap/`` in a source checkout."""
    for candidate in (_PACKAGE / "_bootstrap", _PACKAGE.parent / "bootstrap"):
        if (candidate / "stage1.py").is_file():
            return candidate
    raise RuntimeError(f"fanout is installed without its bootstrap sources (looked beside {_PACKAGE})")


def _is_bare_string(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_wire_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "fanout._wire"


def _strip(tree: ast.AST) -> ast.AST:
    """Remove bare strings (docstrings: they cost bytes) and imports of the wire module (it is inlined)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and any(_is_bare_string(s) or _is_wire_import(s) for s in body):
            node.body = [s for s in body if not (_is_bare_string(s) or _is_wire_import(s))] or [ast.Pass()]
    return tree


def _constant_name(node: ast.stmt) -> str | None:
    """The name a top-level ``NAME = value`` statement defines, if it is one."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _drop_unread(tree: ast.Module, names: set[str], *readers: ast.AST) -> ast.Module:
    """Remove the top-level assignments of ``names`` that nothing in ``tree`` or ``readers`` reads: the wire's
    constants for the master alone (``KIND_NAMES``, ``MARSHAL_BUDGET``) would cost every child their bytes."""
    read = {
        node.id
        for root in (tree, *readers)
        for node in ast.walk(root)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    tree.body = [node for node in tree.body if _constant_name(node) not in names - read]
    return tree


def _sources() -> tuple[str, str, str]:
    paths = (_PACKAGE / "_wire.py", _bootstrap_dir() / "relay.py", _bootstrap_dir() / "stage1.py")
    wire, relay, stage1 = (path.read_text() for path in paths)
    return wire, relay, stage1


@functools.lru_cache(maxsize=1)
def stage1_source() -> str:
    """The Python source the child runs as stage 1: the wire, then stage 1 itself. The wire's constants that
    the relay reads stay, though it is not part of stage 1: it runs in stage 1's globals (:func:`relay_source`)."""
    wire, relay, stage1 = _sources()
    with AST_LOCK:
        relay_tree = _strip(ast.parse(relay))
        wire_constants = {_constant_name(node) for node in ast.parse(wire).body} - {None}
        tree = _strip(ast.parse("\n".join([wire, stage1])))
        return ast.unparse(_drop_unread(tree, wire_constants, relay_tree)) + "\n"


@functools.lru_cache(maxsize=1)
def relay_source() -> str:
    """``bootstrap/relay.py`` stripped: sent to a child before the first child it opens (become, ssh onward), and
    compiled into its stage 1's globals then. Most children never open one: stage 1 is 2.2 KB smaller without it."""
    with AST_LOCK:
        return ast.unparse(_strip(ast.parse(_sources()[1]))) + "\n"


@functools.lru_cache(maxsize=1)
def stage1_blob() -> bytes:
    """Stage 1, compressed: what stage 0 reads from stdin."""
    return zlib.compress(stage1_source().encode(), 9)


def stage0_code(minimum: tuple[int, int] = MIN_PYTHON, *, ready: bool = False) -> str:
    """The program passed to ``python -c``: check the version, read exactly len(stage 1) bytes from fd 0,
    inflate, run. Python 2.7 compiles all of it, so the check can speak before anything newer is needed.
    ``ready``: first write :data:`~fanout._wire.READY_MARK`, for a relay that holds the input until then."""
    size = len(stage1_blob())
    return (
        "import sys\n"
        f"if sys.version_info<({minimum[0]},{minimum[1]}):"
        f'sys.stderr.write("{OLD_PYTHON_MARK}%d.%d.%d %s\\n"%(sys.version_info[:3]+(sys.executable,)));'
        f"sys.exit({UNSUPPORTED_STATUS})\n"
        "import os,zlib\n" + (f"os.write(1,{READY_MARK!r})\n" if ready else "") + 'b=b""\n'
        f"while len(b)<{size}:b+=os.read(0,{size}-len(b))or os._exit(1)\n"
        'c=compile(zlib.decompress(b),"<string>","exec")\n'
        f'exec(c,{{"__name__":"{STAGE1_MODULE}","B":c}})'
    )


def stage0_command(python: str = "python3", *, ready: bool = False) -> str:
    """The remote shell command line that starts a child: with ``python``, or with the interpreter discovery
    finds (``"auto"`` and the other :data:`AUTO_MODES`); ``ready`` as :func:`stage0_code` takes it."""
    if python in AUTO_MODES:
        return discovery_command(silent=AUTO_MODES[python], ready=ready)
    return f"{shlex.quote(python)} -c {shlex.quote(stage0_code(ready=ready))}"


def discovery_command(
    *,
    silent: bool,
    minimum: tuple[int, int] = MIN_PYTHON,
    order: Iterable[str] = DISCOVERY_ORDER,
    ready: bool = False,
) -> str:
    """POSIX sh that execs stage 0 with the first interpreter of ``order`` that exists and is new enough.

    A versioned name new enough by its name (``python3.11``) is taken at its word: found executable, it is
    exec'd at once (stage 0 still checks). Any other is run once first to test its version (~20 ms on the host, and
    no round trip). None new enough: the first that ran is exec'd all the same, for stage 0's check to
    name it and its version. None at all: :data:`NO_PYTHON_MARK`. Unless ``silent``, the choice is
    written to stderr, which the master logs as a warning of the host's, as Ansible warns.
    """
    order = list(order)
    by_name = [name for name in order if _new_enough_by_name(name, minimum)]
    test = f"import sys;sys.exit(sys.version_info<({minimum[0]},{minimum[1]}))"
    tested = f'"$q" -c "{test}"</dev/null >/dev/null 2>&1;r=$?'
    say = "" if silent else 'printf "fanout: using the discovered Python interpreter %s\\n" "$q">&2;'
    return (
        f"S={shlex.quote(stage0_code(minimum, ready=ready))};f=;"
        f"for p in {' '.join(shlex.quote(name) for name in order)};do "
        'q=$(command -v "$p")||continue;'
        + (f'case $p in {"|".join(by_name)})r=2;[ -x "$q" ]&&r=0;;*){tested};;esac;' if by_name else f"{tested};")
        + f'case $r in 0){say}exec "$q" -c "$S";;1)f=${{f:-$q}};;esac;done;'
        '[ -z "$f" ]||exec "$f" -c "$S";'
        f"echo {NO_PYTHON_MARK}>&2;exit {UNSUPPORTED_STATUS}"
    )


def _new_enough_by_name(name: str, minimum: tuple[int, int]) -> bool:
    """Whether ``name`` is ``python3.N`` (no directory) with 3.N at least ``minimum``."""
    found = re.fullmatch(r"python([0-9]+)\.([0-9]+)", name)
    return found is not None and (int(found[1]), int(found[2])) >= minimum


def _reported(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def unsupported_python(host: str, stderr: object) -> UnsupportedPython | None:
    """The error a child that stopped in stage 0 reported on stderr (a ``StderrTail``, or None), if it did.

    The host's lines are hostile: they arrive bounded (the tail keeps a few lines of 64 KiB at most), and
    what is kept of them here is cut short; :class:`UnsupportedPython` escapes it when shown.
    """
    minimum = "%d.%d" % MIN_PYTHON
    for line in reversed(list(getattr(stderr, "lines", ()))):
        if line == NO_PYTHON_MARK:
            return UnsupportedPython(host, minimum, None, None, DISCOVERY_ORDER)
        if line.startswith(OLD_PYTHON_MARK):
            version, _, executable = line[len(OLD_PYTHON_MARK) :].partition(" ")
            return UnsupportedPython(
                host, minimum, _reported(version, MAX_REPORTED_VERSION), _reported(executable, MAX_REPORTED_PATH)
            )
    return None
