"""Uploads payload bytes to the collector's BlobService, off the app's thread.

The app thread only hashes and enqueues. A worker asks the collector which
hashes it lacks and streams just those, in chunks. The queue is bounded in
bytes: when the collector is slow or down, new payloads are dropped and
counted (the span still carries the hash), and the app never waits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Iterator, Sequence

from opentelemetry import context as otel_context

from ._tasks import start_detached

__all__ = ["BlobUploader", "sha256_hex"]

_log = logging.getLogger(__name__)
CHUNK_BYTES = 1024 * 1024
_SEEN_LIMIT = 200_000
_MAX_ATTEMPTS = 5
_RPC_TIMEOUT_S = 30.0


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobUploader:
    def __init__(self, target: str, *, secure: bool, metadata: Sequence[tuple[str, str]] = (),
                 max_queue_bytes: int = 64 * 1024 * 1024) -> None:
        self._target = target
        self._secure = secure
        self._metadata = tuple(metadata)
        self._max_queue_bytes = max_queue_bytes
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._pending: OrderedDict[str, tuple[bytes, str, int]] = OrderedDict()
        self._pending_bytes = 0
        self._in_flight = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._closed = False
        self._last_warning = 0.0
        self.dropped = 0
        self.uploaded = 0
        self._channel = None
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._after_fork)

    # -- app thread -------------------------------------------------------

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Hash *data*, queue it for upload unless already sent, return the hex digest."""
        digest = sha256_hex(data)
        with self._lock:
            if self._closed or digest in self._seen or digest in self._pending:
                return digest
            if self._pending_bytes + len(data) > self._max_queue_bytes:
                self._drop(f"blob queue full ({self._max_queue_bytes} bytes)")
                return digest
            self._pending[digest] = (data, content_type, 0)
            self._pending_bytes += len(data)
            self._ensure_worker()
        self._wake.set()
        return digest

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was uploaded (or given up on)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._pending or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # -- worker -----------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="tracetape-blobs", daemon=True)
            start_detached(self._thread)

    def _drop(self, why: str, count: int = 1) -> None:
        self.dropped += count
        now = time.monotonic()
        if now - self._last_warning > 10.0:
            self._last_warning = now
            _log.warning("tracetape dropped %d payload blob(s) so far: %s", self.dropped, why)

    def _run(self) -> None:
        token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            backoff = 0.1
            while True:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                with self._lock:
                    if self._closed and not self._pending:
                        return
                    batch = list(self._pending.items())
                    self._pending.clear()
                    self._in_flight = len(batch)
                if not batch:
                    continue
                ok = self._send(batch)
                with self._idle:
                    self._in_flight = 0
                    if ok:
                        self._pending_bytes -= sum(len(item[0]) for _, item in batch)
                    else:
                        self._requeue(batch)
                    self._idle.notify_all()
                if ok:
                    backoff = 0.1
                else:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    self._wake.set()
        finally:
            otel_context.detach(token)

    def _requeue(self, batch: list[tuple[str, tuple[bytes, str, int]]]) -> None:
        for digest, (data, content_type, attempts) in batch:
            if attempts + 1 >= _MAX_ATTEMPTS or self._closed:
                self._pending_bytes -= len(data)
                self._drop("collector unreachable")
            else:
                self._pending[digest] = (data, content_type, attempts + 1)

    def _send(self, batch: list[tuple[str, tuple[bytes, str, int]]]) -> bool:
        import grpc

        from tracetape.schemas._proto import blobs_pb2

        try:
            stub = self._stub()
            missing = set(stub.Missing(blobs_pb2.MissingRequest(sha256=[d for d, _ in batch]),
                                       metadata=self._metadata, timeout=_RPC_TIMEOUT_S).sha256)
            wanted = [(d, item) for d, item in batch if d in missing]
            if wanted:
                stub.Upload(_chunks(wanted), metadata=self._metadata, timeout=_RPC_TIMEOUT_S)
        except grpc.RpcError as exc:
            _log.debug("blob upload failed: %s", exc)
            return False
        with self._lock:
            self.uploaded += len(wanted)
            for digest, _ in batch:
                self._seen[digest] = None
            while len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
        return True

    def _stub(self):  # type: ignore[no-untyped-def]
        import grpc

        from tracetape.schemas._proto import blobs_pb2_grpc

        if self._channel is None:
            if self._secure:
                self._channel = grpc.secure_channel(self._target, grpc.ssl_channel_credentials())
            else:
                self._channel = grpc.insecure_channel(self._target)
        return blobs_pb2_grpc.BlobServiceStub(self._channel)

    def _after_fork(self) -> None:
        # Locks and the worker do not survive fork(); the child starts clean.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._pending.clear()
        self._pending_bytes = 0
        self._in_flight = 0
        self._thread = None
        self._channel = None


def _chunks(wanted: list[tuple[str, tuple[bytes, str, int]]]) -> Iterator[object]:
    from tracetape.schemas._proto import blobs_pb2

    for digest, (data, content_type, _) in wanted:
        view = memoryview(data)
        size = len(data)
        offset = 0
        while True:
            piece = view[offset:offset + CHUNK_BYTES]
            yield blobs_pb2.BlobChunk(sha256=digest, total_size=size, offset=offset, data=bytes(piece),
                                      content_type=content_type if offset == 0 else "")
            offset += len(piece)
            if offset >= size:
                break
