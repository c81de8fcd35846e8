"""The one writer of the store: spool first, then large INSERTs.

Receivers call :meth:`ClickHouseWriter.consume`. An appender thread writes
every request that arrived since its last write to the spool (``spool.py``)
and fsyncs once for all of them; from then on they are durable. Inserter
threads (one per core) load whole spool segments into ClickHouse, which
parses and converts the raw OTLP bytes itself (``otlp_sql.py``). Profiling
showed why it is built this way: each INSERT costs ~0.1 s of query planning
however small it is, so throughput comes from few
large INSERTs, and tying every acknowledgement to an INSERT would cap each
exporter at a few requests per second.

Acknowledgement: a request is answered once it is in the spool and, if little
is queued ahead of it (:attr:`WriterLimits.read_your_writes` bytes), once its
INSERT finished too. So a lightly loaded collector acks after the data is
readable (an agent can read its run right after it flushed), and a loaded one
acks as soon as the data is durable and shows it within one INSERT cycle.

Backpressure keeps memory and lag bounded: requests not yet in the spool hold
at most two batches' worth of memory, and while the store is up the spool may
hold at most ``max_backlog_bytes`` not yet inserted; beyond either, a request is
refused with :class:`StoreOverloaded` and a retry delay (gRPC
``RESOURCE_EXHAUSTED`` + RetryInfo). While the store is down the spool keeps
accepting up to its own bound (then ``UNAVAILABLE``); the inserter retries
with backoff and drains it oldest first once the store answers, and at
startup. Loading a segment is ``loader.py``'s job.

The store need not answer when the writer starts (a ClickHouse server
started after the collector, or down at the time): given only a ``connect``
function, the writer spools from the first request on and keeps calling
``connect`` (which also applies the migrations) with backoff until it returns
a client; then the inserters drain the spool. Until then :meth:`query` raises
:class:`StoreUnavailable`, which is what readiness reports.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from tracetape.schemas.config import (BATCH_MAX_BYTES, FAULT_STORE_DOWN_FILE, SPOOL_MAX_BYTES,
                                      WRITER_BACKLOG_BYTES, setting)
from tracetape.schemas.errors import StoreOverloaded, StoreUnavailable

from .convert import SpanBatch, envelope, upgrade_envelope
from .ingest_seq import IngestSequence
from .loader import SegmentLoader, blob_record, is_http
from .metrics import METRICS
from .spool import Spool

__all__ = ["ClickHouseWriter", "WriterLimits"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class WriterLimits:
    """How much the writer batches and holds; byte defaults come from ``schemas/config.py``."""

    max_rows: int = 50_000  # spans per INSERT (whole segments are taken, so a bound, not an exact size)
    max_delay: float = 0.0  # linger before an INSERT for more data
    max_batch_bytes: int = field(default_factory=lambda: setting(BATCH_MAX_BYTES))
    max_backlog_bytes: int = field(default_factory=lambda: setting(WRITER_BACKLOG_BYTES))
    spool_bytes: int = field(default_factory=lambda: setting(SPOOL_MAX_BYTES))  # the spool's bound
    admit_wait: float = 1.0  # how long a request may wait for queue room before RESOURCE_EXHAUSTED
    timeout: float = 60.0  # how long a request waits to be made durable
    read_your_writes: int = 2 * 1024 * 1024  # a request waits for its INSERT if at most this much is ahead
    insert_wait: float = 10.0  # the longest such a wait lasts (the data is durable anyway)
    retry_max: float = 5.0  # longest pause between attempts (inserts, connecting) while the store is down


@dataclass
class _Job:
    spans: int
    size: int
    batch: SpanBatch | None = None
    blobs: list[bytes] = field(default_factory=list)
    durable: Future[None] = field(default_factory=Future)
    inserted: threading.Event = field(default_factory=threading.Event)
    waits: bool = False


def _threads(engine_threads: int | None) -> int:
    return max(1, engine_threads or min(os.cpu_count() or 1, 4))


def _spool(directory: str, limits: WriterLimits, threads: int) -> Spool:
    """One lane per inserter; segments sealed at a share of a batch, so a batch spans several files."""
    return Spool(directory, limits.spool_bytes, threads, limits.max_batch_bytes // threads, upgrade=upgrade_envelope)


class ClickHouseWriter:
    """Writes span batches and blobs; see the module docstring for the guarantees.

    ``engine_threads`` (default: the cores, at most 4) is the number of concurrent INSERTs, each
    single-threaded: measured here, that beats one INSERT on every core (its planning is serial) and
    holds less memory. *client* is the store's connection. Instead, a *connect* function may be given
    that returns one, or raises :class:`StoreUnavailable` while the store does not answer (see the module
    docstring). It is tried once right away; anything else it raises then reaches the caller (a local
    store that cannot be opened, a migration that was edited: retrying would not help).
    """

    def __init__(self, client: Any | None, database: str, sequence: IngestSequence, *, max_rows: int = 50_000,
                 max_delay: float = 0.0, timeout: float = 60.0, limits: WriterLimits | None = None,
                 spool: Spool | None = None, engine_threads: int | None = None,
                 connect: Callable[[], Any] | None = None) -> None:
        if client is None and connect is None:
            raise ValueError("a writer needs a store client or a function that connects to the store")
        self._database = database
        self._sequence = sequence
        self._limits = limits or WriterLimits(max_rows=max_rows, max_delay=max_delay, timeout=timeout)
        self._threads = _threads(engine_threads)
        self._temporary = tempfile.mkdtemp(prefix="tracetape-spool-") if spool is None else None
        self._spool = spool or _spool(self._temporary or "", self._limits, self._threads)
        self._fault_file = setting(FAULT_STORE_DOWN_FILE)
        self._client: Any = None  # set once, by _attach
        self._loader: SegmentLoader | None = None
        self._insert_clients: list[Any] = []
        self._attached = threading.Event()
        self._store_error = "not connected yet"
        self._loading: set[str] = set()  # segments an inserter has claimed
        self._client_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._queued_bytes = 0
        self._waiting: dict[str, list[_Job]] = defaultdict(list)  # segment -> jobs waiting for its INSERT
        self._store_up = False  # until attached, the spool's own bound applies and nobody waits for INSERTs
        self._rate = 0.0  # bytes/s of one inserter's recent INSERTs, for the retry hint
        self._closing = False
        self._appender_done = False
        self._wake = threading.Event()
        self.rows_written = 0
        self._appender = threading.Thread(target=self._append_loop, name="tracetape-spool-append", daemon=True)
        # One inserter per core: one INSERT's planning and serial stages overlap with another's.
        self._inserters = [threading.Thread(target=self._insert_loop, args=(i,), name=f"tracetape-insert-{i}",
                                            daemon=True) for i in range(self._threads)]
        self._connector: threading.Thread | None = None
        if client is None and connect is not None:
            try:
                client = connect()
            except StoreUnavailable as exc:
                self._store_error = str(exc)[:500]
                _log.warning("store unreachable at start (%s); spooling until it answers", self._store_error)
        if client is not None:
            self._attach(client)
        else:
            self._connector = threading.Thread(target=self._connect_loop, args=(connect,),
                                               name="tracetape-store-connect", daemon=True)
            self._connector.start()
        self._appender.start()
        for inserter in self._inserters:
            inserter.start()

    @classmethod
    def with_spool(cls, client: Any | None, database: str, data_dir: str, sequence: IngestSequence | None = None,
                   **kwargs: Any) -> "ClickHouseWriter":
        """The collector's writer, spooling to ``data_dir/spool`` (loaded again after a restart)."""
        spool = _spool(os.path.join(data_dir, "spool"), kwargs.get("limits") or WriterLimits(),
                       _threads(kwargs.get("engine_threads")))
        return cls(client, database, sequence or IngestSequence(), spool=spool, **kwargs)

    # -- the receivers' side ------------------------------------------------------------------------

    def consume(self, batch: SpanBatch) -> None:
        """Make one screened export durable (see the module docstring for when this returns)."""
        if batch.spans:
            self._submit(_Job(batch.spans, len(batch.payload), batch=batch))

    def write_blobs(self, project: str, blobs: list[tuple[str, int, str, list[bytes]]]) -> None:
        """Make verified blobs ``(sha256, size, content_type, chunks)`` durable."""
        records = [blob_record(project, digest, size, content_type, b"".join(chunks))
                   for digest, size, content_type, chunks in blobs]
        if records:
            self._submit(_Job(0, sum(len(r) for r in records), blobs=records))

    def query(self, fn: Callable[[Any], T]) -> T:
        """Run a read on the writer's connection (chDB allows one engine per process)."""
        with self._client_lock:
            if self._client is None:
                raise StoreUnavailable(f"store not reachable: {self._store_error}")
            try:
                return fn(self._client)
            except Exception as exc:
                raise StoreUnavailable(f"store query failed: {exc}") from exc

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work, spool what is queued, insert what the time allows, then close the store's clients.

        Whatever is not inserted by *timeout* stays in the spool for the next start.
        """
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        self._appender.join(timeout)
        self._wake.set()
        for thread in ([self._connector] if self._connector else []) + self._inserters:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(inserter.is_alive() for inserter in self._inserters):
            _log.warning("writer closed with %d bytes still to insert; they stay in the spool", self._spool.bytes)
            return
        if self._spool.bytes:
            _log.warning("the store is not taking writes; %d bytes stay in the spool for the next start",
                         self._spool.bytes)
        self._spool.close()
        with self._client_lock:
            clients = {id(c): c for c in [*self._insert_clients, self._client] if c is not None}
            self._client, self._store_error = None, "the writer is closed"
        for store_client in clients.values():
            store_client.close()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)

    def _overloaded(self, what: str, held: int, limit: int) -> StoreOverloaded:
        """Refusal of a request while *held* bytes exceed *limit*, with the time the inserts take to drain
        *held* to half the limit as the retry delay: refused clients then come back while the other half
        still keeps the inserters busy. (Waiting until everything was drained left the store idle for
        seconds on the ingest benchmark, each time all the exporters had been refused at once.)"""
        excess, rate = held - limit / 2, self._rate * self._threads  # the inserters drain side by side
        retry = min(self._limits.retry_max, max(0.2, excess / rate if rate else 1.0))
        return StoreOverloaded(f"the collector's writer is behind ({what}); retry in {retry:.1f}s", retry_after=retry)

    def _submit(self, job: _Job) -> None:
        limits = self._limits
        if self._store_up and self._spool.bytes > limits.max_backlog_bytes:
            raise self._overloaded(f"{self._spool.bytes} bytes spooled, limit {limits.max_backlog_bytes}",
                                   self._spool.bytes, limits.max_backlog_bytes)
        deadline = time.monotonic() + limits.admit_wait
        with self._cond:
            queue_limit = 2 * limits.max_batch_bytes
            while self._queued_bytes and self._queued_bytes + job.size > queue_limit and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._overloaded(f"{self._queued_bytes} bytes queued, limit {queue_limit}",
                                           self._queued_bytes, queue_limit)
                self._cond.wait(remaining)
            if self._closing:
                raise StoreUnavailable("the collector is shutting down; retry against its successor")
            self._queue.append(job)
            self._queued_bytes += job.size
            METRICS.queue_depth.set(len(self._queue))
            self._cond.notify_all()
        try:
            job.durable.result(timeout=limits.timeout)
        except TimeoutError as exc:
            raise StoreUnavailable(f"the spool did not take the write within {limits.timeout:.0f}s; "
                                   "retrying is safe") from exc
        if job.waits:
            job.inserted.wait(limits.insert_wait)

    # -- appending to the spool -------------------------------------------------------------------

    def _take(self) -> list[_Job]:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            jobs, size = [], 0
            while self._queue and (not jobs or size + self._queue[0].size <= self._limits.max_batch_bytes):
                job = self._queue.popleft()
                jobs.append(job)
                size += job.size
            self._queued_bytes -= size
            METRICS.queue_depth.set(len(self._queue))
            self._cond.notify_all()
            return jobs

    def _append_loop(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                self._appender_done = True
                self._wake.set()
                return
            try:
                self._append(jobs)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets an answer
                _log.exception("could not spool %d request(s)", len(jobs))
                error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(f"cannot write the spool: {exc}")
                for job in jobs:
                    if not job.durable.done():
                        job.durable.set_exception(error)
            self._wake.set()

    def _append(self, jobs: list[_Job]) -> None:
        records: list[tuple[bytes, int]] = []
        for job in jobs:
            if job.batch is not None:  # stamped here, so the ingest sequence follows spool order
                records.append((envelope(job.batch, self._sequence.take(1)), job.spans))
                job.batch = None
            records += [(record, 0) for record in job.blobs]
            job.blobs = []
        # Little queued ahead of these requests means their INSERT comes quickly: they wait for it, so
        # they are readable when acknowledged. Registered before the segment can be sealed and loaded.
        waits = self._store_up and self._spool.bytes <= self._limits.read_your_writes

        def register(segment: str) -> None:
            if waits:
                with self._cond:
                    self._waiting[segment] += jobs
                for job in jobs:
                    job.waits = True

        self._spool.append(records, register)
        METRICS.spans_spooled.inc(sum(j.spans for j in jobs))
        for job in jobs:
            job.durable.set_result(None)

    # -- connecting -------------------------------------------------------------------------------

    def _connect_loop(self, connect: Callable[[], Any]) -> None:
        """Call *connect* with backoff until it returns a client; bounded by :meth:`close`.

        It starts by waiting: the constructor has just tried.
        """
        delay = 0.5
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._closing, delay):
                    return
            try:
                client = connect()
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, migration failed: all retried
                self._store_error = str(exc)[:500]
                delay = min(delay * 2, self._limits.retry_max)
                _log.warning("store not reachable (%s); %d bytes spooled; retrying in %.1fs", self._store_error,
                             self._spool.bytes, delay)
                continue
            _log.info("store connected; draining %d spooled bytes", self._spool.bytes)
            self._attach(client)
            return

    def _attach(self, client: Any) -> None:
        """Start inserting through *client*. Inserts get their own connections so that reads (blob lookups,
        health probes) never queue behind them; an HTTP client is safe to share, a chDB one gets more handles
        on the same engine."""
        http = is_http(client)
        self._loader = SegmentLoader(self._spool, self._database, self._sequence, http=http)
        self._insert_clients = [client if http else type(client)(path=client.path, database=client.database)
                                for _ in range(self._threads)]
        with self._client_lock:
            self._client = client
        self._store_up = True
        self._attached.set()
        self._wake.set()

    # -- inserting --------------------------------------------------------------------------------

    def _insert_loop(self, index: int) -> None:
        while not self._attached.wait(0.5):  # bounded by close(): then whatever is spooled waits for a restart
            if self._closing and self._appender_done:
                return
        client = self._insert_clients[index]
        delay = 0.5
        while not (self._closing and self._appender_done and not self._spool.bytes):
            self._wake.wait(1.0)
            if self._limits.max_delay > 0 and not self._closing:
                time.sleep(self._limits.max_delay)
            while segments := self._claim():
                try:
                    self._load(segments, client)
                except Exception as exc:  # noqa: BLE001 - the store is not taking writes; keep the spool
                    self._store_failed(segments, exc, delay)
                    if self._closing and self._appender_done:
                        return
                    self._wake.wait(delay)
                    delay = min(delay * 2, self._limits.retry_max)
                    continue
                finally:
                    with self._cond:
                        self._loading.difference_update(segments)
                delay = 0.5
            self._wake.clear()

    def _claim(self) -> list[str]:
        """Segments for one INSERT, up to ``max_batch_bytes``.

        The first inserter to find nothing sealed seals the active segments (so a quiet collector
        inserts at once); while an INSERT is running, the others only take segments sealed full.
        """
        with self._cond:
            busy = bool(self._loading)
        sealed = self._spool.seal() if not busy else self._spool.sealed()
        with self._cond:
            chosen, size, spans = [], 0, 0
            for segment in sealed:
                if segment in self._loading:
                    continue
                segment_size, segment_spans = os.path.getsize(self._spool.path(segment)), self._spool.spans(segment)
                if chosen and (size + segment_size > self._limits.max_batch_bytes
                               or spans + segment_spans > self._limits.max_rows):
                    break
                chosen.append(segment)
                size += segment_size
                spans += segment_spans
            self._loading.update(chosen)
            return chosen

    def _load(self, segments: list[str], client: Any) -> None:
        """Insert whole segments, then delete them and answer the requests waiting on them."""
        if self._fault_file and os.path.exists(self._fault_file):
            raise StoreUnavailable(f"store down (fault injected: {self._fault_file} exists)")
        started = time.monotonic()
        size = sum(os.path.getsize(self._spool.path(s)) for s in segments)
        assert self._loader is not None  # set before the inserters pass _attached
        spans = self._loader.load(segments, client)
        elapsed = max(time.monotonic() - started, 1e-3)
        self._rate = 0.7 * self._rate + 0.3 * size / elapsed if self._rate else size / elapsed
        METRICS.insert_seconds.observe(elapsed)
        _log.debug("inserted %d spans from %d spool segment(s), %d bytes, in %.2fs", spans, len(segments), size,
                   elapsed)
        self.rows_written += spans
        METRICS.spans_persisted.inc(spans)
        self._store_up = True
        for segment in segments:
            self._spool.remove(segment)
            self._release(segment)

    def _store_failed(self, segments: list[str], exc: BaseException, delay: float) -> None:
        _log.error("store did not take %d spool segment(s), retrying in %.1fs: %s", len(segments), delay,
                   str(exc)[:500])
        self._store_up = False
        for segment in segments:
            self._release(segment)  # durable already: stop waiting for the INSERT

    def _release(self, segment: str) -> None:
        with self._cond:
            jobs = self._waiting.pop(segment, [])
        for job in jobs:
            job.inserted.set()
