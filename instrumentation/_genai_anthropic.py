"""Anthropic Messages in the OTel GenAI attribute shape.

Content blocks map onto GenAI parts: ``text`` → text, ``tool_use`` →
tool_call, ``tool_result`` → tool_call_response, ``thinking`` → reasoning
(redacted thinking keeps only its type). The finish reason is Anthropic's
``stop_reason`` as sent (``end_turn``, ``tool_use``, ``max_tokens``, ...).
Input tokens include cache reads and writes, as the GenAI conventions ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tracetape.schemas import attributes as A

from . import _json
from ._genai import (GEN_AI_REQUEST_TOP_K, json_items, json_preview, message_encoder, sampling, sse_json,
                     stop_sequences, tool_call_part, tool_definitions, usage)

__all__ = ["messages_request", "messages_response", "messages_stream"]

_SAMPLING = {
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "top_k": GEN_AI_REQUEST_TOP_K,
    "max_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, (list, tuple)) else ():
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "content": block.get("text", "")})
        elif kind in ("tool_use", "server_tool_use"):
            parts.append(tool_call_part(block.get("id"), block.get("name"), block.get("input")))
        elif kind == "tool_result":
            parts.append({"type": "tool_call_response", "id": block.get("tool_use_id"),
                          "response": block.get("content")})
        elif kind == "thinking":
            parts.append({"type": "reasoning", "content": block.get("thinking", "")})
        else:
            parts.append({"type": str(kind)})
    return parts


def _message(message: Any) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        return {"role": "user", "parts": []}
    return {"role": message.get("role", "user"), "parts": _parts(message.get("content"))}


_encode_message = message_encoder(_message)


def messages_request(body: Mapping[str, Any]) -> dict[str, Any]:
    messages = list(body.get("messages") or ())
    if body.get("system"):
        messages.insert(0, {"role": "system", "content": body["system"]})
    return sampling(body, _SAMPLING) | stop_sequences(body.get("stop_sequences")) \
        | json_items(A.GEN_AI_INPUT_MESSAGES, messages, _encode_message) | tool_definitions(body.get("tools"))


def _attributes(message: Mapping[str, Any]) -> dict[str, Any]:
    counts = message.get("usage") or {}
    prompt = sum(int(counts.get(k) or 0)
                 for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
    reason = message.get("stop_reason")
    return {
        A.GEN_AI_RESPONSE_ID: str(message.get("id", "")),
        A.GEN_AI_RESPONSE_MODEL: str(message.get("model", "")),
        A.GEN_AI_RESPONSE_FINISH_REASONS: [str(reason)] if reason else [],
        A.GEN_AI_OUTPUT_MESSAGES: json_preview([{"role": message.get("role", "assistant"),
                                                 "parts": _parts(message.get("content")), "finish_reason": reason}]),
        **usage(prompt, counts.get("output_tokens")),
    }


def messages_response(data: bytes) -> dict[str, Any]:
    return _attributes(_json.loads(data))


def _apply_delta(block: dict[str, Any], delta: Mapping[str, Any]) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + (delta.get("text") or "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + (delta.get("thinking") or "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    elif kind == "input_json_delta":
        block["_json"] = block.get("_json", "") + (delta.get("partial_json") or "")


def messages_stream(events: Sequence[bytes]) -> dict[str, Any]:
    """Fold ``message_start`` / ``content_block_*`` / ``message_delta`` events into the message they built."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    for _, event in sse_json(events):
        kind = event.get("type")
        if kind == "message_start":
            message = dict(event.get("message") or {})
            message["usage"] = dict(message.get("usage") or {})
        elif kind == "content_block_start":
            blocks[event.get("index", 0)] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta" and event.get("index", 0) in blocks:
            _apply_delta(blocks[event.get("index", 0)], event.get("delta") or {})
        elif kind == "message_delta":
            message.update({k: v for k, v in (event.get("delta") or {}).items() if v is not None})
            message.setdefault("usage", {}).update(event.get("usage") or {})
    for block in blocks.values():
        if "_json" in block:
            raw = block.pop("_json")
            try:
                block["input"] = _json.loads(raw) if raw else {}
            except ValueError:
                block["input"] = raw  # the stream stopped inside the tool input
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return _attributes(message)
