"""Become plans and failures: the command lines, the checks before anything starts, what an end means."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fanout
from fanout import _become, _secret
from fanout._become import PYTHON_ARGS, PYTHON_SHELL


def test_sudo_with_and_without_a_password() -> None:
    with_password = _become.plan("sudo", "root", password="pw")
    assert with_password.argv[:2] == ("sudo", "-H") and "-S" in with_password.argv and "-n" not in with_password.argv
    prompt = with_password.argv[with_password.argv.index("-p") + 1]
    assert prompt == with_password.prompt and prompt.startswith("[fanout-sudo-")
    assert with_password.argv[-4:] == ("-u", "root", "--", PYTHON_ARGS)
    assert not with_password.use_pty
    without = _become.plan("sudo", "app")
    assert "-n" in without.argv and "-S" not in without.argv
    assert _become.plan("sudo").prompt != _become.plan("sudo").prompt  # random per child


def test_su_and_doas_take_a_terminal() -> None:
    su = _become.plan("su", "root", password="pw")
    assert su.argv == ("su", "root", "-c", PYTHON_SHELL) and su.use_pty and su.prompt is None
    doas = _become.plan("doas", "app")
    assert doas.argv == ("doas", "-n", "-u", "app", PYTHON_ARGS) and doas.use_pty
    assert _become.plan("doas", "app", password="pw").argv == ("doas", "-u", "app", PYTHON_ARGS)


def test_exe_and_flags_replace_the_program_and_its_default_flags() -> None:
    plan = _become.plan("sudo", "root", exe="/opt/bin/sudo", flags="-E --preserve-env=PATH")
    assert plan.argv[:3] == ("/opt/bin/sudo", "-E", "--preserve-env=PATH") and "-H" not in plan.argv
    assert _become.plan("su", "root", flags=["-l"]).argv[:2] == ("su", "-l")


@pytest.mark.parametrize(
    "kwargs, complaint",
    [
        ({"method": "runas"}, "become method 'runas' is not supported: use one of sudo, su, doas"),
        ({"user": ""}, "become user must be a user name"),
        ({"user": "-u"}, "become user must be a user name"),
        ({"user": "a b"}, "is not a valid user name"),
        ({"user": "x" * 300}, "become user must be a user name"),
        ({"password": "a\nb"}, "cannot hold a line break"),
        ({"exe": ""}, "become exe must be a program name or path"),
        ({"flags": "'unclosed"}, "are not valid shell words"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(kwargs, complaint) -> None:
    with pytest.raises(ValueError, match=complaint):
        _become.plan(**kwargs)


def test_a_non_interactive_flag_gives_way_to_a_password() -> None:
    plan = _become.plan("sudo", "root", password="pw", flags="-H -S -n")  # Ansible's usual become_flags
    assert "-n" not in plan.argv and "-H" in plan.argv
    assert "-n" in _become.plan("sudo", "root", flags="-H -n").argv


def test_bad_types_are_refused() -> None:
    with pytest.raises(TypeError):
        _become.plan(password=1234)
    with pytest.raises(TypeError):
        _become.plan(flags=[1])


def test_the_password_never_shows_in_a_repr() -> None:
    plan = _become.plan("su", "root", password="hunter2")
    assert "hunter2" not in repr(plan) + repr(plan.password) + repr({"password": plan.password})
    assert plan.open_args()[1] == "hunter2" and type(plan.open_args()[1]) is str  # exact str: marshal takes it
    assert str(_secret.Secret("x")) == "x" and _secret.plain(_secret.Secret("x")).__class__ is str
    assert _secret.hide(None) is None


AUTH, REFUSED = fanout.AuthenticationFailed, fanout.BecomeFailed
NO_FILE = "fanout: cannot run sudo: [Errno 2] No such file"


@pytest.mark.parametrize(
    "method, password, how, text, status, error, message",
    [
        ("sudo", "pw", "refused", "", 1, AUTH, "sudo refused the password for deploy on web1"),
        ("su", "pw", "ended", "su: Authentication failure", 1, AUTH, "su refused the password for root on web1"),
        ("doas", "pw", "ended", "doas: Authentication failed", 1, AUTH, "doas refused the password for deploy"),
        ("sudo", None, "ended", "sudo: a password is required", 1, AUTH, "asks for the password of deploy"),
        ("su", None, "needs password", "Password:", None, AUTH, "none was given"),
        ("sudo", "pw", "ended", "deploy is not in the sudoers file.", 1, REFUSED, "deploy may not become root"),
        ("doas", None, "ended", "doas: Operation not permitted", 1, REFUSED, "deploy may not become root"),
        ("sudo", None, "ended", NO_FILE, 127, REFUSED, "sudo is not installed there"),
        ("sudo", None, "ended", "sudo: sorry, you must have a tty", 1, REFUSED, "needs a terminal"),
        ("sudo", None, "ended", "something odd", 3, REFUSED, "ended before the child started (status 3)"),
    ],
)  # fmt: skip
def test_what_an_end_before_ready_means(method, password, how, text, status, error, message) -> None:
    plan = _become.plan(method, "root", password=password)
    found = _become.failure(plan, how, text, status, "web1", "deploy")
    assert isinstance(found, error) and message in str(found)
    assert "web1" in str(found)
    assert getattr(found, "on_host", False) == (error is AUTH)  # reached: a failure, not "unreachable"


def test_an_ordinary_end_is_no_become_failure() -> None:
    assert _become.failure(_become.plan(), "ended", "", 0, "web1", "deploy") is None


def test_requiretty_is_retried_on_a_terminal_for_sudo_only() -> None:
    said = "sudo: sorry, you must have a tty to run sudo"
    assert _become.needs_pty_retry(_become.plan("sudo"), said)
    assert not _become.needs_pty_retry(_become.plan("su"), said)
    assert not _become.needs_pty_retry(_become.plan("sudo"), "sudo: a password is required")


@given(st.text(max_size=300), st.sampled_from(["ended", "refused", "needs password", "protocol"]))
def test_any_text_from_the_host_gives_a_clear_error_or_none(text, how) -> None:
    found = _become.failure(_become.plan("sudo", password="pw"), how, text, 1, "web1", "deploy")
    assert found is None or (isinstance(found, fanout.FanoutError) and "web1" in str(found))
    if found is not None:
        assert "\x1b" not in str(found)  # what the host wrote is escaped where it is shown
