"""Spans from other instrumentations, read as tracetape events.

OpenLLMetry (recent versions) and the official OTel GenAI instrumentation
write the GenAI semantic conventions, which the collector already maps at
ingest. OpenInference writes its own names (``openinference.span.kind``,
``llm.model_name``, ``llm.input_messages.0.message.content``, ...), and older
OpenLLMetry releases wrote ``llm.request.type``, ``gen_ai.prompt.0.content``
and ``traceloop.span.kind``. Mapping them happens on read, so spans already
stored benefit from every improvement here, and nothing is lost at ingest
(the original attributes stay in the row).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

__all__ = ["normalize"]

_OPENINFERENCE_KINDS = {"LLM": EventKind.MODEL_CALL, "EMBEDDING": EventKind.MODEL_CALL, "TOOL": EventKind.TOOL_CALL}
_TRACELOOP_KINDS = {"tool": EventKind.TOOL_CALL}
_LLM_REQUEST_TYPES = {"chat", "completion", "embedding", "rerank"}
_INDEXED = re.compile(r"^(\d+)\.(.+)$")


def _indexed(attributes: dict[str, str], prefix: str) -> list[dict[str, str]]:
    """``prefix.0.role``, ``prefix.0.content``, ``prefix.1.role`` → [{role, content}, {role}]."""
    items: dict[int, dict[str, str]] = {}
    for key, value in attributes.items():
        if key.startswith(prefix):
            match = _INDEXED.match(key[len(prefix):])
            if match:
                items.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [items[i] for i in sorted(items)]


def _tool_calls(fields: dict[str, str], prefix: str) -> list[dict[str, Any]]:
    calls = _indexed(fields, prefix)
    parts = []
    for call in calls:
        arguments: Any = call.get("tool_call.function.arguments", call.get("arguments", ""))
        try:
            arguments = json.loads(arguments)
        except (TypeError, ValueError):
            pass
        parts.append({"type": "tool_call", "id": call.get("tool_call.id", call.get("id", "")),
                      "name": call.get("tool_call.function.name", call.get("name", "")), "arguments": arguments})
    return parts


def _messages(attributes: dict[str, str], prefix: str, field: str) -> list[dict[str, Any]]:
    """Indexed flat message attributes as GenAI-convention messages ({role, parts})."""
    messages = []
    for fields in _indexed(attributes, prefix):
        role = fields.get(f"{field}role", "")
        parts: list[dict[str, Any]] = []
        content = fields.get(f"{field}content")
        if content:
            parts.append({"type": "text", "content": content})
        parts += _tool_calls(fields, f"{field}tool_calls.")
        messages.append({"role": role, "parts": parts})
    return messages


def _first(attributes: dict[str, str], *keys: str) -> str:
    return next((attributes[k] for k in keys if attributes.get(k)), "")


def _int(text: str) -> int:
    try:
        return max(0, int(float(text)))
    except (TypeError, ValueError):
        return 0


def _kind(attributes: dict[str, str]) -> EventKind:
    if attributes.get("openinference.span.kind", "").upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[attributes["openinference.span.kind"].upper()]
    if attributes.get("traceloop.span.kind", "") in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[attributes["traceloop.span.kind"]]
    if attributes.get("llm.request.type", "") in _LLM_REQUEST_TYPES:
        return EventKind.MODEL_CALL
    return EventKind.OTHER


def normalize(span: dict[str, Any]) -> dict[str, Any]:
    """A span row with kind and GenAI fields filled in from foreign conventions (a new dict if changed)."""
    if span["kind"] != EventKind.OTHER.value:
        return span
    attributes: dict[str, str] = span["attributes"]
    kind = _kind(attributes)
    if kind is EventKind.OTHER:
        return span
    row = dict(span, kind=kind.value)
    extra: dict[str, str] = {}
    if kind is EventKind.MODEL_CALL:
        row["operation"] = row["operation"] or ("chat" if attributes.get("llm.request.type", "chat") == "chat"
                                                else attributes["llm.request.type"])
        row["provider"] = row["provider"] or _first(attributes, "llm.provider", "llm.system", "gen_ai.system")
        row["request_model"] = row["request_model"] or _first(attributes, "llm.model_name", "llm.request.model")
        row["response_model"] = row["response_model"] or _first(attributes, "llm.response.model", "llm.model_name")
        row["input_tokens"] = row["input_tokens"] or _int(_first(
            attributes, "llm.token_count.prompt", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens"))
        row["output_tokens"] = row["output_tokens"] or _int(_first(
            attributes, "llm.token_count.completion", "gen_ai.usage.completion_tokens",
            "llm.usage.completion_tokens"))
        if not row["finish_reasons"] and attributes.get("llm.finish_reason"):
            row["finish_reasons"] = [attributes["llm.finish_reason"]]
        inputs = _messages(attributes, "llm.input_messages.", "message.") or _messages(attributes, "gen_ai.prompt.", "")
        outputs = _messages(attributes, "llm.output_messages.", "message.") or _messages(
            attributes, "gen_ai.completion.", "")
        if inputs and A.GEN_AI_INPUT_MESSAGES not in attributes:
            extra[A.GEN_AI_INPUT_MESSAGES] = json.dumps(inputs, ensure_ascii=False)
        if outputs and A.GEN_AI_OUTPUT_MESSAGES not in attributes:
            extra[A.GEN_AI_OUTPUT_MESSAGES] = json.dumps(outputs, ensure_ascii=False)
    else:
        row["operation"] = row["operation"] or "execute_tool"
        row["tool_name"] = row["tool_name"] or _first(attributes, "tool.name", "traceloop.entity.name") or span["name"]
        arguments = _first(attributes, "input.value", "traceloop.entity.input")  # tool.parameters is the schema
        result = _first(attributes, "output.value", "traceloop.entity.output")
        if arguments and A.GEN_AI_TOOL_CALL_ARGUMENTS not in attributes:
            extra[A.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
        if result and A.GEN_AI_TOOL_CALL_RESULT not in attributes:
            extra[A.GEN_AI_TOOL_CALL_RESULT] = result
    if extra:
        row["attributes"] = {**attributes, **extra}
    return row
