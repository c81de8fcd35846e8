"""The collector process: store, migrations, writer, gRPC receivers, SQL endpoint.

With the embedded store the collector is the only process that may open the
chDB directory, so it also serves the read-only SQL endpoint, and it leaves a
small ``collector.json`` in the data directory so local readers find that
endpoint instead of trying (and failing) to open the directory themselves.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from tracetape.schemas import config
from tracetape.schemas.store import StoreAddress, open_client, parse_store

from .ingest_seq import IngestSequence
from .migrate import apply_migrations
from .receivers import Authenticator, BlobReceiver, TraceReceiver
from .writer import ClickHouseWriter

__all__ = ["CollectorConfig", "Collector", "STATE_FILE", "parse_tokens"]

_log = logging.getLogger(__name__)
STATE_FILE = "collector.json"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def parse_tokens(spec: str) -> dict[str, str]:
    """``tok1=projA,tok2=projB`` → {token: project}."""
    tokens = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        token, sep, project = item.partition("=")
        if not sep or not token or not project:
            raise ValueError(f"token entries look like TOKEN=PROJECT, got {item[:4]}…")
        tokens[token] = project
    return tokens


def _split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


@dataclass
class CollectorConfig:
    store: str = ""  # empty: embedded chDB under data_dir
    data_dir: str = field(default_factory=lambda: config.setting(config.DATA_DIR))
    database: str = field(default_factory=lambda: config.setting(config.DATABASE))
    grpc_listen: str = field(default_factory=lambda: config.setting(config.GRPC_LISTEN))
    sql_listen: str | None = field(default_factory=lambda: config.setting(config.SQL_LISTEN))
    tokens: dict[str, str] = field(default_factory=lambda: parse_tokens(config.setting(config.TOKENS)))
    max_rows: int = field(default_factory=lambda: config.setting(config.BATCH_MAX_ROWS))
    max_delay_ms: int = field(default_factory=lambda: config.setting(config.BATCH_MAX_DELAY_MS))

    def address(self) -> StoreAddress:
        return parse_store(self.store or config.setting(config.STORE) or os.path.join(self.data_dir, "store"))


class Collector:
    def __init__(self, cfg: CollectorConfig) -> None:
        self.config = cfg
        self.address = cfg.address()
        self._server: Any = None
        self._sql: Any = None
        self._writer: ClickHouseWriter | None = None
        self.grpc_port = 0
        self.sql_port = 0
        self._stopped = threading.Event()

    def start(self) -> "Collector":
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        from tracetape.schemas._proto import blobs_pb2_grpc

        cfg = self.config
        client = open_client(self.address)
        apply_migrations(client, cfg.database)
        self._writer = ClickHouseWriter(client, cfg.database, IngestSequence(), max_rows=cfg.max_rows,
                                        max_delay=cfg.max_delay_ms / 1000)
        auth = Authenticator(cfg.tokens)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="tracetape-grpc"),
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceReceiver(self._writer, auth), self._server)
        blobs_pb2_grpc.add_BlobServiceServicer_to_server(BlobReceiver(self._writer, auth, cfg.database),
                                                         self._server)
        self.grpc_port = self._server.add_insecure_port(cfg.grpc_listen)
        if not self.grpc_port:
            raise OSError(f"cannot listen on {cfg.grpc_listen}")
        self._server.start()
        if self.address.kind == "chdb" and cfg.sql_listen:
            from .sql_http import SqlHttpServer

            host, port = _split_hostport(cfg.sql_listen)
            self._sql = SqlHttpServer(self.address.path, host=host, port=port, tokens=cfg.tokens,
                                      database=cfg.database)
            self._sql.start()
            self.sql_port = self._sql.port
        self._write_state()
        _log.info("collector up: grpc %s, store %s, sql port %s", self.grpc_endpoint, self.address,
                  self.sql_port or "-")
        return self

    @property
    def grpc_endpoint(self) -> str:
        host = _split_hostport(self.config.grpc_listen)[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '[::]', '') else host}:{self.grpc_port}"

    @property
    def sql_url(self) -> str:
        if not self.sql_port:
            return self.address.url if self.address.kind == "http" else ""
        host = _split_hostport(self.config.sql_listen or "")[0]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '[::]', '') else host}:{self.sql_port}"

    def _state_path(self) -> str:
        return os.path.join(self.config.data_dir, STATE_FILE)

    def _write_state(self) -> None:
        os.makedirs(self.config.data_dir, exist_ok=True)
        state = {"pid": os.getpid(), "grpc": self.grpc_endpoint, "sql": self.sql_url, "store": str(self.address)}
        tmp = self._state_path() + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, self._state_path())

    def stop(self, grace: float = 10.0) -> None:
        """Stop taking requests, finish in-flight ones, flush the writer. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._server is not None:
            self._server.stop(grace).wait(grace)
        if self._writer is not None:
            self._writer.close(grace)
        if self._sql is not None:
            self._sql.stop()
        try:
            os.remove(self._state_path())
        except FileNotFoundError:
            pass

    def serve_forever(self) -> None:
        """Block until SIGTERM or SIGINT, then stop gracefully."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopped.set())
        self._stopped.wait()
        self._stopped.clear()
        self.stop()
