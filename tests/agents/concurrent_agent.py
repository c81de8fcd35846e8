"""An agent that makes tool calls from 8 threads and 50 asyncio tasks in one run."""

import asyncio
import json
import threading

import tracetape

THREADS, CALLS_PER_THREAD, TASKS, CALLS_PER_TASK = 8, 25, 50, 4


@tracetape.tool
def lookup(worker: str, i: int) -> int:
    return i * 2


@tracetape.tool
async def fetch(worker: str, i: int) -> int:
    await asyncio.sleep(0)
    return i + 1


def thread_body(n: int, barrier: threading.Barrier) -> None:
    barrier.wait(timeout=30)
    for i in range(CALLS_PER_THREAD):
        lookup(f"thread-{n}", i)


async def task_body(n: int) -> None:
    for i in range(CALLS_PER_TASK):
        await fetch(f"task-{n}", i)


async def all_tasks() -> None:
    await asyncio.gather(*(task_body(n) for n in range(TASKS)))


def main() -> None:
    tracetape.instrument()
    with tracetape.run(agent="concurrency") as run:
        barrier = threading.Barrier(THREADS)
        threads = [threading.Thread(target=thread_body, args=(n, barrier)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        asyncio.run(all_tasks())
        for thread in threads:
            thread.join(timeout=60)
    print(json.dumps({"run_id": run.run_id, "calls": THREADS * CALLS_PER_THREAD + TASKS * CALLS_PER_TASK}))


if __name__ == "__main__":
    main()
