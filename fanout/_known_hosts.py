"""known_hosts read line by line, as OpenSSH reads it: a line that cannot be used is skipped, never fatal.

paramiko's loader stops at the first line it cannot decode (an ``@cert-authority``
line, say), so one such line made every host fail. Here each line stands alone:
a malformed one is skipped with a warning naming the file and the line;
``@revoked`` keys are collected, and a host offering one is refused;
``@cert-authority`` lines are skipped with a warning until host certificates
are verified (issue 12).
"""

from __future__ import annotations

import base64
import os
import warnings
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

MAX_FILE_BYTES = 64 * 1024 * 1024  # a known_hosts file larger than this is refused, not read


class KnownHosts:
    """The usable lines of some known_hosts files: ``read`` each file, then ``into`` a client's host keys."""

    def __init__(self) -> None:
        self.entries: list[HostKeyEntry] = []
        self.revoked: set[bytes] = set()  # key blobs marked @revoked: never accepted, whatever else says

    def read(self, path: str | os.PathLike) -> None:
        """Take the usable lines of ``path``; OSError if it cannot be read."""
        path = Path(path)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise OSError(f"{path} is over {MAX_FILE_BYTES} bytes: not a known_hosts file fanout reads")
        text = path.read_bytes().decode("utf-8", "replace")
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            marker, _, rest = line.partition(" ") if line.startswith("@") else ("", "", line)
            if marker == "@cert-authority":
                _skip(path, number, "host certificates are not verified yet, so this CA line is not used")
                continue
            if marker and marker != "@revoked":
                _skip(path, number, f"unknown marker {marker[:40]!r}")
                continue
            try:
                entry = HostKeyEntry.from_line(rest.strip(), number)
            except Exception as exc:  # paramiko raises several kinds, some not SSHException (bad base64)
                _skip(path, number, f"it is not a host key line ({type(exc).__name__})")
                continue
            if entry is None or entry.key is None:
                _skip(path, number, "it is not a host key line, or its key type is not supported")
                continue
            if marker == "@revoked":
                self.revoked.add(entry.key.asbytes())
            else:
                self.entries.append(entry)

    def into(self, host_keys: paramiko.HostKeys) -> None:
        """Add every key read that is not revoked: a host offering a revoked key is then unknown, and refused."""
        for entry in self.entries:
            if entry.key.asbytes() not in self.revoked:
                for hostname in entry.hostnames:
                    host_keys.add(hostname, entry.key.get_name(), entry.key)


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """accept-new: a host not in known_hosts is added to it (appended, one line, as OpenSSH writes it), unless
    its key is revoked."""

    def __init__(self, path: Path, known: KnownHosts) -> None:
        self.path = path
        self.known = known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if key.asbytes() in self.known.revoked:
            raise paramiko.SSHException(f"the host key of {hostname} is marked @revoked in known_hosts")
        client.get_host_keys().add(hostname, key.get_name(), key)
        line = f"{hostname} {key.get_name()} {base64.b64encode(key.asbytes()).decode()}\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            if size and os.pread(f.fileno(), 1, size - 1) != b"\n":
                line = "\n" + line  # the file's last line had no end
            f.write(line.encode())


def _skip(path: Path, number: int, why: str) -> None:
    warnings.warn(f"{path}, line {number}: skipped: {why}", UserWarning, stacklevel=3)
