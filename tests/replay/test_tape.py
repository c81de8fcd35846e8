"""Tapes: a run pulled into one file replays with no collector and no store, goes back into a store
through a collector intact, and refuses to be read when damaged."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from tracetape import replay
from tracetape.demo.run_demo import start_collector, stop_collector
from tracetape.replay.commands import pull_command
from tracetape.replay.tape import write_tape
from tracetape.schemas.errors import BlobError, TapeError


def _shape(trajectory: replay.Trajectory) -> list[tuple]:
    return [(s.index, s.seq, s.kind, s.name, s.task, s.status, tuple(sorted(s.blobs.items())),
             tuple(sorted(s.attributes.items()))) for s in trajectory]


def test_a_pulled_tape_holds_the_whole_run(recording, tmp_path):
    path = pull_command(recording.run_id[:12], str(tmp_path / "pulled.tape"), store=recording.sql)
    from_tape = replay.load(path)
    # Step-through helpers: every call was made by the run's own task, directly inside the run.
    assert from_tape.in_task("0") == list(from_tape)
    assert from_tape.children(from_tape[0]) == from_tape[1:]
    assert [s.index for s in from_tape.model_calls] == [2, 4, 5, 7]
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
    assert done.code == 0 and done.report["divergences"] == [] and done.report["served"] == 7
    assert done.output == recording.report
    assert recording.mock.call_count == before
    assert not (tmp_path / "nothing-here").exists(), "nothing looked for a store"


def test_push_sends_a_tape_into_another_store_through_its_collector(recording, tmp_path):
    process, state = start_collector(str(tmp_path / "other"), env=dict(os.environ, TRACETAPE_HTTP_LISTEN="127.0.0.1:0"))
    try:
        tape = replay.Tape(recording.tape)
        assert replay.push(recording.tape, state["grpc"]) == len(tape.spans)
        assert replay.push(recording.tape, state["grpc"]) == len(tape.spans), "pushing again is harmless"
        with replay.open_store(state["sql"]) as store:
            pushed = replay.load(recording.run_id, store=store)
            assert _shape(pushed) == _shape(tape.trajectory())
            assert pushed.run == tape.run, "the collector rebuilt the same run row from the pushed spans"
            assert len(store.spans(recording.run_id)) == len(tape.spans)
            for a, b in zip(pushed, tape.trajectory()):
                assert {role: a.blob(role) for role in a.blobs} == {role: b.blob(role) for role in b.blobs}
    finally:
        stop_collector(process)


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
