"""MCP over stdio with a real server process: client requests as events, the server's side in the same run."""

from __future__ import annotations

import json

from tools_support import AGENTS, agent_env, load

from tracetape.schemas.events import EventKind

AGENT = AGENTS / "tools_mcp_agent.py"


def test_client_requests_are_events_and_the_server_side_lands_under_them(collector, agent, tmp_path):
    env = agent_env(tmp_path)
    recorded = agent(AGENT, collector, extra_env=env)
    trajectory = load(recorded["run_id"], collector)
    steps = list(trajectory)
    assert [s.seq for s in steps] == list(range(1, len(steps) + 1))
    assert trajectory.run.event_count == len(steps)

    assert steps[1].kind is EventKind.ENVIRONMENT
    client = [s for s in steps if s.task == "0" and s.kind not in (EventKind.RUN, EventKind.ENVIRONMENT)]
    assert [(s.kind, s.name) for s in client] == [
        (EventKind.OTHER, "tools/list"),
        (EventKind.TOOL_CALL, "execute_tool add"),
        (EventKind.TOOL_CALL, "execute_tool get_weather"),
        (EventKind.TOOL_CALL, "execute_tool fail"),
        (EventKind.OTHER, "resources/list"),
        (EventKind.OTHER, "resources/read notes://today"),
    ]
    assert not [s for s in steps if s.name.startswith("MCP send")], "the SDK's client span is folded into ours"
    add = client[1]
    assert add.json("request") == {"method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 40}}}
    assert add.json("response")["structuredContent"] == {"result": 42} and add.tool_name == "add"
    failed = client[3]
    assert failed.failed and failed.attributes["error.type"] == "tool_error"
    assert failed.json("response")["isError"] is True

    # Each request's server side: a child of the client event, in a child task, in this run.
    for index, request in enumerate(client, start=1):
        served = [s for s in steps if s.parent_span_id == request.span_id]
        assert len(served) == 1, request.name
        server = served[0]
        assert server.kind is EventKind.OTHER and server.task == f"0.{index}"
        assert server.seq > request.seq and server.end_ns <= request.end_ns
        assert server.attributes["mcp.method.name"] == request.attributes["mcp.method.name"]
        assert "request" not in server.blobs, "the server side is not a boundary replay serves"
    weather_server = next(s for s in steps if s.parent_span_id == client[2].span_id)
    assert weather_server.json("params") == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert json.loads(weather_server.json("result")["content"][0]["text"])["conditions"] == "light rain"
    nested = [s for s in steps if s.parent_span_id == weather_server.span_id]
    assert [(s.kind, s.name, s.task) for s in nested] == [(EventKind.TOOL_CALL, "execute_tool forecast_table", "0.3")]

    # Replay: every request is served from the recording (the server only sees the handshake).
    replayed = agent(AGENT, collector, "--replay", recorded["run_id"], "--store", collector.sql, extra_env=env)
    assert replayed["results"] == recorded["results"]
    assert replayed["served"] == 1 + len(client)  # and the environment the run started in
    again = load(replayed["run_id"], collector)
    assert [s.name for s in again if s.kind not in (EventKind.RUN, EventKind.ENVIRONMENT)] == [s.name for s in client]
