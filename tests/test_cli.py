"""The ``fanout`` command, run as users run it: an installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fanout
from fanout import cli
from tests.fleet.cli import fanout_cmd


def test_version() -> None:
    done = fanout_cmd("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"fanout {fanout.__version__}"
    assert fanout.__version__ != "0.0.0+unknown"


def test_localhost_runs_a_local_child_by_default() -> None:
    done = fanout_cmd("localhost")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"localhost | ok | {os.uname().nodename!r}\n"


def test_function_with_arguments_and_json_output() -> None:
    done = fanout_cmd("localhost", "-m", "os.path.join", "-a", '["/srv", "app"]', "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "host": "localhost",
        "ok": True,
        "status": "ok",
        "value": "/srv/app",
        "stdout": "",
        "stderr": "",
        "log": [],
    }
    done = fanout_cmd("localhost", "-m", "json.dumps", "-a", '{"obj": [1, 2], "separators": [",", ":"]}')
    assert (done.returncode, done.stdout) == (0, "localhost | ok | '[1,2]'\n")


def test_the_call_runs_in_another_process() -> None:
    done = fanout_cmd("localhost", "-m", "os.getpid", "--json")
    pid = json.loads(done.stdout)["value"]
    assert isinstance(pid, int) and pid != os.getpid()


def test_a_remote_failure_exits_2_with_the_remote_error() -> None:
    done = fanout_cmd("localhost", "-m", "os.listdir", "-a", '["/no/such/dir"]')
    assert done.returncode == 2
    first, *more = done.stdout.splitlines()
    assert first.startswith("localhost | FAILED | FileNotFoundError:")
    # the remote traceback follows, each of its lines under the host's name: no line can pass for another host's
    assert "localhost |   Remote traceback:" in more
    assert more[-1].startswith("localhost |     FileNotFoundError:")  # the traceback indented within the error
    assert all(line == "localhost |" or line.startswith("localhost |   ") for line in more)


def test_limit_without_an_inventory() -> None:
    """--limit narrows the implicit localhost too: it is never ignored."""
    done = fanout_cmd("localhost", "--limit", "localhost")
    assert (done.returncode, done.stdout) == (0, f"localhost | ok | {os.uname().nodename!r}\n")
    done = fanout_cmd("localhost", "--limit", "web")
    assert done.returncode == 1 and "no host matches 'localhost' within --limit 'web'" in done.stderr


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["web"], "no host matches 'web'"),
        (["all"], "no host matches 'all'"),
        (["localhost", "-m", "int"], "-m wants MODULE.FUNCTION"),
        (["localhost", "-m", "math.nope"], "module 'math' has no 'nope'"),
        (["localhost", "-m", "nosuchmodule_xyz.f"], "cannot import any module"),
        (["localhost", "-m", "math.pi"], "math.pi is not callable"),
        (["localhost", "-a", "[1,"], "-a is not valid JSON"),
        (["localhost", "-a", "3"], "-a must be a JSON list"),
        (
            ["localhost", "-m", "shell", "-a", "uptime"],
            "-m shell is Ansible's module; fanout's flag is --shell 'uptime'",
        ),
        (["localhost", "-m", "command", "-a", "ls -l"], "fanout's flag is --shell 'ls -l'"),
        (["localhost", "-m", "raw"], "-m raw is Ansible's module; fanout's flag is --shell 'COMMAND'"),
        (["localhost", "-m", "copy", "-a", "src=a dest=b"], "fanout's flag is --copy SRC DEST"),
        (["localhost", "-m", "math.sqr"], "module 'math' has no 'sqr'; did you mean 'math.sqrt'?"),
        (["localhost", "-m", "os.pth.join"], "module 'os' has no 'pth.join'; did you mean 'os.path.join'?"),
        (["localhost", "-m", "platfrom.node"], "cannot import any module of 'platfrom.node' on this machine; did you"),
        (
            ["localhost", "-m", "ping", "-a", "data=foo"],
            """must be a JSON list or object, such as -a '{"data": "foo"}'""",
        ),
        (["localhost", "-a", "/etc"], """such as -a '["/etc"]' (positional arguments) or -a '{"path": "/etc"}'"""),
    ],
)
def test_bad_requests_are_refused_with_the_reason(args: list[str], complaint: str) -> None:
    done = fanout_cmd(*args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert complaint in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--bogus", "localhost"],
        ["localhost", "extra"],
        ["localhost", "--shel", "true"],  # no prefix abbreviations of long flags
        ["--inv", "hosts", "all"],
        ["localhost", "--json", "-o"],
    ],
)
def test_bad_usage_is_refused_with_usage(args: list[str]) -> None:
    done = fanout_cmd(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: fanout [-h] [--version]")  # the command's own usage, not a subparser list


def test_ping_answers_pong_as_ansibles_ping() -> None:
    done = fanout_cmd("localhost", "-m", "ping")
    assert (done.returncode, done.stdout) == (0, "localhost | ok | 'pong'\n"), done.stderr
    done = fanout_cmd("localhost", "-m", "ping", "-a", '{"data": "hello"}', "--json")
    assert json.loads(done.stdout)["value"] == "hello"


def test_an_error_fanout_did_not_expect_is_one_line_and_vvv_shows_where(monkeypatch, capsys) -> None:
    def broken(*args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_fan_out", broken)
    assert cli.main(["localhost"]) == 1
    assert (
        capsys.readouterr().err == "fanout: unexpected error (a bug in fanout; -vvv shows where): RuntimeError: a bug\n"
    )
    assert cli.main(["localhost", "-vvv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "RuntimeError: a bug" in err


def test_python_dash_m_is_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "fanout", "--version"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"fanout {fanout.__version__}"


INVENTORY = """\
mail.example.com

[webservers]
foo.example.com http_port=80
bar.example.com

[dbservers]
one.example.com

[prod:children]
webservers

[prod:vars]
env=prod
"""


@pytest.fixture
def inventory_file(tmp_path: Path) -> str:
    path = tmp_path / "hosts"
    path.write_text(INVENTORY)
    return str(path)


def test_list_hosts_prints_as_ansible_does_and_connects_to_nothing(inventory_file: str) -> None:
    done = fanout_cmd("-i", inventory_file, "prod:dbservers", "--list-hosts", "--limit", "!bar.example.com")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "  hosts (2):\n    foo.example.com\n    one.example.com\n"  # ansible --list-hosts's
    done = fanout_cmd("localhost", "--list-hosts", "-m", "no.such.module")  # nothing runs: the task is not read
    assert (done.returncode, done.stdout) == (0, "  hosts (1):\n    localhost\n")
    done = fanout_cmd("-i", inventory_file, "nomatch", "--list-hosts")  # none is still an error, as for a run
    assert (done.returncode, done.stdout) == (1, "  hosts (0):\n")
    assert done.stderr == f"fanout: no host matches 'nomatch' in {inventory_file}\n"


@pytest.mark.parametrize(
    "words",
    [
        ["-i", "{inventory}", "inventory", "--graph", "prod"],
        ["inventory", "--graph", "prod", "-i", "{inventory}"],
        ["--inventory={inventory}", "inventory", "--graph=prod"],
    ],
)
def test_the_inventory_subcommand_anywhere(words: list[str], inventory_file: str) -> None:
    done = fanout_cmd(*(word.format(inventory=inventory_file) for word in words))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "@prod:",
        "  |--@webservers:",
        "  |  |--foo.example.com",
        "  |  |--bar.example.com",
    ]


def test_a_file_group_or_host_named_inventory_is_still_one(tmp_path: Path) -> None:
    """The subcommand is the first word that is no option's value: ``-i inventory`` is a file; a group named
    inventory is the pattern ``inventory,``."""
    (tmp_path / "inventory").write_text("[inventory]\nh1 ansible_connection=local\n")
    exe = shutil.which("fanout", path=str(Path(sys.executable).parent))
    for words in (
        ["-i", "inventory", "inventory,", "--list-hosts"],
        ["-i", "inventory", "--list-hosts", "--", "inventory"],
    ):
        done = subprocess.run([exe, *words], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (0, "  hosts (1):\n    h1\n"), done.stderr


def test_inventory_list_has_ansible_inventorys_shape(inventory_file: str) -> None:
    done = fanout_cmd("inventory", "-i", inventory_file, "--list")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["_meta"]["hostvars"]["foo.example.com"] == {"env": "prod", "http_port": 80}
    assert "mail.example.com" not in document["_meta"]["hostvars"]  # no variables, as ansible-inventory
    assert document["all"]["children"] == ["ungrouped", "dbservers", "prod"]
    assert document["prod"] == {"children": ["webservers"]}
    assert document["webservers"]["hosts"] == ["foo.example.com", "bar.example.com"]
    assert document["ungrouped"]["hosts"] == ["mail.example.com"]


def test_inventory_graph_and_host(inventory_file: str) -> None:
    done = fanout_cmd("inventory", "-i", inventory_file, "--graph")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [  # what ansible-inventory 2.16 to 2.19 print: in order of addition
        "@all:",
        "  |--@ungrouped:",
        "  |  |--mail.example.com",
        "  |--@dbservers:",
        "  |  |--one.example.com",
        "  |--@prod:",
        "  |  |--@webservers:",
        "  |  |  |--foo.example.com",
        "  |  |  |--bar.example.com",
    ]
    done = fanout_cmd("inventory", "-i", inventory_file, "--host", "foo.example.com")
    assert json.loads(done.stdout) == {"env": "prod", "http_port": 80}


@pytest.mark.parametrize(
    "args, status, complaint",
    [
        (["--host", "nobody.example.com"], 1, "no host named 'nobody.example.com'"),
        (["--graph", "nogroup"], 1, "no group named 'nogroup'"),
        ([], 2, "one of the arguments --list --graph --host is required"),
    ],
)
def test_inventory_bad_requests(inventory_file: str, args: list[str], status: int, complaint: str) -> None:
    done = fanout_cmd("inventory", "-i", inventory_file, *args)
    assert done.returncode == status
    assert complaint in done.stderr


def test_inventory_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken"
    bad.write_text("[webservers\nfoo\n")
    done = fanout_cmd("inventory", "-i", str(bad), "--list")
    assert done.returncode == 1
    assert f"{bad}:1" in done.stderr


def test_functions_of_the_current_directory_and_their_import_errors(tmp_path: Path) -> None:
    exe = shutil.which("fanout", path=str(Path(sys.executable).parent))
    package = tmp_path / "mytasks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "good.py").write_text("def answer():\n    return 42\n")
    (package / "broken.py").write_text("import a_dependency_nobody_installed\n")
    run = lambda *args: subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)  # noqa: E731
    done = run("localhost", "-m", "mytasks.good.answer")
    assert (done.returncode, done.stdout) == (0, "localhost | ok | 42\n"), done.stderr
    done = run("localhost", "-m", "mytasks.broken.deploy")
    assert done.returncode == 1
    assert "importing mytasks.broken failed: No module named 'a_dependency_nobody_installed'" in done.stderr


def test_an_int_too_long_to_print_in_decimal_is_shown_by_its_size(tmp_path: Path) -> None:
    exe = shutil.which("fanout", path=str(Path(sys.executable).parent))
    (tmp_path / "bigmod.py").write_text("def big():\n    return 10**5000, 'x'\n")

    def run(*extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [exe, "localhost", "-m", "bigmod.big", *extra], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        return done

    assert "holding an int too long to print in decimal" in run().stdout
    marked = {"repr": "<an int of 16610 bits, too long to print in decimal>"}  # JSON could not carry it either
    assert json.loads(run("--json").stdout)["value"] == [marked, "x"]
