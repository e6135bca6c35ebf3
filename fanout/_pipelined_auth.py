"""Public-key authentication with one round trip fewer: the userauth request follows the
service request at once, instead of waiting for SERVICE_ACCEPT.

SSH servers process a connection's packets in order, so the request is handled right
after the service is accepted. RSA keys keep paramiko's own flow: choosing their
signature algorithm needs the server's ``server-sig-algs``, which may not have arrived
yet. Everything else (failures, further methods, partial success) is paramiko's.
"""

from __future__ import annotations

import threading

import paramiko

from fanout._paramiko_internals import AuthHandler, Message  # checked there: this subclass overrides private methods


class _PipelinedAuthHandler(AuthHandler):
    _accepts_to_skip = 0

    def _request_auth(self) -> None:
        pipelined = self.auth_method == "publickey" and "rsa" not in self.private_key.get_name()
        if pipelined:
            # Counted before the service request leaves: its SERVICE_ACCEPT can come back, on
            # paramiko's thread, before this one runs another line, and must then be skipped.
            self._accepts_to_skip += 1
        super()._request_auth()
        if pipelined:
            accepted = Message()
            accepted.add_string("ssh-userauth")
            accepted.rewind()
            super()._parse_service_accept(accepted)  # sends the signed userauth request now

    def _parse_service_accept(self, m: Message) -> None:
        if self._accepts_to_skip:
            self._accepts_to_skip -= 1  # the request already went out behind the service request
            return
        super()._parse_service_accept(m)


# AES-GCM first: one AEAD pass instead of AES-CTR plus a separate HMAC per packet. With AES-NI that is 10%
# less CPU on the master and on the hosts for a bulk push (benchmarks/files.py); every OpenSSH since 6.2
# offers it, and paramiko's other ciphers follow, in paramiko's order, for servers that do not.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


class PipelinedTransport(paramiko.Transport):
    """A paramiko Transport whose public-key authentication is pipelined, which prefers AES-GCM, and which counts
    replies to global requests (the keepalive's evidence that the host is there)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        options = self.get_security_options()
        offered = tuple(options.ciphers)
        options.ciphers = tuple(c for c in PREFERRED_CIPHERS if c in offered) + tuple(
            c for c in offered if c not in PREFERRED_CIPHERS
        )

    global_replies = 0  # replies to global requests seen: what the keepalive (fanout/_keepalive.py) counts

    def _parse_request_success(self, m: Message) -> None:
        self.global_replies += 1
        super()._parse_request_success(m)

    def _parse_request_failure(self, m: Message) -> None:
        self.global_replies += 1  # sshd answers keepalive@openssh.com with a failure: an answer all the same
        super()._parse_request_failure(m)

    def auth_publickey(self, username, key, event=None):
        if not self.active or not self.initial_kex_done:
            raise paramiko.SSHException("No existing session")
        my_event = event if event is not None else threading.Event()
        self.auth_handler = _PipelinedAuthHandler(self)
        self.auth_handler.auth_publickey(username, key, my_event)
        if event is not None:
            return []
        return self.auth_handler.wait_for_response(my_event)
