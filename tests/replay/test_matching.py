"""How the player matches a call to the recording, asked through the seam exactly as a capture point
asks it: by position in its own task and kind, then by the canonical request — never approximately."""

from __future__ import annotations

import json

import pytest
from replay_helpers import RunBuilder

import tracetape
from tracetape import replay
from tracetape.instrumentation import seam
from tracetape.schemas.errors import DivergenceError
from tracetape.schemas.events import EventKind

CALL = "chat gpt-4o"


def _request(call_id: str, result: str, **extra: object) -> dict:
    return {"model": "gpt-4o", **extra, "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function",
                                              "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": result}]}


def _ask(request: dict, kind: EventKind = EventKind.MODEL_CALL, name: str = CALL) -> seam.Served | None:
    return seam.serve(kind, name, json.dumps(request, separators=(",", ":")).encode())


@pytest.fixture
def run() -> RunBuilder:
    run = RunBuilder("recorded")
    run.span("model_call", CALL, request=_request("call_1", "snow", **{"x-stainless-retry-count": 0}),
             response={"choices": [{"message": {"content": "Snow in Oslo."}}]})
    return run


@pytest.fixture
def tape(run, tmp_path) -> replay.Tape:
    return run.tape(tmp_path)


def test_ids_minted_per_call_and_volatile_fields_do_not_count_but_content_does(tape):
    with replay.player(tape), tracetape.run(agent="matching"):
        # A live call minted another tool-call id (same pairing of call and result); retries differ.
        served = _ask(_request("call_77", "snow", **{"x-stainless-retry-count": 2}))
        assert json.loads(served.response)["choices"][0]["message"]["content"] == "Snow in Oslo."

    with pytest.raises(DivergenceError) as raised:
        with replay.player(tape), tracetape.run(agent="matching"):
            _ask(_request("call_1", "rain"))
    assert raised.value.divergence.diff == ('messages[2].content: "snow" → "rain"',)

    with pytest.raises(DivergenceError, match="request differs"):
        with replay.player(tape), tracetape.run(agent="matching"):
            mixed = _request("call_1", "snow")
            mixed["messages"][2]["tool_call_id"] = "call_2"  # the result now answers some other call
            _ask(mixed)


def test_a_call_is_served_only_in_its_own_task(run, tmp_path):
    # The tool call was recorded in task 0.1 (a thread of the run); asking for it from the run's own
    # task is a divergence, not a silent swap (threads and asyncio tasks: test_player.py).
    run.tool("get_weather", {"city": "Oslo"}, {"sky": "snow"}, task="0.1")
    with replay.player(run.tape(tmp_path), mode="observe") as player, tracetape.run(agent="matching"):
        with pytest.raises(DivergenceError, match="not recorded"):
            _ask({"city": "Oslo"}, EventKind.TOOL_CALL, "execute_tool get_weather")
    assert [(d.reason, d.task, d.step) for d in player.divergences] == [
        ("not recorded", "0", None), ("recorded call never made", "0", 2), ("recorded call never made", "0.1", 3)]
    assert player.divergences[0].candidates[0].step == 3, "the recorded call it probably meant"


def test_outside_any_run_nothing_is_served(tape):
    with replay.player(tape, mode="observe") as player:
        assert _ask(_request("call_1", "snow")) is None
    assert player.served == 0


def test_a_served_call_carries_the_recorded_payload_hashes(tmp_path):
    # The replay run records what it was served under the recorded hashes, without hashing again.
    run = RunBuilder("hashes")
    for city in ("Oslo", "Lima"):
        run.tool("get_weather", {"city": city}, {"sky": "snow"})
    tape = run.tape(tmp_path)
    recorded = tape.trajectory().tool_calls
    with replay.player(tape, mode="loose"), tracetape.run(agent="hashes"):
        exact = seam.serve(EventKind.TOOL_CALL, "execute_tool get_weather", json.dumps({"city": "Oslo"}).encode())
        canonical = _ask({"city": "Lima"}, EventKind.TOOL_CALL, "execute_tool get_weather")
    assert (exact.response_sha256, exact.request_sha256) == (recorded[0].blobs["response"],
                                                             recorded[0].blobs["request"])
    assert (canonical.response_sha256, canonical.request_sha256) == (recorded[1].blobs["response"], ""), \
        "asked in other bytes (same content): the request is not the recorded payload"
