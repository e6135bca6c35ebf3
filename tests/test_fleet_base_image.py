"""The base-image script reads its mirror from apt's sources, whatever their style, or says why not."""

from __future__ import annotations

import pytest

from tests.fleet import base_image

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_sources_give_the_archive_not_security() -> None:
    entries = list(base_image._deb822_entries(DEB822))
    assert entries == [
        ("http://mirror.example/debian", ["bookworm", "bookworm-updates"]),
        ("http://mirror.example/debian-security", ["bookworm-security"]),
    ]
    assert base_image.debian_mirror(entries) == "http://mirror.example/debian"


def test_security_listed_first_is_skipped() -> None:
    entries = list(reversed(list(base_image._deb822_entries(DEB822))))
    assert base_image.debian_mirror(entries) == "http://mirror.example/debian"


def test_disabled_and_source_only_stanzas_are_ignored() -> None:
    text = "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n" + (
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
    )
    assert list(base_image._deb822_entries(text)) == []


def test_one_line_sources_with_options_and_comments() -> None:
    text = """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian/ bookworm main
deb http://security.example/debian-security bookworm-security main
"""
    entries = list(base_image._one_line_entries(text))
    assert entries == [
        ("http://mirror.example/debian/", ["bookworm"]),
        ("http://security.example/debian-security", ["bookworm-security"]),
    ]
    assert base_image.debian_mirror(entries) == "http://mirror.example/debian"


def test_old_style_security_suite_is_not_the_archive() -> None:
    entries = [("http://security.example/debian", ["buster/updates"]), ("http://m.example/debian", ["buster"])]
    assert base_image.debian_mirror(entries) == "http://m.example/debian"


@pytest.mark.parametrize(
    "entries",
    [[], [("https://deb.nodesource.com/node_20.x", ["nodistro"])], [("http://x.example/debian-security", ["s"])]],
    ids=["nothing", "third-party-only", "security-only"],
)
def test_no_debian_mirror_is_a_clear_error(entries) -> None:
    with pytest.raises(base_image.BaseImageError, match="no Debian archive mirror found"):
        base_image.debian_mirror(entries)


def test_this_machines_sources_give_a_mirror() -> None:
    # The fleet's images are built from this; a machine without one could not run the suite.
    assert base_image.debian_mirror().startswith(("http://", "https://"))


def test_command_line_rejects_an_unknown_suite(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        base_image.main(["woody"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'woody'" in capsys.readouterr().err
