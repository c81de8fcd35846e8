"""Shared by the tools_* agents: the agent's work as a recorded run, or under a strict replay of one."""

from __future__ import annotations

import argparse
import contextlib
from typing import Iterator

import tracetape


def options(*names: str) -> argparse.Namespace:
    """The agent's arguments (``--name`` ones are flags), plus ``--replay RUN_ID --store SQL_URL``."""
    parser = argparse.ArgumentParser()
    for name in names:
        if name.startswith("--"):
            parser.add_argument(name, action="store_true")
        else:
            parser.add_argument(name)
    parser.add_argument("--replay", help="replay this recorded run (strict) instead of recording")
    parser.add_argument("--store", help="where the recorded run is")
    return parser.parse_args()


@contextlib.contextmanager
def recording(agent: str, replay_of: str | None, store: str | None) -> Iterator[dict]:
    """A run of *agent* around the block; the block puts its ``results`` in the yielded dict,
    which gets the run id and the number of calls served from the recording."""
    outcome: dict = {"served": 0}
    if replay_of:
        from tracetape import replay

        with replay.player(replay_of, store=store) as player:
            with tracetape.run(agent=agent) as run:
                yield outcome
        outcome["served"] = player.served
    else:
        with tracetape.run(agent=agent) as run:
            yield outcome
    outcome["run_id"] = run.run_id
