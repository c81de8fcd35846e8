"""tracetape's OpenAI instrumentation next to another OpenAI instrumentation, in a process of its own.

Usage: ``model_alongside.py PACKAGE`` where PACKAGE is the module of the other
instrumentor (OpenLLMetry, OpenInference, the official OpenTelemetry one).
Those instrumentors do not all undo themselves cleanly, so each gets a fresh
process. Makes a plain and a streamed chat call against ``OPENAI_BASE_URL`` and
prints one JSON line: every finished span with its scope, kind and parent.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from tracetape.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # their import-time deprecation noise is not under test
        importlib.import_module(sys.argv[1]).OpenAIInstrumentor().instrument()

    import openai

    messages = [{"role": "user", "content": "What's the weather in Oslo?"}]
    with openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=messages)
        for _ in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
            pass
    spans = [{"name": s.name, "scope": s.instrumentation_scope.name, "span_id": s.context.span_id,
              "parent": s.parent.span_id if s.parent else None,
              "kind": (s.attributes or {}).get("tracetape.event.kind"),
              "blobs": sorted(k for k in (s.attributes or {}) if k.startswith("tracetape.blob."))}
             for s in exporter.get_finished_spans()]
    print(json.dumps({"spans": spans}), flush=True)


if __name__ == "__main__":
    main()
