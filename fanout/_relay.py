"""Contexts reached through other contexts: the transport of a become child, or of a host reached by ``via=``, is
its parent.

Frames for such a child go down the connection wrapped in ``TO_CONTEXT`` with
its id; its frames come up in ``FROM_CONTEXT``, stamped by its parent, and the
connection's receiving thread hands them to the child's own
:class:`~fanout._protocol.MasterProtocol`, with the same limits as any child's.
Ids are numbered per connection; the child at the end of the connection is 0.

A plan says how the parent starts the child: :class:`fanout._become.Plan` (sudo,
su, doas: the same host, the same Python) or :class:`fanout._via.Hop` (the
parent's ``ssh`` to another host). Both have ``open_args()``, ``other_host``,
``needs_pty_retry(text)`` and ``failure(...)``.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fanout import _stage, _wire
from fanout._protocol import ChildGone
from fanout.errors import ConnectionLost

if TYPE_CHECKING:
    from fanout._context import Context

# Hosts a relay's child may be logging in to at once (via=): its ssh clients use one forwarded agent connection each
# (fanout._agent_forward.MAX_CHANNELS: 8 per host), and the sshds behind it refuse past MaxStartups (10).
MAX_LOGINS_BEYOND = 6
RELAY_KEPT_BYTES = 32 * 1024 * 1024  # bytes of replies (file chunks) a relay keeps for the hosts beyond it
CLOSE_LOCK_WAIT = 1.0  # seconds close() waits for the connection's send lock before it gives the child up
MAX_REPLAY = 16 * 1024 * 1024  # bytes sent to a child before it is ready, kept to send again on a terminal


class Tree:
    """The contexts of one connection: ids, and the transport of each context below the connection's child."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.transports: dict[int, RelayTransport] = {}

    def new_id(self) -> int:
        return next(self._ids)


class Kept:
    """What a context's child holds for the children it opened, as the master knows it; changed under the
    connection's send lock, in the order of the frames that make the child hold it, so both sides agree."""

    def __init__(self) -> None:
        self.relay_loaded = False  # the relay's code (sent before its first OPEN)
        self.stage1 = False  # the master's stage 1, for the hosts beyond it (with its first OPEN of one)
        self.logins = threading.BoundedSemaphore(MAX_LOGINS_BEYOND)  # see fanout._via
        self._modules: dict[str, set[str]] = {}  # key -> module names held (RELAY_MODULES)
        self._replies: collections.OrderedDict[str, int] = collections.OrderedDict()  # name -> size, oldest first
        self._reply_bytes = 0

    def modules(self, key: str, records: list[tuple]) -> tuple[list[tuple], list[str], list[tuple]]:
        """For records going to a host of ``key`` beyond the child: (records to send it to keep, every name the
        host is to get, refusals, which go as they are: a refusal may be that host's alone)."""
        held = self._modules.setdefault(key, set())
        keep, names, refusals = [], [], []
        for record in records:
            if record[2] is None:  # no source: a refusal
                refusals.append(record)
                continue
            names.append(record[0])
            if record[0] not in held:
                keep.append(record)
                held.add(record[0])
        return keep, names, refusals

    def reply(self, name: str, size: int) -> tuple[bool, list[str]]:
        """For a named reply of ``size`` bytes to a host beyond the child: (whether to send the bytes, which the
        child then holds; names it is to forget first, the oldest, to stay within RELAY_KEPT_BYTES)."""
        if name in self._replies:
            self._replies.move_to_end(name)
            return False, []
        forget = []
        while self._replies and self._reply_bytes + size > RELAY_KEPT_BYTES:
            old, old_size = self._replies.popitem(last=False)
            self._reply_bytes -= old_size
            forget.append(old)
        self._replies[name] = size  # a chunk is at most fanout._push.MAX_CHUNK, half the bound
        self._reply_bytes += size
        return True, forget


def module_key(sender: Any) -> str:
    """What decides the modules the master sends a host (its ModuleSender): its Python version, and a digest of its
    module policy. Hosts beyond a relay share what it holds only with hosts of the same key."""
    python = sender.child_python
    policy = repr((sender.policy.allow, sender.policy.deny)).encode()
    return "%s %s" % ("%d.%d" % tuple(python[:2]) if python else "?", hashlib.sha256(policy).hexdigest()[:16])


class RelayTransport:
    """The way to a child opened by another context: bytes down through the connection, events up from it."""

    # The parent sends the child its stage 1: a become child its own code (the same Python); one on another host
    # the master's, which crosses the connection once per parent, with its first such OPEN.
    sends_stage1 = False

    def __init__(self, parent: Context, plan: Any, settled: Callable[[], None] | None = None) -> None:
        self.parent = parent
        self._settled = settled  # called once, when the child is ready or has ended
        self.root: Context = parent._root
        self.plan = plan
        self.id = self.root._tree.new_id()
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[], None] | None = None
        self._ended = threading.Event()
        self._end_text = "the child ended"
        self.end_error: BaseException | None = None
        self.exit_status: int | None = None  # the child's, as its parent reported it in GONE
        self._replay: list[bytes] | None = []  # what was sent before the child was ready, for a retry on a terminal
        self._replay_size = 0
        self._retried = False
        self._ready = False

    # -- Transport -------------------------------------------------------------------------

    def start(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Register with the connection and ask the parent to start the child (the ROUTE frames first)."""
        self._on_data, self._on_end = on_data, on_end
        root = self.root
        with root._send_lock:
            root._raise_if_lost()
            self.parent._raise_if_lost()
            root._tree.transports[self.id] = self
            root._protocol.below[self.id] = True
            frames = []
            kept = self.parent._kept
            if not kept.relay_loaded:  # its first child: the relay's code goes first
                record = (_wire.RELAY_RECORD, False, _stage.relay_source(), "<relay>", None)
                frames.append(self.parent._addressed(self.parent._protocol.modules(0, [record], [])))
                kept.relay_loaded = True
            path = self.parent._path()  # the contexts from the connection's child down to the parent
            for relay, next_hop in itertools.pairwise(path):
                frames.append(relay._addressed(relay._protocol.route(self.id, next_hop._relay_id())))
            args = self.plan.open_args()
            if self.plan.other_host and not kept.stage1:
                args = (*args[:4], _stage.stage1_blob(), *args[5:])  # kept by the parent for every host beyond it
                kept.stage1 = True
            frames.append(self.parent._addressed(self.parent._protocol.open_child(self.id, args)))
            root._write(b"".join(frames))

    def send(self, data: bytes | memoryview) -> None:
        """Called with the connection's send lock held (a relayed context shares it)."""
        data = bytes(data)  # a piece may be a view of a chunk other hosts are sent too: the envelope holds a copy
        if self._replay is not None:
            self._replay_size += len(data)
            self._replay.append(data)
            if self._replay_size > MAX_REPLAY:  # too much to keep: no retry on a terminal, sudo's refusal stands
                self._replay, self._retried = None, True
        self.root._write(self.root._protocol.to_context(self.id, data))

    def close(self) -> None:
        """Ask the parent to end the child's input; the child's GONE ends this transport."""
        if self._ended.is_set():
            return
        if not self.root._send_lock.acquire(timeout=CLOSE_LOCK_WAIT):  # a send stuck on a host that stopped reading
            self.ended("closed while its connection could not be written to")
            return
        try:
            self.parent._raise_if_lost()
            self.root._write(self.parent._addressed(self.parent._protocol.close_child(self.id)))
        except ConnectionLost:
            pass
        finally:
            self.root._send_lock.release()
        # Ended now: a relay that never answers costs close() nothing. Its GONE, if it comes, is still accepted once.
        self.ended("the context was closed")

    def describe_end(self) -> str:
        return self._end_text

    # -- events, on the connection's receiving thread -------------------------------------------

    def deliver(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)

    def ready(self) -> None:
        """The child said hello: nothing more to replay."""
        self._replay, self._ready = None, True
        self.settle()

    def settle(self) -> None:
        """The child is ready, has ended, or will never start: run ``settled`` (once)."""
        settled, self._settled = self._settled, None
        if settled is not None:
            settled()

    def gone(self, event: ChildGone) -> None:
        """The parent reports the child ended: how, and if before it was ready, why."""
        if not self._ready and not self._retried and event.how == "ended" and self.plan.needs_pty_retry(event.text):
            self._retry_on_terminal()
            return
        host, login = self.parent._host.name, self.parent.user
        error = self.plan.failure(event.how, event.text, event.status, host, login)
        if error is not None and not self._ready:
            self.end_error = error
            self.ended(str(error))
        elif event.how == "protocol":
            self.ended(f"it sent its parent an invalid message ({event.text})")
        else:
            self.exit_status = event.status
            self.ended(f"the child ended with status {event.status}")

    def ended(self, reason: str) -> None:
        if self._ended.is_set():
            return
        self._end_text = reason
        self._ended.set()
        self.settle()
        self.root._tree.transports.pop(self.id, None)
        self.root._protocol.below[self.id] = False
        if self._on_end is not None:
            self._on_end()

    def _retry_on_terminal(self) -> None:
        """sudo's requiretty: start it again on a terminal, and send again what it was sent. Not on the receiving
        thread: the send lock may be held by a sender waiting on this very connection."""
        self._retried = True

        def again() -> None:
            try:
                with self.root._send_lock:  # what was sent so far, taken under the lock: no call slips between
                    replay, self._replay, self._replay_size = b"".join(self._replay or ()), [], 0
                    self.parent._protocol.children.add(self.id)
                    frame = self.parent._protocol.open_child(self.id, self.plan.open_args(use_pty=True))
                    self.root._write(self.parent._addressed(frame) + self.root._protocol.to_context(self.id, replay))
            except ConnectionLost:
                self.ended("its parent's connection was lost")

        threading.Thread(target=again, name=f"fanout-become-{self.root.name}", daemon=True).start()
