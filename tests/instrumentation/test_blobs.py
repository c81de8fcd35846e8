"""Payload blobs: hashed once, uploaded once, large ones streamed whole; a slow or dead collector costs
the app nothing but dropped payloads, counted, in bounded memory."""

from __future__ import annotations

import hashlib
import json
import os
import socket

from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.instrumentation._blobs import BlobUploader
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
