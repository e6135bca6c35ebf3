"""The hosts' log records on the command line: shown on stderr under the host's name, kept per host for ``--json``.

A host's records reach the ``fanout.remote.<host>`` logger, at the level that logger had when the host connected
(the child sends nothing below it): WARNING, or INFO with ``-v``, DEBUG with ``-vv``. The text arrives escaped
(:meth:`fanout.Context` escapes it before logging), its further lines indented.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from fanout import _output, _progress, _terminal

LOGGER = "fanout.remote"
LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)  # by the number of -v
LOG_KEPT_PER_HOST = 16 * 1024 * 1024  # bytes (by _output.weight) of a host's records kept for --json: the latest
_CONTINUED = "\n    "  # how fanout.Context joins the lines of one record


def level(verbosity: int) -> int:
    """The lowest level shown and sent for ``-v`` given ``verbosity`` times."""
    return LEVELS[min(verbosity, len(LEVELS) - 1)]


class RemoteLogs(logging.Handler):
    """Prints each record as ``[host] LEVEL logger: message`` on stderr (``show``), keeps it for the host's
    JSON object (``keep``)."""

    def __init__(self, show: bool, keep: bool) -> None:
        super().__init__()
        self.show, self.keep = show, keep
        self._kept: dict[str, _output.TailBuffer] = {}
        self._kept_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        # Never logging's "--- Logging error ---" and its traceback: whatever goes wrong drops this record only.
        with contextlib.suppress(Exception):
            self._handle(record)

    def _handle(self, record: logging.LogRecord) -> None:
        host = record.name.removeprefix(LOGGER + ".")
        message = record.getMessage()
        logger = getattr(record, "fanout_logger", None) or "fanout"
        # Kept before shown: once a record is on the screen, the host's JSON object has it.
        if self.keep:
            entry = {"level": record.levelname, "logger": logger, "message": message.replace(_CONTINUED, "\n")}
            with self._kept_lock:
                kept = self._kept.setdefault(host, _output.TailBuffer(LOG_KEPT_PER_HOST))
                kept.append(entry, _output.weight(entry["message"]) + _output.weight(logger) + 64)
        if self.show:
            prefix = f"[{_terminal.escape(host)}] "
            first, *more = message.split("\n")
            text = prefix + f"{record.levelname} {_terminal.escape(logger)}: {_terminal.escape(first)}\n"
            text += "".join(f"{prefix}{_terminal.escape(line)}\n" for line in more)
            _progress.write("stderr", text)

    def taken(self, host: str) -> list[dict[str, Any]]:
        """The host's records kept so far, oldest first; a marker record first where earlier ones were dropped."""
        with self._kept_lock:
            kept = self._kept.pop(host, None)
        if kept is None:
            return []
        entries, dropped, size = kept.take()
        if dropped:
            why = f"over the {LOG_KEPT_PER_HOST:,} bytes kept per host"
            marker = f"[fanout: {dropped} earlier records ({size:,} bytes) dropped: {why}]"
            entries.insert(0, {"level": "WARNING", "logger": "fanout", "message": marker})
        return entries


@contextlib.contextmanager
def remote_logs(verbosity: int, show: bool, keep: bool) -> Iterator[RemoteLogs]:
    """The hosts' records go to a :class:`RemoteLogs` (and nowhere else) while the command runs; set before the
    hosts connect, since each child asks for its level once."""
    logger = logging.getLogger(LOGGER)
    handler = RemoteLogs(show, keep)
    saved = logger.level, logger.propagate
    logger.setLevel(level(verbosity))
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
