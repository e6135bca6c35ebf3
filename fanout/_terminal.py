"""Text from hosts made safe for a terminal: every character that could act on it is shown, escaped, instead.

A host may return or print anything. Written raw, ``\\x1b]0;...\\x07`` retitles the window, ``\\r`` or cursor moves
erase a ``FAILED`` already on screen, ``\\n`` starts a line that looks like another host's result, and the
bidirectional controls reorder what is read. :func:`escape` writes each such character as ``repr`` would.
"""

from __future__ import annotations

import re
from typing import TextIO

__all__ = ["escape", "write"]

# C0 controls but TAB, DEL, C1 controls, the Unicode line and paragraph separators, the bidirectional controls
# (marks, embeddings and overrides, isolates), and lone surrogates (no terminal encoding can write them).
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escaped_char(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_UNSAFE_CODES = [
    *range(0x00, 0x09),
    *range(0x0A, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    0x200E,
    0x200F,
    0x061C,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    *range(0xD800, 0xE000),
]
# str.translate runs in C: a line of nothing but control characters costs no Python call per character.
_TABLE = {code: _escaped_char(chr(code)) for code in _UNSAFE_CODES}


def escape(text: str) -> str:
    """``text`` with each control character a host could use on a terminal written as ``repr`` shows it
    (``\\n``, ``\\r``, ``\\x1b``, ``\\x85``, ``\\u202e``...); tabs, backslashes and printable text stay as they are.
    Linear time, in C; text with nothing to escape is returned as it is."""
    if _UNSAFE.search(text) is None:
        return text
    return text.translate(_TABLE)


def write(stream: TextIO, text: str) -> bool:
    """Write ``text`` to ``stream`` in one call, as its encoding can take it (what it cannot, backslash-escaped).

    Returns False when the stream is closed (``| head`` went away), so the caller can stop writing there.
    """
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:  # an ASCII-only terminal, say: escape instead of failing
            encoding = getattr(stream, "encoding", None) or "utf-8"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except (OSError, ValueError):  # a closed pipe or terminal; ValueError: the stream object was closed
        return False
    return True
