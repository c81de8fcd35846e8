"""The mock must be indistinguishable from a provider as far as the real openai SDK can tell."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator

import openai
import pytest

from tracetape.demo.mock_openai import MockOpenAI, weather_script

MODEL = "gpt-4o-mini"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
QUESTION = {"role": "user", "content": "What's the weather in Lisbon?"}
TOOL_RESULT = "Sunny, 22 C, light breeze"


@pytest.fixture
def mock() -> Iterator[MockOpenAI]:
    with MockOpenAI() as server:
        yield server


def client_for(mock: MockOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.base_url, api_key="sk-test", max_retries=0)


def tool_round(call_id: str) -> list[dict]:
    """The conversation after the model asked for the weather and the tool answered."""
    return [
        QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'}},
        ]},
        {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT},
    ]


def test_tool_call_loop(mock: MockOpenAI) -> None:
    with client_for(mock) as client:
        first = client.chat.completions.create(model=MODEL, messages=[QUESTION], tools=TOOLS)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.type == "function" and call.id == "call_1"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Lisbon"}
        assert first.model == MODEL and first.id == "chatcmpl-1"

        final = client.chat.completions.create(model=MODEL, messages=tool_round(call.id), tools=TOOLS)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == f"The weather in Lisbon: {TOOL_RESULT}"
    usage = final.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert mock.call_count == 2
    first_req, second_req = mock.requests
    assert first_req.method == "POST" and first_req.path == "/v1/chat/completions"
    assert first_req.json["messages"] == [QUESTION]
    assert second_req.json["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": TOOL_RESULT}
    assert json.loads(second_req.body) == second_req.json
    assert first_req.headers["authorization"] == "Bearer sk-test"


def test_responses_are_deterministic() -> None:
    """Recordings are compared across runs, so two fresh servers must answer identically."""
    bodies = []
    for _ in range(2):
        with MockOpenAI() as mock, client_for(mock) as client:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=[QUESTION], tools=TOOLS)
            bodies.append((raw.http_response.content, raw.headers["x-request-id"]))
    assert bodies[0] == bodies[1]
    assert bodies[0][1] == "req_1"


def test_streaming_text_matches_non_streaming(mock: MockOpenAI) -> None:
    messages = tool_round("call_9")
    with client_for(mock) as client:
        expected = client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content
        with client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        ) as stream:
            chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3
    assert "".join(pieces) == expected
    assert chunks[0].object == "chat.completion.chunk"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert mock.requests[-1].json["stream"] is True


def test_streaming_tool_call_reassembles(mock: MockOpenAI) -> None:
    with client_for(mock) as client:
        with client.chat.completions.create(model=MODEL, messages=[QUESTION], tools=TOOLS, stream=True) as stream:
            chunks = list(stream)
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) >= 3
    assert deltas[0].id and deltas[0].type == "function" and deltas[0].function.name == "get_weather"
    assert deltas[0].function.arguments == ""
    assert all(d.index == 0 and d.id is None for d in deltas[1:])
    arguments = "".join(d.function.arguments or "" for d in deltas)
    assert json.loads(arguments) == {"city": "Lisbon"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in chunks)  # no include_usage, no usage chunk


def test_async_client(mock: MockOpenAI) -> None:
    async def run() -> tuple[str | None, str]:
        async with openai.AsyncOpenAI(base_url=mock.base_url, api_key="sk-test", max_retries=0) as client:
            first = await client.chat.completions.create(model=MODEL, messages=[QUESTION], tools=TOOLS)
            stream = await client.chat.completions.create(model=MODEL, messages=tool_round("call_1"), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return (first.choices[0].message.tool_calls or [])[0].function.arguments, text

    arguments, text = asyncio.run(run())
    assert json.loads(arguments or "") == {"city": "Lisbon"}
    assert text == f"The weather in Lisbon: {TOOL_RESULT}"
    assert mock.requests[0].headers["x-stainless-async"].startswith("async")


def test_unknown_path_is_404(mock: MockOpenAI) -> None:
    with client_for(mock) as client:
        with pytest.raises(openai.NotFoundError) as info:
            client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert info.value.status_code == 404
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert mock.call_count == 0 and len(mock.requests) == 1


def test_invalid_json_is_400(mock: MockOpenAI) -> None:
    with client_for(mock) as client:
        with pytest.raises(openai.BadRequestError) as info:
            client.post("/chat/completions", cast_to=object, content=b"{not json")
    assert info.value.status_code == 400
    assert mock.requests[-1].json is None and mock.requests[-1].body == b"{not json"


def test_raising_script_is_500_and_server_survives() -> None:
    def flaky(request: dict) -> dict:
        if request["messages"][-1]["content"] == "boom":
            raise ValueError("scripted failure")
        return weather_script(request)

    with MockOpenAI(flaky) as mock, client_for(mock) as client:
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "boom"}])
        assert "scripted failure" in info.value.message
        after = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
        assert after.choices[0].message.content == "I can only help with the weather."
        assert mock.call_count == 2


def test_oversized_body_is_413(mock: MockOpenAI) -> None:
    host, port = mock.base_url.removeprefix("http://").removesuffix("/v1").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        connection.putheader("Content-Length", str(33 * 1024 * 1024))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["message"]
    finally:
        connection.close()


def test_stop_cuts_pooled_connections() -> None:
    """After stop() the provider is gone, even for a client holding a keep-alive connection."""
    mock = MockOpenAI().start()
    with client_for(mock) as client:
        client.chat.completions.create(model=MODEL, messages=[QUESTION])
        mock.stop()
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model=MODEL, messages=[QUESTION])
    assert mock.call_count == 1


@pytest.mark.parametrize(
    ("text", "city"),
    [("What's the weather in Lisbon?", "Lisbon"), ("weather in St. Louis!", "St. Louis"), ("weather?", "Paris")],
)
def test_weather_script_parses_city(text: str, city: str) -> None:
    decision = weather_script({"messages": [{"role": "user", "content": text}]})
    assert decision["tool_calls"] == [{"name": "get_weather", "arguments": {"city": city}}]


RESPONSE_TOOLS = [{"type": "function", "name": "get_weather", "description": "Current weather for a city.",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_responses_api_tool_loop(mock: MockOpenAI) -> None:
    with client_for(mock) as client:
        first = client.responses.create(model=MODEL, input="What's the weather in Lisbon?", tools=RESPONSE_TOOLS,
                                        reasoning={"effort": "low"}, instructions="Use the tools.")
        reasoning, call = first.output
        assert reasoning.type == "reasoning" and call.type == "function_call"
        assert (call.name, json.loads(call.arguments), call.call_id) == ("get_weather", {"city": "Lisbon"}, "call_1")
        final = client.responses.create(model=MODEL, tools=RESPONSE_TOOLS, input=[
            {"role": "user", "content": "What's the weather in Lisbon?"}, call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT}])
    assert final.output_text == f"The weather in Lisbon: {TOOL_RESULT}" and final.status == "completed"
    assert final.usage is not None and final.usage.total_tokens > 0
    assert mock.call_count == 2 and mock.requests[0].path == "/v1/responses"
    assert mock.requests[0].json["instructions"] == "Use the tools."


def test_responses_stream_builds_the_same_response(mock: MockOpenAI) -> None:
    with client_for(mock) as client:
        plain = client.responses.create(model=MODEL, input="hello")
        with client.responses.stream(model=MODEL, input="hello") as stream:
            types = [event.type for event in stream]
            streamed = stream.get_final_response()
        calls = [e.type for e in client.responses.create(model=MODEL, input="weather in Rome?", tools=RESPONSE_TOOLS,
                                                          stream=True)]
    assert streamed.output_text == plain.output_text == "I can only help with the weather."
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 7
    assert "response.function_call_arguments.delta" in calls and calls[-1] == "response.completed"


def test_azure_deployment_paths_are_served(mock: MockOpenAI) -> None:
    with openai.AzureOpenAI(azure_endpoint=mock.base_url.removesuffix("/v1"), api_key="k", api_version="2024-06-01",
                            max_retries=0) as client:
        reply = client.chat.completions.create(model="deployment-a", messages=[QUESTION])
    assert reply.choices[0].finish_reason == "tool_calls"
    assert mock.requests[0].path == "/openai/deployments/deployment-a/chat/completions?api-version=2024-06-01"
    assert mock.call_count == 1


def test_stream_cut_off_mid_way() -> None:
    def cut(request: dict) -> dict:
        return weather_script(request) | {"abort_after": 2}

    with MockOpenAI(cut) as mock, client_for(mock) as client:
        got = []
        with pytest.raises(openai.APIConnectionError):
            for chunk in client.chat.completions.create(model=MODEL, messages=[QUESTION], stream=True):
                got.append(chunk)
    assert len(got) == 2
