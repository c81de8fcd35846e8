"""Bad input, generated and hand-made: the converter and the gRPC receiver refuse it clearly and keep the rest."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tracetape.collector.convert import TRUNCATION_MARKER, ConversionError, screen_request, span_rows
from tracetape.schemas.wire import varint

AGENTS = Path(__file__).resolve().parents[1] / "agents"
sys.path.insert(0, str(AGENTS))
from ingest_collector import IngestCollector, any_value  # noqa: E402

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(st.text(max_size=30), st.integers(-2**63, 2**63 - 1), st.booleans(),
                    st.floats(allow_nan=False), st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _valid(trace_id: bytes, span_id: bytes, parent: bytes) -> bool:
    return len(trace_id) == 16 and any(trace_id) and len(span_id) == 8 and any(span_id) and len(parent) in (0, 8)


ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=12))
spans = st.tuples(ids, span_ids, st.one_of(st.just(b""), span_ids), st.text(max_size=40),
                  st.dictionaries(st.text(max_size=20), values, max_size=6))


def _request(run_id: str, generated: list[tuple[bytes, bytes, bytes, str, dict[str, Any]]]) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id, span_id, parent, name, attributes in generated:
        span = scope.spans.add(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name)
        span.attributes.extend(common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
        span.attributes.add(key="tracetape.run.id", value=common_pb2.AnyValue(string_value=run_id))
    return request.SerializeToString()


# -- the converter, in process --------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_are_a_request_or_a_conversion_error(raw: bytes) -> None:
    try:
        batch = screen_request(raw, "p")
    except ConversionError as exc:
        assert "not a valid ExportTraceServiceRequest" in str(exc)
        return
    assert batch.spans >= 0 and batch.rejected >= 0


@settings(FUZZ, max_examples=40)
@given(st.lists(spans, max_size=8), st.data())
def test_truncated_and_corrupted_requests_never_escape_the_converter(generated: list, data: st.DataObject) -> None:
    raw = bytearray(_request("r", generated))
    if raw:
        cut = data.draw(st.integers(0, len(raw)))
        for index in data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=3)):
            raw[index] ^= data.draw(st.integers(1, 255))
        raw = raw[:cut] if data.draw(st.booleans()) else raw
    try:
        batch = screen_request(bytes(raw), "p")
    except ConversionError:
        return
    kept = trace_service_pb2.ExportTraceServiceRequest.FromString(batch.payload)
    stored = [s for rs in kept.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert len(stored) == batch.spans and all(_valid(s.trace_id, s.span_id, s.parent_span_id) for s in stored)


@settings(FUZZ, max_examples=40)
@given(st.lists(spans, max_size=12))
def test_exactly_the_invalid_spans_are_rejected(generated: list) -> None:
    batch = screen_request(_request("r", generated), "p")
    valid = [g for g in generated if _valid(*g[:3])]
    assert (batch.spans, batch.rejected) == (len(valid), len(generated) - len(valid))
    kept = trace_service_pb2.ExportTraceServiceRequest.FromString(batch.payload)
    assert [s.span_id for s in kept.resource_spans[0].scope_spans[0].spans] == [g[1] for g in valid]


# Unknown fields of every wire type, field number 99: varint, fixed64, length-delimited, a group holding a
# group (field 100), fixed32.
unknown_fields = st.lists(st.sampled_from([b"\x98\x06\x96\x01", b"\x99\x06" + bytes(8), b"\x9a\x06\x02ab",
                                           b"\x9b\x06\x08\x01\xa3\x06\x9a\x06\x01z\xa4\x06\x9c\x06",
                                           b"\x9d\x06" + bytes(4)]), max_size=3).map(b"".join)


def _framed(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


@settings(FUZZ, max_examples=60)
@given(st.lists(st.tuples(st.lists(st.lists(spans, max_size=3), max_size=3),
                          st.lists(st.dictionaries(st.text(max_size=8), scalars, max_size=3), max_size=2)),
                max_size=3), unknown_fields)
def test_span_rows_slice_exactly_the_spans_protobuf_reads(resources: list, unknown: bytes) -> None:
    """The wire slicing behind the spool's rows agrees with the protobuf runtime, unknown fields and all."""
    raw = b""
    for scopes, pieces in resources:  # a resource may come in several pieces, which protobuf merges
        body = b"".join(_framed(1, resource_pb2.Resource(attributes=[
            common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in piece.items()]).SerializeToString())
            for piece in pieces)
        for generated in scopes:
            scope = b"".join(_framed(2, trace_pb2.Span(trace_id=t, span_id=i, parent_span_id=p, name=n)
                                     .SerializeToString() + unknown) for t, i, p, n, _ in generated)
            body += _framed(2, unknown + scope)
        raw += _framed(1, body + unknown) + unknown
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
    expected = [(rs.resource, span) for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    rows = [(resource_pb2.Resource.FromString(bytes(resource)), trace_pb2.Span.FromString(bytes(span)))
            for resource, span in span_rows(raw)]
    assert rows == expected


# -- the real receiver, over gRPC --------------------------------------------------------------------

@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestCollector]:
    process = IngestCollector(tmp_path_factory.mktemp("fuzz") / "data").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def channel(collector: IngestCollector) -> Iterator[grpc.Channel]:
    with collector.channel() as channel:
        yield channel


def _stored(collector: IngestCollector, sql: str, **parameters: Any) -> Any:
    client = collector.sql()
    try:
        return client.query(sql, parameters=parameters).result_rows
    finally:
        client.close()


@settings(FUZZ, max_examples=15)
@given(st.lists(spans, min_size=1, max_size=6), st.one_of(st.none(), st.binary(max_size=400)))
def test_the_receiver_keeps_valid_spans_and_refuses_the_rest(collector: IngestCollector, channel: grpc.Channel,
                                                             generated: list, garbage: bytes | None) -> None:
    if garbage is not None:
        try:
            collector.export(channel, garbage)
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and error.details()
    run_id = uuid.uuid4().hex
    response = collector.export(channel, _request(run_id, generated))
    valid = [g for g in generated if _valid(*g[:3])]
    assert response.partial_success.rejected_spans == len(generated) - len(valid)
    assert bool(response.partial_success.error_message) == (len(valid) < len(generated))
    stored = _stored(collector, "SELECT count() FROM spans FINAL WHERE run_id = {r:String}", r=run_id)[0][0]
    assert stored == len({g[1] for g in valid})  # one row per span id within a run


def _one_span(run_id: str, attributes: list[common_pb2.KeyValue]) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8,
                                                                    name="one")
    span.attributes.add(key="tracetape.run.id", value=common_pb2.AnyValue(string_value=run_id))
    span.attributes.extend(attributes)
    return request


def _attributes(collector: IngestCollector, run_id: str) -> dict[str, str]:
    return _stored(collector, "SELECT attributes FROM spans FINAL WHERE run_id = {r:String}", r=run_id)[0][0]


def test_invalid_utf8_is_invalid_argument_naming_the_cause(collector: IngestCollector, channel: grpc.Channel) -> None:
    raw = _one_span("utf8", [common_pb2.KeyValue(key="k", value=any_value("valid"))]).SerializeToString()
    with pytest.raises(grpc.RpcError) as refused:
        collector.export(channel, raw.replace(b"valid", b"v\xc3\x28ld"))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ExportTraceServiceRequest" in refused.value.details()


def test_ten_thousand_attributes_are_all_kept(collector: IngestCollector, channel: grpc.Channel) -> None:
    many = [common_pb2.KeyValue(key=f"attr.{i}", value=any_value(i)) for i in range(10_000)]
    collector.export(channel, _one_span("many", many).SerializeToString())
    attributes = _attributes(collector, "many")
    assert len(attributes) == 10_000 and attributes["attr.9999"] == "9999"


def test_a_50_mb_value_is_cut_with_a_marker(collector: IngestCollector, channel: grpc.Channel) -> None:
    huge = [common_pb2.KeyValue(key="huge", value=any_value("z" * 50_000_000))]
    collector.export(channel, _one_span("huge", huge).SerializeToString())
    value = _attributes(collector, "huge")["huge"]
    assert value == "z" * (4 << 20) + TRUNCATION_MARKER.format(size=50_000_000)


def test_a_request_over_the_size_limit_is_resource_exhausted_with_the_limit(collector: IngestCollector,
                                                                             channel: grpc.Channel) -> None:
    over = [common_pb2.KeyValue(key="over", value=any_value("o" * (65 << 20)))]
    with pytest.raises(grpc.RpcError) as refused:
        collector.export(channel, _one_span("over", over).SerializeToString())
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(64 << 20) in refused.value.details()


def _raw_request(run_id: str, attribute: bytes = b"", unknown: bytes = b"") -> bytes:
    """A one-span request built byte by byte (deeper than protobuf lets Python build), *unknown* at each level."""
    span = _one_span(run_id, []).resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    span += (b"\x4a" + varint(len(attribute)) + attribute if attribute else b"") + unknown
    scope = b"\x12" + varint(len(span)) + span + unknown
    resource_spans = b"\x12" + varint(len(scope)) + scope
    return b"\x0a" + varint(len(resource_spans)) + resource_spans + unknown


def _nested(depth: int) -> bytes:
    """A KeyValue ``deep`` whose value nests kvlists *depth* levels deep."""
    value = common_pb2.AnyValue(string_value="bottom").SerializeToString()
    for _ in range(depth):
        key_value = b"\x0a\x01k\x12" + varint(len(value)) + value
        value = b"\x32" + varint(len(key_value) + 1 + len(varint(len(key_value)))) \
            + b"\x0a" + varint(len(key_value)) + key_value
    return b"\x0a\x04deep\x12" + varint(len(value)) + value


def test_nesting_is_bounded(collector: IngestCollector, channel: grpc.Channel) -> None:
    collector.export(channel, _raw_request("nested", _nested(25)))
    deep = _attributes(collector, "nested")["deep"]
    assert deep.startswith('{"otlp.kvlist.base64":')
    with pytest.raises(grpc.RpcError) as refused:
        collector.export(channel, _raw_request("too-deep", _nested(200)))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_fields_are_ignored(collector: IngestCollector, channel: grpc.Channel) -> None:
    attribute = common_pb2.KeyValue(key="k", value=any_value("v")).SerializeToString()
    collector.export(channel, _raw_request("unknown", attribute, unknown=b"\x98\x06\x05"))  # field 99 = 5
    assert _attributes(collector, "unknown") == {"k": "v"}
