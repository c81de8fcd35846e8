"""The embedded engine's server settings: the collector's own, an operator's, and refused typos."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from collector_helpers import Server, span_request, sql_rows
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

import grpc
from tracetape.collector import engine, settings
from tracetape.schemas.errors import ConfigError

SERVER_SETTINGS = "SELECT name, value FROM system.server_settings WHERE name IN {names:Array(String)} ORDER BY name"


def test_engine_runs_with_the_collectors_settings_and_the_operators(tmp_path):
    server = Server(tmp_path / "c", "--chdb-options", "mark_cache_size=12345678, max_server_memory_usage=3000000000")
    try:
        names = ["background_pool_size", "mark_cache_size", "max_server_memory_usage", "primary_index_cache_size"]
        rows = dict(sql_rows(server, SERVER_SETTINGS, names=f"{names!r}"))
        assert rows == {"background_pool_size": "1", "mark_cache_size": "12345678",
                        "max_server_memory_usage": "3000000000",
                        "primary_index_cache_size": engine.DEFAULT_OPTIONS["primary_index_cache_size"]}
        with grpc.insecure_channel(server.grpc_target) as channel:  # and it stores spans as before
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(span_request("chat m"), timeout=30)
        assert sql_rows(server, "SELECT name FROM spans FINAL") == [["chat m"]]
    finally:
        assert server.stop() == 0


def test_an_unknown_engine_setting_fails_startup_with_its_name(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tracetape.collector.server", "--data-dir", str(tmp_path),
                           "--chdb-options", "mark_cache_size=1000000,mark_cahce_size=5", "--grpc-listen",
                           "127.0.0.1:0", "--http-listen", "", "--sql-listen", ""],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown chDB server setting(s): mark_cahce_size" in done.stderr


@pytest.mark.parametrize("spec", ["mark_cache_size", "=5", "Mark-Cache=5", "mark_cache_size="])
def test_malformed_engine_options_are_refused_when_loaded(monkeypatch, spec):
    monkeypatch.setenv("TRACETAPE_CHDB_OPTIONS", spec)
    with pytest.raises(ConfigError, match="TRACETAPE_CHDB_OPTIONS: chDB options look like name=value"):
        settings.load()


def test_operator_options_override_and_extend_the_collectors():
    options = engine.engine_options("background_pool_size=2,max_server_memory_usage=1000000000")
    assert options["background_pool_size"] == "2" and options["max_server_memory_usage"] == "1000000000"
    assert options["mark_cache_size"] == engine.DEFAULT_OPTIONS["mark_cache_size"]


def test_the_collector_process_stores_spans_without_loading_dataframe_libraries(tmp_path):
    """chDB imports pyarrow (and with it numpy) when installed, as they are here; the collector keeps them out."""
    server = Server(tmp_path / "c")
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(span_request("chat m"), timeout=30)
        assert sql_rows(server, "SELECT name FROM spans FINAL") == [["chat m"]]
        mapped = Path(f"/proc/{server.process.pid}/maps").read_text()
        assert "chdb" in mapped
        assert [lib for lib in ("/pyarrow/", "/pandas/", "/numpy/") if lib in mapped] == []
    finally:
        assert server.stop() == 0


def _load(argv: list[str]) -> settings.CollectorConfig:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return settings.load(parser.parse_args(argv))


def test_insert_threads_come_from_flag_env_and_file_and_a_negative_count_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACETAPE_INSERT_THREADS", raising=False)
    assert _load([]).insert_threads == 0  # automatic: the cores, at most 4
    config = tmp_path / "c.toml"
    config.write_text("insert_threads = 3\n", encoding="utf-8")
    assert _load(["--config", str(config)]).insert_threads == 3
    monkeypatch.setenv("TRACETAPE_INSERT_THREADS", "2")
    assert _load(["--config", str(config)]).insert_threads == 2
    assert _load(["--insert-threads", "4"]).insert_threads == 4
    with pytest.raises(ConfigError, match="--insert-threads: must be 0 or more"):
        _load(["--insert-threads", "-1"])


def _decay_ms(server: Server) -> str:
    stats = sql_rows(server, "SELECT stats FROM system.jemalloc_stats")[0][0].replace("\\n", "\n")  # TSV-escaped
    return next(line.split(":")[1].split()[0] for line in stats.splitlines() if "opt.dirty_decay_ms" in line)


def test_the_collectors_engine_returns_freed_memory_quickly_unless_the_operator_says_otherwise(tmp_path):
    ours = Server(tmp_path / "ours")
    try:
        assert _decay_ms(ours) == "50"
    finally:
        assert ours.stop() == 0
    theirs = Server(tmp_path / "theirs", env={"JE_MALLOC_CONF": "dirty_decay_ms:1234"})
    try:
        assert _decay_ms(theirs) == "1234"
    finally:
        assert theirs.stop() == 0


SHED = """
import json, sys
from pathlib import Path
from tracetape.schemas.store import StoreAddress, open_client
from tracetape.collector.engine import shed_engine_code

def mapped_mb():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("RssFile:"))
    return int(line.split()[1]) // 1024

client = open_client(StoreAddress("chdb", path=sys.argv[1]))
client.command("CREATE TABLE t (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
client.command("INSERT INTO t SELECT number, toString(number) FROM numbers(200000)")
before = mapped_mb()
shed = shed_engine_code()
after = mapped_mb()
client.command("INSERT INTO t SELECT number, toString(number) FROM numbers(200000, 100000)")
rows = client.query("SELECT count(), sum(n), max(s) FROM t").result_rows[0]
print(json.dumps({"before": before, "after": after, "shed": shed, "rows": [int(rows[0]), int(rows[1]), rows[2]]}))
"""


def test_shedding_the_engines_idle_code_frees_resident_memory_and_the_engine_runs_on(tmp_path):
    """The engine's start-up code stays mapped and counted as resident; shed, it is mapped back only where used."""
    done = subprocess.run([sys.executable, "-c", SHED, str(tmp_path / "store")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["shed"] > 100 << 20  # the library's code and constants, hundreds of MB of mappings
    assert result["before"] - result["after"] >= 50, result  # MB no longer resident
    assert result["rows"] == [300000, sum(range(300000)), "99999"]
