"""The collector process: store, migrations, writer, receivers, health, SQL endpoint.

With the embedded store the collector is the only process that may open the
chDB directory, so it also serves the read-only SQL endpoint, and it leaves a
small ``collector.json`` in the data directory so local readers find that
endpoint instead of trying (and failing) to open the directory themselves.

A ClickHouse server may be down when the collector starts (compose and
Kubernetes start things in any order). The collector then comes up anyway:
its listeners answer, ``/readyz`` and gRPC health say NOT_SERVING with the
reason, and exports are acknowledged once they are fsync'd to the spool, as
during any outage; the writer keeps connecting (and migrating) with backoff
until the server answers, then drains the spool.

Run it with ``tracetape collector`` or ``python -m tracetape.collector.server``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from concurrent import futures
from typing import Any, Sequence

from tracetape.schemas.errors import StoreUnavailable, TracetapeError
from tracetape.schemas.store import open_client

from . import settings
from .engine import (check_options, engine_options, keep_dataframe_libraries_out, shed_engine_code,
                     tune_engine_allocator)
from .health import Health
from .logs import configure_logging
from .migrate import apply_migrations
from .receivers import Authenticator, BlobReceiver, TraceReceiver, add_trace_service
from .settings import CollectorConfig, parse_tokens
from .tls import ServerTls, load_tls
from .writer import ClickHouseWriter, WriterLimits

__all__ = ["CollectorConfig", "Collector", "STATE_FILE", "parse_tokens", "run", "main"]

_log = logging.getLogger("tracetape.collector.server")  # also when run as __main__
STATE_FILE = "collector.json"


def _split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _url(scheme: str, listen: str, port: int) -> str:
    host = _split_hostport(listen)[0]
    return f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


class Collector:
    def __init__(self, cfg: CollectorConfig) -> None:
        self.config = cfg
        self.address = cfg.address()
        self.tls: ServerTls | None = None
        self.health: Health | None = None
        self._server: Any = None
        self._http: Any = None
        self._sql: Any = None
        self._writer: ClickHouseWriter | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.sql_port = 0
        self._stopped = threading.Event()

    def _connect(self) -> Any:
        """A client on the store with the migrations applied; StoreUnavailable while a server does not answer."""
        try:
            options = engine_options(self.config.chdb_options) if self.address.kind == "chdb" else {}
            client = open_client(self.address, engine_options=options)
            try:
                check_options(client, options)
            except TracetapeError:
                client.close()
                raise
            apply_migrations(client, self.config.database)
            if self.address.kind == "chdb":
                shed_engine_code()  # start-up's code, run once (see engine.py)
        except TracetapeError:
            raise
        except Exception as exc:  # noqa: BLE001 - the driver's connection errors, mapped at the boundary
            if self.address.kind == "chdb":
                raise  # a local directory that cannot be opened will not heal by retrying
            raise StoreUnavailable(f"{self.address}: {exc}") from exc
        return client

    def _open_writer(self) -> ClickHouseWriter:
        """The writer, connected now if the store answers, else spooling and connecting in the background."""
        cfg = self.config
        limits = WriterLimits(max_rows=cfg.max_rows, max_delay=cfg.max_delay_ms / 1000,
                              max_batch_bytes=cfg.batch_max_bytes, max_backlog_bytes=cfg.writer_backlog_bytes,
                              spool_bytes=cfg.spool_max_bytes)
        # Throughput or memory, for the embedded engine (it runs in this process): bench/ingest.py, 1M spans on
        # 2 cores: 2 INSERTs of up to 24 MB (the defaults) 42.7-46.6k spans/s at a peak RSS of 447-482 MB (4 runs);
        # of up to 28 MB 47-48k at 494-495 MB; of up to 32 MB 47-49k at 489-522 MB (a fixed ~0.07 s per INSERT
        # makes small batches dear, and each INSERT holds its batch several times over until its part is written).
        threads = cfg.insert_threads or None
        return ClickHouseWriter.with_spool(None, cfg.database, cfg.data_dir, limits=limits, connect=self._connect,
                                           engine_threads=threads)

    def _probe(self) -> None:
        assert self._writer is not None
        self._writer.query(lambda client: client.command("SELECT 1"))

    def start(self) -> "Collector":
        import grpc
        from grpc_health.v1 import health_pb2_grpc

        from tracetape.schemas._proto import blobs_pb2_grpc

        cfg = self.config
        self.tls = load_tls(cfg.tls_cert, cfg.tls_key)
        self._writer = self._open_writer()
        auth = Authenticator(cfg.tokens)
        self.health = Health(self._probe)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="tracetape-grpc"),
            options=[("grpc.max_receive_message_length", cfg.max_request_bytes)],
        )
        add_trace_service(self._server, TraceReceiver(self._writer, auth))
        blobs_pb2_grpc.add_BlobServiceServicer_to_server(BlobReceiver(self._writer, auth, cfg.database),
                                                         self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self._server)
        if self.tls is not None:
            self.grpc_port = self._server.add_secure_port(cfg.grpc_listen, self.tls.grpc_credentials())
        else:
            self.grpc_port = self._server.add_insecure_port(cfg.grpc_listen)
        if not self.grpc_port:
            raise OSError(f"cannot listen on {cfg.grpc_listen}")
        self._server.start()
        if cfg.http_listen:
            from .http_receiver import OtlpHttpServer

            host, port = _split_hostport(cfg.http_listen)
            self._http = OtlpHttpServer(self._writer, auth, self.health, host=host, port=port,
                                        max_body=cfg.max_request_bytes, tls=self.tls)
            self._http.start()
            self.http_port = self._http.port
        if self.address.kind == "chdb" and cfg.sql_listen:
            from .sql_http import SqlHttpServer

            host, port = _split_hostport(cfg.sql_listen)
            self._sql = SqlHttpServer(self.address.path, host=host, port=port, tokens=cfg.tokens,
                                      database=cfg.database, tls=self.tls)
            self._sql.start()
            self.sql_port = self._sql.port
        self.health.start()
        self._write_state()
        _log.info("collector up: grpc %s, http %s, store %s, sql %s%s", self.grpc_endpoint, self.http_url or "-",
                  self.address, self.sql_url or "-", ", TLS" if self.tls else "")
        return self

    @property
    def _scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def grpc_endpoint(self) -> str:
        return _url(self._scheme, self.config.grpc_listen, self.grpc_port)

    @property
    def http_url(self) -> str:
        return _url(self._scheme, self.config.http_listen or "", self.http_port) if self.http_port else ""

    @property
    def sql_url(self) -> str:
        if not self.sql_port:
            return self.address.url if self.address.kind == "http" else ""
        return _url(self._scheme, self.config.sql_listen or "", self.sql_port)

    def _state_path(self) -> str:
        return os.path.join(self.config.data_dir, STATE_FILE)

    def _write_state(self) -> None:
        os.makedirs(self.config.data_dir, exist_ok=True)
        state = {"pid": os.getpid(), "grpc": self.grpc_endpoint, "http": self.http_url, "sql": self.sql_url,
                 "store": str(self.address), "tls": self.tls is not None}
        tmp = self._state_path() + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, self._state_path())

    def stop(self, grace: float = 10.0) -> None:
        """Report not ready, stop taking requests, finish in-flight ones, flush the writer. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.health is not None:
            self.health.stop()
        if self._http is not None:
            self._http.stop()
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


def run(cfg: CollectorConfig) -> int:
    """Start a collector, print where it listens, serve until SIGTERM/SIGINT."""
    keep_dataframe_libraries_out()
    tune_engine_allocator()
    collector = Collector(cfg).start()
    print(f"tracetape collector: OTLP/gRPC {collector.grpc_endpoint}"
          + (f"  OTLP/HTTP {collector.http_url}" if collector.http_url else "")
          + f"  store {collector.address}" + (f"  SQL {collector.sql_url}" if collector.sql_url else ""), flush=True)
    collector.serve_forever()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracetape.collector.server",
                                     description="Run the tracetape collector.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    settings.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = settings.load(args)
        configure_logging(cfg.log_format, logging.DEBUG if args.verbose else logging.INFO)
        return run(cfg)
    except TracetapeError as exc:
        print(f"tracetape collector: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
