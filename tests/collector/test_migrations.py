"""The migration runner on a fresh embedded store and on one made by an older release.

Each case runs in its own process (chDB holds one store per process). An older release is
simulated by shipping only the migrations before ``0003_durable_parts``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tracetape.schemas import ddl

DURABLE = "fsync_after_insert = 1, fsync_part_directory = 1"
TABLES = ("spans", "runs", "blobs", "blob_chunks")
CHILD = """
import json, sys
from tracetape.collector.migrate import apply_migrations
from tracetape.schemas import ddl
from tracetape.schemas.store import open_client, parse_store

path, before = sys.argv[1], int(sys.argv[2])
shipped = ddl.migrations()
ddl.migrations = lambda: [m for m in shipped if m.version < before]  # what that release shipped
client = open_client(parse_store(path))
applied = apply_migrations(client, "tracetape")
if before < 1000:  # the older release also wrote data
    client.insert("tracetape.blobs", [["p", "h" * 64, 3, 1, "text/plain", 0, 1]],
                  column_names=["project", "hash", "size", "chunk_count", "content_type", "created", "ingest_seq"])
# Every release writes a run's root span; the store derives the run row from it.
client.insert("tracetape.spans", [["p", f"run-{before}", "t" * 32, "s" * 16, "run", 1]],
              column_names=["project", "run_id", "trace_id", "span_id", "kind", "ingest_seq"])
print(json.dumps({
    "applied": applied,
    "again": apply_migrations(client, "tracetape"),
    "create": {t: client.command(f"SHOW CREATE TABLE tracetape.{t}") for t in %(tables)r},
    "engine": dict(client.query("SELECT name, engine_full FROM system.tables "
                                "WHERE database = 'tracetape'").result_rows),
    "ledger": [r[0] for r in client.query("SELECT version FROM tracetape.schema_migrations FINAL "
                                          "ORDER BY version").result_rows],
    "blobs": client.command("SELECT count() FROM tracetape.blobs FINAL"),
    "spans": client.command("SELECT count() FROM tracetape.spans FINAL"),
    "runs": client.query("SELECT run_id FROM tracetape.runs FINAL ORDER BY run_id").result_rows,
}))
""" % {"tables": TABLES}


def _migrate(store: Path, before: int = 1000) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(store), str(before)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fresh_store_gets_every_migration_and_durable_parts(tmp_path: Path) -> None:
    result = _migrate(tmp_path / "store")
    every = [m.version for m in ddl.migrations()]
    assert 3 in every and result["applied"] == result["ledger"] == every
    assert result["again"] == []
    for table in TABLES:
        assert DURABLE in result["create"][table], table
        assert DURABLE in result["engine"][table], table
    assert DURABLE not in result["engine"]["schema_migrations"]


def test_store_of_an_older_release_gains_durable_parts_and_keeps_its_data(tmp_path: Path) -> None:
    store = tmp_path / "store"
    old = _migrate(store, before=3)
    assert old["applied"] == [1, 2] and old["blobs"] == 1
    assert not any(DURABLE in text for text in old["create"].values())

    upgraded = _migrate(store)
    newer = [m.version for m in ddl.migrations() if m.version >= 3]
    assert upgraded["applied"] == newer and upgraded["again"] == []
    assert upgraded["ledger"] == [1, 2, *newer] and upgraded["blobs"] == 1
    for table in TABLES:
        assert DURABLE in upgraded["create"][table], table


def test_store_of_an_older_release_gets_small_span_granules_and_keeps_spans_and_runs(tmp_path: Path) -> None:
    """0005 rebuilds ``spans``: its rows survive, and the run view works on the new table."""
    store = tmp_path / "store"
    old = _migrate(store, before=5)
    assert old["applied"] == [1, 2, 3, 4] and (old["spans"], old["runs"]) == (1, [["run-5"]])
    assert "index_granularity_bytes = 1048576" not in old["create"]["spans"]

    upgraded = _migrate(store)
    assert upgraded["applied"] == [m.version for m in ddl.migrations() if m.version >= 5]
    assert "index_granularity_bytes = 1048576" in upgraded["create"]["spans"]
    assert "merge_selector_base = 10" in upgraded["create"]["spans"]
    assert DURABLE in upgraded["create"]["spans"]
    assert upgraded["spans"] == 2 and upgraded["runs"] == [["run-1000"], ["run-5"]]
    assert "spans_0005" not in upgraded["engine"]


def test_store_of_an_older_release_gets_lean_span_merges_and_keeps_its_spans(tmp_path: Path) -> None:
    """0006 only changes merge settings of ``spans``: every row and run stays."""
    store = tmp_path / "store"
    old = _migrate(store, before=6)
    assert old["applied"] == [1, 2, 3, 4, 5] and old["spans"] == 1
    assert "merge_max_block_size = 1024" not in old["create"]["spans"]

    upgraded = _migrate(store)
    assert upgraded["applied"] == [m.version for m in ddl.migrations() if m.version >= 6]
    assert "merge_max_block_size = 1024" in upgraded["create"]["spans"]
    assert "merge_max_block_size_bytes = 1048576" in upgraded["create"]["spans"]
    assert "max_parts_to_merge_at_once = 10" in upgraded["create"]["spans"]
    assert "index_granularity_bytes = 1048576" in upgraded["create"]["spans"] and DURABLE in upgraded["create"]["spans"]
    assert upgraded["spans"] == 2 and upgraded["runs"] == [["run-1000"], ["run-6"]]
