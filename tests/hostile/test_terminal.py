"""What a host returns or raises cannot act on the terminal, nor forge another host's result line (issue 9, class 6).

``fanout._terminal.escape`` is held to each class of control character and to properties over any text; then the
command is run as users run it, on a local child, with a module that returns and raises hostile text.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout._terminal import escape
from tests.fleet.cli import COMMAND_TIMEOUT, fanout_exe

C0_BUT_TAB = [chr(c) for c in range(0x20) if c != 0x09]
C1 = [chr(c) for c in range(0x80, 0xA0)]
SEPARATORS = ["\u2028", "\u2029"]
BIDI = ["\u200e", "\u200f", "\u061c", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
UNSAFE = [*C0_BUT_TAB, "\x7f", *C1, *SEPARATORS, *BIDI]


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_each_control_character_is_shown_as_repr_shows_it(char: str) -> None:
    assert escape(f"a{char}b") == f"a{repr(char)[1:-1]}b"


def test_the_familiar_ones() -> None:
    assert escape("1\n2\r3\x1b]0;title\x07") == "1\\n2\\r3\\x1b]0;title\\x07"
    assert escape("\x00\x7f\x85\x9b") == "\\x00\\x7f\\x85\\x9b"
    assert escape("abc\u202edcba\u2066") == "abc\\u202edcba\\u2066"


def test_lone_surrogates_are_escaped_too() -> None:
    """No encoding writes one: printed raw, a lone surrogate would stop the output with UnicodeEncodeError."""
    assert escape("x\udc80y") == "x\\udc80y"


def test_tabs_backslashes_and_printable_text_stay() -> None:
    text = "tab\there, back\\slash, \\n as written, é, 中文, emoji \U0001f600, nbsp\u00a0, zwj\u200d"
    assert escape(text) == text


def test_a_large_input_is_escaped_whole() -> None:
    """One pass over the text: 16 MiB of escapes come back with every character accounted for."""
    text = "\x1b\n" * (8 * 1024 * 1024)
    out = escape(text)
    assert out == "\\x1b\\n" * (8 * 1024 * 1024)


_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|n|r)")


def _unescape(text: str) -> str:
    """escape's inverse, for text that had no backslash of its own."""
    return _ESCAPE.sub(lambda m: {"n": "\n", "r": "\r"}.get(m.group(1)) or chr(int(m.group(1)[1:], 16)), text)


def _unsafe(char: str) -> bool:
    return (unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") and char != "\t") or char in BIDI


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=())))
def test_escaped_text_has_no_control_characters_and_unescapes_to_the_original(text: str) -> None:
    out = escape(text)
    assert not any(_unsafe(char) for char in out)
    if "\\" not in text:
        assert _unescape(out) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"), exclude_characters=BIDI)))
def test_printable_text_is_unchanged(text: str) -> None:
    assert escape(text) == text


# --------------------------------------------------------------------------------------- the command's human output

FORGED = "\r\x1b[2K\x1b]0;pwned\x07\ngoodhost | ok | 1\r\ngoodhost | ok | 2\x85goodhost | ok | 3\u2028\u202eok"

HOSTILE_MODULE = f"""
FORGED = {FORGED!r}


def value():
    return FORGED


def error():
    raise ValueError(FORGED)

"""


RESULT_LINE = re.compile(r"^\S+ \| (ok|FAILED|UNREACHABLE|AUTH FAILED|TIMED OUT) \| ")


def run_fanout(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([fanout_exe(), *args], capture_output=True, timeout=COMMAND_TIMEOUT, cwd=cwd)
    assert b"Traceback (most recent call last)" not in done.stderr
    return done


@pytest.fixture
def hostile_dir(tmp_path: Path) -> Path:
    (tmp_path / "hostile_returns.py").write_text(textwrap.dedent(HOSTILE_MODULE))
    return tmp_path


def assert_no_forgery(stdout: bytes) -> list[str]:
    """Every line is the real host's, none holds a raw ESC, CR, C1 or bidirectional control; the lines, decoded."""
    text = stdout.decode("utf-8")
    assert "\r" not in text and "\x1b" not in text
    assert not any(_unsafe(char) for char in text.replace("\n", ""))
    lines = text.split("\n")
    assert lines[-1] == ""
    for line in lines[:-1]:
        assert line == "localhost |" or line.startswith("localhost | "), line
        assert not line.startswith("goodhost")
    return lines[:-1]


@pytest.mark.parametrize("function", ["value", "error"])
def test_a_value_or_an_error_cannot_forge_a_result_line(hostile_dir: Path, function: str) -> None:
    done = run_fanout(hostile_dir, "localhost", "-m", f"hostile_returns.{function}")
    lines = assert_no_forgery(done.stdout)
    result_lines = [line for line in lines if RESULT_LINE.match(line)]
    assert len(result_lines) == 1
    assert result_lines[0].startswith("localhost | ok | " if function == "value" else "localhost | FAILED | ")
    assert "\\x1b]0;pwned\\x07" in result_lines[0]  # shown, not acted on
    if function == "error":
        # the rest of the message and the remote traceback follow, each line under the host's own prefix
        assert "localhost |     goodhost | ok | 1\\r" in lines  # the error indents its own further lines too
        assert "localhost |   Remote traceback:" in lines


def test_a_commands_stderr_cannot_forge_a_result_line(hostile_dir: Path) -> None:
    command = "printf '\\033]0;pwned\\007\\r\\ngoodhost | ok | 1\\r' >&2; exit 3"
    done = run_fanout(hostile_dir, "localhost", "--shell", command)
    assert done.returncode == 2
    # the command wrote to stderr only: stdout holds the result line alone (the live lines are on stderr)
    assert assert_no_forgery(done.stdout) == ["localhost | FAILED | rc=3: goodhost | ok | 1\\r"]


def test_json_stays_exact(hostile_dir: Path) -> None:
    done = run_fanout(hostile_dir, "localhost", "-m", "hostile_returns.value", "--json")
    assert done.returncode == 0
    (line,) = done.stdout.decode().splitlines()
    assert json.loads(line)["value"] == FORGED
    assert line.isascii() and "\x1b" not in line
