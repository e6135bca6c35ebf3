"""Service calls from a parent into a child: the child side, run as an ordinary call.

A parent's ``Context.call_service`` sends a call of :func:`invoke`; the child
imports this module (and ``fanout.service``) on demand, builds its ``Pool`` on
the first such call, and runs the request there as its parent's. Kept to
Python 3.9 and the standard library, like everything a child imports.
"""

from __future__ import annotations

import threading
from typing import Any

from fanout import service

_pool: service.Pool | None = None
_pool_lock = threading.Lock()
POOL_SIZE = 8


def child_pool() -> service.Pool:
    """This child's pool, made on first use (the specification's "first CALL_SERVICE")."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = service.Pool(POOL_SIZE)
        return _pool


def invoke(parent: str, service_name: str, method_name: str, kwargs: dict[str, Any]) -> Any:
    """Run ``service_name.method_name(**kwargs)`` in this child's pool, as a call from ``parent``."""
    caller = service.Caller(parent, is_parent=True)
    return child_pool().invoke(service_name, method_name, kwargs, caller).result()
