"""Move files both ways: fanout's put and fetch against threaded paramiko SFTP, scp and rsync, on a Docker fleet.

Run from the repository root: ``python -m benchmarks.files [--hosts 8] [--repeat 3] [--suite bookworm]``
(``--quick`` for small sizes, 2 hosts and 1 repeat while developing).

Why this shape: issue 11 asks for fanout to be the fastest way to push and
fetch files and trees, reading each source file once for the whole fleet. Each
contender does the same operations on the same hosts in the same run, each
sample in a fresh worker process (so one contender's peak memory neither
inflates nor hides another's), the contenders alternating within each repeat;
the table shows medians and ratios. The script brings the fleet up itself and
always removes it; it reports and never asserts (a missed target is marked
MISSED), and exits 0 whenever fanout and the SFTP baseline could be measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import inspect
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import stat
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
    from benchmarks.fanout import HostEntry
    from tests.fleet.hosts import FleetHost

KINDS = ("sftp", "fanout", "scp", "rsync")  # the table's columns; sftp is the baseline
OPS = ("push_file", "push_tree", "repush_tree", "fetch_file", "fetch_tree")  # in this order within a repeat
NEEDS = {"repush_tree": "push_tree", "fetch_file": "push_file", "fetch_tree": "push_tree"}  # what must have worked
PUSH_OPS = ("push_file", "push_tree", "repush_tree")
DEST_ROOT = "/tmp/fanout-bench"  # on every host, as the fleet's default user; one directory per contender
FILE_MIB = 256
TREE_FILES = 2000
TREE_MIB = 20
TREE_DIRS = 8  # top-level directories of the tree, each with SUBDIRS subdirectories; files spread over all of them
SUBDIRS = 2
EMPTY_FILES = 5  # empty files among the tree's (they must travel too)
QUICK = {"file_mib": 16, "tree_files": 200, "tree_mib": 2, "hosts": 2, "repeat": 1}
TARGET_FILE_SPEED = 0.9  # at least: fanout's aggregate throughput over SFTP's, one big file
TARGET_TREE_SPEED = 3.0  # at least: SFTP's time over fanout's, the first push of the tree
TARGET_REPUSH_SHARE = 0.10  # at most: fanout's unchanged re-push over its own first push
WORKER_TIMEOUT = 900.0
POLL_SECONDS = 0.05  # how often the child processes' memory is sampled (scp, rsync and their ssh)
SEED = 11
ROOT = Path(__file__).resolve().parents[1]


def log(line: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """What every worker gets: the hosts, the data, where things go, and how to read the hosts' CPU."""

    entries: list[HostEntry]
    big: str  # the big file on the master
    big_size: int
    tree: str  # the tree's directory on the master (its name is "tree")
    tree_files: int
    tree_bytes: int
    fetch_root: str  # fetched copies go to <fetch_root>/<kind>/<host>/<remote path>, removed after each sample
    ssh_kex: str | None  # the key exchange scp and rsync's ssh are pinned to (paramiko's), or None: ssh's own
    cgroup_files: list[tuple[str, float]]  # the containers' CPU counters and their unit in seconds; [] unknown

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        from benchmarks.fanout import HostEntry

        data = json.loads(text)
        data["entries"] = [HostEntry(**item) for item in data["entries"]]
        data["cgroup_files"] = [tuple(item) for item in data["cgroup_files"]]
        return cls(**data)

    def dest(self, kind: str) -> str:
        return f"{DEST_ROOT}/{kind}"


# -- the data, made once per run ---------------------------------------------------------------


def make_big_file(path: Path, size: int) -> None:
    """Random bytes (incompressible: nobody's compression helps), written through to the disk."""
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)
        f.flush()
        os.fsync(f.fileno())


def tree_sizes(files: int, total: int, rng: random.Random) -> list[int]:
    """``files`` sizes adding up to ``total``: exponentially spread (many small, a few large), a few empty."""
    weights = [rng.expovariate(1.0) for _ in range(files)]
    for index in rng.sample(range(files), min(EMPTY_FILES, files)):
        weights[index] = 0.0
    scale = total / sum(weights)
    sizes = [int(w * scale) for w in weights]
    nonempty = [i for i, w in enumerate(weights) if w]
    for i in range(total - sum(sizes)):
        sizes[nonempty[i % len(nonempty)]] += 1
    return sizes


def make_tree(root: Path, files: int, total: int) -> None:
    """``files`` random files in TREE_DIRS directories of SUBDIRS subdirectories each, ``total`` bytes in all."""
    rng = random.Random(SEED)
    directories = []
    for top in range(TREE_DIRS):
        directories.append(root / f"d{top:02d}")
        directories += [root / f"d{top:02d}" / f"s{sub}" for sub in range(SUBDIRS)]
    for directory in directories:
        directory.mkdir(parents=True)
    for index, size in enumerate(tree_sizes(files, total, rng)):
        path = directories[index % len(directories)] / f"f{index:05d}.dat"
        with open(path, "wb") as f:
            f.write(rng.randbytes(size))
            os.fsync(f.fileno())


def local_listing(root: str) -> list[tuple[str, list[tuple[str, int, float]]]]:
    """The tree as (directory relative to ``root``, [(file name, size, mtime)]), parents before children."""
    listing = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(directory, root)
        entries = []
        for name in sorted(filenames):
            info = os.stat(os.path.join(directory, name))
            entries.append((name, info.st_size, info.st_mtime))
        listing.append(("" if rel == "." else rel, entries))
    return listing


def drop_from_page_cache(paths: Sequence[str]) -> None:
    """Evict our own source files from the page cache, so every push sample reads them from the disk alike.

    Only these files' clean pages go (``POSIX_FADV_DONTNEED``): nothing else on the machine is touched.
    """
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def source_files(plan: Plan) -> list[str]:
    found = [plan.big]
    for directory, _, filenames in os.walk(plan.tree):
        found += [os.path.join(directory, name) for name in filenames]
    return found


# -- measuring in the worker ---------------------------------------------------------------------


def _status_kib(name: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in KiB."""
    match = re.search(rf"^{name}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"/proc/self/status has no {name}")
    return int(match.group(1))


def proc_io() -> dict[str, int]:
    """This process's I/O counters (children it has waited for included): rchar, read_bytes, ..."""
    counters = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        key, _, value = line.partition(":")
        counters[key.strip()] = int(value)
    return counters


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cgroup_seconds(files: Sequence[tuple[str, float]]) -> float | None:
    """The containers' CPU so far (benchmarks.fanout.HostCpu's files); None where they were not found."""
    if not files:
        return None
    total = 0.0
    for path, scale in files:
        text = Path(path).read_text()
        if path.endswith("cpu.stat"):
            match = re.search(r"^usage_usec (\d+)", text, re.MULTILINE)
            if match is None:
                return None
            text = match.group(1)
        total += int(text) * scale
    return total


class ChildPeak:
    """The peak of the summed PSS of this process's descendants (scp, rsync, ssh), sampled every POLL_SECONDS."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from benchmarks.fanout import descendants

        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, descendants().pss_kib)
            self._stop.wait(POLL_SECONDS)

    def __enter__(self) -> ChildPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Sample:
    """One contender doing one operation on every host, measured inside its own worker process."""

    kind: str
    op: str
    seconds: float = 0.0
    rss_before_kib: int = 0
    peak_kib: int = 0
    peak_reset: bool = True  # False: VmHWM could not be reset, so the peak counts from the worker's start
    children_peak_kib: int = 0  # scp, rsync and their ssh processes, summed PSS at its highest
    rchar: int = 0  # bytes passed by read() calls, the worker's and its reaped children's
    read_bytes: int = 0  # bytes fetched from storage (the page cache missed), the same processes
    cpu_seconds: float = 0.0  # the worker and its reaped children
    host_cpu_seconds: float | None = None  # all the containers, over the timed operation
    again_seconds: float | None = None  # repush_tree by sftp and fanout: the same once more in the same process
    service_bytes_read: int | None = None  # fanout: what its FileChunks service read from disk for the push
    detail: str = ""  # what the contender says it did (files sent or skipped)
    error: str | None = None

    @property
    def growth_kib(self) -> int:
        """Master side peak memory growth: the worker's own, plus its child processes' (none for sftp, fanout)."""
        return max(self.peak_kib - self.rss_before_kib, 0) + self.children_peak_kib


def in_threads(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``fn`` on every item at once, one thread each, started together; the answers in order, or the first error."""
    answers: list[Any] = [None] * len(items)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(items))

    def one(index: int, item: Any) -> None:
        barrier.wait()
        try:
            answers[index] = fn(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=pair, daemon=True) for pair in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return answers


def _local_target(plan: Plan, kind: str, host: str, remote: str) -> Path:
    """Where a fetched ``remote`` goes: <fetch_root>/<kind>/<host>/<remote path>, as Ansible's fetch puts it."""
    return Path(plan.fetch_root) / kind / host / remote.lstrip("/")


# -- the contenders: each runs every operation on every host --------------------------------------


class Sftp:
    """The baseline: one thread per host, each with its own ``SSHClient`` and ``open_sftp()``, paramiko's defaults.

    ``put``/``get`` as a paramiko user calls them: 32 KiB writes, pipelined, in
    paramiko's default 2 MiB window; ``put`` stats the file after it (``confirm=True``),
    ``get`` prefetches. Trees: ``mkdir`` per directory, ``put`` per file. Again,
    unchanged: ``listdir_attr`` per directory, a file skipped when its size is the
    same and the remote copy is no older than the local one (no content check).
    """

    spawns = False

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.dest = plan.dest("sftp")
        self.sessions: list[tuple[HostEntry, Any, Any]] = []

    def open(self) -> None:
        from benchmarks.bootstrap import Endpoint, paramiko_connect

        def connect(entry: HostEntry) -> tuple[HostEntry, Any, Any]:
            ep = Endpoint(entry.port, entry.user, Path(entry.key_path), Path(entry.known_hosts))
            client = paramiko_connect(ep)
            return entry, client, client.open_sftp()

        self.sessions = in_threads(connect, self.plan.entries)

    def close(self) -> None:
        for _, client, sftp in self.sessions:
            sftp.close()
            client.close()

    def push_file(self) -> str:
        remote = f"{self.dest}/big.bin"
        in_threads(lambda s: s[2].put(self.plan.big, remote), self.sessions)
        return ""

    def push_tree(self) -> str:
        listing = local_listing(self.plan.tree)

        def one(session: tuple[HostEntry, Any, Any]) -> None:
            sftp = session[2]
            for rel, files in listing:
                remote_dir = f"{self.dest}/tree/{rel}".rstrip("/")
                sftp.mkdir(remote_dir)
                for name, _, _ in files:
                    sftp.put(os.path.join(self.plan.tree, rel, name), f"{remote_dir}/{name}")

        in_threads(one, self.sessions)
        return ""

    def repush_tree(self) -> str:
        listing = local_listing(self.plan.tree)

        def one(session: tuple[HostEntry, Any, Any]) -> int:
            sftp, sent = session[2], 0
            for rel, files in listing:
                remote_dir = f"{self.dest}/tree/{rel}".rstrip("/")
                try:
                    there = {a.filename: a for a in sftp.listdir_attr(remote_dir)}
                except FileNotFoundError:
                    sftp.mkdir(remote_dir)
                    there = {}
                for name, size, mtime in files:
                    found = there.get(name)
                    if found and stat.S_ISREG(found.st_mode) and found.st_size == size and found.st_mtime >= int(mtime):
                        continue
                    sftp.put(os.path.join(self.plan.tree, rel, name), f"{remote_dir}/{name}")
                    sent += 1
            return sent

        sent = in_threads(one, self.sessions)
        return f"sent {sum(sent)} file(s) again"

    def fetch_file(self) -> str:
        remote = f"{self.dest}/big.bin"

        def one(session: tuple[HostEntry, Any, Any]) -> None:
            local = _local_target(self.plan, "sftp", session[0].name, remote)
            local.parent.mkdir(parents=True, exist_ok=True)
            session[2].get(remote, str(local))

        in_threads(one, self.sessions)
        return ""

    def fetch_tree(self) -> str:
        remote_root = f"{self.dest}/tree"

        def walk(sftp: Any, remote: str, local: Path) -> None:
            local.mkdir(parents=True, exist_ok=True)
            for attr in sftp.listdir_attr(remote):
                if stat.S_ISDIR(attr.st_mode):
                    walk(sftp, f"{remote}/{attr.filename}", local / attr.filename)
                elif stat.S_ISREG(attr.st_mode):
                    sftp.get(f"{remote}/{attr.filename}", str(local / attr.filename))

        in_threads(
            lambda s: walk(s[2], remote_root, _local_target(self.plan, "sftp", s[0].name, remote_root)),
            self.sessions,
        )
        return ""


def count_service_reads(served: list[int]) -> None:
    """Have every push append what its ``FileChunks`` service read from disk (``bytes_read``) to ``served``.

    The service lives as long as the pool a push starts, so the count is taken
    as its ``_push.serving`` block ends; Fleet.put looks the function up there at each call.
    """
    from fanout import _push

    real = _push.serving

    @contextlib.contextmanager
    def serving(threads: int) -> Iterator[Any]:
        with real(threads) as chunks:
            before = chunks.bytes_read
            try:
                yield chunks
            finally:
                served.append(chunks.bytes_read - before)

    _push.serving = serving


class Fanout:
    """``Fleet(hosts, forks=N)``, connected before the clock starts; then ``fleet.put`` or ``fleet.fetch``."""

    spawns = False

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.dest = plan.dest("fanout")
        self.fleet: Any = None
        self.served: list[int] = []  # FileChunks.bytes_read, per put

    def open(self) -> None:
        from benchmarks.fanout import fleet_hosts
        from fanout.fleet import Fleet

        count_service_reads(self.served)

        self.fleet = Fleet(fleet_hosts(self.plan.entries), forks=len(self.plan.entries), echo=False, progress=False)
        self.fleet.connect()
        if self.fleet.failures:
            name, error = next(iter(self.fleet.failures.items()))
            raise RuntimeError(f"fanout: {len(self.fleet.failures)} host(s) not connected, {name}: {error}")
        # The hosts' side of put and fetch imported before the clock starts, as SFTP's open_sftp() starts
        # sftp-server on each host before its clock starts.
        for module in ("fanout._push_remote", "fanout._fetch_remote"):
            self._check(self.fleet.call(eval, f"__import__({module!r}) and None"), f"import {module}")

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.close()

    @staticmethod
    def _check(results: Any, what: str) -> list[Any]:
        failed = {name: result for name, result in results.items() if not result.ok}
        if failed:
            raise RuntimeError(f"fanout {what}: {len(failed)} host(s) failed: {list(failed.values())[:2]}")
        return [result.value for result in results.values()]

    def push_file(self) -> str:
        self._check(self.fleet.put(self.plan.big, f"{self.dest}/big.bin"), "put")
        return ""

    def push_tree(self) -> str:
        self._check(self.fleet.put(self.plan.tree + "/", f"{self.dest}/tree/"), "put")
        return ""

    def repush_tree(self) -> str:
        values = self._check(self.fleet.put(self.plan.tree + "/", f"{self.dest}/tree/"), "put again")
        return _changed_text(values)

    def fetch_file(self) -> str:
        self._check(self.fleet.fetch(f"{self.dest}/big.bin", str(Path(self.plan.fetch_root) / "fanout")), "fetch")
        return ""

    def fetch_tree(self) -> str:
        self._check(self.fleet.fetch(f"{self.dest}/tree/", str(Path(self.plan.fetch_root) / "fanout")), "fetch")
        return ""


def _changed_text(values: Sequence[Any]) -> str:
    """What the hosts' Transfers say was sent again: files written, and bytes of content pulled."""
    paths = sum(len(v.changed_paths) for v in values)
    return f"sent {paths} entries again ({sum(v.bytes_sent for v in values):,} B of content), all hosts"


def ssh_options(entry: HostEntry, kex: str | None) -> list[str]:
    """OpenSSH client options for one host: this host's key only, its known_hosts only, no ssh_config, no prompts."""
    return [
        "-F",
        "/dev/null",
        "-i",
        entry.key_path,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={entry.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        *(["-o", f"KexAlgorithms={kex}"] if kex else []),
    ]


class Spawning:
    """A contender that runs one OpenSSH-based command per host, all at once, and waits for all of them."""

    spawns = True
    name = ""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.dest = plan.dest(self.name)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _remote(self, entry: HostEntry, path: str) -> str:
        return f"{entry.user}@{entry.address}:{path}"

    def _run_all(self, argv_of: Callable[[HostEntry], list[str]]) -> None:
        procs = [
            (entry, subprocess.Popen(argv_of(entry), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE))
            for entry in self.plan.entries
        ]
        failed = []
        for entry, proc in procs:
            _, err = proc.communicate()
            if proc.returncode:
                failed.append(f"{entry.name}: exit {proc.returncode}: {err.decode(errors='replace').strip()[-300:]}")
        if failed:
            raise RuntimeError(f"{self.name}: {len(failed)} host(s) failed, {failed[0]}")

    def _fetch_dir(self, entry: HostEntry, remote: str) -> Path:
        """The local directory a fetch of ``remote`` writes into (made now): its parent's place under the host."""
        local = _local_target(self.plan, self.name, entry.name, remote).parent
        local.mkdir(parents=True, exist_ok=True)
        return local


class Scp(Spawning):
    """``scp`` (OpenSSH's, SFTP protocol by default since 9.0), one process per host; ``-r`` for the tree."""

    name = "scp"

    def _scp(self, entry: HostEntry) -> list[str]:
        return ["scp", "-q", "-P", str(entry.port), *ssh_options(entry, self.plan.ssh_kex)]

    def push_file(self) -> str:
        self._run_all(lambda e: [*self._scp(e), self.plan.big, self._remote(e, f"{self.dest}/big.bin")])
        return ""

    def push_tree(self) -> str:
        self._run_all(lambda e: [*self._scp(e), "-r", self.plan.tree, self._remote(e, f"{self.dest}/")])
        return ""

    def fetch_file(self) -> str:
        remote = f"{self.dest}/big.bin"
        self._run_all(lambda e: [*self._scp(e), self._remote(e, remote), str(self._fetch_dir(e, remote))])
        return ""

    def fetch_tree(self) -> str:
        remote = f"{self.dest}/tree"
        self._run_all(lambda e: [*self._scp(e), "-r", self._remote(e, remote), str(self._fetch_dir(e, remote))])
        return ""


class Rsync(Spawning):
    """``rsync -a`` over ``ssh``, one process per host; unchanged files are skipped by size and mtime."""

    name = "rsync"

    def _rsync(self, entry: HostEntry) -> list[str]:
        ssh = shlex.join(["ssh", "-p", str(entry.port), *ssh_options(entry, self.plan.ssh_kex)])
        return ["rsync", "-a", "-e", ssh]

    def push_file(self) -> str:
        self._run_all(lambda e: [*self._rsync(e), self.plan.big, self._remote(e, f"{self.dest}/big.bin")])
        return ""

    def push_tree(self) -> str:
        self._run_all(lambda e: [*self._rsync(e), self.plan.tree + "/", self._remote(e, f"{self.dest}/tree/")])
        return ""

    repush_tree = push_tree

    def fetch_file(self) -> str:
        remote = f"{self.dest}/big.bin"
        self._run_all(lambda e: [*self._rsync(e), self._remote(e, remote), str(self._fetch_dir(e, remote)) + "/"])
        return ""

    def fetch_tree(self) -> str:
        remote = f"{self.dest}/tree"
        self._run_all(lambda e: [*self._rsync(e), self._remote(e, remote), str(self._fetch_dir(e, remote)) + "/"])
        return ""


CONTENDERS = {"sftp": Sftp, "fanout": Fanout, "scp": Scp, "rsync": Rsync}


# -- one sample, in a fresh worker process ---------------------------------------------------------


def check_fetched(plan: Plan, kind: str, op: str) -> None:
    """Every host's copy is there, file count and bytes as pushed (the tools check content themselves)."""
    root = Path(plan.fetch_root) / kind
    want = (1, plan.big_size) if op == "fetch_file" else (plan.tree_files, plan.tree_bytes)
    for entry in plan.entries:
        sizes = [p.stat().st_size for p in (root / entry.name).rglob("*") if p.is_file() and not p.is_symlink()]
        if (len(sizes), sum(sizes)) != want:
            raise RuntimeError(
                f"{kind} {op}: {entry.name} has {len(sizes)} file(s), {sum(sizes):,} B locally; expected "
                f"{want[0]}, {want[1]:,} B (under {root / entry.name})"
            )


def worker(kind: str, op: str, plan: Plan) -> Sample:
    """Connect (untimed), then one operation on every host, timed: wall time, memory, reads, CPU."""
    sample = Sample(kind, op)
    contender = CONTENDERS[kind](plan)
    contender.open()
    try:
        gc.collect()
        sample.peak_reset = _reset_peak_rss()
        sample.rss_before_kib = _status_kib("VmRSS")
        io_before, cpu_before, host_before = proc_io(), _own_cpu() + children_cpu(), cgroup_seconds(plan.cgroup_files)
        with ChildPeak() if contender.spawns else contextlib.nullcontext() as peak:
            started = time.perf_counter()
            sample.detail = getattr(contender, op)()
            sample.seconds = time.perf_counter() - started
        sample.peak_kib = _status_kib("VmHWM")
        io_after, host_after = proc_io(), cgroup_seconds(plan.cgroup_files)
        sample.cpu_seconds = _own_cpu() + children_cpu() - cpu_before
        sample.children_peak_kib = peak.peak_kib if peak is not None else 0
        if isinstance(contender, Fanout) and contender.served:
            sample.service_bytes_read = sum(contender.served)
        sample.rchar = io_after["rchar"] - io_before["rchar"]
        sample.read_bytes = io_after["read_bytes"] - io_before["read_bytes"]
        if host_before is not None and host_after is not None:
            sample.host_cpu_seconds = host_after - host_before
        if op == "repush_tree" and not contender.spawns:  # after every counter was read: only its time counts
            started = time.perf_counter()
            getattr(contender, op)()
            sample.again_seconds = time.perf_counter() - started
    finally:
        contender.close()
    if op.startswith("fetch"):
        try:
            check_fetched(plan, kind, op)
        finally:
            shutil.rmtree(Path(plan.fetch_root) / kind, ignore_errors=True)
    return sample


def _reset_peak_rss() -> bool:
    from benchmarks.fanout import reset_peak_rss

    return reset_peak_rss()


def _own_cpu() -> float:
    from benchmarks.fanout import own_cpu

    return own_cpu()


def worker_main(kind: str, op: str, spec: Path) -> int:
    """The worker's entry point: one JSON line on stdout, whatever happened."""
    plan = Plan.from_json(spec.read_text())
    try:
        sample = worker(kind, op, plan)
    except Exception as exc:
        sample = Sample(kind, op, error=f"{type(exc).__name__}: {exc}")
    print(json.dumps(asdict(sample)), flush=True)
    return 0 if sample.error is None else 1


def run_worker(kind: str, op: str, spec: Path) -> Sample:
    """One sample in a fresh interpreter; what it says on stderr is passed on, prefixed."""
    argv = [sys.executable, "-m", "benchmarks.files", "--worker", kind, "--op", op, "--spec", str(spec)]
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        return Sample(kind, op, error=f"worker killed after {WORKER_TIMEOUT:g} s")
    for line in proc.stderr.splitlines()[-20:]:
        log(f"  {kind} {op}: {line}")
    try:
        return Sample(**json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return Sample(kind, op, error=f"worker exited {proc.returncode}: {tail[0]}")


# -- the run, in the parent ---------------------------------------------------------------------------


@dataclass
class Results:
    """Every sample by (kind, op), failed ones too, and why a contender or an operation could not run."""

    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)

    def ok(self, kind: str, op: str) -> list[Sample]:
        return [s for s in self.samples.get((kind, op), []) if s.error is None]

    def errors(self, kind: str, op: str) -> list[str]:
        return [s.error for s in self.samples.get((kind, op), []) if s.error is not None]


class Hosts:
    """The parent's own paramiko connection to every host: cleaning up, checking pushes, probing for tools."""

    def __init__(self, entries: Sequence[HostEntry]) -> None:
        from benchmarks.bootstrap import Endpoint, paramiko_connect

        self.clients = {
            e.name: paramiko_connect(Endpoint(e.port, e.user, Path(e.key_path), Path(e.known_hosts))) for e in entries
        }

    def run(self, name: str, command: str) -> tuple[int, str]:
        _, stdout, stderr = self.clients[name].exec_command(command)
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
        return stdout.channel.recv_exit_status(), out + err

    def run_all(self, command: str) -> dict[str, tuple[int, str]]:
        names = list(self.clients)
        return dict(zip(names, in_threads(lambda n: self.run(n, command), names), strict=True))

    def reset(self, kinds: Sequence[str]) -> None:
        """An empty directory per contender on every host (and nothing left of the previous repeat)."""
        dirs = " ".join(shlex.quote(f"{DEST_ROOT}/{kind}") for kind in kinds)
        for name, (code, out) in self.run_all(f"rm -rf {DEST_ROOT} && mkdir -p {dirs}").items():
            if code:
                raise RuntimeError(f"cannot reset {DEST_ROOT} on {name}: {out.strip()}")

    def check(self, path: str, files: int, size: int) -> str | None:
        """None when every host holds ``files`` regular files of ``size`` bytes in all under ``path``."""
        command = f"find {shlex.quote(path)} -type f -printf '%s\\n'"
        for name, (code, out) in self.run_all(command).items():
            sizes = [int(line) for line in out.split()] if code == 0 else []
            if code or (len(sizes), sum(sizes)) != (files, size):
                return f"{name} has {len(sizes)} file(s), {sum(sizes):,} B under {path}; expected {files}, {size:,} B"
        return None

    def have(self, program: str) -> bool:
        return all(code == 0 for code, _ in self.run_all(f"command -v {program}").values())

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def unavailable(kinds_missing: dict[str, str], kind: str, op: str) -> str | None:
    """Why ``kind`` cannot do ``op`` here, before a worker is spent on it."""
    if kind in kinds_missing:
        return kinds_missing[kind]
    if kind == "scp" and op == "repush_tree":
        return "scp has no way to skip unchanged files: it sends everything again"
    if kind == "fanout":
        from fanout.fleet import Fleet

        if op in ("push_tree", "repush_tree") and "delete" not in inspect.signature(Fleet.put).parameters:
            return "Fleet.put takes no directory in this checkout (no tree push yet)"
        if op.startswith("fetch") and not hasattr(Fleet, "fetch"):
            return "Fleet.fetch does not exist in this checkout"
    return None


def missing_tools(hosts: Hosts) -> dict[str, str]:
    """Contenders that cannot run at all, and why: scp or rsync missing on the master or on the hosts."""
    missing = {}
    for kind in ("scp", "rsync"):
        where = [place for place, found in (("master", shutil.which(kind)), ("hosts", hosts.have(kind))) if not found]
        if where:
            image = ", and the fleet image does not install it" if "hosts" in where else ""
            missing[kind] = f"no `{kind}` on the {' nor on the '.join(where)}{image}; nothing is installed for this run"
        elif shutil.which("ssh") is None:
            missing[kind] = "no `ssh` client on the master"
    return missing


def verify_push(hosts: Hosts, plan: Plan, kind: str, op: str) -> str | None:
    if op == "push_file":
        return hosts.check(f"{plan.dest(kind)}/big.bin", 1, plan.big_size)
    return hosts.check(f"{plan.dest(kind)}/tree", plan.tree_files, plan.tree_bytes)


def _order(repeat: int, kinds: Sequence[str]) -> list[str]:
    """Rotate who goes first, so each contender leads (and follows each other one) equally often."""
    shift = repeat % len(kinds)
    return [*kinds[shift:], *kinds[:shift]]


def measure(
    plan: Plan, hosts: Hosts, repeat: int, workdir: Path, ops: Sequence[str] = OPS, kinds: Sequence[str] = KINDS
) -> Results:
    """``repeat`` rounds; in each, every operation by every contender, contenders alternating, each in a worker."""
    spec = workdir / "plan.json"
    spec.write_text(plan.to_json())
    results = Results()
    missing = missing_tools(hosts)
    for kind, reason in missing.items():
        log(f"bench: {kind} skipped: {reason}")
    sources = source_files(plan)
    for index in range(repeat):
        hosts.reset(kinds)
        broken: dict[str, set[str]] = {}  # per contender, the operations that failed in this repeat
        for op in OPS:
            if op not in ops:
                continue
            for kind in _order(index, kinds):
                reason = unavailable(missing, kind, op)
                if reason:
                    results.skipped[(kind, op)] = reason
                    continue
                need = NEEDS.get(op)
                if need and (need in broken.get(kind, ()) or (kind, need) in results.skipped or need not in ops):
                    sample = Sample(kind, op, error=f"not run: {NEEDS[op]} failed or was skipped in this repeat")
                else:
                    if op in PUSH_OPS:
                        drop_from_page_cache(sources)
                    sample = run_worker(kind, op, spec)
                    if sample.error is None and op in PUSH_OPS:
                        problem = verify_push(hosts, plan, kind, op)
                        if problem:
                            sample.error = f"the push left the wrong files: {problem}"
                if sample.error:
                    broken.setdefault(kind, set()).add(op)
                results.samples.setdefault((kind, op), []).append(sample)
                outcome = f"error: {sample.error}" if sample.error else f"{sample.seconds * 1000:.0f} ms"
                extra = f" ({sample.detail})" if sample.detail else ""
                log(f"bench: repeat {index + 1}/{repeat}, {op}, {kind}: {outcome}{extra}")
    return results


# -- the report ----------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


def _verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


Value = Callable[[Sample], float | None]


def _median(results: Results, kind: str, op: str, value: Value) -> float | None:
    values = [v for v in map(value, results.ok(kind, op)) if v is not None]
    return statistics.median(values) if values else None


def _cell(results: Results, kind: str, op: str, median: float | None, fmt: Callable[[float], str]) -> str:
    if median is not None:
        return fmt(median)
    if (kind, op) in results.skipped or results.ok(kind, op):
        return "-"  # not run here, or a figure this contender has none of
    return "FAILED" if results.samples.get((kind, op)) else "-"


class Report:
    """The table: one block of rows per operation, the contenders side by side."""

    def __init__(self, results: Results, plan: Plan) -> None:
        self.results = results
        self.plan = plan
        self.hosts = len(plan.entries)
        self.rows: list[tuple[str, ...]] = [("measurement", *KINDS, "fanout vs sftp", "target")]

    def median(self, kind: str, op: str, value: Value) -> float | None:
        return _median(self.results, kind, op, value)

    def row(self, name: str, op: str, value: Value, fmt: Callable[[float], str], versus: str, target: str) -> None:
        cells = [_cell(self.results, kind, op, self.median(kind, op, value), fmt) for kind in KINDS]
        self.rows.append((name, *cells, versus, target))

    def ratio(self, op: str, value: Value, speed: bool = False) -> float | None:
        """fanout / sftp of the medians; with ``speed``, sftp's time / fanout's (above 1: fanout is faster)."""
        mine, base = self.median("fanout", op, value), self.median("sftp", op, value)
        if mine is None or base is None or not (base if not speed else mine):
            return None
        return base / mine if speed else mine / base

    def timing(self, name: str, op: str, target: Callable[[float | None], str] | None = None) -> None:
        speed = self.ratio(op, lambda s: s.seconds, speed=True)
        versus = "n/a" if speed is None else f"{speed:.2f}x speed"
        self.row(name, op, lambda s: s.seconds, _ms, versus, target(speed) if target else "-")

    def throughput(self, name: str, op: str, target: Callable[[float | None], str] | None = None) -> None:
        size = self.plan.big_size * self.hosts
        speed = self.ratio(op, lambda s: s.seconds, speed=True)
        versus = "n/a" if speed is None else f"{speed:.2f}x"
        self.row(
            name,
            op,
            lambda s: size / s.seconds,
            lambda v: f"{v / 2**20:,.1f} MiB/s",
            versus,
            target(speed) if target else "-",
        )

    def resources(self, op: str, pushed: int | None) -> None:
        def plain(value: Value, floor: float = 0.0) -> str:
            """fanout / sftp; "n/a" where sftp's figure is below ``floor`` (next to nothing: no ratio to speak of)."""
            base = self.median("sftp", op, value)
            ratio = self.ratio(op, value)
            return "n/a" if ratio is None or base is None or base < floor else f"{ratio:.2f}x"

        growth: Value = lambda s: s.growth_kib  # noqa: E731
        self.row("    master peak RSS growth", op, growth, _mib, plain(growth), "-")
        if pushed is not None:

            def of_data(nbytes: float) -> str:
                return f"{nbytes / 2**20:,.1f} MiB ({nbytes / pushed:.1f}x)"

            rchar: Value = lambda s: None if s.kind in ("scp", "rsync") else s.rchar  # noqa: E731
            self.row(
                "    master file reads, read() bytes (x the data)", op, rchar, of_data, plain(rchar, pushed / 100), "-"
            )
            served: Value = lambda s: s.service_bytes_read  # noqa: E731
            self.row("    fanout's FileChunks service, bytes_read (x the data)", op, served, of_data, "-", "-")
            storage: Value = lambda s: s.read_bytes  # noqa: E731
            self.row(
                "    master reads from storage (x the data)", op, storage, of_data, plain(storage, pushed / 100), "-"
            )
        cpu: Value = lambda s: s.cpu_seconds  # noqa: E731
        self.row("    master CPU (child processes too)", op, cpu, _ms, plain(cpu), "-")
        hosts_cpu: Value = lambda s: s.host_cpu_seconds  # noqa: E731
        self.row("    hosts' CPU, all hosts", op, hosts_cpu, _ms, plain(hosts_cpu), "-")

    def build(self) -> list[tuple[str, ...]]:
        p, n = self.plan, self.hosts
        file_text = f"1 file of {p.big_size / 2**20:g} MiB"
        tree_text = f"a tree of {p.tree_files:,} files ({p.tree_bytes / 2**20:g} MiB)"

        def at_least(target: float) -> Callable[[float | None], str]:
            return lambda r: "n/a" if r is None else f">= {target:g}x {_verdict(r >= target)}"

        self.throughput(f"push {file_text} to {n} hosts, aggregate", "push_file", at_least(TARGET_FILE_SPEED))
        self.timing("    wall time", "push_file")
        self.resources("push_file", p.big_size)
        self.timing(f"push {tree_text} to {n} hosts, wall time", "push_tree", at_least(TARGET_TREE_SPEED))
        self.resources("push_tree", p.tree_bytes)
        first = self.median("fanout", "push_tree", lambda s: s.seconds)
        again = self.median("fanout", "repush_tree", lambda s: s.seconds)

        def share(_: float | None) -> str:
            if first is None or again is None:
                return "n/a"
            ratio = again / first
            met = ratio <= TARGET_REPUSH_SHARE
            return f"fanout {ratio:.0%} of its push (<= {TARGET_REPUSH_SHARE:.0%} {_verdict(met)})"

        self.timing("push the same tree again, unchanged", "repush_tree", share)
        again: Value = lambda s: s.again_seconds  # noqa: E731
        speed = self.ratio("repush_tree", again, speed=True)
        self.row(
            "    once more, in the same process (connections warm)",
            "repush_tree",
            again,
            _ms,
            "n/a" if speed is None else f"{speed:.2f}x speed",
            "-",
        )
        self.resources("repush_tree", p.tree_bytes)
        self.throughput(f"fetch the file back from {n} hosts, aggregate", "fetch_file")
        self.timing("    wall time", "fetch_file")
        self.resources("fetch_file", None)
        self.timing(f"fetch the tree back from {n} hosts, wall time", "fetch_tree")
        self.resources("fetch_tree", None)
        return self.rows


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Aligned columns, a rule under the header; the first and the last two columns left-aligned."""
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
    ssh = shutil.which("ssh")
    if ssh:
        probe = subprocess.run([ssh, "-V"], capture_output=True, text=True)
        parts.append((probe.stderr or probe.stdout).strip().split(",")[0])
    rsync = shutil.which("rsync")
    if rsync:
        parts.append(subprocess.run([rsync, "--version"], capture_output=True, text=True).stdout.split("\n")[0])
    return ", ".join(parts)


def report(
    results: Results, args: argparse.Namespace, fleet_hosts: Sequence[FleetHost], plan: Plan, cipher: str
) -> str:
    """The table, then what was measured and anything that went wrong."""
    out = [format_table(Report(results, plan).build()), ""]
    counts = []
    for kind in KINDS:
        done = sum(len(results.samples.get((kind, op), [])) for op in OPS)
        if done:
            counts.append(f"{kind} {sum(len(results.ok(kind, op)) for op in OPS)}/{done}")
    versions = sorted({".".join(map(str, h.python_version)) for h in fleet_hosts})
    out += [
        f"medians of {args.repeat} repeat(s) (samples ok: {', '.join(counts)}); every sample is a fresh worker "
        "process whose connections are open before the clock starts (scp and rsync connect inside it: one ssh per "
        "host); the contenders' order rotates each repeat; speed = sftp's time / fanout's (above 1: fanout is "
        "faster), other ratios fanout / sftp",
        "memory = VmHWM (reset just before the operation) - VmRSS before it, + for scp and rsync the peak summed PSS "
        f"of their processes (sampled every {POLL_SECONDS * 1000:g} ms); reads from /proc/self/io (children's once "
        "reaped): rchar (read() calls; not shown for scp and rsync, whose ssh read()s its socket too) and "
        "read_bytes; each push starts with the source evicted from the page cache (posix_fadvise DONTNEED, our "
        "files only); hosts' CPU from the containers' cgroups over the timed operation",
        "sftp: one thread per host, SSHClient + open_sftp() with paramiko's defaults (2 MiB window, 32 KiB "
        "packets), put() (pipelined writes, a stat to confirm) and get() (prefetch); the tree: mkdir per directory "
        "and put per file; again: listdir_attr per directory, a file skipped when its size matches and the remote "
        "copy is no older than the local one (no content check); fetch: get per file into <dest>/<host>/<path>",
        f"fanout: Fleet(hosts, forks={len(plan.entries)}).put(src, dest) and .fetch(src, dest_dir), the hosts' "
        "side of both imported before the clock starts (as open_sftp() starts sftp-server), digests remembered "
        "across pushes in ~/.cache/fanout (FANOUT_DIGEST_CACHE) as by default; "
        f"scp: scp -q [-r], one process per host; rsync: rsync -a -e ssh, one per host; "
        f"ssh for both: -F /dev/null, the host's key and known_hosts only, key exchange "
        f"{plan.ssh_kex or 'ssh default'}, ssh's default cipher ({ssh_cipher()}); ciphers: "
        f"{cipher}",
        f"data: random bytes; the tree has {TREE_DIRS} directories of {SUBDIRS} subdirectories, {EMPTY_FILES} empty "
        f"files, sizes spread exponentially; {_versions()}; hosts: {len(fleet_hosts)} x {args.suite} "
        f"(Python {', '.join(versions)}), sshd in Docker on 127.0.0.1, logged in as {fleet_hosts[0].user}, "
        f"into {DEST_ROOT}/<contender>/",
    ]
    if any(not s.peak_reset for samples in results.samples.values() for s in samples):
        out.append("note: /proc/self/clear_refs refused a VmHWM reset: peaks count from the worker's start")
    reasons: dict[str, list[str]] = {}
    for (kind, op), reason in results.skipped.items():
        reasons.setdefault(f"{kind}: {reason}", []).append(op)
    for text, ops in reasons.items():
        out.append(f"- {text} ({', '.join(ops)})" if len(ops) < len(OPS) else f"- {text}")
    for (kind, op), samples in results.samples.items():
        errors = results.errors(kind, op)
        if errors:
            out.append(f"{kind} {op}: {len(errors)} of {len(samples)} sample(s) FAILED, first: {errors[0]}")
        details = sorted({s.detail for s in results.ok(kind, op) if s.detail})
        if details:
            out.append(f"{kind} {op}: {'; '.join(details)}")
    return "\n".join(out)


def ssh_cipher() -> str:
    """The cipher the local ssh client offers first (so uses, sshd offering it too)."""
    probe = subprocess.run(["ssh", "-G", "-F", "/dev/null", "localhost"], capture_output=True, text=True)
    found = re.search(r"^ciphers (\S+?)(,|$)", probe.stdout, re.MULTILINE)
    return found.group(1) if found else "unknown"


def fanout_source() -> str:
    """Which fanout the workers import: its directory, and ``git describe`` where it is a checkout."""
    import fanout

    where = Path(fanout.__file__).resolve().parent.parent
    probe = subprocess.run(
        ["git", "-C", str(where), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return f"fanout from {where} ({probe.stdout.strip() if probe.returncode == 0 else 'not a git checkout'})"


def header() -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"fanout files benchmark, {now}: {platform.node()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform(terse=True)}; "
        f"{fanout_source()}"
    )


def paramiko_cipher(entry: HostEntry) -> str:
    """The ciphers paramiko's defaults (the baseline) and fanout's transport agree on with this sshd."""
    from benchmarks.bootstrap import Endpoint, paramiko_connect
    from benchmarks.fanout import fleet_hosts
    from fanout.fleet import Fleet

    client = paramiko_connect(Endpoint(entry.port, entry.user, Path(entry.key_path), Path(entry.known_hosts)))
    try:
        transport = client.get_transport()
        baseline = f"{transport.local_cipher} with {transport.local_mac}"
    finally:
        client.close()
    with Fleet(fleet_hosts([entry]), echo=False, progress=False) as fleet:
        ours = fleet.contexts[entry.name]._transport.channel.get_transport().local_cipher
    return f"{baseline} for sftp, {ours} for fanout (its transport prefers AES-GCM)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, help="hosts (containers) to push to and fetch from; 8 by default")
    parser.add_argument("--repeat", type=int, help="rounds of every operation by every contender; 3 by default")
    parser.add_argument("--suite", default="bookworm", choices=("bullseye", "bookworm", "trixie"), help="Debian suite")
    parser.add_argument("--file-mib", type=int, help=f"size of the big file, MiB ({FILE_MIB})")
    parser.add_argument("--tree-files", type=int, help=f"files in the tree ({TREE_FILES})")
    parser.add_argument("--tree-mib", type=int, help=f"bytes in the tree, MiB ({TREE_MIB})")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, 2 hosts, 1 repeat (what is given explicitly still wins)"
    )
    parser.add_argument(
        "--ops", default=",".join(OPS), help=f"operations to measure, comma-separated (all: {','.join(OPS)})"
    )
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"contenders, comma-separated (all: {','.join(KINDS)}; sftp is needed)"
    )
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--op", choices=OPS, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {"file_mib": FILE_MIB, "tree_files": TREE_FILES, "tree_mib": TREE_MIB, "hosts": 8, "repeat": 3}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else value)
    args.ops, args.kinds = args.ops.split(","), args.kinds.split(",")
    if not set(args.ops) <= set(OPS) or not set(args.kinds) <= set(KINDS) or not {"sftp", "fanout"} <= set(args.kinds):
        parser.error(f"--ops takes some of {', '.join(OPS)}; --kinds some of {', '.join(KINDS)}, with sftp and fanout")
    if min(args.hosts, args.repeat, args.file_mib, args.tree_files, args.tree_mib) < 1:
        parser.error("--hosts, --repeat, --file-mib, --tree-files and --tree-mib must be positive")
    return args


def make_plan(fleet: Any, args: argparse.Namespace, workdir: Path) -> Plan:
    """Make the data and describe the run for the workers."""
    from benchmarks.fanout import HostCpu, HostEntry, paramiko_kex, ssh_kex_algorithms

    entries = [HostEntry(h.name, h.address, h.port, h.user, str(h.key_path), str(h.known_hosts)) for h in fleet.hosts]
    big, tree = workdir / "data" / "big.bin", workdir / "data" / "tree"
    big.parent.mkdir()
    big_size, tree_bytes = args.file_mib * 2**20, args.tree_mib * 2**20
    log(
        f"bench: writing {args.file_mib} MiB of random bytes, and a tree of {args.tree_files} files "
        f"({args.tree_mib} MiB)"
    )
    make_big_file(big, big_size)
    make_tree(tree, args.tree_files, tree_bytes)
    kex = paramiko_kex(entries[0])
    cgroups = HostCpu(fleet.client, [h.container for h in fleet.hosts]).files
    return Plan(
        entries=entries,
        big=str(big),
        big_size=big_size,
        tree=str(tree),
        tree_files=args.tree_files,
        tree_bytes=tree_bytes,
        fetch_root=str(workdir / "fetched"),
        ssh_kex=kex if kex in ssh_kex_algorithms() else None,
        cgroup_files=[(str(path), scale) for path, scale in cgroups],
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.op, args.spec)

    from benchmarks.bootstrap import fleet_of
    from tests.fleet.engine import FleetUnavailable

    try:
        with tempfile.TemporaryDirectory(prefix="fanout-bench-files-") as tmp:
            workdir = Path(tmp)
            with fleet_of(args.suite, args.hosts, workdir) as fleet:
                plan = make_plan(fleet, args, workdir)
                hosts = Hosts(plan.entries)
                try:
                    cipher = paramiko_cipher(plan.entries[0])
                    results = measure(plan, hosts, args.repeat, workdir, args.ops, args.kinds)
                finally:
                    hosts.close()
            print(header())
            print()
            print(report(results, args, fleet.hosts, plan, cipher))
    except KeyboardInterrupt:
        log("interrupted; the fleet was removed")
        return 130
    except FleetUnavailable as exc:
        log(f"error: the fleet could not start: {exc}")
        return 2
    measured = all(results.ok(kind, "push_file") for kind in ("sftp", "fanout"))
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
