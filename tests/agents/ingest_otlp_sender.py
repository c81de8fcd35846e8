"""Steady span load through the official OTLP/gRPC exporter, recording what the collector acknowledged.

``python ingest_otlp_sender.py ENDPOINT ACKED_FILE`` creates spans in a loop (an
``invoke_agent`` root per run of 20 spans, chat and tool spans with ~1 KB payload
previews) and exports them with ``BatchSpanProcessor`` + ``OTLPSpanExporter``. The
exporter is wrapped so that every batch it reports exported (the collector answered
OK) appends its span ids to ACKED_FILE, one per line, flushed at once: after the
collector is killed, that file is exactly what was acknowledged. SIGTERM stops the
loop and flushes the provider.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Sequence

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

SPANS_PER_RUN = 20


class _Recording(SpanExporter):
    def __init__(self, inner: SpanExporter, path: str) -> None:
        self._inner = inner
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in shutdown()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            with self._lock:
                self._file.write("".join(f"{span.context.span_id:016x}\n" for span in spans))
                self._file.flush()
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()
        self._file.close()


def main(endpoint: str, acked_path: str) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    exporter = _Recording(OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=30), acked_path)
    provider = TracerProvider(resource=Resource.create({"service.name": "ingest-sender"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=20_000, max_export_batch_size=200,
                                                   schedule_delay_millis=50))
    tracer = provider.get_tracer("ingest-sender")
    preview = "x" * 1000
    run = 0
    while not stop.is_set():
        run += 1
        run_id = f"{os.getpid():08x}{run:024x}"
        with tracer.start_as_current_span("invoke_agent bench", attributes={
                "tracetape.run.id": run_id, "tracetape.seq": 1, "tracetape.event.kind": "run",
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench",
                "tracetape.run.event_count": SPANS_PER_RUN}):
            for seq in range(2, SPANS_PER_RUN + 1):
                kind = ("chat", "model_call") if seq % 2 else ("execute_tool", "tool_call")
                with tracer.start_as_current_span(f"{kind[0]} step", attributes={
                        "tracetape.run.id": run_id, "tracetape.seq": seq, "tracetape.event.kind": kind[1],
                        "gen_ai.operation.name": kind[0], "gen_ai.input.messages": preview}):
                    pass
        stop.wait(0.01)
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
