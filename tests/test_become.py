"""Become: contexts as another user on the same host (sudo, su, doas), on every suite of the test fleet."""

from __future__ import annotations

import os

import pytest

import fanout
from tests.conftest import fleet_suites
from tests.fleet import hosts


@pytest.fixture(params=fleet_suites())
def host(request, fleet) -> hosts.FleetHost:
    """The first fleet host of one suite."""
    return next(h for h in fleet.hosts if h.suite == request.param)


@pytest.fixture
def login(host):
    """A factory of login contexts on ``host``, as one of the fleet's login users; closed after the test."""
    opened = []

    def connect(user: str = hosts.USER) -> fanout.Context:
        context = fanout.connect(host.address, name=host.name, **host.connect_options(user=user))
        opened.append(context)
        return context

    yield connect
    for context in opened:
        context.close()


def test_sudo_without_password(login):
    root = login(hosts.NOPASS_USER).become("root")
    assert root.call(os.getuid) == 0


PROBE = """
import os
import pwd


def whoami():
    return pwd.getpwuid(os.getuid()).pw_name


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)
    return os.stat(path).st_uid
"""


@pytest.fixture
def probe(user_modules):
    """A module only the master has, with small functions to call as another user."""
    import importlib

    suffix = user_modules({"become_probe_{s}.py": PROBE})
    return importlib.import_module(f"become_probe_{suffix}")


def test_sudo_with_the_login_users_password(login, probe):
    context = login()
    root = context.become("root", password=hosts.TESTER_PASSWORD)
    assert root.call(os.getuid) == 0
    app = context.become(hosts.APP_USER, password=hosts.TESTER_PASSWORD)
    assert app.call(probe.whoami) == hosts.APP_USER
    assert context.call(probe.whoami) == hosts.USER  # the login context is still itself


def test_su_with_the_target_users_password(login, probe):
    root = login().become("root", method="su", password=hosts.ROOT_PASSWORD)
    assert root.call(os.getuid) == 0
    app = login(hosts.NOPASS_USER).become(hosts.APP_USER, method="su", password=hosts.APP_PASSWORD)
    assert app.call(probe.whoami) == hosts.APP_USER


def test_doas_with_and_without_a_password(login, host):
    if host.suite not in hosts.DOAS_SUITES:
        pytest.skip(f"{host.suite} has no doas package")
    assert login().become("root", method="doas", password=hosts.TESTER_PASSWORD).call(os.getuid) == 0
    assert login(hosts.NOPASS_USER).become("root", method="doas").call(os.getuid) == 0


@pytest.mark.parametrize("method", ["sudo", "su", "doas"])
def test_a_wrong_password_is_refused_by_name(login, probe, host, method):
    if method == "doas" and host.suite not in hosts.DOAS_SUITES:
        pytest.skip(f"{host.suite} has no doas package")
    context = login()
    become = context.become("root", method=method, password="not-the-password")
    with pytest.raises(fanout.AuthenticationFailed) as caught:
        become.call(os.getuid)
    whose = "root" if method == "su" else hosts.USER
    assert str(caught.value) == f"{method} refused the password for {whose} on {host.name}"
    assert "not-the-password" not in repr(become) + str(caught.value)
    assert context.call(probe.whoami) == hosts.USER


def test_a_password_needed_and_not_given(login, host):
    with pytest.raises(fanout.AuthenticationFailed, match=f"sudo on {host.name} asks for the password of tester"):
        login().become("root").call(os.getuid)


def test_a_user_who_may_not_sudo(login, host):
    with pytest.raises(fanout.BecomeFailed, match=f"become failed on {host.name}: nosudo may not become root"):
        login(hosts.NOSUDO_USER).become("root", password=hosts.NOSUDO_PASSWORD).call(os.getuid)


def test_a_missing_sudo_program(login, host):
    become = login(hosts.NOPASS_USER).become("root", exe="/usr/bin/no-such-sudo")
    with pytest.raises(fanout.BecomeFailed, match="/usr/bin/no-such-sudo is not installed there"):
        become.call(os.getuid)


def test_requiretty_is_met_with_a_terminal(login):
    assert login(hosts.TTY_USER).become("root").call(os.getuid) == 0


def test_nested_become(login, probe):
    root = login(hosts.NOPASS_USER).become("root")
    app = root.become(hosts.APP_USER)  # root's sudo asks no password
    assert app.call(probe.whoami) == hosts.APP_USER
    back = app.become("root", method="su", password=hosts.ROOT_PASSWORD)
    assert back.call(os.getuid) == 0
