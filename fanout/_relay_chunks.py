"""Large replies a relay may keep for the hosts beyond it (file chunks): named by whoever made them.

A push reads each chunk of MAPPED_CHUNK bytes or more into a mapping of its own (:meth:`fanout._push.Plan.read`)
and names the mapping here, once. A reply of such bytes to a host beyond a relay then goes to the relay once,
with its name, and the relay copies it to each host the master names it for (RELAY_REPLY, see
``fanout._context.Context._reply``): a chunk crosses the master's link once per relay, not once per host.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()  # a mapping -> its name, while it lives
_lock = threading.Lock()


def name(buffer: Any, key: str) -> None:
    """Call ``buffer`` (an mmap, or what else a view's ``obj`` is) ``key``: the same key, the same bytes."""
    with _lock:
        _names[buffer] = key


def name_of(data: Any) -> str | None:
    """The name of the bytes ``data`` views, if their maker gave one."""
    owner = getattr(data, "obj", None)
    if owner is None:
        return None
    with _lock:
        try:
            return _names.get(owner)
        except TypeError:  # an owner that is not weakly referable was never named
            return None
