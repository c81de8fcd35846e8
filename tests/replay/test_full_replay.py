"""The whole promise of replay, end to end: a run that streamed from a model, called tools (its own and an
MCP server's), fetched from an HTTP API, read and wrote files and used the clock, random draws and uuids,
replayed by ``tracetape replay`` with the network blocked, reproduces itself exactly without one live call."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from replay_helpers import AGENT

from tracetape import replay
from tracetape.replay.commands import replay_command
from tracetape.schemas.events import EventKind

FULL_AGENT = AGENT.parent / "replay_full_agent.py"
ADVISORIES = {"Tokyo": "typhoon season", "Paris": "strikes possible", "Lima": "none"}


class AdvisoriesApi:
    """The outside world's HTTP API: answers GET /advisories?cities=... and counts every request it gets."""

    def __init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's hook name
                with api.lock:
                    api.requests += 1
                cities = parse_qs(urlsplit(self.path).query).get("cities", [""])[0].split(",")
                body = json.dumps({c: ADVISORIES.get(c, "unknown") for c in cities}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def advisories() -> Iterator[AdvisoriesApi]:
    api = AdvisoriesApi()
    thread = threading.Thread(target=api.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()
    thread.join(10)


def _server_side(trajectory: replay.Trajectory) -> list[replay.Step]:
    """Steps the MCP server recorded while handling a request: it joins the caller's run in tasks of its
    own (0.1, 0.2, ...), while everything the agent does happens in the run's task 0."""
    return [s for s in trajectory if s.task != "0"]


def test_a_full_agent_run_replays_exactly_with_every_boundary_served_and_no_network(
        recording, advisories, tmp_path, monkeypatch):
    for key, value in recording.env().items():
        monkeypatch.setenv(key, value)
    recorded_root, replay_root = tmp_path / "recorded", tmp_path / "replayed"
    recorded_root.mkdir()
    replay_root.mkdir()  # empty: the brief is served from the recording, not read from disk
    (recorded_root / "brief.txt").write_text("Tokyo, Paris", encoding="utf-8")

    done = subprocess.run([sys.executable, str(FULL_AGENT), "--root", str(recorded_root), "--api", advisories.url],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    recorded = json.loads(done.stdout.strip().splitlines()[-1])
    assert recorded["answers"] == ['The weather in Tokyo: {"city": "Tokyo", "sky": "cloudy", "high_c": 19}',
                                   'The weather in Paris: {"city": "Paris", "sky": "light rain", "high_c": 14}']
    assert "(MCP: light rain, 18 C; advisory: strikes possible)" in recorded["briefing"]

    tape = replay.pull(recorded["run_id"], tmp_path / "full.tape", store=recording.sql)
    run = replay.load(tape)
    kinds = {s.kind for s in run if s.boundary}
    assert kinds >= {EventKind.FILE_READ, EventKind.HTTP, EventKind.MODEL_CALL, EventKind.TOOL_CALL,
                     EventKind.CLOCK, EventKind.RANDOM, EventKind.UUID, EventKind.FILE_WRITE}, kinds
    streamed = [s for s in run.model_calls if s.json("request").get("stream")]
    assert len(streamed) == len(run.model_calls) == 4, "every model call streamed"
    mcp_calls = [s for s in run.tool_calls if s.attributes.get("mcp.method.name") == "tools/call"]
    assert [s.tool_name for s in mcp_calls] == ["get_weather", "get_weather"]
    assert [s.tool_name for s in run.tool_calls if s not in mcp_calls and s.task == "0"] == ["get_weather"] * 2
    assert {s.name for s in _server_side(run)} == {"tools/call get_weather", "execute_tool forecast_table",
                                                    "tools/list"}

    model_calls, api_calls = recording.mock.call_count, advisories.requests
    report = tmp_path / "report.json"
    code = replay_command(tape, [sys.executable, str(FULL_AGENT), "--root", str(replay_root),
                                 "--api", advisories.url], report=str(report))
    outcome = json.loads(report.read_text())
    assert (code, outcome["divergences"]) == (0, [])
    assert outcome["served"] == len([s for s in run if s.boundary and s.task == "0"])

    replayed_briefing = (replay_root / "briefing.md").read_text(encoding="utf-8")
    assert replayed_briefing == (recorded_root / "briefing.md").read_text(encoding="utf-8") == \
        recorded["briefing"] + "\n", "the same file written: the same answers, time, uuid and random sign-off"
    assert not (replay_root / "brief.txt").exists()
    assert recording.mock.call_count == model_calls, "not one live model call"
    assert advisories.requests == api_calls, "not one live HTTP request"
    (replay_id,) = outcome["runs"]
    with replay.open_store(recording.sql) as store:
        replayed = replay.load(replay_id, store=store)
    assert replayed.run.parent_run_id == recorded["run_id"]
    assert [s.tool_name for s in replayed.tool_calls] == [s.tool_name for s in run.tool_calls if s.task == "0"]
    assert not _server_side(replayed), "not one live MCP tool call: the server never handled a request"
