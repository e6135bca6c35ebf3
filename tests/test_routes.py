"""Which host goes through which relay (fanout/_routes.py): picked runs, a host's own via, and what is refused."""

from __future__ import annotations

import math

import pytest

from fanout import _routes


def ssh_hosts(count: int) -> dict[str, dict]:
    return {f"h{i:03d}": {"host": f"10.0.0.{i}"} for i in range(count)}


def relays_and_runs(routes: dict[str, str], names: list[str]) -> list[list[str]]:
    """Each relay with the hosts behind it, in the fleet's order: [relay, behind...]."""
    runs: list[list[str]] = []
    for name in names:
        if name not in routes:
            runs.append([name])
        else:
            assert routes[name] == runs[-1][0], f"{name} is not behind the relay of its run"
            runs[-1].append(name)
    return runs


@pytest.mark.parametrize(("count", "relays"), [(10, 1), (10, 3), (600, 8), (7, 7), (5, 2)])
def test_n_relays_each_carry_a_run_of_the_hosts_after_it(count: int, relays: int) -> None:
    hosts = ssh_hosts(count)
    routes = _routes.plan(hosts, relays)
    runs = relays_and_runs(routes, list(hosts))
    assert len(runs) == relays
    sizes = [len(run) for run in runs]
    assert max(sizes) - min(sizes) <= 1  # near-equal runs
    assert sum(sizes) == count


@pytest.mark.parametrize(("count", "expected"), [(1, 0), (3, 0), (4, 2), (16, 4), (600, round(math.sqrt(600)))])
def test_auto_takes_the_square_root_and_none_for_a_few_hosts(count: int, expected: int) -> None:
    routes = _routes.plan(ssh_hosts(count), "auto")
    assert len(set(routes.values())) == expected
    assert len(routes) == (count - expected if expected else 0)


def test_a_hosts_own_via_is_kept_and_it_is_no_candidate() -> None:
    hosts = ssh_hosts(6)
    hosts["h005"]["via"] = "h000"
    routes = _routes.plan(hosts, 2)
    assert routes["h005"] == "h000"
    free = [name for name in hosts if name != "h005"]
    assert relays_and_runs({k: v for k, v in routes.items() if k != "h005"}, free)[0][0] == "h000"


def test_local_hosts_are_never_relays_nor_relayed() -> None:
    hosts = {**ssh_hosts(4), "localhost": {"connection": "local"}}
    routes = _routes.plan(hosts, 2)
    assert "localhost" not in routes and "localhost" not in routes.values()
    hosts["localhost"]["via"] = "h000"
    with pytest.raises(ValueError, match="over SSH"):
        _routes.plan(hosts)


def test_more_relays_than_hosts_says_so_and_takes_them_all() -> None:
    with pytest.warns(UserWarning, match="relays=9, but 3 hosts could be relays"):
        routes = _routes.plan(ssh_hosts(3), 9)
    assert routes == {}


@pytest.mark.parametrize(
    ("via", "message"),
    [
        ({"h000": "h001", "h001": "h000"}, "loop: h000 -> h001 -> h000"),
        ({"h000": "h000"}, "loop: h000 -> h000"),
        ({"h000": "nowhere"}, "its relay 'nowhere' is not a host"),
        ({"h000": ""}, "via must name a host"),
        ({"h000": 7}, "via must name a host"),
    ],
)
def test_bad_routes_are_refused_before_anything_connects(via: dict, message: str) -> None:
    hosts = ssh_hosts(3)
    for name, relay in via.items():
        hosts[name]["via"] = relay
    with pytest.raises(ValueError, match=message):
        _routes.plan(hosts)


def test_a_chain_longer_than_the_limit_is_refused() -> None:
    hosts = ssh_hosts(_routes.MAX_CHAIN + 2)
    names = list(hosts)
    for name, relay in zip(names[1:], names, strict=False):
        hosts[name]["via"] = relay
    with pytest.raises(ValueError, match="relays in a row"):
        _routes.plan(hosts)


@pytest.mark.parametrize("relays", [-1, 1.5, "many", True, None])
def test_a_bad_relay_count_is_refused(relays: object) -> None:
    with pytest.raises(ValueError, match="relays must be a whole number"):
        _routes.plan(ssh_hosts(3), relays)  # type: ignore[arg-type]


def test_waves_open_relays_before_the_hosts_behind_them() -> None:
    routes = {"c": "b", "b": "a", "d": "a"}
    assert _routes.waves(["d", "c", "b", "a", "e"], routes) == [["a", "e"], ["d", "b"], ["c"]]
