"""How to reach one host: :func:`fanout.connect`'s keyword arguments as one checked, frozen value.

Every option is checked where it is made, before anything connects: a bad value
is a ValueError naming the option, what it must be and what it was; an unknown
option is a TypeError naming it, with the closest known name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from fanout._modules import ModulePolicy
from fanout._timeouts import check_timeout

HOST_KEY_POLICIES = ("strict", "accept-new", "off", "ignore")  # "ignore": the name "off" had before
MAX_PORT = 65535
SIMILARITY = 0.6  # difflib's ratio above which an unknown option is taken for a misspelt one


def _fail(name: str, must: str, value: object) -> ValueError:
    return ValueError(f"{name} must be {must}, not {value!r}")


def _path(name: str, value: object, *, empty_ok: bool = False) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise _fail(name, "a path (str or os.PathLike)", value)
    path = os.fspath(value)
    if not isinstance(path, str) or (not path and not empty_ok):
        raise _fail(name, "a non-empty path", value)
    return path


def _text(name: str, value: object, *, optional: bool = True, empty_ok: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or (not value and not empty_ok):
        raise _fail(name, f"a{'' if empty_ok else ' non-empty'} string{' or None' if optional else ''}", value)


@dataclass(frozen=True, kw_only=True)
class ConnectOptions:
    """:func:`fanout.connect`'s options, each with its default, checked (and paths made ``str``) when made."""

    port: int | None = None
    """The SSH port, 1 to 65535; None: ssh_config's ``Port``, else 22."""

    user: str | None = None
    """The login user; None: ssh_config's ``User``, else the local user."""

    identity_file: tuple[str, ...] = ()
    """Key files to offer, and only these (``IdentitiesOnly``); given as one path or a sequence of them.
    Empty: ssh_config's ``IdentityFile`` lines, ssh's default keys and the agent's."""

    password: str | None = None
    """A password to try after the keys."""

    passphrase: str | Mapping[str, str] | None = None
    """The passphrase of encrypted identity files no agent holds: one for all, or a mapping of key path to it."""

    python: str = "python3"
    """The Python to start on the host: a command or path, or ``auto``/``auto_silent`` to discover one."""

    known_hosts: str | None = None
    """The known_hosts file to check, and the only one; None: ssh_config's ``UserKnownHostsFile`` and
    ``GlobalKnownHostsFile``."""

    host_key_policy: str | None = None
    """``"strict"``, ``"accept-new"`` or ``"off"`` (``"ignore"`` is read as ``"off"``); None: ssh_config's
    ``StrictHostKeyChecking`` (``ask`` counts as strict)."""

    connect_timeout: float | None = None
    """Seconds for the whole way, every hop and the child's start; None: ssh_config's ``ConnectTimeout``,
    else 10."""

    ssh_config: bool | str = True
    """True: ``~/.ssh/config`` then ``/etc/ssh/ssh_config``, as ssh reads them; a path: only that file;
    False: none."""

    ssh_args: str | tuple[str, ...] = ()
    """ssh command-line options (``-o Key=Value``, ``-J``, ``-i``, ``-p``, ``-l``, ``-A``, ``-F``): one
    string, split as a shell would, or a sequence of arguments. They win over ssh_config, as ssh's do."""

    jump: str | None = None
    """ProxyJump: ``[user@]host[:port]`` hops, comma-separated; ``""`` for none even if ssh_config names one."""

    jump_identity_file: str | None = None
    """The key file for the jump hosts; None: the jump hosts' own ssh_config, else ``identity_file``."""

    forward_agent: bool | None = None
    """ForwardAgent: give the child a working ``SSH_AUTH_SOCK``; None: ssh_config's."""

    keepalive: float | None = None
    """ServerAliveInterval in seconds, 0 for none; None: ssh_config's, else 30."""

    name: str | None = None
    """What the context is called (in errors, in its logger ``fanout.remote.<name>``); None: the host."""

    allow_modules: tuple[str, ...] = ()
    """Module name prefixes the child may import from the master beyond the default (docs/security.rst)."""

    deny_modules: tuple[str, ...] = ()
    """Module name prefixes the child may never import from the master (docs/security.rst)."""

    via: Any = None
    """A :class:`fanout.Context` to connect through: its child runs its own ``ssh`` to the host and relays
    (docs/relays.rst); None: connect from here."""

    def __post_init__(self) -> None:
        port = self.port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= MAX_PORT):
            raise ValueError(f"port must be a number from 1 to {MAX_PORT}; {port!r} is out of range")
        _text("user", self.user)
        self._set("identity_file", _identity_files(self.identity_file))
        _text("password", self.password, empty_ok=True)
        _check_passphrase(self.passphrase)
        _text("python", self.python, optional=False)
        if self.known_hosts is not None:
            self._set("known_hosts", _path("known_hosts", self.known_hosts))
        if self.host_key_policy is not None and self.host_key_policy not in HOST_KEY_POLICIES:
            raise ValueError(f"host_key_policy must be one of {HOST_KEY_POLICIES[:3]}, not {self.host_key_policy!r}")
        if self.host_key_policy == "ignore":
            self._set("host_key_policy", "off")
        self._set("connect_timeout", check_timeout("connect_timeout", self.connect_timeout, allow_none=True))
        if not isinstance(self.ssh_config, bool):
            self._set("ssh_config", _path("ssh_config", self.ssh_config))
        self._set("ssh_args", _ssh_args(self.ssh_args))
        _text("jump", self.jump, empty_ok=True)
        if self.jump_identity_file is not None:
            self._set("jump_identity_file", _path("jump_identity_file", self.jump_identity_file))
        if self.forward_agent is not None and not isinstance(self.forward_agent, bool):
            raise _fail("forward_agent", "True, False or None", self.forward_agent)
        self._set("keepalive", _keepalive(self.keepalive))
        _text("name", self.name)
        policy = ModulePolicy(self.allow_modules, self.deny_modules)  # bad prefixes fail before anything connects
        self._set("allow_modules", policy.allow)
        self._set("deny_modules", policy.deny)
        if self.via is not None:
            from fanout._context import Context  # not at the top: the context module is the heavier one

            if not isinstance(self.via, Context):
                raise _fail("via", "a fanout.Context (the relay) or None", self.via)

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)  # frozen: only __post_init__ puts a checked value in place

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any], *, where: str = "connect()") -> ConnectOptions:
        """Options from a mapping (an inventory host's, a fleet's): an unknown key is a TypeError naming it."""
        unknown = [key for key in options if key not in OPTION_NAMES]
        if unknown:
            raise unknown_option(unknown[0], where)
        return cls(**options)


OPTION_NAMES = tuple(f.name for f in fields(ConnectOptions))


def unknown_option(key: object, where: str) -> TypeError:
    """The TypeError for an option ``where`` does not take, with the closest option's name when one is close."""
    close = difflib.get_close_matches(str(key), OPTION_NAMES, n=1, cutoff=SIMILARITY)
    hint = f"; did you mean {close[0]!r}?" if close else f"; the options are {', '.join(OPTION_NAMES)}"
    return TypeError(f"{where} got an unknown option {key!r}{hint}")


def _identity_files(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, os.PathLike)):
        return (_path("identity_file", value),)
    if not isinstance(value, Iterable) or isinstance(value, (bytes, Mapping)):
        raise _fail("identity_file", "a path or a sequence of paths", value)
    return tuple(_path("identity_file", item) for item in value)


def _keepalive(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:  # NaN is not >= 0
        raise _fail("keepalive", "a number of seconds, 0 for none, or None", value)
    return check_timeout("keepalive", value) if value else 0.0  # finite, and at most MAX_TIMEOUT


def _check_passphrase(value: object) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail("passphrase", "a string, a mapping of key path to string, or None", value)


def _ssh_args(value: object) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes) and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise _fail("ssh_args", "a string or a sequence of strings", value)
