"""Fan a call out over many hosts: connections opened in parallel, one outcome per host.

One host never fails another (``docs/design.rst``): each ends as ``ok``, ``failed``
(a remote exception), ``unreachable``, ``auth-failed`` or ``timed-out``, and
:class:`~fanout.Results` tells them apart.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fanout import _become, _commands, _limits, _output, _progress, _push, _routes, _secret, _shell, _terminal
from fanout._commands import CommandResult
from fanout._deadlines import DEADLINES
from fanout._fleet_send import CallSender, failed_future, on_done
from fanout._push import PushFailed, Transfer
from fanout._stage import AUTO_MODES
from fanout._timeouts import check_timeout
from fanout.errors import (
    AuthenticationFailed,
    CallTimeout,
    CommandFailed,
    ConnectionLost,
    ConnectTimeout,
    FanoutError,
    HostKeyError,
    Unreachable,
)

OK, FAILED, UNREACHABLE, AUTH_FAILED, TIMED_OUT = "ok", "failed", "unreachable", "auth-failed", "timed-out"


@dataclass
class Result:
    """One host's outcome: ``status``, and ``value`` when ok or ``error`` otherwise."""

    host: str
    status: str
    value: Any = None
    error: BaseException | None = None
    #: What the host printed while the call ran (for :meth:`Fleet.run`, the command's output).
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    def __repr__(self) -> str:
        detail = repr(self.value) if self.ok else f"{type(self.error).__name__}: {self.error}"
        return f"<Result {self.host} {self.status}: {detail}>"


def status_of(error: BaseException) -> str:
    """The outcome an exception means for its host."""
    if isinstance(error, ConnectionLost) and isinstance(error.__cause__, ConnectTimeout | CallTimeout):
        return TIMED_OUT  # the child did not start in time, or the host was dropped at a call's timeout
    if isinstance(error, (ConnectTimeout, CallTimeout)) or (isinstance(error, CommandFailed) and error.rc is None):
        return TIMED_OUT
    if isinstance(error, (AuthenticationFailed, HostKeyError)):
        return AUTH_FAILED
    if isinstance(error, ConnectionLost) and error.started:
        return FAILED  # reached: its child died during a call (exit_status says how), or its connection was cut
    if isinstance(error, (Unreachable, ConnectionLost)):
        return UNREACHABLE
    return FAILED


def never_reached(result: Result) -> bool:
    """Whether the host ended before any call could run there (Ansible's "unreachable")."""
    error = result.error
    if result.status == AUTH_FAILED and getattr(error, "on_host", False):
        return False  # the host was reached: sudo, su or doas refused the password there (Ansible: failed)
    if result.status in (UNREACHABLE, AUTH_FAILED):
        return True
    return result.status == TIMED_OUT and (
        isinstance(error, ConnectTimeout) or isinstance(getattr(error, "__cause__", None), ConnectTimeout)
    )


class Results(Mapping):
    """Host name to :class:`~fanout.Result`, in the fleet's host order, with views by outcome."""

    def __init__(self, results: dict[str, Result]) -> None:
        self._results = results

    def __getitem__(self, host: str) -> Result:
        return self._results[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def _where(self, keep: Callable[[Result], bool]) -> dict[str, Result]:
        return {host: r for host, r in self._results.items() if keep(r)}

    @property
    def ok(self) -> dict[str, Result]:
        return self._where(lambda r: r.ok)

    @property
    def failed(self) -> dict[str, Result]:
        """Hosts reached that did not succeed: a remote exception, a failed command, a call that ran out of time, a
        child that died during a call."""
        return self._where(lambda r: not r.ok and not never_reached(r))

    @property
    def unreachable(self) -> dict[str, Result]:
        """Hosts never reached: unreachable, refused authentication or host key, or no ready child in time."""
        return self._where(never_reached)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for result in self._results.values():
            counts[result.status] = counts.get(result.status, 0) + 1
        return ", ".join(f"{status}={count}" for status, count in sorted(counts.items())) or "no hosts"

    def __repr__(self) -> str:
        return f"<Results {self.summary()}>"


class Fleet:
    """Hosts to run calls on, each reached with its own ``fanout.connect`` options.

    ``hosts`` maps a name to :func:`fanout.connect` keyword arguments (``host``
    being the address); ``{"connection": "local"}`` makes a child on this
    machine instead. ``"become"`` is that host's own become options (``user``,
    ``method``, ``password``, ``exe``, ``flags``, and ``enabled``: its calls go
    through become by default), as an inventory's ``ansible_become*`` give them.
    ``echo`` writes each line the hosts print, as it comes, prefixed with the
    host's name (``[web01] ...``); ``progress`` shows a bar on a terminal
    (``None``: when stderr is one and there are more than a few hosts).

    A host's ``"via"`` names the host it is reached through: that host's child runs its own ``ssh`` onward
    and relays (docs/relays.rst). ``relays`` picks that many relays among the other hosts (``"auto"``: about the
    square root of their number) and reaches the rest through them; ``routes`` says which went where.
    ``relay_hosts`` are hosts used only as relays (an inventory's ``fanout_via`` outside the pattern): connected,
    never called. A relay forwards the agent (``SSH_AUTH_SOCK``) unless its options say ``forward_agent``.
    """

    def __init__(
        self,
        hosts: Mapping[str, Mapping[str, Any]],
        *,
        forks: int = 50,
        connect_timeout: float = 10.0,
        echo: bool = True,
        progress: bool | None = None,
        allow_modules: Iterable[str] = (),
        deny_modules: Iterable[str] = (),
        relays: int | str = 0,
        relay_hosts: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        if not isinstance(forks, int) or isinstance(forks, bool) or forks < 1:
            raise ValueError(f"forks must be a whole number of at least 1, not {forks!r}")
        connect_timeout = check_timeout("connect_timeout", connect_timeout)
        extra = {"allow_modules": tuple(_names(allow_modules)), "deny_modules": tuple(_names(deny_modules))}
        self.hosts = {name: _with_modules(options, extra) for name, options in hosts.items()}
        self._relay_only = {
            name: _with_modules(options, extra) for name, options in (relay_hosts or {}).items() if name not in hosts
        }
        self._every_host = {**self._relay_only, **self.hosts}
        #: Each host reached through a relay -> the relay's name (hosts absent go direct).
        self.routes: dict[str, str] = _routes.plan(self._every_host, relays)
        self._relays = _routes.relays_of(self.routes)
        keyed = [name for name in self.routes if self._every_host[name].get("identity_file")]
        if keyed:  # said once for the fleet, not once per host (fanout._via says it for a lone connect)
            warnings.warn(
                f"{len(keyed)} hosts reached through relays have identity files ({', '.join(sorted(keyed)[:3])}"
                f"{', ...' if len(keyed) > 3 else ''}): the master's key files never leave it; each relay"
                " authenticates with the agent forwarded to it or keys in its own ~/.ssh",
                UserWarning,
                stacklevel=2,
            )
        self.forks = forks
        self.connect_timeout = connect_timeout
        self.echo = echo
        self.progress = progress
        self._contexts: dict[str, Any] = {}
        self._failures: dict[str, BaseException] = {}
        # Printed lines not yet handed to a result, by host and by the call that printed them (0: none did).
        self._output: dict[str, dict[int, _output.TailBuffer]] = {name: {} for name in self.hosts}
        self._lock = threading.Lock()
        self._echo_lock = threading.Lock()
        self._connected = False
        self._sender = CallSender(self.forks)
        self._closing: list[threading.Thread] = []  # closes of hosts dropped at a timeout
        self._logins: dict[str, Any] = {}  # each host's login context (its become context, if any, is in _contexts)
        self._views: dict[tuple, Fleet] = {}  # what become() returned, by its options: kept

    @classmethod
    def from_inventory(cls, path: str | os.PathLike, pattern: str = "all", **options: Any) -> Fleet:
        """The hosts ``pattern`` selects in an Ansible inventory, with their connection variables.

        As in Ansible, ``localhost`` is implicit: named by the pattern but absent
        from the inventory, it is this machine, reached through a local child.
        """
        from fanout.inventory import Inventory

        inventory = Inventory.load(path)
        hosts = inventory.fleet_hosts(pattern)
        return cls(hosts, relay_hosts=inventory.relays_for(hosts), **options)

    # -- connecting --------------------------------------------------------------------

    def connect(self) -> Fleet:
        """Open every connection, at most ``forks`` at once, relays before the hosts behind them; a host that fails
        is remembered, not raised."""
        pending = [
            name
            for name in self._every_host
            if name not in self._contexts and name not in self._logins and name not in self._failures
        ]
        _limits.ensure_open_files(len(self._every_host))
        pool = ThreadPoolExecutor(max_workers=min(self.forks, max(len(pending), 1)))
        try:
            with _progress.Progress("connecting", len(pending), _progress.wanted(len(pending), self.progress)) as bar:
                for wave in _routes.waves(pending, self.routes):
                    for status in pool.map(self._open, wave):
                        bar.advance(status)
        except BaseException:  # Ctrl-C: connections not yet started are not started; close() ends the rest
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        self._connected = True
        return self

    def become(
        self,
        user: str | None = None,
        *,
        method: str | None = None,
        password: str | None = None,
        exe: str | None = None,
        flags: str | Sequence[str] | None = None,
    ) -> Fleet:
        """The same hosts, each through a child as ``user`` (sudo, su or doas) opened on its connection.

        What is not given comes from each host's own become options (the inventory's
        ``ansible_become_*``), then the defaults: root, through sudo. Each host's
        become context opens when first used and is kept: asking again returns the
        same fleet. Closing it leaves the connections open; closing this fleet closes both.
        """
        given = {"user": user, "method": method, "password": password, "exe": exe, "flags": flags}
        given = {key: value for key, value in given.items() if value is not None}
        for name in self.hosts:  # bad options fail here, before anything opens
            _become.plan(**_become_options(self.hosts[name].get("become"), given))
        key = tuple(sorted((k, repr(v) if k != "password" else hash(v)) for k, v in given.items()))
        with self._lock:
            view = self._views.get(key)
            if view is None:
                view = self._views[key] = _BecomeFleet(self, given)
            return view

    def _login(self, name: str) -> tuple[Any, BaseException | None]:
        """The login context of ``name`` (opened now if need be), or why there is none."""
        with self._lock:
            context, failure = self._logins.get(name), self._failures.get(name)
        if context is None and failure is None:
            self._open(name)
            with self._lock:
                context, failure = self._logins.get(name), self._failures.get(name)
        return context, failure

    def _open(self, name: str) -> str:
        options = dict(self._every_host[name])
        connection = options.pop("connection", "ssh")
        become = options.pop("become", None)
        options.pop("via", None)  # in self.routes
        try:
            if name in self.routes:
                options["via"] = self._relay_for(name)
                options.pop("identity_file", None)  # the fleet warned: the relay's ssh cannot use the master's keys
                options.pop("passphrase", None)
            if name in self._relays and "forward_agent" not in options:
                options["forward_agent"] = True if os.environ.get("SSH_AUTH_SOCK") else None
            if connection == "local":
                from fanout._context import local

                timeout = check_timeout("connect_timeout", options.get("connect_timeout", self.connect_timeout))
                python = options.get("python", sys.executable)
                context = local(
                    sys.executable if python in AUTO_MODES else python,  # discovery on this machine: this Python
                    name=name,
                    allow_modules=options.get("allow_modules", ()),
                    deny_modules=options.get("deny_modules", ()),
                )
                context.expect_ready_by(time.monotonic() + timeout, timeout)
            elif connection != "ssh":
                raise Unreachable(f"{name}: connection {connection!r} is not one fanout makes (ssh, local)")
            else:
                from fanout._ssh import connect

                options.setdefault("connect_timeout", self.connect_timeout)
                context = connect(options.pop("host", name), name=name, **options)
        except Exception as exc:  # one host's bad options or bad luck never stops the others
            if not isinstance(exc, FanoutError):
                error = Unreachable(f"{name}: cannot connect with these options: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
                exc = error
            with self._lock:
                self._failures[name] = exc
            return status_of(exc)
        with self._lock:
            self._logins[name] = context
        if name in self._relay_only:  # a relay only: never called
            return OK
        if become and become.get("enabled", False):  # the inventory's ansible_become: calls run as that user
            try:
                context = context.become(**_become_options(become, {}))
            except Exception as exc:
                with self._lock:
                    self._failures[name] = exc
                return status_of(exc)
        return self._opened(name, context)

    def _relay_for(self, name: str) -> Any:
        """The login context of ``name``'s relay, opened first if need be; Unreachable naming it if it failed."""
        relay = self.routes[name]
        context, failure = self._login(relay)
        if context is None:
            error = Unreachable(f"{name}: not reached: its relay {relay} failed: {failure}")
            error.__cause__ = failure
            raise error
        return context

    def _opened(self, name: str, context: Any) -> str:
        # Lines are kept for results on the receiving thread, in order with the results (fanout's own quick
        # code), and echoed on the host's delivery thread: a terminal that blocks holds up no receiving.
        context._capture = lambda stream, line, call_id: self._keep_output(name, stream, line, call_id)
        context.on_output = lambda stream, line, call_id: self._echo_line(name, stream, line)
        with self._lock:
            self._contexts[name] = context
        return OK

    def _keep_output(self, name: str, stream: str, line: str, call_id: int = 0) -> None:
        with self._lock:
            by_call = self._output[name]
            kept = by_call.get(call_id)
            if kept is None:
                kept = by_call[call_id] = _output.TailBuffer(OUTPUT_KEPT_PER_CALL)
                if len(by_call) > _UNCLAIMED_CALLS:  # calls made on fleet.contexts directly: nobody claims theirs
                    del by_call[next(iter(by_call))]
            kept.append((stream, line), _output.weight(line) + 1)

    def _echo_line(self, name: str, stream: str, line: str) -> None:
        if self.echo:
            text = f"[{name}] {_terminal.escape(line)}\n"  # escaped before the lock all hosts' echoes share
            with self._echo_lock:
                self._echo(sys.stderr if stream == "stderr" else sys.stdout, text)

    def _echo(self, target: Any, text: str) -> None:
        """Write a line as the terminal can take it; a closed output (``| head``) ends echoing, not the host."""
        try:
            try:
                target.write(text)
            except UnicodeEncodeError:  # a file name in latin-1 on a UTF-8 terminal, say
                encoding = getattr(target, "encoding", None) or "utf-8"
                target.write(text.encode(encoding, "backslashreplace").decode(encoding))
            target.flush()
        except (OSError, ValueError):
            self.echo = False

    @property
    def contexts(self) -> dict[str, Any]:
        """The open :class:`~fanout.Context` of each connected host, for calls of one's own (per-host arguments)."""
        with self._lock:
            return {name: self._contexts[name] for name in self.hosts if name in self._contexts}

    @property
    def failures(self) -> dict[str, BaseException]:
        """Why each host that is not connected is not: its connection error, or the timeout that dropped it."""
        with self._lock:
            return {name: self._failures[name] for name in self.hosts if name in self._failures}

    # -- calling -------------------------------------------------------------------------

    def _start(
        self,
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        names: list[str] | None = None,
        each: Mapping[str, tuple[tuple, dict]] | None = None,
    ):
        """Start the call on every host (or ``names``), with ``each`` host's own arguments if given: written here
        where the write cannot wait, else from ``forks`` threads, so a host that stops reading holds up only its
        own (fanout/_fleet_send.py)."""
        if not self._connected:
            self.connect()
        names = list(self.hosts if names is None else names)
        with self._lock:
            reached = {name: self._contexts[name] for name in names if name in self._contexts}
            failures = {name: self._failures[name] for name in names if name not in reached}
        started = self._sender.start(reached, fn, args, kwargs, each) if reached else {}
        return {name: started[name] if name in started else failed_future(failures[name]) for name in names}

    def _result(self, name: str, future: Future) -> Result:
        with self._lock:  # the call's own lines, and those no call printed (its subprocesses', say)
            by_call = self._output[name]
            kept = [by_call.pop(key, None) for key in (0, getattr(future, "call_id", -1))]
        stdout, stderr = _printed([k.take() for k in kept if k is not None])
        error = future.exception()
        if error is None:
            return Result(name, OK, value=future.result(), stdout=stdout, stderr=stderr)
        return Result(name, status_of(error), error=error, stdout=stdout, stderr=stderr)

    def _completed(
        self,
        futures: dict[str, Future],
        deadline: float | None,
        what: str,
        finish: Callable[[Result], Result] = lambda result: result,
        all_at_once: bool = False,
    ) -> Iterator[Result]:
        """Each host's result as it finishes, through ``finish`` (a command's exit status decides its status: the bar
        must count what the results say); at the deadline, the rest as timed out (and disconnected).

        With ``all_at_once`` (a caller that returns every result together) and no progress bar, the caller's
        thread waits once for them all, not once per host: at 32 hosts, a wake per result cost Fleet.call more
        than the loop of ``call_async`` it should match (docs/design.rst, "The warm fan-out")."""
        left = set(futures)
        enabled = _progress.wanted(len(futures), self.progress)
        if all_at_once and not enabled:
            yield from self._all_completed(futures, deadline, finish)
            return
        done: queue.SimpleQueue[str] = queue.SimpleQueue()
        for name, future in futures.items():
            on_done(future, lambda _, name=name: done.put(name))
        try:
            with _progress.Progress(what, len(futures), enabled) as bar:
                while left:
                    try:
                        name = done.get(timeout=None if deadline is None else max(deadline - time.monotonic(), 0))
                    except queue.Empty:
                        break
                    left.discard(name)
                    result = finish(self._result(name, futures[name]))
                    bar.advance(result.status)
                    yield result
            for name in [n for n in futures if n in left]:
                error = self._timed_out(name, deadline)
                left.discard(name)
                yield Result(name, TIMED_OUT, error=error)
        finally:
            if left and deadline is not None:  # abandoned half-way: the timeout still holds for the rest
                self._watch_late({name: futures[name] for name in left}, deadline)

    def _all_completed(
        self, futures: dict[str, Future], deadline: float | None, finish: Callable[[Result], Result]
    ) -> Iterator[Result]:
        """:meth:`_completed` for a caller that takes every result together: one wait for the last to finish."""
        all_done = threading.Event()
        _after_all(list(futures.values()), all_done.set, on_done)
        if futures:
            all_done.wait(None if deadline is None else max(deadline - time.monotonic(), 0))
        late = {name: future for name, future in futures.items() if not future.done()}
        for name, future in futures.items():
            if name not in late:
                yield finish(self._result(name, future))
        for name in late:
            yield Result(name, TIMED_OUT, error=self._timed_out(name, deadline))

    def _watch_late(self, late: dict[str, Future], deadline: float) -> None:
        """Drop the hosts of ``late`` still running at ``deadline``; forget them all once all are done."""
        handle = DEADLINES.at(deadline, lambda: self._drop_unfinished(late, deadline))
        _after_all(list(late.values()), lambda: DEADLINES.cancel(handle), lambda f, done: f.add_done_callback(done))

    def _drop_unfinished(self, futures: dict[str, Future], deadline: float) -> None:
        for name, future in futures.items():
            if not future.done():
                self._timed_out(name, deadline)

    def _timed_out(self, name: str, deadline: float | None) -> CallTimeout:
        """A host that overran its timeout leaves the fleet: its child is ended, later calls say why."""
        error = CallTimeout(f"{name}: no answer within the timeout; its connection was closed")
        with self._lock:
            context = self._contexts.pop(name, None)
            self._failures[name] = error
            if context is not None:
                closing = threading.Thread(target=_end, args=(context, error), name=f"fanout-drop-{name}", daemon=True)
                closing.start()  # under the lock: close() never finds one it cannot join yet
                self._closing.append(closing)
        return error

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        seconds = check_timeout("timeout", timeout, allow_none=True)
        return None if seconds is None else time.monotonic() + seconds

    def call(self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Results:
        """Run ``fn(*args, **kwargs)`` on every host; one :class:`~fanout.Result` per host, in host order.

        A host with no answer after ``timeout`` seconds ends as timed out, and
        leaves the fleet (its child is ended). To pass a ``timeout`` argument to
        ``fn`` itself, wrap it in :func:`functools.partial`.
        """
        deadline = self._deadline(timeout)
        futures = self._start(fn, args, kwargs)
        return self._in_order(self._completed(futures, deadline, _describe(fn), all_at_once=True))

    def call_each(
        self,
        fn: Callable[..., Any],
        arguments: Mapping[str, tuple[Sequence[Any], Mapping[str, Any]]],
        /,
        *,
        timeout: float | None = None,
    ) -> Results:
        """Run ``fn(*args, **kwargs)`` on every host with its own arguments: ``arguments`` maps each host of the
        fleet to its ``(args, kwargs)``. Results and ``timeout`` are as :meth:`call`'s.

        Every host of the fleet needs its entry, and every entry a host of the fleet: a missing or unknown
        name is a ValueError before anything is sent, never a host silently left out. A ``timeout`` among
        a host's ``kwargs`` is ``fn``'s own.
        """
        deadline = self._deadline(timeout)
        each = _each_host(self.hosts, arguments)
        futures = self._start(fn, (), {}, each=each)
        return self._in_order(self._completed(futures, deadline, _describe(fn), all_at_once=True))

    def as_completed(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, Result]]:
        """Like :meth:`call`, but yields ``(host, result)`` as each host finishes."""
        deadline = self._deadline(timeout)
        futures = self._start(fn, args, kwargs)
        for result in self._completed(futures, deadline, _describe(fn)):
            yield result.host, result

    def _in_order(self, results: Iterator[Result]) -> Results:
        by_host = {result.host: result for result in results}
        return Results({name: by_host[name] for name in self.hosts if name in by_host})

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        check: bool = True,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Results:
        """Run a shell command on every host; each result's value is a :class:`~fanout.fleet.CommandResult`.

        With ``check`` (the default, as Ansible's ``shell``), a non-zero exit
        status makes the host failed, with :class:`CommandFailed` as its error
        and the :class:`~fanout.fleet.CommandResult` still in ``value``. A command still
        running at ``timeout`` is killed with everything it started.
        """
        shell_args = _commands.shell_args(command, timeout, self.echo, cwd, env)
        self._deadline(timeout)
        wait = None if timeout is None else time.monotonic() + timeout + self.connect_timeout  # the host kills first
        futures = self._start(_shell.run, shell_args, {})
        finish = functools.partial(_command_result, check=check)
        return self._in_order(self._completed(futures, wait, command, finish))

    def put(
        self,
        src: str | os.PathLike,
        dest: str,
        *,
        mode: int | None = None,
        owner: str | int | None = None,
        group: str | int | None = None,
        delete: bool = False,
        fsync: bool = False,
        timeout: float | None = None,
    ) -> Results:
        """Push a file or a tree to ``dest`` on every host; each value is a :class:`~fanout.fleet.Transfer`.

        Where ``src`` lands follows rsync: a directory ``"site/"`` fills ``dest``
        with its contents, ``"site"`` becomes ``dest/site``; a file's ``dest`` is its
        full path, or ends in "/" for the directory it goes into. Files whose size
        and sha256 match are not sent again; the others are written beside their
        target and renamed into place. Modes, times and links are kept; ``mode``
        (files), ``owner`` and ``group`` (names or ids; root's to change, see
        :meth:`Fleet.become`) override them. ``delete`` removes what the source
        lacks. The source is read once for the whole fleet (see docs/files.rst).
        A host where a single file failed ends failed with the error it raised; where
        entries of a tree failed, with a :class:`~fanout.fleet.PushFailed` whose
        ``transfer`` says what was done. Each host has its own ``timeout``.
        """
        options = {"mode": mode, "owner": owner, "group": group, "delete": delete, "fsync": fsync}
        plan = _push.prepare(src, dest, **options, chunk=PUT_CHUNK)
        self._deadline(timeout)
        if not self._connected:
            self.connect()
        names = list(self.hosts)
        with self._lock:
            contexts = dict(self._contexts)
        results: dict[str, Result] = {}
        enabled = _progress.wanted(len(names), self.progress)
        pool = ThreadPoolExecutor(max_workers=min(self.forks, max(len(names), 1)))
        try:
            with (
                _push.serving(_push.pool_threads(len(contexts))) as chunks,
                chunks.offer(plan, contexts) as offer,
                _progress.Progress(f"put {plan.dest}", len(names), enabled) as bar,
            ):
                pending = [pool.submit(self._put_one, name, offer, timeout) for name in names]
                for result in _gather(pending, bar, offer.sent_total):
                    results[result.host] = result
        except BaseException:  # Ctrl-C: return at once; hosts still pulling are refused from now on, and end
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return Results({name: results[name] for name in names})

    def _put_one(self, name: str, offer: _push.Offer, timeout: float | None) -> Result:
        """One host's push: a single call, within ``timeout`` from its start."""
        deadline = self._deadline(timeout)
        with self._lock:
            context = self._contexts.get(name)
            failure = self._failures.get(name)
        if context is None:
            return Result(name, status_of(failure), error=failure) if failure else Result(name, UNREACHABLE)
        try:
            future = offer.start(context)
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            try:
                summary = future.result(timeout=left)
            except concurrent.futures.TimeoutError:
                raise self._timed_out(name, deadline) from None
        except Exception as exc:
            return Result(name, status_of(exc), error=exc)
        transfer, error = offer.outcome(name, summary)
        if error is not None:
            return Result(name, FAILED, value=transfer, error=error)
        return Result(name, OK, value=transfer)

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (in parallel: each close waits for its child to end)."""
        with self._lock:
            contexts, self._contexts = list(self._contexts.values()), {}
            contexts += [c for c in self._logins.values() if c not in contexts]  # after their become contexts
            self._logins = {}
            views, self._views = list(self._views.values()), {}
            closing, self._closing = self._closing, []
            self._connected = False
        for view in views:
            Fleet.close(view)
        if contexts:
            with ThreadPoolExecutor(max_workers=min(self.forks, len(contexts))) as closer:
                list(closer.map(lambda context: context.close(), contexts))
        for thread in closing:
            thread.join()
        self._sender.shutdown()

    def __enter__(self) -> Fleet:
        try:
            return self.connect()
        except BaseException:  # Ctrl-C half-way: what did connect must not stay open
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<fanout.Fleet {len(self.hosts)} hosts, {len(self._contexts)} connected>"

    # -- fetching ------------------------------------------------------------------------

    def fetch(
        self,
        src: str,
        dest_dir: str | os.PathLike,
        *,
        flat: bool = False,
        max_bytes: int | None = None,
        max_entries: int | None = None,
        timeout: float | None = None,
    ) -> Results:
        """Copy a file or tree from every host into ``dest_dir/<host>/<src>``; each value is a ``Fetched``.

        As Ansible's fetch: ``fetch("/var/log/app.log", "logs/")`` makes
        ``logs/web1/var/log/app.log``. ``flat=True`` (one host only) stores it at
        ``dest_dir`` itself, or below it under the source's name if it ends with '/'.
        Files whose local copy matches are not sent again. A host cannot write
        outside its directory nor store more than ``max_bytes`` (None: 1 GiB) in
        more than ``max_entries`` entries (None: 100,000); see docs/files.rst.
        A host with entries it could not fetch ends failed, its ``Fetched`` in ``value``.
        """
        from fanout import _fetch

        request = _fetch.request(src, dest_dir, flat=flat, max_bytes=max_bytes, max_entries=max_entries)
        if flat and len(self.hosts) != 1:
            raise ValueError(f"flat=True stores one host's copy at {dest_dir!r}: this fleet has {len(self.hosts)}")
        self._deadline(timeout)
        if not self._connected:
            self.connect()
        names = list(self.hosts)
        results: dict[str, Result] = {}
        stop: Future = Future()
        pool = ThreadPoolExecutor(max_workers=min(self.forks, max(len(names), 1)))
        try:
            enabled = _progress.wanted(len(names), self.progress)
            received = _Counter()
            with _progress.Progress(f"fetch {request.src}", len(names), enabled) as bar:
                on_bytes = received.add if bar.shown else None
                pending = [pool.submit(self._fetch_one, name, request, timeout, stop, on_bytes) for name in names]
                for result in _gather(pending, bar, received.value):
                    results[result.host] = result
        except BaseException:  # Ctrl-C: each host stops at its next piece and removes its temporary file
            stop.set_result(None)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return Results({name: results[name] for name in names})

    def _fetch_one(
        self, name: str, request: Any, timeout: float | None, stop: Future, on_bytes: Callable[[int], None] | None
    ) -> Result:
        """One host's fetch, within ``timeout`` from its start; its failure is its Result."""
        from fanout import _fetch

        deadline = self._deadline(timeout)
        with self._lock:
            context = self._contexts.get(name)
            failure = self._failures.get(name)
        if context is None:
            return Result(name, status_of(failure), error=failure) if failure else Result(name, UNREACHABLE)
        wait = _fetch.Waiter(deadline, lambda: self._timed_out(name, deadline), stop)
        try:
            return Result(name, OK, value=_fetch.fetch_host(context, name, request, wait, on_bytes))
        except _fetch.FetchError as exc:
            return Result(name, FAILED, value=exc.fetched, error=exc)
        except Exception as exc:
            return Result(name, status_of(exc), error=exc)


class _Counter:
    """A sum that threads add to."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def add(self, amount: int) -> None:
        with self._lock:
            self._value += amount

    def value(self) -> int:
        with self._lock:
            return self._value


def _gather(pending: list[Future], bar: _progress.Progress, moved: Callable[[], int]) -> Iterator[Result]:
    """The hosts' results as they finish; meanwhile, if the bar is shown, the bytes moved so far (``moved()``),
    every PROGRESS_REFRESH seconds."""
    waiting = set(pending)
    refresh = PROGRESS_REFRESH if bar.shown else None
    while waiting:
        done, waiting = concurrent.futures.wait(waiting, refresh, concurrent.futures.FIRST_COMPLETED)
        if bar.shown:
            bar.moved(moved())
        for future in done:
            result = future.result()
            bar.advance(result.status)
            yield result


BECOME_OPTIONS = ("user", "method", "password", "exe", "flags")


def _become_options(host_options: Mapping[str, Any] | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """A host's become options: what the caller gave, else the host's own (its inventory's), else the defaults.
    (``enabled``, whether the host's calls go through become by default, is the host's alone.)"""
    own = {k: v for k, v in (host_options or {}).items() if v is not None and k != "enabled"}
    unknown = sorted(set(own) - set(BECOME_OPTIONS))
    if unknown:
        raise ValueError(f"unknown become options {unknown}: fanout knows {list(BECOME_OPTIONS)}")
    return {**own, **given}


class _BecomeFleet(Fleet):
    """:meth:`Fleet.become`: the same hosts, each through a become context on its login connection."""

    def __init__(self, base: Fleet, given: Mapping[str, Any]) -> None:
        super().__init__(
            {name: {} for name in base.hosts},
            forks=base.forks,
            connect_timeout=base.connect_timeout,
            echo=base.echo,
            progress=base.progress,
        )
        self._base = base
        self._given = dict(given)
        self.routes, self._relays = base.routes, base._relays

    def _open(self, name: str) -> str:
        login, failure = self._base._login(name)
        if login is None:
            with self._lock:
                self._failures[name] = failure or Unreachable(f"{name}: not connected")
            return status_of(self._failures[name])
        try:
            options = _become_options(self._base.hosts[name].get("become"), self._given)
            context = login.become(**options)
        except Exception as exc:
            with self._lock:
                self._failures[name] = exc
            return status_of(exc)
        return self._opened(name, context)

    def become(self, *args: Any, **kwargs: Any) -> Fleet:
        raise TypeError("become() on a become fleet: call it on the fleet of login connections")

    def __exit__(self, *exc_info: object) -> None:
        """Leaves the become contexts open: they are kept, and close with the fleet they came from."""

    def __repr__(self) -> str:
        return f"<fanout.Fleet {len(self.hosts)} hosts as {self._given.get('user', 'root')!r}>"


def _end(context: Any, error: CallTimeout) -> None:
    """End a dropped host's child; its other calls in flight end as timed out, not as a lost connection."""
    context._fail_all(f"dropped from the fleet at a call's timeout ({error})", error)
    context.close()


_UNCLAIMED_CALLS = 32  # calls per host whose printed lines are kept for a result still to come
OUTPUT_KEPT_PER_CALL = 16 * 1024 * 1024  # bytes (by _output.weight) of a call's lines kept for its result: the latest


def _printed(kept: list[tuple[list, int, int]]) -> tuple[str, str]:
    """A result's stdout and stderr from its kept lines; a marker first where earlier lines were dropped."""
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    for lines, dropped, size in kept:
        if dropped:
            out["stderr"].append(_output.dropped_marker(dropped, size, "over the output kept for one call") + "\n")
        for stream, line in lines:
            out.setdefault(stream, []).append(line + "\n")
    return "".join(out["stdout"]), "".join(out["stderr"])


def _names(prefixes: Iterable[str]) -> list[str]:
    if isinstance(prefixes, str):
        raise TypeError(f"module prefixes must be a list of names, not the string {prefixes!r}")
    return list(prefixes)


def _with_modules(options: Mapping[str, Any], extra: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """A host's options with the fleet's module prefixes added to its own, and its passwords hidden from reprs."""
    merged = dict(options)
    if "password" in merged:
        merged["password"] = _secret.hide(merged["password"])
    if isinstance(merged.get("become"), Mapping):
        merged["become"] = {k: _secret.hide(v) if k == "password" else v for k, v in merged["become"].items()}
    for key, names in extra.items():
        if names:
            merged[key] = (*_names(merged.get(key, ())), *names)
    return merged


PUT_CHUNK = _push.CHUNK  # bytes per piece a host pulls in a put
PROGRESS_REFRESH = 0.2  # seconds between updates of the bytes a put or a fetch shows on a terminal


def _describe(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _command_result(result: Result, check: bool) -> Result:
    if not result.ok:
        return result
    value, error = _commands.outcome(result.host, result.value, check)
    status = OK if error is None else status_of(error)  # timed-out when killed at its timeout, else failed
    return Result(result.host, status, value, error, value.stdout, value.stderr)


def _each_host(hosts: Mapping[str, Any], arguments: Any) -> dict[str, tuple[tuple, dict]]:
    """:meth:`Fleet.call_each`'s ``arguments``, checked: one ``(args, kwargs)`` for each host, and no other."""
    if not isinstance(arguments, Mapping):
        raise TypeError(f"call_each takes a mapping of host to (args, kwargs), not {type(arguments).__name__}")
    missing = [name for name in hosts if name not in arguments]
    unknown = [name for name in arguments if name not in hosts]
    if missing or unknown:
        said = [f"no arguments for {_listed(missing)}"] if missing else []
        said += [f"{_listed(unknown)} not in the fleet"] if unknown else []
        raise ValueError(f"call_each needs (args, kwargs) for every host of the fleet and no other: {'; '.join(said)}")
    each = {}
    for name, entry in arguments.items():
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise TypeError(f"call_each: {name}'s arguments must be a pair (args, kwargs), not {entry!r:.100}")
        args, kwargs = entry
        if isinstance(args, (str, bytes)) or not isinstance(args, Sequence) or not isinstance(kwargs, Mapping):
            raise TypeError(f"call_each: {name}'s arguments must be (a sequence, a mapping), not {entry!r:.100}")
        if not all(isinstance(key, str) for key in kwargs):
            raise TypeError(f"call_each: {name}'s keyword arguments must have string names")
        each[name] = (tuple(args), dict(kwargs))
    return each


def _listed(names: list[str]) -> str:
    """Host names for a message: the first few, and how many more."""
    shown = ", ".join(names[:LISTED_NAMES])
    return shown + (f" and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else "")


LISTED_NAMES = 5  # host names an error message lists before it says how many more


def _after_all(
    futures: list[Future], then: Callable[[], object], add: Callable[[Future, Callable[[Future], object]], object]
) -> None:
    """Call ``then`` once, where the last of ``futures`` finishes; ``add`` attaches a callback to one future."""
    remaining = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Future) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            then()

    for future in futures:
        add(future, one_done)


__all__ = [
    "AUTH_FAILED",
    "FAILED",
    "OK",
    "TIMED_OUT",
    "UNREACHABLE",
    "CommandResult",
    "Fleet",
    "PushFailed",
    "Result",
    "Results",
    "Transfer",
]
