"""OTLP/HTTP ingest: the official exporter, raw OTLP/JSON and gzip, and the spec's status codes."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from collector_helpers import request, span_request, sql_rows
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def _finished_spans(service: str) -> list:
    """A parent and a child span made by the real SDK."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.INTERNAL):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as child:
            child.set_attribute("gen_ai.request.model", "gpt-4o")
            child.set_attribute("gen_ai.usage.input_tokens", 42)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _stored(server, service: str) -> dict[str, list[str]]:
    rows = sql_rows(server, "SELECT name, span_kind, parent_span_id, request_model, input_tokens, trace_id, span_id "
                            "FROM spans FINAL WHERE service_name = {s:String}", s=service)
    return {row[0]: row[1:] for row in rows}


def test_official_exporter_protobuf_gzip_lands_in_the_store(plain_server):
    spans = _finished_spans("svc-proto-gzip")
    exporter = OTLPSpanExporter(endpoint=f"{plain_server.http}/v1/traces", compression=Compression.Gzip)
    try:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    stored = _stored(plain_server, "svc-proto-gzip")
    assert set(stored) == {"invoke_agent planner", "chat gpt-4o"}
    parent, child = stored["invoke_agent planner"], stored["chat gpt-4o"]
    assert child[0] == "CLIENT" and child[2] == "gpt-4o" and child[3] == "42"
    assert child[1] == parent[5]  # the child's parent_span_id is the parent's span_id (hex)
    assert parent[4] == format(spans[0].context.trace_id, "032x")


def _otlp_json(service: str, trace_id: str, span_id: str) -> dict:
    """What an OTLP/JSON client sends: hex ids, enum names or numbers, int64 as strings or numbers."""
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "raw"}, "spans": [
            {"traceId": trace_id, "spanId": span_id, "name": "execute_tool get_weather", "kind": "SPAN_KIND_SERVER",
             "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000500000000,
             "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": "get_weather"}},
                            {"key": "retries", "value": {"intValue": "2"}}],
             "status": {"code": 2, "message": "boom"}, "someFutureField": {"x": 1}},
            {"traceId": trace_id, "spanId": "00000000000000ff", "parentSpanId": span_id, "name": "child",
             "kind": 3, "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000200000000"},
        ]}]}]}


def test_otlp_json_with_hex_ids_enum_names_and_gzip(plain_server):
    for service, encode, headers in (
            ("svc-json", lambda b: b, JSON),
            ("svc-json-gzip", gzip.compress, {**JSON, "Content-Encoding": "gzip"})):
        trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
        body = encode(json.dumps(_otlp_json(service, trace_id, span_id)).encode())
        resp = request("POST", f"{plain_server.http}/v1/traces", body, headers)
        assert (resp.status, resp.headers["content-type"], resp.json()) == (200, "application/json", {})
        rows = sql_rows(plain_server, "SELECT name, span_kind, trace_id, span_id, parent_span_id, status_code, "
                                      "status_message, tool_name, attributes['retries'], duration_ns "
                                      "FROM spans FINAL WHERE service_name = {s:String} ORDER BY name", s=service)
        assert rows == [
            ["child", "CLIENT", trace_id, "00000000000000ff", span_id, "UNSET", "", "", "", "100000000"],
            ["execute_tool get_weather", "SERVER", trace_id, span_id, "", "ERROR", "boom", "get_weather", "2",
             "500000000"],
        ]


def test_protobuf_answer_is_protobuf_and_errors_are_google_rpc_status(plain_server):
    ok = request("POST", f"{plain_server.http}/v1/traces", span_request("pb").SerializeToString(), PROTOBUF)
    assert (ok.status, ok.headers["content-type"], ok.body) == (200, "application/x-protobuf", b"")

    bad = request("POST", f"{plain_server.http}/v1/traces", b"\xff\xff\xff not protobuf", PROTOBUF)
    assert bad.status == 400 and bad.headers["content-type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(bad.body)
    assert status.code == 3 and "ExportTraceServiceRequest" in status.message  # INVALID_ARGUMENT: no retry


def test_invalid_spans_are_dropped_and_named_valid_ones_kept(plain_server):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = span_request("partial-ok", count=4)
    req.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\0" * 16
    req.resource_spans[0].scope_spans[0].spans[3].span_id = b"\x01\x02"
    resp = request("POST", f"{plain_server.http}/v1/traces", req.SerializeToString(), PROTOBUF)
    assert resp.status == 200
    partial = trace_service_pb2.ExportTraceServiceResponse.FromString(resp.body).partial_success
    assert partial.rejected_spans == 2 and "trace_id" in partial.error_message
    assert sql_rows(plain_server, "SELECT name FROM spans WHERE startsWith(name, 'partial-ok') ORDER BY name") \
        == [["partial-ok"], ["partial-ok-2"]]


def test_invalid_payloads_get_400(plain_server):

    for body, why in ((b"{not json", "OTLP/JSON"), (b"[1, 2]", "JSON object"),
                      (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}).encode(),
                       "traceId"),
                      (json.dumps({"resourceSpans": "nope"}).encode(), "OTLP/JSON"),
                      (b"[" * 100_000 + b"]" * 100_000, "OTLP/JSON")):
        resp = request("POST", f"{plain_server.http}/v1/traces", body, JSON)
        assert resp.status == 400 and why in resp.json()["message"], (body[:40], resp.body[:200])


def test_size_limit_unsupported_types_and_paths(plain_server):
    limit = 1 << 20
    big = request("POST", f"{plain_server.http}/v1/traces", b"\0" * (limit + 1), PROTOBUF)
    assert big.status == 413 and str(limit) in status_pb2.Status.FromString(big.body).message

    bomb = gzip.compress(b"\0" * (4 * limit))  # a few KiB that inflate past the limit
    resp = request("POST", f"{plain_server.http}/v1/traces", bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert resp.status == 413 and len(bomb) < limit

    assert request("POST", f"{plain_server.http}/v1/traces", b"x", {"Content-Type": "text/plain"}).status == 415
    zstd = request("POST", f"{plain_server.http}/v1/traces", b"x", {**PROTOBUF, "Content-Encoding": "zstd"})
    assert zstd.status == 415 and "zstd" in status_pb2.Status.FromString(zstd.body).message
    truncated = gzip.compress(span_request("t").SerializeToString())[:-8]
    assert request("POST", f"{plain_server.http}/v1/traces", truncated,
                   {**PROTOBUF, "Content-Encoding": "gzip"}).status == 400
    assert request("POST", f"{plain_server.http}/v1/logs", b"", PROTOBUF).status == 404


def test_keep_alive_connection_serves_many_exports(plain_server):
    """The exporter reuses one connection for every export."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(plain_server.http)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        for i in range(20):
            conn.request("POST", "/v1/traces", span_request(f"keepalive-{i}").SerializeToString(), PROTOBUF)
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b""
    finally:
        conn.close()
    assert sql_rows(plain_server, "SELECT count() FROM spans WHERE startsWith(name, 'keepalive-')") == [["20"]]


def test_the_same_limit_applies_to_grpc_exports(plain_server):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    req = span_request("too-big", count=1)
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="blob").value.string_value = "x" * (2 << 20)
    with grpc.insecure_channel(plain_server.grpc_target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and str(1 << 20) in info.value.details()
