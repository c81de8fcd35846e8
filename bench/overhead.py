"""Added time per OpenAI call: tracetape against OpenLLMetry, OpenInference and the official OTel instrumentation.

    python bench/overhead.py [--pairs 120] [--passes 3] [--variants tracetape,...]
                             [--blobs sink|collector|dead]

Against the local mock provider (its own process): a chat call with 14
messages and 5 tools, the same call on the async client, and the same call
streamed (28 events). Each instrumentation runs in a process of its own
(bench/overhead_client.py), instrumented once; what its ``instrument()``
patched is then swapped in and out between calls, so bare and instrumented
calls alternate call by call. That matters here: on this shared 2-core machine
the same work runs up to 1.5x slower for stretches of a few hundred ms, which
made back-to-back blocks of 20 calls differ by +-2 ms, several times what an
instrumentation adds; the two calls of a pair lie milliseconds apart. Every
variant's process runs several times, the variants taking turns.

Three measures, each as "added" = median over pairs of (instrumented call /
bare call of the same pair - 1), times the median bare call of all runs, with
a 95% confidence interval of that median (distribution-free, from order
statistics). As a fraction of its own bare call, what a pair adds does not
move with the machine's speed, which differs between the runs of different
variants. The measures: the wall clock, the CPU time of
the calling thread, and that plus the CPU time the process's other threads
spent per instrumented call (span export, payload upload; all of it put on
the instrumented calls), so work moved off the app thread still counts.
Spans go to an exporter that drops them. tracetape also does its whole
payload path: every payload is redacted, hashed, queued and uploaded by its
worker over gRPC to a BlobService that is up and discards them
(bench/overhead_sink.py; ``--blobs collector``: a real collector on this
machine, whose ingest then competes for the same 2 cores; ``--blobs dead``: a
port nobody listens on, so uploads fail and are dropped). The target:
tracetape adds at most half of what the cheapest of the other three adds.
"""

from __future__ import annotations

import argparse
import json
import math
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
_SERIES = {"wall": "wall", "cpu": "cpu", "process": "cpu"}  # the per-call series each measure is built on
TARGET = 0.5


def _run_variant(variant: str, base_url: str, collector: str, pairs: int) -> dict:
    # The official instrumentation records no content unless asked; the others all do, so it is asked.
    env = dict(os.environ, OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
               OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental")
    done = subprocess.run([sys.executable, str(HERE / "overhead_client.py"), variant, base_url, "--collector", collector,
                           "--pairs", str(pairs)],
                          capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:
        return {"variant": variant, "error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _merge(passes: list[dict]) -> dict:
    """One variant's passes as one, per scenario: for wall and CPU, each pair's added time as a fraction of its
    bare call, and the bare calls; the background CPU per call as a fraction of the bare call's CPU."""
    good = [p for p in passes if "error" not in p]
    if not good:
        return passes[0]
    series = {}
    for scenario in SCENARIOS:
        merged: dict = {}
        for metric in ("wall", "cpu"):
            pairs = [(i, b) for p in good for i, b in zip(p["series"][scenario][metric]["instrumented"],
                                                           p["series"][scenario][metric]["bare"])]
            merged[metric] = [i / b - 1 for i, b in pairs if b > 0]
            merged[f"bare {metric}"] = [b for _, b in pairs]
        merged["background"] = statistics.mean(
            p["series"][scenario]["background"] / statistics.median(p["series"][scenario]["cpu"]["bare"]) for p in good)
        series[scenario] = merged
    return {"variant": good[0]["variant"], "instrumentors": good[0]["instrumentors"], "series": series}


def _references(results: list[dict]) -> dict[tuple[str, str], float]:
    """Per (metric, scenario), the median bare call over every variant's runs: what fractions are scaled by."""
    good = [r for r in results if "error" not in r]
    return {(metric, scenario): statistics.median(v for r in good for v in r["series"][scenario][f"bare {base}"])
            for metric, base in _SERIES.items() for scenario in SCENARIOS}


def _median_interval(values: list[float]) -> tuple[float, float, float]:
    """(median, low, high): the median with its 95% confidence interval from order statistics."""
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, int((n - 1.96 * math.sqrt(n)) / 2))
    return statistics.median(ordered), ordered[k], ordered[n - 1 - k]


def _figures(result: dict, metric: str, scenario: str, reference: float) -> tuple[float, float, float]:
    """Added µs per call: (median over pairs, low, high of its 95% interval), scaled to the *reference* bare call.

    Pairs are compared as fractions of their own bare call: this machine's speed drifts by up to 1.5x
    between the runs of different variants, and what an instrumentation adds drifts with it."""
    data = result["series"][scenario]
    median, low, high = _median_interval(data[_SERIES[metric]])
    extra = data["background"] if metric == "process" else 0.0
    return (median + extra) * reference, (low + extra) * reference, (high + extra) * reference


def _table(results: list[dict], metric: str, references: dict[tuple[str, str], float]) -> str:
    head = f"{'variant':<15}" + "".join(f"{s + ' bare':>13}{'added':>9}{'95% interval':>16}" for s in SCENARIOS)
    lines = [head]
    for result in results:
        if "error" in result:
            lines.append(f"{result['variant']:<15}  did not run: {result['error']}")
            continue
        cells = ""
        for scenario in SCENARIOS:
            added, low, high = _figures(result, metric, scenario, references[(metric, scenario)])
            bare = statistics.median(result["series"][scenario][f"bare {_SERIES[metric]}"])
            cells += f"{bare:>10.0f} µs{added:>9.0f}{f'{low:.0f}..{high:.0f}':>16}"
        lines.append(f"{result['variant']:<15}{cells}")
    return "\n".join(lines)


def _ratios(results: list[dict], metric: str, references: dict[tuple[str, str], float]) -> list[str]:
    ours = next((r for r in results if r["variant"] == "tracetape" and "error" not in r), None)
    others = [r for r in results if r["variant"] != "tracetape" and "error" not in r]
    if ours is None or not others:
        return ["no ratio: tracetape and at least one other instrumentation must have run"]
    lines = []
    for scenario in SCENARIOS:
        reference = references[(metric, scenario)]
        added, low, high = _figures(ours, metric, scenario, reference)
        best = min(others, key=lambda r: _figures(r, metric, scenario, reference)[0])
        best_added, best_low, best_high = _figures(best, metric, scenario, reference)
        ratio = added / best_added if best_added > 0 else float("inf")
        # The interval of the ratio from the two medians' intervals: at least 95% sure to hold the true one.
        span = (f"{low / best_high:.2f}..{high / best_low:.2f}" if best_low > 0 else "unbounded")
        verdict = "meets" if ratio <= TARGET else "MISSES"
        lines.append(f"  {scenario:<7} tracetape adds {added:6.0f} µs; best other ({best['variant']}) adds "
                     f"{best_added:6.0f} µs; ratio {ratio:.2f}x (interval {span}; {verdict} the {TARGET}x target)")
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
    parser.add_argument("--pairs", type=int, default=120, help="bare/instrumented call pairs per scenario per pass")
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
                result = _run_variant(variant, base_url, endpoint, args.pairs)
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
    references = _references(results)
    print(f"\nOpenAI chat, 14 messages + 5 tools; stream = 28 events; {args.passes} passes x {args.pairs} pairs of "
          f"calls, bare and instrumented alternating; tracetape uploads its payloads to {_WHERE[args.blobs]}.\n"
          f"bare: median per call of the variant's runs. added: median over pairs of (instrumented call / bare "
          f"call of the same pair - 1), times the median bare call of all runs; with its 95% interval. µs per call.\n")
    for metric, title in (("wall", "wall clock"), ("cpu", "CPU time of the calling thread"),
                          ("process", "CPU time of the calling thread plus what background threads spent per call")):
        print(f"{title}:\n{_table(results, metric, references)}\n")
        print("\n".join(_ratios(results, metric, references)) + "\n")


if __name__ == "__main__":
    main()
