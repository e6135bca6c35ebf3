"""Inside a child, what stage 1 offers code running there: ``fanout.parent()``, the context that started it,
for calling its services, and hooks run as the child ends.

Runs in children (Python 3.9+, imported from the master on demand); it talks
to stage 1, which registers itself in ``sys.modules`` as
:data:`fanout._wire.STAGE1_MODULE`. On the master there is no stage 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from fanout._wire import STAGE1_MODULE
from fanout.errors import RemoteError

PARENT_NAME = "master"


class ParentContext:
    """The parent as seen from a child: services on it can be called, like a Context's."""

    name = PARENT_NAME

    def __init__(self, calls: Any) -> None:
        self._calls = calls

    def call_service(self, service: Any, method: str, /, **kwargs: Any) -> Any:
        """Call ``method`` of a service in the parent's pool (a class, or its ``module.ClassName``).

        Refusals raise :class:`fanout.service.CallRefused`; the method's own
        error raises :class:`fanout.RemoteError` with its type and traceback.
        """
        name = service if isinstance(service, str) else service.canonical_name()
        reply = self._calls.call(name, method, kwargs)
        if reply[0] == "ok":
            return reply[1]
        _, type_name, message, traceback = reply
        error = RemoteError(self.name, type_name, message, traceback)
        from fanout.service import CallRefused  # on failures only: the service framework is imported on demand

        if error.raised(CallRefused):
            raise CallRefused(f"{message} (on {self.name})")
        raise error

    def __repr__(self) -> str:
        return f"<fanout parent {self.name!r}>"


def parent() -> ParentContext:
    """The parent of this child. On the master, which has none, a RuntimeError."""
    stage1 = sys.modules.get(STAGE1_MODULE)
    if stage1 is None:
        raise RuntimeError("fanout.parent() is for code running in a child; this process is the master")
    return ParentContext(stage1.PARENT)


def at_child_exit(hook: Callable[[], None]) -> bool:
    """Have stage 1 run ``hook`` as this child ends (SHUTDOWN, or its input ends), once however often it is
    asked; stage 1 ignores what a hook raises. False where there is no stage 1 (the master): nothing to do."""
    hooks = getattr(sys.modules.get(STAGE1_MODULE), "AT_EXIT", None)
    if hooks is None:
        return False
    if hook not in hooks:
        hooks.append(hook)
    return True
