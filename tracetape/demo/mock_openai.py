"""A local, deterministic stand-in for an OpenAI-compatible HTTP API.

tracetape's demo and tests need "the outside world" (an LLM provider) that is
real enough for the unmodified ``openai`` SDK to talk to over a socket, yet
reproducible byte for byte so recordings and replays can be compared. Nothing
here reads the clock or randomness: ids, timestamps and token counts derive
from request order and content.

Two APIs: Chat Completions (``POST /v1/chat/completions``) and Responses
(``POST /v1/responses``), each plain or streamed as Server-Sent Events. Any
path ending in one of them is served, so Azure's
``/openai/deployments/{name}/chat/completions`` works too.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._mock_http import MAX_BODY_BYTES, MockServer, RecordedRequest, Reply, Script, sse_event, text_of, tokens, words

__all__ = ["MockOpenAI", "RecordedRequest", "weather_script", "stream_chunks", "CHAT_PATH", "RESPONSES_PATH",
           "MAX_BODY_BYTES"]

CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
CREATED = 1_700_000_000  # fixed so responses are identical across runs
_ARG_FRAGMENT = 8  # characters of tool-call arguments per stream delta, like token-sized pieces
_CITY = re.compile(r"\bin\s+([^\W\d_][\w .'-]*)", re.IGNORECASE)


def weather_script(request: dict) -> dict:
    """The default scripted model: one tool call for a weather question, then an answer quoting the tool."""
    messages = request.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    question = text_of(users[-1].get("content")) if users else ""
    match = _CITY.search(question)
    city = match.group(1).rstrip(" .'-") if match else "Paris"
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, text_of(message.get("content")))
    if results:
        return {"content": f"The weather in {city}: {'; '.join(results)}", "tool_calls": []}
    if messages and messages[-1].get("role") == "user" and "weather" in question.lower():
        return {"content": None, "tool_calls": [{"name": "get_weather", "arguments": {"city": city}}]}
    return {"content": "I can only help with the weather.", "tool_calls": []}


def _arguments(call: dict) -> str:
    # String arguments pass through untouched, so a script can emit malformed JSON on purpose.
    arguments = call.get("arguments", {})
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _responses_messages(request: dict) -> list[dict]:
    """A Responses API ``input`` as chat messages, so one script serves both APIs."""
    messages: list[dict] = []
    if request.get("instructions"):
        messages.append({"role": "system", "content": request["instructions"]})
    items = request.get("input")
    if isinstance(items, str):
        return messages + [{"role": "user", "content": items}]
    for item in items or []:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role", "user"), "content": text_of(item.get("content"))})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": str(item.get("output"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function",
                 "function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})
    return messages


class MockOpenAI(MockServer):
    """Serve scripted Chat Completions and Responses on a local port until stopped.

    ``script`` maps a chat request body to a decision ``{"content": str | None,
    "tool_calls": [{"name": str, "arguments": dict | str}], "abort_after": int}``
    (the last optional: cut a stream after that many events); the server does
    the wire format, so scripts stay short and readable. Responses API
    requests reach the script with their ``input`` rewritten as ``messages``.
    """

    model_paths = ("/chat/completions", "/responses")
    url_suffix = "/v1"

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 stream_delay: float = 0.0) -> None:
        super().__init__(script or weather_script, host=host, port=port, stream_delay=stream_delay)

    def error(self, status: int, message: str, type_: str, code: str | None = None) -> Reply:
        return Reply(status, {"error": {"message": message, "type": type_, "param": None, "code": code}})

    def reply(self, method: str, path: str, request: Any) -> Reply:
        if method != "POST" or not self.is_model_path(path):
            return self.error(404, f"Invalid URL ({method} {path})", "invalid_request_error", "unknown_url")
        if not isinstance(request, dict):
            return self.error(400, "We could not parse the JSON body of your request.", "invalid_request_error",
                              "invalid_json")
        if path.split("?")[0].endswith("/responses"):
            decision = self.script({**request, "messages": _responses_messages(request)})
            response = self._response(request, decision)
            if not request.get("stream"):
                return Reply(200, response)
            events = [sse_event(e, e["type"]) for e in _response_events(response)]
            return Reply(200, events=events, abort_after=decision.get("abort_after"))
        decision = self.script(request)
        completion = self._completion(request, decision)
        if not request.get("stream"):
            return Reply(200, completion)
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        events = [sse_event(c) for c in stream_chunks(completion, include_usage)] + [sse_event("[DONE]")]
        return Reply(200, events=events, abort_after=decision.get("abort_after"))

    def _completion(self, request: dict, decision: dict) -> dict:
        tool_calls = [
            {"id": f"call_{self._next('call')}", "type": "function",
             "function": {"name": call["name"], "arguments": _arguments(call)}}
            for call in decision.get("tool_calls") or []
        ]
        message: dict[str, Any] = {"role": "assistant", "content": decision.get("content"), "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        reply = (message["content"] or "") + "".join(c["function"]["arguments"] for c in tool_calls)
        prompt, completion = tokens(json.dumps(request.get("messages", []))), tokens(reply)
        return {
            "id": f"chatcmpl-{self._next('chatcmpl')}",
            "object": "chat.completion",
            "created": CREATED,
            "model": request.get("model", "mock-model"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    def _response(self, request: dict, decision: dict) -> dict:
        output: list[dict] = []
        if request.get("reasoning"):
            output.append({"type": "reasoning", "id": f"rs_{self._next('rs')}",
                           "summary": [{"type": "summary_text", "text": "Decide whether a tool is needed."}]})
        for call in decision.get("tool_calls") or []:
            output.append({"type": "function_call", "id": f"fc_{self._next('fc')}",
                           "call_id": f"call_{self._next('call')}", "name": call["name"],
                           "arguments": _arguments(call), "status": "completed"})
        if decision.get("content") is not None:
            output.append({"type": "message", "id": f"msg_{self._next('msg')}", "status": "completed",
                           "role": "assistant",
                           "content": [{"type": "output_text", "text": decision["content"], "annotations": []}]})
        reply = "".join(item.get("arguments") or text_of(item.get("content")) for item in output)
        prompt, completion = tokens(json.dumps(request.get("input", ""))), tokens(reply)
        return {
            "id": f"resp_{self._next('resp')}", "object": "response", "created_at": CREATED,
            "status": "completed", "error": None, "incomplete_details": None,
            "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
            "model": request.get("model", "mock-model"), "output": output, "parallel_tool_calls": True,
            "previous_response_id": request.get("previous_response_id"),
            "temperature": request.get("temperature", 1.0), "top_p": request.get("top_p", 1.0),
            "tool_choice": request.get("tool_choice", "auto"), "tools": request.get("tools", []),
            "text": {"format": {"type": "text"}}, "truncation": "disabled", "metadata": {},
            "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": prompt + completion},
        }


def stream_chunks(completion: dict, include_usage: bool) -> list[dict]:
    """Re-cut a finished completion into the deltas a real streaming provider would send."""
    choice = completion["choices"][0]
    message = choice["message"]
    deltas: list[dict] = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": word} for word in words(message["content"] or "")]
    for index, call in enumerate(message.get("tool_calls", [])):
        function = call["function"]
        deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                       "function": {"name": function["name"], "arguments": ""}}]})
        args = function["arguments"]
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": args[i:i + _ARG_FRAGMENT]}}]}
                   for i in range(0, len(args), _ARG_FRAGMENT)]
    head = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    finals = [(delta, None) for delta in deltas] + [({}, choice["finish_reason"])]
    chunks = [head | {"choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}]} for d, f in finals]
    if include_usage:
        chunks.append(head | {"choices": [], "usage": completion["usage"]})
    return chunks


def _item_events(index: int, item: dict) -> list[dict]:
    """The events that build one output item: added, its deltas, done."""
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            {"type": "response.output_item.added", "output_index": index,
             "item": item | {"status": "in_progress", "content": []}},
            {"type": "response.content_part.added", **where, "content_index": 0, "part": part},
            *({"type": "response.output_text.delta", **where, "content_index": 0, "delta": w, "logprobs": []}
              for w in words(text)),
            {"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **where, "content_index": 0, "part": item["content"][0]},
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
    if item["type"] == "function_call":
        args = item["arguments"]
        return [
            {"type": "response.output_item.added", "output_index": index,
             "item": item | {"status": "in_progress", "arguments": ""}},
            *({"type": "response.function_call_arguments.delta", **where, "delta": args[i:i + _ARG_FRAGMENT]}
              for i in range(0, len(args), _ARG_FRAGMENT)),
            {"type": "response.function_call_arguments.done", **where, "arguments": args},
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
    return [{"type": "response.output_item.added", "output_index": index, "item": item},
            {"type": "response.output_item.done", "output_index": index, "item": item}]


def _response_events(response: dict) -> list[dict]:
    """A finished Responses API object as the event stream that would have built it."""
    pending = response | {"status": "in_progress", "output": [], "usage": None}
    events = [{"type": "response.created", "response": pending}, {"type": "response.in_progress", "response": pending}]
    for index, item in enumerate(response["output"]):
        events += _item_events(index, item)
    events.append({"type": "response.completed", "response": response})
    return [{"type": e["type"], "sequence_number": n, **e} for n, e in enumerate(events)]
