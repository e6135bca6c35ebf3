"""The fleet's progress bar: rich, on a terminal, for fan-outs over more than a few hosts; silent otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from fanout import _terminal

FEW_HOSTS = 4
# Held while a bar starts or stops, and while write() writes: a line written from another thread then goes above a
# bar that is fully shown, or straight to the stream once it is fully gone, never into a bar half-way out.
_SCREEN = threading.RLock()


def write(name: str, text: str) -> bool:
    """Write ``text`` to ``sys.stdout`` or ``sys.stderr`` (``name``) as it is now, in one call; above the bar while
    one is shown. False when the stream is closed (see :func:`fanout._terminal.write`)."""
    with _SCREEN:
        return _terminal.write(getattr(sys, name), text)


def human_bytes(count: float) -> str:
    """1536 -> "1.5 KiB": a count of bytes as people read it."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _isatty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed
        return False


def wanted(hosts: int, setting: bool | None) -> bool:
    """``None`` means: only when stderr is a terminal and there are more than a few hosts."""
    if setting is not None:
        return setting
    return hosts > FEW_HOSTS and _isatty(sys.stderr)


class Progress:
    """Hosts done out of all, with the tally of outcomes so far; prints above it pass through."""

    def __init__(self, description: str, total: int, enabled: bool) -> None:
        self._description = description
        self._total = total
        self._counts: dict[str, int] = {}
        self._bar: Any = None
        self._task: Any = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}", markup=False),  # a command's [brackets] are not markup
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[moved]}"),
                TextColumn("{task.fields[tally]}"),
                console=Console(file=sys.stderr),
                transient=True,
                # Lines printed meanwhile pass above the bar, unless stdout goes elsewhere (a file).
                redirect_stdout=_isatty(sys.stdout),
                redirect_stderr=True,
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            with _SCREEN:
                self._bar.start()
            self._task = self._bar.add_task(self._description, total=self._total, tally="", moved="")
            self._started = time.monotonic()
        return self

    def advance(self, status: str) -> None:
        if self._bar is None:
            return
        self._counts[status] = self._counts.get(status, 0) + 1
        tally = " ".join(f"{name}={count}" for name, count in sorted(self._counts.items()))
        self._bar.update(self._task, advance=1, tally=tally)

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def moved(self, nbytes: int) -> None:
        """Bytes transferred so far, all hosts together: shown with the rate since the start."""
        if self._bar is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-3)
        self._bar.update(self._task, moved=f"{human_bytes(nbytes)} at {human_bytes(nbytes / elapsed)}/s")

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            with _SCREEN:
                self._bar.stop()
