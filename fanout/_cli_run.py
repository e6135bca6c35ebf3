"""The command's fan-out: the task runs on the fleet while the main thread reports each host as it finishes, and
Ctrl-C stops the waiting cleanly.

Python runs signal handlers on the main thread only, and a SIGINT the kernel hands to another thread does not
wake a main thread blocked on a lock (as ``Fleet.as_completed`` waits): so the fleet connects and runs on a
thread of its own (:class:`Collector`), and the main thread waits for its results never longer than
:data:`WAKE_UP` at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import fanout
from fanout import _progress, _shell
from fanout._cli_output import INTERRUPTED
from fanout._cli_report import Report, exit_status, say
from fanout._timeouts import MAX_TIMEOUT
from fanout.errors import FanoutError
from fanout.fleet import Result, _command_result

EXIT_INTERRUPTED = 130  # the exit status of Ctrl-C, as shells report it (128 + SIGINT)
WAKE_UP = 0.25  # seconds the main thread waits at most in one go, so that it sees Ctrl-C

Deliver = Callable[[Result], None]  # hands one host's result to the main thread


class Interrupts:
    """Ctrl-C as the command wants it: the first raises KeyboardInterrupt, so that the results already in are
    printed; a second one, or any once the results print and the fleet closes (``closing``), leaves at once with
    status 130 and no traceback. The hosts then end with their connections: a local child sees its input close,
    an SSH session its channel."""

    def __init__(self) -> None:
        self.closing = False
        self.seen = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.closing or self.seen:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # a flush cut short by this very signal may refuse
                    stream.flush()
            with contextlib.suppress(OSError):
                os.write(2, b"fanout: interrupted again; leaving without waiting for the hosts to close\n")
            os._exit(EXIT_INTERRUPTED)
        self.seen = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts() -> Iterator[Interrupts]:
    """Take Ctrl-C over for the command's run, unless something else already handles it or ignores it (a job
    started in the background), or this is not the main thread (main() called by a program of one's own)."""
    handler = Interrupts()
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield handler
            return
        signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield handler
        return
    try:
        yield handler
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class CliFleet(fanout.Fleet):
    """The command's fleet: the hosts' live lines of the ``streams`` asked for only, and each host's put or fetch
    result handed to ``on_result`` as that host finishes (``Fleet.put`` and ``fetch`` return them all at the end).

    Both hook into the Fleet's per-host steps (``_echo_line``, ``_put_one``, ``_fetch_one``); the run hands over
    whatever the fleet returns that no hook did, so a renamed step costs the streaming, never a result.
    """

    def __init__(self, hosts: Mapping[str, Mapping[str, Any]], *, streams: frozenset[str], **options: Any) -> None:
        super().__init__(hosts, echo=bool(streams), **options)
        self.streams = streams
        self.on_result: Deliver | None = None

    def _echo_line(self, name: str, stream: str, line: str) -> None:
        if stream in self.streams:
            super()._echo_line(name, stream, line)

    def _put_one(self, *args: Any, **kwargs: Any) -> Result:
        return self._handed(super()._put_one(*args, **kwargs))

    def _fetch_one(self, *args: Any, **kwargs: Any) -> Result:
        return self._handed(super()._fetch_one(*args, **kwargs))

    def _handed(self, result: Result) -> Result:
        if self.on_result is not None:
            self.on_result(result)
        return result


# What runs on the fleet once it is connected: hands each host's result over, and stops starting work once set.
Task = Callable[[CliFleet, Deliver, threading.Event], None]


class Collector(threading.Thread):
    """Connects the fleet and runs the task on a thread of its own, handing each host's result to the main thread
    once. Errors the fleet raises are raised again on the main thread."""

    _END = object()

    def __init__(self, fleet: CliFleet, task: Task) -> None:
        super().__init__(name="fanout-cli-collector", daemon=True)
        self.fleet, self.task = fleet, task
        self.stop = threading.Event()  # set when the main thread stops waiting: no more calls are to be started
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._handed: set[str] = set()
        self._lock = threading.Lock()

    def deliver(self, result: Result) -> None:
        """Hand one host's result over, once (a put's is handed as the host finishes, and returned at the end)."""
        with self._lock:
            if result.host in self._handed:
                return
            self._handed.add(result.host)
        self._queue.put(result)

    def run(self) -> None:
        try:
            self.fleet.connect()
            if not self.stop.is_set():
                self.task(self.fleet, self.deliver, self.stop)
        except BaseException as exc:  # handed to the main thread, which decides
            self._error = exc
        finally:
            self._queue.put(self._END)

    def __iter__(self) -> Iterator[Result]:
        while True:
            try:
                item = self._queue.get(timeout=WAKE_UP)
            except queue.Empty:
                continue
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def arrived(self) -> list[Result]:
        """The results handed over but not yet taken (once the main thread was interrupted)."""
        items = []
        with contextlib.suppress(queue.Empty):
            while (item := self._queue.get_nowait()) is not self._END:
                items.append(item)
        return items


def call_task(description: str, function: Callable[..., Any], args: list, kwargs: dict, timeout: float | None) -> Task:
    """A function called on every host; its own progress bar (the fleet's is off), tallying what is reported."""

    def run(fleet: CliFleet, deliver: Deliver, stop: threading.Event) -> None:
        outcomes = lambda: fleet.as_completed(function, *args, timeout=timeout, **kwargs)  # noqa: E731
        _calls(fleet, deliver, stop, description, outcomes)

    return run


def shell_task(command: str, timeout: float | None) -> Task:
    """A shell command on every host: a non-zero exit makes the host failed, in the bar's tally as in its line."""

    def run(fleet: CliFleet, deliver: Deliver, stop: threading.Event) -> None:
        # As Fleet.run: the host kills the command at its timeout, the master waits a connect timeout longer.
        wait = None if timeout is None else min(timeout + fleet.connect_timeout, MAX_TIMEOUT)
        shell = functools.partial(_shell.run, command, timeout, fleet.echo, None, None)
        _calls(fleet, deliver, stop, command, lambda: fleet.as_completed(shell, timeout=wait), check=True)

    return run


def _calls(
    fleet: CliFleet,
    deliver: Deliver,
    stop: threading.Event,
    description: str,
    outcomes: Callable[[], Iterator[tuple[str, Result]]],
    check: bool = False,
) -> None:
    """Hand each host's outcome over as it comes (a command's as failed when it exited non-zero, with ``check``),
    counted in a bar of the command's own: the fleet's would count what the calls returned, not what is shown."""
    fleet.progress = False  # the bar is drawn here, from the results as reported (a command's exit status counts)
    enabled = _progress.wanted(len(fleet.hosts), None)
    with _progress.Progress(description, len(fleet.hosts), enabled) as bar:
        for _, result in outcomes():
            if check:
                result = _command_result(result, True)
            bar.advance(result.status)
            deliver(result)
            if stop.is_set():
                break


def transfer_task(kind: str, source: str, destination: str, options: dict[str, Any], timeout: float | None) -> Task:
    """--copy or --fetch: the fleet's own bar (it shows the bytes moved); each host handed over as it finishes."""

    def run(fleet: CliFleet, deliver: Deliver, stop: threading.Event) -> None:
        fleet.on_result = deliver
        move = fleet.put if kind == "copy" else fleet.fetch
        for result in move(source, destination, timeout=timeout, **options).values():
            deliver(result)  # any the fleet did not hand over as it went

    return run


def fan_out(
    args: argparse.Namespace,
    hosts: dict[str, dict[str, Any]],
    task: Task,
    interrupts: Interrupts,
    report: Report,
    streams: frozenset[str],
) -> int:
    """Run the task on the hosts, report each host as it finishes, and close.

    Ctrl-C stops the waiting: the results already in are reported, the hosts still running are reported
    ``interrupted``, and the status is 130. Once the results print and the fleet closes, Ctrl-C leaves at once.
    """
    finished: dict[str, Result] = {}
    interrupted = False
    fleet = collector = None
    try:
        fleet = CliFleet(
            hosts,
            streams=streams,
            forks=args.forks,
            connect_timeout=args.timeout,
            relays=getattr(args, "relays", 0),
            relay_hosts=getattr(args, "relay_hosts", None),
        )
        collector = Collector(fleet, task)
        collector.start()
        for result in collector:
            finished[result.host] = result
            report.result(result)
    except KeyboardInterrupt:
        interrupted = True
    except (FanoutError, ValueError) as exc:  # the fleet cannot start (the open-file limit), or bad host options
        interrupts.closing = True
        say(str(exc))
        if fleet is not None:
            fleet.close()
        return 1
    interrupts.closing = True
    if interrupted:
        if fleet is not None:
            fleet.echo = False  # what the hosts still print would get in the way of the results
        if collector is not None:
            collector.stop.set()
            for result in collector.arrived():
                finished[result.host] = result
                report.result(result)
        for name in hosts:
            if name not in finished:
                finished[name] = Result(name, INTERRUPTED)
                report.result(finished[name])
    results = fanout.Results({name: finished[name] for name in hosts if name in finished})
    report.end(results, interrupted)
    if fleet is not None:
        fleet.close()
    if collector is not None and collector.is_alive():  # interrupted while connecting: it ends when connect() does
        while collector.is_alive():
            collector.join(WAKE_UP)
        fleet.close()  # type: ignore[union-attr]  # what connect() opened after the first close
    return EXIT_INTERRUPTED if interrupted else exit_status(results)
