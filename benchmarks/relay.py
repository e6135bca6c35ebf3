"""Reach a large fleet directly and through relays: the master's CPU, bytes sent and peak RSS, fanout beside Mitogen.

Run from the repository root: ``python -m benchmarks.relay [--hosts 600] [--relays 8] [--per-sshd 10] [--repeat 1]``

Why this shape: relays exist to take the SSH work of a large fleet off the
master (docs/relays.rst), so the question is what the master pays to reach
every host once, connect + one call of a function from a 200 KB package only
the master has, directly and through N relays, in the same run. The host
entries are spread over the fleet's sshd containers as benchmarks/fanout.py
spreads them, and each contender runs in a fresh worker process (its helpers
are reused from there). Mitogen does the same with ``router.ssh`` and
``router.ssh(via=relay)``.

Bytes sent: the TCP payload the master side put on its sockets, read with
``ss -tinp`` (``bytes_sent``, SSH framing and encryption included) for every
socket of the worker and of its child processes, once every answer is in and
before anything closes. That is the truth for every contender alike: Mitogen's
``ssh`` clients own its sockets, and a relayed host's frames travel inside its
relay's connection, so summing every context's ``stats["bytes_sent"]`` would
count them twice. fanout's own count, summed over the directly connected
contexts only (those not in ``Fleet.routes``), is shown beside it as a check.
``/proc/self/io``'s ``wchar`` would not do: ``send()`` on a socket is not counted there.

The relays log in onward with the fleet's key held by an ssh-agent the script
starts (``SSH_AUTH_SOCK`` in the workers): Fleet forwards it to its relays, and
Mitogen's relays get it with ``ssh -A`` (``--relay-auth agent``, the default, as
docs/relays.rst advises). ``--relay-auth keys`` copies the key to every
container's login user's ``~/.ssh/id_ed25519`` instead (keys of their own).
The script brings the fleet up itself and
always removes it (and the agent); it reports and never asserts (a missed
target is marked MISSED).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import fanout as bench
from benchmarks.fanout import HostEntry, log

DIRECT, RELAYS, MITOGEN, MITOGEN_VIA = "fanout direct", "fanout relays", "mitogen direct", "mitogen via"
KINDS = (DIRECT, RELAYS, MITOGEN, MITOGEN_VIA)
MITOGEN_KINDS = (MITOGEN, MITOGEN_VIA)
TARGET_CPU_PER_HOST = 1 / 5  # at most: master CPU per host through relays over direct
TARGET_BYTES_SENT = 1 / 10  # at most: master bytes sent through relays over direct
TARGET_WALL = 1.0  # at most: wall time through relays over direct
PACKAGE_MODULES = 4  # modules of data in the generated package, besides its __init__
PACKAGE_BYTES = 200 * 1024  # their source in all, about
CONNECT_TIMEOUT = 300  # seconds, both tools: 600 handshakes at once on two cores take far longer than 10 s (fanout's
# default: every host timed out) or 30 s (Mitogen's)
WORKER_TIMEOUT = 900.0  # seconds for one worker: Mitogen's 600 hosts take a few minutes here
SETTLE = 2.0  # seconds between workers, so the hosts finish tearing down the previous one's sessions
AUTH_TEXT = {
    "keys": "the fleet's key in each container's ~/.ssh/id_ed25519",
    "agent": "the fleet's key in a local ssh-agent forwarded to them",
}
IDENTITY_WARNING = ".*reached through relays have identity files"  # Fleet's warning: expected here


# -- the package only the master has ------------------------------------------------------------

_INIT = '''"""A package only the benchmark's master has: fanout and Mitogen import it on each host on demand."""

import os
import tempfile

from . import {imports}

TOTAL = sum(len(module.DATA) for module in ({imports}))


def call():
    """The call: the package is imported on the host by now; its remote pid says which process answered."""
    if TOTAL <= 0:
        raise AssertionError("the package's data is missing")
    return os.getpid()


def save_text(path, text):
    """Mitogen's relays keep the fleet's known_hosts here (written whole, then renamed, as relays share hosts)."""
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temporary, path)
    return path
'''


@contextlib.contextmanager
def user_package(workdir: Path) -> Iterator[Any]:
    """Write a ~200 KB package to a directory only this process has on sys.path, and import it.

    Its data is hex of random bytes, which zlib halves at best: what real code compresses to, about.
    """
    name = f"fanout_bench_pkg_{uuid.uuid4().hex[:8]}"
    root = workdir / "package_src"
    package = root / name
    package.mkdir(parents=True)
    modules = [f"data_{index}" for index in range(PACKAGE_MODULES)]
    per_module = PACKAGE_BYTES // PACKAGE_MODULES
    for module in modules:
        lines = [f'"""Data of {module}: only the master has it."""', "", "DATA = ("]
        size = 0
        while size < per_module:
            line = f'    "{os.urandom(32).hex()}",'
            lines.append(line)
            size += len(line) + 1
        lines.append(")")
        (package / f"{module}.py").write_text("\n".join(lines) + "\n")
    (package / "__init__.py").write_text(_INIT.format(imports=", ".join(modules)))
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(root))
        for loaded in [key for key in sys.modules if key == name or key.startswith(f"{name}.")]:
            del sys.modules[loaded]


def package_size(package: Any) -> int:
    """Bytes of the package's source, all modules."""
    return sum(path.stat().st_size for path in Path(package.__file__).parent.glob("*.py"))


# -- what the master sent: every TCP socket of the worker and its children ------------------------


def process_tree() -> set[int]:
    """This process and every descendant still alive."""
    found, pending = {os.getpid()}, bench._children(str(os.getpid()))
    while pending:
        pid = pending.pop()
        found.add(int(pid))
        pending += bench._children(pid)
    return found


def socket_bytes_sent(pids: set[int]) -> int:
    """TCP payload bytes sent so far on the sockets these processes hold, from ``ss -tinp`` (``bytes_sent``)."""
    text = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout
    total, ours = 0, False
    for line in text.splitlines():
        if not line[:1].isspace():  # a socket's first line: addresses, then users:(("name",pid=N,fd=M),...)
            ours = bool(pids & {int(pid) for pid in re.findall(r"pid=(\d+)", line)})
            continue
        match = re.search(r"\bbytes_sent:(\d+)", line)
        if ours and match:
            total += int(match.group(1))
    return total


# -- the contenders: open every connection, one call per host, close everything -------------------


@dataclass(frozen=True)
class Plan:
    """What every worker gets: the host entries, the relays to use, and Mitogen's key exchange."""

    entries: list[HostEntry]
    relays: int
    mitogen_kex: str | None
    known_hosts: str  # every entry's known_hosts lines: Mitogen's relays check the hosts against them
    forward_agent: bool = False  # Mitogen's relays get ssh -A (fanout's forward the agent whenever there is one)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        return cls(entries=[HostEntry(**item) for item in data.pop("entries")], **data)


@dataclass
class Outcome:
    """What a run hands back besides the answers: fanout's own count of bytes on its direct connections."""

    answers: list[Any]
    counted_bytes_sent: int | None = None
    relays: int = 0


Probe = Callable[[], None]


def run_fanout(entries: Sequence[HostEntry], fn: Callable[[], Any], probe: Probe, relays: int = 0) -> Outcome:
    """``Fleet(hosts, forks=N, relays=relays)``: every connection opened, ``fleet.call(fn)``, closed."""
    from fanout.fleet import Fleet

    hosts = bench.fleet_hosts(entries)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", IDENTITY_WARNING, UserWarning)
        fleet = Fleet(hosts, forks=len(hosts), relays=relays, connect_timeout=CONNECT_TIMEOUT, **bench.fleet_options())
    with fleet:
        results = fleet.call(fn)
        counted = sum(ctx.stats["bytes_sent"] for name, ctx in fleet.contexts.items() if name not in fleet.routes)
        probe()
        used = len(set(fleet.routes.values()))
    failed = [result for result in results.values() if not result.ok]
    if failed:
        raise RuntimeError(f"fanout: {len(failed)} host(s) failed: {failed[:3]}")
    return Outcome([result.value for result in results.values()], counted, used)


def mitogen_options(entry: HostEntry, kex: str | None) -> dict[str, Any]:
    """benchmarks/fanout.py's ``router.ssh`` options, with a connect timeout a large fleet on two cores needs."""
    return {**bench.mitogen_ssh_options(entry, kex), "connect_timeout": CONNECT_TIMEOUT}


def run_mitogen(entries: Sequence[HostEntry], fn: Callable[[], Any], probe: Probe, kex: str | None) -> Outcome:
    """``router.ssh(...).call(fn)`` in one thread per host, then the broker shut down."""
    with bench.mitogen_router() as router:
        answers = bench.in_threads(lambda entry: router.ssh(**mitogen_options(entry, kex)).call(fn), entries)
        probe()
    return Outcome(answers)


def routes_of(entries: Sequence[HostEntry], relays: int) -> dict[str, str]:
    """The relay of each relayed entry, as ``Fleet(relays=N)`` picks them, so both tools use the same relays."""
    from fanout import _routes

    return _routes.plan({entry.name: {} for entry in entries}, relays)


def run_mitogen_via(
    entries: Sequence[HostEntry],
    fn: Callable[[], Any],
    probe: Probe,
    kex: str | None,
    relays: int,
    known_hosts: str,
    forward_agent: bool,
) -> Outcome:
    """The same relays as fanout's: ``router.ssh(..., ssh_args=[..., "-A"])`` to each, the fleet's known_hosts
    saved on it, then ``router.ssh(via=relay, ...)`` to each host behind it, one thread per host; ``fn`` on all.

    The relay's ``ssh`` runs with the forwarded agent (no identity file: the master's keys stay here) and checks
    host keys strictly against the saved file, as fanout's relays do with the lines the master sends.
    """
    routes = routes_of(entries, relays)
    relay_entries = [entry for entry in entries if entry.name in set(routes.values())]
    saved = f"/tmp/fanout-bench-known-hosts-{uuid.uuid4().hex[:8]}"
    package = sys.modules[fn.__module__]

    def open_relay(entry: HostEntry) -> Any:
        options = mitogen_options(entry, kex)
        context = router.ssh(**{**options, "ssh_args": [*options["ssh_args"], *(["-A"] if forward_agent else [])]})
        context.call(package.save_text, saved, known_hosts)
        return context

    def behind(entry: HostEntry, relay: Any) -> dict[str, Any]:
        options = mitogen_options(entry, kex)
        ssh_args = [
            arg if not arg.startswith("UserKnownHostsFile=") else f"UserKnownHostsFile={saved}"
            for arg in options["ssh_args"]
        ]
        return {**options, "identity_file": None, "ssh_args": ssh_args, "via": relay}

    with bench.mitogen_router() as router:
        contexts = dict(zip([e.name for e in relay_entries], bench.in_threads(open_relay, relay_entries), strict=True))

        def one(entry: HostEntry) -> Any:
            context = contexts.get(entry.name) or router.ssh(**behind(entry, contexts[routes[entry.name]]))
            return context.call(fn)

        answers = bench.in_threads(one, entries)
        probe()
    return Outcome(answers, relays=len(relay_entries))


Run = Callable[[Sequence[HostEntry], Callable[[], Any], Probe], Outcome]


def contender(kind: str, plan: Plan, relays: int) -> Run:
    """The function that fans out for ``kind``, with ``relays`` relays where it uses them."""
    if kind == DIRECT:
        return run_fanout
    if kind == RELAYS:
        return functools.partial(run_fanout, relays=relays)
    if kind == MITOGEN:
        return functools.partial(run_mitogen, kex=plan.mitogen_kex)
    return functools.partial(
        run_mitogen_via,
        kex=plan.mitogen_kex,
        relays=relays,
        known_hosts=plan.known_hosts,
        forward_agent=plan.forward_agent,
    )


# -- one sample, in a fresh worker process ---------------------------------------------------------


@dataclass
class Sample:
    """One contender's run, as measured inside its own worker process."""

    kind: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the worker's own CPU over the run, the probe left out
    children_cpu_seconds: float = 0.0  # its child processes' (Mitogen's ssh clients), once every answer is in
    children_pss_kib: int = 0
    rss_before_kib: int = 0
    peak_kib: int = 0  # VmHWM, reset just before the run
    socket_bytes_sent: int = 0
    counted_bytes_sent: int | None = None  # fanout's stats["bytes_sent"] of its direct connections
    relays: int = 0
    package_bytes: int = 0
    host_cpu_seconds: float | None = None
    error: str | None = None

    @property
    def master_cpu(self) -> float:
        return self.cpu_seconds + self.children_cpu_seconds


def worker(kind: str, plan: Plan) -> Sample:
    """Warm up on two hosts (one relayed, for the relay kinds), untimed, then measure the run on all of them.

    The warm-up pays what a process pays once whatever the fleet's size (imports, building stage 1, reading
    and compressing the package's modules), so the run's figures are what the hosts themselves cost.
    """
    sample = Sample(kind)
    with tempfile.TemporaryDirectory(prefix="fanout-bench-relay-") as tmp, user_package(Path(tmp)) as package:
        sample.package_bytes = package_size(package)
        fn = package.call
        contender(kind, plan, 1 if kind in (RELAYS, MITOGEN_VIA) else 0)(plan.entries[:2], fn, lambda: None)
        run = contender(kind, plan, plan.relays)
        gc.collect()
        bench.reset_peak_rss()
        sample.rss_before_kib = bench._status_kib("VmRSS")
        watch = bench.Stopwatch()
        cpu_before = bench.own_cpu()
        probe_cpu = 0.0

        def probe() -> None:
            nonlocal probe_cpu
            with watch.paused():
                started = bench.own_cpu()
                found = bench.descendants()
                sample.socket_bytes_sent = socket_bytes_sent(process_tree())
                probe_cpu = bench.own_cpu() - started
            sample.children_cpu_seconds = found.cpu_seconds
            sample.children_pss_kib = found.pss_kib

        outcome = run(plan.entries, fn, probe)
        sample.seconds = watch.elapsed()
        sample.cpu_seconds = bench.own_cpu() - cpu_before - probe_cpu
        sample.peak_kib = bench._status_kib("VmHWM")
        sample.counted_bytes_sent = outcome.counted_bytes_sent
        sample.relays = outcome.relays
    bench._check_answers(kind, outcome.answers, plan.entries)
    return sample


def worker_main(kind: str, spec: Path) -> int:
    """The worker's entry point: one JSON line on stdout, whatever happened."""
    plan = Plan.from_json(spec.read_text())
    try:
        sample = worker(kind, plan)
    except Exception as exc:
        sample = Sample(kind, error=f"{type(exc).__name__}: {exc}"[:2000])
    print(json.dumps(asdict(sample)), flush=True)
    return 0 if sample.error is None else 1


def run_worker(kind: str, spec: Path, agent: Path | None) -> Sample:
    """One sample in a fresh interpreter, with the agent holding the fleet's key if there is one; stderr passed on."""
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    if agent is not None:
        env["SSH_AUTH_SOCK"] = str(agent)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.relay", "--worker", kind, "--spec", str(spec)],
            cwd=bench.ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return Sample(kind, error=f"worker still running after {WORKER_TIMEOUT:.0f} s: killed")
    for line in proc.stderr.splitlines()[-20:]:
        log(f"  {kind}: {line}")
    try:
        return Sample(**json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return Sample(kind, error=f"worker exited {proc.returncode}: {tail[0]}")


# -- the measurement and the report ------------------------------------------------------------------


@dataclass
class Results:
    """Every sample per contender (failed ones too), and contenders that could not run at all."""

    samples: dict[str, list[Sample]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    skipped: dict[str, str] = field(default_factory=dict)

    def ok(self, kind: str) -> list[Sample]:
        return [s for s in self.samples[kind] if s.error is None]

    def median(self, kind: str, value: Callable[[Sample], float | None]) -> float | None:
        values = [v for v in map(value, self.ok(kind)) if v is not None]
        return statistics.median(values) if values else None


def measure(
    plan: Plan,
    repeat: int,
    workdir: Path,
    agent: Path | None,
    kinds: Sequence[str],
    host_cpu: Callable[[], float | None],
) -> Results:
    """``repeat`` rounds, each contender once per round in a fresh worker, who goes first rotating."""
    spec = workdir / "relay-plan.json"
    spec.write_text(plan.to_json())
    results = Results()
    for kind in kinds:
        reason = bench.unavailable("mitogen") if kind in MITOGEN_KINDS else None
        if reason:
            results.skipped[kind] = reason
    runnable = [kind for kind in kinds if kind not in results.skipped]
    for index in range(repeat):
        for kind in bench._order(index, runnable):
            before = host_cpu()
            started = time.monotonic()
            sample = run_worker(kind, spec, agent)
            time.sleep(SETTLE)
            after = host_cpu()
            if before is not None and after is not None:
                sample.host_cpu_seconds = after - before
            results.samples[kind].append(sample)
            outcome = f"error: {sample.error}" if sample.error else f"{sample.seconds:.1f} s"
            log(f"bench: repeat {index + 1}/{repeat}, {kind}: {outcome} (worker {time.monotonic() - started:.0f} s)")
    return results


def _target(ratio: float | None, target: float) -> str:
    if ratio is None:
        return "n/a"
    return f"{ratio:.2f}x (<= {target:g} {bench._verdict(ratio <= target)})"


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def table_rows(results: Results, hosts: int, relays: int) -> list[tuple[str, ...]]:
    """One row per contender; the last three columns: relays over direct (fanout's targets; Mitogen's own ratios)."""
    header = (
        "contender",
        "wall s",
        "master CPU s",
        "CPU/host ms",
        "MiB sent (ss)",
        "fanout's count",
        "peak RSS MiB",
        "+ children MiB",
        "hosts' CPU s",
        "CPU/host vs direct",
        "bytes vs direct",
        "wall vs direct",
    )
    rows = [header]
    figures: dict[str, dict[str, float | None]] = {}
    for kind in KINDS:
        figures[kind] = {
            "wall": results.median(kind, lambda s: s.seconds),
            "cpu": results.median(kind, lambda s: s.master_cpu),
            "bytes": results.median(kind, lambda s: s.socket_bytes_sent),
            "counted": results.median(kind, lambda s: s.counted_bytes_sent),
            "peak": results.median(kind, lambda s: s.peak_kib * 1024),
            "children": results.median(kind, lambda s: s.children_pss_kib * 1024),
            "hosts": results.median(kind, lambda s: s.host_cpu_seconds),
        }
    for kind in KINDS:
        name = {DIRECT: "fanout, direct", RELAYS: f"fanout, through {relays} relays"}.get(kind)
        name = name or {MITOGEN: "mitogen, direct", MITOGEN_VIA: f"mitogen, via= {relays} relays"}[kind]
        f = figures[kind]
        if f["wall"] is None:
            failed = results.samples[kind]
            why = results.skipped.get(kind) or (failed[0].error if failed else "not run")
            rows.append((name, *(["-"] * 8), "", "", f"not measured: {why}"[:120]))
            continue
        cells = [
            f"{f['wall']:.1f}",
            f"{f['cpu']:.2f}",
            f"{f['cpu'] / hosts * 1000:.2f}",
            _mib(f["bytes"]),
            "-" if f["counted"] is None else _mib(f["counted"]),
            _mib(f["peak"]),
            _mib(f["children"]),
            "n/a" if f["hosts"] is None else f"{f['hosts']:.1f}",
        ]
        base = figures[DIRECT if kind == RELAYS else MITOGEN]
        if kind in (DIRECT, MITOGEN):
            rows.append((name, *cells, "-", "-", "-"))
            continue
        ratios = [bench._ratio(f[key], base[key]) for key in ("cpu", "bytes", "wall")]
        if kind == RELAYS:
            targets = zip(ratios, (TARGET_CPU_PER_HOST, TARGET_BYTES_SENT, TARGET_WALL), strict=True)
            rows.append((name, *cells, *(_target(ratio, target) for ratio, target in targets)))
        else:
            rows.append((name, *cells, *(bench._plain_ratio(r) + " (of mitogen direct)" for r in ratios)))
    return rows


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Aligned columns, numbers to the right, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-3], widths[1:-3], strict=True)]
        cells += [cell.ljust(width) for cell, width in zip(row[-3:], widths[-3:], strict=True)]
        return " | ".join(cells).rstrip()

    return "\n".join([line(rows[0]), "-+-".join("-" * w for w in widths), *(line(row) for row in rows[1:])])


def report(results: Results, args: argparse.Namespace, containers: int, python_versions: str) -> str:
    """The table, then what was measured and anything that went wrong."""
    out = [format_table(table_rows(results, args.hosts, args.relays)), ""]
    counts = ", ".join(f"{kind} {len(results.ok(kind))}/{len(s)}" for kind, s in results.samples.items() if s)
    sizes = {s.package_bytes for samples in results.samples.values() for s in samples if s.package_bytes}
    out += [
        f"medians of {args.repeat} repeat(s) (samples ok: {counts}); each sample a fresh worker process, warmed up "
        "on 2 hosts first (through 1 relay for the relay rows); wall = first connect to last close",
        f"the call: a function of a {max(sizes, default=0) / 1024:.0f} KB package ({PACKAGE_MODULES} data modules + "
        "__init__) only the master has, imported on each host on demand; it returns the remote pid (checked distinct)",
        "master CPU = the worker's rusage over the run + its child processes' (Mitogen's ssh) once every answer is "
        "in; MiB sent = bytes_sent of every TCP socket of the worker and its children (ss -tinp) then, framing and "
        "encryption included; fanout's count = stats['bytes_sent'] of the contexts not in Fleet.routes; peak RSS = "
        "VmHWM reset before the run; + children = their PSS; hosts' CPU = the containers' cgroups over the worker",
        f"targets through relays (fanout): master CPU per host <= {TARGET_CPU_PER_HOST:g} of direct, bytes sent <= "
        f"{TARGET_BYTES_SENT:g} of direct, wall <= {TARGET_WALL:g}x direct; Mitogen's ratios are to its own direct "
        "row, for comparison only",
        "relays: Fleet(hosts, forks=N, relays=R) picks them (the first entry of each of R runs in order); mitogen "
        f"via= uses the same relays{', ssh -A to them' if args.relay_auth == 'agent' else ''}, the fleet's "
        "known_hosts saved on each, router.ssh(via=relay, "
        f"identity_file=None) behind them; both log in onward with {AUTH_TEXT[args.relay_auth]}; "
        f"connect timeout {CONNECT_TIMEOUT} s for both",
        f"{bench._versions()}; hosts: {args.hosts} entries on {containers} x {args.suite} sshd containers "
        f"({args.per_sshd} per sshd, Python {python_versions}), 127.0.0.1",
    ]
    for kind, reason in results.skipped.items():
        out.append(f"{kind}: SKIPPED, {reason}")
    for kind, samples in results.samples.items():
        errors = [s.error for s in samples if s.error]
        if errors:
            out.append(f"{kind}: {len(errors)} sample(s) FAILED, first: {errors[0]}")
    return "\n".join(out)


def install_key(fleet: Any) -> None:
    """The fleet's key as ssh's default key of every container's login user, so relays log in onward with it."""
    key = fleet.hosts[0].key_path.read_text()
    if "'" in key:
        raise ValueError("the fleet's key has a quote in it: it cannot be written with sh")
    for host in fleet.hosts:
        script = f"umask 077; printf '%s' '{key}' > \"$HOME/.ssh/id_ed25519\""
        status, output = fleet.client.containers.get(host.container).exec_run(["sh", "-c", script], user=host.user)
        if status != 0:
            raise RuntimeError(f"{host.name}: could not install the fleet's key: {output.decode(errors='replace')}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=600, help="host entries to reach")
    parser.add_argument("--relays", type=int, default=8, help="relays among them for the relay rows")
    parser.add_argument(
        "--per-sshd",
        type=int,
        default=10,
        help="host entries per sshd container: at most 10, as OpenSSH drops some unauthenticated connections beyond "
        "(a relay's ssh clients are not queued per sshd as the master's are)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the contenders; the table shows medians")
    parser.add_argument("--suite", default="bookworm", choices=("bullseye", "bookworm", "trixie"), help="Debian suite")
    parser.add_argument(
        "--relay-auth",
        choices=tuple(AUTH_TEXT),
        default="agent",
        help="how relays log in onward: the fleet's key in each container's ~/.ssh, or a forwarded ssh-agent",
    )
    parser.add_argument("--no-mitogen", action="store_true", help="fanout's rows only")
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.hosts, args.relays, args.per_sshd, args.repeat) < 1:
        parser.error("--hosts, --relays, --per-sshd and --repeat must be positive")
    if args.relays * 2 > args.hosts:
        parser.error("--relays must leave at least one host behind each relay (hosts >= 2 x relays)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.spec)

    from benchmarks.bootstrap import fleet_of
    from tests.fleet.agent import add_to_agent, start_agent
    from tests.fleet.engine import FleetUnavailable

    kinds = KINDS[:2] if args.no_mitogen else KINDS
    containers = -(-args.hosts // args.per_sshd)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="fanout-bench-") as tmp:
            workdir = Path(tmp)
            agent_sock = workdir / "agent.sock" if args.relay_auth == "agent" else None
            agent = start_agent(agent_sock) if agent_sock else None
            try:
                with fleet_of(args.suite, containers, workdir) as fleet:
                    if agent_sock:
                        add_to_agent(agent_sock, fleet.hosts[0].key_path)
                    else:
                        install_key(fleet)
                    entries = bench.host_entries(fleet.hosts, args.hosts)
                    known = "".join(dict.fromkeys(Path(e.known_hosts).read_text() for e in entries))
                    kex = bench.make_plan(entries[:1]).mitogen_kex
                    plan = Plan(entries, args.relays, kex, known, forward_agent=agent is not None)
                    host_cpu = bench.HostCpu(fleet.client, [host.container for host in fleet.hosts])
                    results = measure(plan, args.repeat, workdir, agent_sock, kinds, host_cpu.seconds)
            finally:
                if agent:
                    agent.terminate()
                    agent.wait()
            versions = ", ".join(sorted({".".join(map(str, h.python_version)) for h in fleet.hosts}))
            print(bench.header().replace("fan-out benchmark", "relay benchmark"))
            print()
            print(report(results, args, containers, versions))
            log(f"bench: {time.monotonic() - started:.0f} s in all, the fleet's start and removal included")
    except KeyboardInterrupt:
        log("interrupted; the fleet was removed")
        return 130
    except FleetUnavailable as exc:
        log(f"error: the fleet could not start: {exc}")
        return 2
    return 0 if results.ok(DIRECT) and results.ok(RELAYS) else 1


if __name__ == "__main__":
    sys.exit(main())
