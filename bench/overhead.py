"""Added time per OpenAI call: tracetape against OpenLLMetry, OpenInference and the official OTel instrumentation.

    python bench/overhead.py [--calls 20] [--rounds 6] [--passes 3] [--variants tracetape,...]
                             [--blobs sink|collector|dead]

Against the local mock provider (its own process): a chat call with 14
messages and 5 tools, the same call on the async client, and the same call
streamed (28 events). Each instrumentation runs in a process of its own
(bench/overhead_client.py), which measures each scenario bare and
instrumented in back-to-back blocks (order swapped every round); every
variant's process runs several times, the variants taking turns, so a burst
of load on this shared 2-core machine hits a pass of several variants rather
than all of one. Three measures, each as "added" = median over rounds of
(instrumented block - bare block of the same round), with the best-of
difference beside it: the wall clock, the CPU time of the calling thread, and
the CPU time of the whole client process including flushing what the calls
left to background threads (span export, payload upload) — so work moved off
the app thread still counts. Spans go to an exporter that drops them.
tracetape also does its whole payload path: every payload is redacted,
hashed, queued and uploaded by its worker over gRPC to a BlobService that is
up and discards them (bench/overhead_sink.py; ``--blobs collector``: a real
collector on this machine, whose ingest then competes for the same 2 cores;
``--blobs dead``: a port nobody listens on, so uploads fail and are dropped).
The target: tracetape adds at most half of what the cheapest of the other
three adds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tracetape.demo.run_demo import start_collector, stop_collector

HERE = Path(__file__).parent
VARIANTS = ("tracetape", "openllmetry", "openinference", "otel-genai")
SCENARIOS = ("chat", "async", "stream")
METRICS = ("wall", "cpu", "process")
TARGET = 0.5


def _run_variant(variant: str, base_url: str, collector: str, calls: int, rounds: int) -> dict:
    # The official instrumentation records no content unless asked; the others all do, so it is asked.
    env = dict(os.environ, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
               OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental")
    done = subprocess.run([sys.executable, str(HERE / "overhead_client.py"), variant, base_url, "--collector", collector,
                           "--calls", str(calls), "--rounds", str(rounds)],
                          capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:
        return {"variant": variant, "error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _merge(passes: list[dict]) -> dict:
    """One variant's rounds from every pass, side by side: {metric: {scenario: {state: [µs, ...]}}}."""
    good = [p for p in passes if "error" not in p]
    if not good:
        return passes[0]
    series = {m: {s: {state: [v for p in good for v in p["series"][m][s][state]] for state in ("bare", "instrumented")}
                  for s in SCENARIOS} for m in METRICS}
    return {"variant": good[0]["variant"], "instrumentors": good[0]["instrumentors"], "series": series}


def _figures(result: dict, metric: str, scenario: str) -> tuple[float, float, float]:
    """(bare, added by the median of paired rounds, added best-of: fastest instrumented - fastest bare)."""
    data = result["series"][metric][scenario]
    bare, instrumented = data["bare"], data["instrumented"]
    paired = statistics.median(i - b for i, b in zip(instrumented, bare))
    return statistics.median(bare), paired, min(instrumented) - min(bare)


def _table(results: list[dict], metric: str) -> str:
    head = f"{'variant':<15}" + "".join(f"{s + ' bare':>13}{'added':>9}{'(best)':>9}" for s in SCENARIOS)
    lines = [head]
    for result in results:
        if "error" in result:
            lines.append(f"{result['variant']:<15}  did not run: {result['error']}")
            continue
        cells = ""
        for scenario in SCENARIOS:
            bare, added, best = _figures(result, metric, scenario)
            cells += f"{bare:>10.0f} µs{added:>9.0f}{best:>9.0f}"
        lines.append(f"{result['variant']:<15}{cells}")
    return "\n".join(lines)


def _ratios(results: list[dict], metric: str) -> list[str]:
    ours = next((r for r in results if r["variant"] == "tracetape" and "error" not in r), None)
    others = [r for r in results if r["variant"] != "tracetape" and "error" not in r]
    if ours is None or not others:
        return ["no ratio: tracetape and at least one other instrumentation must have run"]
    lines = []
    for scenario in SCENARIOS:
        added = _figures(ours, metric, scenario)[1]
        best = min(others, key=lambda r: _figures(r, metric, scenario)[1])
        best_added = _figures(best, metric, scenario)[1]
        ratio = added / best_added if best_added > 0 else float("inf")
        verdict = "meets" if ratio <= TARGET else "MISSES"
        lines.append(f"  {scenario:<7} tracetape adds {added:6.0f} µs; best other ({best['variant']}) adds "
                     f"{best_added:6.0f} µs; ratio {ratio:.2f}x ({verdict} the {TARGET}x target)")
    return lines


def _dead_endpoint() -> str:
    """A loopback port nobody listens on: uploads fail at once and the worker backs off."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def _start_blob_endpoint(blobs: str, data_dir: str) -> tuple[subprocess.Popen | None, str]:
    """Where tracetape uploads payloads: the discarding sink, a real collector, or nowhere."""
    if blobs == "collector":
        process, state = start_collector(data_dir)
        return process, state["grpc"].split("://", 1)[-1]
    if blobs == "dead":
        return None, _dead_endpoint()
    sink = subprocess.Popen([sys.executable, str(HERE / "overhead_sink.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return sink, sink.stdout.readline().strip() if sink.stdout else ""


def _stop(process: subprocess.Popen | None, blobs: str) -> None:
    if process is None:
        return
    if blobs == "collector":
        stop_collector(process)
        return
    if process.stdin:
        process.stdin.close()
    process.wait(timeout=30)


_WHERE = {"sink": "a gRPC BlobService that discards them", "collector": "a real collector on this machine",
          "dead": "a dead endpoint (uploads fail, are retried with backoff, then dropped)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20, help="calls per scenario per block")
    parser.add_argument("--rounds", type=int, default=6, help="bare/instrumented block pairs per pass")
    parser.add_argument("--passes", type=int, default=3, help="times every variant's process is run, interleaved")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--blobs", choices=sorted(_WHERE), default="sink",
                        help="where tracetape uploads payloads: a discarding BlobService (default), a real "
                             "collector on this machine (its ingest then competes for the 2 cores), or nowhere")
    args = parser.parse_args()
    variants = args.variants.split(",")

    data_dir = tempfile.mkdtemp(prefix="tracetape-bench-")
    server = subprocess.Popen([sys.executable, str(HERE / "overhead_server.py")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    blobs, endpoint = _start_blob_endpoint(args.blobs, data_dir)
    passes: dict[str, list[dict]] = {v: [] for v in variants}
    try:
        base_url = server.stdout.readline().strip() if server.stdout else ""
        for number in range(args.passes):
            # Pass by pass, every variant in turn (rotated): a burst of load elsewhere on the machine
            # lands on one pass of several variants, not on all passes of one.
            for variant in variants[number % len(variants):] + variants[:number % len(variants)]:
                result = _run_variant(variant, base_url, endpoint, args.calls, args.rounds)
                print(f"  pass {number + 1}/{args.passes} {variant}: "
                      f"{', '.join(result.get('instrumentors', [])) or result.get('error')}", flush=True)
                passes[variant].append(result)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)
        _stop(blobs, args.blobs)
        shutil.rmtree(data_dir, ignore_errors=True)
    results = [_merge(passes[v]) for v in variants]
    print(f"\nOpenAI chat, 14 messages + 5 tools; stream = 28 events; {args.passes} passes x {args.rounds} rounds "
          f"x {args.calls} calls per block; tracetape uploads its payloads to {_WHERE[args.blobs]}.\n"
          f"bare: median per call; added: median over rounds of (instrumented - bare of the same round); "
          f"(best): fastest instrumented block - fastest bare block. µs per call.\n")
    for metric, title in (("wall", "wall clock"), ("cpu", "CPU time of the calling thread"),
                          ("process", "CPU time of the whole client process, background threads and flush included")):
        print(f"{title}:\n{_table(results, metric)}\n")
        print("\n".join(_ratios(results, metric)) + "\n")


if __name__ == "__main__":
    main()
