"""Reach a Docker engine, installing and starting one when this machine has none.

A fresh CI machine has no Docker: when the process is root and apt-get exists,
we install ``docker.io`` and ``debootstrap`` and start ``dockerd`` with host
networking only (``--bridge=none --iptables=false``), as the machine allows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import docker
import docker.errors

DOCKERD_LOG = "/var/log/fanout-dockerd.log"
_APT_PACKAGES = ("docker.io", "debootstrap", "openssh-client")  # ssh-agent: the agent-key test


class FleetUnavailable(RuntimeError):
    """The test fleet cannot be brought up here; the message says why."""


def _ping() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except (docker.errors.DockerException, OSError):
        return None


def _run(cmd: list[str], what: str, log) -> None:
    log(f"fleet: {what}: {' '.join(cmd)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-10:])
        raise FleetUnavailable(f"{what} failed (exit {done.returncode}):\n{tail}")


def install_packages(log=print) -> None:
    """apt-get install what the fleet needs on this machine, when something is missing."""
    missing = any(shutil.which(tool) is None for tool in ("dockerd", "debootstrap", "ssh-agent"))
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise FleetUnavailable(
            "Docker and debootstrap are not installed, and this process cannot install them "
            "(needs root and apt-get); install docker.io and debootstrap, or start the "
            "docker-compose fleet and set FANOUT_TEST_FLEET=compose"
        )
    _run(["apt-get", "update", "-q"], "apt-get update", log)
    _run(["apt-get", "install", "-y", "-q", *_APT_PACKAGES], "installing Docker", log)


def _start_dockerd(log) -> None:
    log(f"fleet: starting dockerd (log: {DOCKERD_LOG})")
    with open(DOCKERD_LOG, "ab") as out:
        subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives this test run: the next run reuses it
        )


def docker_engine(log=print, start_timeout: float = 60.0) -> docker.DockerClient:
    """A client of a running Docker engine; install and start one if we may."""
    client = _ping()
    if client is not None:
        return client
    if os.geteuid() != 0:
        raise FleetUnavailable(
            "no Docker engine is reachable and this process is not root, so it cannot start one; "
            "start dockerd (or set DOCKER_HOST), or use the docker-compose fleet"
        )
    install_packages(log)
    _start_dockerd(log)
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        client = _ping()
        if client is not None:
            return client
        time.sleep(0.5)
    tail = ""
    if os.path.exists(DOCKERD_LOG):
        with open(DOCKERD_LOG, errors="replace") as fh:
            tail = "".join(fh.readlines()[-10:])
    raise FleetUnavailable(f"dockerd did not answer within {start_timeout:.0f} s:\n{tail}")
