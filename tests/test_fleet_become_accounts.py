"""The fleet's become accounts are what hosts.py says they are, on every suite: sudo, su and doas tests rely on it."""

from __future__ import annotations

import pytest

from tests.fleet import hosts
from tests.fleet.hosts import FleetHost
from tests.fleet.plain_ssh import run, ssh_client
from tests.fleet.suites import fleet_suites
from tests.fleet.waiting import WAIT_TIMEOUT

_PTY_TIMEOUT = WAIT_TIMEOUT  # a prompt or an exit that never comes fails the test, never hangs it


@pytest.fixture
def host(fleet, suite: str) -> FleetHost:
    """The first host of one suite (the accounts are baked into the image, so one host per suite tells)."""
    return next(h for h in fleet.hosts if h.suite == suite)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "suite" in metafunc.fixturenames:
        metafunc.parametrize("suite", fleet_suites())


def as_user(host: FleetHost, user: str, command: str) -> tuple[int, str, str]:
    """Log in as ``user`` by the run's key and run ``command`` without a terminal."""
    client = ssh_client(host.as_user(user))
    try:
        return run(client, command)
    finally:
        client.close()


def on_pty(host: FleetHost, user: str, command: str, password: str | None = None) -> tuple[int, str]:
    """Run ``command`` on a pty as ``user``; answer its password prompt when given one. Returns (status, output)."""
    client = ssh_client(host.as_user(user))
    try:
        channel = client.get_transport().open_session()
        channel.settimeout(_PTY_TIMEOUT)
        channel.get_pty()
        channel.exec_command(command)
        output = b""
        if password is not None:
            while b"assword" not in output:
                data = channel.recv(4096)
                assert data, f"{command!r} ended before asking a password: {output!r}"
                output += data
            channel.sendall(password.encode() + b"\n")
        while data := channel.recv(4096):
            output += data
        return channel.recv_exit_status(), output.decode(errors="replace")
    finally:
        client.close()


def root_exec(fleet, host: FleetHost, command: str) -> str:
    """A command's output, run as root through ``docker exec`` (no login involved)."""
    container = fleet.client.containers.get(host.container)
    return hosts._exec(container, ["sh", "-c", command])


def test_connect_options_name_another_login_user_or_refuse_one_that_cannot_log_in(tmp_path) -> None:
    key, known = tmp_path / "key", tmp_path / "known_hosts"
    host = FleetHost("h", "bookworm", "127.0.0.1", 2222, hosts.USER, key, known, "", (3, 11, 2), "c")
    assert host.connect_options()["user"] == hosts.USER
    assert host.connect_options(user=hosts.NOPASS_USER) == {**host.connect_options(), "user": hosts.NOPASS_USER}
    assert host.as_user(hosts.TTY_USER).user == hosts.TTY_USER
    for user in (hosts.APP_USER, "root", "nobody"):
        with pytest.raises(ValueError, match="cannot log in"):
            host.connect_options(user=user)


def test_every_login_user_logs_in_by_the_run_key_to_a_private_ssh_directory(fleet, host) -> None:
    for user in hosts.LOGIN_USERS:
        assert as_user(host, user, "id -un") == (0, f"{user}\n", "")
        modes = root_exec(fleet, host, f"stat -c '%U %a' /home/{user}/.ssh /home/{user}/.ssh/authorized_keys")
        assert modes.split("\n") == [f"{user} 700", f"{user} 600"]


def test_app_has_a_home_and_a_shell_but_no_key(fleet, host) -> None:
    entry = root_exec(fleet, host, f"getent passwd {hosts.APP_USER}").split(":")
    assert (entry[5], entry[6]) == (f"/home/{hosts.APP_USER}", "/bin/sh")
    home = f"/home/{hosts.APP_USER}"
    assert root_exec(fleet, host, f"test -d {home} && ! test -e {home}/.ssh; echo $?") == "0"


def test_nopass_sudoes_to_root_and_app_without_a_password(host) -> None:
    assert as_user(host, hosts.NOPASS_USER, "sudo -n id -un")[:2] == (0, "root\n")
    assert as_user(host, hosts.NOPASS_USER, f"sudo -n -u {hosts.APP_USER} id -un")[:2] == (0, f"{hosts.APP_USER}\n")


def test_nosudo_is_refused_by_sudo_and_doas(host) -> None:
    status, out, _ = as_user(host, hosts.NOSUDO_USER, "sudo -n true")
    assert (status, out) == (1, "")
    if host.suite in hosts.DOAS_SUITES:
        status, _, err = as_user(host, hosts.NOSUDO_USER, "doas -n true")
        assert status != 0 and "not permitted" in err


def test_tester_sudoes_with_its_password_only_and_gets_the_lecture(host) -> None:
    assert as_user(host, hosts.USER, "sudo -n true")[0] == 1
    pw = hosts.TESTER_PASSWORD
    status, out, err = as_user(host, hosts.USER, f"echo '{pw}' | sudo -S -p '' -u {hosts.APP_USER} id -un")
    assert (status, out) == (0, f"{hosts.APP_USER}\n"), err
    assert "lecture" in err  # "We trust you have received the usual lecture ...": become must get past it
    assert as_user(host, hosts.USER, "echo wrong-pw | sudo -S -p '' id -un")[:2] == (1, "")


def test_ttyuser_sudoes_only_on_a_terminal(host) -> None:
    status, _, err = as_user(host, hosts.TTY_USER, "sudo -n id -un")
    assert status == 1 and "tty" in err
    status, output = on_pty(host, hosts.TTY_USER, "sudo -n id -un")
    assert (status, output.strip()) == (0, "root")


@pytest.mark.parametrize(
    ("target", "password"), [("root", hosts.ROOT_PASSWORD), (hosts.APP_USER, hosts.APP_PASSWORD)], ids=["root", "app"]
)
def test_su_takes_the_target_password_on_a_terminal(host, target: str, password: str) -> None:
    status, output = on_pty(host, hosts.USER, f"su -c 'id -un' {target}", password)
    assert status == 0, output
    assert output.strip().splitlines()[-1] == target


def test_doas_is_installed_with_a_root_only_config_where_the_suite_has_it(fleet, host) -> None:
    if host.suite not in hosts.DOAS_SUITES:
        pytest.skip(f"Debian {host.suite} has no doas package (hosts.DOAS_PACKAGES)")
    package = hosts.DOAS_PACKAGES[host.suite]
    assert root_exec(fleet, host, f"dpkg-query -W -f '${{Status}}' {package}") == "install ok installed"
    assert root_exec(fleet, host, "stat -c '%U %G %a' /etc/doas.conf") == "root root 400"
    assert as_user(host, hosts.NOPASS_USER, "doas -n id -un")[:2] == (0, "root\n")
    assert as_user(host, hosts.NOPASS_USER, f"doas -n -u {hosts.APP_USER} id -un")[:2] == (0, f"{hosts.APP_USER}\n")
    status, output = on_pty(host, hosts.USER, f"doas -u {hosts.APP_USER} id -un", hosts.TESTER_PASSWORD)
    assert status == 0, output
    assert output.strip().splitlines()[-1] == hosts.APP_USER
