"""What a hostile child costs the master, and whether other hosts notice: one row per attack of issue 9.

Run from the repository root: ``python -m benchmarks.hostile [--repeat N] [--only 1,3a] [--timeout 60]``.
To measure another checkout (the code before issue 9, say), run this file with that checkout first on the path::

    git worktree add /tmp/before 4ec8119
    cd /tmp/before && PYTHONPATH=/tmp/before /work/main/.venv/bin/python /work/main/benchmarks/hostile.py

Why this shape: an attack may crash or freeze the master for good, so each one runs in a fresh worker
interpreter that this script watches from outside (peak RSS and CPU polled from /proc, a hard timeout, a memory
cap), and a dead or killed worker is a row of the table, not the end of the run. The hostile child is a local
child whose stage 1 is replaced (``fanout._stage.stage1_blob``) by ``fanout/_wire.py``'s source, the helpers
below and the attack, all self-contained; the master side is the real one. Only public APIs plus ``fanout._stage``
and ``fanout._wire`` are used, so the script runs against old and new code alike. It reports, never asserts.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import gc
import json
import os
import platform
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEALTHY = 3  # ordinary local children calling the master all through each attack
BASELINE_SECONDS = 3.0  # the same loop with no attack, in the same worker, just before it
SETTLE_SECONDS = 1.5  # the loop goes on this long after the master dealt with the attack: lasting harm shows
MIN_WINDOW_SECONDS = 3.0  # the loop runs at least this long from the attack's start
PACE_SECONDS = 0.01  # pause between two calls of one healthy child's loop
IMPORT_EVERY = 10  # every 10th call of the loop imports a module the child has not seen (import on demand)
PROBE_MODULES = 400  # modules each healthy child can import on demand
BEAT_SECONDS = 0.25  # the worker reports how the loop fares this often (what is left when it must be killed)
POLL_SECONDS = 0.05  # the parent reads the worker's /proc status this often
SETUP_TIMEOUT = 120.0  # seconds a worker may take to start its children and run the baseline

# -- the hostile children: stage 1 is _wire.py, these helpers, then the attack ---------------------------------

HELPERS = r"""
import os, sys, threading, time
fin, fout = os.dup(0), os.dup(1)

def _watchdog(parent=os.getppid(), started=time.monotonic()):
    while os.getppid() == parent and time.monotonic() - started < 900:
        time.sleep(0.2)
    os._exit(0)  # the master went away (or we lived too long): nobody will ever read us again

threading.Thread(target=_watchdog, daemon=True).start()

def send(data):
    view = memoryview(data)
    while view:
        view = view[os.write(fout, view):]

def hello():
    v = sys.version_info
    info = {"python": (v[0], v[1], v[2]), "pid": os.getpid(), "executable": sys.executable}
    send(encode_frame(HELLO, 0, b"r" + repr(info).encode()))

def _frames():
    decoder = FrameDecoder(TO_CHILD)
    while True:
        data = os.read(fin, 65536)
        if not data:
            os._exit(0)
        for frame in decoder.feed(data):
            yield frame

FRAMES = _frames()

def first_call():
    for kind, rid, body in FRAMES:
        if kind == CALL:
            return rid
        if kind == SHUTDOWN:
            os._exit(0)

def keep_reading():
    for kind, rid, body in FRAMES:
        if kind == SHUTDOWN:
            os._exit(0)

def keep_reading_in_background():
    threading.Thread(target=keep_reading, daemon=True).start()

def literal(value):
    return b"r" + repr(value).encode()

def log_body(text, continued):
    return literal(("stdout", "", 20, text, continued))

def short(text):
    return b"\x8c" + bytes([len(text)]) + text.encode()

def result(rid, body):
    send(encode_frame(RESULT, rid, body))  # not compressed: real children never compress, and the master may refuse it

hello()
rid = first_call()
"""

BIG_PIECE = 128 * 1024  # characters of each compressed piece of attack 5z
BIG_PIECES = 12_000


@dataclass(frozen=True)
class Attack:
    key: str
    label: str
    program: str  # Python, after HELPERS: `rid` is the call under attack
    prints: bool = False  # repr() the value returned, inside the timed part (what the CLI does)


def _wire_size_5z() -> int:
    body = b"r" + repr(("stdout", "", 20, "x" * BIG_PIECE, True)).encode()
    return BIG_PIECES * (10 + len(zlib.compress(body)))


ATTACKS = [
    Attack(
        "1",
        "1  RESULT: a tuple nested 200,000 deep as a dict key (200 KB)",
        'result(rid, b"p\\x80\\x04})" + b"\\x85" * 200000 + b"K\\x01s.")\nkeep_reading()\n',
    ),
    Attack(
        "2",
        "2  RESULT: a tuple DAG 60 levels deep (each of the last twice) in a frozenset",
        'dag = b"".join(b"h" + bytes([k]) + b"\\x86\\x94" for k in range(60))\n'
        'result(rid, b"p\\x80\\x04()\\x94" + dag + b"\\x91.")\nkeep_reading()\n',
    ),
    Attack(
        "3a",
        "3a RESULT: REDUCE builtins.bytearray(2**30)",
        'import struct\nop = b"\\x80\\x04" + short("builtins") + short("bytearray") + b"\\x93J"\n'
        'result(rid, b"p" + op + struct.pack("<i", 2**30) + b"\\x85R.")\nkeep_reading()\n',
    ),
    Attack(
        "3b",
        "3b RESULT: REDUCE fractions.Fraction('1e20000000')",
        'op = b"\\x80\\x04" + short("fractions") + short("Fraction") + b"\\x93" + short("1e20000000")\n'
        'result(rid, b"p" + op + b"\\x85R.")\nkeep_reading()\n',
    ),
    Attack(
        "4",
        "4  RESULT: one list reused 40 levels deep (memo GETs, 254 B as pickle.dumps has it), then repr()",
        # What pickle.dumps(L, 4) writes for L = [L', L'], 40 times over: the outer lists first, each inner one
        # inline once and then fetched from the memo.
        'import struct\nlevels = b"]\\x94(" * 40 + b"]\\x94"\n'
        'levels += b"".join(b"h" + bytes([41 - k]) + b"e" for k in range(1, 41))\n'
        'result(rid, b"p\\x80\\x04\\x95" + struct.pack("<Q", len(levels) + 1) + levels + b".")\nkeep_reading()\n',
        prints=True,
    ),
    Attack(
        "5",
        "5  LOG: 30,000 continued pieces of 50 chars, each under a fresh id (2.7 MB)",
        'piece = log_body("x" * 50, True)\n'
        "send(b''.join(HEADER.pack(len(piece), LOG, 0, 10**6 + i) + piece for i in range(30000)))\n"
        "result(rid, literal(1))\nkeep_reading()\n",
    ),
    Attack(
        "5z",
        f"5z LOG: {BIG_PIECES:,} compressed pieces of {BIG_PIECE // 1024} Ki chars, fresh ids "
        f"({_wire_size_5z() / 1e6:.1f} MB on the wire)",
        f'piece = zlib.compress(log_body("x" * {BIG_PIECE}, True))\n'
        f"send(b''.join(HEADER.pack(len(piece), LOG, FLAG_ZLIB, 10**6 + i) + piece for i in range({BIG_PIECES})))\n"
        "result(rid, literal(1))\nkeep_reading()\n",
    ),
    Attack(
        "6",
        "6  LOG: 50,000 one-character continued pieces under one id (2.0 MB)",
        'piece = HEADER.pack(len(log_body("y", True)), LOG, 0, rid) + log_body("y", True)\n'
        'send(piece * 50000 + encode_frame(LOG, rid, log_body("end", False)))\n'
        "result(rid, literal(1))\nkeep_reading()\n",
    ),
    Attack(
        "7",
        "7  raw stderr: 100 MiB with no newline",
        'chunk = memoryview(b"e" * (1 << 20))\nfor _ in range(100):\n    left = chunk\n'
        "    while left:\n        left = left[os.write(2, left):]\n"
        "result(rid, literal(1))\nkeep_reading()\n",
    ),
    Attack(
        "8a",
        "8a 50,000 SERVICE_CALL frames at once (2.2 MB; no pool serves: each refused)",
        "keep_reading_in_background()\n"
        'body = literal(("nosuch.Service", "method", {}))\n'
        "send(b''.join(encode_frame(SERVICE_CALL, i, body) for i in range(1, 50001)))\n"
        "result(rid, literal(1))\ntime.sleep(3600)\n",
    ),
    Attack(
        "8b",
        "8b 200 GET_MODULE of large stdlib modules, then never reads (no answer)",
        'names = [b"email", b"json", b"argparse", b"typing", b"unittest", b"xml.dom", b"http.client", b"asyncio"]\n'
        "send(b''.join(encode_frame(GET_MODULE, i, names[i % len(names)]) for i in range(1, 201)))\n"
        "time.sleep(3600)\n",
    ),
    Attack(
        "9",
        "9  RESULT: a 1 MiB literal [0,0,0,...]",
        'result(rid, b"r[" + b"0," * 524000 + b"0]")\nkeep_reading()\n',
    ),
]
ATTACKS_BY_KEY = {attack.key: attack for attack in ATTACKS}

# -- /proc ------------------------------------------------------------------------------------------------------


def status_kib(pid: int | str, field_name: str) -> int:
    """A size from /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/{pid}/status has no {field_name}")
    return int(match.group(1))


def process_cpu(pid: int | str) -> float:
    """User + system CPU of one process (all threads) so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss() -> bool:
    """Make VmHWM start again from the current RSS (Linux 4.0+); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child_pids() -> list[int]:
    """This process's direct children, from /proc."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(pid) for pid in (task / "children").read_text().split()]
    return found


# -- the worker: healthy children, a baseline, the attack, and the loop of calls around it ---------------------


def emit(**event: Any) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def probe_package(directory: Path) -> str:
    """A package on sys.path whose modules the healthy children import on demand, one new module at a time."""
    name = f"hostile_probe_{os.getpid()}"
    package = directory / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "probe.py").write_text(
        "import importlib\n\n\ndef load(name):\n    return importlib.import_module(name).VALUE\n"
    )
    for index in range(HEALTHY * PROBE_MODULES):
        (package / f"m{index}.py").write_text(f"VALUE = {index}\n")
    sys.path.insert(0, str(directory))
    return name


class Loop:
    """Each healthy child calls ``abs(-1)`` in a loop (every IMPORT_EVERY-th call imports a new module instead).

    Worst latencies count a call still waiting at the end as waiting until then.
    """

    def __init__(self, children: list[Any], load: Any, package: str, first_module: list[int]) -> None:
        self.children, self.load, self.package, self.next_module = children, load, package, first_module
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.worst = {"call": 0.0, "import": 0.0}
        self.waiting: dict[int, tuple[str, float]] = {}
        self.ops = 0
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(len(children))]

    def start(self) -> Loop:
        for thread in self.threads:
            thread.start()
        return self

    def _run(self, index: int) -> None:
        child, count = self.children[index], 0
        while not self.stop.is_set():
            count += 1
            importing = count % IMPORT_EVERY == 0 and self.next_module[index] < (index + 1) * PROBE_MODULES
            kind = "import" if importing else "call"
            began = time.perf_counter()
            with self.lock:
                self.waiting[index] = (kind, began)
            try:
                if importing:
                    module = self.next_module[index]
                    self.next_module[index] += 1
                    answer, expected = child.call(self.load, f"{self.package}.m{module}"), module
                else:
                    answer, expected = child.call(abs, -1), 1
                if answer != expected:
                    raise ValueError(f"wrong answer {answer!r}, expected {expected!r}")
            except Exception as exc:
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:120])
                return
            finally:
                took = time.perf_counter() - began
                with self.lock:
                    self.waiting.pop(index, None)
                    self.worst[kind] = max(self.worst[kind], took)
                    self.ops += 1
            self.stop.wait(PACE_SECONDS)

    def snapshot(self) -> dict[str, Any]:
        """Worst latencies so far (calls still waiting count as done now), in ms, and calls made."""
        now = time.perf_counter()
        with self.lock:
            worst = dict(self.worst)
            for kind, began in self.waiting.values():
                worst[kind] = max(worst[kind], now - began)
            return {
                "call_ms": worst["call"] * 1e3,
                "import_ms": worst["import"] * 1e3,
                "ops": self.ops,
                "errors": list(self.errors[:3]),
            }

    def finish(self) -> dict[str, Any]:
        result = self.snapshot()
        self.stop.set()
        for thread in self.threads:
            thread.join(0.2)
        return result


def describe_value(value: Any) -> str:
    """What a call returned, without printing it (it may be huge)."""
    kind = type(value).__name__
    try:
        return f"returned a {kind} of len {len(value):,}"
    except TypeError:
        return f"returned a {kind}"


def describe_error(exc: BaseException) -> str:
    message = str(exc).replace("\n", "\\n")[:80]
    return f"{type(exc).__name__}: {message}"


def worker(key: str, soft_timeout: float) -> None:
    """One attack in this fresh interpreter; events on stdout (see the parent's ``run_worker``)."""
    import fanout
    from fanout import _stage, _wire

    attack = ATTACKS_BY_KEY[key]
    with tempfile.TemporaryDirectory(prefix="fanout-hostile-") as temp:
        package = probe_package(Path(temp))
        probe = __import__(f"{package}.probe", fromlist=["load"])
        healthy = [fanout.local() for _ in range(HEALTHY)]
        next_module = [index * PROBE_MODULES for index in range(HEALTHY)]
        for child in healthy:  # warm up: the probe module, and one import on demand each
            for _ in range(5):
                child.call(abs, -1)
        warm = Loop(healthy, probe.load, package, next_module).start()
        time.sleep(0.5)
        warm.finish()

        source = Path(_wire.__file__).read_text() + HELPERS + attack.program
        blob = zlib.compress(source.encode())
        real_blob = _stage.stage1_blob
        _stage.stage1_blob = lambda: blob
        try:
            target = fanout.local()
        finally:
            _stage.stage1_blob = real_blob
        emit(event="pids", pids=child_pids())

        cpu_before = process_cpu("self")
        baseline = Loop(healthy, probe.load, package, next_module).start()
        time.sleep(BASELINE_SECONDS)
        base = baseline.finish()
        base["cpu_per_op"] = (process_cpu("self") - cpu_before) / max(base["ops"], 1)

        gc.collect()
        peak_reset = reset_peak_rss()
        rss_before = status_kib("self", "VmRSS")
        cpu_before = process_cpu("self")
        loop = Loop(healthy, probe.load, package, next_module)
        emit(event="attack", rss_before_kib=rss_before, cpu_before=cpu_before, baseline=base, peak_reset=peak_reset)

        def beat() -> None:
            while not loop.stop.wait(BEAT_SECONDS):
                emit(event="beat", **loop.snapshot())

        loop.start()
        threading.Thread(target=beat, daemon=True).start()
        started = time.perf_counter()
        future = target.call_async(abs, -1)
        try:
            value = future.result(timeout=soft_timeout)
        except concurrent.futures.TimeoutError:
            outcome = f"NO ANSWER after {soft_timeout:.0f} s (call still pending, host not dropped)"
        except Exception as exc:
            outcome = describe_error(exc)
        else:
            outcome = describe_value(value)
            if attack.prints:
                outcome += f", repr() {len(repr(value)):,} chars"
            del value
        dealt = time.perf_counter() - started
        time.sleep(max(SETTLE_SECONDS, MIN_WINDOW_SECONDS - dealt))
        during = loop.finish()
        cpu = process_cpu("self") - cpu_before
        emit(
            event="done",
            outcome=outcome,
            seconds=dealt,
            peak_kib=status_kib("self", "VmHWM"),
            cpu=cpu,
            loop_cpu=base["cpu_per_op"] * during["ops"],
            during=during,
        )
    sys.stdout.flush()
    os._exit(0)  # no close(): a hostile child may never answer one; every child ends when this process does


# -- the parent: run a worker, watch it from outside, make a row of what happened -------------------------------


@dataclass
class Sample:
    outcome: str = ""
    rss_mib: float | None = None
    cpu: float | None = None
    seconds: float | None = None
    call_ms: float | None = None
    import_ms: float | None = None
    base_call_ms: float | None = None
    base_import_ms: float | None = None
    at_least: bool = False  # the worker was killed: the others' figures are lower bounds
    others_note: str = ""  # why there are no figures for the others
    notes: list[str] = field(default_factory=list)


def _read_events(stream: Any, events: queue.Queue) -> None:
    for line in stream:
        with contextlib.suppress(ValueError):
            events.put((time.monotonic(), json.loads(line)))
    events.put((time.monotonic(), {"event": "eof"}))


def _kill_leftovers(pids: list[int]) -> None:
    """End the worker's children that outlived it (ours: stage 0 is `python -c ... zlib.decompress ...`)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if b"zlib.decompress" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def run_worker(attack: Attack, env: dict[str, str], timeout: float, rss_cap_kib: int) -> Sample:
    """One attack in a fresh worker; killed past ``timeout`` s from the attack's start or past the RSS cap."""
    sample = Sample()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", attack.key, "--timeout", str(timeout)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            start_new_session=True,
        )
        events: queue.Queue = queue.Queue()
        threading.Thread(target=_read_events, args=(process.stdout, events), daemon=True).start()
        launched, attack_at, start_event, last_beat, done, pids = time.monotonic(), None, None, None, None, []
        peak_kib, cpu, killed = 0, 0.0, None
        while done is None and killed is None:
            with contextlib.suppress(OSError, ValueError):
                peak_kib, cpu = status_kib(process.pid, "VmHWM"), process_cpu(process.pid)
                if status_kib(process.pid, "VmRSS") > rss_cap_kib:
                    killed = f"KILLED at RSS over {rss_cap_kib / 1024**2:.0f} GiB"
            try:
                at, event = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                at, event = time.monotonic(), {}
            kind = event.get("event")
            if kind == "pids":
                pids = event["pids"]
            elif kind == "attack":
                attack_at, start_event = at, event
            elif kind == "beat":
                last_beat = (at, event)
            elif kind == "done":
                done = event
            elif kind == "eof":
                break
            now = time.monotonic()
            if killed is None and attack_at is None and now - launched > SETUP_TIMEOUT:
                killed = "SETUP TIMEOUT"
            elif killed is None and attack_at is not None and now - attack_at > timeout:
                killed = f"HANG (killed after {timeout:.0f} s)"
        ended = time.monotonic()
        if done is None and process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _kill_leftovers(pids)
        stderr.seek(0, os.SEEK_END)
        size = stderr.tell()
        stderr.seek(max(0, size - 2000))
        stderr_tail = stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]

    if start_event is None:
        sample.outcome = killed or f"WORKER FAILED before the attack (exit {process.returncode})"
        sample.notes += stderr_tail
        return sample
    base = start_event["baseline"]
    sample.base_call_ms, sample.base_import_ms = base["call_ms"], base["import_ms"]
    rss_before = start_event["rss_before_kib"]
    if not start_event["peak_reset"]:
        sample.notes.append("VmHWM could not be reset: peak is since the worker started")
    if done is not None:
        sample.outcome = done["outcome"]
        sample.rss_mib = (done["peak_kib"] - rss_before) / 1024
        sample.cpu = max(0.0, done["cpu"] - done["loop_cpu"])
        sample.seconds = done["seconds"]
        sample.call_ms, sample.import_ms = done["during"]["call_ms"], done["during"]["import_ms"]
        if done["during"]["errors"]:
            sample.others_note = "FAILED: " + done["during"]["errors"][0]
        return sample
    # Killed, or died: what the parent saw from outside.
    sample.rss_mib = (peak_kib - rss_before) / 1024
    ops = last_beat[1]["ops"] if last_beat else 0
    sample.cpu = max(0.0, cpu - start_event["cpu_before"] - base["cpu_per_op"] * ops)
    sample.seconds = ended - attack_at
    if killed is not None:
        sample.outcome = killed if killed.startswith("HANG") else f"{killed} after {ended - attack_at:.1f} s"
        beat_at, beat = last_beat if last_beat else (attack_at, {"call_ms": 0.0, "import_ms": 0.0})
        silent = ended - beat_at  # a frozen master sends no beats: the loop's calls waited at least this long
        sample.call_ms = max(beat["call_ms"], silent * 1e3)
        sample.import_ms = max(beat["import_ms"], silent * 1e3)
        sample.at_least = True
        if silent > 2:
            sample.notes.append(f"master frozen: no beat from its threads for the last {silent:.1f} s")
    else:
        code = process.returncode
        sample.outcome = f"CRASH (signal {-code})" if code < 0 else f"WORKER EXITED {code}"
        sample.others_note = "master died"
        if code >= 0:
            sample.notes += stderr_tail
    return sample


# -- the report -------------------------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row(attack: Attack, samples: list[Sample]) -> list[str]:
    outcomes = [s.outcome for s in samples]
    outcome = max(set(outcomes), key=outcomes.count)
    if len(set(outcomes)) > 1:
        outcome += f" ({outcomes.count(outcome)}/{len(outcomes)})"
    ge = "≥ " if any(s.at_least for s in samples) else ""
    notes = {s.others_note for s in samples if s.others_note}
    call, base_call = _median([s.call_ms for s in samples]), _median([s.base_call_ms for s in samples])
    imp, base_imp = _median([s.import_ms for s in samples]), _median([s.base_import_ms for s in samples])

    def others(during: float | None, base: float | None) -> str:
        if notes:
            return "; ".join(sorted(notes))
        if during is None:
            return "-"
        ratio = f" ({during / base:,.1f}x)" if base else ""
        return f"{ge}{during:,.0f}{ratio}"

    return [
        attack.label,
        outcome,
        _fmt(_median([s.rss_mib for s in samples]), ",.1f"),
        _fmt(_median([s.cpu for s in samples]), ",.2f"),
        _fmt(_median([s.seconds for s in samples]), ",.2f"),
        others(call, base_call),
        others(imp, base_imp),
        f"{_fmt(base_call, ',.0f')} / {_fmt(base_imp, ',.0f')}",
    ]


HEADERS = [
    "attack",
    "outcome",
    "RSS growth (MiB)",
    "master CPU (s)",
    "time to deal with it (s)",
    "others' worst call, ms (x no-attack)",
    "others' worst import, ms (x no-attack)",
    "no-attack worst call / import, ms",
]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
    numeric = {2, 3, 4}
    lines = []
    for index, cells in enumerate([HEADERS, *rows]):
        lines.append(
            " | ".join(
                c.rjust(w) if i in numeric and index else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def measured_code() -> tuple[str, Path]:
    """Which fanout this interpreter imports, and the git description of its checkout."""
    import fanout

    root = Path(fanout.__file__).resolve().parent.parent
    described = "not a git checkout"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git = ["git", "-C", str(root)]
        describe = subprocess.run([*git, "describe", "--always", "--dirty"], capture_output=True, text=True, check=True)
        commit = subprocess.run([*git, "log", "-1", "--format=%H %s"], capture_output=True, text=True, check=True)
        described = f"{describe.stdout.strip()} ({commit.stdout.strip()[:100]})"
    return f"fanout imported from {root}: {described}", root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="workers per attack; cells are medians (default 1)")
    parser.add_argument("--only", default="", help="comma-separated attack keys, e.g. 1,3a,8b (default: all)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds from an attack's start to a kill")
    parser.add_argument("--rss-cap-gib", type=float, default=8.0, help="kill a worker whose RSS passes this")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, soft_timeout=max(1.0, args.timeout - 15))
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    keys = [k.strip() for k in args.only.split(",") if k.strip()] or list(ATTACKS_BY_KEY)
    unknown = [k for k in keys if k not in ATTACKS_BY_KEY]
    if unknown:
        parser.error(f"unknown attack {', '.join(unknown)}; known: {', '.join(ATTACKS_BY_KEY)}")

    code, root = measured_code()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    rows, notes = [], []
    for key in keys:
        attack = ATTACKS_BY_KEY[key]
        samples = []
        for repeat in range(args.repeat):
            print(f"[{attack.key} {repeat + 1}/{args.repeat}] {attack.label}", file=sys.stderr, flush=True)
            sample = run_worker(attack, env, args.timeout, int(args.rss_cap_gib * 1024**2))
            print(f"    {sample.outcome}", file=sys.stderr, flush=True)
            samples.append(sample)
        rows.append(row(attack, samples))
        notes += [f"{attack.key}: {note}" for note in dict.fromkeys(n for s in samples for n in s.notes)]

    print(f"machine: {os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, {platform.platform()}")
    print(f"code: {code}")
    print(
        f"{HEALTHY} healthy local children; each attack in a fresh worker, medians of {args.repeat}; "
        f"hard timeout {args.timeout:.0f} s"
    )
    print()
    print(table(rows))
    print()
    print(
        "RSS growth: peak VmHWM during the attack minus VmRSS before it (after gc, VmHWM reset).\n"
        "master CPU: the master process's CPU from the attack's start to the end of the window, minus what the\n"
        "  healthy loop costs by itself (its CPU per call in the no-attack run, times the calls made meanwhile).\n"
        "time to deal with it: until the attacked call returned or raised (repr included for 4), or the kill.\n"
        f"others: {HEALTHY} healthy children call abs(-1) in a loop ({PACE_SECONDS * 1e3:.0f} ms apart), every "
        f"{IMPORT_EVERY}th call importing a new module\n"
        f"  on demand; worst latency from the attack's start until {SETTLE_SECONDS} s after it was dealt with "
        f"(at least {MIN_WINDOW_SECONDS:.0f} s), a call still\n"
        "  waiting counted until then; the ratio is to the same loop run for "
        f"{BASELINE_SECONDS:.0f} s just before, with the hostile child connected.\n"
        "  '≥': the worker was killed, and the figure is what it had shown by then (or its silence, when frozen)."
    )
    for note in notes:
        print(f"note {note}")
    return 0


if __name__ == "__main__":
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        del sys.path[0]  # run as a file: benchmarks/fanout.py would hide the fanout package
    sys.exit(main())
