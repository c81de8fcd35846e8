"""Under instrument(), model-call endings run in batches off the app's thread; nothing that reads them misses one."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = r"""
import json, os, sys, threading, time
import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace import SpanProcessor

class EndedOn(SpanProcessor):
    # The thread each model-call span ends on.
    def __init__(self):
        self.threads = []
    def on_end(self, span):
        if span.attributes.get("tracetape.event.kind") == "model_call":
            self.threads.append(threading.current_thread().name)

provider = TracerProvider()
trace.set_tracer_provider(provider)
memory, ended_on = InMemorySpanExporter(), EndedOn()
provider.add_span_processor(SimpleSpanProcessor(memory))
provider.add_span_processor(ended_on)

import tracetape
from tracetape.instrumentation import _endings
_endings.INTERVAL_S = float(sys.argv[2])
_endings.MAX_PENDING = int(sys.argv[3])
tracetape.instrument("http://127.0.0.1:9")
client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)

def calls():
    return [s for s in memory.get_finished_spans() if s.attributes.get("tracetape.event.kind") == "model_call"]

def ask(n):
    for i in range(n):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"question {i}"}])

result = {}
with tracetape.run(agent="batched") as run:
    ask(3)
    result["ended_before_flush"] = len(calls())
    if sys.argv[4] == "wait":  # for the worker, a bounded while
        for _ in range(500):
            if len(calls()) == 3:
                break
            time.sleep(0.01)
        result["ended_by_worker"] = len(calls())
    for _ in client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "s"}],
                                            stream=True, stream_options={"include_usage": True}):
        pass
    if sys.argv[4] == "fork":
        pid = os.fork()
        if pid == 0:  # the parent's pending endings are not the child's to run
            provider.force_flush()
            print(json.dumps({"child_calls": len(calls())}), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
result["ended_in_run"] = len(calls())
tokens = [s for s in memory.get_finished_spans() if s.attributes.get("tracetape.event.kind") == "run"][0].attributes
result["run_tokens"] = [tokens["gen_ai.usage.input_tokens"], tokens["gen_ai.usage.output_tokens"]]
result["call_tokens"] = [sum(s.attributes["gen_ai.usage.input_tokens"] for s in calls()),
                         sum(s.attributes["gen_ai.usage.output_tokens"] for s in calls())]
result["previews"] = all("gen_ai.input.messages" in s.attributes and "tracetape.blob.response" in s.attributes
                         for s in calls())
ask(2)
tracetape.flush()
result["after_flush"] = len(calls())
result["threads"] = list(ended_on.threads)
ask(1)
tracetape.uninstrument()
result["after_uninstrument"] = len(calls())
print(json.dumps(result), flush=True)
"""


def _run(mock_openai, interval: float, max_pending: int, mode: str = "") -> list[dict]:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mock_openai.base_url, str(interval), str(max_pending),
                           mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_ended_calls_wait_for_their_batch_and_everything_that_reads_them_finds_them(mock_openai):
    """Spans end on the endings thread, or on the thread that asks for them (run end, flush, uninstrument)."""
    (result,) = _run(mock_openai, 60.0, 1024)
    assert result["ended_before_flush"] == 0  # a long interval: nothing ended yet
    assert result["ended_in_run"] == 4  # the run's end ran its calls' endings first
    assert result["run_tokens"] == result["call_tokens"] and result["run_tokens"][0] > 0
    assert result["previews"]
    assert result["after_flush"] == 6
    assert result["after_uninstrument"] == 7
    assert result["threads"] == ["MainThread"] * 6


def test_the_endings_worker_runs_batches_on_its_own_thread(mock_openai):
    (result,) = _run(mock_openai, 0.05, 1024, "wait")
    assert result["ended_by_worker"] == 3  # while the app thread did nothing to end them
    assert result["after_flush"] == 6 and result["after_uninstrument"] == 7
    assert result["threads"][:3] == ["tracetape-endings"] * 3


def test_memory_stays_bounded_when_endings_pile_up(mock_openai):
    """With MAX_PENDING endings waiting, a call that ends runs its ending itself, on its own thread, at once."""
    (result,) = _run(mock_openai, 60.0, 2)
    assert result["ended_before_flush"] == 1  # the third call found two waiting
    assert result["after_flush"] == 6 and result["run_tokens"] == result["call_tokens"]


def test_a_forked_child_does_not_end_the_parents_calls(mock_openai):
    child, parent = _run(mock_openai, 60.0, 1024, "fork")
    assert child == {"child_calls": 0}
    assert parent["ended_in_run"] == 4 and parent["after_flush"] == 6
