"""``--json`` and ``--tree``: one host's result as a JSON object, every value either carried exactly or marked.

JSON carries None, booleans, finite numbers, strings, lists and objects with string keys; tuples become lists,
as :mod:`json` makes them. Anything else is an explicit object, never a string passed off as the value:
``{"base64": ...}`` for bytes, ``{"repr": ...}`` for the rest (a set, a datetime, NaN, a dict with other keys,
an int too long to print in decimal). A dict that is itself one ``base64`` or ``repr`` key is given by its
``repr`` too, so that a marked object is never ambiguous.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from fanout._cli_output import INTERRUPTED, INTERRUPTED_TEXT, safe_repr
from fanout.fleet import CommandResult, Result

MARKS = frozenset({"base64", "repr"})  # the keys of a value JSON cannot carry as it is


def plain(value: Any) -> Any:
    """``value`` as JSON carries it (see the module's docstring)."""
    try:
        return _plain(value)
    except RecursionError:  # deeper than the decoder allows a host to send: this machine's own value
        return {"repr": safe_repr(value)}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        try:
            str(value)
        except ValueError:  # past Python's digits for decimal conversion: JSON could not be written either
            return {"repr": safe_repr(value)}
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"repr": repr(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value) and not _looks_marked(value):
        return {key: _plain(item) for key, item in value.items()}
    return {"repr": safe_repr(value)}


def _looks_marked(value: dict) -> bool:
    return len(value) == 1 and next(iter(value)) in MARKS


def record(result: Result, log: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON object for one host: its outcome, what it printed, its log records, and its error if any."""
    document: dict[str, Any] = {"host": result.host, "ok": result.ok, "status": result.status}
    value = result.value
    if isinstance(value, CommandResult):
        document.update(rc=value.rc, stdout=value.stdout, stderr=value.stderr)
    else:
        if result.ok or value is not None:  # a failed push or fetch keeps what it did
            document["value"] = plain(value)
        document.update(stdout=result.stdout, stderr=result.stderr)
    document["log"] = log
    if result.status == INTERRUPTED:
        document["error"] = INTERRUPTED_TEXT
    elif result.error is not None:
        document["error"] = getattr(result.error, "cli_text", None) or str(result.error)
        document["error_type"] = getattr(result.error, "type_name", type(result.error).__name__)
    return document


def dumps(document: dict[str, Any]) -> str:
    """The object on one line, in ASCII (JSON escapes control characters itself)."""
    return json.dumps(document, allow_nan=False)
