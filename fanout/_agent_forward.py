"""Agent forwarding (``forward_agent=True``, ssh_config's ``ForwardAgent``, ``-A``): the child's ``SSH_AUTH_SOCK``.

sshd gives the remote session an ``SSH_AUTH_SOCK``; each connection a program
there makes to it arrives here as an ``auth-agent@openssh.com`` channel, which
is joined to a fresh connection to the local agent. As with OpenSSH, whoever
controls the host can then ask the agent to sign while the connection lasts:
forward only to hosts you trust (docs/ssh.rst).

Threads: paramiko's receiving thread calls :meth:`AgentForwarding.open`, which
only connects a local UNIX socket and starts one ``fanout-agent-<host>``
thread per forwarded channel; that thread copies bytes both ways until either
side closes. At most MAX_CHANNELS run per connection; more are refused.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import warnings

import paramiko

MAX_CHANNELS = 8  # agent connections one host may hold open at once; ssh-add and git open one each
BLOCK = 16384  # bytes copied at a time; agent messages are a few KiB at most


class AgentForwarding:
    """Joins a connection's forwarded agent channels to the local agent at ``socket_path``."""

    def __init__(self, name: str, socket_path: str) -> None:
        self.name = name
        self.socket_path = socket_path
        self._open = 0
        self._lock = threading.Lock()

    def request(self, channel: paramiko.Channel) -> None:
        """Ask sshd for an agent socket in ``channel``'s session; sent without waiting, before the exec."""
        channel.request_forward_agent(self.open)

    def open(self, channel: paramiko.Channel) -> None:
        """A program on the host connected to its SSH_AUTH_SOCK (runs on paramiko's receiving thread)."""
        with self._lock:
            if self._open >= MAX_CHANNELS:
                channel.close()
                return
            self._open += 1
        local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            local.connect(self.socket_path)
        except OSError:
            local.close()
            channel.close()
            self._done()
            return
        threading.Thread(
            target=self._copy, args=(channel, local), name=f"fanout-agent-{self.name}", daemon=True
        ).start()

    def _copy(self, channel: paramiko.Channel, local: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([channel, local], [], [])
                if channel in ready:
                    data = channel.recv(BLOCK)
                    if not data:
                        break
                    local.sendall(data)
                if local in ready:
                    data = local.recv(BLOCK)
                    if not data:
                        break
                    channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass  # either end went away: the forwarded connection ends with it
        finally:
            with contextlib.suppress(Exception):
                channel.close()
            local.close()
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._open -= 1


def agent_socket(forward: bool | str, identity_agent: str | None, host: str) -> str | None:
    """The local agent socket to forward: ForwardAgent's own path or $VAR, else IdentityAgent's, else
    $SSH_AUTH_SOCK; None when forwarding is off, or asked for with no agent to forward (then with a warning, as a
    ``ForwardAgent yes`` under ``Host *`` must not fail every host of a cron job that has no agent)."""
    if forward is False:
        return None
    path: str | None
    if isinstance(forward, str) and forward not in ("yes", "true"):
        path = os.environ.get(forward[1:]) if forward.startswith("$") else os.path.expanduser(forward)
    elif identity_agent and identity_agent != "none":
        path = identity_agent
    else:
        path = os.environ.get("SSH_AUTH_SOCK")
    if not path:
        warnings.warn(
            f"{host}: agent forwarding was asked for, but there is no agent to forward (SSH_AUTH_SOCK is not set)",
            UserWarning,
            stacklevel=3,
        )
        return None
    return path
