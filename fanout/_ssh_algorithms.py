"""ssh_config's ``Ciphers`` and ``MACs``, applied to a paramiko transport as OpenSSH applies them to its own list.

A value is a comma-separated list that replaces the default, or edits it: ``+``
appends, ``-`` removes (``*`` and ``?`` allowed), ``^`` puts the names first.
The default is what fanout offers without it (AES-GCM first, see
docs/design.rst). A name OpenSSH knows but paramiko does not (chacha20-poly1305,
umac-64) is left out with a warning; a list that leaves nothing paramiko can
use is an error, naming what paramiko offers.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Sequence

import paramiko

from fanout._ssh_config import SSHConfigError

KEYWORDS = {"ciphers": "Ciphers", "macs": "MACs"}


def choose(keyword: str, spec: str | None, default: Sequence[str], host: str) -> tuple[str, ...]:
    """The names to offer for ``keyword``: ``default`` (everything paramiko offers) edited or replaced by ``spec``
    (None: ``default``); ``spec``'s form was checked when ssh_config was read."""
    default = tuple(default)
    if spec is None:
        return default
    mode, names = (spec[0], spec[1:].split(",")) if spec[:1] in "+-^" else ("", spec.split(","))
    supported = set(default)  # what this paramiko offers: the default is all of it, reordered
    unknown = [] if mode == "-" else [n for n in names if n not in supported]
    usable = [n for n in dict.fromkeys(names) if n in supported]
    if mode == "-":
        chosen = tuple(n for n in default if not any(fnmatch.fnmatchcase(n, pattern) for pattern in names))
    elif mode == "+":
        chosen = default  # the default is everything paramiko has: "+" can add only names it lacks (warned)
    elif mode == "^":
        chosen = (*usable, *(n for n in default if n not in usable))
    else:
        chosen = tuple(usable)
    if not chosen:
        raise SSHConfigError(
            f"{host}: {KEYWORDS[keyword]} {spec} leaves nothing paramiko can use; it offers {', '.join(default)}"
        )
    if unknown:
        warnings.warn(
            f"{host}: {KEYWORDS[keyword]} names {', '.join(unknown)}, which paramiko does not have: left out",
            UserWarning,
            stacklevel=2,
        )
    return chosen


def apply(transport: paramiko.Transport, ciphers: str | None, macs: str | None, host: str) -> None:
    """Offer ``transport``'s ciphers and MACs as ssh_config asks (a new transport, before its handshake)."""
    options = transport.get_security_options()
    if ciphers is not None:
        options.ciphers = choose("ciphers", ciphers, options.ciphers, host)
    if macs is not None:
        options.digests = choose("macs", macs, options.digests, host)
