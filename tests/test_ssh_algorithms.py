"""ssh_config's Ciphers and MACs: OpenSSH's list edits (+, -, ^) on what paramiko offers, and what a real sshd
then agrees to."""

from __future__ import annotations

import warnings

import paramiko
import pytest

import fanout
from fanout import _ssh_algorithms, _ssh_config
from fanout._ssh_config import SSHConfigError

# paramiko added AES-GCM in 3.3; CI also runs the lowest paramiko fanout supports (3.2), which has AES-CTR first.
PARAMIKO = tuple(int(part) for part in paramiko.__version__.split(".")[:2])
DEFAULT_CIPHER = "aes128-gcm@openssh.com" if PARAMIKO >= (3, 3) else "aes128-ctr"
OFFERED = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr", "aes128-cbc")


@pytest.mark.parametrize(
    ("spec", "chosen"),
    [
        (None, OFFERED),
        ("aes256-ctr,aes128-ctr", ("aes256-ctr", "aes128-ctr")),
        ("^aes128-ctr", ("aes128-ctr", *(c for c in OFFERED if c != "aes128-ctr"))),
        ("-*-cbc,aes256-*", ("aes128-gcm@openssh.com", "aes128-ctr")),
        ("+aes128-ctr", OFFERED),  # already offered: nothing to add, order kept
    ],
)
def test_a_list_replaces_or_edits_what_paramiko_offers(spec, chosen) -> None:
    assert _ssh_algorithms.choose("ciphers", spec, OFFERED, "h") == chosen


def test_names_paramiko_lacks_are_left_out_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="h: Ciphers names chacha20-poly1305@openssh.com, which paramiko does not"):
        chosen = _ssh_algorithms.choose("ciphers", "chacha20-poly1305@openssh.com,aes256-ctr", OFFERED, "h")
    assert chosen == ("aes256-ctr",)


@pytest.mark.parametrize("spec", ["chacha20-poly1305@openssh.com", "-*", "-aes*"])
def test_a_list_that_leaves_nothing_usable_is_an_error_naming_what_is_offered(spec) -> None:
    with warnings.catch_warnings(), pytest.raises(SSHConfigError, match="leaves nothing paramiko can use; it offers"):
        warnings.simplefilter("ignore")
        _ssh_algorithms.choose("ciphers", spec, OFFERED, "h")


@pytest.mark.parametrize(
    "line",
    ["Ciphers aes128-ctr,", "Ciphers aes 128", "Ciphers aes128-ctr;rm", "MACs +hmac-*", "Ciphers " + "a," * 3000],
)
def test_a_malformed_list_is_refused_where_it_is_written(tmp_path, line) -> None:
    config = tmp_path / "config"
    config.write_text(line + "\n")
    with pytest.raises(SSHConfigError, match=r"config:1: (Bad SSH2 (cipher|mac) spec|extra arguments)"):
        _ssh_config.resolve("h", config_files=[config])


def test_the_first_value_obtained_wins(tmp_path) -> None:
    config = tmp_path / "config"
    config.write_text("Host h\n  Ciphers aes256-ctr\n  MACs ^hmac-sha2-512\nHost *\n  Ciphers aes128-ctr\n")
    options = _ssh_config.resolve("h", config_files=[config], command_line=[("MACs", "hmac-sha2-256")])
    assert (options.ciphers, options.macs) == ("aes256-ctr", "hmac-sha2-256")


@pytest.mark.fleet
@pytest.mark.parametrize(
    ("ciphers", "macs", "agreed"),
    [
        (None, None, (DEFAULT_CIPHER, None)),  # fanout's default: AES-GCM first, where paramiko has it
        ("aes256-ctr", "hmac-sha2-512-etm@openssh.com", ("aes256-ctr", "hmac-sha2-512-etm@openssh.com")),
        ("-aes*-gcm@openssh.com", "^hmac-sha2-256-etm@openssh.com", ("aes128-ctr", "hmac-sha2-256-etm@openssh.com")),
    ],
)
def test_the_host_agrees_to_what_ssh_config_asks_for(fleet, ciphers, macs, agreed) -> None:
    host = fleet.hosts[0]
    args = [arg for key, value in (("Ciphers", ciphers), ("MACs", macs)) if value for arg in ("-o", f"{key}={value}")]
    with fanout.connect(host.address, **host.connect_options(), ssh_args=args) as context:
        assert context.call(abs, -2) == 2
        transport = context._transport.channel.get_transport()
        cipher, mac = agreed
        assert transport.local_cipher == transport.remote_cipher == cipher
        if mac is not None:  # with AES-GCM there is no separate MAC
            assert transport.local_mac == transport.remote_mac == mac


@pytest.mark.fleet
def test_a_cipher_list_the_host_cannot_meet_fails_that_host_saying_so(fleet) -> None:
    host = fleet.hosts[0]
    with pytest.raises(fanout.Unreachable) as refused:
        fanout.connect(host.address, **host.connect_options(), ssh_args=["-o", "Ciphers=3des-cbc"])
    assert "no acceptable ciphers" in str(refused.value)
    with pytest.raises(SSHConfigError, match="leaves nothing paramiko can use"):
        fanout.connect(host.address, **host.connect_options(), ssh_args=["-o", "Ciphers=-*"])
