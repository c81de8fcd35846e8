"""Traces from other instrumentations (OpenInference, OpenLLMetry) read back as typed, ordered steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tracetape import replay
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

AGENT = Path(__file__).parents[1] / "agents" / "replay_foreign_agent.py"


def test_openinference_and_openllmetry_spans_become_model_and_tool_calls(recording):
    done = subprocess.run([sys.executable, str(AGENT)], env=recording.env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])

    with replay.open_store(recording.sql) as store:
        trajectory = replay.load(result["trace_id"], store=store)
    # No tracetape.seq on these spans: ordered by start time, then depth, then span id.
    assert [s.seq for s in trajectory] == [0] * len(trajectory)
    assert [s.start_ns for s in trajectory] == sorted(s.start_ns for s in trajectory)
    assert trajectory.run.agent == "session" and trajectory.run.outcome == "ok"

    by_source = {s.name: s for s in trajectory.model_calls}
    assert set(by_source) == {"ChatCompletion", "openai.chat"}  # OpenInference's span, OpenLLMetry's span
    for step in by_source.values():
        assert (step.request_model, step.provider) == ("gpt-4o", "openai")
        assert step.input_tokens > 0 and step.output_tokens > 0
        messages = json.loads(step.attributes[A.GEN_AI_INPUT_MESSAGES])
        assert messages[0]["role"] == "user"
        assert messages[0]["parts"][0]["content"] == "What's the weather in Tokyo?"
    openinference = by_source["ChatCompletion"]
    assert openinference.finish_reasons == ("tool_calls",)
    (output,) = json.loads(openinference.attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert output["parts"][0]["name"] == "get_weather" and output["parts"][0]["arguments"] == {"city": "Tokyo"}

    (tool,) = trajectory.tool_calls
    assert (tool.tool_name, tool.operation) == ("get_weather", "execute_tool")
    assert json.loads(tool.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"city": "Tokyo"}
    assert json.loads(tool.attributes[A.GEN_AI_TOOL_CALL_RESULT]) == {"city": "Tokyo", "sky": "cloudy"}
    assert [s.kind for s in trajectory].count(EventKind.OTHER) == 2  # the session and the agent span
