"""An agent that records one short run and exits without flushing: tracetape's exit handler does that.

Prints one JSON line at the very end of the process (its own exit handler runs after tracetape's):
the run id and how long the exit handlers before it took.
"""

import atexit
import json
import time

marks: dict = {}
# Registered before tracetape's handler, so it runs after it (atexit is last in, first out).
atexit.register(lambda: print(json.dumps({"run_id": marks["run_id"],
                                          "exit_seconds": time.monotonic() - marks["body_done"]}), flush=True))

import determinism_setup  # noqa: E402 - after the handler above
import tracetape  # noqa: E402


@tracetape.tool
def lookup(city: str) -> dict:
    return {"city": city, "sky": "clear"}


determinism_setup.instrument()
with tracetape.run(agent="shutdown") as run:
    lookup("Lisbon")
marks.update(run_id=run.run_id, body_done=time.monotonic())
