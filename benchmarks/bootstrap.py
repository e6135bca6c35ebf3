"""Measure what fanout's bootstrap costs over raw paramiko, on a Docker fleet of real sshd hosts.

Run from the repository root: ``python -m benchmarks.bootstrap [--hosts 8] [--repeat 5] [--suite bookworm]``.

Why side by side in one run: absolute times depend on the machine, its load and
the container runtime; a ratio against a paramiko baseline measured minutes
apart on the same hosts does not. The script brings the fleet up itself and
always removes it. It reports and never asserts: missed targets are marked
MISSED, and the exit status is 0 whenever the measurements could be made.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import os
import platform
import shlex
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

import fanout
from benchmarks.delay_proxy import DelayProxy

if TYPE_CHECKING:
    from tests.fleet.hosts import FleetHost

DELAY = 0.025  # one way, so a round trip through the proxy costs 50 ms
BASELINE_COMMAND = "python3 -c 'print(1)'"
ECHO_COMMAND = "python3 -c " + shlex.quote("import sys\nfor l in sys.stdin: sys.stdout.write(l); sys.stdout.flush()")
TARGET_RATIO_CONNECT = 1.15
TARGET_ROUND_TRIPS = 8.0
TARGET_BYTES_UP = 12_000  # "12 KB", read as the stricter 12,000 bytes
TARGET_RATIO_WARM = 1.3

# The user module: importable on the master only (a temporary directory on sys.path),
# so the first call makes fanout carry it to the host by import on demand.
USER_SOURCE = '''\
"""Written by benchmarks/bootstrap.py at run time; only the master has it."""

import os


def func():
    return os.getpid()


def noop():
    return None
'''


def log(line: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Endpoint:
    """How to reach one sshd: directly, or through a delay proxy with its own known_hosts file."""

    port: int
    user: str
    key_path: Path
    known_hosts: Path


def direct(host: FleetHost) -> Endpoint:
    return Endpoint(host.port, host.user, host.key_path, host.known_hosts)


def via_proxy(host: FleetHost, proxy: DelayProxy, workdir: Path) -> Endpoint:
    """The host key is checked against the name the client dials, so name the proxy's port."""
    key_type, key_data = host.known_hosts.read_text().split()[1:3]
    known = workdir / f"known_hosts.proxy.{proxy.port}"
    known.write_text(f"[127.0.0.1]:{proxy.port} {key_type} {key_data}\n")
    return Endpoint(proxy.port, host.user, host.key_path, known)


# -- the two ways to run something on a host ---------------------------------------------


def paramiko_connect(ep: Endpoint) -> paramiko.SSHClient:
    """What a careful paramiko user writes: strict host key, only the given key."""
    client = paramiko.SSHClient()
    client.get_host_keys().load(str(ep.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=ep.port,
        username=ep.user,
        key_filename=str(ep.key_path),
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    return client


def fanout_connect(ep: Endpoint) -> fanout.Context:
    return fanout.connect(
        "127.0.0.1",
        port=ep.port,
        user=ep.user,
        identity_file=ep.key_path,
        known_hosts=ep.known_hosts,
        ssh_config=False,
        host_key_policy="strict",
    )


@dataclass
class Session:
    """One connect + first call + close: when the answer came, and when it was all over."""

    started: float
    answered: float
    closed: float
    stats: dict | None = None

    @property
    def to_answer(self) -> float:
        return self.answered - self.started

    @property
    def total(self) -> float:
        return self.closed - self.started


def baseline_session(ep: Endpoint) -> Session:
    started = time.perf_counter()
    client = paramiko_connect(ep)
    try:
        _, stdout, _ = client.exec_command(BASELINE_COMMAND)
        answer = stdout.read()
        answered = time.perf_counter()
    finally:
        client.close()
    closed = time.perf_counter()
    if answer != b"1\n":
        raise RuntimeError(f"baseline: unexpected answer {answer!r}")
    return Session(started, answered, closed)


def fanout_session(ep: Endpoint, module) -> Session:
    started = time.perf_counter()
    ctx = fanout_connect(ep)
    try:
        pid = ctx.call(module.func)
        answered = time.perf_counter()
        stats = ctx.stats
    finally:
        ctx.close()
    closed = time.perf_counter()
    if not isinstance(pid, int):
        raise RuntimeError(f"fanout: unexpected answer {pid!r}")
    return Session(started, answered, closed, stats)


def parallel(run: Callable[[Endpoint], Session], endpoints: list[Endpoint]) -> float:
    """Wall time for one session per host, each in its own thread, all started together."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(endpoints) + 1)

    def one(ep: Endpoint) -> None:
        barrier.wait()
        try:
            run(ep)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(ep,), daemon=True) for ep in endpoints]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def _read_line(channel: paramiko.Channel, pending: bytearray) -> bytes:
    while b"\n" not in pending:
        data = channel.recv(65536)
        if not data:
            raise EOFError("the echo loop ended")
        pending += data
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return line


def baseline_warm(ep: Endpoint, calls: int) -> float:
    """Seconds per line echoed by a remote python loop on an open exec channel."""
    client = paramiko_connect(ep)
    try:
        channel = client.get_transport().open_session()
        channel.exec_command(ECHO_COMMAND)
        pending = bytearray()
        channel.sendall(b"warm\n")
        _read_line(channel, pending)
        started = time.perf_counter()
        for _ in range(calls):
            channel.sendall(b"ping\n")
            if _read_line(channel, pending) != b"ping":
                raise RuntimeError("baseline: the echo loop answered something else")
        elapsed = time.perf_counter() - started
        channel.close()
    finally:
        client.close()
    return elapsed / calls


def fanout_warm(ep: Endpoint, module, calls: int) -> float:
    """Seconds per ``ctx.call(noop)`` on a context whose child already has the module."""
    with fanout_connect(ep) as ctx:
        ctx.call(module.noop)
        started = time.perf_counter()
        for _ in range(calls):
            ctx.call(module.noop)
        return (time.perf_counter() - started) / calls


# -- the measurements --------------------------------------------------------------------


@dataclass
class Results:
    """Raw samples per measurement, keyed "baseline" and "fanout"; the report takes medians."""

    connect_1: dict[str, list[float]]
    connect_n: dict[str, list[float]]
    cold: dict[str, Session]
    proxy_seconds: dict[str, list[float]]
    proxy_total: dict[str, list[float]]
    proxy_bytes_up: dict[str, list[int]]
    proxy_bytes_down: dict[str, list[int]]
    fanout_stats: dict
    warm: dict[str, list[float]]


def _order(kinds: tuple[str, ...], repeat: int) -> tuple[str, ...]:
    """Alternate who goes first, so neither always runs on a cache the other warmed."""
    return kinds if repeat % 2 == 0 else kinds[::-1]


def measure(fleet_hosts: list[FleetHost], module, repeat: int, calls: int, workdir: Path) -> Results:
    """Every measurement, baseline and fanout interleaved in each repeat so drift hits both alike."""
    endpoints = [direct(h) for h in fleet_hosts]
    first = endpoints[0]
    both = ("baseline", "fanout")
    res = Results(
        connect_1={k: [] for k in both},
        connect_n={k: [] for k in both},
        cold={},
        proxy_seconds={k: [] for k in both},
        proxy_total={k: [] for k in both},
        proxy_bytes_up={k: [] for k in both},
        proxy_bytes_down={k: [] for k in both},
        fanout_stats={},
        warm={k: [] for k in both},
    )
    runs = {"baseline": baseline_session, "fanout": lambda ep: fanout_session(ep, module)}

    # The first session of each kind in this process pays one-time costs (imports, building
    # stage 1, crypto setup): shown on its own line, kept out of the medians.
    log("bench: cold first sessions")
    for kind in both:
        res.cold[kind] = runs[kind](first)

    log(f"bench: connect + first call, 1 host and {len(endpoints)} in parallel, x{repeat}")
    for i in range(repeat):
        for kind in _order(both, i):
            res.connect_1[kind].append(runs[kind](first).total)
        for kind in _order(both, i):
            res.connect_n[kind].append(parallel(runs[kind], endpoints))

    log(f"bench: through the delay proxy ({DELAY * 1000:g} ms each way), x{repeat}")
    with DelayProxy(fleet_hosts[0].port, delay=DELAY) as proxy:
        ep = via_proxy(fleet_hosts[0], proxy, workdir)
        for i in range(repeat):
            for kind in _order(both, i):
                proxy.reset_counters()
                session = runs[kind](ep)
                if not proxy.wait_idle(10):
                    raise RuntimeError("the proxied connection did not end after close()")
                res.proxy_seconds[kind].append(session.to_answer)
                res.proxy_total[kind].append(session.total)
                res.proxy_bytes_up[kind].append(proxy.bytes_up)
                res.proxy_bytes_down[kind].append(proxy.bytes_down)
                if session.stats is not None:
                    res.fanout_stats = session.stats

    log(f"bench: warm call round trips, {calls} per repeat, x{repeat}")
    warm = {"baseline": baseline_warm, "fanout": lambda ep, n: fanout_warm(ep, module, n)}
    for i in range(repeat):
        for kind in _order(both, i):
            res.warm[kind].append(warm[kind](first, calls))
    return res


# -- the report --------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


def _verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def report(res: Results, args, fleet_hosts: list[FleetHost]) -> str:
    med = statistics.median
    rt = 2 * DELAY
    rows: list[tuple[str, ...]] = [("measurement", "baseline", "fanout", "ratio (or round trips)", "target")]

    def ratio_row(name: str, values: dict[str, list[float]], fmt, target: float) -> None:
        base, mine = med(values["baseline"]), med(values["fanout"])
        ratio = mine / base
        rows.append((name, fmt(base), fmt(mine), f"{ratio:.3f}x", f"<= {target:.2f}x {_verdict(ratio <= target)}"))

    ratio_row("(a) connect + first call + close, 1 host", res.connect_1, _ms, TARGET_RATIO_CONNECT)
    ratio_row(
        f"(a) connect + first call + close, {len(fleet_hosts)} hosts in parallel",
        res.connect_n,
        _ms,
        TARGET_RATIO_CONNECT,
    )
    base_rt, mine_rt = (med(res.proxy_seconds[k]) / rt for k in ("baseline", "fanout"))
    rows.append(
        (
            f"(b) connect + first call at {rt * 1000:g} ms RTT (until the answer)",
            f"{base_rt:.1f} RT",
            f"{mine_rt:.1f} RT",
            f"{mine_rt:.1f} RT ({mine_rt - base_rt:+.1f})",
            f"<= {TARGET_ROUND_TRIPS:g} RT {_verdict(mine_rt <= TARGET_ROUND_TRIPS)}",
        )
    )
    base_up, mine_up = (med(res.proxy_bytes_up[k]) for k in ("baseline", "fanout"))
    rows.append(
        (
            "(c) bytes master -> host for (b), whole connection",
            f"{base_up:,.0f} B",
            f"{mine_up:,.0f} B",
            f"{mine_up / base_up:.2f}x ({mine_up - base_up:+,.0f} B)",
            f"<= {TARGET_BYTES_UP:,} B {_verdict(mine_up <= TARGET_BYTES_UP)}",
        )
    )
    ratio_row(f"(d) warm call round trip, 1 host ({args.calls} calls)", res.warm, _us, TARGET_RATIO_WARM)

    info: list[tuple[str, ...]] = [
        (
            "    cold first session in this process (not in medians)",
            _ms(res.cold["baseline"].total),
            _ms(res.cold["fanout"].total),
            f"{res.cold['fanout'].total / res.cold['baseline'].total:.2f}x",
            "-",
        ),
        (
            f"    (b) including close, at {rt * 1000:g} ms RTT",
            f"{med(res.proxy_total['baseline']) / rt:.1f} RT",
            f"{med(res.proxy_total['fanout']) / rt:.1f} RT",
            "-",
            "-",
        ),
        (
            "    (c) bytes host -> master for (b)",
            f"{med(res.proxy_bytes_down['baseline']):,.0f} B",
            f"{med(res.proxy_bytes_down['fanout']):,.0f} B",
            "-",
            "-",
        ),
    ]
    table = rows + info
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]

    def line(row: tuple[str, ...]) -> str:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)]
        return " | ".join([first, *rest, row[-1].ljust(widths[-1])]).rstrip()

    out = [line(table[0]), "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in rows[1:]]
    out += [line(row) for row in info]
    versions = sorted({".".join(map(str, h.python_version)) for h in fleet_hosts})
    stats = res.fanout_stats
    out += [
        "",
        f"medians of {args.repeat} repeats; RT = wall time / {rt * 1000:g} ms; baseline = raw paramiko "
        f"{paramiko.__version__} ({BASELINE_COMMAND!r}, and a python echo loop for (d))",
        f"fanout's own count for (b): {stats.get('bytes_sent', 0):,} B sent, {stats.get('bytes_received', 0):,} B "
        f"received, {stats.get('modules_sent', 0)} module(s) sent, {stats.get('module_requests', 0)} module request(s)",
        f"hosts: {len(fleet_hosts)} x {args.suite} (Python {', '.join(versions)}), sshd in Docker on 127.0.0.1",
    ]
    return "\n".join(out)


def header() -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"fanout bootstrap benchmark, {now}: {platform.node()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform(terse=True)}"
    )


# -- setup and teardown ------------------------------------------------------------------


@contextlib.contextmanager
def user_module(workdir: Path) -> Iterator[object]:
    """Write the user module to a directory only this process has on sys.path, and import it."""
    name = f"fanout_bench_user_{uuid.uuid4().hex[:8]}"
    directory = workdir / "user_src"
    directory.mkdir()
    (directory / f"{name}.py").write_text(USER_SOURCE)
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop(name, None)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def fleet_of(suite: str, count: int, workdir: Path):
    """Bring up ``count`` hosts of ``suite``; remove them however the run ends (SIGTERM included)."""
    from tests.fleet import engine, hosts, images

    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    fleet = None
    try:
        client = engine.docker_engine(log)
        reaped = hosts.reap_orphans(client)
        if reaped:
            log(f"fleet: removed {reaped} container(s) left by dead runs")
        images.ensure_images(client, [suite], log)
        started = time.monotonic()
        fleet = hosts.start_fleet(client, [suite], count, workdir / "fleet")
        log(f"fleet: {len(fleet.hosts)} x {suite} up in {time.monotonic() - started:.1f} s")
        yield fleet
    finally:
        if fleet is not None:
            fleet.close()
            log("fleet: removed")
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8, help="hosts in the fleet, all used for the parallel row")
    parser.add_argument("--repeat", type=int, default=5, help="repeats of each measurement; the table shows medians")
    parser.add_argument("--suite", default="bookworm", choices=("bullseye", "bookworm", "trixie"), help="Debian suite")
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per repeat for the warm row")
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.repeat < 1 or args.calls < 1:
        parser.error("--hosts, --repeat and --calls must be positive")

    from tests.fleet.engine import FleetUnavailable

    try:
        with tempfile.TemporaryDirectory(prefix="fanout-bench-") as tmp:
            workdir = Path(tmp)
            with fleet_of(args.suite, args.hosts, workdir) as fleet, user_module(workdir) as module:
                results = measure(fleet.hosts, module, args.repeat, args.calls, workdir)
            print(header())
            print()
            print(report(results, args, fleet.hosts))
    except KeyboardInterrupt:
        log("interrupted; the fleet was removed")
        return 130
    except FleetUnavailable as exc:
        log(f"error: the fleet could not start: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
