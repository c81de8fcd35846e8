"""A ClickHouse server that is down when the collector starts: spooled, then migrated and drained once it is up.

The server is ``clickhouse_standin.py`` (the ClickHouse HTTP interface over chDB, in its own process)
on a loopback port that nobody listens on until the test starts it.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import clickhouse_connect
import grpc
import pytest
from collector_helpers import Server, request, span_request
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tracetape.schemas import ddl
from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc

STANDIN = Path(__file__).with_name("clickhouse_standin.py")
PROTOBUF = {"Content-Type": "application/x-protobuf"}


class ClickHouseStandin:
    """The stand-in server process on *port* over the chDB directory *path*; started on demand."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, str(STANDIN), str(self.path / "store"), str(self.port)],
                                        cwd=self.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the ClickHouse stand-in did not start")

    def client(self):  # type: ignore[no-untyped-def]
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, database="tracetape")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[ClickHouseStandin]:
    with socket.socket() as sock:  # a free loopback port, closed again: the server is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ClickHouseStandin(tmp_path / "clickhouse", port)
    try:
        yield server
    finally:
        server.stop()


def _until(condition, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(0.2)


def _spooled(collector: Server) -> int:
    return sum(p.stat().st_size for p in (collector.data_dir / "spool").glob("*.seg"))


def _serving(collector: Server) -> bool:
    with grpc.insecure_channel(collector.grpc_target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    return status == health_pb2.HealthCheckResponse.SERVING


def test_store_down_at_start_spools_then_migrates_and_drains(tmp_path: Path, standin: ClickHouseStandin) -> None:
    collector = Server(tmp_path / "collector", "--store", f"http://127.0.0.1:{standin.port}", "--sql-listen", "")
    try:
        ready = request("GET", f"{collector.http}/readyz")
        assert ready.status == 503 and b"store not reachable" in ready.body and not _serving(collector)

        trace_id = b"\x07" * 16
        assert request("POST", f"{collector.http}/v1/traces", span_request(
            "over http", trace_id=trace_id, run_id="outage-run", count=3).SerializeToString(), PROTOBUF).status == 200
        blob = b"tool output " * 1000
        digest = hashlib.sha256(blob).hexdigest()
        with grpc.insecure_channel(collector.grpc_target) as channel:
            blobs = blobs_pb2_grpc.BlobServiceStub(channel)
            # The store can't say what it holds, so every blob is "missing": uploads spool and deduplicate.
            assert list(blobs.Missing(blobs_pb2.MissingRequest(sha256=[digest]), timeout=10).sha256) == [digest]
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                span_request("over grpc", trace_id=trace_id, run_id="outage-run", count=2), timeout=10)
            stored = blobs.Upload(iter([blobs_pb2.BlobChunk(
                sha256=digest, total_size=len(blob), offset=0, data=blob, content_type="text/plain")]), timeout=10)
            small = b"a small payload"
            small_digest = hashlib.sha256(small).hexdigest()
            batched = blobs.UploadBatch(blobs_pb2.BlobBatch(chunks=[blobs_pb2.BlobChunk(
                sha256=small_digest, total_size=len(small), offset=0, data=small)]), timeout=10)
        assert stored.stored == 1 and batched.stored == 1 and _spooled(collector) > 0  # acked = fsync'd to the spool

        standin.start()  # the server comes up: migrations, then the spool, with no restart of the collector
        _until(lambda: request("GET", f"{collector.http}/readyz").status == 200, "ready once the server answers")
        _until(lambda: _spooled(collector) == 0, "spool drained")
        assert _serving(collector)

        client = standin.client()
        try:
            versions = [row[0] for row in client.query(
                "SELECT version FROM schema_migrations FINAL ORDER BY version").result_rows]
            assert versions == [m.version for m in ddl.migrations()]
            names = sorted(row[0] for row in client.query(
                "SELECT name FROM spans FINAL WHERE run_id = 'outage-run'").result_rows)
            assert names == ["over grpc", "over grpc-1", "over http", "over http-1", "over http-2"]
            for stored_digest in (digest, small_digest):
                assert client.command("SELECT count() FROM blobs FINAL WHERE hash = {h:String}",
                                      parameters={"h": stored_digest}) == 1

            # With the server up, an acknowledged export is readable at once (the ack waited for its INSERT).
            assert request("POST", f"{collector.http}/v1/traces", span_request(
                "after", trace_id=trace_id, run_id="outage-run").SerializeToString(), PROTOBUF).status == 200
            assert client.command("SELECT count() FROM spans FINAL WHERE run_id = 'outage-run'") == 6
        finally:
            client.close()
    finally:
        assert collector.stop() == 0
