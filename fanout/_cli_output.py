"""How the command shows one host's result: ``host | STATUS | detail`` lines, or one line (``-o``), in colour on a
terminal.

Colours are Ansible's where fanout has the status (ok green, failed red); Ansible paints unreachable bright red,
hard to tell from failed, so fanout gives the hosts it never reached magenta and the ones that ran out of time
yellow (fanout has no "changed", Ansible's yellow). ``NO_COLOR``, ``TERM=dumb`` or an output that is not a
terminal turn colour off. Whatever a host sent is escaped (:mod:`fanout._terminal`): the only control
sequences in the output are the colours this module adds.
"""

from __future__ import annotations

import os
from typing import Any, TextIO

from fanout import _terminal
from fanout.fleet import CommandResult, Result

INTERRUPTED = "interrupted"  # the status of a host still running when Ctrl-C came: the command's alone

LABELS = {
    "ok": "ok",
    "failed": "FAILED",
    "unreachable": "UNREACHABLE",
    "auth-failed": "AUTH FAILED",
    "timed-out": "TIMED OUT",
    INTERRUPTED: "INTERRUPTED",
}

GREEN, RED, YELLOW, MAGENTA = "32", "31", "33", "35"  # SGR colour codes
COLOURS = {
    "ok": GREEN,
    "failed": RED,
    "unreachable": MAGENTA,
    "auth-failed": MAGENTA,
    "timed-out": YELLOW,
    INTERRUPTED: YELLOW,
}
INTERRUPTED_TEXT = "still running at Ctrl-C"


def colour_wanted(stream: TextIO) -> bool:
    """Colour only on a terminal that can show it, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def painted(lines: list[str], status: str) -> list[str]:
    """Each line in the status's colour (each on its own, so no colour runs past a line)."""
    code = COLOURS.get(status)
    return lines if code is None else [f"\x1b[{code}m{line}\x1b[0m" for line in lines]


def safe_repr(value: Any) -> str:
    """``repr(value)``, or what it is when Python cannot print it."""
    try:
        return repr(value)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deeply to print>"
    except ValueError:  # an int past Python's limit for decimal conversion (sys.get_int_max_str_digits)
        if isinstance(value, int):
            return f"<an int of {value.bit_length()} bits, too long to print in decimal>"
        return f"<a {type(value).__name__} holding an int too long to print in decimal>"


def _label(result: Result) -> str:
    return LABELS.get(result.status, result.status.upper())


def _error_text(result: Result) -> str:
    if result.status == INTERRUPTED:
        return INTERRUPTED_TEXT
    return getattr(result.error, "cli_text", None) or str(result.error)


def lines(result: Result) -> list[str]:
    """``host | STATUS | detail``, then any further lines of the detail (a remote traceback, say), each prefixed
    with the host's name. What the host sent is escaped: no line it controls can pass for another host's result."""
    host = _terminal.escape(result.host)
    value = result.value
    if isinstance(value, CommandResult):
        text = "killed at its timeout" if value.rc is None else f"rc={value.rc}"
        if result.error is not None and value.stderr.strip():
            text += ": " + value.stderr.rstrip("\n").split("\n")[-1]
    elif result.ok:
        text = safe_repr(value)
    else:
        text = _error_text(result)
    first, *more = text.split("\n")
    shown = [f"{host} | {_label(result)} | {_terminal.escape(first)}"]
    shown += [f"{host} |   {_terminal.escape(line)}" if line else f"{host} |" for line in more]
    return shown


def one_line(result: Result) -> str:
    """``-o``: the host's whole result on one line, as Ansible's oneline callback writes it: line ends shown as
    ``\\n``, and what the host printed after ``(stdout)`` and ``(stderr)``."""
    value = result.value
    if isinstance(value, CommandResult):
        text = "killed at its timeout" if value.rc is None else f"rc={value.rc}"
        stdout, stderr = value.stdout, value.stderr
    else:
        text = safe_repr(value) if result.ok else _error_text(result)
        stdout, stderr = result.stdout, result.stderr
    line = f"{_terminal.escape(result.host)} | {_label(result)} | {_terminal.escape(text)}"
    if stdout or stderr or isinstance(value, CommandResult):
        line += " | (stdout) " + _terminal.escape(stdout.removesuffix("\n"))
    if stderr:
        line += " (stderr) " + _terminal.escape(stderr.removesuffix("\n"))
    return line
