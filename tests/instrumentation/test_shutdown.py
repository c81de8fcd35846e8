"""Process exit: a live collector gets everything the process recorded; a dead one costs the exit
next to nothing instead of the exporters' retry timeouts."""

from __future__ import annotations

import socket

from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "shutdown_agent.py"


def _dead_endpoint() -> str:
    with socket.socket() as sock:  # a port nobody listens on any more
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_exit_with_a_live_collector_flushes_every_step_and_payload(collector, agent):
    result = agent(AGENT, collector, extra_env=NO_CLIENTS)
    with replay.open_store(collector.sql) as store:
        trajectory = replay.load(result["run_id"], store=store)
        [call] = trajectory.filter(EventKind.TOOL_CALL)
        assert [s.kind for s in trajectory][:2] == [EventKind.RUN, EventKind.ENVIRONMENT]
        assert call.json("response") == {"city": "Lisbon", "sky": "clear"}  # the payload arrived too
        assert trajectory.filter(EventKind.ENVIRONMENT)[0].json("response")["env"] is not None


def test_exit_with_a_dead_collector_does_not_wait_out_export_retries(agent):
    dead = type("Dead", (), {"grpc": _dead_endpoint()})()
    # OTel's exporter alone would retry a dead endpoint until its 10 s export timeout, at exit.
    result = agent(AGENT, dead, extra_env={**NO_CLIENTS, "OTEL_EXPORTER_OTLP_TIMEOUT": "10"})
    assert result["exit_seconds"] < 3.0
