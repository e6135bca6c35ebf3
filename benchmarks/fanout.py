"""Fan one call out to many hosts: fanout against threaded raw paramiko and against Mitogen, on a Docker fleet.

Run from the repository root: ``python -m benchmarks.fanout [--hosts 32] [--per-sshd 4] [--repeat 7]``
(``--only connect`` for the connect + one call + close rows alone, ``--only warm`` for the warm fan-out rows alone).

Why this shape: the question is what a user pays to reach a whole fleet once
(open every connection, run one function, close), so each contender does
exactly that on the same host entries, in the same run, and the table shows
ratios; absolute times on a shared two-core machine mean little. Each sample
runs in a fresh worker process, so the master's peak memory of one contender
is not inflated (or hidden) by another's.

The warm rows ask what a call on every host costs once the fleet is connected:
rounds of one call on every host, per second, three ways: ``Fleet.call``,
fanout's raw loop (``call_async`` on every context of the same Fleet, then each
future's result), and Mitogen's ``call_async`` on every context. Fleet.call and
the raw loop take turns on the same connections in one worker (A B B A, so
drift hits both alike); Mitogen has a worker of its own.

The script brings the fleet up itself and always removes it; it reports and
never asserts (a missed target is marked MISSED), and exits 0 whenever fanout
and the baseline could be measured (and fanout's warm rounds, when they run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import inspect
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fleet.hosts import FleetHost

KINDS = ("baseline", "fanout", "mitogen")  # the table's columns
SSH_KEX_KIND = "mitogen-ssh-kex"  # Mitogen again, with ssh's own key exchange: a row of its own
SILENT_KIND = "fanout-silent-host"  # fanout again, one host of which never answers: a row of its own
SILENT_PYTHON = "fanout-bench-silent"  # the "python" of that host: a command that reads and says nothing
TARGET_SILENT_OVER_HEALTHY = 1.2  # at most: the others, with one silent host, against all healthy
BASELINE_COMMAND = "python3 -c 'import os; print(os.getpid())'"
TARGET_FANOUT_OVER_BASELINE = 1.2  # at most
TARGET_MITOGEN_OVER_FANOUT = 1.5  # at least
CONNECT_KINDS = (*KINDS, SSH_KEX_KIND, SILENT_KIND)  # the connect + one call + close rows (--only connect)
WARM_FANOUT_KIND = "fanout-warm"  # one Fleet connected; Fleet.call and the raw call_async loop take turns on it
WARM_MITOGEN_KIND = "mitogen-warm"  # Mitogen connected to every entry; rounds of call_async on every context
WARM_KINDS = (WARM_FANOUT_KIND, WARM_MITOGEN_KIND)  # the warm fan-out rows (--only warm)
ALL_KINDS = (*CONNECT_KINDS, *WARM_KINDS)
FLEET_WAY, LOOP_WAY, MITOGEN_WAY = "Fleet.call", "raw loop", "mitogen"  # the warm rows' three ways
WARM_FN = os.getpid  # the warm rows' call: stdlib, by reference for both tools ("posix", "getpid"), the remote pid
ROUNDS = 200  # rounds of one call on every host per timed block (--rounds)
WARM_UP_ROUNDS = 10  # untimed rounds of each way first: threads started, the call's encoding cached
WARM_BLOCKS = 2  # timed blocks of each way per worker: A B B A for fanout's two ways, A A for Mitogen
ROUND_ALLOWANCE = 0.1  # seconds per round a warm worker is granted on top of WORKER_TIMEOUT
TARGET_FLEET_OVER_LOOP = 0.95  # at least: Fleet.call's rounds/s over the raw loop's
TARGET_WARM_OVER_MITOGEN = 1.5  # at least: each fanout way's rounds/s over Mitogen's
SETTLE = 0.5  # seconds between samples, so the hosts finish tearing down the previous contender's sessions
WORKER_TIMEOUT = 180.0
ROOT = Path(__file__).resolve().parents[1]


def log(line: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class HostEntry:
    """One host as the contenders see it; several entries may share one sshd (one container)."""

    name: str
    address: str
    port: int
    user: str
    key_path: str
    known_hosts: str


@dataclass(frozen=True)
class Plan:
    """What every worker gets: the host entries, and the key exchange Mitogen's ``ssh`` is to use."""

    entries: list[HostEntry]
    paramiko_kex: str | None  # what paramiko, so fanout and the baseline, agreed on with the first sshd
    mitogen_kex: str | None  # the same if the local ssh knows it; None: ssh's own choice
    rounds: int = ROUNDS  # the warm rows' rounds per timed block

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        entries = [HostEntry(**item) for item in data["entries"]]
        return cls(entries, data["paramiko_kex"], data["mitogen_kex"], data.get("rounds", ROUNDS))


def host_entries(fleet_hosts: Sequence[FleetHost], count: int) -> list[HostEntry]:
    """``count`` entries spread round-robin over the fleet's sshds, so simultaneous handshakes spread too.

    OpenSSH's default ``MaxStartups 10:30:100`` drops some unauthenticated
    connections beyond 10 per sshd: keep ``count / len(fleet_hosts)`` at 10 or below.
    """
    entries = []
    for index in range(count):
        host = fleet_hosts[index % len(fleet_hosts)]
        entries.append(
            HostEntry(
                name=f"{host.name}#{index // len(fleet_hosts) + 1}",
                address=host.address,
                port=host.port,
                user=host.user,
                key_path=str(host.key_path),
                known_hosts=str(host.known_hosts),
            )
        )
    return entries


# -- memory, read from /proc ---------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in KiB."""
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {field_name}")
    return int(match.group(1))


def reset_peak_rss() -> bool:
    """Make VmHWM (peak RSS) start again from the current RSS (Linux 4.0+); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _children(pid: str) -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += (task / "children").read_text().split()
    return found


@dataclass
class Descendants:
    """This process's descendants at one moment: Mitogen's ``ssh`` clients live there, not in our RSS."""

    count: int = 0
    pss_kib: int = 0  # PSS, so the libraries every ssh maps count once in all, not once per process
    cpu_seconds: float = 0.0


def _process_cpu(pid: str) -> float:
    """User + system CPU of one process so far, from /proc/<pid>/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants() -> Descendants:
    """Count, PSS and CPU of every descendant process still alive."""
    found = Descendants()
    pending = _children(str(os.getpid()))
    while pending:
        pid = pending.pop()
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            cpu = _process_cpu(pid)
        except OSError:
            continue  # exited meanwhile
        match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
        found.count += 1
        found.pss_kib += int(match.group(1)) if match else 0
        found.cpu_seconds += cpu
        pending += _children(pid)
    return found


def own_cpu() -> float:
    """User + system CPU of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stopwatch:
    """Wall time with pauses: the memory probe must not be billed to the contender it looks at."""

    def __init__(self) -> None:
        self.paused_for = 0.0
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.paused_for += time.perf_counter() - began

    def elapsed(self) -> float:
        return time.perf_counter() - self.started - self.paused_for


# -- the three contenders: open every connection, one call per host, close everything ---------


Probe = Callable[[], None]
"""Called once every answer is in and before anything is closed: the children are at their largest then."""


def in_threads(fn: Callable[[HostEntry], Any], entries: Sequence[HostEntry]) -> list[Any]:
    """``fn`` on every entry at once, one thread each; the answers in entry order, or the first error."""
    answers: list[Any] = [None] * len(entries)
    errors: list[BaseException] = []

    def one(index: int, entry: HostEntry) -> None:
        try:
            answers[index] = fn(entry)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=item, daemon=True) for item in enumerate(entries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return answers


def _baseline_one(entry: HostEntry) -> int:
    """What a careful paramiko user writes (benchmarks/bootstrap.py's connect), then one command to EOF."""
    from benchmarks.bootstrap import Endpoint, paramiko_connect

    client = paramiko_connect(Endpoint(entry.port, entry.user, Path(entry.key_path), Path(entry.known_hosts)))
    try:
        _, stdout, _ = client.exec_command(BASELINE_COMMAND)
        answer = stdout.read()
    finally:
        client.close()
    return int(answer)


def run_baseline(entries: Sequence[HostEntry], fn: Callable[[], Any], probe: Probe) -> list[Any]:
    """One thread per host: connect, exec, read to EOF, close (``fn`` goes unused: the command line is the code)."""
    answers = in_threads(_baseline_one, entries)
    probe()
    return answers


def fleet_options() -> dict[str, Any]:
    """Keyword options to keep ``Fleet`` quiet, for those its constructor has (it may gain them over time)."""
    from fanout.fleet import Fleet

    parameters = inspect.signature(Fleet).parameters
    return {name: False for name in ("progress",) if name in parameters}


def fleet_hosts(entries: Sequence[HostEntry]) -> dict[str, dict[str, Any]]:
    """``Fleet``'s host options for these entries."""
    return {
        entry.name: {
            "host": entry.address,
            "port": entry.port,
            "user": entry.user,
            "identity_file": entry.key_path,
            "known_hosts": entry.known_hosts,
            "host_key_policy": "strict",
            "ssh_config": False,
        }
        for entry in entries
    }


def run_fanout(entries: Sequence[HostEntry], fn: Callable[[], Any], probe: Probe) -> list[Any]:
    """``Fleet(hosts, forks=N)``: every connection opened in parallel, then ``fleet.call(fn)``, then closed."""
    from fanout.fleet import Fleet

    hosts = fleet_hosts(entries)
    with Fleet(hosts, forks=len(hosts), **fleet_options()) as fleet:
        results = fleet.call(fn)
        probe()
    failed = {name: result for name, result in results.items() if not result.ok}
    if failed:
        raise RuntimeError(f"fanout: {len(failed)} host(s) failed: {list(failed.values())[:3]}")
    return [result.value for result in results.values()]


def run_fanout_silent(entries: Sequence[HostEntry], fn: Callable[[], Any], probe: Probe) -> list[Any]:
    """As :func:`run_fanout`, but the first host's child is ``cat >/dev/null``: connected, reading, never answering.

    Timed until every other host has answered (``as_completed``), then all closed:
    what one silent host costs the rest of the fleet. Returns the others' answers.
    """
    from fanout import _stage
    from fanout.fleet import Fleet

    real = _stage.stage0_command
    _stage.stage0_command = lambda python="python3": "exec cat >/dev/null" if python == SILENT_PYTHON else real(python)
    try:
        hosts = fleet_hosts(entries)
        silent = entries[0].name
        hosts[silent]["python"] = SILENT_PYTHON
        answers: dict[str, Any] = {}
        with Fleet(hosts, forks=len(hosts), **fleet_options()) as fleet:
            for name, result in fleet.as_completed(fn):
                if name == silent or not result.ok:
                    raise RuntimeError(f"fanout: {name} ended {result.status} before the others answered: {result!r}")
                answers[name] = result.value
                if len(answers) == len(entries) - 1:
                    break
            probe()
    finally:
        _stage.stage0_command = real
    return [answers[entry.name] for entry in entries[1:]]


def mitogen_ssh_options(entry: HostEntry, kex: str | None) -> dict[str, Any]:
    """``router.ssh`` options: the host key checked against this entry's known_hosts only.

    Mitogen 0.3 has no known_hosts option: ``check_host_keys="enforce"`` adds
    ``StrictHostKeyChecking yes`` and the file goes in through ``ssh_args``.
    ``-F /dev/null`` keeps the machine's ssh_config out, as paramiko and fanout
    (``ssh_config=False``) read none. ``kex`` pins the key exchange: OpenSSH's
    default, sntrup761x25519 up to 9.8, costs its client ~70 ms of CPU more than
    the curve25519 paramiko negotiates, which on a two-core machine would
    measure the key exchange rather than Mitogen. Mitogen's defaults are kept
    otherwise (``compression=True``, keepalives, ``IdentitiesOnly``,
    ``BatchMode``; compression off measured no faster).
    """
    kex_args = ["-o", f"KexAlgorithms={kex}"] if kex else []
    return {
        "hostname": entry.address,
        "port": entry.port,
        "username": entry.user,
        "identity_file": entry.key_path,
        "check_host_keys": "enforce",
        "python_path": "python3",
        "ssh_args": [
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={entry.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            *kex_args,
        ],
    }


@contextlib.contextmanager
def mitogen_router() -> Iterator[Any]:
    """A Mitogen broker and its router; the broker shut down and joined on the way out."""
    import mitogen.master

    broker = mitogen.master.Broker()
    try:
        yield mitogen.master.Router(broker)
    finally:
        broker.shutdown()
        broker.join()


def run_mitogen(entries: Sequence[HostEntry], fn: Callable[[], Any], probe: Probe, kex: str | None = None) -> list[Any]:
    """A broker and router, ``router.ssh(...).call(fn)`` in one thread per host, then the broker shut down."""
    with mitogen_router() as router:
        answers = in_threads(lambda entry: router.ssh(**mitogen_ssh_options(entry, kex)).call(fn), entries)
        probe()
    return answers


Run = Callable[[Sequence[HostEntry], Callable[[], Any], Probe], list[Any]]


def contender(kind: str, plan: Plan) -> Run:
    """The function that fans out for ``kind``."""
    if kind == "baseline":
        return run_baseline
    if kind == "fanout":
        return run_fanout
    if kind == SILENT_KIND:
        return run_fanout_silent
    return functools.partial(run_mitogen, kex=plan.mitogen_kex if kind == "mitogen" else None)


# -- the warm fan-out: connected once, then rounds of one call on every host ---------------------

Round = Callable[[], list[Any]]
"""One round: ``WARM_FN`` called on every host, every answer waited for; the answers in entry order."""


def _values(results: Any) -> list[Any]:
    """The values of a ``Fleet.call``'s results, in host order; a host that did not answer ends the sample."""
    values = []
    for result in results.values():
        if not result.ok:
            raise RuntimeError(f"fanout: {result!r}")
        values.append(result.value)
    return values


@contextlib.contextmanager
def fanout_warm(entries: Sequence[HostEntry]) -> Iterator[dict[str, Round]]:
    """One ``Fleet`` connected to every entry; its rounds two ways, on the same connections.

    ``Fleet.call``: fanout's API, one Result per host. The raw loop: what a user
    of ``fleet.contexts`` writes, ``call_async`` on every context from this
    thread, then each future's result.
    """
    from fanout.fleet import Fleet

    hosts = fleet_hosts(entries)
    with Fleet(hosts, forks=len(hosts), **fleet_options()) as fleet:
        if fleet.failures:
            raise RuntimeError(
                f"fanout: {len(fleet.failures)} host(s) not connected: {list(fleet.failures.items())[:3]}"
            )
        contexts = list(fleet.contexts.values())  # in host order, as Fleet.call's results

        def fleet_round() -> list[Any]:
            return _values(fleet.call(WARM_FN))

        def loop_round() -> list[Any]:
            futures = [context.call_async(WARM_FN) for context in contexts]
            return [future.result() for future in futures]

        yield {FLEET_WAY: fleet_round, LOOP_WAY: loop_round}


@contextlib.contextmanager
def mitogen_warm(entries: Sequence[HostEntry], kex: str | None) -> Iterator[dict[str, Round]]:
    """Mitogen connected as :func:`run_mitogen` connects (one thread per entry); a round is ``call_async`` on every
    context, then ``get().unpickle()`` of each receiver."""
    with mitogen_router() as router:
        contexts = in_threads(lambda entry: router.ssh(**mitogen_ssh_options(entry, kex)), entries)

        def mitogen_round() -> list[Any]:
            receivers = [context.call_async(WARM_FN) for context in contexts]
            return [receiver.get().unpickle() for receiver in receivers]

        yield {MITOGEN_WAY: mitogen_round}


def timed_rounds(one_round: Round, rounds: int, hosts: int) -> tuple[float, float]:
    """Wall seconds of ``rounds`` rounds, and the master's CPU seconds over them (its ssh clients' too)."""
    gc.collect()
    cpu_before = descendants().cpu_seconds
    cpu_before += own_cpu()
    started = time.perf_counter()
    for _ in range(rounds):
        if len(one_round()) != hosts:
            raise RuntimeError(f"a round answered for other than {hosts} hosts")
    seconds = time.perf_counter() - started
    cpu = own_cpu()
    cpu += descendants().cpu_seconds
    return seconds, cpu - cpu_before


def warm_worker(kind: str, plan: Plan) -> Sample:
    """Connect to every entry, warm each way up (and check its answers), then time blocks of ``plan.rounds`` rounds.

    fanout's two ways go A B B A on the same connections, Mitogen's one way twice;
    ``seconds`` is the timed blocks' sum, the rates are per block.
    """
    entries = plan.entries
    sample = Sample(kind)
    warm = fanout_warm(entries) if kind == WARM_FANOUT_KIND else mitogen_warm(entries, plan.mitogen_kex)
    with warm as ways:
        for name, one_round in ways.items():
            for _ in range(WARM_UP_ROUNDS):
                answers = one_round()
            _check_answers(f"{kind} {name}", answers, entries)
        names = list(ways)
        order = [*names, *reversed(names)] if len(names) > 1 else names * WARM_BLOCKS
        for name in order:
            seconds, cpu = timed_rounds(ways[name], plan.rounds, len(entries))
            sample.seconds += seconds
            sample.rounds_per_second.setdefault(name, []).append(plan.rounds / seconds)
            sample.cpu_per_round.setdefault(name, []).append(cpu / plan.rounds)
    return sample


def paramiko_kex(entry: HostEntry) -> str | None:
    """The key exchange paramiko (so fanout and the baseline) agrees on with this sshd, from its debug log."""
    import logging

    from benchmarks.bootstrap import Endpoint, paramiko_connect

    agreed: list[str] = []

    class Listen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Kex: "):
                agreed.append(message.removeprefix("Kex: ").strip())

    logger = logging.getLogger("paramiko.transport")
    handler, level, propagate = Listen(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        paramiko_connect(Endpoint(entry.port, entry.user, Path(entry.key_path), Path(entry.known_hosts))).close()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return agreed[0] if agreed else None


def ssh_kex_algorithms() -> set[str]:
    """The key exchanges the local OpenSSH client implements (``ssh -Q kex``); empty without one."""
    ssh = shutil.which("ssh")
    if ssh is None:
        return set()
    return set(subprocess.run([ssh, "-Q", "kex"], capture_output=True, text=True).stdout.split())


def make_plan(entries: list[HostEntry], rounds: int = ROUNDS) -> Plan:
    """Pin Mitogen's key exchange to paramiko's, where the local ssh has it (OpenSSH 9.2 lacks mlkem768x25519)."""
    kex = paramiko_kex(entries[0])
    return Plan(entries, kex, kex if kex in ssh_kex_algorithms() else None, rounds)


def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run on this machine, checked before a worker is spent on it."""
    if kind not in ("mitogen", SSH_KEX_KIND, WARM_MITOGEN_KIND):
        return None
    try:
        import mitogen  # noqa: F401
    except ImportError as exc:
        return f"mitogen is not installed ({exc}); pip install -e '.[bench]'"
    if shutil.which("ssh") is None:
        return "Mitogen needs the OpenSSH client binary `ssh`, which is not on PATH"
    return None


# -- one sample, in a fresh worker process --------------------------------------------------


@dataclass
class Sample:
    """One contender's fan-out, as measured inside its own worker process."""

    kind: str
    seconds: float = 0.0
    cold_seconds: float = 0.0  # the untimed warm-up on one host
    rss_before_kib: int = 0
    peak_kib: int = 0
    peak_reset: bool = True  # False: VmHWM could not be reset, peak is since the worker started
    cpu_seconds: float = 0.0  # this process's CPU during the fan-out, the probe left out
    children: int = 0
    children_pss_kib: int = 0
    children_cpu_seconds: float = 0.0
    host_cpu_seconds: float | None = None  # the containers' CPU over the whole worker run, from their cgroups
    # Warm kinds only, by way (Fleet.call, raw loop, mitogen): one figure per timed block of plan.rounds rounds.
    rounds_per_second: dict[str, list[float]] = field(default_factory=dict)
    cpu_per_round: dict[str, list[float]] = field(default_factory=dict)  # the master's, its ssh clients' too
    error: str | None = None

    @property
    def delta_kib(self) -> int:
        return max(self.peak_kib - self.rss_before_kib, 0)


def _check_answers(kind: str, answers: list[Any], entries: Sequence[HostEntry]) -> None:
    """Every entry must have answered with the pid of a remote process of its own.

    Containers have their own pid namespaces, so a pid is unique per sshd only.
    """
    if len(answers) != len(entries) or not all(isinstance(a, int) for a in answers):
        raise RuntimeError(f"{kind}: unexpected answers {answers[:4]!r}")
    distinct = {(entry.port, pid) for entry, pid in zip(entries, answers, strict=True)}
    if len(distinct) != len(entries):
        raise RuntimeError(f"{kind}: {len(entries)} entries but only {len(distinct)} distinct remote processes")


def worker(kind: str, plan: Plan) -> Sample:
    """Warm up on one host, then measure the fan-out to all of them: time, master peak RSS, children's PSS.

    The warm-up pays what a process pays once whatever the fleet's size (lazy
    imports, building stage 1 or Mitogen's core source, crypto setup), so the
    timed fan-out and its memory growth are what the hosts themselves cost.
    """
    from benchmarks.bootstrap import user_module

    if kind in WARM_KINDS:
        return warm_worker(kind, plan)
    entries = plan.entries
    sample = Sample(kind)
    with tempfile.TemporaryDirectory(prefix="fanout-bench-worker-") as tmp, user_module(Path(tmp)) as module:
        run = contender(kind, plan)
        warm_up = run_fanout if kind == SILENT_KIND else run
        started = time.perf_counter()
        _check_answers(kind, warm_up(entries[:1], module.func, lambda: None), entries[:1])
        sample.cold_seconds = time.perf_counter() - started
        gc.collect()
        sample.peak_reset = reset_peak_rss()
        sample.rss_before_kib = _status_kib("VmRSS")
        watch = Stopwatch()
        cpu_before = own_cpu()
        probe_cpu = 0.0

        def probe() -> None:
            nonlocal probe_cpu
            with watch.paused():
                probe_started = own_cpu()
                found = descendants()
                probe_cpu = own_cpu() - probe_started
            sample.children = found.count
            sample.children_pss_kib = found.pss_kib
            sample.children_cpu_seconds = found.cpu_seconds

        answers = run(entries, module.func, probe)
        sample.seconds = watch.elapsed()
        sample.cpu_seconds = own_cpu() - cpu_before - probe_cpu
        sample.peak_kib = _status_kib("VmHWM")
    _check_answers(kind, answers, entries[1:] if kind == SILENT_KIND else entries)
    return sample


def worker_main(kind: str, spec: Path) -> int:
    """The worker's entry point: one JSON line on stdout, whatever happened."""
    plan = Plan.from_json(spec.read_text())
    try:
        sample = worker(kind, plan)
    except Exception as exc:
        sample = Sample(kind, error=f"{type(exc).__name__}: {exc}")
    print(json.dumps(asdict(sample)), flush=True)
    return 0 if sample.error is None else 1


def run_worker(kind: str, spec: Path, timeout: float = WORKER_TIMEOUT) -> Sample:
    """Run one sample in a fresh interpreter; its stderr is passed on when it has something to say."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.fanout", "--worker", kind, "--spec", str(spec)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Sample(kind, error=f"worker still running after {timeout:.0f} s: killed")
    for line in proc.stderr.splitlines()[-20:]:
        log(f"  {kind}: {line}")
    lines = proc.stdout.strip().splitlines()
    try:
        return Sample(**json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return Sample(kind, error=f"worker exited {proc.returncode}: {tail[0]}")


# -- the measurement -------------------------------------------------------------------------


@dataclass
class Results:
    """Every sample per contender (failed ones too), and contenders that could not run at all."""

    samples: dict[str, list[Sample]] = field(default_factory=lambda: {kind: [] for kind in ALL_KINDS})
    skipped: dict[str, str] = field(default_factory=dict)

    def ok(self, kind: str) -> list[Sample]:
        return [s for s in self.samples[kind] if s.error is None]

    def errors(self, kind: str) -> list[str]:
        return [s.error for s in self.samples[kind] if s.error is not None]


class HostCpu:
    """CPU the containers (sshd and everything it starts) have used, from their cgroups.

    The hosts share the master's CPUs here, so on a small machine their CPU per
    host is what the wall time mostly measures; this shows it.
    """

    def __init__(self, client: Any, container_names: Sequence[str]) -> None:
        self.files: list[tuple[Path, float]] = []
        for name in container_names:
            found = self._usage_file(client.containers.get(name).id)
            if found is None:
                self.files = []
                return
            self.files.append(found)

    @staticmethod
    def _usage_file(container_id: str) -> tuple[Path, float] | None:
        """cgroup v1 ``cpuacct.usage`` (ns), or cgroup v2 ``cpu.stat`` (usage_usec), with the unit's scale."""
        root = Path("/sys/fs/cgroup")
        for path, scale in (
            (root / "cpuacct" / "docker" / container_id / "cpuacct.usage", 1e-9),
            (root / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage", 1e-9),
            (root / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat", 1e-6),
            (root / "docker" / container_id / "cpu.stat", 1e-6),
        ):
            if path.exists():
                return path, scale
        return None

    def seconds(self) -> float | None:
        """Total CPU seconds of all the containers so far; None where the cgroups were not found."""
        if not self.files:
            return None
        total = 0.0
        for path, scale in self.files:
            text = path.read_text()
            if path.name == "cpu.stat":
                text = re.search(r"^usage_usec (\d+)", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
            total += int(text) * scale
        return total


def _order(repeat: int, kinds: Sequence[str]) -> list[str]:
    """Rotate who goes first, so each contender leads (and follows each other one) equally often."""
    shift = repeat % len(kinds)
    return [*kinds[shift:], *kinds[:shift]]


def measure(
    plan: Plan,
    repeat: int,
    workdir: Path,
    kinds: Sequence[str] = (*KINDS, SSH_KEX_KIND),
    host_cpu: Callable[[], float | None] = lambda: None,
) -> Results:
    """``repeat`` rounds, each contender once per round in a fresh worker, contenders alternating.

    The hosts' CPU is read before a worker starts and after the settling pause
    that follows it, so their teardown of its sessions is counted too.
    """
    spec = workdir / "plan.json"
    spec.write_text(plan.to_json())
    results = Results()
    for kind in kinds:
        reason = unavailable(kind)
        if reason:
            results.skipped[kind] = reason
            log(f"bench: {kind} skipped: {reason}")
    runnable = [kind for kind in kinds if kind not in results.skipped]
    time.sleep(SETTLE)
    warm_timeout = WORKER_TIMEOUT + 2 * WARM_BLOCKS * plan.rounds * ROUND_ALLOWANCE
    for index in range(repeat):
        for kind in _order(index, runnable):
            cpu_before = host_cpu()
            sample = run_worker(kind, spec, warm_timeout if kind in WARM_KINDS else WORKER_TIMEOUT)
            time.sleep(SETTLE)
            cpu_after = host_cpu()
            if cpu_before is not None and cpu_after is not None:
                sample.host_cpu_seconds = cpu_after - cpu_before
            results.samples[kind].append(sample)
            log(f"bench: repeat {index + 1}/{repeat}, {kind}: {_outcome(sample)}")
    return results


def _outcome(sample: Sample) -> str:
    if sample.error:
        return f"error: {sample.error}"
    if sample.rounds_per_second:
        rates = (
            f"{way} {' / '.join(f'{rate:,.0f}' for rate in rates)} rounds/s"
            for way, rates in sample.rounds_per_second.items()
        )
        return ", ".join(rates)
    return f"{sample.seconds * 1000:.0f} ms"


# -- the report ------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _kib(kib: float) -> str:
    return f"{kib:,.0f} KiB"


def _verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


Value = Callable[[Sample], float | None]


def _median(results: Results, kind: str, value: Value) -> float | None:
    values = [v for v in map(value, results.ok(kind)) if v is not None]
    return statistics.median(values) if values else None


def _cell(results: Results, kind: str, median: float | None, fmt: Callable[[float], str]) -> str:
    if median is not None:
        return fmt(median)
    if kind in results.skipped:
        return "skipped"
    return "n/a" if results.ok(kind) else "FAILED"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def _target_cell(ratio: float | None, target: float, at_most: bool) -> str:
    if ratio is None:
        return "n/a"
    met = ratio <= target if at_most else ratio >= target
    return f"{ratio:.2f}x ({'<=' if at_most else '>='} {target:g} {_verdict(met)})"


def _plain_ratio(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _row(
    results: Results, name: str, value: Value, fmt: Callable[[float], str], targets: bool = False
) -> tuple[str, ...]:
    """One measurement across the contenders, with fanout/baseline and mitogen/fanout of the medians."""
    medians = {kind: _median(results, kind, value) for kind in KINDS}
    cells = [_cell(results, kind, medians[kind], fmt) for kind in KINDS]
    over_baseline = _ratio(medians["fanout"], medians["baseline"])
    over_fanout = _ratio(medians["mitogen"], medians["fanout"])
    if targets:
        return (
            name,
            *cells,
            _target_cell(over_baseline, TARGET_FANOUT_OVER_BASELINE, at_most=True),
            _target_cell(over_fanout, TARGET_MITOGEN_OVER_FANOUT, at_most=False),
        )
    return (name, *cells, _plain_ratio(over_baseline), _plain_ratio(over_fanout))


def _ran(results: Results, kinds: Sequence[str]) -> bool:
    """Whether any of ``kinds`` was in this run (measured, failed or skipped)."""
    return any(results.samples[kind] or kind in results.skipped for kind in kinds)


def table_rows(results: Results, hosts: int, per_sshd: int, rounds: int = ROUNDS) -> list[tuple[str, ...]]:
    """The header row and one row per measurement; every cell is a median, every ratio one of medians."""
    rows: list[tuple[str, ...]] = [("measurement", *KINDS, "fanout/baseline", "mitogen/fanout")]
    if _ran(results, CONNECT_KINDS):
        rows += _connect_rows(results, hosts, per_sshd)
    rows += _warm_rows(results, hosts, rounds)
    return rows


def _connect_rows(results: Results, hosts: int, per_sshd: int) -> list[tuple[str, ...]]:
    """Connect + one call + close on every host, and what it costs in CPU and memory."""
    rows: list[tuple[str, ...]] = []
    rows.append(
        _row(
            results,
            f"connect + one call + close, {hosts} hosts ({per_sshd} per sshd)",
            lambda s: s.seconds,
            _ms,
            targets=True,
        )
    )
    rows += _ssh_kex_rows(results)
    rows += _silent_rows(results, hosts)
    rows.append(("    slowest .. fastest repeat", *(_spread(results, kind) for kind in KINDS), "-", "-"))
    rows.append(
        _row(
            results,
            "    master CPU in the fan-out, per host (ssh clients too)",
            lambda s: (s.cpu_seconds + s.children_cpu_seconds) / hosts,
            _ms,
        )
    )
    rows.append(
        _row(
            results,
            "    hosts' CPU (sshd, remote python), per host",
            # the worker's warm-up reached one host more than the fan-out
            lambda s: None if s.host_cpu_seconds is None else s.host_cpu_seconds / (hosts + 1),
            _ms,
        )
    )
    rows.append(_row(results, "master peak RSS - RSS before, per host", lambda s: s.delta_kib / hosts, _kib))
    rows.append(
        _row(results, "    + master's child processes (PSS), per host", lambda s: s.children_pss_kib / hosts, _kib)
    )
    rows.append(
        _row(
            results,
            "    = master side in all, per host",
            lambda s: (s.delta_kib + s.children_pss_kib) / hosts,
            _kib,
        )
    )
    rows.append(_row(results, "    master RSS before the fan-out (imports, warm-up)", lambda s: s.rss_before_kib, _kib))
    rows.append(
        _row(results, "    warm-up, 1 host, first in its process (not in medians)", lambda s: s.cold_seconds, _ms)
    )
    return rows


def _warm_values(results: Results, kind: str, way: str, figure: str = "rounds_per_second") -> list[float]:
    """One figure of every timed block of ``way`` over the ok samples of ``kind``."""
    return [value for sample in results.ok(kind) for value in getattr(sample, figure).get(way, [])]


def _rate_cell(results: Results, kind: str, way: str) -> str:
    """The median rounds/s of the blocks, then the slowest and fastest block."""
    rates = _warm_values(results, kind, way)
    if not rates:
        return _cell(results, kind, None, str)
    return f"{statistics.median(rates):,.0f}/s ({min(rates):,.0f}..{max(rates):,.0f})"


def _warm_rows(results: Results, hosts: int, rounds: int) -> list[tuple[str, ...]]:
    """Rounds per second of one call on every connected host: Fleet.call, fanout's raw loop, Mitogen.

    A rate's ratio to another reads as a time's the other way round: ``fanout/mitogen`` of rounds/s is the
    ``mitogen/fanout`` column's ratio of times, so it stands there.
    """
    if not _ran(results, WARM_KINDS):
        return []
    ways = ((WARM_FANOUT_KIND, FLEET_WAY), (WARM_FANOUT_KIND, LOOP_WAY), (WARM_MITOGEN_KIND, MITOGEN_WAY))
    rate = {way: _warm_values(results, kind, way) for kind, way in ways}
    median = {way: statistics.median(values) if values else None for way, values in rate.items()}
    cpu = {way: _warm_values(results, kind, way, "cpu_per_round") for kind, way in ways}
    cpu_median = {way: statistics.median(values) if values else None for way, values in cpu.items()}

    def over_mitogen(way: str) -> str:
        return _named_target(_ratio(median[way], median[MITOGEN_WAY]), "mitogen's", TARGET_WARM_OVER_MITOGEN)

    def cpu_cell(way: str) -> str:
        return "n/a" if cpu_median[way] is None else _ms(cpu_median[way])

    fleet_over_loop = _ratio(median[FLEET_WAY], median[LOOP_WAY])
    heading = (
        f"warm fan-out, {hosts} hosts connected: rounds/s of one call on each, "
        f"median block of {rounds} rounds (slowest..fastest)"
    )
    return [
        (heading, "", "", "", "", ""),
        (
            "    fleet.call(os.getpid), one Result per host",
            "-",
            _rate_cell(results, WARM_FANOUT_KIND, FLEET_WAY),
            "-",
            _named_target(fleet_over_loop, "the raw loop's", TARGET_FLEET_OVER_LOOP),
            over_mitogen(FLEET_WAY),
        ),
        (
            "    raw loop: ctx.call_async on every context of that Fleet, then each result()",
            "-",
            _rate_cell(results, WARM_FANOUT_KIND, LOOP_WAY),
            "-",
            "-",
            over_mitogen(LOOP_WAY),
        ),
        (
            "    mitogen: ctx.call_async on every context, then each get().unpickle()",
            "-",
            "-",
            _rate_cell(results, WARM_MITOGEN_KIND, MITOGEN_WAY),
            "-",
            "-",
        ),
        (
            "    master CPU per round: Fleet.call / raw loop; mitogen with its ssh clients",
            "-",
            f"{cpu_cell(FLEET_WAY)} / {cpu_cell(LOOP_WAY)}",
            cpu_cell(MITOGEN_WAY),
            _plain_ratio(_ratio(cpu_median[FLEET_WAY], cpu_median[LOOP_WAY])) + " the raw loop's",
            _plain_ratio(_ratio(cpu_median[MITOGEN_WAY], cpu_median[LOOP_WAY])) + " the raw loop's",
        ),
    ]


def _named_target(ratio: float | None, of: str, target: float) -> str:
    """``1.62x mitogen's (>= 1.5 ok)``: a ratio of rates, at least ``target``."""
    if ratio is None:
        return "n/a"
    return f"{ratio:.2f}x {of} (>= {target:g} {_verdict(ratio >= target)})"


def _ssh_kex_rows(results: Results) -> list[tuple[str, ...]]:
    """Mitogen as it runs out of the box, where ssh picks its own (costlier) key exchange."""
    if not results.samples[SSH_KEX_KIND] and SSH_KEX_KIND not in results.skipped:
        return []
    seconds = _median(results, SSH_KEX_KIND, lambda s: s.seconds)
    fanout = _median(results, "fanout", lambda s: s.seconds)
    return [
        (
            "    mitogen with ssh's default key exchange",
            "-",
            "-",
            _cell(results, SSH_KEX_KIND, seconds, _ms),
            "-",
            _plain_ratio(_ratio(seconds, fanout)),
        )
    ]


def _silent_rows(results: Results, hosts: int) -> list[tuple[str, ...]]:
    """One silent host among the rest: how long the others take, against all hosts healthy."""
    if not results.samples[SILENT_KIND] and SILENT_KIND not in results.skipped:
        return []
    seconds = _median(results, SILENT_KIND, lambda s: s.seconds)
    healthy = _median(results, "fanout", lambda s: s.seconds)
    return [
        (
            f"    fanout, 1 silent host among {hosts}: the other {hosts - 1} answered, all closed",
            "-",
            _cell(results, SILENT_KIND, seconds, _ms),
            "-",
            _target_cell(_ratio(seconds, healthy), TARGET_SILENT_OVER_HEALTHY, at_most=True) + " of all healthy",
            "-",
        )
    ]


def _spread(results: Results, kind: str) -> str:
    values = [s.seconds for s in results.ok(kind)]
    return f"{max(values) * 1000:.0f}..{min(values) * 1000:.0f} ms" if values else "-"


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Aligned columns, a rule under the header: readable in a terminal and pasteable in an issue."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-2], widths[1:-2], strict=True)]
        cells += [cell.ljust(width) for cell, width in zip(row[-2:], widths[-2:], strict=True)]
        return " | ".join(cells).rstrip()

    return "\n".join([line(rows[0]), "-+-".join("-" * w for w in widths), *(line(row) for row in rows[1:])])


def _versions() -> str:
    import paramiko

    parts = [f"paramiko {paramiko.__version__}"]
    try:
        from importlib.metadata import version

        parts.append(f"mitogen {version('mitogen')}")
    except Exception:
        parts.append("mitogen not installed")
    ssh = shutil.which("ssh")
    if ssh:
        probe = subprocess.run([ssh, "-V"], capture_output=True, text=True)
        parts.append((probe.stderr or probe.stdout).strip().split(",")[0])
    return ", ".join(parts)


def report(results: Results, args: argparse.Namespace, fleet_hosts: Sequence[FleetHost], plan: Plan) -> str:
    """The table, then what was measured and anything that went wrong."""
    rounds = getattr(args, "rounds", ROUNDS)
    out = [format_table(table_rows(results, args.hosts, args.per_sshd, rounds)), ""]
    counts = ", ".join(
        f"{kind} {len(results.ok(kind))}/{len(results.samples[kind])}"
        for kind, samples in results.samples.items()
        if samples
    )
    versions = sorted({".".join(map(str, h.python_version)) for h in fleet_hosts})
    line = f"medians of {args.repeat} repeats (samples ok: {counts}); each sample is a fresh worker process"
    if _ran(results, CONNECT_KINDS):
        out += [
            f"{line}, warmed up on one host first; time = first connect to last close",
            "memory = (VmHWM, reset just before the fan-out, - VmRSS before it) / hosts; child processes: their PSS "
            "once every answer is in; master CPU = the worker's rusage + its children's; hosts' CPU = the "
            "containers' cgroups over the whole worker run / (hosts + 1)",
            f"baseline: one thread per host, SSHClient.connect (strict known_hosts) + "
            f"exec_command({BASELINE_COMMAND!r}); fanout: Fleet(hosts, forks={args.hosts}).call(func); mitogen: "
            f"router.ssh(...).call(func) in one thread per host; func returns the remote pid and lives in a module "
            f"only the master has",
        ]
    else:
        out.append(line)
    if _ran(results, WARM_KINDS):
        out += [
            f"warm: each worker connects to all {args.hosts} entries first (untimed), runs {WARM_UP_ROUNDS} untimed "
            f"rounds of each way, then {WARM_BLOCKS} timed blocks of {rounds} rounds of each way; a round is os.getpid "
            "called (by reference) on every host and every answer waited for; cells: the median block's rounds/s "
            "(slowest..fastest block); ratios: of those medians",
            f"fanout-warm: Fleet(hosts, forks={args.hosts}); blocks Fleet.call, raw loop, raw loop, Fleet.call on "
            "the same connections; raw loop: futures = [ctx.call_async(os.getpid) for ctx in "
            "fleet.contexts.values()], then future.result() of each, from the worker's main thread",
            "mitogen-warm: router.ssh(...) to every entry in one thread each, as the connect row; a round is "
            "[ctx.call_async(os.getpid) for ctx in contexts], then receiver.get().unpickle() of each; "
            "master CPU per round = the worker's rusage (+ its ssh clients' for mitogen) over the block / rounds",
        ]
    if any(results.samples[kind] or kind in results.skipped for kind in ("mitogen", SSH_KEX_KIND, WARM_MITOGEN_KIND)):
        out.append(
            f"mitogen's ssh: -F /dev/null, the entry's known_hosts, key exchange {_kex_text(plan)}, "
            "Mitogen's other defaults"
        )
    out.append(
        f"{_versions()}; hosts: {args.hosts} entries on {len(fleet_hosts)} x {args.suite} sshd containers "
        f"(Python {', '.join(versions)}), 127.0.0.1"
    )
    if any(not s.peak_reset for samples in results.samples.values() for s in samples):
        out.append("note: /proc/self/clear_refs refused a VmHWM reset: peaks count from the worker's start")
    for kind, reason in results.skipped.items():
        out.append(f"{kind}: SKIPPED, {reason}")
    for kind in results.samples:
        errors = results.errors(kind)
        if errors:
            out.append(f"{kind}: {len(errors)} sample(s) FAILED, first: {errors[0]}")
    return "\n".join(out)


def _kex_text(plan: Plan) -> str:
    if plan.mitogen_kex:
        return f"{plan.mitogen_kex} (as paramiko's)"
    return f"ssh's default (this ssh lacks paramiko's {plan.paramiko_kex})"


def header() -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"fanout fan-out benchmark, {now}: {platform.node()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform(terse=True)}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=32, help="host entries to fan out to")
    parser.add_argument(
        "--per-sshd", type=int, default=4, help="host entries per sshd container (OpenSSH drops some beyond 10)"
    )
    parser.add_argument("--repeat", type=int, default=7, help="rounds of the three contenders; the table shows medians")
    parser.add_argument("--suite", default="bookworm", choices=("bullseye", "bookworm", "trixie"), help="Debian suite")
    parser.add_argument(
        "--no-ssh-kex-row",
        action="store_true",
        help="skip the extra Mitogen run with ssh's default key exchange (saves ~30 s)",
    )
    parser.add_argument(
        "--only",
        choices=("connect", "warm"),
        help="only the connect + one call + close rows, or only the warm fan-out rows; both by default",
    )
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS, help="warm rows: rounds of one call on every host per timed block"
    )
    parser.add_argument("--worker", choices=ALL_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hosts < 1 or args.per_sshd < 1 or args.repeat < 1 or args.rounds < 1:
        parser.error("--hosts, --per-sshd, --repeat and --rounds must be positive")
    return args


def kinds_to_run(only: str | None, no_ssh_kex_row: bool, plan: Plan) -> tuple[str, ...]:
    """The contenders of the rows asked for, connect rows first."""
    kinds: tuple[str, ...] = ()
    if only != "warm":
        kinds = KINDS if no_ssh_kex_row or plan.mitogen_kex is None else (*KINDS, SSH_KEX_KIND)
        kinds = (*kinds, SILENT_KIND)
    if only != "connect":
        kinds = (*kinds, *WARM_KINDS)
    return kinds


def measured(results: Results, only: str | None) -> bool:
    """Whether fanout and the baseline (connect rows) and fanout's warm rounds (warm rows) were measured."""
    connect = only == "warm" or bool(results.ok("baseline") and results.ok("fanout"))
    warm = only == "connect" or bool(results.ok(WARM_FANOUT_KIND))
    return connect and warm


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.spec)

    from benchmarks.bootstrap import fleet_of
    from tests.fleet.engine import FleetUnavailable

    containers = -(-args.hosts // args.per_sshd)
    try:
        with tempfile.TemporaryDirectory(prefix="fanout-bench-") as tmp:
            workdir = Path(tmp)
            with fleet_of(args.suite, containers, workdir) as fleet:
                entries = host_entries(fleet.hosts, args.hosts)
                plan = make_plan(entries, args.rounds)
                log(f"bench: paramiko's key exchange: {plan.paramiko_kex}; Mitogen's ssh: {_kex_text(plan)}")
                kinds = kinds_to_run(args.only, args.no_ssh_kex_row, plan)
                host_cpu = HostCpu(fleet.client, [host.container for host in fleet.hosts])
                results = measure(plan, args.repeat, workdir, kinds, host_cpu.seconds)
            print(header())
            print()
            print(report(results, args, fleet.hosts, plan))
    except KeyboardInterrupt:
        log("interrupted; the fleet was removed")
        return 130
    except FleetUnavailable as exc:
        log(f"error: the fleet could not start: {exc}")
        return 2
    return 0 if measured(results, args.only) else 1


if __name__ == "__main__":
    sys.exit(main())
