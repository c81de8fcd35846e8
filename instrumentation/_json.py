"""JSON of every model call's ending: orjson where it can, the standard library where it cannot.

The GenAI attributes of every model call are parsed and encoded when the call
ends (on the app's thread, or in a batch of endings that competes with it for
the GIL), so the JSON speed of the previews and of a stream's fold is time
the agent pays. orjson does both several times faster
(28 chunks of a chat stream: 33 -> 14 µs to parse; 14 messages: 30 -> 3 µs
to encode). It is stricter than ``json`` (UTF-8 only, no ``NaN``, string
keys), so whatever it refuses goes through ``json`` and comes out as it did
before: the same values, or the same ``ValueError``. Two differences remain,
both only in previews: an integer past 64 bits is read as a float, and a
``NaN`` is written as ``null`` (``json`` writes ``NaN``, which is not JSON).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["loads", "dumps", "strict_loads", "StrictDecodeError"]

# The fast parse alone, for a caller with a fallback of its own; raises StrictDecodeError (a ValueError).
strict_loads = orjson.loads
StrictDecodeError = orjson.JSONDecodeError
_fast_dumps = orjson.dumps
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr).encode  # compact, as orjson


def loads(data: bytes | str) -> Any:
    """*data* parsed; raises ``ValueError`` when it is not JSON."""
    try:
        return strict_loads(data)
    except StrictDecodeError:
        return json.loads(data)


def dumps(value: Any) -> str:
    """*value* as compact JSON text; what JSON cannot hold is written as its ``repr``."""
    try:
        return _fast_dumps(value, default=repr).decode()
    except TypeError:  # orjson.JSONEncodeError: a key that is not a string, an integer over 64 bits
        return _encode(value)
