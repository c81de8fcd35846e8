"""An agent whose behaviour depends on its environment, and that keeps notes with ``tracetape.memory``.

Records a run, or with ``--replay RUN --store URL`` runs the same code under a strict player of that
run. ``--note`` changes what it writes to memory. Prints what it saw as one JSON line.
"""

import argparse
import json
import os
import time

import determinism_setup
import tracetape
from tracetape.instrumentation.memory import memory


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def agent(note: str) -> dict:
    seen = {"mode": os.environ.get("AGENT_MODE"), "tz": os.environ.get("TZ"), "zone": time.strftime("%Z")}
    memory("notes", {"mode": seen["mode"], "note": note})
    memory("scratch", Opaque())
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replay")
    parser.add_argument("--store")
    parser.add_argument("--note", default="first")
    parser.add_argument("--api-key")  # a secret on the command line: never recorded as such
    args = parser.parse_args()
    determinism_setup.instrument()
    memory("outside", "no run: nothing recorded")
    report: dict = {}
    if args.replay:
        from tracetape import replay

        with replay.player(args.replay, store=args.store) as player, tracetape.run(agent="state") as run:
            seen = agent(args.note)
        report = {"divergences": [d.describe() for d in player.divergences]}
    else:
        with tracetape.run(agent="state") as run:
            seen = agent(args.note)
    determinism_setup.finish()
    print(json.dumps({"run_id": run.run_id, "seen": seen, **report}))


if __name__ == "__main__":
    main()
