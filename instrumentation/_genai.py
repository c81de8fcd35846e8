"""OpenAI-style chat messages in the OTel GenAI message shape (role + parts).

Spans carry these as previews so any OTel backend shows the conversation;
replay never reads them (it reads the exact bytes from the blobs).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

__all__ = ["input_messages", "output_messages"]


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for item in content if isinstance(content, list) else [content]:
        if isinstance(item, Mapping) and item.get("type") == "text":
            parts.append({"type": "text", "content": item.get("text", "")})
        else:
            parts.append({"type": str(item.get("type", "unknown")) if isinstance(item, Mapping) else "unknown"})
    return parts


def _tool_call_parts(tool_calls: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    parts = []
    for call in tool_calls or ():
        function = call.get("function") or {}
        arguments: Any = function.get("arguments")
        try:
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            pass
        parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"), "arguments": arguments})
    return parts


def input_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for message in messages:
        role = message.get("role", "user")
        if role == "tool":
            parts = [{"type": "tool_call_response", "id": message.get("tool_call_id"),
                      "response": message.get("content")}]
        else:
            parts = _text_parts(message.get("content")) + _tool_call_parts(message.get("tool_calls"))
        result.append({"role": role, "parts": parts})
    return result


def output_messages(choices: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for choice in choices:
        message = choice.get("message") or {}
        result.append({
            "role": message.get("role", "assistant"),
            "parts": _text_parts(message.get("content")) + _tool_call_parts(message.get("tool_calls")),
            "finish_reason": choice.get("finish_reason"),
        })
    return result
