"""The bootstrap's size budget and its promise: stage 1 uses the stdlib only and runs on Python 3.9+; stage 0
says so in one line on an older one, and python="auto" finds a newer one."""

from __future__ import annotations

import ast
import glob
import importlib.util
import logging
import os
import shlex
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import fanout
from fanout import _stage
from fanout._transport import StderrTail
from fanout.errors import Unreachable, UnsupportedPython
from fanout.fleet import UNREACHABLE, status_of

ROOT = Path(__file__).resolve().parent.parent


def test_stage0_fits_on_one_command_line() -> None:
    assert len(_stage.stage0_code().encode()) < 400
    assert "'" not in _stage.stage0_code()  # so quoting for the remote shell stays trivial
    assert str(len(_stage.stage1_blob())) in _stage.stage0_code()


def test_stage1_is_small_and_matches_its_blob() -> None:
    assert zlib.decompress(_stage.stage1_blob()).decode() == _stage.stage1_source()
    # 7.5 KB with the relay inside; 5.7 KB since the relay is sent to the children that open children only
    assert len(_stage.stage1_blob()) < 6 * 1024


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


# -- the version check, and interpreter discovery (python="auto") ---------------------------------------------

NEEDS = (
    "fanout needs Python 3.9 or newer on hosts (choose another interpreter with python= or ansible_python_interpreter)"
)


def _shells() -> list[list[str]]:
    """The POSIX shells here a host's login shell may be: sh, dash, bash, busybox; each binary once."""
    found: dict[str, list[str]] = {}
    for argv in (["/bin/sh"], ["/usr/bin/dash"], ["/bin/bash"], ["/bin/busybox", "sh"], ["/usr/bin/busybox", "sh"]):
        if os.access(argv[0], os.X_OK):
            found.setdefault(os.path.realpath(argv[0]), argv)
    return list(found.values())


SHELLS = _shells()


def _old_python(name: str) -> tuple[str, str] | None:
    """A real interpreter of that name that runs here (pyenv's shims need not), and its version."""
    for path in [f"/usr/bin/{name}", *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/*/bin/{name}")))]:
        if os.access(path, os.X_OK):
            done = subprocess.run(
                [path, "-c", "import sys;print('%d.%d.%d'%sys.version_info[:3])"], capture_output=True
            )
            if done.returncode == 0:
                return path, done.stdout.decode().strip()
    return None


def _reporting(path: Path, version: tuple[int, int, int]) -> Path:
    """An interpreter that is this one but reports ``version`` (and its own path): the check sees that version."""
    code = f"import sys;sys.version_info={version!r};sys.executable=sys.argv.pop(1);exec(sys.argv.pop(1))"
    path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(code)} "$0" "$2"\n')
    path.chmod(0o755)
    return path


def _real(path: Path) -> Path:
    path.symlink_to(sys.executable)
    return path


def _discover(
    shell: list[str], bin_dir: Path, order: list[str], *, silent: bool = False
) -> subprocess.CompletedProcess:
    """The discovery command line as the host's shell runs it, with ``bin_dir`` alone on PATH and no stage 1."""
    command = _stage.discovery_command(silent=silent, order=order)
    return subprocess.run(
        [*shell, "-c", command], env={"PATH": str(bin_dir)}, input=b"", capture_output=True, timeout=60
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin dir"  # a space: every path in the command line is quoted
    path.mkdir()
    return path


def test_stage0_checks_the_version_first() -> None:
    assert _stage.MIN_PYTHON == (3, 9) and "runs unchanged on Python 3.9" in (ROOT / "docs/protocol.rst").read_text()
    body = ast.parse(_stage.stage0_code()).body
    assert ast.unparse(body[0]) == "import sys" and ast.unparse(body[1].test) == "sys.version_info < (3, 9)"


def test_a_python_too_old_says_so_in_one_line_and_exits_with_its_status() -> None:
    code = _stage.stage0_code(minimum=(99, 0))  # this Python, as a host's too old for fanout
    done = subprocess.run([sys.executable, "-c", code], input=b"", capture_output=True, timeout=30)
    version = "%d.%d.%d" % sys.version_info[:3]
    assert done.returncode == _stage.UNSUPPORTED_STATUS
    assert done.stderr.decode() == f"fanout:old-python {version} {sys.executable}\n"
    tail = StderrTail("web1")
    tail.pump(iter([done.stderr, b""]).__next__)
    error = _stage.unsupported_python("web1", tail)
    assert isinstance(error, UnsupportedPython) and isinstance(error, Unreachable)
    assert str(error) == f"web1 runs Python {version} ({sys.executable}); " + NEEDS
    assert (error.host, error.version, error.executable) == ("web1", version, sys.executable)
    assert status_of(error) == UNREACHABLE
    assert _stage.unsupported_python("web1", None) is None


@pytest.mark.parametrize("name", ["python2.7", "python3.6"])
def test_a_real_old_python_compiles_stage0_and_stops_at_the_check(name: str) -> None:
    """The whole of stage 0 must compile there: the check cannot speak otherwise (the fleet runs 2.7 too)."""
    found = _old_python(name)
    if found is None:
        pytest.skip(f"no working {name} on this machine")
    path, version = found
    done = subprocess.run([path, "-c", _stage.stage0_code()], input=b"", capture_output=True, timeout=30)
    assert (done.returncode, done.stderr.decode()) == (
        _stage.UNSUPPORTED_STATUS,
        f"fanout:old-python {version} {path}\n",
    )


def test_auto_modes_are_ansibles_and_its_fallback_order_is_kept() -> None:
    assert set(_stage.AUTO_MODES) == {"auto", "auto_silent", "auto_legacy", "auto_legacy_silent"}
    assert "using the discovered" in _stage.stage0_command("auto")
    assert "using the discovered" not in _stage.stage0_command("auto_silent")
    assert _stage.stage0_command("auto_legacy_silent") == _stage.stage0_command("auto_silent")
    spec = importlib.util.find_spec("ansible")
    if spec is None or spec.origin is None:
        pytest.skip("ansible-core is not installed")
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((Path(spec.origin).parent / "config/base.yml").read_text())
    fallback = config["INTERPRETER_PYTHON_FALLBACK"]["default"]
    kept = [name for name in fallback if not name.startswith("python3.") or int(name[8:]) >= _stage.MIN_PYTHON[1]]
    assert [name for name in _stage.DISCOVERY_ORDER if name in kept] == kept


@pytest.mark.parametrize("shell", SHELLS, ids=lambda argv: " ".join(argv))
def test_discovery_takes_the_first_that_exists_and_is_new_enough(
    shell: list[str], bin_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _reporting(other / "python3", (3, 6, 8))
    (other / "platform-python").write_text("#!/bin/sh\n")  # not executable: dash's command -v still names it
    _real(bin_dir / "python3")
    order = ["python3.14", str(other / "python3"), str(other / "platform-python"), "python3"]
    done = _discover(shell, bin_dir, order)
    # Stage 0 ran in the one chosen (it found no stage 1 on stdin: status 1, quietly), after the one line saying which.
    assert done.returncode == 1
    assert done.stderr.decode() == f"fanout: using the discovered Python interpreter {bin_dir}/python3\n"
    silent = _discover(shell, bin_dir, order, silent=True)
    assert (silent.returncode, silent.stderr) == (1, b"")


@pytest.mark.parametrize("shell", SHELLS, ids=lambda argv: " ".join(argv))
def test_discovery_takes_a_versioned_name_at_its_word(shell: list[str], bin_dir: Path, tmp_path: Path) -> None:
    """python3.12 is new enough by its name: it is exec'd at once, so its one start is stage 0's."""
    starts = tmp_path / "starts"
    counting = bin_dir / "python3.12"
    counting.write_text(f'#!/bin/sh\necho >> {shlex.quote(str(starts))}\nexec {shlex.quote(sys.executable)} "$@"\n')
    counting.chmod(0o755)
    (bin_dir / "python3.13").write_text("#!/bin/sh\n")  # not executable: bash's command -v still names it
    _real(bin_dir / "python3")
    done = _discover(shell, bin_dir, ["python3.13", "python3.12", "python3"])
    assert done.returncode == 1
    assert done.stderr.decode() == f"fanout: using the discovered Python interpreter {bin_dir}/python3.12\n"
    assert starts.read_text() == "\n"
    _reporting(bin_dir / "python3.13", (3, 6, 8))  # a name that lies is believed: stage 0's check then names it
    lying = _discover(shell, bin_dir, ["python3.13", "python3"], silent=True)
    assert (lying.returncode, lying.stderr.decode()) == (97, f"fanout:old-python 3.6.8 {bin_dir}/python3.13\n")


@pytest.mark.parametrize("shell", SHELLS, ids=lambda argv: " ".join(argv))
def test_discovery_with_none_new_enough_names_the_first_found(shell: list[str], bin_dir: Path) -> None:
    _reporting(bin_dir / "python3", (3, 6, 8))
    _reporting(bin_dir / "platform-python", (2, 7, 18))
    done = _discover(shell, bin_dir, ["python3.14", "python3", str(bin_dir / "platform-python")])
    assert done.returncode == _stage.UNSUPPORTED_STATUS
    assert done.stderr.decode() == f"fanout:old-python 3.6.8 {bin_dir}/python3\n"
    tail = StderrTail("web1")
    tail.pump(iter([done.stderr, b""]).__next__)
    assert str(_stage.unsupported_python("web1", tail)) == f"web1 runs Python 3.6.8 ({bin_dir}/python3); " + NEEDS


@pytest.mark.parametrize("shell", SHELLS, ids=lambda argv: " ".join(argv))
def test_discovery_with_none_found_says_where_it_looked(shell: list[str], bin_dir: Path) -> None:
    done = _discover(shell, bin_dir, ["python3.14", str(bin_dir / "python3"), "/nonexistent/platform-python"])
    assert (done.returncode, done.stderr) == (_stage.UNSUPPORTED_STATUS, b"fanout:no-python\n")
    tail = StderrTail("web1")
    tail.pump(iter([done.stderr, b""]).__next__)
    error = _stage.unsupported_python("web1", tail)
    looked = "python3.14, python3.13, python3.12, python3.11, python3.10, python3.9, /usr/bin/python3, "
    assert str(error) == f"web1 has no python3 (looked for {looked}/usr/libexec/platform-python, python3); " + NEEDS
    assert error.version is None and error.looked_for == _stage.DISCOVERY_ORDER


def test_a_users_interpreter_path_with_spaces_runs_stage0(bin_dir: Path) -> None:
    python = _real(bin_dir / "python3")
    done = subprocess.run(["/bin/sh", "-c", _stage.stage0_command(str(python))], input=b"", capture_output=True)
    assert (done.returncode, done.stderr) == (1, b"")  # stage 0 ran, and found no stage 1


def _launcher(bin_dir: Path, order: list[str], *, silent: bool = False) -> str:
    """A "python" for fanout.local that ignores its arguments and runs discovery, as a host's shell would."""
    path = bin_dir.parent / "discover"
    command = _stage.discovery_command(silent=silent, order=order)
    path.write_text(f"#!/bin/sh\nPATH={shlex.quote(str(bin_dir))}\n{command}\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.fleet
def test_a_child_starts_through_discovery_with_stage1_already_waiting(bin_dir: Path, caplog) -> None:
    """The master writes stage 1 at once: the version tests must leave it on stdin for the one chosen."""
    (bin_dir / "old").mkdir()
    _reporting(bin_dir / "old/python3", (3, 8, 10))
    _real(bin_dir / "python3")
    with (
        caplog.at_level(logging.WARNING, "fanout.remote.web1"),
        fanout.local(
            _launcher(bin_dir, ["python3.13", str(bin_dir / "old/python3"), "python3"]), name="web1"
        ) as context,
    ):
        assert context.call(os.getpid) == context.pid
        assert context.python_version == tuple(sys.version_info[:3])
        assert context._wait_hello().executable == f"{bin_dir}/python3"
    said = [r.getMessage() for r in caplog.records if r.name == "fanout.remote.web1"]
    assert said == [f"fanout: using the discovered Python interpreter {bin_dir}/python3"]


@pytest.mark.fleet
def test_a_child_whose_python_is_too_old_fails_every_call_in_one_line(bin_dir: Path) -> None:
    python = _reporting(bin_dir / "python3", (3, 6, 8))
    with fanout.local(str(python), name="web1") as context:
        for _ in range(2):
            with pytest.raises(UnsupportedPython) as raised:
                context.call(os.getpid)
            assert str(raised.value) == f"web1 runs Python 3.6.8 ({python}); " + NEEDS
    no_python = pytest.raises(UnsupportedPython, match=r"^web2 has no python3 \(looked for python3\.14, ")
    with fanout.local(_launcher(bin_dir, ["python3.14"]), name="web2") as context, no_python:
        context.call(os.getpid)


@pytest.mark.fleet
def test_a_hostile_old_python_report_is_bounded_and_escaped(bin_dir: Path) -> None:
    """A host may say anything: the error keeps a little of it, with its control characters escaped."""
    report = "import sys;sys.stderr.write('fanout:old-python \\x1b[2J' + '9' * 200000 + ' /ev\\x07il' * 5000 + '\\n')"
    evil = bin_dir / "python3"
    evil.write_text(
        f'#!/bin/sh\ncase "$2" in *fanout_stage1*) ;; *) exit 1 ;; esac\n'
        f"{shlex.quote(sys.executable)} -c {shlex.quote(report)}\nexit 97\n"
    )
    evil.chmod(0o755)
    launcher = _launcher(bin_dir, ["python3"], silent=True)
    with fanout.local(launcher, name="web1") as context, pytest.raises(UnsupportedPython) as raised:
        context.call(os.getpid)
    error = raised.value
    shown = str(error)
    assert shown.startswith("web1 runs Python \\x1b[2J999") and shown.endswith(NEEDS)
    escaped = 6  # characters an escaped character may take: \u202e
    assert len(shown) < len(NEEDS) + escaped * (_stage.MAX_REPORTED_VERSION + _stage.MAX_REPORTED_PATH) + 100
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert (
        len(error.version) <= _stage.MAX_REPORTED_VERSION + 3 and len(error.executable) <= _stage.MAX_REPORTED_PATH + 3
    )
