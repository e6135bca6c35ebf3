"""Every use of paramiko beyond its public API, in one place, checked when fanout loads it.

fanout reaches under paramiko's public API to save round trips and thread hops
(docs/design.rst, "paramiko: private parts and the versions tested"): sending a message without waiting
for its reply (the exec request, window adjustments, keepalives), taking a
channel's data as paramiko receives it, counting replies to global requests,
and pipelining public-key authentication. Each of these checks at import that
the parts it needs exist; when one is missing (a paramiko that renamed it),
that path falls back to paramiko's public calls, at the cost said below, and
says so once in the ``fanout`` log. The one use with no public way, an agent
at a path of the user's choosing, is an ImportError naming what is missing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable

import paramiko
import paramiko.agent
import paramiko.packet
from paramiko.common import (
    MSG_CHANNEL_DATA,
    MSG_CHANNEL_EXTENDED_DATA,
    MSG_CHANNEL_WINDOW_ADJUST,
    MSG_IGNORE,
    cMSG_CHANNEL_REQUEST,
    cMSG_CHANNEL_WINDOW_ADJUST,
    cMSG_GLOBAL_REQUEST,
)
from paramiko.message import Message

from fanout._serial import SerialRunner

try:
    from paramiko.auth_handler import AuthHandler
except ImportError:  # a paramiko that moved it: authentication takes paramiko's own, unpipelined way
    AuthHandler = None  # type: ignore[assignment,misc]

__all__ = [
    "CountsGlobalReplies",
    "agent_connected_to",
    "auth_publickey",
    "exec_command",
    "failure_of",
    "send_keepalive",
    "sends_at_once",
    "start_channel_input",
    "wait_exit_status",
]

_log = logging.getLogger("fanout")
READ_SIZE = 65536  # bytes per Channel.recv when the channel's input is read on a thread (the fallback)
KEEPALIVE_REQUEST = "keepalive@openssh.com"  # OpenSSH's: sshd answers it, with a failure, as it must any request


def _lacking(*parts: tuple[type | None, str]) -> list[str]:
    """The ``Class.name`` of each part the installed paramiko does not have."""
    return [
        f"{getattr(cls, '__name__', 'paramiko.auth_handler.AuthHandler')}.{name}"
        for cls, name in parts
        if cls is None or not hasattr(cls, name)
    ]


def _not_set_in_init(cls: type, *names: str) -> list[str]:
    """The instance attributes among ``names`` that ``cls.__init__`` no longer sets."""
    code = getattr(cls.__init__, "__code__", None)
    return [f"{cls.__name__}.{name}" for name in names if code is None or name not in code.co_names]


_SEND = (paramiko.Transport, "_send_user_message")

# Each fast path, the private parts it needs, and what its public fallback costs.
LACKING: dict[str, list[str]] = {
    "exec without waiting": _lacking(_SEND) + _not_set_in_init(paramiko.Channel, "remote_chanid"),
    "direct channel input": _lacking(_SEND, (paramiko.Channel, "_check_add_window"))
    + _not_set_in_init(paramiko.Channel, "in_buffer", "lock", "closed", "eof_received", "remote_chanid"),
    "counted keepalive replies": _lacking(
        _SEND, (paramiko.Transport, "_parse_request_success"), (paramiko.Transport, "_parse_request_failure")
    ),
    "pipelined authentication": _lacking((AuthHandler, "_request_auth"), (AuthHandler, "_parse_service_accept"))
    + _not_set_in_init(paramiko.Transport, "auth_handler", "active", "initial_kex_done"),
    "exit status event": _not_set_in_init(paramiko.Channel, "status_event", "exit_status"),
    "writing a fleet's call at once": _not_set_in_init(paramiko.Channel, "out_window_size", "closed")
    + _not_set_in_init(paramiko.Transport, "active", "clear_to_send"),
    "shared packet input": _lacking(
        (paramiko.Transport, "_channel_handler_table"),
        (paramiko.packet.Packetizer, "read_message"),
        (paramiko.packet.Packetizer, "need_rekey"),
        (paramiko.packet, "NeedRekeyException"),
    )
    + _not_set_in_init(
        paramiko.Transport, "packetizer", "_channels", "in_kex", "_expected_packet", "remote_cipher", "active"
    ),
}
FALLBACK_COST = {
    "exec without waiting": "Channel.exec_command, one round trip more per connection",
    "direct channel input": "Channel.recv on a thread, one thread hop per reply",
    "counted keepalive replies": "Transport.global_request on a thread per keepalive",
    "pipelined authentication": "paramiko's own public-key authentication, one round trip more per connection",
    "exit status event": "Channel.recv_exit_status on a thread",
    "writing a fleet's call at once": "the fleet's sending threads for every call, a thread hop per host",
    "shared packet input": "paramiko's thread per connection reading every packet, a thread wake per reply",
}
_said: set[str] = set()
_said_lock = threading.Lock()


def fast(path: str) -> bool:
    """Whether ``path`` (a key of LACKING) runs its fast way; the first time it does not, says why in the log."""
    if not LACKING[path]:
        return True
    with _said_lock:
        first = path not in _said
        _said.add(path)
    if first:
        _log.warning(
            "paramiko %s lacks %s: fanout falls back to %s",
            paramiko.__version__,
            ", ".join(LACKING[path]),
            FALLBACK_COST[path],
        )
    return False


def _check_required() -> None:
    """An agent at IdentityAgent's path has no public way: paramiko.Agent only reads $SSH_AUTH_SOCK."""
    missing = _lacking((paramiko.agent.AgentSSH, "_connect"))
    if missing:
        raise ImportError(
            f"fanout needs parts of paramiko that paramiko {paramiko.__version__} lacks: "
            f"{', '.join(missing)} (an agent at IdentityAgent's path); "
            "install a paramiko version fanout supports (see pyproject.toml)"
        )


_check_required()


def _send(transport: paramiko.Transport, message: Message) -> None:
    """Queue ``message`` on the transport at once, without waiting for any reply."""
    transport._send_user_message(message)


# -- the exec request ---------------------------------------------------------------------------------------------


def exec_command(channel: paramiko.Channel, command: str) -> None:
    """Start ``command`` on ``channel``, with want_reply false: the data that follows needs no round trip first."""
    if not fast("exec without waiting"):
        channel.exec_command(command)
        return
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("exec")
    message.add_boolean(False)
    message.add_string(command)
    _send(channel.get_transport(), message)


# -- whether a write can wait ------------------------------------------------------------------------------------


def sends_at_once(channel: paramiko.Channel, size: int) -> bool:
    """Whether ``size`` bytes sent on ``channel`` now go out without waiting on the peer: its window holds them
    and no key exchange holds user messages back. (Room in the socket is the caller's to check.) False when
    paramiko does not say: the caller then writes from a thread that may wait."""
    if not fast("writing a fleet's call at once"):
        return False
    transport = channel.get_transport()
    return (
        channel.out_window_size >= size and not channel.closed and transport.active and transport.clear_to_send.is_set()
    )


# -- a channel's input --------------------------------------------------------------------------------------------


def start_channel_input(
    channel: paramiko.Channel, on_data: Callable[[bytes], None], on_end: Callable[[], None]
) -> None:
    """Hand the channel's data to ``on_data`` as it arrives, and call ``on_end`` once when its input ends."""
    if not fast("direct channel input"):
        threading.Thread(
            target=_read_on_a_thread,
            args=(channel, on_data, on_end),
            name=f"fanout-read-{channel.get_name()}",
            daemon=True,
        ).start()
        return
    feed = _ChannelFeed(channel, on_data, on_end)
    # The swap holds the channel's lock, which paramiko holds to end its input. A child that exits at once (an old
    # Python refusing to start) may have closed the channel before this runs: paramiko closed the old buffer then.
    with channel.lock:
        before = channel.in_buffer.empty()
        channel.in_buffer = feed
        ended = channel.closed or channel.eof_received
    if before:
        feed.feed(before)
    if ended:  # the child ended before its output was taken: its end is reported all the same
        feed.close()


def _read_on_a_thread(channel: paramiko.Channel, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
    """The public way: Channel.recv, which also returns the receive window, until the input ends."""
    try:
        while data := channel.recv(READ_SIZE):
            on_data(data)
    except (EOFError, OSError, paramiko.SSHException):
        pass  # the connection is gone: its input ended with it
    finally:
        on_end()


class _ChannelFeed:
    """Stands in for a channel's input buffer: data goes to the protocol as paramiko receives it.

    Reading through ``Channel.recv`` on a thread of our own would cost a thread
    hand-off on every reply (~50 us, a sixth of a warm call). What ``recv`` did
    besides reading, returning the receive window to the server, is done here,
    with the window message sent from another thread (paramiko's receiving
    thread must not wait to send).
    """

    def __init__(self, channel: paramiko.Channel, on_data, on_end) -> None:
        self._channel = channel
        self._on_data = on_data
        self._on_end = on_end
        self._ended = False
        self._acks = SerialRunner(f"fanout-window-{channel.get_name()}")
        self._ack_owed = 0
        self._ack_lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        self._on_data(bytes(data))
        ack = self._channel._check_add_window(len(data))  # the window to return now (0: not yet)
        if ack > 0:
            with self._ack_lock:
                first = self._ack_owed == 0
                self._ack_owed += ack
            if first:  # one adjustment waits at most: later ones add to it, so threads never pile up
                self._acks.post(self._adjust_window)

    def _adjust_window(self) -> None:
        with self._ack_lock:
            ack, self._ack_owed = self._ack_owed, 0
        message = Message()
        message.add_byte(cMSG_CHANNEL_WINDOW_ADJUST)
        message.add_int(self._channel.remote_chanid)
        message.add_int(ack)
        with contextlib.suppress(Exception):  # the connection may be gone: then so is the need
            _send(self._channel.get_transport(), message)

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end()

    # What else paramiko may ask of an input buffer: nothing is ever buffered here.
    def read_ready(self) -> bool:
        return False

    def set_event(self, event: threading.Event) -> None:
        return None

    def empty(self) -> bytes:
        return b""

    def __len__(self) -> int:
        return 0


def wait_exit_status(channel: paramiko.Channel, timeout: float) -> int | None:
    """The remote process's exit status, waiting at most ``timeout`` seconds for it; None if none came by then."""
    if fast("exit status event"):
        return channel.exit_status if channel.status_event.wait(timeout) else None
    status: list[int] = []
    waiter = threading.Thread(
        target=lambda: status.append(channel.recv_exit_status()), name="fanout-exit-status", daemon=True
    )
    waiter.start()
    waiter.join(timeout)
    return status[0] if status else None


def failure_of(transport: paramiko.Transport | None) -> Exception | None:
    """What ended the transport's thread, when it knows (a banner never sent, say)."""
    saved = getattr(transport, "saved_exception", None)
    return saved if isinstance(saved, Exception) else None


# -- keepalive replies --------------------------------------------------------------------------------------------


class CountsGlobalReplies(paramiko.Transport):
    """A Transport that counts replies to global requests: the keepalive's (fanout/_keepalive.py) evidence that
    the host is there. Counted in paramiko's two reply handlers, or by :func:`send_keepalive`'s fallback."""

    global_replies = 0  # replies to global requests seen

    if not LACKING["counted keepalive replies"]:

        def _parse_request_success(self, m: Message) -> None:
            self.global_replies += 1
            super()._parse_request_success(m)

        def _parse_request_failure(self, m: Message) -> None:
            self.global_replies += 1  # sshd answers keepalive@openssh.com with a failure: an answer all the same
            super()._parse_request_failure(m)


_asking: weakref.WeakSet[paramiko.Transport] = weakref.WeakSet()  # transports with a fallback keepalive in flight
_asking_lock = threading.Lock()


def send_keepalive(transport: CountsGlobalReplies) -> None:
    """Send a keepalive that wants a reply; the reply adds one to ``transport.global_replies``. Never waits."""
    if fast("counted keepalive replies"):
        message = Message()
        message.add_byte(cMSG_GLOBAL_REQUEST)
        message.add_string(KEEPALIVE_REQUEST)
        message.add_boolean(True)
        _send(transport, message)
        return
    with _asking_lock:  # one at a time: paramiko's global_request keeps one reply slot per transport
        if transport in _asking:
            return  # the last one is still unanswered: the keepalive counts the miss
        _asking.add(transport)
    threading.Thread(target=_ask_and_count, args=(transport,), name="fanout-keepalive-ask", daemon=True).start()


def _ask_and_count(transport: CountsGlobalReplies) -> None:
    """The public way: global_request waits for the reply, or for the transport to end."""
    try:
        transport.global_request(KEEPALIVE_REQUEST, wait=True)
        if transport.is_active():  # it returned for a reply, not for the end of the connection
            transport.global_replies += 1
    except Exception:
        pass  # the connection is going: the keepalive's next tick sees it
    finally:
        with _asking_lock:
            _asking.discard(transport)


# -- pipelined public-key authentication --------------------------------------------------------------------------


if AuthHandler is not None and not LACKING["pipelined authentication"]:

    class _PipelinedAuthHandler(AuthHandler):
        _accepts_to_skip = 0

        def _request_auth(self) -> None:
            pipelined = self.auth_method == "publickey" and "rsa" not in self.private_key.get_name()
            if pipelined:
                # Counted before the service request leaves: its SERVICE_ACCEPT can come back, on
                # paramiko's thread, before this one runs another line, and must then be skipped.
                self._accepts_to_skip += 1
            super()._request_auth()
            if pipelined:
                accepted = Message()
                accepted.add_string("ssh-userauth")
                accepted.rewind()
                super()._parse_service_accept(accepted)  # sends the signed userauth request now

        def _parse_service_accept(self, m: Message) -> None:
            if self._accepts_to_skip:
                self._accepts_to_skip -= 1  # the request already went out behind the service request
                return
            super()._parse_service_accept(m)


def auth_publickey(transport: paramiko.Transport, username: str, key: paramiko.PKey, event=None):
    """Transport.auth_publickey, with the userauth request sent right behind the service request."""
    if not fast("pipelined authentication"):
        return paramiko.Transport.auth_publickey(transport, username, key, event)
    if not transport.active or not transport.initial_kex_done:
        raise paramiko.SSHException("No existing session")
    my_event = event if event is not None else threading.Event()
    transport.auth_handler = _PipelinedAuthHandler(transport)
    transport.auth_handler.auth_publickey(username, key, my_event)
    if event is not None:
        return []
    return transport.auth_handler.wait_for_response(my_event)


# -- an agent at a path -------------------------------------------------------------------------------------------


def agent_connected_to(sock: object) -> paramiko.Agent:
    """A paramiko Agent talking over ``sock``, a connected UNIX socket."""
    agent = paramiko.Agent.__new__(paramiko.Agent)
    paramiko.agent.AgentSSH.__init__(agent)
    agent._connect(sock)
    return agent


# -- a connection's input read by the shared loop (fanout/_input_loop.py) ----------------------------------------

# Inbound ciphers whose packet length is in clear (AES-GCM's is additional data), so a packet is known to be whole
# before paramiko reads it; and their tag's length. Other ciphers keep paramiko's own thread reading.
_LENGTH_IN_CLEAR = {"aes128-gcm@openssh.com": 16, "aes256-gcm@openssh.com": 16}
# What the loop dispatches itself: channel data and window messages, which paramiko handles without sending.
_SHARED_TYPES = frozenset((MSG_CHANNEL_DATA, MSG_CHANNEL_EXTENDED_DATA, MSG_CHANNEL_WINDOW_ADJUST))
NeedRekey = getattr(paramiko.packet, "NeedRekeyException", Exception)


def tag_length(transport: paramiko.Transport) -> int | None:
    """The tag length of a packet, when its transport's input may be read elsewhere now: a whole packet can be
    told from its length in clear, and no key exchange is under way. None: paramiko's thread reads on."""
    if not fast("shared packet input"):
        return None
    tag = _LENGTH_IN_CLEAR.get(transport.remote_cipher)
    if tag is None or not transport.active or transport.in_kex or transport._expected_packet:
        return None
    return None if transport.packetizer.need_rekey() else tag


def read_message_through(transport: paramiko.Transport, read: Callable[[], tuple[int, Message]]):
    """Put ``read`` where paramiko's thread reads its next message; returns paramiko's own reader."""
    own = transport.packetizer.read_message
    transport.packetizer.read_message = read
    return own


def dispatch_shared(transport: paramiko.Transport, ptype: int, message: Message) -> bool:
    """Handle channel data or a window message as paramiko's thread would, or drop an SSH_MSG_IGNORE as it does.
    False, ``message`` untouched, for anything else: another message, a channel this transport does not know,
    or extended data other than stderr (paramiko logs it as an error, and logging may wait on the terminal)."""
    if ptype == MSG_IGNORE:
        return True  # paramiko's thread checks it only during the first key exchange, long over when input is lent
    if ptype not in _SHARED_TYPES:
        return False
    channel = transport._channels.get(message.get_int())
    if channel is None or (ptype == MSG_CHANNEL_EXTENDED_DATA and message.get_int() != 1):
        message.rewind()
        return False
    if ptype == MSG_CHANNEL_EXTENDED_DATA:
        message.rewind()
        message.get_int()  # the channel again: paramiko's handler reads on from the type code
    transport._channel_handler_table[ptype](channel, message)
    return True


def wants_rekey(transport: paramiko.Transport) -> bool:
    return transport.packetizer.need_rekey()
