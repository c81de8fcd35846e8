"""Realistic OTLP export requests for the ingest benchmark, made fast enough not to be the bottleneck.

A run is ~50 spans shaped like tracetape's own instrumentation makes them: one
``invoke_agent`` root, ``chat`` spans with ~1 KB ``gen_ai.input.messages`` /
``gen_ai.output.messages`` and blob hashes, ``execute_tool`` spans with ~300 B
arguments/results. The spans of one run are serialized once as a template;
every new run is that template with its trace id, run id and the random half
of every span id replaced by ``bytes.replace`` (same lengths, so the protobuf
framing stays valid). That keeps the sender at a few µs per span.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = ["RunTemplate", "SPANS_PER_RUN", "encode_request"]

SPANS_PER_RUN = 50
# Placeholders: bytes that occur nowhere else in the template (0xF5.. is never valid UTF-8).
_TRACE = b"\xf5\xf6\xf7\xf8" * 4
_SPAN_TAIL = b"\xf9\xfa\xfb\xfc"
_RUN = "f" * 31 + "e"


def _kv(key: str, value: object) -> common_pb2.KeyValue:
    kv = common_pb2.KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, list):
        kv.value.array_value.values.extend(common_pb2.AnyValue(string_value=str(v)) for v in value)
    else:
        kv.value.string_value = str(value)
    return kv


def _blob_attrs(role: str, data: bytes) -> list[common_pb2.KeyValue]:
    return [_kv(f"tracetape.blob.{role}", hashlib.sha256(data).hexdigest()),
            _kv(f"tracetape.blob_size.{role}", len(data))]


def _messages(turn: int, size: int) -> str:
    text = (f"turn {turn}: the weather in Paris is mild, consider the forecast for the next days. " * 40)
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text[:size]}]}])


class RunTemplate:
    """One run's spans, serialized once; :meth:`spans_bytes` stamps fresh ids on a copy."""

    def __init__(self, project: str = "default") -> None:
        now = time.time_ns()
        spans: list[trace_pb2.Span] = []
        common = [_kv("tracetape.run.id", _RUN), _kv("tracetape.project", project)]
        root = trace_pb2.Span(name="invoke_agent planner", kind=trace_pb2.Span.SPAN_KIND_INTERNAL)
        root.attributes.extend(common + [
            _kv("tracetape.seq", 1), _kv("tracetape.task", "0"), _kv("tracetape.event.kind", "run"),
            _kv("gen_ai.operation.name", "invoke_agent"), _kv("gen_ai.agent.name", "planner"),
            _kv("tracetape.run.tags", ["bench", "prod"]), _kv("tracetape.run.outcome", "ok"),
            _kv("tracetape.run.event_count", SPANS_PER_RUN), _kv("tracetape.run.error_count", 0),
            _kv("gen_ai.usage.input_tokens", 24 * 350), _kv("gen_ai.usage.output_tokens", 24 * 120),
        ])
        spans.append(root)
        for i in range(1, SPANS_PER_RUN):
            seq = [_kv("tracetape.seq", i + 1), _kv("tracetape.task", "0")]
            if i % 2:
                request, response = _messages(i, 1000).encode(), _messages(-i, 1000).encode()
                span = trace_pb2.Span(name="chat gpt-4o", kind=trace_pb2.Span.SPAN_KIND_CLIENT)
                span.attributes.extend(common + seq + [
                    _kv("tracetape.event.kind", "model_call"), _kv("gen_ai.operation.name", "chat"),
                    _kv("gen_ai.provider.name", "openai"), _kv("gen_ai.request.model", "gpt-4o"),
                    _kv("gen_ai.request.temperature", 0.2), _kv("gen_ai.input.messages", request.decode()),
                    *_blob_attrs("request", request), *_blob_attrs("response", response),
                    _kv("http.response.status_code", 200), _kv("gen_ai.response.id", f"chatcmpl-{i:08d}"),
                    _kv("gen_ai.response.model", "gpt-4o-2024-08-06"),
                    _kv("gen_ai.response.finish_reasons", ["tool_calls"]),
                    _kv("gen_ai.output.messages", response.decode()),
                    _kv("gen_ai.usage.input_tokens", 350), _kv("gen_ai.usage.output_tokens", 120),
                ])
            else:
                args = json.dumps({"city": "Paris", "days": i, "units": "metric", "note": "x" * 240}).encode()
                result = json.dumps({"temp_c": 18, "sky": "clear", "detail": "y" * 250}).encode()
                span = trace_pb2.Span(name="execute_tool get_weather", kind=trace_pb2.Span.SPAN_KIND_INTERNAL)
                span.attributes.extend(common + seq + [
                    _kv("tracetape.event.kind", "tool_call"), _kv("gen_ai.operation.name", "execute_tool"),
                    _kv("gen_ai.tool.name", "get_weather"), _kv("gen_ai.tool.call.id", f"call_{i:06d}"),
                    *_blob_attrs("request", args), _kv("gen_ai.tool.call.arguments", args.decode()),
                    *_blob_attrs("response", result), _kv("gen_ai.tool.call.result", result.decode()),
                ])
            span.parent_span_id = (0).to_bytes(4, "big") + _SPAN_TAIL
            spans.append(span)
        for i, span in enumerate(spans):
            span.trace_id = _TRACE
            span.span_id = i.to_bytes(4, "big") + _SPAN_TAIL
            span.start_time_unix_nano = now + i * 1_000_000
            span.end_time_unix_nano = now + i * 1_000_000 + 500_000
        # Repeated field 2 of ScopeSpans: each span as its own length-delimited entry.
        template = b"".join(trace_pb2.ScopeSpans(spans=[s]).SerializeToString() for s in spans)
        # Split once at every placeholder; a run is then one join of the pieces and its fresh ids.
        pieces = re.split(b"(" + b"|".join(re.escape(p) for p in (_TRACE, _SPAN_TAIL, _RUN.encode())) + b")",
                          template)
        self._fixed = pieces[0::2]
        self._slots = [{_TRACE: 0, _SPAN_TAIL: 1, _RUN.encode(): 2}[p] for p in pieces[1::2]]

    def spans_bytes(self) -> tuple[str, bytes]:
        """A fresh run: (run id, its spans as ScopeSpans field-2 entries)."""
        fresh = os.urandom(36)
        run_id = fresh[20:].hex()
        values = (fresh[:16], fresh[16:20], run_id.encode())
        out = [self._fixed[0]]
        for slot, fixed in zip(self._slots, self._fixed[1:]):
            out.append(values[slot])
            out.append(fixed)
        return run_id, b"".join(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_RESOURCE = trace_pb2.ResourceSpans(resource={"attributes": [_kv("service.name", "bench-agent")]}) \
    .SerializeToString()
_SCOPE = _field(1, common_pb2.InstrumentationScope(name="tracetape", version="0.1.0").SerializeToString())


def encode_request(runs: list[bytes]) -> bytes:
    """A serialized ``ExportTraceServiceRequest``: one resource, one scope, the spans of *runs*."""
    scope_spans = _SCOPE + b"".join(runs)
    return _field(1, _RESOURCE + _field(2, scope_spans))


def decode_check(raw: bytes) -> int:
    """Span count of a request (used once at startup to prove the framing is right)."""
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
