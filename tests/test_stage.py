"""The bootstrap's size budget and its promise: stage 1 uses the stdlib only and runs on Python 3.9+."""

from __future__ import annotations

import ast
import subprocess
import sys
import zlib

from fanout import _stage


def test_stage0_fits_on_one_command_line() -> None:
    assert len(_stage.stage0_code().encode()) < 400
    assert "'" not in _stage.stage0_code()  # so quoting for the remote shell stays trivial
    assert str(len(_stage.stage1_blob())) in _stage.stage0_code()


def test_stage1_is_small_and_matches_its_blob() -> None:
    assert zlib.decompress(_stage.stage1_blob()).decode() == _stage.stage1_source()
    assert len(_stage.stage1_blob()) < 7.5 * 1024  # 5.0 KB before become: the relay (routing, sudo/su/doas) is 2.2 KB


def test_stage1_imports_only_the_standard_library() -> None:
    tree = ast.parse(_stage.stage1_source())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported and imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names


def test_stage1_has_no_docstrings_nor_imports_of_fanout() -> None:
    text = _stage.stage1_source()
    assert "fanout._wire" not in text and "import fanout" not in text
    assert '"""' not in text


def test_stage0_exits_quietly_when_stdin_ends_early() -> None:
    done = subprocess.run([sys.executable, "-c", _stage.stage0_code()], input=b"short", capture_output=True, timeout=30)
    assert done.returncode == 1 and done.stderr == b""


def test_command_line_quotes_the_interpreter() -> None:
    assert _stage.stage0_command("/opt/my python/bin/python3").startswith("'/opt/my python/bin/python3' -c '")
