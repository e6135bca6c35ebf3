"""benchmarks/fanout.py on a tiny scale: every contender runs in its worker and the table comes out whole."""

from __future__ import annotations

import argparse

from benchmarks import fanout as bench


def test_two_hosts_one_repeat_make_a_full_table(fleet, tmp_path) -> None:
    first = fleet.hosts[0]
    entries = bench.host_entries([first], 2)  # two entries on one sshd, as --per-sshd 2 makes them
    plan = bench.make_plan(entries)
    assert plan.paramiko_kex  # paramiko's debug log still names the key exchange it agreed on

    results = bench.measure(plan, 1, tmp_path, kinds=(*bench.KINDS, bench.SILENT_KIND))

    for kind in (*bench.KINDS, bench.SILENT_KIND):
        assert results.errors(kind) == [], kind
        (sample,) = results.ok(kind)
        assert sample.seconds > 0 and sample.peak_kib >= sample.rss_before_kib > 0
    assert results.ok("mitogen")[0].children == 2  # one ssh client per host, seen by the probe
    args = argparse.Namespace(hosts=2, per_sshd=2, repeat=1, suite=first.suite)
    table = bench.report(results, args, [first], plan)
    lines = table.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")] == [
        "measurement",
        *bench.KINDS,
        "fanout/baseline",
        "mitogen/fanout",
    ]
    timing = next(line for line in lines if line.startswith("connect + one call + close, 2 hosts"))
    cells = [cell.strip() for cell in timing.split("|")]
    assert all(cell.endswith(" ms") for cell in cells[1:4]), cells
    assert cells[4].endswith(("ok)", "MISSED)")) and cells[5].endswith(("ok)", "MISSED)")), cells
    silent = next(line for line in lines if "1 silent host among 2" in line)
    assert "of all healthy" in silent and " ms" in silent  # the other host answered while one said nothing
    assert "FAILED" not in table and "SKIPPED" not in table
