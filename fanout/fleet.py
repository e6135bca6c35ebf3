"""Fan a call out over many hosts: connections opened in parallel, one outcome per host.

One host never fails another (decision 7): each ends as ``ok``, ``failed``
(a remote exception), ``unreachable``, ``auth-failed`` or ``timed-out``, and
:class:`Results` tells them apart.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from fanout.errors import (
    AuthenticationFailed,
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

    @property
    def ok(self) -> bool:
        return self.status == OK

    def __repr__(self) -> str:
        detail = repr(self.value) if self.ok else f"{type(self.error).__name__}: {self.error}"
        return f"<Result {self.host} {self.status}: {detail}>"


def status_of(error: BaseException) -> str:
    """The outcome an exception means for its host."""
    if isinstance(error, ConnectTimeout):
        return TIMED_OUT
    if isinstance(error, (AuthenticationFailed, HostKeyError)):
        return AUTH_FAILED
    if isinstance(error, (Unreachable, ConnectionLost)):
        return UNREACHABLE
    return FAILED


class Results(Mapping):
    """Host name to :class:`Result`, in the fleet's host order, with views by outcome."""

    def __init__(self, results: dict[str, Result]) -> None:
        self._results = results

    def __getitem__(self, host: str) -> Result:
        return self._results[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def _with(self, *statuses: str) -> dict[str, Result]:
        return {host: r for host, r in self._results.items() if r.status in statuses}

    @property
    def ok(self) -> dict[str, Result]:
        return self._with(OK)

    @property
    def failed(self) -> dict[str, Result]:
        return self._with(FAILED)

    @property
    def unreachable(self) -> dict[str, Result]:
        """Hosts never reached: unreachable, refused authentication or host key, or timed out."""
        return self._with(UNREACHABLE, AUTH_FAILED, TIMED_OUT)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for result in self._results.values():
            counts[result.status] = counts.get(result.status, 0) + 1
        return ", ".join(f"{status}={count}" for status, count in sorted(counts.items())) or "no hosts"

    def __repr__(self) -> str:
        return f"<Results {self.summary()}>"


class Fleet:
    """Hosts to run calls on, each reached with its own ``fanout.connect`` options."""

    def __init__(self, hosts: Mapping[str, Mapping[str, Any]], *, forks: int = 50, connect_timeout: float = 10.0):
        if forks < 1:
            raise ValueError(f"forks must be at least 1, not {forks}")
        self.hosts = {name: dict(options) for name, options in hosts.items()}
        self.forks = forks
        self.connect_timeout = connect_timeout
        self._contexts: dict[str, Any] = {}
        self._failures: dict[str, BaseException] = {}
        self._lock = threading.Lock()
        self._connected = False

    @classmethod
    def from_inventory(cls, path: str | os.PathLike, pattern: str = "all", **options: Any) -> Fleet:
        """The hosts ``pattern`` selects in an Ansible inventory, with their connection variables."""
        from fanout.inventory import Inventory

        inventory = Inventory.load(path)
        return cls({name: inventory.connect_options(name) for name in inventory.hosts(pattern)}, **options)

    def connect(self) -> Fleet:
        """Open every connection, at most ``forks`` at once; a host that fails is remembered, not raised."""
        from fanout._ssh import connect

        def open_one(name: str) -> None:
            options = dict(self.hosts[name])
            address = options.pop("host", name)
            options.setdefault("connect_timeout", self.connect_timeout)
            try:
                context = connect(address, **options)
            except (FanoutError, OSError, ValueError) as exc:
                with self._lock:
                    self._failures[name] = exc
                return
            context.name = name
            with self._lock:
                self._contexts[name] = context

        with ThreadPoolExecutor(max_workers=min(self.forks, max(len(self.hosts), 1))) as pool:
            list(pool.map(open_one, [name for name in self.hosts if name not in self._contexts]))
        self._connected = True
        return self

    def _start(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Future]:
        if not self._connected:
            self.connect()
        futures: dict[str, Future] = {}
        for name in self.hosts:
            context = self._contexts.get(name)
            if context is None:
                failed: Future = Future()
                failed.set_exception(self._failures[name])
                futures[name] = failed
            else:
                try:
                    futures[name] = context.call_async(fn, *args, **kwargs)
                except (FanoutError, TypeError) as exc:
                    failed = Future()
                    failed.set_exception(exc)
                    futures[name] = failed
        return futures

    @staticmethod
    def _result(name: str, future: Future) -> Result:
        error = future.exception()
        if error is None:
            return Result(name, OK, value=future.result())
        return Result(name, status_of(error), error=error)

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Results:
        """Run ``fn(*args, **kwargs)`` on every host; one :class:`Result` per host, in host order."""
        futures = self._start(fn, args, kwargs)
        return Results({name: self._result(name, future) for name, future in futures.items()})

    def as_completed(
        self, fn: Callable[..., Any], /, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, Result]]:
        """Like :meth:`call`, but yields ``(host, result)`` as each host finishes."""
        futures = self._start(fn, args, kwargs)
        names = {future: name for name, future in futures.items()}
        for future in as_completed(names, timeout=timeout):
            yield names[future], self._result(names[future], future)

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            contexts, self._contexts = list(self._contexts.values()), {}
        for context in contexts:
            context.close()

    def __enter__(self) -> Fleet:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["AUTH_FAILED", "FAILED", "OK", "TIMED_OUT", "UNREACHABLE", "Fleet", "Result", "Results"]
