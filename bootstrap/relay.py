"""The relay: how a child starts children of its own (become, or ssh to another host) and passes their frames on.

Part of stage 1, sent as a string and compiled into stage 1's globals the first time a child
opens a child (``_open`` in stage1.py): most children never do. Stdlib only, Python 3.9 to 3.13.
It uses stage 1's names (send, _write, IMPORTER, load, ROUTES, CHILDREN, the frame kinds).
"""
# ruff: noqa: F821  (the names above are stage 1's: this runs in its globals)

import marshal
import os
import sys
import zlib

MAX_FETCHES = 64  # a child's module requests its parent asks about at once: one per importing thread is plenty
_MASTER_STAGE1 = b""  # stage 1 as the master sends it, for children on other hosts (their Python may differ)
KEPT = {}  # key -> {module name: record}: what the master sent once for the children on other hosts of that key
REPLIES = {}  # name -> bytes: service replies (file chunks) kept for the hosts behind this child
PACKED_MAX = 64  # MODULES bodies kept packed (the same preload goes to every child behind this one)
_PACKED = {}


def _stage1_code():
    """Stage 1 compiled, for children of this one: they run this very interpreter, so marshalled code fits,
    and they skip inflating and compiling it (~5 ms)."""
    global _CODE
    if type(_CODE) is not bytes:
        _CODE = marshal.dumps(_CODE)
    return _CODE


def _stage0():
    """Stage 0 for a child of this one: it says it is ready to read stage 1, which this child sends."""
    n = len(_stage1_code())
    return (
        "import os,marshal\nos.write(1,%r)\nb=b''\n"
        "while len(b)<%d:b+=os.read(0,%d-len(b))or os._exit(1)\n"
        'exec(marshal.loads(b),{"__name__":%r,"B":b})' % (READY_MARK, n, n, STAGE1_MODULE)
    )


def _spawn(argv, use_pty):
    """Start ``argv`` in a session of its own, its output and errors on one pipe (or a raw terminal)."""
    if use_pty:
        import fcntl  # noqa: F401  (imported before fork: a forked child must not import)
        import termios
        import tty

        theirs, ours = os.openpty()[::-1]
        tty.setraw(theirs)
        fds = (theirs, theirs, theirs)
        rfd = wfd = ours
    else:
        r0, wfd = os.pipe()
        rfd, w1 = os.pipe()
        fds = (r0, w1, w1)
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            for i, fd in enumerate(fds):
                os.dup2(fd, i)
            if use_pty:
                sys.modules["fcntl"].ioctl(0, termios.TIOCSCTTY, 0)
            os.execvp(argv[0], argv)
        except BaseException as exc:
            os.write(2, ("fanout: cannot run %s: %s\n" % (argv[0], exc)).encode())
        os._exit(127)
    for fd in set(fds):
        os.close(fd)
    return pid, rfd, wfd


class _Child:
    """A child this one opened: it answers a become's password prompt, then relays the child's
    frames up and its input down. A become child's module requests it answers itself; those of a
    child on another host (``other_host``: reached by ssh, perhaps another Python) go up to the
    master, which also sends that child its stage 1. The writer thread owns the input's
    descriptor, the reader the output's, and each closes its own."""

    def __init__(self, cid, argv, password, use_pty, prompt, other_host=False, files=None):
        global _MASTER_STAGE1
        self.cid, self.password, self.prompt, self.pty = cid, password, prompt, use_pty
        if type(other_host) is bytes:  # the master's stage 1, with the first OPEN of a child on another host: kept
            _MASTER_STAGE1 = other_host
        self.other = bool(other_host)
        self.files = []  # temporary files the command reads (ssh's known_hosts): removed when it ends
        for mark, text in (files or {}).items():
            argv = [a.replace(mark, _temporary_file(text, self.files)) for a in argv]
        python = [sys.executable, "-c", _stage0()]
        shell = " ".join("'" + a.replace("'", "'\\''") + "'" for a in python)
        argv = [a for arg in argv for a in (python if arg == "\0argv" else [shell] if arg == "\0sh" else [arg])]
        self.queue = SimpleQueue()
        self.held = []  # input for the child, held until it is ready for it
        self.lock = _thread.allocate_lock()
        self.written = _thread.allocate_lock()  # held while the writer may still write
        self.written.acquire()
        self.pid, self.rfd, wfd = _spawn(argv, use_pty)
        ROUTES.add(cid, cid)
        self.fetching = 0  # its module requests this child is asking its own parent about
        self.direct = self.busy = False  # direct: put() may write itself (pipes, once ready); busy: the writer has work
        if not use_pty:  # a terminal shares its flags with the reader's descriptor: it keeps blocking writes
            os.set_blocking(wfd, False)
        self.wfd = wfd
        _thread.start_new_thread(self.write, (os.dup(wfd) if use_pty else wfd,))
        _thread.start_new_thread(self.read, ())

    def put(self, data):
        """Input for the child: held until it is ready; then written here at once if the pipe takes it all
        (a warm call through the relay costs no thread hop), else queued for the writer, in order."""
        with self.lock:
            if self.held is not None and data is not None:
                self.held.append(data)
                return
            if data is None:
                self.direct = False
            elif self.direct and not self.busy:
                try:
                    data = data[os.write(self.wfd, data) :]
                except BlockingIOError:
                    pass
                except OSError:
                    return  # the child is gone: its end is on its way
                if not data:
                    return
            self.busy = True
            self.queue.put(data)

    def write(self, fd):
        while True:
            data = self.queue.get()
            if data is None:
                break
            try:
                _write_all(fd, data)
            except OSError:
                break
            with self.lock:
                if self.queue.empty():
                    self.busy = False
        os.close(fd)
        self.written.release()

    def take(self):
        """The child's next output; b"" at its end, or (on a terminal, which never ends by itself)
        once the writer has finished: then closing the terminal hangs the child up."""
        if self.pty:
            from select import select

            while not select([self.rfd], [], [], 0.5)[0]:
                if not self.written.locked():
                    return b""
        try:
            return os.read(self.rfd, 65536)
        except OSError:
            return b""

    def read(self):
        seen, answered, how, decoder = b"", False, None, ChildFrameDecoder(TO_MASTER)
        while True:
            data = self.take()
            if not data:
                break
            if self.held is not None:
                seen = (seen + data)[-65536:]
                at = seen.find(READY_MARK)
                if at < 0:
                    if how is None and not self.other:  # ssh runs in batch mode: a colon is not a prompt
                        how = self.prompted(seen, answered)
                        if how == "asked":
                            answered, seen, how = True, b"", None
                        elif how:
                            self.put(None)
                    continue
                with self.lock:
                    self.busy = True
                    self.queue.put((_MASTER_STAGE1 if self.other else _stage1_code()) + b"".join(self.held))
                    self.held, self.direct = None, not self.pty
                data = seen[at + len(READY_MARK) :]
            try:
                for kind, rid, body in decoder.feed(data):
                    # Checked as the master checks it: a bad name is this child's fault.
                    if kind == GET_MODULE and not self.other:
                        name = body.decode("ascii")
                        if not 0 < len(name) <= NAME_MAX or not all(p.isidentifier() for p in name.split(".")):
                            raise ValueError("bad module name %r" % name[:100])
                        if name in IMPORTER.modules:  # held here: answered at once, no thread
                            _serve_module(self, rid, name)
                        else:  # a thread that asks this child's parent, at most MAX_FETCHES at once
                            with self.lock:
                                self.fetching += 1
                            if self.fetching > MAX_FETCHES:
                                raise ValueError("over %d module requests at once" % MAX_FETCHES)
                            _thread.start_new_thread(_serve_module, (self, rid, name, True))
                    else:
                        _write(ROUTES.up(self.cid, kind, rid, body))
            except Exception as exc:
                how, seen = "protocol", str(exc).encode()
                self.put(None)
                break
        self.put(None)
        os.close(self.rfd)
        if how == "protocol" and self.other:  # it broke the protocol: it may ignore its input's end too
            self.kill()
        status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        self.remove_files()
        ROUTES.drop(self.cid)
        CHILDREN.pop(self.cid, None)
        text = seen.decode("utf-8", "backslashreplace") if self.held is not None or how == "protocol" else ""
        send(GONE, self.cid, literal((how or "ended", text[-GONE_TEXT_MAX:], status, answered)))

    def remove_files(self):
        for path in self.files:
            try:  # noqa: SIM105  (contextlib would cost the relay its import)
                os.unlink(path)
            except OSError:
                pass

    def kill(self):
        """End a child on another host (its ssh, and anything in its session), whatever it does."""
        try:  # noqa: SIM105  (contextlib would cost the relay its import)
            os.killpg(self.pid, 9)
        except OSError:
            pass

    def prompted(self, seen, answered):
        """Before the child is ready: None, or "asked" once a password prompt is answered; a second
        prompt means the password was refused, a prompt with no password to give that one is needed."""
        if self.prompt:
            asked = self.prompt.encode() in seen
        else:  # su and doas: a line that ends in a colon, and no newline after it
            line = seen.rsplit(b"\n", 1)[-1].rstrip()
            asked = line.endswith(b":") or line.endswith("\uff1a".encode())
        if not asked:
            return None
        if answered:
            return "refused"
        if self.password is None:
            return "needs password"
        self.queue.put(self.password.encode() + b"\n")
        return "asked"


def _end_other_hosts():
    """At this child's end: the children on other hosts go too (an ssh that ignores its input's end would stay),
    and the files their commands read."""
    for child in list(CHILDREN.values()):
        if child.other:
            child.kill()
        child.remove_files()


def _temporary_file(text, made):
    """A new file only this user may read, holding ``text``; its path (appended to ``made``)."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="fanout-")
    made.append(path)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


AT_EXIT.append(_end_other_hosts)


def _open_child(cid, body):
    """OPEN: start a child; one that cannot be started is reported GONE at once."""
    try:
        CHILDREN[cid] = _Child(cid, *load(body))
    except Exception as exc:
        send(GONE, cid, literal(("ended", ("fanout: cannot start it: %s" % exc)[:GONE_TEXT_MAX], None, False)))


def _relay_modules(cid, body):
    """RELAY_MODULES: keep what the master sent once for the hosts behind this child, and give child ``cid`` the
    modules the master named. The master decides what a child may have; this child only keeps and copies."""
    key, keep, names, records, roots, reply = load(body)
    kept = KEPT.setdefault(key, {})
    for record in keep:
        kept[record[0]] = record
    child = CHILDREN.get(cid)
    if child is None or reply is None:
        return
    packing = (key, tuple(names), marshal.dumps((records, roots)))
    packed = _PACKED.get(packing)
    if packed is None:
        packed = zlib.compress(MARSHAL + marshal.dumps(([kept[n] for n in names] + records, roots)), 6)
        if len(_PACKED) >= PACKED_MAX:
            _PACKED.clear()
        _PACKED[packing] = packed
    child.put(HEADER.pack(len(packed), MODULES, FLAG_ZLIB, reply) + packed)


def _relay_reply(cid, body):
    """RELAY_REPLY: a service reply of large bytes (a file chunk) for child ``cid``, the bytes kept for the next
    hosts behind this child that ask for them. The master decides what is kept and forgotten, within its bound."""
    name, data, forget, head = load(body)
    for old in forget:
        REPLIES.pop(old, None)
    if data is not None:
        REPLIES[name] = data
    child = CHILDREN.get(cid)
    if child is not None:
        child.put(head + REPLIES[name])


def _write_all(fd, data):
    data = memoryview(data)
    while data:
        try:
            data = data[os.write(fd, data) :]
        except BlockingIOError:  # a child's input pipe, which put() writes to without waiting
            from select import select

            select([], [fd], [])


def _serve_module(child, rid, name, counted=False):
    """A child's module request, answered from what this child holds, or asked of its own parent once."""
    try:
        if name not in IMPORTER.modules:
            IMPORTER.fetch(name)
        record = (name,) + IMPORTER.modules[name]
    except Exception as exc:
        record = (name, False, None, None, "its parent could not get it: %s" % exc)
    payload = MARSHAL + marshal.dumps(([record], sorted(IMPORTER.roots)))
    child.put(encode_frame(MODULES, rid, payload, True))
    if counted:
        with child.lock:
            child.fetching -= 1
