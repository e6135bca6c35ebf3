"""The master's module server: what it finds, what it sends ahead, and what it refuses, with reasons."""

from __future__ import annotations

import sys
import textwrap

import pytest

from fanout import _modules
from fanout._modules import ModuleIndex, ModuleSender, ModuleSource, static_imports


def source(name: str, text: str, is_pkg: bool = False) -> ModuleSource:
    return ModuleSource(name, _modules.USER, is_pkg=is_pkg, source=textwrap.dedent(text), filename=f"/{name}.py")


def test_static_imports_resolve_relative_and_submodule_forms() -> None:
    module = source(
        "pkg.sub.mod",
        """
        import os, json.decoder
        from . import sibling
        from .. import uncle
        from .helpers import thing
        from ...toolong import nothing
        from pkg import other
        from x import *
        try:
            import optional_dep
        except ImportError:
            optional_dep = None
        if TYPE_CHECKING:
            import only_for_typing
        def lazy():
            import inside_function
        class K:
            import inside_class
        """,
    )
    found = static_imports(module)
    for name in ["os", "json.decoder", "pkg.sub", "pkg.sub.sibling", "pkg", "pkg.uncle", "pkg.sub.helpers"]:
        assert name in found
    assert "pkg.sub.helpers.thing" in found and "pkg.other" in found and "x" in found and "optional_dep" in found
    assert not {"only_for_typing", "inside_function", "inside_class", "toolong"} & {n.split(".")[0] for n in found}


def test_package_relative_imports_are_relative_to_the_package_itself() -> None:
    assert "pkg.a" in static_imports(source("pkg", "from . import a\n", is_pkg=True))


def test_syntax_errors_and_empty_sources_import_nothing() -> None:
    assert static_imports(source("m", "def (:\n")) == []
    assert static_imports(ModuleSource("m", _modules.USER, source=None)) == []


def test_classify() -> None:
    assert _modules.classify("json", None) == _modules.STDLIB
    assert _modules.classify("fanout.errors", None) == _modules.FANOUT
    assert _modules.classify("cloudpickle", None) == _modules.FANOUT
    import json

    import paramiko

    assert _modules.classify("paramiko", paramiko.__file__) == _modules.THIRD_PARTY
    assert _modules.classify("json", json.__file__) == _modules.STDLIB
    assert _modules.classify("mine", "/home/me/project/mine.py") == _modules.USER
    # A file beside a script under a standard library name shadows the stdlib's: it is the user's.
    assert _modules.classify("secrets", "/home/me/project/secrets.py") == _modules.USER


def test_find_source_reasons() -> None:
    assert "does not have it either" in _modules.find_source("no_such_module_xyz").reason
    assert "built-in" in _modules.find_source("sys").reason
    markup = _modules.find_source("markupsafe._speedups")
    assert "C extension" in markup.reason and "_speedups" in markup.reason
    found = _modules.find_source("fanout.errors")
    assert found.kind == _modules.FANOUT and "class RemoteError" in found.source and not found.is_pkg
    assert _modules.find_source("fanout").is_pkg
    missing_parent = _modules.find_source("no_such_pkg_xyz.sub").reason
    assert "does not have it either" in missing_parent and "no package 'no_such_pkg_xyz'" in missing_parent
    assert "'fanout.errors' is a module, not a package" in _modules.find_source("fanout.errors.sub").reason
    assert "not a module name" in _modules.find_source("os/../etc").reason


def test_a_failing_finder_is_a_reason_not_a_crash(monkeypatch) -> None:
    class Broken:
        def find_spec(self, name, path=None, target=None):
            raise RuntimeError("finder broke")

    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    reason = _modules.find_source("no_such_module_xyz").reason
    assert "cannot find it" in reason and "finder broke" in reason
    [record], _ = ModuleSender("h", ModuleIndex()).answer("no_such_module_xyz")
    assert record[2] is None and "finder broke" in record[4]


def test_a_finder_that_imports_while_it_looks_is_not_asked(monkeypatch) -> None:
    asked: list[str] = []

    class Shim:  # stands for setuptools' distutils shim, which imports setuptools._distutils in find_spec
        def find_spec(self, name, path=None, target=None):
            asked.append(name)

    Shim.__module__, Shim.__qualname__ = "_distutils_hack", "DistutilsMetaFinder"
    monkeypatch.setattr(sys, "meta_path", [Shim(), *sys.meta_path])
    sender = ModuleSender("h", ModuleIndex())
    sender.answer("distutils")
    sender.answer("pip")
    assert asked == []


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = tmp_path / "src"
    (root / "proj_mods").mkdir(parents=True)
    (root / "proj_mods" / "__init__.py").write_text("from . import a\n")
    (root / "proj_mods" / "a.py").write_text("import json\nfrom . import b\n")
    (root / "proj_mods" / "b.py").write_text("import proj_mods.a\nX = 1\n")
    monkeypatch.syspath_prepend(str(root))
    yield
    for name in [n for n in sys.modules if n.startswith("proj_mods")]:
        del sys.modules[name]


def test_preload_sends_the_closure_parents_first_and_each_module_once(project) -> None:
    sender = ModuleSender("h", ModuleIndex())
    records, roots = sender.preload(["proj_mods.b"])
    assert next(r[0] for r in records) == "proj_mods"
    assert {r[0] for r in records} == {"proj_mods", "proj_mods.a", "proj_mods.b"}  # json: the child has its own
    assert roots == ["proj_mods"]
    assert sender.preload(["proj_mods.a", "proj_mods.b"]) == ([], [])


def test_answer_refuses_with_a_reason_and_remembers_nothing(project) -> None:
    index = ModuleIndex()
    sender = ModuleSender("h", index)
    [record], roots = sender.answer("missing_xyz")
    assert record == ("missing_xyz", False, None, None, record[4])
    assert "does not have it either" in record[4] and roots == []
    assert "missing_xyz" not in sender.sent and len(index) == 0


def test_stdlib_is_served_only_to_the_same_minor_version() -> None:
    sender = ModuleSender("h", ModuleIndex())
    sender.child_python = (3, 9, 2)
    [record], _ = sender.answer("tomllib")
    assert record[2] is None and "standard library" in record[4] and "3.9" in record[4]
    same = ModuleSender("h", ModuleIndex())
    same.child_python = sys.version_info[:3]
    records, _ = same.answer("tomllib")
    assert records[0][0] == "tomllib" and records[0][2]


def test_a_third_party_package_comes_with_its_submodules() -> None:
    sender = ModuleSender("h", ModuleIndex())
    records, roots = sender.answer("yaml")
    names = [r[0] for r in records]
    assert names[0] == "yaml" and "yaml.error" in names and "yaml.loader" in names
    assert len(names) == len(set(names))  # each once
    assert roots == []  # the host's own copy would still win if it had one
    assert all(r[2] for r in records)


# -- the policy: what a child may have -------------------------------------------------------------------------------


def test_policy_prefixes_match_whole_name_parts() -> None:
    policy = _modules.ModulePolicy(allow=["a.b"], deny=["x"])
    assert policy.allows("a.b") and policy.allows("a.b.c")
    assert not policy.allows("a.bc") and not policy.allows("a.c")
    assert policy.allows("a")  # the package on the way to a.b, so that a.b can be imported
    assert policy.denied("x") == "x" and policy.denied("x.y") == "x" and policy.denied("xy") is None


def test_policy_takes_any_iterable_and_is_frozen() -> None:
    policy = _modules.ModulePolicy(iter(["a", "a", "b.c"]), ("d",))
    assert policy == _modules.ModulePolicy(["a", "b.c"], ["d"]) and policy.allow == ("a", "b.c")
    assert _modules.ModulePolicy(None, None) == _modules.ModulePolicy()
    with pytest.raises(AttributeError):
        policy.allow = ("z",)  # type: ignore[misc]


@pytest.mark.parametrize(
    "allow, complaint",
    [
        ("settings", "not a single string"),
        (["ok", ""], "'' is not a module prefix"),
        (["a..b"], "'a..b' is not a module prefix"),
        (["a.*"], "'a.*' is not a module prefix"),
        (["my-pkg"], "'my-pkg' is not a module prefix"),
        ([3], "3 is not a module prefix"),
        (["a" * 513], "is not a module prefix"),
        (42, "not int"),
    ],
)
def test_policy_refuses_what_is_not_a_list_of_dotted_names(allow, complaint) -> None:
    with pytest.raises(ValueError, match="allow_modules") as info:
        _modules.ModulePolicy(allow)
    assert complaint in str(info.value)
    with pytest.raises(ValueError, match="deny_modules"):
        _modules.ModulePolicy((), allow)


def test_sender_wants_a_policy_object() -> None:
    with pytest.raises(TypeError, match="ModulePolicy"):
        ModuleSender("h", ModuleIndex(), policy=["a"])  # type: ignore[arg-type]


@pytest.fixture
def user_tree(tmp_path, monkeypatch):
    """Write modules under a fresh sys.path entry (name -> source); forget them afterwards."""
    root = tmp_path / "tree"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    written: list[str] = []

    def write(files: dict[str, str]) -> None:
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
            written.append(relative.split("/")[0].removesuffix(".py"))

    yield write
    for name in [n for n in sys.modules if n.split(".")[0] in written]:
        del sys.modules[name]


def test_a_user_module_under_a_root_sent_for_a_call_is_served(user_tree) -> None:
    user_tree({"pol_app/__init__.py": "", "pol_app/jobs.py": "def run():\n    pass\n", "pol_app/extra.py": "E = 1\n"})
    sender = ModuleSender("h", ModuleIndex())
    records, roots = sender.preload(["pol_app.jobs"])
    assert {r[0] for r in records} == {"pol_app", "pol_app.jobs"} and roots == ["pol_app"]
    assert "pol_app" in sender.chosen
    [record], _ = sender.answer("pol_app.extra")  # not imported by anything sent, but under the package
    assert record[2] == "E = 1\n"


def test_a_user_module_no_call_brought_is_refused_with_how_to_allow_it(user_tree) -> None:
    user_tree({"pol_job.py": "def run():\n    pass\n", "pol_secret.py": "PASSWORD = 'hunter2'\n"})
    sender = ModuleSender("h", ModuleIndex())
    sender.preload(["pol_job"])
    [record], roots = sender.answer("pol_secret")
    assert record[:4] == ("pol_secret", False, None, None) and roots == []
    assert "site-packages" in record[4] and "allow_modules=['pol_secret']" in record[4]
    allowed = ModuleSender("h", ModuleIndex(), policy=_modules.ModulePolicy(allow=["pol_secret"]))
    [record], _ = allowed.answer("pol_secret")
    assert "hunter2" in record[2]


def test_a_function_level_import_permits_an_answer_but_is_not_sent_ahead(user_tree) -> None:
    user_tree(
        {
            "pol_lazy.py": "def go():\n    import pol_dep.inner\n    return pol_dep.inner.V\n",
            "pol_dep/__init__.py": "",
            "pol_dep/inner.py": "from . import sibling\nV = 1\n",
            "pol_dep/sibling.py": "S = 1\n",
            "pol_dep/other.py": "O = 1\n",
        }
    )
    sender = ModuleSender("h", ModuleIndex())
    records, _ = sender.preload(["pol_lazy"])
    assert [r[0] for r in records] == ["pol_lazy"]
    assert sender.answer("pol_dep")[0][0][2] == ""  # the package on the way: permitted too
    names = [r[0] for r in sender.answer("pol_dep.inner")[0]]
    assert names == ["pol_dep.inner", "pol_dep.sibling"]  # with what it imports at module level
    [other], _ = sender.answer("pol_dep.other")  # nothing imports it: pol_dep is no root sent for a call
    assert other[2] is None and "allow_modules=['pol_dep.other']" in other[4]


def test_allowing_a_submodule_opens_its_packages_but_not_their_other_modules(user_tree) -> None:
    user_tree({"pol_cfg/__init__.py": "", "pol_cfg/prod.py": "P = 1\n", "pol_cfg/keys.py": "K = 1\n"})
    sender = ModuleSender("h", ModuleIndex(), policy=_modules.ModulePolicy(allow=["pol_cfg.prod"]))
    assert sender.answer("pol_cfg")[0][0][2] == ""
    assert sender.answer("pol_cfg.prod")[0][0][2] == "P = 1\n"
    assert sender.answer("pol_cfg.keys")[0][0][2] is None


def test_denied_modules_are_not_sent_ahead_and_refused_with_the_prefix(project) -> None:
    sender = ModuleSender("h", ModuleIndex(), policy=_modules.ModulePolicy(deny=["proj_mods.a"]))
    records, _ = sender.preload(["proj_mods.b"])
    assert {r[0] for r in records} == {"proj_mods", "proj_mods.b"}
    [record], _ = sender.answer("proj_mods.a")
    assert record[2] is None and "deny_modules has 'proj_mods.a'" in record[4]


def test_a_called_function_in_a_denied_module_goes_unsent(project) -> None:
    sender = ModuleSender("h", ModuleIndex(), policy=_modules.ModulePolicy(deny=["proj_mods"]))
    assert sender.preload(["proj_mods.b"]) == ([], [])
    assert sender.sent == set() and "proj_mods" not in sender.chosen
    [record], _ = sender.answer("proj_mods.b")  # the child's import of it then fails with the reason
    assert "deny_modules has 'proj_mods'" in record[4]


def test_deny_wins_over_allow_and_over_the_standard_library() -> None:
    policy = _modules.ModulePolicy(allow=["json"], deny=["json.decoder"])
    sender = ModuleSender("h", ModuleIndex(), policy=policy)
    sender.child_python = sys.version_info[:3]
    assert "deny_modules has 'json.decoder'" in sender.answer("json.decoder")[0][0][4]
    assert sender.answer("json")[0][0][2]


def test_namespace_packages_keep_working(user_tree) -> None:
    user_tree({"pol_ns/app/jobs.py": "from pol_ns.app import util\n", "pol_ns/app/util.py": "U = 1\n"})
    sender = ModuleSender("h", ModuleIndex())
    records, roots = sender.preload(["pol_ns.app.jobs"])
    by_name = {r[0]: r for r in records}
    assert set(by_name) == {"pol_ns", "pol_ns.app", "pol_ns.app.jobs", "pol_ns.app.util"} and roots == ["pol_ns"]
    assert by_name["pol_ns"][1:4] == (True, "", None) and by_name["pol_ns.app"][1] is True
    assert [r[0] for r in records][:2] == ["pol_ns", "pol_ns.app"]  # parents first


def test_stdlib_for_another_minor_version_is_refused_unread() -> None:
    index = ModuleIndex()
    sender = ModuleSender("h", index)
    sender.child_python = (3, 9, 2)
    for name in ("tomllib", "json.decoder", "email.mime.text"):
        [record], _ = sender.answer(name)
        assert record[2] is None and "Python 3.9" in record[4]
    assert len(index) == 0 and sender.footprint() == len(_modules.PINNED)


def test_third_party_and_stdlib_sources_are_kept_within_a_bound() -> None:
    index = ModuleIndex(shared_chars=20_000)
    sender = ModuleSender("h", index)
    sender.child_python = sys.version_info[:3]
    for name in ("yaml", "json", "email", "argparse", "tomllib"):
        sender.answer(name)
    assert 0 < sum(len(m.source) for m in index._shared.values()) <= 20_000
    assert set(index._imports) <= set(index._shared) and set(index._all_imports) <= set(index._shared)
    big = ModuleIndex(shared_chars=10)  # a module over the bound is still served, just not kept
    assert ModuleSender("h", big).answer("yaml.constructor")[0][0][2] and len(big) == 0
