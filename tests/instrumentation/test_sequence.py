"""tracetape.seq under concurrency: threads and asyncio tasks of one run."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from tracetape import replay
from tracetape.schemas.events import EventKind

AGENT = Path(__file__).parents[1] / "agents" / "concurrent_agent.py"


def test_threads_and_tasks_get_unique_increasing_seqs_in_start_order(collector, agent):
    result = agent(AGENT, collector)
    with replay.open_store(collector.sql) as store:
        trajectory = replay.load(result["run_id"], store=store)
    calls = trajectory.filter(EventKind.TOOL_CALL)
    assert len(calls) == result["calls"] == 8 * 25 + 50 * 4
    seqs = [s.seq for s in trajectory]
    assert seqs == list(range(1, len(trajectory) + 1)), "seqs must be unique, gap-free and in step order"
    assert trajectory.run.event_count == len(trajectory)

    # Within each thread or task, calls happen one after another: seq follows call order.
    by_worker: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for step in calls:
        arguments = json.loads(step.attributes["gen_ai.tool.call.arguments"])
        by_worker[arguments["worker"]].append((arguments["i"], step.seq))
    assert len(by_worker) == 8 + 50
    for worker, pairs in by_worker.items():
        assert [i for i, _ in sorted(pairs, key=lambda p: p[1])] == sorted(i for i, _ in pairs), worker

    # Across workers: an event that ended before another started has the smaller seq.
    ordered = sorted(calls, key=lambda s: s.end_ns)
    for earlier in ordered:
        later = [s for s in calls if s.start_ns >= earlier.end_ns]
        assert all(earlier.seq < s.seq for s in later)
