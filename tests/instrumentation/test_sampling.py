"""Payload sampling: every event is kept; payloads of failed runs always, of successful runs 1 in N."""

from __future__ import annotations

import os

import pytest

from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.instrumentation._holds import Holds
from tracetape.instrumentation._payload import sampled_in
from tracetape.schemas.errors import BlobError
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "determinism_sampling.py"
ONE_IN = 3


def test_failed_runs_keep_payloads_and_successful_runs_one_in_n(collector, agent):
    result = agent(AGENT, collector, "sampled-run", extra_env={**NO_CLIENTS, "TRACETAPE_PAYLOAD_SAMPLE": str(ONE_IN)})
    kept = {r["run_id"] for r in result["runs"] if r["outcome"] == "error" or sampled_in(r["run_id"], ONE_IN)}
    assert len(kept) == 2 + 2, "the 2 failed runs, and the 2 of 4 successful ones the pick keeps"
    assert result["held_runs"] == 0 and result["dropped"] == 0
    # At least a tool's arguments and result per sampled-out run (and their environment snapshots, unless
    # another run uploaded the same bytes first).
    assert result["discarded"] >= 2 * (len(result["runs"]) - len(kept))

    with replay.open_store(collector.sql) as store:
        for run in result["runs"]:
            trajectory = replay.load(run["run_id"], store=store)
            assert trajectory.run.outcome == run["outcome"]
            [call] = trajectory.filter(EventKind.TOOL_CALL)  # the event log is complete either way
            assert set(call.blobs) == {"request", "response"}
            if run["run_id"] in kept:
                assert call.json("response").startswith("result of run")
            else:
                with pytest.raises(BlobError):
                    call.blob("response")


def test_held_payloads_stay_within_memory_then_spill_then_drop_counted():
    holds = Holds(max_memory_bytes=1_000_000, max_spill_bytes=700_000)
    payloads = [os.urandom(600_000) for _ in range(3)]
    assert holds.add("run-a", "a" * 64, payloads[0], "application/octet-stream")
    assert holds.add("run-a", "b" * 64, payloads[1], "application/octet-stream")  # over memory: spilled
    assert not holds.add("run-b", "c" * 64, payloads[2], "application/octet-stream")  # over both: dropped
    assert (holds.memory_bytes, holds.spill_bytes, holds.dropped) == (600_000, 600_000, 1)

    held = holds.pop("run-a")
    assert held is not None and (holds.memory_bytes, holds.spill_bytes) == (0, 0)
    assert [data for _, data, _ in held.take(10_000_000)] == payloads[:2]  # spilled bytes read back intact
    held.close()

    holds.add("run-c", "d" * 64, payloads[0], "application/octet-stream")
    holds.discard(holds.pop("run-c"))
    assert holds.discarded == 1 and len(holds) == 1  # run-b still waits for its outcome
