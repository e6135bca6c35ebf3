"""What a hostile child's stage 1 has besides fanout/_wire.py: just enough of the protocol to attack the master
(tests/hostile/conftest.py runs it; test_hostile.py checks the pieces on their own)."""

from __future__ import annotations

HELPERS = r"""
import os, sys, time
fin, fout = os.dup(0), os.dup(1)

def send(data):
    while data:
        data = data[os.write(fout, data):]

def hello():
    v = sys.version_info
    info = {"python": (v[0], v[1], v[2]), "pid": os.getpid(), "executable": sys.executable}
    send(encode_frame(HELLO, 0, b"r" + repr(info).encode()))

def frames():
    decoder = FrameDecoder(TO_CHILD)
    while True:
        data = os.read(fin, 65536)
        if not data:
            os._exit(0)
        for frame in decoder.feed(data):
            yield frame

def calls():
    for kind, rid, body in frames():
        if kind == CALL:
            yield rid
        elif kind == SHUTDOWN:
            os._exit(0)

def literal(value):
    return b"r" + repr(value).encode()

def log(text, rid=0, stream="stdout", continued=False):
    return encode_frame(LOG, rid, literal((stream, "", 20, text, continued)))
"""
