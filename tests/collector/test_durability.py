"""Acknowledged data survives kill -9 and store outages, and duplicates never count twice.

The collector runs as its own process (tests/agents/ingest_collector.py) over a chDB
directory; load comes from a process using the official OTLP exporter that records
every span id the collector acknowledged.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from tracetape import replay
from tracetape.collector.spool import Spool, SpoolFull, _frames
from tracetape.schemas.wire import varint
from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc

AGENTS = Path(__file__).resolve().parents[1] / "agents"
sys.path.insert(0, str(AGENTS))
from collector_helpers import span_request  # noqa: E402
from ingest_collector import IngestCollector  # noqa: E402


def _acked(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if len(line) == 16]


def _sender(collector: IngestCollector, acked: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(AGENTS / "ingest_otlp_sender.py"),
                             f"http://{collector.target}", str(acked)])


def _wait_acked(acked: Path, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_acked(acked)) < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_acked(acked)) >= at_least, f"only {len(_acked(acked))} spans acknowledged in {timeout}s"


def _missing(collector: IngestCollector, span_ids: list[str]) -> set[str]:
    """The acknowledged span ids the store does not have (each stored span is one row under FINAL)."""
    client = collector.sql()
    try:
        rows = client.query("SELECT span_id, count() FROM spans FINAL GROUP BY span_id").result_rows
    finally:
        client.close()
    assert all(count == 1 for _, count in rows)
    return set(span_ids) - {span_id for span_id, _ in rows}


def test_kill_9_mid_load_loses_no_acknowledged_span(tmp_path: Path) -> None:
    collector = IngestCollector(tmp_path / "data").start()
    acked = tmp_path / "acked.txt"
    sender = _sender(collector, acked)
    try:
        _wait_acked(acked, 1000)
        collector.kill()
    finally:
        sender.kill()
        sender.wait()
    ids = _acked(acked)
    collector.start()
    try:
        collector.wait_drained()
        assert ids and not _missing(collector, ids)
    finally:
        collector.stop()


def test_store_outage_under_load_loses_nothing_and_drains_after(tmp_path: Path) -> None:
    down = tmp_path / "store-down"
    collector = IngestCollector(tmp_path / "data", env={"TRACETAPE_FAULT_STORE_DOWN_FILE": str(down)}).start()
    acked = tmp_path / "acked.txt"
    sender = _sender(collector, acked)
    try:
        _wait_acked(acked, 200)
        down.touch()  # every insert now fails: acknowledged spans go to the spool only
        before = len(_acked(acked))
        _wait_acked(acked, before + 1000)
        assert collector.spool_bytes() > 0
        down.unlink()
        time.sleep(0.5)
        sender.send_signal(signal.SIGTERM)
        assert sender.wait(60) == 0
        collector.wait_drained()
        ids = _acked(acked)
        assert ids and not _missing(collector, ids)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        collector.stop()


def _run_request(run_id: str, spans: int) -> bytes:
    trace_id = hashlib.sha256(run_id.encode()).digest()[:16]
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for seq in range(1, spans + 1):
        span = scope.spans.add(trace_id=trace_id, span_id=seq.to_bytes(8, "big"), name=f"step {seq}",
                               start_time_unix_nano=1_700_000_000_000_000_000 + seq)
        kind = "run" if seq == 1 else "tool_call"
        for key, value in (("tracetape.run.id", run_id), ("tracetape.event.kind", kind)):
            span.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
        span.attributes.add(key="tracetape.seq", value=common_pb2.AnyValue(int_value=seq))
        if seq == 1:
            span.attributes.add(key="tracetape.run.event_count", value=common_pb2.AnyValue(int_value=spans))
            span.parent_span_id = b""
        else:
            span.parent_span_id = (1).to_bytes(8, "big")
    return request.SerializeToString()


def _upload(channel: grpc.Channel, data: bytes) -> int:
    digest = hashlib.sha256(data).hexdigest()
    chunks = [blobs_pb2.BlobChunk(sha256=digest, total_size=len(data), offset=o, data=data[o:o + 700_000],
                                  content_type="application/octet-stream")
              for o in range(0, len(data), 700_000)]
    return blobs_pb2_grpc.BlobServiceStub(channel).Upload(iter(chunks)).stored


def _counts(collector: IngestCollector, run_id: str, digest: str) -> tuple[int, int, int, int]:
    client = collector.sql()
    try:
        q = {"run": run_id, "h": digest}
        return (int(client.command("SELECT count() FROM spans FINAL WHERE run_id = {run:String}", parameters=q)),
                int(client.command("SELECT sum(event_count) FROM runs FINAL WHERE run_id = {run:String}",
                                   parameters=q)),
                int(client.command("SELECT count() FROM blobs FINAL WHERE hash = {h:String}", parameters=q)),
                int(client.command("SELECT count() FROM blob_chunks FINAL WHERE hash = {h:String}", parameters=q)))
    finally:
        client.close()


def test_retried_exports_blobs_and_replayed_spool_are_read_once(tmp_path: Path) -> None:
    down = tmp_path / "store-down"
    collector = IngestCollector(tmp_path / "data", env={"TRACETAPE_FAULT_STORE_DOWN_FILE": str(down)}).start()
    request = _run_request("retried-run", 30)
    blob = bytes(range(256)) * 6000  # 1.5 MB: three chunks on the wire, two in the store
    digest = hashlib.sha256(blob).hexdigest()
    with collector.channel() as channel:
        for _ in range(2):  # a client retry: the same export and the same blob again
            collector.export(channel, request)
            assert _upload(channel, blob) == 1
    assert _counts(collector, "retried-run", digest) == (30, 30, 1, 2)
    with replay.open_store(collector.state["sql"]) as store:
        assert [step.seq for step in replay.load("retried-run", store=store)] == list(range(1, 31))

    # Spool a second run while the store is down, keep a copy of the segments, and load them twice.
    down.touch()
    with collector.channel() as channel:
        collector.export(channel, _run_request("spooled-run", 20))
    assert collector.stop() == 0
    spool = tmp_path / "data" / "spool"
    saved = tmp_path / "saved-spool"
    shutil.copytree(spool, saved)
    assert list(saved.glob("*.seg"))
    down.unlink()
    for _ in range(2):
        collector.start()
        collector.wait_drained()
        assert _counts(collector, "spooled-run", digest)[:2] == (20, 20)
        collector.stop()
        for segment in saved.glob("*.seg"):  # as if the process died between INSERT and delete
            shutil.copy(segment, spool / segment.name)


def test_spool_is_durable_framed_and_bounded(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), max_bytes=1 << 20, lanes=1)
    segment = spool.append([(b"\x0a" + b"a" * 100, 3), (b"\xa2\x06blob", 0)])
    spool.append([(b"\x0a" + b"b" * 100, 2)])
    spool.close()
    path = tmp_path / "spool" / segment
    size = path.stat().st_size
    with path.open("ab") as fh:
        fh.write(b"\x07\x68\x01\x70\x64\x7d")  # a record header torn mid-write by a crash
    reopened = Spool(str(tmp_path / "spool"), max_bytes=1 << 20, lanes=1)
    assert reopened.seal() == [segment]
    scan = reopened.scan(segment)
    assert (scan.spans, scan.span_records, scan.blobs) == (5, 2, [b"\xa2\x06blob"])
    assert path.stat().st_size == size  # the torn tail is cut; the records before it stay
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # corrupt the last record: its CRC no longer matches
    path.write_bytes(bytes(data))
    assert reopened.span_records(segment) == [b"\x0a" + b"a" * 100]
    with pytest.raises(SpoolFull, match="spool is full"):
        reopened.append([(b"\x0a" + b"c" * (1 << 20), 1)])
    reopened.remove(segment)
    assert reopened.bytes == 0 and not list((tmp_path / "spool").glob("*.seg"))


def test_a_spool_left_by_the_previous_release_is_upgraded_and_loaded(tmp_path: Path) -> None:
    """That release spooled whole export requests (Envelope field 4); after an upgrade they still load."""
    request = span_request("old spool", run_id="old-run", count=3).SerializeToString()
    project = b"default"
    old = b"\x0a" + varint(len(project)) + project + b"\x10" + varint(7) + b"\x18\x01" \
        + b"\x22" + varint(len(request)) + request
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "000001.seg").write_bytes(b"".join(_frames([(old, 3)])))

    collector = IngestCollector(tmp_path).start()
    try:
        deadline = time.monotonic() + 60
        names: list[str] = []
        while time.monotonic() < deadline and len(names) < 3:
            client = collector.sql()
            try:
                names = sorted(row[0] for row in client.query(
                    "SELECT name FROM spans FINAL WHERE run_id = 'old-run'").result_rows)
            finally:
                client.close()
            time.sleep(0.2)
        assert names == ["old spool", "old spool-1", "old spool-2"]
        assert not list(spool.glob("*.seg")), "the upgraded segment was loaded and removed"
    finally:
        assert collector.stop() == 0
