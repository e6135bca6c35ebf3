"""A parent calls services in its children: local, and on hosts of Python 3.9, 3.11 and 3.13."""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor

import pytest

import fanout
from fanout.service import CallRefused

SERVICES = """
import threading, time
from fanout import service


class Deny(service.Policy):
    def is_authorized(self, svc, caller):
        return False


class Counter(service.Service):
    def __init__(self):
        self.count = 0
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    @service.expose(service.AllowParents())
    @service.arg_spec({"by": int})
    def add(self, by):
        self.count += by
        return self.count

    @service.expose(service.AllowParents())
    def slow(self, seconds):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(seconds)
        with self.lock:
            self.now -= 1
        return self.most

    @service.expose(service.AllowParents())
    def explode(self):
        raise ValueError("the service broke")

    @service.expose(Deny())
    def never(self):
        return "ran"

    def hidden(self):
        return "ran"


class SerialCounter(Counter):
    invoker_class = service.SerializedInvoker
"""


@pytest.fixture
def services(user_modules):
    s = user_modules({"remote_services_{s}.py": SERVICES})
    return importlib.import_module(f"remote_services_{s}")


def test_a_service_in_the_child_keeps_its_state_between_calls(child, services) -> None:
    assert child.call_service(services.Counter, "add", by=2) == 2
    assert child.call_service(services.Counter.canonical_name(), "add", by=3) == 5  # by name: the same one


@pytest.mark.parametrize(
    "method, kwargs, complaint",
    [
        ("hidden", {}, "no exposed method 'hidden'"),
        ("never", {}, "Deny refuses master"),
        ("add", {"by": "two"}, "argument 'by' of add must be int, not str"),
        ("add", {}, "argument 'by' of add is missing"),
    ],
)
def test_refusals_are_call_refused_on_the_caller_side(child, services, method, kwargs, complaint) -> None:
    with pytest.raises(CallRefused, match=complaint) as info:
        child.call_service(services.Counter, method, **kwargs)
    assert child.name in str(info.value)
    assert child.call_service(services.Counter, "add", by=1) == 1  # nothing ran before


def test_a_service_that_does_not_exist_is_refused(child) -> None:
    with pytest.raises(CallRefused, match=r"cannot activate no_such_module_xyz\.Service"):
        child.call_service("no_such_module_xyz.Service", "m")


def test_the_methods_own_error_keeps_type_and_traceback(child, services) -> None:
    with pytest.raises(fanout.RemoteError) as info:
        child.call_service(services.Counter, "explode")
    assert info.value.type_name == "ValueError" and info.value.message == "the service broke"
    assert 'raise ValueError("the service broke")' in info.value.traceback


def test_invoker_overlaps_and_serialized_invoker_does_not_in_the_child(child, services) -> None:
    with ThreadPoolExecutor(4) as threads:
        concurrent = list(threads.map(lambda _: child.call_service(services.Counter, "slow", seconds=0.3), range(4)))
        serial = list(threads.map(lambda _: child.call_service(services.SerialCounter, "slow", seconds=0.1), range(4)))
    assert max(concurrent) == 4
    assert max(serial) == 1


def test_service_call_function_reaches_the_same_service(child, services) -> None:
    from fanout import service

    assert service.call(child, services.Counter.canonical_name(), "add", by=4) == 4


def test_a_service_class_from_main_is_refused_before_sending(child) -> None:
    from fanout import service

    stray = type("Stray", (service.Service,), {"__module__": "__main__"})
    with pytest.raises(CallRefused, match="defined in __main__"):
        child.call_service(stray, "anything")


@pytest.mark.fleet  # starts processes: out of the fast subset
def test_the_self_contained_example_runs(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "service" / "self_contained.py"
    done = subprocess.run(
        [sys.executable, str(example), "--children", "4"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "4 children, 2 lookups (one per role)" in done.stdout
    assert "child-0 lists" in done.stdout
