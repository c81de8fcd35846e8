"""Every way a stream can end ends its model-call span exactly once, with what was received so far.

Both SDKs, sync and async, against their local mocks: read to the end, break and
``close()``/``aclose()``, break inside ``with``/``async with``, break and drop
the stream (garbage collection), and a provider that cuts the connection.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import time
from typing import Any, Callable

import anthropic
import httpx2
import openai
import pytest

from model_support import Recording, recording  # noqa: F401
from tracetape.demo.mock_anthropic import MockAnthropic
from tracetape.demo._mock_http import sse_event
from tracetape.demo.mock_openai import MockOpenAI, stream_chunks, weather_script
from tracetape.instrumentation import seam
from tracetape.schemas import attributes as A

QUESTION = [{"role": "user", "content": "What's the weather in Lisbon?"}]
TOOL_ROUND = QUESTION + [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny and warm with a light breeze from the west"},
]
ANTHROPIC_ROUND = [
    {"role": "user", "content": "What's the weather in Lisbon?"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                       "input": {"city": "Lisbon"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                  "content": "Sunny and warm with a light breeze from the west"}]},
]
EXITS = ["exhausted", "break_close", "break_with", "break_gc", "cut_off"]


def _cut_after(events: int) -> Callable[[dict], dict]:
    def script(request: dict) -> dict:
        return weather_script(request) | {"abort_after": events}
    return script


def _open(sdk: str, mock: Any, asynchronous: bool) -> tuple[Any, Callable[[], Any]]:
    """A client of *sdk* and a function that starts one streamed call (a coroutine for an async client)."""
    if sdk == "openai":
        client = (openai.AsyncOpenAI if asynchronous else openai.OpenAI)(base_url=mock.base_url, api_key="sk-test",
                                                                          max_retries=0)
        return client, lambda: client.chat.completions.create(model="gpt-4o", messages=TOOL_ROUND, stream=True)
    claude = (anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic)(base_url=mock.base_url,
                                                                                  api_key="sk-ant-test", max_retries=0)
    return claude, lambda: claude.messages.create(model="claude-test-model", max_tokens=256,
                                                  messages=ANTHROPIC_ROUND, stream=True)


def _mock(sdk: str, exit: str) -> Any:
    script = _cut_after(3) if exit == "cut_off" else None
    return (MockOpenAI if sdk == "openai" else MockAnthropic)(script)


def _consume_sync(exit: str, start: Callable[[], Any]) -> int:
    """Leave the stream the given way; returns how many items the caller got."""
    got = 0
    if exit == "break_with":
        with start() as stream:
            for _ in stream:
                got += 1
                break
        return got
    stream = start()
    try:
        for _ in stream:
            got += 1
            if exit != "exhausted" and exit != "cut_off":
                break
    except Exception as exc:  # the SDKs raise their own or httpx2's error for a cut connection
        assert exit == "cut_off", exc
    if exit == "break_close":
        stream.close()
    del stream
    gc.collect()
    return got


async def _consume_async(exit: str, start: Callable[[], Any]) -> int:
    got = 0
    if exit == "break_with":
        async with await start() as stream:
            async for _ in stream:
                got += 1
                break
        return got
    stream = await start()
    try:
        async for _ in stream:
            got += 1
            if exit != "exhausted" and exit != "cut_off":
                break
    except Exception as exc:
        assert exit == "cut_off", exc
    if exit == "break_close":
        await stream.close()
    del stream
    # The loop first closes the SDK's iteration generator (its finalizer is scheduled on the loop, and it
    # holds the stream); then the stream is garbage, and the loop closes the generator reading the body.
    for _ in range(2):
        await asyncio.sleep(0.01)
        gc.collect()
        await asyncio.sleep(0.01)
    return got


def _check(recording: Recording, exit: str, got: int) -> None:
    spans = recording.calls()
    assert len(spans) == 1, "one span per stream, ended exactly once"
    (span,) = spans
    attributes = span.attributes
    completed = attributes["tracetape.stream.completed"]
    assert completed is (exit == "exhausted")
    raw = recording.blob(span, seam.RESPONSE)
    lines = recording.chunks(span)
    assert b"".join(event for _, event in lines) == raw
    assert len(lines) == attributes["tracetape.stream.chunks"] >= 1
    if exit == "cut_off":
        assert span.status.status_code.name == "ERROR" and attributes[A.ERROR_TYPE]
        assert len(lines) == 3, "the events that arrived before the connection dropped"
    else:
        assert span.status.status_code.name == "UNSET"
    if exit == "exhausted":
        assert got >= 5 and json.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"].startswith(
            "The weather in Lisbon")
    # Nothing ends it a second time: later exits are no-ops.
    gc.collect()
    assert len(recording.calls()) == 1


@pytest.mark.parametrize("exit", EXITS)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_sync_stream_exit(recording: Recording, sdk: str, exit: str) -> None:
    with _mock(sdk, exit) as mock:
        client, start = _open(sdk, mock, asynchronous=False)
        with client:
            got = _consume_sync(exit, start)
            _check(recording, exit, got)  # before the client closes: the exit itself ended the span


@pytest.mark.parametrize("exit", EXITS)
@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_async_stream_exit(recording: Recording, sdk: str, exit: str) -> None:
    async def run(mock: Any) -> int:
        client, start = _open(sdk, mock, asynchronous=True)
        async with client:
            got = await _consume_async(exit, start)
            _check(recording, exit, got)  # before the client closes: the exit itself ended the span
            return got

    with _mock(sdk, exit) as mock:
        asyncio.run(run(mock))


def test_a_dropped_stream_ends_when_it_was_last_read_not_when_collected(recording: Recording,
                                                                         mock_openai) -> None:
    """No with, no close: the caller takes one chunk and forgets the stream; the collector finds it later."""
    with openai.OpenAI(base_url=mock_openai.base_url, api_key="sk-test", max_retries=0) as client:
        def peek() -> str:
            stream = client.chat.completions.create(model="gpt-4o", messages=TOOL_ROUND, stream=True)
            return next(iter(stream)).id

        response_id = peek()
        time.sleep(0.5)
        gc.collect()
    (span,) = recording.calls()
    assert span.attributes[A.GEN_AI_RESPONSE_ID] == response_id
    assert span.attributes["tracetape.stream.completed"] is False
    assert (span.end_time - span.start_time) / 1e9 < 0.4


def test_a_compressed_stream_is_recorded_as_the_events_the_sdk_read(recording: Recording) -> None:
    """A provider may gzip its event stream; the events are cut and recorded decoded, read in small pieces."""
    with MockOpenAI() as mock:
        completion = mock._completion({"model": "gpt-4o", "messages": TOOL_ROUND},
                                      weather_script({"messages": TOOL_ROUND}))
    body = b"".join(sse_event(chunk) for chunk in stream_chunks(completion, False)) + sse_event("[DONE]")
    compressed = gzip.compress(body)

    class Trickle(httpx2.SyncByteStream):
        def __iter__(self) -> Any:
            for start in range(0, len(compressed), 7):
                yield compressed[start:start + 7]

    def provider(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=Trickle(),
                               headers={"content-type": "text/event-stream", "content-encoding": "gzip"})

    with openai.OpenAI(base_url="http://provider.test/v1", api_key="sk-test", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(provider))) as client:
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=TOOL_ROUND, stream=True))
    (span,) = recording.calls()
    assert recording.blob(span, seam.RESPONSE) == body
    assert span.attributes["tracetape.stream.chunks"] == len(chunks) + 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"] == text
