"""Helpers of the ingest tests: a handle on a collector process, and OTLP values from Python ones
(``any_value``: the builder ``tracetape push`` sends tapes with).

Unlike the ``collector`` fixture, :class:`IngestCollector` (``python -m tracetape collector``)
takes environment settings (``TRACETAPE_*``: fault injection, small limits), can be killed
with SIGKILL and restarted on the same data directory, and talks raw gRPC and SQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from tracetape.demo.run_demo import wait_for_state
from tracetape.replay._push import any_value

__all__ = ["IngestCollector", "any_value", "DATABASE", "EXPORT"]

DATABASE = "tracetape"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class IngestCollector:
    """A collector process over *data_dir*; :meth:`start` again after :meth:`stop`/:meth:`kill` reuses the data."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.state: dict[str, Any] = {}

    def start(self, timeout: float = 60.0) -> "IngestCollector":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracetape", "collector", "--data-dir", str(self.data_dir),
             "--grpc-listen", "127.0.0.1:0", "--sql-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            env={**os.environ, **self.env}, stdout=subprocess.DEVNULL)
        self.state = wait_for_state(str(self.data_dir), self.process, timeout)
        return self

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM: graceful, drains the writer. Returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    @property
    def target(self) -> str:
        """host:port of the OTLP/gRPC listener."""
        return str(self.state["grpc"]).split("://", 1)[-1]

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target, options=[("grpc.max_send_message_length", 128 << 20),
                                                           ("grpc.max_receive_message_length", 128 << 20)])

    def export(self, channel: grpc.Channel, raw: bytes, timeout: float = 60.0) -> Any:
        """One raw-bytes OTLP export; returns the ExportTraceServiceResponse or raises grpc.RpcError."""
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        call = channel.unary_unary(EXPORT, request_serializer=None,
                                   response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        return call(raw, timeout=timeout)

    def sql(self) -> Any:
        """A clickhouse-connect client on the read-only SQL endpoint (close it)."""
        import clickhouse_connect

        return clickhouse_connect.get_client(host="127.0.0.1", port=int(self.state["sql"].rsplit(":", 1)[1]),
                                             database=DATABASE)

    def spool_bytes(self) -> int:
        spool = self.data_dir / "spool"
        return sum(p.stat().st_size for p in spool.glob("*.seg")) if spool.exists() else 0

    def wait_drained(self, timeout: float = 60.0) -> None:
        """Until the spool is empty: everything acknowledged is in the store."""
        deadline = time.monotonic() + timeout
        while self.spool_bytes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not self.spool_bytes(), f"spool still holds {self.spool_bytes()} bytes after {timeout}s"
