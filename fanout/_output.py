"""What hosts print, held on the master within caps: long lines joined in linear time, buffers that keep the tail.

A host decides how much it prints and how it cuts it into pieces; nothing here
lets that cost the master more than a fixed amount of memory per host, or
more than linear time in what arrived. Past a cap, output is dropped with a
count that the reader is shown, never silently.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable
from dataclasses import dataclass, field

MAX_LINE = 4 * 1024 * 1024  # bytes of one line kept (see weight); the rest of it is counted and dropped
MAX_PARTIAL = 16 * 1024 * 1024  # bytes of unfinished lines held per host, over all its streams and calls


def weight(text: str) -> int:
    """What ``text`` may cost in memory, in bytes: a character outside ASCII may take four (a cheap bound)."""
    return len(text) if text.isascii() else 4 * len(text)


def cut_marker(characters: int) -> str:
    return f" [fanout: {characters} more characters of this line dropped]"


@dataclass
class _Partial:
    parts: list[str] = field(default_factory=list)
    length: int = 0
    cut: int = 0


class LineAssembler:
    """Joins a long line's pieces (each but the last marked continued) once, whole, within caps.

    Pieces are keyed (by stream and printing call) so one writer's line never
    lands inside another's. A line past :data:`MAX_LINE`, or pieces past
    :data:`MAX_PARTIAL` over all keys, keep their head; the rest is counted
    and the line ends with a marker saying how much went.
    """

    def __init__(self, max_line: int = MAX_LINE, max_partial: int = MAX_PARTIAL) -> None:
        self._max_line = max_line
        self._max_partial = max_partial
        self._pending: dict[Hashable, _Partial] = {}
        self._held = 0

    @property
    def held(self) -> int:
        """Bytes (by :func:`weight`) of unfinished lines held now."""
        return self._held

    def add(self, key: Hashable, text: str, continued: bool) -> str | None:
        """The whole line once its last piece arrives; None while pieces are pending."""
        partial = self._pending.get(key)
        if partial is None:
            if not continued:
                return self._clip_alone(text)
            partial = self._pending[key] = _Partial()
        cost = weight(text)
        room = min(self._max_line - partial.length, self._max_partial - self._held)
        if room >= cost:
            kept = text
        else:
            kept = text[: max(room, 0) // (cost // max(len(text), 1) or 1)]  # as many characters as fit
            partial.cut += len(text) - len(kept)
        partial.parts.append(kept)
        kept_cost = weight(kept)
        partial.length += kept_cost
        self._held += kept_cost
        if continued:
            return None
        del self._pending[key]
        self._held -= partial.length
        line = "".join(partial.parts)
        return line + cut_marker(partial.cut) if partial.cut else line

    def _clip_alone(self, text: str) -> str:
        cost = weight(text)
        if cost <= self._max_line:
            return text
        keep = self._max_line // (cost // len(text))
        return text[:keep] + cut_marker(len(text) - keep)

    def clear(self) -> None:
        self._pending.clear()
        self._held = 0


class TailBuffer:
    """Items with a size, within a total: past it the oldest go, counted, so the latest are always kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: collections.deque[tuple[object, int]] = collections.deque()
        self.size = 0
        self.dropped = 0
        self.dropped_size = 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, item: object, size: int) -> None:
        self._items.append((item, size))
        self.size += size
        while self.size > self.limit and len(self._items) > 1:
            _, gone = self._items.popleft()
            self.size -= gone
            self.dropped += 1
            self.dropped_size += gone

    def take(self) -> tuple[list, int, int]:
        """Everything held, and how many items (and how much) were dropped before it; the buffer starts afresh."""
        items = [item for item, _ in self._items]
        taken = (items, self.dropped, self.dropped_size)
        self._items.clear()
        self.size = self.dropped = self.dropped_size = 0
        return taken


def dropped_marker(lines: int, characters: int, why: str) -> str:
    """The line shown where output was dropped."""
    return f"[fanout: {lines} earlier lines ({characters} characters) dropped: {why}]"
