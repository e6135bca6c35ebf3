"""fanout.connect's options as one ConnectOptions: every option checked where it is made, unknown ones named."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import fanout
from fanout._connect_options import OPTION_NAMES, ConnectOptions
from fanout._ssh import connect


def test_connect_takes_each_option_as_a_keyword_with_the_same_default() -> None:
    parameters = inspect.signature(connect).parameters
    keywords = {name: p.default for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert tuple(keywords) == OPTION_NAMES  # IDEs and help() show every option, in the dataclass's order
    assert ConnectOptions(**keywords) == ConnectOptions()


def test_every_option_has_a_docstring() -> None:
    source = inspect.getsource(ConnectOptions)
    for name in OPTION_NAMES:
        declaration = source.split(f"\n    {name}: ", 1)[1]
        assert declaration.split("\n", 2)[1].strip().startswith('"""'), name


BAD = [
    ("port", 0, "port must be a number from 1 to 65535"),
    ("port", 65536, "port must be a number from 1 to 65535"),
    ("port", "22", "port must be a number"),
    ("port", True, "port must be a number"),
    ("user", "", "user must be a non-empty string"),
    ("user", 1000, "user must be a non-empty string"),
    ("identity_file", 7, "identity_file must be a path or a sequence of paths"),
    ("identity_file", ["~/.ssh/id", 7], r"identity_file must be a path \(str or os.PathLike\), not 7"),
    ("identity_file", "", "identity_file must be a non-empty path"),
    ("password", b"secret", "password must be a string"),
    ("passphrase", 1234, "passphrase must be a string, a mapping"),
    ("passphrase", {"~/.ssh/id": 1234}, "passphrase must be a string, a mapping of key path to string"),
    ("python", "", "python must be a non-empty string"),
    ("python", None, "python must be a non-empty string, not None"),
    ("known_hosts", 3, "known_hosts must be a path"),
    ("host_key_policy", "yes", r"host_key_policy must be one of \('strict', 'accept-new', 'off'\)"),
    ("connect_timeout", 0, "connect_timeout must be a finite number of seconds above 0"),
    ("connect_timeout", float("inf"), "connect_timeout must be a finite number"),
    ("connect_timeout", "10", "connect_timeout must be a number of seconds"),
    ("ssh_config", 0, "ssh_config must be a path"),
    ("ssh_args", ["-p", 22], "ssh_args must be a string or a sequence of strings"),
    ("ssh_args", b"-p 22", "ssh_args must be a string or a sequence of strings"),
    ("jump", 22, "jump must be a string"),
    ("jump_identity_file", ["a", "b"], "jump_identity_file must be a path"),
    ("forward_agent", "yes", "forward_agent must be True, False or None"),
    ("keepalive", -1, "keepalive must be a number of seconds, 0 for none, or None"),
    ("keepalive", float("nan"), "keepalive must be a number of seconds, 0 for none"),
    ("keepalive", float("inf"), "keepalive must be a finite number"),
    ("keepalive", False, "keepalive must be a number of seconds, 0 for none"),
    ("keepalive", 31 * 24 * 3600, "keepalive of 2.6784e[+]06 s is over the maximum"),
    ("name", "", "name must be a non-empty string"),
    ("allow_modules", "os", "allow_modules"),
    ("deny_modules", ["not a module"], "deny_modules"),
    ("via", "bastion", r"via must be a fanout.Context \(the relay\) or None, not 'bastion'"),
]


def test_every_option_is_checked() -> None:
    assert {name for name, _, _ in BAD} == set(OPTION_NAMES)


@pytest.mark.parametrize(("option", "value", "message"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_a_bad_value_is_refused_naming_the_option(option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectOptions(**{option: value})
    with pytest.raises(ValueError, match=message):  # connect() checks before it connects: no host is needed
        fanout.connect("never.invalid", **{option: value})


def test_good_values_are_kept_in_one_form() -> None:
    options = ConnectOptions(
        identity_file=Path("/keys/id"),
        known_hosts=Path("/kh"),
        ssh_config=Path("/cfg"),
        ssh_args=["-p", "22"],
        jump_identity_file=Path("/keys/jump"),
        host_key_policy="ignore",
        connect_timeout=5,
        keepalive=0,
        allow_modules=(m for m in ["mypkg"]),
    )
    assert options.identity_file == ("/keys/id",)
    assert (options.known_hosts, options.ssh_config, options.jump_identity_file) == ("/kh", "/cfg", "/keys/jump")
    assert options.ssh_args == ("-p", "22")
    assert options.host_key_policy == "off"  # "ignore" is the old name of "off"
    assert (options.connect_timeout, options.keepalive) == (5.0, 0)
    assert options.allow_modules == ("mypkg",)
    assert ConnectOptions(identity_file=["/a", Path("/b")]).identity_file == ("/a", "/b")
    assert ConnectOptions(**dataclasses.asdict(options)) == options  # a checked value checks again unchanged


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ConnectOptions().port = 22  # type: ignore[misc]


def test_an_unknown_option_is_a_type_error_with_the_closest_name() -> None:
    with pytest.raises(TypeError, match=r"connect\(\) got an unknown option 'prot'; did you mean 'port'\?"):
        fanout.connect("never.invalid", prot=22)
    with pytest.raises(TypeError, match=r"got an unknown option 'identityfile'; did you mean 'identity_file'\?"):
        ConnectOptions.from_keywords({"identityfile": "~/.ssh/id"})
    with pytest.raises(TypeError, match=r"unknown option 'zzz'; the options are port, user, identity_file"):
        ConnectOptions.from_keywords({"zzz": 1})


def test_a_fleet_host_with_a_misspelt_option_fails_naming_it() -> None:
    with fanout.Fleet({"web1": {"host": "never.invalid", "conect_timeout": 5}}, echo=False) as fleet:
        failure = fleet.failures["web1"]
    assert isinstance(failure, fanout.Unreachable)
    assert "unknown option 'conect_timeout'; did you mean 'connect_timeout'?" in str(failure)
