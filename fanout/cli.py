"""The ``fanout`` command line, shaped as Ansible's ad-hoc ``ansible`` command.

``fanout [-i INVENTORY] PATTERN -m module.function [-a JSON]`` calls a function,
``--shell CMD`` runs a command, on the hosts the pattern selects, and reports each
host as it finishes. Without an inventory only ``localhost`` exists, reached
through a local child process (as Ansible's implicit localhost), so the command
works with no SSH at all. ``-b`` runs it as another user on each host (root,
through sudo, unless told otherwise); as in Ansible, a host's own
``ansible_become*`` variables win over the command line's ``-b``,
``--become-user``, ``--become-method`` and ``-K``. ``fanout inventory`` shows an
inventory as ``ansible-inventory`` does; its word may come anywhere among the
arguments (see :func:`fanout._cli_parse.parse`).

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
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fanout import _become, _cli_habits, _cli_report, _cli_run, _inventory_cli, _terminal
from fanout._cli_logs import remote_logs
from fanout._cli_parse import DEFAULT_FUNCTION, INVENTORY, parse
from fanout._cli_report import JSON, ONE_LINE, TEXT, exit_status, say
from fanout._ssh_config import parse_ssh_args
from fanout._timeouts import check_timeout
from fanout.errors import FanoutError

IMPLICIT_HOST = "localhost"
INTERRUPTED = _cli_run.EXIT_INTERRUPTED  # the exit status of Ctrl-C, as shells report it (128 + SIGINT)
MAX_FORKS = 10_000  # connections opened at once: each is a thread, and about three open files
MAX_ARGS_DEPTH = 100  # levels of lists and objects in -a
MAX_LIMIT_FILE_BYTES = 64 * 1024 * 1024  # an --limit @FILE of host names
BECOME_PROMPT = "BECOME password: "  # -K's prompt, as Ansible's
SSH_PROMPT = "SSH password: "  # -k's prompt, as Ansible's
MAX_NAMED_HOSTS = 5  # hosts a warning names before it says "and N more"
TRACEBACK_VERBOSITY = 3  # -vvv shows the traceback of an error fanout did not expect (a bug), as Ansible's -vvv

__all__ = ["UsageError", "exit_status", "main", "parse", "parse_arguments", "resolve_function", "select_hosts"]


class UsageError(Exception):
    """The command line asks for something that cannot be done; the message says why."""


def resolve_function(dotted: str) -> Any:
    """``package.module.function`` (or ``module.Class.method``) to the callable it names; ``ping`` is fanout's
    own, as Ansible's ping module. A misspelt name gets the closest one as a hint."""
    if dotted == _cli_habits.PING:
        from fanout._ping import ping

        return ping
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
        for index in range(split, len(parts)):
            try:
                obj = getattr(obj, parts[index])
            except Exception:  # AttributeError, or whatever a module's own __getattr__ raises
                hint = _cli_habits.attribute_hint(parts, index, obj)
                raise UsageError(f"module {module_name!r} has no {'.'.join(parts[split:])!r}{hint}") from None
        if not callable(obj):
            raise UsageError(f"{dotted} is not callable")
        return obj
    raise UsageError(f"cannot import any module of {dotted!r} on this machine{_cli_habits.module_name_hint(parts)}")


def parse_arguments(text: str | None) -> tuple[list, dict]:
    """``-a`` as positional and keyword arguments; nested at most :data:`MAX_ARGS_DEPTH` levels."""
    if text is None:
        return [], {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"-a is not valid JSON ({exc}): it must be a JSON list or object, such as "
            f"{_cli_habits.arguments_example(text)}"
        ) from None
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
    raise UsageError(f"-a must be a JSON list or object, such as {_cli_habits.EXAMPLE}")


def _depth(value: Any) -> int:
    """How many lists and objects deep ``value`` goes (without recursion; stops counting past the limit)."""
    deepest, todo = 0, [(value, 1)]
    while todo and deepest <= MAX_ARGS_DEPTH:
        item, depth = todo.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options no fleet could use, each with a one-line reason."""
    if not 1 <= args.forks <= MAX_FORKS:
        raise UsageError(f"--forks must be at least 1 and at most {MAX_FORKS:,}, not {args.forks}")
    if args.relays != "auto":
        if not args.relays.isdigit() or int(args.relays) > MAX_FORKS:
            raise UsageError(f"--relays wants a number of relays (0 to {MAX_FORKS:,}) or auto, not {args.relays!r}")
        args.relays = int(args.relays)
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
    if args.retry_file is not None:
        args.retry_file = _cli_report.check_retry_file(args.retry_file)
    try:  # a user name sudo, su and doas would refuse is refused now
        _become.plan(args.become_method or "sudo", "root" if args.become_user is None else args.become_user)
    except ValueError as exc:
        raise UsageError(f"--become-user: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fanout`` command; returns the exit status (Ansible's: 4 unreachable, 2 failed;
    1 for a bad request, 2 for bad usage, 130 when interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with _cli_run.interrupts() as interrupts, _warnings_said():
            return _main(argv, interrupts)
    except Exception as exc:  # a bug of fanout's: still one line; -vvv shows where, as Ansible's -vvv does
        if _verbosity(argv) >= TRACEBACK_VERBOSITY:
            traceback.print_exc()
        say(f"unexpected error (a bug in fanout; -vvv shows where): {type(exc).__name__}: {exc}")
        return 1


@contextlib.contextmanager
def _warnings_said() -> Iterator[None]:
    """fanout's warnings (a key a relay cannot use, an agent that is not there) as one ``fanout: warning:`` line
    each, as the command line's own, not as Python prints them (a file, a line number, a line of source)."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        say(f"warning: {message}")

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def _verbosity(argv: list[str]) -> int:
    """How many -v the arguments hold, read without the parser (which may be what failed)."""
    return sum(
        word.count("v") if word.startswith("-") and not word.startswith("--") and set(word[1:]) == {"v"} else 0
        for word in argv
    ) + argv.count("--verbose")


def _main(argv: list[str], interrupts: _cli_run.Interrupts) -> int:
    try:
        args = parse(argv)
        if args.command == INVENTORY:
            return _inventory_cli.run(args)
        if args.shell is not None and args.args is not None:
            args.usage_error("-a gives a function's arguments; with --shell, put them in the command")
        if (args.mode is not None or args.delete) and args.copy is None:
            args.usage_error("--mode and --delete go with --copy")
        _check_options(args)
        if args.list_hosts:
            return list_hosts(args)
        task = _task(args)
        hosts = select_hosts(args)
        tree = None if args.tree is None else _cli_report.check_tree(args.tree, hosts)
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
        say("interrupted")
        return INTERRUPTED
    except (UsageError, FanoutError, ValueError, OSError) as exc:  # InventoryError is a ValueError
        say(str(exc))
        return 1
    args.tree = tree
    return _fan_out(args, hosts, task, interrupts)


def _task(args: argparse.Namespace) -> Any:
    """What to run on each host, checked before anything connects: a call, a shell command, a copy or a fetch."""
    if args.copy is not None or args.fetch is not None:
        kind, source, destination, options = _transfer_task(args)
        return _cli_run.transfer_task(kind, source, destination, options, args.task_timeout)
    if args.shell is not None:
        if not args.shell.strip():
            raise UsageError("--shell needs a command")
        return _cli_run.shell_task(args.shell, args.task_timeout)
    dotted = args.function or DEFAULT_FUNCTION
    hint = _cli_habits.module_hint(dotted, args.args)
    if hint is not None:
        raise UsageError(hint)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as ``python -m``: the project one stands in is importable
    function = resolve_function(dotted)
    positional, keywords = parse_arguments(args.args)
    if "timeout" in keywords:  # the function's own, not the fleet's
        function = functools.partial(function, timeout=keywords.pop("timeout"))
    return _cli_run.call_task(dotted, function, positional, keywords, args.task_timeout)


def _fan_out(args: argparse.Namespace, hosts: dict[str, dict[str, Any]], task: Any, interrupts: Any) -> int:
    """Run the task on the hosts, reporting each as it finishes (see :func:`fanout._cli_run.fan_out`)."""
    mode = JSON if args.json else ONE_LINE if args.one_line else TEXT
    live = mode == TEXT
    streams = frozenset(("stdout", "stderr") if live else ("stderr",) if args.verbose else ())
    with remote_logs(args.verbose, show=live or args.verbose > 0, keep=mode == JSON or args.tree is not None) as logs:
        report = _cli_report.Report(mode, logs, args.tree, args.retry_file)
        return _cli_run.fan_out(args, hosts, task, interrupts, report, streams)


def list_hosts(args: argparse.Namespace) -> int:
    """``--list-hosts``: the hosts PATTERN and --limit select, as ``ansible --list-hosts`` prints them; none is
    still an error (exit 1, the reason on stderr), as for a run."""
    _, hosts = _chosen(args)
    lines = [f"  hosts ({len(hosts)}):", *(f"    {_terminal.escape(name)}" for name in hosts)]
    _cli_report.Output().line("\n".join(lines))
    if not hosts:
        say(_no_match(args))
        return 1
    return 0


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


def _chosen(args: argparse.Namespace) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The inventory, and the connection options of the hosts PATTERN and --limit select (maybe none)."""
    from fanout.inventory import Inventory

    inventory = Inventory() if args.inventory is None else Inventory.load(args.inventory)
    hosts = inventory.fleet_hosts(args.pattern)
    if args.limit:
        allowed = set(_limit_names(inventory, args.limit))
        hosts = {name: options for name, options in hosts.items() if name in allowed}
    return inventory, hosts


def _no_match(args: argparse.Namespace) -> str:
    limited = f" within --limit {args.limit!r}" if args.limit else ""
    if args.inventory is None:
        return (
            f"no host matches {args.pattern!r}{limited}: without an inventory (-i) only the implicit "
            f"{IMPLICIT_HOST!r} exists"
        )
    return f"no host matches {args.pattern!r}{limited} in {args.inventory}"


def select_hosts(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Connection options of the hosts PATTERN (and --limit) select; an empty selection is an error."""
    inventory, hosts = _chosen(args)
    if not hosts:
        raise UsageError(_no_match(args))
    args.relay_hosts = inventory.relays_for(hosts)  # fanout_via hosts outside the selection: relays only
    every_host = [*hosts.values(), *args.relay_hosts.values()]
    ssh_hosts = [options for options in every_host if options.get("connection", "ssh") == "ssh"]
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
        say(f"warning: {' and '.join(which)} {verb} to SSH hosts only, and none is selected")
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
        say(f"warning: -b leaves {_some(kept_out)} as the login user: the inventory sets ansible_become=false there")
    which = [flag for flag, option in _BECOME_OPTIONS if getattr(args, option)]
    if which and not args.become and not _becoming(hosts):  # with -b, the warning above said why
        verb = "has" if len(which) == 1 else "have"
        say(
            f"warning: {' and '.join(which)} {verb} no effect: no selected host runs through become"
            " (give -b, or set ansible_become in the inventory)"
        )


_BECOME_OPTIONS = (("--become-user", "become_user"), ("--become-method", "become_method"), ("-K", "ask_become_pass"))


def _becoming(hosts: dict[str, dict[str, Any]]) -> list[str]:
    """The hosts whose calls run through become."""
    return [name for name, options in hosts.items() if (options.get("become") or {}).get("enabled")]


def _some(names: list[str]) -> str:
    """A few host names for a warning, and how many more."""
    shown = ", ".join(names[:MAX_NAMED_HOSTS])  # say() escapes them
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
