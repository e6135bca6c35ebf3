"""A ProxyCommand's stderr carries words of other hosts (``ssh -W`` prints a jump host's banner and errors): what
fanout keeps of it is bounded however much arrives, and quoted without its control characters."""

from __future__ import annotations

import pytest

from fanout._proxy_command import _SHOWN_CHARS, ProxyCommandSocket
from fanout._transport import _STDERR_LINE, _STDERR_LINES

pytestmark = pytest.mark.fleet  # starts processes (the proxies): out of the fast subset
WAIT = 30.0  # seconds a read may block here: far beyond any machine's need; a bug fails, it does not hang


def _run_to_end(command: str) -> ProxyCommandSocket:
    sock = ProxyCommandSocket(command, "web1")
    sock.settimeout(WAIT)
    try:
        while sock.recv(65536):
            pass
    finally:
        sock.close()
    return sock


def test_an_endless_stderr_line_is_cut_not_gathered() -> None:
    sock = _run_to_end("head -c 8000000 /dev/zero | tr '\\0' x >&2")
    tail = sock.stderr_tail(WAIT)
    assert len(tail) <= _SHOWN_CHARS + 3 and tail.endswith("more bytes of this line dropped]")
    assert sum(len(line) for line in sock.stderr.lines) <= _STDERR_LINE + 100


def test_a_flood_of_stderr_lines_keeps_the_last_few() -> None:
    sock = _run_to_end("seq 1 20000 >&2")
    assert sock.stderr_tail(WAIT).endswith("19999 / 20000")
    assert list(sock.stderr.lines) == [str(n) for n in range(20001 - _STDERR_LINES, 20001)]


def test_control_characters_in_stderr_are_not_quoted_raw() -> None:
    tail = _run_to_end("printf 'a\\033]0;title\\007b\\rc\\n' >&2").stderr_tail(WAIT)
    assert tail.isprintable() and "\033" not in tail and "\007" not in tail
