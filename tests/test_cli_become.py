"""``fanout -b``, ``--become-user``, ``--become-method``, ``-K``, and inventory become variables, on the command line.

The first tests run the command's own functions in this process (fast); the last ones run the installed command on
the Docker fleet, on every suite: ``-b -K`` with the password typed on a terminal, and inventories whose
``ansible_become*`` variables must be honoured (issue 10: they were silently ignored).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import fanout
from fanout import _become, _cli_output, cli
from fanout.errors import AuthenticationFailed, BecomeFailed
from fanout.fleet import Result
from tests.fleet import hosts
from tests.fleet.cli import fanout_cmd, inventory_line, run_on_a_terminal
from tests.fleet.suites import fleet_suites

INVENTORY = """\
[web]
w1
w2 ansible_become_user=app ansible_become_password=own-pw
w3 ansible_become=false
w4 ansible_become=true ansible_become_method=su
"""


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "hosts.ini"
    path.write_text(INVENTORY)
    return str(path)


def parse(*argv: str) -> argparse.Namespace:
    args = cli.parse(argv)
    cli._check_options(args)
    return args


def become_of(hosts: dict, name: str) -> dict | None:
    become = hosts[name].get("become")
    return None if become is None else dict(become)


# ------------------------------------------------------------------------------------------------ parsing


def test_the_become_flags_short_and_long() -> None:
    args = parse("all", "-b", "--become-user", "app", "--become-method", "su", "-K")
    assert (args.become, args.become_user, args.become_method, args.ask_become_pass) == (True, "app", "su", True)
    args = parse("all", "--become", "--ask-become-pass")
    assert (args.become, args.become_user, args.become_method, args.ask_become_pass) == (True, None, None, True)
    args = parse("all")
    assert (args.become, args.become_user, args.become_method, args.ask_become_pass) == (False, None, None, False)


@pytest.mark.parametrize("method", ["runas", "pbrun", "SUDO", ""])
def test_a_method_fanout_lacks_is_bad_usage(method: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("all", "--become-method", method)
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("user", ["", "a b", "-root", "x" * 300, "a:b"])
def test_a_user_sudo_would_refuse_is_refused_before_anything_starts(user: str, capsys) -> None:
    assert cli.main(["localhost", "-b", f"--become-user={user}", "--shell", "id"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fanout: --become-user: become user") and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ which hosts


def test_b_turns_become_on_with_each_hosts_own_options_first(inventory: str, capsys) -> None:
    hosts = cli.select_hosts(parse("-i", inventory, "web", "-b", "--become-user", "cli-user"))
    assert become_of(hosts, "w1") == {"enabled": True, "user": "cli-user"}
    assert become_of(hosts, "w2") == {"enabled": True, "user": "app", "password": "own-pw"}  # the host's own win
    assert become_of(hosts, "w3") == {"enabled": False}  # ansible_become=false wins over -b, as in Ansible
    assert become_of(hosts, "w4") == {"enabled": True, "user": "cli-user", "method": "su"}
    err = capsys.readouterr().err
    assert err == "fanout: warning: -b leaves w3 as the login user: the inventory sets ansible_become=false there\n"
    assert "own-pw" not in repr(hosts)


def test_without_b_only_hosts_whose_inventory_says_so_become(inventory: str, capsys) -> None:
    hosts = cli.select_hosts(parse("-i", inventory, "web", "--become-method", "doas"))
    assert [become_of(hosts, name)["enabled"] for name in ("w2", "w3", "w4")] == [False, False, True]
    assert become_of(hosts, "w1") is None
    assert become_of(hosts, "w4") == {"enabled": True, "method": "su"}  # the host's method wins
    assert capsys.readouterr().err == ""  # w4 becomes: --become-method had an effect there


def test_become_options_without_any_host_becoming_say_they_had_no_effect(inventory: str, capsys) -> None:
    hosts = cli.select_hosts(parse("-i", inventory, "w1:w2", "--become-user", "x", "--become-method", "su"))
    assert cli._becoming(hosts) == []
    assert capsys.readouterr().err == (
        "fanout: warning: --become-user and --become-method have no effect: no selected host runs through become"
        " (give -b, or set ansible_become in the inventory)\n"
    )
    cli.select_hosts(parse("-i", inventory, "w3", "-b"))  # -b, and the only host refuses it
    assert "-b leaves w3 as the login user" in capsys.readouterr().err


def test_many_hosts_kept_out_are_counted_not_all_named(tmp_path: Path, capsys) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text("[web]\nweb[01:12]\n[web:vars]\nansible_become=no\n")
    cli.select_hosts(parse("-i", str(path), "web", "-b"))
    err = capsys.readouterr().err
    assert "web01, web02, web03, web04, web05 and 7 more as the login user" in err


def test_the_implicit_localhost_becomes_with_b() -> None:
    hosts = cli.select_hosts(parse("localhost", "-b", "--become-method", "su"))
    assert hosts == {"localhost": {"connection": "local", "become": {"method": "su", "enabled": True}}}


# ------------------------------------------------------------------------------------------------ -K


def test_K_asks_once_before_connecting_and_a_hosts_own_password_wins(inventory, prompts, fanned_out) -> None:
    assert cli.main(["-i", inventory, "web", "-b", "-K", "--shell", "id -u"]) == 0
    assert prompts == ["BECOME password: "]
    (hosts,) = fanned_out
    assert [become_of(hosts, name).get("password") for name in ("w1", "w2", "w3", "w4")] == [
        "typed-pw",
        "own-pw",
        None,  # not becoming: the password is not given to it
        "typed-pw",
    ]
    assert "typed-pw" not in repr(hosts)


def test_K_without_b_goes_to_the_hosts_whose_inventory_becomes(inventory, prompts, fanned_out) -> None:
    assert cli.main(["-i", inventory, "web", "-K", "--shell", "id -u"]) == 0
    assert prompts == ["BECOME password: "]
    assert become_of(fanned_out[0], "w4") == {"enabled": True, "method": "su", "password": "typed-pw"}


def test_K_with_no_host_becoming_asks_nothing_and_says_so(inventory, prompts, fanned_out, capsys) -> None:
    assert cli.main(["-i", inventory, "w1", "-K", "--shell", "id -u"]) == 0
    assert prompts == [] and len(fanned_out) == 1
    assert "warning: -K has no effect: no selected host runs through become" in capsys.readouterr().err


def test_ctrl_c_at_the_prompt_exits_130_without_a_traceback(inventory, monkeypatch, fanned_out, capsys) -> None:
    def interrupted(prompt: str = "", stream=None) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.getpass, "getpass", interrupted)
    assert cli.main(["-i", inventory, "w1", "-b", "-K", "--shell", "id -u"]) == cli.INTERRUPTED
    assert capsys.readouterr().err == "\nfanout: interrupted\n" and fanned_out == []


def test_input_ending_at_the_prompt_is_a_bad_request(inventory, monkeypatch, fanned_out, capsys) -> None:
    def ended(prompt: str = "", stream=None) -> str:
        raise EOFError

    monkeypatch.setattr(cli.getpass, "getpass", ended)
    assert cli.main(["-i", inventory, "w1", "-b", "-K", "--shell", "id -u"]) == 1
    assert capsys.readouterr().err == "fanout: -K: no become password was given (the input ended)\n"
    assert fanned_out == []


def test_become_failures_print_one_line_each() -> None:
    wrong = _become.failure(_become.plan(password="x"), "refused", "", 1, "web1", "deploy")
    refused = Result("web1", "auth-failed", error=wrong)
    login_refused = Result("web3", "auth-failed", error=AuthenticationFailed("web3: authentication as 'deploy' failed"))
    denied = Result("web2", "failed", error=BecomeFailed("web2", "deploy may not become root with sudo (not allowed)"))
    assert _cli_output.lines(refused) == ["web1 | AUTH FAILED | sudo refused the password for deploy on web1"]
    assert _cli_output.lines(denied) == [
        "web2 | FAILED | become failed on web2: deploy may not become root with sudo (not allowed)"
    ]
    assert cli.exit_status(fanout.Results({"web1": refused})) == 2  # the host was reached: failed, as Ansible's
    assert cli.exit_status(fanout.Results({"web3": login_refused})) == 4  # an SSH login refused: unreachable
    assert cli.exit_status(fanout.Results({"web2": denied})) == 2


# ------------------------------------------------------------------------------------------------ on the fleet


@pytest.fixture(params=fleet_suites())
def host(request, fleet) -> hosts.FleetHost:
    """The first fleet host of one suite."""
    return next(h for h in fleet.hosts if h.suite == request.param)


def test_b_K_with_the_password_typed_on_a_terminal(host, tmp_path) -> None:
    path = tmp_path / "hosts"
    path.write_text(inventory_line(host.name, host, hosts.USER) + "\n")
    password = hosts.TESTER_PASSWORD.encode()
    status, output = run_on_a_terminal(
        ["-i", str(path), host.name, "-b", "-K", "--shell", "id -un; id -u"], {b"BECOME password: ": password}
    )
    text = output.decode(errors="replace")
    assert status == 0, text
    assert output.count(b"BECOME password: ") == 1  # asked once
    assert f"[{host.name}] root\r\n[{host.name}] 0\r\n" in text
    assert f"{host.name} | ok | rc=0" in text
    assert password not in output  # not echoed, not printed


def test_inventory_become_variables_are_honoured(host, tmp_path) -> None:
    s = host.suite
    lines = [
        inventory_line(f"{s}-nopass", host, hosts.NOPASS_USER, "ansible_become=true ansible_become_user=root"),
        inventory_line(
            f"{s}-su",
            host,
            hosts.USER,
            f"ansible_become=yes ansible_become_method=su ansible_become_password={hosts.ROOT_PASSWORD}",
        ),
        inventory_line(f"{s}-app", host, hosts.NOPASS_USER, f"ansible_become=on ansible_become_user={hosts.APP_USER}"),
        inventory_line(f"{s}-wrong", host, hosts.USER, "ansible_become=1 ansible_become_password=not-the-password"),
        inventory_line(
            f"{s}-nosudo", host, hosts.NOSUDO_USER, f"ansible_become=true ansible_become_pass={hosts.NOSUDO_PASSWORD}"
        ),
        inventory_line(f"{s}-plain", host, hosts.NOPASS_USER),
    ]
    path = tmp_path / "hosts"
    path.write_text("\n".join(lines) + "\n")
    done = fanout_cmd("-i", str(path), "all", "--shell", "id -un")
    assert done.returncode == 2, done.stdout + done.stderr  # wrong become password: failed there (Ansible's 2)
    out = done.stdout.splitlines()
    for name, user in ((f"{s}-nopass", "root"), (f"{s}-su", "root"), (f"{s}-app", "app"), (f"{s}-plain", "nopass")):
        assert f"[{name}] {user}" in out, done.stdout
        assert f"{name} | ok | rc=0" in out, done.stdout
    (wrong,) = [line for line in out if line.startswith(f"{s}-wrong | ")]
    assert wrong.startswith(f"{s}-wrong | AUTH FAILED | sudo refused the password for {hosts.USER}"), wrong
    (nosudo,) = [line for line in out if line.startswith(f"{s}-nosudo | ")]
    assert nosudo.startswith(f"{s}-nosudo | FAILED | become failed on "), nosudo
    assert f"{hosts.NOSUDO_USER} may not become root with sudo" in nosudo, nosudo
    everything = done.stdout + done.stderr
    for secret in (hosts.ROOT_PASSWORD, hosts.NOSUDO_PASSWORD, "not-the-password"):
        assert secret not in everything
    assert "Traceback" not in everything
