"""gRPC receivers: decode, hand over to the writer, map errors to status codes.

They hold no storage logic. Export requests are received as raw bytes (see
:func:`add_trace_service`): the converter decodes them itself, so that bytes
the protobuf runtime refuses (invalid UTF-8 in a string, truncation, random
data) get ``INVALID_ARGUMENT`` with the reason instead of grpc's generic
``INTERNAL``, and so the original bytes can be stored without re-encoding.

Status codes follow the OTLP specification: invalid spans inside a valid
request are dropped and reported as partial success while the rest is kept;
a malformed request is ``INVALID_ARGUMENT`` (never retried); a writer that
is behind answers ``RESOURCE_EXHAUSTED`` and a store that is down with a full
spool ``UNAVAILABLE``, both with a ``google.rpc.RetryInfo`` delay in the
trailers (``grpc-status-details-bin`` and ``google.rpc.retryinfo-bin``),
which OTLP exporters honour. A request over the size limit is refused by
gRPC itself with ``RESOURCE_EXHAUSTED`` naming the limit. Authentication maps a bearer token to
the caller's project; with authentication on, that project always wins over
a ``tracetape.project`` attribute in the spans.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, Iterator, Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc
from tracetape.schemas.errors import InvalidPayload, StoreOverloaded, StoreUnavailable

from .convert import screen_request
from .metrics import METRICS
from .writer import ClickHouseWriter

__all__ = ["TraceReceiver", "BlobReceiver", "Authenticator", "add_trace_service", "abort_retryable"]

_log = logging.getLogger(__name__)
MAX_BLOB_BYTES = 1 << 30
WRITE_SLICE_BYTES = 16 << 20


class Authenticator:
    """Bearer token → project. With no tokens configured, everyone is ``default_project``."""

    def __init__(self, tokens: Mapping[str, str], default_project: str = "default") -> None:
        self._tokens = dict(tokens)
        self._default = default_project

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def project_for(self, token: str | None) -> str | None:
        if not self._tokens:
            return self._default
        if not token:
            return None
        for known, project in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return project
        return None

    def grpc_project(self, context: grpc.ServicerContext) -> str:
        token = None
        for key, value in context.invocation_metadata():
            if key == "authorization" and value.lower().startswith("bearer "):
                token = value[7:].strip()
        project = self.project_for(token)
        if project is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown bearer token")
        return project  # type: ignore[return-value]


def abort_retryable(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, retry_after: float) -> None:
    """End the call with *code* and a RetryInfo delay, in both trailers OTLP clients look at."""
    delay = duration_pb2.Duration(seconds=int(retry_after), nanos=int(retry_after % 1 * 1e9))
    info = error_details_pb2.RetryInfo(retry_delay=delay)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=[detail])
    context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),
                                   ("grpc-status-details-bin", status.SerializeToString())))
    context.abort(code, message)


def _abort_store_error(context: grpc.ServicerContext, exc: StoreUnavailable) -> None:
    if isinstance(exc, StoreOverloaded):
        abort_retryable(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), exc.retry_after)
    abort_retryable(context, grpc.StatusCode.UNAVAILABLE, str(exc), 1.0)


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, writer: ClickHouseWriter, auth: Authenticator) -> None:
        self._writer = writer
        self._auth = auth

    def Export(self, request: bytes | Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        """Raw bytes when registered with :func:`add_trace_service`; a decoded request otherwise."""
        project = self._auth.grpc_project(context)
        raw = request if isinstance(request, bytes) else request.SerializeToString()
        try:
            batch = screen_request(raw, project, span_project=not self._auth.enabled)
        except InvalidPayload as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        METRICS.spans_received.inc(batch.spans + batch.rejected)
        METRICS.spans_rejected.inc(batch.rejected)
        try:
            self._writer.consume(batch)
        except StoreUnavailable as exc:
            _abort_store_error(context, exc)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if batch.rejected:
            response.partial_success.rejected_spans = batch.rejected
            response.partial_success.error_message = batch.reject_reason
        return response


def add_trace_service(server: grpc.Server, receiver: TraceReceiver) -> None:
    """Register the OTLP TraceService so that ``Export`` receives the request's raw bytes."""
    handler = grpc.unary_unary_rpc_method_handler(
        receiver.Export, request_deserializer=None,
        response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}),))


class BlobReceiver(blobs_pb2_grpc.BlobServiceServicer):
    def __init__(self, writer: ClickHouseWriter, auth: Authenticator, database: str) -> None:
        self._writer = writer
        self._auth = auth
        self._database = database

    def Missing(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        project = self._auth.grpc_project(context)
        wanted = [h for h in dict.fromkeys(request.sha256) if _is_digest(h)]
        if len(wanted) != len(set(request.sha256)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sha256 values must be 64 lower-case hex digits")
        try:
            present = self._writer.query(lambda client: {
                row[0] for row in client.query(
                    f"SELECT hash FROM {self._database}.blobs WHERE project = {{p:String}} "
                    "AND hash IN {h:Array(String)}", parameters={"p": project, "h": wanted}).result_rows
            }) if wanted else set()
        except StoreUnavailable:
            # Upload spools while the store is down and inserts deduplicate, so "all missing" loses nothing.
            present = set()
        return blobs_pb2.MissingResponse(sha256=[h for h in wanted if h not in present])

    def Upload(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._store(_assemble(request_iterator), context)

    def UploadBatch(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._store(_verified_first(_assemble(iter(request.chunks))), context)

    def _store(self, blobs: Iterator[tuple[str, int, str, list[bytes]]], context: grpc.ServicerContext) -> Any:
        """Write the verified *blobs* for the caller's project; *blobs* raises InvalidPayload as it is read."""
        project = self._auth.grpc_project(context)
        stored = 0
        pending: list[tuple[str, int, str, list[bytes]]] = []
        pending_bytes = 0
        try:
            # Blobs of one stream are written together, in slices of bounded size.
            for blob in blobs:
                pending.append(blob)
                pending_bytes += blob[1]
                if pending_bytes >= WRITE_SLICE_BYTES:
                    self._writer.write_blobs(project, pending)
                    stored, pending, pending_bytes = stored + len(pending), [], 0
            if pending:
                self._writer.write_blobs(project, pending)
                stored += len(pending)
        except InvalidPayload as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StoreUnavailable as exc:
            _abort_store_error(context, exc)
        return blobs_pb2.UploadResponse(stored=stored)


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _verified_first(blobs: Iterator[tuple[str, int, str, list[bytes]]]) -> Iterator[tuple[str, int, str, list[bytes]]]:
    """All of *blobs*, verified before the first is handed on: a batch is already in memory, so one bad
    blob can fail it before any of it is stored (a stream is written as it comes, in bounded memory)."""
    yield from list(blobs)


def _assemble(chunks: Iterator[Any]) -> Iterator[tuple[str, int, str, list[bytes]]]:
    """Reassemble a chunk stream into verified blobs (the writer cuts them into store-sized chunks)."""
    current: tuple[str, int, str] | None = None
    hasher = hashlib.sha256()
    parts: list[bytes] = []
    received = 0
    for chunk in chunks:
        if current is None or chunk.sha256 != current[0]:
            if current is not None:
                yield _finish(current, hasher, parts, received)
            if not _is_digest(chunk.sha256):
                raise InvalidPayload("sha256 must be 64 lower-case hex digits")
            if chunk.total_size > MAX_BLOB_BYTES:
                raise InvalidPayload(f"blob of {chunk.total_size} bytes exceeds the {MAX_BLOB_BYTES}-byte limit")
            current, hasher, parts, received = (chunk.sha256, chunk.total_size, chunk.content_type), \
                hashlib.sha256(), [], 0
        if chunk.offset != received:
            raise InvalidPayload(f"blob {chunk.sha256[:12]}: chunk at offset {chunk.offset}, expected {received}")
        hasher.update(chunk.data)
        parts.append(chunk.data)
        received += len(chunk.data)
        if received > current[1]:
            raise InvalidPayload(f"blob {chunk.sha256[:12]}: more bytes than its declared size {current[1]}")
    if current is not None:
        yield _finish(current, hasher, parts, received)


def _finish(current: tuple[str, int, str], hasher: Any, parts: list[bytes], received: int
            ) -> tuple[str, int, str, list[bytes]]:
    digest, size, content_type = current
    if received != size:
        raise InvalidPayload(f"blob {digest[:12]}: got {received} bytes, declared {size}")
    if hasher.hexdigest() != digest:
        raise InvalidPayload(f"blob {digest[:12]}: bytes do not match their sha256")
    return digest, size, content_type, parts
