"""Model calls in the OTel GenAI attribute shape: OpenAI Chat Completions, and what every API shares.

Each API module maps a request body (a dict, before it is sent) and a
response (the exact bytes received, or the stream's events) to span
attributes: messages in the GenAI role + parts shape, usage, finish reasons.
Spans carry these as previews so any OTel backend shows the conversation;
replay never reads them (it reads the exact bytes from the blobs). Everything
here is a pure function of its input, so it can run at a stream's end, on
whatever thread collected it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tracetape.schemas.attributes import (
    GEN_AI_REQUEST_STOP_SEQUENCES, GEN_AI_REQUEST_TOP_K, GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
)
from tracetape.schemas import attributes as A

from . import _json, _payload, redaction
from ._json import StrictDecodeError, strict_loads
from ._payload import cut, preview
from ._stream import sse_data

__all__ = ["input_message", "input_messages", "output_messages", "chat_request", "chat_response", "chat_stream",
           "json_preview", "json_items", "message_encoder", "tool_definitions", "sse_json", "sampling",
           "stop_sequences", "usage", "parse_arguments", "tool_call_part", "text_parts",
           "GEN_AI_REQUEST_STOP_SEQUENCES", "GEN_AI_REQUEST_TOP_K", "GEN_AI_REQUEST_FREQUENCY_PENALTY",
           "GEN_AI_REQUEST_PRESENCE_PENALTY"]


_CHAT_SAMPLING = {
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "max_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "seed": A.GEN_AI_REQUEST_SEED,
    "frequency_penalty": GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": GEN_AI_REQUEST_PRESENCE_PENALTY,
}


_encode = _json.dumps
_MEMO_ENTRIES = 256
_MEMO_CONTENT = 4096
_RECENT_TOOLS = 4
_recent_tools: tuple[tuple[Any, dict[str, Any]], ...] = ()
_redacted_items: dict[str, str] = {}  # an item's JSON -> the same redacted, for items that fit a preview
_made_under: object = None  # the redaction rules the reused previews and items were redacted under


# -- shared ------------------------------------------------------------------

def json_preview(value: Any) -> str:
    return preview(_encode(value))


def _forget_if_rules_changed() -> None:
    """Reused previews were redacted under the rules in force when they were made: new rules forget them."""
    global _made_under, _recent_tools
    rules = redaction.rules_in_force()
    if rules is not _made_under:
        _made_under, _recent_tools = rules, ()
        _redacted_items.clear()


def _redacted_item(text: str) -> str:
    """One item of a preview, redacted. An item longer than the preview is the whole preview: only the
    head that is kept is redacted (:func:`~._payload.preview`)."""
    if len(text) > _payload._preview_bytes:
        return preview(text)
    redacted = _redacted_items.get(text)
    if redacted is None:
        if len(_redacted_items) >= _MEMO_ENTRIES:
            _redacted_items.clear()
        redacted = _redacted_items[text] = redaction.redact_text(text)
    return redacted


def json_items(attribute: str, items: Sequence[Any], encode: Callable[[Any], str] = _encode,
               newest_first: bool = True) -> dict[str, Any]:
    """*attribute* set to a JSON array preview of *items*, built for no more than the preview budget.

    A conversation grows with every turn of an agent, so converting and
    encoding all of it for a 2 KB preview would make each call slower than the
    last. Whole items are kept while they fit: the newest for messages (what
    the model was answering), the first for tool definitions. The preview stays
    valid JSON, and ``tracetape.preview.truncated`` says that items were left
    out; the full request is in the ``request`` blob.

    The items kept are redacted one by one, and remembered: most of a preview is history the call
    before showed too, and redacting the preview as one text cost more than all the rest of it
    (2 KB: 13 of 15 µs). The memo is bounded and emptied when the redaction rules change.
    """
    _forget_if_rules_changed()
    budget = _payload._preview_bytes
    encoded: list[str] = []
    size = 2
    for item in reversed(items) if newest_first else items:
        text = encode(item)
        size += len(text) + 1
        if size > budget and encoded:
            break
        encoded.append(text)
    if newest_first:
        encoded.reverse()
    result: dict[str, Any] = {attribute: cut("[" + ",".join(map(_redacted_item, encoded)) + "]")}
    if len(encoded) < len(items):
        result[A.PREVIEW_TRUNCATED] = True
    return result


def message_encoder(convert: Callable[[Any], dict[str, Any]]) -> Callable[[Any], str]:
    """Encode messages in GenAI shape, remembering plain ``{role, content: str}`` ones.

    An agent resends its whole history with every call, so most messages of a
    preview were encoded for the call before; the memo is keyed by (role,
    content), bounded, and skips long contents. The same text object comes
    back, so the redaction memo of :func:`json_items` finds it at once.
    """
    memo: dict[tuple[Any, str], str] = {}

    def encode(message: Any) -> str:
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, str) or len(message) != 2 or len(content) > _MEMO_CONTENT:
            return _encode(convert(message))
        key = (message.get("role"), content)
        text = memo.get(key)
        if text is None:
            if len(memo) >= _MEMO_ENTRIES:
                memo.clear()
            text = memo[key] = _encode(convert(message))
        return text

    return encode


def tool_definitions(tools: Any) -> dict[str, Any]:
    """The tool-definitions preview; an agent sends the same tools every call, so the last few are reused.

    Equality of the plain data (a C-speed comparison) decides, never identity:
    the SDKs rebuild the request dicts for every call. Reused previews were
    redacted under the rules in force when they were made, so a change of
    rules forgets them.
    """
    global _recent_tools
    if not isinstance(tools, (list, tuple)):
        return {}
    _forget_if_rules_changed()
    for seen, attributes in _recent_tools:
        if seen == tools:
            return attributes
    attributes = json_items(A.GEN_AI_TOOL_DEFINITIONS, tools, newest_first=False)
    _recent_tools = ((tools, attributes),) + _recent_tools[:_RECENT_TOOLS - 1]
    return attributes


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as data when they are JSON, else as sent (models do emit broken JSON)."""
    if isinstance(arguments, str):
        try:
            return _json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def sampling(body: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The numeric sampling parameters of *body* under their GenAI names."""
    found: dict[str, Any] = {}
    for key, attribute in names.items():
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[attribute] = value
    return found


def stop_sequences(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {GEN_AI_REQUEST_STOP_SEQUENCES: [value]}
    if isinstance(value, (list, tuple)) and value:
        return {GEN_AI_REQUEST_STOP_SEQUENCES: [str(v) for v in value]}
    return {}


def usage(input_tokens: Any, output_tokens: Any) -> dict[str, int]:
    return {A.GEN_AI_USAGE_INPUT_TOKENS: int(input_tokens or 0), A.GEN_AI_USAGE_OUTPUT_TOKENS: int(output_tokens or 0)}


def sse_json(events: Sequence[bytes]) -> list[tuple[str, Any]]:
    """(event name, parsed data) for each event that carries JSON; ``[DONE]`` and pings without data skip.

    Events that are each one ``data:`` line (OpenAI's chat stream) are parsed as one JSON array: one C
    call instead of one per event. Any other shape, or a payload that is not JSON, takes the slow path,
    event by event, where a payload that is not JSON alone is skipped.
    """
    plain = _plain_data_payloads(events)
    if plain is not None:
        return [("", value) for value in plain]
    names: list[str] = []
    payloads: list[bytes] = []
    for event in events:
        # Fast paths for the two shapes providers send; anything else goes through the full parser.
        if event.startswith(b"data: {") and event.count(b"\n") == 2:
            name, data = "", event[6:]
        elif event.startswith(b"event: ") and event.count(b"\n") == 3 and b"\ndata: {" in event:
            cut = event.index(b"\ndata: ")
            name, data = event[7:cut].decode(), event[cut + 7:]
        else:
            name, text = sse_data(event)
            if not text.startswith(("{", "[")) or text.startswith("[DONE]"):
                continue
            data = text.encode()
        names.append(name)
        payloads.append(data)
    try:
        values = _json.loads(b"[" + b",".join(payloads) + b"]")
        if len(values) == len(names):  # else a payload held more than one value (``{},{}``), no JSON
            return list(zip(names, values))
    except ValueError:
        pass
    parsed = []
    for name, data in zip(names, payloads):
        try:
            parsed.append((name, _json.loads(data)))
        except ValueError:
            continue
    return parsed


_DONE = b"data: [DONE]\n\n"
_SEPARATOR = b"\n\ndata: "


def _plain_data_payloads(events: Sequence[bytes]) -> list[Any] | None:
    """The parsed payloads of events that are each one ``data:`` line of JSON, made without a Python step
    per event; ``None`` for any other shape.

    Every event ends with its blank line, so turning each blank line and the ``data:`` after it into a
    comma makes one JSON array of the payloads. *n* events of one ``data:`` line each are exactly what
    leaves *n - 1* such separators and no other newline, and a payload that is one JSON value each is
    exactly what parses into *n* values (a payload like ``1,2`` would make two).
    """
    count = len(events) - (1 if events and events[-1] == _DONE else 0)
    if not count:
        return None
    whole = b"".join(events[:count])
    inner = whole[6:-2].replace(_SEPARATOR, b",")
    if not whole.startswith(b"data: ") or not whole.endswith(b"\n\n") or b"\n" in inner \
            or len(inner) != len(whole) - 8 - 7 * (count - 1):
        return None
    try:
        values = strict_loads(b"[" + inner + b"]")
    except StrictDecodeError:
        return None
    return values if len(values) == count else None


def text_parts(content: Any) -> list[dict[str, Any]]:
    """Message content (a string or content parts) as GenAI parts; non-text parts keep only their type."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for item in content if isinstance(content, list) else [content]:
        if isinstance(item, Mapping) and item.get("type") in ("text", "input_text", "output_text"):
            parts.append({"type": "text", "content": item.get("text", "")})
        else:
            parts.append({"type": str(item.get("type", "unknown")) if isinstance(item, Mapping) else "unknown"})
    return parts


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": parse_arguments(arguments)}


# -- OpenAI Chat Completions -------------------------------------------------

def _tool_call_parts(tool_calls: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    parts = []
    for call in tool_calls or ():
        function = call.get("function") or {}
        parts.append(tool_call_part(call.get("id"), function.get("name"), function.get("arguments")))
    return parts


def input_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    if role == "tool":
        return {"role": role, "parts": [{"type": "tool_call_response", "id": message.get("tool_call_id"),
                                         "response": message.get("content")}]}
    return {"role": role, "parts": text_parts(message.get("content")) + _tool_call_parts(message.get("tool_calls"))}


def input_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [input_message(message) for message in messages]


_chat_messages = message_encoder(input_message)


def output_messages(choices: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for choice in choices:
        message = choice.get("message") or {}
        result.append({
            "role": message.get("role", "assistant"),
            "parts": text_parts(message.get("content")) + _tool_call_parts(message.get("tool_calls")),
            "finish_reason": choice.get("finish_reason"),
        })
    return result


def chat_request(body: Mapping[str, Any]) -> dict[str, Any]:
    attributes = sampling(body, _CHAT_SAMPLING) | stop_sequences(body.get("stop"))
    messages = body.get("messages")
    if isinstance(messages, (list, tuple)):
        attributes.update(json_items(A.GEN_AI_INPUT_MESSAGES, messages, _chat_messages))
    return attributes | tool_definitions(body.get("tools"))


def chat_body(body: Mapping[str, Any]) -> dict[str, Any]:
    choices = body.get("choices") or []
    counts = body.get("usage") or {}
    return {
        A.GEN_AI_RESPONSE_ID: str(body.get("id", "")),
        A.GEN_AI_RESPONSE_MODEL: str(body.get("model", "")),
        A.GEN_AI_RESPONSE_FINISH_REASONS: [str(c["finish_reason"]) for c in choices if c.get("finish_reason")],
        A.GEN_AI_OUTPUT_MESSAGES: json_preview(output_messages(choices)),
        **usage(counts.get("prompt_tokens"), counts.get("completion_tokens")),
    }


def chat_response(data: bytes) -> dict[str, Any]:
    return chat_body(_json.loads(data))


def _fold_delta(slot: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """The parts of a delta other than its text: the role, pieces of tool calls."""
    if delta.get("role"):
        slot["role"] = delta["role"]
    for call in delta.get("tool_calls") or ():
        entry = slot["calls"].setdefault(call.get("index", 0), {"id": None, "name": "", "arguments": []})
        function = call.get("function") or {}
        entry["id"] = call.get("id") or entry["id"]
        entry["name"] += function.get("name") or ""
        entry["arguments"].append(function.get("arguments") or "")


def chat_stream(events: Sequence[bytes]) -> dict[str, Any]:
    """Fold ``chat.completion.chunk`` events into what the non-streamed call would have answered.

    Nearly every chunk is one choice whose delta is a piece of text; that case takes the fewest steps.
    """
    chunks = [chunk for _, chunk in sse_json(events) if isinstance(chunk, dict)]
    head: dict[str, Any] = {"id": chunks[0].get("id"), "model": chunks[0].get("model")} if chunks else {}
    slots: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.get("usage"):
            head["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            slot = slots.get(index)
            if slot is None:
                slot = slots[index] = {"role": "assistant", "content": [], "calls": {}, "finish_reason": None}
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                slot["content"].append(content)
            if len(delta) > 1 or not content:
                _fold_delta(slot, delta)
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]
    choices = [{
        "index": index,
        "message": {
            "role": slot["role"],
            "content": "".join(slot["content"]) or None,
            "tool_calls": [{"id": c["id"], "type": "function",
                            "function": {"name": c["name"], "arguments": "".join(c["arguments"])}}
                           for _, c in sorted(slot["calls"].items())],
        },
        "finish_reason": slot["finish_reason"],
    } for index, slot in sorted(slots.items())]
    return chat_body({**head, "choices": choices})
