"""Fleet.run and Fleet.put on the Docker fleet: exit statuses, live output, timeouts, files sent only when changed."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid

import pytest

from fanout import fleet as fleet_module
from fanout.errors import CommandFailed
from fanout.fleet import FAILED, OK, TIMED_OUT, UNREACHABLE, CommandResult, Fleet
from tests.fleet.inventories import write_inventory


@pytest.fixture
def inventory(fleet, tmp_path) -> str:
    return str(write_inventory(fleet, tmp_path))


def test_run_gives_status_and_output_of_every_host(fleet, inventory) -> None:
    command = 'echo "out $(hostname)"; echo "err line" >&2; exit "$1"'
    with Fleet.from_inventory(inventory, echo=False) as the_fleet:
        checked = the_fleet.run(f"sh -c '{command}' sh 3")
        unchecked = the_fleet.run("printf 'no newline'; exit 0", check=False)
    for host in fleet.hosts:
        result = checked[host.name]
        assert result.status == FAILED and isinstance(result.error, CommandFailed)
        assert result.value.rc == 3 and result.value.stderr == "err line\n"
        assert result.value.stdout.startswith("out ") and "status 3" in str(result.error)
        assert unchecked[host.name].value == CommandResult(0, "no newline", "")
    assert checked["nobody-home"].status == UNREACHABLE
    assert unchecked.summary() == f"auth-failed=1, ok={len(fleet.hosts)}, unreachable=1"


def test_command_output_streams_while_the_command_runs(fleet, inventory, capsys) -> None:
    """The command waits for a file the test creates only once it has seen the first line."""
    host = fleet.hosts[-1]
    flag = f"/tmp/go-{uuid.uuid4().hex}"
    seen = threading.Event()
    with Fleet.from_inventory(inventory, host.name) as the_fleet:
        context = the_fleet.contexts[host.name]
        fleets_own = context.on_output

        def watch(stream, line, call_id):
            fleets_own(stream, line, call_id)
            if line == "first":
                seen.set()

        context.on_output = watch
        toucher = threading.Thread(
            target=lambda: seen.wait(30) and fleet.client.containers.get(host.container).exec_run(["touch", flag])
        )
        toucher.start()
        results = the_fleet.run(f"echo first; while [ ! -e {flag} ]; do sleep 0.05; done; echo second", timeout=30)
        toucher.join()
    assert results[host.name].value == CommandResult(0, "first\nsecond\n", "")
    assert f"[{host.name}] first\n[{host.name}] second\n" in capsys.readouterr().out


def test_a_command_past_its_timeout_is_killed_with_its_children(fleet, inventory) -> None:
    marker = uuid.uuid4().hex[:12]
    with Fleet.from_inventory(inventory, "docker[0:1]", echo=False) as the_fleet:
        results = the_fleet.run(f"sh -c 'sleep 600; : {marker}' & sleep 600", timeout=1)
        assert {r.status for r in results.values()} == {TIMED_OUT}
        assert all(r.value.rc is None for r in results.values())
        left = the_fleet.run(f"ps -eo args | grep -c '[:] {marker}' || true", check=False)
    assert {r.value.stdout for r in left.values()} == {"0\n"}


def test_put_sends_a_file_once_and_then_only_when_it_changed(fleet, inventory, tmp_path) -> None:
    local = tmp_path / "app.conf"
    local.write_text("setting = 1\n")
    local.chmod(0o640)
    remote = f"/tmp/put-{uuid.uuid4().hex}.conf"
    with Fleet.from_inventory(inventory, echo=False) as the_fleet:
        first = the_fleet.put(local, remote)
        second = the_fleet.put(local, remote)
        local.chmod(0o600)
        mode_only = the_fleet.put(local, remote)
        local.write_text("setting = 2\n")
        changed = the_fleet.put(local, remote)
        check = the_fleet.run(f"stat -c %a {remote}; cat {remote}")
    names = [h.name for h in fleet.hosts]
    assert [first[n].value.changed for n in names] == [True] * len(names)
    assert [second[n].value.changed for n in names] == [False] * len(names)
    assert [mode_only[n].value.changed for n in names] == [True] * len(names)
    assert [changed[n].value.changed for n in names] == [True] * len(names)
    assert {check[n].value.stdout for n in names} == {"600\nsetting = 2\n"}
    assert changed["nobody-home"].status == UNREACHABLE and first.summary().startswith("auth-failed=1")


def test_put_in_pieces_and_its_failures(fleet, inventory, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(fleet_module, "PUT_CHUNK", 1000)
    local = tmp_path / "blob"
    local.write_bytes(os.urandom(4500))
    name = f"blob-{uuid.uuid4().hex}"
    remote = f"/tmp/{name}"
    with Fleet.from_inventory(inventory, "docker[0:2]", echo=False) as the_fleet:
        sent = the_fleet.put(local, remote)
        digests = the_fleet.run(f"sha256sum {remote}; ls -a /tmp | grep -c '^[.]{name}[.]fanout-' || true")
        into_a_directory = the_fleet.put(local, "/tmp")
        nowhere = the_fleet.put(local, "/no/such/dir/blob")
        forbidden = the_fleet.put(local, "/etc/blob")
    expected = hashlib.sha256(local.read_bytes()).hexdigest()
    for name, result in sent.items():
        assert result.status == OK and result.value.sha256 == expected
        assert digests[name].value.stdout == f"{expected}  {remote}\n0\n"  # no temporary file left behind
        assert into_a_directory[name].status == FAILED and "directory" in str(into_a_directory[name].error)
        assert nowhere[name].error.type_name == "FileNotFoundError"
        assert forbidden[name].error.type_name == "PermissionError"
