"""The service framework in one process: policies, arg specs, invokers, activation and the pool."""

from __future__ import annotations

import threading
import time

import pytest

from fanout import service
from fanout.service import (
    AllowAny,
    AllowParents,
    Caller,
    CallRefused,
    DeduplicatingInvoker,
    Pool,
    PoolClosed,
    Receiver,
    SerializedInvoker,
    Service,
    arg_spec,
    expose,
)
from tests.fleet.waiting import WAIT_TIMEOUT, wait_until

PARENT = Caller("master", is_parent=True)
CHILD = Caller("web1", is_parent=False)


class Overlap:
    """Counts calls in progress, to show whether an invoker lets them overlap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


class Calculator(Service):
    def __init__(self) -> None:
        self.overlap = Overlap()
        self.messages: list = []
        self.released = threading.Event()
        self.together = threading.Barrier(4)

    @expose(AllowParents())
    @arg_spec({"a": int, "b": (int, float)})
    def add(self, a, b):
        return a + b

    @expose(AllowAny())
    def slow(self, seconds):
        with self.overlap:
            time.sleep(seconds)
        return seconds

    @expose(AllowAny())
    def hold(self):
        """Runs until the test releases it: what runs meanwhile did not wait for it."""
        with self.overlap:
            return self.released.wait(WAIT_TIMEOUT)

    @expose(AllowAny())
    def meet(self):
        """Returns once four calls run together, which calls queued one after another never do."""
        with self.overlap:
            return self.together.wait(WAIT_TIMEOUT)

    @expose(AllowAny())
    def fail(self, why):
        raise KeyError(why)

    def not_exposed(self):
        return "secret"

    def on_message_received(self, receiver, message):
        self.messages.append(message)


class Serial(Calculator):
    invoker_class = SerializedInvoker


class Builder(Service):
    invoker_class = DeduplicatingInvoker

    def __init__(self) -> None:
        self.runs = 0
        self.failures_left = 0
        self.lock = threading.Lock()
        self.released = threading.Event()  # set by the test once every call it wants deduplicated was made

    @expose(AllowAny())
    def build(self, target, options=None):
        with self.lock:
            self.runs += 1
            fail = self.failures_left > 0
            self.failures_left -= 1
        self.released.wait(WAIT_TIMEOUT)
        if fail:
            raise RuntimeError(f"build of {target} failed")
        return f"artifact-{target}"


@pytest.fixture
def pool():
    with Pool(size=4) as the_pool:
        yield the_pool


def test_exposed_method_runs_and_returns(pool) -> None:
    pool.add(Calculator())
    assert pool.invoke(Calculator.canonical_name(), "add", {"a": 2, "b": 3.5}, PARENT).result(WAIT_TIMEOUT) == 5.5


@pytest.mark.parametrize(
    "method, kwargs, caller, complaint",
    [
        ("not_exposed", {}, PARENT, "no exposed method 'not_exposed'"),
        ("missing", {}, PARENT, "no exposed method 'missing'"),
        ("_private", {}, PARENT, "no exposed method '_private'"),
        ("add", {"a": 1, "b": 2}, CHILD, "AllowParents refuses web1"),
        ("add", {"a": 1}, PARENT, "argument 'b' of add is missing"),
        ("add", {"a": 1, "b": 2, "c": 3}, PARENT, "argument 'c' is not in add's arg_spec"),
        ("add", {"a": "1", "b": 2}, PARENT, "argument 'a' of add must be int, not str"),
        ("add", {"a": 1, "b": "2"}, PARENT, "argument 'b' of add must be int or float, not str"),
    ],
)
def test_refusals_name_the_rule_and_run_nothing(pool, method, kwargs, caller, complaint) -> None:
    calc = pool.add(Calculator())
    with pytest.raises(CallRefused, match=complaint):
        pool.invoke(Calculator.canonical_name(), method, kwargs, caller).result(WAIT_TIMEOUT)
    assert calc.overlap.most == 0


def test_invoker_runs_calls_concurrently(pool) -> None:
    calc = pool.add(Calculator())
    futures = [pool.invoke(Calculator.canonical_name(), "meet", {}, CHILD) for _ in range(4)]
    assert sorted(f.result(WAIT_TIMEOUT) for f in futures) == [0, 1, 2, 3]
    assert calc.overlap.most == 4


def test_serialized_invoker_never_overlaps_and_keeps_order(pool) -> None:
    serial = pool.add(Serial())
    name = Serial.canonical_name()
    futures = [pool.invoke(name, "slow", {"seconds": 0.05 + i / 1000}, CHILD) for i in range(8)]
    assert [f.result(WAIT_TIMEOUT) for f in futures] == [0.05 + i / 1000 for i in range(8)]
    assert serial.overlap.most == 1


def test_serialized_invoker_borrows_one_thread_only(pool) -> None:
    """More held serialized calls than the pool has threads: a quick call still runs while they wait."""
    serial = pool.add(Serial())
    pool.add(Calculator())
    held = [pool.invoke(Serial.canonical_name(), "hold", {}, CHILD) for _ in range(6)]
    wait_until(lambda: serial.overlap.now == 1, what="the first serialized call running")
    quick = pool.invoke(Calculator.canonical_name(), "add", {"a": 1, "b": 1}, PARENT).result(WAIT_TIMEOUT)
    assert quick == 2  # other threads stayed free
    assert not any(future.done() for future in held)
    serial.released.set()
    assert [future.result(WAIT_TIMEOUT) for future in held] == [True] * 6


def test_errors_reach_the_caller_with_type_and_traceback(pool) -> None:
    pool.add(Calculator())
    pool.add(Serial())
    for name in (Calculator.canonical_name(), Serial.canonical_name()):
        with pytest.raises(KeyError, match="nope") as info:
            pool.invoke(name, "fail", {"why": "nope"}, CHILD).result(WAIT_TIMEOUT)
        assert "raise KeyError(why)" in "".join(__import__("traceback").format_tb(info.value.__traceback__))


def test_deduplicating_invoker_runs_once_and_broadcasts(pool) -> None:
    builder = pool.add(Builder())
    name = Builder.canonical_name()
    futures = [pool.invoke(name, "build", {"target": "app"}, CHILD) for _ in range(16)]
    builder.released.set()
    assert {f.result(WAIT_TIMEOUT) for f in futures} == {"artifact-app"}
    assert builder.runs == 1
    assert pool.invoke(name, "build", {"target": "app"}, CHILD).result(WAIT_TIMEOUT) == "artifact-app"  # cached
    assert builder.runs == 1
    assert pool.invoke(name, "build", {"target": "lib"}, CHILD).result(WAIT_TIMEOUT) == "artifact-lib"
    assert builder.runs == 2


def test_deduplicated_waiters_hold_no_pool_thread() -> None:
    with Pool(size=2) as small:
        builder = small.add(Builder())
        small.add(Calculator())
        waiters = [small.invoke(Builder.canonical_name(), "build", {"target": "x"}, CHILD) for _ in range(10)]
        # Ten waiters, one execution held until released: a second thread is still free for other work.
        assert small.invoke(Calculator.canonical_name(), "add", {"a": 2, "b": 2}, PARENT).result(WAIT_TIMEOUT) == 4
        assert not any(f.done() for f in waiters)
        builder.released.set()
        assert {f.result(WAIT_TIMEOUT) for f in waiters} == {"artifact-x"}


def test_deduplicated_error_reaches_every_waiter_and_is_not_cached(pool) -> None:
    builder = pool.add(Builder())
    builder.failures_left = 1
    name = Builder.canonical_name()
    futures = [pool.invoke(name, "build", {"target": "app"}, CHILD) for _ in range(5)]
    builder.released.set()
    for future in futures:
        with pytest.raises(RuntimeError, match="build of app failed"):
            future.result(WAIT_TIMEOUT)
    assert builder.runs == 1
    assert pool.invoke(name, "build", {"target": "app"}, CHILD).result(WAIT_TIMEOUT) == "artifact-app"
    assert builder.runs == 2


def test_deduplication_keys_unhashable_and_unpicklable_arguments(pool) -> None:
    builder = pool.add(Builder())
    name = Builder.canonical_name()
    same = [pool.invoke(name, "build", {"target": "t", "options": {"o": [1]}}, CHILD) for _ in range(4)]
    builder.released.set()
    assert {f.result(WAIT_TIMEOUT) for f in same} == {"artifact-t"}
    assert builder.runs == 1
    lock_arg = {"target": "u", "options": threading.Lock()}  # neither hashable-by-value nor picklable
    assert DeduplicatingInvoker.key("build", {"options": [threading.Lock()]}) is None
    assert pool.invoke(name, "build", lock_arg, CHILD).result(WAIT_TIMEOUT) == "artifact-u"


def test_builtin_activator_imports_by_name_for_parents_only(pool) -> None:
    name = Calculator.canonical_name()
    with pytest.raises(CallRefused, match="only a parent may activate"):
        pool.invoke(name, "slow", {"seconds": 0}, CHILD).result(WAIT_TIMEOUT)
    assert pool.invoke(name, "add", {"a": 1, "b": 1}, PARENT).result(WAIT_TIMEOUT) == 2
    assert isinstance(pool.get_service(name), Calculator)
    assert pool.invoke(name, "slow", {"seconds": 0}, CHILD).result(WAIT_TIMEOUT) == 0  # active now: children may call
    for bad, complaint in [
        ("nodots", "not a fully qualified"),
        ("no_such_mod.X", "cannot activate"),
        ("threading.Thread", "not a fanout.service.Service"),
    ]:
        with pytest.raises(CallRefused, match=complaint):
            pool.invoke(bad, "x", {}, PARENT).result(WAIT_TIMEOUT)


def test_pool_close_fails_pending_calls_and_leaks_no_thread() -> None:
    before = set(threading.enumerate())  # threads of earlier tests may end meanwhile: only new ones count
    the_pool = Pool(size=2)
    calc = the_pool.add(Calculator())
    serialized = the_pool.add(Serial())
    name = Calculator.canonical_name()
    running = [the_pool.invoke(name, "hold", {}, CHILD) for _ in range(2)]
    queued = [the_pool.invoke(name, "hold", {}, CHILD) for _ in range(3)]
    serial = [the_pool.invoke(Serial.canonical_name(), "hold", {}, CHILD) for _ in range(3)]
    wait_until(lambda: calc.overlap.now == 2, what="two calls running on the pool's two threads")
    closing = threading.Thread(target=the_pool.close)  # it lets running calls finish: released below
    closing.start()
    for future in queued + serial[1:]:
        with pytest.raises(PoolClosed, match="closed before this call ran"):
            future.result(WAIT_TIMEOUT)
    calc.released.set()
    serialized.released.set()
    closing.join(WAIT_TIMEOUT)
    assert [f.result(0) for f in running] == [True, True]  # running calls finish
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(PoolClosed):
        the_pool.invoke(name, "slow", {"seconds": 0}, CHILD).result(0)


def test_select_delivers_messages_to_the_service(pool) -> None:
    calc = pool.add(Calculator())
    receiver = Receiver()
    receiver.put("early")
    calc.select.add(receiver)
    receiver.put("late")
    wait_until(lambda: len(calc.messages) >= 2, what="both messages reaching the service", state=lambda: calc.messages)
    assert sorted(calc.messages) == ["early", "late"]
    assert calc.select in pool.select


def test_bad_construction_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        Pool(size=0)
    with pytest.raises(TypeError, match="Policy instance"):
        expose(AllowAny)
    with pytest.raises(TypeError, match="arg_spec"):
        arg_spec(["a"])
    with Pool(size=1) as the_pool:
        with pytest.raises(TypeError, match="Service instance"):
            the_pool.add(object())
        the_pool.add(Calculator())
        with pytest.raises(ValueError, match="already in this pool"):
            the_pool.add(Calculator())


def test_every_name_the_specification_lists_exists() -> None:
    for name in [
        "Policy",
        "AllowParents",
        "AllowAny",
        "arg_spec",
        "expose",
        "Service",
        "Invoker",
        "SerializedInvoker",
        "DeduplicatingInvoker",
        "Activator",
        "Pool",
        "Select",
    ]:
        assert hasattr(service, name), name
    assert hasattr(Pool, "close") and hasattr(Pool, "add")
