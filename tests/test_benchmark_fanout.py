"""benchmarks/fanout.py on a tiny scale: every contender runs in its worker and the table comes out whole."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import fanout as bench


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("|")]


def test_two_hosts_one_repeat_make_a_full_table(fleet, tmp_path) -> None:
    first = fleet.hosts[0]
    entries = bench.host_entries([first], 2)  # two entries on one sshd, as --per-sshd 2 makes them
    plan = bench.make_plan(entries, rounds=3)
    assert plan.paramiko_kex  # paramiko's debug log still names the key exchange it agreed on
    assert bench.Plan.from_json(plan.to_json()) == plan  # what the workers read back

    kinds = (*bench.KINDS, bench.SILENT_KIND, *bench.WARM_KINDS)
    results = bench.measure(plan, 1, tmp_path, kinds=kinds)

    for kind in kinds:
        assert results.errors(kind) == [], kind
    for kind in (*bench.KINDS, bench.SILENT_KIND):
        (sample,) = results.ok(kind)
        assert sample.seconds > 0 and sample.peak_kib >= sample.rss_before_kib > 0
    assert results.ok("mitogen")[0].children == 2  # one ssh client per host, seen by the probe
    ways = {bench.WARM_FANOUT_KIND: [bench.FLEET_WAY, bench.LOOP_WAY], bench.WARM_MITOGEN_KIND: [bench.MITOGEN_WAY]}
    for kind, names in ways.items():
        (sample,) = results.ok(kind)
        assert list(sample.rounds_per_second) == names, kind  # every way timed, and only those
        for name in names:
            assert len(sample.rounds_per_second[name]) == bench.WARM_BLOCKS
            assert all(rate > 0 for rate in sample.rounds_per_second[name])
            assert len(sample.cpu_per_round[name]) == bench.WARM_BLOCKS

    args = argparse.Namespace(hosts=2, per_sshd=2, repeat=1, suite=first.suite, rounds=3)
    table = bench.report(results, args, [first], plan)
    lines = table.splitlines()
    assert _cells(lines[0]) == ["measurement", *bench.KINDS, "fanout/baseline", "mitogen/fanout"]
    timing = next(line for line in lines if line.startswith("connect + one call + close, 2 hosts"))
    cells = _cells(timing)
    assert all(cell.endswith(" ms") for cell in cells[1:4]), cells
    assert cells[4].endswith(("ok)", "MISSED)")) and cells[5].endswith(("ok)", "MISSED)")), cells
    silent = next(line for line in lines if "1 silent host among 2" in line)
    assert "of all healthy" in silent and " ms" in silent  # the other host answered while one said nothing
    _check_warm_rows(lines, hosts=2, rounds=3)
    assert "FAILED" not in table and "SKIPPED" not in table

    # --only warm: the same warm samples alone make a table of the warm rows, and no connect row.
    warm_only = bench.Results()
    for kind in bench.WARM_KINDS:
        warm_only.samples[kind] = results.samples[kind]
    table = bench.report(warm_only, args, [first], plan)
    lines = table.splitlines()
    assert _cells(lines[0]) == ["measurement", *bench.KINDS, "fanout/baseline", "mitogen/fanout"]
    assert not any(line.startswith("connect + one call") or "silent host" in line for line in lines)
    assert "time = first connect to last close" not in table
    _check_warm_rows(lines, hosts=2, rounds=3)
    assert bench.measured(warm_only, "warm") and not bench.measured(warm_only, None)


def _check_warm_rows(lines: list[str], hosts: int, rounds: int) -> None:
    """The warm heading, then Fleet.call, the raw loop, Mitogen and the CPU row, each value in its column."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"warm fan-out, {hosts} hosts connected"))
    assert f"block of {rounds} rounds" in lines[start]
    fleet_call, loop, mitogen, cpu = (_cells(line) for line in lines[start + 1 : start + 5])
    assert fleet_call[0] == "fleet.call(os.getpid), one Result per host"
    assert loop[0].startswith("raw loop: ctx.call_async on every context")
    assert mitogen[0].startswith("mitogen: ctx.call_async on every context")
    assert cpu[0].startswith("master CPU per round")
    for row in (fleet_call, loop):
        assert row[1] == "-" and row[3] == "-", row
        assert row[2].endswith(")") and "/s (" in row[2], row  # "1,204/s (1,112..1,295)"
        assert row[5].endswith(("ok)", "MISSED)")) and "mitogen's (>= 1.5" in row[5], row
    assert fleet_call[4].endswith(("ok)", "MISSED)")) and "the raw loop's (>= 0.95" in fleet_call[4], fleet_call
    assert "/s (" in mitogen[3] and mitogen[2] == "-", mitogen
    assert cpu[2].endswith(" ms") and " / " in cpu[2] and cpu[3].endswith(" ms"), cpu


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (*bench.KINDS, bench.SSH_KEX_KIND, bench.SILENT_KIND, *bench.WARM_KINDS)),
        (["--no-ssh-kex-row"], (*bench.KINDS, bench.SILENT_KIND, *bench.WARM_KINDS)),
        (["--only", "connect"], (*bench.KINDS, bench.SSH_KEX_KIND, bench.SILENT_KIND)),
        (["--only", "warm", "--rounds", "50"], bench.WARM_KINDS),
    ],
)
def test_only_picks_the_rows_contenders(argv: list[str], expected: tuple[str, ...]) -> None:
    args = bench.parse_args(argv)
    plan = bench.Plan([], "curve25519-sha256", "curve25519-sha256", args.rounds)
    assert bench.kinds_to_run(args.only, args.no_ssh_kex_row, plan) == expected
    assert args.rounds == (50 if "--rounds" in argv else bench.ROUNDS)


def test_rounds_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
