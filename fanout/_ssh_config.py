"""ssh_config resolved as ``ssh -G`` resolves it (OpenSSH 9.2), for the keys fanout uses.

paramiko's SSHConfig ignores Include, most of Match and most keywords, so a
host could reach a different address, user or key than ``ssh`` would. This
module follows OpenSSH's readconf.c line by line instead: its tokenizer, first
obtained value wins, Host and Match (with the second "final" pass), Include,
tokens and ``${VAR}``. Keys fanout does not implement either cannot change what
fanout does (NO_EFFECT) or are ignored with a warning naming the file and line
(NOT_IMPLEMENTED); an unknown keyword is an error, as in ssh. Every file is
untrusted input: sizes, line lengths, include depth and counts are bounded.
See docs/ssh_config.rst.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import os
import pwd
import re
import shlex
import socket
import stat
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from fanout.errors import FanoutError

MAX_FILE_BYTES = 1024 * 1024  # a config file larger than this is refused
MAX_LINE_CHARS = 64 * 1024  # a longer line is refused
MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
MAX_FILES_PER_PASS = 1024  # files opened while reading the configuration once
MAX_GLOB_MATCHES = 1024  # files one Include argument may name
MAX_IDENTITY_FILES = 100  # OpenSSH's SSH_MAX_IDENTITY_FILES
MAX_CERTIFICATE_FILES = 100  # OpenSSH's SSH_MAX_CERTIFICATE_FILES
MAX_KNOWN_HOSTS_FILES = 32  # OpenSSH's SSH_MAX_HOSTS_FILES
MAX_CACHED_FILES = 64  # parsed files kept, keyed by their stat
DEFAULT_PORT = 22
_DEV_NULL = os.stat(os.devnull).st_rdev if os.path.exists(os.devnull) else -1  # the one device read as a file
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
SYSTEM_DIR = "/etc/ssh/"  # where a system file's relative Include points
USER_DIR = "~/.ssh/"  # where a user file's relative Include points ($HOME, as glob(3) expands it)
DEFAULT_IDENTITY_FILES = tuple(
    f"~/.ssh/{name}"
    for name in ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa")
)
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


def _keywords(*names: str) -> frozenset[str]:
    """A keyword set from space-separated names, so the sets below read as the lists they are."""
    return frozenset(" ".join(names).split())


# Keywords resolved here, as ssh -G resolves them.
IMPLEMENTED = _keywords(
    "host match include ignoreunknown hostname port user identityfile identityfile2 identitiesonly identityagent"
    " certificatefile userknownhostsfile globalknownhostsfile stricthostkeychecking hashknownhosts connecttimeout"
    " serveraliveinterval serveralivecountmax proxyjump proxycommand forwardagent ciphers macs"
)
# Keywords that cannot change what fanout does: accepted silently (docs/ssh_config.rst says why, group by group).
NO_EFFECT = _keywords(
    # connection sharing, ssh's own messages and terminal, prompts
    "controlmaster controlpath controlpersist loglevel logverbose syslogfacility visualhostkey escapechar"
    " enableescapecommandline fingerprinthash requesttty stdinnull forkafterauthentication batchmode"
    " numberofpasswordprompts sendenv addkeystoagent compression updatehostkeys ipqos"
    # X11, and settings that only qualify forwardings, local commands or canonicalisation fanout never does
    " forwardx11 forwardx11trusted forwardx11timeout xauthlocation exitonforwardfailure gatewayports"
    " clearallforwardings permitremoteopen streamlocalbindmask streamlocalbindunlink tunneldevice permitlocalcommand"
    " canonicaldomains canonicalizefallbacklocal canonicalizemaxdots canonicalizepermittedcnames"
    # authentication methods fanout never tries (GSSAPI, host-based): a host needing one fails visibly
    " gssapiauthentication gssapidelegatecredentials gssapikeyexchange gssapiclientidentity gssapiserveridentity"
    " gssapirenewalforcesrekey gssapitrustdns gssapikexalgorithms hostbasedauthentication enablesshkeysign"
    " hostbasedacceptedalgorithms hostbasedkeytypes kbdinteractivedevices"
    # obsolete: ssh itself ignores them
    " protocol cipher fallbacktorsh globalknownhostsfile2 rhostsauthentication userknownhostsfile2 useroaming usersh"
    " useprivilegedport afstokenpassing kerberosauthentication kerberostgtpassing rsaauthentication"
    " rhostsrsaauthentication compressionlevel"
)
# Valid keywords fanout does not honour: a line that applies to a host is ignored with a warning.
NOT_IMPLEMENTED = _keywords(
    "hostkeyalias checkhostip verifyhostkeydns nohostauthenticationforlocalhost revokedhostkeys knownhostscommand"
    " hostkeyalgorithms casignaturealgorithms kexalgorithms pubkeyacceptedalgorithms"
    " pubkeyacceptedkeytypes requiredrsasize rekeylimit passwordauthentication kbdinteractiveauthentication"
    " challengeresponseauthentication skeyauthentication tisauthentication pubkeyauthentication dsaauthentication"
    " preferredauthentications pkcs11provider smartcarddevice securitykeyprovider localforward remoteforward"
    " dynamicforward tunnel localcommand remotecommand sessiontype setenv bindaddress bindinterface addressfamily"
    " connectionattempts tcpkeepalive keepalive proxyusefdpass canonicalizehostname"
)
# Values of NOT_IMPLEMENTED keys that ask for what fanout does anyway: no warning for these.
HARMLESS_VALUES: Mapping[str, frozenset[str]] = {
    **dict.fromkeys(
        _keywords("canonicalizehostname checkhostip verifyhostkeydns nohostauthenticationforlocalhost tunnel"),
        frozenset({"no", "false"}),
    ),
    "proxyusefdpass": frozenset({"no", "false"}),
    **dict.fromkeys(
        _keywords("localcommand remotecommand revokedhostkeys knownhostscommand pkcs11provider smartcarddevice"),
        frozenset({"none"}),
    ),
    "connectionattempts": frozenset({"1"}),
    "sessiontype": frozenset({"default"}),
}
KEYWORDS = IMPLEMENTED | NO_EFFECT | NOT_IMPLEMENTED

_WS = " \t\r\n"
_USERCONF, _CHECKPERM, _NEVERMATCH = 1, 2, 4
_FLAG = {"yes": True, "true": True, "no": False, "false": False}
_STRICT = {
    "yes": "yes",
    "true": "yes",
    "no": "no",
    "false": "no",
    "off": "no",
    "ask": "ask",
    "accept-new": "accept-new",
}
_STRICT_PRINTED = {"yes": "true", "no": "false"}  # how ssh -G prints them (its table's first name for each value)
_CANONICALIZE = {"yes": True, "true": True, "always": True, "no": False, "false": False}
_PROXY_TOKENS = "hknpr"
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INT_MAX = 2**31 - 1
_BAD_HOP_CHARS = frozenset("'`\"$\\;&<>|(){},")  # what ssh refuses in a host name given on its command line
_BAD_HOST_CHARS = _BAD_HOP_CHARS | {"@"}  # and '@': resolve() takes the user separately
_BAD_USER_CHARS = frozenset("'`\";&<>|(){}")


class SSHConfigError(FanoutError, ValueError):
    """A config file or an ssh argument is wrong; the message starts with 'file:line: ' when it comes from a file."""


class _CannotOpen(SSHConfigError):
    """A config file exists but cannot be opened: fatal for -F files and includes, not for the default files."""


@dataclass(frozen=True)
class SSHOptions:
    """What ``ssh -G`` resolves for one host, for the keys fanout uses; paths and tokens expanded."""

    host: str  # the name asked for (%n)
    hostname: str  # HostName with %h applied, lower-cased unless an address; else host
    port: int
    user: str  # default: the local user
    identity_files: tuple[str, ...]  # expanded; OpenSSH's default list when none is configured
    identity_files_given: bool  # an IdentityFile came from a file or the command line
    identities_only: bool
    identity_agent: str | None  # a socket path, "none", or None when unset (then $SSH_AUTH_SOCK)
    certificate_files: tuple[str, ...]
    user_known_hosts_files: tuple[str, ...]  # empty for "none"
    global_known_hosts_files: tuple[str, ...]  # empty for "none"
    strict_host_key_checking: str  # "yes", "no", "accept-new" or "ask"
    hash_known_hosts: bool
    connect_timeout: float | None  # seconds; None when unset, none or 0 (no timeout, as in ssh)
    server_alive_interval: int  # seconds; 0 is off
    server_alive_count_max: int
    proxy_jump: str | None  # hops, comma-separated, each [user@]host[:port] (an address in brackets)
    proxy_command: str | None  # tokens expanded; None when unset or none
    forward_agent: bool | str  # or the socket to forward: a path, or $NAME to read from the environment
    ciphers: str | None = None  # Ciphers as written (a list, or +, - or ^ and a list); None when unset
    macs: str | None = None  # MACs, likewise
    # ssh -G lines whose printed form is not derived from the fields above (values ssh expands only later)
    _printed: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    def as_ssh_g(self) -> dict[str, str]:
        """The lines ``ssh -G`` prints for these keys, so tests can hold fanout to ssh; repeated lines joined by \\n."""
        yes_no = {True: "yes", False: "no"}
        printed = {
            "host": self.host,
            "user": self.user,
            "hostname": self.hostname,
            "port": str(self.port),
            "identityfile": "\n".join(self.identity_files),
            "identitiesonly": yes_no[self.identities_only],
            "userknownhostsfile": " ".join(self.user_known_hosts_files) or "none",
            "globalknownhostsfile": " ".join(self.global_known_hosts_files) or "none",
            "stricthostkeychecking": _STRICT_PRINTED.get(self.strict_host_key_checking, self.strict_host_key_checking),
            "hashknownhosts": yes_no[self.hash_known_hosts],
            "connecttimeout": "none" if self.connect_timeout is None else str(int(self.connect_timeout)),
            "serveraliveinterval": str(self.server_alive_interval),
            "serveralivecountmax": str(self.server_alive_count_max),
            "forwardagent": self.forward_agent if isinstance(self.forward_agent, str) else yes_no[self.forward_agent],
        }
        if self.certificate_files:
            printed["certificatefile"] = "\n".join(self.certificate_files)
        if self.identity_agent is not None:
            printed["identityagent"] = self.identity_agent
        if self.proxy_jump is not None:
            printed["proxyjump"] = self.proxy_jump
        elif self.proxy_command is not None:
            printed["proxycommand"] = self.proxy_command
        printed.update(self._printed)
        return printed


def resolve(
    host: str,
    *,
    config_files: Sequence[str | os.PathLike] | None = None,
    command_line: Sequence[tuple[str, str]] = (),
    local_user: str | None = None,
) -> SSHOptions:
    """As ``ssh -G [-F file] [-o K=V ...] host``: command-line options first, then the files; first value wins.

    ``config_files`` None reads ~/.ssh/config then /etc/ssh/ssh_config, each if present; a list reads exactly those
    (as -F; a missing one is an error). A command-line value is the rest of a config line, quoted as in ssh_config.
    ``local_user`` replaces the local user's name (%u, Match localuser, the default User), not the home directory.
    """
    if not _valid_host(host, _BAD_HOST_CHARS):
        raise SSHConfigError(f"host {host!r}: empty, or contains characters ssh refuses in a host name")
    resolver = _Resolver(host, local_user)
    for key, value in command_line:
        resolver.command_line(key, value)
    user = resolver.first.get("user")
    if user is not None and not _valid_user(user[0]):
        raise SSHConfigError(f"command line: remote user name {user[0]!r} contains characters ssh refuses")
    files = None if config_files is None else [os.fspath(f) for f in config_files]
    resolver.read_all(files)
    return resolver.finish(files)


def parse_ssh_args(args: str | Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """An ssh command line's options (Ansible's ansible_ssh_common_args, say) as resolve()'s (Key, Value) pairs,
    and the -F file given (ssh reads only the last); a flag fanout cannot honour is an error naming it."""
    if isinstance(args, str):
        try:
            argv = shlex.split(args)
        except ValueError as exc:
            raise SSHConfigError(f"ssh arguments {args[:200]!r}: {exc}") from None
    else:
        argv = [str(a) for a in args]
    pairs: list[tuple[str, str]] = []
    configs: list[str] = []
    agent = None
    jump_or_proxy = False
    position = 0
    while position < len(argv):
        word = argv[position]
        position += 1
        if word == "--" or not word.startswith("-") or word == "-":
            raise SSHConfigError(f"ssh arguments: {word!r} is not an option (fanout takes the host and command itself)")
        index = 1
        while index < len(word):
            flag = word[index]
            index += 1
            value = ""
            if flag in _FLAGS_WITH_VALUE:
                if index < len(word):
                    value = word[index:]
                elif position < len(argv):
                    value = argv[position]
                    position += 1
                else:
                    raise SSHConfigError(f"ssh arguments: -{flag} needs a value")
                index = len(word)
            if flag in _REFUSED_FLAGS:
                raise SSHConfigError(f"ssh arguments: -{flag} asks for {_REFUSED_FLAGS[flag]}, which fanout cannot do")
            if flag in "AaFJiplo":
                if flag in "Aa":
                    agent = "yes" if flag == "A" else "no"  # ssh sets these directly: the last wins over every -o
                elif flag == "F":
                    configs = [value]
                elif flag == "J":
                    if jump_or_proxy:
                        raise SSHConfigError("ssh arguments: -J with another -J, ProxyJump or ProxyCommand")
                    jump_or_proxy = True
                    pairs.append(("ProxyJump", value))
                elif flag == "o":
                    line = _split_line(value, 0)
                    if line is not None and line.error:
                        raise SSHConfigError(f"ssh arguments: -o with a {line.error}")
                    if line is not None and line.keyword not in KEYWORDS:
                        raise SSHConfigError(f"ssh arguments: -o {value[:100]!r}: Bad configuration option")
                    if line is not None:  # an empty or comment -o is nothing to ssh too
                        jump_or_proxy |= line.keyword in ("proxyjump", "proxycommand")
                        pairs.append((line.written, line.rest or ""))
                else:
                    key = {"i": "IdentityFile", "p": "Port", "l": "User"}[flag]
                    pairs.append((key, quote(_tilde(value, _passwd().home) if flag == "i" else value)))
            elif flag not in _HARMLESS_FLAGS:
                raise SSHConfigError(f"ssh arguments: unknown flag -{flag}")
    if agent is not None:
        pairs.insert(0, ("ForwardAgent", agent))
    return pairs, configs


def quote(value: str) -> str:
    """A value as one ssh_config argument, for resolve()'s command_line: a path or user may hold blanks or quotes."""
    if value and not re.search(r"[\s\"'\\]", value) and not value.startswith("#"):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_FLAGS_WITH_VALUE = frozenset("BbcDEeFIiJLlmOopQRSWw")
# Flags that only change ssh's own behaviour (its messages, terminal, stdin, connection sharing, or options
# in NO_EFFECT): accepted and dropped.
_HARMLESS_FLAGS = frozenset("qvCTxkn2yMgPESe")
_REFUSED_FLAGS = {
    "1": "SSH protocol 1",
    "4": "IPv4 only (AddressFamily)",
    "6": "IPv6 only (AddressFamily)",
    "b": "a bind address",
    "B": "a bind interface",
    "c": "a cipher list",
    "m": "a MAC list",
    "D": "dynamic port forwarding",
    "L": "local port forwarding",
    "R": "remote port forwarding",
    "w": "tunnel forwarding",
    "W": "stdio forwarding",
    "X": "X11 forwarding",
    "Y": "trusted X11 forwarding",
    "t": "a terminal",
    "N": "no remote command",
    "f": "going to the background",
    "s": "a subsystem",
    "O": "a connection-sharing control command",
    "G": "printing the configuration instead of connecting",
    "V": "printing the version instead of connecting",
    "Q": "a query instead of connecting",
    "K": "GSSAPI authentication",
    "I": "a PKCS#11 token",
}


class _Line(NamedTuple):
    number: int
    keyword: str  # lower case
    written: str  # as written
    rest: str | None  # the text after the keyword; None when there is none
    args: tuple[str, ...] | None  # the rest split as OpenSSH's argv_split; None on unbalanced quotes
    error: str | None = None


class _Passwd(NamedTuple):
    name: str
    home: str
    uid: int


def _passwd() -> _Passwd:
    """The local account: its name from the passwd entry, and ~ from $HOME when set, as Python and paramiko take it
    (ssh takes the passwd entry's home; the two differ only where $HOME was changed on purpose: docs/ssh_config.rst)."""
    uid = os.getuid()
    home = os.environ.get("HOME")
    try:
        entry = pwd.getpwuid(uid)
        return _Passwd(entry.pw_name, home or entry.pw_dir, uid)
    except KeyError:  # an unnamed uid in a container: ssh refuses, fanout falls back on the environment
        return _Passwd(os.environ.get("USER") or str(uid), home or os.path.expanduser("~"), uid)


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
_parsed: OrderedDict[tuple, tuple[_Line, ...]] = OrderedDict()
_parsed_lock = threading.Lock()


class _Resolver:
    """One resolve(): OpenSSH's Options struct, filled from the command line, then the files, first value winning."""

    def __init__(self, host: str, local_user: str | None) -> None:
        self.host_arg = host
        self.pw = _passwd()
        self.local_user = local_user or self.pw.name
        self.first: dict[str, tuple[object, str]] = {}  # key -> (first value, where it came from)
        self.identities: list[tuple[str, bool, str]] = []  # (path as written, from a user file, where)
        self.certificates: list[tuple[str, bool, str]] = []
        self.known_hosts: dict[str, tuple[list[str], str]] = {}
        self.jump: tuple[list[_Hop], str | None, str] | None = None  # hops (none: []), the text before the last, where
        self.ignore_unknown: str | None = None
        self.ignored: list[tuple[str, str]] = []  # (where, keyword as written) of NOT_IMPLEMENTED lines that applied
        self.active = True
        self.final = False
        self.want_final = False
        self.match_host = host
        self.stack: list[tuple[int, int]] = []
        self.files_read = 0

    def command_line(self, key: str, value: str) -> None:
        """One -o option, processed as ssh processes it: always active; Host, Match and Include refused."""
        if not re.fullmatch(r"[A-Za-z0-9]+", key) or "\0" in value:
            raise SSHConfigError(f"command line: {key[:100]!r} is not an ssh_config keyword, or its value holds NUL")
        line = _split_line(f"{key}={value}", 0)
        if line is not None:
            self.active = True
            self.process(line, "command line", _USERCONF, 0, cmdline=True)

    def read_all(self, files: list[str] | None) -> None:
        """One pass over the files, as ssh's process_config_files."""
        self.files_read = 0
        if files is None:
            for path, flags in (
                (os.path.join(self.pw.home, ".ssh", "config"), _USERCONF | _CHECKPERM),
                (SYSTEM_CONFIG, 0),
            ):
                self.active = True
                self.read(path, flags, 0, None, skip_unreadable=True)  # as ssh skips a default file it cannot open
            return
        for path in files:
            self.active = True
            if _lower(path) != "none" and not self.read(path, _USERCONF, 0, None):
                raise SSHConfigError(f"cannot open config file {path}: No such file or directory")

    def read(self, path: str, flags: int, depth: int, origin: str | None, skip_unreadable: bool = False) -> bool:
        """Process one file's lines; False when it does not exist (or cannot be opened, with ``skip_unreadable``)."""
        where = f"{origin}: " if origin else ""
        if depth > MAX_INCLUDE_DEPTH:
            raise SSHConfigError(f"{where}Includes nested deeper than {MAX_INCLUDE_DEPTH}")
        self.files_read += 1
        if self.files_read > MAX_FILES_PER_PASS:
            raise SSHConfigError(f"{where}more than {MAX_FILES_PER_PASS} config files to read")
        try:
            found = _read_lines(path, flags, where)
        except _CannotOpen:
            if skip_unreadable:
                return False
            raise
        if found is None:
            return False
        identity, lines = found
        if identity in self.stack:
            raise SSHConfigError(f"{where}Include loop: {path} includes itself")
        self.stack.append(identity)
        try:
            for line in lines:
                self.process(line, f"{path}:{line.number}", flags, depth)
        finally:
            self.stack.pop()
        return True

    def process(self, line: _Line, where: str, flags: int, depth: int, cmdline: bool = False) -> None:
        """One line, as OpenSSH's process_config_line: checked whether or not it applies, used only if it does."""
        if line.error:
            raise SSHConfigError(f"{where}: {line.error}")
        if line.rest is None:
            raise SSHConfigError(f'{where}: no argument after keyword "{line.keyword}"')
        key = "identityfile" if line.keyword == "identityfile2" else line.keyword
        if key not in KEYWORDS:
            if self.ignore_unknown is not None and _match_list(key, self.ignore_unknown, lower=True) == 1:
                return
            raise SSHConfigError(f"{where}: Bad configuration option: {line.written}")
        args = line.args
        if args is None:
            raise SSHConfigError(f"{where}: invalid quotes")
        if key in NO_EFFECT:
            return
        if key in NOT_IMPLEMENTED:
            if key == "canonicalizehostname":
                self.set(key, _multistate(args, where, _CANONICALIZE), where)
            elif key == "hostkeyalias":
                self.set(key, _one(args, where), where)
            if self.active and _lower(" ".join(args)) not in HARMLESS_VALUES.get(key, ()):
                self.ignored.append((where, line.written))
            return
        if key in ("host", "match", "include"):
            if cmdline:
                raise SSHConfigError(f"{where}: {line.written} is not allowed on the command line")
            if key == "host":
                self.host_line(args, where, flags)
            elif key == "match":
                matched = self.match(line.rest, where, flags)
                self.active = matched and not flags & _NEVERMATCH
            else:
                self.include(args, where, flags, depth)
        elif key in ("proxycommand", "proxyjump"):
            text = line.rest.lstrip(_WS + "=")
            if key == "proxyjump":
                self.proxy_jump(text, where, strict=cmdline)
            else:
                self.set(key, text, where)
        elif key in ("identityfile", "certificatefile"):
            path = _one(args, where)
            if self.active:
                entries, limit = (
                    (self.identities, MAX_IDENTITY_FILES)
                    if key == "identityfile"
                    else (self.certificates, MAX_CERTIFICATE_FILES)
                )
                if len(entries) >= limit:
                    raise SSHConfigError(f"{where}: more than {limit} {line.written} lines")
                entry = (path, bool(flags & _USERCONF))
                if entry not in [e[:2] for e in entries]:
                    entries.append((*entry, where))
        elif key in ("userknownhostsfile", "globalknownhostsfile"):
            self.known_hosts_line(key, args, where, line.written)
        elif key == "forwardagent":
            _forward_agent(self, args, where)
        else:
            self.set(key, _VALUE_PARSERS[key](args, where), where)

    def set(self, key: str, value: object, where: str) -> None:
        """First obtained value wins; a None value (ConnectTimeout none) leaves the key unset, as in ssh."""
        if self.active and value is not None and key not in self.first:
            self.first[key] = (value, where)
            if key == "ignoreunknown":
                self.ignore_unknown = str(value)

    def host_line(self, args: tuple[str, ...], where: str, flags: int) -> None:
        """Host: active when a pattern matches and no negated one does (patterns are case-sensitive, as in ssh)."""
        self.active = False
        for arg in args:
            if not arg:
                raise SSHConfigError(f"{where}: Host with an empty pattern")
            if flags & _NEVERMATCH:
                return
            negated = arg.startswith("!")
            if _match_pattern(self.match_host, arg[1:] if negated else arg):
                if negated:
                    self.active = False
                    return
                self.active = True

    def match(self, rest: str, where: str, flags: int) -> bool:
        """Match, as OpenSSH's match_cfg_line; exec is refused when its answer would count."""
        if self.final:
            host = str(self.first["hostname"][0])
        elif "hostname" in self.first:
            host = _expand(str(self.first["hostname"][0]), {"h": self.match_host}, False, where)
        else:
            host = self.match_host
        user = str(self.first["user"][0]) if "user" in self.first else self.local_user
        result, attributes, cursor = True, 0, rest
        while True:
            attribute, cursor = _strdelim(cursor)
            if not attribute:
                break
            if attribute.startswith("#"):
                cursor = None
                break
            negate = attribute.startswith("!")
            name = _lower(attribute[1:] if negate else attribute)
            if name == "all":
                arg, cursor = _strdelim(cursor)
                if attributes > 1 or (arg and not arg.startswith("#")):
                    raise SSHConfigError(f"{where}: '{attribute}' cannot be combined with other Match attributes")
                return result and not negate
            attributes += 1
            if name in ("canonical", "final"):
                self.want_final |= name == "final" and not self.final
                if self.final == negate:
                    result = False
                continue
            arg, cursor = _strdelim(cursor)
            if not arg or arg.startswith("#"):
                raise SSHConfigError(f"{where}: Match {attribute} needs an argument")
            if name == "host":
                matched = _match_list(_lower(host), arg, lower=True) == 1
            elif name == "originalhost":
                matched = _match_list(_lower(self.host_arg), arg, lower=True) == 1
            elif name in ("user", "localuser"):
                matched = _match_list(user if name == "user" else self.local_user, arg, lower=False) == 1
            elif name == "exec":
                if not result or flags & _NEVERMATCH:
                    continue  # ssh does not run it either when an earlier criterion failed; never counts here
                raise SSHConfigError(f"{where}: Match exec is not supported by fanout: {arg[:200]}")
            else:
                raise SSHConfigError(f"{where}: Match {attribute[:100]} is not supported (nor by OpenSSH 9.2)")
            if matched == negate:
                result = False
        if cursor:
            raise SSHConfigError(f"{where}: extra arguments at end of Match line")
        if attributes == 0:
            raise SSHConfigError(f"{where}: Match needs one or more criteria")
        return result

    def include(self, args: tuple[str, ...], where: str, flags: int, depth: int) -> None:
        """Include: globs, relative to ~/.ssh (user files) or /etc/ssh; files under an inactive block parse only."""
        for arg in args:
            if not arg or (arg.startswith("~") and not flags & _USERCONF):
                raise SSHConfigError(f"{where}: bad include path {arg!r}")
            if not arg.startswith(("/", "~")):
                arg = (USER_DIR if flags & _USERCONF else SYSTEM_DIR) + arg
            try:  # glob(3)'s GLOB_TILDE takes ~ from $HOME, unlike ssh's other ~
                paths = sorted(itertools.islice(glob.iglob(os.path.expanduser(arg)), MAX_GLOB_MATCHES + 1))
            except (OSError, ValueError) as exc:
                raise SSHConfigError(f"{where}: Include {arg[:200]}: {exc}") from None
            if len(paths) > MAX_GLOB_MATCHES:
                raise SSHConfigError(f"{where}: Include {arg} names more than {MAX_GLOB_MATCHES} files")
            was_active = self.active
            for path in paths:
                self.read(path, flags | _CHECKPERM | (0 if was_active else _NEVERMATCH), depth + 1, where)
                self.active = was_active

    def known_hosts_line(self, key: str, args: tuple[str, ...], where: str, written: str) -> None:
        """UserKnownHostsFile/GlobalKnownHostsFile: several files on one line; the first line that applies wins."""
        if not args:
            raise SSHConfigError(f"{where}: {written} needs an argument")
        for index, arg in enumerate(args):
            if not arg:
                raise SSHConfigError(f"{where}: {written} with an empty argument")
            if _lower(arg) == "none" and len(args) > 1:
                raise SSHConfigError(f'{where}: {written} "none" must appear alone')
            if index >= MAX_KNOWN_HOSTS_FILES:
                raise SSHConfigError(f"{where}: more than {MAX_KNOWN_HOSTS_FILES} {written} entries")
        if self.active and key not in self.known_hosts:
            self.known_hosts[key] = (list(args), where)

    def proxy_jump(self, text: str, where: str, strict: bool) -> None:
        """ProxyJump, as OpenSSH 10.3's parse_jump (Debian's 9.2 has it): every hop checked, the last kept apart;
        hops given on the command line must hold no shell metacharacters. It also blocks a later ProxyCommand."""
        if _lower(text) == "none":
            if self.active and self.jump is None:
                self.jump = ([], None, where)
            return
        text = text.split("#", 1)[0].rstrip(_WS + "\v\f")
        hops = []
        for hop in map(_parse_hop, text.split(",")):
            if hop is None or (strict and not (_valid_host(hop.host, _BAD_HOP_CHARS) and _valid_user(hop.user or ""))):
                raise SSHConfigError(f'{where}: Invalid ProxyJump "{text[:200]}"')
            hops.append(hop)
        if self.active and "proxycommand" not in self.first and self.jump is None:
            comma = text.rfind(",")
            self.jump = (hops, text[:comma] if comma >= 0 else None, where)
            self.first["proxycommand"] = ("none", where)

    def finish(self, files: list[str] | None) -> SSHOptions:
        """After the first pass: HostName, the final pass if Match final asked for it, then defaults and tokens."""
        host = self.host_arg
        if "hostname" in self.first:
            written, where = self.first["hostname"]
            host = _expand(str(written), {"h": self.host_arg}, False, where)
        was_address = _is_address(host)
        if not was_address:
            host = _lower(host)
        canonicalize = bool(self.first.get("canonicalizehostname", (False,))[0])
        if canonicalize or was_address:
            host = _canonical_address(host)
        if self.want_final or canonicalize:
            self.first["hostname"] = (host, self.first.get("hostname", (host, "command line"))[1])
            self.final, self.want_final, self.match_host = True, False, host
            self.read_all(files)
        user = str(self.first.get("user", (self.local_user,))[0])
        port = int(self.first.get("port", (DEFAULT_PORT,))[0])  # type: ignore[call-overload]
        if self.jump is not None and self.jump[0]:
            last = self.jump[0][-1]
            if (last.host, last.port if last.port > 0 else DEFAULT_PORT, last.user or user) == (host, port, user):
                raise SSHConfigError(f"{self.jump[2]}: jump host loop via {last.host}")
        alias = self.first.get("hostkeyalias")
        thishost = socket.gethostname()
        tokens = {
            "C": hashlib.sha1(f"{thishost}{host}{port}{user}".encode("utf-8", "surrogatepass")).hexdigest(),
            "L": thishost.split(".", 1)[0],
            "i": str(self.pw.uid),
            "k": _lower(str(alias[0])) if alias else self.host_arg,
            "l": thishost,
            "n": self.host_arg,
            "p": str(port),
            "d": self.pw.home,
            "h": host,
            "r": user,
            "u": self.local_user,
        }
        options = self.options(host, port, user, tokens)
        for where, keyword in self.ignored:
            with _warned_lock:
                if (where, keyword) in _warned:
                    continue
                _warned.add((where, keyword))
            warnings.warn(
                f"{where}: {keyword} is not supported by fanout; it is ignored for {self.host_arg}", UserWarning, 3
            )
        return options

    def options(self, host: str, port: int, user: str, tokens: dict[str, str]) -> SSHOptions:
        """Defaults filled and values expanded, as ssh does before (and, for some, after) printing -G."""
        home = self.pw.home
        printed: dict[str, str] = {}

        def paths(entries: list[tuple[str, bool, str]]) -> tuple[str, ...]:
            expanded = (_expand(_tilde(p, home, where), tokens, True, where) for p, _, where in entries)
            return tuple(dict.fromkeys(expanded))

        identities = self.identities or [(p, False, "default") for p in DEFAULT_IDENTITY_FILES]
        printed["identityfile"] = "\n".join(p for p, _, _ in identities)
        if self.certificates:
            printed["certificatefile"] = "\n".join(p for p, _, _ in self.certificates)
        user_files, user_where = self.known_hosts.get("userknownhostsfile", (list(DEFAULT_USER_KNOWN_HOSTS), "default"))
        global_files, global_where = self.known_hosts.get(
            "globalknownhostsfile", (list(DEFAULT_GLOBAL_KNOWN_HOSTS), "default")
        )
        user_files = [] if _lower(user_files[0]) == "none" else user_files
        global_files = [] if _lower(global_files[0]) == "none" else global_files
        printed["globalknownhostsfile"] = " ".join(global_files) or "none"
        timeout = self.first.get("connecttimeout")
        if timeout is not None:
            printed["connecttimeout"] = str(timeout[0])
        agent = self.first.get("identityagent")
        identity_agent = None
        if agent is not None:
            expanded = _expand(_tilde(str(agent[0]), home, agent[1]), tokens, True, agent[1])
            printed["identityagent"] = identity_agent = expanded
            if expanded == "SSH_AUTH_SOCK" or (expanded.startswith("$") and not expanded.startswith("${")):
                identity_agent = _getenv(expanded.removeprefix("$")) or "none"
        forward: bool | str = bool(self.first.get("forwardagent", (False,))[0])
        sock = self.first.get("forwardagentsock")
        if sock is not None:
            printed["forwardagent"] = _expand(_tilde(str(sock[0]), home, sock[1]), tokens, True, sock[1])
            forward = printed["forwardagent"] if forward else False
        proxy_jump = proxy_command = None
        if self.jump is not None and self.jump[0]:
            hops, extra, where = self.jump
            printed["proxyjump"] = ("" if extra is None else extra + ",") + str(hops[-1])
            proxy_jump = _expand(",".join(map(str, hops)), _only(tokens, _PROXY_TOKENS), False, where)
        elif "proxycommand" in self.first and _lower(str(self.first["proxycommand"][0])) != "none":
            written, where = self.first["proxycommand"]
            printed["proxycommand"] = str(written)
            proxy_command = _expand(str(written), _only(tokens, _PROXY_TOKENS), False, where)
        return SSHOptions(
            host=self.host_arg,
            hostname=host,
            port=port,
            user=user,
            identity_files=paths(identities),
            identity_files_given=bool(self.identities),
            identities_only=bool(self.first.get("identitiesonly", (False,))[0]),
            identity_agent=identity_agent,
            certificate_files=paths(self.certificates),
            user_known_hosts_files=tuple(
                _expand(_tilde(p, home, user_where), tokens, True, user_where) for p in user_files
            ),
            global_known_hosts_files=tuple(_tilde(p, home, global_where) for p in global_files),
            strict_host_key_checking=str(self.first.get("stricthostkeychecking", ("ask",))[0]),
            hash_known_hosts=bool(self.first.get("hashknownhosts", (False,))[0]),
            connect_timeout=float(timeout[0]) if timeout is not None and timeout[0] else None,  # type: ignore[arg-type]
            server_alive_interval=int(self.first.get("serveraliveinterval", (0,))[0]),  # type: ignore[call-overload]
            server_alive_count_max=int(self.first.get("serveralivecountmax", (3,))[0]),  # type: ignore[call-overload]
            proxy_jump=proxy_jump,
            proxy_command=proxy_command,
            forward_agent=forward,
            ciphers=self.first.get("ciphers", (None,))[0],  # type: ignore[arg-type]
            macs=self.first.get("macs", (None,))[0],  # type: ignore[arg-type]
            _printed=tuple(printed.items()),
        )


def _read_lines(path: str, flags: int, where: str) -> tuple[tuple[int, int], tuple[_Line, ...]] | None:
    """A file's lines, parsed once per version of the file; None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _CannotOpen(f"{where}cannot open config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        st = os.fstat(fd)
        if flags & _CHECKPERM and ((st.st_uid not in (0, os.getuid())) or st.st_mode & 0o022):
            raise SSHConfigError(f"{where}Bad owner or permissions on {path}")
        if stat.S_ISDIR(st.st_mode):  # ssh reads nothing from a directory, and goes on
            return (st.st_dev, st.st_ino), ()
        if stat.S_ISCHR(st.st_mode) and (st.st_rdev == _DEV_NULL):  # "-F /dev/null": no configuration at all
            return (st.st_dev, st.st_ino), ()
        if not stat.S_ISREG(st.st_mode):
            raise SSHConfigError(f"{where}{path} is not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise SSHConfigError(f"{where}{path} is over {MAX_FILE_BYTES} bytes: not a config file fanout reads")
        key = (path, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        with _parsed_lock:
            lines = _parsed.get(key)
            if lines is not None:
                _parsed.move_to_end(key)
        if lines is None:
            chunks, size = [], 0
            while size <= MAX_FILE_BYTES and (chunk := os.read(fd, MAX_FILE_BYTES + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise SSHConfigError(f"{where}{path} is over {MAX_FILE_BYTES} bytes: not a config file fanout reads")
            text = b"".join(chunks).decode("utf-8", "surrogateescape")
            raw = text.split("\n")
            raw = raw[:-1] if text.endswith("\n") else raw
            parsed = (_split_line(line, number) for number, line in enumerate(raw, 1))
            lines = tuple(line for line in parsed if line is not None)
            with _parsed_lock:
                _parsed[key] = lines
                while len(_parsed) > MAX_CACHED_FILES:
                    _parsed.popitem(last=False)
        return (st.st_dev, st.st_ino), lines
    finally:
        os.close(fd)


def _split_line(text: str, number: int) -> _Line | None:
    """A line's keyword and arguments, as process_config_line splits them; None for a blank or comment line."""
    if len(text) > MAX_LINE_CHARS:
        return _Line(number, "", "", "", (), f"line longer than {MAX_LINE_CHARS} characters")
    text = text.split("\0", 1)[0]
    if len(text) > 1:
        text = text[0] + text[1:].rstrip(_WS + "\f")
    keyword, rest = _strdelim(text)
    if keyword == "":
        keyword, rest = _strdelim(rest)
    if not keyword or keyword.startswith(("\n", "#")):
        return None
    if rest is not None:
        rest = rest.lstrip(_WS)
    if not rest:
        return _Line(number, _lower(keyword), keyword, None, None)
    return _Line(number, _lower(keyword), keyword, rest, _argv_split(rest))


def _strdelim(text: str | None) -> tuple[str | None, str | None]:
    """OpenSSH's strdelim: the next word (split at whitespace or one '=', "double quotes" kept together), the rest."""
    if text is None:
        return None, None
    match = re.search(r'[ \t\r\n"=]', text)
    if match is None:
        return text, None
    at = match.start()
    if text[at] == '"':
        close = text.find('"', at + 1)
        if close < 0:
            return None, None
        return text[:at] + text[at + 1 : close], text[close + 1 :].lstrip(_WS)
    rest = text[at + 1 :].lstrip(_WS)
    if text[at] != "=" and rest.startswith("="):
        rest = rest[1:].lstrip(_WS)
    return text[:at], rest


def _argv_split(text: str) -> tuple[str, ...] | None:
    """OpenSSH's argv_split: words with '' and "" quotes and backslash escapes, up to a word starting with #."""
    words, index, size = [], 0, len(text)
    while index < size:
        if text[index] in " \t":
            index += 1
            continue
        if text[index] == "#":
            break
        quote, word = "", []
        while index < size:
            char = text[index]
            following = text[index + 1 : index + 2]
            if char == "\\" and ((following in ("'", '"', "\\") and following) or (not quote and following == " ")):
                index += 1
                word.append(following)
            elif not quote and char in " \t":
                break
            elif not quote and char in "\"'":
                quote = char
            elif quote and char == quote:
                quote = ""
            else:
                word.append(char)
            index += 1
        if index >= size and quote:
            return None
        words.append("".join(word))
    return tuple(words)


def _one(args: tuple[str, ...], where: str) -> str:
    """The single non-empty argument a keyword takes."""
    if not args or not args[0]:
        raise SSHConfigError(f"{where}: missing argument")
    if len(args) > 1:
        raise SSHConfigError(f"{where}: extra arguments at end of line")
    return args[0]


def _multistate(args: tuple[str, ...], where: str, table: Mapping[str, object]) -> object:
    """One of a keyword's named values (case-insensitive, as ssh)."""
    arg = _one(args, where)
    value = table.get(_lower(arg))
    if value is None:
        raise SSHConfigError(f'{where}: unsupported option "{arg}"')
    return value


def _int(text: str) -> int | None:
    """A decimal as strtol reads a whole word (blanks, sign, digits), or None; huge values capped, not converted."""
    found = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)0*([0-9]+)", text)
    if found is None:
        return None
    digits = found.group(2)
    value = int(digits) if len(digits) <= 12 else 10**12
    return -value if found.group(1) == "-" else value


def _port(args: tuple[str, ...], where: str) -> int:
    """Port, as OpenSSH's a2port: a number 1-65535, or a service name."""
    arg = _one(args, where)
    port = _int(arg)
    if port is not None:
        port = port if port <= 65535 else -1
    else:
        try:
            port = socket.getservbyname(arg, "tcp")
        except (OSError, UnicodeError, ValueError):
            port = -1
    if port <= 0:
        raise SSHConfigError(f"{where}: Bad port '{arg}'")
    return port


def _time(args: tuple[str, ...], where: str) -> int | None:
    """A time as OpenSSH's convtime (90, 1h30m, 2d); None for "none", which leaves the key unset as in ssh."""
    arg = _one(args, where)
    if arg == "none":
        return None
    parts = re.findall(r"([+-]?[0-9]+)([sSmMhHdDwW]?)", arg)
    total = 0
    if "".join(n + unit for n, unit in parts) != arg:
        raise SSHConfigError(f"{where}: invalid time value '{arg[:100]}'")
    for number, unit in parts:
        value = _int(number) or 0  # the pattern above makes it a number
        total += value * _TIME_UNITS[unit.lower()]
        if not 0 <= value <= _INT_MAX or total > _INT_MAX:
            raise SSHConfigError(f"{where}: invalid time value '{arg[:100]}'")
    return total


def _count(args: tuple[str, ...], where: str) -> int:
    """An integer 0..INT_MAX, as OpenSSH's atoi_err."""
    arg = args[0] if args else ""
    if len(args) > 1:
        raise SSHConfigError(f"{where}: extra arguments at end of line")
    value = _int(arg)
    if value is None or not 0 <= value <= _INT_MAX:
        raise SSHConfigError(f"{where}: integer value {arg[:100]!r} is invalid")
    return value


def _agent_path(args: tuple[str, ...], where: str) -> str:
    """IdentityAgent/ForwardAgent paths: ${VAR} must be set now and $NAME be a valid name, as ssh checks."""
    arg = _one(args, where)
    _expand(arg, None, True, where)
    if arg.startswith("$") and not arg.startswith("${") and not re.fullmatch(r"[A-Za-z0-9_]+", arg[1:]):
        raise SSHConfigError(f"{where}: invalid environment name {arg}")
    return arg


MAX_ALGORITHMS_CHARS = 4096  # a longer Ciphers or MACs value is refused: OpenSSH's whole lists are ~300 characters
_ALGORITHM = re.compile(r"[A-Za-z0-9@._-]+\Z")
_ALGORITHM_PATTERN = re.compile(r"[A-Za-z0-9@._*?-]+\Z")  # "-" removes by pattern


def _algorithms(what: str) -> Callable[[tuple[str, ...], str], str]:
    """A parser of a Ciphers or MACs value: names, or ``+``, ``-`` or ``^`` then names; checked for form only
    (what paramiko has is known when a connection is made: fanout/_ssh_algorithms.py)."""

    def parse(args: tuple[str, ...], where: str) -> str:
        spec = _one(args, where)
        names = spec[1:] if spec[:1] in "+-^" else spec
        form = _ALGORITHM_PATTERN if spec[:1] == "-" else _ALGORITHM
        if len(spec) > MAX_ALGORITHMS_CHARS or not all(form.match(name) for name in names.split(",")):
            raise SSHConfigError(f"{where}: Bad SSH2 {what} spec '{spec[:80]}'.")
        return spec

    return parse


_VALUE_PARSERS = {
    "ciphers": _algorithms("cipher"),
    "macs": _algorithms("mac"),
    "hostname": _one,
    "user": _one,
    "ignoreunknown": _one,
    "identityagent": _agent_path,
    "port": _port,
    "identitiesonly": lambda args, where: _multistate(args, where, _FLAG),
    "hashknownhosts": lambda args, where: _multistate(args, where, _FLAG),
    "stricthostkeychecking": lambda args, where: _multistate(args, where, _STRICT),
    "connecttimeout": _time,
    "serveraliveinterval": _time,
    "serveralivecountmax": _count,
}


def _forward_agent(resolver: _Resolver, args: tuple[str, ...], where: str) -> None:
    """ForwardAgent yes/no, or a socket path or $NAME (which also turns forwarding on, unless already set)."""
    arg = _one(args, where)
    flag = _FLAG.get(_lower(arg))
    if flag is not None:
        resolver.set("forwardagent", flag, where)
        return
    path = _agent_path(args, where)
    resolver.set("forwardagent", True, where)
    resolver.set("forwardagentsock", path, where)


class _Hop(NamedTuple):
    user: str | None
    host: str
    port: int  # -1 when not given

    def __str__(self) -> str:
        """The hop as ssh -G prints the last one: [user@]host[:port], a numeric host in brackets."""
        bracket = ":" in self.host or not self.host.strip("0123456789.")
        host = f"[{self.host}]" if bracket else self.host
        return f"{self.user + '@' if self.user else ''}{host}{f':{self.port}' if self.port > 0 else ''}"


def _parse_hop(hop: str) -> _Hop | None:
    """One ProxyJump hop, ssh://[user@]host[:port] or [user@]host[:port]; None if invalid."""
    if hop.startswith("ssh://"):
        rest = hop[len("ssh://") :]
        user = None
        if "@" in rest:
            user, rest = rest.split("@", 1)
            user = _url_decode(user.split(";", 1)[0])
            if not user:
                return None
        host, delimiter, rest = _hpdelim(rest)
        if host is None or not host or not _valid_domain(host):
            return None
        host = host[:-1] if host.endswith(".") else host
        port = -1
        if rest and delimiter == ":":
            port_text, _, path = rest.partition("/")
            port = _a2port(port_text)
            if port <= 0 or path:
                return None
        elif rest:
            return None
        return _Hop(user, host, port)
    user = None
    if "@" in hop:
        user, hop = hop.rsplit("@", 1)
        if not user:
            return None
    host, delimiter, rest = _hpdelim(hop)
    if not host or delimiter == "/":
        return None
    port = -1
    if rest:
        port = _a2port(rest)
        if port <= 0:
            return None
    return _Hop(user, host, port)


def _hpdelim(text: str) -> tuple[str | None, str, str | None]:
    """OpenSSH's hpdelim2: host (brackets removed), the ':' or '/' after it, and the rest."""
    end = 0
    if text.startswith("["):
        end = text.find("]") + 1
        if end == 0:
            return None, "", None
    else:
        found = re.search(r"[:/]", text)
        end = found.start() if found else len(text)
    if end == len(text):
        delimiter, rest = "", None
    elif text[end] in ":/":
        delimiter, rest = text[end], text[end + 1 :]
    else:
        return None, "", None
    host = text[:end]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, delimiter, rest


def _a2port(text: str) -> int:
    """A port for ProxyJump, or -1."""
    try:
        return _port((text,), "")
    except SSHConfigError:
        return -1


def _url_decode(text: str) -> str | None:
    """%XX and + decoding of an ssh:// user; None when a % escape is malformed."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return None
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text.replace("+", " "))


def _valid_domain(name: str) -> bool:
    """OpenSSH's valid_domain: letters, digits, '-', '_' and single dots, starting with a letter or digit."""
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)) and ".." not in name


def _expand(text: str, tokens: Mapping[str, str] | None, dollar: bool, where: str) -> str:
    """OpenSSH's percent_dollar_expand: %x tokens from ``tokens`` (None: none allowed) and ${VAR} when ``dollar``."""
    out, index, size = [], 0, len(text)
    while index < size:
        char = text[index]
        if dollar and text.startswith("${", index):
            close = text.find("}", index + 2)
            if close < 0 or close == index + 2:
                raise SSHConfigError(f"{where}: bad environment variable expansion in {text[:200]!r}")
            name = text[index + 2 : close]
            value = _getenv(name)
            if value is None:
                raise SSHConfigError(f"{where}: environment variable ${{{name[:100]}}} is not set")
            out.append(value)
            index = close + 1
            continue
        if char != "%" or tokens is None:
            out.append(char)
            index += 1
            continue
        token = text[index + 1 : index + 2]
        if token == "%":
            out.append("%")
        elif token in tokens and token:
            out.append(tokens[token])
        else:
            raise SSHConfigError(f"{where}: unknown token %{token} in {text[:200]!r}")
        index += 2
    return "".join(out)


def _getenv(name: str) -> str | None:
    """An environment variable; None when unset or when the name cannot be one."""
    try:
        return os.environ.get(name)
    except (UnicodeError, ValueError):
        return None


def _only(tokens: Mapping[str, str], names: str) -> dict[str, str]:
    """The tokens a keyword accepts."""
    return {name: tokens[name] for name in names}


def _tilde(path: str, home: str, where: str = "") -> str:
    """OpenSSH's tilde_expand: ~ is ``home`` (see _passwd), ~user from the passwd entries."""
    if not path.startswith("~"):
        return path
    name, slash, tail = path[1:].partition("/")
    if name:
        try:
            home = pwd.getpwnam(name).pw_dir
        except (KeyError, ValueError, UnicodeError):
            raise SSHConfigError(f"{where + ': ' if where else ''}no such user {name!r} in {path!r}") from None
    tail = tail.lstrip("/") if slash else ""
    return f"{home}{'' if home.endswith('/') else '/'}{tail}"


def _lower(text: str) -> str:
    """ASCII-only lower case, as C's tolower in ssh (str.lower maps other letters too)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH's match_pattern (* and ?), in linear-time backtracking rather than its exponential recursion."""
    t = p = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and (pattern[p] == "?" or pattern[p] == text[t]):
            t, p = t + 1, p + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif star >= 0:
            mark += 1
            t, p = mark, star + 1
        else:
            return False
    return pattern[p:].strip("*") == ""


def _match_list(text: str, patterns: str, *, lower: bool) -> int:
    """OpenSSH's match_pattern_list: 1 on a match, -1 when a !negated pattern matches, 0 otherwise."""
    positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        sub = sub[1:] if negated else sub
        if len(sub) >= 1023:  # ssh's buffer: a longer pattern fails the whole list
            return 0
        if _match_pattern(text, _lower(sub) if lower else sub):
            if negated:
                return -1
            positive = 1
    return positive


def _is_address(host: str) -> bool:
    """OpenSSH's is_addr: a name that can only be an address (it is then not lower-cased)."""
    if "%" in host or ":" in host or not host.strip("0123456789."):
        return True
    return len(_numeric(host)) == 1


def _numeric(host: str) -> list:
    """getaddrinfo with AI_NUMERICHOST: the addresses a numeric host names, none for a name."""
    try:
        return socket.getaddrinfo(
            host, str(DEFAULT_PORT), type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        )
    except (OSError, UnicodeError, ValueError):
        return []


def _canonical_address(host: str) -> str:
    """An address as ssh rewrites it (127.1 -> 127.0.0.1, 0:0::1 -> ::1); names unchanged (no DNS here)."""
    found = _numeric(host)
    if len(found) != 1:
        return host
    try:
        canonical = socket.getnameinfo(found[0][4], socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)[0]
    except (OSError, UnicodeError, ValueError):
        return host
    return host if _lower(canonical) == _lower(host) else canonical


def _valid_host(host: str, refused: frozenset[str]) -> bool:
    """OpenSSH's ssh_valid_hostname, for a host given on the command line."""
    return bool(host) and not host.startswith("-") and not any(c in refused or _control(c) or c.isspace() for c in host)


def _valid_user(user: str) -> bool:
    """OpenSSH's ssh_valid_ruser, for a user given on the command line."""
    if user.startswith("-") or user.endswith("\\") or any(c in _BAD_USER_CHARS or _control(c) for c in user):
        return False
    return not re.search(r"[ \t\n\v\f\r]-", user)


def _control(char: str) -> bool:
    """C's iscntrl."""
    return ord(char) < 32 or ord(char) == 127
