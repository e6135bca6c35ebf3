"""Run a shell command in a child: output streamed line by line as it comes, and kept whole for the result.

Runs on the hosts, so it keeps to what Python 3.9 reads.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading


def _drain(pipe, stream, lines, echo):
    for raw in iter(pipe.readline, b""):
        line = raw.decode("utf-8", "backslashreplace")
        lines.append(line)
        if echo:
            stream.write(line if line.endswith("\n") else line + "\n")
            stream.flush()
    pipe.close()


def run(command, timeout=None, echo=True, cwd=None, env=None):
    """``command`` through ``/bin/sh -c``; returns (rc, stdout, stderr, timed_out); rc is None when timed out."""
    environment = None
    if env:
        environment = dict(os.environ)
        environment.update(env)
    process = subprocess.Popen(
        command,
        shell=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=environment,
        start_new_session=True,  # its own process group: a timeout ends everything it started
    )
    out, err = [], []
    readers = [
        threading.Thread(target=_drain, args=(process.stdout, sys.stdout, out, echo), daemon=True),
        threading.Thread(target=_drain, args=(process.stderr, sys.stderr, err, echo), daemon=True),
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for reader in readers:
        reader.join(5 if timed_out else None)  # a killed command's orphans may hold the pipes open
    return (None if timed_out else process.returncode, "".join(out), "".join(err), timed_out)
