"""The ``fanout`` command line read into a namespace: argparse subcommands, the run implied, ``inventory`` named.

A positional PATTERN and a subcommand share a place: :func:`parse` finds the first word that is neither an
option nor an option's value, and reads ``inventory`` there as the subcommand, any other word as the pattern of
the run. Long options are never abbreviated (``allow_abbrev=False``): ``--shel`` is an error, not ``--shell``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

import fanout
from fanout import _become, _inventory_cli

DEFAULT_FUNCTION = "platform.node"
RUN, INVENTORY = "run", "inventory"  # the subcommands: RUN is implied, INVENTORY is named
HOST_KEY_CHECKING = ("strict", "accept-new", "off")
DASH_VALUE_OPTIONS = ("--ssh-common-args", "--ssh-extra-args")  # options whose values start with "-" (ssh's)


class _Version(argparse.Action):
    """--version, looked up only when asked for (reading package metadata costs start-up time)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"fanout {fanout.__version__}")
        parser.exit()


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser, with a subparser per subcommand (returned too, by name); see :func:`parse`."""
    parser = argparse.ArgumentParser(prog="fanout", allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        RUN,
        prog="fanout",
        allow_abbrev=False,
        description="Run Python functions or shell commands across a fleet of hosts over SSH.",
        epilog="Also: fanout inventory -i INVENTORY --list | --graph [GROUP] | --host NAME. The word inventory is "
        "that subcommand wherever it comes; a host or group named inventory is the pattern 'inventory,'.",
    )
    _run_arguments(run)
    inventory = commands.add_parser(
        INVENTORY, prog="fanout inventory", allow_abbrev=False, description=_inventory_cli.DESCRIPTION
    )
    _inventory_cli.add_arguments(inventory)
    return parser, {RUN: run, INVENTORY: inventory}


def _run_arguments(parser: argparse.ArgumentParser) -> None:
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
        help=f"the function to call (default {DEFAULT_FUNCTION}; 'ping' answers 'pong', as Ansible's ping)",
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
        "--relays",
        metavar="N|auto",
        default="0",
        help="reach the hosts through N of them, each running ssh onward (auto: about the square root of the hosts;"
        " default 0); an inventory's fanout_via sets a host's own relay (docs/relays.rst)",
    )
    parser.add_argument(
        "-T", "--timeout", type=float, default=10.0, help="connect timeout in seconds, to a ready child (default 10)"
    )
    parser.add_argument(
        "--task-timeout", type=float, metavar="SECONDS", help="give up on a host's call or command after this long"
    )
    parser.add_argument("-l", "--limit", metavar="SUBSET", help="further limit the hosts: a pattern, or @FILE of names")
    parser.add_argument("--list-hosts", action="store_true", help="print the hosts the pattern selects, and exit")
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
    output = parser.add_argument_group("output", "results print as each host finishes, the tally last (on stderr)")
    shape = output.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON object per host, and nothing live")
    shape.add_argument(
        "-o", "--one-line", action="store_true", help="one line per host, with what it printed, and nothing live"
    )
    output.add_argument("-t", "--tree", metavar="DIR", help="also write each host's JSON object to DIR/<host>")
    output.add_argument(
        "--retry-file", metavar="PATH", help="write the hosts that did not end ok, one a line, for --limit @PATH"
    )
    output.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="show the hosts' log records from INFO (-vv: DEBUG), and their stderr with --json or -o",
    )
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


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as a namespace whose ``command`` is ``run`` or ``inventory``; usage errors exit 2.

    A positional PATTERN and a subcommand share the first word that is neither an option nor an option's
    value: ``inventory`` there is the subcommand, anything else is the pattern of the (implied) run. So
    ``fanout -i hosts inventory --graph`` and ``fanout inventory -i hosts --graph`` are the same, and
    ``fanout -i inventory all`` reads the file named inventory. A host or group named inventory is reached as
    the pattern ``inventory,`` (or after ``--``).
    """
    parser, subparsers = _parser()
    argv = _dash_values_joined(list(argv))
    found = _first_word(argv, subparsers.values())
    if found is not None and argv[found] == INVENTORY:
        argv = [INVENTORY, *argv[:found], *argv[found + 1 :]]
    else:
        argv = [RUN, *argv]
    args, unknown = parser.parse_known_args(argv)
    args.usage_error = subparsers[args.command].error  # the usage shown is the subcommand's
    if unknown:
        args.usage_error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _dash_values_joined(argv: list[str]) -> list[str]:
    """``--ssh-common-args '-o X=1'`` as ``--ssh-common-args=-o X=1``: argparse would read a value that starts
    with ``-o`` as the ``-o`` flag (Ansible's users have to write the ``=`` themselves)."""
    joined: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            return [*joined, word, *words]
        following = next(words, None) if word in DASH_VALUE_OPTIONS else None
        joined.append(word if following is None else f"{word}={following}")
    return joined


def _first_word(argv: list[str], parsers: Iterable[argparse.ArgumentParser]) -> int | None:
    """Where the first word that is neither an option nor an option's value is (after ``--``: None, so that
    what follows is a pattern even when it reads inventory)."""
    values: dict[str, Any] = {}  # option -> how many values it takes ("?": one, unless the next word is an option)
    for parser in parsers:
        for action in parser._actions:  # argparse's list of what was added: the option strings and their arity
            for option in action.option_strings:
                values[option] = 1 if action.nargs is None else action.nargs
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            return None
        if word.startswith("--"):
            name, equals, _ = word.partition("=")
            index += 1 + (0 if equals else _taken(values.get(name, 0), argv, index + 1))
        elif word.startswith("-") and len(word) > 1:
            taken = 0
            for position, letter in enumerate(word[1:], start=2):  # -bK, -iFILE, -vvv
                count = values.get("-" + letter, 0)
                if count:
                    taken = _taken(count, argv, index + 1) - (1 if position < len(word) else 0)
                    break
            index += 1 + max(taken, 0)
        else:
            return index
    return None


def _taken(count: Any, argv: list[str], start: int) -> int:
    """How many words after an option are its values."""
    if count == "?":
        return 1 if start < len(argv) and not argv[start].startswith("-") else 0
    return count if isinstance(count, int) else 0
