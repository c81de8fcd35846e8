"""Deterministic replay of a recorded multi-step agent (openai SDK + tools), each replay in its own
process under ``tracetape replay``, with live network blocked."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from replay_helpers import AGENT, record

from tracetape import replay
from tracetape.replay.commands import replay_command
from tracetape.schemas.errors import DivergenceError, LiveNetworkBlocked

AGENTS = AGENT.parent


def test_replay_serves_every_call_and_reproduces_the_run(recording, replay_agent):
    before = recording.mock.call_count
    done = replay_agent()
    assert done.code == 0
    assert done.output == recording.report, "the replayed agent writes exactly what the recorded one wrote"
    assert recording.mock.call_count == before, "not one live model call"
    assert done.report["divergences"] == []
    assert done.report["served"] == 8  # environment, 4 model calls, 3 tool calls; the run step itself is not a call

    # The replay is a run of its own, linked to the recording, and equal to it event for event.
    with replay.open_store(recording.sql) as store:
        (replay_id,) = done.report["runs"]
        replayed = replay.load(replay_id, store=store)
        assert (replayed.run.parent_run_id, replayed.run.fork_step) == (recording.run_id, 0)
        assert replayed[0].attributes["tracetape.replay.mode"] == "strict"
        assert replay.diff(recording.run_id, replay_id, store=store).identical


def test_strict_replay_stops_at_the_changed_prompt(recording, replay_agent):
    before = recording.mock.call_count
    done = replay_agent("--ask-k", "2")  # the second city's question is reworded: step 6
    assert done.code != 0 and done.output == "", "the agent was stopped by the divergence"
    (found,) = done.report["divergences"]
    assert (found["step"], found["kind"], found["reason"], found["action"]) == (
        6, "model_call", "request differs", "raised")
    assert found["diff"] == [
        'messages[1].content: "What\'s the weather in Paris?" → "Tell me the weather in Paris, please."']
    assert found["candidates"][0]["step"] == 3, "the nearest recorded call asks the same of another city"
    assert "replay diverged at step 6" in done.report["text"]
    assert recording.mock.call_count == before


def test_observe_replay_lists_the_change_and_everything_after_it(recording, replay_agent):
    before = recording.mock.call_count
    done = replay_agent("--ask-k", "2", mode="observe")
    assert done.code == 3, "divergences make `tracetape replay` fail"
    # Step 6 asked differently; it got the recorded answer, so the tool call (step 7) matched again;
    # the last model call (step 8) carries the changed question in its history, so it differs too.
    assert done.steps == [6, 8]
    assert all(d["action"].startswith("served the recording") for d in done.report["divergences"])
    assert done.output == recording.report, "observe keeps following the recording"
    assert recording.mock.call_count == before


def test_loose_replay_goes_live_on_a_miss(recording, replay_agent):
    before = recording.mock.call_count
    done = replay_agent("--ask-k", "2", mode="loose")
    assert done.code == 0
    assert done.steps == [6, 8] and {d["action"] for d in done.report["divergences"]} == {"went live"}
    assert recording.mock.call_count == before + 2, "exactly the two missed calls went to the model"
    assert done.report["served"] == 6


def test_fork_serves_up_to_the_fork_step_then_records_a_new_linked_run(recording, replay_agent, tmp_path,
                                                                       monkeypatch):
    forecasts = tmp_path / "forecasts.json"
    forecasts.write_text(json.dumps({"paris": {"sky": "sunny", "high_c": 27}}))
    monkeypatch.setenv("REPLAY_AGENT_FORECASTS", str(forecasts))  # the live tool now answers differently
    before = recording.mock.call_count
    done = replay_agent(mode="fork", fork_at=6)
    assert done.code == 0 and done.report["divergences"] == []
    assert (done.report["served"], done.report["live"]) == (5, 3)  # steps 2-6 served; 7, 8, 9 live
    assert recording.mock.call_count == before + 1, "only the model call after the tool went live"
    assert "sunny" in done.output and "cloudy" in done.output  # Tokyo from the recording, Paris live

    (fork_id,) = done.report["runs"]
    with replay.open_store(recording.sql) as store:
        fork = replay.load(fork_id, store=store)
        assert (fork.run.parent_run_id, fork.run.fork_step) == (recording.run_id, 6)
        compared = replay.diff(recording.run_id, fork_id, store=store)
    first = compared.first_divergence
    assert (first.a.index, first.b.index, first.step.name) == (7, 7, "execute_tool get_weather")
    assert 'response.sky: "light rain" → "sunny"' in first.changes
    assert [e.status for e in compared.entries[:6]] == ["same"] * 6, "a fork shares everything before it"
    assert "forked from" in compared.text()


def test_recorded_tool_errors_are_raised_again(recording, replay_agent, tmp_path):
    failing = record(recording.env(), tmp_path / "failing.txt", "--cities", "", "--fail", "builtin,custom")
    with replay.open_store(recording.sql) as store:
        assert [s.failed for s in replay.load(failing["run_id"], store=store).tool_calls] == [True, True]
        replay.pull(failing["run_id"], tmp_path / "failing.tape", store=store)

    done = replay_agent("--cities", "", "--fail", "builtin,custom", source=str(tmp_path / "failing.tape"))
    assert done.code == 0 and done.report["divergences"] == [] and done.report["served"] == 3
    recorded = (tmp_path / "failing.txt").read_text().splitlines()
    replayed = done.output.splitlines()
    # A builtin exception comes back as itself, with its message.
    assert replayed[0] == recorded[0] == "ValueError: nothing to report"
    # The agent's own exception class cannot be rebuilt from a name: it comes back as RecordedToolError.
    assert recorded[1] == "ReportError: report service unavailable"
    assert replayed[1] == "RecordedToolError: ReportError: report service unavailable"


def test_live_connections_are_blocked_unless_allowed(recording):
    host, port = recording.mock.base_url.split("//")[1].split("/")[0].split(":")
    before = recording.mock.call_count
    with pytest.raises(DivergenceError) as raised:
        with replay.player(recording.tape) as player:
            with pytest.raises(LiveNetworkBlocked):
                socket.create_connection((host, int(port)), timeout=5)
    assert raised.value.divergence.reason == "live connection"
    assert f"connect {host}:{port}" in str(raised.value)
    assert player.divergences[0].action == "blocked the connection"
    assert recording.mock.call_count == before

    # An allowed endpoint connects; the guard is gone once the player stops.
    with replay.player(recording.tape, mode="observe", allow=[f"{host}:{port}"]) as allowed:
        socket.create_connection((host, int(port)), timeout=5).close()
    assert not [d for d in allowed.divergences if d.kind == "network"]
    socket.create_connection((host, int(port)), timeout=5).close()


def test_threads_and_asyncio_tasks_are_served_their_own_calls(recording, tmp_path, monkeypatch):
    agent = AGENTS / "replay_concurrent_agent.py"
    done = subprocess.run([sys.executable, str(agent), str(tmp_path / "recorded.json")], env=recording.env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    recorded = json.loads(done.stdout.strip().splitlines()[-1])
    assert recorded["executed"] == 4 * 3 + 10 * 3
    tape = replay.pull(recorded["run_id"], tmp_path / "concurrent.tape", store=recording.sql)

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recording.grpc)
    code = replay_command(tape, [sys.executable, str(agent), str(tmp_path / "replayed.json")],
                          report=str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0 and report["divergences"] == [] and report["served"] == 43
    # Every thread and task got back exactly the values it was served when recorded, whatever the
    # scheduler did this time: calls are matched by position within their own task.
    assert (tmp_path / "replayed.json").read_text() == (tmp_path / "recorded.json").read_text()
