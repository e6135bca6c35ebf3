"""SSH as OpenSSH users have it, against the fleet's real sshd: ssh_config, keys held by an agent, passphrases,
agent forwarding, ssh command-line options, the keepalive through a jump host, and how errors name a host."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

import fanout
from fanout.errors import AuthenticationFailed, ConnectionLost, Unreachable
from tests.fleet.agent import add_to_agent
from tests.fleet.hosts import NOPASS_USER, free_ports

pytestmark = [pytest.mark.fleet, pytest.mark.usefixtures("openssh_client")]
PASSPHRASE = "fleet passphrase"
WAIT = 120  # seconds a test waits for what must happen; an event ends the wait long before on any machine


@pytest.fixture
def encrypted_key(fleet, tmp_path) -> Path:
    """An encrypted ed25519 key that every fleet host authorizes for the default user."""
    path = tmp_path / "encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(path)], check=True)
    public = Path(f"{path}.pub").read_text().strip()
    for host in fleet.hosts:
        container = fleet.client.containers.get(host.container)
        result = container.exec_run(
            ["sh", "-c", f"echo '{public}' >> /home/{host.user}/.ssh/authorized_keys"], user=host.user
        )
        assert result.exit_code == 0, result.output
    return path


def _options(host, **extra) -> dict:
    return {**host.connect_options(), **extra}


# What the hosts run: standard library functions, sent by reference, so every suite's Python runs them (code sent by
# value runs only on the master's Python version).
_shell = subprocess.getoutput


def _parent_of(context, pid: int) -> int:
    """The parent of process ``pid`` on the context's host (field 4 of /proc/PID/stat; sshd's name has no blank)."""
    return int(context.call(_shell, f"cut -d' ' -f4 /proc/{pid}/stat"))


def test_a_host_named_in_ssh_config_through_include_and_match(fleet, tmp_path) -> None:
    host = fleet.hosts[0]
    parts = tmp_path / "config.d"
    parts.mkdir()
    (parts / "web.conf").write_text(
        textwrap.dedent(f"""\
        Host web1
            HostName {host.address}
            Port {host.port}
        Match originalhost web1 user {host.user}
            IdentityFile {host.key_path}
        """)
    )
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(f"""\
        User {host.user}
        Include {parts}/*.conf
        Host *
            UserKnownHostsFile {host.known_hosts}
            StrictHostKeyChecking yes
            IdentitiesOnly yes
        """)
    )
    with fanout.connect("web1", ssh_config=config) as context:
        assert context.call(os.getuid) != 0
        assert context.call(_shell, "echo $SSH_CONNECTION").split()[-1] == str(host.port)


def test_ssh_config_accept_new_with_hash_known_hosts_writes_a_hashed_line(fleet, tmp_path) -> None:
    host = fleet.hosts[0]
    known = tmp_path / "known_hosts"
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(f"""\
        Host *
            StrictHostKeyChecking accept-new
            HashKnownHosts yes
            UserKnownHostsFile {known}
        """)
    )
    options = _options(host, ssh_config=config)
    del options["known_hosts"]
    with fanout.connect(host.address, **options) as context:
        assert context.call(os.getpid) > 0
    (line,) = known.read_text().splitlines()
    assert line.startswith("|1|") and line.split()[1:] == host.host_key.split()
    with fanout.connect(host.address, **options) as context:  # now known: strict would pass as well
        assert context.call(os.getpid) > 0


def test_an_explicit_encrypted_key_the_agent_holds_needs_no_passphrase(fleet, encrypted_key, ssh_agent) -> None:
    host = fleet.hosts[0]
    add_to_agent(ssh_agent, encrypted_key, PASSPHRASE)
    with fanout.connect(host.address, **_options(host, identity_file=encrypted_key)) as context:
        assert context.call(os.getpid) > 0


def test_an_encrypted_key_without_agent_fails_naming_the_key_and_works_with_its_passphrase(
    fleet, encrypted_key, monkeypatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    host = fleet.hosts[0]
    with pytest.raises(AuthenticationFailed) as failure:
        fanout.connect(host.address, name="web1", **_options(host, identity_file=encrypted_key))
    text = str(failure.value)
    assert text.startswith(f"web1 ({host.address}:{host.port}): authentication as {host.user!r} failed")
    assert f"{encrypted_key}: the key is encrypted" in text
    options = _options(host, identity_file=encrypted_key, passphrase=PASSPHRASE)
    with fanout.connect(host.address, **options) as context:
        assert context.call(os.getpid) > 0


def test_agent_forwarding_gives_the_child_the_agent(fleet, encrypted_key, ssh_agent) -> None:
    host = fleet.hosts[0]
    add_to_agent(ssh_agent, encrypted_key, PASSPHRASE)
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{encrypted_key}.pub"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    with fanout.connect(host.address, **_options(host, forward_agent=True)) as context:
        listed = context.call(_shell, "ssh-add -l")
        assert fingerprint in listed
    with fanout.connect(host.address, **_options(host)) as context:  # not asked for: no agent there
        assert context.call(_shell, 'echo "${SSH_AUTH_SOCK:-none}"').strip() == "none"


def test_forward_agent_from_ssh_args(fleet, encrypted_key, ssh_agent) -> None:
    host = fleet.hosts[0]
    add_to_agent(ssh_agent, encrypted_key, PASSPHRASE)
    with fanout.connect(host.address, **_options(host, ssh_args="-A")) as context:
        assert context.call(_shell, "ssh-add -l | wc -l").strip() == "1"


def test_ssh_args_as_ansible_gives_them(fleet, tmp_path) -> None:
    """Ansible's usual switches: no host key checking, and -p/-l/-i on the command line."""
    host = fleet.hosts[0]
    args = (
        f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p {host.port} -l {host.user} -i {host.key_path}"
    )
    with fanout.connect(host.address, ssh_config=False, ssh_args=args) as context:
        assert context.call(os.getpid) > 0


def test_proxy_command_with_tokens(fleet, tmp_path, monkeypatch) -> None:
    """Tokens expanded, run through the shell as ssh runs it (a variable expands); once closed, it is reaped."""
    host = fleet.hosts[0]
    bridge = _bridge(tmp_path)
    monkeypatch.setenv("PROXY_DIR", str(tmp_path))
    config = tmp_path / "config"
    config.write_text(
        f'Host bridged\n    HostName {host.address}\n    ProxyCommand python3 {bridge} %h %p "$PROXY_DIR"\n'
    )
    options = _options(host, ssh_config=config)
    with fanout.connect("bridged", **options) as context:
        assert context.call(os.getpid) > 0
        proxy = int((tmp_path / "proxy.pid").read_text())
        assert Path(f"/proc/{proxy}").exists()
    assert not Path(f"/proc/{proxy}").exists()  # ended and reaped, not a zombie


def test_a_proxy_command_that_dies_ends_the_connection(fleet, tmp_path) -> None:
    host = fleet.hosts[0]
    bridge = _bridge(tmp_path)
    config = tmp_path / "config"
    config.write_text(
        f"Host bridged\n    HostName {host.address}\n    ProxyCommand python3 {bridge} %h %p {tmp_path}\n"
    )
    context = fanout.connect("bridged", **_options(host, ssh_config=config, keepalive=0))
    try:
        assert context.call(os.getpid) > 0
        os.kill(int((tmp_path / "proxy.pid").read_text()), 9)
        with pytest.raises(ConnectionLost):
            context.call_async(_shell, "sleep 600").result(timeout=WAIT)  # no keepalive: the socket's EOF says it
    finally:
        context.close()


def _bridge(tmp_path: Path) -> Path:
    """A ProxyCommand in Python: ``bridge.py HOST PORT DIR`` carries the connection, its pid in DIR/proxy.pid."""
    bridge = tmp_path / "bridge.py"
    bridge.write_text(
        textwrap.dedent("""\
        import os, socket, sys, threading
        open(os.path.join(sys.argv[3], "proxy.pid"), "w").write(str(os.getpid()))
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        def up():
            while data := os.read(0, 65536):
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        threading.Thread(target=up, daemon=True).start()
        while data := s.recv(65536):
            os.write(1, data)
        """)
    )
    return bridge


def test_errors_name_the_inventory_host_then_the_address(fleet) -> None:
    host = fleet.hosts[0]
    (closed,) = free_ports(1)
    with pytest.raises(Unreachable) as failure:
        fanout.connect(host.address, name="web1", **_options(host, port=closed))
    assert str(failure.value).startswith(f"web1 ({host.address}:{closed}): cannot connect")


def test_the_keepalive_finds_a_host_gone_behind_a_jump_host(fleet) -> None:
    """The target's sshd is frozen; the jump host's connection stays up, so only an SSH-level keepalive sees it."""
    host = fleet.hosts[0]
    hop = f"{NOPASS_USER}@{host.address}:{host.port}"  # another user: the same user, host and port is a loop to ssh
    context = fanout.connect(host.address, **_options(host, jump=hop, keepalive=1))
    try:
        session = context.call(os.getppid)  # sshd's process for this session; its parent is the session's monitor
        monitor = _parent_of(context, session)
        container = fleet.client.containers.get(host.container)
        assert container.exec_run(["kill", "-STOP", str(session), str(monitor)]).exit_code == 0
        try:
            with pytest.raises(ConnectionLost, match="no answer to 3 keepalives"):
                context.call_async(_shell, "sleep 600").result(timeout=WAIT)
        finally:
            container.exec_run(["kill", "-KILL", str(session), str(monitor)])
    finally:
        context.close()


def _ca_line(cert_hosts, pattern: str = "*") -> str:
    ca = " ".join(cert_hosts.host_ca.with_suffix(".pub").read_text().split()[:2])
    return f"@cert-authority {pattern} {ca}\n"


def test_connect_accepts_a_host_certificate_from_a_known_ca_and_refuses_an_expired_one(cert_hosts, tmp_path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(_ca_line(cert_hosts))
    host = cert_hosts.hosts["cert-valid"]
    with fanout.connect(host.address, name="web1", **_options(host, known_hosts=known)) as context:
        assert context.call(os.getpid) > 0
    expired = cert_hosts.hosts["cert-expired"]
    with pytest.raises(fanout.HostKeyError) as refused:
        fanout.connect(expired.address, name="web2", **_options(expired, known_hosts=known))
    assert str(refused.value).startswith(f"web2 ({expired.address}:{expired.port}): the host certificate of ")
    assert "expired" in str(refused.value)


@pytest.mark.parametrize("how", ["beside the key", "CertificateFile"])
def test_a_user_certificate_logs_in_through_connect(cert_hosts, tmp_path, how) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-s", str(cert_hosts.user_ca), "-I", "fanout", "-n", "tester", f"{key}.pub"], check=True
    )
    certificate = Path(f"{key}-cert.pub")
    known = tmp_path / "known_hosts"
    known.write_text(_ca_line(cert_hosts))
    host = cert_hosts.hosts["cert-valid"]
    options = _options(host, identity_file=key, known_hosts=known)  # the key is in no authorized_keys
    if how == "CertificateFile":
        elsewhere = certificate.rename(tmp_path / "issued.pub")
        config = tmp_path / "config"
        config.write_text(f"Host *\n    CertificateFile {elsewhere}\n")
        options["ssh_config"] = config
    with fanout.connect(host.address, **options) as context:
        assert context.call(_shell, "id -un").strip() == "tester"


@pytest.mark.parametrize("kind", [["-t", "ecdsa"], ["-t", "rsa", "-b", "2048"]], ids=["ecdsa", "rsa"])
def test_ecdsa_and_rsa_keys_log_in(fleet, tmp_path, kind) -> None:
    host = fleet.hosts[0]
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", *kind, "-N", "", "-f", str(key)], check=True)
    public = Path(f"{key}.pub").read_text().strip()
    container = fleet.client.containers.get(host.container)
    line = f"echo '{public}' >> /home/{host.user}/.ssh/authorized_keys"
    appended = container.exec_run(["sh", "-c", line], user=host.user)
    assert appended.exit_code == 0
    with fanout.connect(host.address, **_options(host, identity_file=key)) as context:
        assert context.call(os.getpid) > 0


def test_ansibles_connection_variables_reach_the_hosts(fleet, tmp_path, monkeypatch) -> None:
    """An inventory as Ansible users write it: ssh args with Ansible's usual switches, interpreter discovery,
    ANSIBLE_HOST_KEY_CHECKING; none of these hosts is in any known_hosts file."""
    from fanout.inventory import Inventory

    host = fleet.hosts[0]
    base = (
        f"ansible_host={host.address} ansible_port={host.port} ansible_user={host.user} "
        f"ansible_ssh_private_key_file={host.key_path}"
    )
    inventory = tmp_path / "hosts"
    inventory.write_text(
        f"switches {base} ansible_python_interpreter=auto_silent "
        "ansible_ssh_common_args='-F /dev/null -o StrictHostKeyChecking=no' "
        "ansible_ssh_extra_args='-o UserKnownHostsFile=/dev/null'\n"
        f"by-environment {base} ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile=/dev/null'\n"
        f"checked {base} ansible_ssh_common_args='-F /dev/null -o UserKnownHostsFile=/dev/null'"
        " ansible_host_key_checking=true\n"
    )
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    hosts = Inventory.load(inventory).fleet_hosts("all")
    with fanout.Fleet(hosts, echo=False) as the_fleet:
        results = the_fleet.call(os.getpid, timeout=WAIT)
    assert results["switches"].ok and results["by-environment"].ok
    assert isinstance(results["checked"].error, fanout.HostKeyError)
    assert str(results["checked"].error).startswith(f"checked ({host.address}:{host.port}) is not in known_hosts")
