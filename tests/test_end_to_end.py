"""The walking skeleton, end to end: a real collector process over chDB, the
bundled agent (real openai SDK → local mock model) in its own process, and
the run read back in order — while the collector runs and after it stops."""

from __future__ import annotations

import hashlib
import json

import clickhouse_connect

from tracetape import replay
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind


def _record(collector, mock_openai, agent) -> dict:
    return agent("tracetape.demo.agent", collector, "What's the weather in Tokyo?", mock=mock_openai)


def test_agent_run_is_stored_and_read_back_in_order(collector, mock_openai, agent):
    result = _record(collector, mock_openai, agent)
    assert result["answer"].startswith("The weather in Tokyo")
    assert mock_openai.call_count == 2

    with replay.open_store(collector.sql) as store:
        trajectory = replay.load(result["run_id"], store=store)
        run = trajectory.run
        assert (run.agent, run.outcome, run.event_count, run.error_count) == ("weather-agent", "ok", 5, 0)
        assert set(run.tags) == {"demo", "model=gpt-4o"}
        assert [(s.kind, s.name) for s in trajectory] == [
            (EventKind.RUN, "invoke_agent weather-agent"),
            (EventKind.ENVIRONMENT, "environment"),
            (EventKind.MODEL_CALL, "chat gpt-4o"),
            (EventKind.TOOL_CALL, "execute_tool get_weather"),
            (EventKind.MODEL_CALL, "chat gpt-4o"),
        ]
        assert [s.seq for s in trajectory] == [1, 2, 3, 4, 5]
        root = trajectory[0]
        assert all(s.parent_span_id == root.span_id for s in trajectory[1:])

        first, tool, second = trajectory[2], trajectory[3], trajectory[4]
        assert (first.operation, first.provider, first.request_model) == ("chat", "openai", "gpt-4o")
        assert first.finish_reasons == ("tool_calls",) and second.finish_reasons == ("stop",)
        assert first.input_tokens > 0 and second.output_tokens > 0
        assert run.input_tokens == first.input_tokens + second.input_tokens
        assert first.attributes[A.GEN_AI_REQUEST_TEMPERATURE] == "0"
        assert "Tokyo" in json.loads(first.attributes[A.GEN_AI_INPUT_MESSAGES])[1]["parts"][0]["content"]
        assert tool.tool_name == "get_weather"
        assert json.loads(tool.attributes[A.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"city": "Tokyo"}

        # Payloads: the exact bytes that crossed the wire, retrievable and matching their hashes.
        sent = [r.body for r in mock_openai.requests]
        assert first.blob("request") == sent[0] and second.blob("request") == sent[1]
        assert first.json("response")["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert tool.json("response") == {"city": "Tokyo", "sky": "cloudy", "high_c": 19, "low_c": 12}
        for step in trajectory:
            for role, digest in step.blobs.items():
                data = step.blob(role)
                assert hashlib.sha256(data).hexdigest() == digest
                assert len(data) == step.blob_sizes[role]


def test_stock_clickhouse_client_reads_while_collector_runs(collector, mock_openai, agent):
    result = _record(collector, mock_openai, agent)
    port = int(collector.sql.rsplit(":", 1)[1])
    client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database="tracetape")
    try:
        rows = client.query("SELECT seq, kind FROM spans FINAL WHERE run_id = {r:String} ORDER BY seq",
                            parameters={"r": result["run_id"]}).result_rows
        assert rows == [(1, "run"), (2, "environment"), (3, "model_call"), (4, "tool_call"), (5, "model_call")]
        assert client.command("SELECT count() FROM runs FINAL") == 1
    finally:
        client.close()


def test_cli_reads_the_store_after_the_collector_stops(collector, mock_openai, agent, cli):
    result = _record(collector, mock_openai, agent)
    assert collector.stop() == 0

    listing = cli("runs", "--data-dir", str(collector.data_dir))
    assert listing.returncode == 0, listing.stderr
    assert result["run_id"] in listing.stdout and "weather-agent" in listing.stdout

    shown = cli("show", result["run_id"][:10], "--data-dir", str(collector.data_dir), "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert [s["kind"] for s in document["steps"]] == ["run", "environment", "model_call", "tool_call", "model_call"]

    detail = cli("show", result["run_id"], "--data-dir", str(collector.data_dir), "--step", "4", "--json")
    assert json.loads(json.loads(detail.stdout)["payloads"]["response"])["sky"] == "cloudy"

    text = cli("show", result["run_id"], "--data-dir", str(collector.data_dir))
    assert "execute_tool get_weather" in text.stdout and "tool_calls" in text.stdout


def test_secrets_never_reach_the_store(collector, mock_openai, agent):
    _record(collector, mock_openai, agent)
    assert mock_openai.requests[0].headers["authorization"] == "Bearer sk-test-secret-key-123"
    with replay.open_store(collector.sql) as store:
        client = store._client
        for table, columns in (("spans", "attributes, resource, name, status_message"),
                               ("blob_chunks", "data")):
            hits = client.command(f"SELECT count() FROM {table} WHERE position(toString(({columns})), "
                                  "'sk-test-secret') > 0")
            assert hits == 0, f"API key found in {table}"


def test_unknown_run_is_a_clear_error(collector, cli):
    shown = cli("show", "does-not-exist", "--store", collector.sql)
    assert shown.returncode == 2
    assert "no run 'does-not-exist'" in shown.stderr
