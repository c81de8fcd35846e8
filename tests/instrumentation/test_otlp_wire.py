"""The exporter's own OTLP encoding against OTel's encoder: the same message, whatever the spans hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceState

from tracetape.instrumentation._otlp_wire import encode_request

_scalars = st.one_of(st.text(max_size=40), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                     st.floats(allow_nan=False))
_values = st.one_of(_scalars, st.lists(st.text(max_size=8), max_size=4).map(tuple),
                    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4).map(tuple),
                    st.lists(st.floats(allow_nan=False), max_size=3).map(tuple))
_attributes = st.dictionaries(st.text(min_size=1, max_size=20), _values, max_size=8)
_ids = st.tuples(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1))
_contexts = st.builds(lambda ids, remote: SpanContext(ids[0], ids[1], is_remote=remote), _ids, st.booleans())


@st.composite
def _spans(draw: st.DrawFn, resources: list[Resource], scopes: list[InstrumentationScope | None]) -> ReadableSpan:
    trace_id, span_id = draw(_ids)
    state = draw(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xyz")), max_size=2, unique_by=lambda p: p[0]))
    code = draw(st.sampled_from(StatusCode))
    start = draw(st.integers(0, 2**63))
    return ReadableSpan(
        name=draw(st.text(max_size=30)),
        context=SpanContext(trace_id, span_id, is_remote=False, trace_state=TraceState(state)),
        parent=draw(st.none() | _contexts),
        resource=draw(st.sampled_from(resources)),
        attributes=draw(_attributes),
        events=draw(st.lists(st.builds(Event, st.text(max_size=12), _attributes, st.integers(0, 2**63)), max_size=3)),
        links=draw(st.lists(st.builds(Link, _contexts, _attributes), max_size=2)),
        kind=draw(st.sampled_from(SpanKind)),
        instrumentation_scope=draw(st.sampled_from(scopes)),
        status=Status(code, draw(st.text(max_size=12)) if code is StatusCode.ERROR else None),
        start_time=start,
        end_time=draw(st.none() | st.integers(start, 2**64 - 1)),
    )


@st.composite
def _batches(draw: st.DrawFn) -> list[ReadableSpan]:
    # Resources and scopes differ in content, as those of distinct providers and tracers do.
    resources = [Resource({"service.name": f"svc-{i}", **draw(_attributes)}, draw(st.sampled_from(["", "s://r"])))
                 for i in range(draw(st.integers(1, 2)))]
    scopes = [None] + [InstrumentationScope(f"lib-{i}", draw(st.none() | st.text(max_size=5)),
                                            draw(st.none() | st.just("s://l")), draw(_attributes))
                       for i in range(draw(st.integers(1, 2)))]
    return draw(st.lists(_spans(resources, scopes), min_size=1, max_size=6))


@settings(max_examples=300, deadline=None)
@given(_batches())
def test_the_bytes_parse_to_the_message_otels_encoder_builds(spans: list[ReadableSpan]) -> None:
    assert ExportTraceServiceRequest.FromString(encode_request(spans)) == encode_spans(spans)


def test_a_value_that_cannot_be_encoded_loses_its_attribute_and_nothing_else(caplog) -> None:
    span = ReadableSpan(name="step", context=SpanContext(1, 2, False), resource=Resource({}),
                        attributes={"big": 2**70, "kept": "yes", "broken": "a\udc80b"})
    request = ExportTraceServiceRequest.FromString(encode_request([span]))
    (exported,) = request.resource_spans[0].scope_spans[0].spans
    values = {kv.key: kv.value.string_value for kv in exported.attributes}
    assert values == {"kept": "yes", "broken": "a\ufffdb"}  # invalid UTF-8 replaced, not a failed export
    assert "'big' not exported" in caplog.text
