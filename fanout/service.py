"""Services: classes whose exposed methods other contexts call, run on a pool of threads.

The semantics follow the service framework specification (``Service``,
``Invoker``, ``SerializedInvoker``, ``DeduplicatingInvoker``, ``Activator``,
``Pool``). This module is also imported by children, by import on demand, so
it keeps to Python 3.9 and the standard library.

Decisions where the specification is silent (see docs/design.rst):

* Every refusal is a :class:`CallRefused` raised to the caller, and nothing runs.
* A method's exception reaches every caller waiting on it, with its type and
  traceback, whichever invoker ran it. ``DeduplicatingInvoker`` caches return
  values, never exceptions: the next identical request runs the method again.
* ``DeduplicatingInvoker`` keys requests by method name and keyword arguments.
  Hashable arguments are keyed as they are; unhashable ones (lists, dicts) by
  their pickle. Arguments that cannot be pickled either are not deduplicated:
  each such request runs on its own.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib
import pickle
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from fanout.errors import FanoutError

__all__ = [
    "Activator",
    "AllowAny",
    "AllowParents",
    "CallRefused",
    "Caller",
    "DeduplicatingInvoker",
    "Invoker",
    "Policy",
    "Pool",
    "PoolClosed",
    "Receiver",
    "Select",
    "SerializedInvoker",
    "Service",
    "arg_spec",
    "call",
    "expose",
]


class CallRefused(FanoutError):
    """A service call was refused before anything ran: the message says which rule refused it."""


class PoolClosed(FanoutError):
    """The pool closed while the call was pending or before it started."""


class Caller:
    """Who is calling: a context's name, and whether it is a parent of the context serving."""

    def __init__(self, name: str, is_parent: bool) -> None:
        self.name = name
        self.is_parent = is_parent

    def __repr__(self) -> str:
        return f"Caller({self.name!r}, is_parent={self.is_parent})"


# -- policies ------------------------------------------------------------------------------


class Policy:
    """Decides whether a caller may call a method. Subclass and override ``is_authorized``."""

    def is_authorized(self, service: Service, caller: Caller) -> bool:
        """True when ``caller`` may call the method; the base policy refuses everyone."""
        return False


class AllowParents(Policy):
    """Only parents of the serving context may call (the default for exposed methods)."""

    def is_authorized(self, service: Service, caller: Caller) -> bool:
        return caller.is_parent


class AllowAny(Policy):
    """Any context may call: for services children use, such as fleet-wide deduplication."""

    def is_authorized(self, service: Service, caller: Caller) -> bool:
        return True


def expose(policy: Policy) -> Callable:
    """Mark a method callable by other contexts, under ``policy``."""
    if not isinstance(policy, Policy):
        raise TypeError(f"expose() takes a Policy instance, such as AllowParents(), not {policy!r}")

    def decorate(method: Callable) -> Callable:
        method.fanout_policy = policy  # type: ignore[attr-defined]
        return method

    return decorate


def arg_spec(spec: dict[str, Any]) -> Callable:
    """Declare a method's keyword arguments and their types; calls outside the spec are refused."""
    if not isinstance(spec, dict) or not all(isinstance(name, str) for name in spec):
        raise TypeError("arg_spec() takes a dict of argument name to type (or tuple of types)")

    def decorate(method: Callable) -> Callable:
        method.fanout_arg_spec = dict(spec)  # type: ignore[attr-defined]
        return method

    return decorate


def _check_arguments(method: Callable, kwargs: dict[str, Any]) -> None:
    spec = getattr(method, "fanout_arg_spec", None)
    if spec is None:
        return
    for name in kwargs:
        if name not in spec:
            raise CallRefused(f"argument {name!r} is not in {method.__name__}'s arg_spec ({', '.join(spec)})")
    for name, kind in spec.items():
        if name not in kwargs:
            raise CallRefused(f"argument {name!r} of {method.__name__} is missing")
        if not isinstance(kwargs[name], kind):
            wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise CallRefused(
                f"argument {name!r} of {method.__name__} must be {wanted}, not {type(kwargs[name]).__name__}"
            )


# -- receivers and selects -----------------------------------------------------------------


class Receiver:
    """A queue of messages a service can be loaded with; readiness is announced to its selects."""

    def __init__(self) -> None:
        self._messages: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._selects: list = []

    def put(self, message: Any) -> None:
        with self._lock:
            self._messages.append(message)
            selects = list(self._selects)
        for select in selects:
            select._ready(self)

    def get(self) -> Any:
        """The oldest message; ``IndexError`` when there is none."""
        with self._lock:
            return self._messages.popleft()

    def __len__(self) -> int:
        return len(self._messages)


class Select:
    """A set of receivers; ``on_ready`` runs for each message that arrives on any of them."""

    def __init__(self, on_ready: Callable[[Receiver], None] | None = None) -> None:
        self._receivers: list = []
        self._on_ready = on_ready
        self._lock = threading.Lock()

    def add(self, receiver: Receiver) -> None:
        with self._lock:
            self._receivers.append(receiver)
        with receiver._lock:
            receiver._selects.append(self)
            pending = len(receiver._messages)
        for _ in range(pending):
            self._ready(receiver)

    def remove(self, receiver: Receiver) -> None:
        with self._lock:
            self._receivers.remove(receiver)
        with receiver._lock:
            receiver._selects.remove(self)

    def __iter__(self):
        with self._lock:
            return iter(list(self._receivers))

    def _ready(self, receiver: Receiver) -> None:
        if self._on_ready is not None:
            self._on_ready(receiver)


# -- services ------------------------------------------------------------------------------


class Service:
    """Base of user services. Expose methods with :func:`expose`; a service is named by its
    canonical ``module.ClassName`` unless ``name`` is set."""

    #: The invoker class that runs this service's calls.
    invoker_class: type = None  # type: ignore[assignment]  (set to Invoker below)
    name: str | None = None

    @property
    def select(self) -> Select:
        """Receivers this service is loaded with; each message is handed to :meth:`on_message_received`."""
        select = self.__dict__.get("_select")
        if select is None:
            select = self.__dict__["_select"] = Select(self._message_ready)
        return select

    @classmethod
    def canonical_name(cls) -> str:
        return cls.name or f"{cls.__module__}.{cls.__qualname__}"

    def on_message_received(self, receiver: Receiver, message: Any) -> None:
        """Called on a pool thread for each message that arrives on a receiver in ``self.select``."""

    def on_shutdown(self) -> None:
        """Called once when the pool closes."""

    def _message_ready(self, receiver: Receiver) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool._run(self._deliver, receiver)

    def _deliver(self, receiver: Receiver) -> None:
        try:
            message = receiver.get()
        except IndexError:
            return
        self.on_message_received(receiver, message)

    def __repr__(self) -> str:
        return f"<{self.canonical_name()}>"


# -- invokers ------------------------------------------------------------------------------


def _refusal(service: Service, method_name: str, caller: Caller) -> str | None:
    method = getattr(type(service), method_name, None) if not method_name.startswith("_") else None
    policy = getattr(method, "fanout_policy", None)
    if policy is None:
        return f"{service.canonical_name()} has no exposed method {method_name!r}"
    if not policy.is_authorized(service, caller):
        return f"{type(policy).__name__} refuses {caller.name} calling {service.canonical_name()}.{method_name}"
    return None


class Invoker:
    """Runs each call on the pool, concurrently with any other."""

    def __init__(self, service: Service, pool: Pool) -> None:
        self.service = service
        self.pool = pool

    def invoke(self, method_name: str, kwargs: dict[str, Any], caller: Caller) -> Future:
        """Check the call (exposed, policy, arg_spec) and schedule it; the future holds the outcome."""
        future: Future = Future()
        reason = _refusal(self.service, method_name, caller)
        method = getattr(self.service, method_name, None)
        try:
            if reason is not None:
                raise CallRefused(reason)
            _check_arguments(method, kwargs)
        except CallRefused as exc:
            future.set_exception(exc)
            return future
        self._schedule(method, kwargs, future)
        return future

    def _schedule(self, method: Callable, kwargs: dict[str, Any], future: Future) -> None:
        self.pool._run(_settle, future, method, kwargs)


def _settle(future: Future, method: Callable, kwargs: dict[str, Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(method(**kwargs))
    except BaseException as exc:
        future.set_exception(exc)


class SerializedInvoker(Invoker):
    """Runs one call at a time, in arrival order, on one pool thread borrowed while any is pending."""

    def __init__(self, service: Service, pool: Pool) -> None:
        super().__init__(service, pool)
        self._pending: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._draining = False

    def _schedule(self, method: Callable, kwargs: dict[str, Any], future: Future) -> None:
        self._pending.put((future, method, kwargs))
        with self._lock:
            if self._draining:
                return
            self._draining = True
        self.pool._run(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if self._pending.empty():
                    self._draining = False
                    return
            _settle(*self._pending.get())


KEY_INLINE_BYTES = 256  # arguments pickled larger than this are keyed by their digest, not kept


class DeduplicatingInvoker(Invoker):
    """Runs one execution per distinct (method, kwargs); every waiter gets its result.

    Return values are cached for the invoker's life; exceptions reach every
    waiter of that execution and are not cached. Waiters hold no pool thread.
    """

    def __init__(self, service: Service, pool: Pool) -> None:
        super().__init__(service, pool)
        self._lock = threading.Lock()
        self._results: dict[Any, Any] = {}
        self._waiting: dict[Any, list] = {}
        self.executions = 0

    @staticmethod
    def key(method_name: str, kwargs: dict[str, Any]) -> Any:
        """The deduplication key, or None when the arguments can be neither hashed nor pickled.

        Small hashable arguments are the key as they are (equal arguments, one execution); larger ones
        are keyed by the SHA-256 of their pickle, so the cache, which lives as long as the invoker, holds
        a few dozen bytes per distinct request however large its arguments (a host's 32 MiB string, say).
        """
        items = tuple(sorted(kwargs.items()))
        try:
            packed = pickle.dumps(items, protocol=4)
        except Exception:
            packed = None
        if packed is None or len(packed) <= KEY_INLINE_BYTES:
            try:
                hash(items)
                return (method_name, items)
            except TypeError:
                pass
        if packed is None:
            return None
        return (method_name, hashlib.sha256(packed).digest())

    def _schedule(self, method: Callable, kwargs: dict[str, Any], future: Future) -> None:
        key = self.key(method.__name__, kwargs)
        if key is None:
            with self._lock:
                self.executions += 1
            super()._schedule(method, kwargs, future)
            return
        with self._lock:
            if key in self._results:
                future.set_result(self._results[key])
                return
            waiters = self._waiting.get(key)
            if waiters is not None:
                waiters.append(future)
                return
            self._waiting[key] = [future]
            self.executions += 1
        self.pool._run(self._execute, key, method, kwargs)

    def _execute(self, key: Any, method: Callable, kwargs: dict[str, Any]) -> None:
        try:
            value, error = method(**kwargs), None
        except BaseException as exc:
            value, error = None, exc
        with self._lock:
            waiters = self._waiting.pop(key)
            if error is None:
                self._results[key] = value
        for future in waiters:
            if future.done():
                continue
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


Service.invoker_class = Invoker


# -- activation ----------------------------------------------------------------------------


class Activator:
    """Finds and constructs a service by name; the built-in one imports ``module.ClassName``
    and lets only parents activate."""

    def activate(self, pool: Pool, name: str, caller: Caller) -> Service:
        if not caller.is_parent:
            raise CallRefused(f"{name} is not active here, and only a parent may activate a service")
        module_name, _, class_name = name.rpartition(".")
        if not module_name:
            raise CallRefused(f"{name!r} is not a fully qualified class name (module.ClassName)")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise CallRefused(f"cannot activate {name}: {exc}") from None
        cls = getattr(module, class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise CallRefused(f"{name} is not a fanout.service.Service subclass")
        return pool.add(cls())


def call(context: Any, service_name: str, method_name: str, /, **kwargs: Any) -> Any:
    """``service_name.method_name(**kwargs)`` in ``context``'s pool: a child's from its parent
    (a :class:`fanout.Context`), or the parent's from a child (``fanout.parent()``)."""
    return context.call_service(service_name, method_name, **kwargs)


# -- the pool ------------------------------------------------------------------------------


class Pool:
    """A fixed set of threads serving a name-to-invoker map of services.

    ``invoke`` checks and schedules a call; ``add`` makes a service available;
    ``close`` fails pending calls with :class:`PoolClosed` and ends every thread.
    """

    def __init__(self, size: int = 4, services: tuple = (), activator: Activator | None = None) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"a Pool needs at least one thread, not {size!r}")
        self.size = size
        self.activator = activator if activator is not None else Activator()
        self._invokers: dict[str, Invoker] = {}
        self._lock = threading.Lock()
        self._activation_lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"fanout-pool-{i}", daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()
        for service in services:
            self.add(service)

    def add(self, service: Service) -> Service:
        """Serve ``service`` under its canonical name, with its class's invoker."""
        if not isinstance(service, Service):
            raise TypeError(f"Pool.add() takes a Service instance, not {service!r}")
        name = service.canonical_name()
        with self._lock:
            if self._closed:
                raise PoolClosed("the pool is closed")
            if name in self._invokers:
                raise ValueError(f"a service named {name} is already in this pool")
            self._invokers[name] = type(service).invoker_class(service, self)
        service._pool = self  # type: ignore[attr-defined]
        return service

    def serve_children(self) -> Pool:
        """Make this the pool that children's ``fanout.parent().call_service(...)`` reach.

        On the master, a pool serves only its own process until this is called:
        exposing services to every host is a decision, not a side effect.
        """
        global _children_pool
        with _children_pool_lock:
            _children_pool = self
        return self

    def get_service(self, name: str) -> Service | None:
        with self._lock:
            invoker = self._invokers.get(name)
        return invoker.service if invoker is not None else None

    def invoker(self, name: str) -> Invoker | None:
        with self._lock:
            return self._invokers.get(name)

    def invoke(self, service_name: str, method_name: str, kwargs: dict[str, Any], caller: Caller) -> Future:
        """Run ``service_name.method_name(**kwargs)`` for ``caller``, activating the service if allowed."""
        invoker = self.invoker(service_name)
        if invoker is None:
            with self._activation_lock:  # two first calls at once must not activate twice
                invoker = self.invoker(service_name)
                if invoker is None:
                    try:
                        if self._closed:
                            raise PoolClosed("the pool is closed")
                        self.activator.activate(self, service_name, caller)
                    except (CallRefused, PoolClosed) as exc:
                        future: Future = Future()
                        future.set_exception(exc)
                        return future
                    invoker = self.invoker(service_name)
                    if invoker is None:
                        refused: Future = Future()
                        refused.set_exception(CallRefused(f"{service_name} activated under another name"))
                        return refused
        return invoker.invoke(method_name, kwargs, caller)

    @property
    def select(self) -> list:
        """Every active service's select, aggregated."""
        with self._lock:
            return [invoker.service.select for invoker in self._invokers.values()]

    def _run(self, fn: Callable, *args: Any) -> None:
        if self._closed:
            raise PoolClosed("the pool is closed")
        self._jobs.put(functools.partial(fn, *args))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                traceback.print_exc()

    def close(self, timeout: float = 10.0) -> None:
        """Fail pending calls with :class:`PoolClosed`, let running ones finish, and end the threads."""
        global _children_pool
        with self._lock:
            if self._closed:
                return
            self._closed = True
            invokers = list(self._invokers.values())
        with _children_pool_lock:
            if _children_pool is self:
                _children_pool = None
        pending = []
        while True:
            try:
                pending.append(self._jobs.get_nowait())
            except queue.Empty:
                break
        for job in pending:
            for future in _futures_in(job):
                if not future.done():
                    future.set_exception(PoolClosed("the pool closed before this call ran"))
        for invoker in invokers:
            for future in _futures_of(invoker):
                if not future.done():
                    future.set_exception(PoolClosed("the pool closed before this call ran"))
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout)
        for invoker in invokers:
            invoker.service.on_shutdown()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_children_pool: Pool | None = None
_children_pool_lock = threading.Lock()


def children_pool() -> Pool | None:
    """The pool serving children's calls (see :meth:`Pool.serve_children`), if any."""
    return _children_pool


def _futures_in(job: Any) -> list:
    args = getattr(job, "args", ())
    return [arg for arg in args if isinstance(arg, Future)]


def _futures_of(invoker: Invoker) -> list:
    if isinstance(invoker, SerializedInvoker):
        found = []
        while True:
            try:
                found.append(invoker._pending.get_nowait()[0])
            except queue.Empty:
                return found
    if isinstance(invoker, DeduplicatingInvoker):
        with invoker._lock:
            return [future for waiters in invoker._waiting.values() for future in waiters]
    return []
