"""The docker-compose fleet: the file describes the same hosts, and the tests can use it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import paramiko
import pytest
import yaml

from tests.fleet import hosts, images
from tests.fleet.plain_ssh import run, ssh_client

ROOT = Path(__file__).resolve().parent.parent


def compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_file_describes_four_hosts_per_suite() -> None:
    services = compose_services()
    suites = Counter(service["labels"][hosts.SUITE_LABEL] for service in services.values())
    assert suites == {"bullseye": 4, "bookworm": 4, "trixie": 4}


def test_compose_hosts_build_from_the_fleet_dockerfile_and_listen_on_loopback_only() -> None:
    ports = set()
    for name, service in compose_services().items():
        labels = service["labels"]
        assert service["container_name"] == f"fanout-fleet-{name}"
        assert labels[hosts.COMPOSE_LABEL] == "1"
        assert (ROOT / service["build"]["context"] / "Dockerfile") == images.CONTEXT_DIR / "Dockerfile"
        assert service["build"]["args"]["SUITE"] == labels[hosts.SUITE_LABEL]
        assert name.startswith(labels[hosts.SUITE_LABEL] + "-")
        assert service["ports"] == [f"127.0.0.1:{labels[hosts.PORT_LABEL]}:22"]
        assert service["environment"]["SSH_PORT"] == "22"
        ports.add(labels[hosts.PORT_LABEL])
    assert len(ports) == len(compose_services())


@pytest.fixture
def compose_like_hosts(fleet):
    """Two containers labelled as docker compose labels them, without our key (as compose starts them)."""
    started = []
    for suite, port in zip(("bullseye", "trixie"), hosts.free_ports(2), strict=True):
        started.append(
            fleet.client.containers.run(
                images.image_tag(suite),
                name=f"fanout-fleet-{suite}-compose-{fleet.run_id}",
                detach=True,
                network_mode="host",  # this engine has no bridge; compose publishes ports instead
                environment={"SSH_PORT": str(port), "LISTEN_ADDRESS": hosts.ADDRESS},
                labels={
                    hosts.COMPOSE_LABEL: "1",
                    hosts.SUITE_LABEL: suite,
                    hosts.PORT_LABEL: str(port),
                    hosts.OWNER_LABEL: hosts._owner(),
                },
            )
        )
    yield started
    for container in started:
        container.remove(force=True)


def test_attaching_to_a_compose_fleet_authorizes_then_revokes_the_run_key(fleet, compose_like_hosts, tmp_path):
    attached = hosts.attach_compose_fleet(fleet.client, tmp_path)
    assert sorted(host.name for host in attached.hosts) == sorted(
        f"{suite}-compose-{fleet.run_id}" for suite in ("bullseye", "trixie")
    )
    for host in attached.hosts:
        client = ssh_client(host)
        try:
            status, out, _ = run(client, "python3 -c 'import sys; print(sys.version_info[1])'")
        finally:
            client.close()
        assert (status, int(out)) == (0, hosts.EXPECTED_PYTHON[host.suite][1])
    attached.close()
    for host in attached.hosts:
        with pytest.raises(paramiko.AuthenticationException):
            ssh_client(host)
    assert all(container.reload() or container.status == "running" for container in compose_like_hosts)


def test_attaching_with_no_compose_fleet_says_what_to_run(fleet, tmp_path) -> None:
    with pytest.raises(hosts.FleetUnavailable, match="docker compose up"):
        hosts.attach_compose_fleet(fleet.client, tmp_path)
