"""Secrets (passwords) kept as strings that never show themselves in a ``repr``: a dict of options printed
in a log, a traceback's locals or an error message cannot leak them."""

from __future__ import annotations

from typing import Any


class Secret(str):
    """A ``str`` whose ``repr`` is ``'<hidden>'``; ``str(secret)`` gives the plain text where it is needed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<hidden>'"


def hide(value: Any) -> Any:
    """``value`` as a :class:`Secret` if it is a string, else unchanged (None stays None)."""
    return Secret(value) if isinstance(value, str) and not isinstance(value, Secret) else value


def plain(value: Any) -> Any:
    """The exact ``str`` of a secret, for what needs one (marshal takes no subclass)."""
    return str(value) if isinstance(value, str) else value
