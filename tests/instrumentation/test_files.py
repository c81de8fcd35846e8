"""File reads and writes: recorded under the roots only, bytes as read, before and after a write;
replay serves the reads from the recording and repeats the writes identically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.instrumentation.files import FILE_CREATED, FILE_HASH_ONLY, FILE_SHA256, FilesInstrumentor
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "determinism_files.py"
INPUT = "first line\nsecond line\n"
BIG = bytes(range(256)) * 40  # 10 KiB, over the 4 KiB cap of these tests
LOG = "started\n"


def _workdir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "input.txt").write_text(INPUT, encoding="utf-8")
    (root / "big.bin").write_bytes(BIG)
    (root / "log.txt").write_text(LOG, encoding="utf-8")
    for produced in ("out.txt", "new.json"):
        (root / produced).unlink(missing_ok=True)
    return root


def _run(agent, collector, root: Path, *args: str) -> dict:
    return agent(AGENT, collector, "--root", str(root), *args,
                 extra_env={**NO_CLIENTS, "TRACETAPE_FILE_ROOTS": str(root), "TRACETAPE_FILE_MAX_BYTES": "4096"})


@pytest.fixture
def recorded(tmp_path, collector, agent):
    root = _workdir(tmp_path / "work")
    result = _run(agent, collector, root)
    with replay.open_store(collector.sql) as store:
        trajectory = replay.load(result["run_id"], store=store)
        yield root, result, trajectory, {p: (root / p).read_bytes() for p in ("out.txt", "log.txt", "new.json")}


def test_reads_record_the_bytes_read_and_writes_the_bytes_before_and_after(recorded):
    root, result, trajectory, written = recorded
    assert result["seen"]["open"] == INPUT and result["seen"]["big_size"] == len(BIG)
    reads = trajectory.filter(EventKind.FILE_READ)
    writes = trajectory.filter(EventKind.FILE_WRITE)
    assert [s.name for s in reads] == ["read input.txt"] * 3 + ["read big.bin", "read missing.txt"]
    assert [s.name for s in writes] == ["write out.txt", "write log.txt", "write new.json"]
    assert all(s.task == "0" for s in reads + writes), "events of the run's own task"

    # Paths relative to the root, so a replay in another directory asks the same thing.
    assert reads[0].json("request") == {"path": "input.txt", "mode": "r"}
    assert reads[1].json("request") == {"path": "input.txt", "mode": "rb"}
    assert reads[0].blob("response") == INPUT.encode()  # the bytes as read

    # Over the cap: size and hash kept, bytes not.
    big = reads[3]
    assert "response" not in big.blobs and big.attributes[FILE_HASH_ONLY] == "true"
    assert big.attributes[FILE_SHA256] == hashlib.sha256(BIG).hexdigest()

    missing = reads[4]
    assert missing.failed and missing.attributes[A.ERROR_TYPE] == "FileNotFoundError"

    out, log, new = writes
    assert out.attributes[FILE_CREATED] == "true" and "before" not in out.blobs
    assert out.blob("response") == written["out.txt"]
    assert log.blob("before") == LOG.encode() and log.blob("response") == (LOG + "ran\n").encode()
    assert log.json("request") == {"path": "log.txt", "mode": "a", "size": len(LOG) + 4,
                                   "sha256": hashlib.sha256((LOG + "ran\n").encode()).hexdigest()}
    assert json.loads(new.blob("response")) == {"lines": 2}

    # Nothing outside the root (the agent's own script, imported modules, tracetape's files).
    assert result["seen"]["outside"] is True
    assert not [s for s in trajectory if s.kind in (EventKind.FILE_READ, EventKind.FILE_WRITE)
                and s not in reads + writes]


def test_replay_serves_recorded_reads_and_repeats_identical_writes(recorded, collector, agent):
    root, result, trajectory, written = recorded
    # The world changed since the recording: replay must not see it.
    _workdir(root)
    (root / "input.txt").write_text("something else entirely\n", encoding="utf-8")

    replayed = _run(agent, collector, root, "--replay", result["run_id"], "--store", collector.sql)

    assert replayed["divergences"] == []
    assert replayed["seen"] == result["seen"]
    # The writes happened for real, byte for byte as recorded (computed from the served input).
    for name in ("out.txt", "new.json", "log.txt"):
        assert (root / name).read_bytes() == written[name]


def test_a_different_write_is_a_divergence_at_that_step(recorded, collector, agent):
    root, result, trajectory, _ = recorded
    _workdir(root)
    (root / "log.txt").write_text("a log with other history\n", encoding="utf-8")

    replayed = _run(agent, collector, root, "--replay", result["run_id"], "--store", collector.sql,
                    "--mode", "observe")

    [divergence] = replayed["divergences"]
    step = trajectory.filter(EventKind.FILE_WRITE)[1].index
    assert f"step {step}" in divergence and "write log.txt" in divergence


def test_outside_runs_open_is_untouched(tmp_path):
    import builtins
    import io

    original = builtins.open
    instrumentor = FilesInstrumentor()
    instrumentor.instrument(roots=[str(tmp_path)])
    try:
        assert builtins.open is not original and io.open is builtins.open
        (tmp_path / "a.txt").write_text("x", encoding="utf-8")
        with open(tmp_path / "a.txt", encoding="utf-8") as fh:
            assert type(fh) is io.TextIOWrapper and fh.read() == "x"
    finally:
        instrumentor.uninstrument()
    assert builtins.open is original and io.open is original
