"""Send a tape to a collector: payloads over the BlobService, then spans over OTLP/gRPC.

The collector stays the only writer: a pushed run goes through the same
receivers, conversion and idempotent tables as a recorded one, so pushing a
tape twice stores it once. Payloads travel first (only those the collector
lacks), so no reader ever sees a span whose blobs are not there yet.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from tracetape.schemas import attributes as A
from tracetape.schemas import config
from tracetape.schemas.errors import MissingExtraError, StoreError, StoreUnavailable

from ._rows import attributes_from_row, restore
from .tape import Tape

__all__ = ["push_tape", "any_value", "key_values"]

_CHUNK_BYTES = 1 << 20
_SPANS_PER_EXPORT = 1000
_HASHES_PER_ASK = 1000
_TIMEOUT_S = 60.0
_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def any_value(value: Any) -> Any:
    """The OTLP ``AnyValue`` of a Python value: lists become arrays, dicts key-value lists."""
    from opentelemetry.proto.common.v1 import common_pb2

    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, (list, tuple)):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=key_values(value)))
    return common_pb2.AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, Any]) -> list[Any]:
    from opentelemetry.proto.common.v1 import common_pb2

    return [common_pb2.KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def _events(row: Mapping[str, Any]) -> list[Any]:
    """The span's events (exceptions, stream marks), their attribute texts restored like the span's."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    return [trace_pb2.Span.Event(time_unix_nano=int(time_ns), name=name,
                                 attributes=key_values({k: restore(v) for k, v in attributes.items()}))
            for time_ns, name, attributes in row.get("events") or ()]


def _span(row: Mapping[str, Any]) -> Any:
    from opentelemetry.proto.trace.v1 import trace_pb2

    kind = _SPAN_KINDS.index(row["span_kind"]) if row["span_kind"] in _SPAN_KINDS else 0
    return trace_pb2.Span(
        trace_id=bytes.fromhex(row["trace_id"]), span_id=bytes.fromhex(row["span_id"]),
        parent_span_id=bytes.fromhex(row["parent_span_id"]) if row["parent_span_id"] else b"",
        name=row["name"], kind=kind, start_time_unix_nano=int(row["start_ns"]), end_time_unix_nano=int(row["end_ns"]),
        attributes=key_values(attributes_from_row(row)), events=_events(row),
        status=trace_pb2.Status(code=_STATUS.get(row["status_code"], 0), message=row["status_message"]),
    )


def _export_requests(tape: Tape) -> Iterator[Any]:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    rows = tape.spans
    for start in range(0, len(rows), _SPANS_PER_EXPORT):
        by_resource: dict[tuple[tuple[str, str], ...], list[Any]] = {}
        for row in rows[start:start + _SPANS_PER_EXPORT]:
            # The recorded project is left out: spans land where the BlobService puts the payloads.
            resource = tuple(sorted((k, v) for k, v in row["resource"].items() if k != A.PROJECT))
            by_resource.setdefault(resource, []).append(_span(row))
        yield trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(attributes=key_values({k: restore(v) for k, v in resource})),
                scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="tracetape.push"),
                                                  spans=spans)])
            for resource, spans in by_resource.items()])


def _chunks(tape: Tape, digests: list[str]) -> Iterator[Any]:
    from tracetape.schemas._proto import blobs_pb2

    for digest in digests:
        data = tape.blob(digest)
        for offset in range(0, max(len(data), 1), _CHUNK_BYTES):
            yield blobs_pb2.BlobChunk(sha256=digest, total_size=len(data), offset=offset,
                                      data=data[offset:offset + _CHUNK_BYTES])


def _target(endpoint: str) -> tuple[str, bool]:
    if "://" not in endpoint:
        return endpoint, not config.setting(config.OTLP_INSECURE)
    parts = urlsplit(endpoint)
    return parts.netloc, parts.scheme == "https"


def push_tape(tape: Tape, endpoint: str | None = None, *, token: str | None = None) -> int:
    """Upload *tape* to the collector at *endpoint* (default: ``OTEL_EXPORTER_OTLP_ENDPOINT``).

    The run lands in the project the collector assigns to the caller's token
    (the BlobService stores payloads there, so the spans must go there too).
    Returns the number of spans sent.
    """
    try:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    except ImportError as exc:
        raise MissingExtraError("pushing a tape needs the OTLP protos: pip install 'tracetape[collector]'") from exc
    from tracetape.schemas._proto import blobs_pb2, blobs_pb2_grpc

    target, secure = _target(config.setting(config.OTLP_ENDPOINT, endpoint))
    token = config.setting(config.TOKEN, token)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) if secure else grpc.insecure_channel(target)
    try:
        blobs = blobs_pb2_grpc.BlobServiceStub(channel)
        held = sorted(tape.index)
        missing: list[str] = []
        for start in range(0, len(held), _HASHES_PER_ASK):
            answer = blobs.Missing(blobs_pb2.MissingRequest(sha256=held[start:start + _HASHES_PER_ASK]),
                                   metadata=metadata, timeout=_TIMEOUT_S)
            missing += list(answer.sha256)
        if missing:
            blobs.Upload(_chunks(tape, missing), metadata=metadata, timeout=_TIMEOUT_S)
        traces = trace_service_pb2_grpc.TraceServiceStub(channel)
        for request in _export_requests(tape):
            traces.Export(request, metadata=metadata, timeout=_TIMEOUT_S)
    except grpc.RpcError as exc:
        retryable = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        raise (StoreUnavailable if retryable else StoreError)(
            f"push to {target} failed: {exc.code().name}: {exc.details()}") from exc
    finally:
        channel.close()
    return len(tape.spans)
