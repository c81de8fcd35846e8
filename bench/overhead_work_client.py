"""One measured process of bench/overhead_work.py: CALLS calls of one scenario, bare or instrumented.

Usage: ``overhead_work_client.py SCENARIO VARIANT CALLS [--collector HOST:PORT]``, VARIANT one of
bench/overhead_client.py's or ``bare`` (no instrumentation imported at all).

The provider is the local OpenAI mock's own logic (the ``MockOpenAI`` of
bench/overhead_server.py, same answer) answering through an in-process
``httpx2.MockTransport``: no socket, no server process, so the count holds the
client's work only. Each variant's spans go to a drop exporter and tracetape's
payloads to the BlobService at ``--collector``, as in bench/overhead_client.py.
Meant to run under valgrind; prints nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any, Callable

import httpx2
import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from overhead_client import DropExporter, Variant, scenarios
from overhead_server import ANSWER
from tracetape.demo.mock_openai import MockOpenAI

WARM_UP = 5  # calls before the variant is switched on: connections, caches, lazy imports


def _transport() -> tuple[httpx2.MockTransport, httpx2.MockTransport]:
    mock = MockOpenAI(lambda request: {"content": ANSWER, "tool_calls": []})

    def answer(request: httpx2.Request) -> httpx2.Response:
        reply = mock.reply(request.method, request.url.path, json.loads(request.content))
        if reply.streaming:
            return httpx2.Response(reply.status, headers={"content-type": "text/event-stream"},
                                   stream=_Events(reply.events))
        return httpx2.Response(reply.status, json=reply.payload)

    return httpx2.MockTransport(answer), httpx2.MockTransport(answer)


class _Events(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A streamed body, one read per event, as a socket delivers a paced stream."""

    def __init__(self, events: Any) -> None:
        self._events = list(events)

    def __iter__(self) -> Any:
        yield from self._events

    async def __aiter__(self) -> Any:
        for event in self._events:
            yield event


def _scenario(name: str) -> Callable[[], Any]:
    sync_transport, async_transport = _transport()
    client = openai.OpenAI(base_url="http://mock/v1", api_key="sk-bench", max_retries=0,
                           http_client=httpx2.Client(transport=sync_transport))
    aclient = openai.AsyncOpenAI(base_url="http://mock/v1", api_key="sk-bench", max_retries=0,
                                 http_client=httpx2.AsyncClient(transport=async_transport))
    return scenarios(client, aclient, asyncio.new_event_loop())[name]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=("chat", "async", "stream"))
    parser.add_argument("variant")
    parser.add_argument("calls", type=int)
    parser.add_argument("--collector", default="")
    args = parser.parse_args()

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    run = _scenario(args.scenario)
    for _ in range(WARM_UP):
        run()
    variant = Variant(args.variant, provider, args.collector) if args.variant != "bare" else None
    if variant is not None:
        variant.on()
        for _ in range(3):  # the first instrumented calls pay one-off costs
            run()
        variant.flush()
    for _ in range(args.calls):
        run()
    if variant is not None:
        variant.flush()


if __name__ == "__main__":
    main()
