"""A local, deterministic stand-in for the Anthropic Messages API.

The unmodified ``anthropic`` SDK talks to it over a socket: ``POST
/v1/messages``, plain or streamed as Server-Sent Events (``message_start``,
``content_block_*`` with text, ``thinking``/``signature`` and ``input_json``
deltas, ``ping``, ``message_delta``, ``message_stop``), ``tool_use`` and
extended-thinking blocks, and Anthropic's error bodies. Like the OpenAI mock
it reads no clock and no randomness, and it runs the same scripts: the
Anthropic conversation is handed to the script as chat messages.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._mock_http import MockServer, RecordedRequest, Reply, Script, sse_event, text_of, tokens, words
from .mock_openai import weather_script

__all__ = ["MockAnthropic", "RecordedRequest", "MESSAGES_PATH"]

MESSAGES_PATH = "/v1/messages"
_JSON_FRAGMENT = 8  # characters of tool input per input_json_delta
_THOUGHT = "The user asked: {question}. Decide whether the get_weather tool is needed."
_ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 411: "invalid_request_error",
                413: "request_too_large", 500: "api_error"}


def _chat_messages(request: dict) -> list[dict]:
    """The Anthropic conversation as chat messages (system, user, assistant, tool), for the script."""
    messages: list[dict] = []
    if request.get("system"):
        messages.append({"role": "system", "content": text_of(request["system"])})
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": message.get("role", "user"), "content": content})
            continue
        blocks = [b for b in content or [] if isinstance(b, dict)]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        for result in results:
            messages.append({"role": "tool", "tool_call_id": result.get("tool_use_id"),
                             "content": text_of(result.get("content"))})
        text = text_of([b for b in blocks if b.get("type") == "text"])
        calls = [{"id": b.get("id"), "type": "function",
                  "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input"))}}
                 for b in blocks if b.get("type") == "tool_use"]
        if text or calls or not results:
            entry: dict[str, Any] = {"role": message.get("role", "user"), "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            messages.append(entry)
    return messages


class MockAnthropic(MockServer):
    """Serve scripted Anthropic Messages on a local port until stopped.

    ``script`` is the same as for :class:`~tracetape.demo.mock_openai.MockOpenAI`
    (default: the weather script). A request with ``thinking`` enabled gets a
    thinking block, with a signature, before the answer.
    """

    request_id_header = "request-id"
    model_paths = ("/v1/messages",)

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 stream_delay: float = 0.0) -> None:
        super().__init__(script or weather_script, host=host, port=port, stream_delay=stream_delay)

    def error(self, status: int, message: str, type_: str, code: str | None = None) -> Reply:
        # Anthropic names error types by status; the shared server's generic names are mapped here.
        return Reply(status, {"type": "error", "error": {"type": _ERROR_TYPES.get(status, type_), "message": message}})

    def reply(self, method: str, path: str, request: Any) -> Reply:
        if method != "POST" or not self.is_model_path(path):
            return self.error(404, f"Not found: {method} {path}", "not_found_error")
        if not isinstance(request, dict):
            return self.error(400, "Request body is not valid JSON.", "invalid_request_error")
        for field in ("model", "max_tokens", "messages"):
            if field not in request:
                return self.error(400, f"{field}: Field required", "invalid_request_error")
        chat = _chat_messages(request)
        decision = self.script({**request, "messages": chat})
        message = self._message(request, chat, decision)
        if not request.get("stream"):
            return Reply(200, message)
        return Reply(200, events=[sse_event(e, e["type"]) for e in _events(message)],
                     abort_after=decision.get("abort_after"))

    def _message(self, request: dict, chat: list[dict], decision: dict) -> dict:
        content: list[dict] = []
        if (request.get("thinking") or {}).get("type") == "enabled":
            users = [m for m in chat if m.get("role") == "user"]
            thought = _THOUGHT.format(question=text_of(users[-1]["content"]) if users else "")
            signature = hashlib.sha256(thought.encode()).hexdigest()[:48]
            content.append({"type": "thinking", "thinking": thought, "signature": signature})
        if decision.get("content") is not None:
            content.append({"type": "text", "text": decision["content"]})
        for call in decision.get("tool_calls") or []:
            arguments = call.get("arguments", {})
            content.append({"type": "tool_use", "id": f"toolu_{self._next('toolu'):04d}", "name": call["name"],
                            "input": json.loads(arguments) if isinstance(arguments, str) else arguments})
        reply = json.dumps(content)
        return {
            "id": f"msg_{self._next('msg'):04d}", "type": "message", "role": "assistant",
            "model": request.get("model", "mock-model"), "content": content,
            "stop_reason": "tool_use" if decision.get("tool_calls") else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": tokens(json.dumps(request.get("messages", []))), "output_tokens": tokens(reply),
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }


def _block_events(index: int, block: dict) -> list[dict]:
    """``content_block_start``, the deltas that fill the block in, ``content_block_stop``."""
    def delta(body: dict) -> dict:
        return {"type": "content_block_delta", "index": index, "delta": body}

    if block["type"] == "text":
        start, deltas = {"type": "text", "text": ""}, [delta({"type": "text_delta", "text": w})
                                                         for w in words(block["text"])]
    elif block["type"] == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [delta({"type": "thinking_delta", "thinking": w}) for w in words(block["thinking"])]
        deltas.append(delta({"type": "signature_delta", "signature": block["signature"]}))
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        raw = json.dumps(block["input"])
        deltas = [delta({"type": "input_json_delta", "partial_json": raw[i:i + _JSON_FRAGMENT]})
                  for i in range(0, len(raw), _JSON_FRAGMENT)]
    return [{"type": "content_block_start", "index": index, "content_block": start}, *deltas,
            {"type": "content_block_stop", "index": index}]


def _events(message: dict) -> list[dict]:
    """A finished message as the event stream that would have built it."""
    usage = message["usage"]
    opening = message | {"content": [], "stop_reason": None, "stop_sequence": None,
                         "usage": usage | {"output_tokens": 1}}
    events = [{"type": "message_start", "message": opening}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        events += _block_events(index, block)
    events.append({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": usage["output_tokens"]}})
    events.append({"type": "message_stop"})
    return events
