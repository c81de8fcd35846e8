"""Subprocesses as events, and child processes as members of the parent's run."""

from __future__ import annotations

import json
import os
from collections import defaultdict

from tools_support import AGENTS, agent_env, load

from tracetape.instrumentation._runs import Run, activate, deactivate
from tracetape.instrumentation.processes import ProcessesInstrumentor
from tracetape.replay import Step
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "tools_process_agent.py"


def _worker(step: Step) -> str:
    return json.loads(step.attributes["gen_ai.tool.call.arguments"])["worker"]


def test_child_processes_record_into_the_parent_run_and_replay_without_starting(collector, agent, tmp_path):
    env = agent_env(tmp_path)
    recorded = agent(AGENT, collector, extra_env=env)
    trajectory = load(recorded["run_id"], collector)
    run, steps = trajectory[0], list(trajectory)

    # One run, one sequence across three processes: unique, gap-free, and the run counted them all.
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    assert trajectory.run.event_count == len(steps)
    tools = trajectory.filter(EventKind.TOOL_CALL)
    assert sorted(_worker(s) for s in tools) == ["child-a"] * 3 + ["child-b"] * 3 + ["parent"] * 2 + ["thread"]
    assert [s.task for s in tools if _worker(s) == "thread"] == ["0.3"], "the children took tasks 0.1 and 0.2"

    # Each child's events hang under the event that started it, in a task of its own.
    launches = [s for s in trajectory.filter(EventKind.SUBPROCESS) if s.name == "exec python"]
    assert len(launches) == 2 and all(s.parent_span_id == run.span_id and s.task == "0" for s in launches)
    for launch, worker, task, printed in zip(launches, ("child-a", "child-b"), ("0.1", "0.2"),
                                             recorded["results"][1:3]):
        inside = [s for s in steps if s.parent_span_id == launch.span_id]
        assert [s.kind for s in inside] == [EventKind.TOOL_CALL] * 3 + [EventKind.SUBPROCESS]
        assert {s.task for s in inside} == {task} and all(_worker(s) == worker for s in inside[:3])
        # The child's own command, captured: exact output, exit code.
        echo = inside[3]
        assert echo.name == "exec echo" and echo.json("response")["stdout"] == {"utf8": f"{worker} says hi\n"}
        assert echo.attributes["process.exit.code"] == "0"
        # What the parent read from the child's pipe is the child's JSON line.
        assert json.loads(launch.json("response")["stdout"]["utf8"]) == printed
        assert launch.attributes["process.exit.code"] == "0"
    # Within each process, calls happen in order and their sequence numbers follow that order.
    by_worker: dict[str, list[int]] = defaultdict(list)
    for step in tools:
        by_worker[_worker(step)].append(step.seq)
    assert all(seqs == sorted(seqs) for seqs in by_worker.values())

    # Replay: the children are not started; the parent gets what it read from them back.
    replayed = agent(AGENT, collector, "--replay", recorded["run_id"], "--store", collector.sql, extra_env=env)
    assert replayed["results"] == recorded["results"]
    # Served: the environment, the parent's and the thread's tool calls, and the two Popens (what ran
    # inside them is not asked).
    assert replayed["served"] == 1 + 3 + 2
    again = load(replayed["run_id"], collector)
    assert sorted(_worker(s) for s in again.filter(EventKind.TOOL_CALL)) == ["parent", "parent", "thread"]


def test_multiprocessing_workers_join_the_run_with_fork_and_spawn(collector, agent, tmp_path):
    recorded = agent(AGENT, collector, "--multiprocessing", extra_env=agent_env(tmp_path))
    assert [r for r in recorded["results"] if isinstance(r, list) and r[0] in ("fork", "spawn")] == \
        [["fork", 0], ["spawn", 0]]
    trajectory = load(recorded["run_id"], collector)
    steps = list(trajectory)
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    assert trajectory.run.event_count == len(steps)
    workers = defaultdict(list)
    for step in trajectory.filter(EventKind.TOOL_CALL):
        workers[_worker(step)].append(step)
    for method, task in (("fork", "0.4"), ("spawn", "0.5")):
        calls = workers[f"mp-{method}"]
        assert len(calls) == 2, method
        # Started from the run's own task, so they hang under the run, each in a task of its own.
        assert {s.task for s in calls} == {task} and {s.parent_span_id for s in calls} == {trajectory[0].span_id}


def test_a_shared_run_numbers_events_uniquely_across_forked_processes():
    run = Run(Run.new_id(), "fork-test")
    token = activate(run)  # an open run is shared before fork(), so parent and child count together
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            try:
                os.write(write, json.dumps([run.next_seq() for _ in range(300)]).encode())
            finally:
                os._exit(0)
        os.close(write)
        mine = [run.next_seq() for _ in range(300)]
        with os.fdopen(read, "rb") as pipe:
            theirs = json.loads(pipe.read())
        os.waitpid(pid, 0)
        path = run.share()
        assert os.path.exists(path)
    finally:
        deactivate(run, token)
    assert sorted(mine + theirs) == list(range(1, 601))
    assert mine == sorted(mine) and theirs == sorted(theirs)
    assert run.event_count == 600
    assert not os.path.exists(path), "a finished run takes no new members"


def test_a_run_joined_without_its_sequence_file_keeps_the_run_id_with_seq_zero(tmp_path):
    joined = Run.joined("0123abcd", str(tmp_path / "gone.seq"))
    assert joined.run_id == "0123abcd" and joined.next_seq() == 0


def test_uninstrument_restores_subprocess_asyncio_and_multiprocessing_every_time():
    import asyncio.base_subprocess
    import multiprocessing.process
    import subprocess

    def current() -> tuple:
        popen = vars(subprocess.Popen)
        return (subprocess.run, popen["__init__"], popen["communicate"], popen["wait"], popen["poll"],
                vars(asyncio.base_subprocess.BaseSubprocessTransport)["__init__"],
                vars(multiprocessing.process.BaseProcess)["start"])

    originals = current()
    instrumentor = ProcessesInstrumentor()
    for _ in range(2):
        instrumentor.instrument()
        try:
            assert all(now is not before for now, before in zip(current(), originals))
        finally:
            instrumentor.uninstrument()
        assert current() == originals
