"""Fixtures shared by the model-client tests (openai, anthropic, streams).

Layers: spans go to an in-memory exporter on the process's SDK tracer
provider; payload bytes go to a :class:`BlobSink` in place of the collector
upload, so a test can read back exactly what was recorded; the instrumentors
are applied for the test and removed after. :class:`TapePlayer` is a minimal
replay player holding the seam contract: it serves the recorded outcome of
each call, in order, and remembers what it was asked.

Import the fixtures into a test module: ``from model_support import *``.
"""

from __future__ import annotations

import gc
import hashlib
import json
from typing import Any, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracetape.demo.mock_anthropic import MockAnthropic
from tracetape.instrumentation import _payload, seam
from tracetape.instrumentation._stream import split_events
from tracetape.instrumentation.anthropic import AnthropicInstrumentor
from tracetape.instrumentation.openai import OpenAIInstrumentor
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

__all__ = ["BlobSink", "TapePlayer", "Recording", "recording", "mock_anthropic", "model_spans", "stored"]

_exporter = InMemorySpanExporter()


def _provider() -> TracerProvider:
    """The process's SDK provider, with this module's exporter attached once."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_model_tests_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        provider._model_tests_exporter = True  # type: ignore[attr-defined]
    return provider


class BlobSink:
    """Stands in for the collector's blob store: keeps every payload by its SHA-256."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = bytes(data)
        self.content_types[digest] = content_type
        return digest


class Recording:
    """What one test recorded: finished spans and payload bytes."""

    def __init__(self, sink: BlobSink) -> None:
        self.sink = sink

    def spans(self) -> list[ReadableSpan]:
        return list(_exporter.get_finished_spans())

    def calls(self) -> list[ReadableSpan]:
        """tracetape's model-call spans, in the order they ended."""
        return model_spans(self.spans())

    def blob(self, span: ReadableSpan, role: str) -> bytes:
        digest = span.attributes[A.blob_attr(role)]
        data = self.sink.blobs[digest]
        assert len(data) == span.attributes[A.blob_size_attr(role)]
        return data

    def chunks(self, span: ReadableSpan) -> list[tuple[float, bytes]]:
        """A stream's chunks as recorded: each SSE event of the response with its offset (ms)."""
        events, rest = split_events(self.blob(span, seam.RESPONSE))
        offsets = json.loads(span.attributes["tracetape.stream.offsets_ms"])
        assert len(offsets) == len(events) + bool(rest)
        return list(zip(offsets, events + [rest] if rest else events))

    def served(self, span: ReadableSpan, **extra: str) -> seam.Served:
        """The span as a player would serve it from the store (attributes as stored text)."""
        attributes = stored(span.attributes) | extra
        error_type = attributes.get(A.ERROR_TYPE, "")
        message = span.status.description or ""
        if error_type and message.startswith(f"{error_type}: "):
            message = message[len(error_type) + 2:]
        response = self.blob(span, seam.RESPONSE) if A.blob_attr(seam.RESPONSE) in attributes else b""
        return seam.Served(response=response, error_type=error_type, error_message=message, attributes=attributes)


def stored(attributes: Any) -> dict[str, str]:
    """Attributes as the collector stores them: strings, everything else as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(list(v) if isinstance(v, tuple) else v)
            for k, v in dict(attributes).items()}


def model_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get(A.EVENT_KIND) == EventKind.MODEL_CALL.value]


class TapePlayer:
    """Serves recorded outcomes in order; anything asked beyond them fails the test."""

    def __init__(self, served: list[seam.Served]) -> None:
        self._served = list(served)
        self.asked: list[tuple[EventKind, str, bytes]] = []

    def serve(self, kind: EventKind, name: str, request: bytes) -> seam.Served | None:
        self.asked.append((kind, name, request))
        assert self._served, f"nothing recorded left for {name}"
        return self._served.pop(0)

    def __enter__(self) -> "TapePlayer":
        seam.install(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        seam.uninstall(self)


@pytest.fixture
def recording() -> Iterator[Recording]:
    """Both SDKs instrumented, spans and payloads captured for the test."""
    _provider()
    _exporter.clear()
    sink = BlobSink()
    previous = _payload._uploader, _payload._preview_bytes
    _payload.configure(sink, previous[1])  # type: ignore[arg-type]
    instrumentors = [i for i in (OpenAIInstrumentor(), AnthropicInstrumentor()) if not i.is_instrumented_by_opentelemetry]
    for instrumentor in instrumentors:
        instrumentor.instrument()
    # What existed before the test is set aside, so the collections the stream tests force only look at
    # what the test made: a full collection of a process with both SDKs loaded takes a third of a second.
    gc.freeze()
    try:
        yield Recording(sink)
    finally:
        gc.unfreeze()
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        _payload.configure(*previous)  # type: ignore[arg-type]
        _exporter.clear()


@pytest.fixture
def mock_anthropic() -> Iterator[MockAnthropic]:
    with MockAnthropic() as mock:
        yield mock
