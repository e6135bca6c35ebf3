"""Fleet.from_inventory over the Docker fleet: every outcome told apart, one host never failing another."""

from __future__ import annotations

import importlib
import os
import threading
import time
from pathlib import Path

import pytest

from fanout import fleet as fleet_module
from fanout.errors import CallTimeout
from fanout.fleet import AUTH_FAILED, FAILED, OK, TIMED_OUT, UNREACHABLE, Fleet
from tests.fleet.inventories import write_inventory


@pytest.fixture
def inventory(fleet, tmp_path) -> str:
    """The whole Docker fleet, one unreachable address and one host offering a wrong key."""
    return str(write_inventory(fleet, tmp_path))


def test_every_host_ends_with_its_own_outcome(fleet, inventory, user_modules) -> None:
    s = user_modules({"where_{s}.py": "import platform\n\ndef where():\n    return platform.python_version()\n"})
    where = importlib.import_module(f"where_{s}").where
    with Fleet.from_inventory(inventory, forks=8) as the_fleet:
        results = the_fleet.call(where)
    assert list(results) == [h.name for h in fleet.hosts] + ["nobody-home", "wrong-key"]
    for host in fleet.hosts:
        assert results[host.name].status == OK
        assert results[host.name].value == "%d.%d.%d" % host.python_version
    assert results["nobody-home"].status == UNREACHABLE and "refused" in str(results["nobody-home"].error)
    assert results["wrong-key"].status == AUTH_FAILED
    assert set(results.unreachable) == {"nobody-home", "wrong-key"}
    assert len(results.ok) == len(fleet.hosts)
    assert results.summary() == f"auth-failed=1, ok={len(fleet.hosts)}, unreachable=1"


def test_remote_failures_and_streaming(fleet, inventory) -> None:
    with Fleet.from_inventory(inventory, "docker:&~bull.*", forks=4) as the_fleet:
        seen = dict(the_fleet.as_completed(os.listdir, "/no/such/dir", timeout=60))
    assert sorted(seen) == sorted(h.name for h in fleet.hosts if h.suite == "bullseye")
    assert all(r.status == FAILED and r.error.type_name == "FileNotFoundError" for r in seen.values())


def test_printed_lines_stream_with_the_host_name_and_stay_in_the_result(fleet, inventory, user_modules, capsys) -> None:
    s = user_modules(
        {
            "chatty_{s}.py": """
            import sys

            def chatty(word):
                print("said", word)
                print("warned", word, file=sys.stderr)
                return word.upper()
            """
        }
    )
    chatty = importlib.import_module(f"chatty_{s}").chatty
    with Fleet.from_inventory(inventory, "docker[0:1]") as the_fleet:
        results = the_fleet.call(chatty, "hi")
    names = [h.name for h in fleet.hosts[:2]]
    assert list(results) == names
    out, err = capsys.readouterr()
    for name in names:
        assert results[name].value == "HI"
        assert results[name].stdout == "said hi\n" and results[name].stderr == "warned hi\n"
        assert f"[{name}] said hi\n" in out and f"[{name}] warned hi\n" in err
    with Fleet.from_inventory(inventory, "docker[0]", echo=False) as quiet:
        assert quiet.call(chatty, "hush")[names[0]].stdout == "said hush\n"
    assert capsys.readouterr() == ("", "")  # and no progress bar off a terminal either


def test_a_call_that_overruns_its_timeout_ends_timed_out_and_leaves_the_fleet(inventory) -> None:
    with Fleet.from_inventory(inventory, "docker[0:1]") as the_fleet:
        results = the_fleet.call(time.sleep, 60, timeout=1)
        assert {r.status for r in results.values()} == {TIMED_OUT}
        assert all(isinstance(r.error, CallTimeout) for r in results.values())
        again = the_fleet.call(os.getpid)  # the hosts were dropped: they answer at once, as timed out
        assert {r.status for r in again.values()} == {TIMED_OUT}


def test_local_hosts_and_the_implicit_localhost(tmp_path, inventory) -> None:
    path = tmp_path / "local.yml"
    path.write_text(
        "all:\n  hosts:\n    here:\n      ansible_connection: local\n    odd:\n      ansible_connection: winrm\n"
    )
    with Fleet.from_inventory(path) as the_fleet:
        results = the_fleet.call(os.getppid)
    assert results["here"].value == os.getpid()
    assert results["odd"].status == UNREACHABLE and "winrm" in str(results["odd"].error)
    with Fleet.from_inventory(inventory, "localhost") as implicit:  # not in the inventory: Ansible's implicit one
        assert implicit.call(os.getppid)["localhost"].value == os.getpid()


def test_bad_arguments(inventory) -> None:
    with pytest.raises(ValueError, match="forks"):
        Fleet({}, forks=0)
    with pytest.raises(ValueError, match="connect_timeout"):
        Fleet({}, connect_timeout=0)
    assert fleet_module.Results({}).summary() == "no hosts"
    with Fleet.from_inventory(inventory, "nothing-matches") as empty:
        assert len(empty.call(os.getpid)) == 0
    with Fleet.from_inventory(inventory, "docker[0]") as the_fleet:
        with pytest.raises(ValueError, match="command"):
            the_fleet.run("  ")
        with pytest.raises(FileNotFoundError):
            the_fleet.put(Path(inventory).parent / "no-such-file", "/tmp/x")
        unpicklable = the_fleet.call(lambda: threading.Lock())  # a lock cannot come back: failed, not raised
        assert {r.status for r in unpicklable.values()} == {FAILED}


def test_the_service_example_runs_on_an_inventory(fleet, inventory, tmp_path) -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parent.parent / "examples" / "service" / "self_contained.py"
    done = subprocess.run(
        [sys.executable, str(example), "--inventory", inventory, "all"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(fleet.hosts)} children, 2 lookups (one per role)" in done.stdout
    assert "nobody-home: not reached" in done.stdout and "wrong-key: not reached" in done.stdout
    assert f"{fleet.hosts[0].name} lists" in done.stdout


def test_call_each_gives_each_host_its_own_arguments(fleet, inventory, user_modules) -> None:
    s = user_modules({"each_{s}.py": "def tag(word, timeout):\n    return word, timeout\n"})
    tag = importlib.import_module(f"each_{s}").tag
    with Fleet.from_inventory(inventory, forks=8) as the_fleet:
        arguments = {name: ((name.upper(),), {"timeout": i}) for i, name in enumerate(the_fleet.hosts)}
        results = the_fleet.call_each(tag, arguments, timeout=60)  # the kwargs' "timeout" is tag's own
    assert list(results) == [h.name for h in fleet.hosts] + ["nobody-home", "wrong-key"]
    for i, host in enumerate(fleet.hosts):
        assert results[host.name].status == OK and results[host.name].value == (host.name.upper(), i)
    assert results["nobody-home"].status == UNREACHABLE and results["wrong-key"].status == AUTH_FAILED


def test_a_host_whose_child_dies_during_a_call_is_failed_with_its_exit_status(inventory) -> None:
    with Fleet.from_inventory(inventory, "docker[0:1]") as the_fleet:
        results = the_fleet.call(os._exit, 3)
        assert {r.status for r in results.values()} == {FAILED} and not results.unreachable
        assert len(results.failed) == 2
        assert all(r.error.exit_status == 3 and "status 3" in str(r.error) for r in results.values())
        again = the_fleet.call(os.getpid)  # reached, then lost: later calls fail the same way
        assert {r.status for r in again.values()} == {FAILED}


def test_the_bar_of_run_counts_a_command_that_failed_as_failed(monkeypatch) -> None:
    """The bar's tally is what the results say: a non-zero exit is failed there too, not ok."""
    from fanout import _progress

    tallied: list[str] = []
    advance = _progress.Progress.advance

    def counted(bar, status: str) -> None:
        tallied.append(status)
        advance(bar, status)

    monkeypatch.setattr(_progress.Progress, "advance", counted)
    hosts = {"a": {"connection": "local"}, "b": {"connection": "local"}}
    with Fleet(hosts, progress=True, echo=False) as fleet:
        results = fleet.run("exit 3")
    assert [results[name].status for name in hosts] == ["failed", "failed"]
    assert tallied[-2:] == ["failed", "failed"]
