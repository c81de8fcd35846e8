"""The real anthropic SDK against the local Messages mock: tool_use and thinking blocks, plain and
streamed, sync and async, and the same calls served back through the replay seam."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import pytest

from model_support import Recording, TapePlayer, mock_anthropic, recording  # noqa: F401
from tracetape.demo.mock_anthropic import MockAnthropic
from tracetape.instrumentation import seam
from tracetape.instrumentation._nesting import inside_model_call
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

MODEL = "claude-test-model"
TOOLS = [{"name": "get_weather", "description": "Current weather for a city.",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
QUESTION = [{"role": "user", "content": "What's the weather in Kyoto?"}]
THINKING = {"type": "enabled", "budget_tokens": 1024}


def client_for(mock: MockAnthropic, **kwargs: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.base_url, api_key="sk-ant-test", max_retries=0, **kwargs)


def async_client_for(mock: MockAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=mock.base_url, api_key="sk-ant-test", max_retries=0)


def tool_round(message: anthropic.types.Message, result: str) -> list[dict]:
    """The conversation after the model asked for a tool and the tool answered."""
    (call,) = [block for block in message.content if block.type == "tool_use"]
    return QUESTION + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                     "content": result}]}]


def test_tool_use_with_thinking_records_exact_bytes_and_genai_attributes(recording: Recording,
                                                                          mock_anthropic) -> None:
    with client_for(mock_anthropic) as client:
        message = client.messages.create(model=MODEL, max_tokens=512, messages=QUESTION, tools=TOOLS,
                                         thinking=THINKING, system="You are terse.", stop_sequences=["\n\nHuman:"],
                                         extra_body={"top_k": 40})
    assert [block.type for block in message.content] == ["thinking", "tool_use"]
    (span,) = recording.calls()
    attributes = span.attributes
    assert span.name == f"chat {MODEL}"
    assert (attributes[A.GEN_AI_PROVIDER_NAME], attributes[A.GEN_AI_OPERATION_NAME]) == ("anthropic", "chat")
    assert (attributes[A.GEN_AI_REQUEST_MAX_TOKENS], attributes["gen_ai.request.top_k"]) == (512, 40)
    assert attributes["gen_ai.request.stop_sequences"] == ("\n\nHuman:",)
    assert attributes["tracetape.response.request_id"] == "req_1"
    assert recording.blob(span, seam.REQUEST) == mock_anthropic.requests[0].body
    assert json.loads(recording.blob(span, seam.RESPONSE))["id"] == message.id

    inputs = json.loads(attributes[A.GEN_AI_INPUT_MESSAGES])
    assert [m["role"] for m in inputs] == ["system", "user"]
    assert json.loads(attributes[A.GEN_AI_TOOL_DEFINITIONS]) == TOOLS
    (output,) = json.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])
    thinking, call = output["parts"]
    assert thinking == {"type": "reasoning", "content": message.content[0].thinking}
    assert call == {"type": "tool_call", "id": message.content[1].id, "name": "get_weather",
                    "arguments": {"city": "Kyoto"}}
    assert attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == message.usage.input_tokens
    assert attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens


def test_stream_manager_and_tool_result_round(recording: Recording, mock_anthropic) -> None:
    with client_for(mock_anthropic) as client:
        first = client.messages.create(model=MODEL, max_tokens=512, messages=QUESTION, tools=TOOLS)
        with client.messages.stream(model=MODEL, max_tokens=512, tools=TOOLS, thinking=THINKING,
                                    messages=tool_round(first, "Rain, 12 C")) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == "The weather in Kyoto: Rain, 12 C"
    plain, streamed = recording.calls()
    inputs = json.loads(streamed.attributes[A.GEN_AI_INPUT_MESSAGES])
    assert inputs[-1]["parts"] == [{"type": "tool_call_response", "id": first.content[0].id,
                                    "response": "Rain, 12 C"}]
    attributes = streamed.attributes
    assert attributes["tracetape.stream.completed"] is True
    raw = recording.blob(streamed, seam.RESPONSE)
    assert raw.startswith(b"event: message_start\n") and raw.endswith(b"event: message_stop\ndata: "
                                                                      b'{"type": "message_stop"}\n\n')
    names = [json.loads(event.split(b"data: ", 1)[1])["type"] for _, event in recording.chunks(streamed)]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(names)
    (output,) = json.loads(attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert output["parts"] == [{"type": "reasoning", "content": final.content[0].thinking},
                               {"type": "text", "content": text}]
    assert attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[A.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens


def test_async_create_and_stream(recording: Recording, mock_anthropic) -> None:
    async def run() -> tuple[str, str]:
        async with async_client_for(mock_anthropic) as client:
            message = await client.messages.create(model=MODEL, max_tokens=256, messages=QUESTION, tools=TOOLS)
            async with client.messages.stream(model=MODEL, max_tokens=256,
                                              messages=tool_round(message, "Clear")) as stream:
                final = await stream.get_final_message()
            return message.id, final.content[0].text

    message_id, text = asyncio.run(run())
    plain, streamed = recording.calls()
    assert plain.attributes[A.GEN_AI_RESPONSE_ID] == message_id
    assert json.loads(streamed.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [{"type": "text",
                                                                                       "content": text}]
    assert [recording.blob(s, seam.REQUEST) for s in (plain, streamed)] == [r.body for r in mock_anthropic.requests]


def test_the_sdks_own_tracing_does_not_make_a_second_event(recording: Recording, mock_anthropic) -> None:
    """anthropic traces itself when a tracer provider is set; its span sits inside ours and stays an OTel span."""
    with client_for(mock_anthropic) as client:
        client.messages.create(model=MODEL, max_tokens=256, messages=QUESTION)
    spans = recording.spans()
    (ours,) = recording.calls()
    theirs = [s for s in spans if s.instrumentation_scope.name != "tracetape"]
    assert theirs and all(s.attributes.get(A.EVENT_KIND) == EventKind.OTHER.value for s in theirs)
    assert all(s.parent is not None and s.parent.span_id == ours.context.span_id for s in theirs)


def test_provider_error_is_recorded_and_raised_unchanged(recording: Recording) -> None:
    def failing(request: dict) -> dict:
        raise RuntimeError("overloaded")

    with MockAnthropic(failing) as mock, client_for(mock) as client:
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    (span,) = recording.calls()
    assert span.attributes[A.ERROR_TYPE] == "InternalServerError"
    assert span.attributes["http.response.status_code"] == 500
    assert json.loads(recording.blob(span, seam.RESPONSE))["error"]["type"] == "api_error"


# -- serving recorded calls back through the seam -------------------------------------------------

def _calls(client: anthropic.Anthropic) -> list[object]:
    plain = client.messages.create(model=MODEL, max_tokens=256, messages=QUESTION, tools=TOOLS, thinking=THINKING)
    events = list(client.messages.create(model=MODEL, max_tokens=256, messages=tool_round(plain, "Dry"),
                                         stream=True))
    with client.messages.stream(model=MODEL, max_tokens=256, messages=QUESTION, tools=TOOLS) as stream:
        final = stream.get_final_message()
    return [plain, events, final]


def test_recorded_calls_are_served_without_reaching_the_provider(recording: Recording, mock_anthropic) -> None:
    with client_for(mock_anthropic) as client:
        recorded = _calls(client)
    spans = recording.calls()
    player = TapePlayer([recording.served(span) for span in spans])
    with player, client_for(mock_anthropic) as client:
        replayed = _calls(client)
    assert mock_anthropic.call_count == 3, "replay must not reach the provider"
    assert replayed == recorded
    assert [request for _, _, request in player.asked] == [r.body for r in mock_anthropic.requests]


def test_async_calls_are_served_and_errors_come_back_as_recorded(recording: Recording, mock_anthropic) -> None:
    async def run() -> object:
        async with async_client_for(mock_anthropic) as client:
            message = await client.messages.create(model=MODEL, max_tokens=256, messages=QUESTION)
            stream = await client.messages.create(model=MODEL, max_tokens=256, messages=QUESTION, stream=True)
            return [message, [event async for event in stream]]

    recorded = asyncio.run(run())
    player = TapePlayer([recording.served(span) for span in recording.calls()])
    with player:
        assert asyncio.run(run()) == recorded
    assert mock_anthropic.call_count == 2

    with TapePlayer([seam.Served(error_type="APITimeoutError", error_message="Request timed out.")]), \
            client_for(mock_anthropic) as client:
        with pytest.raises(anthropic.APITimeoutError):
            client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
    assert mock_anthropic.call_count == 2


def test_the_http_request_runs_inside_the_model_call(recording: Recording, mock_anthropic) -> None:
    """HTTP-level patches see ``inside_model_call()`` and stand aside: the exchange is the model call's."""
    seen: list[bool] = []
    http_client = httpx2.Client(event_hooks={"request": [lambda request: seen.append(inside_model_call())]})
    with client_for(mock_anthropic, http_client=http_client) as client:
        client.messages.create(model=MODEL, max_tokens=64, messages=QUESTION)
        with client.messages.stream(model=MODEL, max_tokens=64, messages=QUESTION) as stream:
            stream.until_done()
    assert seen == [True, True] and not inside_model_call()
    assert len(recording.calls()) == 2
