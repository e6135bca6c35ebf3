"""Reach a child over SSH: resolve ~/.ssh/config, check the host key, authenticate, start stage 0.

The exec request is sent without waiting for its reply, and stage 1 follows at
once on the same channel: the child is started in the round trips SSH itself
needs, and no more.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST, cMSG_CHANNEL_WINDOW_ADJUST

from fanout import _stage
from fanout._context import Context
from fanout._known_hosts import AcceptNew, KnownHosts
from fanout._modules import ModulePolicy
from fanout._paramiko_internals import Message, consume_window, send_message, take_channel_input
from fanout._pipelined_auth import PipelinedTransport
from fanout._serial import SerialRunner
from fanout._timeouts import check_timeout
from fanout._transport import StderrTail
from fanout.errors import AuthenticationFailed, ConnectTimeout, HostKeyError, Unreachable

HOST_KEY_POLICIES = ("strict", "accept-new", "ignore")
PACKET = 32768  # bytes handed to paramiko at a time: the SSH packet every server accepts (RFC 4254, 5.2)
_DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
_SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")


@dataclass
class Destination:
    """Where and as whom to connect, after ~/.ssh/config and explicit arguments are merged."""

    hostname: str
    port: int
    user: str
    identity_files: list[str] = field(default_factory=list)
    proxy_command: str | None = None
    proxy_jump: str | None = None
    explicit_identity: bool = False


def resolve(
    host: str,
    port: int | None,
    user: str | None,
    identity_file: str | os.PathLike | None,
    ssh_config: bool | str | os.PathLike,
) -> Destination:
    """Merge ``~/.ssh/config`` (or the given file) with explicit arguments; arguments win."""
    entry: dict = {}
    if ssh_config:
        path = Path("~/.ssh/config" if ssh_config is True else ssh_config).expanduser()
        if path.is_file():
            entry = paramiko.SSHConfig.from_path(str(path)).lookup(host)
        elif ssh_config is not True:
            raise FileNotFoundError(f"ssh_config file not found: {path}")
    try:
        port = int(port if port is not None else entry.get("port", 22))
    except ValueError:
        raise ValueError(f"{host}: port must be a number, not {entry.get('port')!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"{host}: port {port} is out of range")
    identities = [os.fspath(identity_file)] if identity_file else list(entry.get("identityfile", []))

    def unless_none(key: str) -> str | None:
        value = entry.get(key)
        return None if value is None or value.lower() == "none" else value

    return Destination(
        hostname=entry.get("hostname", host),
        port=port,
        user=user or entry.get("user") or getpass.getuser(),
        identity_files=[os.path.expanduser(p) for p in identities],
        proxy_command=unless_none("proxycommand"),
        proxy_jump=unless_none("proxyjump"),
        explicit_identity=identity_file is not None,
    )


def parse_jump(spec: str) -> tuple[str, str | None, int | None]:
    """One ProxyJump hop, ``[user@]host[:port]``, as (host, user, port)."""
    user, _, rest = spec.strip().rpartition("@")
    host, port = rest, None
    if rest.startswith("["):  # [v6::address]:port
        host, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else None
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    if not host or (port is not None and not port.isdigit()):
        raise ValueError(f"a jump host must look like [user@]host[:port], not {spec!r}")
    return host, user or None, int(port) if port is not None else None


# OpenSSH's default MaxStartups 10:30:100 starts dropping connections at random once 10 are
# unauthenticated; a fan-out over many names served by one sshd stays under that, with room
# to spare for other clients.
MAX_HANDSHAKES_PER_SSHD = 8
_handshake_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_handshake_slots_lock = threading.Lock()


@contextlib.contextmanager
def _handshake_slot(name: str, dest: Destination, deadline: float) -> Iterator[None]:
    """Hold one of the few unauthenticated connections an sshd accepts, from TCP connect to authenticated."""
    key = (dest.hostname.lower(), dest.port)
    with _handshake_slots_lock:
        slot = _handshake_slots.setdefault(key, threading.BoundedSemaphore(MAX_HANDSHAKES_PER_SSHD))
    if not slot.acquire(timeout=max(deadline - time.monotonic(), 0)):
        raise ConnectTimeout(
            f"{name}: waited out the connect timeout for one of the {MAX_HANDSHAKES_PER_SSHD} handshakes "
            f"allowed at once to {dest.hostname}:{dest.port}"
        )
    try:
        yield
    finally:
        slot.release()


def _remaining(name: str, deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectTimeout(f"{name}: the connect timeout ran out before {what}")
    return left


class _AcceptAnyHostKey(paramiko.MissingHostKeyPolicy):
    """host_key_policy="ignore": the user chose to skip host key checking."""

    def missing_host_key(self, client, hostname, key) -> None:
        return None


def _client(known_hosts: str | os.PathLike | None, policy: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if policy == "ignore":
        client.set_missing_host_key_policy(_AcceptAnyHostKey())
        return client
    user_file = Path(known_hosts).expanduser() if known_hosts else _DEFAULT_KNOWN_HOSTS.expanduser()
    known = KnownHosts()
    if policy == "accept-new":
        user_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        user_file.touch(mode=0o600, exist_ok=True)
        known.read(user_file)
        client.set_missing_host_key_policy(AcceptNew(user_file, known))  # new keys are appended here
    else:
        if known_hosts and not user_file.is_file():
            raise FileNotFoundError(f"known_hosts file not found: {user_file}")
        if user_file.is_file():
            known.read(user_file)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if not known_hosts and _SYSTEM_KNOWN_HOSTS.is_file():
        known.read(_SYSTEM_KNOWN_HOSTS)
    known.into(client.get_host_keys())
    return client


def _open_socket(name: str, dest: Destination, timeout: float, jump: paramiko.Transport | None = None):
    if jump is not None:
        try:
            return jump.open_channel("direct-tcpip", (dest.hostname, dest.port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            raise Unreachable(
                f"{name}: the jump host could not reach {dest.hostname}:{dest.port}: {exc.text} ({exc.code})"
            ) from exc
        except paramiko.SSHException as exc:
            if "timeout" in str(exc).lower():
                raise ConnectTimeout(f"{name}: no channel through the jump host within {timeout:g} s") from exc
            raise Unreachable(f"{name}: the jump host refused a channel to {dest.hostname}:{dest.port}: {exc}") from exc
    if dest.proxy_command:
        return paramiko.ProxyCommand(dest.proxy_command)
    try:
        return _with_keepalive(socket.create_connection((dest.hostname, dest.port), timeout=timeout))
    except socket.gaierror as exc:
        raise Unreachable(f"{name}: cannot resolve {dest.hostname}: {exc.strerror}") from exc
    except TimeoutError as exc:
        raise ConnectTimeout(f"{name}: no answer from {dest.hostname}:{dest.port} within {timeout:g} s") from exc
    except OSError as exc:
        raise Unreachable(f"{name}: cannot connect to {dest.hostname}:{dest.port}: {exc.strerror or exc}") from exc


# A host that vanishes without closing (power cut, network partition) is found out after about
# KEEPALIVE_IDLE + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL seconds of silence, not TCP's 15 minutes:
# its calls then fail with ConnectionLost. A call that is merely slow is not affected.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3


def _with_keepalive(sock: socket.socket) -> socket.socket:
    """TCP keepalive probes on the connection, where the platform lets them be tuned; and no Nagle delay:
    a small frame written while another is unacknowledged would otherwise wait for sshd's delayed ACK (~40 ms)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    return sock


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _authenticate(
    name: str, client: paramiko.SSHClient, dest: Destination, sock, password: str | None, timeout: float
) -> None:
    started = time.monotonic()
    try:
        client.connect(
            dest.hostname,
            port=dest.port,
            username=dest.user,
            password=password,
            key_filename=dest.identity_files or None,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            allow_agent=not dest.explicit_identity,
            look_for_keys=not dest.explicit_identity,
            sock=sock,
            transport_factory=PipelinedTransport,
        )
    except paramiko.BadHostKeyException as exc:
        raise HostKeyError(
            f"{name}: the host key of {dest.hostname}:{dest.port} does not match known_hosts "
            f"(offered {_fingerprint(exc.key)}, expected {_fingerprint(exc.expected_key)}); "
            "someone may be intercepting the connection, or the host was reinstalled"
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise AuthenticationFailed(f"{name}: authentication as {dest.user!r} failed: {exc}") from exc
    except paramiko.SSHException as exc:
        saved = getattr(client.get_transport(), "saved_exception", None)
        if "No existing session" in str(exc) and isinstance(saved, Exception):
            exc = saved  # the transport's thread failed first, and knows why (a banner never sent, say)
        if "marked @revoked" in str(exc):
            raise HostKeyError(f"{name}: {exc}: refused") from exc
        if "not found in known_hosts" in str(exc):
            raise HostKeyError(
                f"{name}: {dest.hostname}:{dest.port} is not in known_hosts and host key checking is strict; "
                "add its key (ssh-keyscan) or pass host_key_policy='accept-new'"
            ) from exc
        # paramiko says "Error reading SSH protocol banner" when a silent server ran the clock out
        if "timeout" in str(exc).lower() or time.monotonic() - started >= timeout * 0.99:
            raise ConnectTimeout(f"{name}: SSH handshake did not finish within {timeout:g} s: {exc}") from exc
        raise Unreachable(f"{name}: SSH handshake with {dest.hostname}:{dest.port} failed: {exc}") from exc
    except TimeoutError as exc:
        raise ConnectTimeout(f"{name}: SSH handshake did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise Unreachable(f"{name}: connection to {dest.hostname}:{dest.port} failed: {exc}") from exc


def _exec_without_waiting(channel: paramiko.Channel, command: str) -> None:
    """Send an exec request with want_reply false: the data that follows needs no round trip first."""
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("exec")
    message.add_boolean(False)
    message.add_string(command)
    send_message(channel.transport, message)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


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
        ack = consume_window(self._channel, len(data))
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
            send_message(self._channel.transport, message)

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


class SSHTransport:
    """A child reached through an SSH exec channel."""

    def __init__(self, clients: list[paramiko.SSHClient], channel: paramiko.Channel, name: str) -> None:
        self.clients = clients  # the host's, after those of any jump hosts it is reached through
        self.channel = channel
        self.stderr = StderrTail(name)
        self._stderr_thread = threading.Thread(
            target=self.stderr.pump, args=(lambda: channel.recv_stderr(65536),), daemon=True
        )
        self._stderr_thread.start()

    def start(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Take the child's output straight from paramiko's receiving thread (see :class:`_ChannelFeed`)."""
        take_channel_input(self.channel, _ChannelFeed(self.channel, on_data, on_end))

    def send(self, data: bytes | memoryview) -> None:
        """Send in SSH packets of PACKET bytes: paramiko's sendall re-slices what is left after each packet,
        which copies a large ``data`` over and over."""
        view = memoryview(data)
        for start in range(0, len(view), PACKET):
            packet = view[start : start + PACKET].tobytes()
            while packet:
                sent = self.channel.send(packet)
                if sent == 0:
                    raise OSError(errno.EPIPE, "the channel closed while sending")
                packet = packet[sent:]

    def close(self) -> None:
        try:
            self.channel.close()
        except (EOFError, OSError, paramiko.SSHException):
            pass  # the connection is already gone: nothing left to close politely
        finally:
            for client in reversed(self.clients):
                client.close()

    def describe_end(self) -> str:
        what = "the remote process ended"
        if self.channel.status_event.wait(2):
            status = self.channel.exit_status
            what += f" with status {status}"
            if status > 128:  # the remote shell's way of saying "killed by signal N"
                what += f" (killed by signal {status - 128}, {_signal_name(status - 128)})"
        self._stderr_thread.join(timeout=1)
        tail = self.stderr.text()
        return what + (f"; its stderr said:\n{tail}" if tail else "")


def connect(
    host: str,
    *,
    port: int | None = None,
    user: str | None = None,
    identity_file: str | os.PathLike | None = None,
    password: str | None = None,
    python: str = "python3",
    known_hosts: str | os.PathLike | None = None,
    host_key_policy: str = "strict",
    connect_timeout: float = 10.0,
    ssh_config: bool | str | os.PathLike = True,
    jump: str | None = None,
    jump_identity_file: str | os.PathLike | None = None,
    name: str | None = None,
    allow_modules: Iterable[str] = (),
    deny_modules: Iterable[str] = (),
) -> Context:
    """Connect to ``host`` over SSH and start a child there; returns its :class:`Context`.

    ``port`` and ``user`` default to ``~/.ssh/config``'s, then 22 and the local
    user. ``host_key_policy`` is ``"strict"`` (the host must be in known_hosts
    with this key), ``"accept-new"`` (unknown hosts are added, changed keys
    refused) or ``"ignore"``. An explicit ``identity_file`` is the only key
    tried; otherwise the agent and the default keys are, as ``ssh`` does.
    ``jump`` is OpenSSH's ProxyJump: ``[user@]host[:port]`` hops, comma-separated,
    each checked and authenticated like ``host`` (``~/.ssh/config``'s ProxyJump
    when not given), with ``jump_identity_file`` if given. ``connect_timeout`` covers the whole way, every hop and the
    child's start included: a child not ready by then fails its calls with
    :class:`ConnectTimeout` as the cause. ``name`` names the context (its
    errors, its logger ``fanout.remote.<name>``); it defaults to ``host``.
    ``allow_modules`` and ``deny_modules`` widen and narrow what the child may
    import from the master (module name prefixes; see docs/security.rst).
    """
    if host_key_policy not in HOST_KEY_POLICIES:
        raise ValueError(f"host_key_policy must be one of {HOST_KEY_POLICIES}, not {host_key_policy!r}")
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty string, not {host!r}")
    check_timeout("connect_timeout", connect_timeout)
    policy = ModulePolicy(allow_modules, deny_modules)  # bad prefixes fail before anything connects
    deadline = time.monotonic() + connect_timeout
    dest = resolve(host, port, user, identity_file, ssh_config)
    hops = jump if jump is not None else dest.proxy_jump
    clients: list[paramiko.SSHClient] = []
    try:
        through = None
        for hop in [h for h in (hops or "").split(",") if h.strip()]:
            hop_host, hop_user, hop_port = parse_jump(hop)
            hop_dest = resolve(hop_host, hop_port, hop_user, jump_identity_file or identity_file, ssh_config)
            hop_dest.proxy_jump = None
            through = _open_client(
                f"{host} (jump host {hop_host})",
                hop_dest,
                known_hosts,
                host_key_policy,
                password,
                deadline,
                through,
                clients,
            )
        transport = _open_client(host, dest, known_hosts, host_key_policy, password, deadline, through, clients)
        channel = transport.open_session(timeout=_remaining(host, deadline, "a session channel opened"))
        _exec_without_waiting(channel, _stage.stage0_command(python))
        context = Context(
            SSHTransport(clients, channel, host),
            name or host,
            allow_modules=policy.allow,
            deny_modules=policy.deny,
            user=dest.user,
        )
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise
    context.expect_ready_by(deadline, connect_timeout)
    return context


def _open_client(
    name: str,
    dest: Destination,
    known_hosts: str | os.PathLike | None,
    host_key_policy: str,
    password: str | None,
    deadline: float,
    through: paramiko.Transport | None,
    clients: list[paramiko.SSHClient],
) -> paramiko.Transport:
    """One authenticated SSH connection (through the previous hop, if any), appended to ``clients``.

    An sshd that resets the connection before its banner is shedding load
    (``MaxStartups`` counts every client of the machine, not just ours): that
    is retried after a short random pause, while the deadline allows.
    """
    for attempt in range(1, _BANNER_RETRIES + 1):
        client = _client(known_hosts, host_key_policy)
        try:
            with _handshake_slot(name, dest, deadline):
                sock = _open_socket(name, dest, _remaining(name, deadline, "connecting"), through)
                _authenticate(name, client, dest, sock, password, _remaining(name, deadline, "the SSH handshake"))
        except Unreachable as exc:
            client.close()
            pause = random.uniform(0.05, 0.2) * attempt
            if not _shed_before_banner(exc) or attempt == _BANNER_RETRIES or time.monotonic() + pause >= deadline:
                raise
            time.sleep(pause)
            continue
        clients.append(client)
        return client.get_transport()
    raise AssertionError("not reached: the last attempt returns or raises")


_BANNER_RETRIES = 5


def _shed_before_banner(error: Unreachable) -> bool:
    """Whether the server closed the connection before saying anything: load shedding, worth a retry."""
    cause = error.__cause__
    if cause is None or "protocol banner" not in str(cause):
        return False
    reasons = [cause, cause.__cause__, cause.__context__]
    return "reset by peer" in str(cause).lower() or any(
        isinstance(r, (EOFError, ConnectionResetError)) for r in reasons
    )
