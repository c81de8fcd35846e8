"""Operating the collector: settings layers, health and readiness, metrics, logs, shutdown."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from collector_helpers import request, span_request, start_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tracetape.collector import settings
from tracetape.collector.health import SERVICES
from tracetape.schemas import config as env_config
from tracetape.schemas.errors import ConfigError

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _load(argv: list[str]) -> settings.CollectorConfig:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return settings.load(parser.parse_args(argv))


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TRACETAPE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_settings_precedence_flag_env_file_default(tmp_path, clean_env):
    config = tmp_path / "collector.toml"
    config.write_text('[collector]\ngrpc_listen = "0.0.0.0:1001"\nhttp_listen = "0.0.0.0:1002"\n'
                      'max_rows = 7\ntokens = { "t1" = "p1" }\nlog_format = "json"\n', encoding="utf-8")
    clean_env.setenv("TRACETAPE_HTTP_LISTEN", "127.0.0.1:2002")
    clean_env.setenv("TRACETAPE_GRPC_LISTEN", "127.0.0.1:2001")
    clean_env.setenv("TRACETAPE_TOKENS", "t2=p2")
    cfg = _load(["--config", str(config), "--grpc-listen", "127.0.0.1:3001", "--sql-listen", ""])
    assert cfg.grpc_listen == "127.0.0.1:3001"  # flag over env and file
    assert cfg.http_listen == "127.0.0.1:2002"  # env over file
    assert cfg.tokens == {"t2": "p2"}
    assert (cfg.max_rows, cfg.log_format) == (7, "json")  # file over default
    assert cfg.sql_listen is None  # an empty flag disables the listener
    assert cfg.max_delay_ms == env_config.BATCH_MAX_DELAY_MS.default
    assert cfg.max_request_bytes == env_config.MAX_REQUEST_BYTES.default


@pytest.mark.parametrize("name", ["batch_max_bytes", "writer_backlog_bytes", "spool_max_bytes", "max_request_bytes"])
def test_byte_limits_come_from_flag_env_and_file_and_are_checked(tmp_path, clean_env, name):
    item = next(f for f in settings.FIELDS if f.name == name)
    config = tmp_path / "c.toml"
    config.write_text(f"{name} = 3000\n", encoding="utf-8")
    assert getattr(_load(["--config", str(config)]), name) == 3000
    clean_env.setenv(item.spec.env, "2000")
    assert getattr(_load(["--config", str(config)]), name) == 2000
    assert getattr(_load(["--config", str(config), item.option, "1024"]), name) == 1024
    with pytest.raises(ConfigError, match=f"{item.option}: must be at least 1024 bytes"):
        _load([item.option, "64"])  # a forgotten unit, refused at startup
    config.write_text(f"{name} = 10\n", encoding="utf-8")
    clean_env.delenv(item.spec.env)
    with pytest.raises(ConfigError, match=f"{name}: must be at least 1024 bytes"):
        _load(["--config", str(config)])


def test_every_collector_setting_is_declared_in_the_one_settings_module():
    exported = {getattr(env_config, name) for name in env_config.__all__}
    assert {item.spec for item in settings.FIELDS} | {env_config.CONFIG_FILE} <= exported
    collector = Path(settings.__file__).parent
    readers = [p.name for p in collector.glob("*.py") if re.search(r"os\.environ|getenv|Setting\(", p.read_text())]
    assert readers == []  # STYLE #1: nothing in the collector reads or declares env vars itself


def test_config_file_from_env_and_unparseable_env_falls_back(tmp_path, clean_env):
    config = tmp_path / "c.toml"
    config.write_text('max_request_bytes = 1024\n', encoding="utf-8")  # top-level keys work too
    clean_env.setenv("TRACETAPE_CONFIG", str(config))
    clean_env.setenv("TRACETAPE_BATCH_MAX_ROWS", "lots")
    cfg = _load([])
    assert cfg.max_request_bytes == 1024 and cfg.max_rows == env_config.BATCH_MAX_ROWS.default


@pytest.mark.parametrize("content, message", [
    ('grpc_listn = "x"\n', "unknown setting 'grpc_listn'"),
    ('max_rows = "ten"\n', "max_rows must be int"),
    ('tokens = "t-without-project"\n', "TOKEN=PROJECT"),
    ('log_format = "xml"\n', "text or json"),
    ('tls_cert = "/c.pem"\n', "--tls-key"),
    ('not toml at all', "not valid TOML"),
])
def test_bad_config_files_fail_startup_with_the_reason(tmp_path, clean_env, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        _load(["--config", str(config)])


def test_collector_refuses_to_start_with_a_missing_certificate(tmp_path, clean_env):
    done = subprocess.run([sys.executable, "-m", "tracetape.collector.server", "--data-dir", str(tmp_path),
                           "--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(tmp_path / "none.key"),
                           "--grpc-listen", "127.0.0.1:0", "--http-listen", "", "--sql-listen", ""],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "cannot load TLS certificate" in done.stderr


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    yield from start_server(tmp_path_factory.mktemp("ops"), env={"TRACETAPE_LOG_FORMAT": "json"})


def _grpc_health(server) -> dict[str, int]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {s: stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=10).status for s in SERVICES}


def _metric(server, name: str) -> float:
    text = request("GET", f"{server.http}/metrics").body.decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def test_health_readiness_and_grpc_health(ops_server):
    assert request("GET", f"{ops_server.http}/healthz").status == 200
    ready = request("GET", f"{ops_server.http}/readyz")
    assert ready.status == 200 and b"store reachable" in ready.body
    assert set(_grpc_health(ops_server).values()) == {health_pb2.HealthCheckResponse.SERVING}


def test_metrics_move_after_an_export(ops_server):
    page = request("GET", f"{ops_server.http}/metrics")
    assert page.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE tracetape_insert_duration_seconds histogram" in page.body
    before = _metric(ops_server, "tracetape_spans_received_total")
    resp = request("POST", f"{ops_server.http}/v1/traces", span_request("m", count=5).SerializeToString(), PROTOBUF)
    assert resp.status == 200
    assert _metric(ops_server, "tracetape_spans_received_total") == before + 5


def test_logs_are_json_lines(ops_server):
    entries = [json.loads(line) for line in ops_server.log_lines() if line.strip()]
    assert entries and all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["message"].startswith("collector up") for e in entries)


@pytest.mark.parametrize("query", ["SELECT 1 INTO OUTFILE 'out.tsv'", "SELECT file('/etc/hostname')",
                                   "SELECT 1; SELECT 2", "KILL QUERY WHERE 1"])
def test_sql_endpoint_is_read_only_even_without_tokens(ops_server, query):
    resp = request("POST", f"{ops_server.sql}/", query.encode())
    assert resp.status != 200 and resp.headers["x-clickhouse-exception-code"] in ("62", "164", "497")
    assert not (ops_server.data_dir / "store" / "out.tsv").exists() and not os.path.exists("out.tsv")


@pytest.fixture(scope="module")
def dead_store_server(tmp_path_factory):
    with socket.socket() as sock:  # a loopback port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield from start_server(tmp_path_factory.mktemp("dead"), "--store", f"http://127.0.0.1:{port}",
                            "--spool-max-bytes", str(64 * 1024))


def _spooled(server) -> int:
    return sum(p.stat().st_size for p in (server.data_dir / "spool").glob("*.seg"))


def test_unreachable_store_means_live_but_not_ready_and_exports_are_spooled(dead_store_server):
    server = dead_store_server
    assert request("GET", f"{server.http}/healthz").status == 200
    ready = request("GET", f"{server.http}/readyz")
    assert ready.status == 503 and b"not ready: store not reachable" in ready.body
    assert b"127.0.0.1" in ready.body  # the reason names the store
    assert set(_grpc_health(server).values()) == {health_pb2.HealthCheckResponse.NOT_SERVING}

    resp = request("POST", f"{server.http}/v1/traces", span_request("kept", count=3).SerializeToString(), PROTOBUF)
    assert resp.status == 200  # acknowledged: fsync'd to the spool, inserted once the store answers
    with grpc.insecure_channel(server.grpc_target) as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(span_request("kept too", count=2), timeout=10)
    assert _spooled(server) > 0
    assert _metric(server, "tracetape_spans_spooled_total") == 5
    assert _metric(server, "tracetape_spans_persisted_total") == 0


def test_a_full_spool_refuses_with_retry_after(dead_store_server):
    big = span_request("too much", count=40)  # ~40 spans x 1 KB name: fits the limit once, not twice
    for span in big.resource_spans[0].scope_spans[0].spans:
        span.name = "x" * 1000
    statuses = [request("POST", f"{dead_store_server.http}/v1/traces", big.SerializeToString(), PROTOBUF)
                for _ in range(3)]
    refused = statuses[-1]
    assert statuses[0].status == 200
    assert refused.status == 503 and int(refused.headers["retry-after"]) > 0
    assert b"spool is full" in refused.body and b"65536" in refused.body  # --spool-max-bytes reached the writer


def test_sigterm_stops_cleanly_keeps_the_spool_and_removes_the_state_file(dead_store_server):
    spooled = _spooled(dead_store_server)
    assert dead_store_server.stop() == 0
    assert not (dead_store_server.data_dir / "collector.json").exists()
    assert _spooled(dead_store_server) == spooled > 0  # for the next start to insert
