"""A run lands in the project the agent names, whether the project rides on the Resource (the provider
tracetape makes) or on every span (a provider the app made itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracetape import replay
from tracetape.schemas.events import EventKind

AGENT = Path(__file__).parents[1] / "agents" / "project_agent.py"


@pytest.mark.parametrize("setup", ["tracetape-provider", "own-provider"])
def test_a_run_is_stored_in_the_project_the_agent_names(collector, agent, setup):
    result = agent(AGENT, collector, setup, extra_env={"TRACETAPE_PROJECT": "claims"})
    with replay.open_store(collector.sql, project="claims") as store:
        trajectory = replay.load(result["run_id"], store=store)
    assert [step.kind for step in trajectory.filter(EventKind.TOOL_CALL)] == [EventKind.TOOL_CALL]
    assert trajectory.run.agent == "project-agent"
    with replay.open_store(collector.sql) as store:
        assert store.runs(run_id=result["run_id"]) == []
        assert store.spans(result["run_id"]) == []
