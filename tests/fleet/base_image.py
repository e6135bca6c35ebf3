"""Build ``debian:<suite>-slim`` locally with debootstrap when no registry is reachable.

Run as root: ``python -m tests.fleet.base_image bullseye bookworm trixie``.
The mirror is read from this machine's own apt sources, never hard-coded, so the
script works behind whatever mirror or proxy the machine is set up with.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

SUITES = ("bullseye", "bookworm", "trixie")
_SOURCES_LIST = "/etc/apt/sources.list"
_SOURCES_DIR = "/etc/apt/sources.list.d"

# What the official -slim images leave out; removing it keeps the rootfs small.
_SLIM_PATHS = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt/archives")


class BaseImageError(RuntimeError):
    """The base image could not be built; the message says why."""


def _one_line_entries(text: str) -> Iterable[tuple[str, list[str]]]:
    """Yield (uri, suites) from one-line-style ``deb URI SUITE COMPONENTS`` entries."""
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        rest = words[1:]
        if rest[0].startswith("["):  # options such as [arch=amd64 signed-by=...]
            while rest and not rest[0].endswith("]"):
                rest = rest[1:]
            rest = rest[1:]
        if len(rest) >= 2:
            yield rest[0], [rest[1]]


def _deb822_entries(text: str) -> Iterable[tuple[str, list[str]]]:
    """Yield (uri, suites) from deb822 ``.sources`` stanzas."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


def apt_source_entries() -> list[tuple[str, list[str]]]:
    """Every (uri, suites) pair this machine's apt is configured with."""
    entries: list[tuple[str, list[str]]] = []
    if os.path.exists(_SOURCES_LIST):
        entries += _one_line_entries(Path(_SOURCES_LIST).read_text())
    for path in sorted(glob.glob(os.path.join(_SOURCES_DIR, "*.list"))):
        entries += _one_line_entries(Path(path).read_text())
    for path in sorted(glob.glob(os.path.join(_SOURCES_DIR, "*.sources"))):
        entries += _deb822_entries(Path(path).read_text())
    return entries


def debian_mirror(entries: list[tuple[str, list[str]]] | None = None) -> str:
    """The Debian archive mirror from apt's sources (not the security archive)."""
    for uri, suites in apt_source_entries() if entries is None else entries:
        base = uri.rstrip("/")
        is_security = base.endswith("-security") or any(s.endswith("-security") or "/updates" in s for s in suites)
        if base.endswith("/debian") and not is_security:
            return base
    raise BaseImageError(
        "no Debian archive mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/; "
        "add one (a URI ending in /debian) or provide debian:<suite>-slim images yourself"
    )


def image_exists(tag: str) -> bool:
    """True when the local Docker engine already has ``tag``."""
    probe = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    return probe.returncode == 0


def build_base_image(suite: str, mirror: str | None = None, *, log=print) -> str:
    """Debootstrap ``suite`` (minbase) and ``docker import`` it as ``debian:<suite>-slim``."""
    tag = f"debian:{suite}-slim"
    if image_exists(tag):
        log(f"{tag}: present, reused")
        return tag
    for tool in ("debootstrap", "docker", "tar"):
        if shutil.which(tool) is None:
            raise BaseImageError(f"{tag}: `{tool}` is not installed (apt-get install debootstrap docker.io)")
    mirror = mirror or debian_mirror()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"fanout-{suite}-") as work:
        root = os.path.join(work, "rootfs")
        boot = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, root, mirror],
            capture_output=True,
            text=True,
        )
        if boot.returncode != 0:
            tail = "\n".join((boot.stdout + boot.stderr).splitlines()[-15:])
            raise BaseImageError(f"{tag}: debootstrap {suite} from {mirror} failed:\n{tail}")
        for rel in _SLIM_PATHS:
            target = os.path.join(root, rel)
            if os.path.isdir(target):
                shutil.rmtree(target)
                os.makedirs(target)
        tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["bash"]', "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise BaseImageError(f"{tag}: docker import failed: {imported.stderr.strip()}")
    log(f"{tag}: built from {mirror} in {time.monotonic() - started:.0f} s")
    return tag


def main(argv: list[str] | None = None) -> int:
    """Command line: build the named suites' base images (all three by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=list(SUITES), choices=SUITES)
    parser.add_argument("--mirror", help="override the mirror read from apt's sources")
    args = parser.parse_args(argv)
    try:
        for suite in args.suites:
            build_base_image(suite, args.mirror)
    except BaseImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
