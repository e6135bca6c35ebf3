"""One root for every error fanout raises, errors told apart by type, and the outcome each means for a host."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import fanout
from fanout import _wire, errors, fleet, service
from fanout.errors import CallTimeout, CommandFailed, ConnectionLost, FanoutError, RemoteError

ROOT = Path(fanout.__file__).resolve().parent

# Exception classes of fanout's that are no FanoutError, each with why no caller ever gets one.
NEVER_RAISED_AT_CALLERS = {
    "fanout.cli.UsageError": "the command line's own: it prints the reason and exits 1",
    "fanout._digests.Changed": "caught by _push, which reports the file that changed",
    "fanout._fetch._Refused": "caught by the fetch, which counts the entry failed in its FetchError",
    "fanout._fetch._Interrupted": "caught by Fleet.fetch, which was interrupted (Ctrl-C)",
    "fanout._host_certificates.CertificateError": "becomes the HostKeyRefused its reason is given to",
    "fanout._known_hosts.HostKeyRefused": "a paramiko refusal inside connect, which raises HostKeyError",
    "fanout._known_hosts._Unusable": "a known_hosts line that is skipped",
    "fanout._read_ahead.PacketTooLarge": "a socket error inside paramiko, which ends the connection: ConnectionLost",
    "fanout._ssh_auth.KeyUnusable": "a paramiko refusal inside connect, which raises AuthenticationFailed",
    "fanout._push_remote.SourceChanged": "raised on hosts: the master gets its text in the push's failures",
    "fanout._tree.TooManyEntries": "raised on hosts (a RemoteError); put turns it into a ValueError",
}


def fanout_modules() -> list:
    """Every module of the package (``fanout.__main__`` aside: importing it runs the command line)."""
    names = ["fanout"] + [f"fanout.{m.name}" for m in pkgutil.iter_modules([str(ROOT)]) if m.name != "__main__"]
    return [importlib.import_module(name) for name in names]


def test_every_exception_class_of_fanout_is_a_fanout_error() -> None:
    found = {
        f"{value.__module__}.{value.__qualname__}": value
        for module in fanout_modules()
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__.startswith("fanout")
    }
    assert len(found) > 25
    strays = sorted(name for name, kind in found.items() if not issubclass(kind, FanoutError))
    assert strays == sorted(NEVER_RAISED_AT_CALLERS)
    exported = [
        getattr(module, name)
        for module in (fanout, errors, service, fleet, importlib.import_module("fanout.inventory"))
        for name in module.__all__
    ]
    exported_errors = [value for value in exported if isinstance(value, type) and issubclass(value, BaseException)]
    assert {service.CallRefused, service.PoolClosed, fanout.ProtocolError, fanout.UnsafeMessage} <= set(exported_errors)
    assert all(issubclass(kind, FanoutError) for kind in exported_errors)


def test_the_wire_raises_fanout_errors_and_one_refused_result_is_no_protocol_error() -> None:
    with pytest.raises(FanoutError):
        _wire.FrameDecoder([_wire.RESULT]).feed(_wire.encode_frame(_wire.CALL, 1, b"x"))
    assert fanout.ProtocolError is _wire.ProtocolError and fanout.FanoutError is _wire.FanoutError
    assert not issubclass(fanout.UnsafeMessage, fanout.ProtocolError)
    assert issubclass(fanout.SerializationError, TypeError) and issubclass(service.CallRefused, FanoutError)


def test_a_remote_error_is_told_by_type_never_by_a_name_alone() -> None:
    def remote(type_name: str) -> RemoteError:
        return RemoteError("web1", type_name, "message", "")

    assert remote("FileNotFoundError").raised(OSError) and remote("FileNotFoundError").raised(FileNotFoundError)
    assert not remote("FileNotFoundError").raised(PermissionError)
    assert remote("fanout.service.CallRefused").raised(service.CallRefused)
    assert remote("fanout.service.CallRefused").raised(FanoutError)
    assert not remote("CallRefused").raised(service.CallRefused)  # a bare name is not fanout's class
    before = set(sys.modules)
    assert not remote("no_such_module_xyz.Boom").raised(Exception)  # never imported to be looked at
    assert not remote("os.system").raised(Exception) and set(sys.modules) == before


def test_no_code_recognises_an_error_by_comparing_names() -> None:
    """``type(e).__name__ == "X"`` breaks silently on a rename or a subclass: types are compared instead."""
    names = {"__name__", "__qualname__", "type_name"}
    compared = re.compile(
        r"(__name__|__qualname__|type_name)\b[^\n]*(==|!=| in )|(==|!=| in )[^\n]*(__name__|__qualname__|type_name)\b"
    )
    found = []
    for path in [*ROOT.glob("*.py"), *(ROOT.parent / "bootstrap").glob("*.py")]:
        text = path.read_text()
        if not compared.search(text):  # parsed only where a comparison may be: the whole tree takes 0.4 s
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            named = any(isinstance(side, ast.Attribute) and side.attr in names for side in sides)
            texts = [side.value for side in sides if isinstance(side, ast.Constant) and isinstance(side.value, str)]
            if named and texts and texts != ["__main__"]:
                found.append(f"{path.name}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ConnectionLost("web1", "the child exited with status 7", exit_status=7, started=True), fleet.FAILED),
        (ConnectionLost("web1", "keepalive: no answer", started=True), fleet.FAILED),
        (ConnectionLost("web1", "the remote process ended with status 127", exit_status=127), fleet.UNREACHABLE),
        (CommandFailed("web1", None, ""), fleet.TIMED_OUT),
        (CommandFailed("web1", 3, ""), fleet.FAILED),
        (CallTimeout("web1: no answer"), fleet.TIMED_OUT),
    ],
)
def test_the_outcome_each_error_means(error: BaseException, status: str) -> None:
    assert fleet.status_of(error) == status


def test_a_dropped_context_counts_timed_out_for_its_other_calls() -> None:
    lost = ConnectionLost("web1", "ended at a call's timeout", started=True)
    lost.__cause__ = CallTimeout("web1: no answer")
    assert fleet.status_of(lost) == fleet.TIMED_OUT


def test_call_each_wants_arguments_for_every_host_and_no_other() -> None:
    hosts = fanout.Fleet({name: {"connection": "local"} for name in ("a", "b", "c")}, echo=False)
    with pytest.raises(ValueError, match=r"no arguments for c; d not in the fleet"):
        hosts.call_each(abs, {"a": ((1,), {}), "b": ((1,), {}), "d": ((1,), {})})
    with pytest.raises(TypeError, match="pair"):
        hosts.call_each(abs, {"a": (1,), "b": ((1,), {}), "c": ((1,), {})})
    with pytest.raises(TypeError, match="a sequence, a mapping"):
        hosts.call_each(abs, {"a": ("1", {}), "b": ((1,), {}), "c": ((1,), {})})
    with pytest.raises(TypeError, match="mapping of host"):
        hosts.call_each(abs, [("a", ((1,), {}))])
    assert hosts.contexts == {} and hosts.failures == {}  # refused before anything was opened
