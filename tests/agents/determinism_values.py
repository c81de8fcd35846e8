"""An agent whose decisions depend on the clock, random draws and uuids — in its own task, a thread,
an asyncio task and a tool — and that keeps a scratchpad with ``tracetape.memory``.

``python determinism_values.py`` records a run; ``--replay RUN --store URL`` runs the same code under a
strict player of that run. Either way it prints what the code observed, as one JSON line.
"""

import argparse
import asyncio
import datetime
import json
import logging
import os
import random
import secrets
import tempfile
import threading
import time
import uuid

import determinism_setup
import tracetape
from tracetape import replay  # compiled extensions it loads come before the datetime patch
from tracetape.instrumentation.memory import memory

LOOPS = 1100  # more than one batch of time.time() values


@tracetape.tool
def roll(sides: int) -> int:
    return random.randint(1, sides) + int(time.time() * 0)


def draws(tag: str) -> dict:
    with tempfile.TemporaryDirectory():  # its random names are tempfile's business: not recorded
        pass
    rng = random.Random()
    items = list(range(10))
    random.shuffle(items)
    return {
        f"{tag}.random": random.random(),
        f"{tag}.choice": random.choice("abcdefghij"),
        f"{tag}.shuffle": items,
        f"{tag}.gauss": random.gauss(0, 1),
        f"{tag}.own_rng": rng.random(),
        f"{tag}.uuid4": str(uuid.uuid4()),
        f"{tag}.urandom": os.urandom(8).hex(),
        f"{tag}.token": secrets.token_hex(8),
        f"{tag}.time": time.time(),
        f"{tag}.time_ns": time.time_ns(),
        f"{tag}.monotonic": time.monotonic(),
    }


def in_thread(out: dict) -> None:
    out.update(draws("thread"))


async def in_task() -> dict:
    await asyncio.sleep(0)
    return draws("task")


async def concurrent(out: dict) -> None:
    results = await asyncio.gather(in_task(), in_task())
    out["tasks"] = results


def agent() -> dict:
    observed: dict = {}
    observed.update(draws("main"))
    observed["ticks"] = [time.time() for _ in range(LOOPS)]
    logging.getLogger("determinism").warning("thinking")  # the record's timestamp is logging's business
    observed["now"] = datetime.datetime.now().isoformat()
    observed["now_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    observed["utcnow"] = datetime.datetime.utcnow().isoformat()
    observed["uuid1"] = str(uuid.uuid1())
    observed["roll"] = roll(6)
    observed["after_tool"] = random.random()
    memory("plan", {"step": 1, "next": observed["main.choice"]})
    thread = threading.Thread(target=in_thread, args=(observed,))
    thread.start()
    thread.join(timeout=30)
    asyncio.run(concurrent(observed))
    memory("plan", {"step": 2, "done": True})
    return observed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replay")
    parser.add_argument("--store")
    args = parser.parse_args()
    determinism_setup.instrument()
    outside = (time.time(), random.random())  # outside any run: live, not recorded
    if args.replay:
        with replay.player(args.replay, store=args.store) as player, tracetape.run(agent="values") as run:
            observed = agent()
        report = {"served": player.served, "divergences": [d.describe() for d in player.divergences]}
    else:
        with tracetape.run(agent="values") as run:
            observed = agent()
        report = {}
    determinism_setup.finish()
    print(json.dumps({"run_id": run.run_id, "observed": observed, "outside": outside, **report}))


if __name__ == "__main__":
    main()
