"""The real openai SDK (3.x on httpx2) against the local mock: what a model-call event holds,
and the same calls served back through the replay seam without reaching the provider."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from model_support import Recording, TapePlayer, _exporter, model_spans, recording  # noqa: F401
from tracetape.demo._mock_http import sse_event
from tracetape.demo.mock_openai import MockOpenAI, stream_chunks
from tracetape.instrumentation import _nesting, seam
from tracetape.instrumentation.http import HTTPInstrumentor
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

AGENTS = Path(__file__).parents[1] / "agents"
MODEL = "gpt-4o"
CHAT_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
RESPONSE_TOOLS = [{"type": "function", "name": "get_weather", "description": "Current weather for a city.",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
QUESTION = [{"role": "system", "content": "Use the tools."}, {"role": "user", "content": "What's the weather in Oslo?"}]


def client_for(mock: MockOpenAI, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.base_url, api_key="sk-test", max_retries=0, **kwargs)


def async_client_for(mock: MockOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=mock.base_url, api_key="sk-test", max_retries=0)


def test_chat_completion_records_exact_bytes_and_genai_attributes(recording: Recording, mock_openai) -> None:
    with client_for(mock_openai) as client:
        reply = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=CHAT_TOOLS, temperature=0.3,
                                               top_p=0.9, seed=42, max_tokens=64, stop=["END"])
    (span,) = recording.calls()
    assert span.name == "chat gpt-4o"
    attributes = span.attributes
    assert (attributes[A.GEN_AI_OPERATION_NAME], attributes[A.GEN_AI_PROVIDER_NAME]) == ("chat", "openai")
    assert (attributes[A.GEN_AI_REQUEST_TEMPERATURE], attributes[A.GEN_AI_REQUEST_TOP_P]) == (0.3, 0.9)
    assert (attributes[A.GEN_AI_REQUEST_SEED], attributes[A.GEN_AI_REQUEST_MAX_TOKENS]) == (42, 64)
    assert attributes["gen_ai.request.stop_sequences"] == ("END",)
    assert attributes["server.address"] == "127.0.0.1" and attributes["http.response.status_code"] == 200
    assert attributes["tracetape.response.request_id"] == "req_1"

    # The request blob is the body exactly as sent; the response blob exactly as received.
    assert recording.blob(span, seam.REQUEST) == mock_openai.requests[0].body
    response = json.loads(recording.blob(span, seam.RESPONSE))
    assert response["id"] == reply.id and response["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"

    inputs = json.loads(attributes[A.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["system", "user"] and "Oslo" in inputs[1]["parts"][0]["content"]
    assert json.loads(attributes[A.GEN_AI_TOOL_DEFINITIONS]) == CHAT_TOOLS
    (output,) = json.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert output["parts"] == [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                                "arguments": {"city": "Oslo"}}]
    assert attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert attributes[A.GEN_AI_RESPONSE_ID] == reply.id
    assert reply.usage is not None
    assert attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == reply.usage.prompt_tokens
    assert attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == reply.usage.completion_tokens


def test_long_conversation_preview_keeps_the_newest_messages_within_budget(recording: Recording,
                                                                            mock_openai) -> None:
    history = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i} " + "x" * 300} for i in range(40)]
    with client_for(mock_openai) as client:
        client.chat.completions.create(model=MODEL, messages=history + [QUESTION[1]])
    (span,) = recording.calls()
    preview = json.loads(span.attributes[A.GEN_AI_INPUT_MESSAGES])  # still valid JSON
    assert 1 < len(preview) < 41 and len(span.attributes[A.GEN_AI_INPUT_MESSAGES]) <= 2048
    assert "Oslo" in preview[-1]["parts"][0]["content"]
    assert span.attributes[A.PREVIEW_TRUNCATED] is True
    assert len(json.loads(recording.blob(span, seam.REQUEST))["messages"]) == 41  # the blob has it all


def test_async_chat_completion(recording: Recording, mock_openai) -> None:
    async def run() -> str:
        async with async_client_for(mock_openai) as client:
            reply = await client.chat.completions.create(model=MODEL, messages=QUESTION, tools=CHAT_TOOLS)
            return reply.id

    reply_id = asyncio.run(run())
    (span,) = recording.calls()
    assert span.attributes[A.GEN_AI_RESPONSE_ID] == reply_id
    assert recording.blob(span, seam.REQUEST) == mock_openai.requests[0].body


def _finished_calls(within_s: float) -> int:
    """How many model-call spans have ended, polled without flushing anything (bounded wait)."""
    deadline = time.monotonic() + within_s
    while True:
        ended = len(model_spans(list(_exporter.get_finished_spans())))
        if ended or time.monotonic() > deadline:
            return ended
        time.sleep(0.01)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_call_has_its_whole_event_when_it_returns(recording: Recording, mock_openai, asynchronous: bool) -> None:
    """No flush, no wait: the span has ended, with its payloads and usage, by the time the SDK returns."""
    if asynchronous:
        async def call() -> None:
            async with async_client_for(mock_openai) as client:
                await client.chat.completions.create(model=MODEL, messages=QUESTION)
                assert _finished_calls(0.0) == 1

        asyncio.run(call())
    else:
        with client_for(mock_openai) as client:
            client.chat.completions.create(model=MODEL, messages=QUESTION)
            assert _finished_calls(0.0) == 1
    (span,) = model_spans(list(_exporter.get_finished_spans()))
    assert span.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] > 0 and A.blob_attr(seam.RESPONSE) in span.attributes


def test_chat_stream_output_is_assembled_from_the_chunks(recording: Recording, mock_openai) -> None:
    with client_for(mock_openai) as client:
        stream = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=CHAT_TOOLS, stream=True,
                                                stream_options={"include_usage": True})
        chunks = list(stream)
    (span,) = recording.calls()
    attributes = span.attributes
    assert attributes["tracetape.stream.completed"] is True
    raw = recording.blob(span, seam.RESPONSE)
    assert raw.endswith(b"data: [DONE]\n\n") and raw.count(b"\n\n") == len(chunks) + 1
    recorded = recording.chunks(span)
    assert len(recorded) == attributes["tracetape.stream.chunks"] == len(chunks) + 1 >= 6
    assert [json.loads(event[6:])["id"] for _, event in recorded[:-1]] == [chunk.id for chunk in chunks]
    offsets = [offset for offset, _ in recorded]
    assert offsets == sorted(offsets) and offsets[0] > 0
    (output,) = json.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert output["parts"] == [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                                "arguments": {"city": "Oslo"}}]
    assert attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    usage = chunks[-1].usage
    assert usage is not None and attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == usage.completion_tokens


def test_keep_alive_comments_in_a_stream_change_nothing_in_its_attributes(recording: Recording) -> None:
    """Some OpenAI-compatible providers send ``: keep-alive`` comments between chunks; the SDK skips them,
    and the call's GenAI attributes are those of the same stream without them."""
    with MockOpenAI() as mock:
        completion = mock._completion({"model": MODEL, "messages": QUESTION}, {"content": "Sunny, 21 C.",
                                                                              "tool_calls": []})
    events = [sse_event(chunk) for chunk in stream_chunks(completion, True)] + [sse_event("[DONE]")]
    chatty = [piece for event in events for piece in (b": keep-alive\n\n", event)]

    class Events(httpx2.SyncByteStream):
        def __init__(self, pieces: list[bytes]) -> None:
            self.pieces = pieces

        def __iter__(self) -> Any:
            yield from self.pieces

    def provider(request: httpx2.Request) -> httpx2.Response:
        pieces = chatty if request.headers.get("x-chatty") else events
        return httpx2.Response(200, stream=Events(pieces), headers={"content-type": "text/event-stream"})

    texts = []
    with openai.OpenAI(base_url="http://provider.test/v1", api_key="sk-test", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(provider))) as client:
        for headers in ({}, {"x-chatty": "1"}):
            chunks = client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True, extra_headers=headers,
                                                    stream_options={"include_usage": True})
            texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    plain, chatty_span = recording.calls()
    assert texts == ["Sunny, 21 C."] * 2
    assert chatty_span.attributes["tracetape.stream.chunks"] == 2 * len(events)
    keys = (A.GEN_AI_OUTPUT_MESSAGES, A.GEN_AI_RESPONSE_FINISH_REASONS, A.GEN_AI_RESPONSE_ID,
            A.GEN_AI_USAGE_INPUT_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS)
    assert json.loads(plain.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "Sunny, 21 C."
    assert [plain.attributes[k] for k in keys] == [chatty_span.attributes[k] for k in keys]


def test_responses_api_plain_streamed_and_async(recording: Recording, mock_openai) -> None:
    with client_for(mock_openai) as client:
        first = client.responses.create(model=MODEL, input="weather in Oslo?", tools=RESPONSE_TOOLS,
                                        reasoning={"effort": "low"}, temperature=0.5)
        call = first.output[-1]
        follow_up = [{"role": "user", "content": "weather in Oslo?"}, call.model_dump(exclude_none=True),
                     {"type": "function_call_output", "call_id": call.call_id, "output": "Clear, 4 C"}]
        with client.responses.stream(model=MODEL, input=follow_up, tools=RESPONSE_TOOLS) as stream:
            for _ in stream:
                pass
            final = stream.get_final_response()

    async def run() -> str:
        async with async_client_for(mock_openai) as client:
            events = await client.responses.create(model=MODEL, input="hello", stream=True)
            return "".join([e.delta async for e in events if e.type == "response.output_text.delta"])

    text = asyncio.run(run())
    plain, streamed, streamed_async = recording.calls()
    assert plain.attributes[A.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert plain.attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_call",)
    parts = json.loads(plain.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"]
    assert [p["type"] for p in parts] == ["reasoning", "tool_call"] and parts[1]["arguments"] == {"city": "Oslo"}
    assert json.loads(recording.blob(plain, seam.RESPONSE))["id"] == first.id

    assert streamed.attributes["tracetape.stream.completed"] is True
    assert json.loads(streamed.attributes[A.GEN_AI_INPUT_MESSAGES])[-1]["role"] == "tool"
    (output,) = json.loads(streamed.attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert output["parts"] == [{"type": "text", "content": final.output_text}]
    assert output["finish_reason"] == "stop"
    assert recording.blob(streamed, seam.RESPONSE).startswith(b"event: response.created\n")

    assert json.loads(streamed_async.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == text
    assert streamed_async.attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


def test_azure_client_is_reported_as_azure(recording: Recording, mock_openai) -> None:
    endpoint = mock_openai.base_url.removesuffix("/v1")
    with openai.AzureOpenAI(azure_endpoint=endpoint, api_key="azure-key", api_version="2024-06-01",
                            max_retries=0) as client:
        client.chat.completions.create(model="my-deployment", messages=QUESTION)
    (span,) = recording.calls()
    assert span.attributes[A.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert mock_openai.requests[0].path.startswith("/openai/deployments/my-deployment/chat/completions")
    assert recording.blob(span, seam.REQUEST) == mock_openai.requests[0].body


def test_provider_error_is_recorded_and_raised_unchanged(recording: Recording) -> None:
    def failing(request: dict) -> dict:
        raise RuntimeError("model overloaded")

    with MockOpenAI(failing) as mock, client_for(mock) as client:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model=MODEL, messages=QUESTION)
    (span,) = recording.calls()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[A.ERROR_TYPE] == "InternalServerError"
    assert span.attributes["http.response.status_code"] == 500
    recorded = json.loads(recording.blob(span, seam.RESPONSE))["error"]["message"]
    assert "model overloaded" in recorded and info.value.message.endswith(recorded)


def test_unreachable_provider_records_the_request_and_the_error(recording: Recording) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model=MODEL, messages=QUESTION)
    (span,) = recording.calls()
    assert span.attributes[A.ERROR_TYPE] == "APIConnectionError"
    assert json.loads(recording.blob(span, seam.REQUEST))["messages"] == QUESTION
    assert A.blob_attr(seam.RESPONSE) not in span.attributes


def test_other_endpoints_are_not_model_calls(recording: Recording, mock_openai) -> None:
    with client_for(mock_openai) as client:
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert recording.calls() == []


def test_the_http_request_runs_inside_the_model_call_and_no_http_event_is_recorded(recording: Recording,
                                                                                    mock_openai) -> None:
    seen: list[bool] = []
    http_client = httpx2.Client(event_hooks={"request": [lambda request: seen.append(_nesting.inside_model_call())]})
    http = HTTPInstrumentor()
    http.instrument()
    try:
        with client_for(mock_openai, http_client=http_client) as client:
            client.chat.completions.create(model=MODEL, messages=QUESTION)
    finally:
        http.uninstrument()
    assert seen == [True] and not _nesting.inside_model_call()
    kinds = [s.attributes.get(A.EVENT_KIND) for s in recording.spans()]
    assert kinds == [EventKind.MODEL_CALL.value], "the SDK's own HTTP exchange must not be a second event"


@pytest.mark.parametrize("package", ["opentelemetry.instrumentation.openai",  # OpenLLMetry
                                     "opentelemetry.instrumentation.genai.openai",  # official OpenTelemetry
                                     "openinference.instrumentation.openai"])
def test_alongside_other_openai_instrumentations_one_event_per_call(mock_openai, package: str) -> None:
    done = subprocess.run([sys.executable, str(AGENTS / "model_alongside.py"), package], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, OPENAI_BASE_URL=mock_openai.base_url))
    assert done.returncode == 0, done.stderr
    spans = json.loads(done.stdout.strip().splitlines()[-1])["spans"]
    ours = [s for s in spans if s["scope"] == "tracetape"]
    theirs = [s for s in spans if s["scope"] != "tracetape"]
    assert [s["kind"] for s in ours] == [EventKind.MODEL_CALL.value] * 2
    assert all(s["blobs"] for s in ours) and not any(s["blobs"] for s in theirs)
    assert len(theirs) == 2, "their span per call is kept alongside"
    assert {s["kind"] for s in theirs} <= {None, EventKind.OTHER.value}, "and is not a second model-call event"
    assert {s["parent"] for s in ours} == {s["span_id"] for s in theirs}, "they wrap the call, ours is inside"
    assert mock_openai.call_count == 2


# -- serving recorded calls back through the seam -------------------------------------------------

def _calls(client: openai.OpenAI) -> list[object]:
    """A chat call, a streamed chat call and a streamed Responses call, each as the SDK returns it."""
    plain = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=CHAT_TOOLS)
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))
    with client.responses.stream(model=MODEL, input="hello") as stream:
        events = list(stream)
    return [plain, chunks, events]


def test_recorded_calls_are_served_without_reaching_the_provider(recording: Recording, mock_openai) -> None:
    with client_for(mock_openai) as client:
        recorded = _calls(client)
    spans = recording.calls()
    assert mock_openai.call_count == 3
    player = TapePlayer([recording.served(span) for span in spans])
    with player, client_for(mock_openai) as client:
        replayed = _calls(client)
    assert mock_openai.call_count == 3, "replay must not reach the provider"
    assert replayed == recorded
    assert [name for _, name, _ in player.asked] == [s.name for s in spans]
    assert [request for _, _, request in player.asked] == [r.body for r in mock_openai.requests]
    # The replayed calls are recorded too, with the same payloads.
    again = recording.calls()[3:]
    assert [recording.blob(s, seam.RESPONSE) for s in again] == [recording.blob(s, seam.RESPONSE) for s in spans]


def test_async_calls_are_served_without_reaching_the_provider(recording: Recording, mock_openai) -> None:
    async def run() -> list[object]:
        async with async_client_for(mock_openai) as client:
            plain = await client.chat.completions.create(model=MODEL, messages=QUESTION, tools=CHAT_TOOLS)
            stream = await client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
            return [plain, [chunk async for chunk in stream]]

    recorded = asyncio.run(run())
    player = TapePlayer([recording.served(span) for span in recording.calls()])
    with player:
        replayed = asyncio.run(run())
    assert replayed == recorded and mock_openai.call_count == 2


def test_served_errors_are_raised_as_the_sdk_raised_them(recording: Recording, mock_openai) -> None:
    failing = seam.Served(error_type="APIConnectionError", error_message="Connection error.")
    status = seam.Served(response=json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode(),
                         error_type="RateLimitError", error_message="slow down",
                         attributes={"http.response.status_code": "429"})
    player = TapePlayer([failing, status])
    with player, openai.OpenAI(base_url=mock_openai.base_url, api_key="sk-test", max_retries=3) as client:
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model=MODEL, messages=QUESTION)
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(model=MODEL, messages=QUESTION)
    assert info.value.status_code == 429 and info.value.message.endswith("slow down")
    assert len(player.asked) == 2, "a served error is final: the SDK does not retry it"
    assert mock_openai.call_count == 0


def test_streams_are_served_at_the_recorded_pace_when_asked(recording: Recording) -> None:
    def chatty(request: dict) -> dict:
        return {"content": "one two three four five six", "tool_calls": []}

    with MockOpenAI(chatty, stream_delay=0.04) as mock, client_for(mock) as client:
        recorded = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))
    (span,) = recording.calls()
    recorded_ms = json.loads(span.attributes["tracetape.stream.offsets_ms"])[-1]
    assert recorded_ms >= 8 * 40 * 0.9

    timings = {}
    for pace in ("recorded", "fast"):
        with TapePlayer([recording.served(span, **{"tracetape.replay.pace": pace})]), \
                openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0) as client:
            started = time.perf_counter()
            replayed = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))
            timings[pace] = (time.perf_counter() - started) * 1000
        assert replayed == recorded
    assert timings["recorded"] >= recorded_ms * 0.9
    assert timings["fast"] < recorded_ms / 2
