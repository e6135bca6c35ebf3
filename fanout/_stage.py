"""Stage 0 (the command line) and stage 1 (the remote kernel), assembled from ``bootstrap/``.

Stage 1 is ``fanout/_wire.py``, ``bootstrap/relay.py`` as a string, then
``bootstrap/stage1.py``, with docstrings and stage 1's own ``from fanout._wire
import ...`` removed (the names are already defined above it), compressed once
per process.
"""

from __future__ import annotations

import ast
import functools
import shlex
import zlib
from pathlib import Path

from fanout._codec import AST_LOCK

_PACKAGE = Path(__file__).resolve().parent


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


@functools.lru_cache(maxsize=1)
def stage1_source() -> str:
    """The Python source the child runs as stage 1: the wire, the relay as a string (compiled by the
    children that open children, and only by them), then stage 1 itself."""
    sources = (_PACKAGE / "_wire.py", _bootstrap_dir() / "relay.py", _bootstrap_dir() / "stage1.py")
    wire, relay, stage1 = (path.read_text() for path in sources)
    with AST_LOCK:
        relay_source = ast.unparse(_strip(ast.parse(relay)))
        tree = _strip(ast.parse("\n".join([wire, f"_RELAY = {relay_source!r}", stage1])))
        return ast.unparse(tree) + "\n"


@functools.lru_cache(maxsize=1)
def stage1_blob() -> bytes:
    """Stage 1, compressed: what stage 0 reads from stdin."""
    return zlib.compress(stage1_source().encode(), 9)


def stage0_code() -> str:
    """The program passed to ``python -c``: read exactly len(stage 1) bytes from fd 0, inflate, run."""
    size = len(stage1_blob())
    return (
        "import os,zlib\n"
        'b=b""\n'
        f"while len(b)<{size}:b+=os.read(0,{size}-len(b))or os._exit(1)\n"
        'c=compile(zlib.decompress(b),"<string>","exec")\n'
        'exec(c,{"__name__":"fanout_stage1","B":c})'
    )


def stage0_command(python: str = "python3") -> str:
    """The remote shell command line that starts a child."""
    return f"{shlex.quote(python)} -c {shlex.quote(stage0_code())}"
