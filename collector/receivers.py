"""gRPC receivers: decode, hand over to the writer, map errors to status codes.

They hold no storage logic. A store failure becomes ``UNAVAILABLE`` (the
OTLP exporter retries it); a malformed payload becomes ``INVALID_ARGUMENT``
(it does not). Authentication maps a bearer token to the caller's project.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any, Iterator, Mapping

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc
from tracetape.schemas.errors import InvalidPayload, StoreUnavailable

from .convert import convert_request
from .writer import ClickHouseWriter

__all__ = ["TraceReceiver", "BlobReceiver", "Authenticator"]

_log = logging.getLogger(__name__)
MAX_BLOB_BYTES = 1 << 30
STORE_CHUNK_BYTES = 1 << 20
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


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, writer: ClickHouseWriter, auth: Authenticator) -> None:
        self._writer = writer
        self._auth = auth

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC method name
        project = self._auth.grpc_project(context)
        try:
            batch = convert_request(request, project)
            self._writer.consume(batch)
        except InvalidPayload as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except StoreUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return trace_service_pb2.ExportTraceServiceResponse()


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
        except StoreUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return blobs_pb2.MissingResponse(sha256=[h for h in wanted if h not in present])

    def Upload(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:  # noqa: N802
        project = self._auth.grpc_project(context)
        stored = 0
        pending: list[tuple[str, int, str, list[bytes]]] = []
        pending_bytes = 0
        try:
            # Blobs of one stream are written together, in slices of bounded size.
            for blob in _assemble(request_iterator):
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
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        return blobs_pb2.UploadResponse(stored=stored)


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _assemble(chunks: Iterator[Any]) -> Iterator[tuple[str, int, str, list[bytes]]]:
    """Reassemble a chunk stream into verified blobs, re-cut into store-sized chunks."""
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
    data = b"".join(parts)
    pieces = [data[i:i + STORE_CHUNK_BYTES] for i in range(0, len(data), STORE_CHUNK_BYTES)] or [b""]
    return digest, size, content_type, pieces
