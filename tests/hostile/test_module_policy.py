"""A hostile child asks the master for modules: it gets only what the policy allows, and runs nothing on the master.

Most tests drive :class:`ModuleSender` directly, as the master does on a child's
GET_MODULE; the last ones go end to end, through a local child and through a
replaced stage 1 that asks for whatever it likes.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanout
from fanout._modules import ModuleIndex, ModulePolicy, ModuleSender


def sender_for(index: ModuleIndex | None = None, **policy) -> ModuleSender:
    """A sender as a connection to a child of the master's own Python would have it."""
    sender = ModuleSender("evil", index or ModuleIndex(), policy=ModulePolicy(**policy))
    sender.child_python = sys.version_info[:3]
    return sender


def served(records: list[tuple]) -> dict[str, str | None]:
    return {name: source for name, _, source, _, _ in records}


@pytest.fixture
def side_effect(tmp_path) -> Path:
    """A file that module-level code writes when it runs: it must never exist."""
    return tmp_path / "executed-on-the-master"


@pytest.fixture
def project(user_modules, side_effect):
    """A user's script directory: the module with the function it calls, a secret beside it, and traps."""
    s = user_modules(
        {
            "job_{s}.py": """
            import importlib

            def run():
                return 1

            def lazily():
                import helper_{s}
                return helper_{s}.VALUE

            def dynamically():
                return importlib.import_module("settings_local_{s}").PASSWORD
            """,
            "helper_{s}.py": "VALUE = 'helped'\n",
            "settings_local_{s}.py": "PASSWORD = 'hunter2'\n",
            "sidefx_{s}/__init__.py": f"open({str(side_effect)!r}, 'a').write('pkg')\n",
            "sidefx_{s}/sub.py": "SUB = 1\n",
            "sidefx_{s}/inner/__init__.py": f"open({str(side_effect)!r}, 'a').write('inner')\n",
            "sidefx_{s}/inner/deep.py": "DEEP = 1\n",
        }
    )
    return s


def test_a_secret_beside_the_users_script_is_refused_with_the_reason(project) -> None:
    s = project
    index = ModuleIndex()
    sender = sender_for(index)
    records, roots = sender.preload([f"job_{s}"])
    assert served(records).keys() == {f"job_{s}"} and roots == [f"job_{s}"]
    held = len(index), sender.footprint()
    [record], roots = sender.answer(f"settings_local_{s}")
    assert record[:4] == (f"settings_local_{s}", False, None, None) and roots == []
    reason = record[4]
    assert "not in the packages fanout sent for your calls" in reason and "site-packages" in reason
    assert f"allow_modules=['settings_local_{s}']" in reason and "hunter2" not in reason
    assert (len(index), sender.footprint()) == held  # nothing read, nothing remembered


def test_a_package_with_side_effects_is_looked_up_without_running_it(project, side_effect) -> None:
    s = project
    sender = sender_for()
    for name in (f"sidefx_{s}.sub", f"sidefx_{s}.inner.deep", f"sidefx_{s}"):
        [record], _ = sender.answer(name)
        assert record[2] is None and "allow_modules" in record[4]
    # Allowed, it is served as source: still nothing of it runs here.
    allowed = sender_for(allow=[f"sidefx_{s}"])
    assert served(allowed.answer(f"sidefx_{s}.inner.deep")[0])[f"sidefx_{s}.inner.deep"] == "DEEP = 1\n"
    assert "open(" in served(allowed.answer(f"sidefx_{s}")[0])[f"sidefx_{s}"]
    assert not side_effect.exists()
    assert not [name for name in sys.modules if name.startswith(f"sidefx_{s}")]


def test_this_and_unittest_main_are_served_as_text_and_run_nothing(monkeypatch, capfd) -> None:
    monkeypatch.delitem(sys.modules, "this", raising=False)
    monkeypatch.delitem(sys.modules, "unittest.__main__", raising=False)
    sender = sender_for()
    assert served(sender.answer("this")[0])["this"]  # the standard library, same minor version: its text
    assert "main(module=None)" in served(sender.answer("unittest.__main__")[0])["unittest.__main__"]
    # A submodule of each: importlib.util.find_spec would import (run) them as its parents.
    for name in ("this.zen", "unittest.__main__.x"):
        [record], _ = sender.answer(name)
        assert record[2] is None and "is a module, not a package" in record[4]
    assert "this" not in sys.modules and "unittest.__main__" not in sys.modules
    assert capfd.readouterr() == ("", "")  # the Zen of Python was not printed, no test run started
    older = sender_for()
    older.child_python = (3, 9, 18)
    [record], _ = older.answer("this")
    assert record[2] is None and "Python 3.9" in record[4]


def test_test_and_deploy_modules_in_the_working_directory_are_refused_unrun(tmp_path, monkeypatch, side_effect) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    effect = f"open({str(side_effect)!r}, 'a').write('ran')\n"
    for name in ("test_deploy_cwd", "deploy_cwd", "conftest_cwd", "settings_local_cwd"):
        (cwd / f"{name}.py").write_text(effect + "PASSWORD = 'hunter2'\n")
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend("")  # the CLI's working directory, or a script's, first on sys.path
    index = ModuleIndex()
    sender = sender_for(index)
    for name in ("test_deploy_cwd", "deploy_cwd", "conftest_cwd", "settings_local_cwd"):
        [record], _ = sender.answer(name)
        assert record[2] is None and f"allow_modules=[{name!r}]" in record[4]
    assert not side_effect.exists() and len(index) == 0
    assert not {"test_deploy_cwd", "deploy_cwd", "conftest_cwd", "settings_local_cwd"} & set(sys.modules)


def test_a_deny_prefix_over_a_third_party_package(project) -> None:
    sender = sender_for(deny=["yaml"])
    for name in ("yaml", "yaml.error", "yaml.constructor"):
        [record], _ = sender.answer(name)
        assert record[2] is None and "deny_modules has 'yaml'" in record[4]
    narrower = sender_for(deny=["yaml.constructor"])
    package = served(narrower.answer("yaml")[0])
    assert "yaml.error" in package and "yaml.loader" in package and "yaml.constructor" not in package
    assert "deny_modules has 'yaml.constructor'" in narrower.answer("yaml.constructor")[0][0][4]


def test_an_allow_prefix_makes_a_user_module_servable(project) -> None:
    s = project
    sender = sender_for(allow=[f"settings_local_{s}"])
    [record], roots = sender.answer(f"settings_local_{s}")
    assert "hunter2" in record[2] and roots == [f"settings_local_{s}"]
    both = sender_for(allow=[f"settings_local_{s}"], deny=[f"settings_local_{s}"])
    assert both.answer(f"settings_local_{s}")[0][0][2] is None  # deny wins


def test_a_function_level_import_of_the_users_module_is_allowed(project) -> None:
    s = project
    sender = sender_for()
    records, _ = sender.preload([f"job_{s}"])
    assert f"helper_{s}" not in served(records)  # permission to answer, not sending ahead
    assert served(sender.answer(f"helper_{s}")[0]) == {f"helper_{s}": "VALUE = 'helped'\n"}
    # A name only built at run time is no static import: still refused.
    assert sender.answer(f"settings_local_{s}")[0][0][2] is None


NAME_PARTS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.one_of(
        st.lists(NAME_PARTS, min_size=1, max_size=6).map(".".join),
        st.text(max_size=40),
        st.sampled_from(["", ".", "a.", ".a", "a..b", "os/../x", "x" * 600, "é.ü", "a.b\x00"]),
    )
)
def test_any_name_gets_one_answer_and_a_refusal_leaves_no_trace(project, name) -> None:
    s = project
    index = ModuleIndex()
    sender = sender_for(index)
    sender.preload([f"job_{s}"])
    held = len(index), sender.footprint()
    records, _ = sender.answer(name)
    mine = [record for record in records if record[0] == name]
    assert len(mine) == 1
    if mine[0][2] is None:  # refused: that one record, with a reason, and nothing kept
        assert records == mine and isinstance(mine[0][4], str) and mine[0][4]
        assert (len(index), sender.footprint()) == held


def test_ten_thousand_unknown_names_leave_the_caches_as_they_were(project) -> None:
    s = project
    index = ModuleIndex()
    sender = sender_for(index)
    sender.preload([f"job_{s}"])
    kinds = [
        "nope_{i}",  # nowhere at all
        "job_%s.nope_{i}" % s,  # under a root sent for a call (a module, not a package)
        "settings_local_%s.x{i}" % s,  # under a refused module
        "json.nope_{i}",  # in a standard library package
        "yaml.nope_{i}",  # in a third-party package
    ]
    for kind in kinds:  # first lookups fill the import system's per-directory caches, once
        sender.answer(kind.format(i="warm"))
    held = len(index), sender.footprint(), len(sys.path_importer_cache)
    names = [kind.format(i=i) for i in range(2000) for kind in kinds]
    assert len(set(names)) == 10_000
    for name in names:
        [record], roots = sender.answer(name)
        assert record[2] is None and "does not have it either" in record[4] and roots == []
    for _ in range(1000):  # and the one secret that exists, over and over
        assert sender.answer(f"settings_local_{s}")[0][0][2] is None
    assert (len(index), sender.footprint(), len(sys.path_importer_cache)) == held
    assert sender.sent == {f"job_{s}"}


# -- end to end ---------------------------------------------------------------------------------------------------


def test_a_local_childs_dynamic_import_of_a_secret_fails_with_the_reason(project) -> None:
    s = project
    job = importlib.import_module(f"job_{s}")
    with fanout.local() as child:
        with pytest.raises(fanout.RemoteError) as info:
            child.call(job.dynamically)
        error = info.value
        assert error.type_name == "ModuleNotFoundError"
        assert f"settings_local_{s}" in error.message and child.name in error.message
        assert f"allow_modules=['settings_local_{s}']" in error.message and "hunter2" not in str(error)
        assert child.call(job.lazily) == "helped"  # a static import in the function: allowed
        assert child.call(abs, -3) == 3
    with fanout.local(allow_modules=[f"settings_local_{s}"]) as child:
        assert child.call(job.dynamically) == "hunter2"


ASKS_FOR_MODULES = """
import marshal
hello()
for rid, name in enumerate(NAMES, 1):
    send(encode_frame(GET_MODULE, rid, name.encode()))
answers, calls = {}, []
for kind, rid, body in frames():
    if kind == MODULES and rid:
        records, roots = marshal.loads(body[1:])
        answers[NAMES[rid - 1]] = [(r[0], r[2] is not None, r[4]) for r in records]
    elif kind == CALL:
        calls.append(rid)
    if len(answers) == len(NAMES):
        for rid in calls:
            send(encode_frame(RESULT, rid, literal(answers)))
        calls = []
"""


def test_a_hostile_stage1_asking_for_secrets_and_traps_gets_refusals(project, side_effect, hostile_child) -> None:
    s = project
    names = [f"settings_local_{s}", f"sidefx_{s}.inner.deep", f"sidefx_{s}", "no_such_module_at_all", "json"]
    child = hostile_child(f"NAMES = {names!r}\n" + ASKS_FOR_MODULES)
    answers = child.call(abs, 1)  # the hostile child answers any call with what it was given
    assert set(answers) == set(names)
    for name in names[:3]:
        [(got, has_source, reason)] = answers[name]
        assert got == name and not has_source and f"allow_modules=[{name!r}]" in reason
    [(_, has_source, reason)] = answers["no_such_module_at_all"]
    assert not has_source and "does not have it either" in reason
    assert answers["json"][0][:2] == ("json", True)  # the standard library, to the same Python
    assert not side_effect.exists()


def test_a_file_linked_into_site_packages_is_still_the_users(tmp_path, monkeypatch) -> None:
    from fanout import _modules

    site, home = tmp_path / "site-packages", tmp_path / "home"
    site.mkdir()
    home.mkdir()
    (home / "mysecrets_linked.py").write_text("DB_PASSWORD = 'hunter2'\n")
    (site / "mysecrets_linked.py").symlink_to(home / "mysecrets_linked.py")
    (site / "honest_thirdparty_linked.py").write_text("VALUE = 1\n")
    monkeypatch.setattr(_modules, "_SITE_DIRS", [str(site.resolve()), *_modules._SITE_DIRS])
    monkeypatch.syspath_prepend(str(site))
    _modules._place_of_directory.cache_clear()
    try:
        sender = sender_for()
        [refused], _ = sender.answer("mysecrets_linked")
        assert refused[2] is None and "allow_modules=['mysecrets_linked']" in refused[4]
        answered = served(sender.answer("honest_thirdparty_linked")[0])
        assert answered == {"honest_thirdparty_linked": "VALUE = 1\n"}  # what really lies in site-packages is served
    finally:
        _modules._place_of_directory.cache_clear()
