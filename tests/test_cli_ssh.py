"""The command line's SSH flags: -k, --host-key-checking, --ssh-common-args/--ssh-extra-args, and the passphrase
asked once per encrypted key; the fleet test types a real password on a real terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fanout import cli
from tests.fleet import hosts
from tests.fleet.cli import run_on_a_terminal

PASSPHRASE = "cli passphrase"


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "hosts"
    path.write_text(
        "[web]\n"
        "w1 ansible_host=10.0.0.1\n"
        "w2 ansible_host=10.0.0.2 ansible_password=own-pw ansible_host_key_checking=false\n"
        "w3 ansible_host=10.0.0.3 ansible_ssh_common_args='-o ConnectTimeout=3'\n"
    )
    return str(path)


def test_k_asks_once_and_a_hosts_own_password_wins(inventory, prompts, fanned_out) -> None:
    assert cli.main(["-i", inventory, "web", "-k", "--shell", "true"]) == 0
    assert prompts == ["SSH password: "]
    (chosen,) = fanned_out
    assert [chosen[name]["password"] for name in ("w1", "w2", "w3")] == ["typed-pw", "own-pw", "typed-pw"]


def test_ssh_flags_go_to_hosts_whose_inventory_sets_none(inventory, prompts, fanned_out) -> None:
    argv = ["-i", inventory, "web", "--shell", "true", "--host-key-checking", "accept-new"]
    argv += ["--ssh-common-args", "-o ServerAliveInterval=5", "--ssh-extra-args=-A"]  # argparse: "-A" alone is a flag
    assert cli.main(argv) == 0
    (chosen,) = fanned_out
    assert chosen["w1"]["host_key_policy"] == "accept-new"
    assert chosen["w2"]["host_key_policy"] == "off"  # its own ansible_host_key_checking=false
    assert chosen["w1"]["ssh_args"] == "-o ServerAliveInterval=5 -A"
    assert chosen["w3"]["ssh_args"] == "-o ConnectTimeout=3"  # its own
    assert prompts == []


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["--ssh-common-args", "-o NoSuchOption=1"], "--ssh-common-args: ssh arguments: -o 'NoSuchOption=1': Bad"),
        (["--ssh-extra-args", "-R 80:localhost:80"], "--ssh-extra-args: ssh arguments: -R asks for"),
        (["--ssh-common-args", "'unclosed"], "--ssh-common-args: "),
    ],
)
def test_bad_ssh_args_are_refused_before_anything_starts(inventory, argv, complaint, fanned_out, capsys) -> None:
    assert cli.main(["-i", inventory, "web", "--shell", "true", *argv]) == 1
    err = capsys.readouterr().err
    assert complaint in err and "Traceback" not in err and fanned_out == []


def test_the_end_of_input_at_the_password_prompt_is_a_bad_request(inventory, monkeypatch, fanned_out, capsys) -> None:
    def ended(prompt: str = "", stream=None) -> str:
        raise EOFError

    monkeypatch.setattr(cli.getpass, "getpass", ended)
    assert cli.main(["-i", inventory, "w1", "-k", "--shell", "true"]) == 1
    assert capsys.readouterr().err == "fanout: -k: no SSH password was given (the input ended)\n"


@pytest.mark.usefixtures("openssh_client")
def test_a_passphrase_is_asked_once_per_encrypted_key_no_agent_holds(tmp_path, prompts, fanned_out, monkeypatch):
    key = tmp_path / "encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-a", "1", "-N", PASSPHRASE, "-f", str(key)], check=True)
    path = tmp_path / "hosts"
    path.write_text(
        f"a ansible_host=10.0.0.1 ansible_ssh_private_key_file={key}\n"
        f"b ansible_host=10.0.0.2 ansible_ssh_private_key_file={key}\n"
        "c ansible_host=10.0.0.3\n"
    )
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert cli.main(["-i", str(path), "all", "--shell", "true", "--ssh-common-args", "-F /dev/null"]) == 0
    assert prompts == [f"Enter passphrase for key '{key}': "]
    (chosen,) = fanned_out
    assert chosen["a"]["passphrase"] == chosen["b"]["passphrase"] == {str(key): "typed-pw"}
    assert "passphrase" not in chosen["c"]


@pytest.mark.fleet
def test_k_with_the_password_typed_on_a_terminal(password_host, tmp_path) -> None:
    host = password_host
    path = tmp_path / "hosts"
    path.write_text(
        f"web1 ansible_host={host.address} ansible_port={host.port} ansible_user={hosts.USER} "
        f"fanout_known_hosts={host.known_hosts}\n"
    )
    password = hosts.TESTER_PASSWORD.encode()
    no_keys = "-F /dev/null -o IdentitiesOnly=yes -o IdentityFile=/nonexistent -o IdentityAgent=none"
    argv = ["-i", str(path), "web1", "-k", "--shell", "id -un", "--ssh-common-args", no_keys]
    status, output = run_on_a_terminal(argv, {b"SSH password: ": password})
    text = output.decode(errors="replace")
    assert status == 0, text
    assert output.count(b"SSH password: ") == 1
    assert f"[web1] {hosts.USER}\r\n" in text and "web1 | ok | rc=0" in text
    assert password not in output


@pytest.mark.fleet
def test_ansible_password_and_ansible_ssh_pass_log_in(password_host, tmp_path) -> None:
    from fanout import Fleet
    from fanout.inventory import Inventory

    host = password_host
    no_keys = "-F /dev/null -o IdentitiesOnly=yes -o IdentityFile=/nonexistent -o IdentityAgent=none"
    base = (
        f"ansible_host={host.address} ansible_port={host.port} ansible_user={hosts.USER} "
        f"fanout_known_hosts={host.known_hosts} ansible_ssh_common_args='{no_keys}'"
    )
    path = tmp_path / "hosts"
    path.write_text(
        f"by-password {base} ansible_password={hosts.TESTER_PASSWORD}\n"
        f"by-ssh-pass {base} ansible_ssh_pass={hosts.TESTER_PASSWORD}\n"
        f"wrong {base} ansible_password=not-it\n"
    )
    with Fleet(Inventory.load(path).fleet_hosts("all"), echo=False) as fleet:
        results = fleet.run("id -un", timeout=120)
    assert results["by-password"].value.stdout.strip() == hosts.USER
    assert results["by-ssh-pass"].value.stdout.strip() == hosts.USER
    error = str(results["wrong"].error)
    assert error.startswith(f"wrong ({host.address}:{host.port}): authentication as 'tester' failed:")
    assert "the password: refused" in error and "/nonexistent: no such identity file" in error
