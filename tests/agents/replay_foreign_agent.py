"""An agent traced by other instrumentations only (no tracetape in the process): OpenInference's
openai instrumentor and tool/agent decorators, and OpenLLMetry's openai instrumentor, exporting plain
OTLP to the collector. Prints its trace id, which is the run id such a trace is stored under."""

from __future__ import annotations

import json
import os

import openai
from openinference.instrumentation import OITracer, TraceConfig
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceOpenAI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryOpenAI
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "foreign-agent"}))
exporter = OTLPSpanExporter(endpoint=os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].split("//")[-1], insecure=True)
provider.add_span_processor(SimpleSpanProcessor(exporter))
OpenInferenceOpenAI().instrument(tracer_provider=provider)
OpenLLMetryOpenAI().instrument(tracer_provider=provider)
tracer = OITracer(provider.get_tracer("foreign-agent"), config=TraceConfig())
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@tracer.tool
def get_weather(city: str) -> dict:
    return {"city": city, "sky": "cloudy"}


@tracer.agent
def weather_agent(question: str) -> str:
    with openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=0) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}],
                                               tools=TOOLS)
        call = reply.choices[0].message.tool_calls[0]
        return json.dumps(get_weather(**json.loads(call.function.arguments)))


def main() -> None:
    with tracer.start_as_current_span("session") as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        answer = weather_agent("What's the weather in Tokyo?")
    provider.shutdown()
    print(json.dumps({"trace_id": trace_id, "answer": answer}), flush=True)


if __name__ == "__main__":
    main()
