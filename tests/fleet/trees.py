"""Trees to push and fetch, and scratch directories on a context's host, shared by the push and cache tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import fanout
from fanout import _push

CHUNK = _push.CHUNK
MTIME = 1_600_000_000_123_456_789
UNICODE = "ünïcødé ✓.txt"


def make_tree(root: Path) -> Path:
    """Nested and empty directories, empty and multi-chunk files, links (one dangling), modes, unicode names."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    files = {
        "a.txt": (b"alpha\n", 0o640),
        "empty": (b"", 0o644),
        "run.sh": (b"#!/bin/sh\n", 0o755),
        UNICODE: (b"unicode\n", 0o600),
        "sub/three-chunks.bin": (bytes(range(256)) * (3 * CHUNK // 256) + b"tail", 0o644),
        "sub/deeper/x": (b"x", 0o444),
    }
    for relpath, (data, mode) in files.items():
        path = root / relpath
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, ns=(MTIME, MTIME))
    (root / "sub" / "link").symlink_to("../a.txt")
    (root / "dangling").symlink_to("/nowhere/at/all")
    (root / "sub").chmod(0o750)
    for directory in ("sub/deeper", "sub", "empty-dir"):
        os.utime(root / directory, ns=(MTIME, MTIME))
    return root


def listing(entries: list) -> dict:
    """Entries by path, without the root's own (its mode and time are those of the directory it was made in)."""
    return {entry[0]: entry[1:] for entry in entries if entry[0]}


def remote_dir(context: fanout.Context) -> str:
    """A new empty directory on the context's host, for one test."""
    return context.call(tempfile.mkdtemp, prefix="fanout-push-")


def remove(context: fanout.Context, path: str) -> None:
    """Remove ``path`` on the context's host, and all below it, if it is there."""
    context.call(shutil.rmtree, path, True)
