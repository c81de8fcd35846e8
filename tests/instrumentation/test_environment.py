"""The environment a run starts in: recorded as its second step (allow-listed variables, cwd, argv, Python
and package versions), never with a secret in it, and restored when the run is replayed."""

from __future__ import annotations

import os
import platform

from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "determinism_state.py"
ARGV_KEY = "sk-argv0123456789abcdefgh"
RECORDED_ENV = {
    **NO_CLIENTS,
    "TRACETAPE_ENV_ALLOW": "AGENT_MODE,AGENT_TOKEN",
    "AGENT_MODE": "careful",  # allow-listed by the user
    "TZ": "Asia/Tokyo",  # allow-listed by default
    "AGENT_TOKEN": "tok-allowlisted-but-secret-77",  # allow-listed, but its name says credential
    "NOT_LISTED": "visible-to-the-agent-only",  # not allow-listed
    "OPENAI_BASE_URL": "http://bob:pw-in-the-url-99@proxy.invalid/v1",  # allow-listed, with a password
}


def test_environment_is_the_second_step_allow_listed_and_secret_free(collector, agent):
    result = agent(AGENT, collector, "--api-key", ARGV_KEY, extra_env=RECORDED_ENV)
    assert result["seen"]["mode"] == "careful"
    with replay.open_store(collector.sql) as store:
        trajectory = replay.load(result["run_id"], store=store)
        step = trajectory[1]
        raw = step.blob("response").decode()
        snapshot = step.json("response")
    assert step.kind is EventKind.ENVIRONMENT and step.parent_span_id == trajectory[0].span_id
    assert trajectory[0].seq < step.seq < trajectory[2].seq
    env = snapshot["env"]
    assert env["AGENT_MODE"] == "careful" and env["TZ"] == "Asia/Tokyo"
    assert "AGENT_TOKEN" not in env and "NOT_LISTED" not in env
    assert env["OPENAI_BASE_URL"] == "http://[REDACTED]@proxy.invalid/v1"
    for secret in ("tok-allowlisted-but-secret-77", "visible-to-the-agent-only", "pw-in-the-url-99", ARGV_KEY,
                   "sk-test-secret-key-123"):  # the last: OPENAI_API_KEY, set for every test agent
        assert secret not in raw
    assert snapshot["argv"][0].endswith("determinism_state.py") and "--api-key" in snapshot["argv"]
    assert snapshot["cwd"] == os.getcwd()
    assert snapshot["python"]["version"] == platform.python_version()
    assert "tracetape" in snapshot["packages"]


def test_replay_serves_the_recorded_environment_to_the_agent(collector, agent):
    recorded = agent(AGENT, collector, extra_env=RECORDED_ENV)
    assert recorded["seen"]["zone"] == "JST"
    # Replayed where the agent's variables differ: it sees what it saw when it was recorded.
    elsewhere = {**RECORDED_ENV, "AGENT_MODE": "reckless", "TZ": "UTC"}
    replayed = agent(AGENT, collector, "--replay", recorded["run_id"], "--store", collector.sql,
                     extra_env=elsewhere)
    assert replayed["divergences"] == []
    assert replayed["seen"] == recorded["seen"] == {"mode": "careful", "tz": "Asia/Tokyo", "zone": "JST"}
