"""Agent memory: ``tracetape.memory(name, value)`` records scratchpad state as an event.

Agents keep state between model calls — a plan, notes, a summary of what was
tried — that no boundary call shows. Recording it explicitly puts it on the
timeline, where a step-through shows what the agent believed at each step,
and a diff of two runs shows where their beliefs parted.

The event (kind ``memory``, span ``memory <name>``) has ``request`` =
``{"name": name}`` and ``response`` = the value as canonical JSON. During
replay the recorded value is looked up at the same place; a different value
now is logged and marked on the event (``tracetape.memory.diverged``), the
agent's own value is kept and recorded.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.trace import SpanKind

from tracetape.schemas.attributes import MEMORY_NAME, MEMORY_PREVIEW, MEMORY_DIVERGED
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player, finish, start
from ._guard import guarded
from ._payload import preview, to_json_bytes
from ._runs import current_run
from .redaction import redact

__all__ = ["memory"]

_log = logging.getLogger(__name__)

# To move into schemas/attributes.py (declared here until then).


def memory(name: str, value: Any) -> None:
    """Record *value* (anything JSON-serializable; others by ``repr``) as the agent's memory *name* now.

    Outside a run this does nothing.
    """
    if current_run() is None:
        return
    span_name = f"memory {name}"
    request = to_json_bytes({"name": name})
    span = guarded(start, span_name, EventKind.MEMORY, request, {MEMORY_NAME: name}, SpanKind.INTERNAL)
    served = ask_player(span, EventKind.MEMORY, span_name, request)
    if span is not None:
        guarded(_finish, span, name, value, served)


def _finish(span: Any, name: str, value: Any, served: seam.Served | None) -> None:
    payload = to_json_bytes(value)
    span.set_attribute(MEMORY_PREVIEW, preview(payload.decode("utf-8", "replace")))
    if served is not None and served.response != redact(seam.RESPONSE, payload):
        span.set_attribute(MEMORY_DIVERGED, True)
        _log.warning("tracetape replay: memory %r differs from the recording at this step", name)
    finish(span, payload)
