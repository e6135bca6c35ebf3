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
    import paramiko

    assert _modules.classify("paramiko", paramiko.__file__) == _modules.THIRD_PARTY
    assert _modules.classify("mine", "/home/me/project/mine.py") == _modules.USER


def test_find_source_reasons() -> None:
    assert "does not have it either" in _modules.find_source("no_such_module_xyz").reason
    assert "built-in" in _modules.find_source("sys").reason
    markup = _modules.find_source("markupsafe._speedups")
    assert "C extension" in markup.reason and "_speedups" in markup.reason
    found = _modules.find_source("fanout.errors")
    assert found.kind == _modules.FANOUT and "class RemoteError" in found.source and not found.is_pkg
    assert _modules.find_source("fanout").is_pkg
    assert "cannot find it" in _modules.find_source("no_such_pkg_xyz.sub").reason


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


def test_answer_refuses_with_a_reason_and_only_once(project) -> None:
    sender = ModuleSender("h", ModuleIndex())
    [record], roots = sender.answer("missing_xyz")
    assert record[2] is None and "does not have it either" in record[4] and roots == []
    assert "missing_xyz" in sender.sent


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
    names = {r[0] for r in records}
    assert "yaml" in names and "yaml.error" in names and "yaml.loader" in names
    assert roots == []  # the host's own copy would still win if it had one
