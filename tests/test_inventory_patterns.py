"""fanout._host_patterns on a model built in place: patterns select hosts whatever file format the model came from."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout._host_patterns import match_hosts
from fanout._inventory_model import InventoryError, InventoryModel


def model_of(*groups: tuple[str, list[str]], children: tuple[tuple[str, str], ...] = ()) -> InventoryModel:
    """The model an INI file listing ``groups`` in this order (and ``[parent:children]`` sections) reads into."""
    model = InventoryModel()
    for group, hosts in groups:
        model.add_hosts(hosts, group)
    for parent, child in children:
        model.add_child(parent, child)
    model.reconcile()
    return model


@pytest.fixture
def model() -> InventoryModel:
    return model_of(
        ("webservers", ["web1", "web2", "web3", "foo.example.com"]),
        ("dbservers", ["db1", "web2"]),
        ("staging", ["web1", "web2", "db1"]),
        ("phoenix", ["web2"]),
    )


def test_patterns(model: InventoryModel) -> None:
    def hosts(pattern: str = "all") -> list[str]:
        return match_hosts(model, pattern)

    everyone = ["web1", "web2", "web3", "foo.example.com", "db1"]
    assert match_hosts(model) == everyone and hosts("all") == everyone and hosts("*") == everyone
    assert hosts("webservers:dbservers") == ["web1", "web2", "web3", "foo.example.com", "db1"]
    assert hosts("dbservers,webservers") == ["db1", "web2", "web1", "web3", "foo.example.com"]
    assert hosts("webservers:&staging") == ["web1", "web2"]
    assert hosts("webservers:!phoenix") == ["web1", "web3", "foo.example.com"]
    assert hosts("webservers:&staging:!phoenix") == ["web1"]
    # evaluation order does not depend on the written order
    assert hosts("!phoenix:&staging:webservers") == ["web1"]
    assert hosts("!phoenix") == ["web1", "web3", "foo.example.com", "db1"]  # only exclusions: from all
    assert hosts("&staging") == ["web1", "web2", "db1"]
    assert hosts("web2") == ["web2"]
    assert hosts("web*") == ["web1", "web2", "web3", "foo.example.com"]  # group webservers + hosts web*
    assert hosts("*.example.com") == ["foo.example.com"]
    assert hosts("~web[13]") == ["web1", "web3"]
    assert hosts(r"~(db|web)\d") == ["web1", "web2", "web3", "db1"]
    assert hosts("nonexistent") == []
    assert hosts("webservers:&nonexistent") == []


def test_subscripts(model: InventoryModel) -> None:
    def hosts(pattern: str) -> list[str]:
        return match_hosts(model, pattern)

    assert hosts("nonexistent[0]") == []  # as ansible-core: a subscript of nothing is nothing
    assert hosts("webservers[0]") == ["web1"]
    assert hosts("webservers[-1]") == ["foo.example.com"]
    assert hosts("webservers[0:1]") == ["web1", "web2"]
    assert hosts("webservers[1:3]") == ["web2", "web3", "foo.example.com"]
    assert hosts("webservers[2:]") == ["web3", "foo.example.com"]
    assert hosts("webservers[1:2]:dbservers[0]") == ["web2", "web3", "db1"]
    with pytest.raises(InventoryError, match="subscripted"):
        hosts("webservers[9]")


def test_bad_patterns(model: InventoryModel) -> None:
    with pytest.raises(InventoryError, match="invalid host pattern"):
        match_hosts(model, "~web(")
    with pytest.raises(InventoryError, match="host pattern must be a string"):
        match_hosts(model, ["web1"])  # type: ignore[arg-type]


_HYPOTHESIS_MODEL = model_of(("web", ["web1", "web2", "web3"]), ("db", ["db1", "web2"]), children=(("x", "web"),))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("webdsrvx0129*?~!&:,[]()-.^$\\| ")), max_size=20) | st.text(max_size=20))
def test_hosts_never_crashes(pattern: str) -> None:
    try:
        out = match_hosts(_HYPOTHESIS_MODEL, pattern)
    except InventoryError:
        return
    assert isinstance(out, list) and all(h in _HYPOTHESIS_MODEL.hosts for h in out)
