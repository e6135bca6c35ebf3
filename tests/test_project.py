"""Project hygiene a user relies on: the docs build without warnings, match the code, cite only what the
repository holds, and the code is lint-clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fanout import _wire

ROOT = Path(__file__).resolve().parent.parent


def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(tmp_path / "html")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "html" / "index.html").exists()


@pytest.mark.parametrize(
    "command", [["check", "--no-cache"], ["format", "--check", "--no-cache"]], ids=["lint", "format"]
)
def test_ruff_clean(command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_frame_table_lists_every_kind_with_its_number_and_direction() -> None:
    text = (ROOT / "docs" / "protocol.rst").read_text()
    rows = re.findall(r"^([A-Z_]+) \((\d+)\) +to (child|master) ", text, re.MULTILINE)
    documented = {(name, int(number), direction) for name, number, direction in rows}
    expected = {
        (name, kind, "child" if kind in _wire.TO_CHILD else "master") for kind, name in _wire.KIND_NAMES.items()
    }
    assert documented == expected
    assert len(rows) == len(documented)  # each kind once
    every_kind = _wire.TO_CHILD | _wire.TO_MASTER
    assert set(_wire.KIND_NAMES) == every_kind


def _repository_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def _texts() -> list[tuple[Path, str]]:
    texts = []
    for path in _repository_files():
        try:
            texts.append((path, path.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, FileNotFoundError):  # binary, or deleted in this work tree
            continue
    return texts


def test_nothing_cites_a_document_outside_the_repository() -> None:
    """Decisions are cited by their titles in docs/design.rst, which the repository holds, never by a number in a
    document it does not."""
    outside = re.compile("DESIGN" + r"\.md|\b[Dd]ecisions? +#?[0-9]")  # spelled so this file does not match itself
    cited = [f"{path.relative_to(ROOT)}: {match[0]!r}" for path, text in _texts() for match in outside.finditer(text)]
    assert cited == []


def test_every_decision_cited_by_title_is_in_the_design_page() -> None:
    """A citation names a section of docs/design.rst: a decision the code relies on, or a group of later choices."""
    design = (ROOT / "docs" / "design.rst").read_text()
    titles = set(re.findall(r"^(.+)\n[~-]+$", design, re.MULTILINE))
    citation = re.compile(r"docs/design\.rst`{0,2},\s+\"([^\"]+)\"")
    cited = {
        (str(path.relative_to(ROOT)), " ".join(title.split()))  # a title may be cited across a line break
        for path, text in _texts()
        for title in citation.findall(text)
    }
    assert cited, "no citation found: the pattern is wrong"
    assert {(path, title) for path, title in cited if title not in titles} == set()
