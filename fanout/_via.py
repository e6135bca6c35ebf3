"""Reach a host through another host's child (``via=``): the relay's OpenSSH client connects onward, and it relays.

Master side. The way to the target is resolved here, as for a direct
connection (ssh_config, connect()'s options: user, port, timeouts, keepalive,
host key policy), and the relay runs ``ssh`` with exactly those options and
``-F /dev/null``: the relay's own ssh_config plays no part, so a host is
reached the same way whichever relay it goes through. The host keys the
master knows for the target (plain lines, ``@cert-authority`` lines that name
it, every ``@revoked`` key) travel along in the OPEN, and the relay writes
them to a private temporary file that lives as long as that ssh.

The relay authenticates with what the relay has: an agent forwarded to it
(``forward_agent=True`` on the relay's connection) or keys of its own in the
login user's ``~/.ssh``. The master's key files are never sent anywhere: a
target's ``identity_file`` cannot be used through a relay, and says so.
docs/relays.rst has the rest; the relay's side is ``bootstrap/relay.py``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

from fanout import _ssh, _stage
from fanout._connect_options import ConnectOptions
from fanout._context import Context
from fanout._known_hosts import CERTIFICATE_AUTHORITY, DEFAULT_PORT, REVOKED_MARKER, KnownHosts
from fanout._relay import MAX_LOGINS_BEYOND, RelayTransport
from fanout.errors import AuthenticationFailed, ConnectTimeout, HostKeyError, Unreachable

MAX_KNOWN_HOSTS_LINES = 1000  # known_hosts lines passed to a relay for one host: more is a mistake somewhere
MAX_SAID = 300  # characters of ssh's last words kept in an error

KNOWN_HOSTS_MARK = "\0known_hosts"  # in the OPEN's argv: the relay puts its temporary known_hosts file's path here
# The key exchanges a relay's ssh offers: those of fanout's own connections (paramiko's), in its order. OpenSSH's
# default first choice since 9.0, sntrup761x25519, cost the relay's ssh 85 ms of CPU a login here against 13 ms
# for curve25519 (docs/design.rst, "Relays: hosts reached through hosts"); KexAlgorithms in ssh_config is not
# honoured for any connection, and warns.
RELAY_KEX = (
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group14-sha256",
)
_STRICT = {"strict": "yes", "accept-new": "accept-new", "off": "no"}
_HOST_KEY_WORDS = ("host key verification failed", "remote host identification has changed", "host key for")


@dataclass(frozen=True)
class Hop:
    """How a relay's child starts the child of a host beyond it: the command it runs, and what its failures mean."""

    relay: str  # the relay's context name, for errors
    target: str  # the target's label (inventory name, else its address)
    argv: tuple[str, ...]
    known_hosts: str  # the lines the relay writes to a file of its own, at KNOWN_HOSTS_MARK in argv
    other_host = True  # the child runs on another host, perhaps another Python: it gets the master's stage 1

    def open_args(self, use_pty: bool | None = None) -> tuple:
        """The OPEN frame's payload: no password, no terminal, no prompt; a child on another host, to be sent the
        master's stage 1 the relay keeps (fanout._relay sends it with the relay's first such OPEN); its files."""
        return (list(self.argv), None, False, None, True, {KNOWN_HOSTS_MARK: self.known_hosts})

    def needs_pty_retry(self, text: str) -> bool:
        return False

    def failure(self, how: str, text: str, status: int | None, host: str, login_user: str) -> Exception | None:
        """The error a child that ended before it was ready stands for; None for an ordinary end."""
        if how != "ended" or not (text or status):
            return None
        lines = text.splitlines()
        unsupported = _stage.unsupported_python(self.target, _Lines(lines))
        if unsupported is not None:
            return unsupported
        said = " ".join(text.split())[-MAX_SAID:] or "no output"
        where = f"{self.target} (through {self.relay})"
        lower = text.lower()
        if status == 127 or "cannot run sh" in text or "ssh: not found" in lower:
            return Unreachable(f"{where}: the relay cannot run the OpenSSH client ssh ({said})")
        if any(words in lower for words in _HOST_KEY_WORDS):
            return HostKeyError(f"{where}: the relay's ssh refused the host key ({said})")
        if "permission denied" in lower:
            return AuthenticationFailed(
                f"{where}: the host refused the relay's keys ({said}); the relay authenticates with an agent"
                " forwarded to it (forward_agent=True on its connection) or keys in its own ~/.ssh"
            )
        return Unreachable(f"{where}: ssh ended with status {status} before the child started: {said}")


@dataclass(frozen=True)
class _Lines:
    """What :func:`fanout._stage.unsupported_python` reads: the lines a child said before it was ready."""

    lines: list[str]


def connect(host: str, given: ConnectOptions, via: Context) -> Context:
    """A context on ``host``, reached by ``via``'s child through its own ``ssh``."""
    way = _ssh.plan(host, given)
    dest = way.destination
    _refuse_unrelayable(way, given, via.name)
    known_hosts = "".join(line + "\n" for line in _known_hosts_lines(way, given))
    argv = ("ssh", "-o", f"UserKnownHostsFile={KNOWN_HOSTS_MARK}", *_ssh_args(way, given))
    hop = Hop(relay=via.name, target=dest.label, argv=argv, known_hosts=known_hosts)
    via._raise_if_lost()
    deadline = time.monotonic() + way.connect_timeout
    # One of the logins the relay makes at once, held until the host is ready or has ended (MAX_LOGINS_BEYOND).
    if not via._kept.logins.acquire(timeout=way.connect_timeout):
        raise ConnectTimeout(
            f"{dest.label}: waited out the connect timeout of {way.connect_timeout:g} s for one of the"
            f" {MAX_LOGINS_BEYOND} logins its relay {via.name} makes at once"
        )
    transport = RelayTransport(via, hop, settled=via._kept.logins.release)
    try:
        context = Context(
            transport,
            given.name or host,
            allow_modules=given.allow_modules,
            deny_modules=given.deny_modules,
            user=dest.user,
            parent=via,
            other_host=True,
        )
    except BaseException:
        transport.settle()
        raise
    via._adopt(context)
    context.expect_ready_by(deadline, way.connect_timeout)
    return context


def _refuse_unrelayable(way: _ssh.Plan, given: ConnectOptions, relay: str) -> None:
    """What a relay's ssh cannot do for this host: an error, or a warning where the rest still works."""
    dest = way.destination
    if way.hops:
        raise ValueError(f"{dest.label}: jump hosts (ProxyJump) and via= cannot be combined; chain relays with via=")
    if dest.proxy_command:
        raise ValueError(f"{dest.label}: a ProxyCommand cannot run on a relay: it names a command of this machine")
    if given.password is not None:
        raise ValueError(f"{dest.label}: a password cannot be used through a relay: its ssh runs in batch mode")
    if dest.credentials.identities_given:
        warnings.warn(
            f"{dest.label}: identity files are not used through the relay {relay}: the master's key files never leave"
            " it; the relay authenticates with an agent forwarded to it or keys in its own ~/.ssh",
            UserWarning,
            stacklevel=4,
        )


def _ssh_args(way: _ssh.Plan, given: ConnectOptions) -> list[str]:
    """The relay's ssh command line after the known_hosts file: the target's resolved options, then the command."""
    dest = way.destination
    interval, count_max = way.keepalive
    options = {
        "BatchMode": "yes",  # never a prompt: there is nobody at the relay to answer it
        "LogLevel": "ERROR",  # after the child is ready, ssh's output shares its pipe: it must say nothing
        "StrictHostKeyChecking": _STRICT[way.host_key_policy],
        "GlobalKnownHostsFile": "/dev/null",
        "CheckHostIP": "no",
        "UpdateHostKeys": "no",
        "ConnectTimeout": str(max(1, math.ceil(way.connect_timeout))),
        "ServerAliveInterval": str(math.ceil(interval)),
        "ServerAliveCountMax": str(count_max),
        "ForwardAgent": "yes" if way.agent_socket is not None else "no",
        "KexAlgorithms": ",".join(RELAY_KEX),
    }
    if dest.ciphers:
        options["Ciphers"] = dest.ciphers
    if dest.macs:
        options["MACs"] = dest.macs
    args = ["-F", "/dev/null", "-T", "-x"]
    for key, value in options.items():
        args += ["-o", f"{key}={value}"]
    args += ["-p", str(dest.port), "-l", dest.user, "--", dest.hostname]
    args.append(_stage.stage0_command(given.python, ready=True))
    return args


def _known_hosts_lines(way: _ssh.Plan, given: ConnectOptions) -> list[str]:
    """The known_hosts lines the relay's ssh checks the target against, named as that ssh looks them up."""
    if way.host_key_policy == "off":
        return []
    known = _ssh.read_known_hosts(way, given.known_hosts is not None, KnownHosts())
    dest = way.destination
    name = dest.hostname if dest.port == DEFAULT_PORT else f"[{dest.hostname}]:{dest.port}"
    lines = [
        f"{name} {line.key.get_name()} {line.key.get_base64()}" for line in known.for_host(dest.hostname, dest.port)
    ]
    lines += [
        f"{CERTIFICATE_AUTHORITY} {name} {line.key.get_name()} {line.key.get_base64()}"
        for line in known.for_host(dest.hostname, dest.port, CERTIFICATE_AUTHORITY)
    ]
    if not lines and way.host_key_policy == "strict":
        raise HostKeyError(
            f"{dest.label}: no host key for {name} in known_hosts, and host key checking is strict"
            " (the relay's ssh checks the keys the master knows)"
        )
    lines += [
        f"{REVOKED_MARKER} * {line.key.get_name()} {line.key.get_base64()}"
        for line in known.lines
        if line.marker == REVOKED_MARKER
    ]
    if len(lines) > MAX_KNOWN_HOSTS_LINES:
        raise ValueError(f"{dest.label}: over {MAX_KNOWN_HOSTS_LINES} known_hosts lines name it")
    return lines
