"""Become variables of an inventory (``ansible_become*``): read as ansible-core reads them, refused when fanout
cannot honour them, and the become password never shown."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout import _ansible_vars, _become
from fanout.inventory import BecomeOptions, Inventory, InventoryError
from tests.fleet.ansible import clean_env, executable

SECRET = "pw-Zq7!x"  # a become password: no error, repr or message may show it


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, name: str = "hosts") -> Inventory:
    return Inventory.load(write(tmp_path, name, text))


def become_of(tmp_path: Path, line: str) -> dict | None:
    """The become options of host ``h`` given the INI variables ``line``."""
    return load(tmp_path, f"h {line}\n", "hosts.ini").connect_options("h").get("become")


# ---------------------------------------------------------------------------------------------- what is read


def test_every_become_variable(tmp_path):
    inv = load(
        tmp_path,
        f"""\
        full ansible_become=true ansible_become_user=app ansible_become_method=su ansible_become_password={SECRET}
        full ansible_become_exe=/usr/bin/su ansible_become_flags="-l -s /bin/sh"
        plain ansible_user=deploy
        switched ansible_become=yes
        """,
    )
    assert inv.connect_options("full")["become"] == {
        "enabled": True,
        "user": "app",
        "method": "su",
        "password": SECRET,
        "exe": "/usr/bin/su",
        "flags": "-l -s /bin/sh",
    }
    assert "become" not in inv.connect_options("plain")  # nothing set: nothing for Fleet to read
    assert inv.connect_options("switched")["become"] == {"enabled": True}  # the rest are Fleet's defaults
    assert isinstance(inv.connect_options("full")["become"], BecomeOptions)


def test_options_without_the_switch_are_kept_but_not_enabled(tmp_path):
    """As in Ansible, ansible_become_user alone does not turn become on: -b (or Fleet.become) uses it."""
    assert become_of(tmp_path, "ansible_become_user=app") == {"enabled": False, "user": "app"}


def test_fanout_forms_win_over_ansibles(tmp_path):
    line = (
        "ansible_become=false fanout_become=true ansible_become_user=a fanout_become_user=b"
        " ansible_become_method=su fanout_become_method=doas ansible_become_pass=x fanout_become_password=y"
        " ansible_become_exe=/a fanout_become_exe=/b ansible_become_flags=-a fanout_become_flags=-b"
    )
    assert become_of(tmp_path, line) == {
        "enabled": True,
        "user": "b",
        "method": "doas",
        "password": "y",
        "exe": "/b",
        "flags": "-b",
    }


@pytest.mark.parametrize(
    "line, password",
    [
        ("ansible_become_password=first ansible_become_pass=second", "second"),
        ("ansible_become_pass=second ansible_become_password=first", "second"),  # order on the line is no matter
        ("ansible_become_password=first", "first"),
        ("ansible_become_pass=second ansible_sudo_pass=third", "third"),  # sudo (the default method) reads its own
        ("ansible_become_method=su ansible_become_pass=second ansible_sudo_pass=third", "second"),
        ("ansible_become_method=su ansible_become_pass=second ansible_su_pass=third", "third"),
        ("ansible_become_method=doas ansible_doas_pass=third ansible_become_password=first", "third"),
    ],
)
def test_which_password_wins_as_in_ansible_core(tmp_path, line, password):
    """ansible-core's become plugins take the LAST of their variables that is set (its config manager's rule):
    ansible_become_pass over ansible_become_password, and the method's own legacy name over both
    (test_the_same_answers_as_ansible_core holds this to ansible-core itself)."""
    assert become_of(tmp_path, line)["password"] == password


@pytest.mark.parametrize(
    "line, user",
    [
        ("ansible_become_user=a ansible_sudo_user=b", "b"),
        ("ansible_become_method=su ansible_become_user=a ansible_sudo_user=b", "a"),  # sudo's name, not su's
        ("ansible_become_method=su ansible_become_user=a ansible_su_user=c", "c"),
        ("ansible_become_method=doas ansible_doas_user=d", "d"),
    ],
)
def test_legacy_per_method_names_count_for_their_method_only(tmp_path, line, user):
    assert become_of(tmp_path, line)["user"] == user


def test_legacy_exe_and_flags(tmp_path):
    become = become_of(tmp_path, "ansible_sudo_exe=/opt/sudo ansible_sudo_flags=-E ansible_become=1")
    assert become == {"enabled": True, "exe": "/opt/sudo", "flags": "-E"}


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "yes", "Yes", "on", "ON", "1", "y", "t", "1.0", "' yes '"])
def test_true_forms_in_ini(tmp_path, value):
    assert become_of(tmp_path, f"ansible_become={value}")["enabled"] is True


@pytest.mark.parametrize("value", ["false", "False", "no", "NO", "off", "0", "n", "f", "0.0"])
def test_false_forms_in_ini(tmp_path, value):
    assert become_of(tmp_path, f"ansible_become={value}")["enabled"] is False


@pytest.mark.parametrize(
    "value, enabled",
    [("true", True), ("yes", True), ("'on'", True), ("1", True), ("false", False), ("no", False), ("0", False)],
)
def test_forms_in_yaml(tmp_path, value, enabled):
    inv = load(tmp_path, f"all:\n  hosts:\n    h:\n      ansible_become: {value}\n", "hosts.yml")
    assert inv.connect_options("h")["become"] == {"enabled": enabled}
    assert inv.become_enabled("h") is enabled


@pytest.mark.parametrize(
    "value", ["maybe", "2", "-1", "'yess'", "[1]", "\"{'a': 1}\"", "0.5", "nan", "'{{ do_become }}'", "''"]
)
def test_a_bad_boolean_names_the_host_and_variable(tmp_path, value):
    with pytest.raises(InventoryError, match=r"host 'h': ansible_become must be a boolean \(true or false"):
        become_of(tmp_path, f"ansible_become={value} ansible_become_password={SECRET}")


@pytest.mark.parametrize("method", ["runas", "pbrun", "enable", "machinectl", "dzdo", "ksu", "SUDO", "sudo "])
def test_an_unsupported_method_names_host_variable_and_methods(tmp_path, method):
    with pytest.raises(InventoryError) as caught:
        become_of(tmp_path, f"ansible_become_method={method!r} ansible_become_password={SECRET}")
    message = str(caught.value)
    assert message.startswith(f"host 'h': ansible_become_method is {method!r}, a become method fanout does not have")
    assert "sudo, su, doas" in message and SECRET not in message


def test_an_unsupported_method_is_refused_even_when_become_is_off(tmp_path):
    """Never ignored: -b on the command line would otherwise pick it up."""
    with pytest.raises(InventoryError, match="runas"):
        become_of(tmp_path, "ansible_become=no ansible_become_method=runas")


@pytest.mark.parametrize(
    "line, complaint",
    [
        ("ansible_sudo=true", "ansible_sudo is not supported: Ansible no longer reads it either: use ansible_become"),
        ("ansible_su=yes", "ansible_su is not supported: Ansible no longer reads it either: use ansible_become"),
        ("ansible_sudo_chdir=/tmp", "ansible_sudo_chdir is not supported: fanout does not change directory"),
        ("ansible_become_usr=root", "does not know the become variable 'ansible_become_usr' (a typo?)"),
        ("fanout_become_passwd=x", "does not know the become variable 'fanout_become_passwd'"),
        ("ansible_sudo_password=x", "does not know the become variable 'ansible_sudo_password'"),
        ("ansible_doas_timeout=3", "does not know the become variable 'ansible_doas_timeout'"),
    ],
)
def test_become_variables_fanout_cannot_honour_are_refused(tmp_path, line, complaint):
    with pytest.raises(InventoryError) as caught:
        become_of(tmp_path, f"{line} ansible_become_password={SECRET}")
    assert str(caught.value).startswith("host 'h': ") and complaint in str(caught.value)
    assert SECRET not in str(caught.value)


def test_localized_prompts_need_no_setting(tmp_path):
    """fanout takes any prompt line ending in a colon for su's and doas's: these variables are met, not ignored."""
    line = "ansible_become_method=su ansible_su_prompt_l10n=\"['Passwort']\" ansible_doas_prompt_l10n=\"['Mot']\""
    assert become_of(tmp_path, line) == {"enabled": False, "method": "su"}


def test_none_is_unset(tmp_path):
    inv = load(tmp_path, "all:\n  hosts:\n    h:\n      ansible_sudo: null\n      ansible_become: null\n", "h.yml")
    assert "become" not in inv.connect_options("h") and inv.become_enabled("h") is None


def test_group_vars_are_inherited_and_overridden(tmp_path):
    write(tmp_path, "group_vars/all.yml", "ansible_become_method: su\nansible_become_password: from-all\n")
    write(tmp_path, "group_vars/web.yml", "ansible_become_user: web-user\n")
    inv = load(
        tmp_path,
        """\
        [web]
        w1
        w2 ansible_become_user=own ansible_become=false
        [db]
        d1
        [web:vars]
        ansible_become=true
        [all:vars]
        ansible_become_exe=/usr/bin/su
        """,
    )
    assert inv.connect_options("w1")["become"] == {
        "enabled": True,
        "user": "web-user",
        "method": "su",
        "password": "from-all",
        "exe": "/usr/bin/su",
    }
    assert inv.connect_options("w2")["become"]["enabled"] is False
    assert inv.connect_options("w2")["become"]["user"] == "own"
    assert inv.connect_options("d1")["become"] == {
        "enabled": False,
        "method": "su",
        "password": "from-all",
        "exe": "/usr/bin/su",
    }
    assert [inv.become_enabled(name) for name in ("w1", "w2", "d1")] == [True, False, None]


def test_the_implicit_localhost_takes_the_all_groups_become(tmp_path):
    """ansible-core runs its implicit localhost through the all group's ansible_become (checked against it below)."""
    inv = load(tmp_path, "[web]\nw1 ansible_become_user=only-w1\n[all:vars]\nansible_become=true\n")
    assert inv.fleet_hosts("localhost") == {"localhost": {"connection": "local", "become": {"enabled": True}}}
    assert inv.become_enabled("localhost") is True
    assert load(tmp_path / "other", "w1\n").fleet_hosts("localhost") == {"localhost": {"connection": "local"}}


@pytest.mark.parametrize(
    "line, complaint",
    [
        ("ansible_become_user='a b'", "become user 'a b' is not a valid user name"),
        ("ansible_become_user=-r", "become user must be a user name"),
        ('ansible_become_flags="\'-E"', 'become flags "\'-E" are not valid shell words'),
        ("ansible_become_exe=[1]", "ansible_become_exe must be a string, got [1]"),
        ("ansible_become_user=True", "ansible_become_user must be a string, got True"),
        ("ansible_become_user='{{ app_user }}'", "ansible_become_user is a Jinja2 template, which fanout does not"),
        ("ansible_become_password='{{ vault_pw }}'", "ansible_become_password is a Jinja2 template"),
        ("ansible_become_password=[1,2]", "ansible_become_password must be a string, got list"),
        ("ansible_become_flags=\"{'a': 1}\"", "ansible_become_flags must be a string or a list of strings"),
    ],
)
def test_bad_values_are_refused_naming_the_host(tmp_path, line, complaint):
    with pytest.raises(InventoryError) as caught:
        become_of(tmp_path, line)
    assert str(caught.value).startswith("host 'h': ") and complaint in str(caught.value)
    assert "vault_pw" not in str(caught.value)  # a password variable's value is never shown, template or not


def test_values_ini_reads_as_numbers_are_strings_and_yaml_flags_may_be_a_list(tmp_path):
    assert become_of(tmp_path, "ansible_become_user=1000 ansible_become_password=1234")["password"] == "1234"
    inv = load(tmp_path, "all:\n  hosts:\n    h:\n      ansible_become_flags: [-E, -H]\n", "h.yml")
    assert inv.connect_options("h")["become"]["flags"] == ("-E", "-H")


def test_a_template_is_sent_as_it_is_through_fanout_become_password(tmp_path):
    assert become_of(tmp_path, "fanout_become_password='{{literally}}'")["password"] == "{{literally}}"


# ---------------------------------------------------------------------------------------------- the password


def test_the_password_is_in_no_repr(tmp_path):
    inv = load(tmp_path, f"h ansible_become=yes ansible_become_password={SECRET}\n")
    options = inv.connect_options("h")
    assert options["become"]["password"] == SECRET  # there, for Fleet to type at the prompt
    for shown in (repr(options), str(options), repr(inv.fleet_hosts("all")), repr(options["become"].copy())):
        assert SECRET not in shown and "'password': <hidden>" in shown


def test_a_yaml_password_that_sudo_could_not_be_typed_is_refused_without_showing_it(tmp_path):
    inv = load(tmp_path, f"all:\n  hosts:\n    h:\n      ansible_become_password: |\n        {SECRET}\n", "h.yml")
    with pytest.raises(InventoryError) as caught:
        inv.connect_options("h")
    assert "cannot hold a line break" in str(caught.value) and SECRET not in str(caught.value)
    assert SECRET not in "".join(traceback.format_exception(caught.value))


_VARIABLES = st.sampled_from(
    [
        "ansible_become",
        "ansible_become_user",
        "ansible_become_method",
        "ansible_become_password",
        "ansible_become_pass",
        "ansible_become_exe",
        "ansible_become_flags",
        "ansible_sudo_pass",
        "ansible_su_pass",
        "fanout_become",
        "fanout_become_password",
        "ansible_sudo",
        "ansible_become_foo",
    ]
)
_VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["yes", "no", "sudo", "su", "doas", "runas", "root", "-E", "{{ x }}", "a\nb", "\0"]),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(_VARIABLES, _VALUES, max_size=6),
    st.sampled_from(["ansible_become_password", "fanout_become_password", "ansible_become_pass"]),
)
def test_any_values_give_options_or_an_inventory_error_never_showing_the_password(variables, password_variable):
    variables = {**variables, password_variable: SECRET}
    try:
        options = _ansible_vars.become("h", variables)
    except InventoryError as exc:
        assert str(exc).startswith("host 'h': ")
        assert SECRET not in str(exc) and SECRET not in repr(exc)
        return
    assert isinstance(options, BecomeOptions) and SECRET not in repr(options)
    assert set(options) <= {"enabled", "user", "method", "password", "exe", "flags"}
    assert isinstance(options["enabled"], bool)
    _become.plan(  # what Fleet will do with them works
        options.get("method", "sudo"),
        options.get("user", "root"),
        **{key: options[key] for key in ("password", "exe", "flags") if key in options},
    )


# ---------------------------------------------------------------------------------------------- ansible-core


FAKE_BECOME = """\
#!{python}
# Stands in for sudo or su: says what it was asked, takes the password at the prompt, then runs the command.
import json, os, sys
args = sys.argv[1:]
typed = None
if "-p" in args or "-S" not in args and "-c" in args:  # sudo -S -p PROMPT, or su USER -c CMD
    sys.stdout.write(args[args.index("-p") + 1] if "-p" in args else "Password: ")
    sys.stdout.flush()
    typed = sys.stdin.readline().rstrip("\\n")
with open(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "seen.json"), "w") as f:
    json.dump({{"exe": sys.argv[0], "args": args, "password": typed}}, f)
shell = next((i for i, a in enumerate(args) if a == "/bin/sh"), None)
os.execv("/bin/sh", args[shell:] if shell is not None else ["/bin/sh", "-c", args[-1]])
"""


def _fake(root: Path, name: str) -> str:
    path = root / name / "become"
    path.parent.mkdir(parents=True)
    path.write_text(FAKE_BECOME.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


@pytest.mark.fleet  # starts ansible-core: seconds, not the fast subset
def test_the_same_answers_as_ansible_core(tmp_path):
    """Each host's user, password, program and flags, as ansible-core's become plugins take them from the same
    inventory: a stand-in for sudo or su records what ansible-core asked of it."""
    me = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    fake = {name: _fake(tmp_path, name) for name in ("p1", "p2", "s1", "s2", "f1", "e1", "e2", "off", "localhost")}
    hosts = {
        "p1": f"ansible_become_password=first ansible_become_pass=second ansible_become_exe={fake['p1']}",
        "p2": f"ansible_become_pass=second ansible_sudo_pass=third ansible_sudo_exe={fake['p2']}",
        "s1": f"ansible_become_method=su ansible_su_pass=su-pw ansible_sudo_pass=no ansible_su_exe={fake['s1']}",
        "s2": f"ansible_become_method=su ansible_become_password=b-pw ansible_become_exe={fake['s2']}",
        "f1": f"ansible_become=on ansible_become_flags='-E -H' ansible_become_pass=x ansible_become_exe={fake['f1']}",
        "e1": f"ansible_become_exe=/not/this ansible_sudo_exe={fake['e1']} ansible_become_pass=x",
        "e2": f"ansible_sudo_user=nobody-at-all ansible_become_user={me} ansible_become_method=su"
        f" ansible_su_pass=x ansible_become_exe={fake['e2']}",
        "off": f"ansible_become=no ansible_become_exe={fake['off']}",
    }
    lines = ["[t]", *(f"{name} {variables}" for name, variables in hosts.items())]
    python = sys.executable
    lines += ["[all:vars]", "ansible_connection=local", f"ansible_python_interpreter={python}", "ansible_become=1"]
    lines += [f"ansible_become_user={me}", f"ansible_become_exe={fake['localhost']}", "ansible_become_pass=lh"]
    (tmp_path / "hosts").write_text("\n".join(lines) + "\n")
    env = {**clean_env(tmp_path), "ANSIBLE_BECOME_ALLOW_SAME_USER": "true"}  # the stand-in runs as this user
    for pattern in ("t", "localhost"):
        done = subprocess.run(
            [executable("ansible"), pattern, "-i", "hosts", "-m", "command", "-a", "true", "--forks", "10"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    inv = Inventory.load(tmp_path / "hosts")
    for name, options in {**inv.fleet_hosts("t"), **inv.fleet_hosts("localhost")}.items():
        become = options["become"]
        seen_file = Path(fake[name]).parent / "seen.json"
        assert seen_file.exists() == become["enabled"], name  # ran through become in both, or in neither
        if not become["enabled"]:
            continue
        seen = json.loads(seen_file.read_text())
        assert seen["exe"] == become.get("exe", seen["exe"]), name
        assert seen["password"] == become["password"], name
        method = become.get("method", "sudo")
        user = seen["args"][seen["args"].index("-u") + 1] if method == "sudo" else seen["args"][-3]
        assert user == become.get("user", "root"), name
        if "flags" in become:
            assert seen["args"][: len(shlex.split(become["flags"]))] == shlex.split(become["flags"]), name
