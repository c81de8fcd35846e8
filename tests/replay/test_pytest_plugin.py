"""The pytest plugin, used the way a project would: a marked agent test recorded once into a tape,
then replayed from it with zero model calls, and failing when the agent's prompt changes."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

AGENT_TEST = '''
import json
import os

import openai
import pytest

import tracetape
from tracetape.demo.mock_openai import MockOpenAI

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@tracetape.tool
def get_weather(city: str) -> dict:
    return {"city": city, "sky": "cloudy"}


@pytest.mark.tracetape
def test_weather_agent(tracetape_tape):
    messages = [{"role": "user", "content": os.environ.get("QUESTION", "What's the weather in Tokyo?")}]
    with MockOpenAI() as model:
        with openai.OpenAI(base_url=model.base_url, api_key="sk-test", max_retries=0) as client, \\
                tracetape.run(agent="plugin-agent"):
            while True:
                message = client.chat.completions.create(model="gpt-4o", messages=messages,
                                                         tools=TOOLS).choices[0].message
                if not message.tool_calls:
                    break
                messages.append(message.model_dump(exclude_none=True))
                for call in message.tool_calls:
                    result = get_weather(**json.loads(call.function.arguments))
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
        print(f"MODEL CALLS {model.call_count}")
    assert "cloudy" in message.content
'''
# hypothesis is blocked only because its import costs seconds per run.
PLUGIN = ("-p", "no:tracetape", "-p", "tracetape.replay.pytest_plugin", "-p", "no:hypothesispytest", "-s")


def test_a_marked_test_is_recorded_once_then_replayed_without_model_calls(pytester, recording, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recording.grpc)
    pytester.makepyfile(test_agent=AGENT_TEST)
    tape = pytester.path / "tapes" / "test_agent" / "test_weather_agent.tape"

    first = pytester.runpytest_subprocess(*PLUGIN)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*MODEL CALLS 2*"])
    assert tape.exists(), "the missing tape was recorded"
    recorded = tape.read_bytes()

    again = pytester.runpytest_subprocess(*PLUGIN, "--tracetape-record=none")  # CI: replay only, never record
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*MODEL CALLS 0*"])

    monkeypatch.setenv("QUESTION", "What's the weather in Lisbon?")
    changed = pytester.runpytest_subprocess(*PLUGIN)
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(["*DivergenceError: replay diverged at step 3*",
                                  "*messages[[]0[]].content: \"What's the weather in Tokyo?\" → "
                                  "\"What's the weather in Lisbon?\"*"])
    assert tape.read_bytes() == recorded, "replays, passing or failing, leave the tape as it was"
