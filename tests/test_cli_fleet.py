"""The ``fanout`` command on the Docker fleet, run as a subprocess: outcomes, exit statuses, live output."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fleet.cli import fanout_cmd, run_showing_a_terminal
from tests.fleet.inventories import write_inventory

PYTHON_VERSION = "platform.python_version"


@pytest.fixture
def inventory(fleet, tmp_path) -> str:
    return str(write_inventory(fleet, tmp_path))


def test_every_outcome_and_exit_status_4_when_a_host_is_unreachable(fleet, inventory) -> None:
    done = fanout_cmd("-i", inventory, "all", "-m", PYTHON_VERSION)
    assert done.returncode == 4, done.stderr
    lines = done.stdout.splitlines()  # as each host finishes
    assert len(lines) == len(fleet.hosts) + 2
    for host in fleet.hosts:
        assert f"{host.name} | ok | '{'%d.%d.%d' % host.python_version}'" in lines
    (unreachable,) = [line for line in lines if line.startswith("nobody-home | UNREACHABLE | ")]
    assert "refused" in unreachable
    assert any(line.startswith("wrong-key | AUTH FAILED | ") for line in lines)
    assert done.stderr.strip().splitlines()[-1] == f"auth-failed=1, ok={len(fleet.hosts)}, unreachable=1"


def test_shell_streams_prefixed_lines_and_exits_2_when_a_command_fails(fleet, inventory) -> None:
    first, second = fleet.hosts[0].name, fleet.hosts[1].name
    done = fanout_cmd(
        "-i", inventory, "docker", "--limit", "docker[0:1]", "--shell", "echo hello; echo oops >&2; exit 3"
    )
    assert done.returncode == 2, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(lines) == sorted(
        [f"[{first}] hello", f"[{second}] hello", f"{first} | FAILED | rc=3: oops", f"{second} | FAILED | rc=3: oops"]
    )
    for name in (first, second):  # a host's live lines come before its result
        assert lines.index(f"[{name}] hello") < lines.index(f"{name} | FAILED | rc=3: oops")
    assert f"[{first}] oops" in done.stderr and f"[{second}] oops" in done.stderr


def test_json_output_and_exit_0_when_all_went_well(fleet, inventory, tmp_path) -> None:
    names = tmp_path / "names"
    names.write_text(f"{fleet.hosts[2].name}\n{fleet.hosts[-1].name}\n")
    done = fanout_cmd("-i", inventory, "all", "--limit", f"@{names}", "--shell", "printf 'a\\nb'", "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["host"] for r in records) == sorted([fleet.hosts[2].name, fleet.hosts[-1].name])
    expected = {"ok": True, "status": "ok", "rc": 0, "stdout": "a\nb", "stderr": "", "log": []}
    assert all(r == {"host": r["host"], **expected} for r in records)


def test_task_timeout_and_user_options(fleet, tmp_path) -> None:
    host = fleet.hosts[0]
    inventory = write_inventory(fleet, tmp_path, broken=False)
    text = inventory.read_text().replace(f"ansible_user={host.user}\n", "")
    inventory.write_text(text)
    done = fanout_cmd("-i", str(inventory), host.name, "--shell", "sleep 60", "--task-timeout", "1", "-u", host.user)
    assert done.returncode == 2, done.stderr
    assert done.stdout == f"{host.name} | TIMED OUT | killed at its timeout\n"
    done = fanout_cmd("-i", str(inventory), host.name, "--shell", "id -un", "-u", "nobody-at-all")
    assert done.returncode == 4 and "AUTH FAILED" in done.stdout


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["nothing-here"], "no host matches 'nothing-here'"),
        (["all", "--limit", "nothing-here"], "within --limit"),
        (["all", "--limit", "@/no/such/file"], "cannot read"),
        (["all", "--shell", " "], "--shell needs a command"),
        (["all", "--forks", "0"], "--forks must be at least 1"),
        (["all", "--relays", "some"], "--relays wants a number of relays (0 to 10,000) or auto, not 'some'"),
        (["all", "--relays", "-1"], "--relays wants a number of relays"),
        (["all", "--task-timeout", "-1"], "--task-timeout must be a finite number of seconds above 0"),
    ],
)
def test_bad_requests(inventory, args, complaint) -> None:
    done = fanout_cmd("-i", inventory, *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert complaint in done.stderr


def test_a_broken_inventory_is_refused_with_its_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[web]\nweb[01:xx].example.com\n")
    done = fanout_cmd("-i", str(bad), "all", "--shell", "true")
    assert done.returncode == 1 and f"{bad}:2" in done.stderr


def test_a_progress_bar_on_a_terminal_only(fleet, inventory) -> None:
    command = "sleep 1; echo done"
    status, on_terminal = run_showing_a_terminal(["-i", inventory, "docker", "--shell", command])
    assert status == 0, on_terminal.decode(errors="replace")
    assert "━".encode() in on_terminal and b"sleep 1" in on_terminal  # rich's bar, named for the command
    assert f"[{fleet.hosts[0].name}] done".encode() in on_terminal
    piped = fanout_cmd("-i", inventory, "docker", "--shell", command)
    assert piped.returncode == 0 and "━" not in piped.stdout + piped.stderr and "\x1b" not in piped.stderr


def test_host_key_checking_flags_and_ssh_common_args(fleet, tmp_path) -> None:
    """A host not in known_hosts: strict fails with the CLI's spelling of the fix; the flag or Ansible's usual
    ssh switches let it through."""
    host = fleet.hosts[0]
    no_config = tmp_path / "empty_config"
    no_config.write_text("")
    known = tmp_path / "known_hosts"
    inventory = tmp_path / "hosts"
    inventory.write_text(
        f"web1 ansible_host={host.address} ansible_port={host.port} ansible_user={host.user} "
        f"ansible_ssh_private_key_file={host.key_path}\n"
    )
    isolated = f"-F {no_config} -o UserKnownHostsFile={known}"

    def shell_true(ssh_args: str, *more: str) -> subprocess.CompletedProcess:
        return fanout_cmd("-i", str(inventory), "all", "--shell", "true", "--ssh-common-args", ssh_args, *more)

    done = shell_true(isolated)
    assert done.returncode == 4
    line = (
        f"web1 | AUTH FAILED | web1 ({host.address}:{host.port}) is not in known_hosts and host key checking is strict"
    )
    assert done.stdout.startswith(line), done.stdout
    assert "give --host-key-checking accept-new" in done.stdout and "host_key_policy" not in done.stdout
    done = shell_true(isolated, "--host-key-checking", "off")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not known.exists()  # off writes nothing
    done = shell_true(isolated, "--host-key-checking", "accept-new")
    assert done.returncode == 0, done.stdout + done.stderr
    assert host.host_key in known.read_text()
    done = shell_true(f"-F {no_config} -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--ssh-common-args", "-o NoSuchOption=1"], "--ssh-common-args: "),
        (["--ssh-extra-args", "-o"], "--ssh-extra-args: "),
        (["--host-key-checking", "maybe"], "invalid choice: 'maybe'"),
    ],
)
def test_bad_ssh_flags_are_refused_before_connecting(inventory, args, complaint) -> None:
    done = fanout_cmd("-i", inventory, "all", "--shell", "true", *args)
    assert done.returncode in (1, 2) and done.stdout == ""
    assert complaint in done.stderr and "Traceback" not in done.stderr
