"""Stage 1: the remote runtime's kernel, sent by the master right after stage 0.

Stdlib only, unchanged on Python 3.9 to 3.13. The master sends
``fanout/_wire.py`` (framing) followed by this file, with the import of
``fanout._wire`` below and docstrings dropped. It holds what must exist
before the importer works: the frame loop, the import-on-demand finder and the
call dispatcher. Whichever thread reads frames hands the reading on before it
runs a call, so neither a call nor an import waiting on the master blocks it.

It imports nothing a plain call does not need: payloads of plain values travel
as marshal (from the master) and as Python literals (to it), so pickle is
loaded only for richer values, and threads come from _thread. (pickle and
threading each pull in functools and collections: ~6 ms at every start.)
"""

import _frozen_importlib
import _frozen_importlib_external
import _thread
import codecs
import marshal
import os
import sys
import time

from fanout._wire import (
    CALL,
    CLOSE,
    CONFIG,
    ERROR,
    ERROR_TEXT_MAX,
    GET_MODULE,
    HELLO,
    LITERAL_BUDGET,
    LITERAL_MAX,
    LOG,
    MARSHAL,
    MAX_BODY,
    MAX_INT_DIGITS,
    MODULES,
    NAME_MAX,
    OPEN,
    PICKLE,
    PIECE,
    RELAY_MODULES,
    RELAY_RECORD,
    RELAY_REPLY,
    RESULT,
    RESULT_LITERAL_MAX,
    ROUTE,
    SERVICE_CALL,
    SERVICE_REPLY,
    SHUTDOWN,
    STAGE1_MODULE,
    TO_CHILD,
    TO_CONTEXT,
    FrameDecoder,
    Routes,
    encode_frame,
    literal,
)

try:
    from _queue import SimpleQueue
except ImportError:  # not CPython
    from queue import SimpleQueue

_CODE = globals().pop("B", None)  # stage 1 as stage 0 ran it: its code, or (a child's) that code marshalled
_PIN = os.dup(0)  # the protocol's own descriptors; 0, 1 and 2 are handed to user code
_POUT = os.dup(1)
_wlock = _thread.allocate_lock()
_name = "?"
_pickle = None
_BIG = 10**MAX_INT_DIGITS  # ints past this have no literal the master will parse


def pickler():
    """pickle, imported the first time a payload needs it."""
    global _pickle
    if _pickle is None:
        try:
            import _pickle as module  # the C pickler alone: pickle.py also imports re and more
        except ImportError:
            import pickle as module
        _pickle = module
    return _pickle


def _plain(value, budget):
    """True when ``value`` is built only of types a Python literal spells exactly."""
    budget[0] -= 1
    t = type(value)
    if t is str or t is bytes:
        return len(value) <= RESULT_LITERAL_MAX  # a longer one's literal is longer: pickle it unspelled
    if t is bool or value is None:
        return True
    if t is int:
        return -_BIG < value < _BIG
    if t is float:
        return value - value == 0  # not inf, not nan
    if budget[0] < 0:
        return False
    if t is tuple or t is list:
        return all(_plain(v, budget) for v in value)
    if t is dict:
        return all(_plain(k, budget) and _plain(v, budget) for k, v in value.items())
    return False


def dump(value):
    """A payload for the master: a Python literal when that is exact and small, else a pickle."""
    if _plain(value, [LITERAL_BUDGET]):
        data = literal(value)
        if len(data) <= RESULT_LITERAL_MAX + 1:
            return data
    return PICKLE + pickler().dumps(value, 4)


def load(body):
    """A payload from the master: marshal for plain values, pickle for the rest."""
    if body[:1] == MARSHAL:
        return marshal.loads(body[1:])
    return pickler().loads(body[1:])


def send(kind, rid, body=b"", compress=False):
    _write(encode_frame(kind, rid, body, compress))


def _write(data):
    data = memoryview(data)
    with _wlock:
        while data:
            data = data[os.write(_POUT, data) :]


_calling = _thread._local()  # .rid: the call this thread runs, so what it prints is tagged with it


def _log(stream, text, level=20, logger="", more=False):
    """Send a line in pieces of PIECE characters (so each literal fits LITERAL_MAX), each but the last
    marked continued, in one write so no other line comes between; ``more``: the line goes on
    in a later call, so the last piece is continued too. The frame's id is the printing call's."""
    rid = getattr(_calling, "rid", 0)
    frames = []
    for i in range(0, max(len(text), 1), PIECE):
        piece = (stream, logger[:NAME_MAX], level, text[i : i + PIECE], more or i + PIECE < len(text))
        frames.append(encode_frame(LOG, rid, literal(piece)))
    _write(b"".join(frames))


class _Lines:
    """sys.stdout/sys.stderr: complete lines go to the master as they are written; an unfinished
    one past PIECE characters goes on in pieces marked continued, so memory stays bounded."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, stream, fd):
        self.stream, self._fd, self._bufs, self._lock = stream, fd, {}, _thread.allocate_lock()

    def write(self, text):
        rid = getattr(_calling, "rid", 0)  # each call's unfinished line is its own
        with self._lock:
            lines = (self._bufs.pop(rid, "") + text).split("\n")
            rest = lines.pop()
            cut = max(len(rest) - 1, 0) // PIECE * PIECE  # whole pieces, never all of it: flush ends the line
            self._bufs[rid] = rest[cut:]  # popped when the call ends (_run_call flushes)
        for line in lines:
            _log(self.stream, line)
        if cut:
            _log(self.stream, rest[:cut], more=True)
        return len(text)

    def flush(self):
        """Ends this call's unfinished line, and one no call printed (a thread of its own), never another's."""
        for r in {getattr(_calling, "rid", 0), 0}:
            with self._lock:
                rest = self._bufs.pop(r, "")
            if rest:
                _log(self.stream, rest)

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def writable(self):
        return True


def _pump(fd, stream):
    """Forward what subprocesses write to a standard descriptor, line by line; a line past
    PIECE characters goes on in pieces (decoded incrementally, so no character is cut in two). An
    unfinished line is sent as it is after 0.2 s without more (a prompt; EOF never comes)."""
    decode = codecs.getincrementaldecoder("utf-8")("backslashreplace").decode
    rest = ""
    while True:
        if rest:
            from select import select

            if not select([fd], [], [], 0.2)[0]:
                _log(stream, rest)
                rest = ""
                continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        lines = (rest + decode(chunk)).split("\n")
        rest = lines.pop()
        for line in lines:
            _log(stream, line)
        if len(rest) > PIECE:
            _log(stream, rest[:PIECE], more=True)
            rest = rest[PIECE:]


def _redirect_std():
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, stream in ((1, "stdout"), (2, "stderr")):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        _thread.start_new_thread(_pump, (r, stream))
    sys.stdin = open(os.devnull)  # noqa: SIM115  (lives as long as the process)
    sys.stdout = _Lines("stdout", 1)
    sys.stderr = _Lines("stderr", 2)


_log_level = 30


def _forward_logging(logging):
    """Run once ``logging`` is imported: its records go to the master. (Importing it
    eagerly would cost every child several milliseconds at start.)"""
    import traceback

    class Forwarder(logging.Handler):
        def emit(self, record):
            try:
                text = record.getMessage()
                if record.exc_info:
                    text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
                _log("log", text, record.levelno, record.name)
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    root.addHandler(Forwarder())
    root.setLevel(_log_level)


class _ThenHook:
    """Wraps the loader of ``logging`` to attach the forwarder right after it loads."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        _forward_logging(module)


class Importer:
    """Finds modules on the master. First in sys.meta_path for packages the master owns
    (fanout, the user's own); last, as a fallback, for anything this host lacks."""

    def __init__(self):
        self.modules = {}  # name -> (is_pkg, source or None, filename, reason)
        self.roots = set()  # top-level names whose master copy wins
        self.waiting = {}  # request id -> a lock, held until the answer comes
        self.asking = {}  # module name -> that lock, while its request is in flight
        self.lock = _thread.allocate_lock()
        self.next_id = 0

    def add(self, payload):
        records, roots = load(payload)
        with self.lock:
            self.roots.update(roots)
            for name, is_pkg, source, filename, reason in records:
                self.modules[name] = (is_pkg, source, filename, reason)

    def answered(self, rid, payload):
        self.add(payload)
        waiter = self.waiting.pop(rid, None)
        if waiter is not None:
            waiter.release()

    def fetch(self, name):
        """Ask the parent for ``name`` once: threads that need it meanwhile (this child's, or its children's
        through the relay) wait for the same answer, so a module crosses the connection once per host."""
        with self.lock:
            waiter = self.asking.get(name)
            rid = 0 if waiter else self.next_id + 1
            if rid:
                self.next_id = rid
                waiter = self.waiting[rid] = self.asking[name] = _thread.allocate_lock()
                waiter.acquire()
        THREADS.hand_off()  # the answer comes through the reader: never be it while waiting
        if rid:
            send(GET_MODULE, rid, name.encode())
        waiter.acquire()
        waiter.release()  # for the next thread waiting on the same answer
        with self.lock:
            self.modules.setdefault(name, (False, None, None, "the master sent no answer"))
            if self.asking.get(name) is waiter:
                del self.asking[name]

    def spec(self, name, ask_master):
        if name not in self.modules:
            if not ask_master:
                return None
            self.fetch(name)
        is_pkg, source, filename, reason = self.modules[name]
        if source is None:
            raise ModuleNotFoundError("No module named %r on %s: %s" % (name, _name, reason), name=name)
        spec = _frozen_importlib.ModuleSpec(name, self, origin=filename, is_package=is_pkg)
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__spec__.name
        source, filename = self.modules[name][1:3]
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)

    def get_source(self, name):
        return self.modules[name][1]

    def is_package(self, name):
        return self.modules[name][0]


class First:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in IMPORTER.roots:
            return IMPORTER.spec(name, True)
        if name == "logging":
            spec = _frozen_importlib_external.PathFinder.find_spec(name)
            if spec is not None:
                spec.loader = _ThenHook(spec.loader)
            return spec
        return None


class Last:
    def find_spec(self, name, path=None, target=None):
        parent = sys.modules.get(name.rpartition(".")[0])
        if parent is not None and getattr(parent.__spec__, "loader", None) is not IMPORTER:
            return None  # a submodule of a local package: not the master's business
        return IMPORTER.spec(name, True)


IMPORTER = Importer()


_resolved = {}


def _resolve(spec):
    if spec[0] == "ref":
        obj = _resolved.get(spec)
        if obj is None:
            __import__(spec[1])
            obj = sys.modules[spec[1]]
            for part in spec[2].split("."):
                obj = getattr(obj, part)
            _resolved[spec] = obj
        return obj
    return spec[1]  # by value: cloudpickle already rebuilt it


def _type_name(exc):
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else cls.__module__ + "." + cls.__qualname__


def _error(exc):
    """ERROR's literal (type name, message, traceback), within LITERAL_MAX: each text is clipped to
    ERROR_TEXT_MAX characters, or if repr() then spells too many in 10 bytes each, to LITERAL_MAX // 40."""
    import traceback

    texts = (_type_name(exc), str(exc), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)))
    for n in (ERROR_TEXT_MAX, LITERAL_MAX // 40):
        data = literal(tuple(t[:n] + "... [%d characters cut]" % (len(t) - n) if len(t) > n else t for t in texts))
        if len(data) <= LITERAL_MAX + 1:
            return data


def _run_call(rid, body):
    _calling.rid = rid
    try:
        fn_spec, args, kwargs = load(body)
        value = _resolve(fn_spec)(*args, **kwargs)
        try:
            data = dump(value)
        except Exception as exc:
            raise TypeError("the result, of type %s, cannot be pickled: %s" % (type(value).__name__, exc)) from None
        if len(data) > MAX_BODY:  # too big for a frame: this call fails, the child lives on
            raise ValueError(
                "the result is %d bytes, over the limit of %d MiB: return less, or write it to a file"
                % (len(data), MAX_BODY >> 20)
            )
        kind = RESULT
    except BaseException as exc:
        data, kind = _error(exc), ERROR
    sys.stdout.flush()
    sys.stderr.flush()
    _calling.rid = 0
    send(kind, rid, data)


CHECK = 0.002  # s between two looks at a running call (1 ms polling measurably slowed quick calls)
IDLE_CHECK = 0.02  # s between looks while none runs: a call that blocks loses the reading within ~22 ms
DOZE_AFTER = 3  # looks that found no call before the watchdog sleeps until the next one


class Threads:
    """One thread at a time, the leader, reads frames and runs each call it reads itself, so
    a quick call costs no thread hand-off. A call about to wait on the master (an import)
    hands the reading to another thread first; one the watchdog sees running twice,
    CHECK apart, loses it (within ~22 ms). So no call waits long for another, and
    reading goes on."""

    def __init__(self):
        self.tasks = SimpleQueue()  # None: "lead"; (rid, body): run this call
        self.idle = 0
        self.lock = _thread.allocate_lock()
        self.decoder = FrameDecoder(TO_CHILD)
        self.leader = None
        self.running = 0  # serial number of the leader's call in progress; 0 while it reads
        self.serial = 0
        self.doze = _thread.allocate_lock()  # the watchdog sleeps on it while no call comes
        self.doze.acquire()
        self.dozing = False

    def give(self, task):
        with self.lock:
            spawn = self.idle == 0
            if not spawn:
                self.idle -= 1
        self.tasks.put(task)
        if spawn:
            _thread.start_new_thread(self.serve, ())

    def serve(self):
        while True:
            task = self.tasks.get()
            if task is None:
                self.lead()
            else:
                _run_call(*task)
            with self.lock:
                self.idle += 1

    def hand_off(self):
        """Called by a thread about to block: if it leads, another thread leads from now on."""
        with self.lock:
            if self.leader != _thread.get_ident():
                return
            self.leader, self.running = None, 0
        self.give(None)

    def watchdog(self):
        """Looks every CHECK seconds while calls run long enough to be seen, else every IDLE_CHECK
        seconds; dozes after DOZE_AFTER looks without a call. A call seen twice, CHECK apart, loses the
        reading. Each look wakes a thread: one per 2 ms while calls came cost a host 25 to 52 us per call."""
        quiet = 0
        while True:
            if quiet > DOZE_AFTER:
                with self.lock:
                    self.dozing = not self.running
                if self.dozing:
                    self.doze.acquire()
                quiet = 0
            seen = self.running
            time.sleep(CHECK if seen else IDLE_CHECK)
            with self.lock:
                stuck = seen and self.running == seen
                if stuck:
                    self.leader, self.running = None, 0
            if stuck:
                self.give(None)
            quiet = 0 if seen else quiet + 1

    def lead(self):
        me = _thread.get_ident()
        self.leader = me
        while True:
            try:
                data = os.read(_PIN, 65536)  # not more: reads past 128 KiB cost an mmap each (~14 us)
            except OSError:  # a terminal that hung up (su, doas): an end like any other
                data = b""
            if not data:
                _exit()
            calls = []
            for kind, rid, body in self.decoder.feed(data):
                if kind == CALL:
                    calls.append((rid, body))
                elif kind == MODULES:
                    IMPORTER.answered(rid, body)
                elif kind == SERVICE_REPLY:
                    PARENT.answered(rid, body)
                elif kind == TO_CONTEXT:
                    hop = ROUTES.down(rid, body)
                    child = hop and CHILDREN.get(hop[0])
                    if child:  # else it has just ended: its GONE is on its way
                        child.put(hop[1])
                elif kind == OPEN:
                    _open(rid, body)
                elif kind == RELAY_MODULES:  # only ever after an OPEN: the relay is compiled
                    globals()["_relay_modules"](rid, body)
                elif kind == RELAY_REPLY:
                    globals()["_relay_reply"](rid, body)
                elif kind == ROUTE:
                    ROUTES.add(rid, int.from_bytes(body, "big"))
                elif kind == CLOSE:
                    if rid in CHILDREN:
                        CHILDREN[rid].put(None)
                elif kind == CONFIG:
                    _configure(load(body))
                elif kind == SHUTDOWN:
                    _exit()
            if not calls:
                continue
            for call in calls[:-1]:  # a batch: the others must not wait behind the one run here
                self.give(call)
            with self.lock:
                self.serial += 1
                self.running = self.serial
                if self.dozing:
                    self.dozing = False
                    self.doze.release()
            _run_call(*calls[-1])
            with self.lock:
                if self.leader != me:
                    return  # the reading was passed on meanwhile; ``running`` is the new reader's call now
                self.running = 0


THREADS = Threads()


class ParentCalls:
    """Service calls from this child to its parent (``fanout.parent().call_service``).

    The reader only files the raw reply; the waiting thread decodes it, since
    decoding may import, and the reader must never wait on an import."""

    def __init__(self):
        self.waiting = {}  # request id -> [lock held until the reply, reply body]
        self.lock = _thread.allocate_lock()
        self.next_id = 0

    def call(self, service_name, method, kwargs):
        with self.lock:
            self.next_id += 1
            rid = self.next_id
            entry = self.waiting[rid] = [_thread.allocate_lock(), None]
            entry[0].acquire()
        THREADS.hand_off()
        send(SERVICE_CALL, rid, dump((service_name, method, kwargs)))
        entry[0].acquire()
        del self.waiting[rid]
        return load(entry[1])

    def answered(self, rid, body):
        entry = self.waiting.get(rid)
        if entry is not None:
            entry[1] = body
            entry[0].release()


ROUTES = Routes()
CHILDREN = {}  # context id -> _Child: the children this child opened (become), whose frames it relays


def _open(cid, body):
    """OPEN: start a child. The relay (bootstrap/relay.py) came before the first OPEN, as the module record
    RELAY_RECORD: most children never open one, and it would cost each its bytes and ~1 ms to compile."""
    if "_open_child" not in globals():
        exec(compile(IMPORTER.modules[RELAY_RECORD][1], "<relay>", "exec"), globals())
    globals()["_open_child"](cid, body)


PARENT = ParentCalls()
AT_EXIT = []  # callables run as the child ends: fanout._shell ends the commands it started


def _exit():
    """End the child, once the hooks code running here put in AT_EXIT (fanout._parent.at_child_exit) have run."""
    for hook in AT_EXIT:
        try:  # noqa: SIM105  (contextlib would cost every child its import)
            hook()
        except BaseException:
            pass
    os._exit(0)


_module = sys.modules[STAGE1_MODULE] = type(sys)(STAGE1_MODULE)
_module.PARENT = PARENT
_module.AT_EXIT = AT_EXIT


def _configure(config):
    global _name, _log_level
    _name = config["name"]
    _log_level = config["log_level"]
    IMPORTER.roots.update(config["roots"])


def main():
    _redirect_std()
    sys.meta_path.insert(0, First())
    sys.meta_path.append(Last())
    v = sys.version_info
    send(HELLO, 0, literal({"python": (v[0], v[1], v[2]), "pid": os.getpid(), "executable": sys.executable}))
    _thread.start_new_thread(THREADS.watchdog, ())
    THREADS.lead()
    with THREADS.lock:
        THREADS.idle += 1
    THREADS.serve()


main()
