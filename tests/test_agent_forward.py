"""Which local agent socket is forwarded, as ForwardAgent, IdentityAgent and $SSH_AUTH_SOCK say."""

from __future__ import annotations

import pytest

from fanout._agent_forward import agent_socket


def test_the_socket_forwarded(monkeypatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/agent.sock")
    monkeypatch.setenv("OTHER_AGENT", "/run/other.sock")
    monkeypatch.setenv("HOME", "/home/me")
    assert agent_socket(False, None, "web1") is None
    assert agent_socket(True, None, "web1") == "/run/user/agent.sock"
    assert agent_socket(True, "/run/identity.sock", "web1") == "/run/identity.sock"  # IdentityAgent's
    assert agent_socket(True, "none", "web1") == "/run/user/agent.sock"
    assert agent_socket("$OTHER_AGENT", None, "web1") == "/run/other.sock"  # ForwardAgent $VAR
    assert agent_socket("~/fwd.sock", "/run/identity.sock", "web1") == "/home/me/fwd.sock"  # ForwardAgent path


def test_forwarding_with_no_agent_warns_and_forwards_nothing(monkeypatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.warns(UserWarning, match=r"^web1: agent forwarding was asked for, but there is no agent"):
        assert agent_socket(True, None, "web1") is None
    with pytest.warns(UserWarning, match="no agent to forward"):
        assert agent_socket("$UNSET_AGENT_VARIABLE", None, "web1") is None
