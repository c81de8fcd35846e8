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
    "export_default",
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


def _int_at_least(minimum: int, bound: str) -> Callable[[str], int]:
    """A parser of whole numbers of at least *minimum*; *bound* says so in the error."""
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError(f"must be {bound}: {raw!r}")
        return value
    return parse


_parse_positive_int = _int_at_least(1, "positive")


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One documented knob: its env var, default, and parser."""

    env: str
    default: T
    parse: Callable[[str], T]
    doc: str


def export_default(spec: Setting[str]) -> bool:
    """Put *spec*'s default in the environment unless it is set there, for a library that reads it itself;
    True when the default is what is in force."""
    return os.environ.setdefault(spec.env, spec.default) == spec.default


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

# -- collector: listeners, limits, spool (issue #3) ---------------------------
# The collector also takes each of these as a flag and a config-file key (collector/settings.py).

__all__ += ["HTTP_LISTEN", "MAX_REQUEST_BYTES", "TLS_CERT", "TLS_KEY", "LOG_FORMAT", "CONFIG_FILE",
            "MAX_ATTRIBUTE_BYTES", "SPOOL_MAX_BYTES", "WRITER_BACKLOG_BYTES", "BATCH_MAX_BYTES",
            "FAULT_STORE_DOWN_FILE", "CHDB_OPTIONS", "ENGINE_ALLOCATOR", "INSERT_THREADS"]


def _one_of(*choices: str) -> Callable[[str], str]:
    """A parser that accepts one of *choices*, in any case."""
    listed = f"{', '.join(choices[:-1])} or {choices[-1]}"

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be {listed}, got {raw!r}")
        return value
    return parse


# A byte bound under 1 KiB is surely a typo (a forgotten unit), and would refuse every request.
_parse_bytes = _int_at_least(1024, "at least 1024 bytes")


HTTP_LISTEN = Setting(
    "TRACETAPE_HTTP_LISTEN", "127.0.0.1:4318", str,
    "host:port of OTLP/HTTP (POST /v1/traces) and of /healthz, /readyz, /metrics; empty disables.")
MAX_REQUEST_BYTES = Setting(
    "TRACETAPE_MAX_REQUEST_BYTES", 64 * 1024 * 1024, _parse_bytes,
    "Largest export accepted (gRPC message, or HTTP body after decompression); larger ones are refused.")
TLS_CERT = Setting(
    "TRACETAPE_TLS_CERT", "", str, "PEM certificate chain; with TLS_KEY, gRPC and every HTTP listener use TLS.")
TLS_KEY = Setting("TRACETAPE_TLS_KEY", "", str, "PEM private key of TLS_CERT.")
LOG_FORMAT = Setting(
    "TRACETAPE_LOG_FORMAT", "text", _one_of("text", "json"), "Collector log lines: text, or json (one object per line).")
CONFIG_FILE = Setting("TRACETAPE_CONFIG", "", str, "TOML file of collector settings (keys as in CollectorConfig).")
MAX_ATTRIBUTE_BYTES = Setting(
    "TRACETAPE_MAX_ATTRIBUTE_BYTES", 4 * 1024 * 1024, _parse_bytes,
    "Longest string kept in a span (attribute value, name, status message); longer ones are cut and marked.")
SPOOL_MAX_BYTES = Setting(
    "TRACETAPE_SPOOL_MAX_BYTES", 1 << 30, _parse_bytes,
    "Largest local spool of data the store has not taken yet; when it is full, exports get UNAVAILABLE.")
WRITER_BACKLOG_BYTES = Setting(
    "TRACETAPE_WRITER_BACKLOG_BYTES", 256 * 1024 * 1024, _parse_bytes,
    "Accepted export bytes not yet in the store while it is up; beyond it exports get RESOURCE_EXHAUSTED "
    "with a retry delay (while the store is down, the spool's own bound applies).")
BATCH_MAX_BYTES = Setting(
    "TRACETAPE_BATCH_MAX_BYTES", 24 * 1024 * 1024, _parse_bytes,
    "Most export bytes in one INSERT (an embedded INSERT holds several times this in the collector's memory).")


_parse_count = _int_at_least(0, "0 or more")


INSERT_THREADS = Setting(
    "TRACETAPE_INSERT_THREADS", 0, _parse_count,
    "INSERTs running at once; 0: the cores, at most 4. With the embedded store each holds its batch several "
    "times over in the collector's memory: 1 is the lean setting.")
CHDB_OPTIONS = Setting(
    "TRACETAPE_CHDB_OPTIONS", "", str,
    "KEY=VALUE,... server settings of the embedded chDB engine (e.g. max_server_memory_usage=1000000000), "
    "on top of the collector's own (collector/engine.py); ignored with a ClickHouse server.")
ENGINE_ALLOCATOR = Setting(
    "JE_MALLOC_CONF", "dirty_decay_ms:50", str,
    "Options of the embedded engine's allocator (chDB's jemalloc reads them under its je_ prefix when it "
    "loads). The collector sets the default, freed pages returned after 50 ms instead of 5 s "
    "(collector/engine.py), unless this is set already.")
FAULT_STORE_DOWN_FILE = Setting(
    "TRACETAPE_FAULT_STORE_DOWN_FILE", "", str,
    "Test and drill hook: while this file exists, every insert fails as if the store were down.")

# -- replay (issue #5) ---------------------------------------------------------
# `tracetape replay` sets these (with REPLAY above) for the process it runs; the agent's
# instrument() reads them to install the player.

__all__ += ["REPLAY_MODE", "REPLAY_FORK_AT", "REPLAY_REPORT", "REPLAY_ALLOW"]

REPLAY_MODE = Setting("TRACETAPE_REPLAY_MODE", "strict", _one_of("strict", "observe", "fork", "loose"),
                      "Replay mode: strict, observe, fork or loose.")
REPLAY_FORK_AT = Setting("TRACETAPE_REPLAY_FORK_AT", 0, int,
                         "Fork mode: the last recorded step served (1-based); live after it.")
REPLAY_REPORT = Setting("TRACETAPE_REPLAY_REPORT", "", str,
                        "File the replay report (JSON) is written to when the replayed process exits.")
REPLAY_ALLOW = Setting("TRACETAPE_REPLAY_ALLOW", "", str,
                       "Comma-separated host:port that live connections may still reach during a replay.")

# -- instrumentation: capture details (issue #4) -------------------------------

__all__ += ["PAYLOAD_SAMPLE", "GC_FREEZE", "FILE_ROOTS", "FILE_MAX_BYTES", "CLOCK_DATETIME", "ENV_ALLOW", "SEQ_FILE", "TASK",
            "TRACEPARENT", "AGENT", "TAGS"]

PAYLOAD_SAMPLE = Setting(
    "TRACETAPE_PAYLOAD_SAMPLE", 1, lambda raw: max(1, int(raw)),
    "Keep the payloads of 1 in N successful runs (failed runs keep all; spans are always kept). 1 keeps all.")
FILE_ROOTS = Setting(
    "TRACETAPE_FILE_ROOTS", "", str,
    "Directories (os.pathsep-separated) whose files' reads and writes are recorded; empty: the working directory.")
FILE_MAX_BYTES = Setting(
    "TRACETAPE_FILE_MAX_BYTES", 8 * 1024 * 1024, lambda raw: max(0, int(raw)),
    "Largest file whose bytes are recorded; above it only its size and SHA-256 are kept.")
GC_FREEZE = Setting(
    "TRACETAPE_GC_FREEZE", True, _parse_bool,
    "instrument() moves the objects alive at that moment (modules, classes, startup state) out of the garbage "
    "collector's scans (gc.freeze), so the collections recording's allocations trigger stay cheap in a large app.")
CLOCK_DATETIME = Setting(
    "TRACETAPE_CLOCK_DATETIME", False, _parse_bool,
    "Also record datetime.datetime.now()/utcnow()/today() (replaces the datetime class; see instrumentation/clock.py).")
ENV_ALLOW = Setting(
    "TRACETAPE_ENV_ALLOW", "", str,
    "Environment variables (comma-separated) recorded at run start, in addition to the defaults.")
SEQ_FILE = Setting(
    "TRACETAPE_SEQ_FILE", "", str,
    "Shared sequence file of the run a child process joins; set by tracetape for the processes it starts.")
TASK = Setting(
    "TRACETAPE_TASK", "", str,
    "Task path a child process's events are numbered under; set by tracetape for the processes it starts.")
TRACEPARENT = Setting(
    "TRACEPARENT", "", str,
    "W3C trace context of the span that started this process (the OpenTelemetry environment carrier).")
AGENT = Setting(
    "TRACETAPE_AGENT", "", str,
    "Agent name: a process started by `tracetape run` / opentelemetry-instrument is wrapped in one run of it.")
TAGS = Setting("TRACETAPE_TAGS", "", str, "Comma-separated tags of that run.")
