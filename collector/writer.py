"""The one writer of the store: group commit into large INSERTs.

Receivers call :meth:`ClickHouseWriter.consume` and block until their rows are
persisted, so an acknowledged export is in ClickHouse. Meanwhile a single
writer thread merges every request that arrived while the previous INSERT ran
(up to ``max_rows``), so throughput comes from big batches, not from
acknowledging early. An idle writer commits at once; ``max_delay`` (default
0) lets it linger for more rows, trading latency for fewer, larger parts.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

from tracetape.schemas.errors import StoreUnavailable

from .convert import RUN_COLUMNS, SPAN_COLUMNS, SpanBatch
from .ingest_seq import IngestSequence

__all__ = ["ClickHouseWriter", "BLOB_COLUMNS", "CHUNK_COLUMNS"]

_log = logging.getLogger(__name__)
BLOB_COLUMNS = ("project", "hash", "size", "chunk_count", "content_type", "created", "ingest_seq")
CHUNK_COLUMNS = ("project", "hash", "chunk", "data", "ingest_seq")
_TABLES = {"spans": SPAN_COLUMNS, "runs": RUN_COLUMNS, "blobs": BLOB_COLUMNS, "blob_chunks": CHUNK_COLUMNS}
# Insert order: payloads before the spans that point at them, runs last.
_ORDER = ("blob_chunks", "blobs", "spans", "runs")
T = TypeVar("T")


class ClickHouseWriter:
    def __init__(self, client: Any, database: str, sequence: IngestSequence, *, max_rows: int = 50_000,
                 max_delay: float = 0.0, timeout: float = 30.0) -> None:
        self._client = client
        self._database = database
        self._sequence = sequence
        self._max_rows = max_rows
        self._max_delay = max_delay
        self._timeout = timeout
        self._client_lock = threading.Lock()
        self._jobs: queue.Queue[tuple[dict[str, list[list[Any]]], Future[None]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="tracetape-writer", daemon=True)
        self._closed = False
        self.rows_written = 0
        self._thread.start()

    def consume(self, batch: SpanBatch) -> None:
        """Persist one export's spans (and runs); returns once they are in the store."""
        self._submit({"spans": batch.spans, "runs": batch.runs})

    def write_blobs(self, project: str, blobs: list[tuple[str, int, str, list[bytes]]]) -> None:
        """Persist verified blobs ``(sha256, size, content_type, chunks)``; returns once they are stored."""
        now = dt.datetime.now(dt.timezone.utc)
        self._submit({
            "blob_chunks": [[project, digest, i, data, 0] for digest, _, _, chunks in blobs
                            for i, data in enumerate(chunks)],
            "blobs": [[project, digest, size, len(chunks), content_type, now, 0]
                      for digest, size, content_type, chunks in blobs],
        })

    def query(self, fn: Callable[[Any], T]) -> T:
        """Run a read on the writer's connection (chDB allows one engine per process)."""
        with self._client_lock:
            try:
                return fn(self._client)
            except Exception as exc:
                raise StoreUnavailable(f"store query failed: {exc}") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop. Bounded by *timeout*."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join(timeout)

    def _submit(self, rows: dict[str, list[list[Any]]]) -> None:
        if self._closed:
            raise StoreUnavailable("collector is shutting down")
        future: Future[None] = Future()
        self._jobs.put((rows, future))
        try:
            future.result(timeout=self._timeout)
        except TimeoutError as exc:
            raise StoreUnavailable(f"store did not confirm the write within {self._timeout:.0f}s") from exc

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                break
            group = [first]
            count = sum(len(r) for r in first[0].values())
            deadline = time.monotonic() + self._max_delay
            while count < self._max_rows:
                try:
                    remaining = deadline - time.monotonic()
                    job = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                group.append(job)
                count += sum(len(r) for r in job[0].values())
            self._write(group)

    def _write(self, group: list[tuple[dict[str, list[list[Any]]], Future[None]]]) -> None:
        merged: dict[str, list[list[Any]]] = {table: [] for table in _ORDER}
        for rows, _ in group:
            for table, table_rows in rows.items():
                merged[table].extend(table_rows)
        try:
            with self._client_lock:
                for table in _ORDER:
                    rows = merged[table]
                    if not rows:
                        continue
                    seq, step = self._sequence.take(len(rows)), self._sequence.step()
                    for i, row in enumerate(rows):
                        row[-1] = seq + i * step
                    self._client.insert(f"{self._database}.{table}", rows, column_names=list(_TABLES[table]))
                    self.rows_written += len(rows)
        except Exception as exc:  # noqa: BLE001 - any store failure is reported to every waiting request
            _log.error("insert of %d rows failed: %s", sum(len(r) for r in merged.values()), exc)
            error = StoreUnavailable(f"store write failed: {exc}")
            error.__cause__ = exc
            for _, future in group:
                future.set_exception(error)
            return
        for _, future in group:
            future.set_result(None)
