"""What the command reports, as each host finishes and at the end: result lines, ``--tree`` files, the tally,
the ``--retry-file``, the exit status.

Files are written beside their target and renamed into place: a reader never sees half a file, and a link
standing where one goes is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import fanout
from fanout import _cli_json, _cli_output, _progress, _terminal
from fanout._cli_logs import RemoteLogs

MAX_FILE_NAME = 255  # bytes of one file name, as Linux and macOS file systems take them
TEXT, ONE_LINE, JSON = "text", "one-line", "json"  # how result lines are written


def exit_status(results: fanout.Results) -> int:
    """Ansible's: 4 when any host was never reached, else 2 when any failed, else 0."""
    if results.unreachable:
        return 4
    return 2 if results.failed else 0


def check_tree(directory: str, hosts: Iterable[str]) -> Path:
    """``--tree DIR``, made now (before anything connects), and checked to take a file named for each host."""
    for host in hosts:
        if host in ("", ".", "..") or "/" in host or "\0" in host or len(os.fsencode(host)) > MAX_FILE_NAME:
            raise ValueError(f"--tree: the host name {host!r} cannot be a file name")
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--tree {directory}: cannot make the directory: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--tree {directory}: the directory is not writable")
    return path


def check_retry_file(path: str) -> Path:
    """``--retry-file PATH``: its directory must exist now, so the end of a long run does not find out."""
    target = Path(path)
    parent = target.parent
    if target.is_dir():
        raise ValueError(f"--retry-file {path}: is a directory")
    if not parent.is_dir():
        raise ValueError(f"--retry-file {path}: no such directory {str(parent)!r}")
    return target


def _umask() -> int:
    """The process's umask (read as Python can: by setting it, once, before any thread could create a file)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # as open() would create the file; mkstemp's temporary is 0600


def write_file(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file beside it, renamed into place."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".fanout-")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class Output:
    """Result lines to stdout, each in one write; a reader that went away (``| head``) ends the printing quietly."""

    def __init__(self) -> None:
        self.open = True

    def line(self, text: str) -> None:
        if self.open and not _progress.write("stdout", text + "\n"):
            self.open = False
            with contextlib.suppress(OSError, ValueError):  # so that the flush at exit does not complain either
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)


def say(message: str) -> None:
    """``fanout: message`` on stderr, on one line whatever the message holds."""
    _progress.write("stderr", f"fanout: {_terminal.escape(message)}\n")


class Report:
    """Each host's result as it finishes: its lines on stdout (``mode``: text, one line or JSON), its file in
    ``tree``; then, at the end, the tally and the ``retry`` file."""

    def __init__(self, mode: str, logs: RemoteLogs, tree: Path | None = None, retry: Path | None = None) -> None:
        self.mode, self.logs, self.tree, self.retry = mode, logs, tree, retry
        self.colour = mode != JSON and _cli_output.colour_wanted(sys.stdout)
        self._out = Output()
        self._tree_failed = False

    def result(self, result: fanout.Result) -> None:
        """Show one host's result, and write its --tree file."""
        document = None
        if self.mode == JSON or self.tree is not None:
            document = _cli_json.record(result, self.logs.taken(result.host))
        if self.mode == JSON:
            self._out.line(_cli_json.dumps(document))
        else:
            lines = [_cli_output.one_line(result)] if self.mode == ONE_LINE else _cli_output.lines(result)
            self._out.line("\n".join(_cli_output.painted(lines, result.status) if self.colour else lines))
        if self.tree is not None and not self._tree_failed:
            try:
                write_file(self.tree / result.host, _cli_json.dumps(document) + "\n")
            except OSError as exc:
                self._tree_failed = True  # said once: the results go on
                say(f"--tree: cannot write {self.tree / result.host}: {exc.strerror or exc}; no more files written")

    def end(self, results: fanout.Results, interrupted: bool) -> None:
        """The tally (text modes, several hosts), the retry file, and the interruption if there was one."""
        if self.mode != JSON and len(results) > 1:
            _progress.write("stderr", results.summary() + "\n")
        if self.retry is not None:
            names = [name for name, result in results.items() if not result.ok]
            try:
                write_file(self.retry, "".join(f"{name}\n" for name in names))
            except OSError as exc:
                say(f"--retry-file: cannot write {self.retry}: {exc.strerror or exc}")
        if interrupted:
            finished = sum(result.status != _cli_output.INTERRUPTED for result in results.values())
            say(f"interrupted; {finished} of {len(results)} hosts finished")
