"""Reach a child over SSH: resolve ~/.ssh/config, check the host key, authenticate, start stage 0.

The exec request is sent without waiting for its reply, and stage 1 follows at
once on the same channel: the child is started in the round trips SSH itself
needs, and no more.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import paramiko
from paramiko.auth_strategy import AuthFailure, Password

from fanout import _keepalive, _ssh_algorithms, _ssh_auth, _stage
from fanout._agent_forward import AgentForwarding, agent_socket
from fanout._connect_options import OPTION_NAMES, ConnectOptions, unknown_option
from fanout._context import Context
from fanout._input_loop import share_input
from fanout._known_hosts import UNKNOWN, AcceptNew, HostKeyCheck, HostKeyRefused, KnownHosts
from fanout._paramiko_compat import exec_command, failure_of, sends_at_once, start_channel_input, wait_exit_status
from fanout._pipelined_auth import PipelinedTransport
from fanout._proxy_command import ProxyCommandSocket
from fanout._read_ahead import AskLimit, PacketTooLarge, ReadAheadSocket
from fanout._ssh_auth import Credentials, KeysAndAgent, _Unusable
from fanout._ssh_config import SSHOptions, parse_ssh_args, quote
from fanout._ssh_config import resolve as resolve_config
from fanout._timeouts import check_timeout
from fanout._transport import StderrTail
from fanout.errors import AuthenticationFailed, ConnectTimeout, HostKeyError, Unreachable, advise

PACKET = 32768  # bytes handed to paramiko at a time: the SSH packet every server accepts (RFC 4254, 5.2)
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds, when neither connect() nor ssh_config's ConnectTimeout says
DEFAULT_KEEPALIVE = _keepalive.DEFAULT_INTERVAL


@dataclass
class Destination:
    """One SSH connection to make (the host's, or a jump host's), after ssh_config and the arguments are merged."""

    label: str  # how errors name it: the inventory host first, then the address
    hostname: str
    port: int
    user: str
    credentials: Credentials = field(default_factory=Credentials)
    proxy_command: str | None = None
    ciphers: str | None = None  # ssh_config's Ciphers, as written (fanout/_ssh_algorithms.py)
    macs: str | None = None  # ssh_config's MACs, likewise

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"


@dataclass
class Plan:
    """Everything ``connect`` resolved before the first packet: the way there, host keys, keepalive, agent."""

    hops: list[Destination]
    destination: Destination
    known_hosts: list[Path]
    global_known_hosts: list[Path]
    host_key_policy: str
    hash_known_hosts: bool
    connect_timeout: float
    keepalive: tuple[float, int]
    agent_socket: str | None


def _command_line(
    port: int | None,
    user: str | None,
    identity_files: list[str],
    jump: str | None,
    forward_agent: bool | None,
    ssh_args: str | Sequence[str],
) -> tuple[list[tuple[str, str]], list[str]]:
    """connect()'s arguments, then ``ssh_args``, as ssh command-line options (the first given wins)."""
    options: list[tuple[str, str]] = []
    if port is not None:
        options.append(("Port", str(port)))
    if user is not None:
        options.append(("User", quote(user)))
    for path in identity_files:
        options.append(("IdentityFile", quote(path)))
    if identity_files:
        options.append(("IdentitiesOnly", "yes"))  # an identity named in the call is the one meant
    if jump is not None:
        options.append(("ProxyJump", quote(jump) if jump else "none"))
    if forward_agent is not None:
        options.append(("ForwardAgent", "yes" if forward_agent else "no"))
    parsed, config_files = parse_ssh_args(ssh_args) if ssh_args else ([], [])
    return options + parsed, config_files


def _policy(given: str | None, strict_host_key_checking: str) -> str:
    if given is not None:
        return given  # checked, and "ignore" read as "off", by ConnectOptions
    # OpenSSH's "ask" needs a person at a prompt: fanout never prompts mid-fan-out, so it is strict
    return {"yes": "strict", "ask": "strict", "accept-new": "accept-new", "no": "off"}[strict_host_key_checking]


def plan(host: str, given: ConnectOptions) -> Plan:
    """Resolve a connection as ``ssh -G`` would, with connect()'s options as command-line options."""
    label = given.name or host
    identity_files = list(given.identity_file)
    command_line, files_given = _command_line(
        given.port, given.user, identity_files, given.jump, given.forward_agent, given.ssh_args
    )
    if files_given:
        config_files: list[str] | None = files_given  # ssh -F: only these
    elif given.ssh_config is True:
        config_files = None
    else:
        config_files = [given.ssh_config] if given.ssh_config else []
    options = resolve_config(host, config_files=config_files, command_line=command_line)

    def destination(resolved: SSHOptions, what: str, identities_only: bool | None = None) -> Destination:
        return Destination(
            label=what,
            hostname=resolved.hostname,
            port=resolved.port,
            user=resolved.user,
            credentials=Credentials(
                identity_files=resolved.identity_files,
                identities_given=resolved.identity_files_given,
                identities_only=resolved.identities_only if identities_only is None else identities_only,
                identity_agent=resolved.identity_agent,
                certificate_files=resolved.certificate_files,
                passphrase=given.passphrase,
                password=given.password,
            ),
            proxy_command=resolved.proxy_command,
            ciphers=resolved.ciphers,
            macs=resolved.macs,
        )

    hops = []
    for hop in [h for h in (options.proxy_jump or "").split(",") if h.strip()]:
        hop_host, hop_user, hop_port = parse_jump(hop)
        hop_line = [("Port", str(hop_port))] if hop_port is not None else []
        hop_line += [("User", quote(hop_user))] if hop_user else []
        if given.jump_identity_file is not None:
            hop_line += [("IdentityFile", quote(given.jump_identity_file)), ("IdentitiesOnly", "yes")]
        elif identity_files:
            hop_line += [("IdentityFile", quote(p)) for p in identity_files] + [("IdentitiesOnly", "yes")]
        hop_options = resolve_config(hop_host, config_files=config_files, command_line=hop_line)
        hops.append(destination(hop_options, f"{label} (jump host {hop_host})"))
    connect_timeout = given.connect_timeout
    if connect_timeout is None:
        connect_timeout = check_timeout("ConnectTimeout", options.connect_timeout or DEFAULT_CONNECT_TIMEOUT)
    if given.known_hosts is not None:
        user_files, global_files = [Path(given.known_hosts).expanduser()], []
    else:
        user_files = [Path(p) for p in options.user_known_hosts_files if p != "none"]
        global_files = [Path(p) for p in options.global_known_hosts_files if p != "none"]
    interval = float(options.server_alive_interval or DEFAULT_KEEPALIVE) if given.keepalive is None else given.keepalive
    return Plan(
        hops=hops,
        destination=destination(options, label),
        known_hosts=user_files,
        global_known_hosts=global_files,
        host_key_policy=_policy(given.host_key_policy, options.strict_host_key_checking),
        hash_known_hosts=options.hash_known_hosts,
        connect_timeout=connect_timeout,
        keepalive=(interval, options.server_alive_count_max),
        agent_socket=agent_socket(options.forward_agent, options.identity_agent, label),
    )


def keys_needing_passphrase(options: Mapping[str, object]) -> list[str]:
    """For a host's connect() options (an inventory host's: ``host`` and what else fanout.connect takes): the
    encrypted keys, held by no agent, it would need a passphrase for."""
    given = ConnectOptions.from_keywords({k: v for k, v in options.items() if k in OPTION_NAMES})
    way = plan(str(options.get("host")), given)
    return _ssh_auth.keys_needing_passphrase(way.destination.credentials)


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
            f"{name} ({dest.address}): waited out the connect timeout for one of the {MAX_HANDSHAKES_PER_SSHD} "
            "handshakes allowed at once to it"
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
    """host_key_policy="off": the user chose to skip host key checking."""

    def missing_host_key(self, client, hostname, key) -> None:
        return None


def _host_key_check(plan: Plan, explicit_known_hosts: bool) -> tuple[KnownHosts | None, paramiko.MissingHostKeyPolicy]:
    """The known_hosts every connection of one connect() checks against (None: "off"), and the policy doing it.
    Read once per connect(), not per hop or retry: a file's warnings are given once."""
    if plan.host_key_policy == "off":
        return None, _AcceptAnyHostKey()
    known = KnownHosts()
    then: paramiko.MissingHostKeyPolicy
    if plan.host_key_policy == "accept-new":
        if not plan.known_hosts:
            raise ValueError(
                "host key policy accept-new needs a known_hosts file to add keys to (UserKnownHostsFile none)"
            )
        first = plan.known_hosts[0].expanduser()
        first.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        first.touch(mode=0o600, exist_ok=True)
        then = AcceptNew(first, known, hash_names=plan.hash_known_hosts)  # new keys are appended here
    else:
        then = paramiko.RejectPolicy()
    read_known_hosts(plan, explicit_known_hosts, known)
    # Every decision is HostKeyCheck's (certificates, @revoked, patterns): paramiko's own table stays empty.
    return known, HostKeyCheck(known, then)


def read_known_hosts(plan: Plan, explicit_known_hosts: bool, known: KnownHosts) -> KnownHosts:
    """``known`` with the lines of the plan's known_hosts files that exist; a file named explicitly must exist."""
    if explicit_known_hosts and not plan.known_hosts[0].expanduser().is_file():
        raise FileNotFoundError(f"known_hosts file not found: {plan.known_hosts[0]}")
    for path in [*plan.known_hosts, *plan.global_known_hosts]:
        path = path.expanduser()
        if path.is_file():
            known.read(path)
    return known


def _open_socket(dest: Destination, timeout: float, jump: paramiko.Transport | None = None):
    name, address = dest.label, dest.address
    if jump is not None:
        try:
            channel = jump.open_channel("direct-tcpip", (dest.hostname, dest.port), ("127.0.0.1", 0), timeout=timeout)
            return AskLimit(channel)
        except paramiko.ChannelException as exc:
            raise Unreachable(f"{name} ({address}): the jump host could not reach it: {exc.text} ({exc.code})") from exc
        except paramiko.SSHException as exc:
            if "timeout" in str(exc).lower():
                raise ConnectTimeout(
                    f"{name} ({address}): no channel through the jump host within {timeout:g} s"
                ) from exc
            raise Unreachable(f"{name} ({address}): the jump host refused a channel to it: {exc}") from exc
    if dest.proxy_command:
        try:
            return ProxyCommandSocket(dest.proxy_command, name)
        except OSError as exc:
            raise Unreachable(f"{name} ({address}): ProxyCommand {dest.proxy_command!r} failed: {exc}") from exc
    try:
        return ReadAheadSocket(_with_keepalive(socket.create_connection((dest.hostname, dest.port), timeout=timeout)))
    except socket.gaierror as exc:
        raise Unreachable(f"{name} ({address}): cannot resolve {dest.hostname}: {exc.strerror}") from exc
    except TimeoutError as exc:
        raise ConnectTimeout(f"{name} ({address}): no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise Unreachable(f"{name} ({address}): cannot connect: {exc.strerror or exc}") from exc


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


def _auth_failure(strategy: KeysAndAgent, failure: AuthFailure) -> str:
    """What was offered and why each failed, one clause each: the key the user expected is named."""
    tried = []
    for source, result in failure.result:
        if isinstance(source, _Unusable):
            tried.append(f"{source.path}: {source.why}")
            continue
        what = "the password" if isinstance(source, Password) else None
        if what is None:
            key = source.pkey
            where = getattr(source, "path", None) or f"the agent's {key.get_name()} key"
            what = f"{where} ({key.fingerprint})"
        why = (
            "refused" if isinstance(result, paramiko.AuthenticationException) else f"{type(result).__name__}: {result}"
        )
        tried.append(f"{what}: {why}")
    if not tried:
        return "there was no key or password to offer: no agent, no identity file found, no password given"
    return "; ".join(tried)


def _transport_factory(known: KnownHosts | None, dest: Destination) -> Callable[..., paramiko.Transport]:
    """Transports for ``dest``: fanout's own, offering the host key types known_hosts expects first, and the
    ciphers and MACs ssh_config asks for."""
    base = known.transport_factory(dest.hostname, dest.port, PipelinedTransport) if known else PipelinedTransport

    def make(sock, **kwargs) -> paramiko.Transport:
        transport = base(sock, **kwargs)
        _ssh_algorithms.apply(transport, dest.ciphers, dest.macs, dest.label)
        return transport

    return make


def _authenticate(
    client: paramiko.SSHClient, known: KnownHosts | None, dest: Destination, sock, timeout: float
) -> None:
    name, address = dest.label, dest.address
    started = time.monotonic()
    strategy = KeysAndAgent(dest.user, dest.credentials)
    try:
        client.connect(
            dest.hostname,
            port=dest.port,
            username=dest.user,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            sock=sock,
            transport_factory=_transport_factory(known, dest),
            auth_strategy=strategy,
        )
    except paramiko.BadHostKeyException as exc:
        raise HostKeyError(
            f"{name} ({address}): the host key does not match known_hosts "
            f"(offered {_fingerprint(exc.key)}, expected {_fingerprint(exc.expected_key)}); "
            "someone may be intercepting the connection, or the host was reinstalled"
        ) from exc
    except HostKeyRefused as exc:
        error = HostKeyError(f"{name} ({address}): {exc}")
        if exc.reason == UNKNOWN:
            why = str(exc).partition("not found in known_hosts")[2]  # what the @cert-authority lines said, if any
            error = HostKeyError(f"{name} ({address}) is not in known_hosts and host key checking is strict{why}")
            advise(
                error,
                api="add its key (ssh-keyscan) or pass host_key_policy='accept-new'",
                cli="add its key (ssh-keyscan) or give --host-key-checking accept-new",
            )
        raise error from exc
    except AuthFailure as exc:
        raise AuthenticationFailed(
            f"{name} ({address}): authentication as {dest.user!r} failed: {_auth_failure(strategy, exc)}"
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise AuthenticationFailed(f"{name} ({address}): authentication as {dest.user!r} failed: {exc}") from exc
    except paramiko.SSHException as exc:
        saved = failure_of(client.get_transport())
        if "No existing session" in str(exc) and saved is not None:
            exc = saved  # the transport's thread failed first, and knows why (a banner never sent, say)
        # paramiko says "Error reading SSH protocol banner" when a silent server ran the clock out
        if "timeout" in str(exc).lower() or time.monotonic() - started >= timeout * 0.99:
            raise ConnectTimeout(
                f"{name} ({address}): SSH handshake did not finish within {timeout:g} s: {exc}"
            ) from exc
        raise Unreachable(f"{name} ({address}): SSH handshake failed: {exc}") from exc
    except TimeoutError as exc:
        raise ConnectTimeout(f"{name} ({address}): SSH handshake did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise Unreachable(f"{name} ({address}): connection failed: {exc}") from exc
    except EOFError as exc:  # paramiko's word for a peer gone while it wrote its banner (a ProxyCommand that exited)
        raise Unreachable(f"{name} ({address}): the connection closed before the SSH handshake") from exc
    finally:
        strategy.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


class SSHTransport:
    """A child reached through an SSH exec channel."""

    def __init__(self, clients: list[paramiko.SSHClient], channel: paramiko.Channel, name: str) -> None:
        self.clients = clients  # the host's, after those of any jump hosts it is reached through
        self.channel = channel
        self.lost_reason: str | None = None  # set when fanout itself dropped the connection (the keepalive)
        self.exit_status: int | None = None  # the remote process's, once describe_end has learnt it
        self.stop_keepalive: Callable[[], None] = lambda: None
        #: The shared input loop's hold on this connection (None through a jump host, or with paramiko alone).
        self.shared_input = share_input(channel.transport)
        sock = channel.transport.sock
        #: The connection's socket (TCP, or a ProxyCommand's), which a fleet polls for room (None through a jump host).
        self.socket: socket.socket | None = sock.raw if isinstance(sock, ReadAheadSocket) else None
        self.stderr = StderrTail(name)
        self._stderr_thread = threading.Thread(
            target=self.stderr.pump, args=(lambda: channel.recv_stderr(65536),), daemon=True
        )
        self._stderr_thread.start()

    def start(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Take the child's output straight from paramiko's receiving thread (see fanout/_paramiko_compat.py)."""
        start_channel_input(self.channel, on_data, on_end)

    def send(self, data: bytes | memoryview) -> None:
        """Send in SSH packets of PACKET bytes: paramiko's sendall re-slices what is left after each packet,
        which copies a large ``data`` over and over."""
        if len(data) <= PACKET and type(data) is bytes:  # a call's frame: one packet, no slicing
            sent = self.channel.send(data)
            if sent == len(data):
                return
            if sent == 0:
                raise OSError(errno.EPIPE, "the channel closed while sending")
            data = data[sent:]  # the window held only part of it: the rest as below
        view = memoryview(data)
        for start in range(0, len(view), PACKET):
            packet = view[start : start + PACKET].tobytes()
            while packet:
                sent = self.channel.send(packet)
                if sent == 0:
                    raise OSError(errno.EPIPE, "the channel closed while sending")
                packet = packet[sent:]

    def can_send_now(self, size: int, writable: Container[socket.socket]) -> bool:
        """Whether :meth:`send` of ``size`` bytes returns at once: the channel's window holds them, no key exchange
        is under way, and the socket was found with room (it is in ``writable``, a poll of the fleet's sockets)."""
        return self.socket is not None and self.socket in writable and sends_at_once(self.channel, size)

    def lost(self, reason: str) -> None:
        """Drop a connection that stopped answering: its calls then fail with ConnectionLost, giving ``reason``."""
        self.lost_reason = reason
        for client in reversed(self.clients):
            client.close()

    def close(self) -> None:
        self.stop_keepalive()
        try:
            self.channel.close()
        except (EOFError, OSError, paramiko.SSHException):
            pass  # the connection is already gone: nothing left to close politely
        finally:
            for client in reversed(self.clients):
                client.close()

    def describe_end(self) -> str:
        if self.lost_reason is not None:
            return self.lost_reason
        failure = failure_of(self.channel.get_transport())
        if isinstance(failure, PacketTooLarge):
            return f"fanout dropped the connection: {failure.strerror}"
        what = "the remote process ended"
        status = wait_exit_status(self.channel, 2)
        if status is not None:
            self.exit_status = status if status >= 0 else None  # -1: none came (the channel closed without one)
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
    identity_file: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    password: str | None = None,
    passphrase: str | Mapping[str, str] | None = None,
    python: str = "python3",
    known_hosts: str | os.PathLike | None = None,
    host_key_policy: str | None = None,
    connect_timeout: float | None = None,
    ssh_config: bool | str | os.PathLike = True,
    ssh_args: str | Sequence[str] = (),
    jump: str | None = None,
    jump_identity_file: str | os.PathLike | None = None,
    forward_agent: bool | None = None,
    keepalive: float | None = None,
    name: str | None = None,
    allow_modules: Iterable[str] = (),
    deny_modules: Iterable[str] = (),
    via: Context | None = None,
    **unknown: NoReturn,
) -> Context:
    """Connect to ``host`` over SSH and start a child there; returns its :class:`Context`.

    The connection is resolved as ``ssh -G host`` resolves it: ``~/.ssh/config``
    then ``/etc/ssh/ssh_config`` (or only ``ssh_config``, a path; or none:
    ``False``), with the arguments here and ``ssh_args`` (an ssh command line's
    options: ``-o Key=Value``, ``-J``, ``-i``, ``-p``, ``-l``, ``-A``, ``-F``)
    winning over the files, as ssh's command line does (docs/ssh.rst).

    ``host_key_policy`` is ``"strict"`` (the host must be in known_hosts with
    this key, or present a certificate from a ``@cert-authority`` there),
    ``"accept-new"`` (unknown hosts are added, changed keys refused) or ``"off"``;
    by default it follows ``StrictHostKeyChecking`` (``ask`` counts as strict).
    An ``identity_file`` named here is the only key offered (through the agent
    when the agent holds it, else read with ``passphrase``: a string, or a
    mapping of key path to passphrase); otherwise ssh's defaults and the agent
    are, as ssh does. ``jump`` is ProxyJump: ``[user@]host[:port]`` hops,
    comma-separated, each checked and authenticated like ``host``, with
    ``jump_identity_file`` if given. ``forward_agent`` gives the child a working
    ``SSH_AUTH_SOCK`` (ForwardAgent). ``keepalive`` is ServerAliveInterval in
    seconds (default: ssh_config's, else 30; 0 for none): a host that misses
    ServerAliveCountMax of them in a row is dropped, through jump hosts too.
    ``connect_timeout`` (default: ConnectTimeout, else 10 s) covers the whole
    way, every hop and the child's start included. ``name`` names the context
    (its errors, its logger ``fanout.remote.<name>``); it defaults to ``host``.
    ``allow_modules`` and ``deny_modules`` widen and narrow what the child may
    import from the master (module name prefixes; see docs/security.rst).
    ``via`` is a context to connect through: its child runs its own OpenSSH
    ``ssh`` to ``host``, with the options resolved here, and relays
    (docs/relays.rst).

    The options are checked, before anything connects, as a
    :class:`fanout.ConnectOptions`: a bad value is a ValueError naming it, an
    unknown option a TypeError with the closest option's name.
    """
    if unknown:
        raise unknown_option(next(iter(unknown)), "connect()")
    # Each keyword above is a ConnectOptions field (tests/test_connect_options.py holds them together).
    given = ConnectOptions(**{key: value for key, value in locals().items() if key in OPTION_NAMES})
    return connect_with(host, given)


def connect_with(host: str, given: ConnectOptions) -> Context:
    """:func:`connect` with its options as one ConnectOptions."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty string, not {host!r}")
    if given.via is not None:
        from fanout import _via  # it builds on this module

        return _via.connect(host, given, given.via)
    way = plan(host, given)
    deadline = time.monotonic() + way.connect_timeout
    dest = way.destination
    clients: list[paramiko.SSHClient] = []
    try:
        through = None
        known, checker = _host_key_check(way, given.known_hosts is not None)
        for hop in way.hops:
            through = _open_client(hop, known, checker, deadline, through, clients)
        transport = _open_client(dest, known, checker, deadline, through, clients)
        channel = transport.open_session(timeout=_remaining(dest.label, deadline, "a session channel opened"))
        if way.agent_socket is not None:
            AgentForwarding(dest.label, way.agent_socket).request(channel)
        exec_command(channel, _stage.stage0_command(given.python))
        ssh_transport = SSHTransport(clients, channel, dest.label)
        context = Context(
            ssh_transport,
            given.name or host,
            allow_modules=given.allow_modules,
            deny_modules=given.deny_modules,
            user=dest.user,
        )
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise
    interval, count_max = way.keepalive
    if interval > 0:
        ssh_transport.stop_keepalive = _keepalive.watch(
            transport, interval, count_max, ssh_transport.lost, f"{dest.label}"
        )
    context.expect_ready_by(deadline, way.connect_timeout)
    return context


def _open_client(
    dest: Destination,
    known: KnownHosts | None,
    checker: paramiko.MissingHostKeyPolicy,
    deadline: float,
    through: paramiko.Transport | None,
    clients: list[paramiko.SSHClient],
) -> paramiko.Transport:
    """One authenticated SSH connection (through the previous hop, if any), appended to ``clients``.

    An sshd that resets the connection before its banner is shedding load
    (``MaxStartups`` counts every client of the machine, not just ours): that
    is retried after a short random pause, while the deadline allows.
    """
    name = dest.label
    for attempt in range(1, _BANNER_RETRIES + 1):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(checker)
        sock = None
        try:
            with _handshake_slot(name, dest, deadline):
                sock = _open_socket(dest, _remaining(name, deadline, "connecting"), through)
                _authenticate(client, known, dest, sock, _remaining(name, deadline, "the SSH handshake"))
        except BaseException as exc:
            # Whatever failed (a refused login or host key too), nothing of the attempt stays open: a connection
            # left unauthenticated counts against the host's MaxStartups until sshd's LoginGraceTime.
            client.close()
            if sock is not None:
                with contextlib.suppress(Exception):
                    sock.close()
            if isinstance(sock, ProxyCommandSocket) and isinstance(exc, Unreachable) and (said := sock.stderr_tail()):
                raise Unreachable(f"{exc}; the ProxyCommand said: {said}") from exc
            if not isinstance(exc, Unreachable):
                raise
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
