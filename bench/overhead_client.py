"""One variant of bench/overhead.py, in a process of its own: the same calls bare, then instrumented.

Usage: ``overhead_client.py VARIANT BASE_URL [--collector HOST:PORT] [--calls N] [--rounds R]``
(``--collector``: where tracetape uploads payloads, a collector or bench/overhead_sink.py).
with VARIANT one of ``tracetape``, ``openllmetry``, ``openinference``, ``otel-genai``.

Spans go to a BatchSpanProcessor with an exporter that drops them, so what is
measured is the instrumentation's own work. tracetape also does its real
payload work: redacting, hashing and queueing every blob, uploaded by its
worker thread to the BlobService at ``--collector``. Prints one
JSON line: per metric (wall clock, CPU time of the calling thread, CPU time of
the whole process including the flush of background work), per scenario, the
bare and instrumented figure (µs per call) of every round.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from typing import Any, Callable

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

MESSAGES = [{"role": "system", "content": "You are a careful travel assistant. Use the tools when they help."}] + [
    {"role": "user" if i % 2 == 0 else "assistant",
     "content": f"Turn {i}: " + "a sentence about the trip that gives the model some context to work with. " * 3}
    for i in range(13)]
TOOLS = [{"type": "function", "function": {
    "name": f"tool_{name}", "description": f"Look up {name} for a city and a date range.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "start": {"type": "string", "description": "ISO date"},
        "days": {"type": "integer", "minimum": 1}}, "required": ["city"]}}}
    for name in ("weather", "hotels", "flights", "events", "restaurants")]


_SETTLE_S = 0.1


class DropExporter(SpanExporter):
    """Accepts every span and keeps none: export cost out of the picture."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Variant:
    """Turns one instrumentation on and off between measuring rounds, so drift hits bare and instrumented alike.

    Toggled by instrument()/uninstrument(), except OpenLLMetry, whose
    uninstrument() leaves wrappers behind: it is switched off with OTel's
    suppress-instrumentation context instead, which it checks first thing
    (so its "bare" still pays its wrapper's entry, in its favor).
    """

    def __init__(self, name: str, provider: TracerProvider, collector: str) -> None:
        self.name = name
        self._suppress: Any = None
        self._provider = provider
        if name == "tracetape":
            import tracetape

            active = tracetape.instrument(endpoint=f"http://{collector}")
            # Spans leave through the provider's own drop-exporter processor, as for every variant:
            # tracetape keeps its run stamping, not a second export queue.
            otlp = active.switch.delegates[1]
            active.switch.delegates = (active.switch.delegates[0],)
            otlp.shutdown()
            self._tracetape = active
            self.instrumentors = [type(i).__module__ for i in active.instrumentors]
            self._run: Any = None
            self.off()
            return
        if name == "openllmetry":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        elif name == "openinference":
            from openinference.instrumentation.openai import OpenAIInstrumentor  # type: ignore[no-redef]
        elif name == "otel-genai":
            from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor  # type: ignore[no-redef]
        else:
            raise SystemExit(f"unknown variant {name!r}")
        self._instrumentor = OpenAIInstrumentor()
        self.instrumentors = [OpenAIInstrumentor.__module__]
        if name == "openllmetry":
            self._instrumentor.instrument(tracer_provider=provider)
        self.off()

    def on(self) -> None:
        if self.name == "tracetape":
            import tracetape

            self._tracetape.patches.apply()
            for instrumentor in self._tracetape.instrumentors:
                instrumentor.instrument(tracer_provider=self._tracetape.provider)
            self._run = tracetape.run(agent="overhead-bench")
            self._run.__enter__()
        elif self.name == "openllmetry":
            self._suppress.__exit__(None, None, None)
        else:
            self._instrumentor.instrument(tracer_provider=self._provider)

    def close(self) -> None:
        """Undo the variant for good (tracetape: its instrumentation flushes and shuts down)."""
        if self.name == "tracetape":
            import tracetape

            self._tracetape.patches.apply()
            for instrumentor in self._tracetape.instrumentors:
                instrumentor.instrument(tracer_provider=self._tracetape.provider)
            tracetape.uninstrument()
        elif self.name == "openllmetry":
            self._suppress.__exit__(None, None, None)

    def flush(self) -> None:
        """Wait for what the calls so far left to do in the background (spans, payload uploads)."""
        if self.name == "tracetape":
            import tracetape

            tracetape.flush()
        self._provider.force_flush()

    def off(self) -> None:
        if self.name == "tracetape":
            import tracetape

            if self._run is not None:
                self._run.__exit__(None, None, None)
            # Let the payloads of this round reach the collector, and the collector store them, before
            # the next bare round: otherwise that work lands on the bare round and flatters tracetape.
            tracetape.flush()
            time.sleep(_SETTLE_S)
            for instrumentor in self._tracetape.instrumentors:
                instrumentor.uninstrument()
            self._tracetape.patches.undo()
        elif self.name == "openllmetry":
            from opentelemetry.instrumentation.utils import suppress_instrumentation

            self._suppress = suppress_instrumentation()
            self._suppress.__enter__()
        else:
            self._instrumentor.uninstrument()


def scenarios(client: Any, aclient: Any, loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], Any]]:
    def plain() -> None:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)

    async def plain_async() -> None:
        await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS)

    def streamed() -> None:
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=TOOLS, stream=True,
                                                stream_options={"include_usage": True}):
            pass

    return {"chat": plain, "async": lambda: loop.run_until_complete(plain_async()), "stream": streamed}


def _block(run: Callable[[], Any], calls: int, flush: Callable[[], Any]) -> tuple[float, float, float]:
    """One block of *calls* calls: (median wall µs, median thread CPU µs, process CPU µs per call).

    The process CPU covers every thread of this process (span processors,
    payload uploads) over the calls and the flush after them, so work an
    instrumentation moves off the calling thread is still counted.
    """
    gc.collect()
    walls, cpus = [], []
    process = time.process_time()
    for _ in range(calls):
        wall, cpu = time.perf_counter(), time.thread_time()
        run()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    flush()
    process = (time.process_time() - process) / calls
    return statistics.median(walls) * 1e6, statistics.median(cpus) * 1e6, process * 1e6


METRICS = ("wall", "cpu", "process")


def _measure(scenarios: dict[str, Callable[[], Any]], variant: Variant, calls: int,
             rounds: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per metric, scenario and state ("bare", "instrumented"): one figure per round, in µs per call.

    A round measures each scenario bare and instrumented back to back, so the two blocks of a pair
    lie a fraction of a second apart and a burst of load elsewhere on the machine hits both, or
    neither; the order within the pair alternates from round to round, so drift favors neither.
    """
    for run in scenarios.values():
        for _ in range(max(10, calls // 2)):  # warm up: connections, caches, lazy imports
            run()
    series = {metric: {name: {"bare": [], "instrumented": []} for name in scenarios} for metric in METRICS}
    for round_ in range(rounds):
        for name, run in scenarios.items():
            for state in (("bare", "instrumented") if round_ % 2 == 0 else ("instrumented", "bare")):
                if state == "instrumented":
                    variant.on()
                    for _ in range(3):  # the first calls after switching pay one-off costs
                        run()
                    variant.flush()
                for metric, value in zip(METRICS, _block(run, calls, variant.flush)):
                    series[metric][name][state].append(value)
                if state == "instrumented":
                    variant.off()
    return series


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    parser.add_argument("base_url")
    parser.add_argument("--collector", default="")
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    import openai

    loop = asyncio.new_event_loop()
    with openai.OpenAI(base_url=args.base_url, api_key="sk-bench", max_retries=0) as client:
        aclient = openai.AsyncOpenAI(base_url=args.base_url, api_key="sk-bench", max_retries=0)
        variant = Variant(args.variant, provider, args.collector)
        series = _measure(scenarios(client, aclient, loop), variant, args.calls, args.rounds)
        loop.run_until_complete(aclient.close())
    loop.close()
    variant.close()
    print(json.dumps({"variant": args.variant, "instrumentors": variant.instrumentors, "series": series}), flush=True)


if __name__ == "__main__":
    main()
