"""Children call services on the master: refusals, errors, and fleet-wide deduplication."""

from __future__ import annotations

import importlib
import threading
import time

import pytest

import fanout
from fanout import service

ASKER = """
import fanout
from fanout.service import CallRefused


def ask(service_name, method, **kwargs):
    return fanout.parent().call_service(service_name, method, **kwargs)


def ask_expecting_refusal(service_name, method, **kwargs):
    try:
        fanout.parent().call_service(service_name, method, **kwargs)
    except CallRefused as exc:
        return "refused: " + str(exc)
    return "not refused"


def ask_expecting_error(service_name, method, **kwargs):
    try:
        fanout.parent().call_service(service_name, method, **kwargs)
    except fanout.RemoteError as exc:
        return (exc.type_name, exc.message, exc.traceback)
"""


class Builder(service.Service):
    """Builds an artifact once, however many hosts ask at the same time."""

    name = "tests.Builder"
    invoker_class = service.DeduplicatingInvoker

    def __init__(self) -> None:
        self.executions = 0
        self.lock = threading.Lock()

    @service.expose(service.AllowAny())
    @service.arg_spec({"target": str})
    def build(self, target):
        with self.lock:
            self.executions += 1
        time.sleep(1.0)
        return f"artifact-{target}"

    @service.expose(service.AllowAny())
    def broken(self):
        raise LookupError("no such artifact")

    @service.expose(service.AllowParents())
    def parents_only(self):
        return "ran"


@pytest.fixture
def asker(user_modules):
    s = user_modules({"asker_{s}.py": ASKER})
    return importlib.import_module(f"asker_{s}")


@pytest.fixture
def builder():
    the_builder = Builder()
    with service.Pool(2, services=[the_builder]).serve_children():
        yield the_builder


def test_a_child_calls_a_service_on_the_master(child, asker, builder) -> None:
    assert child.call(asker.ask, "tests.Builder", "build", target="lib") == "artifact-lib"
    assert builder.executions == 1


@pytest.mark.parametrize(
    "method, kwargs, complaint",
    [
        ("parents_only", {}, "AllowParents refuses"),
        ("build", {"target": 3}, "argument 'target' of build must be str"),
        ("missing", {}, "no exposed method 'missing'"),
    ],
)
def test_refusals_reach_the_child_as_call_refused(child, asker, builder, method, kwargs, complaint) -> None:
    answer = child.call(asker.ask_expecting_refusal, "tests.Builder", method, **kwargs)
    assert answer.startswith("refused: ") and complaint in answer
    assert builder.executions == 0


def test_children_cannot_activate_services_on_the_master(child, asker, builder) -> None:
    answer = child.call(asker.ask_expecting_refusal, "os.Thing", "x")
    assert "only a parent may activate" in answer


def test_without_a_served_pool_the_master_refuses(child, asker) -> None:
    assert "the master serves no services" in child.call(asker.ask_expecting_refusal, "tests.Builder", "build")


def test_the_masters_error_reaches_the_child_with_its_traceback(child, asker, builder) -> None:
    type_name, message, traceback = child.call(asker.ask_expecting_error, "tests.Builder", "broken")
    assert (type_name, message) == ("LookupError", "no such artifact")
    assert 'raise LookupError("no such artifact")' in traceback


def test_on_the_master_parent_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="this process is the master"):
        fanout.parent()


def test_fleet_wide_deduplication(fleet, asker, builder) -> None:
    """32 children (the Docker fleet plus local ones) ask for one build at once: it runs once."""
    contexts = []
    try:
        for host in fleet.hosts:
            contexts.append(fanout.connect(host.address, **host.connect_options()))
        while len(contexts) < 32:
            contexts.append(fanout.local())
        for context in contexts:  # connected and warm, so the timing below is the build's
            context.call(abs, 1)
        started = time.monotonic()
        futures = [context.call_async(asker.ask, "tests.Builder", "build", target="app") for context in contexts]
        answers = [future.result(timeout=60) for future in futures]
        elapsed = time.monotonic() - started
    finally:
        for context in contexts:
            context.close()
    assert answers == ["artifact-app"] * 32
    assert builder.executions == 1
    # One execution of one second, not sixteen rounds on a two-thread pool (16 s):
    # waiters hold no pool thread. The bound is loose; the count above is the proof.
    print(f"32 children, one 1-second build: {elapsed:.2f} s")
    assert elapsed < 8
