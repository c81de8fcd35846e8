"""diff on hand-made runs (tapes written from span rows), where every difference is known in advance."""

from __future__ import annotations

import json

from replay_helpers import RunBuilder

from tracetape import replay


def test_equal_runs_differ_only_in_ids_and_timestamps(tmp_path):
    a, b = RunBuilder("run-a"), RunBuilder("run-b")
    a.chat("Weather in Oslo?", "", tool="get_weather", call_id="call_1", response_id="chatcmpl-1")
    b.chat("Weather in Oslo?", "", tool="get_weather", call_id="call_77", response_id="chatcmpl-9")
    for run in (a, b):
        run.tool("get_weather", {"city": "Oslo"}, {"sky": "snow"})
    compared = replay.diff(a.tape(tmp_path), b.tape(tmp_path))
    assert compared.identical, compared.text()
    assert "no divergence" in compared.text()


def test_a_changed_prompt_is_reported_field_by_field(tmp_path):
    a, b = RunBuilder("run-a"), RunBuilder("run-b")
    a.chat("Weather in Oslo?", "Snow.")
    b.chat("Weather in Bergen?", "Rain.")
    compared = replay.diff(a.tape(tmp_path), b.tape(tmp_path))
    first = compared.first_divergence
    assert (first.status, first.a.index, first.b.index) == ("changed", 2, 2)
    assert first.changes == [
        'request.messages[1].content: "Weather in Oslo?" → "Weather in Bergen?"',
        'response.choices[0].message.content: "Snow." → "Rain."',
    ]
    document = json.loads(compared.to_json())
    assert document["first_divergence"]["changes"] == first.changes
    assert document["summary"]["aligned"] == {"same": 1, "changed": 1, "added": 0, "removed": 0}


def test_an_inserted_call_reads_as_one_addition(tmp_path):
    a, b = RunBuilder("run-a"), RunBuilder("run-b")
    for run in (a, b):
        run.chat("Plan a trip", "", tool="search")
        run.tool("search", {"q": "flights"}, ["LH 123"])
    b.tool("search", {"q": "hotels"}, ["Hotel Astoria"])
    for run in (a, b):
        run.chat("Plan a trip", "Booked.")
    compared = replay.diff(a.tape(tmp_path), b.tape(tmp_path))
    assert [(e.status, e.a.index if e.a else None, e.b.index if e.b else None) for e in compared.entries] == [
        ("same", 1, 1), ("same", 2, 2), ("same", 3, 3), ("added", None, 4), ("same", 4, 5)]
    summary = compared.summary()
    assert (summary["a"]["steps"], summary["b"]["steps"]) == (4, 5)
    assert (summary["a"]["tool_calls"], summary["b"]["tool_calls"]) == (1, 2)
    assert (summary["a"]["input_tokens"], summary["b"]["input_tokens"]) == (20, 20)
    assert "first divergence at step - / 4: added tool_call 'execute_tool search'" in compared.text()


def test_tasks_are_aligned_each_on_its_own_whatever_the_interleaving(tmp_path):
    a, b = RunBuilder("run-a"), RunBuilder("run-b")
    a.tool("fetch", {"url": "x"}, "X", task="0.1")
    a.tool("fetch", {"url": "y"}, "Y", task="0.2")
    b.tool("fetch", {"url": "y"}, "Y", task="0.2")  # the scheduler ran task 0.2 first this time
    b.tool("fetch", {"url": "x"}, "X2", task="0.1")
    compared = replay.diff(a.tape(tmp_path), b.tape(tmp_path))
    changed = [e for e in compared.entries if e.status != "same"]
    assert [(e.task, e.a.index, e.b.index, e.changes) for e in changed] == [
        ("0.1", 2, 3, ['response: "X" → "X2"'])]


def test_a_failed_call_is_a_difference(tmp_path):
    a, b = RunBuilder("run-a"), RunBuilder("run-b")
    a.tool("fetch", {"url": "x"}, "X")
    b.span("tool_call", "execute_tool fetch", request={"url": "x"}, status="ERROR",
           attributes={"error.type": "TimeoutError"})
    first = replay.diff(a.tape(tmp_path), b.tape(tmp_path)).first_divergence
    assert first.changes == ["response: recorded → (absent)", "outcome: 'UNSET' → 'ERROR TimeoutError'"]
    assert replay.diff(a.tape(tmp_path), b.tape(tmp_path)).summary()["b"]["errors"] == 1
