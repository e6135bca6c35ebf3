"""Children call services on the master: refusals, errors, and fleet-wide deduplication."""

from __future__ import annotations

import importlib
import threading

import pytest

import fanout
from fanout import service
from tests.fleet.waiting import WAIT_TIMEOUT

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


class CountsAsks(service.AllowAny):
    """Any context may call; each call is counted on the service as it reaches the master, before it runs or
    waits for the same call's result."""

    def is_authorized(self, service: service.Service, caller: service.Caller) -> bool:
        service.asked()
        return True


class Builder(service.Service):
    """Builds an artifact once, however many hosts ask at the same time: a build runs until every ask the test
    expects has reached the master, so they all came while it ran, whatever the machine's load."""

    name = "tests.Builder"
    invoker_class = service.DeduplicatingInvoker

    def __init__(self) -> None:
        self.executions = 0
        self.asks, self.expected_asks, self.all_asked = 0, 1, threading.Event()
        self.lock = threading.Lock()

    def asked(self) -> None:
        with self.lock:
            self.asks += 1
            if self.asks >= self.expected_asks:
                self.all_asked.set()

    @service.expose(CountsAsks())
    @service.arg_spec({"target": str})
    def build(self, target):
        with self.lock:
            self.executions += 1
        assert self.all_asked.wait(WAIT_TIMEOUT), f"{self.asks} of {self.expected_asks} asks came"
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
    """32 children (the Docker fleet plus local ones) ask for one build at once: it runs once, all 32 asks having
    reached the master while it ran."""
    contexts = []
    try:
        for host in fleet.hosts:
            contexts.append(fanout.connect(host.address, **host.connect_options()))
        while len(contexts) < 32:
            contexts.append(fanout.local())
        builder.expected_asks = len(contexts)
        futures = [context.call_async(asker.ask, "tests.Builder", "build", target="app") for context in contexts]
        answers = [future.result(timeout=2 * WAIT_TIMEOUT) for future in futures]
    finally:
        for context in contexts:
            context.close()
    assert answers == ["artifact-app"] * 32
    assert builder.executions == 1 and builder.asks == 32
