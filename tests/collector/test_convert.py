"""OTLP → rows: what the Python screen keeps, cuts and rejects, and what the engine stores."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tracetape.collector.convert import TRUNCATION_MARKER, ConversionError, convert_request, screen_request
from tracetape.schemas.events import kind_of

AGENTS = Path(__file__).resolve().parents[1] / "agents"
sys.path.insert(0, str(AGENTS))
from ingest_collector import IngestCollector, any_value  # noqa: E402

TRACE = bytes(range(1, 17))


def _span(n: int, attributes: dict[str, Any], **fields: Any) -> trace_pb2.Span:
    span = trace_pb2.Span(trace_id=fields.pop("trace_id", TRACE), span_id=fields.pop("span_id", n.to_bytes(8, "big")),
                          name=fields.pop("name", f"span {n}"), start_time_unix_nano=1_700_000_000_000_000_000 + n,
                          end_time_unix_nano=1_700_000_000_000_000_000 + n + 250, **fields)
    span.attributes.extend(common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
    return span


def _request(*spans: trace_pb2.Span, resource: dict[str, Any] | None = None) -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(common_pb2.KeyValue(key=k, value=any_value(v))
                                              for k, v in (resource or {"service.name": "svc"}).items())
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


# -- the Python screen ------------------------------------------------------------------------------

def test_a_valid_request_is_stored_as_sent() -> None:
    raw = _request(_span(1, {"a": "b"}), _span(2, {})).SerializeToString()
    batch = screen_request(raw, "proj")
    assert (batch.payload, batch.spans, batch.rejected, batch.project) == (raw, 2, 0, "proj")
    assert convert_request(trace_service_pb2.ExportTraceServiceRequest.FromString(raw), "proj") == batch


def test_invalid_spans_are_rejected_one_by_one_and_the_rest_kept() -> None:
    raw = _request(_span(1, {}), _span(2, {}, trace_id=b"\x01" * 5), _span(3, {}, span_id=b""),
                   _span(4, {}, span_id=b"\x00" * 8), _span(5, {}, parent_span_id=b"\x01" * 3),
                   _span(6, {}, parent_span_id=(1).to_bytes(8, "big"))).SerializeToString()
    batch = screen_request(raw, "p")
    assert (batch.spans, batch.rejected) == (2, 4)
    assert batch.reject_reason == "rejected 4 of 6 spans: trace_id must be 16 non-zero bytes, got 5 bytes"
    kept = trace_service_pb2.ExportTraceServiceRequest.FromString(batch.payload)
    assert [s.name for s in kept.resource_spans[0].scope_spans[0].spans] == ["span 1", "span 6"]


def test_bytes_that_are_not_a_request_are_refused_whole() -> None:
    raw = _request(_span(1, {"k": "value"})).SerializeToString()
    bad_utf8 = raw.replace(b"value", b"v\xffl\xfee")
    with pytest.raises(ConversionError, match="not a valid ExportTraceServiceRequest"):
        screen_request(bad_utf8, "p")
    with pytest.raises(ConversionError):
        screen_request(raw[:-3], "p")


def test_oversized_strings_are_cut_with_a_marker_at_any_depth() -> None:
    big = "é" * 3000  # 6000 bytes
    span = _span(1, {"flat": big, "nested": [big, {"inner": big}], "small": "ok"}, name=big)
    span.events.add(name="e", attributes=[common_pb2.KeyValue(key="ev", value=any_value(big))])
    batch = screen_request(_request(span).SerializeToString(), "p", max_value_bytes=1024)
    cut = "é" * 512 + TRUNCATION_MARKER.format(size=6000)
    out = trace_service_pb2.ExportTraceServiceRequest.FromString(batch.payload).resource_spans[0].scope_spans[0].spans[0]
    attrs = {kv.key: kv.value for kv in out.attributes}
    assert out.name == cut and attrs["flat"].string_value == cut and attrs["small"].string_value == "ok"
    assert attrs["nested"].array_value.values[0].string_value == cut
    assert attrs["nested"].array_value.values[1].kvlist_value.values[0].value.string_value == cut
    assert out.events[0].attributes[0].value.string_value == cut
    # A request smaller than the limit cannot hold an oversized value: it is not even looked at.
    small = _request(_span(1, {"flat": "x" * 900})).SerializeToString()
    assert screen_request(small, "p", max_value_bytes=1024).payload == small


# -- what the engine stores -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """Rows of the spans below, by span name, as the SQL endpoint returns them."""
    kvlist = {"a": 1, "b": [True, 2.5]}
    spans = [
        _span(1, {"tracetape.run.id": "run-1", "tracetape.seq": 1, "tracetape.event.kind": "run",
                  "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                  "tracetape.run.tags": ["prod", "nightly"], "tracetape.run.outcome": "ok",
                  "tracetape.run.event_count": 3, "tracetape.run.error_count": 1, "tracetape.project": "proj-x",
                  "gen_ai.usage.input_tokens": 70, "gen_ai.usage.output_tokens": 20}, name="root"),
        _span(2, {"tracetape.run.id": "run-1", "tracetape.seq": 2, "tracetape.event.kind": "model_call",
                  "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                  "gen_ai.response.model": "gpt-4o-x", "gen_ai.usage.input_tokens": 70,
                  "gen_ai.usage.output_tokens": 20, "gen_ai.response.finish_reasons": ["stop", "length"],
                  "tracetape.blob.request": "ab" * 32, "tracetape.blob_size.request": 123,
                  "tracetape.project": "proj-x", "n.int": -42, "n.float": 0.25, "n.bool": False,
                  "n.bytes": b"\x00\xff", "n.ints": [1, 2, 3], "n.strs": ["x", "y\"z"], "n.kv": kvlist},
              name="chat", parent_span_id=(1).to_bytes(8, "big"), kind=trace_pb2.Span.SPAN_KIND_CLIENT,
              status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom")),
        _span(3, {"tracetape.run.id": "run-1", "tracetape.seq": 3, "gen_ai.operation.name": "execute_tool",
                  "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "call_1",
                  "gen_ai.response.finish_reasons": "stop", "tracetape.project": "proj-x"}, name="tool"),
        _span(4, {"http.method": "GET"}, name="foreign http", trace_id=b"\x02" * 16),
        _span(5, {"tracetape.event.kind": "no-such-kind"}, name="odd kind", trace_id=b"\x02" * 16),
        _span(6, {"tracetape.event.kind": 7, "gen_ai.operation.name": "embeddings"}, name="typed kind",
              trace_id=b"\x02" * 16),
    ]
    spans[1].events.add(time_unix_nano=1_700_000_000_000_000_500, name="exception",
                        attributes=[common_pb2.KeyValue(key="exception.type", value=any_value("ValueError")),
                                    common_pb2.KeyValue(key="exception.escaped", value=any_value(True))])
    collector = IngestCollector(tmp_path_factory.mktemp("convert") / "data").start()
    try:
        with collector.channel() as channel:
            request = _request(*spans, resource={"service.name": "svc", "k8s.pod": 7})
            other = request.resource_spans.add()  # a second resource, its spans in two scopes
            other.resource.attributes.add(key="service.name", value=any_value("svc-2"))
            for n in (7, 8):
                other.scope_spans.add().spans.append(_span(n, {}, name=f"scope {n}", trace_id=b"\x03" * 16))
            collector.export(channel, request.SerializeToString())
        client = collector.sql()
        try:
            result = client.query("SELECT * FROM spans FINAL")
            rows = {row["name"]: row for row in (dict(zip(result.column_names, r)) for r in result.result_rows)}
            result = client.query("SELECT * FROM runs FINAL")
            rows["runs"] = {"rows": [dict(zip(result.column_names, r)) for r in result.result_rows]}
        finally:
            client.close()
        yield rows
    finally:
        collector.stop()


def test_typed_columns_come_from_the_genai_attributes(stored: dict[str, dict[str, Any]]) -> None:
    chat = stored["chat"]
    assert (chat["project"], chat["run_id"], chat["seq"], chat["kind"], chat["span_kind"]) == \
        ("proj-x", "run-1", 2, "model_call", "CLIENT")
    assert (chat["trace_id"], chat["span_id"], chat["parent_span_id"]) == (TRACE.hex(), "0" * 15 + "2", "0" * 15 + "1")
    assert (chat["operation"], chat["provider"], chat["request_model"], chat["response_model"]) == \
        ("chat", "openai", "gpt-4o", "gpt-4o-x")
    assert (chat["input_tokens"], chat["output_tokens"], chat["finish_reasons"]) == (70, 20, ["stop", "length"])
    assert (chat["status_code"], chat["status_message"], chat["duration_ns"]) == ("ERROR", "boom", 250)
    assert (chat["blobs"], chat["blob_sizes"]) == ({"request": "ab" * 32}, {"request": 123})
    assert chat["service_name"] == "svc" and chat["resource"] == {"service.name": "svc", "k8s.pod": "7"}
    tool = stored["tool"]
    assert (tool["kind"], tool["tool_name"], tool["tool_call_id"], tool["finish_reasons"]) == \
        ("tool_call", "get_weather", "call_1", ["stop"])


def test_other_attributes_are_text_and_nothing_is_lost(stored: dict[str, dict[str, Any]]) -> None:
    attributes = stored["chat"]["attributes"]
    assert set(attributes) == {"gen_ai.system", "n.int", "n.float", "n.bool", "n.bytes", "n.ints", "n.strs", "n.kv"}
    assert (attributes["n.int"], attributes["n.float"], attributes["n.bool"], attributes["n.bytes"]) == \
        ("-42", "0.25", "false", "00ff")
    assert json.loads(attributes["n.ints"]) == [1, 2, 3] and json.loads(attributes["n.strs"]) == ["x", 'y"z']
    packed = base64.b64decode(json.loads(attributes["n.kv"])["otlp.kvlist.base64"])
    assert common_pb2.KeyValueList.FromString(packed) == any_value({"a": 1, "b": [True, 2.5]}).kvlist_value
    assert [(e["name"], e["attributes"]) for e in stored["chat"]["events"]] == \
        [("exception", {"exception.type": "ValueError", "exception.escaped": "true"})]


def test_each_span_keeps_the_resource_it_was_sent_with(stored: dict[str, dict[str, Any]]) -> None:
    assert [(stored[name]["service_name"], stored[name]["resource"]) for name in ("chat", "scope 7", "scope 8")] \
        == [("svc", {"service.name": "svc", "k8s.pod": "7"}), ("svc-2", {"service.name": "svc-2"}),
            ("svc-2", {"service.name": "svc-2"})]


@pytest.mark.parametrize("name, attributes", [
    ("foreign http", {"http.method": "GET"}),
    ("odd kind", {"tracetape.event.kind": "no-such-kind"}),
    ("typed kind", {"tracetape.event.kind": 7, "gen_ai.operation.name": "embeddings"}),
    ("tool", {"gen_ai.operation.name": "execute_tool"}),
])
def test_the_event_kind_is_the_one_kind_of_gives(stored: dict[str, dict[str, Any]], name: str,
                                                 attributes: dict[str, Any]) -> None:
    assert stored[name]["kind"] == kind_of(attributes).value


def test_a_span_without_a_run_id_belongs_to_its_trace_and_makes_no_run(stored: dict[str, dict[str, Any]]) -> None:
    assert stored["foreign http"]["run_id"] == (b"\x02" * 16).hex()
    assert stored["foreign http"]["project"] == "default"
    assert [run["run_id"] for run in stored["runs"]["rows"]] == ["run-1"]


def test_the_run_row_comes_from_the_root_span(stored: dict[str, dict[str, Any]]) -> None:
    run = stored["runs"]["rows"][0]
    assert (run["project"], run["agent"], run["tags"], run["outcome"], run["event_count"], run["error_count"]) == \
        ("proj-x", "planner", ["prod", "nightly"], "ok", 3, 1)
    assert (run["input_tokens"], run["output_tokens"], run["service_name"]) == (70, 20, "svc")
