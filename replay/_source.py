"""Finding the store to read from, and the SQL readers run against it.

Order of resolution: an explicit address; ``TRACETAPE_STORE``; the SQL
endpoint of a collector running on the local data directory (it owns the
chDB directory while it runs); the chDB directory itself.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

from tracetape.schemas import config
from tracetape.schemas.errors import BlobError, RunNotFound
from tracetape.schemas.store import StoreAddress, open_client, parse_store

from .trajectory import bulk, verified

__all__ = ["Store", "RunBlobs", "resolve_store"]

_SPAN_SELECT = """
SELECT run_id, seq, trace_id, span_id, parent_span_id, name, kind, span_kind, service_name,
       toUnixTimestamp64Nano(start_time), toUnixTimestamp64Nano(end_time), status_code, status_message,
       operation, provider, request_model, response_model, tool_name, tool_call_id, input_tokens,
       output_tokens, finish_reasons, blobs, blob_sizes, attributes, resource,
       arrayMap(e -> tuple(toUnixTimestamp64Nano(e.1), e.2, e.3), events)
FROM {db}.spans FINAL
WHERE project = {{project:String}} AND run_id = {{run:String}}
"""
SPAN_FIELDS = (
    "run_id", "seq", "trace_id", "span_id", "parent_span_id", "name", "kind", "span_kind", "service_name",
    "start_ns", "end_ns", "status_code", "status_message", "operation", "provider", "request_model",
    "response_model", "tool_name", "tool_call_id", "input_tokens", "output_tokens", "finish_reasons", "blobs",
    "blob_sizes", "attributes", "resource", "events",
)
RUN_FIELDS = (
    "run_id", "agent", "service_name", "trace_id", "start_ns", "end_ns", "outcome", "error", "tags",
    "parent_run_id", "fork_step", "event_count", "error_count", "input_tokens", "output_tokens",
)
_RUN_SELECT = """
SELECT run_id, agent, service_name, trace_id, toUnixTimestamp64Nano(start_time), toUnixTimestamp64Nano(end_time),
       outcome, error, tags, parent_run_id, fork_step, event_count, error_count, input_tokens, output_tokens
FROM {db}.runs FINAL
WHERE project = {{project:String}}
"""


# Hashes per IN (...) query: their parameters travel in the URL, which servers cap (64 KiB here).
_HASHES_PER_QUERY = 400


def _live_collector_sql(data_dir: str) -> str | None:
    try:
        with open(os.path.join(data_dir, "collector.json"), encoding="utf-8") as fh:
            state = json.load(fh)
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state.get("sql") or None


def resolve_store(store: str | None = None, data_dir: str | None = None) -> StoreAddress:
    explicit = store or config.setting(config.STORE)
    if explicit:
        return parse_store(explicit)
    data_dir = config.setting(config.DATA_DIR, data_dir)
    return parse_store(_live_collector_sql(data_dir) or os.path.join(data_dir, "store"))


class Store:
    """Parameterized reads of runs, spans and blobs for one project."""

    def __init__(self, address: StoreAddress, *, project: str | None = None, token: str | None = None,
                 database: str | None = None) -> None:
        token = config.setting(config.TOKEN, token)
        if address.kind == "http" and token and not address.password:
            address = StoreAddress("http", url=address.url, username=address.username or "tracetape",
                                   password=token)
        if address.kind == "chdb" and not os.path.isdir(address.path):
            raise RunNotFound(f"no tracetape store at {address.path}")
        self.address = address
        self.project = config.setting(config.PROJECT, project)
        self.database = config.setting(config.DATABASE, database)
        self._client = open_client(address, database=self.database)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resolve_run(self, run: str) -> str:
        """A full run id from an id or a unique prefix of one."""
        rows = self._client.query(
            f"SELECT DISTINCT run_id FROM {self.database}.spans WHERE project = {{project:String}} "
            "AND startsWith(run_id, {prefix:String}) LIMIT 2",
            parameters={"project": self.project, "prefix": run}).result_rows
        if not rows:
            raise RunNotFound(f"no run {run!r} in project {self.project!r} at {self.address}")
        if len(rows) > 1 and rows[0][0] != run:
            raise RunNotFound(f"run prefix {run!r} is ambiguous; give more characters")
        return str(rows[0][0]) if len(rows) == 1 else run

    def spans(self, run_id: str) -> list[dict[str, Any]]:
        with bulk():
            rows = self._client.query(_SPAN_SELECT.format(db=self.database),
                                      parameters={"project": self.project, "run": run_id}).result_rows
            return [dict(zip(SPAN_FIELDS, row)) for row in rows]

    def runs(self, *, agent: str | None = None, outcome: str | None = None, tag: str | None = None,
             run_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = _RUN_SELECT.format(db=self.database)
        params: dict[str, Any] = {"project": self.project, "limit": int(limit)}
        for column, value, test in (("agent", agent, "agent = {agent:String}"),
                                    ("outcome", outcome, "outcome = {outcome:String}"),
                                    ("tag", tag, "has(tags, {tag:String})"),
                                    ("run", run_id, "run_id = {run:String}")):
            if value:
                sql += f" AND {test}"
                params[column] = value
        sql += " ORDER BY start_time DESC, run_id LIMIT {limit:UInt32}"
        rows = self._client.query(sql, parameters=params).result_rows
        return [dict(zip(RUN_FIELDS, row)) for row in rows]

    def blob(self, digest: str) -> bytes:
        """The payload with this SHA-256, verified against it."""
        rows = self._client.query(
            f"SELECT chunk, data FROM {self.database}.blob_chunks FINAL WHERE project = {{project:String}} "
            "AND hash = {hash:String} ORDER BY chunk",
            parameters={"project": self.project, "hash": digest}, column_formats={"data": "bytes"}).result_rows
        if not rows:
            raise BlobError(f"blob {digest} is not in the store (not uploaded yet, or dropped by the client)")
        return verified(digest, b"".join(row[1] for row in rows))

    def blobs(self, digests: Iterable[str]) -> dict[str, bytes]:
        """Several payloads by hash (one query per few hundred), each verified; absent ones are left out."""
        wanted = sorted(set(digests))
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), _HASHES_PER_QUERY):
            found.update(self._assemble(self._client.query(
                f"SELECT hash, chunk, data FROM {self.database}.blob_chunks FINAL WHERE project = {{project:String}} "
                "AND hash IN {hashes:Array(String)} ORDER BY hash, chunk",
                parameters={"project": self.project, "hashes": wanted[start:start + _HASHES_PER_QUERY]},
                column_formats={"data": "bytes"}).result_rows))
        return found

    def run_blobs(self, run_id: str) -> dict[str, bytes]:
        """Every payload a run references, in one query whatever the run's size."""
        rows = self._client.query(
            f"SELECT hash, chunk, data FROM {self.database}.blob_chunks FINAL WHERE project = {{project:String}} "
            f"AND hash IN (SELECT arrayJoin(mapValues(blobs)) FROM {self.database}.spans "
            "WHERE project = {project:String} AND run_id = {run:String}) ORDER BY hash, chunk",
            parameters={"project": self.project, "run": run_id}, column_formats={"data": "bytes"}).result_rows
        return self._assemble(rows)

    @staticmethod
    def _assemble(rows: Iterable[tuple[str, int, bytes]]) -> dict[str, bytes]:
        parts: dict[str, list[bytes]] = {}
        for digest, _chunk, data in rows:
            parts.setdefault(digest, []).append(data)
        return {digest: verified(digest, b"".join(chunks)) for digest, chunks in parts.items()}


class RunBlobs:
    """The blobs of one run in a store: bulk reads fetch the whole run's payloads in one query."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def blob(self, digest: str) -> bytes:
        return self.store.blob(digest)

    def blobs(self, digests: Iterable[str]) -> Mapping[str, bytes]:
        wanted = set(digests)
        if len(wanted) <= _HASHES_PER_QUERY:
            return self.store.blobs(wanted)
        return {d: data for d, data in self.store.run_blobs(self.run_id).items() if d in wanted}
