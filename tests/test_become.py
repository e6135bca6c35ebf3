"""Become: contexts as another user on the same host (sudo, su, doas), on every suite of the test fleet."""

from __future__ import annotations

import os
import time

import pytest

import fanout
from fanout import service
from tests.fleet import hosts
from tests.fleet.plain_ssh import run, ssh_client
from tests.fleet.suites import fleet_suites
from tests.fleet.waiting import wait_until


@pytest.fixture(params=fleet_suites())
def host(request, fleet) -> hosts.FleetHost:
    """The first fleet host of one suite."""
    return next(h for h in fleet.hosts if h.suite == request.param)


@pytest.fixture
def login(host):
    """A factory of login contexts on ``host``, as one of the fleet's login users; closed after the test."""
    opened = []

    def connect(user: str = hosts.USER, **options) -> fanout.Context:
        context = fanout.connect(host.address, name=host.name, **host.connect_options(user=user), **options)
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


SERVICES = """
import os
from fanout import service


class Whoami(service.Service):
    @service.expose(service.AllowParents())
    def uid(self):
        return os.getuid()


def ask_master(name):
    import fanout

    return fanout.parent().call_service(name, "hello", who=os.getuid())
"""


class Greeter(service.Service):
    name = "tests.become.Greeter"

    @service.expose(service.AllowAny())
    def hello(self, who):
        return f"hello {who}"


def root_exec(fleet, host: hosts.FleetHost, command: str, *, prints: bool = True) -> str:
    """A command's output, run as root on the host through ``docker exec`` (no login involved)."""
    return hosts._exec(fleet.client.containers.get(host.container), ["sh", "-c", command], prints=prints)


def kill(fleet, host: hosts.FleetHost, pid: int) -> None:
    root_exec(fleet, host, f"kill -9 {pid}", prints=False)  # once: asked again, it would find no such process


PROCESSES = r"""python3 -c '
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open("/proc/%s/cmdline" % pid, "rb").read()
    except OSError:
        continue
    try:
        env = open("/proc/%s/environ" % pid, "rb").read()
    except OSError:
        env = b""  # not owned by root, docker gives root no ptrace right; sudo, su, doas run as root
    secret = bytes.fromhex("@SECRET@") in cmd + env
    print(pid, "fanout" if b"fanout_stage1" in cmd else "-", "SECRET" if secret else "-")
print("end")
'"""


def processes(fleet, host, secret: str = "no such secret") -> dict[int, tuple[bool, bool]]:
    """Every process on the host: is it a fanout child, do its arguments or environment hold ``secret``."""
    lines = root_exec(fleet, host, PROCESSES.replace("@SECRET@", secret.encode().hex())).splitlines()
    assert lines[-1] == "end"
    return {
        int(pid): (kind == "fanout", found == "SECRET") for pid, kind, found in (line.split() for line in lines[:-1])
    }


def wait_until_gone(fleet, host, pids: set[int]) -> None:
    """Wait (on the host's process table) until none of ``pids`` runs."""
    wait_until(
        lambda: not pids & set(processes(fleet, host)),
        what=f"the end of processes {sorted(pids)} on {host.name}",
        state=lambda: f"still running: {sorted(pids & set(processes(fleet, host)))}",
    )


def test_the_password_is_never_in_a_process_argument_or_environment(login, fleet, host):
    context = login()
    root = context.become("root", password=hosts.TESTER_PASSWORD)
    waiting = root.call_async(time.sleep, 30)
    assert root.call(os.getuid) == 0
    seen = processes(fleet, host, hosts.TESTER_PASSWORD)
    assert root.pid in seen and seen[root.pid][0]
    assert not [pid for pid, (_, secret) in seen.items() if secret]
    assert hosts.TESTER_PASSWORD not in repr(root) + repr(root._transport.plan)
    root.close()
    with pytest.raises(fanout.ConnectionLost):
        waiting.result(timeout=30)


def test_a_become_child_killed_mid_call_fails_its_calls_and_spares_the_login(login, fleet, host):
    context = login(hosts.NOPASS_USER)
    root = context.become("root")
    waiting = root.call_async(time.sleep, 60)
    kill(fleet, host, root.pid)
    with pytest.raises(fanout.ConnectionLost, match="ended"):
        waiting.result(timeout=30)
    with pytest.raises(fanout.ConnectionLost):
        root.call(os.getuid)
    assert context.call(os.getpid) == context.pid
    assert context.become("root").call(os.getuid) == 0  # and it can become again


def test_no_become_child_outlives_its_login_child(login, fleet, host):
    context = login(hosts.NOPASS_USER)
    root = context.become("root")
    app = root.become(hosts.APP_USER)
    pids = {root.pid, app.pid}
    assert pids <= set(processes(fleet, host))
    kill(fleet, host, context.pid)
    wait_until_gone(fleet, host, pids)
    with pytest.raises(fanout.ConnectionLost):
        app.call(os.getuid)


def test_closing_the_login_context_leaves_no_process(login, fleet, host, probe):
    context = login()
    root = context.become("root", password=hosts.TESTER_PASSWORD)
    app = root.become(hosts.APP_USER, method="su", password=hosts.APP_PASSWORD)
    assert app.call(probe.whoami) == hosts.APP_USER
    pids = {context.pid, root.pid, app.pid}
    context.close()
    with pytest.raises(fanout.ConnectionLost):
        app.call(os.getuid)
    wait_until_gone(fleet, host, pids)
    assert not [pid for pid, (fanout_child, _) in processes(fleet, host).items() if fanout_child and pid in pids]


def test_modules_cross_the_connection_once_per_host(login, user_modules):
    import importlib
    import secrets

    blob = secrets.token_hex(20000)  # 40,000 characters that do not compress below ~20 KB
    suffix = user_modules({"big_{s}.py": f"BLOB = {blob!r}\n\n\ndef size():\n    return len(BLOB)\n"})
    size = importlib.import_module(f"big_{suffix}").size
    context = login(hosts.NOPASS_USER)
    assert context.become("root").call(size) == 40000  # the module only the master has, imported as root
    before = context.stats["bytes_sent"]
    assert context.become(hosts.APP_USER).call(size) == 40000
    assert context.call(size) == 40000  # and the login child itself holds it
    assert context.stats["bytes_sent"] - before < 2000  # the open, the config and two calls: not the module again


def test_services_in_a_become_context(login, user_modules):
    import importlib

    suffix = user_modules({"become_services_{s}.py": SERVICES})
    module = importlib.import_module(f"become_services_{suffix}")
    root = login(hosts.NOPASS_USER).become("root")
    assert root.call_service(module.Whoami, "uid") == 0
    with service.Pool(2, services=[Greeter()]).serve_children():
        assert root.call(module.ask_master, Greeter.name) == "hello 0"  # fanout.parent() reaches the master


def test_fleet_become_runs_puts_and_calls_as_root(fleet, host, tmp_path, probe):
    options = {**host.connect_options(user=hosts.NOPASS_USER), "host": host.address}
    config = tmp_path / "app.conf"
    config.write_text("listen 80\n")
    with fanout.Fleet({host.name: options}, echo=False) as the_fleet:
        root = the_fleet.become("root")
        assert the_fleet.become("root") is root  # kept
        ran = root.run("id -u; touch /etc/fanout-become-test")[host.name]
        assert ran.ok and ran.value.stdout.strip() == "0", ran
        put = root.put(config, "/etc/fanout-become.conf", mode=0o640, owner="root", group=hosts.APP_USER)[host.name]
        assert put.ok, put
        assert root.call(probe.whoami)[host.name].value == "root"
        assert the_fleet.call(probe.whoami)[host.name].value == hosts.NOPASS_USER  # the login fleet is itself
        with root:
            pass  # leaving a become fleet's block keeps its contexts
        assert root.call(os.getuid)[host.name].value == 0
    client = ssh_client(host)  # a separate SSH session, as the login user, checks what root left
    try:
        status, owners, _ = run(client, "stat -c '%U %G %a' /etc/fanout-become-test /etc/fanout-become.conf")
    finally:
        client.close()
    assert status == 0 and owners.splitlines() == ["root root 644", f"root {hosts.APP_USER} 640"]
    assert root_exec(fleet, host, "cat /etc/fanout-become.conf") == "listen 80"


def test_fleet_become_per_host_options_and_failures(fleet, host):
    good = {**host.connect_options(user=hosts.NOPASS_USER), "host": host.address}
    wrong = {**host.connect_options(), "host": host.address, "become": {"password": "not-it-42"}}
    inventory_like = {**host.connect_options(user=hosts.NOPASS_USER), "host": host.address, "become": {"enabled": True}}
    with fanout.Fleet({"good": good, "wrong": wrong, "enabled": inventory_like}, echo=False) as the_fleet:
        assert the_fleet.call(os.getuid)["enabled"].value == 0  # enabled by the host's own options
        results = the_fleet.become("root").call(os.getuid)
        assert results["good"].value == 0
        assert results["wrong"].status == "auth-failed"
        assert "wrong" in results.failed and "wrong" not in results.unreachable  # reached: refused there
        assert str(results["wrong"].error) == "sudo refused the password for tester on wrong"
        assert "not-it-42" not in repr(results) + repr(the_fleet.hosts)


def test_a_module_asked_for_by_several_become_contexts_at_once_is_asked_of_the_master_once(login, user_modules):
    import importlib

    suffix = user_modules(
        {
            "lazy_{s}.py": """
                import importlib


                def load():  # the name is made at run time: the master cannot send it ahead
                    return importlib.import_module("other_" + "{s}").VALUE
            """,
            "other_{s}.py": "VALUE = 42\n",
        }
    )
    load = importlib.import_module(f"lazy_{suffix}").load
    context = login(hosts.NOPASS_USER, allow_modules=[f"other_{suffix}"])
    contexts = [context.become("root"), context.become(hosts.APP_USER), context.become("root")]
    for become in contexts:
        assert become.call(os.getpid) == become.pid  # all started
    before = context.stats["module_requests"]
    waiting = [become.call_async(load) for become in contexts]
    assert [future.result(timeout=60) for future in waiting] == [42, 42, 42]
    assert context.stats["module_requests"] - before == 1  # by the login child, for all three
