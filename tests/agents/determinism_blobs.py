"""Payload volume: ``big`` returns one 40 MB tool result; ``repeat`` returns the same small result three
times (uploaded once); ``flood`` makes many 1 MB payloads (with the collector down: the run must go on,
memory bounded, drops counted).

Prints the run id, what the agent computed, the payload counters and peak traced memory as one JSON line.
"""

import hashlib
import json
import random
import sys
import tracemalloc

import determinism_setup
import tracetape
from tracetape.instrumentation._payload import blob_stats

BIG_BYTES = 40 * 1024 * 1024
FLOOD, FLOOD_BYTES = 48, 1024 * 1024


def big_text() -> str:
    # 40 MB that do not compress to nothing, the same in every process.
    return random.Random(7).randbytes(BIG_BYTES // 2).hex()


@tracetape.tool
def produce(kind: str, i: int = 0) -> str:
    if kind == "big":
        return big_text()
    return f"{i:08d}" * (FLOOD_BYTES // 8) if kind == "flood" else "the same small result"


def main() -> None:
    mode = sys.argv[1]
    determinism_setup.instrument()
    if mode == "flood":
        tracemalloc.start()
    digests = []
    with tracetape.run(agent="blobs") as run:
        for i in range({"big": 1, "repeat": 3, "flood": FLOOD}[mode]):
            digests.append(hashlib.sha256(produce(mode, i if mode == "flood" else 0).encode()).hexdigest())
    peak = tracemalloc.get_traced_memory()[1]  # 0 unless tracing
    tracemalloc.stop()
    during = blob_stats()
    determinism_setup.finish()
    after = blob_stats()
    print(json.dumps({"run_id": run.run_id, "digests": digests, "peak_bytes": peak,
                      "queued_bytes": during.queued_bytes, "uploaded": after.uploaded, "dropped": after.dropped}))


if __name__ == "__main__":
    main()
