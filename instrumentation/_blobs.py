"""Uploads payload bytes to the collector's BlobService, off the app's thread.

The app thread only hashes and enqueues. A worker asks the collector which
hashes it lacks and sends just those; payloads first gather for a while
(``_LINGER_S``, cut short by a flush or by ``_LINGER_BYTES`` waiting), since
each exchange with the collector costs more than the bytes of a typical
payload. Up to ``BATCH_BYTES`` they go
in one unary ``UploadBatch`` call; more are streamed with ``Upload`` in chunks.
A stream costs the app: gRPC drains its request iterator on a thread it starts
per call and hands every message between two threads, in bursts that take the
GIL from the app thread (8 payloads of 4 KB on loopback: 1.3-1.6 ms of process
CPU by stream, 0.33 ms in one unary call). A collector older than
``UploadBatch`` answers ``UNIMPLEMENTED``; the uploader then streams for the
rest of the process. The queue is bounded in bytes: when the collector is slow
or down, new payloads are dropped and counted (the span still carries the
hash), and the app never waits.

Payloads of a run whose outcome decides whether they are kept (sampling, see
``_payload``) are held instead (``_holds``), and on :meth:`release` either
streamed by the worker, a slice at a time, or discarded. Released payloads
bypass the queue's cap: they were already bounded while held, and a failed
run's payloads are the ones most worth keeping.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from opentelemetry.instrumentation.utils import suppress_instrumentation

from ._holds import Held, Holds
from ._tasks import start_detached

__all__ = ["BlobUploader", "BlobStats", "sha256_hex"]

_log = logging.getLogger(__name__)
CHUNK_BYTES = 1024 * 1024
_SEEN_LIMIT = 200_000
_MAX_ATTEMPTS = 5
_RPC_TIMEOUT_S = 30.0
_RELEASE_SLICE_BYTES = 16 * 1024 * 1024
_UNREACHABLE_AFTER = 2  # consecutive failed uploads after which flush() stops waiting
# How long payloads wait for more before they go. An exchange costs the process 0.4-0.5 ms of CPU
# whatever it carries, more when it competes with the app for the GIL: at 0.2 s it was 70-110 µs per
# model call of bench/overhead.py. Spans wait up to 5 s for export, so payloads still arrive first.
_LINGER_S = 1.0
# Up to this many bytes of payloads go in one UploadBatch message. Measured on loopback (client CPU per
# call, 8 payloads): 128 KiB 0.49 ms unary vs 1.2-1.6 ms streamed, 256 KiB 0.95-1.2 vs 1.3-1.5 ms, but
# 384 KiB 1.4 vs 1.1-1.6 and 512 KiB 1.5-1.8 vs 1.1-1.2 ms: past 256 KiB one big message costs more than
# the stream. Well under one Upload chunk, so a collector that takes Upload's messages takes the batch.
BATCH_BYTES = 256 * 1024
_LINGER_BYTES = BATCH_BYTES // 2  # this much waiting ends the linger, so a batch stays one unary call


_HOLD_GIL_BYTES = 64 * 1024  # payloads up to this size are hashed without letting go of the GIL
_GIL_FREE_FROM = 2048  # hashlib lets go of the GIL for any input this long


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of *data*, hashed on the caller's thread without handing the GIL away, up to 64 KiB.

    hashlib lets go of the GIL for every input of 2 KiB or more. Whenever another thread of the app
    waits for it, that hands the GIL over mid-call, and the app thread then waits for the other's
    turn to end. Measured (bench/hotpath.py, a 5 KB payload while another thread runs Python): 42-45 µs
    a hash on average that way, 6-7 µs fed in pieces of under 2 KiB; alone, 4.5 against 6 µs. Larger
    payloads are worth hashing in parallel with the app's other threads.
    """
    if len(data) < _GIL_FREE_FROM or len(data) > _HOLD_GIL_BYTES:
        return hashlib.sha256(data).hexdigest()
    digest, view = hashlib.sha256(), memoryview(data)
    for offset in range(0, len(view), _GIL_FREE_FROM - 1):
        digest.update(view[offset:offset + _GIL_FREE_FROM - 1])
    return digest.hexdigest()


@dataclass(frozen=True)
class BlobStats:
    """Counters of one uploader, for health checks and tests."""

    queued: int = 0  # payloads waiting for upload (queue and released holds)
    queued_bytes: int = 0
    uploaded: int = 0  # payloads the collector lacked and received
    dropped: int = 0  # payloads given up on: queue or hold full, collector unreachable
    held_runs: int = 0  # runs whose payloads wait for their outcome
    held_bytes: int = 0  # of those, in memory
    spilled_bytes: int = 0  # of those, in a temporary file
    discarded: int = 0  # payloads of successful runs left out by sampling


class BlobUploader:
    def __init__(self, target: str, *, secure: bool, metadata: Sequence[tuple[str, str]] = (),
                 max_queue_bytes: int = 64 * 1024 * 1024, max_held_bytes: int = 32 * 1024 * 1024,
                 max_spill_bytes: int = 1024 * 1024 * 1024) -> None:
        self._target = target
        self._secure = secure
        self._metadata = tuple(metadata)
        self._max_queue_bytes = max_queue_bytes
        self._holds = Holds(max_held_bytes, max_spill_bytes)
        self._released: deque[Held] = deque()
        self._released_bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Set while a flush() waits, from shutdown() on, and by a queue that holds a batch: no lingering.
        self._hurry = threading.Event()
        self._flushing = 0
        self._idle = threading.Condition(self._lock)
        self._pending: OrderedDict[str, tuple[bytes, str, int]] = OrderedDict()
        self._pending_bytes = 0
        self._in_flight = 0
        self._failing = 0  # consecutive failed uploads
        self._stopping = threading.Event()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._closed = False
        self._last_warning = 0.0
        self.dropped = 0
        self.uploaded = 0
        self._channel = None
        self._batch_rpc = True  # until the collector says it has no UploadBatch
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
            full = self._pending_bytes >= _LINGER_BYTES
            self._ensure_worker()
        if full and not self._hurry.is_set():
            self._hurry.set()  # enough for a batch: no more lingering (the worker clears it again)
        # Set already: the worker has not taken the queue yet (it clears the event before it does), so it
        # will take this payload too; setting it again would cost a lock and a notify for nothing.
        if not self._wake.is_set():
            self._wake.set()
        return digest

    def hold(self, run_id: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Like :meth:`put`, but keep *data* back until :meth:`release` of *run_id* says what to do with it."""
        digest = sha256_hex(data)
        with self._lock:
            if self._closed or digest in self._seen or digest in self._pending:
                return digest
            if not self._holds.add(run_id, digest, data, content_type):
                self._drop(f"held payloads over their caps (memory {self._holds.max_memory_bytes}, "
                           f"spill {self._holds.max_spill_bytes} bytes)", count=0)
        return digest

    def release(self, run_id: str, keep: bool) -> None:
        """The outcome of *run_id* is known: upload its held payloads (*keep*) or discard them."""
        with self._lock:
            held = self._holds.pop(run_id)
            if held is None:
                return
            if not keep:
                self._holds.discard(held)
                return
            self._queue_released(held)
        self._wake.set()

    def _queue_released(self, held: Held) -> None:
        self._released.append(held)
        self._released_bytes += held.memory_bytes + held.spill_size
        self._ensure_worker()

    def stats(self) -> BlobStats:
        with self._lock:
            return BlobStats(
                queued=len(self._pending) + sum(len(h.items) for h in self._released),
                queued_bytes=self._pending_bytes + self._released_bytes,
                uploaded=self.uploaded, dropped=self.dropped + self._holds.dropped, held_runs=len(self._holds),
                held_bytes=self._holds.memory_bytes, spilled_bytes=self._holds.spill_bytes,
                discarded=self._holds.discarded)

    @property
    def unreachable(self) -> bool:
        """Whether the last uploads failed in a row: the collector is down or refuses us."""
        return self._failing >= _UNREACHABLE_AFTER

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued or released so far was uploaded (or given up on).

        Returns ``False`` at the timeout, and at once while the collector is unreachable: the
        worker keeps retrying in the background, but nobody should wait on a dead collector.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            self._hurry.set()
        self._wake.set()
        try:
            with self._idle:
                while self._pending or self._released or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._failing >= _UNREACHABLE_AFTER:
                        return False
                    self._idle.wait(remaining)
            return True
        finally:
            with self._lock:
                self._flushing -= 1
                if not self._flushing and not self._closed:
                    self._hurry.clear()  # the payloads that come next may wait for company again

    def shutdown(self, timeout: float = 10.0) -> None:
        """Upload what is pending within *timeout*; what cannot be (collector down) is dropped and counted."""
        deadline = time.monotonic() + timeout
        with self._lock:
            # No outcome will come for runs still held (a child process of a run, an unfinished run): keep them.
            for held in self._holds.drain():
                self._queue_released(held)
        self.flush(timeout)
        with self._lock:
            self._closed = True
        self._stopping.set()
        self._hurry.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._drop_remaining("shut down before the collector took them")
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # -- worker -----------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="tracetape-blobs", daemon=True)
            start_detached(self._thread)

    def _drop(self, why: str, count: int = 1) -> None:
        """Count *count* dropped payloads and warn, at most every 10 s (the caller may count them itself)."""
        self.dropped += count
        now = time.monotonic()
        if now - self._last_warning > 10.0:
            self._last_warning = now
            _log.warning("tracetape dropped %d payload blob(s) so far: %s", self.dropped + self._holds.dropped, why)

    def _run(self) -> None:
        with suppress_instrumentation():  # our own uploads are not events
            backoff = 0.1
            while True:
                self._wake.wait(timeout=1.0)
                # Linger for the payloads of the next few calls: one exchange with the collector for
                # many small payloads costs far less than one each. A flush or shutdown cuts it short.
                if not self._hurry.is_set() and self._pending_bytes < _LINGER_BYTES:
                    self._hurry.wait(_LINGER_S)
                self._wake.clear()
                with self._lock:
                    if self._closed and (self._failing or not (self._pending or self._released)):
                        self._drop_remaining("collector unreachable at shutdown")
                        return
                    batch = list(self._pending.items())
                    self._pending.clear()
                    if not self._flushing and not self._closed:
                        self._hurry.clear()  # set by a full queue: the next payloads may linger again
                    if not batch:
                        batch = self._take_released()
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
                    backoff, self._failing = 0.1, 0
                else:
                    self._failing += 1
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    self._wake.set()

    def _drop_remaining(self, why: str) -> None:
        """Count everything still queued or released as dropped (under the lock)."""
        count = len(self._pending) + sum(len(held.items) for held in self._released)
        for held in self._released:
            held.close()
        self._pending.clear()
        self._released.clear()
        self._pending_bytes = self._released_bytes = 0
        if count:
            self._drop(why, count)
        self._idle.notify_all()

    def _take_released(self) -> list[tuple[str, tuple[bytes, str, int]]]:
        """A slice of the oldest released run, moved into the pending accounting (under the lock)."""
        while self._released:
            held = self._released[0]
            taken = held.take(_RELEASE_SLICE_BYTES)
            if not held.items:
                self._released.popleft()
                held.close()
            if taken:
                size = sum(len(data) for _, data, _ in taken)
                self._released_bytes -= size
                self._pending_bytes += size
                return [(digest, (data, content_type, 0)) for digest, data, content_type in taken]
        return []

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
                self._upload(stub, wanted)
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

    def _upload(self, stub: Any, wanted: list[tuple[str, tuple[bytes, str, int]]]) -> None:
        """One unary call for a small batch, a stream of chunks for a large one; raises grpc.RpcError."""
        import grpc

        from tracetape.schemas._proto import blobs_pb2

        if self._batch_rpc and sum(len(item[0]) for _, item in wanted) <= BATCH_BYTES:
            try:
                stub.UploadBatch(blobs_pb2.BlobBatch(chunks=list(_chunks(wanted))), metadata=self._metadata,
                                 timeout=_RPC_TIMEOUT_S)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                _log.debug("the collector has no UploadBatch (an older release): streaming from now on")
                self._batch_rpc = False
        stub.Upload(_chunks(wanted), metadata=self._metadata, timeout=_RPC_TIMEOUT_S)

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
        self._hurry = threading.Event()
        self._flushing = 0
        self._stopping = threading.Event()
        self._failing = 0
        self._pending.clear()
        self._pending_bytes = 0
        self._holds.reset()
        self._released = deque()
        self._released_bytes = 0
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
            piece = data if size <= CHUNK_BYTES else bytes(view[offset:offset + CHUNK_BYTES])  # no copy when whole
            yield blobs_pb2.BlobChunk(sha256=digest, total_size=size, offset=offset, data=piece,
                                      content_type=content_type if offset == 0 else "")
            offset += len(piece)
            if offset >= size:
                break
