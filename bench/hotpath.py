"""Hot-path cost of the determinism capture points: clock, random, file open, redaction.

    python bench/hotpath.py             # full
    python bench/hotpath.py --quick     # fewer iterations, for development

``time.time()`` and ``random.random()`` are called from the agent's own code,
possibly in tight loops, so the added cost per call matters; ``open()`` is
called everywhere. Each is measured in this one process, best of several
repeats, as:

* the original function, before instrumenting (the baseline);
* patched, outside any run (what every caller pays while instrumented);
* patched, inside a run, values recorded (one event per batch of values,
  exported with its payload to a real collector on loopback); for ``open()``
  of a file under a root one ``file_read`` event per call, with the file's
  bytes as its payload, and of a file elsewhere the cost of deciding not to.

Redaction runs on every payload before it is hashed: it is measured per
kilobyte on chat requests it has not seen (each starts differently), on the
requests of a growing conversation (each one turn longer: only what changed
is scanned) and on a large payload, next to SHA-256 of the same bytes (which
every payload pays anyway). Last, what hashing a payload costs the app's
thread while another thread runs Python: ``sha256_hex`` against hashlib
called directly, which hands the GIL to that thread in the middle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Callable

# Measured with the determinism instrumentors only: model clients are not involved.
os.environ.setdefault("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "tracetape_openai,tracetape_anthropic,tracetape_mcp")


def _per_call_ns(statement: str, namespace: dict, number: int, repeat: int = 7, setup: str = "pass") -> float:
    timer = timeit.Timer(statement, setup=setup, globals=namespace)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def _chat_requests(count: int, growing: bool) -> list[bytes]:
    """*count* chat requests of 14+ messages and 5 tools: each one turn longer than the one before (an agent
    resending its conversation), or each with a start of its own (a payload redaction has never seen)."""
    messages = [{"role": "user" if i % 2 else "assistant",
                 "content": "Please look up the forecast for Lisbon, Paris and Tokyo and summarise it. " * 3}
                for i in range(14 + count)]
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "Look something up.",
                                               "parameters": {"type": "object", "properties": {}}}}
             for i in range(5)]
    return [json.dumps({"user": "" if growing else f"u{n}", "messages": messages[:14 + n if growing else 14],
                        "tools": tools, "model": "gpt-4o"}).encode() for n in range(count)]


def _row(name: str, baseline: float, outside: float, inside: float) -> str:
    return (f"{name:<17} {baseline:9.0f} {outside:9.0f} {outside - baseline:+8.0f} {outside / baseline:6.2f}x"
            f" {inside:9.0f} {inside - baseline:+8.0f} {inside / baseline:6.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    number = 20_000 if args.quick else 200_000
    file_number = 200 if args.quick else 1_000  # one event each inside a run: within the span queue

    work = Path(tempfile.mkdtemp(prefix="tracetape-hotpath-"))
    for folder in ("recorded", "elsewhere"):
        (work / folder).mkdir()
        (work / folder / "input.txt").write_bytes(b"x" * 4096)
    namespace = {"time": time, "random": random, "path": str(work / "recorded" / "input.txt"),
                 "other": str(work / "elsewhere" / "input.txt")}
    read = "with open(path, 'rb') as fh: fh.read()"
    read_other = "with open(other, 'rb') as fh: fh.read()"

    def measure(in_run: bool = False) -> dict[str, float]:
        return {"time.time()": _per_call_ns("time.time()", namespace, number),
                "random.random()": _per_call_ns("random.random()", namespace, number),
                "open() not a root": _per_call_ns(read_other, namespace, file_number * 5),
                "open()+read 4K": _per_call_ns(read, namespace, file_number, repeat=3 if in_run else 7)}

    baseline = measure()

    from tracetape.demo.run_demo import start_collector, stop_collector

    collector, state = start_collector(str(work / "collector"))
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = state["grpc"]
    os.environ["TRACETAPE_FILE_ROOTS"] = str(work / "recorded")
    try:
        import tracetape

        tracetape.instrument()  # the tracetape_clock, _random and _files entry points are loaded with it
        outside = measure()
        with tracetape.run(agent="hotpath"):
            inside = measure(in_run=True)
        tracetape.uninstrument()
    finally:
        stop_collector(collector)
        shutil.rmtree(work, ignore_errors=True)

    print(f"ns per call (best of repeats), Python {sys.version.split()[0]}")
    print(f"{'call':<17} {'original':>9} {'outside':>9} {'added':>8} {'ratio':>7} {'in run':>9} {'added':>8}"
          f" {'ratio':>7}")
    for name in baseline:
        print(_row(name, baseline[name], outside[name], inside[name]))

    from tracetape.instrumentation.redaction import redact

    print("\nredaction at capture vs SHA-256 of the same bytes (both run on every payload)")
    count = 200 if args.quick else 2000
    cases = (("chat request, new", _chat_requests(count, growing=False)),
             ("chat request, +1 turn", _chat_requests(200, growing=True)),  # 14 to 213 messages
             ("8 MB payload", [os.urandom(4 * 1024 * 1024).hex().encode()] * 3))
    for label, payloads in cases:
        number, size = len(payloads), sum(map(len, payloads)) / len(payloads)
        scan = _per_call_ns("redact('request', next(them))", {"redact": redact, "payloads": payloads}, number,
                            repeat=3, setup="them = iter(payloads)")
        digest = _per_call_ns("sha256(next(them)).digest()", {"sha256": hashlib.sha256, "payloads": payloads},
                              number, repeat=3, setup="them = iter(payloads)")
        kib = size / 1024
        print(f"{label:<21} {size:>9.0f} bytes  redact {scan / 1e3:9.1f} us ({scan / kib:6.0f} ns/KiB)"
              f"  sha256 {digest / 1e3:9.1f} us ({digest / kib:5.0f} ns/KiB)  ratio {scan / digest:5.1f}x")
    _hashing()


def _hash_with_a_busy_thread(payloads: list[bytes], hash_hex: Callable[[bytes], str]) -> float:
    """Mean µs a hash of each payload costs the calling thread while another thread runs Python code."""
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(100))

    spinner = threading.Thread(target=busy, daemon=True)
    spinner.start()
    try:
        times = []
        for data in payloads:
            sum(range(3000))  # the app's own work between payloads, holding the GIL
            started = time.perf_counter_ns()
            hash_hex(data)
            times.append(time.perf_counter_ns() - started)
        return sum(times) / len(times) / 1e3
    finally:
        stop.set()
        spinner.join()


def _hashing() -> None:
    from tracetape.instrumentation._blobs import sha256_hex

    print("\npayload hashing on the app thread while another thread runs Python (mean µs per 5 KB payload)")
    payloads = [os.urandom(5000) for _ in range(500)]
    for _ in range(2):
        ours = _hash_with_a_busy_thread(payloads, sha256_hex)
        plain = _hash_with_a_busy_thread(payloads, lambda data: hashlib.sha256(data).hexdigest())
        print(f"sha256_hex {ours:8.1f} us   hashlib.sha256 (lets go of the GIL) {plain:8.1f} us   ratio {ours / plain:5.2f}")


if __name__ == "__main__":
    main()
