"""Instructions added per OpenAI call, counted by valgrind: the overhead bench's measure that load cannot move.

    python bench/overhead_work.py [--calls 40] [--variants tracetape,...] [--jobs 2]

bench/overhead.py times calls, and on a shared 2-core machine its figures
move with whatever else runs. This one counts the instructions the client
process executes (every thread: the calls, span processing, payload
hashing, redaction and upload) with valgrind's cachegrind, which is exact
and repeatable whatever the load. For each scenario (chat with 14 messages
and 5 tools, the same on the async client, the same streamed: 28 events)
and each variant (bench/overhead_work_client.py), two processes run, with
``--warm`` and ``--warm + --calls`` calls: the difference divided by
``--calls`` is the count per call, start-up and shutdown cancelling out.
"added" is a variant's count minus the bare count (no instrumentation at
all), and the ratio is tracetape's added count over the cheapest other's.

Instructions are work, not time: they leave out waiting, the GIL, caches
and the kernel, which bench/overhead.py sees. And valgrind runs SHA-256 in
software (it hides the CPU's SHA extensions), about 20 instructions a byte
where the hardware needs ~2 cycles: tracetape hashes every payload, so the
count overstates its share. Needs valgrind on PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent
VARIANTS = ("tracetape", "openllmetry", "openinference", "otel-genai")
SCENARIOS = ("chat", "async", "stream")
TARGET = 0.5
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _count(scenario: str, variant: str, calls: int, collector: str) -> int:
    """Instructions of one whole client process (every thread) under cachegrind."""
    env = dict(os.environ, PYTHONHASHSEED="0", OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
               OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental")
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, str(HERE / "overhead_work_client.py"), scenario, variant, str(calls),
         "--collector", collector],
        capture_output=True, text=True, timeout=1800, env=env, cwd=HERE)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = done.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"{variant} {scenario} ({calls} calls) failed: {' | '.join(tail)}")
    return int(found.group(1).replace(",", ""))


def _per_call(scenario: str, variant: str, warm: int, calls: int, collector: str, pool: ThreadPoolExecutor) -> int:
    short, long = pool.map(lambda n: _count(scenario, variant, n, collector), (warm, warm + calls))
    return (long - short) // calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=40, help="calls counted per scenario and variant")
    parser.add_argument("--warm", type=int, default=5, help="calls of the shorter process of each pair")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2, help="valgrind processes at once")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("overhead_work.py counts instructions with valgrind, which is not on PATH")
    variants = args.variants.split(",")

    sink = subprocess.Popen([sys.executable, str(HERE / "overhead_sink.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        collector = sink.stdout.readline().strip() if sink.stdout else ""
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            counts = {(s, v): _per_call(s, v, args.warm, args.calls, collector, pool)
                      for s in SCENARIOS for v in ("bare", *variants)}
    finally:
        if sink.stdin:
            sink.stdin.close()
        sink.wait(timeout=30)

    print(f"\nInstructions per OpenAI call (valgrind cachegrind, whole client process, {args.calls} calls "
          f"counted per figure; the provider answers in-process):\n")
    print(f"{'variant':<15}" + "".join(f"{s + ' total':>16}{'added':>12}" for s in SCENARIOS))
    for variant in ("bare", *variants):
        cells = "".join(f"{counts[s, variant]:>16,}{counts[s, variant] - counts[s, 'bare']:>12,}" for s in SCENARIOS)
        print(f"{variant:<15}{cells}")
    if "tracetape" not in variants or len(variants) < 2:
        return
    print()
    for scenario in SCENARIOS:
        added = {v: counts[scenario, v] - counts[scenario, "bare"] for v in variants}
        best = min((v for v in variants if v != "tracetape"), key=added.__getitem__)
        ratio = added["tracetape"] / added[best] if added[best] > 0 else float("inf")
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(f"  {scenario:<7} tracetape adds {added['tracetape']:>10,} instructions; best other ({best}) adds "
              f"{added[best]:>10,}; ratio {ratio:.2f}x ({verdict} the {TARGET}x target)")


if __name__ == "__main__":
    main()
