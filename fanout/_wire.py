"""Frames on the wire: the one format master and child both speak.

Sans-IO: bytes in, frames out, no sockets or threads. Stdlib only and valid on
Python 3.9, because this source is also the first part of the remote stage 1.

A frame is a 10-byte header (body length, kind, flags, request id), then the
body. The length is checked against a maximum before anything is allocated.
"""

import struct
import zlib

HEADER = struct.Struct(">IBBI")
MAX_BODY = 64 * 1024 * 1024
FLAG_ZLIB = 1
STAGE1_MODULE = "fanout_stage1"  # stage 1 runs as, and registers itself in sys.modules as, this module
# What the stage 0 of a child started by another child writes first: before it, sudo, su, doas or ssh talk (their
# prompts, their errors); after it, frames. Its parent holds the child's input until it has seen it.
READY_MARK = b"\0fanout-ready\0"
# The name of the module record that carries the relay (bootstrap/relay.py) to a child, before its first OPEN.
RELAY_RECORD = "fanout_stage1_relay"

# Payloads: a tag byte, then the data (docs/protocol.rst, "Payloads").
MARSHAL = b"m"  # to a child: marshal (version 4) of a plain value
PICKLE = b"p"  # either way: pickle (protocol 4); from a child, read through the allow-list
LITERAL = b"r"  # to the master: repr() of a plain value, read by fanout._literal
# The literal limits, all derived from one bound, so that a child never sends what the master refuses.
# LITERAL_MAX: the most bytes of literal (after its tag) the master reads, and so the most any child sends.
# 1 MiB, because a LOG piece of PIECE characters must fit even when repr() spells each character in 10 bytes
# ('\U000e0001'): 640 KiB, with room for its other fields. (Stage 1 once sent results as literals up to
# 256 KiB and clipped error texts to 200,000 characters, which for such characters is 4 MB: the master
# dropped the connection.)
LITERAL_MAX = 1024 * 1024
PIECE = 65536  # characters of a line in one LOG frame: a longer line goes in pieces, each but the last continued
RESULT_LITERAL_MAX = LITERAL_MAX // 4  # a longer result goes as a pickle, which the master reads faster
ERROR_TEXT_MAX = 200_000  # characters kept of an error's type, message and traceback, if the literal then fits
MAX_INT_DIGITS = 4300  # decimal digits of an int in a literal: Python 3.11+'s own str conversion limit, so it prints
NAME_MAX = 512  # characters of a module name (the master refuses a longer one), and kept of a LOG's logger name
GONE_TEXT_MAX = 8192  # characters kept of a child's last words (sudo's, su's) in GONE; the master refuses more
# How many elements of a value a sender checks before it gives up on the plain encoding and pickles it.
LITERAL_BUDGET = 10_000  # a child, before it spells a result as a literal
MARSHAL_BUDGET = 100_000  # the master, before it marshals a value for a child

# Master to child.
CONFIG = 1
CALL = 2
MODULES = 3
SHUTDOWN = 4
SERVICE_REPLY = 5
OPEN = 6  # request: the new child's id; body: marshal (argv, password, use a pty, prompt): start it here
TO_CONTEXT = 7  # request: a context below the receiver; body: bytes of that context's input stream
ROUTE = 8  # request: a context below the receiver; body: the id (4 bytes) of the child it lies behind
CLOSE = 9  # request: a child the receiver opened: end its input, and so the child
# request: a child the receiver opened on another host, or 0; body: marshal (key, records to keep, names, records,
# roots, reply id): keep the records under key, for the receiver's children of that key (a Python version and a
# module policy), then send the child a MODULES frame (reply id) of the kept records named, the records, the roots.
RELAY_MODULES = 10
# request: a child the receiver opened on another host; body: marshal (name, bytes or None, names to forget, head):
# keep the bytes under name (None: kept before), forget those names, send the child head then the named bytes.
RELAY_REPLY = 11
# Child to master.
HELLO = 16
RESULT = 17
ERROR = 18
GET_MODULE = 19
LOG = 20
SERVICE_CALL = 21
FROM_CONTEXT = 22  # request: the context below the sender that sent the frame in the body
GONE = 23  # request: a child the sender opened, which has ended; body: literal (how, text, status)

TO_CHILD = frozenset(
    (CONFIG, CALL, MODULES, SHUTDOWN, SERVICE_REPLY, OPEN, TO_CONTEXT, ROUTE, CLOSE, RELAY_MODULES, RELAY_REPLY)
)
TO_MASTER = frozenset((HELLO, RESULT, ERROR, GET_MODULE, LOG, SERVICE_CALL, FROM_CONTEXT, GONE))
RELAYED = frozenset((TO_CONTEXT, FROM_CONTEXT))  # their body may hold a whole frame: one header more is allowed
KIND_NAMES = {
    CONFIG: "CONFIG",
    CALL: "CALL",
    MODULES: "MODULES",
    SHUTDOWN: "SHUTDOWN",
    HELLO: "HELLO",
    RESULT: "RESULT",
    ERROR: "ERROR",
    GET_MODULE: "GET_MODULE",
    LOG: "LOG",
    SERVICE_CALL: "SERVICE_CALL",
    SERVICE_REPLY: "SERVICE_REPLY",
    OPEN: "OPEN",
    TO_CONTEXT: "TO_CONTEXT",
    ROUTE: "ROUTE",
    CLOSE: "CLOSE",
    RELAY_MODULES: "RELAY_MODULES",
    RELAY_REPLY: "RELAY_REPLY",
    FROM_CONTEXT: "FROM_CONTEXT",
    GONE: "GONE",
}


class FanoutError(Exception):
    """Base of every error fanout raises. Defined here, so that ProtocolError, which the child's stage 1 has
    too, is one; ``fanout/errors.py`` draws the whole tree."""

    cli_text = None  # the message with its advice spelled for the command line (see fanout.errors.advise)


class ProtocolError(FanoutError):
    """The peer sent bytes that are not a valid frame; the stream cannot be trusted after this."""


def pack_body(body, compress):
    """``(flags, body)``: the body as a frame carries it, zlib-compressed when asked and that makes it smaller.
    The master packs a large body before taking a lock the receiving thread may wait on (docs/security.rst)."""
    if compress and len(body) > 256:
        packed = zlib.compress(body, 6)
        if len(packed) < len(body):
            return FLAG_ZLIB, packed
    return 0, body


def encode_frame(kind, request_id, body=b"", compress=False, packed=None):
    """One frame as bytes; ``compress`` zlib-compresses the body when that makes it smaller; ``packed`` is
    :func:`pack_body`'s result, in place of ``body``."""
    flags, body = packed or pack_body(body, compress)
    if len(body) > MAX_BODY + (HEADER.size if kind in RELAYED else 0):
        raise ValueError("frame body of %d bytes exceeds the maximum of %d" % (len(body), MAX_BODY))
    return HEADER.pack(len(body), kind, flags, request_id) + body


def literal(value):
    """A literal payload: ``value``'s repr, which its sender has made fit :data:`LITERAL_MAX`."""
    return LITERAL + repr(value).encode()


def _inflate(body, limit):
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ProtocolError("compressed frame body is corrupt: %s" % exc) from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise ProtocolError("compressed frame body inflates past the maximum of %d bytes" % limit)
    if not inflater.eof:
        raise ProtocolError("compressed frame body is truncated")
    return data


class FrameDecoder:
    """Turn a byte stream into ``(kind, request_id, body)`` frames of the expected kinds.

    After a :class:`ProtocolError` the decoder refuses further input: a stream
    that lost its framing cannot be resynchronised safely.
    """

    def __init__(self, accept, max_body=MAX_BODY):
        self._accept = frozenset(accept)
        self._max_body = max_body
        self._buffer = bytearray()
        self._error = None

    @property
    def buffered(self):
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data):
        """Add bytes; return the frames they complete, in order."""
        if self._error is not None:
            raise ProtocolError("stream already failed: %s" % self._error)
        self._buffer += data
        frames = []
        try:
            while len(self._buffer) >= HEADER.size:
                length, kind, flags, request_id = HEADER.unpack_from(self._buffer)
                self._check_header(length, kind, flags)
                end = HEADER.size + length
                if len(self._buffer) < end:
                    break
                body = bytes(self._buffer[HEADER.size : end])
                del self._buffer[:end]
                if flags & FLAG_ZLIB:
                    body = _inflate(body, self._max_body)
                frames.append((kind, request_id, body))
        except ProtocolError as exc:
            self._error = exc
            self._buffer = bytearray()
            raise
        return frames

    def _check_header(self, length, kind, flags):
        if kind not in self._accept:
            raise ProtocolError("unexpected frame kind %d" % kind)
        if flags & ~FLAG_ZLIB:
            raise ProtocolError("unknown frame flags 0x%02x" % flags)
        if length > self._max_body + (HEADER.size if kind in RELAYED else 0):
            raise ProtocolError("frame body of %d bytes exceeds the maximum of %d" % (length, self._max_body))

    def end_of_stream(self):
        """Call at EOF: a partial frame left over is a truncated message."""
        if self._buffer and self._error is None:
            self._error = ProtocolError("stream ended inside a frame (%d bytes left over)" % len(self._buffer))
            raise self._error


class ChildFrameDecoder(FrameDecoder):
    """Frames from a child, read by the master or by a relay. Children never compress, so a compressed frame is
    refused at its header: a frame then costs what it weighs on the wire, never 1,000 times that once inflated."""

    def _check_header(self, length, kind, flags):
        if flags & FLAG_ZLIB:
            raise ProtocolError("a compressed frame: children send none, so its size on the wire would not bound it")
        FrameDecoder._check_header(self, length, kind, flags)


class Routes:
    """A relay's routing table: for each context below it, the direct child it lies behind. Sans-IO.

    Frames go down by destination (``TO_CONTEXT``) and come up stamped with their source
    (``FROM_CONTEXT``): a child's own frames are wrapped with its id here, and a frame a child
    relays must come from a context that lies behind that very child, so none can pose as another.
    """

    def __init__(self):
        self.via = {}  # context id -> id of the direct child it lies behind (itself, for a direct child)

    def add(self, context, via):
        self.via[context] = via

    def drop(self, child):
        """Forget a direct child and every context behind it."""
        for context in [c for c, v in self.via.items() if v == child]:
            del self.via[context]

    def down(self, context, data):
        """A ``TO_CONTEXT`` frame's next hop: (direct child, bytes for its input), or None if unknown."""
        via = self.via.get(context)
        if via is None:
            return None
        return via, data if via == context else encode_frame(TO_CONTEXT, context, data)

    def up(self, child, kind, request_id, body):
        """A frame from direct child ``child``, as its parent is to get it; ProtocolError for a forgery."""
        if kind == FROM_CONTEXT:
            if request_id == child or self.via.get(request_id) != child:
                raise ProtocolError("context %d relayed a frame from %d, which is not behind it" % (child, request_id))
            return encode_frame(FROM_CONTEXT, request_id, body)
        return encode_frame(FROM_CONTEXT, child, encode_frame(kind, request_id, body))
