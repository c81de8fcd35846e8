"""Loading spool segments into the store.

A segment file is read by ClickHouse itself (``otlp_sql.insert_from_files``);
against a ClickHouse server, which cannot read our files,
the segments are sent as the body of the same INSERT. Blob records are
inserted row-wise. Data the store refuses as malformed (a parsing or type
error, as opposed to "not now": unreachable, disk full, out of memory) is
isolated record by record, and a record the store will never take is kept in
``quarantine.bin`` for inspection instead of blocking the spool. Every insert
is idempotent (ReplacingMergeTree keyed by identity, readers use FINAL), so
loading a segment twice after a crash is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path
from typing import Any

from tracetape.schemas.wire import field, read_varint, varint

from . import otlp_sql
from .engine import release_memory
from .ingest_seq import IngestSequence
from .metrics import METRICS
from .spool import Spool

__all__ = ["SegmentLoader", "blob_record", "is_http", "BLOB_COLUMNS", "CHUNK_COLUMNS"]

_log = logging.getLogger(__name__)
BLOB_COLUMNS = ("project", "hash", "size", "chunk_count", "content_type", "created", "ingest_seq")
CHUNK_COLUMNS = ("project", "hash", "chunk", "data", "ingest_seq")
STORE_CHUNK_BYTES = 1 << 20
# ClickHouse errors meaning "this data will never go in" (parsing and type errors).
_DATA_ERROR_CODES = frozenset({6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 128, 130, 131, 190, 349, 354,
                               444, 445, 446, 447, 448, 449, 691})
_CODE = re.compile(r"Code: (\d+)\.")
_GLOB_CHARS = re.compile(r"[*?{}\[\],]")
_BLOB_FIELDS = (100, 101, 102, 103, 104)  # project, sha256, size, content type, bytes: unknown to ClickHouse


def is_http(client: Any) -> bool:
    from clickhouse_connect.driver.httpclient import HttpClient

    return isinstance(client, HttpClient)


def is_data_error(exc: BaseException) -> bool:
    match = _CODE.search(str(exc))
    return bool(match) and int(match.group(1)) in _DATA_ERROR_CODES


def blob_record(project: str, digest: str, size: int, content_type: str, data: bytes) -> bytes:
    """A blob as a spool record (fields ClickHouse's OTLP schema does not know, so it skips them)."""
    values = (project.encode(), digest.encode(), str(size).encode(), content_type.encode(), data)
    return b"".join(field(n, v) for n, v in zip(_BLOB_FIELDS, values))


def _blob_values(record: bytes) -> list[bytes]:
    values, offset = [], 0
    while offset < len(record):
        _, offset = read_varint(record, offset)
        size, offset = read_varint(record, offset)
        values.append(record[offset:offset + size])
        offset += size
    return values


class SegmentLoader:
    """Inserts the records of spool segments; raises whatever the store raised when it is not taking writes."""

    def __init__(self, spool: Spool, database: str, sequence: IngestSequence, *, http: bool) -> None:
        self._spool = spool
        self._database = database
        self._sequence = sequence
        self._http = http
        self._schema = os.path.join(spool.directory, "otlp_ingest.proto")
        if not http:
            with open(self._schema, "w", encoding="utf-8") as fh:
                fh.write(otlp_sql.PROTO_SCHEMA)

    def load(self, segments: list[str], client: Any) -> int:
        """Insert every record of *segments* (those an earlier process left are checked against their CRCs
        first, see :meth:`Spool.scan`); returns the span count."""
        scans = [self._spool.scan(segment) for segment in segments]
        blobs = [_blob_values(record) for scan in scans for record in scan.blobs]
        if blobs:
            self._insert_blobs(blobs, client)
        try:
            self._insert_spans([s for s, scan in zip(segments, scans) if scan.span_records], client)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            for segment in segments:
                self._insert_one_by_one(segment, exc, client)
        if not self._http:
            release_memory(client)
        return sum(scan.spans for scan in scans)

    def _insert_spans(self, segments: list[str], client: Any) -> None:
        if not segments:
            return
        if self._http:  # the server cannot read our files: the segments are the request body
            body = b"".join(Path(self._spool.path(s)).read_bytes() for s in segments)
            client.command(otlp_sql.insert_from_input(self._database), data=body, settings=otlp_sql.format_settings())
            return
        paths = [self._spool.path(s) for s in segments]
        if len(paths) > 1 and _GLOB_CHARS.search(self._spool.directory):
            for path in paths:  # the directory name would be read as a glob: one file at a time
                client.command(otlp_sql.insert_from_files(self._database, path, self._schema))
            return
        pattern = paths[0] if len(paths) == 1 else os.path.join(self._spool.directory, "{" + ",".join(segments) + "}")
        client.command(otlp_sql.insert_from_files(self._database, pattern, self._schema))

    def _insert_one_by_one(self, segment: str, cause: BaseException, client: Any) -> None:
        """A segment the store refused: load its span records singly, quarantine the ones it refuses."""
        _log.warning("store refused spool segment %s as malformed (%s); isolating its records", segment,
                     str(cause)[:300])
        single = self._spool.path(segment) + ".one"
        quarantine = os.path.join(self._spool.directory, "quarantine.bin")
        try:
            for record in self._spool.span_records(segment):
                with open(single, "wb") as fh:
                    fh.write(varint(len(record)) + record)
                try:
                    client.command(otlp_sql.insert_from_files(self._database, single, self._schema))
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    with open(quarantine, "ab") as fh:
                        fh.write(varint(len(record)) + record)
                    METRICS.spans_rejected.inc(1)
                    _log.error("spooled request refused by the store; kept in %s: %s", quarantine, str(exc)[:300])
        finally:
            if os.path.exists(single):
                os.remove(single)

    def _insert_blobs(self, blobs: list[list[bytes]], client: Any) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        seq, step = self._sequence.take(len(blobs)), self._sequence.step()
        chunk_rows, blob_rows = [], []
        for i, (project, digest, size, content_type, data) in enumerate(blobs):
            pieces = [data[o:o + STORE_CHUNK_BYTES] for o in range(0, len(data), STORE_CHUNK_BYTES)] or [b""]
            version = seq + i * step
            chunk_rows += [[project.decode(), digest.decode(), n, piece, version] for n, piece in enumerate(pieces)]
            blob_rows.append([project.decode(), digest.decode(), int(size), len(pieces), content_type.decode(), now,
                              version])
        # Payload bytes before the row that says the blob exists.
        client.insert(f"{self._database}.blob_chunks", chunk_rows, column_names=list(CHUNK_COLUMNS))
        client.insert(f"{self._database}.blobs", blob_rows, column_names=list(BLOB_COLUMNS))
        METRICS.blobs_stored.inc(len(blobs))
