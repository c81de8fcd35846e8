"""A writer that falls behind pushes back with retry info instead of growing or dropping data."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

AGENTS = Path(__file__).resolve().parents[1] / "agents"
sys.path.insert(0, str(AGENTS))
from ingest_collector import IngestCollector  # noqa: E402


def _request(tag: str, spans: int = 100) -> bytes:
    """*spans* spans of ~3 KB each under run id *tag*."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    trace_id = hashlib.sha256(tag.encode()).digest()[:16]
    for i in range(1, spans + 1):
        span = scope.spans.add(trace_id=trace_id, span_id=i.to_bytes(8, "big"), name="chat")
        span.attributes.add(key="tracetape.run.id", value=common_pb2.AnyValue(string_value=tag))
        span.attributes.add(key="gen_ai.input.messages", value=common_pb2.AnyValue(string_value="m" * 3000))
    return request.SerializeToString()


def _trailers(error: grpc.RpcError) -> tuple[float, float]:
    """The retry delay in the RetryInfo trailer and in grpc-status-details-bin."""
    metadata = dict(error.trailing_metadata() or ())
    info = error_details_pb2.RetryInfo.FromString(metadata["google.rpc.retryinfo-bin"])
    status = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    detail = error_details_pb2.RetryInfo()
    assert status.code == error.code().value[0] and status.details[0].Unpack(detail)
    return (info.retry_delay.seconds + info.retry_delay.nanos / 1e9,
            detail.retry_delay.seconds + detail.retry_delay.nanos / 1e9)


def test_a_writer_behind_answers_resource_exhausted_with_retry_info_and_keeps_everything(tmp_path: Path) -> None:
    collector = IngestCollector(tmp_path / "data", env={"TRACETAPE_WRITER_BACKLOG_BYTES": str(1 << 20)}).start()
    refusals: list[tuple[str, float]] = []
    acked: list[str] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        with collector.channel() as channel:
            for n in range(6):
                tag = f"w{worker}-r{n}"
                raw = _request(tag)
                for _attempt in range(100):  # bounded: the collector must make progress
                    try:
                        collector.export(channel, raw)
                    except grpc.RpcError as error:
                        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
                        delay, same = _trailers(error)
                        assert delay == same and 0 < delay <= 10
                        with lock:
                            refusals.append((error.details(), delay))
                        time.sleep(min(delay, 0.5))
                        continue
                    with lock:
                        acked.append(tag)
                    break

    try:
        workers = [threading.Thread(target=send, args=(w,)) for w in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        assert len(acked) == 48, f"{len(acked)} of 48 exports acknowledged"
        assert refusals and "behind" in refusals[0][0]
        collector.wait_drained()
        client = collector.sql()
        try:
            rows = dict(client.query("SELECT run_id, count() FROM spans FINAL GROUP BY run_id").result_rows)
        finally:
            client.close()
        assert rows == {tag: 100 for tag in acked}
    finally:
        collector.stop()


def test_a_full_spool_during_an_outage_answers_unavailable_then_recovers(tmp_path: Path) -> None:
    down = tmp_path / "store-down"
    down.touch()
    collector = IngestCollector(tmp_path / "data", env={"TRACETAPE_FAULT_STORE_DOWN_FILE": str(down),
                                                         "TRACETAPE_SPOOL_MAX_BYTES": str(2 << 20)}).start()
    try:
        with collector.channel() as channel:
            accepted = 0
            for n in range(20):
                try:
                    collector.export(channel, _request(f"outage-{n}"))
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.UNAVAILABLE
                    assert "spool is full" in error.details() and _trailers(error)[0] > 0
                    break
                accepted += 1
            assert 0 < accepted < 20  # ~300 KB each: the 2 MiB spool fills up part-way
            down.unlink()
            collector.wait_drained()
            collector.export(channel, _request("after-recovery"))
        client = collector.sql()
        try:
            runs = dict(client.query("SELECT run_id, count() FROM spans FINAL GROUP BY run_id").result_rows)
        finally:
            client.close()
        assert runs == {**{f"outage-{n}": 100 for n in range(accepted)}, "after-recovery": 100}
    finally:
        collector.stop()
