"""Both model SDKs end to end: an agent process records into a real collector, the run is read back
with ``replay.load`` (blobs, GenAI attributes, stream chunks), then replayed by tracetape's player
without one call reaching either provider."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tracetape import replay
from tracetape.demo.mock_anthropic import MockAnthropic
from tracetape.instrumentation._stream import split_events
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

AGENT = Path(__file__).parents[1] / "agents" / "model_agent.py"


def test_record_read_back_and_replay_both_sdks(collector, mock_openai, agent) -> None:
    with MockAnthropic() as claude:
        env = {"ANTHROPIC_BASE_URL": claude.base_url, "ANTHROPIC_API_KEY": "sk-ant-secret"}
        recorded = agent(AGENT, collector, mock=mock_openai, extra_env=env)
        assert (mock_openai.call_count, claude.call_count) == (3, 2)

        with replay.open_store(collector.sql) as store:
            trajectory = replay.load(recorded["run_id"], store=store)
            calls = trajectory.filter(EventKind.MODEL_CALL)
            assert [(s.provider, s.name) for s in calls] == [("openai", "chat gpt-4o")] * 3 + \
                [("anthropic", "chat claude-test-model")] * 2
            # The anthropic SDK traces itself: its spans are kept, inside ours, but are not model calls.
            others = [s for s in trajectory if s.kind is EventKind.OTHER]
            assert trajectory[1].kind is EventKind.ENVIRONMENT
            assert len(trajectory) == 2 + len(calls) + len(others) and len(others) == 2
            assert {s.parent_span_id for s in others} == {s.span_id for s in calls[3:]}
            sent = [r.body for r in mock_openai.requests] + [r.body for r in claude.requests]
            assert [s.blob("request") for s in calls] == sent
            for step in calls:
                for role, digest in step.blobs.items():
                    assert hashlib.sha256(step.blob(role)).hexdigest() == digest

            plain, chat_stream, responses_stream, thinking, tool_round = calls
            assert plain.json("response")["id"] == recorded["results"][0]["id"]
            assert plain.attributes[A.GEN_AI_REQUEST_SEED] == "7" and plain.finish_reasons == ("tool_calls",)
            for streamed in (chat_stream, responses_stream, tool_round):
                assert streamed.attributes["tracetape.stream.completed"] == "true"
                events, rest = split_events(streamed.blob("response"))
                offsets = json.loads(streamed.attributes["tracetape.stream.offsets_ms"])
                assert rest == b"" and len(events) == len(offsets) == int(streamed.attributes["tracetape.stream.chunks"])
                assert len(events) >= 5 and offsets == sorted(offsets) and offsets[0] > 0
            assert chat_stream.output_tokens == recorded["results"][1][-1]["usage"]["completion_tokens"]
            assert json.loads(thinking.attributes[A.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["type"] == "reasoning"
            assert thinking.finish_reasons == ("tool_use",) and tool_round.finish_reasons == ("end_turn",)
            assert trajectory.run.input_tokens == sum(s.input_tokens for s in calls), "counted once per call"

        replayed = agent(AGENT, collector, "--replay", recorded["run_id"], "--store", collector.sql,
                         mock=mock_openai, extra_env=env)
        assert (mock_openai.call_count, claude.call_count) == (3, 2), "replay must not reach the providers"
    assert replayed["results"] == recorded["results"]
    assert replayed["run_id"] != recorded["run_id"]
