"""The Transport fanout connects with: public-key authentication with one round trip fewer, AES-GCM first, and
replies to global requests counted for the keepalive.

The userauth request follows the service request at once, instead of waiting for
SERVICE_ACCEPT: SSH servers process a connection's packets in order, so the
request is handled right after the service is accepted. RSA keys keep paramiko's
own flow: choosing their signature algorithm needs the server's
``server-sig-algs``, which may not have arrived yet. Everything else (failures,
further methods, partial success) is paramiko's. The parts of paramiko this
overrides are in fanout/_paramiko_compat.py.
"""

from __future__ import annotations

from fanout import _paramiko_compat

# AES-GCM first: one AEAD pass instead of AES-CTR plus a separate HMAC per packet. With AES-NI that is 10%
# less CPU on the master and on the hosts for a bulk push (benchmarks/files.py); every OpenSSH since 6.2
# offers it, and paramiko's other ciphers follow, in paramiko's order, for servers that do not.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


class PipelinedTransport(_paramiko_compat.CountsGlobalReplies):
    """A paramiko Transport whose public-key authentication is pipelined, which prefers AES-GCM, and which counts
    replies to global requests (the keepalive's evidence that the host is there)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        options = self.get_security_options()
        offered = tuple(options.ciphers)
        options.ciphers = tuple(c for c in PREFERRED_CIPHERS if c in offered) + tuple(
            c for c in offered if c not in PREFERRED_CIPHERS
        )

    def auth_publickey(self, username, key, event=None):
        return _paramiko_compat.auth_publickey(self, username, key, event)
