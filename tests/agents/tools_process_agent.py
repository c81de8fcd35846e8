"""An agent whose run spreads over processes: two child processes started with subprocess (running at
the same time), a thread, then, with ``--multiprocessing``, a fork and a spawn multiprocessing worker.

Usage: ``tools_process_agent.py [--multiprocessing] [--replay RUN_ID --store SQL_URL]``.
Prints one JSON line: the run id, what the children printed, and how many calls a replay served.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

from tools_replaying import options, recording

import tracetape

CHILD = str(Path(__file__).with_name("tools_child.py"))


@tracetape.tool
def step(worker: str, i: int) -> str:
    return f"{worker}:{i}"


def pooled(worker: str) -> None:
    for i in range(2):
        step(worker, i)


def work(use_multiprocessing: bool) -> list:
    out: list = [step("parent", 0)]
    children = [subprocess.Popen([sys.executable, CHILD, name], stdout=subprocess.PIPE, text=True)
                for name in ("child-a", "child-b")]
    out += [json.loads(child.communicate(timeout=60)[0]) for child in children]
    out.append([child.returncode for child in children])
    # A thread started after the children: its task path counts them, in a replay too.
    threaded: list = []
    thread = threading.Thread(target=lambda: threaded.append(step("thread", 0)))
    thread.start()
    thread.join(timeout=60)
    out.append(threaded)
    if use_multiprocessing:
        for method in ("fork", "spawn"):
            process = multiprocessing.get_context(method).Process(target=pooled, args=(f"mp-{method}",))
            process.start()
            process.join(timeout=60)
            out.append([method, process.exitcode])
    out.append(step("parent", 1))
    return out


def main() -> None:
    args = options("--multiprocessing")
    tracetape.instrument()
    with recording("process-agent", args.replay, args.store) as outcome:
        outcome["results"] = work(args.multiprocessing)
    tracetape.flush()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
