"""``fanout.parent()``: inside a child, the context that started it, for calling its services.

Runs in children (Python 3.9+, imported from the master on demand); it talks
to stage 1, which registers itself as the module ``fanout_stage1``.
"""

from __future__ import annotations

import sys
from typing import Any

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
    stage1 = sys.modules.get("fanout_stage1")
    if stage1 is None:
        raise RuntimeError("fanout.parent() is for code running in a child; this process is the master")
    return ParentContext(stage1.PARENT)
