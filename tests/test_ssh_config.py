"""fanout's ssh_config resolution held to the real ``ssh -G``: a corpus of configs, every error, the ssh flags."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import re
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path
from subprocess import PIPE
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout import _ssh_config
from fanout._ssh_config import SSHConfigError, parse_ssh_args, resolve

ME = pwd.getpwuid(os.getuid()).pw_name
HOME = pwd.getpwuid(os.getuid()).pw_dir  # ssh's ~, whatever $HOME says (fanout's is $HOME: see _as_ssh_sees_home)
# The keys SSHOptions.as_ssh_g() covers: the lines of ssh -G compared.
COMPARED = _ssh_config._keywords(
    "host user hostname port identityfile identitiesonly identityagent certificatefile userknownhostsfile"
    " globalknownhostsfile stricthostkeychecking hashknownhosts connecttimeout serveraliveinterval"
    " serveralivecountmax proxyjump proxycommand forwardagent"
)
ENV = {"FANOUT_TEST_VAR": "from-env", "FANOUT_TEST_SOCK": "/run/agent.sock"}
DEBIAN_SSH_CONFIG = """
# This is the ssh client system-wide configuration file.  See
# ssh_config(5) for more information.  This file provides defaults for
# users, and the values can be changed in per-user configuration files
# or on the command line.

# Configuration data is parsed as follows:
#  1. command line options
#  2. user-specific file
#  3. system-wide file
# Any configuration value is only changed the first time it is set.
# Thus, host-specific definitions should be at the beginning of the
# configuration file, and defaults at the end.

# Site-wide defaults for some commonly used options.  For a comprehensive
# list of available options, their meanings and defaults, please see the
# ssh_config(5) man page.

Include /etc/ssh/ssh_config.d/*.conf

Host *
#   ForwardAgent no
#   ForwardX11 no
#   ForwardX11Trusted yes
#   PasswordAuthentication yes
#   HostbasedAuthentication no
#   GSSAPIAuthentication no
#   GSSAPIDelegateCredentials no
#   GSSAPIKeyExchange no
#   GSSAPITrustDNS no
#   BatchMode no
#   CheckHostIP yes
#   AddressFamily any
#   ConnectTimeout 0
#   StrictHostKeyChecking ask
#   IdentityFile ~/.ssh/id_rsa
#   IdentityFile ~/.ssh/id_dsa
#   IdentityFile ~/.ssh/id_ecdsa
#   IdentityFile ~/.ssh/id_ed25519
#   Port 22
#   Ciphers aes128-ctr,aes192-ctr,aes256-ctr,aes128-cbc,3des-cbc
#   MACs hmac-md5,hmac-sha1,umac-64@openssh.com
#   EscapeChar ~
#   Tunnel no
#   TunnelDevice any:any
#   PermitLocalCommand no
#   VisualHostKey no
#   ProxyCommand ssh -q -W %h:%p gateway.example.com
#   RekeyLimit 1G 1h
#   UserKnownHostsFile ~/.ssh/known_hosts.d/%k
    SendEnv LANG LC_*
    HashKnownHosts yes
    GSSAPIAuthentication yes
"""


@pytest.fixture(scope="session")
def ssh(openssh_client: str) -> str:
    """The OpenSSH client fanout is held to."""
    return openssh_client


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A $HOME of the test's own: fanout's ~ (ssh takes Include's ~ from $HOME too, every other from passwd)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return home


def start_ssh_g(ssh: str, config: Path, host: str, args: tuple[str, ...] = (), home: Path | None = None):
    """ssh -G started, not waited for: the corpus runs its processes side by side."""
    env = {**os.environ, **ENV, **({"HOME": str(home)} if home else {})}
    command = [ssh, "-G", "-F", str(config), *args, "--", host]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=PIPE, stderr=PIPE, text=True, env=env)


def answer(process: subprocess.Popen) -> tuple[int, dict[str, str], str]:
    """ssh -G's status, its lines for the compared keys (a repeated key's lines joined by newlines, as as_ssh_g
    joins them) and its complaints."""
    out, err = process.communicate(timeout=60)
    printed: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key in COMPARED:
            printed[key] = f"{printed[key]}\n{value}" if key in printed else value
    return process.returncode, printed, err


def ssh_g(ssh: str, config: Path, host: str, args: tuple[str, ...] = ()) -> dict[str, str]:
    """ssh -G's answer for the compared keys."""
    status, printed, err = answer(start_ssh_g(ssh, config, host, args))
    assert status == 0, err
    return printed


def ssh_fails(ssh: str, config: Path, host: str) -> None:
    """ssh -G refuses it too."""
    status, printed, _ = answer(start_ssh_g(ssh, config, host))
    assert status != 0, printed


def write(directory: Path, files: dict[str, str]) -> None:
    """Files under ``directory`` ({dir} and {home} in their text replaced)."""
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(dir=directory, me=ME))
        path.chmod(0o644)


@dataclasses.dataclass
class Case:
    config: str
    host: str = "web1"
    args: tuple[str, ...] = ()
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # under the test directory
    home_files: dict[str, str] = dataclasses.field(default_factory=dict)  # under $HOME


CORPUS = {
    "empty": Case(""),
    "host-glob": Case("Host web? db*\n  Port 2201\nHost *\n  Port 2202\n"),
    "host-glob-other": Case("Host web? db*\n  Port 2201\nHost *\n  Port 2202\n", host="web10"),
    "host-negated": Case("Host * !db*\n  User app\nHost *\n  User other\n", host="db1"),
    "host-question-mark": Case("Host w?b1\n  User q\n"),
    "host-is-case-sensitive": Case("Host WEB1\n  Port 1\nHost web1\n  Port 2\n"),
    "host-comma-is-literal": Case("Host web1,db1\n  Port 3\n"),
    "first-value-wins": Case("Host web1\n  Port 1000\nHost *\n  Port 2000\n  User fallback\n  Port 3000\n"),
    "keyword-forms": Case('PORT=2200\nuser = "bob"\n  HostName\t"Example.ORG"\nIdentityFile="/keys/a b"\n'),
    "comments-and-blanks": Case("# a comment\n\n   \n  Port 3 # trailing comment\n\tUser\tc # more\n"),
    "hostname-tokens": Case("HostName %h.internal.%%\n", host="Web1"),
    "hostname-lowercased": Case("HostName %h.Example.COM\n", host="Web1"),
    "numeric-host-canonical": Case("", host="127.1"),
    "numeric-hostname-canonical": Case("HostName 0:0::1\n"),
    "port-service-name": Case("Port ssh\n"),
    "match-host-and-originalhost": Case(
        "Host alias\n  HostName real.example.com\nMatch host real.example.com\n  User r\n"
        "Match originalhost alias\n  Port 2\nMatch host alias\n  Port 3\n",
        host="alias",
    ),
    "match-host-list-negated": Case("Match host !db*,*1\n  User listed\n"),
    "match-user": Case("User bob\nMatch user bob\n  Port 3\nMatch !user bob\n  Port 4\n"),
    "match-user-default-local": Case("Match user {me}\n  Port 5\n", files={}),
    "match-localuser": Case("Match localuser {me}\n  Port 6\nMatch !localuser {me}\n  Port 7\n"),
    "match-all": Case("Match all\n  User everyone\n"),
    "match-not-all": Case("Match !all\n  User nobody\n"),
    "match-several-criteria": Case("Match host web* originalhost web1 !user nobody\n  Port 9\n"),
    "match-exec-skipped": Case('Match host db* exec "false"\n  Port 10\n'),
    "match-final": Case(
        "Host web1\n  HostName b.example\nMatch final host b.example\n  User fin\nHost b.example\n  Port 7\n"
    ),
    "match-not-final": Case("Match !final\n  User first\nMatch final\n  User second\n  Port 8\n"),
    "match-canonical-without-final": Case("Match canonical\n  Port 8\n"),
    "match-canonical-in-final-pass": Case("Match canonical\n  Port 8\nMatch final\n  User x\n"),
    "match-final-all": Case("Match final all\n  User z\n"),
    "include-glob-absolute": Case(
        "Include {dir}/inc/*.conf\nPort 1\n",
        files={"inc/a.conf": "User from-a\n", "inc/b.conf": "User from-b\nPort 2\n", "inc/c.txt": "Port 3\n"},
    ),
    "include-relative-to-dot-ssh": Case("Include rel.conf sub/*.conf\n", home_files={".ssh/rel.conf": "Port 44\n"}),
    "include-tilde": Case("Include ~/.ssh/t*.conf\n", home_files={".ssh/t1.conf": "User tilde\n"}),
    "include-in-host-block": Case(
        "Host web1\n  Include {dir}/web.conf\nHost db1\n  Include {dir}/db.conf\n",
        files={"web.conf": "Port 11\n", "db.conf": "Port 12\nUser db\n"},
    ),
    "include-under-inactive-block": Case(
        "Host nomatch\n  Include {dir}/x.conf\nPort 3\n", files={"x.conf": "Host *\n  User never\n"}
    ),
    "include-restores-block": Case(
        "Host web1\n  Include {dir}/x.conf\n  Port 4\n", files={"x.conf": "Host nomatch\n  User never\n"}
    ),
    "include-missing-is-fine": Case("Include {dir}/missing.conf {dir}/none-*.conf\nPort 5\n"),
    "include-nested": Case(
        "Include {dir}/one.conf\n", files={"one.conf": "Include {dir}/two.conf\n", "two.conf": "User deep\n"}
    ),
    "identity-files": Case(
        "IdentityFile ~/.ssh/a\nIdentityFile ~/.ssh/a\nIdentityFile /k/%h-%r-%p\nIdentityFile ${{FANOUT_TEST_VAR}}/k\n"
        "IdentityFile2 /k/two\n"
    ),
    "identity-files-per-host": Case("Host web1\n  IdentityFile /k/web\nHost *\n  IdentityFile /k/all\n"),
    "certificate-files": Case("CertificateFile ~/.ssh/c1\nCertificateFile /c/%h\nCertificateFile /c/%h\n"),
    "known-hosts-files": Case(
        "UserKnownHostsFile ~/.ssh/kh1 /tmp/kh2_%h_%p ${{FANOUT_TEST_VAR}}/kh3\nUserKnownHostsFile /ignored\n"
        "GlobalKnownHostsFile /etc/g1 ~/g2\n"
    ),
    "known-hosts-none": Case("UserKnownHostsFile none\nGlobalKnownHostsFile None\n"),
    "all-tokens": Case("UserKnownHostsFile /kh/%%-%C-%d-%h-%i-%k-%L-%l-%n-%p-%r-%u\n", host="Tokens"),
    "identity-agent-tokens": Case("IdentityAgent ~/.ssh/agent-%r-%h-${{FANOUT_TEST_VAR}}\n"),
    "identity-agent-none": Case("IdentityAgent none\n"),
    "identity-agent-env-name": Case("IdentityAgent SSH_AUTH_SOCK\n"),
    "identity-agent-legacy-var": Case("IdentityAgent $FANOUT_TEST_SOCK\n"),
    "proxy-jump-hops": Case("ProxyJump u@j1:2200,ssh://v@j2.example:2222,[fe80::1]:2,w@10.1.1.1:3\n"),
    "proxy-jump-last-hop-forms": Case("ProxyJump [::1]\n"),
    "proxy-jump-tokens": Case("ProxyJump %r@gw-%h\n"),
    "proxy-jump-in-a-file-is-not-checked-for-metacharacters": Case("ProxyJump a;b@x\n"),
    "proxy-jump-none-blocks-command": Case("ProxyJump none\nProxyCommand nc %h %p\n"),
    "proxy-command-tokens": Case("ProxyCommand ssh -W %h:%p -l %r gw # for %n\n"),
    "proxy-command-first": Case("ProxyCommand nc %h %p\nProxyJump j1\n"),
    "proxy-command-none": Case("ProxyCommand none\nProxyJump j1\n"),
    "forward-agent-yes": Case("ForwardAgent yes\n"),
    "forward-agent-path": Case("ForwardAgent ~/agent-%r.sock\n"),
    "forward-agent-var": Case("ForwardAgent $FANOUT_TEST_SOCK\n"),
    "forward-agent-no-then-path": Case("ForwardAgent no\nForwardAgent /run/a.sock\n"),
    "server-alive-and-timeout": Case(
        "ConnectTimeout none\nConnectTimeout 1h\nServerAliveInterval 2m30s\nServerAliveCountMax 0\n"
    ),
    "connect-timeout-zero": Case("ConnectTimeout 0\n"),
    "flags": Case("IdentitiesOnly YES\nHashKnownHosts false\n"),
    "ignore-unknown": Case("IgnoreUnknown foo*,Bar\nFooBaz 1\nbar x\n"),
    "obsolete-keywords": Case("Protocol 2\nUseRoaming no\nRSAAuthentication yes\nCipher blowfish\n"),
    "no-effect-keywords": Case(
        "ControlMaster auto\nControlPath ~/.ssh/cm-%C\nControlPersist 60s\nLogLevel QUIET\nSendEnv LANG\n"
        "Compression yes\nGSSAPIAuthentication yes\nForwardX11 yes\nBatchMode no\n"
    ),
    "harmless-values": Case("CheckHostIP no\nTunnel no\nConnectionAttempts 1\nRemoteCommand none\n"),
    "debian-default": Case(DEBIAN_SSH_CONFIG),
    "command-line-wins": Case(
        "Host web1\n  Port 1\n  User file\n  IdentityFile /k/file\n  ProxyJump filejump\n  ConnectTimeout 9\n"
        "  ForwardAgent no\n  HostName file.example\n",
        args=(
            "-p",
            "2000",
            "-l",
            "cli",
            "-o",
            "User=ignored",
            "-i",
            "{dir}/key",
            "-J",
            "j@h:1",
            "-oConnectTimeout=3",
            "-A",
            "-o",
            "HostName cli.example",
            "-C",
            "-q",
        ),
        files={"key": "not a key"},
    ),
    "command-line-proxy-command": Case("ProxyJump filejump\n", args=("-o", "ProxyCommand ssh -W %h:%p gw")),
    "command-line-identities-add": Case("IdentityFile /k/file\n", args=("-i", "{dir}/key"), files={"key": "x"}),
    "command-line-known-hosts": Case(
        "UserKnownHostsFile /file\n", args=("-o", "UserKnownHostsFile=/cli1 /cli2", "-o", "StrictHostKeyChecking no")
    ),
    "command-line-agent-last-wins": Case("", args=("-A", "-a")),
}
for spelling in ("yes", "no", "true", "false", "off", "ask", "accept-new", "Yes", "ACCEPT-NEW", "Off"):
    CORPUS[f"strict-{spelling}"] = Case(f"StrictHostKeyChecking {spelling}\n")


@pytest.fixture(scope="session")
def corpus_answers(ssh: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, tuple]]:
    """Every corpus case written out (its $HOME in home/) and answered by ssh -G, all processes at once."""
    running = {}
    for name, case in CORPUS.items():
        directory = tmp_path_factory.mktemp(name)
        (directory / "home/.ssh").mkdir(parents=True)
        write(directory, {"ssh_config": case.config, **case.files})
        write(directory / "home", case.home_files)
        args = tuple(arg.format(dir=directory) for arg in case.args)
        running[name] = directory, start_ssh_g(ssh, directory / "ssh_config", case.host, args, directory / "home")
    return {name: (directory, answer(process)) for name, (directory, process) in running.items()}


@pytest.mark.parametrize("name", CORPUS)
def test_resolves_as_ssh_g(name: str, corpus_answers: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CORPUS[name]
    directory, (status, expected, complaint) = corpus_answers[name]
    assert status == 0, complaint
    monkeypatch.setenv("HOME", str(directory / "home"))
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    pairs, configs = parse_ssh_args([arg.format(dir=directory) for arg in case.args])
    assert configs == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no corpus case uses a key fanout would warn about
        options = resolve(case.host, config_files=[directory / "ssh_config"], command_line=pairs)
    assert _as_ssh_sees_home(options.as_ssh_g(), directory / "home") == expected


def _as_ssh_sees_home(printed: dict[str, str], home: Path) -> dict[str, str]:
    """fanout takes ~ from $HOME and ssh from the passwd entry (docs/ssh_config.rst): with $HOME set to the case's
    own home, fanout's paths under it are ssh's under the passwd entry's."""
    return {key: value.replace(str(home), HOME) for key, value in printed.items()}


def test_every_keyword_fanout_knows_is_one_ssh_knows(ssh: str, tmp_path: Path) -> None:
    config = tmp_path / "all"
    config.write_text("Host nomatch\n" + "".join(f"{keyword} x\n" for keyword in sorted(_ssh_config.KEYWORDS)))
    done = subprocess.run([ssh, "-G", "-F", str(config), "web1"], capture_output=True, text=True, timeout=30)
    assert "Bad configuration option" not in done.stderr
    assert _ssh_config.IMPLEMENTED.isdisjoint(_ssh_config.NO_EFFECT | _ssh_config.NOT_IMPLEMENTED)
    assert _ssh_config.NO_EFFECT.isdisjoint(_ssh_config.NOT_IMPLEMENTED)


def test_docs_name_every_keyword_and_flag() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs/ssh_config.rst").read_text()
    named = {word.lower() for word in re.findall(r"``([A-Za-z0-9]+)``", text)}
    assert sorted(_ssh_config.KEYWORDS - named) == []
    flags = set(_ssh_config._REFUSED_FLAGS) | _ssh_config._HARMLESS_FLAGS
    assert sorted(flag for flag in flags if not re.search(rf"``[^`]*-{flag}\b[^`]*``", text)) == []


def test_fields_are_expanded_for_use(tmp_path: Path, home: Path) -> None:
    write(
        tmp_path,
        {
            "c": "Host web1\n  HostName %h.example.com\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/%r-%h\n"
            "  CertificateFile ${{FANOUT_TEST_VAR}}/cert\n  IdentityAgent $FANOUT_TEST_SOCK\n"
            "  ProxyCommand nc %h %p %r %n %%\n  ForwardAgent ~/fwd.sock\n  ConnectTimeout 0\n"
            "  GlobalKnownHostsFile ~/g\n"
        },
    )
    options = resolve("web1", config_files=[tmp_path / "c"])
    assert options.hostname == "web1.example.com"
    assert options.identity_files == (f"{home}/.ssh/deploy-web1.example.com",)
    assert options.identity_files_given
    assert options.certificate_files == ("from-env/cert",)
    assert options.identity_agent == "/run/agent.sock"
    assert options.proxy_command == "nc web1.example.com 2222 deploy web1 %"
    assert options.forward_agent == f"{home}/fwd.sock"
    assert options.connect_timeout is None  # 0 is no timeout in ssh
    assert options.global_known_hosts_files == (f"{home}/g",)
    defaults = resolve("web1", config_files=[])
    assert defaults.identity_files[0] == f"{home}/.ssh/id_rsa" and not defaults.identity_files_given
    assert (defaults.identity_agent, defaults.forward_agent, defaults.proxy_jump) == (None, False, None)
    assert defaults.user == ME and defaults.strict_host_key_checking == "ask"


def test_agent_fields_follow_openssh(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"c": "IdentityAgent SSH_AUTH_SOCK\nForwardAgent no\nForwardAgent /run/a.sock\n"})
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user-agent")
    options = resolve("web1", config_files=[tmp_path / "c"])
    assert (options.identity_agent, options.forward_agent) == ("/run/user-agent", False)
    monkeypatch.delenv("SSH_AUTH_SOCK")
    assert resolve("web1", config_files=[tmp_path / "c"]).identity_agent == "none"
    jump = resolve("web1", config_files=[], command_line=[("ProxyJump", "%r@gw-%h:2")], local_user="ann")
    assert (jump.proxy_jump, jump.user) == ("ann@gw-web1:2", "ann")


def test_proxy_jump_field_lists_every_hop_as_user_host_port(home: Path) -> None:
    hops = "u@j1:2200,ssh://v@j2.example.:2222/,[fe80::1]:2,ssh://j3,w@10.1.1.1:3"
    options = resolve("web1", config_files=[], command_line=[("ProxyJump", hops)])
    assert options.proxy_jump == "u@j1:2200,v@j2.example:2222,[fe80::1]:2,j3,w@[10.1.1.1]:3"
    assert options.as_ssh_g()["proxyjump"] == "u@j1:2200,ssh://v@j2.example.:2222/,[fe80::1]:2,ssh://j3,w@[10.1.1.1]:3"


@pytest.mark.parametrize("value", ["/keys/a b", 'say "hi"', "back\\slash", "#hash", "it's", "", "plain"])
def test_quote_makes_one_argument(value: str, home: Path) -> None:
    line = _ssh_config._split_line("IdentityFile " + _ssh_config.quote(value), 1)
    assert line is not None and line.args == (value,)


def test_local_user_replaces_the_name_only(tmp_path: Path, home: Path) -> None:
    write(tmp_path, {"c": "Match localuser ann\n  Port 7\nUserKnownHostsFile %d/%u\n"})
    options = resolve("web1", config_files=[tmp_path / "c"], local_user="ann")
    assert (options.port, options.user, options.user_known_hosts_files) == (7, "ann", (f"{home}/ann",))


def test_default_files_user_then_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    write(home, {".ssh/config": "Port 1\nInclude inc.conf\n", ".ssh/inc.conf": "User from-user\n"})
    write(tmp_path, {"etc/ssh_config": "Port 2\nUser sys\nHostName sys.example\nInclude sys.d/*.conf\n"})
    write(tmp_path, {"etc/sys.d/a.conf": "IdentitiesOnly yes\n"})
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(_ssh_config, "_passwd", lambda: _ssh_config._Passwd("ann", str(home), os.getuid()))
    monkeypatch.setattr(_ssh_config, "SYSTEM_CONFIG", str(tmp_path / "etc/ssh_config"))
    monkeypatch.setattr(_ssh_config, "SYSTEM_DIR", f"{tmp_path}/etc/")
    options = resolve("web1")
    assert (options.port, options.user, options.hostname, options.identities_only) == (
        1,
        "from-user",
        "sys.example",
        True,
    )
    (home / ".ssh/config").chmod(0o664)  # ~/.ssh/config is checked as ssh checks it
    with pytest.raises(SSHConfigError, match="Bad owner or permissions"):
        resolve("web1")
    (home / ".ssh/config").unlink()
    (tmp_path / "etc/ssh_config").write_text("Include ~/x.conf\n")
    with pytest.raises(SSHConfigError, match=r"ssh_config:1: bad include path"):  # no ~ in system files
        resolve("web1")
    (tmp_path / "etc/ssh_config").unlink()
    assert resolve("web1").port == 22


def test_an_unopenable_default_file_is_skipped_but_not_an_include(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    listener = socket.socket(socket.AF_UNIX)  # exists, cannot be opened (root reads through chmod 000)
    listener.bind(str(tmp_path / "socket"))
    try:
        write(home, {".ssh/config": "Port 1\n"})
        monkeypatch.setattr(_ssh_config, "_passwd", lambda: _ssh_config._Passwd("ann", str(home), os.getuid()))
        monkeypatch.setattr(_ssh_config, "SYSTEM_CONFIG", str(tmp_path / "socket"))
        assert resolve("web1").port == 1  # as ssh skips a system file it cannot open
        write(home, {".ssh/config": "Include {dir}/../socket\nPort 1\n"})
        with pytest.raises(SSHConfigError, match=r"config:1: cannot open config file .*socket"):
            resolve("web1")
    finally:
        listener.close()


ERRORS = {
    # name: (config, host, line of the error, a regex of fanout's message, whether ssh -G refuses it too)
    "bad-keyword": ("Host *\nFrobnicate yes\n", "web1", 2, "Bad configuration option: Frobnicate", True),
    "bad-keyword-in-inactive-block": ("Host nomatch\n  Frobnicate yes\n", "web1", 2, "Bad configuration", True),
    "port-not-a-number": ("Port abc\n", "web1", 1, "Bad port", True),
    "port-too-large": ("Port 70000\n", "web1", 1, "Bad port", True),
    "port-zero": ("Host nomatch\n  Port 0\n", "web1", 2, "Bad port", True),
    "port-extra-argument": ("Port 22 23\n", "web1", 1, "extra arguments", True),
    "count-not-a-number": ("ServerAliveCountMax x\n", "web1", 1, "integer value", True),
    "count-huge": ("ServerAliveCountMax " + "9" * 5000 + "\n", "web1", 1, "integer value", True),
    "time-bad": ("ConnectTimeout 5x\n", "web1", 1, "invalid time", True),
    "time-huge": ("ServerAliveInterval 99999999999\n", "web1", 1, "invalid time", True),
    "strict-bad": ("StrictHostKeyChecking maybe\n", "web1", 1, "unsupported option", True),
    "flag-bad": ("IdentitiesOnly 2\n", "web1", 1, "unsupported option", True),
    "no-argument": ("Host\n", "web1", 1, "no argument after keyword", True),
    "empty-argument": ('User ""\n', "web1", 1, "missing argument", True),
    "unterminated-quote": ('User "unterminated\n', "web1", 1, "invalid quotes", True),
    "match-exec": ('Match exec "true"\n  Port 2\n', "web1", 1, "Match exec is not supported by fanout: true", False),
    "match-exec-after-true": ('Match host web* exec "test -e /"\n', "web1", 1, "Match exec is not supported", False),
    "match-localnetwork": ("Match localnetwork 10.0.0.0/8\n", "web1", 1, "Match localnetwork is not supported", True),
    "match-tagged": ("Match tagged x\n", "web1", 1, "Match tagged is not supported", True),
    "match-all-combined": ("Match all host x\n", "web1", 1, "cannot be combined", True),
    "match-missing-argument": ("Match host\n", "web1", 1, "needs an argument", True),
    "host-empty-pattern": ('Host ""\n', "web1", 1, "empty pattern", True),
    "hostname-unknown-token": ("HostName %x.example\n", "web1", 1, "unknown token %x", True),
    "known-hosts-unknown-token": ("UserKnownHostsFile ~/%z\n", "web1", 1, "unknown token %z", True),
    "known-hosts-unset-variable": ("UserKnownHostsFile ${{FANOUT_UNSET_VAR}}\n", "web1", 1, "not set", True),
    "known-hosts-none-not-alone": ("UserKnownHostsFile none /x\n", "web1", 1, "must appear alone", True),
    "identity-agent-unset-variable": ("IdentityAgent ${{FANOUT_UNSET_VAR}}/s\n", "web1", 1, "not set", True),
    "identity-agent-bad-name": ("IdentityAgent $a-b\n", "web1", 1, "invalid environment name", True),
    "identity-file-unknown-token": ("IdentityFile ~/%z\n", "web1", 1, "unknown token %z", False),
    "proxy-command-unknown-token": ("ProxyCommand nc %d\n", "web1", 1, "unknown token %d", False),
    "proxy-jump-bad-port": ("ProxyJump host:99999\n", "web1", 1, "Invalid ProxyJump", True),
    "proxy-jump-empty-user": ("ProxyJump @host\n", "web1", 1, "Invalid ProxyJump", True),
    "proxy-jump-empty-hop": ("ProxyJump a,,b\n", "web1", 1, "Invalid ProxyJump", True),
    "jump-host-loop": ("ProxyJump web1\n", "web1", 1, "jump host loop", True),
    "include-loop": ("Include {dir}/ssh_config\n", "web1", 1, "Include loop", True),
    "long-line": ("User " + "u" * _ssh_config.MAX_LINE_CHARS + "\n", "web1", 1, "line longer than", False),
}


@pytest.fixture(scope="session")
def error_answers(ssh: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, tuple | None]]:
    """Every bad config written out (after a first comment line) and, where ssh refuses it too, ssh -G started."""
    running = {}
    for name, (text, host, _, _, ssh_refuses) in ERRORS.items():
        directory = tmp_path_factory.mktemp(name)
        write(directory, {"ssh_config": "# first line\n" + text})
        running[name] = directory, start_ssh_g(ssh, directory / "ssh_config", host) if ssh_refuses else None
    return {name: (directory, process and answer(process)) for name, (directory, process) in running.items()}


@pytest.mark.parametrize("name", ERRORS)
def test_errors_name_file_and_line(name: str, error_answers: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    _, host, line, message, _ = ERRORS[name]
    directory, ssh_answer = error_answers[name]
    for variable, value in ENV.items():
        monkeypatch.setenv(variable, value)
    config = directory / "ssh_config"
    with pytest.raises(SSHConfigError, match=message) as raised:
        resolve(host, config_files=[config])
    assert str(raised.value).startswith(f"{config}:{line + 1}: ")
    if ssh_answer is not None:
        status, printed, _ = ssh_answer
        assert status != 0, printed  # ssh refuses it too


def test_match_exec_that_does_not_count_is_not_an_error(tmp_path: Path, home: Path) -> None:
    write(tmp_path, {"c": 'Match host db* exec "false"\n  Port 2\nHost nomatch\n  Include {dir}/x\n'})
    write(tmp_path, {"x": 'Match exec "false"\n  Port 3\n'})  # read under an inactive block: never counts
    assert resolve("web1", config_files=[tmp_path / "c"]).port == 22


def test_include_errors(ssh: str, tmp_path: Path, home: Path) -> None:
    write(tmp_path, {"c": "Include {dir}/writable\n", "writable": "Port 2\n"})
    (tmp_path / "writable").chmod(0o666)
    with pytest.raises(SSHConfigError, match=rf"^{re.escape(str(tmp_path))}/c:1: Bad owner or permissions"):
        resolve("web1", config_files=[tmp_path / "c"])
    ssh_fails(ssh, tmp_path / "c", "web1")
    (tmp_path / "writable").chmod(0o664)  # upstream's rule; Debian's ssh accepts it when the group is private
    with pytest.raises(SSHConfigError, match="Bad owner or permissions"):
        resolve("web1", config_files=[tmp_path / "c"])
    write(tmp_path, {"loop-a": "Include {dir}/loop-b\n", "loop-b": "Port 2\nInclude {dir}/loop-a\n"})
    with pytest.raises(SSHConfigError, match=rf"^{re.escape(str(tmp_path))}/loop-b:2: Include loop"):
        resolve("web1", config_files=[tmp_path / "loop-a"])
    ssh_fails(ssh, tmp_path / "loop-a", "web1")
    chain = {f"d{n}": f"Include {{dir}}/d{n + 1}\n" for n in range(_ssh_config.MAX_INCLUDE_DEPTH + 2)}
    write(tmp_path, chain)
    with pytest.raises(SSHConfigError, match="nested deeper than 16"):
        resolve("web1", config_files=[tmp_path / "d0"])
    ssh_fails(ssh, tmp_path / "d0", "web1")
    write(tmp_path, {"fifo-dir/x": "", "dir-include": "Include {dir}/fifo-dir\nPort 3\n"})
    assert resolve("web1", config_files=[tmp_path / "dir-include"]).port == 3  # a directory reads as empty
    os.mkfifo(tmp_path / "fifo")
    write(tmp_path, {"fifo-include": "Include {dir}/fifo\n"})
    with pytest.raises(SSHConfigError, match="not a regular file"):
        resolve("web1", config_files=[tmp_path / "fifo-include"])
    assert resolve("web1", config_files=["/dev/null"]).port == 22  # ssh -F /dev/null: no configuration at all
    with pytest.raises(SSHConfigError, match="not a regular file"):
        resolve("web1", config_files=["/dev/zero"])  # endless: any other device is refused


def test_bounds(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big"
    big.write_text("# padding\n" * (_ssh_config.MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(SSHConfigError, match=f"over {_ssh_config.MAX_FILE_BYTES} bytes"):
        resolve("web1", config_files=[big])
    write(tmp_path, {f"many/{n}.conf": "" for n in range(5)})
    write(tmp_path, {"glob": "Include {dir}/many/*.conf\n"})
    monkeypatch.setattr(_ssh_config, "MAX_GLOB_MATCHES", 4)
    with pytest.raises(SSHConfigError, match=rf"^{re.escape(str(tmp_path))}/glob:1: Include .* names more than 4"):
        resolve("web1", config_files=[tmp_path / "glob"])
    monkeypatch.setattr(_ssh_config, "MAX_FILES_PER_PASS", 3)
    write(tmp_path, {"two": "Include {dir}/many/[01].conf\n"})
    with pytest.raises(SSHConfigError, match="more than 3 config files"):
        resolve("web1", config_files=[tmp_path / "two", tmp_path / "two"])
    write(tmp_path, {"ids": "".join(f"IdentityFile /k/{n}\n" for n in range(_ssh_config.MAX_IDENTITY_FILES + 1))})
    with pytest.raises(SSHConfigError, match=rf"^{re.escape(str(tmp_path))}/ids:101: more than 100 IdentityFile"):
        resolve("web1", config_files=[tmp_path / "ids"])


@pytest.mark.parametrize(
    ("host", "command_line", "files", "message"),
    [
        ("a;b", (), [], "characters ssh refuses"),
        ("-oProxyCommand=x", (), [], "characters ssh refuses"),
        ("bob@web1", (), [], "characters ssh refuses"),
        ("", (), [], "empty"),
        ("web1", (("User", "a;b"),), [], "remote user name"),
        ("web1", (("Host", "x"),), [], "^command line: Host is not allowed on the command line"),
        ("web1", (("Include", "/x"),), [], "not allowed on the command line"),
        ("web1", (("Port", "abc"),), [], "^command line: Bad port"),
        ("web1", (("ProxyJump", "a;b@x"),), [], "^command line: Invalid ProxyJump"),
        ("web1", (("Bad Key", "x"),), [], "not an ssh_config keyword"),
        ("web1", (), ["/nonexistent/ssh_config"], "cannot open config file /nonexistent/ssh_config"),
    ],
)
def test_argument_errors(host: str, command_line: tuple, files: list, message: str, home: Path) -> None:
    with pytest.raises(SSHConfigError, match=message):
        resolve(host, config_files=files, command_line=command_line)


def test_config_file_none_reads_nothing(home: Path) -> None:
    assert resolve("web1", config_files=["none"]).port == 22


@given(st.lists(st.one_of(st.text(max_size=40), st.sampled_from(sorted(_ssh_config.KEYWORDS))), max_size=30))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_configs_raise_only_ssh_config_error(words: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory, mock.patch.dict(os.environ, {"HOME": directory}):
        path = Path(directory) / "c"  # a relative Include reads $HOME/.ssh: this directory, not the user's
        lines = [" ".join(words[n : n + 3]) for n in range(0, len(words), 3)]
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.suppress(SSHConfigError):
                resolve("web1", config_files=[path])


@given(st.one_of(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=8)))
@settings(max_examples=100, deadline=None)
def test_random_ssh_args_raise_only_ssh_config_error(args: str | list[str]) -> None:
    with contextlib.suppress(SSHConfigError):
        parse_ssh_args(args)


@pytest.mark.parametrize(
    ("args", "pairs", "configs"),
    [
        ("-o ProxyCommand=x", [("ProxyCommand", "x")], []),
        ("-oUser=bob", [("User", "bob")], []),
        ("-o 'ProxyCommand ssh -W %h:%p gw'", [("ProxyCommand", "ssh -W %h:%p gw")], []),
        ('-o "User = bob"', [("User", "bob")], []),
        ("-o '' -o '# comment'", [], []),
        ("-J a@b:2,c", [("ProxyJump", "a@b:2,c")], []),
        ("-i /k/id", [("IdentityFile", "/k/id")], []),
        ("-i '/k/a b'", [("IdentityFile", '"/k/a b"')], []),
        ("-i ~/id", [("IdentityFile", f"{HOME}/id")], []),
        ("-p2222 -l bob", [("Port", "2222"), ("User", "bob")], []),
        ("-l 'a b'", [("User", '"a b"')], []),
        ("-A", [("ForwardAgent", "yes")], []),
        ("-o ForwardAgent=no -a -A", [("ForwardAgent", "yes"), ("ForwardAgent", "no")], []),
        ("-F /a -F /b", [], ["/b"]),
        ("-qCTxkny2MgP -vvv -E /log -S /ctl -e none", [], []),
        (["-o", "Port 1", "-C"], [("Port", "1")], []),
        ("-Ao Port=3", [("ForwardAgent", "yes"), ("Port", "3")], []),
    ],
)
def test_parse_ssh_args(args: str | list[str], pairs: list, configs: list) -> None:
    assert parse_ssh_args(args) == (pairs, configs)


@pytest.mark.parametrize("flag", sorted(_ssh_config._REFUSED_FLAGS))
def test_parse_ssh_args_refuses_flags_fanout_cannot_honour(flag: str) -> None:
    value = " x" if flag in _ssh_config._FLAGS_WITH_VALUE else ""
    with pytest.raises(SSHConfigError, match=f"-{flag} asks for .* which fanout cannot do"):
        parse_ssh_args(f"-o Port=1 -{flag}{value}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("host", "'host' is not an option"),
        ("-- cmd", "'--' is not an option"),
        ("-p", "-p needs a value"),
        ("-Z", "unknown flag -Z"),
        ("-o 'unterminated", "No closing quotation"),
        ("-J a -J b", "-J with another"),
        ("-o ProxyCommand=x -J b", "-J with another"),
        (["-o", "User " + "u" * _ssh_config.MAX_LINE_CHARS], "-o with a line longer than"),
    ],
)
def test_parse_ssh_args_errors(args: str | list[str], message: str) -> None:
    with pytest.raises(SSHConfigError, match=message):
        parse_ssh_args(args)


def test_parsed_args_resolve_as_ssh(ssh: str, tmp_path: Path, home: Path) -> None:
    write(tmp_path, {"c": "Host web1\n  User file\n", "key with space": "x"})
    args = f"-F {tmp_path}/c -l 'the user' -i '{tmp_path}/key with space' -o 'UserKnownHostsFile /a \"/b c\"'"
    pairs, configs = parse_ssh_args(args)
    options = resolve("web1", config_files=configs, command_line=pairs)
    assert options.user == "the user"
    assert options.identity_files == (f"{tmp_path}/key with space",)
    assert options.user_known_hosts_files == ("/a", "/b c")
    args = ("-l", "the user", "-i", f"{tmp_path}/key with space", "-o", 'UserKnownHostsFile /a "/b c"')
    assert options.as_ssh_g() == ssh_g(ssh, tmp_path / "c", "web1", args)


def test_unsupported_keys_warn_once_per_line(ssh: str, tmp_path: Path, home: Path) -> None:
    config = tmp_path / "c"
    write(
        tmp_path,
        {"c": "Host web*\n  KexAlgorithms curve25519-sha256\n  HostKeyAlias Alias\n  UserKnownHostsFile /kh/%k\n"},
    )
    with pytest.warns(UserWarning) as caught:
        options = resolve("web1", config_files=[config])
    assert [str(w.message) for w in caught] == [
        f"{config}:2: KexAlgorithms is not supported by fanout; it is ignored for web1",
        f"{config}:3: HostKeyAlias is not supported by fanout; it is ignored for web1",
    ]
    assert options.as_ssh_g() == ssh_g(ssh, config, "web1")  # %k is still the alias, as in ssh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve("web2", config_files=[config])  # once per file and line in a process
        resolve("db1", config_files=[config])  # a line under a Host that does not apply never warns


def test_unsupported_key_on_the_command_line_warns(home: Path) -> None:
    with pytest.warns(UserWarning, match="^command line: LocalForward is not supported by fanout; it is ignored"):
        resolve("web-cli-warning", config_files=[], command_line=[("LocalForward", "8080 localhost:80")])


def test_canonicalize_hostname_warns_and_rereads(tmp_path: Path, home: Path) -> None:
    write(tmp_path, {"c": "CanonicalizeHostname yes\nMatch canonical\n  Port 4\n"})
    with pytest.warns(UserWarning, match=":1: CanonicalizeHostname is not supported"):
        assert resolve("web1", config_files=[tmp_path / "c"]).port == 4


def test_batch_mode_keeps_the_upstream_server_alive_default(tmp_path: Path, home: Path) -> None:
    # Debian's ssh makes BatchMode yes imply ServerAliveInterval 300; upstream OpenSSH, and fanout, do not.
    write(tmp_path, {"c": "BatchMode yes\n"})
    assert resolve("web1", config_files=[tmp_path / "c"]).server_alive_interval == 0


def test_parsed_files_are_reread_when_they_change(tmp_path: Path, home: Path) -> None:
    config = tmp_path / "c"
    config.write_text("Port 1\n")
    assert resolve("web1", config_files=[config]).port == 1
    config.write_text("Port 22222\n")
    assert resolve("web1", config_files=[config]).port == 22222


def test_local_user_defaults_to_the_passwd_name(home: Path) -> None:
    assert resolve("web1", config_files=[]).user == ME
