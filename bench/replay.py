"""Replay benchmark: load + rebuild a 10,000-step run, and the cost of a served step.

    python bench/replay.py [--steps 10000] [--repeat 5]

1. An instrumented agent process records a run of about STEPS steps (the run,
   the events every run has, such as its environment, and @tool calls to make
   up the rest) into a collector over an embedded store.
2. load() of that run is timed from the collector's SQL endpoint, from a tape
   pulled from it, and (collector stopped) from the chDB directory itself.
   Targets: 0.5 s from the store, 0.2 s from a tape.
3. The same run is replayed in this process: a served tool call is timed
   against the bare function call it replaces and against the same call
   recorded live; the player's own cost (match + serve) alone; and a served
   OpenAI chat call against the same call made live to a local mock server.
   Target: a served step adds at most 100 µs. A replay is a run too, so a
   served step is the player's match + serve plus recording the replay run's
   own step (span, payload hashes, previews): the figures split the two.
Every figure is the best of --repeat runs, printed with its baseline and ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Callable

from tracetape import replay
from tracetape.demo.mock_openai import MockOpenAI
from tracetape.demo.run_demo import start_collector, stop_collector

AGENT = """
import json, sys, tracetape
tracetape.instrument()

@tracetape.tool
def step(i: int) -> dict:
    return {"i": i, "square": i * i}

with tracetape.run(agent="bench-replay") as run:
    for i in range(int(sys.argv[1]) - run.event_count):  # the run's own events so far count as steps
        step(i)
tracetape.flush(120)
print(json.dumps({"run_id": run.run_id}))
"""
LOAD_TARGET_S, TAPE_TARGET_S, SERVED_TARGET_US = 0.5, 0.2, 100.0


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def record(state: dict, steps: int, work: str) -> tuple[str, int]:
    """The id and the step count of a run of about *steps* steps, once all of it is readable."""
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=state["grpc"], OTEL_BSP_MAX_QUEUE_SIZE=str(steps * 2),
               OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2048")
    # In a scratch directory: files under the working directory are recorded, and the run reads none.
    done = subprocess.run([sys.executable, "-c", AGENT, str(steps)], env=env, capture_output=True, text=True,
                          timeout=600, check=True, cwd=work)
    run_id = done.stdout.strip().splitlines()[-1].split('"')[3]
    with replay.open_store(state["sql"]) as store:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = store.runs(run_id=run_id, limit=1)
            if rows and len(store.spans(run_id)) >= rows[0]["event_count"]:
                return run_id, rows[0]["event_count"]
            time.sleep(0.2)
    raise RuntimeError(f"run {run_id} was not all readable after 120 s")


def line(label: str, value: str, baseline: str = "", ratio: float | None = None) -> None:
    extra = f"  {baseline}" if baseline else ""
    extra += f"  ratio {ratio:.2f}" if ratio is not None else ""
    print(f"{label:<52} {value:>12}{extra}")


def bench_loads(steps: int, repeat: int, work: str) -> None:
    data_dir = os.path.join(work, "data")
    process, state = start_collector(data_dir, env=dict(os.environ, TRACETAPE_HTTP_LISTEN="127.0.0.1:0"))
    try:
        started = time.perf_counter()
        run_id, steps = record(state, steps, work)
        print(f"recorded a {steps}-step run in {time.perf_counter() - started:.1f} s ({run_id})")
        with replay.open_store(state["sql"]) as store:
            loaded = replay.load(run_id, store=store)
            assert len(loaded) == steps, f"expected {steps} steps, stored {len(loaded)}"
            sql = best(lambda: replay.load(run_id, store=store), repeat)
            tape = replay.pull(run_id, os.path.join(work, "run.tape"), store=store)
        from_tape = best(lambda: replay.load(tape), repeat)
        line(f"load+rebuild {steps} steps, store via SQL endpoint", f"{sql:.3f} s", f"target {LOAD_TARGET_S} s",
             sql / LOAD_TARGET_S)
        line(f"load+rebuild {steps} steps, tape ({os.path.getsize(tape) / 1e6:.1f} MB)", f"{from_tape:.3f} s",
             f"target {TAPE_TARGET_S} s", from_tape / TAPE_TARGET_S)
        # Served steps are measured while the collector runs, so the replay runs' own spans export normally.
        import tracetape

        tracetape.instrument(state["grpc"])
        bench_served_tools(tape, repeat)
        bench_served_chat(repeat, work)
        tracetape.uninstrument()
    finally:
        stop_collector(process)
    with replay.open_store(os.path.join(data_dir, "store")) as store:
        replay.load(run_id, store=store)  # the first query of a fresh chDB session warms its caches
        chdb = best(lambda: replay.load(run_id, store=store), repeat)
    line(f"load+rebuild {steps} steps, chDB directory (collector stopped)", f"{chdb:.3f} s",
         f"target {LOAD_TARGET_S} s", chdb / LOAD_TARGET_S)


def bench_served_tools(tape: str, repeat: int) -> None:
    import tracetape
    from tracetape.instrumentation import seam
    from tracetape.schemas.events import EventKind

    @tracetape.tool
    def step(i: int) -> dict:
        return {"i": i, "square": i * i}

    bare = step.__wrapped__  # type: ignore[attr-defined]
    count = len(replay.load(tape).tool_calls)
    requests = [json.dumps({"i": i}, separators=(",", ":")).encode() for i in range(count)]

    def calls(fn: Callable[[int], object]) -> Callable[[], None]:
        def body() -> None:
            for i in range(count):
                fn(i)
        return body

    def timed(body: Callable[[], None], mode: str | None) -> float:
        """*body* inside a run, replayed when *mode* is given (the player is built outside the timing)."""
        player = replay.player(tape, mode=mode) if mode else contextlib.nullcontext()
        with player, tracetape.run(agent="bench-replay"):
            start = time.perf_counter()
            body()
            elapsed = time.perf_counter() - start
        tracetape.flush(120)  # export this round's spans before the next: none dropped, no backlog carried over
        return elapsed

    def ask_player() -> None:
        for request in requests:
            seam.serve(EventKind.TOOL_CALL, "execute_tool step", request)

    # Served and live rounds alternate, so a busy machine slows both alike; the best of each counts.
    served, recorded, player = [], [], []
    for _ in range(repeat):
        served.append(timed(calls(step), "strict"))
        recorded.append(timed(calls(step), None))
        player.append(timed(ask_player, "observe"))
    bare_us = best(calls(bare), repeat) / count * 1e6
    served_us, recorded_us, player_us = (min(times) / count * 1e6 for times in (served, recorded, player))
    line("served @tool step, per call", f"{served_us:.1f} µs", f"bare function call {bare_us:.2f} µs")
    line("  replay overhead per served step: served - bare", f"{served_us - bare_us:.1f} µs",
         f"target {SERVED_TARGET_US} µs", (served_us - bare_us) / SERVED_TARGET_US)
    line("    of which the player (match + serve)", f"{player_us:.1f} µs", f"target {SERVED_TARGET_US} µs",
         player_us / SERVED_TARGET_US)
    line("    of which recording the replay run's step", f"{served_us - bare_us - player_us:.1f} µs")
    line("  the same call recorded live (no replay)", f"{recorded_us:.1f} µs", f"served {served_us:.1f} µs",
         served_us / recorded_us)


def bench_served_chat(repeat: int, work: str, count: int = 200) -> None:
    import openai

    import tracetape
    from tracetape.replay.recorder import TapeRecorder

    path = os.path.join(work, "chat.tape")
    messages = [{"role": "user", "content": "What's the weather in Tokyo?"}]
    with MockOpenAI() as mock, openai.OpenAI(base_url=mock.base_url, api_key="sk-bench", max_retries=0) as client:
        def chat() -> None:
            with tracetape.run(agent="bench-chat"):
                for _ in range(count):
                    client.chat.completions.create(model="gpt-4o", messages=messages)

        with TapeRecorder() as recorder:
            chat()
        recorder.write(path)
        live_us = best(chat, repeat) / count * 1e6

        times = []
        for _ in range(repeat):
            with replay.player(path):
                start = time.perf_counter()
                chat()
                times.append(time.perf_counter() - start)
        served_us = min(times) / count * 1e6
    line("served OpenAI chat call (per call)", f"{served_us:.0f} µs", f"live to a local mock {live_us:.0f} µs",
         served_us / live_us)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # This process records runs of --steps events in a burst: let the span queue hold them.
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", str(4 * args.steps))
    with tempfile.TemporaryDirectory(prefix="tracetape-bench-") as work:
        bench_loads(args.steps, args.repeat, work)


if __name__ == "__main__":
    main()
