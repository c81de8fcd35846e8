"""An agent that reads inputs and writes outputs under its working directory (``--root``).

Records a run, or with ``--replay RUN --store URL [--mode M]`` runs the same code under a player of that
run. Prints what it read as one JSON line (and, replaying, the player's divergences).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import determinism_setup
import tracetape


def agent(root: Path) -> dict:
    seen: dict = {}
    with open(root / "input.txt", encoding="utf-8") as fh:
        seen["open"] = fh.read()
    seen["read_bytes"] = (root / "input.txt").read_bytes().decode()
    seen["read_text"] = Path(root / "input.txt").read_text(encoding="utf-8")
    with open(root / "big.bin", "rb") as fh:
        seen["big_size"] = len(fh.read())
    try:
        open(root / "missing.txt")
    except FileNotFoundError as exc:
        seen["missing"] = [exc.errno, exc.filename]
    with open(root / "out.txt", "w", encoding="utf-8") as fh:
        fh.write(seen["open"].upper())
    with open(root / "log.txt", "a", encoding="utf-8") as fh:
        fh.write("ran\n")
    (root / "new.json").write_text(json.dumps({"lines": seen["open"].count("\n")}), encoding="utf-8")
    with open(sys.argv[0], encoding="utf-8") as fh:  # outside the root: not recorded
        seen["outside"] = len(fh.read()) > 0
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--replay")
    parser.add_argument("--store")
    parser.add_argument("--mode", default="strict")
    args = parser.parse_args()
    root = Path(args.root)
    determinism_setup.instrument()
    report: dict = {}
    if args.replay:
        from tracetape import replay

        with replay.player(args.replay, mode=args.mode, store=args.store) as player, \
                tracetape.run(agent="files") as run:
            seen = agent(root)
        report = {"divergences": [d.describe() for d in player.divergences]}
    else:
        with tracetape.run(agent="files") as run:
            seen = agent(root)
    determinism_setup.finish()
    print(json.dumps({"run_id": run.run_id, "seen": seen, "cwd": os.getcwd(), **report}))


if __name__ == "__main__":
    main()
