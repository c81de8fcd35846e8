"""OTLP spans → rows of the ``spans`` and ``runs`` tables.

Hot GenAI fields become typed columns; every other attribute lands in a
string map (strings as they are, everything else as JSON), so nothing a
client sent is lost and nothing unknown breaks ingest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from tracetape.schemas import attributes as A
from tracetape.schemas.errors import InvalidPayload
from tracetape.schemas.events import EventKind, kind_of

__all__ = ["SpanBatch", "ConversionError", "convert_request", "SPAN_COLUMNS", "RUN_COLUMNS"]

SPAN_COLUMNS = (
    "project", "run_id", "seq", "trace_id", "span_id", "parent_span_id", "name", "kind", "span_kind",
    "service_name", "start_time", "end_time", "duration_ns", "status_code", "status_message", "operation",
    "provider", "request_model", "response_model", "tool_name", "tool_call_id", "input_tokens",
    "output_tokens", "finish_reasons", "blobs", "blob_sizes", "attributes", "resource", "events",
    "ingest_seq",
)
RUN_COLUMNS = (
    "project", "run_id", "agent", "service_name", "trace_id", "start_time", "end_time", "outcome", "error",
    "tags", "parent_run_id", "fork_step", "event_count", "error_count", "input_tokens", "output_tokens",
    "ingest_seq",
)
_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = ("UNSET", "OK", "ERROR")
# Attributes that become typed columns and are not repeated in the map.
_TYPED = frozenset({
    A.RUN_ID, A.SEQ, A.PROJECT, A.EVENT_KIND, A.GEN_AI_OPERATION_NAME, A.GEN_AI_PROVIDER_NAME,
    A.GEN_AI_REQUEST_MODEL, A.GEN_AI_RESPONSE_MODEL, A.GEN_AI_TOOL_NAME, A.GEN_AI_TOOL_CALL_ID,
    A.GEN_AI_USAGE_INPUT_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS, A.GEN_AI_RESPONSE_FINISH_REASONS,
})


class ConversionError(InvalidPayload):
    """The request is not valid OTLP (the client should not retry it)."""


@dataclass
class SpanBatch:
    """Rows of one export request, ready for the writer (ingest_seq filled in there)."""

    spans: list[list[Any]] = field(default_factory=list)
    runs: list[list[Any]] = field(default_factory=list)


def _value(any_value: Any) -> Any:
    which = any_value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    if which == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, which)


def _attributes(key_values: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _as_int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _hex_id(raw: bytes, length: int, what: str) -> str:
    if len(raw) != length or not any(raw):
        raise ConversionError(f"{what} must be {length} non-zero bytes, got {len(raw)}")
    return raw.hex()


def _span_row(span: Any, resource: dict[str, Any], default_project: str) -> tuple[list[Any], dict[str, Any]]:
    attrs = _attributes(span.attributes)
    trace_id = _hex_id(span.trace_id, 16, "trace_id")
    span_id = _hex_id(span.span_id, 8, "span_id")
    parent = span.parent_span_id.hex() if span.parent_span_id else ""
    blobs: dict[str, str] = {}
    sizes: dict[str, int] = {}
    rest: dict[str, str] = {}
    for key, value in attrs.items():
        if key.startswith(A.BLOB_PREFIX):
            blobs[key[len(A.BLOB_PREFIX):]] = _as_text(value)
        elif key.startswith(A.BLOB_SIZE_PREFIX):
            sizes[key[len(A.BLOB_SIZE_PREFIX):]] = _as_int(value)
        elif key not in _TYPED:
            rest[key] = _as_text(value)
    start, end = int(span.start_time_unix_nano), int(span.end_time_unix_nano)
    finish = attrs.get(A.GEN_AI_RESPONSE_FINISH_REASONS) or []
    row = [
        str(attrs.get(A.PROJECT) or resource.get(A.PROJECT) or default_project),
        str(attrs.get(A.RUN_ID) or trace_id),
        _as_int(attrs.get(A.SEQ)),
        trace_id, span_id, parent, span.name,
        kind_of(attrs).value,
        _SPAN_KINDS[span.kind] if 0 <= span.kind < len(_SPAN_KINDS) else "UNSPECIFIED",
        str(resource.get(A.SERVICE_NAME, "")),
        start, max(end, start), max(0, end - start),
        _STATUS[span.status.code] if 0 <= span.status.code < len(_STATUS) else "UNSET",
        span.status.message,
        str(attrs.get(A.GEN_AI_OPERATION_NAME, "")),
        str(attrs.get(A.GEN_AI_PROVIDER_NAME) or attrs.get(A.GEN_AI_SYSTEM) or ""),
        str(attrs.get(A.GEN_AI_REQUEST_MODEL, "")),
        str(attrs.get(A.GEN_AI_RESPONSE_MODEL, "")),
        str(attrs.get(A.GEN_AI_TOOL_NAME, "")),
        str(attrs.get(A.GEN_AI_TOOL_CALL_ID, "")),
        _as_int(attrs.get(A.GEN_AI_USAGE_INPUT_TOKENS)),
        _as_int(attrs.get(A.GEN_AI_USAGE_OUTPUT_TOKENS)),
        [str(f) for f in finish] if isinstance(finish, list) else [str(finish)],
        blobs, sizes, rest,
        {k: _as_text(v) for k, v in resource.items()},
        [(int(e.time_unix_nano), e.name, {k: _as_text(v) for k, v in _attributes(e.attributes).items()})
         for e in span.events],
        0,
    ]
    return row, attrs


def _run_row(row: list[Any], attrs: dict[str, Any]) -> list[Any]:
    tags = attrs.get(A.RUN_TAGS) or []
    return [
        row[0], row[1], str(attrs.get(A.GEN_AI_AGENT_NAME, "")), row[9], row[3], row[10], row[11],
        str(attrs.get(A.RUN_OUTCOME) or ("error" if row[13] == "ERROR" else "ok")),
        row[14], [str(t) for t in tags] if isinstance(tags, list) else [str(tags)],
        str(attrs.get(A.RUN_PARENT_ID, "")), _as_int(attrs.get(A.RUN_FORK_STEP)),
        _as_int(attrs.get(A.RUN_EVENT_COUNT)), _as_int(attrs.get(A.RUN_ERROR_COUNT)),
        row[21], row[22], 0,
    ]


def convert_request(request: Any, default_project: str = "default") -> SpanBatch:
    """Convert an ``ExportTraceServiceRequest``; raises ConversionError on invalid spans."""
    batch = SpanBatch()
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                row, attrs = _span_row(span, resource, default_project)
                batch.spans.append(row)
                if row[7] == EventKind.RUN.value and A.RUN_ID in attrs:
                    batch.runs.append(_run_row(row, attrs))
    return batch
