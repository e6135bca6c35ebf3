"""fanout.inventory against the examples of Ansible's inventory documentation."""

from __future__ import annotations

import datetime
import json
import re
import string
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout import _inventory_cli
from fanout.inventory import Inventory, InventoryError
from tests.fleet.inventory_examples import BASIC_INI, BASIC_YAML

GEO_INI = """\
[atlanta]
host1
host2

[raleigh]
host2
host3

[southeast:children]
atlanta
raleigh

[southeast:vars]
some_server=foo.southeast.example.com
halon_system_timeout=30
self_destruct_countdown=60
escape_pods=2

[usa:children]
southeast
northeast

[northeast]
host4

[atlanta:vars]
escape_pods=3

[all:vars]
escape_pods=1
ntp_server=ntp.example.com
"""

GEO_YAML = """\
all:
  vars:
    escape_pods: 1
    ntp_server: ntp.example.com
  children:
    usa:
      children:
        southeast:
          vars:
            some_server: foo.southeast.example.com
            halon_system_timeout: 30
            self_destruct_countdown: 60
            escape_pods: 2
          children:
            atlanta:
              hosts:
                host1:
                host2:
              vars:
                escape_pods: 3
            raleigh:
              hosts:
                host2:
                host3:
        northeast:
          hosts:
            host4:
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def load(tmp_path, text, name="hosts"):
    return Inventory.load(write(tmp_path, name, text))


# ------------------------------------------------------------------------------------------------- groups, membership


def test_basic_ini_groups_and_order(tmp_path):
    inv = load(tmp_path, BASIC_INI)
    assert inv.hosts() == [
        "mail.example.com",
        "foo.example.com",
        "bar.example.com",
        "one.example.com",
        "two.example.com",
        "three.example.com",
    ]
    assert inv.hosts("webservers") == ["foo.example.com", "bar.example.com"]
    assert inv.groups["ungrouped"].hosts == ["mail.example.com"]
    assert inv.hosts("ungrouped") == ["mail.example.com"]
    assert set(inv.groups["all"].children) == {"ungrouped", "webservers", "dbservers"}
    assert inv.groups["dbservers"].hosts == ["one.example.com", "two.example.com", "three.example.com"]


def test_ini_and_yaml_agree(tmp_path):
    for ini, yml in ((BASIC_INI, BASIC_YAML), (GEO_INI, GEO_YAML)):
        a = load(tmp_path, ini, "a/hosts")
        b = load(tmp_path, yml, "b/hosts.yml")
        assert a.hosts() == b.hosts()
        assert set(a.groups) == set(b.groups)
        for g in a.groups:
            assert a.hosts(g) == b.hosts(g), g
            assert sorted(a.groups[g].children) == sorted(b.groups[g].children), g
        for h in a.hosts():
            assert a.host_vars(h) == b.host_vars(h), h


def test_children_membership(tmp_path):
    inv = load(tmp_path, GEO_INI)
    assert inv.hosts("southeast") == ["host1", "host2", "host3"]
    assert inv.hosts("usa") == ["host4", "host1", "host2", "host3"]  # breadth first: northeast before atlanta
    assert inv.groups["usa"].children == ["southeast", "northeast"]
    assert inv.groups["southeast"].hosts == []
    assert inv.hosts("ungrouped") == []
    assert inv.groups["all"].children == ["ungrouped", "usa"]


def test_ungrouped_host_moved_out_when_grouped_later(tmp_path):
    inv = load(tmp_path, "alpha\nbeta\n[g]\nalpha\n")
    assert inv.hosts("ungrouped") == ["beta"]
    assert inv.hosts("g") == ["alpha"]
    yinv = load(tmp_path, "all:\n  hosts:\n    solo:\n", "x.yaml")
    assert yinv.hosts("ungrouped") == ["solo"]


# ------------------------------------------------------------------------------------------------------------ ranges


def test_ranges(tmp_path):
    inv = load(
        tmp_path,
        """\
        [webservers]
        www[01:50].example.com
        [odd]
        www[01:50:2].example.com
        [databases]
        db-[a:f].example.com
        [plain]
        h[8:11]
        [grid]
        r[1:2]c[a:b]
        """,
    )
    web = inv.hosts("webservers")
    assert len(web) == 50 and web[0] == "www01.example.com" and web[-1] == "www50.example.com"
    assert inv.hosts("odd")[:3] == ["www01.example.com", "www03.example.com", "www05.example.com"]
    assert len(inv.hosts("odd")) == 25 and inv.hosts("odd")[-1] == "www49.example.com"
    assert inv.hosts("databases") == [f"db-{c}.example.com" for c in "abcdef"]
    assert inv.hosts("plain") == ["h8", "h9", "h10", "h11"]
    assert inv.hosts("grid") == ["r1ca", "r1cb", "r2ca", "r2cb"]


def test_yaml_ranges_and_port(tmp_path):
    inv = load(
        tmp_path, "all:\n  children:\n    web:\n      hosts:\n        'web[1:3]:2222':\n          a: 1\n", "i.yml"
    )
    assert inv.hosts("web") == ["web1", "web2", "web3"]
    assert inv.host_vars("web2") == {"a": 1, "ansible_port": 2222}


@pytest.mark.parametrize("bad", ["h[5:1]", "h[a:9]", "h[01:100]", "h[1:5:0]", "h[1:2:3:4]", "h[1:]"])
def test_bad_ranges(tmp_path, bad):
    with pytest.raises(InventoryError) as ei:
        load(tmp_path, f"[g]\nok\n{bad}\n")
    assert f"{tmp_path / 'hosts'}:3:" in str(ei.value)


# --------------------------------------------------------------------------------------------------------- variables


def test_inline_values_parsed_like_ansible(tmp_path):
    inv = load(
        tmp_path,
        """\
        host1 ansible_port=2222 foo="a b" i=5 f=1.5 t=True n=None l="[1, 'x']" d="{'k': 2}" s=FALSE q="'03'" # c
        web1:2200 ansible_user=deploy
        [g]
        host1
        [g:vars]
        x = 42
        y = hello world
        """,
    )
    v = inv.host_vars("host1")
    assert v["ansible_port"] == 2222 and v["foo"] == "a b" and v["i"] == 5 and v["f"] == 1.5
    assert v["t"] is True and v["n"] is None and v["l"] == [1, "x"] and v["d"] == {"k": 2}
    assert v["s"] == "FALSE" and v["q"] == "03"
    assert v["x"] == 42 and v["y"] == "hello world"
    assert inv.host_vars("web1") == {"ansible_port": 2200, "ansible_user": "deploy"}


def test_literals_ansible_core_turns_into_strings_and_lists(tmp_path):
    inv = load(tmp_path, 'h e=... c=1j s="{1}" t="(1, \'a\')" b="b\'x\'"\n')
    assert inv.host_vars("h") == {"e": "...", "c": "1j", "s": [1], "t": [1, "a"], "b": "x"}  # as ansible-core 2.19


def test_a_mapping_set_again_replaces_it(tmp_path):
    # ansible-core's default hash_behaviour=replace: no merge of the two mappings, for hosts and groups alike
    inv = load(tmp_path, "[a]\nh d=\"{'k': 1, 'j': 2}\"\n[b]\nh d=\"{'k': 3}\"\n[a:vars]\nm={'x': 1}\nm={'y': 2}\n")
    assert inv.host_vars("h") == {"d": {"k": 3}, "m": {"y": 2}}


def test_port_comes_from_where_the_host_first_appears(tmp_path):
    inv = load(tmp_path, "[a]\nh\nh2:2200\n[b]\nh:2222\nh2:2201\n[c]\nh2 ansible_port=2300\n")
    assert inv.host_vars("h") == {}  # as ansible-core: a later host:port is ignored
    assert inv.host_vars("h2") == {"ansible_port": 2300}  # a variable still overrides


def test_precedence_host_child_parent_all(tmp_path):
    inv = load(tmp_path, GEO_INI)
    v1 = inv.host_vars("host1")
    assert v1["escape_pods"] == 3  # atlanta (child) over southeast (parent) over all
    assert v1["ntp_server"] == "ntp.example.com" and v1["halon_system_timeout"] == 30
    assert inv.host_vars("host3")["escape_pods"] == 2
    assert inv.host_vars("host4")["escape_pods"] == 1
    inv2 = load(tmp_path, GEO_INI.replace("[atlanta]\nhost1", "[atlanta]\nhost1 escape_pods=9"), "h2")
    assert inv2.host_vars("host1")["escape_pods"] == 9


def test_same_depth_alphabetical_and_group_priority(tmp_path):
    text = "[b]\nh\n[a]\nh\n[a:vars]\nx=a\n[b:vars]\nx=b\n"
    assert load(tmp_path, text).host_vars("h")["x"] == "b"  # b sorts after a, so it wins
    text += "[a:vars]\nansible_group_priority=10\n"
    inv = load(tmp_path, text, "h2")
    assert inv.host_vars("h")["x"] == "a"
    assert "ansible_group_priority" not in inv.host_vars("h")


def test_group_vars_and_host_vars_files(tmp_path):
    write(tmp_path, "inv/hosts", GEO_INI)
    write(tmp_path, "inv/group_vars/all.yml", "ntp_server: ntp.files\nfrom_all: 1\nescape_pods: 100\n")
    write(tmp_path, "inv/group_vars/southeast", "escape_pods: 20\nse: true\n")
    write(tmp_path, "inv/group_vars/atlanta/10-a.yml", "escape_pods: 30\nlayer: a\n")
    write(tmp_path, "inv/group_vars/atlanta/20-b.json", '{"layer": "b"}')
    write(tmp_path, "inv/host_vars/host1.yaml", "escape_pods: 99\nansible_host: 10.0.0.1\n")
    inv = Inventory.load(tmp_path / "inv/hosts")
    v1 = inv.host_vars("host1")
    assert v1["escape_pods"] == 99 and v1["layer"] == "b" and v1["se"] is True and v1["from_all"] == 1
    assert v1["ntp_server"] == "ntp.files"  # group_vars/all beats any group's inventory-file vars
    assert inv.host_vars("host3")["escape_pods"] == 20
    assert inv.host_vars("host4")["escape_pods"] == 100
    assert inv.connect_options("host1")["host"] == "10.0.0.1"


def test_vars_files_picked_as_ansible_core_picks_them(tmp_path):
    write(tmp_path, "inv/hosts", "[g]\nh\n")
    write(tmp_path, "inv/host_vars/h", "which: bare\n")
    write(tmp_path, "inv/host_vars/h.yml", "which: yml\nyml_only: 1\n")  # only the first name found is read
    write(tmp_path, "inv/group_vars/g/a.yml", "a: 1\n")
    write(tmp_path, "inv/group_vars/g/sub/b", "b: 2\n")  # subdirectories are read...
    write(tmp_path, "inv/group_vars/g/sub.d/c.yml", "c: 3\n")  # ...unless their name has an extension
    write(tmp_path, "inv/group_vars/g/notes.txt", "d: 4\n")
    assert Inventory.load(tmp_path / "inv/hosts").host_vars("h") == {"which": "bare", "a": 1, "b": 2}


def test_group_vars_not_a_mapping(tmp_path):
    write(tmp_path, "inv/hosts", BASIC_INI)
    write(tmp_path, "inv/group_vars/webservers.yml", "- a\n- b\n")
    with pytest.raises(InventoryError, match=r"group_vars/webservers\.yml:1: .*mapping"):
        Inventory.load(tmp_path / "inv/hosts")


def test_vars_file_bad_yaml_names_line(tmp_path):
    write(tmp_path, "inv/hosts", BASIC_INI)
    write(tmp_path, "inv/host_vars/foo.example.com", "a: 1\nb: [unclosed\n")
    with pytest.raises(InventoryError, match=r"host_vars/foo\.example\.com:\d+: invalid YAML"):
        Inventory.load(tmp_path / "inv/hosts")


# ------------------------------------------------------------------------------------------------ connection options


def test_connect_options(tmp_path):
    inv = load(
        tmp_path,
        """\
        plain
        a ansible_host=10.0.0.5 ansible_port=2222 ansible_user=u ansible_ssh_private_key_file=/k ansible_password=pw
        b ansible_host=1.1.1.1 fanout_host=2.2.2.2 ansible_port=1 fanout_port="'3'" fanout_user=fu ansible_user=au
        c ansible_python_interpreter=/usr/bin/python3.11 fanout_identity_file=/id fanout_password=fp
        d ansible_python_interpreter=auto_silent
        e fanout_python=/opt/py ansible_python_interpreter=/usr/bin/python3
        """,
    )
    assert inv.connect_options("plain") == {"host": "plain"}
    assert inv.connect_options("a") == {
        "host": "10.0.0.5",
        "port": 2222,
        "user": "u",
        "identity_file": "/k",
        "password": "pw",
    }
    assert inv.connect_options("b") == {"host": "2.2.2.2", "port": 3, "user": "fu"}
    assert inv.connect_options("c") == {
        "host": "c",
        "python": "/usr/bin/python3.11",
        "identity_file": "/id",
        "password": "fp",
    }
    assert inv.connect_options("d") == {"host": "d", "python": "auto_silent"}
    assert inv.connect_options("e")["python"] == "/opt/py"


def test_connect_options_for_timeouts_jumps_and_connection_kinds(tmp_path):
    inv = load(
        tmp_path,
        """\
        t ansible_timeout=30 ansible_ssh_timeout=5
        j1 ansible_ssh_common_args='-o ProxyJump=ops@bastion:2222'
        j2 ansible_ssh_extra_args='-J "jump1,jump2"'
        j3 fanout_jump=b1 fanout_jump_identity_file=/jk ansible_ssh_common_args='-J ignored'
        here ansible_connection=local
        smart ansible_connection=smart
        win ansible_connection=winrm
        bad ansible_timeout=soon
        """,
    )
    assert inv.connect_options("t") == {"host": "t", "connect_timeout": 30.0}
    assert inv.connect_options("j1")["ssh_args"] == "-o ProxyJump=ops@bastion:2222"
    assert inv.connect_options("j2")["ssh_args"] == '-J "jump1,jump2"'
    assert inv.connect_options("j3") == {
        "host": "j3",
        "jump": "b1",  # fanout_jump is passed as connect()'s jump, which wins over ssh_args' -J
        "jump_identity_file": "/jk",
        "ssh_args": "-J ignored",
    }
    assert inv.connect_options("here")["connection"] == "local"
    assert "connection" not in inv.connect_options("smart")
    assert inv.connect_options("win")["connection"] == "winrm"
    with pytest.raises(InventoryError, match="host 'bad': timeout must be a number of seconds, got 'soon'"):
        inv.connect_options("bad")
    assert inv.fleet_hosts("localhost") == {"localhost": {"connection": "local"}}
    assert list(inv.fleet_hosts("j*")) == ["j1", "j2", "j3"]


def test_ansible_ssh_connection_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    inv = load(
        tmp_path,
        """\
        both ansible_ssh_common_args='-o StrictHostKeyChecking=no' ansible_ssh_extra_args='-A -p 2200'
        unchecked ansible_host_key_checking=false
        unchecked-ssh ansible_ssh_host_key_checking=no
        checked ansible_host_key_checking=true
        ours-wins ansible_host_key_checking=false fanout_host_key_policy=accept-new
        not-a-bool ansible_host_key_checking=maybe
        bad-args ansible_ssh_common_args='-o NoSuchOption=1'
        """,
    )
    assert inv.connect_options("both")["ssh_args"] == "-o StrictHostKeyChecking=no -A -p 2200"
    assert inv.connect_options("unchecked")["host_key_policy"] == "off"
    assert inv.connect_options("unchecked-ssh")["host_key_policy"] == "off"
    assert "host_key_policy" not in inv.connect_options("checked")  # then ssh_config's StrictHostKeyChecking decides
    assert inv.connect_options("ours-wins")["host_key_policy"] == "accept-new"
    with pytest.raises(InventoryError, match="host 'not-a-bool': ansible_host_key_checking must be a boolean"):
        inv.connect_options("not-a-bool")
    with pytest.raises(InventoryError, match=r"host 'bad-args': ansible_ssh_common_args.*NoSuchOption"):
        inv.connect_options("bad-args")
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    assert inv.connect_options("checked").get("host_key_policy") is None  # the host's own variable wins
    assert inv.connect_options("both")["host_key_policy"] == "off"
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "sometimes")
    with pytest.raises(InventoryError, match="ANSIBLE_HOST_KEY_CHECKING must be a boolean"):
        inv.connect_options("both")


def test_ansible_connection_variables_fanout_does_not_act_on_warn_once(tmp_path, monkeypatch):
    from fanout import _ansible_vars

    monkeypatch.setattr(_ansible_vars, "_warned_connection_vars", set())
    inv = load(
        tmp_path,
        """\
        a ansible_ssh_executable=/opt/ssh ansible_ssh_retries=3
        b ansible_ssh_executable=/opt/ssh
        """,
    )
    with pytest.warns(UserWarning) as warned:
        inv.connect_options("a")
        inv.connect_options("b")
    texts = sorted(str(w.message) for w in warned)
    assert len(texts) == 2
    assert texts[0].startswith("host 'a': ansible_ssh_executable is ignored: fanout speaks SSH itself")
    assert texts[1].startswith("host 'a': ansible_ssh_retries is ignored")


# -------------------------------------------------------------------------------------------------------- patterns


def test_patterns_reach_the_hosts_of_the_file(tmp_path):
    """Patterns themselves are tried on a model in tests/test_inventory_patterns.py; here, through a file."""
    inv = load(tmp_path, "[web]\nweb[1:3]\n[db]\ndb1\nweb2\n[x:children]\nweb\n")
    assert inv.hosts() == ["db1", "web2", "web1", "web3"]  # all's children: db, then x (which holds web)
    assert inv.hosts("x:&db") == ["web2"] and inv.hosts("x[-1]") == ["web3"]
    with pytest.raises(InventoryError, match="invalid host pattern"):
        inv.hosts("~web(")


# ------------------------------------------------------------------------------------------- directories, host lists


def test_directory_inventory(tmp_path):
    write(tmp_path, "inv/01-web", "[web]\nw1\nw2\n")
    write(tmp_path, "inv/02-db.yml", "all:\n  children:\n    db:\n      hosts:\n        d1:\n        w1:\n")
    write(tmp_path, "inv/.hidden", "[hidden]\nnope\n")
    write(tmp_path, "inv/README.md", "not an inventory [\n")
    write(tmp_path, "inv/group_vars/web.yml", "role: web\n")
    write(tmp_path, "inv/host_vars/d1.yml", "ansible_port: 2022\n")
    inv = Inventory.load(tmp_path / "inv")
    # ansible-core's order: all's child groups in order of joining all (the YAML's db joins at once, the INI's
    # web only once every source is read), breadth first; not simply the order of first appearance
    assert inv.hosts() == ["d1", "w1", "w2"]
    assert inv.hosts("db") == ["d1", "w1"]
    assert "hidden" not in inv.groups and "group_vars" not in inv.groups
    assert inv.host_vars("w2") == {"role": "web"}
    assert inv.connect_options("d1") == {"host": "d1", "port": 2022}


def test_directory_reads_ini_files(tmp_path):
    write(tmp_path, "inv/a.ini", "[web]\nw1\n")  # read since ansible-core 2.19 (ansible/ansible#84001)
    write(tmp_path, "inv/b.cfg", "[cfg]\nc1\n")
    assert Inventory.load(tmp_path / "inv").hosts() == ["w1"]


def test_yaml_inventory_without_extension(tmp_path):
    # ansible-core tries its yaml plugin before its ini plugin on a file without an extension
    assert load(tmp_path, GEO_YAML, "a/hosts").hosts("southeast") == ["host1", "host2", "host3"]
    assert load(tmp_path, "host1\nhost2\n", "b/hosts").hosts() == ["host1", "host2"]  # YAML: a string, so INI
    assert load(tmp_path, "# nothing\n", "c/hosts").hosts() == []


def test_ipv6_with_port_in_ini(tmp_path):
    inv = load(tmp_path, "[v6]\n2001:db8::1\n[2001:db8::2]:2222 a=1\n")
    assert inv.hosts("v6") == ["2001:db8::1", "2001:db8::2"]
    assert inv.host_vars("2001:db8::2") == {"ansible_port": 2222, "a": 1}


def test_list_output_shaped_as_ansible_inventorys(tmp_path):
    inv = load(tmp_path, "all:\n  hosts:\n    h:\n      d: 2001-12-14\n      m: {1: a, x: b, null: c}\n", "i.yml")
    document = json.loads(_inventory_cli.dumps(_inventory_cli.listing(inv)))
    assert document["all"] == {"children": ["ungrouped"]}  # all lists no hosts: they are in ungrouped
    assert document["ungrouped"] == {"hosts": ["h"]}
    assert _inventory_cli.graph(inv, "all").splitlines() == ["@all:", "  |--@ungrouped:", "  |  |--h"]
    assert document["_meta"]["hostvars"]["h"] == {"d": "2001-12-14", "m": {"1": "a", "x": "b", "null": "c"}}
    assert json.loads(_inventory_cli.dumps({"t": datetime.datetime(2001, 12, 14, 21, 59), "s": {1}})) == {
        "t": "2001-12-14T21:59:00",
        "s": [1],
    }


def test_comma_separated_host_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inv = Inventory.load("h1, h2:2222,h3,")
    assert inv.hosts() == ["h1", "h2", "h3"]
    assert inv.hosts("ungrouped") == ["h1", "h2", "h3"]
    assert inv.connect_options("h2") == {"host": "h2", "port": 2222}
    assert Inventory.load("solo,").hosts() == ["solo"]
    with pytest.raises(InventoryError, match="no such inventory"):
        Inventory.load("missing-file")


# ------------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("[webservers\nfoo\n", 1, "not a host name"),
        ("[web servers]\nfoo\n", 1, "invalid section header"),
        ("[web:stuff]\nfoo\n", 1, "unknown type"),
        ("[web]\nfoo\n[web:vars]\nfoo\n", 4, "expected key=value"),
        ("[web]\nfoo bar\n", 2, "expected key=value host variable"),
        ('[web]\nfoo a="unclosed\n', 2, "cannot parse host definition"),
        ("[web]\nfoo\n[prod:children]\nweb\nnosuchgroup\n", 5, "undefined group 'nosuchgroup'"),
        ("[prod:children]\nweb extra\n", 2, "expected a group name"),
        ("[ghost:vars]\na=1\n", 1, "undefined group 'ghost'"),
        ("[a:children]\nb\n[b:children]\na\n", 4, "loop"),
        ("[web]\nfoo:\n", 2, "port"),
        ("[web]\nfoo:bar\n", 2, "port"),
    ],
)
def test_bad_ini(tmp_path, text, line, what):
    with pytest.raises(InventoryError) as ei:
        load(tmp_path, text)
    msg = str(ei.value)
    assert msg.startswith(f"{tmp_path / 'hosts'}:{line}: "), msg
    assert what in msg, msg


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("", "empty"),
        ("all: [a, b]\n", "must be a mapping"),
        ("all:\n  hosts: [a]\n", "must be a mapping"),
        ("all:\n  host:\n    a:\n", "unexpected key"),
        ("all:\n  hosts:\n    a: 5\n", "must be a mapping"),
        ("all:\n  children:\n    g:\n      hosts:\n        'x[9:1]':\n", "begin <= end"),
    ],
)
def test_bad_yaml(tmp_path, text, what):
    with pytest.raises(InventoryError) as ei:
        load(tmp_path, text, "inv.yml")
    assert str(ei.value).startswith(f"{tmp_path / 'inv.yml'}: ")
    assert what in str(ei.value)


def test_bad_yaml_syntax_names_line(tmp_path):
    with pytest.raises(InventoryError, match=r"inv\.yaml:4: invalid YAML"):
        load(tmp_path, "all:\n  hosts:\n    a: [1\n  b: 2\n", "inv.yaml")


def test_fanout_only_connection_variables(tmp_path) -> None:
    path = tmp_path / "hosts"
    path.write_text("h1 fanout_known_hosts=/etc/kh fanout_host_key_policy=accept-new\n")
    options = Inventory.load(path).connect_options("h1")
    assert options["known_hosts"] == "/etc/kh" and options["host_key_policy"] == "accept-new"


# ------------------------------------------------------------------------------------------------------ module policy


def test_module_policy_variables_become_connect_options(tmp_path) -> None:
    write(tmp_path, "inv/hosts", "[web]\nw1\nw2 fanout_deny_modules=secrets,mycorp.private\n[db]\nd1\n")
    write(tmp_path, "inv/group_vars/web.yml", "fanout_allow_modules: [mycorp, mycorp.tasks, mycorp]\n")
    write(tmp_path, "inv/host_vars/d1.yml", "fanout_allow_modules: ' deploy_tools , '\nfanout_deny_modules: []\n")
    inv = Inventory.load(tmp_path / "inv/hosts")
    hosts = inv.fleet_hosts("all")
    assert hosts["w1"] == {"host": "w1", "allow_modules": ("mycorp", "mycorp.tasks")}
    assert hosts["w2"] == {
        "host": "w2",
        "allow_modules": ("mycorp", "mycorp.tasks"),
        "deny_modules": ("secrets", "mycorp.private"),
    }
    assert hosts["d1"] == {"host": "d1", "allow_modules": ("deploy_tools",), "deny_modules": ()}


def test_the_implicit_localhost_keeps_the_policy_set_for_every_host(tmp_path) -> None:
    write(tmp_path, "inv/hosts", "[all:vars]\nfanout_deny_modules=secrets\nansible_python_interpreter=/opt/py\n")
    write(tmp_path, "inv/group_vars/all.yml", "fanout_allow_modules: [tools]\n")
    inv = Inventory.load(tmp_path / "inv/hosts")
    assert inv.fleet_hosts("localhost") == {
        "localhost": {"connection": "local", "allow_modules": ("tools",), "deny_modules": ("secrets",)}
    }


@pytest.mark.parametrize(
    "value, complaint",
    [
        ("fanout_allow_modules=3", "fanout_allow_modules must be a list of module names or a comma-separated string"),
        ("fanout_allow_modules=\"['ok', 3]\"", "fanout_allow_modules holds 3, which is not a dotted module name"),
        ("fanout_deny_modules=os.path,../etc", "fanout_deny_modules holds '../etc', which is not a dotted module"),
        ("fanout_deny_modules=a..b", "fanout_deny_modules holds 'a..b'"),
        ("fanout_allow_modules='my-tools'", "fanout_allow_modules holds 'my-tools'"),
    ],
)
def test_module_policy_values_that_are_no_module_names(tmp_path, value: str, complaint: str) -> None:
    inv = load(tmp_path, f"h1 {value}\n")
    with pytest.raises(InventoryError, match=f"^host 'h1': {re.escape(complaint)}"):
        inv.fleet_hosts("h1")


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-5", "1e9"])
def test_connect_timeouts_no_fleet_could_keep(tmp_path, value: str) -> None:
    inv = load(tmp_path, f"h1 ansible_timeout={value}\n")
    with pytest.raises(InventoryError, match=r"^host 'h1': timeout "):
        inv.connect_options("h1")


# ------------------------------------------------------------------------------------------------- ranges, expanded


def _reference_expansion(name: str) -> list[str]:
    """ansible-core's algorithm, as fanout had it: the first range expanded, then the rest, recursively."""
    m = re.search(r"\[([^\]]*)\]", name)
    if m is None or ":" not in m.group(1):
        return [name]
    head, tail = name[: m.start()], name[m.end() :]
    beg, end, *step = m.group(1).split(":")
    beg, step = beg or "0", int(step[0]) if step else 1
    if beg in string.ascii_letters:
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        items = list(string.ascii_letters[i : j + 1 : step])
    else:
        width = len(beg) if beg[0] == "0" and len(beg) > 1 else 0
        items = [str(n).zfill(width) for n in range(int(beg), int(end) + 1, step)]
    return [out for item in items for out in _reference_expansion(head + item + tail)]


_range = st.one_of(
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 4), st.booleans()).map(
        lambda t: f"[{min(t[0], t[1]):0{2 if t[3] else 1}d}:{max(t[0], t[1]):0{2 if t[3] else 1}d}:{t[2]}]"
    ),
    st.tuples(st.sampled_from("abcXYZ"), st.sampled_from("cdzZ"), st.integers(1, 3)).map(
        lambda t: "[{}:{}:{}]".format(*sorted(t[:2], key=string.ascii_letters.index), t[2])
    ),
    st.just("[x]"),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text("ab-.", max_size=3), _range), min_size=1, max_size=3), st.text("z.", max_size=2))
def test_ranges_expand_as_ansible_core_expands_them(parts, end) -> None:
    from fanout._inventory_values import expand_range

    name = "".join(literal + spec for literal, spec in parts) + end
    assert expand_range(name) == _reference_expansion(name)
