"""The kinds of event a trajectory is made of.

The kind travels on every span as ``tracetape.event.kind`` so readers never
guess from span names; spans from other instrumentations get a kind derived
from their GenAI attributes by :func:`kind_of`.
"""

from __future__ import annotations

from enum import Enum
from typing import Mapping

__all__ = ["EventKind", "kind_of"]


class EventKind(str, Enum):
    RUN = "run"
    MODEL_CALL = "model_call"
    TOOL_CALL = "tool_call"
    HTTP = "http"
    FILE_READ = "file_read"
    FILE_WRITE = "file_write"
    CLOCK = "clock"
    RANDOM = "random"
    UUID = "uuid"
    SUBPROCESS = "subprocess"
    ENVIRONMENT = "environment"
    MEMORY = "memory"
    OTHER = "other"


_OPERATION_KINDS = {
    "chat": EventKind.MODEL_CALL,
    "text_completion": EventKind.MODEL_CALL,
    "generate_content": EventKind.MODEL_CALL,
    "embeddings": EventKind.MODEL_CALL,
    "execute_tool": EventKind.TOOL_CALL,
    "invoke_agent": EventKind.RUN,
}


def kind_of(attributes: Mapping[str, object]) -> EventKind:
    """The event kind of a span, from tracetape's attribute or GenAI conventions."""
    declared = attributes.get("tracetape.event.kind")
    if isinstance(declared, str):
        try:
            return EventKind(declared)
        except ValueError:
            return EventKind.OTHER
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _OPERATION_KINDS:
        return _OPERATION_KINDS[operation]
    if "http.request.method" in attributes or "http.method" in attributes:
        return EventKind.HTTP
    return EventKind.OTHER
