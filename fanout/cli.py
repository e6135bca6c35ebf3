"""The ``fanout`` command line, shaped as Ansible's ad-hoc ``ansible`` command.

``fanout [-i INVENTORY] PATTERN -m module.function [-a JSON]`` calls a function,
``--shell CMD`` runs a command, on the hosts the pattern selects. Without an
inventory only ``localhost`` exists, reached through a local child process (as
Ansible's implicit localhost), so the command works with no SSH at all.
``-b`` runs it as another user on each host (root, through sudo, unless told
otherwise); as in Ansible, a host's own ``ansible_become*`` variables win over
the command line's ``-b``, ``--become-user``, ``--become-method`` and ``-K``.
Exit status as Ansible's: 4 when a host was unreachable, else 2 when one failed; 1 for a bad request (one line on
stderr, never a traceback), 2 for bad usage (argparse's), 130 on Ctrl-C, after the results already in.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import importlib
import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fanout
from fanout import _become, _shell, _terminal
from fanout._ssh_config import parse_ssh_args
from fanout._timeouts import MAX_TIMEOUT, check_timeout
from fanout.errors import FanoutError
from fanout.fleet import CommandResult, _command_result

IMPLICIT_HOST = "localhost"
_DEFAULT_FUNCTION = "platform.node"
INTERRUPTED = 130  # the exit status of Ctrl-C, as shells report it (128 + SIGINT)
MAX_FORKS = 10_000  # connections opened at once: each is a thread, and about three open files
MAX_ARGS_DEPTH = 100  # levels of lists and objects in -a
MAX_LIMIT_FILE_BYTES = 64 * 1024 * 1024  # an --limit @FILE of host names
BECOME_PROMPT = "BECOME password: "  # -K's prompt, as Ansible's
SSH_PROMPT = "SSH password: "  # -k's prompt, as Ansible's
MAX_NAMED_HOSTS = 5  # hosts a warning names before it says "and N more"


class UsageError(Exception):
    """The command line asks for something that cannot be done; the message says why."""


class _Version(argparse.Action):
    """--version, looked up only when asked for (reading package metadata costs start-up time)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"fanout {fanout.__version__}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fanout",
        description="Run Python functions or shell commands across a fleet of hosts over SSH.",
        epilog="Also: fanout inventory -i INVENTORY --list | --graph [GROUP] | --host NAME",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    parser.add_argument("pattern", metavar="PATTERN", help="which hosts, as an Ansible host pattern")
    parser.add_argument(
        "-i", "--inventory", metavar="INVENTORY", help="an Ansible inventory: file, directory or 'h1,h2,' list"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "-m",
        "--function",
        metavar="MODULE.FUNCTION",
        help=f"the function to call (default {_DEFAULT_FUNCTION})",
    )
    what.add_argument("--shell", metavar="CMD", help="run a shell command instead (through /bin/sh -c)")
    what.add_argument(
        "--copy",
        nargs=2,
        metavar=("SRC", "DEST"),
        help="push a file or a tree to every host (SRC/ copies the contents, as rsync); unchanged files stay",
    )
    what.add_argument(
        "--fetch",
        nargs=2,
        metavar=("SRC", "DEST"),
        help="fetch a remote file or tree from every host into DEST/<host>/<path>, as Ansible's fetch",
    )
    parser.add_argument(
        "-a", "--args", metavar="JSON", help="arguments: a JSON list (positional) or object (keywords), e.g. '[\"/\"]'"
    )
    parser.add_argument("-f", "--forks", type=int, default=50, help="connections opened at once (default 50)")
    parser.add_argument(
        "-T", "--timeout", type=float, default=10.0, help="connect timeout in seconds, to a ready child (default 10)"
    )
    parser.add_argument(
        "--task-timeout", type=float, metavar="SECONDS", help="give up on a host's call or command after this long"
    )
    parser.add_argument("-l", "--limit", metavar="SUBSET", help="further limit the hosts: a pattern, or @FILE of names")
    parser.add_argument("-u", "--user", help="remote user, where the inventory sets none")
    parser.add_argument("--private-key", metavar="FILE", help="SSH key, where the inventory sets none")
    ssh = parser.add_argument_group("ssh", "how to reach the hosts; a host's own ansible_* variables win over these")
    ssh.add_argument(
        "--host-key-checking",
        choices=HOST_KEY_CHECKING,
        help="strict: known hosts only; accept-new: add unknown hosts to known_hosts; off: accept any key "
        "(default: ssh_config's StrictHostKeyChecking, strict when it says ask)",
    )
    ssh.add_argument("-k", "--ask-pass", action="store_true", help="ask for the SSH password, once, before connecting")
    ssh.add_argument(
        "--ssh-common-args", metavar="ARGS", help="ssh options for every host, as Ansible's: '-o Key=Value -J hop -A'"
    )
    ssh.add_argument("--ssh-extra-args", metavar="ARGS", help="more ssh options, after --ssh-common-args")
    parser.add_argument("--json", action="store_true", help="print one JSON object per host, and nothing live")
    parser.add_argument("--mode", metavar="OCTAL", help="with --copy: the files' mode on the hosts, such as 0644")
    parser.add_argument("--delete", action="store_true", help="with --copy: remove what the source does not have")
    become = parser.add_argument_group(
        "become", "run as another user on each host; a host's own ansible_become* variables win over these"
    )
    become.add_argument(
        "-b", "--become", action="store_true", help="run as another user (root, through sudo, unless told otherwise)"
    )
    become.add_argument("--become-user", metavar="USER", help="the user to become (default root)")
    become.add_argument(
        "--become-method",
        choices=_become.METHODS,
        help=f"how to become it: {', '.join(_become.METHODS)} (default sudo)",
    )
    become.add_argument(
        "-K", "--ask-become-pass", action="store_true", help="ask for the become password, once, before connecting"
    )
    return parser


def resolve_function(dotted: str) -> Any:
    """``package.module.function`` (or ``module.Class.method``) to the callable it names."""
    parts = dotted.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise UsageError(f"-m wants MODULE.FUNCTION, such as platform.node, not {dotted!r}")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not (module_name == exc.name or module_name.startswith(exc.name + ".")):
                raise UsageError(f"importing {module_name} failed: {exc}") from None  # a missing dependency
            continue
        except (Exception, SystemExit) as exc:  # the module exists but breaks on import: say so, not "no such thing"
            raise UsageError(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no {'.'.join(parts[split:])!r}") from None
        if not callable(obj):
            raise UsageError(f"{dotted} is not callable")
        return obj
    raise UsageError(f"cannot import any module of {dotted!r} on this machine")


def parse_arguments(text: str | None) -> tuple[list, dict]:
    """``-a`` as positional and keyword arguments; nested at most :data:`MAX_ARGS_DEPTH` levels."""
    if text is None:
        return [], {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"-a is not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"-a is nested more than {MAX_ARGS_DEPTH} levels deep") from None
    except ValueError as exc:  # an integer past Python's 4300 digits
        raise UsageError(f"-a cannot be read: {exc}") from None
    if _depth(value) > MAX_ARGS_DEPTH:
        raise UsageError(f"-a is nested more than {MAX_ARGS_DEPTH} levels deep")
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        return [], value
    raise UsageError("-a must be a JSON list (positional arguments) or object (keyword arguments)")


def _depth(value: Any) -> int:
    """How many lists and objects deep ``value`` goes (without recursion; stops counting past the limit)."""
    deepest, todo = 0, [(value, 1)]
    while todo and deepest <= MAX_ARGS_DEPTH:
        item, depth = todo.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


HOST_KEY_CHECKING = ("strict", "accept-new", "off")


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options no fleet could use, each with a one-line reason."""
    if not 1 <= args.forks <= MAX_FORKS:
        raise UsageError(f"--forks must be at least 1 and at most {MAX_FORKS:,}, not {args.forks}")
    args.timeout = check_timeout("--timeout", args.timeout)
    args.task_timeout = check_timeout("--task-timeout", args.task_timeout, allow_none=True)
    if args.user is not None and not args.user.strip():
        raise UsageError("-u needs a user name")
    if args.private_key is not None:
        key = Path(args.private_key).expanduser()
        if not key.is_file():
            raise UsageError(f"--private-key {args.private_key}: no such file")
        args.private_key = str(key)
    for flag, text in (("--ssh-common-args", args.ssh_common_args), ("--ssh-extra-args", args.ssh_extra_args)):
        if text is not None:
            try:
                parse_ssh_args(text)
            except ValueError as exc:
                raise UsageError(f"{flag}: {exc}") from None
    try:  # a user name sudo, su and doas would refuse is refused now
        _become.plan(args.become_method or "sudo", "root" if args.become_user is None else args.become_user)
    except ValueError as exc:
        raise UsageError(f"--become-user: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fanout`` command; returns the exit status (Ansible's: 4 unreachable, 2 failed;
    1 for a bad request, 2 for bad usage, 130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _interrupts() as interrupts:
        return _main(argv, interrupts)


def _main(argv: list[str], interrupts: _Interrupts) -> int:
    try:
        if argv[:1] == ["inventory"]:
            from fanout import _inventory_cli

            return _inventory_cli.main(argv[1:])
        parser = _parser()
        args = parser.parse_args(argv)
        if args.shell is not None and args.args is not None:
            parser.error("-a gives a function's arguments; with --shell, put them in the command")
        if (args.mode is not None or args.delete) and args.copy is None:
            parser.error("--mode and --delete go with --copy")
        _check_options(args)
        if args.copy is not None or args.fetch is not None:
            task: Any = _transfer_task(args)
        elif args.shell is not None:
            if not args.shell.strip():
                raise UsageError("--shell needs a command")
            task = args.shell
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # as ``python -m``: the project one stands in is importable
            function = resolve_function(args.function or _DEFAULT_FUNCTION)
            task = (function, *parse_arguments(args.args))
        hosts = select_hosts(args)
        if args.ask_pass:
            password = ask_password(SSH_PROMPT, "-k", "SSH password")
            for options in hosts.values():
                options.setdefault("password", password)  # a host's own ansible_password wins, as in Ansible
        ask_passphrases(hosts)
        if args.ask_become_pass and _becoming(hosts):
            password = ask_become_password()
            for name in _becoming(hosts):
                hosts[name]["become"].setdefault("password", password)  # a host's own password wins, as in Ansible
    except KeyboardInterrupt:
        _say("interrupted")
        return INTERRUPTED
    except (UsageError, FanoutError, ValueError, OSError) as exc:  # InventoryError is a ValueError
        _say(str(exc))
        return 1
    return _fan_out(args, hosts, task, interrupts)


def _fan_out(args: argparse.Namespace, hosts: dict[str, dict[str, Any]], task: Any, interrupts: _Interrupts) -> int:
    """Run the task on the hosts, print each host's result in host order, and close.

    Ctrl-C stops the waiting: the results already in are printed, then how many hosts finished, and the status is
    130. Once the results print and the fleet closes, Ctrl-C leaves at once, quietly.
    """
    finished: dict[str, fanout.Result] = {}
    interrupted = False
    fleet = collector = None
    try:
        fleet = fanout.Fleet(hosts, forks=args.forks, connect_timeout=args.timeout, echo=not args.json)
        collector = _Collector(fleet, lambda: _outcomes(fleet, args, task))
        collector.start()
        for host, result in collector:
            finished[host] = result
    except KeyboardInterrupt:
        interrupted = True
    except (FanoutError, ValueError) as exc:  # the fleet cannot start (the open-file limit), or bad host options
        interrupts.closing = True
        _say(str(exc))
        if fleet is not None:
            fleet.close()
        return 1
    interrupts.closing = True
    if fleet is None:
        _say(f"interrupted; 0 of {len(hosts)} hosts finished")
        return INTERRUPTED
    if interrupted:
        fleet.echo = False  # what the hosts still print would get in the way of the results
        if collector is not None:
            collector.stop.set()
            finished.update(collector.arrived())
    results = fanout.Results({name: finished[name] for name in fleet.hosts if name in finished})
    out = _Output()
    for result in results.values():
        out.line(_json_line(result) if args.json else "\n".join(_lines(result)))
    if interrupted:
        _say(f"interrupted; {len(results)} of {len(fleet.hosts)} hosts finished")
    elif not args.json and len(results) > 1:
        _terminal.write(sys.stderr, results.summary() + "\n")
    fleet.close()
    if collector is not None and collector.is_alive():  # interrupted while connecting: it ends when connect() does
        while collector.is_alive():
            collector.join(_WAKE_UP)
        fleet.close()  # what connect() opened after the first close
    return INTERRUPTED if interrupted else exit_status(results)


_WAKE_UP = 0.25  # seconds the main thread waits at most in one go, so that it sees Ctrl-C


class _Collector(threading.Thread):
    """Connects the fleet and gathers its results on a thread of its own, handing each to the main thread.

    Python runs signal handlers on the main thread only, and a SIGINT the kernel hands to another thread does not
    wake a main thread blocked on a lock (as ``Fleet.as_completed`` waits): so the main thread waits here, never
    longer than :data:`_WAKE_UP` at a time. Errors the fleet raises are raised again on the main thread.
    """

    _END = object()

    def __init__(self, fleet: fanout.Fleet, outcomes: Callable[[], Iterator[tuple[str, fanout.Result]]]) -> None:
        super().__init__(name="fanout-cli-collector", daemon=True)
        self.fleet, self.outcomes = fleet, outcomes
        self.stop = threading.Event()  # set when the main thread stops waiting: no more calls are to be started
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self.fleet.connect()
            if not self.stop.is_set():
                for item in self.outcomes():
                    self._queue.put(item)
                    if self.stop.is_set():
                        break
        except BaseException as exc:  # handed to the main thread, which decides
            self._error = exc
        finally:
            self._queue.put(self._END)

    def __iter__(self) -> Iterator[tuple[str, fanout.Result]]:
        while True:
            try:
                item = self._queue.get(timeout=_WAKE_UP)
            except queue.Empty:
                continue
            if item is self._END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def arrived(self) -> list[tuple[str, fanout.Result]]:
        """The results handed over but not yet taken (once the main thread was interrupted)."""
        items = []
        with contextlib.suppress(queue.Empty):
            while (item := self._queue.get_nowait()) is not self._END:
                items.append(item)
        return items


MAX_MODE = 0o7777


def _transfer_task(args: argparse.Namespace) -> tuple[str, str, str, dict[str, Any]]:
    """--copy or --fetch as (kind, source, destination, options), checked before anything connects."""
    if args.args is not None:
        raise UsageError("-a gives a function's arguments; --copy and --fetch take none")
    kind, (source, destination) = ("copy", args.copy) if args.copy is not None else ("fetch", args.fetch)
    if not source or not destination:
        raise UsageError(f"--{kind} needs a source and a destination")
    options: dict[str, Any] = {}
    if kind == "copy":
        if not os.path.lexists(source):
            raise UsageError(f"--copy {source}: no such file or directory")
        if args.mode is not None:
            try:
                mode = int(args.mode, 8)
            except ValueError:
                raise UsageError(f"--mode wants an octal mode such as 0644, not {args.mode!r}") from None
            if not 0 <= mode <= MAX_MODE:
                raise UsageError(f"--mode {args.mode} is not a file mode (0 to 7777)")
            options["mode"] = mode
        if args.delete:
            options["delete"] = True
    return kind, source, destination, options


def _outcomes(fleet: fanout.Fleet, args: argparse.Namespace, task: Any) -> Iterator[tuple[str, fanout.Result]]:
    """Each host's result as it comes in."""
    if args.copy is not None or args.fetch is not None:
        kind, source, destination, options = task
        move = fleet.put if kind == "copy" else fleet.fetch
        yield from move(source, destination, timeout=args.task_timeout, **options).items()
        return
    if args.shell is not None:
        timeout = args.task_timeout
        # As Fleet.run: the host kills the command at its timeout, the master waits a connect timeout longer.
        wait = None if timeout is None else min(timeout + fleet.connect_timeout, MAX_TIMEOUT)
        command = functools.partial(_shell.run, task, timeout, fleet.echo, None, None)
        command.__qualname__ = task  # type: ignore[attr-defined]  # what the progress bar shows, as for Fleet.run
        for host, result in fleet.as_completed(command, timeout=wait):
            yield host, _command_result(result, True)
        return
    function, positional, keywords = task
    if "timeout" in keywords:  # the function's own, not the fleet's
        function = functools.partial(function, timeout=keywords.pop("timeout"))
    yield from fleet.as_completed(function, *positional, timeout=args.task_timeout, **keywords)


class _Interrupts:
    """Ctrl-C as the command wants it: the first raises KeyboardInterrupt, so that the results already in are
    printed; a second one, or any once the results print and the fleet closes (``closing``), leaves at once with
    status 130 and no traceback. The hosts then end with their connections: a local child sees its input close,
    an SSH session its channel."""

    def __init__(self) -> None:
        self.closing = False
        self.seen = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.closing or self.seen:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # a flush cut short by this very signal may refuse
                    stream.flush()
            with contextlib.suppress(OSError):
                os.write(2, b"fanout: interrupted again; leaving without waiting for the hosts to close\n")
            os._exit(INTERRUPTED)
        self.seen = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts() -> Iterator[_Interrupts]:
    """Take Ctrl-C over for the command's run, unless something else already handles it or ignores it (a job
    started in the background), or this is not the main thread (main() called by a program of one's own)."""
    interrupts = _Interrupts()
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield interrupts
            return
        signal.signal(signal.SIGINT, interrupts)
    except ValueError:
        yield interrupts
        return
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class _Output:
    """Result lines to stdout, each in one write; a reader that went away (``| head``) ends the printing quietly."""

    def __init__(self) -> None:
        self.open = True

    def line(self, text: str) -> None:
        if self.open and not _terminal.write(sys.stdout, text + "\n"):
            self.open = False
            with contextlib.suppress(OSError, ValueError):  # so that the flush at exit does not complain either
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)


def _say(message: str) -> None:
    """``fanout: message`` on stderr, on one line whatever the message holds."""
    _terminal.write(sys.stderr, f"fanout: {_terminal.escape(message)}\n")


def select_hosts(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Connection options of the hosts PATTERN (and --limit) select; an empty selection is an error."""
    from fanout.inventory import Inventory

    inventory = Inventory() if args.inventory is None else Inventory.load(args.inventory)
    hosts = inventory.fleet_hosts(args.pattern)
    if args.limit:
        allowed = set(_limit_names(inventory, args.limit))
        hosts = {name: options for name, options in hosts.items() if name in allowed}
    if not hosts:
        limited = f" within --limit {args.limit!r}" if args.limit else ""
        if args.inventory is None:
            raise UsageError(
                f"no host matches {args.pattern!r}{limited}: without an inventory (-i) only the implicit "
                f"{IMPLICIT_HOST!r} exists"
            )
        raise UsageError(f"no host matches {args.pattern!r}{limited} in {args.inventory}")
    ssh_hosts = [options for options in hosts.values() if options.get("connection", "ssh") == "ssh"]
    ssh_args = " ".join(a for a in (args.ssh_common_args, args.ssh_extra_args) if a)
    for options in ssh_hosts:
        if args.user:
            options.setdefault("user", args.user)
        if args.private_key:
            options.setdefault("identity_file", args.private_key)
        if args.host_key_checking:
            options.setdefault("host_key_policy", args.host_key_checking)
        if ssh_args:
            options.setdefault("ssh_args", ssh_args)
    if (args.user or args.private_key) and not ssh_hosts:
        which = [name for name, given in (("-u", args.user), ("--private-key", args.private_key)) if given]
        verb = "apply" if len(which) > 1 else "applies"
        _say(f"warning: {' and '.join(which)} {verb} to SSH hosts only, and none is selected")
    _set_become(args, inventory, hosts)
    return hosts


def _set_become(args: argparse.Namespace, inventory: Any, hosts: dict[str, dict[str, Any]]) -> None:
    """Turn become on where it applies, as Ansible does: on every host with ``-b``, on the hosts whose inventory
    says ``ansible_become=true`` without it; a host's ``ansible_become=false`` wins over ``-b``. The command
    line's user and method go to those hosts, under the host's own. What has no effect is said, never ignored."""
    from fanout.inventory import BecomeOptions

    given = {"user": args.become_user, "method": args.become_method}
    given = {key: value for key, value in given.items() if value is not None}
    kept_out = []  # hosts that -b does not change: their inventory says ansible_become=false
    for name, options in hosts.items():
        own = options.get("become")
        switch = None if own is None else inventory.become_enabled(name)
        if switch is False and args.become:
            kept_out.append(name)
        if args.become if switch is None else switch:
            options["become"] = BecomeOptions({**given, **(own or {}), "enabled": True})
    if kept_out:
        _say(f"warning: -b leaves {_some(kept_out)} as the login user: the inventory sets ansible_become=false there")
    which = [flag for flag, option in _BECOME_OPTIONS if getattr(args, option)]
    if which and not args.become and not _becoming(hosts):  # with -b, the warning above said why
        verb = "has" if len(which) == 1 else "have"
        _say(
            f"warning: {' and '.join(which)} {verb} no effect: no selected host runs through become"
            " (give -b, or set ansible_become in the inventory)"
        )


_BECOME_OPTIONS = (("--become-user", "become_user"), ("--become-method", "become_method"), ("-K", "ask_become_pass"))


def _becoming(hosts: dict[str, dict[str, Any]]) -> list[str]:
    """The hosts whose calls run through become."""
    return [name for name, options in hosts.items() if (options.get("become") or {}).get("enabled")]


def _some(names: list[str]) -> str:
    """A few host names for a warning, and how many more."""
    shown = ", ".join(names[:MAX_NAMED_HOSTS])  # _say escapes them
    more = len(names) - MAX_NAMED_HOSTS
    return shown + (f" and {more} more" if more > 0 else "")


def ask_become_password() -> str:
    """``-K``: the become password, asked once on the terminal (as Ansible asks it), never echoed."""
    return ask_password(BECOME_PROMPT, "-K", "become password")


def ask_password(prompt: str, flag: str, what: str) -> str:
    """A secret asked on the terminal, never echoed; the end of input is a usage error naming ``flag``."""
    try:
        return getpass.getpass(prompt)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write("\n")  # the prompt's line is left open: "interrupted" goes on a line of its own
        raise
    except EOFError:
        raise UsageError(f"{flag}: no {what} was given (the input ended)") from None


def ask_passphrases(hosts: dict[str, dict[str, Any]]) -> None:
    """Ask once per encrypted key that some host would use and no agent holds, as ssh asks: only on a terminal
    (elsewhere the host fails, naming the key and what to do)."""
    if not sys.stdin.isatty():
        return
    from fanout._ssh import keys_needing_passphrase

    asked: dict[str, str] = {}
    for options in hosts.values():
        if options.get("connection", "ssh") != "ssh" or options.get("passphrase") is not None:
            continue
        needed = keys_needing_passphrase(options)
        for path in needed:
            if path not in asked:
                asked[path] = ask_password(f"Enter passphrase for key '{path}': ", "passphrase", "key passphrase")
        if needed:
            options["passphrase"] = {path: asked[path] for path in needed}


def _limit_names(inventory: Any, limit: str) -> list[str]:
    """The host names ``--limit`` allows: those its pattern selects (the implicit ``localhost`` too), or those
    listed in ``@FILE``, one a line."""
    from fanout.inventory import IMPLICIT_LOCALHOSTS, read_bounded

    if limit.startswith("@"):
        path = Path(limit[1:])
        try:
            data = read_bounded(path, MAX_LIMIT_FILE_BYTES)
            if data is None:
                raise UsageError(f"--limit {limit}: larger than {MAX_LIMIT_FILE_BYTES:,} bytes")
            text = data.decode("utf-8")
        except OSError as exc:
            raise UsageError(f"--limit {limit}: cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise UsageError(f"--limit {limit}: {path} is not UTF-8 text ({exc.reason})") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    names = inventory.hosts(limit)
    if not names and limit.strip() in IMPLICIT_LOCALHOSTS:
        names = [limit.strip()]
    return names


def exit_status(results: fanout.Results) -> int:
    """Ansible's: 4 when any host was never reached, else 2 when any failed, else 0."""
    if results.unreachable:
        return 4
    return 2 if results.failed else 0


_LABELS = {
    "ok": "ok",
    "failed": "FAILED",
    "unreachable": "UNREACHABLE",
    "auth-failed": "AUTH FAILED",
    "timed-out": "TIMED OUT",
}


def _lines(result: fanout.Result) -> list[str]:
    """``host | STATUS | detail``, then any further lines of the detail (a remote traceback, say), each prefixed
    with the host's name. What the host sent is escaped: no line it controls can pass for another host's result."""
    host = _terminal.escape(result.host)
    label = _LABELS.get(result.status, result.status.upper())
    value = result.value
    if isinstance(value, CommandResult):
        text = "killed at its timeout" if value.rc is None else f"rc={value.rc}"
        if result.error is not None and value.stderr.strip():
            text += ": " + value.stderr.rstrip("\n").split("\n")[-1]
    elif result.ok:
        text = _repr(value)
    else:
        text = getattr(result.error, "cli_text", None) or str(result.error)
    first, *more = text.split("\n")
    lines = [f"{host} | {label} | {_terminal.escape(first)}"]
    lines += [f"{host} |   {_terminal.escape(line)}" if line else f"{host} |" for line in more]
    return lines


def _json_line(result: fanout.Result) -> str:
    """The host's JSON object on one line; a value JSON cannot hold (tuple keys, say) is given as its ``repr``."""
    record = _record(result)
    try:
        return json.dumps(record, default=repr)
    except (TypeError, ValueError, RecursionError):
        record["value"] = _repr(result.value)
        return json.dumps(record, default=repr)


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except RecursionError:
        return f"<a {type(value).__name__} nested too deeply to print>"
    except ValueError:  # an int past Python's limit for decimal conversion (sys.get_int_max_str_digits)
        if isinstance(value, int):
            return f"<an int of {value.bit_length()} bits, too long to print in decimal>"
        return f"<a {type(value).__name__} holding an int too long to print in decimal>"


def _record(result: fanout.Result) -> dict[str, Any]:
    """The JSON object for one host."""
    record: dict[str, Any] = {"host": result.host, "ok": result.ok, "status": result.status}
    value = result.value
    if isinstance(value, CommandResult):
        record.update(rc=value.rc, stdout=value.stdout, stderr=value.stderr)
    elif result.ok:
        record.update(value=value, stdout=result.stdout, stderr=result.stderr)
    if result.error is not None:
        record["error"] = getattr(result.error, "cli_text", None) or str(result.error)
        record["error_type"] = getattr(result.error, "type_name", type(result.error).__name__)
    return record
