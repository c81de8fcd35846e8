"""Helpers for collector tests: a collector process with this issue's settings, raw HTTP, OTLP requests.

Each collector is a real ``python -m tracetape.collector.server`` process on
ephemeral loopback ports over its own chDB directory (chDB allows one store
per process, so never in the pytest process).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode, urlsplit

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tracetape.demo.run_demo import stop_collector, wait_for_state

TOKENS = "tok-a=alpha,tok-b=beta"


class Server:
    """A running collector process and the endpoints it published in collector.json."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / "collector.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRACETAPE_")}
        full_env.update(env or {})
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tracetape.collector.server", "--data-dir", str(data_dir),
                 "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--sql-listen", "127.0.0.1:0",
                 *args], env=full_env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            self.state = wait_for_state(str(data_dir), self.process)
        except BaseException:
            self.process.kill()
            self.process.wait()
            raise

    @property
    def grpc(self) -> str:
        return self.state["grpc"]

    @property
    def http(self) -> str:
        return self.state["http"]

    @property
    def sql(self) -> str:
        return self.state["sql"]

    @property
    def grpc_target(self) -> str:
        return urlsplit(self.grpc).netloc

    def stop(self) -> int:
        return stop_collector(self.process)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()


def start_server(path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """For module fixtures: a collector for the module's tests, stopped after them."""
    server = Server(path, *args, env=env)
    try:
        yield server
    finally:
        server.stop()


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> dict:
        return json.loads(self.body)


def request(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
            cafile: Path | None = None, timeout: float = 30) -> Response:
    """One HTTP exchange on a fresh connection, closed before returning."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                                                        context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=headers or {})
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def span_request(name: str, *, trace_id: bytes | None = None, project: str | None = None,
                 run_id: str | None = None, count: int = 1) -> trace_service_pb2.ExportTraceServiceRequest:
    """An OTLP export of *count* spans named ``name``/``name-1``..., optionally claiming a project."""
    trace_id = trace_id or os.urandom(16)
    attributes = []
    if project is not None:
        attributes.append(common_pb2.KeyValue(key="tracetape.project",
                                              value=common_pb2.AnyValue(string_value=project)))
    if run_id is not None:
        attributes.append(common_pb2.KeyValue(key="tracetape.run.id", value=common_pb2.AnyValue(string_value=run_id)))
    now = time.time_ns()
    spans = [trace_pb2.Span(trace_id=trace_id, span_id=os.urandom(8), name=name if i == 0 else f"{name}-{i}",
                            start_time_unix_nano=now, end_time_unix_nano=now + 1000, attributes=attributes)
             for i in range(count)]
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        scope_spans=[trace_pb2.ScopeSpans(spans=spans)])])


def sql_rows(server: Server, query: str, token: str | None = None, cafile: Path | None = None,
             **params: str) -> list[list[str]]:
    """Rows of *query* on the collector's SQL endpoint, as TSV fields; raises on an error status."""
    args = {"query": query, "database": "tracetape", **{f"param_{k}": v for k, v in params.items()}}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = request("POST", f"{server.sql}/?{urlencode(args)}", headers=headers, cafile=cafile)
    if resp.status != 200:
        raise AssertionError(f"SQL endpoint answered {resp.status}: {resp.body[:300]!r}")
    return [line.split("\t") for line in resp.body.decode().splitlines()]
