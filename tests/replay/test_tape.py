"""Tapes: a run pulled into one file replays with no collector and no store, goes back into a store
through a collector intact, and refuses to be read when damaged."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from replay_helpers import record

from tracetape import replay
from tracetape.demo.run_demo import start_collector, stop_collector
from tracetape.replay.commands import pull_command
from tracetape.replay.tape import VERSION, write_tape
from tracetape.schemas.errors import BlobError, TapeError

DATA = Path(__file__).parent / "data"


def _shape(trajectory: replay.Trajectory) -> list[tuple]:
    return [(s.index, s.seq, s.kind, s.name, s.task, s.status, tuple(sorted(s.blobs.items())),
             tuple(sorted(s.attributes.items())), s.events) for s in trajectory]


def test_a_pulled_tape_holds_the_whole_run(recording, tmp_path):
    path = pull_command(recording.run_id[:12], str(tmp_path / "pulled.tape"), store=recording.sql)
    from_tape = replay.load(path)
    # Step-through helpers: every call was made by the run's own task, directly inside the run.
    assert from_tape.in_task("0") == list(from_tape)
    assert from_tape.children(from_tape[0]) == from_tape[1:]
    assert [s.index for s in from_tape.model_calls] == [3, 5, 6, 8]
    assert [s.tool_name for s in from_tape.tool_calls] == ["get_weather", "get_weather", "format_report"]
    with replay.open_store(recording.sql) as store:
        from_store = replay.load(recording.run_id, store=store)
        assert _shape(from_tape) == _shape(from_store)
        assert from_tape.run == from_store.run
        for a, b in zip(from_tape, from_store):
            assert {role: a.blob(role) for role in a.blobs} == {role: b.blob(role) for role in b.blobs}


def test_a_tape_replays_with_no_collector_and_no_store(recording, replay_agent, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACETAPE_DATA_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("TRACETAPE_STORE", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # no collector listens there
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")  # so the agent does not wait to export at exit
    before = recording.mock.call_count
    done = replay_agent()
    assert done.code == 0 and done.report["divergences"] == [] and done.report["served"] == 8
    assert done.output == recording.report
    assert recording.mock.call_count == before
    assert not (tmp_path / "nothing-here").exists(), "nothing looked for a store"


def test_pull_push_load_keeps_every_event_of_the_run(recording, tmp_path):
    # A run whose tools fail: their spans carry exception events (type, message, stack trace).
    failing = record(recording.env(), tmp_path / "out.txt", "--fail", "builtin,custom")
    path = replay.pull(failing["run_id"], tmp_path / "failing.tape", store=recording.sql)
    tape = replay.Tape(path)
    pulled = tape.trajectory()
    raised = [(s.tool_name, e.name, e.attributes["exception.type"], e.attributes["exception.message"])
              for s in pulled for e in s.events]
    assert raised == [("format_report", "exception", "ValueError", "nothing to report"),
                      ("format_report", "exception", "__main__.ReportError", "report service unavailable")]
    assert all("Traceback" in e.attributes["exception.stacktrace"] for s in pulled for e in s.events)

    process, state = start_collector(str(tmp_path / "other"), env=dict(os.environ, TRACETAPE_HTTP_LISTEN="127.0.0.1:0"))
    try:
        assert replay.push(path, state["grpc"]) == len(tape.spans)
        assert replay.push(path, state["grpc"]) == len(tape.spans), "pushing again is harmless"
        with replay.open_store(state["sql"]) as store, replay.open_store(recording.sql) as original:
            pushed = replay.load(failing["run_id"], store=store)
            assert _shape(pushed) == _shape(pulled) == _shape(replay.load(failing["run_id"], store=original))
            assert [s.events for s in pushed] == [s.events for s in pulled], "events with their times, exactly"
            assert pushed.run == tape.run, "the collector rebuilt the same run row from the pushed spans"
            assert len(store.spans(failing["run_id"])) == len(tape.spans)
            for a, b in zip(pushed, pulled):
                assert {role: a.blob(role) for role in a.blobs} == {role: b.blob(role) for role in b.blobs}
    finally:
        stop_collector(process)


def test_a_version_1_tape_is_still_read_and_rewritten_as_the_current_version(tmp_path):
    # Written by tracetape before tapes went columnar (named .zip: *.tape files are git-ignored).
    old = replay.Tape(DATA / "format-1-tape.zip")
    assert old.manifest["version"] == 1
    steps = old.trajectory()
    assert [(s.index, s.kind.value, s.name) for s in steps] == [
        (1, "run", "invoke_agent planner"), (2, "model_call", "chat gpt-4o"),
        (3, "tool_call", "execute_tool get_weather"), (4, "model_call", "chat gpt-4o")]
    assert steps[2].json("response") == {"sky": "snow"}
    assert all(s.events == () for s in steps), "version 1 did not keep span events"

    current = replay.Tape(write_tape(tmp_path / "v2.tape", old.run, old.spans, old.all_blobs()))
    assert current.manifest["version"] == VERSION == 2
    assert list(current.trajectory()) == list(steps)
    assert current.spans == old.spans
    assert [s.json("response") for s in current.trajectory()[1:]] == [s.json("response") for s in steps[1:]]


def test_damaged_or_foreign_files_are_refused(recording, tmp_path):
    tape = replay.Tape(recording.tape)
    step = tape.trajectory().model_calls[0]
    digest = step.blobs["response"]
    blobs = tape.all_blobs() | {digest: b'{"tampered": true}'}
    write_tape(tmp_path / "tampered.tape", tape.run, tape.spans, blobs)
    with pytest.raises(BlobError, match="corrupt"):
        replay.load(tmp_path / "tampered.tape").model_calls[0].blob("response")
    with pytest.raises(BlobError, match="corrupt"):
        replay.player(tmp_path / "tampered.tape")

    newer = tmp_path / "newer.tape"
    with zipfile.ZipFile(recording.tape) as source, zipfile.ZipFile(newer, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "manifest.json":
                data = json.dumps(json.loads(data) | {"version": 99}).encode()
            target.writestr(item, data)
    with pytest.raises(TapeError, match="version 99"):
        replay.Tape(newer)

    (tmp_path / "notes.tape").write_text("not a tape")
    with pytest.raises(TapeError, match="not a readable"):
        replay.Tape(tmp_path / "notes.tape")
    with pytest.raises(TapeError, match="no tape"):
        replay.player(tmp_path / "missing.tape")
