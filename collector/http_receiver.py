"""OTLP/HTTP receiver, plus the collector's health and metrics endpoints, on one port.

``POST /v1/traces`` takes an ``ExportTraceServiceRequest`` as binary protobuf
(``application/x-protobuf``) or OTLP/JSON (``application/json``), optionally
gzip- or deflate-compressed, and answers in the request's content type, as the
OTLP/HTTP specification asks. It runs the same converter and writer as the gRPC
receiver, so both protocols store identical rows. Status codes follow the spec
and the gRPC receiver: 400 for a payload that will never be accepted (the
exporter does not retry), 429 with ``Retry-After`` when the writer's queue is
full and 503 with ``Retry-After`` when the store (and its spool) cannot take it
now (the exporter retries after that delay), 401 without a valid bearer
token, 413 over the size limit, 415 for an unknown content type or encoding.

``/healthz``, ``/readyz`` and ``/metrics`` share the port so that a probe
exercises the very listener that takes traffic; they need no token, because
orchestrators and Prometheus scrape them without one and they reveal no data.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import zlib
from typing import Any
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tracetape.schemas.errors import InvalidPayload, StoreOverloaded, StoreUnavailable

from .convert import convert_request, screen_request
from .health import Health
from .http_listener import Handler, HttpListener
from .metrics import METRICS
from .receivers import Authenticator
from .tls import ServerTls

__all__ = ["OtlpHttpServer", "TRACES_PATH", "RETRY_AFTER_S"]

_log = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"
RETRY_AFTER_S = 5
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_REQUEST_TIMEOUT_S = 60
_DRAIN_FACTOR = 4


class _Reply(Exception):
    """Ends a request early with an HTTP status and a ``google.rpc.Status`` message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class OtlpHttpServer:
    """OTLP/HTTP on ``host:port`` (port 0 picks a free one), over TLS when *tls* is given."""

    def __init__(self, writer: Any, auth: Authenticator, health: Health, *, host: str = "127.0.0.1",
                 port: int = 4318, max_body: int = 64 * 1024 * 1024, tls: ServerTls | None = None) -> None:
        self.writer, self.auth, self.health, self.max_body = writer, auth, health, max_body
        self._listener = HttpListener("otlp-http", host, port, _Handler, self, tls)

    @property
    def port(self) -> int:
        return self._listener.port

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        """Stop accepting; requests in flight finish on their own threads."""
        self._listener.stop()

    def export(self, content_type: str, body: bytes, project: str) -> bytes:
        """Screen and persist one export; returns the encoded response.

        Spans that can never be stored are dropped and named in an OTLP partial-success
        response, the others kept, as the gRPC receiver does. With tokens, the token's
        project wins over any ``tracetape.project`` a span claims.
        """
        span_project = not self.auth.enabled
        try:
            if content_type == PROTOBUF:
                batch = screen_request(body, project, span_project=span_project)
            else:
                batch = convert_request(_decode_json(body), project, span_project=span_project)
        except InvalidPayload as exc:
            raise _Reply(400, str(exc)) from None
        METRICS.spans_received.inc(batch.spans + batch.rejected)
        METRICS.spans_rejected.inc(batch.rejected)
        try:
            if batch.spans:
                self.writer.consume(batch)
        except InvalidPayload as exc:
            raise _Reply(400, str(exc)) from None
        except StoreOverloaded as exc:
            raise _Reply(429, str(exc), {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}) from None
        except StoreUnavailable as exc:
            raise _Reply(503, str(exc), {"Retry-After": str(RETRY_AFTER_S)}) from None
        response = trace_service_pb2.ExportTraceServiceResponse()
        if batch.rejected:
            response.partial_success.rejected_spans = batch.rejected
            response.partial_success.error_message = batch.reject_reason
        return _encode(content_type, response)


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise _Reply(400, f"{key} must be hex-encoded, got {value[:40]!r}") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
    return node


def _decode_json(body: bytes) -> Any:
    request = trace_service_pb2.ExportTraceServiceRequest()
    try:
        document = _hex_ids_to_base64(json.loads(body))
        if not isinstance(document, dict):
            raise _Reply(400, "an OTLP/JSON export is a JSON object")
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, RecursionError) as exc:
        raise _Reply(400, f"not a valid OTLP/JSON ExportTraceServiceRequest: {exc}"[:1000]) from None
    return request


def _encode(content_type: str, message: Any) -> bytes:
    if content_type == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


def _status_body(content_type: str, status: int, message: str) -> bytes:
    # The gRPC code that the HTTP status stands for, as in the OTLP spec's mapping.
    code = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8, 503: 14}.get(status, 13)
    return _encode(content_type, status_pb2.Status(code=code, message=message))


class _Handler(Handler):
    timeout = _REQUEST_TIMEOUT_S  # bounds how long a slow client can hold a thread
    body_read = False

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        receiver: OtlpHttpServer = self.server.owner
        path = urlsplit(self.path).path
        if path == "/healthz":
            return self._send(200, b"ok\n", "text/plain; charset=utf-8")
        if path == "/readyz":
            ok, reason = receiver.health.ready()
            return self._send(200 if ok else 503, f"{'ready' if ok else 'not ready'}: {reason}\n".encode(),
                              "text/plain; charset=utf-8", {} if ok else {"Retry-After": str(RETRY_AFTER_S)})
        if path == "/metrics":
            return self._send(200, METRICS.render().encode(), "text/plain; version=0.0.4; charset=utf-8")
        self._send(404, b"not found: GET /healthz, /readyz, /metrics; POST /v1/traces\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        self.body_read = False
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        reply_type = content_type if content_type in (PROTOBUF, JSON) else JSON
        try:
            if urlsplit(self.path).path != TRACES_PATH:
                raise _Reply(404, f"no handler for {self.path[:100]}; OTLP traces go to {TRACES_PATH}")
            project = self._project()
            if content_type not in (PROTOBUF, JSON):
                raise _Reply(415, f"Content-Type must be {PROTOBUF} or {JSON}, got {content_type or 'none'!r}")
            body = self._body()
            data = self.server.owner.export(content_type, body, project)
        except _Reply as reply:
            if not self.body_read:
                self._discard_body()
            if reply.status >= 500:
                _log.warning("otlp http: %d %s", reply.status, reply.message)
            return self._send(reply.status, _status_body(reply_type, reply.status, reply.message), reply_type,
                              reply.headers)
        except Exception:  # noqa: BLE001 - a bug of ours must not kill the listener; the exporter retries
            _log.exception("otlp http: export failed")
            return self._send(500, _status_body(reply_type, 500, "internal error"), reply_type)
        self._send(200, data, content_type)

    def _project(self) -> str:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        project = self.server.owner.auth.project_for(token or None)
        if project is None:
            raise _Reply(401, "unknown bearer token" if token else "missing bearer token (Authorization: Bearer …)",
                         {"WWW-Authenticate": 'Bearer realm="tracetape"'})
        return project

    def _body(self) -> bytes:
        limit = self.server.owner.max_body
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.body_read = True  # from here on, whatever happens, the body is consumed or the connection closed
            raw = self._read_chunked(limit)
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise _Reply(400, "Content-Length is not a number") from None
            if length > limit:
                raise self._too_large(limit)
            raw = self.rfile.read(length)
        self.body_read = True
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return raw
        if encoding not in ("gzip", "deflate"):
            raise _Reply(415, f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
        inflater = zlib.decompressobj(wbits=47 if encoding == "gzip" else 15)
        try:
            data = inflater.decompress(raw, limit + 1)  # bounded: a small bomb cannot inflate past the limit
        except zlib.error as exc:
            raise _Reply(400, f"cannot {encoding}-decompress the body: {exc}") from None
        if len(data) > limit:
            raise self._too_large(limit)
        if not inflater.eof:
            raise _Reply(400, f"truncated {encoding} body")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        chunks, total = [], 0
        while True:  # bounded: every pass consumes at least one byte of a body capped at *limit*
            try:
                size = int(self.rfile.readline(64).split(b";")[0], 16)
            except ValueError:
                self.close_connection = True
                raise _Reply(400, "malformed chunked body") from None
            total += size
            if total > limit:
                self.close_connection = True  # the rest of a chunked body cannot be skipped cheaply
                raise self._too_large(limit)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(64)
            if not size:
                return b"".join(chunks)

    def _discard_body(self) -> None:
        """Read and drop a refused body, so the client (still sending it) gets our answer, not a broken pipe.

        Beyond a few limits' worth, or of unknown length, the connection is closed instead: reading
        a huge body just to refuse it would hand a cheap lever to anyone flooding the port.
        """
        try:
            remaining = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            remaining = -1
        if not 0 <= remaining <= _DRAIN_FACTOR * self.server.owner.max_body:
            self.close_connection = True
            return
        while remaining > 0:  # bounded by Content-Length and by the socket timeout
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def _too_large(self, limit: int) -> _Reply:
        return _Reply(413, f"request body exceeds the {limit}-byte limit (TRACETAPE_MAX_REQUEST_BYTES)")

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.reply(status, data, {"Content-Type": content_type, **(headers or {})})
