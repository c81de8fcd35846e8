"""Every setting tracetape reads from the environment, in one place.

Nothing else in tracetape reads ``os.environ`` by string literal: each part
asks :func:`setting` for a :class:`Setting` declared here. Precedence is the
explicit argument, then the environment variable, then the default; a value
that does not parse is logged and replaced by the default, because a typo in
an env var must never take the host application down.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

__all__ = [
    "Setting",
    "setting",
    "OTLP_ENDPOINT",
    "OTLP_INSECURE",
    "SERVICE_NAME",
    "DISABLED_INSTRUMENTATIONS",
    "PROJECT",
    "TOKEN",
    "STORE",
    "DATA_DIR",
    "DATABASE",
    "GRPC_LISTEN",
    "SQL_LISTEN",
    "TOKENS",
    "PREVIEW_BYTES",
    "BLOB_QUEUE_BYTES",
    "BATCH_MAX_ROWS",
    "BATCH_MAX_DELAY_MS",
    "RUN_ID",
    "REPLAY",
]

_log = logging.getLogger(__name__)
T = TypeVar("T")


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"must be positive: {raw!r}")
    return value


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One documented knob: its env var, default, and parser."""

    env: str
    default: T
    parse: Callable[[str], T]
    doc: str


def setting(spec: Setting[T], explicit: T | None = None) -> T:
    """Resolve *spec*: argument, then environment, then default."""
    if explicit is not None:
        return explicit
    raw = os.environ.get(spec.env)
    if raw is None or raw == "":
        return spec.default
    try:
        return spec.parse(raw)
    except (ValueError, TypeError) as exc:
        _log.warning("ignoring %s=%r (%s); using default %r", spec.env, raw, exc, spec.default)
        return spec.default


# -- agent side (instrumentation) -------------------------------------------

OTLP_ENDPOINT = Setting(
    "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317", str,
    "Collector gRPC endpoint the instrumentation exports spans and blobs to.")
OTLP_INSECURE = Setting(
    "OTEL_EXPORTER_OTLP_INSECURE", True, _parse_bool,
    "Plaintext gRPC unless the endpoint is https://.")
SERVICE_NAME = Setting(
    "OTEL_SERVICE_NAME", "", str, "service.name resource attribute; defaults to the script name.")
DISABLED_INSTRUMENTATIONS = Setting(
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "", str,
    "Comma-separated instrumentor names (e.g. tracetape_openai) that instrument() skips.")
PROJECT = Setting(
    "TRACETAPE_PROJECT", "default", str, "Project the agent's runs belong to.")
TOKEN = Setting(
    "TRACETAPE_TOKEN", "", str, "Bearer token sent to the collector (ingest) and the SQL endpoint (reads).")
PREVIEW_BYTES = Setting(
    "TRACETAPE_PREVIEW_BYTES", 2048, _parse_positive_int,
    "Longest human-readable preview kept in a span attribute; full bytes travel as blobs.")
BLOB_QUEUE_BYTES = Setting(
    "TRACETAPE_BLOB_QUEUE_BYTES", 64 * 1024 * 1024, _parse_positive_int,
    "Upper bound on payload bytes waiting for upload; beyond it blobs are dropped and counted.")
RUN_ID = Setting(
    "TRACETAPE_RUN_ID", "", str,
    "Run a child process joins; set by tracetape for the processes it launches.")

# -- collector and readers --------------------------------------------------

STORE = Setting(
    "TRACETAPE_STORE", "", str,
    "ClickHouse server URL (http(s)://user:password@host:port); empty = embedded chDB under DATA_DIR.")
DATA_DIR = Setting(
    "TRACETAPE_DATA_DIR", os.path.join(os.path.expanduser("~"), ".tracetape"), str,
    "Directory of the embedded chDB store.")
DATABASE = Setting("TRACETAPE_DATABASE", "tracetape", str, "ClickHouse database holding tracetape's tables.")
GRPC_LISTEN = Setting(
    "TRACETAPE_GRPC_LISTEN", "127.0.0.1:4317", str, "host:port of the OTLP/gRPC + BlobService listener.")
SQL_LISTEN = Setting(
    "TRACETAPE_SQL_LISTEN", "127.0.0.1:8123", str,
    "host:port of the read-only ClickHouse-HTTP SQL endpoint over the embedded store.")
TOKENS = Setting(
    "TRACETAPE_TOKENS", "", str,
    "token=project pairs, comma-separated; empty disables authentication (loopback use only).")
BATCH_MAX_ROWS = Setting(
    "TRACETAPE_BATCH_MAX_ROWS", 50_000, _parse_positive_int, "Most span rows in one INSERT.")
BATCH_MAX_DELAY_MS = Setting(
    "TRACETAPE_BATCH_MAX_DELAY_MS", 0, int,
    "How long the writer lingers for more rows before an INSERT (0: commit what is queued at once).")

REPLAY = Setting("TRACETAPE_REPLAY", "", str,
                 "Tape file (or run id) this process replays from instrument() on; set by `tracetape replay`.")
