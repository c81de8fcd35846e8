"""One variant of bench/overhead.py, in a process of its own: the same calls, bare and instrumented in turn.

Usage: ``overhead_client.py VARIANT BASE_URL [--collector HOST:PORT] [--pairs N]``
(``--collector``: where tracetape uploads payloads, a collector or bench/overhead_sink.py),
with VARIANT one of ``tracetape``, ``openllmetry``, ``openinference``, ``otel-genai``.

Spans go to a BatchSpanProcessor with an exporter that drops them, so what is
measured is the instrumentation's own work. tracetape also does its real
payload work: redacting, hashing and queueing every blob, uploaded by its
worker thread to the BlobService at ``--collector``. Prints one JSON line: per
scenario, the wall clock and the CPU time of the calling thread of every bare
and every instrumented call (µs, paired by index), and the CPU time background
threads spent per instrumented call.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
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


class DropExporter(SpanExporter):
    """Accepts every span and keeps none: export cost out of the picture."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


_NOT_PATCHED = ("tracetape", "opentelemetry", "openinference", "wrapt")  # the instrumentations' own code
_ABSENT = object()


def _callables() -> dict[tuple[int, str], tuple[Any, Any]]:
    """Every callable or descriptor attribute of every loaded module and of the classes they define.

    Keyed by (id of the owner, name): the value and its owner. The instrumentations' own modules are
    left out, so a switch never pulls a function from under their background threads.
    """
    found: dict[tuple[int, str], tuple[Any, Any]] = {}
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if not isinstance(name, str) or name.startswith(_NOT_PATCHED):
            continue
        owners = [module] + [value for value in list(vars(module).values())
                             if isinstance(value, type) and getattr(value, "__module__", None) == name]
        for owner in owners:
            for attribute, value in list(vars(owner).items()):
                if callable(value) or hasattr(type(value), "__get__"):
                    found[(id(owner), attribute)] = (owner, value)
    return found


def _patch(value: Any) -> bool:
    """Whether an attribute that appeared during ``instrument()`` is a patch, not something loaded lazily.

    Wrappers put on a method a class inherits are new on that class: wrapt's (and most others) keep the
    wrapped function as ``__wrapped__``; tracetape's are its own functions.
    """
    return hasattr(value, "__wrapped__") or str(getattr(value, "__module__", "")).startswith(_NOT_PATCHED)


class Variant:
    """One instrumentation, switched on and off between calls by swapping exactly what it patched.

    ``instrument()`` runs once, after the calls were made bare (so what they
    import is loaded); what it changed (every callable or descriptor attribute
    of a loaded module or class, found by comparing them before and after) is
    then swapped in and out with ``setattr``: microseconds, no
    re-instrumenting, no first-call costs, the same way for every variant. So
    bare and instrumented calls can alternate call by call, and a change of
    machine speed hits both alike (on this shared machine the same work runs
    up to 1.5x slower for stretches of a few hundred ms).
    """

    def __init__(self, name: str, provider: TracerProvider, collector: str) -> None:
        self.name = name
        self._provider = provider
        before = _callables()
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
            self._run = tracetape.run(agent="overhead-bench")
            self._run.__enter__()
        else:
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
            self._instrumentor.instrument(tracer_provider=provider)
        after = _callables()
        self._swaps: list[tuple[Any, str, Any, Any]] = []
        owners = {owner_id for owner_id, _ in before}  # modules imported by instrument() are its own
        for (owner_id, attribute), (owner, value) in after.items():
            original = before.get((owner_id, attribute), (owner, _ABSENT))[1]
            if owner_id in owners and original is not value and (original is not _ABSENT or _patch(value)):
                self._swaps.append((owner, attribute, original, value))
        self.patched = len(self._swaps)
        self._on = True
        self.off()

    def on(self) -> None:
        if self._on:
            return
        self._on = True
        for owner, attribute, _, patched in self._swaps:
            setattr(owner, attribute, patched)

    def off(self) -> None:
        if not self._on:
            return
        self._on = False
        for owner, attribute, original, _ in self._swaps:
            if original is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)

    def flush(self) -> None:
        """Wait for what the calls so far left to do in the background (spans, payload uploads)."""
        if self.name == "tracetape":
            import tracetape

            tracetape.flush()
        self._provider.force_flush()

    def close(self) -> None:
        """Undo the variant for good (tracetape: its run ends, its instrumentation flushes and shuts down)."""
        self.on()
        if self.name == "tracetape":
            import tracetape

            self._run.__exit__(None, None, None)
            tracetape.uninstrument()
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


def _timed(run: Callable[[], Any]) -> tuple[float, float]:
    """One call: (wall µs, CPU µs of the calling thread)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    run()
    return (time.perf_counter() - wall) * 1e6, (time.thread_time() - cpu) * 1e6


def _background() -> float:
    """CPU seconds spent so far by every thread but this one: span processors, payload uploads."""
    return time.process_time() - time.thread_time()


WARM_UP = 10  # calls per state before measuring: connections, caches, lazy imports


def _measure(scenarios: dict[str, Callable[[], Any]], variant: Variant, pairs: int) -> dict[str, Any]:
    """Per scenario: the wall and thread-CPU µs of *pairs* bare and instrumented calls, paired by index, and
    the background CPU µs per instrumented call.

    Bare and instrumented calls alternate call by call (bare first in even pairs, instrumented first
    in odd ones), so the two calls of a pair lie milliseconds apart and a change of machine speed
    hits both. Background threads do their work at their own pace (tracetape's uploads, the span
    processor's exports) and are flushed at the end; all the CPU they spent over the alternation is
    put on the instrumented calls, since bare calls leave them nothing to do.
    """
    result: dict[str, Any] = {}
    for name, run in scenarios.items():
        for _ in range(WARM_UP):
            run()
        variant.on()
        for _ in range(WARM_UP):
            run()
        variant.flush()
        variant.off()
        gc.collect()
        series: dict[str, dict[str, list[float]]] = {m: {"bare": [], "instrumented": []} for m in ("wall", "cpu")}
        background = _background()
        for pair in range(pairs):
            for state in (("bare", "instrumented") if pair % 2 == 0 else ("instrumented", "bare")):
                variant.on() if state == "instrumented" else variant.off()
                wall, cpu = _timed(run)
                series["wall"][state].append(wall)
                series["cpu"][state].append(cpu)
        variant.flush()
        variant.off()
        result[name] = {**series, "background": (_background() - background) * 1e6 / pairs}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    parser.add_argument("base_url")
    parser.add_argument("--collector", default="")
    parser.add_argument("--pairs", type=int, default=120, help="bare/instrumented call pairs per scenario")
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    import openai

    loop = asyncio.new_event_loop()
    with openai.OpenAI(base_url=args.base_url, api_key="sk-bench", max_retries=0) as client:
        aclient = openai.AsyncOpenAI(base_url=args.base_url, api_key="sk-bench", max_retries=0)
        runs = scenarios(client, aclient, loop)
        for run in runs.values():
            run()  # imports what the call needs (openai loads its resources lazily) before the variant patches
        variant = Variant(args.variant, provider, args.collector)
        series = _measure(runs, variant, args.pairs)
        loop.run_until_complete(aclient.close())
    loop.close()
    variant.close()
    print(json.dumps({"variant": args.variant, "instrumentors": variant.instrumentors, "patched": variant.patched,
                      "series": series}), flush=True)


if __name__ == "__main__":
    main()
