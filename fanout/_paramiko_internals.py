"""Every use of paramiko's private API, in one place, checked when fanout loads it.

fanout reaches under paramiko's public API in three spots, each to save round
trips or thread hops (``docs/design.rst``): sending a message without waiting
for a reply (the exec request, window adjustments), taking a channel's data
as paramiko receives it, and pipelining public-key authentication. A paramiko
release that renames any of these fails here, at import, with a message that
says what is missing, rather than somewhere in the middle of a connection.
"""

from __future__ import annotations

import paramiko
import paramiko.agent
from paramiko.auth_handler import AuthHandler
from paramiko.message import Message

__all__ = [
    "AuthHandler",
    "Message",
    "agent_connected_to",
    "consume_window",
    "send_message",
    "sends_at_once",
    "take_channel_input",
]

_NEEDED = {
    (paramiko.Transport, "_send_user_message"): "sending a message without waiting for its reply",
    (paramiko.Channel, "_check_add_window"): "returning a channel's receive window",
    (AuthHandler, "_request_auth"): "pipelined public-key authentication",
    (AuthHandler, "_parse_service_accept"): "pipelined public-key authentication",
}


def _check() -> None:
    missing = [f"{cls.__name__}.{name} ({why})" for (cls, name), why in _NEEDED.items() if not hasattr(cls, name)]
    if "in_buffer" not in paramiko.Channel.__init__.__code__.co_names:
        missing.append("Channel.in_buffer (taking a channel's data as it arrives)")
    if "out_window_size" not in paramiko.Channel.__init__.__code__.co_names:
        missing.append("Channel.out_window_size (knowing a call can be written at once)")
    if "clear_to_send" not in paramiko.Transport.__init__.__code__.co_names:
        missing.append("Transport.clear_to_send (knowing a call can be written at once)")
    if missing:
        raise ImportError(
            f"fanout needs parts of paramiko that paramiko {paramiko.__version__} lacks: {', '.join(missing)}; "
            "install a paramiko version fanout supports (see pyproject.toml)"
        )


_check()


def send_message(transport: paramiko.Transport, message: Message) -> None:
    """Queue ``message`` on the transport at once, without waiting for any reply."""
    transport._send_user_message(message)


def consume_window(channel: paramiko.Channel, size: int) -> int:
    """Count ``size`` bytes as read from ``channel``; the window to return to the peer now (0: not yet)."""
    return channel._check_add_window(size)


def sends_at_once(channel: paramiko.Channel, size: int) -> bool:
    """Whether ``size`` bytes sent on ``channel`` now go out without waiting on the peer: its window holds them
    and no key exchange holds user messages back. (Room in the socket is the caller's to check.)"""
    transport = channel.transport
    return (
        channel.out_window_size >= size and not channel.closed and transport.active and transport.clear_to_send.is_set()
    )


def take_channel_input(channel: paramiko.Channel, feed: object) -> tuple[bytes, bool]:
    """Make ``feed`` the channel's input buffer: paramiko then hands it data as it arrives, on its own thread.

    Returns what the old buffer already held, and whether the input had already ended (a child that exits at
    once, such as an old Python refusing to start, may close the channel before this runs): paramiko closed the
    old buffer then, never ``feed``. The swap holds the channel's lock, which paramiko holds to end its input.
    """
    with channel.lock:
        old = channel.in_buffer
        channel.in_buffer = feed
        ended = channel.closed or channel.eof_received
    return old.empty(), ended


# Replies to global requests, counted by fanout._pipelined_auth.PipelinedTransport for the keepalive.
for _name in ("_parse_request_success", "_parse_request_failure"):
    if not hasattr(paramiko.Transport, _name):
        raise ImportError(
            f"fanout needs Transport.{_name} (counting keepalive replies), which paramiko {paramiko.__version__} "
            "lacks; install a paramiko version fanout supports (see pyproject.toml)"
        )


# An agent at a path of the user's choosing (ssh_config's IdentityAgent): paramiko.Agent only reads $SSH_AUTH_SOCK.
if not hasattr(paramiko.agent.AgentSSH, "_connect"):
    raise ImportError(
        f"fanout needs AgentSSH._connect (an agent at IdentityAgent's path), which paramiko {paramiko.__version__} "
        "lacks; install a paramiko version fanout supports (see pyproject.toml)"
    )


def agent_connected_to(sock: object) -> paramiko.Agent:
    """A paramiko Agent talking over ``sock``, a connected UNIX socket."""
    agent = paramiko.Agent.__new__(paramiko.Agent)
    paramiko.agent.AgentSSH.__init__(agent)
    agent._connect(sock)
    return agent
