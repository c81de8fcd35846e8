"""One recorded agent run shared by the replay tests: a collector process, a mock model, the
multi-step agent of tests/agents/replay_agent.py recorded once, and its tape.

Recording is the slow part (a collector and an agent process), and every replay test starts from
the same recording, so it is made once per session; each test then replays it in its own process.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from replay_helpers import AGENT, Recording, record

from tracetape import replay
from tracetape.demo.mock_openai import MockOpenAI
from tracetape.demo.run_demo import start_collector, stop_collector
from tracetape.replay.commands import replay_command


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    work = tmp_path_factory.mktemp("recording")
    # Every listener on an ephemeral port: other collectors may be running on this machine.
    process, state = start_collector(str(work / "data"), env=dict(os.environ, TRACETAPE_HTTP_LISTEN="127.0.0.1:0"))
    try:
        with MockOpenAI() as mock:
            rec = Recording(state["grpc"], state["sql"], mock, tape=work / "run.tape")
            rec.run_id = record(rec.env(), work / "answers.txt")["run_id"]
            rec.report = (work / "answers.txt").read_text()
            replay.pull(rec.run_id, rec.tape, store=rec.sql)
            yield rec
    finally:
        stop_collector(process)


@dataclass
class Replayed:
    code: int
    report: dict[str, Any]
    output: str

    @property
    def steps(self) -> list[int | None]:
        return [d["step"] for d in self.report["divergences"]]


@pytest.fixture
def replay_agent(recording: Recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``replay_agent(*agent_args, mode=..., fork_at=..., source=...)``: the agent replayed in its own process
    by ``tracetape replay``; returns its exit status, the player's report and what the agent wrote."""
    for key, value in recording.env().items():
        monkeypatch.setenv(key, value)

    def run(*args: str, mode: str = "strict", fork_at: int | None = None, source: str | None = None,
            allow: tuple[str, ...] = ()) -> Replayed:
        out, report = tmp_path / f"out-{mode}.txt", tmp_path / f"report-{mode}.json"
        code = replay_command(source or str(recording.tape), ["--", sys.executable, str(AGENT), "--out", str(out),
                                                               *args],
                              mode=mode, fork_at=fork_at, allow=allow, store=recording.sql, report=str(report))
        return Replayed(code, json.loads(report.read_text()), out.read_text() if out.exists() else "")

    return run
