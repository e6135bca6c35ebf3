"""The command line's --copy and --fetch: their checks before anything connects, and a round trip on the fleet."""

from __future__ import annotations

import os
import re

import pytest

from fanout import cli
from tests.fleet import hosts
from tests.fleet.cli import fanout_cmd, inventory_line, run_showing_a_terminal
from tests.fleet.inventories import write_inventory
from tests.fleet.suites import fleet_suites


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["--copy", "/no/such/source", "/tmp/x"], "fanout: --copy /no/such/source: no such file or directory\n"),
        (["--copy", "{src}", "/tmp/x", "--mode", "rw-r--r--"], "fanout: --mode wants an octal mode such as 0644"),
        (["--copy", "{src}", "/tmp/x", "--mode", "77777"], "fanout: --mode 77777 is not a file mode (0 to 7777)\n"),
        (["--copy", "{src}", "/tmp/x", "-a", "[1]"], "fanout: -a gives a function's arguments; --copy and --fetch"),
        (["--fetch", "", "out"], "fanout: --fetch needs a source and a destination\n"),
    ],
)
def test_bad_transfers_are_refused_before_connecting(argv, complaint, tmp_path, capsys) -> None:
    src = tmp_path / "src.txt"
    src.write_text("x")
    status = cli.main(["-i", "web1,", "web1", *(a.replace("{src}", str(src)) for a in argv)])
    assert status == 1
    assert capsys.readouterr().err.startswith(complaint)


@pytest.mark.parametrize("option", [["--delete"], ["--mode", "0644"]])
def test_copy_options_without_copy_are_usage_errors(option, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["-i", "web1,", "web1", "--shell", "true", *option])
    assert caught.value.code == 2
    assert "--mode and --delete go with --copy" in capsys.readouterr().err


def test_copy_and_shell_are_one_or_the_other(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["-i", "web1,", "web1", "--shell", "true", "--copy", "a", "b"])
    assert caught.value.code == 2


@pytest.mark.parametrize("suite", fleet_suites())
def test_copy_then_fetch_a_tree(suite, fleet, tmp_path) -> None:
    host = next(h for h in fleet.hosts if h.suite == suite)
    inventory = tmp_path / "hosts"
    inventory.write_text(inventory_line("h1", host, hosts.USER) + "\n")
    tree = tmp_path / "site"
    (tree / "css").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>hello</h1>\n")
    (tree / "css" / "a.css").write_text("body {}\n")
    remote = f"/tmp/cli-copy-{tmp_path.name}"
    done = fanout_cmd("-i", str(inventory), "h1", "--copy", f"{tree}/", remote, "--mode", "0640")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("h1 | ok |"), done.stdout
    again = fanout_cmd("-i", str(inventory), "h1", "--copy", f"{tree}/", remote, "--mode", "0640")  # unchanged
    assert again.returncode == 0, again.stdout + again.stderr
    out = tmp_path / "out"
    fetched = fanout_cmd("-i", str(inventory), "h1", "--fetch", f"{remote}/", str(out))
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    landed = out / "h1" / remote.lstrip("/")
    assert (landed / "index.html").read_text() == "<h1>hello</h1>\n"
    assert (landed / "css" / "a.css").read_text() == "body {}\n"
    assert oct((landed / "index.html").stat().st_mode & 0o777) == oct(0o640)


def test_copy_and_fetch_show_the_bytes_moved_on_a_terminal(fleet, tmp_path) -> None:
    inventory = str(write_inventory(fleet, tmp_path))
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(3 << 20))
    remote = f"/tmp/{tmp_path.name[-12:]}.bin"
    status, shown = run_showing_a_terminal(["-i", inventory, "docker", "--copy", str(payload), remote], columns=200)
    assert status == 0, shown.decode(errors="replace")
    hosts_count = len(fleet.hosts)
    moved = re.findall(rb"([\d.]+) MiB at [\d.]+ [KMG]?i?B/s", shown)  # the last frame: every host's bytes
    assert moved and float(moved[-1]) == pytest.approx(3 * hosts_count, abs=0.1), shown[-2000:]
    status, shown = run_showing_a_terminal(
        ["-i", inventory, "docker", "--fetch", remote, str(tmp_path / "b")], columns=200
    )
    assert status == 0, shown.decode(errors="replace")
    moved = re.findall(rb"([\d.]+) MiB at [\d.]+ [KMG]?i?B/s", shown)
    assert moved and float(moved[-1]) == pytest.approx(3 * hosts_count, abs=0.1), shown[-2000:]
    piped = fanout_cmd("-i", inventory, "docker", "--copy", str(payload), remote)  # unchanged; and no bar
    assert piped.returncode == 0 and " at " not in piped.stderr and "\x1b" not in piped.stderr
