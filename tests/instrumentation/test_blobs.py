"""Payload blobs: hashed once, uploaded once, large ones streamed whole; a slow or dead collector costs
the app nothing but dropped payloads, counted, in bounded memory."""

from __future__ import annotations

import hashlib
import json
import os
import socket

import pytest
from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.instrumentation._blobs import BlobUploader, sha256_hex
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "determinism_blobs.py"
MB = 1024 * 1024


def _dead_endpoint() -> str:
    with socket.socket() as sock:  # a port nobody listens on any more
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_a_40_mb_payload_goes_through_and_reads_back_intact(collector, agent):
    result = agent(AGENT, collector, "big", extra_env=NO_CLIENTS)
    assert result["dropped"] == 0
    with replay.open_store(collector.sql) as store:
        [call] = replay.load(result["run_id"], store=store).filter(EventKind.TOOL_CALL)
        data = call.blob("response")  # verified against its hash on the way out
        assert len(data) == 40 * MB + 2 and call.blob_sizes["response"] == len(data)  # a JSON string
        assert hashlib.sha256(json.loads(data).encode()).hexdigest() == result["digests"][0]


def test_a_payload_is_uploaded_once_per_process_and_not_again_when_the_collector_has_it(collector, agent):
    first = agent(AGENT, collector, "repeat", extra_env=NO_CLIENTS)
    # Three identical results, one arguments payload (and the environment snapshot, if recorded).
    assert len(set(first["digests"])) == 1 and 2 <= first["uploaded"] <= 4
    second = agent(AGENT, collector, "repeat", extra_env=NO_CLIENTS)
    assert second["uploaded"] == 0 and second["dropped"] == 0


def test_with_the_collector_down_the_agent_runs_on_in_bounded_memory_and_drops_are_counted(agent):
    down = type("Down", (), {"grpc": f"http://{_dead_endpoint()}"})()
    result = agent(AGENT, down, "flood", extra_env={**NO_CLIENTS, "TRACETAPE_BLOB_QUEUE_BYTES": str(4 * MB),
                                                    "OTEL_EXPORTER_OTLP_TIMEOUT": "1"})
    assert len(result["digests"]) == 48  # the agent did all its work
    assert result["queued_bytes"] <= 4 * MB
    assert result["dropped"] >= 48 - 4 and result["uploaded"] == 0
    # 48 MB of payloads went by; what stayed in memory at once was the queue and the call at hand.
    assert result["peak_bytes"] < 16 * MB


def test_uploader_queue_is_bounded_in_bytes_and_every_payload_is_accounted_for():
    uploader = BlobUploader(_dead_endpoint(), secure=False, max_queue_bytes=3 * MB)
    try:
        for _ in range(20):
            uploader.put(os.urandom(MB))
            assert uploader.stats().queued_bytes <= 3 * MB
        assert uploader.stats().dropped >= 17
    finally:
        uploader.shutdown(timeout=5)
    stats = uploader.stats()
    # Nothing silently lost: what was not uploaded (all of it: nobody listens) is counted as dropped.
    assert (stats.queued, stats.queued_bytes, stats.uploaded, stats.dropped) == (0, 0, 0, 20)


class _BlobServer:
    """A BlobService on loopback that keeps what it receives and notes each method asked for.

    It implements *methods* only, like a collector of an older release when UploadBatch is left out;
    a method it lacks is answered UNIMPLEMENTED by gRPC itself.
    """

    def __init__(self, methods: tuple[str, ...]) -> None:
        import threading
        from concurrent import futures

        import grpc

        from tracetape.schemas._proto import blobs_pb2

        self.asked: list[str] = []
        self.received: dict[str, bytes] = {}
        self._lock = threading.Lock()
        handlers = {
            "Missing": grpc.unary_unary_rpc_method_handler(
                lambda request, context: blobs_pb2.MissingResponse(
                    sha256=[d for d in request.sha256 if d not in self.received]),
                request_deserializer=blobs_pb2.MissingRequest.FromString,
                response_serializer=blobs_pb2.MissingResponse.SerializeToString),
            "Upload": grpc.stream_unary_rpc_method_handler(
                lambda chunks, context: self._keep(chunks), request_deserializer=blobs_pb2.BlobChunk.FromString,
                response_serializer=blobs_pb2.UploadResponse.SerializeToString),
            "UploadBatch": grpc.unary_unary_rpc_method_handler(
                lambda batch, context: self._keep(batch.chunks), request_deserializer=blobs_pb2.BlobBatch.FromString,
                response_serializer=blobs_pb2.UploadResponse.SerializeToString),
        }
        known = {name: handlers[name] for name in methods}
        outer = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):  # noqa: ANN001 - gRPC signature
                name = details.method.rsplit("/", 1)[-1]
                with outer._lock:
                    outer.asked.append(name)
                return known.get(name)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((Handler(),))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _keep(self, chunks):  # noqa: ANN001, ANN202
        from tracetape.schemas._proto import blobs_pb2

        parts: dict[str, bytes] = {}
        for chunk in chunks:
            parts[chunk.sha256] = parts.get(chunk.sha256, b"") + chunk.data
        with self._lock:
            self.received.update(parts)
        return blobs_pb2.UploadResponse(stored=len(parts))

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)


def _put_and_flush(uploader: BlobUploader, payloads: list[bytes]) -> list[str]:
    digests = [uploader.put(data, "application/json") for data in payloads]
    assert uploader.flush(timeout=30)
    return digests


def test_small_payloads_go_in_one_unary_call_and_large_ones_stream():
    server = _BlobServer(("Missing", "Upload", "UploadBatch"))
    uploader = BlobUploader(server.target, secure=False)
    try:
        small = [os.urandom(3000) for _ in range(5)]
        digests = _put_and_flush(uploader, small)
        assert server.asked == ["Missing", "UploadBatch"]
        large = [os.urandom(2 * MB)]  # more than one batch may carry
        digests += _put_and_flush(uploader, large)
        assert server.asked[2:] == ["Missing", "Upload"]
    finally:
        uploader.shutdown(timeout=10)
        server.stop()
    assert server.received == {hashlib.sha256(data).hexdigest(): data for data in small + large}
    assert set(server.received) == set(digests) and uploader.stats().uploaded == 6


def test_a_collector_without_upload_batch_gets_every_payload_by_stream_from_then_on():
    server = _BlobServer(("Missing", "Upload"))  # a release older than UploadBatch
    uploader = BlobUploader(server.target, secure=False)
    try:
        first = [os.urandom(1000) for _ in range(3)]
        _put_and_flush(uploader, first)  # UploadBatch is refused; the same batch goes by stream
        later = [os.urandom(1000) for _ in range(2)]
        _put_and_flush(uploader, later)  # asked once: no second try
    finally:
        uploader.shutdown(timeout=10)
        server.stop()
    assert server.asked == ["Missing", "UploadBatch", "Upload", "Missing", "Upload"]
    assert server.received == {hashlib.sha256(data).hexdigest(): data for data in first + later}
    stats = uploader.stats()
    assert (stats.uploaded, stats.dropped, stats.queued) == (5, 0, 0)


@pytest.mark.parametrize("size", [0, 1, 2047, 2048, 2049, 4094, 5000, 64 * 1024, 64 * 1024 + 1, 3 * 1024 * 1024])
def test_a_payloads_hash_is_its_sha256_whatever_its_size(size):
    """Payloads are addressed by SHA-256 everywhere (collector, replay, other tools): hashing in pieces to keep
    the GIL must give the very same digest at every size around the piece and threshold lengths."""
    data = os.urandom(size)
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert sha256_hex(bytearray(data)) == hashlib.sha256(data).hexdigest()
