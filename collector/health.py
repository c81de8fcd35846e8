"""Liveness and readiness, for orchestrators and load balancers.

Live means the process serves requests. Ready means an export sent now would
be stored: the store answers a trivial query through the writer's own
connection (so it also proves the writer is not wedged holding it). The
answer is published twice: on ``/readyz`` (probed on demand) and as the
standard ``grpc.health.v1`` service on the gRPC port, whose ``Watch`` streams
a background prober keeps current. A probe result is reused for a short
while, so an aggressive prober cannot turn into load on the store.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from tracetape.schemas.errors import StoreUnavailable

__all__ = ["Health", "SERVICES"]

_log = logging.getLogger(__name__)
SERVICES = ("", "opentelemetry.proto.collector.trace.v1.TraceService", "tracetape.blobs.v1.BlobService")
_REUSE_S = 1.0


class Health:
    """Readiness of the store behind the collector, shared by HTTP and gRPC health."""

    def __init__(self, probe: Callable[[], None], interval: float = 5.0) -> None:
        from grpc_health.v1 import health

        self._probe = probe  # raises StoreUnavailable when the store does not answer
        self._interval = interval
        self.servicer = health.HealthServicer()
        self._lock = threading.Lock()
        self._last: tuple[float, bool, str] = (0.0, False, "not probed yet")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracetape-health", daemon=True)
        self._publish(False)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Report NOT_SERVING from now on (draining) and stop probing."""
        self._stop.set()
        self._publish(False)
        self.servicer.enter_graceful_shutdown()
        if self._thread.is_alive():
            self._thread.join(self._interval + 1)

    def ready(self) -> tuple[bool, str]:
        """(ready, reason); probes the store unless a result younger than a second exists."""
        with self._lock:
            when, ok, reason = self._last
            if time.monotonic() - when < _REUSE_S:
                return ok, reason
            try:
                if self._stop.is_set():
                    raise StoreUnavailable("collector is shutting down")
                self._probe()
                ok, reason = True, "store reachable"
            except StoreUnavailable as exc:
                ok, reason = False, str(exc)
            if ok != self._last[1]:
                (_log.info if ok else _log.warning)("readiness: %s", reason)
            self._last = (time.monotonic(), ok, reason)
        self._publish(ok)
        return ok, reason

    def _publish(self, ok: bool) -> None:
        from grpc_health.v1 import health_pb2

        status: Any = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in SERVICES:
            self.servicer.set(service, status)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ready()
            self._stop.wait(self._interval)
