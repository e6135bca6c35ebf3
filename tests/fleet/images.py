"""Build (or reuse) the fleet's images: ``fanout-fleet:<suite>`` on ``debian:<suite>-slim``."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import docker.errors

from . import base_image, engine

CONTEXT_DIR = Path(__file__).parent
_CONTEXT_FILES = ("Dockerfile", "entrypoint.sh")
_CONTEXT_LABEL = "fanout.test-fleet.context"
IMAGE_REPOSITORY = "fanout-fleet"


def context_digest() -> str:
    """A digest of the build context, so an image is rebuilt exactly when its sources change."""
    digest = hashlib.sha256()
    for name in _CONTEXT_FILES:
        digest.update(name.encode() + b"\0" + (CONTEXT_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def image_tag(suite: str) -> str:
    """The tag of one suite's fleet image."""
    return f"{IMAGE_REPOSITORY}:{suite}"


def _current(client: docker.DockerClient, tag: str, digest: str) -> bool:
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return (image.labels or {}).get(_CONTEXT_LABEL) == digest


def _has_base(client: docker.DockerClient, suite: str) -> bool:
    try:
        client.images.get(f"debian:{suite}-slim")
        return True
    except docker.errors.ImageNotFound:
        return False


def _build_one(client: docker.DockerClient, suite: str, digest: str, log) -> bool:
    """Make sure one suite's image is current; True when it had to be built."""
    tag = image_tag(suite)
    if _current(client, tag, digest):
        return False
    if not _has_base(client, suite):
        engine.install_packages(log)
        try:
            base_image.build_base_image(suite, log=log)
        except base_image.BaseImageError as exc:
            raise engine.FleetUnavailable(str(exc)) from exc
    try:
        client.images.build(
            path=str(CONTEXT_DIR),
            tag=tag,
            buildargs={"SUITE": suite},
            labels={_CONTEXT_LABEL: digest},
            network_mode="host",
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        output = "".join(str(line.get("stream", line)) for line in exc.build_log)
        raise engine.FleetUnavailable(f"building {tag} failed: {exc}\n{output[-2000:]}") from exc
    log(f"fleet: built {tag}")
    return True


def ensure_images(client: docker.DockerClient, suites: list[str], log=print) -> bool:
    """Build the suites' images in parallel where missing; True when any was built."""
    digest = context_digest()
    with ThreadPoolExecutor(max_workers=len(suites) or 1) as pool:
        built = list(pool.map(lambda s: _build_one(client, s, digest, log), suites))
    return any(built)
