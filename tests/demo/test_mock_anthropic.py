"""The Anthropic mock must be indistinguishable from the Messages API as far as the real anthropic SDK can tell."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import pytest

from tracetape.demo.mock_anthropic import MockAnthropic
from tracetape.demo.mock_openai import weather_script

MODEL = "claude-test-model"
TOOLS = [{"name": "get_weather", "description": "Current weather for a city.",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
QUESTION = {"role": "user", "content": "What's the weather in Lisbon?"}


@pytest.fixture
def mock() -> Iterator[MockAnthropic]:
    with MockAnthropic() as server:
        yield server


def client_for(mock: MockAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.base_url, api_key="sk-ant-test", max_retries=0)


def test_tool_use_loop(mock: MockAnthropic) -> None:
    with client_for(mock) as client:
        first = client.messages.create(model=MODEL, max_tokens=256, messages=[QUESTION], tools=TOOLS,
                                       system="Use tools.")
        (call,) = first.content
        assert (first.stop_reason, call.type, call.name, call.input) == ("tool_use", "tool_use", "get_weather",
                                                                         {"city": "Lisbon"})
        assert first.id == "msg_0001" and call.id == "toolu_0001" and first.model == MODEL
        final = client.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=[
            QUESTION, {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}]}])
    assert final.stop_reason == "end_turn" and final.content[0].text == "The weather in Lisbon: Sunny"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    assert mock.call_count == 2
    headers = mock.requests[0].headers
    assert "sk-ant-test" in headers.get("x-api-key", headers.get("authorization", "")) and headers["anthropic-version"]
    assert mock.requests[0].json["system"] == "Use tools."


def test_thinking_block_only_when_enabled(mock: MockAnthropic) -> None:
    with client_for(mock) as client:
        thought = client.messages.create(model=MODEL, max_tokens=2048, messages=[QUESTION],
                                         thinking={"type": "enabled", "budget_tokens": 1024})
        plain = client.messages.create(model=MODEL, max_tokens=256, messages=[QUESTION])
    assert [b.type for b in thought.content] == ["thinking", "tool_use"]
    assert "Lisbon" in thought.content[0].thinking and thought.content[0].signature
    assert [b.type for b in plain.content] == ["tool_use"]


def test_stream_builds_the_same_message(mock: MockAnthropic) -> None:
    kwargs = {"model": MODEL, "max_tokens": 2048, "messages": [QUESTION], "tools": TOOLS,
              "thinking": {"type": "enabled", "budget_tokens": 1024}}
    with client_for(mock) as client:
        plain = client.messages.create(**kwargs)
        with client.messages.stream(**kwargs) as stream:
            events = [event.type for event in stream]
            streamed = stream.get_final_message()
        raw = [event.type for event in client.messages.create(**kwargs, stream=True)]
    assert [b.model_dump() for b in streamed.content][0]["thinking"] == plain.content[0].thinking
    assert streamed.content[1].input == plain.content[1].input == {"city": "Lisbon"}
    assert streamed.content[0].signature == plain.content[0].signature
    assert raw[0] == "message_start" and raw[-2:] == ["message_delta", "message_stop"]
    assert raw.count("content_block_start") == raw.count("content_block_stop") == 2
    assert "content_block_delta" in events and streamed.stop_reason == "tool_use"


def test_responses_are_deterministic() -> None:
    bodies = []
    for _ in range(2):
        with MockAnthropic() as mock, client_for(mock) as client:
            raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=[QUESTION])
            bodies.append((raw.http_response.content, raw.headers["request-id"]))
    assert bodies[0] == bodies[1] and bodies[0][1] == "req_1"


def test_errors_have_anthropic_shape(mock: MockAnthropic) -> None:
    with client_for(mock) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            client.models.list()
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.post("/v1/messages", cast_to=object, body={"model": MODEL, "messages": []})
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "max_tokens" in bad.value.body["error"]["message"]  # type: ignore[index]
    assert mock.call_count == 1


def test_raising_script_is_500_and_server_survives() -> None:
    def flaky(request: dict) -> dict:
        if request["messages"][-1]["content"] == "boom":
            raise ValueError("scripted failure")
        return weather_script(request)

    with MockAnthropic(flaky) as mock, client_for(mock) as client:
        with pytest.raises(anthropic.InternalServerError) as info:
            client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "boom"}])
        assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        after = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert after.content[0].text == "I can only help with the weather."


def test_stream_can_be_cut_off_and_spaced_in_time() -> None:
    def cut(request: dict) -> dict:
        return weather_script(request) | {"abort_after": 4}

    with MockAnthropic(cut) as mock, client_for(mock) as client:
        got = []
        with pytest.raises(Exception) as info:
            for event in client.messages.create(model=MODEL, max_tokens=64, messages=[QUESTION], stream=True):
                got.append(event.type)
        assert len(got) == 3  # four events sent, the ping is not an item
        assert "message_stop" not in got and info.type.__name__ in ("RemoteProtocolError", "APIConnectionError")

    with MockAnthropic(stream_delay=0.03) as mock, client_for(mock) as client:
        started = time.perf_counter()
        events = list(client.messages.create(model=MODEL, max_tokens=64, messages=[QUESTION], stream=True))
        assert time.perf_counter() - started >= 0.03 * len(events)
