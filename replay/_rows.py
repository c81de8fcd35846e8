"""Span rows ⇄ span attributes, for tapes made without a store and tapes sent back to one.

A tape holds spans as the rows a store returns (typed GenAI columns plus a
string map of every other attribute). The tape recorder builds those rows
from live SDK spans, as the collector would; push turns them back into span
attributes, so that the collector, the only writer, rebuilds the very same
rows from them. The typed columns are listed once, here, for both directions.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from tracetape.schemas import attributes as A
from tracetape.schemas.events import kind_of

__all__ = ["row_from_span", "attributes_from_row", "restore", "TEXT_COLUMNS", "INT_COLUMNS"]

TEXT_COLUMNS = {
    "operation": A.GEN_AI_OPERATION_NAME,
    "provider": A.GEN_AI_PROVIDER_NAME,
    "request_model": A.GEN_AI_REQUEST_MODEL,
    "response_model": A.GEN_AI_RESPONSE_MODEL,
    "tool_name": A.GEN_AI_TOOL_NAME,
    "tool_call_id": A.GEN_AI_TOOL_CALL_ID,
}
INT_COLUMNS = {"input_tokens": A.GEN_AI_USAGE_INPUT_TOKENS, "output_tokens": A.GEN_AI_USAGE_OUTPUT_TOKENS}
# Attributes that live in typed columns (or the blob maps) and are not repeated in the attribute map.
_TYPED = frozenset({A.RUN_ID, A.SEQ, A.PROJECT, A.EVENT_KIND, A.GEN_AI_RESPONSE_FINISH_REASONS,
                    *TEXT_COLUMNS.values(), *INT_COLUMNS.values()})


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def row_from_span(span: Any) -> dict[str, Any]:
    """A store row (the columns of ``_source.SPAN_FIELDS``) from a finished OTel SDK span."""
    attrs: Mapping[str, Any] = span.attributes or {}
    resource = dict(span.resource.attributes) if span.resource is not None else {}
    trace_id = format(span.context.trace_id, "032x")
    blobs, sizes, rest = {}, {}, {}
    for key, value in attrs.items():
        if key.startswith(A.BLOB_PREFIX):
            blobs[key[len(A.BLOB_PREFIX):]] = _text(value)
        elif key.startswith(A.BLOB_SIZE_PREFIX):
            sizes[key[len(A.BLOB_SIZE_PREFIX):]] = _int(value)
        elif key not in _TYPED:
            rest[key] = _text(value)
    finish = attrs.get(A.GEN_AI_RESPONSE_FINISH_REASONS) or ()
    start, end = int(span.start_time or 0), int(span.end_time or 0)
    row: dict[str, Any] = {
        "run_id": str(attrs.get(A.RUN_ID) or trace_id),
        "seq": _int(attrs.get(A.SEQ)),
        "trace_id": trace_id,
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent is not None else "",
        "name": span.name,
        "kind": kind_of(attrs).value,
        "span_kind": span.kind.name,
        "service_name": str(resource.get(A.SERVICE_NAME, "")),
        "start_ns": start,
        "end_ns": max(start, end),
        "status_code": span.status.status_code.name,
        "status_message": span.status.description or "",
        "finish_reasons": [str(f) for f in finish] if isinstance(finish, (list, tuple)) else [str(finish)],
        "blobs": blobs,
        "blob_sizes": sizes,
        "attributes": rest,
        "resource": {k: _text(v) for k, v in resource.items()},
        "events": [(int(e.timestamp or 0), e.name, {k: _text(v) for k, v in (e.attributes or {}).items()})
                   for e in span.events],
    }
    for column, key in TEXT_COLUMNS.items():
        row[column] = str(attrs.get(key) or "")
    row["provider"] = row["provider"] or str(attrs.get(A.GEN_AI_SYSTEM) or "")
    for column, key in INT_COLUMNS.items():
        row[column] = _int(attrs.get(key))
    return row


def restore(text: str) -> Any:
    """The attribute value a map entry was made from: a number, a boolean or an array of primitives
    (the only non-string values an OTel attribute can hold) when *text* is exactly its JSON form,
    else the text itself — so the store rebuilds the very same text from it."""
    if not text or text[0] not in "[-0123456789tf":
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    primitive = (bool, int, float, str)
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        if len(kinds) > 1 or not all(isinstance(v, primitive) for v in value):
            return text
    elif not isinstance(value, (bool, int, float)):
        return text
    return value if json.dumps(value, ensure_ascii=False) == text else text


def attributes_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes from which the collector rebuilds *row* (in the project it assigns)."""
    attrs: dict[str, Any] = {key: restore(value) for key, value in row["attributes"].items()}
    attrs[A.RUN_ID] = row["run_id"]
    attrs[A.EVENT_KIND] = row["kind"]
    if row["seq"]:
        attrs[A.SEQ] = int(row["seq"])
    for column, key in TEXT_COLUMNS.items():
        if row[column]:
            attrs[key] = row[column]
    for column, key in INT_COLUMNS.items():
        if row[column]:
            attrs[key] = int(row[column])
    if row["finish_reasons"]:
        attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = list(row["finish_reasons"])
    for role, digest in row["blobs"].items():
        attrs[A.blob_attr(role)] = digest
    for role, size in row["blob_sizes"].items():
        attrs[A.blob_size_attr(role)] = int(size)
    return attrs
