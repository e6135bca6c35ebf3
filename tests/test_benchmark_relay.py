"""benchmarks/relay.py without the fleet: its arguments, its plan's round trip, and the table's verdicts."""

from __future__ import annotations

import pytest

from benchmarks import relay as bench
from benchmarks.fanout import HostEntry


def test_defaults_are_the_issues_run() -> None:
    args = bench.parse_args([])
    assert (args.hosts, args.relays, args.per_sshd, args.relay_auth) == (600, 8, 10, "agent")


@pytest.mark.parametrize("argv", [["--hosts", "0"], ["--relays", "0"], ["--hosts", "10", "--relays", "6"]])
def test_bad_sizes_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(argv)


def test_the_plan_survives_its_trip_to_the_worker() -> None:
    entry = HostEntry("h#1", "127.0.0.1", 2222, "tester", "/k", "/kh")
    plan = bench.Plan([entry], 8, "curve25519-sha256", "line\n", forward_agent=True)
    assert bench.Plan.from_json(plan.to_json()) == plan


def test_the_table_marks_each_target_and_says_what_was_not_measured() -> None:
    results = bench.Results()
    results.samples[bench.DIRECT] = [bench.Sample(bench.DIRECT, seconds=30, cpu_seconds=10, socket_bytes_sent=10**8)]
    results.samples[bench.RELAYS] = [bench.Sample(bench.RELAYS, seconds=20, cpu_seconds=1, socket_bytes_sent=10**8)]
    results.samples[bench.MITOGEN] = [bench.Sample(bench.MITOGEN, error="RuntimeError: boom")]
    results.skipped[bench.MITOGEN_VIA] = "mitogen is not installed"
    rows = bench.table_rows(results, hosts=600, relays=8)
    relays = rows[2]
    assert relays[0] == "fanout, through 8 relays"
    assert relays[-3:] == ("0.10x (<= 0.2 ok)", "1.00x (<= 0.1 MISSED)", "0.67x (<= 1 ok)")
    assert rows[3][-1] == "not measured: RuntimeError: boom"
    assert rows[4][-1] == "not measured: mitogen is not installed"
    assert bench.format_table(rows).count("\n") == len(rows)  # a rule under the header
