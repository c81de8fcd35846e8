"""Many short runs, some failing, under payload sampling (TRACETAPE_PAYLOAD_SAMPLE in the environment).

Usage: ``determinism_sampling.py RUN_ID_PREFIX``.

Prints the runs (id, outcome) and the payload counters as one JSON line.
"""

import json
import sys

import determinism_setup
import tracetape
from tracetape.instrumentation._payload import blob_stats

SUCCEEDING, FAILING = 4, 2


@tracetape.tool
def lookup(run: int, failing: bool) -> str:
    return f"result of run {run} ({'failing' if failing else 'fine'})"


def main() -> None:
    prefix = sys.argv[1]
    determinism_setup.instrument()
    runs = []
    for i in range(SUCCEEDING + FAILING):
        failing = i >= SUCCEEDING
        try:
            # Fixed ids: which runs the 1-in-N pick keeps is then fixed too (it hashes the id).
            with tracetape.run(agent="sampled", run_id=f"{prefix}-{i:02d}") as run:
                lookup(i, failing)
                if failing:
                    raise ValueError(f"run {i} fails")
        except ValueError:
            pass
        runs.append({"run_id": run.run_id, "outcome": "error" if failing else "ok"})
    determinism_setup.finish()
    stats = blob_stats()
    print(json.dumps({"runs": runs, "discarded": stats.discarded, "held_runs": stats.held_runs,
                      "dropped": stats.dropped}))


if __name__ == "__main__":
    main()
