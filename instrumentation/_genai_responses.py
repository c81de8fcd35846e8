"""OpenAI's Responses API (``POST /v1/responses``) in the OTel GenAI attribute shape.

The Responses API speaks in items, not chat messages: ``input`` is a string
or a list of message / ``function_call`` / ``function_call_output`` items,
and ``output`` a list of ``reasoning`` / ``message`` / ``function_call``
items. They are mapped onto GenAI roles and parts. The API has no finish
reason, so one is derived from the status as the official OpenTelemetry
OpenAI instrumentation does (``stop``, ``length``, ``error``, ``tool_call``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tracetape.schemas import attributes as A

from . import _json
from ._genai import (json_items, json_preview, message_encoder, sampling, sse_json, text_parts, tool_call_part,
                     tool_definitions, usage)

__all__ = ["responses_request", "responses_response", "responses_stream"]

_SAMPLING = {
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "max_output_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
}
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
_FINAL = ("completed", "incomplete", "failed", "cancelled")


def _input_message(item: Any) -> dict[str, Any]:
    """One ``input`` item as a GenAI message."""
    if not isinstance(item, Mapping):
        return {"role": "user", "parts": text_parts(item)}
    kind = item.get("type", "message")
    if kind == "message":
        return {"role": item.get("role", "user"), "parts": text_parts(item.get("content"))}
    if kind == "function_call":
        return {"role": "assistant",
                "parts": [tool_call_part(item.get("call_id"), item.get("name"), item.get("arguments"))]}
    if kind == "function_call_output":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": item.get("call_id"),
                                           "response": item.get("output")}]}
    return {"role": "user", "parts": [{"type": str(kind)}]}


_encode_message = message_encoder(_input_message)


def responses_request(body: Mapping[str, Any]) -> dict[str, Any]:
    items = body.get("input")
    items = [items] if isinstance(items, str) else list(items) if isinstance(items, (list, tuple)) else []
    if body.get("instructions"):
        items.insert(0, {"type": "message", "role": "system", "content": body["instructions"]})
    return sampling(body, _SAMPLING) | json_items(A.GEN_AI_INPUT_MESSAGES, items, _encode_message) \
        | tool_definitions(body.get("tools"))


def _finish_reason(response: Mapping[str, Any], parts: list[dict[str, Any]]) -> str:
    status = response.get("status")
    if status == "completed":
        return "tool_call" if any(p["type"] == "tool_call" for p in parts) else "stop"
    if status == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return _INCOMPLETE.get(reason, reason or "incomplete")
    return "error" if status in ("failed", "cancelled") else str(status or "")


def _output_parts(items: Sequence[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            parts += text_parts(item.get("content"))
        elif kind == "function_call":
            parts.append(tool_call_part(item.get("call_id"), item.get("name"), item.get("arguments")))
        elif kind == "reasoning":
            summary = "".join(s.get("text", "") for s in item.get("summary") or () if isinstance(s, Mapping))
            parts.append({"type": "reasoning", "content": summary})
        else:
            parts.append({"type": str(kind)})
    return parts


def _attributes(response: Mapping[str, Any]) -> dict[str, Any]:
    parts = _output_parts(response.get("output") or ())
    finish = _finish_reason(response, parts)
    counts = response.get("usage") or {}
    return {
        A.GEN_AI_RESPONSE_ID: str(response.get("id", "")),
        A.GEN_AI_RESPONSE_MODEL: str(response.get("model", "")),
        A.GEN_AI_RESPONSE_FINISH_REASONS: [finish] if finish else [],
        A.GEN_AI_OUTPUT_MESSAGES: json_preview([{"role": "assistant", "parts": parts, "finish_reason": finish}]),
        **usage(counts.get("input_tokens"), counts.get("output_tokens")),
    }


def responses_response(data: bytes) -> dict[str, Any]:
    return _attributes(_json.loads(data))


def responses_stream(events: Sequence[bytes]) -> dict[str, Any]:
    """The final ``response`` snapshot when the stream got that far, else one folded from the item events."""
    snapshot: dict[str, Any] = {}
    items: dict[int, dict[str, Any]] = {}
    texts: dict[int, list[str]] = {}
    for _, event in sse_json(events):
        kind = event.get("type", "")
        index = event.get("output_index", 0)
        if isinstance(event.get("response"), Mapping):
            snapshot = dict(event["response"])
        elif kind in ("response.output_item.added", "response.output_item.done") and event.get("item"):
            items[index] = dict(event["item"])
        elif kind == "response.output_text.delta":
            texts.setdefault(index, []).append(event.get("delta") or "")
        elif kind == "response.function_call_arguments.delta" and index in items:
            items[index]["arguments"] = (items[index].get("arguments") or "") + (event.get("delta") or "")
    if snapshot.get("status") not in _FINAL or not snapshot.get("output"):
        for index, pieces in texts.items():
            item = items.get(index)
            if item is not None and item.get("type") == "message" and not item.get("content"):
                item["content"] = [{"type": "output_text", "text": "".join(pieces)}]
        snapshot["output"] = [items[i] for i in sorted(items)]
    return _attributes(snapshot)
