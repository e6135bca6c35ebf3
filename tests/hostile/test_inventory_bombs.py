"""Inventories that would expand past any memory: each is a clear error before anything large is built (issue 9,
class 5). Host ranges, YAML aliases (in the inventory, in group_vars and host_vars), group graphs, files that never
end. Each refusal is asserted by its message and by the memory it took (tracemalloc), never by time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanout import _inventory_cli, _inventory_model, _inventory_sources, _inventory_yaml
from fanout.inventory import MAX_HOSTS, Inventory, InventoryError

SMALL = 16 * 1024 * 1024  # bytes a refusal may allocate at its peak: enough for parsing, far from an expansion

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def write(base: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def refused(load: Callable[[], Any], *fragments: str) -> InventoryError:
    """``load()`` raises InventoryError saying each of ``fragments``, having allocated little on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(InventoryError) as caught:
            load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert peak < SMALL, f"{peak:,} bytes allocated before the refusal"
    return caught.value


# ----------------------------------------------------------------------------------------------------- host ranges


@pytest.mark.parametrize(
    "line, count",
    [
        ("web[0:99999999]", "100,000,000"),
        ("web[00000000:99999999].example.com", "100,000,000"),
        ("web[0:999][0:9999]", "10,000,000"),  # several ranges in one name multiply
        ("h-[a:z][a:z][a:z][a:z][a:z]", f"{26**5:,}"),
        ("r[0:9999999999999999999999999999:3]", f"{10**28 // 3 + 1:,}"),
    ],
)
def test_a_range_over_the_maximum_is_refused_before_it_is_expanded(tmp_path: Path, line: str, count: str) -> None:
    write(tmp_path, {"hosts": f"[web]\nok\n{line}\n"})
    error = refused(lambda: Inventory.load(tmp_path / "hosts"), f"expands to {count} hosts", f"{MAX_HOSTS:,}")
    assert (error.path, error.line) == (str(tmp_path / "hosts"), 3)


def test_a_range_in_a_yaml_inventory_is_bounded_the_same(tmp_path: Path) -> None:
    write(tmp_path, {"inv.yml": "all:\n  hosts:\n    'web[0:99999999]':\n"})
    refused(lambda: Inventory.load(tmp_path / "inv.yml"), "expands to 100,000,000 hosts")


def test_long_names_count_too(tmp_path: Path) -> None:
    """A million names of a thousand characters each is a gigabyte, however few hosts that is."""
    write(tmp_path, {"hosts": "x" * 1000 + "[0:99999]\n"})
    refused(lambda: Inventory.load(tmp_path / "hosts"), "characters")


def test_ranges_add_up_over_an_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits hold for the whole inventory too: hosts, and host names listed (here made small to try them)."""
    monkeypatch.setattr(_inventory_model, "MAX_HOSTS", 1000)
    monkeypatch.setattr(_inventory_model, "MAX_HOST_ENTRIES", 3000)
    write(tmp_path, {"hosts": "[a]\na[0:999]\n[b]\nb[0:9]\n"})
    with pytest.raises(InventoryError, match=r"hosts:4: the inventory has more than 1,000 hosts"):
        Inventory.load(tmp_path / "hosts")
    groups = "".join(f"[g{n}]\nh[0:999]\n" for n in range(4))  # the same thousand hosts in four groups
    write(tmp_path, {"hosts": groups})
    with pytest.raises(InventoryError, match=r"hosts:8: the inventory lists more than 3,000 host names"):
        Inventory.load(tmp_path / "hosts")
    children = "".join(f"    g{n}:\n      hosts:\n        'h[0:999]':\n" for n in range(4))
    write(tmp_path, {"inv.yml": "all:\n  children:\n" + children})
    with pytest.raises(InventoryError, match=r"inv\.yml: the inventory lists more than 3,000 host names"):
        Inventory.load(tmp_path / "inv.yml")


def test_ranges_within_the_limits_still_expand(tmp_path: Path) -> None:
    write(tmp_path, {"hosts": "[web]\nweb[0000:9999]\n[grid]\nr[0:99]c[0:99]\n"})
    inv = Inventory.load(tmp_path / "hosts")
    assert len(inv.hosts("web")) == 10_000 and inv.hosts("web")[-1] == "web9999"
    assert len(inv.hosts("grid")) == 10_000 and inv.hosts("grid")[:2] == ["r0c0", "r0c1"]


def test_numbers_past_pythons_digit_limit_are_an_inventory_error(tmp_path: Path) -> None:
    write(tmp_path, {"hosts": f"h[1:{'9' * 5000}]\n"})
    refused(lambda: Inventory.load(tmp_path / "hosts"), "numbers too long")


# ------------------------------------------------------------------------------------------- host patterns, --limit


def test_patterns_never_expand_ranges(tmp_path: Path) -> None:
    """``web[0:99999999]`` as a pattern is a slice of the hosts that match ``web``: nothing to allocate."""
    write(tmp_path, {"hosts": "[web]\nweb[1:3]\n"})
    inv = Inventory.load(tmp_path / "hosts")
    assert inv.hosts("web[0:99999999]") == ["web1", "web2", "web3"]
    assert inv.hosts("web[1:99999999999999999999999999]") == ["web2", "web3"]
    with pytest.raises(InventoryError, match="a number is too long"):
        inv.hosts(f"web[0:{'9' * 5000}]")


def test_patterns_on_the_command_line(tmp_path: Path) -> None:
    write(tmp_path, {"hosts": "[web]\nweb[1:3]\n"})
    fanout = shutil.which("fanout", path=str(Path(sys.executable).parent))
    done = subprocess.run(
        [fanout, "-i", str(tmp_path / "hosts"), "web[0:99999999]", "-l", "web[9:99999999]"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (1, "")
    complaint = f"no host matches 'web[0:99999999]' within --limit 'web[9:99999999]' in {tmp_path / 'hosts'}"
    assert done.stderr == f"fanout: {complaint}\n"


# ----------------------------------------------------------------------------------------------------- YAML aliases


def test_the_609_byte_bomb_in_an_inventory(tmp_path: Path) -> None:
    document = "all:\n  hosts:\n    h1:\n  vars:\n" + textwrap.indent(BILLION_LAUGHS, "    ")
    assert len(document.encode()) < 700
    write(tmp_path, {"inv.yml": document})
    error = refused(lambda: Inventory.load(tmp_path / "inv.yml"), "alias bomb")
    assert error.path == str(tmp_path / "inv.yml") and error.line is not None


def test_the_bomb_in_a_file_without_an_extension(tmp_path: Path) -> None:
    """ansible-core tries such a file as YAML first: the bomb is refused there, not read as INI."""
    write(tmp_path, {"hosts": "all:\n  vars:\n" + textwrap.indent(BILLION_LAUGHS, "    ")})
    refused(lambda: Inventory.load(tmp_path / "hosts"), "alias bomb")


@pytest.mark.parametrize("vars_file", ["group_vars/all.yml", "group_vars/web/main.yaml", "host_vars/h1"])
def test_the_bomb_in_group_vars_and_host_vars(tmp_path: Path, vars_file: str) -> None:
    write(tmp_path, {"hosts": "[web]\nh1\n", vars_file: BILLION_LAUGHS})
    error = refused(lambda: Inventory.load(tmp_path / "hosts"), "alias bomb")
    assert error.path == str(tmp_path / vars_file)


def test_merge_keys_are_counted_as_aliases(tmp_path: Path) -> None:
    levels = ["l0: &l0 {k0: 1, k1: 2, k2: 3, k3: 4}"]
    levels += [f"l{n}: &l{n} {{<<: [*l{n - 1}, *l{n - 1}, *l{n - 1}, *l{n - 1}], x{n}: 1}}" for n in range(1, 16)]
    write(tmp_path, {"group_vars/all.yml": "\n".join(levels) + "\n", "hosts": "h1\n"})
    refused(lambda: Inventory.load(tmp_path / "hosts"), "alias bomb")


@pytest.mark.parametrize(
    "document",
    ["a: &x [1, *x]\n", "a: &x {b: {c: *x}}\n", "a: &x [[[[*x]]]]\n", "&top {a: [*top]}\n"],
)
def test_a_recursive_alias_is_refused(tmp_path: Path, document: str) -> None:
    write(tmp_path, {"group_vars/all.yml": document, "hosts": "h1\n"})
    refused(lambda: Inventory.load(tmp_path / "hosts"), "refers to a node that contains it")


def test_aliases_add_up_over_the_files_of_an_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_inventory_yaml, "MAX_YAML_ALIAS_NODES", 100)
    shared = "base: &b [1, 2, 3, 4, 5, 6, 7, 8, 9]\n" + "".join(f"use{n}: *b\n" for n in range(5))  # 50 added
    write(tmp_path, {"hosts": "[web]\nh1\n", "group_vars/all.yml": shared})
    assert Inventory.load(tmp_path / "hosts").host_vars("h1")["use4"] == list(range(1, 10))
    write(tmp_path, {"group_vars/web.yml": shared, "host_vars/h1.yml": shared})
    refused(lambda: Inventory.load(tmp_path / "hosts"), "more than 100 nodes")


def test_ordinary_anchors_still_load(tmp_path: Path) -> None:
    document = """\
    all:
      vars:
        common: &common {ntp: ntp.example.com, dns: [1.1.1.1, 8.8.8.8]}
      children:
        web:
          hosts: {w1: *common, w2: {<<: *common, ntp: other}}
    """
    write(tmp_path, {"inv.yml": textwrap.dedent(document)})
    inv = Inventory.load(tmp_path / "inv.yml")
    assert inv.host_vars("w1")["dns"] == ["1.1.1.1", "8.8.8.8"]
    assert inv.host_vars("w2")["ntp"] == "other" and inv.host_vars("w2")["dns"] == ["1.1.1.1", "8.8.8.8"]


def test_yaml_nested_past_the_parsers_stack(tmp_path: Path) -> None:
    write(tmp_path, {"inv.yml": "all:\n  vars:\n    deep: " + "[" * 5000 + "]" * 5000 + "\n"})
    with pytest.raises(InventoryError, match=r"inv\.yml:\d+: YAML nested too deeply"):
        Inventory.load(tmp_path / "inv.yml")


def test_a_yaml_integer_past_pythons_digit_limit(tmp_path: Path) -> None:
    write(tmp_path, {"inv.yml": f"all:\n  vars:\n    big: {'9' * 5000}\n"})
    with pytest.raises(InventoryError, match=r"inv\.yml: invalid YAML: a value cannot be read"):
        Inventory.load(tmp_path / "inv.yml")


# ---------------------------------------------------------------------------------------------- graphs, long files


def diamonds(levels: int) -> str:
    """Two groups a level, both parents of the next level's two: 2**levels paths to the bottom."""
    text = "[bottom]\nb1\n"
    for n in range(levels):
        child_groups = "bottom\n" if n == levels - 1 else f"g{n + 1}a\ng{n + 1}b\n"
        text += f"[g{n}a:children]\n{child_groups}[g{n}b:children]\n{child_groups}"
    return text


def test_a_graph_of_shared_groups_is_refused_before_it_is_drawn(tmp_path: Path) -> None:
    write(tmp_path, {"hosts": diamonds(40)})
    inv = Inventory.load(tmp_path / "hosts")
    assert inv.hosts("g0a") == ["b1"]  # selecting hosts walks each group once
    refused(lambda: _inventory_cli.graph(inv, "all"), "would take", "draw a smaller group")
    write(tmp_path, {"small": diamonds(3)})
    assert _inventory_cli.graph(Inventory.load(tmp_path / "small"), "g0a").count("--b1") == 4  # drawn on each path


def test_a_long_chain_of_child_groups(tmp_path: Path) -> None:
    chain = "".join(f"[c{n}:children]\nc{n + 1}\n" for n in range(3000)) + "[c3000]\nleaf\n"
    write(tmp_path, {"hosts": chain})
    inv = Inventory.load(tmp_path / "hosts")
    assert inv.hosts("c0") == ["leaf"]
    assert inv.groups["c3000"].depth == 3001
    drawn = _inventory_cli.graph(inv, "c2998").splitlines()
    assert drawn == ["@c2998:", "  |--@c2999:", "  |  |--@c3000:", "  |  |  |--leaf"]


def test_a_file_that_never_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_inventory_sources, "MAX_FILE_BYTES", 1000)
    write(tmp_path, {"hosts": "h1\n" * 1000})
    with pytest.raises(InventoryError, match=r"hosts: inventory is larger than"):
        Inventory.load(tmp_path / "hosts")
    write(tmp_path, {"hosts": "h1\n", "host_vars/h1": "a: 1\n" * 1000})
    with pytest.raises(InventoryError, match=r"host_vars/h1: variables is larger than"):
        Inventory.load(tmp_path / "hosts")


# ------------------------------------------------------------------------------------------------ the command, whole


@pytest.mark.parametrize("action", [["--list"], ["--graph"], ["--host", "h1"]])
def test_fanout_inventory_refuses_the_bomb_in_one_line(tmp_path: Path, action: list[str]) -> None:
    write(tmp_path, {"hosts": "[web]\nh1\n", "group_vars/web.yml": BILLION_LAUGHS})
    fanout = shutil.which("fanout", path=str(Path(sys.executable).parent))
    done = subprocess.run(
        [fanout, "inventory", "-i", str(tmp_path / "hosts"), *action], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (1, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"fanout inventory: {tmp_path / 'group_vars/web.yml'}:") and "alias bomb" in line
