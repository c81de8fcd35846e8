"""The store across collector restarts, and content-addressed blob storage."""

from __future__ import annotations

import clickhouse_connect

from tracetape import replay
from tracetape.schemas import ddl

QUESTION = "What's the weather in Paris?"


def _client(collector):
    return clickhouse_connect.get_client(host="127.0.0.1", port=int(collector.sql.rsplit(":", 1)[1]),
                                         database="tracetape")


def _schema(client) -> dict:
    tables = [r[0] for r in client.query("SELECT name FROM system.tables WHERE database = 'tracetape' "
                                         "ORDER BY name").result_rows]
    return {t: client.command(f"SHOW CREATE TABLE tracetape.{t}") for t in tables}


def test_restart_keeps_data_and_reapplying_migrations_changes_nothing(collector, mock_openai, agent):
    first = agent("tracetape.demo.agent", collector, QUESTION, mock=mock_openai)
    client = _client(collector)
    schema_before = _schema(client)
    ledger_before = client.query("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version").result_rows
    client.close()
    assert [row[0] for row in ledger_before] == [m.version for m in ddl.migrations()]
    assert set(schema_before) == {"blob_chunks", "blobs", "runs", "runs_from_spans", "schema_migrations", "spans"}

    assert collector.stop() == 0
    collector.start()  # same data directory: migrations run again at startup
    second = agent("tracetape.demo.agent", collector, QUESTION, mock=mock_openai)

    client = _client(collector)
    try:
        assert _schema(client) == schema_before
        assert client.query("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version").result_rows \
            == ledger_before
        assert client.command("SELECT count() FROM runs FINAL") == 2
    finally:
        client.close()
    with replay.open_store(collector.sql) as store:
        for result in (first, second):
            trajectory = replay.load(result["run_id"], store=store)
            assert (len(trajectory.model_calls), trajectory.run.outcome) == (2, "ok")
            assert [step.json("response")["city"] for step in trajectory.tool_calls] == ["Paris"]


def test_a_blob_referenced_by_two_runs_is_stored_once(collector, mock_openai, agent):
    runs = [agent("tracetape.demo.agent", collector, QUESTION, mock=mock_openai) for _ in range(2)]
    with replay.open_store(collector.sql) as store:
        tools = [replay.load(r["run_id"], store=store).tool_calls[0] for r in runs]
    digest = tools[0].blobs["response"]
    assert tools[1].blobs["response"] == digest and tools[0].span_id != tools[1].span_id
    client = _client(collector)
    try:
        # Raw row counts, without FINAL: the second process never re-sent the bytes.
        for table in ("blobs", "blob_chunks"):
            assert client.command(f"SELECT count() FROM {table} WHERE hash = {{h:String}}",
                                  parameters={"h": digest}) == 1, table
    finally:
        client.close()
