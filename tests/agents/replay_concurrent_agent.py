"""Tool calls from 4 threads and 10 asyncio tasks of one run, each returning a value that differs on
every execution (a clock reading), so a replay that served a call to the wrong thread or task, or
ran a tool body at all, would show. Prints the values by worker, and how many tool bodies ran."""

import asyncio
import json
import sys
import threading
import time

import tracetape

THREADS, TASKS, CALLS = 4, 10, 3
executed = []  # tool bodies that really ran in this process


@tracetape.tool
def stamp(worker: str, i: int) -> int:
    executed.append(worker)
    return time.perf_counter_ns()


@tracetape.tool
async def astamp(worker: str, i: int) -> int:
    executed.append(worker)
    await asyncio.sleep(0)
    return time.perf_counter_ns()


def thread_body(n: int, values: dict) -> None:
    for i in range(CALLS):
        values[f"thread-{n}:{i}"] = stamp(f"thread-{n}", i)


async def task_body(n: int, values: dict) -> None:
    for i in range(CALLS):
        values[f"task-{n}:{i}"] = await astamp(f"task-{n}", i)


async def tasks(values: dict) -> None:
    await asyncio.gather(*(task_body(n, values) for n in range(TASKS)))


def main() -> None:
    tracetape.instrument()
    from tracetape.replay.commands import activate_from_env

    activate_from_env()
    values: dict = {}
    with tracetape.run(agent="replay-concurrency") as run:
        threads = [threading.Thread(target=thread_body, args=(n, values)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        asyncio.run(tasks(values))
        for thread in threads:
            thread.join(timeout=60)
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        json.dump(dict(sorted(values.items())), fh)
    print(json.dumps({"run_id": run.run_id, "executed": len(executed)}), flush=True)


if __name__ == "__main__":
    main()
