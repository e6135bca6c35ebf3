"""Plain paramiko, no project code: how tests show the fleet is what it claims, and look at hosts from outside."""

from __future__ import annotations

import paramiko

from tests.fleet.hosts import FleetHost

CONNECT_TIMEOUT = 60  # seconds for the TCP connection and the banner: a loaded machine answers late
EXEC_TIMEOUT = 120  # seconds a command's channel may stay silent: only stops a hung test


def ssh_client(host: FleetHost, known_hosts: str | None = None) -> paramiko.SSHClient:
    """A paramiko client with strict host key checking against ``known_hosts``; closed again when the connection
    fails (a refused host key or login), so no unauthenticated connection stays open on the host's sshd."""
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(known_hosts or str(host.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            host.address,
            port=host.port,
            username=host.user,
            key_filename=str(host.key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=CONNECT_TIMEOUT,
            banner_timeout=CONNECT_TIMEOUT,
        )
    except BaseException:
        client.close()
        raise
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    """Run a command over an exec channel; return (exit status, stdout, stderr)."""
    _, stdout, stderr = client.exec_command(command, timeout=EXEC_TIMEOUT)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err
