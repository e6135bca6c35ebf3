"""What an Ansible user types by habit, answered: Ansible's module names, ``key=value`` arguments, typos in ``-m``.

Each answer is a hint for a one-line error, naming what fanout takes instead; nothing here guesses and runs.
"""

from __future__ import annotations

import difflib
import json
import pkgutil
import shlex
import sys
from collections.abc import Iterable

# Ansible modules that fanout has a flag for: -m NAME answers with the flag ({command} is -a, quoted).
FLAG_FOR_MODULE = {
    "shell": "--shell {command}",
    "command": "--shell {command}",
    "raw": "--shell {command}",
    "win_shell": "--shell {command}",
    "copy": "--copy SRC DEST",
    "fetch": "--fetch SRC DEST",
}
PING = "ping"  # -m ping runs fanout._ping.ping, as Ansible's ping module answers "pong"
SIMILARITY = 0.6  # difflib's cutoff: how close a name must be to count as the one meant
EXAMPLE = """-a '["/etc"]' (positional arguments) or -a '{"path": "/etc"}' (keyword arguments)"""


def quoted(text: str) -> str:
    """``text`` in single quotes for a shell, always (the hint shows where the command goes)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def module_hint(name: str, arguments: str | None) -> str | None:
    """The flag to use for ``-m NAME`` when NAME is an Ansible module fanout has a flag for; None otherwise."""
    flag = FLAG_FOR_MODULE.get(name)
    if flag is None:
        return None
    command = quoted(arguments) if arguments else "'COMMAND'"
    return f"-m {name} is Ansible's module; fanout's flag is {flag.format(command=command)}"


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` most likely misspells (private names only when ``word`` is one), or None."""
    private = word.startswith("_")
    names = [c for c in candidates if isinstance(c, str) and (private or not c.startswith("_"))]
    found = difflib.get_close_matches(word, names, n=1, cutoff=SIMILARITY)
    return found[0] if found else None


def attribute_hint(parts: list[str], missing: int, owner: object) -> str:
    """``"; did you mean 'os.path.join'?"`` for ``os.pth.join``, where ``parts[missing]`` is not in ``owner``."""
    try:
        names = dir(owner)
    except Exception:  # a module's __dir__ of its own may raise
        return ""
    match = closest(parts[missing], names)
    if match is None:
        return ""
    return f"; did you mean {'.'.join([*parts[:missing], match, *parts[missing + 1 :]])!r}?"


def module_name_hint(parts: list[str]) -> str:
    """``"; did you mean 'platform.node'?"`` for ``platfrom.node``: the closest top-level module importable here."""
    names = set(getattr(sys, "stdlib_module_names", ()))
    names.update(module.name for module in pkgutil.iter_modules())
    match = closest(parts[0], names)
    return "" if match is None else f"; did you mean {'.'.join([match, *parts[1:]])!r}?"


def arguments_example(text: str) -> str:
    """How ``-a`` should have looked: ``key=value`` words (Ansible's spelling) as the JSON object they mean, else
    a generic example."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = []
    pairs = [word.partition("=") for word in words]
    if pairs and all(sep and key.isidentifier() for key, sep, _ in pairs):
        return "-a " + quoted(json.dumps({key: value for key, _, value in pairs}))
    return EXAMPLE
