"""A child process of tools_process_agent: it joins the parent's run (the link is in its environment),
makes tool calls and runs a command of its own, and prints what it did as one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys

import tracetape


@tracetape.tool
def step(worker: str, i: int) -> str:
    return f"{worker}:{i}"


def main() -> None:
    tracetape.instrument()
    worker = sys.argv[1]
    done = [step(worker, i) for i in range(3)]
    done.append(subprocess.run(["echo", f"{worker} says hi"], capture_output=True, text=True, check=True).stdout)
    print(json.dumps(done))


if __name__ == "__main__":
    main()
