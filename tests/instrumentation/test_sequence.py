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


def test_threads_and_tasks_inherit_run_parent_and_get_stable_task_paths(collector, agent):
    paths = []
    for _ in range(2):
        result = agent(AGENT, collector)
        with replay.open_store(collector.sql) as store:
            trajectory = replay.load(result["run_id"], store=store)
        root = trajectory[0]
        calls = trajectory.filter(EventKind.TOOL_CALL)
        assert all(step.parent_span_id == root.span_id for step in calls), "context must follow into workers"
        worker_paths: dict[str, set[str]] = defaultdict(set)
        for step in calls:
            worker_paths[json.loads(step.attributes["gen_ai.tool.call.arguments"])["worker"]].add(
                step.attributes["tracetape.task"])
        assert all(len(p) == 1 for p in worker_paths.values()), "one task path per worker"
        mapping = {worker: p.pop() for worker, p in worker_paths.items()}
        assert len(set(mapping.values())) == 8 + 50, "distinct workers, distinct paths"
        paths.append(mapping)
    # Paths come from creation order, not scheduling: the same code gives the same paths.
    assert paths[0] == paths[1]
