"""The master's side of the protocol as a plain object: bytes in, events out (h11 style).

No sockets, no threads. The I/O shell (:mod:`fanout._context`) feeds it what
the transport reads, acts on the events, and writes the bytes it returns.
Everything a child sends is validated here: frame kinds, request ids the
master actually issued, payload shapes, and classes (through the allow-list).
A long line's pieces are joined here too, within :mod:`fanout._output`'s caps,
so what the shell gets is whole lines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from fanout import _codec, _output, _stage, _wire
from fanout.errors import ProtocolError, RemoteError, UnsafeMessage


@dataclass(frozen=True)
class Hello:
    """The child is up: its Python version, process id and interpreter path."""

    python: tuple[int, int, int]
    pid: int
    executable: str


@dataclass(slots=True)
class CallSucceeded:
    call_id: int
    value: Any


@dataclass(slots=True)
class CallFailed:
    call_id: int
    error: Exception


@dataclass(frozen=True)
class ModuleRequested:
    request_id: int
    name: str


@dataclass(frozen=True)
class ServiceRequested:
    """A child calls a service in the master's pool."""

    request_id: int
    service: str
    method: str
    kwargs: dict


@dataclass(frozen=True)
class Output:
    """A line the child printed (stream ``stdout``/``stderr``) or a log record (stream ``log``).

    A line over :data:`fanout._wire.PIECE` characters comes in pieces, ``continued`` on every one but its last;
    :meth:`MasterProtocol.receive` joins them, so its events are whole lines (``continued`` false).
    """

    stream: str
    logger: str
    level: int
    text: str
    continued: bool = False
    call_id: int = 0  # the call that printed it; 0: not printed by a call (a subprocess, a thread of its own)


@dataclass(frozen=True)
class ServiceRefused:
    """A child's service call refused before it reaches any pool (too many in flight): reply at once."""

    request_id: int
    reason: str


@dataclass(frozen=True)
class Relayed:
    """Frames a context below this child sent, passed on by it: for that context's own protocol."""

    context: int
    data: bytes


@dataclass(frozen=True)
class ChildGone:
    """A child this one opened has ended: ``how`` (ended, refused, needs password, protocol), its last
    words before it was ready (sudo's, su's), its exit status, and whether a prompt was answered."""

    context: int
    how: str
    text: str
    status: int | None
    answered: bool


Event = (
    Relayed
    | ChildGone
    | Hello
    | CallSucceeded
    | CallFailed
    | ModuleRequested
    | ServiceRequested
    | ServiceRefused
    | Output
)

# Per child. A child asks for a module from the thread that needs it and waits for the answer, so
# requests in flight are at most its importing threads; service calls likewise, one per calling thread.
MAX_MODULE_REQUESTS_IN_FLIGHT = 256  # past this the child is dropped: it asks without waiting
MAX_SERVICE_CALLS_IN_FLIGHT = 256  # past this each further call is refused at once, and runs nothing
MAX_SERVICE_BYTES_IN_FLIGHT = 64 * 1024 * 1024  # arguments of the calls in flight, on the wire: likewise
JOINED_BYTES = 64 * 1024  # a service reply of bytes up to this size is one joined frame; larger go as parts


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ProtocolError(what)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


class MasterProtocol:
    """One connection's protocol state on the master: pending calls and module requests."""

    def __init__(self, host: str, max_body: int = _wire.MAX_BODY, *, relays: bool = True) -> None:
        self.host = host
        # Only the child at the end of the connection relays frames (it stamps them with their source);
        # a context below it that sent FROM_CONTEXT would have forged a route.
        accept = _wire.TO_MASTER if relays else _wire.TO_MASTER - {_wire.FROM_CONTEXT}
        self._decoder = _wire.ChildFrameDecoder(accept, max_body)
        self.children: set[int] = set()  # contexts this child opened and that have not ended
        self.below: dict[int, bool] = {}  # contexts anywhere below it: True while open, False once ended
        self._call_ids = itertools.count(1)
        self._pending_calls: set[int] = set()
        # Requests the child made and the master has not answered yet: capped, so a child that asks
        # without waiting for answers costs the master a bounded amount (its ids need not come in order).
        self._modules_in_flight: set[int] = set()
        self._services_in_flight: dict[int, int] = {}  # request id -> the size of its arguments on the wire
        self._service_bytes = 0  # their sum
        self._lines = _output.LineAssembler()  # pieces of long lines, until their last arrives
        self.hello: Hello | None = None

    # -- bytes to send -------------------------------------------------------------------

    def bootstrap(self, config: dict[str, Any]) -> bytes:
        """Stage 1 for stage 0 to read, then the child's configuration, ready to send at once."""
        return _stage.stage1_blob() + _wire.encode_frame(_wire.CONFIG, 0, _codec.dumps(config))

    def modules(self, request_id: int, records: list[tuple], roots: list[str]) -> bytes:
        """Module sources for the child: a reply (``request_id`` > 0) or sent ahead (0)."""
        self.modules_sent(request_id)
        return self.modules_frame(request_id, records, roots)

    @staticmethod
    def modules_frame(request_id: int, records: list[tuple], roots: list[str]) -> bytes:
        """The frame of :meth:`modules`, built without touching the protocol's state (so outside its lock)."""
        return _wire.encode_frame(_wire.MODULES, request_id, _codec.dumps((records, roots)), compress=True)

    def modules_sent(self, request_id: int) -> None:
        """The child's request ``request_id`` is answered (by :meth:`modules`, or by its relay from what it keeps)."""
        self._modules_in_flight.discard(request_id)

    def call(self, payload: bytes, packed: tuple[int, bytes] | None = None) -> tuple[int, bytes]:
        """A new call: its id and its frame. ``packed`` is ``_wire.pack_body(payload, True)``, done beforehand."""
        call_id = next(self._call_ids)
        self._pending_calls.add(call_id)
        return call_id, _wire.encode_frame(_wire.CALL, call_id, payload, compress=True, packed=packed)

    def service_reply(self, request_id: int, outcome: tuple) -> bytes | tuple[bytes, bytes | memoryview]:
        """The answer to a child's service call: ``("ok", value)`` or ``("error", type, message, traceback)``."""
        self.service_answered(request_id)
        return self.service_reply_frame(request_id, outcome)

    def service_answered(self, request_id: int) -> None:
        """The child's service call ``request_id`` is answered: its arguments no longer count as in flight."""
        self._service_bytes -= self._services_in_flight.pop(request_id, 0)

    @staticmethod
    def service_reply_frame(request_id: int, outcome: tuple) -> bytes | tuple[bytes, bytes | memoryview]:
        """The frame of :meth:`service_reply`, built without touching the protocol's state (so outside its lock).

        Bytes (file chunks, mostly: bytes, or a read-only view of a mapping) come back as two parts, the
        frame's start and the bytes themselves, so a chunk going to many hosts is not copied for each; nor
        compressed: zlib would cost ~5 ms per 256 KiB per host, wasted on what is compressed already. Other
        values are small, or compress well.
        """
        if outcome[0] == "ok" and type(outcome[1]) in (bytes, memoryview) and len(outcome[1]) > JOINED_BYTES:
            head, data = _codec.ok_bytes_parts(outcome[1])
            size = len(head) + len(data)
            if size > _wire.MAX_BODY:
                raise ValueError(f"a service reply of {size} bytes exceeds a frame's {_wire.MAX_BODY}")
            return _wire.HEADER.pack(size, _wire.SERVICE_REPLY, 0, request_id) + head, data
        raw = outcome[0] == "ok" and isinstance(outcome[1], (bytes, bytearray))
        return _wire.encode_frame(_wire.SERVICE_REPLY, request_id, _codec.dumps(outcome), compress=not raw)

    def shutdown(self) -> bytes:
        return _wire.encode_frame(_wire.SHUTDOWN, 0)

    def open_child(self, context: int, args: tuple) -> bytes:
        """Start child ``context`` here (become): ``args`` are (argv, password, use a pty, prompt)."""
        self.children.add(context)
        return _wire.encode_frame(_wire.OPEN, context, _codec.dumps(args))

    @staticmethod
    def route(context: int, via: int) -> bytes:
        """Tell this child that ``context`` lies behind its child ``via``."""
        return _wire.encode_frame(_wire.ROUTE, context, via.to_bytes(4, "big"))

    @staticmethod
    def close_child(context: int) -> bytes:
        return _wire.encode_frame(_wire.CLOSE, context)

    @staticmethod
    def to_context(context: int, data: bytes) -> bytes:
        """Bytes for the input of ``context``, below this child."""
        return _wire.encode_frame(_wire.TO_CONTEXT, context, data)

    # -- bytes received ------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Decode what the child sent; :class:`ProtocolError` means the connection must be dropped."""
        events = [self._event(kind, request_id, body) for kind, request_id, body in self._decoder.feed(data)]
        return [event for event in events if event is not None]

    @property
    def unfinished_frame(self) -> int:
        """Bytes received of a frame not yet whole."""
        return self._decoder.buffered

    @property
    def calls_in_flight(self) -> int:
        return len(self._pending_calls)

    @property
    def unfinished_output(self) -> int:
        """Bytes (by :func:`fanout._output.weight`) of long lines held until their last piece comes."""
        return self._lines.held

    def end_of_stream(self) -> None:
        """The child's stream ended; complains if it ended inside a frame. Lines left unfinished are dropped."""
        try:
            self._decoder.end_of_stream()
        finally:
            self._lines.clear()

    def _event(self, kind: int, request_id: int, body: bytes) -> Event | None:
        if kind == _wire.FROM_CONTEXT:
            known = self.below.get(request_id)
            _check(known is not None, f"a frame relayed from context {request_id}, which the master never opened")
            return Relayed(request_id, body) if known else None  # late words of a context that has ended
        if kind == _wire.GONE:
            _check(request_id in self.children, f"GONE for context {request_id}, not a child it opened")
            self.children.discard(request_id)
            return self._gone(request_id, self._literal(body))
        if kind in (_wire.RESULT, _wire.ERROR):
            _check(request_id in self._pending_calls, f"{_wire.KIND_NAMES[kind]} for call {request_id}, never made")
            self._pending_calls.discard(request_id)
            return self._outcome(kind, request_id, body)
        if kind == _wire.GET_MODULE:
            _check(request_id not in self._modules_in_flight, f"module request id {request_id} used twice")
            _check(
                len(self._modules_in_flight) < MAX_MODULE_REQUESTS_IN_FLIGHT,
                f"over {MAX_MODULE_REQUESTS_IN_FLIGHT} module requests without waiting for the answers",
            )
            name = self._module_name(body)
            self._modules_in_flight.add(request_id)
            return ModuleRequested(request_id, name)
        if kind == _wire.SERVICE_CALL:
            _check(request_id not in self._services_in_flight, f"service request id {request_id} used twice")
            if len(self._services_in_flight) >= MAX_SERVICE_CALLS_IN_FLIGHT:
                return ServiceRefused(
                    request_id, f"{self.host} has {MAX_SERVICE_CALLS_IN_FLIGHT} service calls in flight already"
                )
            if (
                self._service_bytes + len(body) > MAX_SERVICE_BYTES_IN_FLIGHT
            ):  # refused before it is decoded: it costs nothing
                return ServiceRefused(
                    request_id,
                    f"{self.host}'s service calls in flight would hold over {MAX_SERVICE_BYTES_IN_FLIGHT >> 20} MiB "
                    "of arguments",
                )
            event = self._service_call(request_id, body)
            self._services_in_flight[request_id] = len(body)
            self._service_bytes += len(body)
            return event
        if kind == _wire.HELLO:
            _check(self.hello is None, "second HELLO")
            self.hello = self._hello(self._literal(body))
            return self.hello
        # LOG: the decoder admits no other kind. Lines are tied only to calls still running: an id the
        # master never issued, or whose result came already, would make a buffer nobody claims.
        call_id = request_id if request_id in self._pending_calls else 0
        return self._whole_line(self._output(self._literal(body), call_id))

    def _whole_line(self, piece: Output) -> Output | None:
        """The line ``piece`` ends, joined (by stream and printing call, so one writer's line never lands inside
        another's); None while it goes on."""
        text = self._lines.add((piece.stream, piece.call_id), piece.text, piece.continued)
        if text is None:
            return None
        if text is piece.text:  # the common case: a line in one piece, kept whole
            return piece
        return Output(piece.stream, piece.logger, piece.level, text, False, piece.call_id)

    @staticmethod
    def _literal(body: bytes) -> Any:
        """HELLO, LOG and ERROR are always literals: a pickle there is a protocol violation."""
        _check(body[:1] == _wire.LITERAL, f"payload encoding {body[:1]!r} where a literal belongs")
        try:
            return _codec.loads_literal(body[1:])
        except UnsafeMessage as exc:
            raise ProtocolError(str(exc)) from None

    def _outcome(self, kind: int, call_id: int, body: bytes) -> Event:
        if kind == _wire.ERROR:
            value = self._literal(body)
        else:
            try:
                return CallSucceeded(call_id, _codec.loads_from_child(body))
            except UnsafeMessage as exc:
                return CallFailed(call_id, UnsafeMessage(f"{exc} (host {self.host}, call {call_id})"))
        _check(
            isinstance(value, tuple) and len(value) == 3 and all(_is_text(v) for v in value),
            "malformed ERROR payload",
        )
        type_name, message, traceback = value
        return CallFailed(call_id, RemoteError(self.host, type_name, message, traceback))

    @staticmethod
    def _service_call(request_id: int, body: bytes) -> ServiceRequested:
        try:
            value = _codec.loads_from_child(body)
        except UnsafeMessage as exc:
            raise ProtocolError(f"service call: {exc}") from None
        _check(isinstance(value, tuple) and len(value) == 3, "malformed SERVICE_CALL")
        service, method, kwargs = value
        _check(
            isinstance(service, str) and isinstance(method, str) and isinstance(kwargs, dict),
            "malformed SERVICE_CALL: wants (service name, method name, keyword arguments)",
        )
        _check(all(isinstance(k, str) for k in kwargs), "malformed SERVICE_CALL: argument names must be strings")
        return ServiceRequested(request_id, service, method, kwargs)

    @staticmethod
    def _module_name(body: bytes) -> str:
        try:
            name = body.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError("module name is not ASCII") from None
        _check(
            0 < len(name) <= _wire.NAME_MAX and all(part.isidentifier() for part in name.split(".")), "bad module name"
        )
        return name

    @staticmethod
    def _gone(context: int, value: Any) -> ChildGone:
        _check(isinstance(value, tuple) and len(value) == 4, "malformed GONE")
        how, text, status, answered = value
        _check(how in ("ended", "refused", "needs password", "protocol"), "malformed GONE: how it ended")
        _check(_is_text(text) and len(text) <= _wire.GONE_TEXT_MAX, "malformed GONE: its text")
        _check(status is None or (type(status) is int and -256 <= status <= 256), "malformed GONE: status")
        _check(isinstance(answered, bool), "malformed GONE: answered")
        return ChildGone(context, how, text, status, answered)

    @staticmethod
    def _hello(value: Any) -> Hello:
        _check(isinstance(value, dict), "malformed HELLO")
        python, pid, executable = value.get("python"), value.get("pid"), value.get("executable")
        _check(
            isinstance(python, tuple) and len(python) == 3 and all(isinstance(v, int) for v in python),
            "malformed HELLO: python version",
        )
        _check(isinstance(pid, int) and _is_text(executable), "malformed HELLO: pid or executable")
        return Hello(python, pid, executable)

    @staticmethod
    def _output(value: Any, call_id: int = 0) -> Output:
        """One LOG frame's piece: ``(stream, logger, level, text, continued)``, or the older form without
        ``continued``."""
        _check(isinstance(value, tuple) and len(value) in (4, 5), "malformed LOG")
        stream, logger, level, text = value[:4]
        continued = value[4] if len(value) == 5 else False
        _check(stream in ("stdout", "stderr", "log") and _is_text(logger) and _is_text(text), "malformed LOG")
        _check(isinstance(level, int) and 0 <= level <= 100, "malformed LOG level")
        _check(isinstance(continued, bool), "malformed LOG: continued must be True or False")
        return Output(stream, logger, level, text, continued, call_id)
