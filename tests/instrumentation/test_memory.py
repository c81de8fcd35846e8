"""``tracetape.memory(name, value)``: the agent's scratchpad as events of the run."""

from __future__ import annotations


from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.instrumentation.memory import MEMORY_DIVERGED, MEMORY_PREVIEW
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "determinism_state.py"


def test_memory_is_recorded_in_the_run_and_compared_in_replay(collector, agent):
    recorded = agent(AGENT, collector, extra_env={**NO_CLIENTS, "AGENT_MODE": "careful"})
    with replay.open_store(collector.sql) as store:
        trajectory = replay.load(recorded["run_id"], store=store)
        notes, scratch = trajectory.filter(EventKind.MEMORY)
        assert (notes.name, scratch.name) == ("memory notes", "memory scratch")
        assert notes.json("request") == {"name": "notes"}
        assert notes.json("response") == {"mode": "careful", "note": "first"}
        assert notes.attributes[MEMORY_PREVIEW] == '{"mode":"careful","note":"first"}'
        assert scratch.json("response") == "<Opaque thing>"  # not JSON-serializable: its repr
        assert notes.parent_span_id == trajectory[0].span_id and notes.seq < scratch.seq
        assert not [s for s in trajectory if "outside" in s.name], "memory outside a run is not recorded"

    replayed = agent(AGENT, collector, "--replay", recorded["run_id"], "--store", collector.sql, "--note", "second",
                     extra_env={**NO_CLIENTS, "AGENT_MODE": "careful"})
    assert replayed["divergences"] == []
    with replay.open_store(collector.sql) as store:
        again = replay.load(replayed["run_id"], store=store)
        notes_again, scratch_again = again.filter(EventKind.MEMORY)
        assert notes_again.json("response") == {"mode": "careful", "note": "second"}
        assert notes_again.attributes[MEMORY_DIVERGED] == "true"
        assert MEMORY_DIVERGED not in scratch_again.attributes
