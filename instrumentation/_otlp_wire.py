"""The span exporter's encoding: OTLP export requests written as bytes straight from the SDK's spans.

OTel's own encoder builds a protobuf object for every span, attribute and value, and hashes the span's
Resource (a JSON dump of it) once per span: about 50 µs per tracetape span on the 2-core reference
machine, spent in the export thread while holding the GIL, so every instrumented app thread paid for it
too. Writing the wire format directly costs a fraction of that. The bytes parse to the same message as
OTel's encoder gives (tests/instrumentation/test_otlp_wire.py checks it field by field).

:class:`WireSpanExporter` is OTel's gRPC exporter (channel, TLS, headers, compression, retries with the
server's RetryInfo) with only the encoding swapped.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from tracetape.schemas.wire import ONE_BYTE as _ONE_BYTE
from tracetape.schemas.wire import varint

__all__ = ["encode_request", "WireSpanExporter"]

_log = logging.getLogger(__name__)
_DOUBLE = struct.Struct("<d").pack
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_INT64 = range(-(1 << 63), 1 << 63)
_U64 = (1 << 64) - 1
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags, as OTel's encoder sets them
_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

# Attribute keys repeat on every span: their encoded form is kept (a bounded number of them).
_keys: dict[str, bytes] = {}
_MAX_KEYS = 4096


def _text(value: str) -> bytes:
    # OTLP strings must be UTF-8; a lone surrogate (from undecodable input) becomes U+FFFD, not a failed export.
    try:
        return value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


def _len(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _value(value: Any) -> bytes:
    """An AnyValue message; the checks go in OTel's order (a bool is an int, a str a Sequence)."""
    kind = type(value)
    if kind is str:
        return _len(b"\x0a", _text(value))
    if kind is bool or isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int or isinstance(value, int):
        if value not in _INT64:
            raise ValueError(f"integer {value} is out of the int64 range")
        return b"\x18" + varint(value & _U64)
    if kind is float or isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if value is None:
        return b""
    if isinstance(value, str):
        return _len(b"\x0a", _text(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _len(b"\x3a", bytes(value))
    if isinstance(value, Sequence):
        return _len(b"\x2a", b"".join(_len(b"\x0a", _value(item)) for item in value))
    if isinstance(value, Mapping):
        return _len(b"\x32", b"".join(_len(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"cannot encode a {kind.__name__} attribute value")


def _key(key: str) -> bytes:
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _len(b"\x0a", _text(key))
        if len(_keys) < _MAX_KEYS:
            _keys[key] = encoded
    return encoded


def _key_value(key: str, value: Any) -> bytes:
    return _key(key) + _len(b"\x12", _value(value))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """Repeated KeyValue fields; a value that cannot be encoded loses its attribute, not the span.

    The hot loop of the encoder, so string values (most of them) are written inline."""
    out = []
    keys = _keys
    for key, value in _items(attributes):
        try:
            if type(value) is str:
                raw = value.encode() if value.isascii() else _text(value)
                size = len(raw)
                encoded = b"\x0a" + (_ONE_BYTE[size] if size < 0x80 else varint(size)) + raw
            else:
                encoded = _value(value)
            size = len(encoded)
            pair = (keys.get(key) or _key(key)) + b"\x12" + (_ONE_BYTE[size] if size < 0x80 else varint(size)) \
                + encoded
            size = len(pair)
            out.append(tag + (_ONE_BYTE[size] if size < 0x80 else varint(size)) + pair)
        except (TypeError, ValueError, OverflowError) as error:
            _log.warning("tracetape: attribute %r not exported: %s", key, error)
    return out


def _items(attributes: Mapping[str, Any] | None) -> Any:
    """The SDK's BoundedAttributes iterate through a lock and ``__getitem__`` per key; the dict they
    wrap iterates at C speed. Finished spans' attributes no longer change, so no lock is needed."""
    if not attributes:
        return ()
    return getattr(attributes, "_dict", attributes).items()


def _count(tag: bytes, value: int | None) -> bytes:
    return tag + varint(value) if value else b""


def _flags(parent: SpanContext | None) -> bytes:
    return _FIXED32(_HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE)


def _span(span: ReadableSpan) -> bytes:
    context = span.context
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
    if context.trace_state:
        parts.append(_len(b"\x1a", _text(",".join(f"{k}={v}" for k, v in context.trace_state.items()))))
    parent = span.parent
    if parent is not None:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_len(b"\x2a", _text(span.name)))
    parts += (b"\x30", varint(span.kind.value + 1))  # the proto enum has UNSPECIFIED at 0
    if span.start_time:
        parts += (b"\x39", _FIXED64(span.start_time))
    if span.end_time:
        parts += (b"\x41", _FIXED64(span.end_time))
    # ReadableSpan.attributes wraps the BoundedAttributes in a read-only proxy, which hides their dict.
    parts += _attributes(b"\x4a", getattr(span, "_attributes", None) or span.attributes)
    parts.append(_count(b"\x50", span.dropped_attributes))
    for event in span.events:
        parts.append(_len(b"\x5a", b"".join([
            b"\x09" + _FIXED64(event.timestamp) if event.timestamp else b"",
            _len(b"\x12", _text(event.name)) if event.name else b"",
            *_attributes(b"\x1a", event.attributes),
            _count(b"\x20", event.dropped_attributes)])))
    parts.append(_count(b"\x60", span.dropped_events))
    for link in span.links:
        parts.append(_len(b"\x6a", b"".join([
            b"\x0a\x10", link.context.trace_id.to_bytes(16, "big"),
            b"\x12\x08", link.context.span_id.to_bytes(8, "big"),
            *_attributes(b"\x22", link.attributes),
            _count(b"\x28", link.dropped_attributes),
            b"\x35", _flags(link.context)])))
    parts.append(_count(b"\x70", span.dropped_links))
    status = span.status
    parts.append(_len(b"\x7a", b"".join([_len(b"\x12", _text(status.description)) if status.description else b"",
                                         _count(b"\x18", status.status_code.value)])))
    parts += (b"\x85\x01", _flags(parent))
    return b"".join(parts)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    return b"".join([_len(b"\x0a", _text(scope.name)) if scope.name else b"",
                     _len(b"\x12", _text(scope.version)) if scope.version else b"",
                     *_attributes(b"\x1a", scope.attributes)])


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """A serialized ``ExportTraceServiceRequest``: spans grouped by resource, then instrumentation scope.

    Groups are keyed by object identity: the spans of one provider share one Resource object, and
    hashing it by content per span is what made OTel's encoder slow. Two equal resources that are
    distinct objects give two ResourceSpans, which OTLP allows."""
    resources: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        scopes = resources.setdefault(id(resource), (resource, {}))[1]
        scopes.setdefault(id(scope), (scope, []))[1].append(_len(b"\x12", _span(span)))
    out = []
    for resource, scopes in resources.values():
        body = [_len(b"\x0a", b"".join(_attributes(b"\x0a", resource.attributes)))]
        for scope, encoded in scopes.values():
            schema = getattr(scope, "schema_url", None)
            body.append(_len(b"\x12", b"".join([_len(b"\x0a", _scope(scope)), *encoded,
                                               _len(b"\x1a", _text(schema)) if schema else b""])))
        if resource.schema_url:
            body.append(_len(b"\x1a", _text(resource.schema_url)))
        out.append(_len(b"\x0a", b"".join(body)))
    return b"".join(out)


class _BytesTraceStub:
    """TraceService whose Export takes the request already serialized."""

    def __init__(self, channel: Any) -> None:
        self.Export = channel.unary_unary(_EXPORT, request_serializer=None,
                                          response_deserializer=ExportTraceServiceResponse.FromString)


class WireSpanExporter(OTLPSpanExporter):
    """OTel's OTLP/gRPC span exporter with :func:`encode_request` as its encoding."""

    def _initialize_channel_and_stub(self) -> None:  # also called again to reconnect after UNAVAILABLE
        super()._initialize_channel_and_stub()
        self._client = _BytesTraceStub(self._channel)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return encode_request(data)
